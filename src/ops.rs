//! Settings of the operations features (docs/operations.md): how long an admin read waits for its
//! own writes (`recording::position`), where alerts go (`alerts`), and how long
//! records are kept in full and at all (`retention`).

use std::time::Duration;

use clap::Args;

use crate::secret::Secret;

/// The operations settings of `svamlgate serve`.
#[derive(Clone, Debug, Args)]
pub struct OpsArgs {
    /// Longest an admin read waits for the shipper to pass the journal position of the moment it
    /// arrived, in ms. Past it (or at once while PostgreSQL is away) the read answers with what is
    /// there, and says the lag (header `x-svamlgate-recording-lag`, field `recordingLag`).
    #[arg(long, env = "SVAMLGATE_ADMIN_READ_WAIT_MS", default_value_t = 2000)]
    pub admin_read_wait_ms: u64,

    /// Webhook URLs alerts are POSTed to, separated by commas (a Slack incoming-webhook URL works
    /// as it is). Unset: alerts are only listed at GET /admin/alerts.
    #[arg(long, env = "SVAMLGATE_ALERT_WEBHOOKS", hide_env_values = true)]
    pub alert_webhooks: Option<Secret>,

    /// Secret of the alert signature: when set, each delivery carries
    /// `x-svamlgate-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
    #[arg(long, env = "SVAMLGATE_ALERT_SECRET", hide_env_values = true)]
    pub alert_secret: Option<Secret>,

    /// Overrides of the alert rules' defaults, separated by commas:
    /// `rule=threshold/window[/cooldown]`, e.g. `fallback=10/2m,gate_miss=1/10m/30m`.
    #[arg(long, env = "SVAMLGATE_ALERT_RULES")]
    pub alert_rules: Option<String>,

    /// Days callbacks, errors, refusals, rejected replies, upstream exchanges and outbound records
    /// are kept. Unset (the default): nothing is ever deleted.
    #[arg(long, env = "SVAMLGATE_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub retention_days: Option<u32>,

    /// Days after which phone numbers and SIP identities in stored rows are masked (the rows are
    /// kept). Unset (the default): nothing is masked.
    #[arg(long, env = "SVAMLGATE_REDACT_AFTER_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub redact_after_days: Option<u32>,
}

impl OpsArgs {
    /// See [`OpsArgs::admin_read_wait_ms`].
    pub fn admin_read_wait(&self) -> Duration {
        Duration::from_millis(self.admin_read_wait_ms)
    }
}
