//! The admin API under `/admin`: bearer token (constant-time comparison), calls, errors, events, the
//! error catalog, and SVAML validation on demand.
//!
//! A new admin endpoint is a handler with its `#[utoipa::path]` attribute (its entry in the OpenAPI
//! document) and its actix-web method attribute, registered with `.service(handler)` in the
//! `routes` function of its file.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{get, post, web, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::extract::{self, CallPath, Json, ReferencePath};
use super::openapi::responses::*;
use crate::app::AppState;
use crate::catalog::{self, code};
use crate::db::outbound::OutboundRequest;
use crate::db::store::{EventFilter, RejectedReply, StoredCallback, StoredError};
use crate::error::ApiError;
use crate::svaml::{Mode, Report, Target};

/// Largest page of `GET /admin/events`.
pub const MAX_LIMIT: i64 = 500;
/// Largest document accepted by `POST /admin/svaml/validate`.
pub const VALIDATE_LIMIT: usize = 1 << 20;
/// Default page of `GET /admin/events`.
pub const DEFAULT_LIMIT: i64 = 50;

/// The answer of `GET /admin/calls/{callid}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CallTimeline {
    callid: String,
    /// The call's events in arrival order; replays are listed under the event they repeat.
    events: Vec<TimelineEvent>,
    /// How many replays the call's events received in total.
    duplicates: usize,
    /// Replies the gate stopped (the fallback went out instead), with their reports.
    rejected_replies: Vec<RejectedReply>,
    /// Requests svamlgate sent to Sinch about this call (its callout, call control, conference control of it as a participant), oldest first.
    outbound_requests: Vec<OutboundRequest>,
}

/// One event of a call's timeline, with its replays.
#[derive(Serialize, ToSchema)]
struct TimelineEvent {
    #[serde(flatten)]
    event: StoredCallback,
    /// Byte-identical replays of the event, answered with the stored reply and not processed again.
    replays: Vec<Replay>,
}

/// A byte-identical replay of an event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Replay {
    id: uuid::Uuid,
    reference: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    received_at: time::OffsetDateTime,
}

/// A page of `GET /admin/events`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EventPage {
    /// The callbacks, newest first.
    items: Vec<StoredCallback>,
    /// The page size used.
    limit: i64,
    /// Cursor for the next page (`before`); null on the last page.
    next_before: Option<uuid::Uuid>,
}

/// The answer of `GET /admin/error-codes`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ErrorCodeList {
    /// The catalog, sorted by code.
    error_codes: &'static [catalog::ErrorCodeInfo],
}

/// The body of `POST /admin/svaml/validate`: any JSON value (the report says what is wrong with it).
pub struct SvamlDocument;

impl utoipa::PartialSchema for SvamlDocument {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .description(Some(
                "An SVAML document (`instructions` and an `action`). Any JSON value is accepted \
                 (at most 1 MiB); the report says what the gate finds wrong with it.",
            ))
            .build()
            .into()
    }
}

impl ToSchema for SvamlDocument {}

/// Registers the admin routes (inside the `/admin` scope).
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(call)
        .service(error)
        .service(events)
        .service(error_codes)
        .service(validate)
        .service(super::openapi::serve_document)
        .configure(super::admin_flows::routes)
        .configure(super::admin_gate::routes)
        .configure(super::admin_sinch::routes)
        .configure(super::admin_refusals::routes)
        .configure(super::admin_alerts::routes);
}

