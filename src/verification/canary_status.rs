//! The canary's last result (`canary` runs it), kept with the verification state that
//! `/readyz`, `/metrics` and alerting read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;

/// One canary run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRun {
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
    /// Answered 200 with a reply that passes the gate, in time, with a certificate not about to expire.
    pub ok: bool,
    /// The stage that failed: `config`, `dns`, `connect`, `tls`, `certificate`, `request`,
    /// `signature`, `status`, `gate` or `slow`.
    pub failed_stage: Option<String>,
    /// What happened, one line.
    pub message: String,
    /// The signature explanation, when svamlgate refused the canary's signature.
    pub explanation: Option<String>,
    /// HTTP status of the answer.
    pub status: Option<u16>,
    /// The answer's reference (`x-svamlgate-reference`, or the error envelope's).
    pub reference: Option<String>,
    /// Milliseconds spent resolving the host.
    pub dns_ms: Option<f64>,
    /// Milliseconds spent connecting.
    pub connect_ms: Option<f64>,
    /// Milliseconds spent in the TLS handshake (https only).
    pub tls_ms: Option<f64>,
    /// Milliseconds from the request written to the answer read.
    pub answer_ms: Option<f64>,
    /// Milliseconds for the whole run.
    pub total_ms: f64,
    /// When the public URL's certificate expires (https only).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub cert_expires_at: Option<OffsetDateTime>,
    /// Failed runs in a row, this one included.
    pub consecutive_failures: u64,
}

/// The canary's last result, read by `/readyz`, `/metrics` and alerting.
#[derive(Debug, Default)]
pub struct CanaryStatus {
    last: Mutex<Option<CanaryRun>>,
    failures_in_row: AtomicU64,
}

impl CanaryStatus {
    /// The last run, if the canary has run.
    pub fn last(&self) -> Option<CanaryRun> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Keeps a run (and counts failures in a row).
    pub fn record(&self, mut run: CanaryRun) {
        run.consecutive_failures = if run.ok {
            self.failures_in_row.store(0, Ordering::Relaxed);
            0
        } else {
            self.failures_in_row.fetch_add(1, Ordering::Relaxed) + 1
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(run);
    }

    /// For alerting: one line while the last run failed or was slow, `None` while it is fine
    /// (or the canary is off).
    pub fn alert(&self) -> Option<String> {
        let run = self.last()?;
        if run.ok {
            return None;
        }
        let mut line = format!(
            "canary through SVAMLGATE_PUBLIC_URL failed ({}): {}",
            run.failed_stage.as_deref().unwrap_or("unknown"),
            run.message
        );
        if let Some(e) = &run.explanation {
            line.push_str("; ");
            line.push_str(e);
        }
        Some(line)
    }

    /// Gauges for `/metrics`: `svamlgate_canary_up`, `svamlgate_canary_total_seconds`,
    /// `svamlgate_canary_cert_expiry_timestamp_seconds` (empty while the canary has not run).
    pub fn gauges(&self) -> String {
        let Some(run) = self.last() else {
            return String::new();
        };
        let mut out = format!(
            "# HELP svamlgate_canary_up 1 when the last canary run through SVAMLGATE_PUBLIC_URL was fine.\n\
             # TYPE svamlgate_canary_up gauge\nsvamlgate_canary_up {}\n\
             # HELP svamlgate_canary_total_seconds Duration of the last canary run.\n\
             # TYPE svamlgate_canary_total_seconds gauge\nsvamlgate_canary_total_seconds {}\n",
            u8::from(run.ok),
            run.total_ms / 1000.0
        );
        if let Some(t) = run.cert_expires_at {
            out.push_str(&format!(
                "# HELP svamlgate_canary_cert_expiry_timestamp_seconds When the public URL's certificate expires.\n\
                 # TYPE svamlgate_canary_cert_expiry_timestamp_seconds gauge\n\
                 svamlgate_canary_cert_expiry_timestamp_seconds {}\n",
                t.unix_timestamp()
            ));
        }
        out
    }
}
