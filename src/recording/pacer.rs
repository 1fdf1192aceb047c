//! Callers before records: how fast the shipper moves the journal into PostgreSQL while callbacks
//! are being answered. While callbacks queue for the CPU (at least as many in flight as the
//! machine has CPUs, at each of [`Pacer::SAMPLES`] looks over [`Pacer::WINDOW`]), the shipper holds
//! its batches back, for at most [`ShipperConfig::defer_max`](super::shipper::ShipperConfig) of lag;
//! then it ships whatever the load. It never holds back while records wait in memory or the
//! journal's unshipped segments fill half its disk limit ([`room_to_hold_back`]): holding back
//! only moves work to a quieter moment, and must never be why the journal fills and records are
//! held in memory or dropped while PostgreSQL takes them.
//!
//! The disk is not a signal any more. The shipper used to shrink its batches and pause after each
//! one when the journal's flushes got slow, on the view that PostgreSQL's writes slowed them. That
//! did not lower the replies' p99 under load and halved the catch-up's speed (docs/benchmarks.md),
//! and since the journal writes into preallocated segments ([`super::journal`]) its flush no longer
//! waits for the filesystem's journal commit behind PostgreSQL's writes: what is left of the
//! flush's cost on a shared disk is the device's cache flush, which a pause between two batches
//! does not shorten. It was removed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::ShipStatus;

/// Paces the shipper (see the module comment). One per shipper.
#[derive(Debug)]
pub struct Pacer {
    cpus: u64,
    defer_max: Duration,
}

impl Pacer {
    /// Looks at the in-flight count before deciding.
    pub const SAMPLES: u32 = 5;
    /// Over this long.
    pub const WINDOW: Duration = Duration::from_millis(50);

    /// A pacer for this machine.
    pub fn new(defer_max: Duration) -> Pacer {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        Pacer::with_cpus(cpus, defer_max)
    }

    fn with_cpus(cpus: u64, defer_max: Duration) -> Pacer {
        Pacer { cpus, defer_max }
    }

    /// Whether to hold the next batch back, given the lowest in-flight count seen over the window
    /// and how long the shipper has been behind.
    pub fn holds_back(&self, lowest_in_flight: u64, behind: Duration) -> bool {
        !self.defer_max.is_zero() && lowest_in_flight >= self.cpus && behind < self.defer_max
    }

    /// Watches the reply path for [`Pacer::WINDOW`] and says whether to hold back now.
    pub async fn saturated(&self, status: &ShipStatus) -> bool {
        let behind = Duration::from_secs_f64(status.lag_seconds());
        if !self.holds_back(self.cpus, behind) {
            return false;
        }
        let mut lowest = u64::MAX;
        for _ in 0..Self::SAMPLES {
            lowest = lowest.min(status.in_flight.load(Ordering::Acquire));
            if lowest < self.cpus {
                return false;
            }
            tokio::time::sleep(Self::WINDOW / Self::SAMPLES).await;
        }
        self.holds_back(lowest, behind)
    }
}

/// Whether the journal leaves room to hold batches back: nothing waits in memory, and its
/// unshipped segments ([`super::journal::Journal::unshipped_bytes`]) fill at most half of
/// `limit`.
pub fn room_to_hold_back(unshipped_bytes: u64, limit: u64, memory_empty: bool) -> bool {
    memory_empty && unshipped_bytes <= limit / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipper_holds_back_only_while_the_journal_has_room() {
        assert!(room_to_hold_back(0, 150_000, true));
        assert!(room_to_hold_back(75_000, 150_000, true));
        assert!(!room_to_hold_back(75_001, 150_000, true));
        assert!(
            !room_to_hold_back(0, 150_000, false),
            "records wait in memory"
        );
    }

    #[test]
    fn the_pacer_holds_back_only_while_callers_queue_and_only_for_a_while() {
        let pacer = Pacer::with_cpus(2, Duration::from_secs(10));
        // Callers queueing (as many in flight as CPUs, or more), shipper recently caught up.
        assert!(pacer.holds_back(2, Duration::ZERO));
        assert!(pacer.holds_back(32, Duration::from_secs(9)));
        // Fewer in flight than CPUs: there is room, ship.
        assert!(!pacer.holds_back(1, Duration::ZERO));
        // Behind for the whole bound: ship until caught up, whatever the load.
        assert!(!pacer.holds_back(32, Duration::from_secs(10)));
        // Zero turns pacing off.
        let off = Pacer::with_cpus(2, Duration::ZERO);
        assert!(!off.holds_back(32, Duration::ZERO));
    }
}
