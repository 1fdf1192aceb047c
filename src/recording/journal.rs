//! The local journal: an append-only log of checksummed records in segment files, made durable with
//! group commit. It is the one durability point on the reply path: a callback's record is appended and
//! `fdatasync`ed (one sync for every append that arrived meanwhile) before the reply is released; the
//! shipper ([`super::shipper`]) then moves records into PostgreSQL at its own pace.
//!
//! Layout of `<data dir>/journal/`:
//! * `<first seq, 20 digits>.seg`: frames `len: u32 LE | crc32c: u32 LE | seq: u64 LE | payload`, where
//!   the checksum covers the seq bytes and the payload. Sequence numbers increase by one per record,
//!   across segments and restarts. A segment may end in zeros: it was prepared ahead of time
//!   ([`spare`]), zero-filled to its full size, and frames are written over the zeros. An all-zero
//!   header followed by zeros only is the clean end of a segment.
//! * `spare`: the next segment, zero-filled and durable, waiting to be renamed when a segment starts.
//! * `spare.1`, `spare.2`, …: the reserve, more such files filled while the journal is quiet; one
//!   becomes `spare` when the writer takes it, so that a burst does not wait for zeros.
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
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use std::os::unix::fs::FileExt;

use crc::{Crc, Table, CRC_32_ISCSI};
use tokio::sync::{oneshot, watch};

mod spare;

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
    /// Clean end of data (the end of the file, or an all-zero header: space never written).
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
    if header.iter().all(|&b| b == 0) {
        // Never written: the preallocated rest of a segment (no frame has seq 0).
        return Ok(Frame::End);
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

/// One stretch of unreadable bytes found at open: what was cut, where it is kept, and which
/// records it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The segment it was found in.
    pub segment: PathBuf,
    /// Byte offsets in that segment: `[from, to)`.
    pub from: u64,
    /// End offset (exclusive).
    pub to: u64,
    /// Where the bytes are kept (`journal/quarantine/...`); None if they could not be saved.
    pub kept_in: Option<PathBuf>,
    /// Sequence numbers of the records lost with it (inclusive), when any.
    pub lost: Option<(u64, u64)>,
    /// Whether it is the unfinished last write of a crash (never acknowledged, so no record lost).
    pub torn_tail: bool,
}

impl Cut {
    /// Bytes cut.
    pub fn bytes(&self) -> u64 {
        self.to - self.from
    }

    /// Records lost.
    pub fn records(&self) -> u64 {
        self.lost.map_or(0, |(a, b)| b + 1 - a)
    }
}

/// What opening the journal found.
#[derive(Debug, Default, Clone)]
pub struct Recovery {
    /// Intact records found, in order (those not yet shipped and those kept for the replay window).
    pub records: Vec<(u64, Vec<u8>)>,
    /// Segments with torn or corrupt bytes.
    pub cut_segments: u64,
    /// Bytes cut off (kept in `journal/quarantine/`).
    pub cut_bytes: u64,
    /// Records lost to corruption (sequence numbers skipped by a cut).
    pub cut_records: u64,
    /// Every cut, in journal order.
    pub cuts: Vec<Cut>,
    /// Highest sequence number shipped, from the checkpoint.
    pub shipped: u64,
}

#[derive(Debug, Clone)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
}

/// How many segments at the start of `segments` hold only records up to `shipped`: segment i holds
/// seqs `[first_i, first_{i+1})`, so it is fully shipped when `first_{i+1} - 1 <= shipped`. The
/// segment being written (the last) is never counted.
fn fully_shipped(segments: &[Segment], shipped: u64) -> usize {
    segments
        .windows(2)
        .take_while(|w| w[1].first_seq.saturating_sub(1) <= shipped)
        .count()
}

/// Position up to which records are durable (the highest durable seq).
pub type Durable = watch::Receiver<u64>;

struct Append {
    payload: Vec<u8>,
    done: oneshot::Sender<Result<u64, Rejected>>,
}

enum Msg {
    Append(Append),
    /// Close the active segment (if it holds anything) so that it can be deleted once shipped.
    Roll,
}

/// A record the journal could not make durable, handed back with the reason.
#[derive(Debug)]
pub struct Rejected {
    /// Why.
    pub error: io::Error,
    /// The record, as given.
    pub payload: Vec<u8>,
}

/// How the journal's writer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteState {
    /// The last write worked.
    Ok,
    /// The last write failed (disk full, I/O error, read-only filesystem).
    Failing,
    /// A write did not fit under the disk limit (`SVAMLGATE_JOURNAL_MAX_BYTES`), and no room was
    /// made since (records small enough for the last bytes may still be taken).
    AtLimit,
}

const STATE_OK: u8 = 0;
const STATE_FAILING: u8 = 1;
const STATE_AT_LIMIT: u8 = 2;

/// Appends records; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Msg>,
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
    /// Held by [`Shared::delete_shipped`] for a whole round of deletions.
    deleting: Mutex<()>,
    durable: watch::Receiver<u64>,
    shipped: AtomicU64,
    bytes: AtomicU64,
    /// SVAMLGATE_JOURNAL_MAX_BYTES: appends that would take the journal past it are refused.
    max_bytes: u64,
    /// A segment is closed once it holds this many bytes (sized from `max_bytes`).
    segment_bytes: u64,
    /// [`WriteState`], as one of the `STATE_` values.
    state: AtomicU8,
    /// Groups (one `fdatasync` each) that failed since start.
    failed_writes: AtomicU64,
    /// The last write error.
    last_error: Mutex<Option<String>>,
    /// What opening found, and what the shipper found since (for readiness: a cut since start).
    cuts: Mutex<Vec<Cut>>,
    /// Test hook: fail the next fdatasync calls.
    fail_syncs: AtomicU64,
    /// The open `LOCK` file holding an exclusive `flock`: one process per journal.
    lock: Mutex<Option<File>>,
    /// Whether segments are prepared ahead of time ([`Options::preallocate`]).
    preallocate: bool,
    /// The spare segment and its preparer.
    spares: spare::Spares,
}

/// Opens (or creates) a segment that grows as it is written (no spare to write into), makes its
/// name durable, and gives its length.
fn open_growing(dir: &Path, path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    sync_dir(dir)?;
    let len = file.metadata()?.len();
    Ok((file, len))
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

/// A frame read from memory: its seq and where its payload is.
enum Parsed {
    Record { seq: u64, end: usize },
    End,
    Torn,
    Corrupt,
}

fn parse_at(data: &[u8], off: usize) -> Parsed {
    let rest = &data[off.min(data.len())..];
    if rest.is_empty() {
        return Parsed::End;
    }
    if rest[..rest.len().min(HEADER)].iter().all(|&b| b == 0) {
        // Zeros to the end: the preallocated space after the last frame. Anything written after
        // zeros is damage (a write whose first sectors did not reach the disk, or worse).
        return if rest.iter().all(|&b| b == 0) {
            Parsed::End
        } else {
            Parsed::Corrupt
        };
    }
    match read_frame(&mut &rest[..]) {
        Ok(Frame::Record { seq, payload }) => Parsed::Record {
            seq,
            end: off + HEADER + payload.len(),
        },
        Ok(Frame::End) => Parsed::End,
        Ok(Frame::Torn) | Err(_) => Parsed::Torn,
        Ok(Frame::Corrupt) => Parsed::Corrupt,
    }
}

/// The cheap part of [`parse_at`]: whether the header at `off` could start a frame after `prev`
/// (length possible, seq in the range the bytes left could hold). Only such offsets get a checksum.
fn plausible(data: &[u8], off: usize, prev: u64) -> bool {
    let Some(h) = data.get(off..off + HEADER) else {
        return false;
    };
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&h[8..16]);
    let seq = u64::from_le_bytes(seq);
    let most = ((data.len() - off) / HEADER) as u64 + 1;
    len <= MAX_PAYLOAD && off + HEADER + len <= data.len() && seq > prev && seq - prev <= most
}

/// The next offset at or after `from` where an intact frame with a seq after `prev` starts.
fn resync(data: &[u8], from: usize, prev: u64) -> Option<usize> {
    (from..data.len().saturating_sub(HEADER - 1)).find(|&off| {
        plausible(data, off, prev)
            && matches!(parse_at(data, off), Parsed::Record { seq, .. } if seq > prev)
    })
}

/// How many whole-looking frames (length fits, checksum aside) a damaged tail holds: those were
/// written completely and may have been acknowledged; a frame cut short never was.
fn whole_frames(data: &[u8], mut off: usize) -> u64 {
    let mut n = 0;
    while let Some(h) = data.get(off..off + HEADER) {
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len > MAX_PAYLOAD
            || off + HEADER + len > data.len()
            || h.iter().all(|&b| b == 0)
            || spare::torn_in_place(data, off, len)
        {
            break;
        }
        n += 1;
        off += HEADER + len;
    }
    n
}

/// Keeps unreadable bytes in `journal/quarantine/<segment>.<from>-<to>.bad`.
fn quarantine(dir: &Path, seg: &Segment, from: u64, bytes: &[u8]) -> Option<PathBuf> {
    let qdir = dir.join("quarantine");
    let name = seg.path.file_name()?.to_string_lossy().into_owned();
    let path = qdir.join(format!("{name}.{from}-{}.bad", from + bytes.len() as u64));
    let saved = std::fs::create_dir_all(&qdir)
        .and_then(|()| {
            let mut f = File::create(&path)?;
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| sync_dir(&qdir));
    match saved {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "journal: could not keep unreadable bytes in quarantine");
            None
        }
    }
}

