//! The next segment, prepared ahead of time: a file of [`super::Shared::segment_bytes`] zeros,
//! written and made durable by a thread of its own (`svamlgate-journal-spare`), never by the writer.
//! When the writer starts a new segment it renames the spare to the segment's name and writes its
//! frames over the zeros: blocks already allocated and already written, so a flush changes no file
//! metadata (size, extents) and, on ext4, `fdatasync` does not wait for the filesystem's journal
//! commit (which waits behind every other writer's ordered data on the same disk). PostgreSQL does
//! the same for its WAL.
//!
//! The spare is `journal/spare` (being written: `journal/spare.tmp`). It counts in the journal's
//! bytes. It is prepared only when it fits: under `SVAMLGATE_JOURNAL_MAX_BYTES` beside what the
//! journal holds, and with twice its size free on the filesystem. Otherwise the writer appends to
//! a growing file as before, and a full write is never refused for the sake of a spare: the writer
//! gives the spare up when a record would not fit ([`super::Shared::drop_spare`]).
//!
//! **The reserve.** Zero-filling costs the CPU and the disk about as much as the records written
//! over the zeros, and a burst of callbacks starts a segment every second or so: filled while the
//! burst ran, the spares cost it a quarter of its throughput on the benchmark's machine
//! (docs/benchmarks.md, session 16). So once a segment has been started, and while none has been
//! for [`QUIET`], the preparer also fills spares for a reserve (`journal/spare.1`, `spare.2`, …; up
//! to [`super::Options::spares`] in all with the spare, half the disk limit by default),
//! only where records do not need the room ([`super::Shared::room_for_reserve`]: the journal under
//! three quarters of its limit, unshipped records under a quarter). When the writer takes the
//! spare, the next one is a reserve file renamed (at once), not a file zero-filled while callbacks
//! wait for the disk. A burst after a quiet moment writes into zeros laid down before it; a load
//! that lasts uses the reserve up, then spares are filled as it runs, as without a reserve. The
//! reserve is kept across restarts, and given up with the spare when records need the room.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{parse_at, segment_name, sync_dir, Parsed, Shared, HEADER, MAX_PAYLOAD};

/// Name of the prepared spare in the journal directory.
pub(super) const SPARE: &str = "spare";
/// Name of the spare while it is written.
const SPARE_TMP: &str = "spare.tmp";
/// No segment started for this long: the preparer may fill the reserve.
pub(super) const QUIET: Duration = Duration::from_secs(2);

/// Name of the `n`th spare of the reserve (from 1): `spare.<n>`.
fn reserve_name(n: usize) -> String {
    format!("{SPARE}.{n}")
}

/// `n` when `name` is `spare.<n>`.
fn parse_reserve_name(name: &str) -> Option<usize> {
    name.strip_prefix(SPARE)?.strip_prefix('.')?.parse().ok()
}
/// Pause after each chunk of zeros written (of 1 MiB: at most about 50 MiB/s, a 32 MiB spare in
/// under a second, a 64 KiB one at once).
const CHUNK_PAUSE: Duration = Duration::from_millis(20);
/// Chunk of a spare while records are being written (1 MiB otherwise): at 1,000 records/s beside
/// a fill in chunks of 1 MiB the p99 of append-to-durable was 4.0 ms, of 256 KiB 2.3 ms, of
/// 64 KiB 2.1 ms (`examples/journal_latency.rs --noise zerofill`, docs/benchmarks.md, session 17).
/// For the reserve, about 6 MB/s with [`CHUNK_PAUSE`]: a spare of 32 MiB in 5 s.
const GENTLE_CHUNK: usize = 128 << 10;
/// Pause after each [`GENTLE_CHUNK`] of the writer's next segment (`urgent`) while records are
/// being written: the same pace as 1 MiB and [`CHUNK_PAUSE`] (the writer appends to a growing file
/// until it is ready), in pieces a flush of records waits behind for about a millisecond instead
/// of eight. Right after a burst that used the reserve up, the next spare was filled in 1 MiB
/// chunks while the 1,000/s run began: 62 and 79 of its first 600 appends took over 5 ms
/// (docs/benchmarks.md, session 21).
const URGENT_GENTLE_PAUSE: Duration = Duration::from_micros(2500);
/// Bytes of zeros to write next, and the pause after them: [`GENTLE_CHUNK`] while records are
/// `arriving` (after [`URGENT_GENTLE_PAUSE`] for the writer's next segment, `urgent`, or
/// [`CHUNK_PAUSE`] for the reserve), 1 MiB and [`CHUNK_PAUSE`] otherwise.
pub(super) fn chunk_for(urgent: bool, arriving: bool) -> (usize, Duration) {
    match (arriving, urgent) {
        (true, true) => (GENTLE_CHUNK, URGENT_GENTLE_PAUSE),
        (true, false) => (GENTLE_CHUNK, CHUNK_PAUSE),
        (false, _) => (1 << 20, CHUNK_PAUSE),
    }
}

