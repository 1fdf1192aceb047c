//! Admin endpoints that talk to Sinch's Calling API (callouts, call and conference control), the
//! Sinch errors received, calls in progress, and the per-call troubleshooting checklist.
//! The work is done by [`crate::sinch_api`]; this module only translates HTTP.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::catalog::code;
use crate::db::outbound::{OutboundStore, SinchErrorFilter};
use crate::error::ApiError;
use crate::sinch_api::checks::{self, LocalRefusal};
use crate::sinch_api::{self, Draft};

/// Largest body accepted by these endpoints.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Default page of `GET /admin/sinch-errors`.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page of `GET /admin/sinch-errors`.
pub const MAX_LIMIT: i64 = 500;

/// Registers the routes (inside the `/admin` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/callouts", web::post().to(callout))
        .route("/calls/{callid}", web::patch().to(manage_call))
        .route(
            "/calls/{callid}/leg/{leg}",
            web::patch().to(manage_call_leg),
        )
        .route("/calls/{callid}/sinch", web::get().to(get_call))
        .route("/calls/{callid}/diagnosis", web::get().to(diagnosis))
        .route("/conferences/{conferenceid}", web::get().to(get_conference))
        .route("/conferences/{conferenceid}", web::delete().to(kick_all))
        .route(
            "/conferences/{conferenceid}/{callid}",
            web::patch().to(manage_participant),
        )
        .route(
            "/conferences/{conferenceid}/{callid}",
            web::delete().to(kick_participant),
        )
        .route("/sinch-errors", web::get().to(sinch_errors))
        .route("/calls-in-progress", web::get().to(calls_in_progress));
}

fn store(state: &AppState) -> OutboundStore {
    OutboundStore::new(state.store.pool().clone())
}

/// The body, parsed, and its bytes (sent to Sinch as they are).
async fn json_body(req: &HttpRequest, payload: web::Payload) -> Result<(Value, Vec<u8>), ApiError> {
    let body = super::callback::read_body(req, payload, BODY_LIMIT).await?;
    let doc = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_request(format!("Body is not valid JSON: {e}")))?;
    Ok((doc, body))
}

fn refusal_error(r: LocalRefusal) -> ApiError {
    let e = ApiError::new(r.code, r.message);
    match r.details {
        Some(d) => e.with_details(d),
        None => e,
    }
}

/// Checks path ids (not recorded: such a request names no call svamlgate could find again).
fn ids(pairs: &[(&str, &str)]) -> Result<(), ApiError> {
    for (name, value) in pairs {
        checks::check_id(name, value).map_err(refusal_error)?;
    }
    Ok(())
}

/// Sends a checked draft, or records and answers the refusal.
async fn run(
    state: &AppState,
    draft: Draft,
    check: Result<(), LocalRefusal>,
) -> Result<HttpResponse, ApiError> {
    let store = store(state);
    if let Err(refusal) = check {
        return Err(sinch_api::refuse(&store, &state.metrics, &draft, &refusal).await);
    }
    let performed = state.sinch.send(&store, &state.metrics, draft).await?;
    Ok(HttpResponse::Ok().json(performed.into_result()?))
}

/// Longest Idempotency-Key.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// The optional `Idempotency-Key` header: 1–128 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().ok().map(str::trim).filter(|k| {
        !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY && k.bytes().all(|b| b.is_ascii_graphic())
    });
    match key {
        Some(k) => Ok(Some(k.to_owned())),
        None => Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        )),
    }
}

async fn callout(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let (doc, raw) = json_body(&req, payload).await?;
    let checked = checks::check_callout(&doc, state.gate.validator(), state.gate.mode());
    let draft = Draft::callout(doc, checked.as_ref().ok().cloned())
        .with_raw_body(raw)
        .with_idempotency_key(key);
    run(&state, draft, checked.map(|_| ())).await
}

