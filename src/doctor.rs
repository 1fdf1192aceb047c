//! `svamlgate doctor`: checks a configuration end to end without starting the service, one line per
//! check (`ok`, `warning` or `error`, with the fix), and exits 1 on any error.
//!
//! It reads the same settings as `svamlgate serve` and checks: the application keys and secrets
//! (format, base64, length, duplicates) and the signature mode; the admin token's strength; the
//! public URL against the callback path and prefix; that the database is reachable and migrated (or
//! that the embedded cluster can start here); that the journal directory is writable and how much
//! disk is free; this host's clock against PostgreSQL's; that the listen address is free; that
//! proxy routes' URLs resolve and answer; and with `--online`, that Sinch's Calling API accepts the
//! credentials (one signed read request).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Args;
use serde::Serialize;

use crate::config::ServeArgs;
use crate::signature::settings::{ModePolicy, SignatureMode};
use crate::signature::AppCredential;

/// How long each network check may take.
const NET_TIMEOUT: Duration = Duration::from_secs(5);

/// Below this much free disk the journal directory is an error.
const MIN_FREE_BYTES: u64 = 64 << 20;

/// `svamlgate doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    serve: Box<ServeArgs>,
    /// Also ask Sinch's Calling API whether it accepts the credentials (one signed read request).
    #[arg(long)]
    online: bool,
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but should be looked at.
    Warning,
    /// Will not work.
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One check's line.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked, e.g. `keys`.
    pub check: &'static str,
    /// The verdict.
    pub level: Level,
    /// What was found, and the fix.
    pub message: String,
}

fn check(check: &'static str, level: Level, message: impl Into<String>) -> Check {
    Check {
        check,
        level,
        message: message.into(),
    }
}

/// Runs `doctor` and returns the exit code: 0 without errors, 1 with.
pub async fn main(args: DoctorArgs) -> anyhow::Result<u8> {
    let checks = run(&args.serve, args.online).await;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&checks)?)?;
    } else {
        for c in &checks {
            writeln!(out, "{:<7} {:<10} {}", c.level.as_str(), c.check, c.message)?;
        }
    }
    Ok(u8::from(checks.iter().any(|c| c.level == Level::Error)))
}

/// Runs every check.
pub async fn run(config: &ServeArgs, online: bool) -> Vec<Check> {
    let mut checks = keys(config);
    checks.push(admin_token(config));
    checks.extend(public_url(config));
    let pool = database(config, &mut checks).await;
    checks.extend(journal_dir(config));
    if let Some(pool) = &pool {
        checks.push(clock(pool).await);
    }
    checks.push(listen(config));
    checks.extend(routes(config, pool.as_ref()).await);
    if online {
        checks.push(sinch_online(config).await);
    }
    if let Some(pool) = pool {
        pool.close().await;
    }
    checks
}

/// The configured key/secret pairs, as written (without stopping at the first bad one).
fn configured_pairs(config: &ServeArgs) -> Vec<(String, String, &'static str)> {
    let mut pairs = Vec::new();
    if let Some(list) = &config.applications {
        for (i, entry) in list
            .expose()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (k, s) = entry.split_once(':').unwrap_or(("", ""));
            let _ = i;
            pairs.push((k.to_owned(), s.to_owned(), "SINCH_APPLICATIONS"));
        }
    }
    if let Some(k) = &config.application_key {
        let s = config
            .application_secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default();
        pairs.push((k.clone(), s, "SINCH_APPLICATION_SECRET"));
    } else if config.application_secret.is_some() {
        pairs.push((String::new(), String::new(), "SINCH_APPLICATION_KEY"));
    }
    pairs
}

