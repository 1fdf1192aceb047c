//! The shipper: moves journal records into PostgreSQL in batches (one transaction of up to
//! [`BATCH`] records, COPY through staging tables), in journal order. Every insert is idempotent (rows are keyed
//! by ids fixed when the record was written), so a crash between a commit and the checkpoint that
//! follows it re-ships a batch without duplicating a row. While PostgreSQL is slow or gone, records
//! wait in the journal and the shipper retries with backoff; the reply path never notices.
//!
//! It also keeps the journal bounded: shipped segments are deleted once they are older than the
//! replay window, or at once when the journal is over its disk limit.
//!
//! With [`Commit::Deferred`] (the embedded cluster's default) a batch's `COMMIT` does not wait for
//! PostgreSQL's disk: its rows are visible at once (readers who wait for their writes see them),
//! but the journal's checkpoint moves past it only once PostgreSQL's flushed WAL position has
//! reached the commit's ([`Unflushed`]). Should PostgreSQL fail before (a crash loses what its WAL
//! writer had not flushed), the shipper goes back to the checkpoint and ships again from there;
//! the rows that did survive take the staging path, so none is lost or doubled.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::journal::{Cursor, Journal};
use super::memory::Held;
use super::ship::{refuses_records, Batch, Commit, Deferred, Steps};
use super::{now_ms, Record, ShipStatus};
use crate::db::store::Store;
use crate::metrics::Metrics;

/// Most records shipped in one transaction.
pub const BATCH: usize = 500;

/// Most records shipped in one transaction while the shipper is behind by more than four such
/// batches (a catch-up) and no record arrived since its last round: fewer transactions per row.
/// Each costs the catch-up about 3.5 ms besides its rows (its round trips, the commit, the WAL
/// positions after it), during which PostgreSQL waits; 5,000 against 2,000 shipped about 13% more
/// rows a second (docs/benchmarks.md, session 20). While callbacks are being answered it ships
/// [`BATCH`]: a transaction of thousands of rows writes several MiB of WAL, and the journal's
/// flush (which every reply waits for) waits behind it on a shared disk.
pub const CATCH_UP_BATCH: usize = 5000;

/// Records per transaction, given how far behind the shipper is, whether records arrived since
/// its last round, and the catch-up size ([`CATCH_UP_BATCH`] by default).
fn batch_for(behind: u64, arriving: bool, catch_up_batch: usize) -> usize {
    if !arriving && behind > 4 * catch_up_batch as u64 {
        catch_up_batch
    } else {
        BATCH
    }
}

/// How long the shipper lets records gather once the first arrives after it caught up. At 1,000
/// callbacks/s this is one PostgreSQL transaction per 100 records instead of one per record: fewer
/// commit flushes competing with the journal's on a shared disk, less CPU per row.
const LINGER: Duration = Duration::from_millis(100);

/// Longest one batch may take. A connection that hangs (a network partition, a stopped server)
/// is dropped after it and the batch retried on a new one, so shipping resumes when PostgreSQL
/// is back.
const SHIP_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest the migrations may take before the shipper gives up on the connection and tries again.
/// Not [`SHIP_TIMEOUT`]: a migration that rebuilds an index of `callbacks` (0017) takes time in
/// proportion to the table (6.4 s for 10 million rows in memory on the development machine; a
/// table of a hundred million, or one read from the disk, takes minutes), and one cut off at 30 s
/// would be rolled back and started again for ever, shipping nothing. Records wait in the journal
/// meanwhile, as they do while PostgreSQL is away.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(3600);

/// How the shipper runs.
#[derive(Debug, Clone)]
pub struct ShipperConfig {
    /// Shipped segments are kept this long (the replay window), unless over the disk limit.
    pub retention: Duration,
    /// Journal size above which shipped segments are deleted at once and readiness warns.
    pub disk_limit_bytes: u64,
    /// Longest the shipper holds back while the reply path is saturated ([`Pacer`]); zero ships
    /// whatever the load.
    pub defer_max: Duration,
    /// How a batch commits (see the module documentation).
    pub commit: Commit,
}

/// Batches committed but maybe not yet on PostgreSQL's disk ([`Commit::Deferred`]), oldest first:
/// the journal's checkpoint moves past each once PostgreSQL has flushed its commit.
#[derive(Debug, Default)]
struct Unflushed {
    /// (WAL position that makes it durable, the batch's `through`); a position of 0 needs no
    /// flush of its own (a batch committed durably, or records set aside) but waits its turn.
    pending: VecDeque<(u64, u64)>,
}

impl Unflushed {
    fn push(&mut self, lsn: u64, through: u64) {
        self.pending.push_back((lsn, through));
    }

    /// Whether PostgreSQL crashed since the pending commits (which it may have lost): the
    /// shipper's mark is gone ([`Deferred::intact`]).
    fn crashed(&self, at: &Deferred) -> bool {
        !self.pending.is_empty() && !at.intact
    }

    /// Takes the batches durable at `flushed`; returns the last one's `through`.
    fn settle(&mut self, flushed: u64) -> Option<u64> {
        let mut through = None;
        while let Some(&(lsn, t)) = self.pending.front() {
            if lsn > flushed {
                break;
            }
            through = Some(t);
            self.pending.pop_front();
        }
        through
    }

    fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Forgets every pending batch; returns how many there were (for the log).
    fn clear(&mut self) -> usize {
        let n = self.pending.len();
        self.pending.clear();
        n
    }
}

/// How fast to ship while callbacks are answered: [`super::pacer`].
pub use super::pacer::Pacer;