/// Scans one segment. A damaged stretch (bad checksum, impossible length, torn frame) costs only
/// itself: the scan resynchronises on the next intact frame. Damaged bytes are copied to the
/// quarantine, then the segment is rewritten with its intact frames only (cut, when the damage is
/// at the end). `next_first` is the first seq of the following segment, if any (it bounds what a
/// damaged end lost).
fn scan_segment(dir: &Path, seg: &Segment, next_first: Option<u64>) -> io::Result<Scanned> {
    let data = std::fs::read(&seg.path)?;
    let found = scan_frames(dir, seg, &data, next_first);
    if found.cuts.is_empty() {
        return Ok(Scanned {
            records: found.records,
            cuts: found.cuts,
            end: found.good.last().map_or(0, |g| g.1) as u64,
            len: data.len() as u64,
        });
    }
    keep_intact(dir, seg, &data, &found.good)?;
    let len = std::fs::metadata(&seg.path)?.len();
    Ok(Scanned {
        records: found.records,
        cuts: found.cuts,
        end: len,
        len,
    })
}

/// What reading a segment's bytes found.
struct Frames {
    records: Records,
    cuts: Vec<Cut>,
    /// Byte ranges of the intact frames, in order.
    good: Vec<(usize, usize)>,
}

/// Reads a segment's frames in order; each damaged stretch becomes a [`Cut`] (its bytes kept in
/// the quarantine) and reading goes on after it.
fn scan_frames(dir: &Path, seg: &Segment, data: &[u8], next_first: Option<u64>) -> Frames {
    let mut found = Frames {
        records: Vec::new(),
        cuts: Vec::new(),
        good: Vec::new(),
    };
    let mut prev = seg.first_seq.saturating_sub(1);
    let mut off = 0usize;
    loop {
        match parse_at(data, off) {
            Parsed::End => break,
            Parsed::Record { seq, end } if seq > prev => {
                found.records.push((seq, data[off + HEADER..end].to_vec()));
                found.good.push((off, end));
                prev = seq;
                off = end;
            }
            // A frame with a good checksum but a seq that does not follow: only corruption that a
            // checksum happened to pass makes one; treat it as damage.
            Parsed::Record { .. } | Parsed::Torn | Parsed::Corrupt => {
                let damage = damage_at(data, off, prev, next_first);
                found.cuts.push(Cut {
                    segment: seg.path.clone(),
                    from: off as u64,
                    to: damage.to as u64,
                    kept_in: quarantine(dir, seg, off as u64, &data[off..damage.to]),
                    lost: damage.lost,
                    torn_tail: damage.torn_tail,
                });
                if let Some((_, last)) = damage.lost {
                    prev = last;
                }
                off = damage.to;
            }
        }
    }
    found
}

/// A damaged stretch of a segment, as [`damage_at`] measures it.
#[derive(Debug, PartialEq, Eq)]
struct Damage {
    /// Where it ends (exclusive): the next intact frame, or the last written byte.
    to: usize,
    /// The seqs it cost (inclusive), when any.
    lost: Option<(u64, u64)>,
    /// The unfinished last write of a crash (never acknowledged).
    torn_tail: bool,
}

/// Measures the damage starting at `off`, after the intact record `prev`: it ends at the next
/// intact frame, whose seq bounds what was lost; a damaged end is bounded by the next segment's
/// first seq (`next_first`), or, in the last segment, costs the whole frames it holds (written
/// completely, so perhaps acknowledged) and nothing when it holds none (a torn tail).
fn damage_at(data: &[u8], off: usize, prev: u64, next_first: Option<u64>) -> Damage {
    let lost_before = |seq: u64| (seq > prev + 1).then(|| (prev + 1, seq - 1));
    match resync(data, off + 1, prev) {
        Some(to) => {
            let Parsed::Record { seq, .. } = parse_at(data, to) else {
                unreachable!("resync returns intact frames only")
            };
            Damage {
                to,
                lost: lost_before(seq),
                torn_tail: false,
            }
        }
        None => {
            // A damaged end stops at its last written byte: the zeros after it are the
            // preallocated space of the segment, not damage.
            let to = spare::trim_zeros(data, off);
            match next_first {
                Some(nf) => Damage {
                    to,
                    lost: lost_before(nf),
                    torn_tail: false,
                },
                None => {
                    let whole = whole_frames(data, off);
                    Damage {
                        to,
                        lost: (whole > 0).then(|| (prev + 1, prev + whole)),
                        torn_tail: whole == 0,
                    }
                }
            }
        }
    }
}

/// Leaves only the intact frames (`good`) in a damaged segment: cut off when the damage is at the
/// end only, else the segment is rewritten (through a temporary file and a rename).
fn keep_intact(dir: &Path, seg: &Segment, data: &[u8], good: &[(usize, usize)]) -> io::Result<()> {
    let contiguous = good
        .iter()
        .try_fold(0usize, |at, &(from, to)| (from == at).then_some(to))
        .is_some();
    if contiguous {
        // Damage at the end only: cut it off.
        let good_end = good.last().map_or(0, |g| g.1);
        let file = OpenOptions::new().write(true).open(&seg.path)?;
        file.set_len(good_end as u64)?;
        file.sync_all()?;
        return Ok(());
    }
    // Damage in the middle: rewrite the segment with its intact frames.
    let tmp = seg.path.with_extension("seg.tmp");
    let mut f = File::create(&tmp)?;
    for &(from, to) in good {
        f.write_all(&data[from..to])?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, &seg.path)?;
    sync_dir(dir)
}

/// What scanning a segment found.
struct Scanned {
    records: Records,
    cuts: Vec<Cut>,
    /// Offset after the last intact frame.
    end: u64,
    /// The file's size after the scan (beyond `end`: zeros, the preallocated space).
    len: u64,
}

/// Segment size for a disk limit: an eighth of it, between 64 KiB and [`SEGMENT_BYTES`], so that
/// shipped segments can be deleted well before the limit is reached.
pub fn segment_bytes_for(max_bytes: u64) -> u64 {
    (max_bytes / 8).clamp(64 * 1024, SEGMENT_BYTES)
}

/// How a journal is opened.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `SVAMLGATE_JOURNAL_MAX_BYTES`: appends that would take the journal past it are refused.
    pub max_bytes: u64,
    /// Write into zero-filled segments prepared ahead of time (the default), so that a flush
    /// changes no file metadata; false appends to growing files.
    pub preallocate: bool,
    /// `SVAMLGATE_JOURNAL_SPARES`: zero-filled segments kept ready, the spare and its reserve
    /// ([`spare`]); `None`: [`spares_for`] the limit.
    pub spares: Option<usize>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_bytes: u64::MAX,
            preallocate: true,
            spares: None,
        }
    }
}

/// Spares kept ready by default for a disk limit: half of it in segments, from 1 to 16 (16
/// segments of 32 MiB, 512 MiB, for the default limit of 1 GiB: about 286,000 records of 1.9 KB,
/// nine seconds of a burst at the benchmark's 32,000/s). They are given up when records need the
/// room.
pub fn spares_for(max_bytes: u64) -> usize {
    let n = max_bytes / 2 / segment_bytes_for(max_bytes);
    usize::try_from(n).unwrap_or(usize::MAX).clamp(1, 16)
}

/// What scanning every segment at open found, beside the records and cuts put in [`Recovery`].
struct Recovered {
    /// Bytes held in the segment files.
    bytes: u64,
    /// The highest seq found (or lost to a cut), at least the shipped checkpoint.
    last_seq: u64,
    /// The last segment, when it can be written on in place: (segment, end of its frames, size,
    /// seq its next frame must have).
    reusable: Option<(Segment, u64, u64, u64)>,
}

/// Scans every segment in order: intact records and cuts go to `recovery` (each cut logged).
fn recover_segments(
    dir: &Path,
    segments: &[Segment],
    recovery: &mut Recovery,
) -> io::Result<Recovered> {
    let mut found = Recovered {
        bytes: 0,
        last_seq: recovery.shipped,
        reusable: None,
    };
    let mut prev = 0u64;
    for (i, seg) in segments.iter().enumerate() {
        let next_first = segments.get(i + 1).map(|s| s.first_seq);
        let scanned = scan_segment(dir, seg, next_first)?;
        let clean = scanned.cuts.is_empty();
        if !clean {
            recovery.cut_segments += 1;
        }
        for cut in scanned.cuts {
            log_cut(seg, &cut);
            recovery.cut_bytes += cut.bytes();
            recovery.cut_records += cut.records();
            if let Some((_, last)) = cut.lost {
                found.last_seq = found.last_seq.max(last);
            }
            recovery.cuts.push(cut);
        }
        found.bytes += scanned.len;
        let follows = scanned
            .records
            .last()
            .map_or(seg.first_seq, |(seq, _)| seq + 1);
        found.reusable = (clean && scanned.len > scanned.end)
            .then(|| (seg.clone(), scanned.end, scanned.len, follows));
        for (seq, payload) in scanned.records {
            // Sequence numbers only grow; a record that does not is skipped (it can only be
            // corruption that a checksum happened to pass).
            if seq <= prev {
                continue;
            }
            prev = seq;
            found.last_seq = found.last_seq.max(seq);
            recovery.records.push((seq, payload));
        }
    }
    Ok(found)
}

/// Logs a cut found at open: a warning for the torn tail of a crash, an error for lost records.
fn log_cut(seg: &Segment, cut: &Cut) {
    if cut.torn_tail {
        tracing::warn!(
            segment = %seg.path.display(),
            offset = cut.from,
            bytes = cut.bytes(),
            kept_in = ?cut.kept_in,
            "journal: the unfinished last write of a crash was cut (never acknowledged: no record lost)"
        );
    } else {
        tracing::error!(
            segment = %seg.path.display(),
            from_offset = cut.from,
            to_offset = cut.to,
            bytes = cut.bytes(),
            records_lost = cut.records(),
            first_lost_seq = cut.lost.map(|l| l.0),
            last_lost_seq = cut.lost.map(|l| l.1),
            kept_in = ?cut.kept_in,
            "journal: unreadable bytes cut; reading went on at the next intact record"
        );
    }
}

/// The segment the writer starts in.
struct Active {
    first_seq: u64,
    path: PathBuf,
    file: File,
    /// End of the frames written.
    file_len: u64,
    /// The file's size (beyond `file_len`: preallocated zeros).
    capacity: u64,
}