/// Keys and secrets: format, strict base64, length, duplicates; and the signature mode.
pub fn keys(config: &ServeArgs) -> Vec<Check> {
    let mut out = Vec::new();
    let pairs = configured_pairs(config);
    if pairs.is_empty() {
        out.push(check(
            "keys",
            if config.verify_signatures {
                Level::Error
            } else {
                Level::Warning
            },
            "no application key configured: every callback would be refused with 40108; set \
             SINCH_APPLICATION_KEY and SINCH_APPLICATION_SECRET (from the Sinch dashboard)",
        ));
    }
    let mut seen: Secrets = HashMap::new();
    let mut good = 0;
    for (i, (key, secret, source)) in pairs.iter().enumerate() {
        if key.is_empty() {
            out.push(check(
                "keys",
                Level::Error,
                format!(
                    "{source}: entry {} has no key (expected key:secret, or both \
                     SINCH_APPLICATION_KEY and SINCH_APPLICATION_SECRET)",
                    i + 1
                ),
            ));
            continue;
        }
        match AppCredential::new(key, secret) {
            Err(e) => out.push(check("keys", Level::Error, format!("{e}; fix {source}"))),
            Ok(_) => {
                good += 1;
                secret_checks(key, secret, &mut seen, &mut out);
            }
        }
    }
    if good > 0 && out.iter().all(|c| c.level != Level::Error) {
        out.push(check(
            "keys",
            Level::Ok,
            format!(
                "{} application key(s) configured, secrets decode",
                seen.len()
            ),
        ));
    }
    signature_checks(config, &seen, &mut out);
    out
}

/// The secrets seen so far, per key (lower case).
type Secrets = HashMap<String, Vec<String>>;

/// A valid key's secret: its decoded length, and whether the key came before (the same secret
/// twice, or several secrets while rotating).
fn secret_checks(key: &str, secret: &str, seen: &mut Secrets, out: &mut Vec<Check>) {
    let decoded = STANDARD.decode(secret.trim()).map(|d| d.len()).unwrap_or(0);
    if decoded != 16 {
        out.push(check(
            "keys",
            Level::Warning,
            format!(
                "the secret of key `{key}` decodes to {decoded} bytes; Sinch application \
                 secrets are 16 bytes (24 base64 characters): check it was copied whole"
            ),
        ));
    }
    let secrets = seen.entry(key.to_ascii_lowercase()).or_default();
    if secrets.iter().any(|s| s == secret.trim()) {
        out.push(check(
            "keys",
            Level::Warning,
            format!("key `{key}` is configured twice with the same secret; remove one"),
        ));
        return;
    }
    if !secrets.is_empty() {
        out.push(check(
            "keys",
            Level::Warning,
            format!(
                "key `{key}` has {} secrets: fine while rotating; remove the old one \
                 once Sinch signs with the new",
                secrets.len() + 1
            ),
        ));
    }
    secrets.push(secret.trim().to_owned());
}

/// Whether signatures are checked, and the signature mode with the keys it names (`seen`: the
/// configured keys).
fn signature_checks(config: &ServeArgs, seen: &Secrets, out: &mut Vec<Check>) {
    if !config.verify_signatures {
        out.push(check(
            "signature",
            Level::Warning,
            "SVAMLGATE_VERIFY_SIGNATURES=false: signatures are not checked; for local development only",
        ));
    }
    let v = &config.verification;
    let modes = match ModePolicy::new(v.signature_mode, v.signature_mode_keys.as_deref()) {
        Err(e) => return out.push(check("signature", Level::Error, e)),
        Ok(modes) => modes,
    };
    if let Some(list) = &v.signature_mode_keys {
        for entry in list.split([',', ' ']).filter(|e| !e.is_empty()) {
            let key = entry.rsplit_once(':').map_or(entry, |(k, _)| k);
            if !seen.contains_key(&key.to_ascii_lowercase()) {
                out.push(check(
                    "signature",
                    Level::Warning,
                    format!(
                        "SVAMLGATE_SIGNATURE_MODE_KEYS names `{key}`, which is not a configured key"
                    ),
                ));
            }
        }
    }
    if modes.default_mode() == SignatureMode::Report || modes.any_report() {
        out.push(check(
            "signature",
            Level::Warning,
            format!(
                "signature mode {}: failures are answered and only recorded; watch GET \
                 /admin/refusals until no new explanation appears, then set \
                 SVAMLGATE_SIGNATURE_MODE=enforce",
                modes.summary()
            ),
        ));
    } else if config.verify_signatures {
        out.push(check("signature", Level::Ok, "signature mode enforce"));
    }
}

