//! A private PostgreSQL cluster run from the installed server binaries, for when no `DATABASE_URL` is
//! given: persistent (the service's `.svamlgate/pg`, reused across starts) or throwaway (tests).
//!
//! The postmaster is a child process of svamlgate, reachable on 127.0.0.1 on a port chosen at start
//! and, for svamlgate's own connections, on a Unix socket in the cluster's directory (mode 0700,
//! [`socket_dir`]), with password authentication on both (a random password kept beside the data
//! directory, mode 0600). It is asked to stop (fast shutdown) when the [`Cluster`] is stopped or dropped, and the
//! kernel kills it if svamlgate dies without stopping it (`PR_SET_PDEATHSIG`), so no stray server is left.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

const PG_USER: &str = "svamlgate";

/// Nice value of the embedded server and of the shipper thread: recording is background work.
pub const BACKGROUND_NICE: libc::c_int = 10;

/// Whether the embedded server is up, as the supervisor sees it.
#[derive(Debug, Default)]
pub struct Health {
    state: AtomicU8,
    restarts: AtomicU64,
    /// The cluster's data directory.
    data: PathBuf,
    /// What [`super::writeback`] has written out.
    writeback: super::writeback::Stats,
}

impl Health {
    const RUNNING: u8 = 0;
    const RESTARTING: u8 = 1;

    /// `running` or `restarting`.
    pub fn state(&self) -> &'static str {
        match self.state.load(Ordering::Acquire) {
            Self::RUNNING => "running",
            _ => "restarting",
        }
    }

    /// How often postgres was started again after it exited.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Acquire)
    }

    /// The cluster's data directory (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// What has been written out of the cluster's files while the shipper was caught up.
    pub fn writeback(&self) -> &super::writeback::Stats {
        &self.writeback
    }
}

/// A running private cluster.
pub struct Cluster {
    url: String,
    health: Arc<Health>,
    stop_tx: Option<mpsc::Sender<()>>,
    done_rx: Option<mpsc::Receiver<()>>,
    temp_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

/// Finds the directory holding `initdb` and `postgres`: the configured one, else PATH, else the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    let has_bins = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = configured {
        if has_bins(d) {
            return Ok(d.to_path_buf());
        }
        bail!(
            "SVAMLGATE_PG_BIN_DIR={} does not contain initdb and postgres",
            d.display()
        );
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_bins(&d) {
                return Ok(d);
            }
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_bins(&bin).then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, d)| d).ok_or_else(|| {
        anyhow!(
            "no database: DATABASE_URL is not set and no PostgreSQL server binaries (initdb, postgres) \
             were found on PATH or in /usr/lib/postgresql/*/bin. Either set DATABASE_URL=postgres://… \
             or install the server (Debian/Ubuntu: apt-get install postgresql), or point \
             SVAMLGATE_PG_BIN_DIR at its bin directory."
        )
    })
}

/// The account the server runs as: ourselves, or `postgres` when we are root (PostgreSQL refuses root).
fn server_account() -> anyhow::Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").map_err(|e| anyhow!(e))?;
    // SAFETY: name is a valid NUL-terminated string; the returned pointer is read immediately.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!(
            "running as root, and PostgreSQL refuses to run as root, but there is no 'postgres' user \
             to run the embedded cluster as; create one or set DATABASE_URL"
        );
    }
    // SAFETY: pw is non-null and points to a passwd struct owned by libc.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

/// Whether `uid`/`gid` may enter every directory from `/` down to `dir`'s parent.
fn reachable_by(dir: &Path, uid: u32, gid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    dir.ancestors().skip(1).all(|a| match std::fs::metadata(a) {
        Ok(m) => {
            let mode = m.mode();
            (m.uid() == uid && mode & 0o100 != 0)
                || (m.gid() == gid && mode & 0o010 != 0)
                || mode & 0o001 != 0
        }
        Err(_) => false,
    })
}