/// Checks `Authorization: Bearer <SVAMLGATE_ADMIN_TOKEN>`.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict =
        match req
            .app_data::<web::Data<AppState>>()
            .and_then(|s| s.admin_token_digest)
        {
            None => Err(ApiError::new(
                code::FORBIDDEN,
                "The admin API is disabled: set SVAMLGATE_ADMIN_TOKEN to enable it",
            )),
            Some(expected) => {
                let given = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim().to_owned());
                match given {
                None => Err(ApiError::new(
                    code::AUTHORIZATION_HEADER,
                    "Missing admin credentials: send Authorization: Bearer <SVAMLGATE_ADMIN_TOKEN>",
                )),
                Some(token) => {
                    // Wrong tokens are throttled per peer, like wrong console logins.
                    crate::console::admin_throttled(&req).and_then(|()| {
                        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                        let right = bool::from(digest.ct_eq(&expected));
                        crate::console::admin_token_seen(&req, right);
                        if right {
                            Ok(())
                        } else {
                            Err(ApiError::new(code::INVALID_CREDENTIALS, "Admin token is invalid"))
                        }
                    })
                }
            }
            }
        };
    match verdict {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
    }
}

/// Timeline of one call
///
/// Every recorded callback of the call, in arrival order, with the number of duplicates among them and the replies the gate stopped (each with its validation report). Also lists the requests svamlgate sent to Sinch about the call (`outboundRequests`); a call with only outbound requests is found too.
#[utoipa::path(
    operation_id = "getCallTimeline",
    tag = "calls",
    params(CallPath),
    responses(
        (status = 200, description = "The call's timeline.", body = CallTimeline),
        (status = 404, response = NotFound),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/calls/{callid}")]
async fn call(
    state: web::Data<AppState>,
    path: web::Path<CallPath>,
) -> Result<HttpResponse, ApiError> {
    let callid = path.into_inner().callid;
    let recorded = state.store.call_timeline(&callid).await?;
    let outbound = super::admin_sinch::outbound_for_call(&state, &callid).await?;
    if recorded.is_empty() && outbound.is_empty() {
        return Err(ApiError::not_found(format!(
            "No events or outbound requests recorded for call {callid}"
        )));
    }
    let rejected = state.store.rejected_replies_for_call(&callid).await?;
    // A replay is shown as part of the event it repeats, not as an event of its own.
    let (replays, originals): (Vec<_>, Vec<_>) =
        recorded.into_iter().partition(|e| e.duplicate_of.is_some());
    let duplicates = replays.len();
    let timeline: Vec<TimelineEvent> = originals
        .into_iter()
        .map(|event| {
            let replays = replays
                .iter()
                .filter(|r| r.duplicate_of == Some(event.id))
                .map(|r| Replay {
                    id: r.id,
                    reference: r.reference.clone(),
                    received_at: r.received_at,
                })
                .collect();
            TimelineEvent { event, replays }
        })
        .collect();
    Ok(HttpResponse::Ok().json(CallTimeline {
        callid,
        events: timeline,
        duplicates,
        rejected_replies: rejected,
        outbound_requests: outbound,
    }))
}

/// One recorded error
///
/// The error recorded under a reference (the `reference` of any error envelope svamlgate sent), with the internal detail and, for refused callback signatures, the refusal.
#[utoipa::path(
    operation_id = "getError",
    tag = "errors",
    params(ReferencePath),
    responses(
        (status = 200, description = "The error.", body = StoredError),
        (status = 404, response = NotFound),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/errors/{reference}")]
async fn error(
    state: web::Data<AppState>,
    path: web::Path<ReferencePath>,
) -> Result<HttpResponse, ApiError> {
    let reference = path.into_inner().reference;
    match state.store.get_error(&reference).await? {
        Some(e) => Ok(HttpResponse::Ok().json(e)),
        None => Err(ApiError::not_found(format!(
            "No error with reference {reference}"
        ))),
    }
}

/// The query of `GET /admin/events`; any other parameter is refused (400 40001).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Event type (`ice`, `ace`, `dice`, `pie`, `notify`, or an unknown type as received); compared in lower case.
    #[serde(rename = "type")]
    #[param(rename = "type", example = "ice")]
    event_type: Option<String>,
    /// Only callbacks of this call.
    callid: Option<String>,
    /// Only callbacks received at or after this ISO-8601 timestamp.
    #[param(format = DateTime, example = "2026-01-31T12:00:00Z")]
    since: Option<String>,
    /// Page size: a positive integer; values above 500 are lowered to 500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
    /// Paging cursor: only callbacks with an id lower than this one (the `nextBefore` of the previous page).
    before: Option<uuid::Uuid>,
}

/// Recorded callbacks, newest first
///
/// A page of recorded callbacks ordered by id, newest first. Pass the page's `nextBefore` as `before` to fetch the next (older) page. Any query parameter other than the five below is refused with 400 40001.
#[utoipa::path(
    operation_id = "listEvents",
    tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "One page of callbacks.", body = EventPage),
        (status = 400, response = BadRequest),
        (status = 503, response = DatabaseUnavailable)
    )
)]
#[get("/events")]
async fn events(
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = extract::page_limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let filter = EventFilter {
        event_type: q
            .event_type
            .map(|t| crate::events::EventKind::parse(&t.to_ascii_lowercase())),
        callid: q.callid,
        since: extract::since(q.since.as_deref())?,
        before: q.before,
        limit,
    };
    let items = state.store.list_events(&filter).await?;
    let next = if items.len() as i64 == limit {
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(EventPage {
        items,
        limit,
        next_before: next,
    }))
}