/// Starts the shipper on a thread of its own, at a lower CPU priority than the reply path
/// (nice [`crate::db::cluster::BACKGROUND_NICE`]): under load callers are answered first and records
/// wait in the journal. The receiver completes when the shipper has finished.
pub fn spawn(
    journal: Journal,
    store: Store,
    metrics: Arc<Metrics>,
    status: Arc<ShipStatus>,
    config: ShipperConfig,
    stop: watch::Receiver<Option<std::time::Instant>>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("svamlgate-shipper".into())
        .spawn(move || {
            lower_priority();
            // The journal reader's blocking thread ([`ReadAhead`]) gets the same priority.
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_start(lower_priority)
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "could not start the shipper's runtime; records stay in the journal");
                    return;
                }
            };
            runtime.block_on(run(journal, store, metrics, status, config, stop));
            let _ = done_tx.send(());
        })?;
    Ok(done_rx)
}

/// How the shipper is tuned; process-wide, set before it starts ([`set_tuning`]). The defaults
/// are what svamlgate runs with; the other settings exist to measure against them
/// (`catch_up_rows_per_second`, docs/benchmarks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Read, decode and encode the next batch while PostgreSQL writes this one.
    pub read_ahead: bool,
    /// Most records in one transaction while the shipper is behind by more than four such
    /// batches ([`BATCH`] otherwise).
    pub catch_up_batch: usize,
}

impl Tuning {
    /// What svamlgate runs with.
    pub const DEFAULT: Tuning = Tuning {
        read_ahead: true,
        catch_up_batch: CATCH_UP_BATCH,
    };
}

static TUNING: std::sync::Mutex<Tuning> = std::sync::Mutex::new(Tuning::DEFAULT);

/// Sets how shippers started from now on are tuned (measurements only; see [`Tuning`]).
pub fn set_tuning(t: Tuning) {
    *TUNING.lock().unwrap_or_else(|p| p.into_inner()) = Tuning {
        catch_up_batch: t.catch_up_batch.max(1),
        ..t
    };
}

fn tuning() -> Tuning {
    *TUNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lowers this thread's CPU priority to [`crate::db::cluster::BACKGROUND_NICE`].
fn lower_priority() {
    // SAFETY: gettid and setpriority have no memory-safety preconditions; on Linux a thread id as
    // PRIO_PROCESS target changes this thread only.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(
            libc::PRIO_PROCESS,
            u32::try_from(tid).unwrap_or(0),
            crate::db::cluster::BACKGROUND_NICE,
        );
    }
}

/// Runs until `stop` turns true and the journal is drained, or the grace period after it ends.
///
/// Two stages overlap ([`ReadAhead`]): while PostgreSQL writes batch N (one transaction), a
/// blocking thread reads batch N+1 from the journal, decodes it and encodes its COPY payloads. At
/// most one batch waits ahead. Batches are written one at a time, in journal order, and the
/// journal's checkpoint moves past a batch only once it is committed: a batch that fails is
/// retried (with backoff) before the one read after it is written.
pub async fn run(
    journal: Journal,
    store: Store,
    metrics: Arc<Metrics>,
    status: Arc<ShipStatus>,
    config: ShipperConfig,
    mut stop: watch::Receiver<Option<std::time::Instant>>,
) {
    if migrate_when_possible(&store, &status, &mut stop).await {
        status.db_ok.store(true, Ordering::Release);
    }
    let mut shipper = Shipper::new(journal, store, metrics, status, config, stop);
    while shipper.round().await == Round::Again {}
}

/// Whether the shipper goes on.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    Again,
    Done,
}

/// A batch read from the journal, decoded and encoded: ready for PostgreSQL.
struct Prepared {
    /// The journal seq of each record of `batch`.
    seqs: Vec<u64>,
    batch: Batch,
    /// Every record up to this seq is in `batch` or set aside (undecodable): once `batch` is
    /// committed, the journal's checkpoint may move here.
    through: u64,
}

/// The journal side of the shipper: a cursor, and what it takes to read, decode and encode a
/// batch. Runs on a blocking thread when it reads ahead ([`ReadAhead`]), else on the shipper's.
struct Reader {
    journal: Journal,
    metrics: Arc<Metrics>,
    cursor: Cursor,
}

impl Reader {
    /// Up to `max` records after the cursor, not past `durable`.
    fn prepare(&mut self, durable: u64, max: usize) -> Prepared {
        let started = Instant::now();
        let before = self.cursor.after;
        let read = self.cursor.read(&self.journal, durable, max);
        self.report_cuts();
        let read_at = Instant::now();
        let (seqs, records) = match read {
            Ok(raw) => self.decode(raw),
            Err(e) => {
                // The cursor may have moved past records it did not return: read them again.
                tracing::error!(error = %e, "could not read the journal");
                self.cursor = Cursor::new(before);
                (Vec::new(), Vec::new())
            }
        };
        let decoded_at = Instant::now();
        let batch = Batch::new(records);
        self.spent("read", read_at - started);
        self.spent("decode", decoded_at - read_at);
        self.spent("encode", decoded_at.elapsed());
        Prepared {
            seqs,
            batch,
            through: self.cursor.after,
        }
    }

