//! Replay protection without the database: the dedup keys of recent callbacks, in memory, with the
//! reply each one got. A byte-identical signed request is only accepted within the signature's
//! freshness window, so keys older than the window (plus a margin) are forgotten. At start the index
//! is rebuilt from the journal, whose segments are kept at least that long.
//!
//! What this does not cover: two svamlgate instances each receiving one copy of the same request
//! within the shipping lag both process it (each instance knows only its own keys).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use tokio::sync::Notify;

use crate::shards::ShardedMap;
use uuid::Uuid;

/// The reply an original callback got: HTTP status and body (JSON, as sent).
pub type StoredReply = (u16, Option<Bytes>);

/// A dedup key: SHA-256 over everything the signature covers, plus the signature.
pub type Key = [u8; 32];

/// One original callback. Small on purpose: one is kept per callback for the whole window.
#[derive(Debug)]
pub struct Original {
    /// Its row id.
    pub id: Uuid,
    /// Its reference.
    pub reference: Box<str>,
    reply: OnceLock<StoredReply>,
    /// Shared by the whole index: woken whenever any original is answered.
    answered: Arc<Notify>,
}

impl Original {
    /// Sets the reply (wakes duplicates waiting for it).
    pub fn answered(&self, status: u16, body: Option<Bytes>) {
        if self.reply.set((status, body.map(shared))).is_ok() {
            self.answered.notify_waiters();
        }
    }

    /// Waits at most `timeout` for the reply.
    pub async fn reply_within(&self, timeout: Duration) -> Option<StoredReply> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.answered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.reply.get() {
                return Some(r.clone());
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return self.reply.get().cloned();
            }
        }
    }
}

/// Result of claiming a dedup key.
#[derive(Debug)]
pub enum Claim {
    /// First time seen: process it, then call [`Original::answered`].
    New(Arc<Original>),
    /// Seen before.
    Duplicate(Arc<Original>),
}

/// An original in the index, with when it arrived beside it: a sweep reads the time from the
/// table itself, without following each entry's pointer into the heap.
#[derive(Debug)]
struct Held {
    seen: Instant,
    original: Arc<Original>,
}

/// The index.
#[derive(Debug)]
pub struct ReplayIndex {
    keep: Duration,
    map: ShardedMap<Key, Held>,
    answered: Arc<Notify>,
}

impl ReplayIndex {
    /// An index that remembers keys for `keep`.
    pub fn new(keep: Duration) -> ReplayIndex {
        ReplayIndex {
            keep,
            map: ShardedMap::new(),
            answered: Arc::new(Notify::new()),
        }
    }

    /// Claims `key` for a callback.
    pub fn claim(&self, key: &Key, id: Uuid, reference: &str) -> Claim {
        let seen = Instant::now();
        let mut map = self.map.shard(key);
        if let Some(h) = map.get(key) {
            if seen.saturating_duration_since(h.seen) < self.keep {
                return Claim::Duplicate(h.original.clone());
            }
        }
        let original = Arc::new(Original {
            id,
            reference: reference.into(),
            reply: OnceLock::new(),
            answered: self.answered.clone(),
        });
        map.insert(
            *key,
            Held {
                seen,
                original: original.clone(),
            },
        );
        Claim::New(original)
    }

    /// Adds an answered original found in the journal at start; `age` is how long ago it arrived.
    pub fn restore(
        &self,
        key: Key,
        id: Uuid,
        reference: String,
        age: Duration,
        reply: StoredReply,
    ) {
        let Some(seen) = Instant::now().checked_sub(age) else {
            return;
        };
        if age >= self.keep {
            return;
        }
        let original = Arc::new(Original {
            id,
            reference: reference.into(),
            reply: OnceLock::from((reply.0, reply.1.map(shared))),
            answered: self.answered.clone(),
        });
        self.map.shard(&key).insert(key, Held { seen, original });
    }

    /// Shards of the index, for [`ReplayIndex::prune_shard`].
    pub fn shards(&self) -> usize {
        self.map.shard_count()
    }

