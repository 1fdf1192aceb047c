//! Refusals are bounded: an unauthenticated client cannot fill the disk or the database.
//!
//! Each (peer address, reason) pair is recorded in full up to `SVAMLGATE_REFUSALS_PER_WINDOW`
//! refusals per window (`SVAMLGATE_REFUSAL_WINDOW_SECS`, 60 s). Past that, the window's refusals
//! are only counted, and when the window closes one summary row is recorded: the count, the first
//! and last time, and one sample (the first refusal past the limit, kept in full). The summary is a
//! `refusals` row like any other, with `summary_count`, `first_at` and `last_at` set, listed by
//! `GET /admin/refusals`. Logs follow the same rule: one line per refusal recorded in full, one per
//! summary.
//!
//! At most [`MAX_PEERS`] pairs are tracked at once; refusals from further peers share one pair per
//! reason, with the peer `*`. Memory is bounded by that, disk by (pairs × (limit + 1)) rows per window.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use time::OffsetDateTime;

use crate::error::{ErrorRecord, RefusalSummary};
use crate::metrics::Metrics;
use crate::recording::{Record, Recorder};
use crate::signature::RefusalReason;

/// Most (peer, reason) pairs tracked at once.
pub const MAX_PEERS: usize = 4096;

/// The peer of refusals past [`MAX_PEERS`].
pub const OTHER_PEERS: &str = "*";

/// Whether a refusal is recorded in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Recorded in full (row, log line, explanation).
    Full,
    /// Counted into its window's summary.
    Summarized,
}

#[derive(Debug)]
struct Over {
    count: u64,
    first: OffsetDateTime,
    last: OffsetDateTime,
    sample: ErrorRecord,
}

#[derive(Debug)]
struct Bucket {
    started: OffsetDateTime,
    full: u32,
    over: Option<Over>,
}