    /// Decodes what was read; an undecodable record is set aside, or, when it cannot be, read
    /// again later (the cursor goes back before it, and nothing after it is taken).
    fn decode(&mut self, raw: Vec<(u64, Vec<u8>)>) -> (Vec<u64>, Vec<Record>) {
        let mut seqs = Vec::with_capacity(raw.len());
        let mut records = Vec::with_capacity(raw.len());
        for (seq, payload) in raw {
            match super::decode(&payload) {
                Ok(r) => {
                    seqs.push(seq);
                    records.push(r);
                }
                Err(e) => {
                    if !set_aside_undecodable(&self.journal, &self.metrics, seq, &payload, &e) {
                        // Not kept anywhere yet: read it again later, never skip it.
                        self.cursor = Cursor::new(seq - 1);
                        break;
                    }
                }
            }
        }
        (seqs, records)
    }

    fn report_cuts(&mut self) {
        for cut in self.cursor.take_cuts() {
            self.metrics
                .add("svamlgate_journal_cut_bytes_total", &[], cut.bytes());
            self.metrics
                .add("svamlgate_journal_cut_records_total", &[], cut.records());
            tracing::error!(
                segment = %cut.segment.display(),
                from_offset = cut.from,
                to_offset = cut.to,
                records_lost = cut.records(),
                first_lost_seq = cut.lost.map(|l| l.0),
                last_lost_seq = cut.lost.map(|l| l.1),
                kept_in = ?cut.kept_in,
                "journal: unreadable bytes in a written segment were skipped; reading went on at the next intact record"
            );
        }
    }

    fn spent(&self, stage: &str, d: Duration) {
        spent(&self.metrics, stage, d);
    }
}

/// Adds `d` to the wall time the shipper spent in `stage`.
fn spent(metrics: &Metrics, stage: &str, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    metrics.add(
        "svamlgate_ship_stage_microseconds_total",
        &[("stage", stage)],
        us,
    );
}

/// The reader stage and the one batch it may have in preparation.
struct ReadAhead {
    /// The reader, when no preparation holds it.
    reader: Option<Reader>,
    ahead: Option<tokio::task::JoinHandle<(Reader, Prepared)>>,
    /// `through` of the last batch handed out: where a lost reader starts again.
    handed: u64,
    journal: Journal,
    metrics: Arc<Metrics>,
}

impl ReadAhead {
    fn new(journal: Journal, metrics: Arc<Metrics>) -> ReadAhead {
        let handed = journal.shipped();
        let reader = Reader {
            journal: journal.clone(),
            metrics: metrics.clone(),
            cursor: Cursor::new(handed),
        };
        ReadAhead {
            reader: Some(reader),
            ahead: None,
            handed,
            journal,
            metrics,
        }
    }

    /// Starts preparing the next batch on a blocking thread, unless one is being prepared.
    fn start(&mut self, durable: u64, max: usize) -> bool {
        let Some(mut reader) = self.reader.take() else {
            return false;
        };
        self.ahead = Some(tokio::task::spawn_blocking(move || {
            let prepared = reader.prepare(durable, max);
            (reader, prepared)
        }));
        true
    }

    /// The next batch: the one prepared ahead, or one prepared now, on this thread (as at a
    /// trickle: no hand-over between threads on the way of a reader waiting for its writes).
    async fn next(&mut self, durable: u64, max: usize) -> Prepared {
        let waiting = Instant::now();
        let joined = match (self.ahead.take(), self.reader.as_mut()) {
            (Some(handle), _) => handle.await,
            (None, Some(reader)) => {
                let prepared = reader.prepare(durable, max);
                self.handed = prepared.through;
                return prepared;
            }
            (None, None) => return self.empty(),
        };
        spent(&self.metrics, "wait", waiting.elapsed());
        match joined {
            Ok((reader, prepared)) => {
                self.reader = Some(reader);
                self.handed = prepared.through;
                prepared
            }
            Err(e) => {
                tracing::error!(error = %e, "the shipper's journal reader failed; reading again from the last batch");
                self.reader = Some(Reader {
                    journal: self.journal.clone(),
                    metrics: self.metrics.clone(),
                    cursor: Cursor::new(self.handed),
                });
                self.empty()
            }
        }
    }

    fn empty(&self) -> Prepared {
        Prepared {
            seqs: Vec::new(),
            batch: Batch::new(Vec::new()),
            through: self.handed,
        }
    }
}

/// Retry timing of the memory queue.
struct MemoryRetry {
    backoff: Duration,
    at: tokio::time::Instant,
}

/// The shipper's state between rounds.
struct Shipper {
    journal: Journal,
    store: Store,
    metrics: Arc<Metrics>,
    status: Arc<ShipStatus>,
    config: ShipperConfig,
    stop: watch::Receiver<Option<std::time::Instant>>,
    durable: super::journal::Durable,
    read_ahead: ReadAhead,
    tuning: Tuning,
    /// The batch being written (kept until it is committed).
    current: Option<Prepared>,
    backoff: Duration,
    memory: MemoryRetry,
    last_housekeeping: Instant,
    /// Housekeeping started after a committed batch, on a blocking thread ([`Shipper::housekeeping_aside`]).
    housekeeper: Option<tokio::task::JoinHandle<()>>,
    pacer: Pacer,
    /// The durable position at the start of the last round.
    durable_last_round: u64,
    /// Whether records were journaled between the last two rounds (callbacks being answered).
    arriving: bool,
    /// Batches committed, not yet known to be on PostgreSQL's disk.
    unflushed: Unflushed,
}