/// After a preparation failed or a spare was given up for records, wait this long before the next.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// What the preparer knows and is asked to do; under [`Spares::state`].
#[derive(Debug, Default)]
pub(super) struct SpareState {
    /// A spare of this many bytes is ready in `journal/spare`.
    pub ready: Option<u64>,
    /// A spare is being written (its bytes reserved in the journal's count).
    preparing: bool,
    /// Give the spare being written up.
    pub cancel: bool,
    /// The writer wants spares (preallocation is on and the journal is busy enough).
    pub want: bool,
    /// A spare was renamed into a segment: make the directory durable.
    sync_dir: bool,
    /// No preparation before this.
    pub retry_at: Option<Instant>,
    /// The journal is closing.
    stop: bool,
    /// Spares of the reserve ready (`spare.1` to `spare.<reserve>`), each of the spare's size.
    pub reserve: usize,
    /// How many the reserve holds when full (spares wanted in all, less the spare).
    pub reserve_target: usize,
    /// When the writer last started a segment in a spare (none yet: no reserve wanted).
    last_taken: Option<Instant>,
}

impl SpareState {
    /// Whether to fill a spare for the reserve now: a segment has been started since the journal
    /// opened, none for [`QUIET`], the spare is ready and the reserve is not full.
    fn reserve_due(&self) -> bool {
        self.ready.is_some()
            && self.reserve < self.reserve_target
            && self.last_taken.is_some_and(|t| t.elapsed() >= QUIET)
    }
}