/// The admin token's strength.
pub fn admin_token(config: &ServeArgs) -> Check {
    let Some(token) = config.admin_token.as_ref().filter(|t| !t.is_empty()) else {
        return check(
            "admin",
            Level::Warning,
            "SVAMLGATE_ADMIN_TOKEN is not set: the admin API is disabled; set it to e.g. \
             $(openssl rand -hex 24)",
        );
    };
    let t = token.expose();
    let distinct = {
        let mut c: Vec<char> = t.chars().collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    };
    const WEAK: [&str; 8] = [
        "dev", "admin", "password", "changeme", "secret", "token", "test", "12345678",
    ];
    if WEAK.iter().any(|w| t.eq_ignore_ascii_case(w)) || t.len() < 16 || distinct < 6 {
        check(
            "admin",
            Level::Error,
            format!(
                "SVAMLGATE_ADMIN_TOKEN is weak ({} characters, {distinct} distinct); use at least \
                 24 random characters, e.g. $(openssl rand -hex 24)",
                t.chars().count()
            ),
        )
    } else if t.len() < 24 || distinct < 10 {
        check(
            "admin",
            Level::Warning,
            format!(
                "SVAMLGATE_ADMIN_TOKEN is short ({} characters); 24 random characters or more are \
                 recommended",
                t.chars().count()
            ),
        )
    } else {
        check("admin", Level::Ok, "admin token set and strong enough")
    }
}

/// SVAMLGATE_PUBLIC_URL against the callback path and the public prefix.
pub fn public_url(config: &ServeArgs) -> Vec<Check> {
    let Some(url) = &config.verification.public_url else {
        return vec![check(
            "public_url",
            Level::Ok,
            "SVAMLGATE_PUBLIC_URL not set: no canary (set it to the callback URL registered at \
             Sinch to have one)",
        )];
    };
    let parsed = match crate::canary::parse_public_url(url) {
        Ok(p) => p,
        Err(e) => return vec![check("public_url", Level::Error, e)],
    };
    let served =
        crate::signature::signed_path(&config.callback_path, config.public_path_prefix.as_deref());
    if parsed.path == served {
        return vec![check(
            "public_url",
            Level::Ok,
            format!(
                "public path {} is what the signature check expects",
                parsed.path
            ),
        )];
    }
    let bare = crate::signature::signed_path(&config.callback_path, None);
    let fix = match parsed.path.strip_suffix(bare.as_str()) {
        Some(prefix) if !prefix.is_empty() => {
            format!("set SVAMLGATE_PUBLIC_PATH_PREFIX={prefix}")
        }
        Some(_) => "unset SVAMLGATE_PUBLIC_PATH_PREFIX".to_owned(),
        None => "make the proxy forward to SVAMLGATE_CALLBACK_PATH, or change it".to_owned(),
    };
    vec![check(
        "public_url",
        Level::Error,
        format!(
            "the public URL's path is {} but signatures are checked over {served}: every callback \
             would be refused; {fix}",
            parsed.path
        ),
    )]
}

/// The database (or the embedded cluster's prerequisites); returns a pool when one answers.
async fn database(config: &ServeArgs, out: &mut Vec<Check>) -> Option<sqlx::PgPool> {
    let url = match &config.db.database_url {
        Some(url) => url.expose().to_owned(),
        None => match embedded(config, out) {
            Some(url) => url,
            None => return None,
        },
    };
    let pool = match crate::db::pool_for(&url, 1).await {
        Ok(p) => p,
        Err(e) => {
            out.push(check("database", Level::Error, format!("{e:#}")));
            return None;
        }
    };
    let probe = tokio::time::timeout(
        NET_TIMEOUT,
        sqlx::query("SELECT version()").fetch_one(&pool),
    )
    .await;
    match probe {
        Err(_) => {
            out.push(check(
                "database",
                Level::Error,
                "PostgreSQL did not answer within 5 s: check DATABASE_URL's host and port, and the network",
            ));
            return None;
        }
        Ok(Err(e)) => {
            out.push(check(
                "database",
                Level::Error,
                format!(
                    "cannot connect to PostgreSQL: {e}; check DATABASE_URL (host, port, user, \
                     password, database) and that PostgreSQL accepts connections from here"
                ),
            ));
            return None;
        }
        Ok(Ok(_)) => {}
    }
    out.push(migrations(&pool).await);
    Some(pool)
}