async fn manage_call(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let callid = path.into_inner();
    ids(&[("callId", &callid)])?;
    let (doc, raw) = json_body(&req, payload).await?;
    let check = checks::check_manage(&doc, state.gate.validator(), state.gate.mode());
    run(
        &state,
        Draft::manage_call(&callid, doc).with_raw_body(raw),
        check,
    )
    .await
}

async fn manage_call_leg(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (callid, leg) = path.into_inner();
    ids(&[("callId", &callid)])?;
    let leg = checks::check_leg(&leg).map_err(refusal_error)?;
    let (doc, raw) = json_body(&req, payload).await?;
    let check = checks::check_manage(&doc, state.gate.validator(), state.gate.mode());
    let draft = Draft::manage_call_leg(&callid, leg, doc).with_raw_body(raw);
    run(&state, draft, check).await
}

async fn get_call(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let callid = path.into_inner();
    ids(&[("callId", &callid)])?;
    run(&state, Draft::get_call(&callid), Ok(())).await
}

async fn get_conference(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    ids(&[("conferenceId", &id)])?;
    run(&state, Draft::get_conference(&id), Ok(())).await
}

async fn kick_all(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    ids(&[("conferenceId", &id)])?;
    run(&state, Draft::kick_all(&id), Ok(())).await
}

async fn manage_participant(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (id, callid) = path.into_inner();
    ids(&[("conferenceId", &id), ("callId", &callid)])?;
    let (doc, raw) = json_body(&req, payload).await?;
    let check = checks::check_participant_command(&doc);
    let draft = Draft::manage_participant(&id, &callid, doc).with_raw_body(raw);
    run(&state, draft, check).await
}

async fn kick_participant(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, callid) = path.into_inner();
    ids(&[("conferenceId", &id), ("callId", &callid)])?;
    run(&state, Draft::kick_participant(&id, &callid), Ok(())).await
}

async fn sinch_errors(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let known = ["code", "since", "reference", "limit"];
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            format!("Unknown query parameter {k}; use code, since, reference, limit"),
        ));
    }
    let bad = |m: &str| ApiError::new(code::PARAMETER_VALIDATION, m.to_owned());
    let code = match q.get("code") {
        None => None,
        Some(c) => Some(
            c.trim()
                .parse::<i32>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| bad("code must be an errorCode such as 40200"))?,
        ),
    };
    let since = match q.get("since") {
        None => None,
        Some(s) => Some(crate::timestamp::parse(s).ok_or_else(|| {
            bad("since must be an ISO-8601 timestamp, e.g. 2026-01-31T12:00:00Z")
        })?),
    };
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("limit must be a positive integer"))?
            .min(MAX_LIMIT),
    };
    let filter = SinchErrorFilter {
        code,
        since,
        reference: q.get("reference").map(|r| r.trim().to_owned()),
        limit,
    };
    let items = store(&state)
        .sinch_errors(&filter)
        .await
        .map_err(|e| ApiError::from_db(&e))?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "limit": limit})))
}

async fn calls_in_progress(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let limits = state.sinch.limits();
    let n = store(&state)
        .count_in_progress(&limits)
        .await
        .map_err(|e| ApiError::from_db(&e))?;
    Ok(HttpResponse::Ok().json(json!({
        "inProgress": n,
        "limit": limits.max_in_progress,
        "maxAgeSecs": limits.max_age.as_secs(),
        "untrackedSecs": limits.untracked.as_secs(),
    })))
}

async fn diagnosis(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let facts = crate::diagnosis::gather(&store(&state), &id, state.sinch.limits())
        .await
        .map_err(|e| ApiError::from_db(&e))?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Nothing recorded for {id}: neither a call id with callbacks or requests, nor the reference of a request"
            ))
        })?;
    Ok(HttpResponse::Ok().json(crate::diagnosis::diagnose(&facts)))
}

/// The outbound requests of a call, for `GET /admin/calls/{callid}`.
pub async fn outbound_for_call(state: &AppState, callid: &str) -> Result<Vec<Value>, ApiError> {
    store(state)
        .requests_for_call(callid)
        .await
        .map_err(|e| ApiError::from_db(&e))
}