impl Shipper {
    fn new(
        journal: Journal,
        store: Store,
        metrics: Arc<Metrics>,
        status: Arc<ShipStatus>,
        config: ShipperConfig,
        stop: watch::Receiver<Option<std::time::Instant>>,
    ) -> Shipper {
        Shipper {
            durable: journal.durable(),
            read_ahead: ReadAhead::new(journal.clone(), metrics.clone()),
            tuning: tuning(),
            current: None,
            backoff: Duration::from_millis(50),
            memory: MemoryRetry {
                backoff: Duration::from_millis(50),
                at: tokio::time::Instant::now(),
            },
            last_housekeeping: Instant::now(),
            housekeeper: None,
            pacer: Pacer::new(config.defer_max),
            durable_last_round: *journal.durable().borrow(),
            arriving: false,
            unflushed: Unflushed::default(),
            journal,
            store,
            metrics,
            status,
            config,
            stop,
        }
    }

    /// One round: the memory queue, then one batch of the journal (or a wait for records).
    async fn round(&mut self) -> Round {
        let durable = *self.durable.borrow_and_update();
        self.status.durable.store(durable, Ordering::Release);
        self.arriving = durable != self.durable_last_round;
        self.durable_last_round = durable;
        let stopping = *self.stop.borrow();
        // Records the journal could not take come first: they are durable nowhere yet.
        self.drain_memory_when_due().await;
        if self.current.is_none() {
            if self.holds_back(durable, stopping).await {
                return Round::Again;
            }
            let prepared = self
                .read_ahead
                .next(durable, self.batch_size(durable))
                .await;
            if prepared.seqs.is_empty() {
                return self
                    .nothing_to_ship(prepared.through, durable, stopping)
                    .await;
            }
            self.current = Some(prepared);
        }
        if self.tuning.read_ahead && self.read_ahead.handed < durable {
            let max = self.batch_size(durable);
            if self.read_ahead.start(durable, max) {
                self.metrics.inc("svamlgate_ship_read_ahead_total", &[]);
            }
        }
        match self.write_current().await {
            Ok(deferred) => {
                let waited = deferred.is_none();
                self.committed(deferred);
                if waited {
                    // A commit that waited for the disk flushed every earlier one with it.
                    self.settle_unflushed().await;
                }
                Round::Again
            }
            Err(e) => self.failed(e, stopping).await,
        }
    }

    /// Records per transaction: more while far behind and no callback is being answered.
    fn batch_size(&self, durable: u64) -> usize {
        let behind = durable.saturating_sub(self.read_ahead.handed);
        batch_for(behind, self.arriving, self.tuning.catch_up_batch)
    }

    /// Holds the next batch back while callers queue for the CPU ([`Pacer`]) and the journal has
    /// room ([`super::pacer::room_to_hold_back`]); true when it did.
    async fn holds_back(&mut self, durable: u64, stopping: Option<std::time::Instant>) -> bool {
        let hold = self.read_ahead.handed < durable
            && stopping.is_none()
            && self.may_hold_back()
            && self.pacer.saturated(&self.status).await;
        if hold {
            self.metrics.inc("svamlgate_ship_deferrals_total", &[]);
            // Up to 200 ms, but no longer than the journal has room: under a small
            // SVAMLGATE_JOURNAL_MAX_BYTES a burst fills the rest of it in less than that, and
            // what neither the journal nor memory can take is dropped.
            let until = Instant::now() + Duration::from_millis(200);
            while Instant::now() < until && self.stop.borrow().is_none() && self.may_hold_back() {
                pause(Duration::from_millis(10), &mut self.stop).await;
            }
        }
        hold
    }

    /// Whether nothing asks the shipper to go on: no reader waits for its writes, and the journal
    /// has room ([`super::pacer::room_to_hold_back`]).
    fn may_hold_back(&self) -> bool {
        !self.status.urged()
            && super::pacer::room_to_hold_back(
                self.journal.unshipped_bytes(),
                self.config.disk_limit_bytes,
                self.status.memory.is_empty(),
            )
    }