/// Without DATABASE_URL: can the embedded cluster start here? Returns its URL when it is running.
fn embedded(config: &ServeArgs, out: &mut Vec<Check>) -> Option<String> {
    let dir = &config.db.data_dir;
    match crate::db::cluster::find_bin_dir(config.db.pg_bin_dir.as_deref()) {
        Ok(bin) => out.push(check(
            "database",
            Level::Ok,
            format!(
                "no DATABASE_URL: the embedded cluster will run from {} in {}",
                bin.display(),
                dir.join("pg").display()
            ),
        )),
        Err(e) => {
            out.push(check(
                "database",
                Level::Error,
                format!(
                    "no DATABASE_URL, and the embedded cluster cannot start: {e:#}; install the \
                     PostgreSQL server (apt-get install postgresql) or set SVAMLGATE_PG_BIN_DIR, or \
                     set DATABASE_URL"
                ),
            ));
            return None;
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let name = c"postgres";
        // SAFETY: a NUL-terminated name; the result is only compared with null.
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        if pw.is_null() {
            out.push(check(
                "database",
                Level::Error,
                "running as root, and there is no `postgres` user to run the embedded cluster as; \
                 install the postgresql package (it creates the user) or run as another user",
            ));
        }
    }
    if let Err(e) = writable(dir) {
        out.push(check(
            "database",
            Level::Error,
            format!(
                "the data directory {} is not writable here: {e}; set SVAMLGATE_DATA_DIR",
                dir.display()
            ),
        ));
        return None;
    }
    let port = std::fs::read_to_string(dir.join("pg-port")).ok()?;
    let password = std::fs::read_to_string(dir.join("pg-password")).ok()?;
    let port: u16 = port.trim().parse().ok()?;
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .ok()?;
    Some(format!(
        "postgres://svamlgate:{}@127.0.0.1:{port}/postgres",
        password.trim()
    ))
}

async fn migrations(pool: &sqlx::PgPool) -> Check {
    let known: Vec<i64> = crate::db::MIGRATOR.iter().map(|m| m.version).collect();
    let rows: Result<Vec<(i64, bool)>, _> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await;
    let applied = match rows {
        Ok(r) => r,
        Err(_) => {
            return check(
                "database",
                Level::Warning,
                format!(
                    "reachable, not migrated yet: the {} migrations are applied at start (or run \
                     svamlgate migrate)",
                    known.len()
                ),
            )
        }
    };
    if let Some((v, _)) = applied.iter().find(|(_, ok)| !ok) {
        return check(
            "database",
            Level::Error,
            format!("migration {v} failed earlier; fix it by hand, then run svamlgate migrate"),
        );
    }
    let pending: Vec<i64> = known
        .iter()
        .copied()
        .filter(|v| !applied.iter().any(|(a, _)| a == v))
        .collect();
    let unknown: Vec<i64> = applied
        .iter()
        .map(|(v, _)| *v)
        .filter(|v| !known.contains(v))
        .collect();
    if !unknown.is_empty() {
        return check(
            "database",
            Level::Warning,
            format!(
                "the database has migrations this build does not know ({unknown:?}): a newer svamlgate \
                 migrated it"
            ),
        );
    }
    if pending.is_empty() {
        check(
            "database",
            Level::Ok,
            format!("reachable and migrated ({} migrations)", known.len()),
        )
    } else {
        check(
            "database",
            Level::Warning,
            format!(
                "reachable; {} migration(s) pending ({pending:?}), applied at start or with svamlgate migrate",
                pending.len()
            ),
        )
    }
}

fn writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&probe)?;
        f.write_all(b"svamlgate doctor")?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&probe);
    result
}

fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is all plain integers; zeroed is a valid value for it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)]
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// The journal directory: writable, and the free disk.
pub fn journal_dir(config: &ServeArgs) -> Vec<Check> {
    let dir = config.db.data_dir.join("journal");
    if let Err(e) = writable(&dir) {
        return vec![check(
            "journal",
            Level::Error,
            format!(
                "the journal directory {} is not writable: {e}; every answered callback is written \
                 there first: fix its permissions or set SVAMLGATE_DATA_DIR",
                dir.display()
            ),
        )];
    }
    let limit = config.journal_max_bytes;
    match free_bytes(&dir) {
        None => vec![check(
            "journal",
            Level::Warning,
            format!("{} is writable; free disk unknown", dir.display()),
        )],
        Some(free) if free < MIN_FREE_BYTES => vec![check(
            "journal",
            Level::Error,
            format!(
                "{} is writable but only {} MiB are free; free some disk",
                dir.display(),
                free >> 20
            ),
        )],
        Some(free) if free < limit => vec![check(
            "journal",
            Level::Warning,
            format!(
                "{} is writable; {} MiB free, less than SVAMLGATE_JOURNAL_MAX_BYTES ({} MiB)",
                dir.display(),
                free >> 20,
                limit >> 20
            ),
        )],
        Some(free) => vec![check(
            "journal",
            Level::Ok,
            format!("{} is writable; {} MiB free", dir.display(), free >> 20),
        )],
    }
}

/// This host's clock against PostgreSQL's.
async fn clock(pool: &sqlx::PgPool) -> Check {
    let before = time::OffsetDateTime::now_utc();
    let theirs = tokio::time::timeout(
        NET_TIMEOUT,
        sqlx::query_scalar::<_, time::OffsetDateTime>("SELECT clock_timestamp()").fetch_one(pool),
    )
    .await;
    let after = time::OffsetDateTime::now_utc();
    let Ok(Ok(theirs)) = theirs else {
        return check("clock", Level::Warning, "could not read PostgreSQL's clock");
    };
    let half: time::Duration = (after - before) / 2_i32;
    let ours: time::OffsetDateTime = before + half;
    let diff = (ours - theirs).as_seconds_f64();
    let text = format!(
        "this host's clock is {:.2} s {} PostgreSQL's",
        diff.abs(),
        if diff >= 0.0 { "ahead of" } else { "behind" }
    );
    if diff.abs() > 30.0 {
        check(
            "clock",
            Level::Error,
            format!("{text}; fix time synchronisation (NTP): x-timestamp freshness depends on it"),
        )
    } else if diff.abs() > 2.0 {
        check(
            "clock",
            Level::Warning,
            format!("{text}; check time synchronisation (NTP)"),
        )
    } else {
        check("clock", Level::Ok, text)
    }
}

/// Whether the listen address is free.
pub fn listen(config: &ServeArgs) -> Check {
    match std::net::TcpListener::bind(config.listen) {
        Ok(_) => check("listen", Level::Ok, format!("{} is free", config.listen)),
        Err(e) => check(
            "listen",
            Level::Error,
            format!(
                "cannot listen on {}: {e}; stop what holds it or set SVAMLGATE_LISTEN",
                config.listen
            ),
        ),
    }
}

/// Proxy routes' URLs resolve and answer (from PostgreSQL, else the local snapshot).
async fn routes(config: &ServeArgs, pool: Option<&sqlx::PgPool>) -> Vec<Check> {
    let live = crate::live::LiveConfig::new(&config.db.data_dir.join("config-snapshot.json"));
    if let Some(pool) = pool {
        let store = crate::db::store::Store::new(pool.clone());
        let _ = tokio::time::timeout(NET_TIMEOUT, live.refresh(&store)).await;
    }
    let mut urls: Vec<(String, String)> = Vec::new();
    for r in live.routes().iter() {
        if let crate::flows::routes::RouteTarget::Upstream { url, .. } = &r.target {
            if !urls.iter().any(|(u, _)| u == url) {
                urls.push((url.clone(), r.name.clone()));
            }
        }
    }
    if urls.is_empty() {
        return vec![check("routes", Level::Ok, "no proxy route to check")];
    }
    let mut out = Vec::new();
    for (url, name) in urls {
        out.push(probe_url(&url, &name).await);
    }
    out
}

