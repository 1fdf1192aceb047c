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
    let body =
        super::extract::read_body(&req, payload.into_inner(), state.config.max_body_bytes).await?;
    let headers = req.headers();
    let inbound = InboundCallback {
        method: req.method().to_string(),
        path: req.path().to_owned(),
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