impl Active {
    /// A preallocated last segment, intact, whose frames end where the next one belongs, is
    /// written on in place (its zeros are what preallocation is for). Otherwise writes go to a
    /// fresh segment: an existing one may have been cut.
    fn open(
        dir: &Path,
        reusable: Option<(Segment, u64, u64, u64)>,
        next: u64,
    ) -> io::Result<Active> {
        if let Some((seg, end, len, follows)) = reusable {
            if follows == next {
                let file = spare::open_in_place(&seg.path)?;
                return Ok(Active {
                    first_seq: seg.first_seq,
                    path: seg.path,
                    file,
                    file_len: end,
                    capacity: len,
                });
            }
        }
        let path = dir.join(segment_name(next));
        let (file, len) = open_growing(dir, &path)?;
        Ok(Active {
            first_seq: next,
            path,
            file,
            file_len: len,
            capacity: len,
        })
    }
}

impl Shared {
    /// The state shared by the handles, the writer and the spare's preparer, as opening found it.
    fn new(
        dir: &Path,
        options: Options,
        segments: Vec<Segment>,
        durable: watch::Receiver<u64>,
        bytes: u64,
        recovery: &Recovery,
        lock: File,
    ) -> Shared {
        Shared {
            dir: dir.to_path_buf(),
            segments: Mutex::new(segments),
            deleting: Mutex::new(()),
            durable,
            shipped: AtomicU64::new(recovery.shipped),
            bytes: AtomicU64::new(bytes),
            max_bytes: options.max_bytes,
            segment_bytes: segment_bytes_for(options.max_bytes),
            state: AtomicU8::new(STATE_OK),
            failed_writes: AtomicU64::new(0),
            last_error: Mutex::new(None),
            cuts: Mutex::new(recovery.cuts.clone()),
            fail_syncs: AtomicU64::new(0),
            lock: Mutex::new(Some(lock)),
            preallocate: options.preallocate,
            spares: spare::Spares::default(),
        }
    }
}

impl Journal {
    /// Opens (creating) the journal in `dir` without a disk limit.
    pub fn open(dir: &Path) -> io::Result<(Journal, Recovery)> {
        Journal::open_with_limit(dir, u64::MAX)
    }

    /// Opens (creating) the journal in `dir`, recovers what it holds and starts the writer thread.
    /// Appends that would take the segments past `max_bytes` are refused ([`Rejected`]).
    pub fn open_with_limit(dir: &Path, max_bytes: u64) -> io::Result<(Journal, Recovery)> {
        Journal::open_with(
            dir,
            Options {
                max_bytes,
                ..Options::default()
            },
        )
    }

    /// Opens (creating) the journal in `dir` with these options.
    pub fn open_with(dir: &Path, options: Options) -> io::Result<(Journal, Recovery)> {
        let segment_bytes = segment_bytes_for(options.max_bytes);
        std::fs::create_dir_all(dir)?;
        let lock = lock(dir)?;
        let mut recovery = Recovery {
            shipped: read_checkpoint(dir),
            ..Default::default()
        };
        let spare_ready = spare::recover(dir, options.preallocate, segment_bytes)?;
        let spares = options
            .spares
            .unwrap_or_else(|| spares_for(options.max_bytes));
        let reserve_target = spares.saturating_sub(1);
        let reserve =
            spare::recover_reserve(dir, options.preallocate, segment_bytes, reserve_target)?;
        let mut segments = list_segments(dir)?;
        let found = recover_segments(dir, &segments, &mut recovery)?;
        let next = found.last_seq + 1;
        let active = Active::open(dir, found.reusable, next)?;
        segments.retain(|s| s.first_seq != active.first_seq);
        segments.push(Segment {
            first_seq: active.first_seq,
            path: active.path.clone(),
        });
        let (durable_tx, durable_rx) = watch::channel(found.last_seq);
        let shared = Arc::new(Shared::new(
            dir,
            options,
            segments,
            durable_rx,
            spare_ready.unwrap_or(0) + reserve as u64 * segment_bytes + found.bytes,
            &recovery,
            lock,
        ));
        {
            let mut st = shared.spares.lock();
            st.ready = spare_ready;
            st.reserve = reserve;
            st.reserve_target = reserve_target;
            // Busy before (a preallocated segment in use, or a spare left): go on preparing.
            st.want = options.preallocate
                && (active.capacity > active.file_len || spare_ready.is_some() || reserve > 0);
        }
        if options.preallocate {
            spare::Spares::start(shared.clone())?;
        }
        let (tx, rx) = mpsc::channel::<Msg>();
        let writer = Writer::new(shared.clone(), active, next, durable_tx);
        std::thread::Builder::new()
            .name("svamlgate-journal".into())
            .spawn(move || writer.run(rx))?;
        Ok((Journal { tx, inner: shared }, recovery))
    }

    /// Appends a record and waits until it is durable; returns its sequence number.
    pub async fn append(&self, payload: Vec<u8>) -> io::Result<u64> {
        self.append_or_return(payload).await.map_err(|r| r.error)
    }

    /// As [`Journal::append`], but a record that could not be made durable is handed back.
    pub async fn append_or_return(&self, payload: Vec<u8>) -> Result<u64, Rejected> {
        let (done, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Msg::Append(a))) =
            self.tx.send(Msg::Append(Append { payload, done }))
        {
            return Err(Rejected {
                error: io::Error::other("journal writer stopped"),
                payload: a.payload,
            });
        }
        rx.await.unwrap_or_else(|_| {
            Err(Rejected {
                error: io::Error::other("journal writer stopped"),
                payload: Vec::new(),
            })
        })
    }

    /// Asks the writer to close the active segment (if it holds anything), so that it can be
    /// deleted once shipped.
    pub fn request_roll(&self) {
        let _ = self.tx.send(Msg::Roll);
    }

    /// The highest durable sequence number, and a way to wait for it to change.
    pub fn durable(&self) -> Durable {
        self.inner.durable.clone()
    }

    /// Highest shipped sequence number.
    pub fn shipped(&self) -> u64 {
        self.inner.shipped.load(Ordering::Acquire)
    }

    /// Bytes held in segment files, the spare and its reserve (a preallocated segment counts in full).
    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// The disk limit the journal was opened with.
    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    /// Size at which a segment is closed.
    pub fn segment_bytes(&self) -> u64 {
        self.inner.segment_bytes
    }

    /// How the last write went.
    pub fn write_state(&self) -> WriteState {
        match self.inner.state.load(Ordering::Acquire) {
            STATE_FAILING => WriteState::Failing,
            STATE_AT_LIMIT => WriteState::AtLimit,
            _ => WriteState::Ok,
        }
    }

    /// Groups of appends that failed since start, and the last error.
    pub fn failures(&self) -> (u64, Option<String>) {
        (
            self.inner.failed_writes.load(Ordering::Acquire),
            self.inner
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// Every unreadable stretch cut since start (empty when nothing was damaged).
    pub fn cuts(&self) -> Vec<Cut> {
        self.inner
            .cuts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

    /// Bytes of the segments not known to be fully shipped: the segment being written and every
    /// one holding a record past [`Journal::shipped`]. Unlike [`Journal::bytes`], shipped segments
    /// kept for the replay window do not count: they are deleted at once near the limit.
    pub fn unshipped_bytes(&self) -> u64 {
        self.inner.unshipped_bytes()
    }

    /// Deletes segments whose records are all shipped and that were last written before
    /// `keep_after` (or any fully shipped segment when `keep_after` is None). The segment being
    /// written is never deleted. Returns the number of segments deleted.
    pub fn delete_shipped(&self, keep_after: Option<SystemTime>) -> usize {
        self.inner.delete_shipped(keep_after)
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
        self.inner.spares.stop();
        self.inner
            .lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Zero-filled segments ready to be written into: the spare and its reserve ([`spare`]).
    pub fn spares_ready(&self) -> usize {
        let st = self.inner.spares.lock();
        usize::from(st.ready.is_some()) + st.reserve
    }

    /// Fault injection for tests: the next `n` syncs fail.
    #[cfg(test)]
    pub fn fail_next_syncs(&self, n: u64) {
        self.inner.fail_syncs.store(n, Ordering::Release);
    }
}

impl Shared {
    /// [`Journal::unshipped_bytes`].
    fn unshipped_bytes(&self) -> u64 {
        let shipped = self.shipped.load(Ordering::Acquire);
        let segments = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        segments[fully_shipped(&segments, shipped)..]
            .iter()
            .map(|seg| std::fs::metadata(&seg.path).map_or(0, |m| m.len()))
            .sum()
    }

    /// Whether a spare more fits in the reserve: the journal stays under three quarters of its
    /// limit (clear of `near_limit`), and PostgreSQL keeps up (unshipped records under a quarter
    /// of it; in an outage the room is the records').
    fn room_for_reserve(&self) -> bool {
        self.bytes.load(Ordering::Acquire) + self.segment_bytes <= self.max_bytes / 4 * 3
            && self.unshipped_bytes() <= self.max_bytes / 4
    }

    /// Counts `n` more bytes if they fit under the limit.
    fn reserve_bytes(&self, n: u64) -> bool {
        self.bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                b.checked_add(n).filter(|&t| t <= self.max_bytes)
            })
            .is_ok()
    }

    /// Counts `n` bytes less.
    fn release_bytes(&self, n: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(n))
            });
    }

    /// Gives the spare and its reserve up (deleted, or a preparation cancelled) so that records
    /// get their room.
    fn drop_spare(&self) {
        let mut st = self.spares.lock();
        let reserve = std::mem::take(&mut st.reserve);
        let deleted = spare::delete_reserve(&self.dir, reserve);
        self.release_bytes(deleted as u64 * self.segment_bytes);
        if let Some(size) = st.ready.take() {
            if std::fs::remove_file(self.dir.join(spare::SPARE)).is_ok() {
                self.release_bytes(size);
            }
        }
        st.cancel = true;
        st.retry_at = Some(Instant::now() + Duration::from_secs(10));
    }

    /// Deletes shipped segments, oldest first. The segment list's lock is held only to look at
    /// the oldest segment and to take it off the list, never across the `unlink`: on a filesystem
    /// mounted with `discard`, an unlink waits for the device to discard the segment's blocks
    /// (about 8 ms for 32 MB on the benchmark's disk, longer under load), and the writer takes
    /// the same lock to start a segment (docs/benchmarks.md, session 21). One deleter at a time
    /// (`deleting`), so that two never race for the same file.
    fn delete_shipped(&self, keep_after: Option<SystemTime>) -> usize {
        let _one = self.deleting.lock().unwrap_or_else(|p| p.into_inner());
        let shipped = self.shipped.load(Ordering::Acquire);
        let mut deleted = 0;
        loop {
            let oldest = {
                let segments = self.segments.lock().unwrap_or_else(|p| p.into_inner());
                (fully_shipped(&segments, shipped) > 0).then(|| segments[0].path.clone())
            };
            let Some(path) = oldest else { break };
            // One look at the file gives both its age and its size.
            let meta = std::fs::metadata(&path).ok();
            let old_enough = match keep_after {
                None => true,
                Some(t) => meta
                    .as_ref()
                    .and_then(|m| m.modified().ok())
                    .is_none_or(|m| m < t),
            };
            if !old_enough {
                break;
            }
            let len = meta.map_or(0, |m| m.len());
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(error = %e, segment = %path.display(), "journal: could not delete a shipped segment");
                break;
            }
            let _ = self
                .bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                    Some(b.saturating_sub(len))
                });
            // Only this deleter takes segments off the front; the writer only adds at the end.
            self.segments
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|s| s.path != path);
            deleted += 1;
        }
        if deleted > 0 {
            let _ = sync_dir(&self.dir);
            // Room for a spare, perhaps.
            self.spares.nudge();
        }
        deleted
    }
}

