//! Who may use the console and the admin API: sessions of the console (made by logging in with the
//! admin token), their CSRF tokens, and the throttle on wrong tokens (console logins and admin API
//! bearer tokens alike, per peer address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "svamlgate_console";
/// Name of the cookie carrying the login form's CSRF token (double submit).
pub const LOGIN_COOKIE: &str = "svamlgate_console_login";

/// Wrong tokens a peer may send before it is made to wait.
pub const FREE_FAILURES: u32 = 5;
/// Longest wait imposed on a peer.
pub const MAX_BLOCK: Duration = Duration::from_secs(300);
/// A peer's failures are forgotten after this long without one.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Peers remembered at most (the oldest unblocked are forgotten first).
const MAX_PEERS: usize = 100_000;

/// A fresh random token (244 random bits, hex).
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Constant-time comparison of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    let da: [u8; 32] = Sha256::digest(a.as_bytes()).into();
    let db: [u8; 32] = Sha256::digest(b.as_bytes()).into();
    bool::from(da.ct_eq(&db))
}

/// Whether `token` is the admin token whose SHA-256 is `expected` (constant time).
pub fn is_admin_token(token: &str, expected: &[u8; 32]) -> bool {
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    bool::from(digest.ct_eq(expected))
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Wrong tokens per peer address: the first [`FREE_FAILURES`] cost nothing; each further one
/// blocks the peer for 1, 2, 4, … seconds (at most [`MAX_BLOCK`]), during which even the right
/// token is refused. A right token resets the count.
#[derive(Debug, Default)]
pub struct Throttle {
    peers: Mutex<HashMap<IpAddr, Failures>>,
}

impl Throttle {
    /// `Err(wait)` while `peer` is blocked.
    pub fn check(&self, peer: IpAddr) -> Result<(), Duration> {
        self.check_at(peer, Instant::now())
    }

    fn check_at(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get(&peer).and_then(|f| f.blocked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Notes a wrong token from `peer`; returns how long it is now blocked (zero: not blocked).
    pub fn fail(&self, peer: IpAddr) -> Duration {
        self.fail_at(peer, Instant::now())
    }

    fn fail_at(&self, peer: IpAddr, now: Instant) -> Duration {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
            peers.retain(|_, f| {
                f.blocked_until.is_some_and(|u| u > now)
                    || now.duration_since(f.last) < FORGET_AFTER
            });
            if peers.len() >= MAX_PEERS {
                peers.retain(|_, f| f.blocked_until.is_some_and(|u| u > now));
            }
        }
        let f = peers.entry(peer).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: None,
        });
        if now.duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.count > FREE_FAILURES {
            let exp = (f.count - FREE_FAILURES - 1).min(16);
            let wait = Duration::from_secs(1u64 << exp).min(MAX_BLOCK);
            f.blocked_until = Some(now + wait);
            wait
        } else {
            Duration::ZERO
        }
    }

    /// Notes a right token from `peer`: its failures are forgotten.
    pub fn succeed(&self, peer: IpAddr) {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&peer);
    }
}

/// One logged-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    /// The CSRF token every state-changing form of this session carries.
    pub csrf: String,
    /// When the session ends.
    pub expires: Instant,
}

/// Sessions of the console, in memory (a restart logs everyone out). Stored under the SHA-256 of
/// the cookie value, so the map never holds a usable cookie.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn key(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

impl Sessions {
    /// Starts a session lasting `ttl`; returns the cookie value.
    pub fn create(&self, ttl: Duration) -> (String, Session) {
        let now = Instant::now();
        let cookie = random_token();
        let session = Session {
            csrf: random_token(),
            expires: now + ttl,
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires > now);
        map.insert(key(&cookie), session.clone());
        (cookie, session)
    }

    /// The live session of a cookie value.
    pub fn get(&self, cookie: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let k = key(cookie);
        match map.get(&k) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn remove(&self, cookie: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key(cookie));
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_blocks_after_free_failures_and_doubles() {
        let t = Throttle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.fail_at(ip, now), Duration::ZERO);
            assert!(t.check_at(ip, now).is_ok());
        }
        assert_eq!(t.fail_at(ip, now), Duration::from_secs(1));
        assert!(t.check_at(ip, now).is_err());
        assert!(
            t.check_at(other, now).is_ok(),
            "other peers are not blocked"
        );
        assert_eq!(t.fail_at(ip, now), Duration::from_secs(2));
        assert_eq!(t.fail_at(ip, now), Duration::from_secs(4));
        assert!(t.check_at(ip, now + Duration::from_secs(5)).is_ok());
        for _ in 0..30 {
            t.fail_at(ip, now);
        }
        assert_eq!(t.check_at(ip, now), Err(MAX_BLOCK));
        t.succeed(ip);
        assert!(t.check_at(ip, now).is_ok());
    }

    #[test]
    fn sessions_expire_and_end() {
        let s = Sessions::default();
        let (cookie, session) = s.create(Duration::from_secs(60));
        assert_eq!(s.get(&cookie).map(|x| x.csrf), Some(session.csrf));
        assert!(s.get("nope").is_none());
        s.remove(&cookie);
        assert!(s.get(&cookie).is_none());
        let (short, _) = s.create(Duration::ZERO);
        assert!(s.get(&short).is_none(), "expired at once");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = "a=1; svamlgate_console=abc; b=2";
        assert_eq!(cookie_value(h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(h, "c"), None);
        assert!(same_token("x", "x") && !same_token("x", "y"));
    }
}
