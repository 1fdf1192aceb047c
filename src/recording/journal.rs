//! The local journal: an append-only log of checksummed records in segment files, made durable with
//! group commit. It is the one durability point on the reply path: a callback's record is appended and
//! `fdatasync`ed (one sync for every append that arrived meanwhile) before the reply is released; the
//! shipper ([`super::shipper`]) then moves records into PostgreSQL at its own pace.
//!
//! Layout of `<data dir>/journal/`:
//! * `<first seq, 20 digits>.seg`: frames `len: u32 LE | crc32c: u32 LE | seq: u64 LE | payload`, where
//!   the checksum covers the seq bytes and the payload. Sequence numbers increase by one per record,
//!   across segments and restarts.
//! * `shipped`: the highest sequence number known to be in PostgreSQL (written after each shipped
//!   batch; losing an update only means re-shipping, which is idempotent).
//!
//! At open, every segment is scanned. A frame that is cut short or whose checksum does not match ends
//! its segment: the rest of that segment is cut off (truncated), counted and logged, and start-up goes
//! on. A segment is deleted once all its records are shipped and it is older than the retention the
//! caller asks for (the replay window), or sooner when the journal is over its disk limit.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crc::{Crc, Table, CRC_32_ISCSI};
use tokio::sync::{oneshot, watch};

/// CRC-32C, slice-by-16 tables (several GB/s, no unsafe, no CPU feature detection).
const CRC: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);
const HEADER: usize = 16;
/// Largest payload accepted in a frame; a larger length field is treated as corruption.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// A segment is closed and a new one started once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 32 * 1024 * 1024;
/// Most appends written under one `fdatasync`.
const MAX_GROUP: usize = 4096;

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")?.parse().ok()
}

/// How full the journal is against its disk limit: `ok`, `near_limit` (above 90%) or
/// `over_limit`. One rule for readiness and for the shipper's housekeeping.
pub fn level(bytes: u64, limit: u64) -> &'static str {
    if bytes > limit {
        "over_limit"
    } else if bytes > limit / 10 * 9 {
        "near_limit"
    } else {
        "ok"
    }
}

/// Encodes one frame.
pub fn encode_frame(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let mut digest = CRC.digest();
    digest.update(&seq.to_le_bytes());
    digest.update(payload);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&digest.finalize().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Result of reading one frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole, intact frame.
    Record {
        /// Sequence number.
        seq: u64,
        /// Payload.
        payload: Vec<u8>,
    },
    /// Clean end of data.
    End,
    /// A frame cut short (a write that did not finish).
    Torn,
    /// A frame whose length or checksum is wrong.
    Corrupt,
}

/// Reads the next frame from `r`.
pub fn read_frame(r: &mut impl Read) -> io::Result<Frame> {
    let mut header = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        let n = r.read(&mut header[got..])?;
        if n == 0 {
            return Ok(if got == 0 { Frame::End } else { Frame::Torn });
        }
        got += n;
    }
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let len = word(0) as usize;
    let crc = word(4);
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&header[8..16]);
    let seq = u64::from_le_bytes(seq_bytes);
    if len > MAX_PAYLOAD {
        return Ok(Frame::Corrupt);
    }
    let mut payload = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = r.read(&mut payload[got..])?;
        if n == 0 {
            return Ok(Frame::Torn);
        }
        got += n;
    }
    let mut digest = CRC.digest();
    digest.update(&seq_bytes);
    digest.update(&payload);
    if digest.finalize() != crc {
        return Ok(Frame::Corrupt);
    }
    Ok(Frame::Record { seq, payload })
}

/// What opening the journal found.
#[derive(Debug, Default, Clone)]
pub struct Recovery {
    /// Intact records found, in order (those not yet shipped and those kept for the replay window).
    pub records: Vec<(u64, Vec<u8>)>,
    /// Frames cut off because they were torn or corrupt (one per damaged segment).
    pub cut_segments: u64,
    /// Bytes cut off.
    pub cut_bytes: u64,
    /// Highest sequence number shipped, from the checkpoint.
    pub shipped: u64,
}

