//! Admin API for reply sources: call flows (`/admin/flows`: create, read, update = new version,
//! delete, list, export, simulate) and routes (`/admin/routes`).

use actix_web::{delete, get, post, put, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::extract::{Body, IdPath, Json};
use super::openapi::responses::*;
use crate::app::AppState;
use crate::catalog::code;
use crate::db::flows::{FlowSummary, SaveError};
use crate::error::ApiError;
use crate::flows::check::{check_flow, FlowCheck};
use crate::flows::engine::{self, Stage};
use crate::flows::model::{has_errors, FlowDoc};
use crate::flows::render::EventContext;
use crate::flows::routes::{Route, RouteTarget};

/// Largest flow document accepted.
pub const FLOW_LIMIT: usize = 1 << 20;

/// The answer of `GET /admin/flows`.
#[derive(Serialize, ToSchema)]
struct FlowList {
    items: Vec<FlowSummary>,
}

/// A flow saved: its summary and its check (warnings only).
#[derive(Serialize, ToSchema)]
struct FlowSaved {
    flow: FlowSummary,
    #[schema(value_type = FlowCheck)]
    check: Value,
    /// The version saved.
    version: i32,
    /// `published` (live now) or `draft` (saved, not live: publish it with `POST /admin/flows/{id}/versions/{version}/publish`).
    #[schema(example = "draft")]
    status: &'static str,
}

/// The answer of `GET /admin/flows/{id}`.
#[derive(Serialize, ToSchema)]
struct FlowDetail {
    flow: FlowSummary,
    /// Version of `document`.
    version: i32,
    /// Every version of the flow.
    versions: Vec<i32>,
    #[schema(value_type = FlowDoc)]
    document: Value,
}

/// The answer of `POST /admin/flows/{id}/simulate`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SimulateResult {
    flow_id: i64,
    version: i32,
    /// Node that answered; null for the `continue`/`hangup` defaults.
    node: Option<String>,
    /// Why this reply was chosen.
    via: String,
    /// The rendered SVAML.
    #[schema(value_type = Object)]
    candidate: Value,
    /// What would be sent: the candidate, or the fallback.
    #[schema(value_type = Object)]
    reply: Value,
    /// Whether the candidate passed the gate.
    passed: bool,
    /// The gate's report on the candidate.
    report: crate::svaml::Report,
}

/// The answer of `GET /admin/routes`.
#[derive(Serialize, ToSchema)]
struct RouteList {
    #[schema(value_type = Vec<StoredRoute>)]
    items: Vec<Route>,
}

/// A route as the answers show it: the schema of [`Route`] (which describes what is sent), with the
/// members every answer carries required and no closing of unknown members.
struct StoredRoute;

impl utoipa::PartialSchema for StoredRoute {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let mut schema = Route::schema();
        if let utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(o)) = &mut schema {
            o.description = Some("A stored routing rule (secrets redacted).".to_owned());
            o.required
                .extend(["id", "called", "callerPrefix", "priority"].map(String::from));
            o.additional_properties = None;
        }
        schema
    }
}

impl ToSchema for StoredRoute {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>) {
        Route::schemas(schemas);
    }
}

/// Registers the routes (inside the `/admin` scope).
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_flows)
        .service(create_flow)
        .service(get_flow)
        .service(update_flow)
        .service(delete_flow)
        .service(export_flow)
        .service(simulate)
        .service(list_routes)
        .service(create_route)
        .service(get_route)
        .service(update_route)
        .service(delete_route)
        .configure(super::admin_flow_changes::routes);
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

/// All call flows
///
/// Every stored flow (summary only), ordered by id.
#[utoipa::path(
    operation_id = "listFlows",
    tag = "flows",
    responses(
        (status = 200, description = "The flows.", body = FlowList),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/flows")]
async fn list_flows(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let flows = state.store.list_flows().await?;
    Ok(HttpResponse::Ok().json(FlowList { items: flows }))
}

/// Create a call flow
///
/// Stores a flow document as version 1. The flow is checked first: structural problems and every SVAML it can emit (validated by the gate for its event). A flow with any error is refused with 400 40001 and the full check in `details` (a `FlowCheck`). The body is limited to 1 MiB.
#[utoipa::path(
    operation_id = "createFlow",
    tag = "flows",
    request_body(content = FlowDoc, description = "A flow document (at most 1 MiB)."),
    responses(
        (status = 201, description = "Created; the body has the summary and the check (warnings only).", body = FlowSaved, headers(("location" = String, description = "Path of the new flow."))),
        (status = 400, response = FlowRefused),
        (status = 409, response = Conflict),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[post("/flows")]
async fn create_flow(
    state: web::Data<AppState>,
    body: Body<FLOW_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let (flow, doc, report) = checked_flow(&state, &body.0)?;
    let saved = state
        .store
        .create_flow(&flow.name, &doc)
        .await
        .map_err(|e| save_err(e, "flow"))?;
    refresh_live(&state).await;
    Ok(HttpResponse::Created()
        .insert_header(("location", format!("/admin/flows/{}", saved.id)))
        .json(FlowSaved {
            version: saved.current_version,
            flow: saved,
            check: report,
            status: "published",
        }))
}

/// Draft or not.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DraftQuery {
    /// `true`: save the version as a draft, without making it live. Not a boolean: 400 40001.
    draft: Option<bool>,
}

/// Takes the optional top-level `status` (`draft` or `published`) out of a flow body.
fn split_status(bytes: &[u8]) -> Result<(Option<String>, Option<Vec<u8>>), ApiError> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(bytes) else {
        return Ok((None, None));
    };
    let Some(status) = map.remove("status") else {
        return Ok((None, None));
    };
    match status.as_str() {
        Some(s @ ("draft" | "published")) => {
            let rest =
                serde_json::to_vec(&Value::Object(map)).map_err(|e| ApiError::internal(&e))?;
            Ok((Some(s.to_owned()), Some(rest)))
        }
        _ => Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            "status must be \"draft\" or \"published\"",
        )),
    }
}

