//! `GET /admin/alerts`: the alerts firing now and the latest firings and resolutions
//! ([`crate::alerts`]), with the rules in force. Read from memory: no database needed.

use actix_web::{get, web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::alerts::AlertList;
use crate::app::AppState;

/// Registers the alert routes (inside the `/admin` scope).
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(alerts);
}

/// Alerts firing and recent
///
/// The alerts firing now, the latest firings and resolutions of this instance (newest first, at most 100; kept in memory, so a restart forgets them), the rules in force (threshold, window and cooldown, from SVAMLGATE_ALERT_RULES over the defaults) and how many webhooks receive them. Each alert names example call ids and references, counts, and the admin path to look at.
#[utoipa::path(
    operation_id = "listAlerts",
    tag = "alerts",
    responses(
        (status = 200, description = "Firing and recent alerts, and the rules.", body = AlertList)
    )
)]
#[get("/alerts")]
async fn alerts(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.alerts.list())
}
