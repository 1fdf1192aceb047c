//! `POST <callback path>`: reads the raw body (bounded, refusing oversized bodies before reading them
//! whole), hands the request to [`crate::callback::handle`], and writes its answer.

use std::time::Instant;

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::app::AppState;
use crate::callback::{handle, InboundCallback};
use crate::catalog::code;
use crate::error::ApiError;

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn too_large(limit: usize) -> ApiError {
    ApiError::invalid_request(format!(
        "Request body is larger than {limit} bytes (SVAMLGATE_MAX_BODY_BYTES); Sinch callbacks are far smaller"
    ))
}

/// Reads at most `limit` bytes of body; refuses early when Content-Length already says it is larger.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    if let Some(len) = req.headers().get(CONTENT_LENGTH) {
        let len = len.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok());
        match len {
            Some(n) if n > limit as u64 => return Err(too_large(limit)),
            Some(_) => {}
            None => {
                return Err(ApiError::invalid_request(
                    "Content-Length header is not a number",
                ))
            }
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid_request(format!("Could not read the request body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The callback endpoint.
pub async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let body = read_body(&req, payload, state.config.max_body_bytes).await?;
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
