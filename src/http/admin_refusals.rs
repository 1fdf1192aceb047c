//! `GET /admin/refusals`: signature refusals newest first, with their explanations, what report
//! mode answered anyway, and the summary rows of the refusal limit.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::extract;
use super::openapi::responses::*;
use crate::app::AppState;
use crate::db::refusals::{RefusalFilter, RefusalRow};
use crate::error::ApiError;

/// Registers the refusals' admin routes.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list);
}

/// The answer of `GET /admin/refusals`.
#[derive(Serialize, ToSchema)]
struct RefusalList {
    items: Vec<RefusalRow>,
}

/// The query of `GET /admin/refusals`; any other parameter is refused (400 40001).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RefusalQuery {
    /// Only this reason, e.g. `signature_mismatch`.
    reason: Option<String>,
    /// Only this explanation cause, e.g. `path_prefix`.
    cause: Option<String>,
    /// Only refusals at or after this ISO-8601 timestamp.
    #[param(format = DateTime, example = "2026-01-31T12:00:00Z")]
    since: Option<String>,
    /// `true`: only summary rows; `false`: only refusals recorded one by one.
    summaries: Option<bool>,
    /// Page size: a positive integer; values above 500 are lowered to 500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
}

/// Signature refusals, newest first
///
/// Each refusal recorded one by one carries its explanation (what variant of the request matches the signature, the clock difference, or what is certainly right), and `answered: true` when report mode (SVAMLGATE_SIGNATURE_MODE=report) processed the callback anyway. Past SVAMLGATE_REFUSALS_PER_WINDOW per peer and reason in a window, the rest of the window is one summary row (`summary`: count, first, last, peer) whose other fields are one sample.
#[utoipa::path(
    operation_id = "listRefusals",
    tag = "errors",
    params(RefusalQuery),
    responses(
        (status = 200, description = "The refusals.", body = RefusalList),
        (status = 400, response = BadRequest),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/refusals")]
async fn list(
    state: web::Data<AppState>,
    query: web::Query<RefusalQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let filter = RefusalFilter {
        reason: q.reason,
        cause: q.cause,
        since: extract::since(q.since.as_deref())?,
        summaries: q.summaries,
        limit: extract::page_limit(q.limit, 50, 500)?,
    };
    let items = state.store.refusals(&filter).await?;
    Ok(HttpResponse::Ok().json(RefusalList { items }))
}