    async fn drain_memory_when_due(&mut self) {
        if self.status.memory.is_empty() || tokio::time::Instant::now() < self.memory.at {
            return;
        }
        if drain_memory(&self.journal, &self.store, &self.metrics, &self.status).await {
            self.memory.backoff = Duration::from_millis(50);
        } else {
            self.memory.at = tokio::time::Instant::now() + self.memory.backoff;
            self.memory.backoff = (self.memory.backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Writes the current batch; a batch PostgreSQL refuses is shipped record by record.
    async fn write_current(&mut self) -> Result<Option<Deferred>, sqlx::Error> {
        let Some(p) = &self.current else {
            return Ok(None);
        };
        let mut steps = Steps::default();
        // Deferred only while the shipper is behind (full batches). A trickle's batch waits for
        // the disk (it costs no caller anything, and moves the checkpoint at once), as does any
        // batch near the journal's limit or with records held in memory: the journal needs its
        // checkpoint to make room.
        let pressed = !self.status.memory.is_empty() || near_limit(&self.journal, &self.config);
        let commit = if pressed || p.seqs.len() < BATCH {
            Commit::Flushed
        } else {
            self.config.commit
        };
        let mut result = tokio::time::timeout(
            SHIP_TIMEOUT,
            self.store.ship_batch(&p.batch, &mut steps, commit),
        )
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        spent(&self.metrics, "copy", steps.copy);
        spent(&self.metrics, "insert", steps.insert);
        spent(&self.metrics, "commit", steps.commit);
        if result.as_ref().is_err_and(refuses_records) {
            // PostgreSQL refused the batch itself (not a lost connection): find the record it
            // refuses, ship the others, and set that one aside rather than block the journal.
            if let Err(e) = &result {
                tracing::warn!(error = %e, "a batch was refused; shipping its records one by one");
            }
            let pending = p.seqs.iter().copied().zip(p.batch.records());
            result = ship_one_by_one(&self.store, &self.journal, &self.metrics, pending)
                .await
                .map(|()| None);
        }
        result
    }

    /// The current batch is committed: its rows are visible, and the journal's checkpoint moves
    /// past it once it is durable (at once unless its commit was deferred).
    fn committed(&mut self, deferred: Option<Deferred>) {
        let Some(p) = self.current.take() else {
            return;
        };
        let rewound = deferred.is_some_and(|d| self.unflushed.crashed(&d));
        if rewound {
            // Shipped again from the checkpoint, this batch with the rest (counted then).
            self.ship_again();
        } else {
            self.metrics
                .add("svamlgate_shipped_records_total", &[], p.seqs.len() as u64);
            match deferred {
                Some(d) => self.mark_shipped(p.through, d.lsn, d.flushed),
                None => self.mark_shipped(p.through, 0, 0),
            }
        }
        if !self.status.db_ok.swap(true, Ordering::AcqRel) {
            tracing::info!("PostgreSQL accepts records again; shipping the journal");
        }
        self.set_error(None);
        self.backoff = Duration::from_millis(50);
        if self.last_housekeeping.elapsed() > Duration::from_secs(1) {
            self.housekeeping_aside();
        }
    }

    /// Everything through `through` is in PostgreSQL (or set aside). The journal's checkpoint
    /// moves past it once PostgreSQL's flushed WAL position (`flushed` when last read) reaches
    /// `lsn` (0: durable already), after the batches still waiting for their flush, if any.
    fn mark_shipped(&mut self, through: u64, lsn: u64, flushed: u64) {
        self.status.set_shipped(through);
        self.unflushed.push(lsn, through);
        self.settle(flushed);
    }

    /// Moves the journal's checkpoint past the deferred batches durable at `flushed`.
    fn settle(&mut self, flushed: u64) {
        if let Some(through) = self.unflushed.settle(flushed) {
            self.checkpoint(through);
        }
    }

    /// Asks PostgreSQL how far its WAL is flushed, when batches wait for it.
    async fn settle_unflushed(&mut self) {
        if self.unflushed.is_empty() {
            return;
        }
        let Commit::Deferred(mark) = self.config.commit else {
            return;
        };
        if let Ok(Ok(at)) = tokio::time::timeout(SHIP_TIMEOUT, self.store.wal_positions(mark)).await
        {
            if self.unflushed.crashed(&at) {
                self.ship_again();
            } else {
                self.settle(at.flushed);
            }
        }
    }

    /// PostgreSQL crashed before it reported the pending commits flushed, and may have lost
    /// them: read the journal again from the checkpoint (what survived takes the staging path).
    fn ship_again(&mut self) {
        let batches = self.unflushed.clear();
        tracing::info!(
            batches,
            "PostgreSQL crashed before it confirmed the last commits on disk; shipping again from the journal's checkpoint"
        );
        self.metrics.inc("svamlgate_ship_rewinds_total", &[]);
        self.current = None;
        self.read_ahead = ReadAhead::new(self.journal.clone(), self.metrics.clone());
        self.status.set_shipped(self.journal.shipped());
    }

    fn checkpoint(&self, through: u64) {
        if let Err(e) = self.journal.mark_shipped(through) {
            tracing::warn!(error = %e, "could not write the journal checkpoint (the batch may be shipped again, harmlessly)");
        }
    }

    fn set_error(&self, e: Option<String>) {
        *self
            .status
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = e;
    }

    fn housekeeping(&mut self) {
        housekeeping(&self.journal, &self.metrics, &self.status, &self.config);
        self.last_housekeeping = Instant::now();
    }

    /// [`housekeeping`] on a blocking thread, while the shipper goes on with the next batch: each
    /// shipped segment it deletes can take milliseconds (a filesystem mounted with `discard`
    /// waits for the device), which on the shipper's own thread stop the catch-up's writes
    /// (sampled once: that thread in block I/O for a quarter of a catch-up, a discard inside
    /// `unlink` on its stack; docs/benchmarks.md, session 21). At most one runs; a round still
    /// running is not doubled.
    fn housekeeping_aside(&mut self) {
        if self.housekeeper.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let (journal, metrics, status, config) = (
            self.journal.clone(),
            self.metrics.clone(),
            self.status.clone(),
            self.config.clone(),
        );
        self.housekeeper = Some(tokio::task::spawn_blocking(move || {
            housekeeping(&journal, &metrics, &status, &config);
        }));
        self.last_housekeeping = Instant::now();
    }

    /// The current batch failed (it is kept, and retried after a backoff).
    async fn failed(&mut self, e: sqlx::Error, stopping: Option<std::time::Instant>) -> Round {
        self.metrics.inc("svamlgate_ship_failures_total", &[]);
        if self.status.db_ok.swap(false, Ordering::AcqRel) {
            tracing::error!(error = %e, lag = self.status.lag_records(), "PostgreSQL does not accept records; they wait in the journal");
        } else {
            tracing::debug!(error = %e, "shipping still failing");
        }
        self.set_error(Some(e.to_string()));
        // Commits waiting for their flush stay pending: whether PostgreSQL lost them is known
        // once it answers again (a restart sends the shipper back to the checkpoint). While it
        // answers (and refuses this batch), the earlier ones settle.
        if !self.unflushed.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.settle_unflushed()).await;
        }
        // Whoever waits for shipping learns that it fails.
        self.status.shipped_moved.notify_waiters();
        if stopping.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
            self.drop_memory_at_shutdown("shutdown: records held in memory are lost");
            tracing::warn!(
                left = self.status.lag_records(),
                "shutdown: records not shipped stay in the journal and are shipped at the next start"
            );
            return Round::Done;
        }
        self.housekeeping();
        pause(self.backoff, &mut self.stop).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(2));
        Round::Again
    }

    /// Counts and logs the records still in memory at shutdown (lost).
    fn drop_memory_at_shutdown(&self, message: &'static str) {
        let left = self.status.memory.len();
        if left > 0 {
            self.metrics.add(
                "svamlgate_records_dropped_total",
                &[("kind", "shutdown")],
                left,
            );
            tracing::error!(records = left, "{message}");
        }
    }

    /// Nothing was read: everything durable is shipped (or set aside). Waits for records, or
    /// ends at shutdown.
    async fn nothing_to_ship(
        &mut self,
        through: u64,
        durable: u64,
        stopping: Option<std::time::Instant>,
    ) -> Round {
        let moved = through > self.status.shipped.load(Ordering::Acquire);
        if moved {
            // Only undecodable records were read, and they are set aside: move on.
            self.mark_shipped(through, 0, 0);
        }
        self.settle_unflushed().await;
        if through < durable && moved {
            return Round::Again;
        }
        // Caught up; or stuck before a record that could not be set aside (read again after
        // the wait below, never skipped).
        if through >= durable && self.status.memory.is_empty() {
            self.status
                .caught_up_at_ms
                .store(now_ms(), Ordering::Release);
        }
        self.housekeeping();
        if let Some(deadline) = stopping {
            let flushed = self.unflushed.is_empty();
            if (self.status.memory.is_empty() && flushed) || std::time::Instant::now() >= deadline {
                self.drop_memory_at_shutdown(
                    "shutdown: records held in memory (the journal could not take them, PostgreSQL did not) are lost",
                );
                return Round::Done;
            }
            pause(self.memory.backoff, &mut self.stop).await;
            return Round::Again;
        }
        self.wait_for_records().await;
        Round::Again
    }

    /// Waits for a new durable record (then lets a batch gather), a reader, shutdown, or a
    /// record held in memory; at most a second.
    async fn wait_for_records(&mut self) {
        let status = &self.status;
        tokio::select! {
            _ = self.durable.changed() => {
                // Let a batch gather: one transaction (and one commit flush on the disk the
                // journal shares) per LINGER at a steady trickle, not one per callback; a
                // reader waiting for its writes cuts it short.
                if !status.urged() {
                    tokio::select! {
                        _ = pause(LINGER, &mut self.stop) => {}
                        _ = status.urge.notified() => {}
                    }
                }
            }
            _ = status.urge.notified() => {}
            _ = self.stop.changed() => {}
            _ = status.memory.pushed() => {}
            // Soon again while commits wait for PostgreSQL's flush (the checkpoint waits too).
            _ = tokio::time::sleep(if self.unflushed.is_empty() { Duration::from_secs(1) } else { LINGER }) => {}
        }
    }
}

