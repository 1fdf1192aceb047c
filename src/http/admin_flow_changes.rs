//! Admin API for changing a live flow safely: its versions (draft or published, calls in progress,
//! drained), whole-call coverage, the publish step (refused on a coverage error unless forced),
//! replay of stored calls against a version, and what shadowing a version found.
//!
//! Saving a draft is `PUT /admin/flows/{id}?draft=true` (in `admin_flows`).

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::extract::{Body, IdPath};
use super::openapi::responses::*;
use crate::app::AppState;
use crate::catalog::code;
use crate::db::flow_changes::{
    CallSelection, Published, ShadowDifference, ShadowTotals, VersionInfo, MAX_REPLAY_CALLS,
};
use crate::db::flows::SaveError;
use crate::error::ApiError;
use crate::flows::check::check_flow;
use crate::flows::coverage::{self, CoverageReport};
use crate::flows::model::FlowDoc;
use crate::flows::replay::{replay_call, CallReplay, Judge};

/// Largest body of publish and replay.
const BODY_LIMIT: usize = 1 << 16;

/// `{id}` and `{version}` of a flow version.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct FlowVersionPath {
    /// The flow's id. Not an integer: 400 40001.
    #[param(minimum = 1)]
    id: i64,
    /// The version. Not an integer: 400 40001.
    #[param(minimum = 1)]
    version: i32,
}

/// Registers the routes (inside the `/admin` scope).
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_versions)
        .service(get_coverage)
        .service(publish)
        .service(replay)
        .service(shadow);
}

/// Runs the coverage walk on the blocking pool: a large flow must not hold up the worker that also
/// answers callbacks.
async fn walk(
    state: &web::Data<AppState>,
    flow: std::sync::Arc<FlowDoc>,
) -> Result<CoverageReport, ApiError> {
    let st = state.clone();
    web::block(move || coverage::coverage(st.gate.validator(), st.gate.mode(), &flow))
        .await
        .map_err(|e| ApiError::internal(&e))
}

fn shipping_lag(state: &AppState) -> u64 {
    state.recorder.status.lag_records()
}