/// Where the cluster's files live: `dir` itself, unless svamlgate runs as root and the `postgres`
/// account cannot reach `dir` (a clone in root's 0700 home, say). Then they go to
/// `/var/lib/svamlgate/clusters/<digest of dir>`, and `dir` keeps copies of the password and port
/// files and a `pg-location` file naming the place.
fn cluster_home(dir: &Path, account: Option<(u32, u32)>) -> anyhow::Result<PathBuf> {
    let Some((uid, gid)) = account else {
        return Ok(dir.to_path_buf());
    };
    if reachable_by(dir, uid, gid) {
        return Ok(dir.to_path_buf());
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(dir.as_os_str().as_encoded_bytes());
    let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let base = Path::new("/var/lib/svamlgate/clusters");
    let home = base.join(name);
    std::fs::create_dir_all(&home).with_context(|| {
        format!(
            "{} cannot be entered by the postgres account that runs the embedded cluster, and {} could \
             not be created instead; set SVAMLGATE_DATA_DIR to a directory postgres can reach, or DATABASE_URL",
            dir.display(),
            home.display()
        )
    })?;
    for d in [Path::new("/var/lib/svamlgate"), base] {
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
    }
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))?;
    std::fs::write(dir.join("pg-location"), format!("{}\n", home.display()))?;
    tracing::info!(
        data_dir = %dir.display(),
        cluster = %home.display(),
        "the postgres account cannot enter the data directory; the embedded cluster lives here instead"
    );
    Ok(home)
}

