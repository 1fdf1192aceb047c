//! Configuration: one struct, from command-line flags and environment variables (one name per setting),
//! validated at start. Secrets live in [`Secret`], which never prints its value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// The secret type lives in [`crate::secret`] (below every module that holds one); named here too
/// because configuration is where secrets come from.
pub use crate::secret::Secret;

/// Default bound of the journal's memory queue (SVAMLGATE_JOURNAL_MEMORY_BYTES, `recording::memory`).
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;

/// How long a console session lasts when SVAMLGATE_CONSOLE_SESSION_SECS is not set.
pub const DEFAULT_SESSION_SECS: u64 = 8 * 3600;

/// Sinch's global Calling API host (redirected by Sinch to a region; SINCH_API_BASE_URL).
pub const DEFAULT_BASE_URL: &str = "https://calling.api.sinch.com";

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the database comes from.
#[derive(Clone, Debug, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. When unset, svamlgate runs its own local cluster in `--data-dir`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// Directory for the embedded PostgreSQL cluster (used only without DATABASE_URL).
    #[arg(long, env = "SVAMLGATE_DATA_DIR", default_value = ".svamlgate")]
    pub data_dir: PathBuf,

    /// Directory holding initdb and postgres; default: PATH, then /usr/lib/postgresql/*/bin.
    #[arg(long, env = "SVAMLGATE_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,

    /// Maximum connections in the pool.
    #[arg(long, env = "SVAMLGATE_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
}