#[derive(Debug, Clone)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
}

/// Position up to which records are durable (the highest durable seq).
pub type Durable = watch::Receiver<u64>;

struct Append {
    payload: Vec<u8>,
    done: oneshot::Sender<io::Result<u64>>,
}

/// Appends records; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Append>,
    inner: Arc<Shared>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

struct Shared {
    dir: PathBuf,
    segments: Mutex<Vec<Segment>>,
    durable: watch::Receiver<u64>,
    shipped: AtomicU64,
    bytes: AtomicU64,
    /// Test hook: fail the next fdatasync calls.
    fail_syncs: AtomicU64,
    /// The open `LOCK` file holding an exclusive `flock`: one process per journal.
    lock: Mutex<Option<File>>,
}

/// Takes the journal's lock, or says who holds it.
fn lock(dir: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    // SAFETY: flock on a valid, open descriptor owned by `file`.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "the journal in {} is in use by another svamlgate; each instance needs its own \
                 SVAMLGATE_DATA_DIR",
                dir.display()
            ),
        ));
    }
    Ok(file)
}

/// Fsyncs a directory so that a created or deleted file survives a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn list_segments(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut segments: Vec<Segment> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let first_seq = parse_segment_name(name.to_str()?)?;
            Some(Segment {
                first_seq,
                path: e.path(),
            })
        })
        .collect();
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

