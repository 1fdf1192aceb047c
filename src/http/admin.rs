//! The admin API under `/admin`: bearer token (constant-time comparison), calls, errors, events, the
//! error catalog, and SVAML validation on demand.

use std::collections::HashMap;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::catalog::{self, code};
use crate::db::store::EventFilter;
use crate::error::ApiError;
use crate::svaml::{Mode, Target};

/// Largest page of `GET /admin/events`.
pub const MAX_LIMIT: i64 = 500;
/// Largest document accepted by `POST /admin/svaml/validate`.
pub const VALIDATE_LIMIT: usize = 1 << 20;
/// Default page of `GET /admin/events`.
pub const DEFAULT_LIMIT: i64 = 50;

/// Registers the admin routes (inside the `/admin` scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/calls/{callid}", web::get().to(call))
        .route("/errors/{reference}", web::get().to(error))
        .route("/events", web::get().to(events))
        .route("/error-codes", web::get().to(error_codes))
        .route("/svaml/validate", web::post().to(validate))
        .route("/openapi.json", web::get().to(super::openapi::document))
        .configure(super::admin_flows::routes)
        .configure(super::admin_gate::routes)
        .configure(super::admin_sinch::routes);
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
                    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                    if bool::from(digest.ct_eq(&expected)) {
                        Ok(())
                    } else {
                        Err(ApiError::new(code::INVALID_CREDENTIALS, "Admin token is invalid"))
                    }
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

async fn call(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let callid = path.into_inner();
    let events = state
        .store
        .call_timeline(&callid)
        .await
        .map_err(|e| ApiError::from_db(&e))?;
    let outbound = super::admin_sinch::outbound_for_call(&state, &callid).await?;
    if events.is_empty() && outbound.is_empty() {
        return Err(ApiError::not_found(format!(
            "No events or outbound requests recorded for call {callid}"
        )));
    }
    let rejected = state
        .store
        .rejected_replies_for_call(&callid)
        .await
        .map_err(|e| ApiError::from_db(&e))?;
    // A replay is shown as part of the event it repeats, not as an event of its own.
    let (replays, originals): (Vec<_>, Vec<_>) =
        events.into_iter().partition(|e| e.duplicate_of.is_some());
    let duplicates = replays.len();
    let timeline: Vec<serde_json::Value> = originals
        .into_iter()
        .map(|e| {
            let seen_again: Vec<serde_json::Value> = replays
                .iter()
                .filter(|r| r.duplicate_of == Some(e.id))
                .map(|r| json!({"id": r.id, "reference": r.reference, "receivedAt": r.received_at.format(&time::format_description::well_known::Rfc3339).ok()}))
                .collect();
            let mut v = serde_json::to_value(&e).unwrap_or(serde_json::Value::Null);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("replays".into(), json!(seen_again));
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "callid": callid,
        "events": timeline,
        "duplicates": duplicates,
        "rejectedReplies": rejected,
        "outboundRequests": outbound,
    })))
}

async fn error(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let reference = path.into_inner();
    match state
        .store
        .get_error(&reference)
        .await
        .map_err(|e| ApiError::from_db(&e))?
    {
        Some(e) => Ok(HttpResponse::Ok().json(e)),
        None => Err(ApiError::not_found(format!(
            "No error with reference {reference}"
        ))),
    }
}

async fn events(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let known = ["type", "callid", "since", "limit", "before"];
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            format!("Unknown query parameter {k}; use type, callid, since, limit, before"),
        ));
    }
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ApiError::new(
                    code::PARAMETER_VALIDATION,
                    "limit must be a positive integer",
                )
            })?
            .min(MAX_LIMIT),
    };
    let since = match q.get("since") {
        None => None,
        Some(s) => Some(crate::timestamp::parse(s).ok_or_else(|| {
            ApiError::new(
                code::PARAMETER_VALIDATION,
                "since must be an ISO-8601 timestamp, e.g. 2026-01-31T12:00:00Z",
            )
        })?),
    };
    let before = match q.get("before") {
        None => None,
        Some(s) => Some(s.parse::<uuid::Uuid>().map_err(|_| {
            ApiError::new(
                code::PARAMETER_VALIDATION,
                "before must be an event id from a previous page",
            )
        })?),
    };
    let filter = EventFilter {
        event_type: q.get("type").map(|t| t.to_ascii_lowercase()),
        callid: q.get("callid").cloned(),
        since,
        before,
        limit,
    };
    let items = state
        .store
        .list_events(&filter)
        .await
        .map_err(|e| ApiError::from_db(&e))?;
    let next = if items.len() as i64 == limit {
        items.last().map(|e| e.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(json!({"items": items, "limit": limit, "nextBefore": next})))
}

async fn error_codes() -> HttpResponse {
    HttpResponse::Ok().json(json!({"errorCodes": catalog::all()}))
}

async fn validate(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = super::callback::read_body(&req, payload, VALIDATE_LIMIT).await?;
    let target: Target = query
        .get("event")
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
    let mode = match query.get("strict").map(String::as_str) {
        None | Some("false") | Some("0") => Mode::Normal,
        Some("true") | Some("1") => Mode::Strict,
        Some(_) => {
            return Err(ApiError::new(
                code::PARAMETER_VALIDATION,
                "strict must be true or false",
            ))
        }
    };
    let doc: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_request(format!("Body is not valid JSON: {e}")))?;
    let report = state.gate.validator().check(target, &doc, mode);
    Ok(HttpResponse::Ok().json(report))
}
