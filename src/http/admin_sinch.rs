//! Admin endpoints that talk to Sinch's Calling API (callouts, call and conference control), the
//! Sinch errors received, calls in progress, and the per-call troubleshooting checklist.
//! The work is done by [`crate::sinch_api`]; this module only translates HTTP.

use actix_web::{delete, get, patch, post, web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::extract::{self, Body, CallLegPath, CallPath, ConferencePath, ParticipantPath};
use super::openapi::responses::*;
use super::openapi::SinchFailures;
use crate::app::AppState;
use crate::catalog::code;
use crate::db::outbound::{OutboundRequest, OutboundStore, SinchErrorFilter, SinchErrorItem};
use crate::diagnosis::Diagnosis;
use crate::error::ApiError;
use crate::recording::outbound::OutboundWriter;
use crate::sinch_api::bodies::{
    CallInformation, CalloutAnswer, CalloutRequest, ConferenceInfo, ManageCallBody,
    ParticipantCommand, SinchAnswer,
};
use crate::sinch_api::checks::{self, LocalRefusal};
use crate::sinch_api::{self, Draft};

/// Largest body accepted by these endpoints.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Default page of `GET /admin/sinch-errors`.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page of `GET /admin/sinch-errors`.
pub const MAX_LIMIT: i64 = 500;

/// Registers the routes (inside the `/admin` scope).
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(callout)
        .service(manage_call)
        .service(manage_call_leg)
        .service(get_call)
        .service(diagnosis)
        .service(get_conference)
        .service(kick_all)
        .service(manage_participant)
        .service(kick_participant)
        .service(sinch_errors)
        .service(calls_in_progress);
}

fn store(state: &AppState) -> OutboundWriter {
    reads(state).journaled(state.recorder.clone())
}

fn reads(state: &AppState) -> OutboundStore {
    OutboundStore::new(state.store.pool().clone())
}

/// The body, parsed, and its bytes (sent to Sinch as they are).
fn json_body(body: Body<BODY_LIMIT>) -> Result<(Value, Vec<u8>), ApiError> {
    let doc = extract::parse_json(&body.0)?;
    Ok((doc, body.0))
}

/// Checks path ids (not recorded: such a request names no call svamlgate could find again).
fn ids(pairs: &[(&str, &str)]) -> Result<(), ApiError> {
    for (name, value) in pairs {
        checks::check_id(name, value)?;
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
    if let sinch_api::Outcome::SinchError(e) = &performed.outcome {
        if performed.operation == crate::outcome::Operation::Callout && e.http_status >= 400 {
            let status = e.http_status.to_string();
            state.alerts.note(
                crate::alerts::RuleKind::SinchApi,
                "",
                None,
                Some(&performed.reference),
                Some(&status),
            );
        }
    }
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

/// Place a call (Sinch callout)
///
/// Sends the body to Sinch's `POST /calling/v1/callouts` after the checks (E.164, callout shape, inline SVAML through the gate) and the calls-in-progress cap (SINCH_MAX_CALLS_IN_PROGRESS, 429 42900). Answers Sinch's answer (`callId`) plus svamlgate's `reference`. Retried only when Sinch provably did not place the call (connection refused, 429, 503); a timeout after sending is answered 503 and not repeated. An `Idempotency-Key` header makes resending the same callout safe.
#[utoipa::path(
    operation_id = "placeCallout",
    tag = "sinch",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Optional, 1 to 128 visible ASCII characters. While a callout with the same key is in flight, placed, or of unknown outcome, no second call is placed: a placed one is answered again (`replayed: true`), the others get 409 40900. After a callout that provably placed no call (refused locally or by Sinch, or never connected), the key may be used again.")
    ),
    request_body(content = CalloutRequest),
    responses(
        (status = 200, description = "Sinch placed the call.", body = CalloutAnswer),
        SinchFailures,
        (status = 409, response = SinchConflict)
    )
)]
#[post("/callouts")]
async fn callout(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body<BODY_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let (doc, raw) = json_body(body)?;
    let checked = checks::check_callout(&doc, state.gate.validator(), state.gate.mode());
    let local_open = super::fresh::unshipped_calls(&state).await;
    let draft = Draft::callout(doc, checked.as_ref().ok().cloned())
        .with_raw_body(raw)
        .with_idempotency_key(key)
        .with_local_open(local_open);
    run(&state, draft, checked.map(|_| ())).await
}