fn chown(path: &Path, account: Option<(u32, u32)>) -> anyhow::Result<()> {
    if let Some((uid, gid)) = account {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

fn command(bin: &Path, account: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bin);
    if let Some((uid, gid)) = account {
        cmd.uid(uid).gid(gid);
    }
    server_env(&mut cmd);
    cmd
}

/// The environment of the server's programs: no inherited `PGDATA`, messages in plain C.
fn server_env(cmd: &mut Command) {
    cmd.env_remove("PGDATA").env("LC_ALL", "C");
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn random_password() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Cluster {
    /// Starts (initialising on first use) a persistent cluster in `<dir>/pg`.
    pub async fn start_persistent(dir: &Path, bin_dir: Option<&Path>) -> anyhow::Result<Cluster> {
        let dir = std::path::absolute(dir).context("resolving the data directory")?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Self::start(&dir, bin_dir, false).await
    }

    /// Starts a throwaway cluster in a new temporary directory, removed when the cluster stops.
    pub async fn start_temporary(bin_dir: Option<&Path>) -> anyhow::Result<Cluster> {
        remove_stale_temporary_clusters();
        let dir =
            std::env::temp_dir().join(format!("svamlgate-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        // The owner's pid: another process's clean-up leaves this cluster alone while it lives,
        // also between initdb and the postmaster's start, when no postmaster.pid exists yet.
        std::fs::write(dir.join(OWNER_FILE), std::process::id().to_string())?;
        let mut c = Self::start(&dir, bin_dir, true).await?;
        c.temp_dir = Some(dir);
        Ok(c)
    }

    /// Initialises the cluster on first use, then runs the postmaster under a supervisor thread
    /// and waits until it accepts connections.
    async fn start(dir: &Path, bin_dir: Option<&Path>, fsync_off: bool) -> anyhow::Result<Cluster> {
        let bins = find_bin_dir(bin_dir)?;
        let account = server_account()?;
        let home = cluster_home(dir, account)?;
        chown(&home, account)?;
        let data = home.join("pg");
        let password = init_once(&bins, &home, &data, account)?;
        let port = choose_port(&home)?;
        if dir != home {
            publish(dir, &password, port)?;
        }
        let log_path = home.join("postgres.log");
        let mut cmd = postgres_command(&bins, &data, port, &log_path, account, fsync_off)?;
        let socket_dir = socket_dir(&home, port);
        if let Some(d) = &socket_dir {
            cmd.arg("-c")
                .arg(format!("unix_socket_directories={d}"))
                .args(["-c", "unix_socket_permissions=0700"]);
        }
        let health = Arc::new(Health {
            data: data.clone(),
            ..Health::default()
        });
        // A throwaway cluster (the tests') keeps its processes' autogroups as they are: a test
        // waits on PostgreSQL at every step, and a test binary running its tests side by side
        // would starve a server it ranks below itself (timed assertions failed on CI).
        let lower_autogroups = !fsync_off && super::autogroup::enabled();
        let (stop_tx, done_rx) = spawn_supervisor(cmd, health.clone(), lower_autogroups)?;
        let cluster = Cluster {
            url: match &socket_dir {
                Some(d) => {
                    format!("postgres://{PG_USER}:{password}@localhost:{port}/postgres?host={d}")
                }
                None => format!("postgres://{PG_USER}:{password}@127.0.0.1:{port}/postgres"),
            },
            health,
            stop_tx: Some(stop_tx),
            done_rx: Some(done_rx),
            temp_dir: None,
        };
        cluster.wait_until_ready(&log_path).await?;
        Ok(cluster)
    }

    /// Waits (up to 60 s) until the server accepts connections; fails at once if it exits.
    async fn wait_until_ready(&self, log_path: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if try_connect(&self.url).await {
                return Ok(());
            }
            if self.health.state() != "running" {
                bail!(
                    "postgres exited during start; see {}: {}",
                    log_path.display(),
                    tail(log_path)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres did not accept connections within 60 s; see {}",
                    log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The URL without the password, for logs and humans.
    pub fn public_url(&self) -> String {
        match (
            self.url.find(':').and_then(|_| self.url.rfind('@')),
            self.url.find("://"),
        ) {
            (Some(at), Some(scheme)) => {
                let user_end = self.url[scheme + 3..at]
                    .find(':')
                    .map_or(at, |i| scheme + 3 + i);
                format!("{}{}", &self.url[..user_end], &self.url[at..])
            }
            _ => "postgres://127.0.0.1".to_owned(),
        }
    }

    /// The supervisor's view of the server.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Connection URL (contains the password: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server (fast shutdown: open transactions are rolled back, data is flushed) and waits.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
            if let Some(rx) = self.done_rx.take() {
                let _ = rx.recv_timeout(Duration::from_secs(30));
            }
        }
        if let Some(dir) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `initdb` (with a new random password, kept in `<home>/pg-password`, mode 0600) unless
/// `data` already holds a cluster; returns the password.
fn init_once(
    bins: &Path,
    home: &Path,
    data: &Path,
    account: Option<(u32, u32)>,
) -> anyhow::Result<String> {
    let pw_file = home.join("pg-password");
    if !data.join("PG_VERSION").is_file() {
        let password = random_password();
        std::fs::write(&pw_file, &password).context("writing the cluster password file")?;
        std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o600))?;
        chown(&pw_file, account)?;
        let out = command(&bins.join("initdb"), account)
            .arg("-D")
            .arg(data)
            .args([
                "-U",
                PG_USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
            ])
            .arg(format!("--pwfile={}", pw_file.display()))
            .stdin(Stdio::null())
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed in {}: {}",
                data.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(std::fs::read_to_string(&pw_file)
        .with_context(|| format!("reading {}", pw_file.display()))?
        .trim()
        .to_owned())
}

/// The port, kept stable across starts in `<home>/pg-port` (handy for psql) unless it is taken
/// now.
fn choose_port(home: &Path) -> anyhow::Result<u16> {
    let port_file = home.join("pg-port");
    let port = std::fs::read_to_string(&port_file)
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .map_or_else(free_port, Ok)?;
    std::fs::write(&port_file, port.to_string()).context("writing the port file")?;
    Ok(port)
}

/// Copies the password and port to the service's own directory when the cluster lives elsewhere
/// (run as root): what the README's psql line reads.
fn publish(public_dir: &Path, password: &str, port: u16) -> anyhow::Result<()> {
    let copy = public_dir.join("pg-password");
    std::fs::write(&copy, password).context("writing the cluster password file")?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(public_dir.join("pg-port"), port.to_string())?;
    Ok(())
}

/// The postmaster's command line: loopback only, no Unix socket, logging to `log_path`, niced,
/// and killed by the kernel if svamlgate dies (see [`launcher`] for how).
fn postgres_command(
    bins: &Path,
    data: &Path,
    port: u16,
    log_path: &Path,
    account: Option<(u32, u32)>,
    fsync_off: bool,
) -> anyhow::Result<Command> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    chown(log_path, account)?;
    let mut cmd = match launcher() {
        Some(l) => l.command(&bins.join("postgres"), account),
        None => forking_command(&bins.join("postgres"), account),
    };
    cmd.arg("-D")
        .arg(data)
        .args(["-p", &port.to_string()])
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
        ])
        .args(["-c", "max_connections=200"])
        // A backend's writes of its evicted buffers (a catch-up's `COPY`) go out to the disk
        // every 256 kB instead of piling up in the page cache (300 MB in a benchmark's
        // catch-up) until a checkpoint or crash recovery flushes them all at once, which the
        // journal's flush then waits behind (docs/benchmarks.md, session 11).
        .args(["-c", "backend_flush_after=256kB"]);
    if major_version(data).is_some_and(|v| v >= 12) {
        // A new WAL segment is not filled with 16 MB of zeros before PostgreSQL writes its WAL
        // into it. A catch-up past the segments the last checkpoint kept for reuse creates new
        // ones all along: with the zeros the WAL writer wrote 1.8 times the WAL, without them 1.1
        // times, and a benchmark's burst and catch-up gave the disk a sixth less, which the
        // journal's flushes wait behind (docs/benchmarks.md, session 14). The WAL's own writes
        // and `fdatasync` (which carries the blocks' allocation) keep it as durable. (The setting
        // came with PostgreSQL 12; an older server refuses to start with it.)
        cmd.args(["-c", "wal_init_zero=off"]);
    }
    if fsync_off {
        // A throwaway cluster (the tests'): many short-lived apps, each with its own pools and
        // shipper, share it within one test binary.
        cmd.args([
            "-c",
            "max_connections=1000",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]);
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(cmd)
}

/// The major version of the cluster in `data` (its `PG_VERSION` file: `15`, or `9.6` before
/// PostgreSQL 10, read as 9); `None` when it cannot be read.
fn major_version(data: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data.join("PG_VERSION")).ok()?;
    text.trim().split('.').next()?.parse().ok()
}

/// Where [`launcher`] finds no programs: [`command`] with a `pre_exec` hook that does what `nice`
/// and `setpriv` would (the standard library then forks svamlgate to start the server).
fn forking_command(bin: &Path, account: Option<(u32, u32)>) -> Command {
    let mut cmd = command(bin, account);
    // SAFETY: prctl and setpriority are async-signal-safe; prctl only asks the kernel to SIGTERM
    // the server if the thread that spawned it (the supervisor thread, alive for the whole
    // process) ends.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // Callers before records: the embedded server (and every backend it forks) yields
            // the CPU to the reply path under load. Records wait in the journal meanwhile.
            libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE);
            Ok(())
        });
    }
    cmd
}

