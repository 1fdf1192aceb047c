//! `POST <callback path>`: reads the raw body (bounded, refusing oversized bodies before reading them
//! whole, with [`super::extract::read_body`]), hands the request to [`crate::callback::handle`],
//! whose signature check runs over those raw bytes, and writes its answer.

use std::time::Instant;

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::callback::{handle, InboundCallback};
use crate::catalog::code;
use crate::error::{ApiError, Envelope};
use crate::refusals::Refused;
use crate::signature::settings::SignatureMode;

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Sinch Voice callback
///
/// The URL registered with Sinch as the application's callback URL (path set by SVAMLGATE_CALLBACK_PATH; `/sinch/callback` by default). The request is authenticated by Sinch's request signature (`Authorization: Application <key>:<signature>` and `x-timestamp`), not by the admin token. ICE, ACE and PIE get an SVAML reply that passed the gate (or the fallback); other events get an empty 200. Any other method on this path is answered with 400 40001. The body is limited to SVAMLGATE_MAX_BODY_BYTES.
#[utoipa::path(
    post,
    path = "/sinch/callback",
    operation_id = "receiveCallback",
    tag = "service",
    request_body(content = Object, description = "A Sinch Voice callback event (ice, ace, dice, pie, notify)."),
    responses(
        (status = 200, description = "Accepted. The body is the SVAML reply for ICE, ACE and PIE, empty otherwise.", body = Object,
            headers(("x-svamlgate-reference" = String, description = "Reference of the recorded callback."))),
        (status = 400, description = "The body is too large, not JSON, or not a callback event (40003; 40002 when `event` is missing); any method but POST (40001).", body = Envelope),
        (status = 401, description = "The signature was refused (40100, 40101, 40102, 40105, 40107 or 40108).", body = Envelope)
    ),
    security(())
)]
pub async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let headers = req.headers();
    if let Some(err) = refuse_unread(&state, &req).await {
        return Err(err);
    }
    let body =
        super::extract::read_body(&req, payload.into_inner(), state.config.max_body_bytes).await?;
    let inbound = InboundCallback {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: Some(req.query_string())
            .filter(|q| !q.is_empty())
            .map(str::to_owned),
        content_type: header(headers, "content-type"),
        x_timestamp: header(headers, "x-timestamp"),
        authorization: header(headers, "authorization"),
        headers: headers.clone(),
        remote_addr: req.peer_addr().map(|a| a.to_string()),
        body,
        started,
    };
    let reply = handle(&state, inbound).await?;
    let mut res = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(reply.status)
            .unwrap_or(actix_web::http::StatusCode::OK),
    );
    res.insert_header(("x-svamlgate-reference", reply.reference.as_str()));
    Ok(match reply.body {
        Some(body) => res.content_type("application/json").body(body),
        None => res.finish(),
    })
}

/// A request with no usable authorization, or naming a key that is not configured, is refused
/// from its headers alone: its body is never read (unless that key's mode, or the default mode
/// for unknown keys, is report: then the callback is processed as any other).
async fn refuse_unread(state: &AppState, req: &HttpRequest) -> Option<ApiError> {
    if !state.config.verify_signatures {
        return None;
    }
    let headers = req.headers();
    let authorization = header(headers, "authorization");
    let refusal =
        crate::signature::precheck(&state.keys, authorization.as_deref(), &state.verify_policy)
            .err()?;
    if state.verification.mode_for(None) == SignatureMode::Report {
        return None;
    }
    let remote = req.peer_addr().map(|a| a.to_string());
    let method = req.method().to_string();
    let refused = Refused {
        method: &method,
        path: req.path(),
        headers,
        remote_addr: remote.as_deref(),
        body: None,
    };
    // Only an unknown key has something to explain before the body is read: the configured keys.
    let explain = || {
        (refusal.reason == crate::signature::RefusalReason::UnknownKey).then(|| {
            crate::signature::explain::unknown_key(
                &state.keys,
                refusal.key.as_deref().unwrap_or(""),
                req.path(),
            )
        })
    };
    Some(crate::refusals::refuse(state, &refused, &refusal, explain).await)
}

/// Anything but POST on the callback path.
pub async fn wrong_method(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        code::PARAMETER_VALIDATION,
        format!(
            "Method {} is not allowed on the callback path; Sinch callbacks are POST requests",
            req.method()
        ),
    ))
}
