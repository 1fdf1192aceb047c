//! `GET /healthz` (the process is up), `GET /readyz` (the database answers within a second) and
//! `GET /metrics` (Prometheus text format).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::app::AppState;

/// Liveness: touches nothing.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the database must answer `SELECT 1` within one second.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => {
            HttpResponse::Ok().json(json!({"status": "ready", "checks": {"database": "ok"}}))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database error");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "checks": {"database": "error"}}))
        }
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "checks": {"database": "timeout"}})),
    }
}

/// Prometheus exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