/// `nice` and `setpriv` (coreutils and util-linux), which start the postmaster without a `fork`
/// of svamlgate.
///
/// A `Command` with a `pre_exec` hook, a uid or a gid makes the standard library `fork` the whole
/// process. When the postmaster is started again after a crash, svamlgate holds hundreds of MB
/// (the replay index, the calls in progress): `fork` copies its page tables under the memory map's
/// lock (about 23 ms for 800 MB here, every thread that faults a page waits), and each page the
/// reply path writes afterwards takes a fault of its own (200 ms of CPU for 800 MB, measured in
/// docs/benchmarks.md, session 13): replies stall while PostgreSQL recovers. Without those three,
/// the standard library uses `posix_spawn`, which shares the memory until the `exec`. `nice`
/// lowers the priority, `setpriv` drops to the server's account and asks for SIGTERM when the
/// supervisor thread ends, as the `pre_exec` hook does where they are missing.
#[derive(Debug)]
struct Launcher {
    nice: PathBuf,
    setpriv: PathBuf,
}

/// [`Launcher`], when both programs are on PATH and `setpriv` knows `--pdeathsig` (util-linux
/// 2.33 and later). Looked up once, when the cluster starts (svamlgate is small then).
fn launcher() -> Option<Launcher> {
    let find = |name: &str| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    let setpriv = find("setpriv")?;
    let help = Command::new(&setpriv)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !String::from_utf8_lossy(&help.stdout).contains("--pdeathsig") {
        return None;
    }
    Some(Launcher {
        nice: find("nice")?,
        setpriv,
    })
}

impl Launcher {
    /// `nice -n 10 setpriv --pdeathsig TERM [--reuid U --regid G --clear-groups] -- bin`.
    fn command(&self, bin: &Path, account: Option<(u32, u32)>) -> Command {
        let mut cmd = Command::new(&self.nice);
        cmd.arg("-n")
            .arg(BACKGROUND_NICE.to_string())
            .arg(&self.setpriv)
            .args(["--pdeathsig", "TERM"]);
        if let Some((uid, gid)) = account {
            cmd.arg("--reuid")
                .arg(uid.to_string())
                .arg("--regid")
                .arg(gid.to_string())
                .arg("--clear-groups");
        }
        cmd.arg("--").arg(bin);
        server_env(&mut cmd);
        cmd
    }
}

/// Starts the supervisor thread and waits until it has spawned the postmaster. The thread owns
/// the child for its whole life, so PDEATHSIG fires only when the process ends, not when some
/// short-lived thread that happened to start the server ends. Returns the stop request sender
/// and the "stopped" receiver.
fn spawn_supervisor(
    cmd: Command,
    health: Arc<Health>,
    lower_autogroups: bool,
) -> anyhow::Result<(mpsc::Sender<()>, mpsc::Receiver<()>)> {
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (spawned_tx, spawned_rx) = mpsc::channel::<std::io::Result<u32>>();
    std::thread::Builder::new()
        .name("svamlgate-postgres".into())
        .spawn(move || supervise(cmd, stop_rx, done_tx, spawned_tx, &health, lower_autogroups))?;
    spawned_rx
        .recv()
        .map_err(|_| anyhow!("postgres supervisor ended"))?
        .context("starting postgres")?;
    Ok((stop_tx, done_rx))
}

