//! `GET /admin/gate/misses`: replies the gate passed and Sinch rejected anyway (Notify
//! `callingerror` 40001 or DICE `CALLBACKERROR` linked to the reply), with the reply, the gate's
//! report, Sinch's report and its message. Each names a rule the gate lacks.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::responses::*;
use crate::app::AppState;
use crate::error::ApiError;

/// Registers the gate's admin routes.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(misses);
}

/// The answer of `GET /admin/gate/misses`: newest first.
#[derive(Serialize, ToSchema)]
struct GateMissList {
    items: Vec<crate::db::store::GateMiss>,
}

/// A page of misses.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Page size (default 50); values are brought into 1 to 500.
    #[param(default = 50)]
    limit: Option<i64>,
}

/// Replies the gate passed and Sinch rejected
///
/// Each item is a reply svamlgate sent that Sinch then reported it could not use (Notify callingerror 40001, or DICE reason CALLBACKERROR, linked to the reply svamlgate last sent on that call), while the gate had passed it. Newest first.
#[utoipa::path(
    operation_id = "listGateMisses",
    tag = "gate",
    params(Page),
    responses(
        (status = 200, description = "The misses.", body = GateMissList),
        (status = 400, response = BadRequest),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/gate/misses")]

async fn misses(
    state: web::Data<AppState>,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let limit = page.limit.unwrap_or(50).clamp(1, 500);
    let items = state.store.gate_misses(limit).await?;
    Ok(HttpResponse::Ok().json(GateMissList { items }))
}
