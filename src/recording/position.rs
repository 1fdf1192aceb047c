//! Read your own writes: a reader takes the journal position of the moment it arrived
//! ([`ShipStatus::position`]) and waits, bounded, until the shipper has passed it
//! ([`ShipStatus::wait_shipped`]). Every record written before that moment — callbacks, errors,
//! and whatever else goes through the journal — is then in PostgreSQL, so one read of PostgreSQL
//! sees it. There is no second read path: when the wait cannot succeed (PostgreSQL away) or runs
//! out, the caller reads what is there and reports the [`Lag`].

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Journal, ShipStatus};

/// How far PostgreSQL is behind a reader's position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Records written before the read that are not yet in PostgreSQL.
    pub records: u64,
    /// Seconds since the shipper was last caught up.
    pub seconds: f64,
    /// Why the read did not wait them out.
    pub reason: LagReason,
}

/// Why a read answers with records missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagReason {
    /// PostgreSQL does not take records (shipping fails): nothing waited.
    DatabaseUnavailable,
    /// The shipper did not pass the position within the wait.
    WaitExpired,
}

impl LagReason {
    /// Name used in headers and bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            LagReason::DatabaseUnavailable => "database_unavailable",
            LagReason::WaitExpired => "wait_expired",
        }
    }
}

impl ShipStatus {
    /// The journal position of now: every record durable so far (every callback answered so far
    /// has its record there) is at or below it.
    pub fn position(&self, journal: &Journal) -> u64 {
        let durable = *journal.durable().borrow();
        durable.max(self.durable.load(Ordering::Acquire))
    }

    /// Stores the shipped position and wakes the readers waiting for it (the shipper calls this
    /// after every batch).
    pub fn set_shipped(&self, seq: u64) {
        self.shipped.store(seq, Ordering::Release);
        self.shipped_moved.notify_waiters();
    }

    /// Whether PostgreSQL is known not to take records: the last attempt (a batch, or the
    /// migrations at start) failed. Before the first attempt it is not known, and readers wait.
    pub fn known_down(&self) -> bool {
        !self.db_ok.load(Ordering::Acquire)
            && self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
    }

    /// Whether a reader waits for a position not yet shipped.
    pub fn urged(&self) -> bool {
        self.wanted.load(Ordering::Acquire) > self.shipped.load(Ordering::Acquire)
    }

    /// Waits until the shipper has passed `position`, at most `budget`; `None` when it has, else
    /// what is still missing. Does not wait at all while PostgreSQL does not take records.
    pub async fn wait_shipped(&self, position: u64, budget: Duration) -> Option<Lag> {
        let until = Instant::now() + budget;
        loop {
            let moved = self.shipped_moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            let shipped = self.shipped.load(Ordering::Acquire);
            if shipped >= position {
                return None;
            }
            let lag = |reason| Lag {
                records: position - shipped,
                seconds: self.lag_seconds(),
                reason,
            };
            if self.known_down() {
                return Some(lag(LagReason::DatabaseUnavailable));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some(lag(LagReason::WaitExpired));
            }
            self.wanted.fetch_max(position, Ordering::AcqRel);
            self.urge.notify_one();
            // A failing batch does not move `shipped`: look again at least every 50 ms, so that
            // PostgreSQL going away ends the wait early.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), moved).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_reader_waits_for_its_position_and_no_longer() {
        let status = Arc::new(ShipStatus::default());
        status.db_ok.store(true, Ordering::Release);
        status.set_shipped(3);
        assert_eq!(status.wait_shipped(3, Duration::ZERO).await, None);
        let lag = status.wait_shipped(5, Duration::ZERO).await.unwrap();
        assert_eq!((lag.records, lag.reason), (2, LagReason::WaitExpired));

        let waiter = {
            let status = status.clone();
            tokio::spawn(async move { status.wait_shipped(5, Duration::from_secs(30)).await })
        };
        // The shipper is urged while a reader waits.
        while !status.urged() {
            tokio::task::yield_now().await;
        }
        status.set_shipped(5);
        assert_eq!(waiter.await.unwrap(), None);
        assert!(!status.urged());

        // Not known yet (the shipper has not tried): a reader waits.
        status.db_ok.store(false, Ordering::Release);
        let lag = status.wait_shipped(9, Duration::ZERO).await.unwrap();
        assert_eq!(lag.reason, LagReason::WaitExpired);
        // Known down: no wait at all.
        *status.last_error.lock().unwrap() = Some("connection refused".into());
        let lag = status
            .wait_shipped(9, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(
            (lag.records, lag.reason),
            (4, LagReason::DatabaseUnavailable)
        );
    }
}