/// Manage a call (Sinch)
///
/// Sends a managed-call SVAML body (hangup, continue or park, checked with the gate's `manage` target) to Sinch's `PATCH /calling/v1/calls/id/{callId}`.
#[utoipa::path(
    operation_id = "manageCall",
    tag = "sinch",
    params(CallPath),
    request_body(content = ManageCallBody),
    responses(
        (status = 200, description = "Sinch accepted it (sinchStatus 204).", body = SinchAnswer),
        SinchFailures
    )
)]
#[patch("/calls/{callid}")]
async fn manage_call(
    state: web::Data<AppState>,
    path: web::Path<CallPath>,
    body: Body<BODY_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let callid = path.into_inner().callid;
    ids(&[("callId", &callid)])?;
    let (doc, raw) = json_body(body)?;
    let check = checks::check_manage(&doc, state.gate.validator(), state.gate.mode());
    run(
        &state,
        Draft::manage_call(&callid, doc).with_raw_body(raw),
        check,
    )
    .await
}

/// Manage one leg of a call (Sinch)
///
/// As manageCall, for one leg: Sinch's `PATCH /calling/v1/calls/id/{callId}/leg/{callLeg}` (only playFiles and say use the leg).
#[utoipa::path(
    operation_id = "manageCallLeg",
    tag = "sinch",
    params(CallLegPath),
    request_body(content = ManageCallBody),
    responses(
        (status = 200, description = "Sinch accepted it.", body = SinchAnswer),
        SinchFailures
    )
)]
#[patch("/calls/{callid}/leg/{leg}")]
async fn manage_call_leg(
    state: web::Data<AppState>,
    path: web::Path<CallLegPath>,
    body: Body<BODY_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let CallLegPath { callid, leg } = path.into_inner();
    ids(&[("callId", &callid)])?;
    let leg = checks::check_leg(&leg)?;
    let (doc, raw) = json_body(body)?;
    let check = checks::check_manage(&doc, state.gate.validator(), state.gate.mode());
    let draft = Draft::manage_call_leg(&callid, leg, doc).with_raw_body(raw);
    run(&state, draft, check).await
}

/// Sinch's information about a call
///
/// Sinch's `GET /calling/v1/calls/id/{callId}` (status, result, reason, duration, debit).
#[utoipa::path(
    operation_id = "getSinchCall",
    tag = "sinch",
    params(CallPath),
    responses(
        (status = 200, description = "Sinch's call information.", body = CallInformation),
        SinchFailures
    )
)]
#[get("/calls/{callid}/sinch")]
async fn get_call(
    state: web::Data<AppState>,
    path: web::Path<CallPath>,
) -> Result<HttpResponse, ApiError> {
    let callid = path.into_inner().callid;
    ids(&[("callId", &callid)])?;
    run(&state, Draft::get_call(&callid), Ok(())).await
}

/// Participants of a conference (Sinch)
///
/// Sinch's `GET /calling/v1/conferences/id/{conferenceId}`.
#[utoipa::path(
    operation_id = "getConference",
    tag = "sinch",
    params(ConferencePath),
    responses(
        (status = 200, description = "The participants.", body = ConferenceInfo),
        SinchFailures
    )
)]
#[get("/conferences/{conferenceid}")]
async fn get_conference(
    state: web::Data<AppState>,
    path: web::Path<ConferencePath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().conferenceid;
    ids(&[("conferenceId", &id)])?;
    run(&state, Draft::get_conference(&id), Ok(())).await
}