/// The preparer's state and its wake-up.
#[derive(Debug, Default)]
pub(super) struct Spares {
    state: Mutex<SpareState>,
    wake: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Spares {
    pub(super) fn lock(&self) -> MutexGuard<'_, SpareState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether another thread holds the state's lock now.
    #[cfg(test)]
    pub(super) fn held(&self) -> bool {
        matches!(
            self.state.try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        )
    }

    /// Wakes the preparer (space freed, a spare taken, preallocation wanted).
    pub(super) fn nudge(&self) {
        self.wake.notify_all();
    }

    /// The writer started a segment: in the spare (`renamed`: the preparer makes the directory
    /// durable, then prepares the next one), or in a growing file because none was ready. Either
    /// way the journal is busy enough for the reserve, once quiet again.
    pub(super) fn segment_started(&self, renamed: bool) {
        let mut st = self.lock();
        st.sync_dir |= renamed;
        st.last_taken = Some(Instant::now());
        drop(st);
        self.nudge();
    }

    /// Starts the preparer thread.
    pub(super) fn start(shared: std::sync::Arc<Shared>) -> io::Result<()> {
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("svamlgate-journal-spare".into())
            .spawn(move || run(&s))?;
        *shared
            .spares
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(())
    }

    /// Stops the preparer (a spare being written is given up) and waits for it.
    pub(super) fn stop(&self) {
        {
            let mut st = self.lock();
            st.stop = true;
            st.cancel = true;
        }
        self.nudge();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    /// Waits (tests) until a spare is ready, or `within` passed.
    #[cfg(test)]
    pub(super) fn wait_ready(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        let mut st = self.lock();
        while st.ready.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .wake
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

fn run(shared: &Shared) {
    let spares = &shared.spares;
    loop {
        let mut st = spares.lock();
        loop {
            if st.stop {
                return;
            }
            let due = st.want && !st.preparing && st.retry_at.is_none_or(|t| Instant::now() >= t);
            // Records first: the reserve fills only where they do not need the room.
            if st.sync_dir
                || (due && (st.ready.is_none() || (st.reserve_due() && shared.room_for_reserve())))
            {
                break;
            }
            st = spares
                .wake
                .wait_timeout(st, Duration::from_secs(1))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if st.sync_dir {
            st.sync_dir = false;
            drop(st);
            if let Err(e) = sync_dir(&shared.dir) {
                tracing::warn!(error = %e, "journal: could not sync the directory after starting a segment");
            }
            continue;
        }
        if promote(shared, &mut st) {
            drop(st);
            promoted(shared);
            continue;
        }
        // The next spare, or one for the reserve.
        st.preparing = true;
        st.cancel = false;
        drop(st);
        let result = prepare(shared);
        let mut st = spares.lock();
        st.preparing = false;
        match result {
            // Whatever it was started for, it becomes the spare if the spare was taken meanwhile.
            Ok(size) if !st.cancel => {
                let (name, reserve) = if st.ready.is_none() {
                    (SPARE.to_string(), false)
                } else {
                    (reserve_name(st.reserve + 1), true)
                };
                match std::fs::rename(shared.dir.join(SPARE_TMP), shared.dir.join(&name)) {
                    Ok(()) if reserve => st.reserve += 1,
                    Ok(()) => st.ready = Some(size),
                    Err(e) => {
                        tracing::debug!(error = %e, "journal: a prepared spare could not be renamed");
                        let _ = std::fs::remove_file(shared.dir.join(SPARE_TMP));
                        shared.release_bytes(size);
                        st.retry_at = Some(Instant::now() + RETRY_AFTER);
                    }
                }
                drop(st);
                if let Err(e) = sync_dir(&shared.dir) {
                    tracing::warn!(error = %e, "journal: could not sync the directory after preparing a spare");
                }
                spares.nudge();
                continue;
            }
            Ok(size) => {
                let _ = std::fs::remove_file(shared.dir.join(SPARE_TMP));
                shared.release_bytes(size);
                st.retry_at = Some(Instant::now() + RETRY_AFTER);
            }
            Err(e) => {
                tracing::debug!(error = %e, "journal: no spare segment prepared; appending to a growing file meanwhile");
                st.retry_at = Some(Instant::now() + RETRY_AFTER);
            }
        }
        drop(st);
        spares.nudge();
    }
}

/// When the writer has taken the spare and the reserve holds one, renames that one to `spare`
/// (at once, not a file of zeros written while callbacks wait); returns whether the reserve was
/// used. The caller then makes the directory durable ([`promoted`]), without the lock.
fn promote(shared: &Shared, st: &mut SpareState) -> bool {
    if st.ready.is_some() || st.reserve == 0 {
        return false;
    }
    let n = st.reserve;
    st.reserve -= 1;
    match std::fs::rename(shared.dir.join(reserve_name(n)), shared.dir.join(SPARE)) {
        Ok(()) => st.ready = Some(shared.segment_bytes),
        Err(e) => {
            tracing::debug!(error = %e, "journal: a spare of the reserve could not be used");
            let _ = std::fs::remove_file(shared.dir.join(reserve_name(n)));
            shared.release_bytes(shared.segment_bytes);
        }
    }
    true
}

/// After [`promote`]: the rename made durable, and the writer told.
fn promoted(shared: &Shared) {
    if let Err(e) = sync_dir(&shared.dir) {
        tracing::warn!(error = %e, "journal: could not sync the directory after taking a spare from the reserve");
    }
    shared.spares.nudge();
}

/// Bytes free for unprivileged writers on the filesystem of `dir`.
fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs fills the zeroed struct we own from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Writes a spare: reserves its bytes under the limit, fills `spare.tmp` with zeros and makes it
/// durable (the caller names it). Returns its size.
pub(super) fn prepare(shared: &Shared) -> io::Result<u64> {
    let size = shared.segment_bytes;
    if free_bytes(&shared.dir)? < size.saturating_mul(2) {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "not enough free space for a spare segment",
        ));
    }
    if !shared.reserve_bytes(size) {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "a spare segment does not fit under SVAMLGATE_JOURNAL_MAX_BYTES",
        ));
    }
    let tmp = shared.dir.join(SPARE_TMP);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = size;
        let mut seen = *shared.durable.borrow();
        while left > 0 {
            // The lock is held for these checks only, never across the write, its writeback or
            // the pause below: the writer takes it to start each segment, and until session 17
            // after every flush too; a fill that held it made every group of records wait for a
            // chunk of zeros (p50 48 ms at 1,000 records/s, docs/benchmarks.md, session 17).
            let (promoted_one, urgent) = {
                let mut st = shared.spares.lock();
                if st.cancel {
                    return Err(io::Error::other("cancelled"));
                }
                // Filling one for the reserve while the writer took the spare: one of the
                // reserve takes its place now, not when this one is done.
                let promoted_one = promote(shared, &mut st);
                // No spare ready: this one is the writer's next segment.
                (promoted_one, st.ready.is_none())
            };
            if promoted_one {
                promoted(shared);
            }
            // A spare for the reserve goes gently while records are being written: each of
            // their flushes waits for the chunk of zeros before it on the disk.
            let durable = *shared.durable.borrow();
            let (chunk, pause) = chunk_for(urgent, durable != seen);
            let n = left.min(chunk as u64) as usize;
            seen = durable;
            let at = size - left;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
            // Written back chunk by chunk, and paced: never a burst of dirty pages that the
            // journal's next flush would wait behind on a shared disk.
            // SAFETY: sync_file_range on a valid descriptor owned by `f`, over bytes just written.
            let rc = unsafe {
                libc::sync_file_range(
                    std::os::fd::AsRawFd::as_raw_fd(&f),
                    at as libc::off64_t,
                    n as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            std::thread::sleep(pause);
        }
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        shared.release_bytes(size);
        return Err(e);
    }
    Ok(size)
}

/// At open: deletes a spare left half-written, and deals with `journal/spare`. All zeros: kept as
/// the ready spare (its size returned) when `keep` and it has `size` bytes, else deleted. With
/// frames in it (a spare renamed into a segment just before a crash, the rename not yet durable):
/// renamed to the segment it became, named by its first intact frame; nothing intact in it: moved
/// to the quarantine.
pub(super) fn recover(dir: &Path, keep: bool, size: u64) -> io::Result<Option<u64>> {
    let _ = std::fs::remove_file(dir.join(SPARE_TMP));
    let path = dir.join(SPARE);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if data.iter().all(|&b| b == 0) {
        if keep && data.len() as u64 == size {
            return Ok(Some(size));
        }
        std::fs::remove_file(&path)?;
        return Ok(None);
    }
    let first = first_intact_seq(&data);
    let target: PathBuf = match first {
        Some(seq) if !dir.join(segment_name(seq)).exists() => dir.join(segment_name(seq)),
        _ => {
            let qdir = dir.join("quarantine");
            std::fs::create_dir_all(&qdir)?;
            qdir.join(format!("spare-{}.bad", uuid::Uuid::now_v7()))
        }
    };
    tracing::warn!(target = %target.display(), "journal: a spare segment held records (a crash right after it was started); it is read as a segment");
    std::fs::rename(&path, &target)?;
    if let Some(parent) = target.parent() {
        sync_dir(parent)?;
    }
    sync_dir(dir)?;
    Ok(None)
}

/// At open: the spares of the reserve that are kept (`keep`, of `size` bytes, at most `target`),
/// renumbered from 1; the others are deleted. Returns how many are kept. Only the preparer writes
/// them (zeros, made durable before the rename that names them), so their size is checked and
/// their bytes are not read.
pub(super) fn recover_reserve(
    dir: &Path,
    keep: bool,
    size: u64,
    target: usize,
) -> io::Result<usize> {
    let mut found: Vec<(usize, PathBuf, u64)> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let n = parse_reserve_name(e.file_name().to_str()?)?;
            let len = e.metadata().ok()?.len();
            Some((n, e.path(), len))
        })
        .collect();
    if found.is_empty() {
        return Ok(0);
    }
    found.sort_by_key(|f| f.0);
    let mut kept = 0;
    for (_, path, len) in found {
        if keep && len == size && kept < target {
            kept += 1;
            let to = dir.join(reserve_name(kept));
            if path != to {
                std::fs::rename(&path, &to)?;
            }
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    sync_dir(dir)?;
    Ok(kept)
}

/// Deletes the reserve's spares `spare.1` to `spare.<n>`; returns how many were deleted.
pub(super) fn delete_reserve(dir: &Path, n: usize) -> usize {
    (1..=n)
        .filter(|&i| std::fs::remove_file(dir.join(reserve_name(i))).is_ok())
        .count()
}

/// The seq of the first intact frame in `data`.
fn first_intact_seq(data: &[u8]) -> Option<u64> {
    (0..data.len().saturating_sub(HEADER - 1)).find_map(|off| {
        let h = &data[off..off + HEADER];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len > MAX_PAYLOAD || off + HEADER + len > data.len() || h[8..].iter().all(|&b| b == 0) {
            return None;
        }
        match parse_at(data, off) {
            Parsed::Record { seq, .. } => Some(seq),
            _ => None,
        }
    })
}

/// Opens a spare renamed to `path` for writing in place.
pub(super) fn open_in_place(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// Bytes of `data` from `from` up to its last non-zero byte (the zeros after it were never
/// written: the preallocated space of a segment).
pub(super) fn trim_zeros(data: &[u8], from: usize) -> usize {
    let tail = data[from.min(data.len())..]
        .iter()
        .rev()
        .take_while(|&&b| b == 0)
        .count();
    data.len() - tail
}

/// Whether a frame at `off` with payload length `len` ends in zeros from a sector boundary on:
/// the end of a write that did not reach the disk (in a preallocated segment, bytes never written
/// read as zeros).
pub(super) fn torn_in_place(data: &[u8], off: usize, len: usize) -> bool {
    const SECTOR: usize = 512;
    let end = (off + HEADER + len).min(data.len());
    let zeros_from = trim_zeros(&data[..end], off);
    let boundary = zeros_from.div_ceil(SECTOR) * SECTOR;
    boundary > off && boundary < end
}