/// A flush slower than this is worth telling the operator about.
const SLOW_FLUSH: Duration = Duration::from_millis(100);

/// At most one slow-flush warning per this long.
const SLOW_FLUSH_LOG_EVERY: Duration = Duration::from_secs(10);

/// At most one write-failure error per this long (with the count since the last one).
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// Rate-limits a log line: says whether to log now, and how many occurrences the line covers.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    pending: u64,
}

impl Throttle {
    /// At most one line per `every`.
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            pending: 0,
        }
    }

    /// Counts `n` occurrences; returns how many to report if a line is due now.
    pub fn hit(&mut self, n: u64) -> Option<u64> {
        self.pending += n;
        if self.last.is_none_or(|at| at.elapsed() >= self.every) {
            self.last = Some(Instant::now());
            Some(std::mem::take(&mut self.pending))
        } else {
            None
        }
    }

    /// Occurrences not yet reported (and forgets them).
    pub fn take(&mut self) -> u64 {
        std::mem::take(&mut self.pending)
    }
}

struct Writer {
    shared: Arc<Shared>,
    file: File,
    /// Where the next frame goes: the end of the frames written.
    file_len: u64,
    /// The file's size: beyond `file_len`, zeros written ahead of time (a preallocated segment);
    /// equal to it for a plain, growing one.
    capacity: u64,
    next_seq: u64,
    durable_tx: watch::Sender<u64>,
    slow_flushes: u64,
    last_slow_log: Option<Instant>,
    failures: Throttle,
    /// The journal's bytes when it last refused a group at its limit, until room is made.
    limit_hit_at: Option<u64>,
    /// Spares were asked for ([`Writer::want_spares`]; they stay wanted): no lock after each
    /// flush to ask again.
    spares_asked: bool,
}

type Waiting = Vec<(u64, Vec<u8>, oneshot::Sender<Result<u64, Rejected>>)>;