/// Save a new version of a call flow
///
/// Checks the document like `createFlow` and saves it as a new version (one more than the highest one). Without a draft it becomes the live version at once, as it always did (the name may change). With `?draft=true`, or a top-level `"status": "draft"` next to the document's fields, it is saved as a draft: nothing changes for callers until it is published (`publishFlowVersion`, which runs the coverage check). Calls in progress keep the version they started with.
#[utoipa::path(
    operation_id = "updateFlow",
    tag = "flows",
    params(IdPath, DraftQuery),
    request_body(content = FlowDoc, description = "A flow document (at most 1 MiB), optionally with a top-level `status`: `draft` or `published`."),
    responses(
        (status = 200, description = "Saved; the summary shows the live version, `version` and `status` the one saved.", body = FlowSaved),
        (status = 400, response = FlowRefused),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[put("/flows/{id}")]
async fn update_flow(
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
    q: web::Query<DraftQuery>,
    body: Body<FLOW_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().id;
    let (status, stripped) = split_status(&body.0)?;
    let draft = match (q.draft, status.as_deref()) {
        (Some(true), Some("published")) | (Some(false), Some("draft")) => {
            return Err(ApiError::new(
                code::PARAMETER_VALIDATION,
                "draft and status disagree",
            ))
        }
        (Some(d), _) => d,
        (None, s) => s == Some("draft"),
    };
    let (flow, doc, report) = checked_flow(&state, stripped.as_deref().unwrap_or(&body.0))?;
    if draft {
        let saved = state
            .store
            .save_draft(id, &doc)
            .await
            .map_err(|e| save_err(e, "flow"))?;
        return match saved {
            Some((summary, version)) => Ok(HttpResponse::Ok().json(FlowSaved {
                flow: summary,
                check: report,
                version,
                status: "draft",
            })),
            None => Err(ApiError::not_found(format!("No flow {id}"))),
        };
    }
    let saved = state
        .store
        .update_flow(id, &flow.name, &doc)
        .await
        .map_err(|e| save_err(e, "flow"))?;
    refresh_live(&state).await;
    match saved {
        Some(saved) => Ok(HttpResponse::Ok().json(FlowSaved {
            version: saved.current_version,
            flow: saved,
            check: report,
            status: "published",
        })),
        None => Err(ApiError::not_found(format!("No flow {id}"))),
    }
}

/// Which version of a flow.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct VersionQuery {
    /// Flow version (default: the current one). Not an integer: 400 40001; a version that does not exist: 404.
    #[param(minimum = 1)]
    version: Option<i32>,
}