/// The Sinch Voice error catalog
///
/// Every error code of the catalog svamlgate uses for its error envelopes, with meaning and remedy.
#[utoipa::path(
    operation_id = "listErrorCodes",
    tag = "errors",
    responses(
        (status = 200, description = "The catalog, sorted by code.", body = ErrorCodeList)
    )
)]
#[get("/error-codes")]
async fn error_codes() -> HttpResponse {
    HttpResponse::Ok().json(ErrorCodeList {
        error_codes: catalog::all(),
    })
}

/// The query of `POST /admin/svaml/validate`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ValidateQuery {
    /// Which reply the document is (case-insensitive): ice, ace, pie or manage. Missing: 400 40002; other values: 400 40001.
    #[param(required = true, example = "ice")]
    event: Option<String>,
    /// Strict mode promotes every warning to an error: true, false, 1 or 0 (default false). Other values: 400 40001.
    #[param(example = "true")]
    strict: Option<String>,
}

/// Validate an SVAML document
///
/// Checks an SVAML document as the gate would for the given event and returns the report. An invalid document is still a 200: see `valid` in the report. The body is limited to 1 MiB.
#[utoipa::path(
    operation_id = "validateSvaml",
    tag = "svaml",
    params(ValidateQuery),
    request_body(content = SvamlDocument, description = "The SVAML document (any JSON value; at most 1 MiB)."),
    responses(
        (status = 200, description = "The validation report.", body = Report),
        (status = 400, response = BadRequest)
    )
)]
#[post("/svaml/validate")]
async fn validate(
    state: web::Data<AppState>,
    query: web::Query<ValidateQuery>,
    body: Json<serde_json::Value, VALIDATE_LIMIT>,
) -> Result<HttpResponse, ApiError> {
    let target: Target = query
        .event
        .as_deref()
        .ok_or_else(|| {
            ApiError::missing_parameter(
                "Query parameter event is required: ice, ace, pie or manage",
            )
        })?
        .parse()
        .map_err(|_| {
            ApiError::new(
                code::PARAMETER_VALIDATION,
                "event must be ice, ace, pie or manage",
            )
        })?;
    let mode = match query.strict.as_deref() {
        None | Some("false") | Some("0") => Mode::Normal,
        Some("true") | Some("1") => Mode::Strict,
        Some(_) => {
            return Err(ApiError::new(
                code::PARAMETER_VALIDATION,
                "strict must be true or false",
            ))
        }
    };
    let report = state.gate.validator().check(target, &body.0, mode);
    Ok(HttpResponse::Ok().json(report))
}