/// Longest an admin read waits for the callbacks answered before it to reach PostgreSQL.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits (at most [`CATCH_UP`], not at all while PostgreSQL is failing) until every record
/// journaled before this read is in PostgreSQL, so that the read reflects every callback answered
/// before it; what is still missing after that is reported as `shippingLagRecords`.
async fn catch_up(state: &AppState) {
    use std::sync::atomic::Ordering;
    let status = &state.recorder.status;
    let target = *state.recorder.journal().durable().borrow();
    let until = std::time::Instant::now() + CATCH_UP;
    while status.shipped.load(Ordering::Acquire) < target
        && status.db_ok.load(Ordering::Acquire)
        && std::time::Instant::now() < until
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The answer of `GET /admin/flows/{id}/versions`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct VersionList {
    flow_id: i64,
    /// The live version (new calls get it).
    current_version: i32,
    /// Every version, oldest first.
    items: Vec<VersionInfo>,
    /// Records answered but not yet in PostgreSQL (the counts include this instance's calls in
    /// memory; other instances' calls count once their records are shipped).
    shipping_lag_records: u64,
}

/// The versions of a call flow
///
/// Every version with its status (`draft`: saved, never live; `published`), whether it is live, when it last became live (and whether with `force`), and how many calls in progress are pinned to it. Calls finish on the version they started with; a version with none is `drained`.
#[utoipa::path(
    operation_id = "listFlowVersions",
    tag = "flows",
    params(IdPath),
    responses(
        (status = 200, description = "The versions.", body = VersionList),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/flows/{id}/versions")]
async fn list_versions(
    state: web::Data<AppState>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().id;
    let Some(summary) = state.store.get_flow(id).await? else {
        return Err(ApiError::not_found(format!("No flow {id}")));
    };
    catch_up(&state).await;
    let local = state.calls.pinned_to_flow(id);
    let items = state.store.version_infos(id, &local).await?;
    Ok(HttpResponse::Ok().json(VersionList {
        flow_id: id,
        current_version: summary.current_version,
        items,
        shipping_lag_records: shipping_lag(&state),
    }))
}

async fn load_version(
    state: &AppState,
    id: i64,
    version: i32,
) -> Result<(FlowDoc, Value), ApiError> {
    let Some((_, document)) = state.store.flow_document(id, Some(version)).await? else {
        return Err(ApiError::not_found(format!(
            "Flow {id} has no version {version}"
        )));
    };
    let bytes = serde_json::to_vec(&document).map_err(|e| ApiError::internal(&e))?;
    let flow = FlowDoc::from_json(&bytes).map_err(|e| ApiError::internal(&e))?;
    Ok((flow, document))
}

/// Which form of the coverage report.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CoverageQuery {
    /// `json` (default) or `text`: the paths as an indented tree, with what the caller hears at each step.
    format: Option<String>,
}

/// Whole-call coverage of a flow version
///
/// Walks every path a caller can take from the ICE (and the ACE when the flow answers one): every key, digits, silence, invalid input, error and hangup, carrying the cookies `setCookie` sets as Sinch would, with the PIE Sinch would send at each step; every reply is rendered and gated in its call. Reports nodes never reached, options that lead nowhere, loops a caller cannot leave, replies the gate refuses or warns about (with the path), paths that end in a hangup without a prompt, and the longest path. Nothing is recorded.
#[utoipa::path(
    operation_id = "flowCoverage",
    tag = "flows",
    params(FlowVersionPath, CoverageQuery),
    responses(
        (status = 200, description = "The coverage report (JSON); with `format=text`, its readable form as `text/plain`.", body = CoverageReport),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/flows/{id}/versions/{version}/coverage")]
async fn get_coverage(
    state: web::Data<AppState>,
    path: web::Path<FlowVersionPath>,
    q: web::Query<CoverageQuery>,
) -> Result<HttpResponse, ApiError> {
    let FlowVersionPath { id, version } = path.into_inner();
    let text = match q.format.as_deref() {
        None | Some("json") => false,
        Some("text") => true,
        Some(_) => {
            return Err(ApiError::new(
                code::PARAMETER_VALIDATION,
                "format must be json or text",
            ))
        }
    };
    let (flow, _) = load_version(&state, id, version).await?;
    let report = walk(&state, std::sync::Arc::new(flow)).await?;
    if text {
        Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(coverage::render_text(&report)))
    } else {
        Ok(HttpResponse::Ok().json(report))
    }
}

/// The body of a publish.
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublishRequest {
    /// Publish although the coverage check found errors (recorded with the publication).
    #[serde(default)]
    force: bool,
    /// Why (recorded with the publication).
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// The coverage report without its steps, as a publish answers it.
fn coverage_summary(r: &CoverageReport) -> Value {
    json!({
        "valid": r.valid,
        "errors": r.errors,
        "warnings": r.warnings,
        "problems": r.problems,
        "findings": r.findings,
        "unreachedNodes": r.unreached_nodes,
        "longestPath": r.longest_path,
    })
}

/// The answer of a publish.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PublishResult {
    #[serde(flatten)]
    published: Published,
    /// The version now live.
    version: i32,
    /// Whether it was published over coverage errors.
    forced: bool,
    /// The coverage check (without the steps; `GET .../coverage` has them).
    #[schema(value_type = Object)]
    coverage: Value,
}

/// An optional JSON body: empty (or only white space) is `T::default()`; `shape` says what it
/// must look like otherwise.
fn optional_body<T: Default + serde::de::DeserializeOwned>(
    bytes: &[u8],
    shape: &str,
) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_request(format!("Body must be {shape} or empty: {e}")))
}

/// The checks a version passes before it is published: the structural check and the gate of
/// every reply (never overridden), then whole-call coverage (an error refuses it unless
/// `force`). Returns the coverage report.
async fn publishable(
    state: &web::Data<AppState>,
    flow: std::sync::Arc<FlowDoc>,
    force: bool,
) -> Result<CoverageReport, ApiError> {
    let check = check_flow(state.gate.validator(), state.gate.mode(), &flow);
    if !check.valid {
        return Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            "The version was refused: it has structural errors or can emit SVAML that the gate would reject (force does not override this); see details",
        )
        .with_details(json!({"check": check})));
    }
    let report = walk(state, flow).await?;
    if !report.valid && !force {
        return Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            format!(
                "The version was not published: coverage found {} error(s); fix them, or publish with \"force\": true (recorded); see details",
                report.errors
            ),
        )
        .with_details(json!({"coverage": coverage_summary(&report)})));
    }
    Ok(report)
}

fn publish_error(e: SaveError) -> ApiError {
    match e {
        SaveError::NameTaken => ApiError::new(
            code::CONFLICT,
            "Another flow already has this version's name",
        ),
        SaveError::Reference(m) => ApiError::new(code::CONFLICT, m),
        SaveError::Db(e) => ApiError::from_db(&e),
    }
}