fn read_checkpoint(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("shipped"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Records as read back: (seq, payload).
pub type Records = Vec<(u64, Vec<u8>)>;

/// Scans one segment; cuts it at the first torn or corrupt frame. Returns (records, bytes cut).
fn scan_segment(seg: &Segment) -> io::Result<(Records, u64)> {
    let mut file = OpenOptions::new().read(true).write(true).open(&seg.path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::new(&mut file);
    let mut records = Vec::new();
    let mut good_end = 0u64;
    loop {
        match read_frame(&mut reader)? {
            Frame::Record { seq, payload } => {
                good_end += (HEADER + payload.len()) as u64;
                records.push((seq, payload));
            }
            Frame::End => break,
            Frame::Torn | Frame::Corrupt => break,
        }
    }
    drop(reader);
    let cut = len - good_end;
    if cut > 0 {
        file.set_len(good_end)?;
        file.sync_all()?;
    }
    Ok((records, cut))
}

impl Journal {
    /// Opens (creating) the journal in `dir`, recovers what it holds and starts the writer thread.
    pub fn open(dir: &Path) -> io::Result<(Journal, Recovery)> {
        std::fs::create_dir_all(dir)?;
        let lock = lock(dir)?;
        let mut recovery = Recovery {
            shipped: read_checkpoint(dir),
            ..Default::default()
        };
        let mut segments = list_segments(dir)?;
        let mut bytes = 0u64;
        let mut last_seq = recovery.shipped;
        let mut prev = 0u64;
        for seg in &segments {
            let (records, cut) = scan_segment(seg)?;
            if cut > 0 {
                recovery.cut_segments += 1;
                recovery.cut_bytes += cut;
                tracing::error!(
                    segment = %seg.path.display(),
                    bytes = cut,
                    "journal: torn or corrupt records cut from the end of a segment"
                );
            }
            bytes += std::fs::metadata(&seg.path).map(|m| m.len()).unwrap_or(0);
            for (seq, payload) in records {
                // Sequence numbers only grow; a record that does not is skipped (it can only be
                // corruption that a checksum happened to pass).
                if seq <= prev {
                    continue;
                }
                prev = seq;
                last_seq = last_seq.max(seq);
                recovery.records.push((seq, payload));
            }
        }
        // Writes always go to a fresh segment: an existing one may have been cut.
        let next = last_seq + 1;
        let path = dir.join(segment_name(next));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        sync_dir(dir)?;
        segments.retain(|s| s.first_seq != next);
        segments.push(Segment {
            first_seq: next,
            path,
        });
        let (durable_tx, durable_rx) = watch::channel(last_seq);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            segments: Mutex::new(segments),
            durable: durable_rx,
            shipped: AtomicU64::new(recovery.shipped),
            bytes: AtomicU64::new(bytes),
            fail_syncs: AtomicU64::new(0),
            lock: Mutex::new(Some(lock)),
        });
        let (tx, rx) = mpsc::channel::<Append>();
        let writer = Writer {
            shared: shared.clone(),
            file,
            file_len: 0,
            next_seq: next,
            durable_tx,
            slow_flushes: 0,
            last_slow_log: None,
        };
        std::thread::Builder::new()
            .name("svamlgate-journal".into())
            .spawn(move || writer.run(rx))?;
        Ok((Journal { tx, inner: shared }, recovery))
    }

    /// Appends a record and waits until it is durable; returns its sequence number.
    pub async fn append(&self, payload: Vec<u8>) -> io::Result<u64> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Append { payload, done })
            .map_err(|_| io::Error::other("journal writer stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("journal writer stopped"))?
    }

    /// The highest durable sequence number, and a way to wait for it to change.
    pub fn durable(&self) -> Durable {
        self.inner.durable.clone()
    }

    /// Highest shipped sequence number.
    pub fn shipped(&self) -> u64 {
        self.inner.shipped.load(Ordering::Acquire)
    }

    /// Bytes held in segment files.
    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Records that `seq` and everything before it are in PostgreSQL.
    pub fn mark_shipped(&self, seq: u64) -> io::Result<()> {
        self.inner.shipped.fetch_max(seq, Ordering::AcqRel);
        let tmp = self.inner.dir.join("shipped.tmp");
        std::fs::write(&tmp, seq.to_string())?;
        std::fs::rename(&tmp, self.inner.dir.join("shipped"))
    }

    /// Deletes segments whose records are all shipped and that were last written before
    /// `keep_after` (or any fully shipped segment when `keep_after` is None). The segment being
    /// written is never deleted. Returns the number of segments deleted.
    pub fn delete_shipped(&self, keep_after: Option<SystemTime>) -> usize {
        let shipped = self.shipped();
        let mut segments = self
            .inner
            .segments
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut deleted = 0;
        // Segment i holds seqs [first_i, first_{i+1}); it is fully shipped when first_{i+1} - 1 <= shipped.
        while segments.len() > 1 {
            let next_first = segments[1].first_seq;
            if next_first.saturating_sub(1) > shipped {
                break;
            }
            let seg = &segments[0];
            let old_enough = match keep_after {
                None => true,
                Some(t) => std::fs::metadata(&seg.path)
                    .and_then(|m| m.modified())
                    .map(|m| m < t)
                    .unwrap_or(true),
            };
            if !old_enough {
                break;
            }
            let len = std::fs::metadata(&seg.path).map(|m| m.len()).unwrap_or(0);
            if let Err(e) = std::fs::remove_file(&seg.path) {
                tracing::warn!(error = %e, segment = %seg.path.display(), "journal: could not delete a shipped segment");
                break;
            }
            self.inner
                .bytes
                .fetch_sub(len.min(self.bytes()), Ordering::Relaxed);
            segments.remove(0);
            deleted += 1;
        }
        if deleted > 0 {
            let _ = sync_dir(&self.inner.dir);
        }
        deleted
    }

    /// Paths of the segments, oldest first, with the first seq of each.
    pub fn segments(&self) -> Vec<(u64, PathBuf)> {
        self.inner
            .segments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|s| (s.first_seq, s.path.clone()))
            .collect()
    }

    /// Lets another process (or a restart in this one) open the journal. Called at shutdown, once
    /// nothing appends any more.
    pub fn release(&self) {
        self.inner
            .lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Fault injection for tests: the next `n` syncs fail.
    #[cfg(test)]
    pub fn fail_next_syncs(&self, n: u64) {
        self.inner.fail_syncs.store(n, Ordering::Release);
    }
}

/// A flush slower than this is worth telling the operator about.
const SLOW_FLUSH: Duration = Duration::from_millis(100);

/// At most one slow-flush warning per this long.
const SLOW_FLUSH_LOG_EVERY: Duration = Duration::from_secs(10);

struct Writer {
    shared: Arc<Shared>,
    file: File,
    file_len: u64,
    next_seq: u64,
    durable_tx: watch::Sender<u64>,
    slow_flushes: u64,
    last_slow_log: Option<Instant>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Append>) {
        let mut buf = Vec::with_capacity(1 << 20);
        let mut group: Vec<(u64, oneshot::Sender<io::Result<u64>>)> = Vec::with_capacity(256);
        while let Ok(first) = rx.recv() {
            buf.clear();
            group.clear();
            let push = |a: Append, buf: &mut Vec<u8>, seq: u64| {
                encode_frame(seq, &a.payload, buf);
                (seq, a.done)
            };
            group.push(push(first, &mut buf, self.next_seq));
            self.next_seq += 1;
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(a) => {
                        group.push(push(a, &mut buf, self.next_seq));
                        self.next_seq += 1;
                    }
                    Err(_) => break,
                }
            }
            let flush_started = Instant::now();
            let result = self.write_and_sync(&buf);
            self.note_slow_flush(flush_started.elapsed(), group.len());
            match result {
                Ok(()) => {
                    let last = self.next_seq - 1;
                    self.durable_tx.send_replace(last);
                    for (seq, done) in group.drain(..) {
                        let _ = done.send(Ok(seq));
                    }
                    if self.file_len >= SEGMENT_BYTES {
                        if let Err(e) = self.roll() {
                            tracing::error!(error = %e, "journal: could not start a new segment");
                        }
                    }
                }
                Err(e) => {
                    // The frames may be partly on disk: start a new segment so that the next
                    // writes do not follow a torn frame, and give the failed seqs up.
                    tracing::error!(error = %e, records = group.len(), "journal: write or sync failed");
                    for (_, done) in group.drain(..) {
                        let _ = done.send(Err(io::Error::new(e.kind(), e.to_string())));
                    }
                    let _ = self.file.set_len(self.file_len);
                    if let Err(e) = self.roll() {
                        tracing::error!(error = %e, "journal: could not start a new segment");
                    }
                }
            }
        }
    }

    /// Logs (at most once per [`SLOW_FLUSH_LOG_EVERY`]) a flush that held callers up for longer
    /// than [`SLOW_FLUSH`]: the disk, shared with something writing a lot (PostgreSQL's checkpoint,
    /// the kernel's writeback), delayed the replies waiting for it.
    fn note_slow_flush(&mut self, took: Duration, records: usize) {
        if took < SLOW_FLUSH {
            return;
        }
        self.slow_flushes += 1;
        if self
            .last_slow_log
            .is_none_or(|at| at.elapsed() >= SLOW_FLUSH_LOG_EVERY)
        {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                records,
                slow_flushes = self.slow_flushes,
                "journal: the disk took long to make records durable; their replies waited (is something else writing heavily to this disk?)"
            );
            self.last_slow_log = Some(Instant::now());
        }
    }

    fn write_and_sync(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)?;
        let pending_failures = self.shared.fail_syncs.load(Ordering::Acquire);
        if pending_failures > 0 {
            self.shared
                .fail_syncs
                .store(pending_failures - 1, Ordering::Release);
            return Err(io::Error::other("injected sync failure"));
        }
        self.file.sync_data()?;
        self.file_len += buf.len() as u64;
        self.shared
            .bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn roll(&mut self) -> io::Result<()> {
        let path = self.shared.dir.join(segment_name(self.next_seq));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        sync_dir(&self.shared.dir)?;
        self.file = file;
        self.file_len = 0;
        let mut segments = self
            .shared
            .segments
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        segments.retain(|s| s.first_seq != self.next_seq);
        segments.push(Segment {
            first_seq: self.next_seq,
            path,
        });
        Ok(())
    }
}