/// Kick every participant (Sinch)
///
/// Sinch's `DELETE /calling/v1/conferences/id/{conferenceId}`.
#[utoipa::path(
    operation_id = "kickAllParticipants",
    tag = "sinch",
    params(ConferencePath),
    responses(
        (status = 200, description = "Sinch accepted it (sinchStatus 204).", body = SinchAnswer),
        SinchFailures
    )
)]
#[delete("/conferences/{conferenceid}")]
async fn kick_all(
    state: web::Data<AppState>,
    path: web::Path<ConferencePath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().conferenceid;
    ids(&[("conferenceId", &id)])?;
    run(&state, Draft::kick_all(&id), Ok(())).await
}

/// Mute, unmute, hold or resume a participant (Sinch)
///
/// Sinch's `PATCH /calling/v1/conferences/id/{conferenceId}/{callId}` with `{command, moh?}` (checked first).
#[utoipa::path(
    operation_id = "manageParticipant",
    tag = "sinch",
    params(ParticipantPath),
    request_body(content = ParticipantCommand),
    responses(
        (status = 200, description = "Sinch accepted it.", body = SinchAnswer),
        SinchFailures
    )
)]
#[patch("/conferences/{conferenceid}/{callid}")]
async fn manage_participant(
    state: web::Data<AppState>,
    path: web::Path<ParticipantPath>,
    body: Body<BODY_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let ParticipantPath {
        conferenceid: id,
        callid,
    } = path.into_inner();
    ids(&[("conferenceId", &id), ("callId", &callid)])?;
    let (doc, raw) = json_body(body)?;
    let check = checks::check_participant_command(&doc);
    let draft = Draft::manage_participant(&id, &callid, doc).with_raw_body(raw);
    run(&state, draft, check).await
}

/// Kick one participant (Sinch)
///
/// Sinch's `DELETE /calling/v1/conferences/id/{conferenceId}/{callId}`.
#[utoipa::path(
    operation_id = "kickParticipant",
    tag = "sinch",
    params(ParticipantPath),
    responses(
        (status = 200, description = "Sinch accepted it.", body = SinchAnswer),
        SinchFailures
    )
)]
#[delete("/conferences/{conferenceid}/{callid}")]
async fn kick_participant(
    state: web::Data<AppState>,
    path: web::Path<ParticipantPath>,
) -> Result<HttpResponse, ApiError> {
    let ParticipantPath {
        conferenceid: id,
        callid,
    } = path.into_inner();
    ids(&[("conferenceId", &id), ("callId", &callid)])?;
    run(&state, Draft::kick_participant(&id, &callid), Ok(())).await
}

/// A page of `GET /admin/sinch-errors`, newest first.
#[derive(Serialize, ToSchema)]
struct SinchErrorPage {
    items: Vec<SinchErrorItem>,
    /// The page size used.
    limit: i64,
}

/// The answer of `GET /admin/calls-in-progress`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CallsInProgress {
    /// Calls counted as in progress (`open_calls_within` with the cap's windows; the view open_calls lists all history).
    in_progress: i64,
    /// SINCH_MAX_CALLS_IN_PROGRESS.
    limit: u32,
    /// SINCH_CALL_MAX_AGE_SECS.
    max_age_secs: u64,
    /// SINCH_UNTRACKED_CALL_SECS.
    untracked_secs: u64,
}

/// The query of `GET /admin/sinch-errors`; any other parameter is refused (400 40001).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SinchErrorsQuery {
    /// errorCode as sent, or the catalog code it is read as (a positive integer).
    #[param(value_type = Option<i32>, minimum = 1, example = 40200)]
    code: Option<String>,
    /// Only errors at or after this ISO-8601 instant.
    #[param(format = DateTime, example = "2026-01-31T12:00:00Z")]
    since: Option<String>,
    /// Sinch's reference, or svamlgate's.
    reference: Option<String>,
    /// Page size (default 50, at most 500).
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
}

