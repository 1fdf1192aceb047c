//! `GET /healthz` (the process is up), `GET /readyz` (the journal can take records; database and
//! shipping state in the details) and
//! `GET /metrics` (Prometheus text format).

use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;

/// The answer of `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The answer of `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`; `degraded` while PostgreSQL is away or restarting, or the journal is near its limit
    /// (callers are still answered and nothing is lost); `unavailable` (503) when the journal is
    /// over its disk limit.
    #[schema(example = "ready")]
    status: &'static str,
    checks: Checks,
    shipping: Shipping,
}

/// What readiness looked at.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    /// `ok`, `unavailable` or `timeout` (no answer within one second).
    database: &'static str,
    /// The embedded PostgreSQL cluster: `running` or `restarting`; null when svamlgate uses an
    /// external database (DATABASE_URL).
    embedded_cluster: Option<&'static str>,
    /// The journal against its disk limit: `ok`, `near_limit` (above 90%) or `over_limit`.
    journal: &'static str,
}

/// How far PostgreSQL is behind the journal.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Shipping {
    /// Records in the journal not yet in PostgreSQL.
    lag_records: u64,
    /// Seconds since the shipper last had nothing left to ship (0 when caught up).
    lag_seconds: f64,
    /// Bytes held in journal segments.
    journal_bytes: u64,
    /// The journal's disk limit (SVAMLGATE_JOURNAL_MAX_BYTES).
    journal_max_bytes: u64,
    /// The shipper's last error, if its last attempt failed.
    last_error: Option<String>,
}

/// Liveness
///
/// Answers while the process is up; touches nothing else.
#[utoipa::path(
    operation_id = "healthz",
    tag = "service",
    responses(
        (status = 200, description = "Up.", body = Health)
    ),
    security(())
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness
///
/// svamlgate answers callbacks whenever its journal works, so readiness fails (503) only when the journal is over its disk limit. PostgreSQL being slow, away or restarting is reported in the details (`checks.database`, `shipping`) with `"status": "degraded"`, because callers are still answered and nothing is lost.
#[utoipa::path(
    operation_id = "readyz",
    tag = "service",
    responses(
        (status = 200, description = "Ready, or degraded (PostgreSQL away, restarting, or the journal near its limit).", body = Readiness),
        (status = 503, description = "Not ready: the journal is over its disk limit.", body = Readiness)
    ),
    security(())
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let status = &state.recorder.status;
    let database = match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(_)) => "unavailable",
        Err(_) => "timeout",
    };
    let cluster = state.cluster.as_ref().map(|c| c.state());
    let journal_bytes = state.recorder.journal().bytes();
    let limit = state.config.journal_max_bytes;
    let journal = crate::recording::journal::level(journal_bytes, limit);
    let last_error = status
        .last_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let body = Readiness {
        status: if journal == "over_limit" {
            "unavailable"
        } else if database != "ok" || journal != "ok" {
            "degraded"
        } else {
            "ready"
        },
        checks: Checks {
            database,
            embedded_cluster: cluster,
            journal,
        },
        shipping: Shipping {
            lag_records: status.lag_records(),
            lag_seconds: status.lag_seconds(),
            journal_bytes,
            journal_max_bytes: limit,
            last_error,
        },
    };
    if journal == "over_limit" {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// Prometheus metrics
///
/// Counters, gauges and histograms in the Prometheus text exposition format (0.0.4).
#[utoipa::path(
    operation_id = "metrics",
    tag = "service",
    responses(
        (status = 200, description = "The metrics.", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8")
    ),
    security(())
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    use std::fmt::Write as _;
    let status = &state.recorder.status;
    let mut text = state.metrics.render();
    let gauges = [
        (
            "svamlgate_journal_lag_records",
            "Records in the journal not yet in PostgreSQL.",
            status.lag_records() as f64,
        ),
        (
            "svamlgate_journal_lag_seconds",
            "Seconds since the shipper last had nothing left to ship (0 when caught up).",
            status.lag_seconds(),
        ),
        (
            "svamlgate_journal_bytes",
            "Bytes held in journal segments.",
            state.recorder.journal().bytes() as f64,
        ),
        (
            "svamlgate_journal_max_bytes",
            "The journal's disk limit (SVAMLGATE_JOURNAL_MAX_BYTES).",
            state.config.journal_max_bytes as f64,
        ),
        (
            "svamlgate_replay_keys",
            "Dedup keys held for replay detection.",
            state.replays.len() as f64,
        ),
        (
            "svamlgate_calls_in_memory",
            "Calls in progress held in memory.",
            state.calls.len() as f64,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = write!(
            text,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        );
    }
    if let Some(cluster) = &state.cluster {
        let up = u8::from(cluster.state() == "running");
        let _ = write!(
            text,
            "# HELP svamlgate_embedded_cluster_up 1 while the embedded PostgreSQL cluster runs, 0 while it restarts.\n\
             # TYPE svamlgate_embedded_cluster_up gauge\nsvamlgate_embedded_cluster_up {up}\n\
             # HELP svamlgate_embedded_cluster_restarts Restarts of the embedded PostgreSQL cluster since start.\n\
             # TYPE svamlgate_embedded_cluster_restarts gauge\nsvamlgate_embedded_cluster_restarts {}\n",
            cluster.restarts()
        );
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