/// One call flow
///
/// The flow's summary, its version numbers and the document of one version (the current one unless `version` is given).
#[utoipa::path(
    operation_id = "getFlow",
    tag = "flows",
    params(IdPath, VersionQuery),
    responses(
        (status = 200, description = "The flow.", body = FlowDetail),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/flows/{id}")]
async fn get_flow(
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
    q: web::Query<VersionQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().id;
    let Some(summary) = state.store.get_flow(id).await? else {
        return Err(ApiError::not_found(format!("No flow {id}")));
    };
    let Some((version, document)) = state.store.flow_document(id, q.version).await? else {
        return Err(ApiError::not_found(format!(
            "Flow {id} has no version {}",
            q.version.unwrap_or_default()
        )));
    };
    let versions = state.store.flow_versions(id).await?;
    Ok(HttpResponse::Ok().json(FlowDetail {
        flow: summary,
        version,
        versions,
        document,
    }))
}

/// Export a call flow document
///
/// The document of one version (the current one unless `version` is given) as pretty-printed JSON, as an attachment named `flow-<id>-v<version>.json`. It can be sent back to `createFlow`.
#[utoipa::path(
    operation_id = "exportFlow",
    tag = "flows",
    params(IdPath, VersionQuery),
    responses(
        (status = 200, description = "The flow document.", body = FlowDoc, headers(("content-disposition" = String, description = "`attachment; filename=\"flow-<id>-v<version>.json\"`"))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/flows/{id}/export")]
async fn export_flow(
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
    q: web::Query<VersionQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().id;
    let Some((version, document)) = state.store.flow_document(id, q.version).await? else {
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

/// Delete a call flow
///
/// Deletes the flow and all its versions. Refused with 409 while a route targets the flow.
#[utoipa::path(
    operation_id = "deleteFlow",
    tag = "flows",
    params(IdPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[delete("/flows/{id}")]
async fn delete_flow(
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().id;
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

/// The body of `POST /admin/flows/{id}/simulate`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SimulateRequest {
    /// A callback event as Sinch would send it (`event` is ice, ace or pie).
    #[schema(value_type = Object)]
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

/// Simulate a callback against a call flow
///
/// Runs the flow engine for one callback event (ICE, ACE or PIE) without recording anything: which node answers, why, the rendered SVAML, and what the gate would send (the candidate if it passes, else the fallback). The body is limited to 1 MiB.
#[utoipa::path(
    operation_id = "simulateFlow",
    tag = "flows",
    params(IdPath),
    request_body(content = SimulateRequest),
    responses(
        (status = 200, description = "The simulated decision.", body = SimulateResult),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound)
    )
)]
#[post("/flows/{id}/simulate")]
async fn simulate(
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
    body: Body<FLOW_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().id;
    let sim: SimulateRequest = serde_json::from_slice(&body.0).map_err(|e| {
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
    let target = stage.target();
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
    Ok(HttpResponse::Ok().json(SimulateResult {
        flow_id: id,
        version,
        node: d.node,
        via: d.via,
        candidate: d.svaml,
        reply: verdict.reply,
        passed: verdict.passed,
        report: verdict.report,
    }))
}

fn checked_route(route: Route) -> Result<Route, ApiError> {
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
        if state.store.get_flow(flow_id).await?.is_none() {
            return Err(ApiError::new(
                code::PARAMETER_VALIDATION,
                format!("No flow {flow_id}"),
            ));
        }
    }
    Ok(())
}

/// All routes
///
/// Every route, ordered by id. Upstream secrets are shown as `<redacted>`.
#[utoipa::path(
    operation_id = "listRoutes",
    tag = "routes",
    responses(
        (status = 200, description = "The routes.", body = RouteList),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/routes")]
async fn list_routes(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(RouteList {
        items: state.store.list_routes().await?,
    }))
}

/// Create a route
///
/// Stores a routing rule. A route with problems is refused with 400 40001 and `details: {"problems": [FlowProblem]}`; a flow target must name an existing flow (else 400 40001). Route names are unique (409). The body is limited to 1 MiB.
#[utoipa::path(
    operation_id = "createRoute",
    tag = "routes",
    request_body(content = Route),
    responses(
        (status = 201, description = "Created.", body = StoredRoute, headers(("location" = String, description = "Path of the new route."))),
        (status = 400, response = RouteRefused),
        (status = 409, response = Conflict),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[post("/routes")]
async fn create_route(
    state: web::Data<AppState>,
    body: Json<Route, FLOW_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let route = checked_route(body.into_inner())?;
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

/// One route
///
/// The route; an upstream secret is shown as `<redacted>`.
#[utoipa::path(
    operation_id = "getRoute",
    tag = "routes",
    params(IdPath),
    responses(
        (status = 200, description = "The route.", body = StoredRoute),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/routes/{id}")]
async fn get_route(
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().id;
    match state.store.get_route(id).await? {
        Some(r) => Ok(HttpResponse::Ok().json(r)),
        None => Err(ApiError::not_found(format!("No route {id}"))),
    }
}

/// Replace a route
///
/// Replaces every field of the route (checked like `createRoute`; an upstream target must carry the secret itself, not `<redacted>`). A flow target naming a missing flow is a 409.
#[utoipa::path(
    operation_id = "updateRoute",
    tag = "routes",
    params(IdPath),
    request_body(content = Route),
    responses(
        (status = 200, description = "The updated route.", body = StoredRoute),
        (status = 400, response = RouteRefused),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[put("/routes/{id}")]
async fn update_route(
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
    body: Json<Route, FLOW_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().id;
    let route = checked_route(body.into_inner())?;
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

/// Delete a route
///
/// Deletes the route.
#[utoipa::path(
    operation_id = "deleteRoute",
    tag = "routes",
    params(IdPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[delete("/routes/{id}")]
async fn delete_route(
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().id;
    if state.store.delete_route(id).await? {
        refresh_live(&state).await;
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("No route {id}")))
    }
}