/// Everything `svamlgate serve` needs.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SVAMLGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub db: DatabaseArgs,

    /// Path Sinch POSTs callbacks to (the signature covers it).
    #[arg(
        long,
        env = "SVAMLGATE_CALLBACK_PATH",
        default_value = "/sinch/callback"
    )]
    pub callback_path: String,

    /// Public path prefix removed by a reverse proxy before requests reach svamlgate; it is put back
    /// in front of the path before signatures are checked.
    #[arg(long, env = "SVAMLGATE_PUBLIC_PATH_PREFIX")]
    pub public_path_prefix: Option<String>,

    /// Sinch application key (one pair; use SINCH_APPLICATIONS for several).
    #[arg(long, env = "SINCH_APPLICATION_KEY")]
    pub application_key: Option<String>,

    /// Sinch application secret (base64, as shown in the Sinch dashboard).
    #[arg(long, env = "SINCH_APPLICATION_SECRET", hide_env_values = true)]
    pub application_secret: Option<Secret>,

    /// Several key:secret pairs separated by commas, for key rotation.
    #[arg(long, env = "SINCH_APPLICATIONS", hide_env_values = true)]
    pub applications: Option<Secret>,

    /// Verify callback signatures. Only for local development may this be false.
    #[arg(long, env = "SVAMLGATE_VERIFY_SIGNATURES", default_value_t = true, action = clap::ArgAction::Set)]
    pub verify_signatures: bool,

    /// Accepted clock skew of x-timestamp, in seconds, both directions.
    #[arg(long, env = "SVAMLGATE_TIMESTAMP_WINDOW_SECS", default_value_t = 300)]
    pub timestamp_window_secs: u64,

    /// Accept `Basic key:secret` authorization on callbacks (Sinch's Node SDK does; off by default).
    #[arg(long, env = "SVAMLGATE_ALLOW_BASIC_AUTH", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_basic_auth: bool,

    /// Bearer token of the admin API; without it the admin API answers that it is disabled.
    #[arg(long, env = "SVAMLGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "SVAMLGATE_MAX_BODY_BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,

    /// Reply deadline for ICE, in milliseconds: the fallback goes out before it.
    #[arg(long, env = "SVAMLGATE_DEADLINE_ICE_MS", default_value_t = 1500)]
    pub deadline_ice_ms: u64,

    /// Reply deadline for ACE, in milliseconds.
    #[arg(long, env = "SVAMLGATE_DEADLINE_ACE_MS", default_value_t = 1500)]
    pub deadline_ace_ms: u64,

    /// Reply deadline for PIE, in milliseconds.
    #[arg(long, env = "SVAMLGATE_DEADLINE_PIE_MS", default_value_t = 1500)]
    pub deadline_pie_ms: u64,

    /// Gate in strict mode: a spelling other than the one Sinch documents today (unknown
    /// properties, casing, prompt grammar, …) is an error too, not only what Sinch rejects.
    #[arg(long, env = "SVAMLGATE_STRICT_REPLIES", default_value_t = false, action = clap::ArgAction::Set)]
    pub strict_replies: bool,

    /// Longest `say` text, in characters: Sinch's default is 600 and Sinch support can raise it
    /// per account.
    #[arg(long, env = "SVAMLGATE_MAX_SAY_CHARS", default_value_t = crate::svaml::DEFAULT_MAX_SAY_CHARS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_say_chars: u32,

    /// Reply to ICE when no route matches (SVAML JSON, or @path to a file).
    #[arg(long, env = "SVAMLGATE_DEFAULT_ICE")]
    pub default_ice: Option<String>,
    /// Reply to ACE when no route matches (SVAML JSON, or @path).
    #[arg(long, env = "SVAMLGATE_DEFAULT_ACE")]
    pub default_ace: Option<String>,
    /// Reply to PIE when no route matches (SVAML JSON, or @path).
    #[arg(long, env = "SVAMLGATE_DEFAULT_PIE")]
    pub default_pie: Option<String>,

    /// Fallback reply to ICE when the decided reply is invalid, late or failed (SVAML JSON, or @path).
    #[arg(long, env = "SVAMLGATE_FALLBACK_ICE")]
    pub fallback_ice: Option<String>,
    /// Fallback reply to ACE (SVAML JSON, or @path).
    #[arg(long, env = "SVAMLGATE_FALLBACK_ACE")]
    pub fallback_ace: Option<String>,
    /// Fallback reply to PIE (SVAML JSON, or @path).
    #[arg(long, env = "SVAMLGATE_FALLBACK_PIE")]
    pub fallback_pie: Option<String>,

    /// Log format: text or json.
    #[arg(long, env = "SVAMLGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Seconds to let in-flight requests finish on shutdown.
    #[arg(long, env = "SVAMLGATE_SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,

    /// Worker threads of the HTTP server (default: number of cores).
    #[arg(long, env = "SVAMLGATE_WORKERS")]
    pub workers: Option<usize>,

    /// What the gate does with an invalid reply on routes that do not say (and on default replies):
    /// enforce (send the fallback) or observe (send it anyway, record what the gate would have done).
    #[arg(long, env = "SVAMLGATE_GATE_MODE", value_enum, default_value_t = crate::flows::routes::GateMode::Enforce)]
    pub gate_mode: crate::flows::routes::GateMode,

    /// Disk the local journal may use, in bytes: segments are sized from it (an eighth, at most
    /// 32 MiB) and an append that would pass it is refused (the record is held in memory). Near it
    /// readiness warns and shipped segments are deleted before the replay window ends.
    #[arg(long, env = "SVAMLGATE_JOURNAL_MAX_BYTES", default_value_t = 1 << 30)]
    pub journal_max_bytes: u64,

    /// Write the journal into segments zero-filled ahead of time (true, the default), so that a
    /// flush changes no file metadata; false appends to growing files (less disk written, for
    /// copy-on-write filesystems where zero-filling buys nothing).
    #[arg(long, env = "SVAMLGATE_JOURNAL_PREALLOCATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub journal_preallocate: bool,

    /// Zero-filled segments kept ready for bursts: the next one, and a reserve filled while no
    /// segment has been started for two seconds (only while the journal stays under three
    /// quarters of SVAMLGATE_JOURNAL_MAX_BYTES and PostgreSQL keeps up; given up when records need
    /// the room). Default: half the limit, from 1 to 16 segments. 1 keeps only the next one.
    #[arg(long, env = "SVAMLGATE_JOURNAL_SPARES", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub journal_spares: Option<u64>,

    /// Several instances on one database: how long an event of a call this instance does not know
    /// waits for another instance's record of it to reach PostgreSQL, in ms. 0 (one instance):
    /// calls are known from memory alone, and no event ever reads PostgreSQL.
    #[arg(long, env = "SVAMLGATE_PEER_STATE_WAIT_MS", default_value_t = 0)]
    pub peer_state_wait_ms: u64,

    /// Callers before records: while callbacks queue for the CPU, the shipper holds its batches
    /// back for at most this many seconds, then ships until it has caught up. 0 ships whatever the
    /// load. Never while the journal's unshipped segments fill half of SVAMLGATE_JOURNAL_MAX_BYTES
    /// or records wait in memory. Ignored (0) when SVAMLGATE_PEER_STATE_WAIT_MS is set: other
    /// instances read call state from PostgreSQL.
    #[arg(long, env = "SVAMLGATE_SHIP_DEFER_MAX_SECS", default_value_t = 10)]
    pub ship_defer_max_secs: u64,

    /// Memory for records the journal cannot take (disk full or failing, or at
    /// SVAMLGATE_JOURNAL_MAX_BYTES), in bytes. The shipper empties it into PostgreSQL, or back into
    /// the journal once it works; past it (journal and PostgreSQL both failing) records are dropped,
    /// counted in svamlgate_records_dropped_total.
    #[arg(long, env = "SVAMLGATE_JOURNAL_MEMORY_BYTES", default_value_t = DEFAULT_MEMORY_BYTES)]
    pub journal_memory_bytes: u64,

    #[command(flatten)]
    pub sinch_api: SinchApiArgs,

    /// Signature mode (enforce or report), the canary, and the refusal limit.
    #[command(flatten)]
    pub verification: crate::signature::settings::VerificationArgs,
    /// Operations: read-your-writes, alerts, retention and redaction (docs/operations.md).
    #[command(flatten)]
    pub ops: crate::ops::OpsArgs,
    /// Operator listener for the admin API, the console and the metrics (e.g. 127.0.0.1:9090).
    /// When set, SVAMLGATE_LISTEN answers only the callback path and /healthz.
    #[arg(long, env = "SVAMLGATE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// How long a console login lasts, in seconds.
    #[arg(long, env = "SVAMLGATE_CONSOLE_SESSION_SECS", default_value_t = DEFAULT_SESSION_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub console_session_secs: u64,

    /// How the shipper's transactions commit (docs/recording.md): `deferred` does not wait for
    /// PostgreSQL's disk (the journal keeps each batch until PostgreSQL reports it flushed);
    /// `flushed` waits, as PostgreSQL's `synchronous_commit` says (use it with synchronous
    /// replication, so that a failover loses nothing); `auto` is `deferred` with the embedded
    /// cluster and `flushed` with DATABASE_URL.
    #[arg(long, env = "SVAMLGATE_SHIP_COMMIT", value_enum, default_value_t = ShipCommit::Auto)]
    pub ship_commit: ShipCommit,
}

