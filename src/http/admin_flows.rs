//! Admin API for reply sources: call flows (`/admin/flows`: create, read, update = new version,
//! delete, list, export, simulate) and routes (`/admin/routes`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::catalog::code;
use crate::db::flows::SaveError;
use crate::error::ApiError;
use crate::flows::check::check_flow;
use crate::flows::engine::{self, Stage};
use crate::flows::model::{has_errors, FlowDoc};
use crate::flows::render::EventContext;
use crate::flows::routes::{Route, RouteTarget};
use crate::svaml::Target;

/// Largest flow document accepted.
pub const FLOW_LIMIT: usize = 1 << 20;

/// Registers the routes (inside the `/admin` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/flows", web::get().to(list_flows))
        .route("/flows", web::post().to(create_flow))
        .route("/flows/{id}", web::get().to(get_flow))
        .route("/flows/{id}", web::put().to(update_flow))
        .route("/flows/{id}", web::delete().to(delete_flow))
        .route("/flows/{id}/export", web::get().to(export_flow))
        .route("/flows/{id}/simulate", web::post().to(simulate))
        .route("/routes", web::get().to(list_routes))
        .route("/routes", web::post().to(create_route))
        .route("/routes/{id}", web::get().to(get_route))
        .route("/routes/{id}", web::put().to(update_route))
        .route("/routes/{id}", web::delete().to(delete_route));
}

fn db(e: sqlx::Error) -> ApiError {
    ApiError::from_db(&e)
}

fn save_err(e: SaveError, what: &str) -> ApiError {
    match e {
        SaveError::NameTaken => ApiError::new(
            code::CONFLICT,
            format!("A {what} with that name already exists"),
        ),
        SaveError::Reference(m) => ApiError::new(code::CONFLICT, m),
        SaveError::Db(e) => ApiError::from_db(&e),
    }
}

fn id_of(path: &web::Path<String>) -> Result<i64, ApiError> {
    path.parse::<i64>().map_err(|_| {
        ApiError::new(
            code::PARAMETER_VALIDATION,
            format!("{} is not a valid id", path.as_str()),
        )
    })
}

async fn body(req: &HttpRequest, payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    super::callback::read_body(req, payload, FLOW_LIMIT).await
}

/// Parses and checks a flow document: the flow, the document to store, and the check report.
/// A refusal carries the full report.
fn checked_flow(state: &AppState, bytes: &[u8]) -> Result<(FlowDoc, Value, Value), ApiError> {
    let flow = FlowDoc::from_json(bytes).map_err(|e| {
        ApiError::invalid_request(format!("The flow is not a valid flow document: {e}"))
    })?;
    let check = check_flow(state.gate.validator(), state.gate.mode(), &flow);
    let report = serde_json::to_value(&check).unwrap_or(Value::Null);
    if !check.valid {
        return Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            "The flow was refused: it has structural errors or can emit SVAML that the gate would reject; see details",
        )
        .with_details(report));
    }
    let doc = serde_json::to_value(&flow).map_err(|e| ApiError::internal(&e))?;
    Ok((flow, doc, report))
}

/// Takes a change made here into the routes and flows in memory at once (other instances see it
/// within their refresh interval).
async fn refresh_live(state: &AppState) {
    if let Err(e) = state.live.refresh(&state.store).await {
        tracing::warn!(error = %e, "could not reload routes and flows after a change; retried every second");
    }
}

async fn list_flows(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let flows = state.store.list_flows().await.map_err(db)?;
    Ok(HttpResponse::Ok().json(json!({"items": flows})))
}

async fn create_flow(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = body(&req, payload).await?;
    let (flow, doc, report) = checked_flow(&state, &bytes)?;
    let saved = state
        .store
        .create_flow(&flow.name, &doc)
        .await
        .map_err(|e| save_err(e, "flow"))?;
    refresh_live(&state).await;
    Ok(HttpResponse::Created()
        .insert_header(("location", format!("/admin/flows/{}", saved.id)))
        .json(json!({"flow": saved, "check": report})))
}

async fn update_flow(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path)?;
    let bytes = body(&req, payload).await?;
    let (flow, doc, report) = checked_flow(&state, &bytes)?;
    let saved = state
        .store
        .update_flow(id, &flow.name, &doc)
        .await
        .map_err(|e| save_err(e, "flow"))?;
    refresh_live(&state).await;
    match saved {
        Some(saved) => Ok(HttpResponse::Ok().json(json!({"flow": saved, "check": report}))),
        None => Err(ApiError::not_found(format!("No flow {id}"))),
    }
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<i32>,
}

async fn get_flow(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<VersionQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path)?;
    let Some(summary) = state.store.get_flow(id).await.map_err(db)? else {
        return Err(ApiError::not_found(format!("No flow {id}")));
    };
    let Some((version, document)) = state.store.flow_document(id, q.version).await.map_err(db)?
    else {
        return Err(ApiError::not_found(format!(
            "Flow {id} has no version {}",
            q.version.unwrap_or_default()
        )));
    };
    let versions = state.store.flow_versions(id).await.map_err(db)?;
    Ok(HttpResponse::Ok().json(
        json!({"flow": summary, "version": version, "versions": versions, "document": document}),
    ))
}