impl Writer {
    fn new(
        shared: Arc<Shared>,
        active: Active,
        next_seq: u64,
        durable_tx: watch::Sender<u64>,
    ) -> Writer {
        Writer {
            shared,
            file: active.file,
            file_len: active.file_len,
            capacity: active.capacity,
            next_seq,
            durable_tx,
            slow_flushes: 0,
            last_slow_log: None,
            failures: Throttle::new(FAILURE_LOG_EVERY),
            limit_hit_at: None,
            spares_asked: false,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut buf = Vec::with_capacity(1 << 20);
        let mut group: Waiting = Vec::with_capacity(256);
        while let Ok(first) = rx.recv() {
            let first_seq = self.next_seq;
            let roll = self.gather(first, &rx, &mut buf, &mut group);
            if roll && self.file_len > 0 {
                self.roll_or_log(first_seq);
            }
            if !group.is_empty() {
                self.flush(&buf, &mut group, first_seq);
            }
        }
        // Every handle is gone: the preparer ends too.
        self.shared.spares.stop();
    }

    /// Takes `first` and what else is waiting (up to [`MAX_GROUP`] appends) as one group: their
    /// frames into `buf`, numbered from `next_seq` on, their callers into `group`. Returns whether
    /// a roll was asked for.
    fn gather(
        &mut self,
        first: Msg,
        rx: &mpsc::Receiver<Msg>,
        buf: &mut Vec<u8>,
        group: &mut Waiting,
    ) -> bool {
        buf.clear();
        group.clear();
        let mut roll = false;
        let mut msg = Some(first);
        while let Some(m) = msg {
            match m {
                Msg::Append(a) => {
                    encode_frame(self.next_seq, &a.payload, buf);
                    group.push((self.next_seq, a.payload, a.done));
                    self.next_seq += 1;
                }
                Msg::Roll => roll = true,
            }
            msg = if group.len() < MAX_GROUP {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        roll
    }

    /// Writes a group's frames and makes them durable (one `fdatasync`), then answers its
    /// callers; a group that does not fit under the disk limit, or whose write fails, is handed
    /// back to them.
    fn flush(&mut self, buf: &[u8], group: &mut Waiting, first_seq: u64) {
        // A write that would grow the file goes to the spare instead, when one is ready.
        if self.file_len + buf.len() as u64 > self.capacity
            && self.shared.spares.lock().ready.is_some()
        {
            self.roll_or_log(first_seq);
        }
        if !self.fits(buf.len() as u64, first_seq) {
            let e = io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "the journal is at its disk limit ({} bytes, SVAMLGATE_JOURNAL_MAX_BYTES)",
                    self.shared.max_bytes
                ),
            );
            self.limit_hit_at = Some(self.shared.bytes.load(Ordering::Acquire));
            self.give_up(group, first_seq, e, STATE_AT_LIMIT);
            return;
        }
        let flush_started = Instant::now();
        let result = self.write_and_sync(buf);
        self.note_slow_flush(flush_started.elapsed(), group.len());
        match result {
            Ok(()) => self.written(group),
            Err(e) => self.failed(e, buf.len() as u64, group, first_seq),
        }
    }

    /// The group is durable: the durable position moves, its callers get their seqs.
    fn written(&mut self, group: &mut Waiting) {
        let last = self.next_seq - 1;
        self.durable_tx.send_replace(last);
        // At its limit, a group small enough for the last bytes left still fits: the journal stays
        // at its limit (readiness, metrics) until room is made, not until such a group comes.
        let room_made = self
            .limit_hit_at
            .is_none_or(|at| self.shared.bytes.load(Ordering::Acquire) < at);
        let now = if room_made {
            self.limit_hit_at = None;
            STATE_OK
        } else {
            STATE_AT_LIMIT
        };
        let was = self.shared.state.swap(now, Ordering::AcqRel);
        if was != STATE_OK && now == STATE_OK {
            let missed = self.failures.take();
            tracing::info!(
                failed_writes_not_logged = missed,
                "journal: writing works again; records held in memory go back through it"
            );
        }
        for (seq, _, done) in group.drain(..) {
            let _ = done.send(Ok(seq));
        }
        self.want_spares();
        if self.file_len >= self.shared.segment_bytes {
            self.roll_or_log(self.next_seq);
        }
    }

    /// The group's write of `len` bytes failed: undo it and hand its records back.
    fn failed(&mut self, e: io::Error, len: u64, group: &mut Waiting, first_seq: u64) {
        // The frames may be partly on disk: cut them off, so that the next write follows the
        // last good frame in the same file (no new file per failure). Their seqs are used again,
        // unless the cut failed too.
        let next = if self.undo(len) {
            first_seq
        } else {
            self.next_seq
        };
        if e.kind() == io::ErrorKind::StorageFull {
            // A full disk: what is shipped goes now, not at the end of the replay window, so
            // that the next write may fit.
            self.make_room(first_seq);
        }
        self.give_up(group, next, e, STATE_FAILING);
    }

    /// Whether `len` more bytes fit under the disk limit, after deleting what is shipped (and
    /// closing the active segment when everything in it is shipped).
    fn fits(&mut self, len: u64, first_seq: u64) -> bool {
        // Only what grows the file counts: frames written over a preallocated segment's zeros
        // take no more disk.
        let fits = |w: &Writer| {
            let growth = (w.file_len + len).saturating_sub(w.capacity);
            w.shared
                .bytes
                .load(Ordering::Acquire)
                .saturating_add(growth)
                <= w.shared.max_bytes
        };
        if fits(self) {
            return true;
        }
        self.make_room(first_seq);
        fits(self)
    }

    /// Asks for spares once the journal is busy enough to be worth them: a plain segment past
    /// [`Writer::prealloc_after`] bytes (a quiet instance, or a test, never writes a spare).
    fn want_spares(&mut self) {
        if self.spares_asked || !self.shared.preallocate || self.file_len < self.prealloc_after() {
            return;
        }
        self.spares_asked = true;
        let mut st = self.shared.spares.lock();
        if !st.want {
            st.want = true;
            drop(st);
            self.shared.spares.nudge();
        }
    }

    /// A quarter of a segment, at most 1 MiB.
    fn prealloc_after(&self) -> u64 {
        (self.shared.segment_bytes / 4).min(1 << 20)
    }

    /// Undoes a failed write of `len` bytes at the end of the frames: zeros again where the
    /// segment was preallocated, cut off where the file grew. False when that failed too.
    fn undo(&mut self, len: u64) -> bool {
        let in_place = self
            .capacity
            .min(self.file_len + len)
            .saturating_sub(self.file_len);
        let zeroed = in_place == 0
            || self
                .file
                .write_all_at(&vec![0u8; in_place as usize], self.file_len)
                .is_ok();
        zeroed && self.file.set_len(self.capacity.max(self.file_len)).is_ok()
    }

    /// Deletes every shipped segment, closing the active one first when all of it is shipped.
    /// The spare is given up first: records before preallocation.
    fn make_room(&mut self, first_seq: u64) {
        self.shared.drop_spare();
        let all_shipped = self.shared.shipped.load(Ordering::Acquire) + 1 >= first_seq;
        if all_shipped && self.file_len > 0 {
            self.roll_or_log(first_seq);
        }
        self.shared.delete_shipped(None);
    }

    /// Fails a group: its records are handed back to their callers.
    fn give_up(&mut self, group: &mut Waiting, next_seq: u64, e: io::Error, state: u8) {
        self.next_seq = next_seq;
        self.shared.state.store(state, Ordering::Release);
        self.shared.failed_writes.fetch_add(1, Ordering::AcqRel);
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        if let Some(n) = self.failures.hit(1) {
            if state == STATE_AT_LIMIT {
                tracing::warn!(error = %e, failed_writes = n, records = group.len(),
                    "journal: at its disk limit; records are held in memory and shipped from there");
            } else {
                tracing::error!(error = %e, failed_writes = n, records = group.len(),
                    "journal: write or sync failed; records are held in memory and the journal is retried");
            }
        }
        for (_, payload, done) in group.drain(..) {
            let _ = done.send(Err(Rejected {
                error: io::Error::new(e.kind(), e.to_string()),
                payload,
            }));
        }
    }

    fn roll_or_log(&mut self, first_seq: u64) {
        if let Err(e) = self.roll(first_seq) {
            if let Some(n) = self.failures.hit(1) {
                tracing::error!(error = %e, failures = n, "journal: could not start a new segment; writing on in the current one");
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
        self.file.write_all_at(buf, self.file_len)?;
        let pending_failures = self.shared.fail_syncs.load(Ordering::Acquire);
        if pending_failures > 0 {
            self.shared
                .fail_syncs
                .store(pending_failures - 1, Ordering::Release);
            return Err(io::Error::other("injected sync failure"));
        }
        self.file.sync_data()?;
        let end = self.file_len + buf.len() as u64;
        let growth = end.saturating_sub(self.capacity);
        self.file_len = end;
        self.capacity = self.capacity.max(end);
        self.shared.bytes.fetch_add(growth, Ordering::Relaxed);
        Ok(())
    }

    /// Starts a new segment whose first record will be `first_seq`.
    fn roll(&mut self, first_seq: u64) -> io::Result<()> {
        let path = self.shared.dir.join(segment_name(first_seq));
        let (file, file_len, capacity) = match self.take_spare(&path) {
            Some(file) => (file, 0, self.shared.segment_bytes),
            None => {
                if self.shared.preallocate {
                    self.shared.spares.segment_started(false);
                }
                let (file, len) = open_growing(&self.shared.dir, &path)?;
                (file, len, len)
            }
        };
        self.file = file;
        self.file_len = file_len;
        self.capacity = capacity;
        let mut segments = self
            .shared
            .segments
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        segments.retain(|s| s.first_seq != first_seq);
        segments.push(Segment { first_seq, path });
        Ok(())
    }
}

impl Writer {
    /// Renames the ready spare to `path` and opens it. The directory is made durable by the
    /// preparer, off the reply path; until then, a crash leaves the records under the spare's
    /// name, and the next open reads them from there ([`spare::recover`]).
    fn take_spare(&mut self, path: &Path) -> Option<File> {
        let size = self.shared.spares.lock().ready.take()?;
        let from = self.shared.dir.join(spare::SPARE);
        let replaced = std::fs::metadata(path).map_or(0, |m| m.len());
        let failed = match std::fs::rename(&from, path) {
            Ok(()) => match spare::open_in_place(path) {
                Ok(file) => {
                    self.shared.release_bytes(replaced);
                    self.shared.spares.segment_started(true);
                    return Some(file);
                }
                Err(e) => {
                    // Zeros under the segment's name: not a place to append to.
                    let _ = std::fs::remove_file(path);
                    self.shared.release_bytes(replaced);
                    e
                }
            },
            Err(e) => {
                let _ = std::fs::remove_file(&from);
                e
            }
        };
        tracing::warn!(error = %failed, "journal: could not use the spare segment; starting a plain one");
        self.shared.release_bytes(size);
        None
    }
}

/// Reads records in order from the segments, starting after a given seq, never past the durable
/// position. Used by the shipper.
#[derive(Debug)]
pub struct Cursor {
    /// Last seq returned.
    pub after: u64,
    open: Option<(u64, BufReader<File>)>,
    /// Damage met since the last [`Cursor::take_cuts`].
    cuts: Vec<Cut>,
}

impl Cursor {
    /// A cursor that returns records with seq > `after`.
    pub fn new(after: u64) -> Cursor {
        Cursor {
            after,
            open: None,
            cuts: Vec::new(),
        }
    }

    /// Unreadable stretches met while reading closed segments (bytes damaged after they were
    /// written): each was skipped, its bytes kept in the quarantine, its records reported lost.
    pub fn take_cuts(&mut self) -> Vec<Cut> {
        std::mem::take(&mut self.cuts)
    }

    /// A closed segment is damaged at `at`: resynchronise on its next intact frame, or go to the
    /// next segment (whose first seq is `next_first`).
    fn skip_damage(
        &mut self,
        journal: &Journal,
        path: &Path,
        first: u64,
        at: u64,
        next_first: u64,
    ) -> io::Result<()> {
        let data = std::fs::read(path)?;
        let start = (at as usize).min(data.len());
        let prev = self.after.max(first.saturating_sub(1));
        let next = resync(&data, start + 1, prev);
        let to = next.unwrap_or(data.len());
        let resumes = next.and_then(|n| match parse_at(&data, n) {
            Parsed::Record { seq, .. } => Some(seq),
            _ => None,
        });
        let last_lost = resumes.unwrap_or(next_first) - 1;
        let seg = Segment {
            first_seq: first,
            path: path.to_path_buf(),
        };
        let cut = Cut {
            segment: path.to_path_buf(),
            from: at,
            to: to as u64,
            kept_in: quarantine(journal.dir(), &seg, at, &data[start..to]),
            lost: (last_lost > prev).then_some((prev + 1, last_lost)),
            torn_tail: false,
        };
        journal
            .inner
            .cuts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(cut.clone());
        self.cuts.push(cut);
        match next {
            Some(n) => {
                if let Some((_, reader)) = self.open.as_mut() {
                    reader.seek(SeekFrom::Start(n as u64))?;
                }
                self.after = prev;
            }
            None => {
                self.after = self.after.max(next_first - 1);
                self.open = None;
            }
        }
        Ok(())
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
        // A deleted segment's space is freed only once nothing holds it open.
        if let Some((first, _)) = &self.open {
            if !segments.iter().any(|(f, _)| f == first) {
                self.open = None;
            }
        }
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
            let Some((before, frame)) = self.next_frame(*first, path)? else {
                break;
            };
            match frame {
                Frame::Record { seq, .. } if seq > durable => {
                    self.seek_back(before)?;
                    break;
                }
                Frame::Record { seq, payload } => {
                    if seq > self.after {
                        self.after = seq;
                        out.push((seq, payload));
                    }
                }
                frame => {
                    self.seek_back(before)?;
                    if !self.pass(journal, &segments, idx, &frame, before, durable)? {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Reads the next frame of the segment starting at `first` (opening it when the cursor is in
    /// another one); returns it with the offset it starts at.
    fn next_frame(&mut self, first: u64, path: &Path) -> io::Result<Option<(u64, Frame)>> {
        if !matches!(&self.open, Some((f, _)) if *f == first) {
            let file = File::open(path)?;
            self.open = Some((first, BufReader::new(file)));
        }
        let Some((_, reader)) = self.open.as_mut() else {
            return Ok(None);
        };
        let before = reader.stream_position()?;
        let mut frame = read_frame(reader)?;
        if !matches!(frame, Frame::Record { .. }) {
            // The reader's buffer may hold bytes read before the writer wrote over them (a
            // preallocated segment's zeros look like its end): read them again from the file
            // (seeking empties the buffer) before believing that nothing is there.
            reader.seek(SeekFrom::Start(before))?;
            frame = read_frame(reader)?;
        }
        Ok(Some((before, frame)))
    }

    /// Puts the open segment's reader back at `offset`.
    fn seek_back(&mut self, offset: u64) -> io::Result<()> {
        if let Some((_, reader)) = self.open.as_mut() {
            reader.seek(SeekFrom::Start(offset))?;
        }
        Ok(())
    }

    /// At `before` in segment `idx` there is no record (`frame`: its end, or damage). Not written
    /// yet: move to the next segment if there is one past it. In a closed segment, damage found
    /// after it was written costs only its stretch. False when there is nothing more to read yet.
    fn pass(
        &mut self,
        journal: &Journal,
        segments: &[(u64, PathBuf)],
        idx: usize,
        frame: &Frame,
        before: u64,
        durable: u64,
    ) -> io::Result<bool> {
        let (first, path) = &segments[idx];
        match segments.get(idx + 1) {
            Some((next_first, _)) if *next_first <= durable => {
                if *frame == Frame::End {
                    self.after = self.after.max(next_first - 1);
                    self.open = None;
                } else {
                    self.skip_damage(journal, path, *first, before, *next_first)?;
                }
                Ok(true)
            }
            // A closed segment that ends before the next one begins, with the durable position in
            // between: the seqs left were cut at start (counted and reported then) and will never
            // be read. Pass them, so that the shipped position reaches the durable one and readers
            // stop waiting.
            Some((next_first, _)) if *frame == Frame::End => {
                self.after = self.after.max((next_first - 1).min(durable));
                self.open = None;
                Ok(true)
            }
            _ => Ok(false),
        }
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

    /// Frames of `seqs` and the offset each starts at.
    fn frames_of(seqs: &[u64]) -> (Vec<u8>, Vec<usize>) {
        let mut data = Vec::new();
        let mut offsets = Vec::new();
        for &seq in seqs {
            offsets.push(data.len());
            encode_frame(seq, format!("record number {seq}").as_bytes(), &mut data);
        }
        (data, offsets)
    }

    #[test]
    fn damage_at_measures_each_kind_of_damage() {
        let (whole, at) = frames_of(&[1, 2, 3]);
        let mut flipped_middle = whole.clone();
        flipped_middle[at[1] + HEADER + 2] ^= 0x40;
        let torn_last = whole[..at[2] + HEADER + 5].to_vec();
        let mut flipped_last = whole.clone();
        flipped_last[at[2] + HEADER + 2] ^= 0x40;
        // Garbage where frame 3 would start, then the preallocated zeros.
        let mut garbage_then_zeros = whole[..at[2]].to_vec();
        garbage_then_zeros.extend_from_slice(&[0xff; 8]);
        garbage_then_zeros.extend_from_slice(&[0; 100]);
        let damage = |to: usize, lost: Option<(u64, u64)>, torn_tail: bool| Damage {
            to,
            lost,
            torn_tail,
        };
        // (what, data, offset of the damage, seq before it, next segment's first seq, measured)
        type Case<'a> = (&'a str, &'a [u8], usize, u64, Option<u64>, Damage);
        let cases: [Case<'_>; 6] = [
            (
                "middle frame flipped: ends at the next intact frame",
                &flipped_middle,
                at[1],
                1,
                None,
                damage(at[2], Some((2, 2)), false),
            ),
            (
                "last frame cut short in the last segment: a torn tail",
                &torn_last,
                at[2],
                2,
                None,
                damage(torn_last.len(), None, true),
            ),
            (
                "cut short before a following segment: bounded by its first seq",
                &torn_last,
                at[2],
                2,
                Some(7),
                damage(torn_last.len(), Some((3, 6)), false),
            ),
            (
                "last frame whole but flipped: written, perhaps acknowledged, lost",
                &flipped_last,
                at[2],
                2,
                None,
                damage(whole.len(), Some((3, 3)), false),
            ),
            (
                "garbage before zeros: ends at its last written byte",
                &garbage_then_zeros,
                at[2],
                2,
                None,
                damage(at[2] + 8, None, true),
            ),
            (
                "next segment follows on: nothing lost",
                &torn_last,
                at[2],
                2,
                Some(3),
                damage(torn_last.len(), None, false),
            ),
        ];
        for (what, data, off, prev, next_first, want) in cases {
            assert_eq!(damage_at(data, off, prev, next_first), want, "{what}");
        }
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
                // Appending after the cut continues the sequence (after the seq of a whole
                // frame lost to corruption: it may have been acknowledged; never after a torn
                // one, which was not).
                let seq = j.append(b"after".to_vec()).await.unwrap();
                j.release();
                let expected = if damage == "torn" { 10 } else { 11 };
                assert_eq!(seq, expected, "{damage}");
                rec
            });
            assert_eq!(rec.cut_segments, 1, "{damage}");
            assert!(rec.cut_bytes > 0);
            let (lost, torn) = match damage {
                "torn" => (0, true),
                "corrupt" => (1, false),
                _ => (0, true),
            };
            assert_eq!(rec.cut_records, lost, "{damage}");
            assert_eq!(rec.cuts[0].torn_tail, torn, "{damage}");
            assert!(rec.cuts[0].kept_in.as_ref().unwrap().exists(), "{damage}");
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
            // The failed frame was cut off; its seq is used again.
            let seq = j.append(b"three".to_vec()).await.unwrap();
            assert_eq!(seq, 2);
            j.release();
        });
        let (_j, rec) = rt().block_on(async { Journal::open(&dir).unwrap() });
        let payloads: Vec<&[u8]> = rec.records.iter().map(|(_, p)| p.as_slice()).collect();
        // "two" may or may not be on disk (its write happened, its sync "failed"); "one" and
        // "three" are.
        assert!(payloads.contains(&&b"one"[..]) && payloads.contains(&&b"three"[..]));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn seg_files(dir: &Path) -> usize {
        list_segments(dir).unwrap().len()
    }

    #[test]
    fn a_flipped_byte_costs_only_its_record_which_is_quarantined_and_reported() {
        let dir = temp();
        rt().block_on(async {
            let (j, _) = Journal::open(&dir).unwrap();
            for i in 0..50u32 {
                j.append(format!("record {i:04}").into_bytes())
                    .await
                    .unwrap();
            }
            j.release();
        });
        let seg = list_segments(&dir).unwrap().remove(0).path;
        let mut bytes = std::fs::read(&seg).unwrap();
        let frame = HEADER + "record 0000".len();
        // A byte in the payload of record 21 (seq 21, the 21st frame).
        let at = 20 * frame + HEADER + 3;
        bytes[at] ^= 0x40;
        std::fs::write(&seg, &bytes).unwrap();
        let (j, rec) = rt().block_on(async { Journal::open(&dir).unwrap() });
        let seqs: Vec<u64> = rec.records.iter().map(|r| r.0).collect();
        assert_eq!(seqs.len(), 49, "every other record is read");
        assert!(!seqs.contains(&21));
        assert_eq!((rec.cut_records, rec.cut_bytes), (1, frame as u64));
        let cut = &rec.cuts[0];
        assert_eq!(cut.lost, Some((21, 21)));
        assert_eq!(
            (cut.from, cut.to),
            ((20 * frame) as u64, (21 * frame) as u64)
        );
        assert!(!cut.torn_tail);
        let kept = std::fs::read(cut.kept_in.as_ref().unwrap()).unwrap();
        assert_eq!(
            kept,
            bytes[20 * frame..21 * frame],
            "the unreadable bytes are kept as they were"
        );
        assert_eq!(j.cuts().len(), 1, "reported until the next start");
        j.release();
        drop(j);
        // The segment was rewritten without them: the next start finds nothing to cut.
        let (_j, again) = rt().block_on(async { Journal::open(&dir).unwrap() });
        assert_eq!((again.records.len(), again.cuts.len()), (49, 0));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn damaged_length_or_header_resynchronises_too() {
        for (what, offset) in [("length", 0usize), ("checksum", 5), ("seq", 9)] {
            let dir = temp();
            rt().block_on(async {
                let (j, _) = Journal::open(&dir).unwrap();
                for i in 0..10u32 {
                    j.append(vec![i as u8; 40]).await.unwrap();
                }
                j.release();
            });
            let seg = list_segments(&dir).unwrap().remove(0).path;
            let mut bytes = std::fs::read(&seg).unwrap();
            bytes[4 * (HEADER + 40) + offset] ^= 0x10;
            std::fs::write(&seg, &bytes).unwrap();
            let (_j, rec) = rt().block_on(async { Journal::open(&dir).unwrap() });
            assert_eq!(rec.records.len(), 9, "{what}");
            assert_eq!(rec.cuts[0].lost, Some((5, 5)), "{what}");
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn a_failed_flush_creates_no_file_and_hands_its_records_back() {
        let dir = temp();
        rt().block_on(async {
            let (j, _) = Journal::open(&dir).unwrap();
            j.append(b"one".to_vec()).await.unwrap();
            let files = seg_files(&dir);
            j.fail_next_syncs(100);
            for _ in 0..100 {
                let back = j.append_or_return(b"lost?".to_vec()).await.unwrap_err();
                assert_eq!(back.payload, b"lost?", "handed back whole");
            }
            assert_eq!(j.write_state(), WriteState::Failing);
            assert_eq!(j.failures().0, 100);
            assert_eq!(seg_files(&dir), files, "no new segment per failure");
            // Writing works again, in the same file, with the next seq after the last good one.
            assert_eq!(j.append(b"two".to_vec()).await.unwrap(), 2);
            assert_eq!(j.write_state(), WriteState::Ok);
            j.release();
        });
        let (_j, rec) = rt().block_on(async { Journal::open(&dir).unwrap() });
        let payloads: Vec<&[u8]> = rec.records.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(payloads, [&b"one"[..], &b"two"[..]]);
        assert!(
            rec.cuts.is_empty(),
            "the failed writes were cut off at once"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_disk_limit_bounds_the_journal_and_shipped_records_make_room() {
        let dir = temp();
        rt().block_on(async {
            let limit = 10 * (HEADER as u64 + 100) + HEADER as u64 + 4;
            let (j, _) = Journal::open_with_limit(&dir, limit).unwrap();
            assert_eq!(
                j.segment_bytes(),
                64 * 1024,
                "segments are sized from the limit"
            );
            for _ in 0..10 {
                j.append(vec![7; 100]).await.unwrap();
            }
            let back = j.append_or_return(vec![8; 100]).await.unwrap_err();
            assert_eq!(back.error.kind(), io::ErrorKind::StorageFull);
            assert_eq!(back.payload, vec![8; 100]);
            assert_eq!(j.write_state(), WriteState::AtLimit);
            assert!(j.bytes() <= limit);
            // A record small enough for the last bytes is taken, and the journal is still at its
            // limit: no room was made.
            assert_eq!(j.append(vec![6; 4]).await.unwrap(), 11);
            assert_eq!(j.write_state(), WriteState::AtLimit);
            assert!(j.bytes() <= limit);
            // Everything shipped: the active segment is closed and deleted to make room.
            j.mark_shipped(11).unwrap();
            assert_eq!(j.append(vec![9; 100]).await.unwrap(), 12);
            assert_eq!(j.write_state(), WriteState::Ok);
            assert_eq!(j.bytes(), HEADER as u64 + 100);
            j.release();
        });
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_cursor_skips_damage_in_a_closed_segment_and_reports_it() {
        let dir = temp();
        rt().block_on(async {
            let (j, _) = Journal::open(&dir).unwrap();
            for i in 0..10u32 {
                j.append(vec![i as u8; 40]).await.unwrap();
            }
            j.request_roll();
            for i in 10..12u32 {
                j.append(vec![i as u8; 40]).await.unwrap();
            }
            let (first, path) = j.segments().remove(0);
            assert_eq!(first, 1);
            // Damage after the write: record 4 of the closed segment.
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[3 * (HEADER + 40) + HEADER + 7] ^= 1;
            std::fs::write(&path, &bytes).unwrap();
            let mut c = Cursor::new(0);
            let got: Vec<u64> = c.read(&j, 12, 100).unwrap().iter().map(|r| r.0).collect();
            assert_eq!(got, [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12]);
            let cuts = c.take_cuts();
            assert_eq!(cuts.len(), 1);
            assert_eq!(cuts[0].lost, Some((4, 4)));
            assert!(cuts[0].kept_in.as_ref().unwrap().exists());
            j.release();
        });
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A journal with 128 KiB segments (limit 1 MiB): spares are wanted after 32 KiB.
    fn small(dir: &Path) -> (Journal, Recovery) {
        small_with_spares(dir, None)
    }

    /// [`small`] keeping `spares` spares ready (the spare and its reserve).
    fn small_with_spares(dir: &Path, spares: Option<usize>) -> (Journal, Recovery) {
        Journal::open_with(
            dir,
            Options {
                max_bytes: 1 << 20,
                preallocate: true,
                spares,
            },
        )
        .unwrap()
    }

    /// A journal with preallocation off, so no preparer thread: a test calls [`spare::prepare`]
    /// itself, for a journal of `max_bytes` keeping `spares`.
    fn without_preparer(dir: &Path, max_bytes: u64, spares: usize) -> Journal {
        let options = Options {
            max_bytes,
            preallocate: false,
            spares: Some(spares),
        };
        Journal::open_with(dir, options).unwrap().0
    }

    /// Waits until `n` spares are ready (at most `within`).
    fn wait_spares(j: &Journal, n: usize, within: Duration) -> bool {
        let until = Instant::now() + within;
        while j.spares_ready() < n {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// [`into_a_spare`], then waits until `spares` are ready (the reserve full).
    async fn into_a_spare_and_a_full_reserve(j: &Journal, spares: usize) {
        into_a_spare(j).await;
        assert!(
            wait_spares(j, spares, Duration::from_secs(30)),
            "the reserve fills once quiet"
        );
    }

    /// Appends records of 1,000 bytes `fill` until the writer starts a new segment; returns the
    /// seq of the last one.
    async fn until_a_new_segment(j: &Journal, fill: u8) -> u64 {
        let segments = list_segments(j.dir()).unwrap().len();
        let mut last = 0;
        while list_segments(j.dir()).unwrap().len() == segments {
            last = j.append(vec![fill; 1000]).await.unwrap();
        }
        last
    }

    /// The reserve's files are `reserve`, `ready` spares in all, and the bytes counted are those of
    /// the files.
    fn assert_spares(j: &Journal, reserve: &[&str], ready: usize) {
        assert_eq!(reserve_files(j.dir()), reserve);
        assert_eq!(j.spares_ready(), ready);
        assert_eq!(j.bytes(), list_bytes(j.dir()));
    }

    fn reserve_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("spare.") && n != "spare.tmp")
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_reserve_fills_once_quiet_and_the_next_spare_comes_from_it_at_once() {
        let dir = temp();
        rt().block_on(async {
            // The spare and one in reserve (segments of 128 KiB).
            let (j, _) = small_with_spares(&dir, Some(2));
            assert_eq!(j.inner.spares.lock().reserve_target, 1);
            let started = Instant::now();
            // A segment was started in a spare; once none has been for two seconds, the
            // reserve fills.
            into_a_spare_and_a_full_reserve(&j, 2).await;
            assert!(started.elapsed() >= spare::QUIET, "not before it is quiet");
            assert_eq!(reserve_files(&dir), ["spare.1"]);
            assert_eq!(
                j.bytes(),
                list_bytes(&dir),
                "the reserve counts in the bytes"
            );
            // Fill the segment: the writer takes the spare, and the next one is a reserve file
            // renamed, not zeros written while records wait.
            until_a_new_segment(&j, b'r').await;
            assert!(
                j.inner.spares.wait_ready(Duration::from_secs(1)),
                "the next spare is ready at once"
            );
            // Taken from the reserve.
            assert_spares(&j, &[], 1);
            j.release();
        });
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_reserve_is_kept_across_a_restart_and_given_up_when_records_need_its_room() {
        let dir = temp();
        rt().block_on(async {
            let (j, _) = small_with_spares(&dir, Some(2));
            into_a_spare_and_a_full_reserve(&j, 2).await;
            j.release();
        });
        rt().block_on(async {
            // Kept: no zeros written again at a restart.
            let (j, rec) = small_with_spares(&dir, Some(2));
            assert!(rec.cuts.is_empty());
            assert_spares(&j, &["spare.1"], 2);
            // Records before spares: giving them up deletes the reserve and the spare.
            j.inner.drop_spare();
            assert!(!dir.join("spare").exists());
            // Their bytes are released.
            assert_spares(&j, &[], 0);
            j.release();
        });
        rt().block_on(async {
            // Filled again once a segment is started and all is quiet.
            let (j, _) = small_with_spares(&dir, Some(2));
            assert!(j.inner.spares.wait_ready(Duration::from_secs(20)));
            let last = until_a_new_segment(&j, b'q').await;
            assert!(
                !wait_spares(&j, 2, spare::QUIET * 2),
                "not while a quarter of the limit waits for PostgreSQL"
            );
            // PostgreSQL took them.
            j.mark_shipped(last).unwrap();
            assert!(wait_spares(&j, 2, Duration::from_secs(30)));
            j.release();
        });
        rt().block_on(async {
            // Fewer spares wanted now: the reserve beyond them is deleted at open.
            let (j, _) = small_with_spares(&dir, Some(1));
            assert_spares(&j, &[], 1);
            j.release();
        });
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_spare_taken_while_one_is_filled_for_the_reserve_is_replaced_from_the_reserve_at_once() {
        let dir = temp();
        // No preparer thread (preallocation off): the test plays its part.
        let j = without_preparer(&dir, 1 << 20, 3);
        std::fs::write(dir.join("spare.1"), vec![0u8; 128 * 1024]).unwrap();
        {
            // The writer has just taken the spare; one waits in the reserve.
            let mut st = j.inner.spares.lock();
            st.ready = None;
            st.reserve = 1;
        }
        spare::prepare(&j.inner).unwrap();
        // Before its zeros were written, the reserve's spare took the taken one's place.
        {
            let st = j.inner.spares.lock();
            assert_eq!(st.ready, Some(128 * 1024));
            assert_eq!(st.reserve, 0);
        }
        assert!(dir.join("spare").exists());
        assert!(!dir.join("spare.1").exists());
        assert!(dir.join("spare.tmp").exists(), "the fill went on");
        j.release();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn filling_a_spare_never_holds_the_lock_the_writer_takes() {
        let dir = temp();
        // No preparer thread (preallocation off): the test fills a spare of 8 MiB itself, in
        // chunks of 1 MiB, each written back and followed by a pause.
        let j = without_preparer(&dir, 64 << 20, 2);
        let shared = j.inner.clone();
        let filler = std::thread::spawn(move || spare::prepare(&shared));
        let (mut samples, mut held) = (0u32, 0u32);
        while !filler.is_finished() {
            samples += 1;
            held += u32::from(j.inner.spares.held());
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(filler.join().unwrap().unwrap(), 8 << 20);
        assert!(samples >= 20, "the fill took {samples} samples");
        // Held across its chunks' writes and pauses, it was found held in nearly every sample
        // (and every group of records waited for a chunk of zeros).
        assert!(
            held * 4 < samples,
            "the lock was held in {held} of {samples} samples"
        );
        j.release();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_spare_is_filled_in_small_chunks_while_records_arrive() {
        let pause = Duration::from_millis(20);
        assert_eq!(spare::chunk_for(false, true), (128 << 10, pause));
        assert_eq!(spare::chunk_for(false, false), (1 << 20, pause), "quiet");
        assert_eq!(
            spare::chunk_for(true, false),
            (1 << 20, pause),
            "quiet, the next segment's"
        );
        // The writer's next segment while records arrive: as fast as 1 MiB chunks, in pieces a
        // flush waits behind for a millisecond.
        let (chunk, urgent_pause) = spare::chunk_for(true, true);
        assert_eq!(chunk, 128 << 10);
        assert!(urgent_pause * 8 <= pause, "{urgent_pause:?}");
    }

    #[test]
    fn spares_are_half_the_limit_from_one_to_sixteen() {
        assert_eq!(
            spares_for(1 << 30),
            16,
            "the default limit: 16 segments of 32 MiB"
        );
        assert_eq!(spares_for(1 << 20), 4, "1 MiB: segments of 128 KiB");
        assert_eq!(spares_for(150_000), 1);
        assert_eq!(spares_for(u64::MAX), 16);
    }

    #[test]
    fn reserve_files_of_another_size_are_deleted_at_open_and_the_rest_renumbered() {
        let dir = temp();
        std::fs::create_dir_all(&dir).unwrap();
        let size = 128 * 1024;
        std::fs::write(dir.join("spare.2"), vec![0u8; size]).unwrap();
        std::fs::write(dir.join("spare.5"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.join("spare.7"), vec![0u8; size]).unwrap();
        std::fs::write(dir.join("spare.9"), vec![0u8; size]).unwrap();
        let kept = spare::recover_reserve(&dir, true, size as u64, 2).unwrap();
        assert_eq!(kept, 2);
        assert_eq!(reserve_files(&dir), ["spare.1", "spare.2"]);
        // Preallocation off: none kept.
        assert_eq!(
            spare::recover_reserve(&dir, false, size as u64, 2).unwrap(),
            0
        );
        assert!(reserve_files(&dir).is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Appends records of 1,000 bytes until the writer is in a preallocated segment; returns
    /// how many were appended.
    async fn into_a_spare(j: &Journal) -> u64 {
        let mut n = 0u64;
        while n < 40 {
            j.append(vec![b'a' + (n % 26) as u8; 1000]).await.unwrap();
            n += 1;
        }
        assert!(
            j.inner.spares.wait_ready(Duration::from_secs(20)),
            "a spare is prepared once 32 KiB are written"
        );
        assert!(j.dir().join("spare").exists());
        // The next write that would grow the file goes to the spare.
        j.append(vec![b'z'; 1000]).await.unwrap();
        n + 1
    }

    fn last_segment(dir: &Path) -> (PathBuf, u64) {
        let p = list_segments(dir).unwrap().pop().unwrap().path;
        let len = std::fs::metadata(&p).unwrap().len();
        (p, len)
    }

    #[test]
    fn a_preallocated_segment_ends_cleanly_at_its_zeros_and_is_written_on_after_reopen() {
        let dir = temp();
        let written = rt().block_on(async {
            let (j, _) = small(&dir);
            let n = into_a_spare(&j).await;
            let (seg, len) = last_segment(&dir);
            assert_eq!(len, 128 * 1024, "the spare became the segment, full size");
            let data = std::fs::read(&seg).unwrap();
            let end = *frame_offsets(&data).last().unwrap();
            assert!(
                end > 0 && data[end..].iter().all(|&b| b == 0),
                "frames, then zeros"
            );
            // The cursor reads across the plain segment and the preallocated one.
            let mut c = Cursor::new(0);
            let got = c.read(&j, n, 1000).unwrap();
            assert_eq!(got.len() as u64, n);
            assert!(c.read(&j, n, 1000).unwrap().is_empty());
            // The next spare is prepared at once (its bytes count from the start: reserved).
            assert!(j.inner.spares.wait_ready(Duration::from_secs(20)));
            assert_eq!(j.bytes(), list_bytes(&dir), "bytes are what the files hold");
            j.release();
            n
        });
        let segments_before = list_segments(&dir).unwrap().len();
        let (seg, _) = last_segment(&dir);
        let end = *frame_offsets(&std::fs::read(&seg).unwrap()).last().unwrap();
        rt().block_on(async {
            let (j, rec) = small(&dir);
            assert_eq!(rec.records.len() as u64, written);
            assert!(
                rec.cuts.is_empty(),
                "zeros are the clean end: {:?}",
                rec.cuts
            );
            assert_eq!(rec.cut_records, 0);
            // Written on in place, after the last frame.
            assert_eq!(j.append(b"after".to_vec()).await.unwrap(), written + 1);
            assert_eq!(list_segments(&dir).unwrap().len(), segments_before);
            let data = std::fs::read(&seg).unwrap();
            assert_eq!(data.len(), 128 * 1024);
            assert!(
                matches!(parse_at(&data, end), Parsed::Record { seq, .. } if seq == written + 1)
            );
            j.release();
        });
        let (j, rec) = rt().block_on(async { small(&dir) });
        // Stops its spare thread before the directory goes.
        j.release();
        assert_eq!(rec.records.len() as u64, written + 1);
        assert!(rec.records.windows(2).all(|w| w[0].0 + 1 == w[1].0));
        assert!(rec.cuts.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Offsets of the frames of a segment, and the end of the last one.
    fn frame_offsets(data: &[u8]) -> Vec<usize> {
        let mut at = vec![0];
        while let Parsed::Record { end, .. } = parse_at(data, *at.last().unwrap()) {
            at.push(end);
        }
        at
    }

    fn list_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.ends_with(".seg") || n == "spare" || (n.starts_with("spare.") && n != "spare.tmp")
            })
            .map(|e| e.metadata().unwrap().len())
            .sum()
    }

    /// A cursor that read a preallocated segment's zeros (buffered past the last frame) must not
    /// take them for the segment's end once the writer wrote over them and moved on: every record
    /// is read, none skipped (the load benchmark lost records this way).
    #[test]
    fn a_cursor_that_buffered_zeros_reads_what_was_written_over_them_later() {
        let dir = temp();
        rt().block_on(async {
            let (j, _) = small(&dir);
            let n = into_a_spare(&j).await;
            let mut c = Cursor::new(0);
            assert_eq!(c.read(&j, n, 1000).unwrap().len() as u64, n);
            // Written over the zeros the cursor buffered, then on into the next segment.
            let segments = list_segments(&dir).unwrap().len();
            let mut last = n;
            while list_segments(&dir).unwrap().len() == segments {
                last = j.append(vec![b'y'; 1000]).await.unwrap();
            }
            last = j.append(vec![b'x'; 1000]).await.unwrap().max(last);
            let mut got = Vec::new();
            loop {
                let batch = c.read(&j, last, 1000).unwrap();
                if batch.is_empty() {
                    break;
                }
                got.extend(batch.into_iter().map(|(seq, _)| seq));
            }
            let want: Vec<u64> = (n + 1..=last).collect();
            assert_eq!(got, want, "every record after the buffered zeros, in order");
            j.release();
        });
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_or_corrupt_frame_in_a_preallocated_segment_is_cut_and_kept() {
        // (damage, records lost, torn)
        for damage in ["torn", "flipped", "zero-header"] {
            let dir = temp();
            let written = rt().block_on(async {
                let (j, _) = small(&dir);
                let n = into_a_spare(&j).await;
                // Two more frames of 1,500 bytes in the preallocated segment.
                j.append(vec![b'x'; 1500]).await.unwrap();
                j.append(vec![b'y'; 1500]).await.unwrap();
                j.release();
                n + 2
            });
            let (seg, _) = last_segment(&dir);
            let mut data = std::fs::read(&seg).unwrap();
            let offsets = frame_offsets(&data);
            let last = offsets[offsets.len() - 2]; // the last frame's offset
            assert_eq!(offsets[offsets.len() - 1], last + 1516);
            match damage {
                // Its last sectors never reached the disk: zeros from a sector boundary on.
                "torn" => data[(last / 512 + 1) * 512..last + 1516].fill(0),
                "flipped" => data[last + 700] ^= 0x20,
                // Its header's sector never reached the disk, a later one did.
                _ => data[last..last + HEADER].fill(0),
            }
            std::fs::write(&seg, &data).unwrap();
            let (j, rec) = rt().block_on(async { small(&dir) });
            // Stops its spare thread before the directory goes.
            j.release();
            assert_eq!(rec.records.len() as u64, written - 1, "{damage}");
            assert_eq!(rec.cut_segments, 1, "{damage}");
            let cut = &rec.cuts[0];
            assert_eq!(cut.from, last as u64, "{damage}");
            assert!(
                cut.to <= (last + 1516) as u64,
                "{damage}: the zeros after it are not cut"
            );
            let (lost, torn) = if damage == "flipped" {
                (Some((written, written)), false)
            } else {
                (None, true)
            };
            assert_eq!((cut.lost, cut.torn_tail), (lost, torn), "{damage}");
            assert_eq!(
                std::fs::read(cut.kept_in.as_ref().unwrap()).unwrap(),
                data[cut.from as usize..cut.to as usize],
                "{damage}"
            );
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn without_room_for_a_spare_the_journal_appends_to_a_growing_file() {
        let dir = temp();
        rt().block_on(async {
            // Segments of 64 KiB under a limit of 70 KiB: a spare never fits beside them.
            let (j, _) = Journal::open_with(
                &dir,
                Options {
                    max_bytes: 70 * 1024,
                    preallocate: true,
                    spares: None,
                },
            )
            .unwrap();
            let mut n = 0;
            while j.bytes() + 1016 <= 70 * 1024 {
                j.append(vec![b'p'; 1000]).await.unwrap();
                n += 1;
                assert_eq!(j.bytes(), list_bytes(&dir));
                assert!(!dir.join("spare").exists(), "no spare beyond the limit");
            }
            assert_eq!(n, 70, "every record up to the limit was written");
            let back = j.append_or_return(vec![b'p'; 1000]).await.unwrap_err();
            assert_eq!(back.error.kind(), io::ErrorKind::StorageFull);
            j.release();
        });
        let (_j, rec) = rt().block_on(async { Journal::open(&dir).unwrap() });
        assert_eq!((rec.records.len(), rec.cuts.len()), (70, 0));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn records_in_a_spare_whose_rename_was_lost_are_read_as_their_segment() {
        let dir = temp();
        let written = rt().block_on(async {
            let (j, _) = small(&dir);
            let n = into_a_spare(&j).await;
            j.release();
            n
        });
        // A crash before the directory was synced: the segment is back under the spare's name.
        let (seg, _) = last_segment(&dir);
        let _ = std::fs::remove_file(dir.join("spare"));
        std::fs::rename(&seg, dir.join("spare")).unwrap();
        let (j, rec) = rt().block_on(async { small(&dir) });
        // Stops its spare thread before the directory goes.
        j.release();
        assert_eq!(rec.records.len() as u64, written);
        assert!(rec.cuts.is_empty());
        assert!(seg.exists(), "renamed back to its segment name");
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
            let second = std::fs::metadata(&j.segments()[1].1).unwrap().len();
            assert_eq!(j.unshipped_bytes(), j.bytes(), "nothing shipped yet");
            j.mark_shipped(5).unwrap();
            assert_eq!(
                j.unshipped_bytes(),
                second,
                "the first segment is shipped, the one being written is not"
            );
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