/// Publish a flow version (also: roll back)
///
/// Makes the version the one new calls get. The version is checked first: the structural check and gate of every reply (as on save; never overridden), then whole-call coverage. When coverage finds an error the publish is refused with 400 40001 and the report in `details` (`coverage`), unless `force` is true: then it is published and the publication records `forced`, the reason and the findings. Calls in progress finish on the version they started with. Rolling back is publishing an earlier version. The body is optional.
#[utoipa::path(
    operation_id = "publishFlowVersion",
    tag = "flows",
    params(FlowVersionPath),
    request_body(content = PublishRequest, description = "Optional (an empty body is `{}`): `force` and `reason`."),
    responses(
        (status = 200, description = "Published.", body = PublishResult),
        (status = 400, response = PublishRefused),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[post("/flows/{id}/versions/{version}/publish")]
async fn publish(
    state: web::Data<AppState>,
    path: web::Path<FlowVersionPath>,
    body: Body<BODY_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let FlowVersionPath { id, version } = path.into_inner();
    let req: PublishRequest = optional_body(&body.0, "{\"force\"?: true, \"reason\"?: \"…\"}")?;
    if req.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            "reason is longer than 500 characters",
        ));
    }
    let (flow, _) = load_version(&state, id, version).await?;
    let flow = std::sync::Arc::new(flow);
    let report = publishable(&state, flow.clone(), req.force).await?;
    let summary = coverage_summary(&report);
    let forced = !report.valid;
    let published = state
        .store
        .publish_version(
            id,
            version,
            &flow.name,
            forced,
            req.reason.as_deref(),
            i32::try_from(report.errors).unwrap_or(i32::MAX),
            i32::try_from(report.warnings).unwrap_or(i32::MAX),
            forced.then_some(&summary),
        )
        .await
        .map_err(publish_error)?;
    let Some(published) = published else {
        return Err(ApiError::not_found(format!(
            "Flow {id} has no version {version}"
        )));
    };
    if forced {
        tracing::warn!(
            flow = id,
            version,
            errors = report.errors,
            "flow version published with force over coverage errors"
        );
    }
    if let Err(e) = state.live.refresh(&state.store).await {
        tracing::warn!(error = %e, "could not reload routes and flows after a publish; retried every second");
    }
    Ok(HttpResponse::Ok().json(PublishResult {
        published,
        version,
        forced,
        coverage: summary,
    }))
}

/// The body of a replay: which stored calls.
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplayRequest {
    /// These calls (call ids).
    #[serde(default)]
    callids: Vec<String>,
    /// Calls that started at or after this (ISO-8601).
    #[serde(default)]
    since: Option<String>,
    /// Calls that started before this (ISO-8601).
    #[serde(default)]
    until: Option<String>,
    /// The latest N calls (default 100, at most 500).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 500)]
    last: Option<i64>,
}

/// The answer of a replay.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ReplayReport {
    flow_id: i64,
    /// The candidate version.
    version: i32,
    /// Calls replayed.
    calls: usize,
    /// Calls the candidate answers the same way, event for event (same nodes, same replies).
    same: usize,
    /// Calls whose path differs: an event answered by another node, or an input without meaning
    /// (the calls that pressed a moved key).
    path_different: usize,
    /// Calls on the same path whose replies differ (a reworded prompt, a reordered menu).
    replies_different: usize,
    /// Calls whose recorded input has no meaning in the candidate.
    meaningless: usize,
    /// Calls in which the gate would refuse a reply of the candidate.
    refused: usize,
    /// Records answered but not yet in PostgreSQL: calls answered in the last moments may be
    /// missing when this is not 0.
    shipping_lag_records: u64,
    /// One entry per call, latest first.
    items: Vec<CallReplay>,
}