/// Empties the memory queue as far as it can: into PostgreSQL when it takes the records, else back
/// into the journal. Returns false when neither took anything (retry later).
async fn drain_memory(
    journal: &Journal,
    store: &Store,
    metrics: &Metrics,
    status: &ShipStatus,
) -> bool {
    let held = status.memory.take(BATCH);
    if held.is_empty() {
        return true;
    }
    let taken = (
        held.len(),
        held.iter().map(|h| h.payload.len() as u64).sum::<u64>(),
    );
    let (decoded, mut left) = decode_held(journal, metrics, held);
    if ship_held(store, journal, metrics, status, &decoded, &mut left).await {
        metrics.add("svamlgate_shipped_records_total", &[], decoded.len() as u64);
        status.db_ok.store(true, Ordering::Release);
        *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        settle_held(status, taken, left);
        return true;
    }
    // PostgreSQL did not take them: back into the journal (one group commit for all), once it works.
    let journaled = journal_held(journal, metrics, status, decoded, &mut left).await;
    settle_held(status, taken, left);
    journaled > 0
}

/// Decodes records held in memory; an undecodable one is set aside (or, when it cannot be,
/// returned in the second list, to be held again).
fn decode_held(
    journal: &Journal,
    metrics: &Metrics,
    held: Vec<Held>,
) -> (Vec<(Held, Record)>, Vec<Held>) {
    let mut decoded: Vec<(Held, Record)> = Vec::with_capacity(held.len());
    let mut left: Vec<Held> = Vec::new();
    for h in held {
        match super::decode(&h.payload) {
            Ok(r) => decoded.push((h, r)),
            Err(e) => {
                let name = format!("memory-{}.record", uuid::Uuid::now_v7());
                if !set_aside(journal, &name, &h.payload) {
                    left.push(h);
                    continue;
                }
                metrics.inc(
                    "svamlgate_unshippable_records_total",
                    &[("kind", "undecodable")],
                );
                tracing::error!(error = %e, file = %name, "a record held in memory cannot be decoded; it is kept byte for byte in journal/unshippable/");
            }
        }
    }
    (decoded, left)
}

/// Ships records held in memory in one transaction, or one by one when PostgreSQL refuses the
/// batch (those it refuses on their own are set aside; kept nowhere, they go to `left`). True when
/// all are in PostgreSQL or set aside.
async fn ship_held(
    store: &Store,
    journal: &Journal,
    metrics: &Metrics,
    status: &ShipStatus,
    decoded: &[(Held, Record)],
    left: &mut Vec<Held>,
) -> bool {
    let records: Vec<&Record> = decoded.iter().map(|(_, r)| r).collect();
    let shipped = tokio::time::timeout(SHIP_TIMEOUT, store.ship(&records))
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
    match shipped {
        Ok(()) => true,
        Err(e) if refuses_records(&e) => {
            ship_held_one_by_one(store, journal, metrics, decoded, left).await
        }
        Err(e) => {
            status.db_ok.store(false, Ordering::Release);
            *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            false
        }
    }
}