/// Counts refusals per (peer, reason) and window.
#[derive(Debug)]
pub struct RefusalLimiter {
    window: time::Duration,
    per_window: u32,
    buckets: Mutex<HashMap<(String, &'static str), Bucket>>,
}

/// The peer part of a remote address: the IP without the port.
pub fn peer_of(remote_addr: Option<&str>) -> String {
    match remote_addr {
        None => "unknown".to_owned(),
        Some(a) => a
            .parse::<SocketAddr>()
            .map(|s| s.ip().to_string())
            .unwrap_or_else(|_| a.chars().take(64).collect()),
    }
}

impl RefusalLimiter {
    /// `per_window` refusals recorded in full per (peer, reason) and `window`.
    pub fn new(window: Duration, per_window: u32) -> RefusalLimiter {
        RefusalLimiter {
            window: time::Duration::try_from(window).unwrap_or(time::Duration::MINUTE),
            per_window,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn close(&self, key: &(String, &'static str), b: &mut Bucket, out: &mut Vec<ErrorRecord>) {
        if let Some(over) = b.over.take() {
            out.push(summary_row(
                over,
                &key.0,
                u64::try_from(self.window.whole_seconds()).unwrap_or(0),
            ));
        }
    }

    /// Decides how this refusal is recorded. `sample` builds its full record; it is called when
    /// the refusal is the first past the limit in its window (kept as the summary's sample).
    /// Returns the admission and the summaries of windows that have closed.
    pub fn admit(
        &self,
        peer: &str,
        reason: RefusalReason,
        now: OffsetDateTime,
        sample: impl FnOnce() -> ErrorRecord,
    ) -> (Admission, Vec<ErrorRecord>) {
        let mut closed = Vec::new();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = (peer.to_owned(), reason.as_str());
        if !buckets.contains_key(&key) && buckets.len() >= MAX_PEERS {
            key.0 = OTHER_PEERS.to_owned();
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            started: now,
            full: 0,
            over: None,
        });
        if now - bucket.started >= self.window {
            self.close(&key, bucket, &mut closed);
            bucket.started = now;
            bucket.full = 0;
        }
        let admission = if bucket.full < self.per_window {
            bucket.full += 1;
            Admission::Full
        } else {
            match &mut bucket.over {
                Some(over) => {
                    over.count += 1;
                    over.last = now;
                }
                None => {
                    bucket.over = Some(Over {
                        count: 1,
                        first: now,
                        last: now,
                        sample: sample(),
                    })
                }
            }
            Admission::Summarized
        };
        (admission, closed)
    }

    /// Closes every window that has ended (and forgets idle pairs); returns their summaries.
    pub fn sweep(&self, now: OffsetDateTime) -> Vec<ErrorRecord> {
        let mut closed = Vec::new();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.window;
        let ended: Vec<(String, &'static str)> = buckets
            .iter()
            .filter(|(_, b)| now - b.started >= window)
            .map(|(k, _)| k.clone())
            .collect();
        for key in ended {
            if let Some(mut b) = buckets.remove(&key) {
                self.close(&key, &mut b, &mut closed);
            }
        }
        closed
    }

    /// Closes every window now (shutdown).
    pub fn drain(&self) -> Vec<ErrorRecord> {
        let mut closed = Vec::new();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        for (key, mut b) in buckets.drain() {
            self.close(&key, &mut b, &mut closed);
        }
        closed
    }
}

fn summary_row(over: Over, peer: &str, window_secs: u64) -> ErrorRecord {
    let mut row = over.sample;
    let reason = row.refusal.as_ref().map_or("", |r| r.reason.as_str());
    row.message = format!(
        "{} refusals ({reason}) from {peer} between {} and {}, past the ones recorded one by one \
         in this {window_secs} s window; this row keeps the first of them as a sample",
        over.count,
        crate::timestamp::format(over.first),
        crate::timestamp::format(over.last),
    );
    row.occurred_at = Some(over.last);
    if let Some(r) = &mut row.refusal {
        r.summary = Some(RefusalSummary {
            peer: peer.to_owned(),
            count: over.count,
            first_at: over.first,
            last_at: over.last,
            window_secs,
        });
    }
    row
}

/// Records summary rows (and logs each once).
pub async fn record_summaries(recorder: &Recorder, metrics: &Metrics, rows: Vec<ErrorRecord>) {
    for row in rows {
        if let Some(s) = row.refusal.as_ref().and_then(|r| r.summary.as_ref()) {
            tracing::warn!(
                reference = %row.reference,
                peer = %s.peer,
                count = s.count,
                reason = row.refusal.as_ref().map_or("", |r| r.reason.as_str()),
                "refusals summarized (past the per-window limit)"
            );
        }
        metrics.inc("svamlgate_refusal_summaries_total", &[]);
        recorder.record(Record::Error(Box::new(row))).await;
    }
}

/// Closes ended windows every quarter window (at least once a second), recording their summaries,
/// for as long as the limiter lives.
pub fn spawn_sweeper(
    limiter: Weak<super::Verification>,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    window: Duration,
) {
    let every = (window / 4).clamp(Duration::from_millis(250), Duration::from_secs(15));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(v) = limiter.upgrade() else { return };
            let rows = v.limiter.sweep(OffsetDateTime::now_utc());
            drop(v);
            record_summaries(&recorder, &metrics, rows).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderMap;

    use crate::error::ApiError;
    use crate::refusals::{refusal_record, Refused};
    use time::macros::datetime;

    fn sample(n: u32) -> ErrorRecord {
        let err = ApiError::new(40100, format!("sample {n}"));
        let headers = HeaderMap::new();
        let req = Refused {
            method: "POST",
            path: "/cb",
            headers: &headers,
            remote_addr: Some("10.0.0.1:5555"),
            body: None,
        };
        let r = crate::signature::refusal(RefusalReason::AuthorizationMissing, None);
        refusal_record(&err, &req, &r, None, false)
    }

    #[test]
    fn full_up_to_the_limit_then_one_summary_per_window() {
        let l = RefusalLimiter::new(Duration::from_secs(60), 3);
        let t0 = datetime!(2026-01-01 00:00:00 UTC);
        let r = RefusalReason::AuthorizationMissing;
        let mut built = 0;
        for i in 0..100 {
            let (a, closed) = l.admit(
                "10.0.0.1",
                r,
                t0 + time::Duration::milliseconds(i * 100),
                || {
                    built += 1;
                    sample(1)
                },
            );
            assert!(closed.is_empty());
            assert_eq!(
                a,
                if i < 3 {
                    Admission::Full
                } else {
                    Admission::Summarized
                }
            );
        }
        assert_eq!(built, 1, "one sample per window");
        // Another peer and another reason have their own allowance.
        assert_eq!(l.admit("10.0.0.2", r, t0, || sample(2)).0, Admission::Full);
        assert_eq!(
            l.admit("10.0.0.1", RefusalReason::UnknownKey, t0, || sample(3))
                .0,
            Admission::Full
        );
        // The next window closes the first: one summary of 97.
        let (a, closed) = l.admit("10.0.0.1", r, t0 + time::Duration::seconds(61), || {
            sample(4)
        });
        assert_eq!(a, Admission::Full);
        assert_eq!(closed.len(), 1);
        let s = closed[0].refusal.as_ref().unwrap().summary.clone().unwrap();
        assert_eq!(s.count, 97);
        assert_eq!(s.first_at, t0 + time::Duration::milliseconds(300));
        assert_eq!(s.last_at, t0 + time::Duration::milliseconds(9900));
        assert_eq!(s.peer, "10.0.0.1");
        assert!(closed[0]
            .message
            .starts_with("97 refusals (authorization_missing) from 10.0.0.1"));
        // A sweep closes idle windows; nothing past the limit there, so no summary.
        assert!(l.sweep(t0 + time::Duration::seconds(200)).is_empty());
        assert!(l.drain().is_empty());
    }

    #[test]
    fn peers_past_the_bound_share_one_pair() {
        let l = RefusalLimiter::new(Duration::from_secs(60), 1);
        let t0 = datetime!(2026-01-01 00:00:00 UTC);
        let r = RefusalReason::UnknownKey;
        for i in 0..MAX_PEERS {
            l.admit(&format!("p{i}"), r, t0, || sample(0));
        }
        assert_eq!(l.admit("new-1", r, t0, || sample(0)).0, Admission::Full);
        assert_eq!(
            l.admit("new-2", r, t0, || sample(0)).0,
            Admission::Summarized
        );
        let rows = l.drain();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0]
                .refusal
                .as_ref()
                .unwrap()
                .summary
                .as_ref()
                .unwrap()
                .peer,
            OTHER_PEERS
        );
    }

    #[test]
    fn peer_is_the_ip_without_port() {
        assert_eq!(peer_of(Some("10.1.2.3:4567")), "10.1.2.3");
        assert_eq!(peer_of(Some("[::1]:80")), "::1");
        assert_eq!(peer_of(None), "unknown");
    }
}