/// `SVAMLGATE_SHIP_COMMIT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShipCommit {
    /// `deferred` with the embedded cluster, `flushed` with DATABASE_URL.
    Auto,
    /// Commits do not wait for PostgreSQL's disk; the journal waits for it instead.
    Deferred,
    /// Commits wait for PostgreSQL's disk (and its synchronous standbys).
    Flushed,
}

/// How svamlgate talks to Sinch's Calling API (callouts, call and conference control). The
/// application key and secret are SINCH_APPLICATION_KEY and SINCH_APPLICATION_SECRET.
#[derive(Clone, Debug, Args)]
pub struct SinchApiArgs {
    /// Base URL of the Calling API (a regional host, or a stand-in for tests).
    #[arg(
        long,
        env = "SINCH_API_BASE_URL",
        default_value = DEFAULT_BASE_URL
    )]
    pub sinch_api_base_url: String,

    /// Authenticate with Basic (key:secret) instead of signing each request.
    #[arg(long, env = "SINCH_API_BASIC_AUTH", default_value_t = false, action = clap::ArgAction::Set)]
    pub sinch_api_basic_auth: bool,

    /// Deadline of one attempt (connect, send, answer), in milliseconds.
    #[arg(long, env = "SINCH_API_TIMEOUT_MS", default_value_t = 10_000)]
    pub sinch_api_timeout_ms: u64,

    /// Deadline for connecting (DNS, TCP, TLS), in milliseconds; below SINCH_API_TIMEOUT_MS.
    #[arg(long, env = "SINCH_API_CONNECT_TIMEOUT_MS", default_value_t = 3_000)]
    pub sinch_api_connect_timeout_ms: u64,

    /// Attempts per request, the first included (retries: 429, 5xx, network errors).
    #[arg(long, env = "SINCH_API_MAX_ATTEMPTS", default_value_t = 4)]
    pub sinch_api_max_attempts: u32,

    /// First backoff delay in milliseconds (doubled per retry, with jitter).
    #[arg(long, env = "SINCH_API_RETRY_BASE_MS", default_value_t = 500)]
    pub sinch_api_retry_base_ms: u64,

    /// Longest single wait between attempts in milliseconds; a longer Retry-After is not waited for.
    #[arg(long, env = "SINCH_API_RETRY_MAX_MS", default_value_t = 8_000)]
    pub sinch_api_retry_max_ms: u64,

    /// Calls in progress allowed at once before callouts are refused locally (429 42900).
    #[arg(long, env = "SINCH_MAX_CALLS_IN_PROGRESS", default_value_t = 10)]
    pub sinch_max_calls_in_progress: u32,

    /// A call without DICE after this many seconds no longer counts as in progress.
    #[arg(long, env = "SINCH_CALL_MAX_AGE_SECS", default_value_t = 14_400)]
    pub sinch_call_max_age_secs: u64,

    /// How long a callout without enableDice (or whose answer never came) counts as in progress.
    #[arg(long, env = "SINCH_UNTRACKED_CALL_SECS", default_value_t = 600)]
    pub sinch_untracked_call_secs: u64,
}