/// [`ship_held`] record by record: finds the ones PostgreSQL refuses; the rest go in.
async fn ship_held_one_by_one(
    store: &Store,
    journal: &Journal,
    metrics: &Metrics,
    decoded: &[(Held, Record)],
    left: &mut Vec<Held>,
) -> bool {
    for (h, r) in decoded {
        match store.ship(&[r]).await {
            Ok(()) => {}
            Err(e) if refuses_records(&e) => {
                let name = format!("memory-{}.json", uuid::Uuid::now_v7());
                let kept = super::encode(r)
                    .map(|p| set_aside(journal, &name, &p))
                    .unwrap_or(false);
                metrics.inc("svamlgate_unshippable_records_total", &[("kind", r.kind())]);
                tracing::error!(error = %e, file = %name, kept, "PostgreSQL refuses a record held in memory; it is kept in journal/unshippable/");
                if !kept {
                    left.push(h.clone());
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Appends records held in memory to the journal (one group commit for all); those it does not
/// take go to `left`, or are dropped (counted) when even the memory queue cannot take them back.
/// Returns how many the journal took.
async fn journal_held(
    journal: &Journal,
    metrics: &Metrics,
    status: &ShipStatus,
    decoded: Vec<(Held, Record)>,
    left: &mut Vec<Held>,
) -> usize {
    let appends = decoded.into_iter().map(|(h, _)| {
        let kind = h.kind;
        async move { (kind, journal.append_or_return(h.payload).await) }
    });
    let mut journaled = 0;
    for (kind, result) in futures_util::future::join_all(appends).await {
        match result {
            Ok(seq) => {
                journaled += 1;
                status.durable.fetch_max(seq, Ordering::AcqRel);
            }
            Err(rejected) if !rejected.payload.is_empty() => left.push(Held {
                payload: rejected.payload,
                kind,
            }),
            Err(_) => {
                status.memory.note_dropped();
                metrics.inc("svamlgate_records_dropped_total", &[("kind", kind)]);
            }
        }
    }
    journaled
}

/// Settles what [`drain_memory`] took (`taken`: records, bytes) and puts `left` back.
fn settle_held(status: &ShipStatus, taken: (usize, u64), left: Vec<Held>) {
    let left_bytes: u64 = left.iter().map(|h| h.payload.len() as u64).sum();
    status
        .memory
        .settle(taken.0 - left.len(), taken.1 - left_bytes);
    status.memory.put_back(left);
}

/// Keeps bytes in `journal/unshippable/<name>`, durably; false when they could not be kept.
fn set_aside(journal: &Journal, name: &str, bytes: &[u8]) -> bool {
    use std::io::Write as _;
    let dir = journal.dir().join("unshippable");
    let path = dir.join(name);
    let saved = std::fs::create_dir_all(&dir)
        .and_then(|()| {
            let mut f = std::fs::File::create(&path)?;
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::File::open(&dir)?.sync_all());
    match saved {
        Ok(()) => true,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            tracing::error!(error = %e, path = %path.display(), "could not keep a record in journal/unshippable/; it is retried");
            false
        }
    }
}

/// A journal record with a good checksum that this release cannot decode (a newer release wrote
/// it, or its JSON is not a record): kept byte for byte as `journal/unshippable/<seq>.record`,
/// counted and logged with its seq. False when it could not be kept (it is read again later).
fn set_aside_undecodable(
    journal: &Journal,
    metrics: &Metrics,
    seq: u64,
    payload: &[u8],
    e: &super::Undecodable,
) -> bool {
    let name = format!("{seq:020}.record");
    if !set_aside(journal, &name, payload) {
        return false;
    }
    metrics.inc(
        "svamlgate_unshippable_records_total",
        &[("kind", "undecodable")],
    );
    metrics.inc("svamlgate_journal_unreadable_records_total", &[]);
    tracing::error!(seq, error = %e, file = %journal.dir().join("unshippable").join(&name).display(),
        "a journal record cannot be decoded; it is kept byte for byte in journal/unshippable/ and not shipped");
    true
}

/// Applies the migrations, retrying until PostgreSQL takes them; false when asked to stop first.
async fn migrate_when_possible(
    store: &Store,
    status: &ShipStatus,
    stop: &mut watch::Receiver<Option<std::time::Instant>>,
) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        let run = tokio::time::timeout(MIGRATION_TIMEOUT, crate::db::MIGRATOR.run(store.pool()));
        let migrated = tokio::select! {
            r = run => r.unwrap_or_else(|_| {
                Err(sqlx::migrate::MigrateError::Execute(
                    sqlx::Error::PoolTimedOut,
                ))
            }),
            // A long migration does not hold up a shutdown: dropped, it is rolled back and
            // applied again at the next start.
            () = stopping(stop) => return false,
        };
        match migrated {
            Ok(()) => {
                *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "migrations not applied yet; records wait in the journal");
                *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                if stop.borrow().is_some() {
                    return false;
                }
                pause(backoff, stop).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Returns once shutdown has begun.
async fn stopping(stop: &mut watch::Receiver<Option<std::time::Instant>>) {
    if stop.wait_for(Option::is_some).await.is_err() {
        // No sender any more: no shutdown will be asked for this way.
        std::future::pending::<()>().await;
    }
}

/// Sleeps for `d`, or until shutdown begins.
async fn pause(d: Duration, stop: &mut watch::Receiver<Option<std::time::Instant>>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

/// Ships the records of a refused batch one by one; each record PostgreSQL refuses on its own is
/// set aside (or, when it cannot be kept, the batch fails and is retried).
async fn ship_one_by_one(
    store: &Store,
    journal: &Journal,
    metrics: &Metrics,
    pending: impl Iterator<Item = (u64, &Record)>,
) -> Result<(), sqlx::Error> {
    for (seq, record) in pending {
        match store.ship(&[record]).await {
            Ok(()) => {}
            Err(e) if refuses_records(&e) => {
                let name = format!("{seq:020}.json");
                let saved = super::encode(record)
                    .map(|bytes| set_aside(journal, &name, &bytes))
                    .unwrap_or(false);
                if !saved {
                    // Kept nowhere: do not move past it; the batch is retried.
                    return Err(e);
                }
                metrics.inc(
                    "svamlgate_unshippable_records_total",
                    &[("kind", record.kind())],
                );
                tracing::error!(seq, error = %e, path = %journal.dir().join("unshippable").join(&name).display(), "PostgreSQL refuses a journal record; it is kept in a file instead");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether the journal is near its disk limit or over it ([`super::journal::level`]).
fn near_limit(journal: &Journal, config: &ShipperConfig) -> bool {
    super::journal::level(journal.bytes(), config.disk_limit_bytes) != "ok"
}

fn housekeeping(journal: &Journal, metrics: &Metrics, status: &ShipStatus, config: &ShipperConfig) {
    let over = near_limit(journal, config);
    let keep_after = if over {
        None
    } else {
        SystemTime::now().checked_sub(config.retention)
    };
    let deleted = journal.delete_shipped(keep_after);
    if deleted > 0 {
        metrics.add(
            "svamlgate_journal_segments_deleted_total",
            &[],
            deleted as u64,
        );
    }
    let near = near_limit(journal, config);
    if near && journal.shipped() >= *journal.durable().borrow() {
        // Everything is shipped: close the active segment so that it can go at the next round.
        journal.request_roll();
    }
    if near {
        metrics.inc("svamlgate_journal_near_limit_total", &[]);
    }
    if status.near_limit.swap(near, Ordering::AcqRel) != near {
        if near {
            tracing::warn!(
                bytes = journal.bytes(),
                limit = config.disk_limit_bytes,
                "the journal is near its disk limit (PostgreSQL unreachable for long?); readiness says so"
            );
        } else {
            tracing::info!(
                bytes = journal.bytes(),
                "the journal is below its disk limit again"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ends a migration that is still running: shutdown asked for (at once, or while it runs),
    /// never the mere end of the sender.
    #[tokio::test]
    async fn a_running_migration_is_given_up_only_for_a_shutdown() {
        let (tx, mut rx) = watch::channel(None);
        let short = Duration::from_millis(50);
        assert!(tokio::time::timeout(short, stopping(&mut rx))
            .await
            .is_err());
        tx.send_replace(Some(std::time::Instant::now()));
        assert!(tokio::time::timeout(short, stopping(&mut rx)).await.is_ok());

        let (tx, mut rx) = watch::channel(None);
        let waiting = tokio::spawn(async move { stopping(&mut rx).await });
        tokio::task::yield_now().await;
        tx.send_replace(Some(std::time::Instant::now()));
        assert!(tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .is_ok());

        let (tx, mut rx) = watch::channel::<Option<std::time::Instant>>(None);
        drop(tx);
        assert!(tokio::time::timeout(short, stopping(&mut rx))
            .await
            .is_err());
    }

    #[test]
    fn the_checkpoint_moves_past_a_deferred_batch_only_once_it_is_flushed_and_in_order() {
        let mut u = Unflushed::default();
        let at = |intact| Deferred {
            lsn: 0,
            flushed: 0,
            intact,
        };
        assert!(!u.crashed(&at(false)), "nothing pending");
        u.push(100, 10);
        assert!(!u.crashed(&at(true)), "the mark is there");
        // Records set aside after it need no flush, but wait behind it.
        u.push(0, 12);
        u.push(250, 20);
        assert_eq!(u.settle(99), None);
        assert_eq!(u.settle(100), Some(12));
        assert_eq!(u.settle(249), None);
        assert!(!u.is_empty());
        assert_eq!(u.settle(300), Some(20));
        assert!(u.is_empty());
        u.push(400, 30);
        assert!(u.crashed(&at(false)), "the mark is gone, a commit pending");
        assert_eq!(u.clear(), 1);
        assert_eq!(u.settle(u64::MAX), None);
    }

    #[test]
    fn large_transactions_only_while_far_behind_and_no_callback_arrives() {
        // (behind, records arrived since the last round, catch-up size) -> records per transaction
        let table = [
            (100_000, false, 2000, 2000),
            (8_001, false, 2000, 2000),
            (8_000, false, 2000, BATCH),
            (100_000, true, 2000, BATCH),
            (0, false, 2000, BATCH),
            (100_000, false, 500, 500),
            (100_000, false, 1, 1),
        ];
        for (behind, arriving, catch_up, want) in table {
            assert_eq!(
                batch_for(behind, arriving, catch_up),
                want,
                "behind {behind}, arriving {arriving}, catch-up {catch_up}"
            );
        }
    }
}
