//! The shipper: moves journal records into PostgreSQL in batches (one transaction of up to
//! [`BATCH`] records, COPY through staging tables), in journal order. Every insert is idempotent (rows are keyed
//! by ids fixed when the record was written), so a crash between a commit and the checkpoint that
//! follows it re-ships a batch without duplicating a row. While PostgreSQL is slow or gone, records
//! wait in the journal and the shipper retries with backoff; the reply path never notices.
//!
//! It also keeps the journal bounded: shipped segments are deleted once they are older than the
//! replay window, or at once when the journal is over its disk limit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::journal::{Cursor, Journal};
use super::{now_ms, Record, ShipStatus};
use crate::db::store::Store;
use crate::metrics::Metrics;

/// Most records shipped in one transaction.
pub const BATCH: usize = 500;

/// How long the shipper lets records gather once the first arrives after it caught up. At 1,000
/// callbacks/s this is one PostgreSQL transaction per 100 records instead of one per record: fewer
/// commit flushes competing with the journal's on a shared disk, less CPU per row.
const LINGER: Duration = Duration::from_millis(100);

/// Longest one batch may take. A connection that hangs (a network partition, a stopped server)
/// is dropped after it and the batch retried on a new one, so shipping resumes when PostgreSQL
/// is back.
const SHIP_TIMEOUT: Duration = Duration::from_secs(30);

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
            // SAFETY: gettid and setpriority have no memory-safety preconditions; on Linux a
            // thread id as PRIO_PROCESS target changes this thread only.
            unsafe {
                let tid = libc::gettid();
                libc::setpriority(
                    libc::PRIO_PROCESS,
                    u32::try_from(tid).unwrap_or(0),
                    crate::db::cluster::BACKGROUND_NICE,
                );
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
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

/// Runs until `stop` turns true and the journal is drained, or the grace period after it ends.
pub async fn run(
    journal: Journal,
    store: Store,
    metrics: Arc<Metrics>,
    status: Arc<ShipStatus>,
    config: ShipperConfig,
    mut stop: watch::Receiver<Option<std::time::Instant>>,
) {
    if migrate_when_possible(&store, &mut stop).await {
        status.db_ok.store(true, Ordering::Release);
    }
    let mut durable = journal.durable();
    let mut cursor = Cursor::new(journal.shipped());
    let mut backoff = Duration::from_millis(50);
    let mut pending: Vec<(u64, Record)> = Vec::new();
    let mut last_housekeeping = std::time::Instant::now();
    let mut pacer = Pacer::new(config.defer_max);
    loop {
        let durable_now = *durable.borrow_and_update();
        status.durable.store(durable_now, Ordering::Release);
        let stopping = *stop.borrow();
        if pending.is_empty()
            && cursor.after < durable_now
            && stopping.is_none()
            && pacer.saturated(&status).await
        {
            metrics.inc("svamlgate_ship_deferrals_total", &[]);
            pause(Duration::from_millis(200), &mut stop).await;
            continue;
        }
        if pending.is_empty() {
            pacer.look(&metrics);
            match cursor.read(&journal, durable_now, pacer.batch()) {
                Ok(raw) => {
                    for (seq, payload) in raw {
                        match serde_json::from_slice::<Record>(&payload) {
                            Ok(r) => pending.push((seq, r)),
                            Err(e) => {
                                metrics.inc("svamlgate_journal_unreadable_records_total", &[]);
                                tracing::error!(seq, error = %e, "journal record that cannot be decoded skipped");
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not read the journal");
                }
            }
        }
        if pending.is_empty() {
            if cursor.after >= durable_now {
                if cursor.after > journal.shipped() {
                    // Only undecodable records were read: they count as shipped.
                    let _ = journal.mark_shipped(cursor.after);
                    status.shipped.store(cursor.after, Ordering::Release);
                }
                status.caught_up_at_ms.store(now_ms(), Ordering::Release);
            }
            housekeeping(&journal, &metrics, &status, &config);
            last_housekeeping = std::time::Instant::now();
            if let Some(deadline) = stopping {
                let _ = deadline;
                return;
            }
            tokio::select! {
                _ = durable.changed() => {
                    // Let a batch gather: one transaction (and one commit flush on the disk the
                    // journal shares) per LINGER at a steady trickle, not one per callback.
                    pause(LINGER, &mut stop).await;
                }
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let records: Vec<&Record> = pending.iter().map(|(_, r)| r).collect();
        let started = std::time::Instant::now();
        let mut result = tokio::time::timeout(SHIP_TIMEOUT, store.ship(&records))
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        if let Err(sqlx::Error::Database(e)) = &result {
            // PostgreSQL refused the batch itself (not a lost connection): find the record it
            // refuses, ship the others, and set that one aside rather than block the journal.
            tracing::warn!(error = %e, "a batch was refused; shipping its records one by one");
            result = ship_one_by_one(&store, &journal, &metrics, &pending).await;
        }
        match result {
            Ok(()) => {
                let last = pending.last().map_or(0, |(s, _)| *s);
                metrics.add("svamlgate_shipped_records_total", &[], pending.len() as u64);
                pending.clear();
                if let Err(e) = journal.mark_shipped(last) {
                    tracing::warn!(error = %e, "could not write the journal checkpoint (the batch may be shipped again, harmlessly)");
                }
                status.shipped.store(last, Ordering::Release);
                if !status.db_ok.swap(true, Ordering::AcqRel) {
                    tracing::info!("PostgreSQL accepts records again; shipping the journal");
                }
                *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                backoff = Duration::from_millis(50);
                if last_housekeeping.elapsed() > Duration::from_secs(1) {
                    housekeeping(&journal, &metrics, &status, &config);
                    last_housekeeping = std::time::Instant::now();
                }
                // Between the batches of a catch-up only: once caught up, the shipper goes back to
                // waiting for records at once (and knows it is caught up).
                let more = last < status.durable.load(Ordering::Acquire);
                if let Some(gap) = pacer.pause_after(started.elapsed()).filter(|_| more) {
                    if stopping.is_none() {
                        metrics.inc("svamlgate_ship_pauses_total", &[]);
                        pause(gap, &mut stop).await;
                    }
                }
            }
            Err(e) => {
                metrics.inc("svamlgate_ship_failures_total", &[]);
                if status.db_ok.swap(false, Ordering::AcqRel) {
                    tracing::error!(error = %e, lag = status.lag_records(), "PostgreSQL does not accept records; they wait in the journal");
                } else {
                    tracing::debug!(error = %e, "shipping still failing");
                }
                *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                if let Some(deadline) = stopping {
                    if std::time::Instant::now() >= deadline {
                        tracing::warn!(
                            left = status.lag_records(),
                            "shutdown: records not shipped stay in the journal and are shipped at the next start"
                        );
                        return;
                    }
                }
                housekeeping(&journal, &metrics, &status, &config);
                pause(backoff, &mut stop).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Applies the migrations, retrying until PostgreSQL takes them; false when asked to stop first.
async fn migrate_when_possible(
    store: &Store,
    stop: &mut watch::Receiver<Option<std::time::Instant>>,
) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        let migrated = tokio::time::timeout(SHIP_TIMEOUT, crate::db::MIGRATOR.run(store.pool()))
            .await
            .unwrap_or_else(|_| {
                Err(sqlx::migrate::MigrateError::Execute(
                    sqlx::Error::PoolTimedOut,
                ))
            });
        match migrated {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, "migrations not applied yet; records wait in the journal");
                if stop.borrow().is_some() {
                    return false;
                }
                pause(backoff, stop).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Sleeps for `d`, or until shutdown begins.
async fn pause(d: Duration, stop: &mut watch::Receiver<Option<std::time::Instant>>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

async fn ship_one_by_one(
    store: &Store,
    journal: &Journal,
    metrics: &Metrics,
    pending: &[(u64, Record)],
) -> Result<(), sqlx::Error> {
    for (seq, record) in pending {
        match store.ship(&[record]).await {
            Ok(()) => {}
            Err(sqlx::Error::Database(e)) => {
                metrics.inc(
                    "svamlgate_unshippable_records_total",
                    &[("kind", record.kind())],
                );
                let dir = journal.dir().join("unshippable");
                let path = dir.join(format!("{seq:020}.json"));
                let saved = std::fs::create_dir_all(&dir)
                    .and_then(|()| serde_json::to_vec(record).map_err(std::io::Error::other))
                    .and_then(|bytes| std::fs::write(&path, bytes));
                tracing::error!(seq, error = %e, saved = saved.is_ok(), path = %path.display(), "PostgreSQL refuses a journal record; it is kept in a file instead");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn housekeeping(journal: &Journal, metrics: &Metrics, status: &ShipStatus, config: &ShipperConfig) {
    let over = journal.bytes() > config.disk_limit_bytes;
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
    let near = super::journal::level(journal.bytes(), config.disk_limit_bytes) != "ok";
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