/// The file in a throwaway cluster's directory that names the process that made it.
const OWNER_FILE: &str = "owner.pid";

/// Whether the process that made a throwaway cluster still runs (unknown owner: assume it does
/// not, as before owner files existed).
fn owner_alive(dir: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(dir.join(OWNER_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; no signal is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes throwaway clusters of earlier runs whose server is gone (no postmaster.pid left) and
/// whose owner process has ended.
fn remove_stale_temporary_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let is_ours = name
            .to_str()
            .is_some_and(|n| n.starts_with("svamlgate-pg-"));
        let path = e.path();
        if is_ours
            && path.join("pg/PG_VERSION").exists()
            && !path.join("pg/postmaster.pid").exists()
            && !owner_alive(&path)
        {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Where the server's Unix socket goes, when svamlgate's own connections can use one: the
/// cluster's home, if the socket's path fits the kernel's limit (108 bytes with its name) and is
/// made only of characters that need no quoting in a URL or in `unix_socket_directories`.
/// svamlgate connects over it (no TCP stack per message, and no wait of a small write behind an
/// unacknowledged one: the driver does not set `TCP_NODELAY`); the port on 127.0.0.1 stays open
/// for operators and tools. `None` keeps TCP alone.
fn socket_dir(home: &Path, port: u16) -> Option<String> {
    let dir = home.to_str()?;
    let plain = dir
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'));
    let path_len = dir.len() + "/.s.PGSQL.".len() + port.to_string().len();
    (plain && dir.starts_with('/') && path_len < 100).then(|| dir.to_owned())
}

async fn try_connect(url: &str) -> bool {
    use sqlx::Connection;
    matches!(
        tokio::time::timeout(Duration::from_secs(2), sqlx::PgConnection::connect(url)).await,
        Ok(Ok(_))
    )
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// Owns the postmaster for the life of the process: starts it again, with backoff, whenever it exits
/// without being asked to (killed by the OOM killer, say); stops it (fast shutdown) when asked.
fn supervise(
    mut cmd: Command,
    stop_rx: mpsc::Receiver<()>,
    done_tx: mpsc::Sender<()>,
    spawned_tx: mpsc::Sender<std::io::Result<u32>>,
    health: &Health,
    lower_autogroups: bool,
) {
    let mut child: Child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = spawned_tx.send(Err(e));
            return;
        }
    };
    let _ = spawned_tx.send(Ok(child.id()));
    let mut started = Instant::now();
    let mut backoff = Duration::from_millis(500);
    loop {
        match stop_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                stop_child(&mut child);
                let _ = done_tx.send(());
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if lower_autogroups {
            // Each server process leads a session of its own: its nice counts only against the
            // autogroup's nice ([`super::autogroup`]).
            super::autogroup::lower(child.id(), BACKGROUND_NICE);
        }
        let Ok(Some(status)) = child.try_wait() else {
            continue;
        };
        health.state.store(Health::RESTARTING, Ordering::Release);
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(500);
        }
        tracing::error!(%status, retry_in_ms = backoff.as_millis() as u64, "embedded PostgreSQL exited; starting it again");
        loop {
            match stop_rx.recv_timeout(backoff) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = done_tx.send(());
                    return;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
            match cmd.spawn() {
                Ok(c) => {
                    child = c;
                    started = Instant::now();
                    health.restarts.fetch_add(1, Ordering::AcqRel);
                    // A server that cannot start (old backends still hold shared memory) exits
                    // again at once and is retried after the next backoff.
                    std::thread::sleep(Duration::from_millis(300));
                    match child.try_wait() {
                        Ok(None) => {
                            health.state.store(Health::RUNNING, Ordering::Release);
                            tracing::info!(
                                restarts = health.restarts(),
                                "embedded PostgreSQL started again"
                            );
                            break;
                        }
                        _ => {
                            tracing::warn!(
                                retry_in_ms = backoff.as_millis() as u64,
                                "embedded PostgreSQL did not stay up; retrying"
                            );
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not start embedded PostgreSQL again; retrying");
                }
            }
        }
    }
}

fn stop_child(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SIGINT = fast shutdown.
        // SAFETY: pid is our own child's pid.
        unsafe { libc::kill(pid, libc::SIGINT) };
    }
    let deadline = Instant::now() + Duration::from_secs(25);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clusters_major_version_is_read_from_its_pg_version_file() {
        let d = std::env::temp_dir().join(format!("svamlgate-pgv-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(major_version(&d), None, "no file");
        for (text, want) in [
            ("15\n", Some(15)),
            ("12", Some(12)),
            ("9.6\n", Some(9)),
            ("x", None),
        ] {
            std::fs::write(d.join("PG_VERSION"), text).unwrap();
            assert_eq!(major_version(&d), want, "{text:?}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_launcher_drops_to_the_account_after_nice_and_setpriv() {
        let l = Launcher {
            nice: "/usr/bin/nice".into(),
            setpriv: "/usr/bin/setpriv".into(),
        };
        let cmd = l.command(Path::new("/pg/bin/postgres"), Some((101, 102)));
        assert_eq!(cmd.get_program(), "/usr/bin/nice");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args,
            [
                "-n",
                "10",
                "/usr/bin/setpriv",
                "--pdeathsig",
                "TERM",
                "--reuid",
                "101",
                "--regid",
                "102",
                "--clear-groups",
                "--",
                "/pg/bin/postgres"
            ]
        );
        let own = l.command(Path::new("/pg/bin/postgres"), None);
        assert!(!own.get_args().any(|a| a == "--reuid"));
    }

    /// The real programs: the child runs niced, and the kernel ends it when the thread that
    /// started it ends (as when svamlgate dies), as the `pre_exec` hook did.
    #[test]
    fn a_launched_server_is_niced_and_ends_with_the_thread_that_started_it() {
        use std::os::unix::process::ExitStatusExt;
        let l = launcher().expect("nice (coreutils) and setpriv (util-linux) on PATH");
        let (child_tx, child_rx) = mpsc::channel();
        let (end_tx, end_rx) = mpsc::channel::<()>();
        let starter = std::thread::spawn(move || {
            let mut cmd = l.command(Path::new("sleep"), None);
            cmd.arg("30");
            child_tx.send(cmd.spawn().expect("spawn")).expect("send");
            let _ = end_rx.recv();
        });
        let mut child = child_rx.recv().expect("child");
        let stat = format!("/proc/{}/stat", child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        // Until `setpriv` has set the death signal and run `sleep`.
        let fields = loop {
            let text = std::fs::read_to_string(&stat).unwrap_or_default();
            if text.contains("(sleep)") {
                break text;
            }
            assert!(Instant::now() < deadline, "sleep never ran: {text}");
            std::thread::sleep(Duration::from_millis(10));
        };
        // Field 19 of /proc/<pid>/stat is the nice value; fields after the name are split on
        // spaces from the closing parenthesis on.
        let after_name = &fields[fields.rfind(')').expect("name") + 2..];
        let nice: i32 = after_name
            .split(' ')
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("nice field");
        assert_eq!(nice, BACKGROUND_NICE);
        drop(end_tx);
        starter.join().expect("starter thread");
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "the child outlived its thread");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn the_socket_goes_in_the_home_only_when_its_path_is_short_and_plain() {
        assert_eq!(
            socket_dir(Path::new("/var/lib/svamlgate"), 5432).as_deref(),
            Some("/var/lib/svamlgate")
        );
        assert_eq!(socket_dir(Path::new("/var/lib/svaml gate"), 5432), None);
        assert_eq!(socket_dir(Path::new("/var/lib/a?b=c"), 5432), None);
        assert_eq!(socket_dir(Path::new("relative/dir"), 5432), None);
        let long = format!("/{}", "d".repeat(90));
        assert_eq!(socket_dir(Path::new(&long), 65535), None);
    }

    #[test]
    fn a_configured_bin_dir_without_the_binaries_is_named_in_the_error() {
        let err = find_bin_dir(Some(Path::new("/nonexistent/pg/bin")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SVAMLGATE_PG_BIN_DIR=/nonexistent/pg/bin"),
            "{err}"
        );
    }

    #[test]
    fn public_url_hides_the_password() {
        let c = Cluster {
            url: "postgres://svamlgate:s3cret@127.0.0.1:5555/postgres".into(),
            health: Arc::default(),
            stop_tx: None,
            done_rx: None,
            temp_dir: None,
        };
        assert_eq!(
            c.public_url(),
            "postgres://svamlgate@127.0.0.1:5555/postgres"
        );
    }
}