async fn export_flow(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<VersionQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path)?;
    let Some((version, document)) = state.store.flow_document(id, q.version).await.map_err(db)?
    else {
        return Err(ApiError::not_found(format!(
            "No flow {id} (or no such version)"
        )));
    };
    let text = serde_json::to_string_pretty(&document).map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"flow-{id}-v{version}.json\""),
        ))
        .body(text))
}

async fn delete_flow(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path)?;
    if state
        .store
        .delete_flow(id)
        .await
        .map_err(|e| save_err(e, "flow"))?
    {
        refresh_live(&state).await;
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("No flow {id}")))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SimulateRequest {
    /// A callback event as Sinch would send it.
    event: Value,
    /// The node the call is at (for PIE).
    #[serde(default)]
    current_node: Option<String>,
    /// Flow version (default: current).
    #[serde(default)]
    version: Option<i32>,
    /// Values of the call's first event (caller, called, …) for ACE/PIE placeholders.
    #[serde(default)]
    context: Option<EventContext>,
}

async fn simulate(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path)?;
    let bytes = body(&req, payload).await?;
    let sim: SimulateRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid_request(format!(
            "Body must be {{\"event\": {{…}}, \"currentNode\"?, \"version\"?, \"context\"?}}: {e}"
        ))
    })?;
    let event = crate::events::parse_value(sim.event).ok();
    let Some(stage) = event.as_ref().and_then(Stage::of) else {
        return Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            "event.event must be ice, ace or pie",
        ));
    };
    let target = match stage {
        Stage::Ice => Target::Ice,
        Stage::Ace => Target::Ace,
        Stage::Pie { .. } => Target::Pie,
    };
    let (version, flow) = match state.live.flow_or_load(&state.store, id, sim.version).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(ApiError::not_found(format!(
                "No flow {id} (or no such version)"
            )))
        }
        Err(e) => return Err(ApiError::internal(&e)),
    };
    let mut ctx = event.as_ref().map(EventContext::of).unwrap_or_default();
    if let Some(stored) = &sim.context {
        ctx.fill_missing_from(stored);
    }
    let d = engine::decide(&flow, &stage, sim.current_node.as_deref(), &ctx);
    let verdict = state.gate.pass(target, d.svaml.clone());
    Ok(HttpResponse::Ok().json(json!({
        "flowId": id,
        "version": version,
        "node": d.node,
        "via": d.via,
        "candidate": d.svaml,
        "reply": verdict.reply,
        "passed": verdict.passed,
        "report": verdict.report,
    })))
}

fn checked_route(bytes: &[u8]) -> Result<Route, ApiError> {
    let route: Route = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid_request(format!("The route is not a valid route document: {e}"))
    })?;
    let problems = route.validate();
    if has_errors(&problems) {
        return Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            "The route was refused; see details",
        )
        .with_details(json!({"problems": problems})));
    }
    Ok(route)
}

async fn ensure_flow_exists(state: &AppState, route: &Route) -> Result<(), ApiError> {
    if let RouteTarget::Flow { flow_id } = route.target {
        if state.store.get_flow(flow_id).await.map_err(db)?.is_none() {
            return Err(ApiError::new(
                code::PARAMETER_VALIDATION,
                format!("No flow {flow_id}"),
            ));
        }
    }
    Ok(())
}

async fn list_routes(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({"items": state.store.list_routes().await.map_err(db)?})))
}

async fn create_route(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let route = checked_route(&body(&req, payload).await?)?;
    ensure_flow_exists(&state, &route).await?;
    let saved = state
        .store
        .create_route(&route)
        .await
        .map_err(|e| save_err(e, "route"))?;
    refresh_live(&state).await;
    Ok(HttpResponse::Created()
        .insert_header(("location", format!("/admin/routes/{}", saved.id)))
        .json(saved))
}

async fn get_route(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path)?;
    match state.store.get_route(id).await.map_err(db)? {
        Some(r) => Ok(HttpResponse::Ok().json(r)),
        None => Err(ApiError::not_found(format!("No route {id}"))),
    }
}

async fn update_route(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path)?;
    let route = checked_route(&body(&req, payload).await?)?;
    ensure_flow_exists(&state, &route).await?;
    let saved = state
        .store
        .update_route(id, &route)
        .await
        .map_err(|e| save_err(e, "route"))?;
    refresh_live(&state).await;
    match saved {
        Some(r) => Ok(HttpResponse::Ok().json(r)),
        None => Err(ApiError::not_found(format!("No route {id}"))),
    }
}

async fn delete_route(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path)?;
    if state.store.delete_route(id).await.map_err(db)? {
        refresh_live(&state).await;
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("No route {id}")))
    }
}