/// Replay stored calls against a flow version
///
/// Takes stored calls that went through this flow (by `callids`, a time range `since`/`until`, or the `last` N; default the last 100, at most 500) and re-drives each one's recorded events through the version: the ICE, then the PIE answers the caller actually gave, with the same timing facts. The key a caller pressed is read from the menu that was sent and the value Sinch reported, so a moved key is replayed as the key. For each call: whether the path (the node answering each event) and the replies are the same, else the first difference (and the first difference of path) with both replies side by side; inputs that have no meaning in the version; replies the gate would now refuse. Nothing is sent to Sinch and nothing is recorded as a callback.
#[utoipa::path(
    operation_id = "replayFlowVersion",
    tag = "flows",
    params(FlowVersionPath),
    request_body(content = ReplayRequest, description = "Which calls (an empty body is `{}`: the last 100)."),
    responses(
        (status = 200, description = "The replay report.", body = ReplayReport),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[post("/flows/{id}/versions/{version}/replay")]
async fn replay(
    state: web::Data<AppState>,
    path: web::Path<FlowVersionPath>,
    body: Body<BODY_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let FlowVersionPath { id, version } = path.into_inner();
    let req: ReplayRequest = optional_body(
        &body.0,
        "{\"callids\"?: [..], \"since\"?, \"until\"?, \"last\"?}",
    )?;
    let sel = selection(req)?;
    let (flow, _) = load_version(&state, id, version).await?;
    catch_up(&state).await;
    let calls = state.store.recorded_calls(id, &sel).await?;
    let fallback = |t: crate::svaml::Target| state.gate.fallback(t).clone();
    let judge = Judge {
        validator: state.gate.validator(),
        mode: state.gate.mode(),
        fallback: &fallback,
    };
    let items: Vec<CallReplay> = calls
        .iter()
        .map(|c| replay_call(&flow, &judge, c))
        .collect();
    Ok(HttpResponse::Ok().json(ReplayReport::of(id, version, items, shipping_lag(&state))))
}

/// The calls a replay request selects, checked.
fn selection(req: ReplayRequest) -> Result<CallSelection, ApiError> {
    let last = match req.last {
        None => 100,
        Some(n) if (1..=MAX_REPLAY_CALLS).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::new(
                code::PARAMETER_VALIDATION,
                format!("last must be between 1 and {MAX_REPLAY_CALLS}"),
            ))
        }
    };
    if req.callids.len() > MAX_REPLAY_CALLS as usize {
        return Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            format!("at most {MAX_REPLAY_CALLS} callids"),
        ));
    }
    let time = |name: &str, v: &Option<String>| match v {
        None => Ok(None),
        Some(s) => crate::timestamp::parse(s).map(Some).ok_or_else(|| {
            ApiError::new(
                code::PARAMETER_VALIDATION,
                format!("{name} must be an ISO-8601 timestamp"),
            )
        }),
    };
    Ok(CallSelection {
        since: time("since", &req.since)?,
        until: time("until", &req.until)?,
        last: if req.callids.is_empty() {
            last
        } else {
            req.callids.len() as i64
        },
        callids: req.callids,
    })
}

impl ReplayReport {
    /// The report of the replayed calls, with its counts.
    fn of(flow_id: i64, version: i32, items: Vec<CallReplay>, shipping_lag_records: u64) -> Self {
        ReplayReport {
            flow_id,
            version,
            calls: items.len(),
            same: items.iter().filter(|c| c.same).count(),
            path_different: items.iter().filter(|c| !c.same_path).count(),
            replies_different: items
                .iter()
                .filter(|c| c.same_path && !c.same_replies)
                .count(),
            meaningless: items
                .iter()
                .filter(|c| c.meaningless_input.is_some())
                .count(),
            refused: items.iter().filter(|c| !c.refused.is_empty()).count(),
            shipping_lag_records,
            items,
        }
    }
}

/// How many differences.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ShadowQuery {
    /// Differences to list, newest first (default 50, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The answer of `GET .../shadow`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ShadowReport {
    flow_id: i64,
    /// The shadowed version.
    version: i32,
    /// Routes that shadow this version now.
    routes: Vec<i64>,
    /// Totals since shadowing began.
    totals: ShadowTotals,
    /// Events this instance did not shadow because its queue was full (since start).
    dropped_here: u64,
    /// The latest differences (the latest 1,000 are kept).
    items: Vec<ShadowDifference>,
}

/// What shadowing a flow version found
///
/// A route may name a version of its flow in `shadowVersion`: for every live event on that route the version's reply is computed off the reply path, never sent, and compared with the reply sent. This lists the totals (events compared, differing, refused by the gate) and the latest differences, each with both replies and, for a PIE, the key pressed and its meaning in the candidate.
#[utoipa::path(
    operation_id = "flowShadowDifferences",
    tag = "flows",
    params(FlowVersionPath, ShadowQuery),
    responses(
        (status = 200, description = "Totals and differences.", body = ShadowReport),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/flows/{id}/versions/{version}/shadow")]
async fn shadow(
    state: web::Data<AppState>,
    path: web::Path<FlowVersionPath>,
    q: web::Query<ShadowQuery>,
) -> Result<HttpResponse, ApiError> {
    let FlowVersionPath { id, version } = path.into_inner();
    let limit = super::extract::page_limit(q.limit, 50, 1000)?;
    if state.store.version_status(id, version).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "Flow {id} has no version {version}"
        )));
    }
    let (totals, items) = state.store.shadow_differences(id, version, limit).await?;
    let routes = state
        .live
        .routes()
        .iter()
        .filter(|r| {
            r.shadow_version == Some(version)
                && matches!(r.target, crate::flows::routes::RouteTarget::Flow { flow_id } if flow_id == id)
        })
        .map(|r| r.id)
        .collect();
    Ok(HttpResponse::Ok().json(ShadowReport {
        flow_id: id,
        version,
        routes,
        totals,
        dropped_here: state.shadow.dropped(),
        items,
    }))
}
