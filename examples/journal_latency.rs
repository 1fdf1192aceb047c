//! How long a record waits to be durable in the journal (`src/recording/journal.rs`), alone on the
//! disk or beside a writer that keeps the disk busy. Records of `--size` bytes are appended through
//! the real `Journal` API on a fixed schedule of `--rate` per second (open loop: each latency is
//! measured from the moment its append was due, so a stall is counted in full), for `--seconds`;
//! prints p50/p99/p999/max of append-to-durable, how many segments were started, and the p99 of
//! each second.
//!
//! `--noise` puts a disk-heavy writer beside it, on the filesystem of `--dir`:
//! * `none`: a quiet disk (other processes aside).
//! * `fsync`: a thread writing 1 MiB blocks into new files of 64 MiB, `fdatasync` every 16 MiB,
//!   deleting the file before the last (block allocation and ordered data, like a database
//!   catching up).
//! * `postgres`: a throwaway PostgreSQL cluster (fsync on, as the embedded one) in `--dir`, loading
//!   about 100 MB per round (`INSERT … SELECT` from `generate_series`), then `CHECKPOINT` and
//!   `TRUNCATE`, in a loop.
//! * `kill`: as `postgres`, and a third into the run the postmaster is killed with SIGKILL; the
//!   supervisor starts it again (crash recovery) and the load goes on.
//! * `zerofill`: what the journal's spare preparer does (`src/recording/journal/spare.rs`), in a
//!   loop: files of 32 MiB filled with zeros in chunks of `ZF_CHUNK_KIB` (1024), each written
//!   back (`sync_file_range`) and followed by a pause of `ZF_PAUSE_MS` (20), then `fsync`. The
//!   journal measured keeps no reserve of its own then.
//!
//! The first `--warmup` seconds (3) run at the same rate and are not counted: the journal starts
//! the way a busy one runs.
//!
//! `--plain` opens the journal without preallocated segments (plain appending: every `fdatasync`
//! also commits the file's new size), to compare both in the same conditions.
//!
//! `cargo run --release --example journal_latency -- --seconds 10 --rate 1000 --size 1000 \
//!     --noise postgres --dir /var/tmp/jl`
//!
//! The directory is created and emptied first (its `journal/` and, for the PostgreSQL noises, its
//! cluster); the cluster is stopped at the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use svamlgate::recording::journal::{Journal, Options};

struct Args {
    seconds: u64,
    rate: u64,
    size: usize,
    noise: String,
    dir: PathBuf,
    plain: bool,
    warmup: u64,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 10,
        rate: 1000,
        size: 1000,
        noise: "none".into(),
        dir: std::env::temp_dir().join("svamlgate-journal-latency"),
        plain: false,
        warmup: 3,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "--plain" {
            a.plain = true;
            continue;
        }
        let Some(value) = argv.next() else {
            eprintln!("{flag} needs a value");
            std::process::exit(2);
        };
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse().unwrap_or(a.seconds),
            "--rate" => a.rate = value.parse().unwrap_or(a.rate).max(1),
            "--size" => a.size = value.parse().unwrap_or(a.size),
            "--noise" => a.noise = value,
            "--dir" => a.dir = PathBuf::from(value),
            "--warmup" => a.warmup = value.parse().unwrap_or(a.warmup),
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// The `fsync` noise: writes until `stop`.
fn disk_writer(dir: &Path, stop: &AtomicBool) {
    use std::io::Write as _;
    let block = vec![0x5au8; 1 << 20];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let path = dir.join(format!("noise-{n}"));
        let Ok(mut f) = std::fs::File::create(&path) else {
            return;
        };
        for i in 1..=64 {
            if stop.load(Ordering::Relaxed) || f.write_all(&block).is_err() {
                break;
            }
            if i % 16 == 0 {
                let _ = f.sync_data();
            }
        }
        if n >= 1 {
            let _ = std::fs::remove_file(dir.join(format!("noise-{}", n - 1)));
        }
        n += 1;
    }
    for i in n.saturating_sub(2)..=n {
        let _ = std::fs::remove_file(dir.join(format!("noise-{i}")));
    }
}

/// The `zerofill` noise: spares filled as the preparer fills them, until `stop`.
fn zero_filler(dir: &Path, stop: &AtomicBool) {
    use std::io::Write as _;
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let chunk = (env("ZF_CHUNK_KIB", 1024) as usize).max(4) << 10;
    let pause = Duration::from_millis(env("ZF_PAUSE_MS", 20));
    let zeros = vec![0u8; chunk];
    let path = dir.join("zerofill");
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut f) = std::fs::File::create(&path) else {
            return;
        };
        let mut at = 0usize;
        while at < 32 << 20 && !stop.load(Ordering::Relaxed) {
            if f.write_all(&zeros).is_err() {
                return;
            }
            // SAFETY: sync_file_range on a descriptor owned by `f`, over bytes just written.
            unsafe {
                libc::sync_file_range(
                    std::os::fd::AsRawFd::as_raw_fd(&f),
                    at as libc::off64_t,
                    chunk as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
            }
            at += chunk;
            std::thread::sleep(pause);
        }
        let _ = f.sync_all();
        let _ = std::fs::remove_file(&path);
    }
}

