//! `GET /admin/gate/misses`: replies the gate passed and Sinch rejected anyway (Notify
//! `callingerror` 40001 or DICE `CALLBACKERROR` linked to the reply), with the reply, the gate's
//! report, Sinch's report and its message. Each names a rule the gate lacks.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;

/// Registers the gate's admin routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/gate/misses", web::get().to(misses));
}

#[derive(Deserialize)]
struct Page {
    limit: Option<i64>,
}

async fn misses(
    state: web::Data<AppState>,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let limit = page.limit.unwrap_or(50).clamp(1, 500);
    let items = state
        .store
        .gate_misses(limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}