/// Reads records in order from the segments, starting after a given seq, never past the durable
/// position. Used by the shipper.
#[derive(Debug)]
pub struct Cursor {
    /// Last seq returned.
    pub after: u64,
    open: Option<(u64, BufReader<File>)>,
}

impl Cursor {
    /// A cursor that returns records with seq > `after`.
    pub fn new(after: u64) -> Cursor {
        Cursor { after, open: None }
    }

    /// Up to `max` records with seq in (`after`, `durable`], in order.
    pub fn read(
        &mut self,
        journal: &Journal,
        durable: u64,
        max: usize,
    ) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        let segments = journal.segments();
        while out.len() < max && self.after < durable {
            // The segment holding after+1: the last one whose first seq <= after+1.
            let want = self.after + 1;
            let Some(idx) = segments.iter().rposition(|(first, _)| *first <= want) else {
                // Older records were deleted: skip to the first segment.
                match segments.first() {
                    Some((first, _)) if *first > want => {
                        self.after = first - 1;
                        continue;
                    }
                    _ => break,
                }
            };
            let (first, path) = &segments[idx];
            let reopen = !matches!(&self.open, Some((f, _)) if f == first);
            if reopen {
                let file = File::open(path)?;
                self.open = Some((*first, BufReader::new(file)));
            }
            let Some((_, reader)) = self.open.as_mut() else {
                break;
            };
            let before = reader.stream_position()?;
            match read_frame(reader)? {
                Frame::Record { seq, payload } => {
                    if seq > durable {
                        reader.seek(SeekFrom::Start(before))?;
                        break;
                    }
                    if seq > self.after {
                        self.after = seq;
                        out.push((seq, payload));
                    }
                }
                Frame::End | Frame::Torn | Frame::Corrupt => {
                    // Not written yet (or cut): move to the next segment if there is one past it.
                    reader.seek(SeekFrom::Start(before))?;
                    match segments.get(idx + 1) {
                        Some((next_first, _)) if *next_first <= durable => {
                            self.after = self.after.max(next_first - 1);
                            self.open = None;
                        }
                        _ => break,
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn temp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("svamlgate-journal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let mut buf = Vec::new();
        encode_frame(7, b"hello", &mut buf);
        assert_eq!(
            read_frame(&mut &buf[..]).unwrap(),
            Frame::Record {
                seq: 7,
                payload: b"hello".to_vec()
            }
        );
        assert_eq!(read_frame(&mut &buf[..10]).unwrap(), Frame::Torn);
        assert_eq!(read_frame(&mut &buf[..buf.len() - 1]).unwrap(), Frame::Torn);
        let mut bad = buf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(read_frame(&mut &bad[..]).unwrap(), Frame::Corrupt);
        let mut huge = buf.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read_frame(&mut &huge[..]).unwrap(), Frame::Corrupt);
        assert_eq!(read_frame(&mut &[][..]).unwrap(), Frame::End);
    }

    #[test]
    fn appends_survive_reopen_in_order() {
        let dir = temp();
        rt().block_on(async {
            let (j, rec) = Journal::open(&dir).unwrap();
            assert!(rec.records.is_empty());
            let mut handles = Vec::new();
            for i in 0..100u32 {
                let j = j.clone();
                handles.push(tokio::spawn(async move {
                    j.append(format!("r{i}").into_bytes()).await.unwrap()
                }));
            }
            let mut seqs = Vec::new();
            for h in handles {
                seqs.push(h.await.unwrap());
            }
            seqs.sort();
            assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
            assert_eq!(*j.durable().borrow(), 100);
            // A second open while this one holds the journal is refused.
            let err = Journal::open(&dir).err().unwrap();
            assert!(
                err.to_string().contains("in use by another svamlgate"),
                "{err}"
            );
            j.release();
        });
        let (_j, rec) = rt().block_on(async { Journal::open(&dir).unwrap() });
        assert_eq!(rec.records.len(), 100);
        assert!(rec.records.windows(2).all(|w| w[0].0 + 1 == w[1].0));
        assert_eq!(rec.cut_segments, 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_counted_and_start_up_goes_on() {
        for damage in ["torn", "corrupt", "garbage"] {
            let dir = temp();
            rt().block_on(async {
                let (j, _) = Journal::open(&dir).unwrap();
                for i in 0..10u32 {
                    j.append(vec![i as u8; 100]).await.unwrap();
                }
                j.release();
            });
            let seg = list_segments(&dir).unwrap().pop().unwrap().path;
            let mut bytes = std::fs::read(&seg).unwrap();
            match damage {
                "torn" => bytes.truncate(bytes.len() - 30),
                "corrupt" => {
                    let n = bytes.len() - 5;
                    bytes[n] ^= 0xff;
                }
                _ => bytes.extend_from_slice(&[0xab; 37]),
            }
            std::fs::write(&seg, &bytes).unwrap();
            let rec = rt().block_on(async {
                let (j, rec) = Journal::open(&dir).unwrap();
                // Appending after the cut continues the sequence.
                let seq = j.append(b"after".to_vec()).await.unwrap();
                j.release();
                let expected_last = if damage == "garbage" { 10 } else { 9 };
                assert_eq!(seq, expected_last + 1, "{damage}");
                rec
            });
            assert_eq!(rec.cut_segments, 1, "{damage}");
            assert!(rec.cut_bytes > 0);
            let kept = if damage == "garbage" { 10 } else { 9 };
            assert_eq!(rec.records.len(), kept, "{damage}");
            let (_j, again) = rt().block_on(async { Journal::open(&dir).unwrap() });
            assert_eq!(again.cut_segments, 0, "{damage}: the cut is permanent");
            assert_eq!(again.records.len(), kept + 1);
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn a_failed_sync_fails_its_appends_and_later_appends_work() {
        let dir = temp();
        rt().block_on(async {
            let (j, _) = Journal::open(&dir).unwrap();
            j.append(b"one".to_vec()).await.unwrap();
            j.fail_next_syncs(1);
            assert!(j.append(b"two".to_vec()).await.is_err());
            let seq = j.append(b"three".to_vec()).await.unwrap();
            assert_eq!(seq, 3);
            j.release();
        });
        let (_j, rec) = rt().block_on(async { Journal::open(&dir).unwrap() });
        let payloads: Vec<&[u8]> = rec.records.iter().map(|(_, p)| p.as_slice()).collect();
        // "two" may or may not be on disk (its write happened, its sync "failed"); "one" and
        // "three" are.
        assert!(payloads.contains(&&b"one"[..]) && payloads.contains(&&b"three"[..]));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cursor_reads_across_segments_and_shipped_segments_are_deleted() {
        let dir = temp();
        rt().block_on(async {
            let (j, _) = Journal::open(&dir).unwrap();
            for i in 0..5u32 {
                j.append(vec![i as u8]).await.unwrap();
            }
            // Force a second segment by reopening.
            j.release();
        });
        rt().block_on(async {
            let (j, rec) = Journal::open(&dir).unwrap();
            assert_eq!(rec.records.len(), 5);
            for i in 5..8u32 {
                j.append(vec![i as u8]).await.unwrap();
            }
            let mut c = Cursor::new(0);
            let got = c.read(&j, *j.durable().borrow(), 100).unwrap();
            assert_eq!(
                got.iter().map(|r| r.0).collect::<Vec<_>>(),
                (1..=8).collect::<Vec<_>>()
            );
            assert!(c.read(&j, 8, 100).unwrap().is_empty());
            j.mark_shipped(5).unwrap();
            // Not old enough for a retention that keeps everything of the last hour.
            let hour_ago = SystemTime::now() - Duration::from_secs(3600);
            assert_eq!(j.delete_shipped(Some(hour_ago)), 0);
            assert_eq!(j.delete_shipped(None), 1);
            assert_eq!(j.segments().len(), 1);
            j.mark_shipped(8).unwrap();
            // The segment being written is never deleted.
            assert_eq!(j.delete_shipped(None), 0);
            assert_eq!(j.segments().len(), 1);
            j.release();
        });
        let (_j, rec) = rt().block_on(async { Journal::open(&dir).unwrap() });
        assert_eq!(rec.shipped, 8);
        // What is left is shipped, kept for the replay window only.
        assert_eq!(
            rec.records.iter().map(|r| r.0).collect::<Vec<_>>(),
            [6, 7, 8]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