/// The `postgres` noise: bulk loads and checkpoints until `stop`.
async fn postgres_load(url: String, stop: Arc<AtomicBool>) {
    use sqlx::Connection as _;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut c) = sqlx::PgConnection::connect(&url).await else {
            // Restarting after a SIGKILL: try again shortly.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let _ = sqlx::query("CREATE TABLE IF NOT EXISTS noise (id bigint, body text)")
            .execute(&mut c)
            .await;
        while !stop.load(Ordering::Relaxed) {
            let round = async {
                sqlx::query(
                    "INSERT INTO noise SELECT g, repeat(md5(g::text), 30) \
                     FROM generate_series(1, 100000) g",
                )
                .execute(&mut c)
                .await?;
                sqlx::query("CHECKPOINT").execute(&mut c).await?;
                sqlx::query("TRUNCATE noise").execute(&mut c).await
            };
            if round.await.is_err() {
                break;
            }
        }
    }
}

/// The postmaster's pid, from `postmaster.pid` in the cluster's data directory.
fn postmaster_pid(dir: &Path) -> Option<i32> {
    let home = std::fs::read_to_string(dir.join("pg-location"))
        .map(|s| PathBuf::from(s.trim()))
        .unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string(home.join("pg").join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

fn main() -> anyhow::Result<()> {
    let a = args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(a))
}

async fn run(a: Args) -> anyhow::Result<()> {
    let journal_dir = a.dir.join("journal");
    let _ = std::fs::remove_dir_all(&journal_dir);
    std::fs::create_dir_all(&a.dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut cluster = None;
    let mut noise_thread = None;
    let mut noise_task = None;
    match a.noise.as_str() {
        "none" => {}
        "fsync" => {
            let (dir, stop) = (a.dir.clone(), stop.clone());
            noise_thread = Some(std::thread::spawn(move || disk_writer(&dir, &stop)));
        }
        "zerofill" => {
            let (dir, stop) = (a.dir.clone(), stop.clone());
            noise_thread = Some(std::thread::spawn(move || zero_filler(&dir, &stop)));
        }
        "postgres" | "kill" => {
            let c = svamlgate::db::cluster::Cluster::start_persistent(&a.dir, None).await?;
            noise_task = Some(tokio::spawn(postgres_load(
                c.url().to_owned(),
                stop.clone(),
            )));
            cluster = Some(c);
        }
        other => anyhow::bail!("unknown noise {other} (none, fsync, zerofill, postgres, kill)"),
    }
    if a.noise != "none" {
        // Let the writer get going before measuring.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let options = Options {
        preallocate: !a.plain,
        spares: (a.noise == "zerofill").then_some(1),
        ..Options::default()
    };
    let (journal, _) = Journal::open_with(&journal_dir, options)?;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        (a.rate * a.seconds) as usize,
    )));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let period = Duration::from_secs_f64(1.0 / a.rate as f64);
    let counted_from = a.rate * a.warmup;
    let total = a.rate * (a.seconds + a.warmup);
    let kill_at = (a.noise == "kill").then_some(counted_from + a.rate * a.seconds / 3);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        if Some(i) == kill_at {
            match postmaster_pid(&a.dir) {
                // SAFETY: kill(2) on a pid read from the cluster's own postmaster.pid.
                Some(pid) => unsafe {
                    libc::kill(pid, libc::SIGKILL);
                },
                None => eprintln!("no postmaster.pid found: not killed"),
            }
        }
        let (j, lat, errors) = (journal.clone(), latencies.clone(), errors.clone());
        let mut payload = vec![b'r'; a.size];
        payload[..8.min(a.size)].copy_from_slice(&i.to_le_bytes()[..8.min(a.size)]);
        tasks.push(tokio::spawn(async move {
            match j.append(payload).await {
                Ok(_) if i >= counted_from => lat
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i - counted_from, due.elapsed())),
                Ok(_) => {}
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let segments = journal.segments().len();
    journal.release();
    if let Some(t) = noise_thread {
        let _ = t.join();
    }
    if let Some(t) = noise_task {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    let restarts = cluster.as_ref().map(|c| c.health().restarts());
    if let Some(mut c) = cluster.take() {
        c.stop();
    }
    let mut by_seq = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    by_seq.sort();
    // p99 of each second, to see when the slow flushes came.
    let per_second: Vec<String> = by_seq
        .chunks(a.rate as usize)
        .map(|c| {
            let mut s: Vec<Duration> = c.iter().map(|x| x.1).collect();
            s.sort();
            format!("{:.0}", percentile(&s, 0.99))
        })
        .collect();
    let mut l: Vec<Duration> = by_seq.iter().map(|x| x.1).collect();
    l.sort();
    println!(
        "journal {} noise {:<8} {} records of {} B at {}/s in {:.1} s: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms; errors {}; segments {}{}",
        if a.plain { "plain      " } else { "preallocated" },
        a.noise,
        l.len(),
        a.size,
        a.rate,
        took.as_secs_f64(),
        percentile(&l, 0.50),
        percentile(&l, 0.99),
        percentile(&l, 0.999),
        l.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        errors.load(Ordering::Relaxed),
        segments,
        restarts.map_or(String::new(), |r| format!("; postgres restarts {r}")),
    );
    println!("  p99 of each second, ms: {}", per_second.join(" "));
    let _ = std::fs::remove_dir_all(&journal_dir);
    Ok(())
}
