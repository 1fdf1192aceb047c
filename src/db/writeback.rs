//! Paced writeback of the embedded cluster's files while the shipper is caught up.
//!
//! A catch-up leaves about 120 MB of PostgreSQL's relation files dirty in the page cache, most of
//! it the zero pages PostgreSQL 15 writes to extend a table or an index, which none of its
//! `*_flush_after` settings starts writing (docs/benchmarks.md, sessions 12 and 13). The kernel
//! writes them all at once 30 s later, and a checkpoint or the crash recovery of a PostgreSQL that
//! died does the same: the journal's flushes, which every reply waits for, then wait behind
//! 120 MB on the same disk (replies of 20 to 80 ms through a PostgreSQL crash).
//!
//! This thread writes them out earlier, while nothing is to be shipped, 1 MiB at a time: each
//! range is written and waited for (`sync_file_range`, which flushes no disk cache and changes no
//! durability: PostgreSQL still fsyncs at its checkpoints), and after a range that took time the
//! thread pauses three times as long, so that it holds the disk a quarter of the time at most and
//! a journal flush waits behind 1 MiB at most. It stops at once when records are to be shipped
//! again. Only files written since the last complete pass are visited.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::cluster::Health;

/// Bytes written (and waited for) per call.
const CHUNK: u64 = 1 << 20;
/// How often the thread looks whether the shipper is caught up, and looks again during a pass.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// A range that took longer than this wrote something: the thread pauses after it.
const WROTE_SOMETHING: Duration = Duration::from_micros(200);

/// Below this much dirty in the whole page cache (`Dirty` in `/proc/meminfo`), passes are made
/// only every [`SELDOM`].
const LITTLE_DIRTY: u64 = 4 << 20;
const SELDOM: Duration = Duration::from_secs(10);

