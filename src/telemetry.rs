//! Logging: tracing with `RUST_LOG`-style filtering (default `info`), human text or JSON lines
//! (`SVAMLGATE_LOG_FORMAT=json`). Request spans are created by the HTTP layer; phone numbers are masked
//! with [`crate::redact`] before they reach a log field, and secrets are [`crate::secret::Secret`]s.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}