impl ServeArgs {
    /// The account limits the SVAML gate applies.
    pub fn limits(&self) -> crate::svaml::Limits {
        crate::svaml::Limits {
            max_say_chars: self.max_say_chars as usize,
        }
    }

    /// The reply deadline of an event that expects SVAML (a name cannot be mistyped into the ICE
    /// deadline). A manage-call body has no callback deadline; it gets the ICE one.
    pub fn deadline(&self, target: crate::svaml::Target) -> Duration {
        use crate::svaml::Target;
        let ms = match target {
            Target::Ice | Target::Manage => self.deadline_ice_ms,
            Target::Ace => self.deadline_ace_ms,
            Target::Pie => self.deadline_pie_ms,
        };
        Duration::from_millis(ms)
    }

    /// See [`ServeArgs::peer_state_wait_ms`].
    pub fn peer_state_wait(&self) -> Duration {
        Duration::from_millis(self.peer_state_wait_ms)
    }

    /// How long the shipper may hold back under load (none when instances share call state).
    pub fn ship_defer_max(&self) -> Duration {
        if self.peer_state_wait_ms > 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(self.ship_defer_max_secs)
        }
    }

    /// Configuration for tests and embedding: defaults everywhere, listening on a random local port.
    pub fn for_tests() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            serve: ServeArgs,
        }
        // Parse an empty command line without reading the environment of the test process.
        let mut serve = Wrapper::parse_from(["svamlgate"]).serve;
        serve.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        serve.db.database_url = None;
        serve.application_key = None;
        serve.application_secret = None;
        serve.applications = None;
        serve.admin_token = None;
        serve.admin_listen = None;
        serve.verify_signatures = true;
        // Nothing listens on port 9 locally: a test that does not start a Sinch stand-in never
        // reaches the real Sinch, and fails fast.
        serve.sinch_api.sinch_api_base_url = "http://127.0.0.1:9".to_owned();
        serve.sinch_api.sinch_api_retry_base_ms = 10;
        serve.sinch_api.sinch_api_retry_max_ms = 100;
        serve
    }
}

/// Reads a setting that is either inline JSON or `@path/to/file.json`.
pub fn read_inline_or_file(value: &str) -> anyhow::Result<String> {
    match value.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))
        }
        None => Ok(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn say_limit_defaults_to_sinch_and_is_configurable() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let c = ServeArgs::for_tests();
        assert_eq!(c.limits(), crate::svaml::Limits::default());
        let raised = Wrapper::try_parse_from(["svamlgate", "--max-say-chars", "2000"])
            .map(|w| w.serve.limits().max_say_chars);
        assert_eq!(raised.ok(), Some(2000));
        assert!(Wrapper::try_parse_from(["svamlgate", "--max-say-chars", "0"]).is_err());
    }

    #[test]
    fn deadlines_per_event() {
        let mut c = ServeArgs::for_tests();
        c.deadline_ace_ms = 10;
        assert_eq!(
            c.deadline(crate::svaml::Target::Ace),
            Duration::from_millis(10)
        );
        assert_eq!(
            c.deadline(crate::svaml::Target::Ice),
            Duration::from_millis(1500)
        );
    }
}
