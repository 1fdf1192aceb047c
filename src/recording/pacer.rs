//! Callers before records: how fast the shipper moves the journal into PostgreSQL while callbacks
//! are being answered. Two signals, both taken from the reply path:
//!
//! * **The CPU**: while callbacks queue (at least as many in flight as the machine has CPUs, at each
//!   of [`Pacer::SAMPLES`] looks over [`Pacer::WINDOW`]), the shipper holds its batches back, for
//!   at most [`ShipperConfig::defer_max`](super::shipper::ShipperConfig) of lag; then it ships
//!   whatever the load.
//! * **The disk**: the journal's flush is the one thing a reply waits for, and it shares the disk
//!   with PostgreSQL's writes (its commits, its checkpoints, the kernel writing back its pages).
//!   Before each batch the pacer looks at the journal's flushes since the batch before
//!   (`svamlgate_journal_append_seconds`). When more than 1% of them took longer than
//!   [`Pacer::SLOW_FLUSH`], the shipper is slowing the replies down: batches get smaller (halved,
//!   down to [`Pacer::MIN_BATCH`]) and a pause follows each one (up to [`Pacer::MAX_GAP`] times as
//!   long as the batch took). While flushes stay fast, batches grow back (by [`Pacer::MIN_BATCH`]
//!   per batch, up to [`BATCH`]) and the pauses shrink away.
//!
//! The pause is proportional to the batch, so the shipper always keeps at least one part in
//! `1 + MAX_GAP` of its speed: the lag drains at PostgreSQL's pace divided by at most that.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::shipper::BATCH;
use super::ShipStatus;
use crate::metrics::{HistogramCounts, Metrics};

/// The metric the journal's flush latency is read from (observed by the reply path for every
/// record: from handing it to the journal until it is durable).
const APPEND_SECONDS: &str = "svamlgate_journal_append_seconds";

/// Why the shipper waits before its next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Callbacks are queueing for the CPU: hold the batch back.
    Saturated,
    /// The journal's flushes got slow after the last batch: pause this long before the next.
    SlowFlushes(Duration),
}

/// Paces the shipper (see the module comment). One per shipper.
#[derive(Debug)]
pub struct Pacer {
    cpus: u64,
    defer_max: Duration,
    /// Records in the next batch.
    batch: usize,
    /// Pause after a batch, as a multiple of how long it took.
    gap: f64,
    /// The flush histogram as last seen.
    seen: HistogramCounts,
}

impl Pacer {
    /// Looks at the in-flight count before deciding.
    pub const SAMPLES: u32 = 5;
    /// Over this long.
    pub const WINDOW: Duration = Duration::from_millis(50);
    /// A journal flush slower than this (a bucket bound of `svamlgate_journal_append_seconds`)
    /// holds a reply up for half the latency budget of a callback.
    pub const SLOW_FLUSH: Duration = Duration::from_micros(2500);
    /// Smallest batch while flushes are slow.
    pub const MIN_BATCH: usize = 50;
    /// Longest pause after a batch, as a multiple of the time the batch took.
    pub const MAX_GAP: f64 = 4.0;
    /// Longest pause after a batch, whatever it took.
    pub const MAX_PAUSE: Duration = Duration::from_secs(1);

    /// A pacer for this machine.
    pub fn new(defer_max: Duration) -> Pacer {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        Pacer::with_cpus(cpus, defer_max)
    }

    fn with_cpus(cpus: u64, defer_max: Duration) -> Pacer {
        Pacer {
            cpus,
            defer_max,
            batch: BATCH,
            gap: 0.0,
            seen: HistogramCounts::default(),
        }
    }

    /// Records in the next batch.
    pub fn batch(&self) -> usize {
        self.batch
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

    /// Takes what the journal's flushes did since the last look into account: smaller batches and
    /// longer pauses while they are slow, back to full speed while they are fast.
    pub fn look(&mut self, metrics: &Metrics) {
        let now = metrics.histogram(APPEND_SECONDS, &[]);
        let window = now.since(&self.seen);
        self.seen = now;
        self.adjust(window.count, window.above(Self::SLOW_FLUSH));
    }

    /// The rule behind [`Pacer::look`]: `slow` of `flushes` took longer than [`Pacer::SLOW_FLUSH`].
    fn adjust(&mut self, flushes: u64, slow: u64) {
        if slow > 0 && slow * 100 > flushes {
            self.batch = (self.batch / 2).max(Self::MIN_BATCH);
            self.gap = (self.gap * 2.0).clamp(1.0, Self::MAX_GAP);
        } else {
            self.batch = (self.batch + Self::MIN_BATCH).min(BATCH);
            self.gap = if self.gap <= 0.25 {
                0.0
            } else {
                self.gap / 2.0
            };
        }
    }

    /// The pause after a batch that took `took`, if flushes were slow of late.
    pub fn pause_after(&self, took: Duration) -> Option<Duration> {
        (self.gap > 0.0).then(|| took.mul_f64(self.gap).min(Self::MAX_PAUSE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn slow_flushes_shrink_batches_and_add_pauses_fast_ones_undo_it() {
        let mut p = Pacer::with_cpus(2, Duration::from_secs(10));
        let took = Duration::from_millis(40);
        assert_eq!((p.batch(), p.pause_after(took)), (BATCH, None));
        // 1 slow flush in 100 is not more than 1%: full speed.
        p.adjust(100, 1);
        assert_eq!((p.batch(), p.pause_after(took)), (BATCH, None));
        // 2 in 100 is.
        p.adjust(100, 2);
        assert_eq!(p.batch(), BATCH / 2);
        assert_eq!(p.pause_after(took), Some(took));
        for _ in 0..10 {
            p.adjust(50, 10);
        }
        assert_eq!(p.batch(), Pacer::MIN_BATCH);
        assert_eq!(p.pause_after(took), Some(took * 4), "the pause is bounded");
        assert_eq!(
            p.pause_after(Duration::from_secs(5)),
            Some(Pacer::MAX_PAUSE)
        );
        // No callbacks, no evidence: speed comes back, step by step.
        p.adjust(0, 0);
        assert_eq!(p.batch(), 2 * Pacer::MIN_BATCH);
        assert_eq!(p.pause_after(took), Some(took * 2));
        for _ in 0..20 {
            p.adjust(1000, 0);
        }
        assert_eq!((p.batch(), p.pause_after(took)), (BATCH, None));
    }

    #[test]
    fn the_pacer_reads_the_journal_flushes_from_the_metrics() {
        let metrics = Metrics::new();
        let mut p = Pacer::with_cpus(2, Duration::from_secs(10));
        for _ in 0..97 {
            metrics.observe(APPEND_SECONDS, &[], Duration::from_micros(400));
        }
        for _ in 0..3 {
            metrics.observe(APPEND_SECONDS, &[], Duration::from_millis(12));
        }
        p.look(&metrics);
        assert_eq!(p.batch(), BATCH / 2);
        // The next look sees only what came after the last one.
        for _ in 0..100 {
            metrics.observe(APPEND_SECONDS, &[], Duration::from_micros(400));
        }
        p.look(&metrics);
        assert_eq!(p.batch(), BATCH / 2 + Pacer::MIN_BATCH);
    }
}