/// `Dirty` of `/proc/meminfo`, in bytes; `None` where it cannot be read.
fn dirty_bytes() -> Option<u64> {
    parse_dirty(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_dirty(meminfo: &str) -> Option<u64> {
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Dirty:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The pause after writing a range that took `took`: three times as long once it wrote something
/// (the disk is ours a quarter of the time at most), none for a clean range.
fn pause_after(took: Duration) -> Duration {
    if took > WROTE_SOMETHING {
        took * 3
    } else {
        Duration::ZERO
    }
}

/// What the thread has done since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Passes that went over every file written since the one before.
    pub passes: AtomicU64,
    /// Ranges that had pages to write.
    pub ranges_written: AtomicU64,
    /// Time spent writing them, in microseconds.
    pub writing_us: AtomicU64,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Pass {
    /// Files visited (written since the last complete pass).
    files: u64,
    /// Ranges that took long enough to have written something.
    ranges_written: u64,
    /// Time those ranges took.
    writing: Duration,
    /// false when the shipper had records again before the pass ended.
    complete: bool,
}

/// The relation files of a cluster: everything under `base/` and `global/` (not `pg_wal/`, which
/// PostgreSQL flushes itself).
fn relation_files(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![data.join("base"), data.join("global")];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => dirs.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}

/// Writes out what the page cache holds of the files of `data` written since `seen` was taken,
/// range by range through `write_range` (file, offset, length: how long it took), pausing after
/// each range by [`pause_after`] through `pause`, and giving up as soon as `idle` says records are
/// to be shipped (looked at every [`LOOK_EVERY`]). `seen` (file → modification time at the last
/// complete pass) is updated when the pass completes.
fn pass(
    data: &Path,
    seen: &mut HashMap<PathBuf, SystemTime>,
    idle: &mut dyn FnMut() -> bool,
    write_range: &mut dyn FnMut(&File, u64, u64) -> Duration,
    pause: &mut dyn FnMut(Duration),
) -> Pass {
    let mut done = Pass::default();
    let mut now_seen = HashMap::new();
    let mut looked = Instant::now();
    for path in relation_files(data) {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let unchanged = seen.get(&path) == Some(&modified);
        if unchanged {
            now_seen.insert(path, modified);
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        now_seen.insert(path, modified);
        done.files += 1;
        let mut offset = 0;
        while offset < meta.len() {
            if looked.elapsed() >= LOOK_EVERY {
                looked = Instant::now();
                if !idle() {
                    return done;
                }
            }
            let took = write_range(&file, offset, CHUNK);
            let rest = pause_after(took);
            if !rest.is_zero() {
                done.ranges_written += 1;
                done.writing += took;
                pause(rest);
            }
            offset += CHUNK;
        }
    }
    *seen = now_seen;
    done.complete = true;
    done
}

/// Starts writing the range and waits until it is on its way to the disk (no cache flush).
fn sync_range(file: &File, offset: u64, len: u64) -> Duration {
    let started = Instant::now();
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Duration::ZERO;
    };
    // SAFETY: the descriptor is open for the whole call; sync_file_range reads no memory of ours.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset,
            len,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        );
    }
    started.elapsed()
}

/// Runs passes over the cluster of `health` whenever `idle` has said `Some(true)` twice in a row
/// ([`LOOK_EVERY`] apart), counting them in [`Health::writeback`]; ends when it says `None` (its
/// owner is gone).
pub fn spawn(
    health: Arc<Health>,
    idle: impl Fn() -> Option<bool> + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("svamlgate-pg-writeback".into())
        .spawn(move || {
            let data = health.data_dir();
            let stats = health.writeback();
            let mut seen = HashMap::new();
            let mut quiet = 0;
            // None until the first pass (`Instant::now() - SELDOM` panics within 10 s of boot).
            let mut last_pass: Option<Instant> = None;
            loop {
                std::thread::sleep(LOOK_EVERY);
                match idle() {
                    None => return,
                    Some(false) => quiet = 0,
                    Some(true) => quiet += 1,
                }
                if quiet < 2 {
                    continue;
                }
                // Little in the whole page cache to write: one pass in a while is enough, so an
                // idle service does not stat the cluster's files twice a second.
                let little = dirty_bytes().is_some_and(|b| b < LITTLE_DIRTY);
                if little && last_pass.is_some_and(|at| at.elapsed() < SELDOM) {
                    continue;
                }
                let started = Instant::now();
                last_pass = Some(started);
                let done = pass(
                    data,
                    &mut seen,
                    &mut || idle() == Some(true),
                    &mut sync_range,
                    &mut std::thread::sleep,
                );
                stats
                    .passes
                    .fetch_add(u64::from(done.complete), Ordering::Relaxed);
                stats
                    .ranges_written
                    .fetch_add(done.ranges_written, Ordering::Relaxed);
                stats.writing_us.fetch_add(
                    u64::try_from(done.writing.as_micros()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                if done.ranges_written > 0 {
                    tracing::debug!(
                        files = done.files,
                        ranges_written = done.ranges_written,
                        complete = done.complete,
                        ms = started.elapsed().as_millis() as u64,
                        "embedded PostgreSQL: dirty pages written out while idle"
                    );
                }
                quiet = 0;
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("svamlgate-wb-{}", uuid::Uuid::new_v4()));
        for sub in ["base/5", "global", "pg_wal"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("base/5/16384"), vec![1u8; 2_500_000]).unwrap();
        std::fs::write(d.join("global/1262"), vec![2u8; 10]).unwrap();
        std::fs::write(
            d.join("pg_wal/000000010000000000000001"),
            vec![3u8; 3_000_000],
        )
        .unwrap();
        d
    }

    /// A pass with the shipper caught up over ranges already clean: the ranges visited, and the pass.
    fn clean_pass(d: &Path, seen: &mut HashMap<PathBuf, SystemTime>) -> (u64, Pass) {
        let mut ranges = 0;
        let done = pass(
            d,
            seen,
            &mut || true,
            &mut |_, _, _| {
                ranges += 1;
                Duration::ZERO
            },
            &mut |_| {},
        );
        (ranges, done)
    }

    #[test]
    fn a_pass_visits_every_range_of_the_relation_files_written_since_the_last_one() {
        let d = cluster_dir();
        let mut seen = HashMap::new();
        let mut ranges = Vec::new();
        let mut pauses = Vec::new();
        let done = pass(
            &d,
            &mut seen,
            &mut || true,
            &mut |f: &File, off, len| {
                ranges.push((f.metadata().unwrap().len(), off, len));
                Duration::from_millis(2)
            },
            &mut |p| pauses.push(p),
        );
        ranges.sort();
        // base/5/16384 in three ranges, global/1262 in one; nothing of pg_wal.
        assert_eq!(
            ranges,
            [
                (10, 0, CHUNK),
                (2_500_000, 0, CHUNK),
                (2_500_000, CHUNK, CHUNK),
                (2_500_000, 2 * CHUNK, CHUNK)
            ]
        );
        assert_eq!(pauses, [Duration::from_millis(6); 4]);
        assert_eq!(
            done,
            Pass {
                files: 2,
                ranges_written: 4,
                writing: Duration::from_millis(8),
                complete: true
            }
        );

        // Nothing written since: nothing visited. A file written again is visited again.
        let (ranges, again) = clean_pass(&d, &mut seen);
        assert_eq!((ranges, again.files), (0, 0));
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(d.join("global/1262"), vec![4u8; 20]).unwrap();
        let (ranges, third) = clean_pass(&d, &mut seen);
        assert_eq!((ranges, third.files, third.ranges_written), (1, 1, 0));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_pass_stops_when_records_are_to_be_shipped_and_visits_those_files_again() {
        let d = cluster_dir();
        let mut seen = HashMap::new();
        let mut calls = 0;
        let done = pass(
            &d,
            &mut seen,
            &mut || false,
            &mut |_, _, _| {
                calls += 1;
                // Slow enough that the pass looks at the shipper before its next range.
                std::thread::sleep(LOOK_EVERY);
                Duration::ZERO
            },
            &mut |_| {},
        );
        assert!(!done.complete);
        assert_eq!(calls, 1, "one range, then it looked and stopped");
        assert!(
            seen.is_empty(),
            "an incomplete pass forgets nothing it did not finish"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn dirty_is_read_from_meminfo() {
        let meminfo = "MemFree:  22556 kB\nDirty:             1536 kB\nWriteback:  0 kB\n";
        assert_eq!(parse_dirty(meminfo), Some(1536 * 1024));
        assert_eq!(parse_dirty("MemFree: 1 kB\n"), None);
        assert!(dirty_bytes().is_some(), "this is Linux");
    }

    #[test]
    fn a_clean_range_costs_no_pause_and_a_written_one_three_times_its_time() {
        assert_eq!(pause_after(Duration::from_micros(50)), Duration::ZERO);
        assert_eq!(
            pause_after(Duration::from_millis(4)),
            Duration::from_millis(12)
        );
    }

    /// The real call, on a file just written and not synced, through a read-only descriptor (how
    /// svamlgate opens the server's files): it returns, and a second pass finds nothing new.
    #[test]
    fn the_real_writeback_runs_on_a_read_only_descriptor() {
        let d = cluster_dir();
        let mut seen = HashMap::new();
        let done = pass(&d, &mut seen, &mut || true, &mut sync_range, &mut |_| {});
        assert!(done.complete);
        assert_eq!(done.files, 2);
        let again = pass(&d, &mut seen, &mut || true, &mut sync_range, &mut |_| {});
        assert_eq!(again.files, 0);
        std::fs::remove_dir_all(d).unwrap();
    }
}
