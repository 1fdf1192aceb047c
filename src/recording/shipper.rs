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
use super::memory::Held;
use super::ship::refuses_records;
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
    if migrate_when_possible(&store, &status, &mut stop).await {
        status.db_ok.store(true, Ordering::Release);
    }
    let mut durable = journal.durable();
    let mut cursor = Cursor::new(journal.shipped());
    let mut backoff = Duration::from_millis(50);
    let mut pending: Vec<(u64, Record)> = Vec::new();
    let mut last_housekeeping = std::time::Instant::now();
    let mut memory_backoff = Duration::from_millis(50);
    let mut memory_retry_at = tokio::time::Instant::now();
    let pacer = Pacer::new(config.defer_max);
    loop {
        let durable_now = *durable.borrow_and_update();
        status.durable.store(durable_now, Ordering::Release);
        let stopping = *stop.borrow();
        // Records the journal could not take come first: they are durable nowhere yet.
        if !status.memory.is_empty() && tokio::time::Instant::now() >= memory_retry_at {
            if drain_memory(&journal, &store, &metrics, &status).await {
                memory_backoff = Duration::from_millis(50);
            } else {
                memory_retry_at = tokio::time::Instant::now() + memory_backoff;
                memory_backoff = (memory_backoff * 2).min(Duration::from_secs(2));
            }
        }
        if pending.is_empty()
            && cursor.after < durable_now
            && stopping.is_none()
            && !status.urged()
            && pacer.saturated(&status).await
        {
            metrics.inc("svamlgate_ship_deferrals_total", &[]);
            pause(Duration::from_millis(200), &mut stop).await;
            continue;
        }
        if pending.is_empty() {
            let read = cursor.read(&journal, durable_now, BATCH);
            for cut in cursor.take_cuts() {
                metrics.add("svamlgate_journal_cut_bytes_total", &[], cut.bytes());
                metrics.add("svamlgate_journal_cut_records_total", &[], cut.records());
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
            match read {
                Ok(raw) => {
                    for (seq, payload) in raw {
                        match super::decode(&payload) {
                            Ok(r) => pending.push((seq, r)),
                            Err(e) => {
                                if !set_aside_undecodable(&journal, &metrics, seq, &payload, &e) {
                                    // Not kept anywhere yet: read it again later, never skip it.
                                    cursor = Cursor::new(seq - 1);
                                    break;
                                }
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
                    // Only undecodable records were read, and they are set aside: move on.
                    let _ = journal.mark_shipped(cursor.after);
                    status.set_shipped(cursor.after);
                }
                if status.memory.is_empty() {
                    status.caught_up_at_ms.store(now_ms(), Ordering::Release);
                }
            }
            housekeeping(&journal, &metrics, &status, &config);
            last_housekeeping = std::time::Instant::now();
            if let Some(deadline) = stopping {
                if status.memory.is_empty() || std::time::Instant::now() >= deadline {
                    let left = status.memory.len();
                    if left > 0 {
                        metrics.add(
                            "svamlgate_records_dropped_total",
                            &[("kind", "shutdown")],
                            left,
                        );
                        tracing::error!(
                            records = left,
                            "shutdown: records held in memory (the journal could not take them, PostgreSQL did not) are lost"
                        );
                    }
                    return;
                }
                pause(memory_backoff, &mut stop).await;
                continue;
            }
            tokio::select! {
                _ = durable.changed() => {
                    // Let a batch gather: one transaction (and one commit flush on the disk the
                    // journal shares) per LINGER at a steady trickle, not one per callback; a
                    // reader waiting for its writes cuts it short.
                    if !status.urged() {
                        tokio::select! {
                            _ = pause(LINGER, &mut stop) => {}
                            _ = status.urge.notified() => {}
                        }
                    }
                }
                _ = status.urge.notified() => {}
                _ = stop.changed() => {}
                _ = status.memory.pushed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let records: Vec<&Record> = pending.iter().map(|(_, r)| r).collect();
        let mut result = tokio::time::timeout(SHIP_TIMEOUT, store.ship(&records))
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        if result.as_ref().is_err_and(refuses_records) {
            // PostgreSQL refused the batch itself (not a lost connection): find the record it
            // refuses, ship the others, and set that one aside rather than block the journal.
            if let Err(e) = &result {
                tracing::warn!(error = %e, "a batch was refused; shipping its records one by one");
            }
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
                status.set_shipped(last);
                if !status.db_ok.swap(true, Ordering::AcqRel) {
                    tracing::info!("PostgreSQL accepts records again; shipping the journal");
                }
                *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                backoff = Duration::from_millis(50);
                if last_housekeeping.elapsed() > Duration::from_secs(1) {
                    housekeeping(&journal, &metrics, &status, &config);
                    last_housekeeping = std::time::Instant::now();
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
                // Whoever waits for shipping learns that it fails.
                status.shipped_moved.notify_waiters();
                if let Some(deadline) = stopping {
                    if std::time::Instant::now() >= deadline {
                        let in_memory = status.memory.len();
                        if in_memory > 0 {
                            metrics.add(
                                "svamlgate_records_dropped_total",
                                &[("kind", "shutdown")],
                                in_memory,
                            );
                            tracing::error!(
                                records = in_memory,
                                "shutdown: records held in memory are lost"
                            );
                        }
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
    let records: Vec<&Record> = decoded.iter().map(|(_, r)| r).collect();
    let shipped = tokio::time::timeout(SHIP_TIMEOUT, store.ship(&records))
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
    if let Err(e) = &shipped {
        if !refuses_records(e) {
            status.db_ok.store(false, Ordering::Release);
            *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
    }
    let ok = match shipped {
        Ok(()) => true,
        Err(e) if refuses_records(&e) => {
            // Find the ones it refuses, one by one; the rest go in.
            let mut all = true;
            for (h, r) in &decoded {
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
                    Err(_) => {
                        all = false;
                        break;
                    }
                }
            }
            all
        }
        Err(_) => false,
    };
    let settle = |left: Vec<Held>| {
        let left_bytes: u64 = left.iter().map(|h| h.payload.len() as u64).sum();
        status
            .memory
            .settle(taken.0 - left.len(), taken.1 - left_bytes);
        status.memory.put_back(left);
    };
    if ok {
        metrics.add("svamlgate_shipped_records_total", &[], decoded.len() as u64);
        status.db_ok.store(true, Ordering::Release);
        *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        settle(left);
        return true;
    }
    // PostgreSQL did not take them: back into the journal (one group commit for all), once it works.
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
    settle(left);
    journaled > 0
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
        let migrated = tokio::time::timeout(SHIP_TIMEOUT, crate::db::MIGRATOR.run(store.pool()))
            .await
            .unwrap_or_else(|_| {
                Err(sqlx::migrate::MigrateError::Execute(
                    sqlx::Error::PoolTimedOut,
                ))
            });
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

fn housekeeping(journal: &Journal, metrics: &Metrics, status: &ShipStatus, config: &ShipperConfig) {
    let over = super::journal::level(journal.bytes(), config.disk_limit_bytes) != "ok";
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