/// Errors Sinch answered
///
/// Every error answer from Sinch's Calling API, newest first, with Sinch's errorCode (as sent, number or string), status, message and reference. Unknown query parameters: 400 40001.
#[utoipa::path(
    operation_id = "listSinchErrors",
    tag = "sinch",
    params(SinchErrorsQuery),
    responses(
        (status = 200, description = "The errors.", body = SinchErrorPage),
        (status = 400, response = BadRequest),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/sinch-errors")]
async fn sinch_errors(
    state: web::Data<AppState>,
    query: web::Query<SinchErrorsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let code = match q.code {
        None => None,
        Some(c) => Some(
            c.trim()
                .parse::<i32>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    ApiError::new(
                        code::PARAMETER_VALIDATION,
                        "code must be an errorCode such as 40200",
                    )
                })?,
        ),
    };
    let limit = extract::page_limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let filter = SinchErrorFilter {
        code,
        since: extract::since(q.since.as_deref())?,
        reference: q.reference.map(|r| r.trim().to_owned()),
        limit,
    };
    let items = reads(&state).sinch_errors(&filter).await?;
    Ok(HttpResponse::Ok().json(SinchErrorPage { items, limit }))
}

/// Calls in progress and the cap
///
/// Calls svamlgate counts as in progress (an ICE or ACE without DICE, callouts not yet ended) against SINCH_MAX_CALLS_IN_PROGRESS; counted by the SQL function open_calls_within with SINCH_CALL_MAX_AGE_SECS and SINCH_UNTRACKED_CALL_SECS (the view open_calls lists the same calls over all history).
#[utoipa::path(
    operation_id = "getCallsInProgress",
    tag = "sinch",
    responses(
        (status = 200, description = "The count.", body = CallsInProgress),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/calls-in-progress")]
async fn calls_in_progress(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let limits = state.sinch.limits();
    // Read your writes: while records are still on their way, this instance's own calls count too.
    let lagging = req
        .extensions()
        .get::<crate::recording::position::Lag>()
        .is_some();
    let local = if lagging {
        state.calls.open_callids()
    } else {
        Vec::new()
    };
    let n = match reads(&state).count_in_progress_with(&limits, &local).await {
        Ok(n) => n,
        Err(_) if lagging => i64::try_from(local.len()).unwrap_or(i64::MAX),
        Err(e) => return Err(e.into()),
    };
    Ok(HttpResponse::Ok().json(CallsInProgress {
        in_progress: n,
        limit: limits.max_in_progress,
        max_age_secs: limits.max_age.as_secs(),
        untracked_secs: limits.untracked.as_secs(),
    }))
}

/// Troubleshooting checklist of a call
///
/// Walks Sinch's troubleshooting steps from the records (outbound requests and Sinch's answers, callbacks, rejected replies, signature refusals): authenticated, number_format, rang, callback_arrived, svaml_valid, credit_capacity; each pass, fail or unknown with the evidence and what to check next. The path parameter may also be the `reference` of a request, for a callout refused before Sinch gave it a call id.
#[utoipa::path(
    operation_id = "diagnoseCall",
    tag = "calls",
    params(CallPath),
    responses(
        (status = 200, description = "The checklist.", body = Diagnosis),
        (status = 404, response = NotFound),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/calls/{callid}/diagnosis")]
async fn diagnosis(
    state: web::Data<AppState>,
    path: web::Path<CallPath>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().callid;
    let facts = crate::diagnosis::gather(state.store.pool(), &id, state.sinch.limits())
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Nothing recorded for {id}: neither a call id with callbacks or requests, nor the reference of a request"
            ))
        })?;
    Ok(HttpResponse::Ok().json(crate::diagnosis::diagnose(&facts)))
}

/// The outbound requests of a call, for `GET /admin/calls/{callid}`.
pub async fn outbound_for_call(
    state: &AppState,
    callid: &str,
) -> Result<Vec<OutboundRequest>, ApiError> {
    Ok(reads(state).requests_for_call(callid).await?)
}