async fn probe_url(url: &str, route: &str) -> Check {
    let client = awc::Client::builder().timeout(NET_TIMEOUT).finish();
    match client.get(url).send().await {
        Ok(res) => check(
            "routes",
            Level::Ok,
            format!("route `{route}`: {url} answers ({})", res.status().as_u16()),
        ),
        Err(e) => check(
            "routes",
            Level::Error,
            format!(
                "route `{route}`: {url} does not answer: {e}; calls routed there get the fallback: \
                 check the URL and that the app runs"
            ),
        ),
    }
}

/// One signed read request to Sinch's Calling API.
async fn sinch_online(config: &ServeArgs) -> Check {
    let (Some(key), Some(secret)) = (&config.application_key, &config.application_secret) else {
        return check(
            "sinch",
            Level::Error,
            "--online needs SINCH_APPLICATION_KEY and SINCH_APPLICATION_SECRET (the pair used \
             for the Calling API)",
        );
    };
    let a = &config.sinch_api;
    let auth =
        match crate::sinch_api::signing::Auth::new(key, secret.expose(), a.sinch_api_basic_auth) {
            Ok(a) => a,
            Err(e) => return check("sinch", Level::Error, e.to_string()),
        };
    let base = a.sinch_api_base_url.trim().trim_end_matches('/');
    let base_path = base
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
        .unwrap_or_default();
    let path = "/calling/v1/calls/id/svamlgate-doctor-probe";
    let url = format!("{base}{path}");
    let headers = auth.headers(
        "GET",
        &format!("{base_path}{path}"),
        None,
        time::OffsetDateTime::now_utc(),
    );
    let answer = crate::sinch_api::client::exchange(&crate::sinch_api::client::Exchange {
        url: &url,
        method: "GET",
        auth: &headers,
        body: None,
        timeout: Duration::from_millis(a.sinch_api_timeout_ms.max(1)),
        connect_timeout: Duration::from_millis(a.sinch_api_connect_timeout_ms.max(1)),
    })
    .await;
    match answer.status {
        Some(401) | Some(403) => check(
            "sinch",
            Level::Error,
            format!(
                "Sinch refused the credentials of key `{key}` ({}): check SINCH_APPLICATION_KEY and \
                 SINCH_APPLICATION_SECRET against the dashboard",
                answer.status.unwrap_or(0)
            ),
        ),
        Some(s) if s < 500 => check(
            "sinch",
            Level::Ok,
            format!("Sinch accepted the credentials of key `{key}` (a read of an unknown call answered {s})"),
        ),
        Some(s) => check(
            "sinch",
            Level::Warning,
            format!("Sinch answered {s}: try again later"),
        ),
        None => check(
            "sinch",
            Level::Error,
            format!(
                "could not reach {base}: {}",
                answer
                    .failure
                    .as_ref()
                    .map_or_else(String::new, |(_, m)| m.clone())
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config() -> ServeArgs {
        let mut c = ServeArgs::for_tests();
        c.application_key = Some("669E367E-6BBA-48AB-AF15-266871C28135".into());
        c.application_secret = Some(Secret::new("BeIukql3pTKJ8RGL5zo0DA=="));
        c.admin_token = Some(Secret::new("3f9c1a7e5b2d4c6e8a0b1c2d3e4f5a6b7c8d9e0f"));
        c
    }

    fn levels(checks: &[Check], name: &str) -> Vec<Level> {
        checks
            .iter()
            .filter(|c| c.check == name)
            .map(|c| c.level)
            .collect()
    }

    #[test]
    fn keys_bad_base64_duplicates_and_length() {
        let c = config();
        assert_eq!(levels(&keys(&c), "keys"), vec![Level::Ok]);
        let mut bad = config();
        bad.application_secret = Some(Secret::new("app-secret"));
        let checks = keys(&bad);
        let err = checks.iter().find(|c| c.level == Level::Error).unwrap();
        assert!(err.message.contains("not valid base64"), "{}", err.message);
        assert!(!err.message.contains("app-secret"), "{}", err.message);
        let mut dup = config();
        dup.applications = Some(Secret::new(
            "669E367E-6BBA-48AB-AF15-266871C28135:BeIukql3pTKJ8RGL5zo0DA==,short:c2VjcmV0",
        ));
        let checks = keys(&dup);
        let text: Vec<&str> = checks.iter().map(|c| c.message.as_str()).collect();
        assert!(
            text.iter()
                .any(|m| m.contains("twice with the same secret")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|m| m.contains("decodes to 6 bytes")),
            "{text:?}"
        );
        let mut none = config();
        none.application_key = None;
        none.application_secret = None;
        assert_eq!(levels(&keys(&none), "keys"), vec![Level::Error]);
    }

    #[test]
    fn signature_mode_report_warns() {
        let mut c = config();
        c.verification.signature_mode = SignatureMode::Report;
        assert_eq!(levels(&keys(&c), "signature"), vec![Level::Warning]);
        c.verification.signature_mode_keys = Some("nope:enforce".into());
        assert!(keys(&c)
            .iter()
            .any(|x| x.message.contains("`nope`, which is not a configured key")));
    }

    #[test]
    fn admin_token_strength() {
        let mut c = config();
        assert_eq!(admin_token(&c).level, Level::Ok);
        c.admin_token = Some(Secret::new("dev"));
        assert_eq!(admin_token(&c).level, Level::Error);
        c.admin_token = Some(Secret::new("aaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert_eq!(admin_token(&c).level, Level::Error);
        c.admin_token = Some(Secret::new("a1b2c3d4e5f6g7h8x9"));
        assert_eq!(admin_token(&c).level, Level::Warning);
        c.admin_token = None;
        assert_eq!(admin_token(&c).level, Level::Warning);
        assert!(!admin_token(&config()).message.contains("3f9c1a7e"));
    }

    #[test]
    fn public_url_against_the_prefix() {
        let mut c = config();
        c.verification.public_url = Some("https://v.example.com/gw/sinch/callback".into());
        let r = public_url(&c);
        assert_eq!(r[0].level, Level::Error);
        assert!(
            r[0].message
                .contains("set SVAMLGATE_PUBLIC_PATH_PREFIX=/gw"),
            "{}",
            r[0].message
        );
        c.public_path_prefix = Some("/gw".into());
        assert_eq!(public_url(&c)[0].level, Level::Ok);
    }

    #[test]
    fn journal_directory_that_cannot_be_written() {
        let mut c = config();
        // A regular file where the data directory should be: nothing can be created under it.
        let file = std::env::temp_dir().join(format!("svamlgate-doctor-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, b"x").unwrap();
        c.db.data_dir = file.clone();
        let r = journal_dir(&c);
        assert_eq!(r[0].level, Level::Error, "{}", r[0].message);
        assert!(r[0].message.contains("not writable"), "{}", r[0].message);
        std::fs::remove_file(file).unwrap();
        c.db.data_dir =
            std::env::temp_dir().join(format!("svamlgate-doctor-{}", uuid::Uuid::new_v4()));
        let r = journal_dir(&c);
        assert_ne!(r[0].level, Level::Error, "{}", r[0].message);
        assert!(r[0].message.contains("MiB free"), "{}", r[0].message);
        let _ = std::fs::remove_dir_all(&c.db.data_dir);
    }

    #[test]
    fn listen_address_in_use() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = config();
        c.listen = held.local_addr().unwrap();
        assert_eq!(listen(&c).level, Level::Error);
        drop(held);
    }
}