    /// Forgets the keys of shard `i` older than the window as of `now`; returns how many keys that
    /// shard holds after. The sweep (`app::spawn_pruning`) calls it for every shard in turn.
    pub fn prune_shard(&self, i: usize, now: Instant) -> usize {
        let keep = self.keep;
        self.map
            .retain_shard(i, |_, h| now.saturating_duration_since(h.seen) < keep)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bytes of a reply to keep for replays: those of an identical reply this thread kept lately
/// when there is one, else `body` itself (remembered when small). A flow answers most calls with
/// the same SVAML (a menu, a greeting), and the index keeps every reply for the whole window: one
/// copy per callback was about 500 bytes of the benchmark's 1.4 KB of memory per callback, each
/// new page of which the kernel must zero (on a VM that gives freed memory back to its host, a
/// fault into the host as well: docs/benchmarks.md, session 19).
fn shared(body: Bytes) -> Bytes {
    thread_local! {
        static LAST: std::cell::RefCell<(usize, [Option<Bytes>; RECENT])> =
            const { std::cell::RefCell::new((0, [const { None }; RECENT])) };
    }
    LAST.with_borrow_mut(|(next, recent)| {
        if let Some(b) = recent.iter().flatten().find(|b| **b == body) {
            return b.clone();
        }
        // Only small replies are kept here: a thread holds at most RECENT of them.
        if body.len() <= SHARED_MAX {
            recent[*next] = Some(body.clone());
            *next = (*next + 1) % RECENT;
        }
        body
    })
}

/// Distinct replies each thread remembers for [`shared`].
const RECENT: usize = 8;
/// Longest reply [`shared`] remembers (bytes): it holds at most `RECENT` per thread.
const SHARED_MAX: usize = 16 * 1024;

/// A dedup key as stored (`callbacks.dedup_key`): lower-case hex. Read back with [`unhex`] at start,
/// when the replay index is rebuilt from the journal.
pub fn hex(key: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in key {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Parses [`hex`] back.
pub fn unhex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |c: u8| char::from(c).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_duplicate_waits_for_the_original_reply() {
        let idx = ReplayIndex::new(Duration::from_secs(60));
        let Claim::New(o) = idx.claim(&[1; 32], Uuid::nil(), "r1") else {
            panic!()
        };
        let Claim::Duplicate(d) = idx.claim(&[1; 32], Uuid::nil(), "r2") else {
            panic!()
        };
        assert_eq!(&*d.reference, "r1");
        assert!(d.reply_within(Duration::from_millis(10)).await.is_none());
        let waiter = tokio::spawn(async move { d.reply_within(Duration::from_secs(5)).await });
        o.answered(200, Some(Bytes::from_static(b"{}")));
        assert_eq!(waiter.await.unwrap().unwrap().0, 200);
    }

    #[test]
    fn identical_replies_share_their_bytes_and_others_are_copied() {
        let menu = br#"{"action":{"name":"runMenu"}}"#;
        let own = |b: &[u8]| Bytes::copy_from_slice(b);
        let a = shared(own(menu));
        let b = shared(own(menu));
        assert_eq!(a, b);
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same reply is kept once");
        let other = shared(own(br#"{"action":{"name":"hangup"}}"#));
        assert_ne!(other.as_ptr(), a.as_ptr());
        assert_eq!(&other[..], br#"{"action":{"name":"hangup"}}"#);
        // Still found among the thread's last replies after a few others.
        for i in 0..RECENT - 2 {
            shared(own(format!("{{\"n\":{i}}}").as_bytes()));
        }
        assert_eq!(shared(own(menu)).as_ptr(), a.as_ptr());
        // A large reply keeps its own bytes every time, never held by the thread.
        let big = vec![b'x'; SHARED_MAX + 1];
        assert_ne!(shared(own(&big)).as_ptr(), shared(own(&big)).as_ptr());
        // Another thread has its own.
        let there = std::thread::spawn(move || shared(own(menu)))
            .join()
            .unwrap();
        assert_eq!(there, a);
    }

    #[tokio::test]
    async fn the_index_keeps_identical_replies_once() {
        let idx = ReplayIndex::new(Duration::from_secs(60));
        let menu = br#"{"action":{"name":"runMenu"}}"#;
        let (Claim::New(first), Claim::New(second)) = (
            idx.claim(&[1; 32], Uuid::nil(), "a"),
            idx.claim(&[2; 32], Uuid::nil(), "b"),
        ) else {
            panic!("two new keys");
        };
        first.answered(200, Some(Bytes::copy_from_slice(menu)));
        second.answered(200, Some(Bytes::copy_from_slice(menu)));
        idx.restore(
            [3; 32],
            Uuid::nil(),
            "c".into(),
            Duration::ZERO,
            (200, Some(Bytes::copy_from_slice(menu))),
        );
        let Claim::Duplicate(third) = idx.claim(&[3; 32], Uuid::nil(), "c") else {
            panic!("restored key");
        };
        let ptr = |o: &Original| o.reply.get().and_then(|r| r.1.clone()).map(|b| b.as_ptr());
        assert!(ptr(&first).is_some());
        assert_eq!(ptr(&first), ptr(&second));
        assert_eq!(ptr(&first), ptr(&third));
    }

    /// Whether the key of 32 bytes `b` is claimed as new (else it is a duplicate).
    fn claims_new(idx: &ReplayIndex, b: u8) -> bool {
        matches!(idx.claim(&[b; 32], Uuid::nil(), "x"), Claim::New(_))
    }

    /// A sweep of every shard as of `at`, as the service's does; the keys left.
    fn sweep(idx: &ReplayIndex, at: Instant) -> usize {
        (0..idx.shards()).map(|i| idx.prune_shard(i, at)).sum()
    }

    #[test]
    fn old_keys_are_forgotten_and_restored_keys_count() {
        let idx = ReplayIndex::new(Duration::from_secs(60));
        idx.restore(
            [1; 32],
            Uuid::nil(),
            "r".into(),
            Duration::from_secs(61),
            (200, None),
        );
        idx.restore(
            [2; 32],
            Uuid::nil(),
            "r".into(),
            Duration::from_secs(1),
            (200, None),
        );
        assert_eq!(idx.len(), 1);
        assert!(!claims_new(&idx, 2));
        assert!(claims_new(&idx, 3));
        assert_eq!(sweep(&idx, Instant::now()), 2);
    }

    #[test]
    fn a_sweep_shard_by_shard_forgets_exactly_the_keys_past_the_window_at_its_moment() {
        let idx = ReplayIndex::new(Duration::from_secs(60));
        for i in 0..200u8 {
            // Keys 0..100 arrived 50 s ago, the others 10 s ago.
            let age = Duration::from_secs(if i < 100 { 50 } else { 10 });
            idx.restore([i; 32], Uuid::nil(), "r".into(), age, (200, None));
        }
        assert_eq!(sweep(&idx, Instant::now()), 200);
        // 20 s on, the first hundred are 70 s old: past the window.
        assert_eq!(sweep(&idx, Instant::now() + Duration::from_secs(20)), 100);
        assert!(claims_new(&idx, 0));
        assert!(!claims_new(&idx, 150));
        // A shard that does not exist is nothing.
        assert_eq!(idx.prune_shard(idx.shards(), Instant::now()), 0);
    }
}
