//! Read your own writes, for every admin read: a `GET` under `/admin` takes the journal position
//! of the moment it arrived and waits (at most `SVAMLGATE_ADMIN_READ_WAIT_MS`) until the shipper
//! has passed it ([`crate::recording::position`]); then the handler reads PostgreSQL as always.
//! So a lookup right after a callback finds it.
//!
//! When PostgreSQL is away (no wait at all) or the wait runs out, the handler still answers with
//! what is there, and the answer says so: the header [`LAG_HEADER`]
//! (`records=3, seconds=1.250, reason=wait_expired`) and, in a JSON object body (an answer or an
//! error envelope), the field `recordingLag` `{records, seconds, reason}`. The lag is also put in
//! the request's extensions, for handlers that can make up for it (calls in progress).
//!
//! Reads of configuration and documents (flows, routes, the OpenAPI document, the error catalog,
//! alerts) do not depend on the journal and do not wait.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::HttpMessage;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::recording::position::Lag;

/// Response header saying that records written before the read are missing from it.
pub const LAG_HEADER: &str = "x-svamlgate-recording-lag";

/// Admin paths whose answers do not come from recorded callbacks, errors or requests.
const NO_WAIT: [&str; 5] = [
    "/admin/openapi.json",
    "/admin/error-codes",
    "/admin/alerts",
    "/admin/flows",
    "/admin/routes",
];

/// The `recordingLag` field of an answer given before PostgreSQL had every record written
/// before the read.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingLag {
    /// Records written before the read that are not yet in PostgreSQL (so not in this answer).
    pub records: u64,
    /// Seconds since the shipper was last caught up.
    pub seconds: f64,
    /// `database_unavailable` (PostgreSQL does not take records; nothing waited) or
    /// `wait_expired` (SVAMLGATE_ADMIN_READ_WAIT_MS ran out).
    pub reason: &'static str,
}

impl From<Lag> for RecordingLag {
    fn from(l: Lag) -> RecordingLag {
        RecordingLag {
            records: l.records,
            seconds: (l.seconds * 1000.0).round() / 1000.0,
            reason: l.reason.as_str(),
        }
    }
}

/// Whether a request is a read that must see every record written before it.
pub(crate) fn waits(method: &Method, path: &str) -> bool {
    method == Method::GET
        && path.starts_with("/admin/")
        && !NO_WAIT
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// The middleware (on the `/admin` scope, inside the token check).
pub async fn read_your_writes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, Bytes>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let lag = match state {
        Some(state) if waits(req.method(), req.path()) => {
            let status = &state.recorder.status;
            let position = status.position(state.recorder.journal());
            status
                .wait_shipped(position, state.config.ops.admin_read_wait())
                .await
        }
        _ => None,
    };
    let Some(lag) = lag else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    req.extensions_mut().insert(lag);
    let res = next.call(req).await?;
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.map_err(|e| {
        let e: Box<dyn std::error::Error> = e.into();
        actix_web::error::ErrorInternalServerError(e.to_string())
    })?;
    let field = RecordingLag::from(lag);
    let bytes = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut doc)) => {
            doc.insert(
                "recordingLag".to_owned(),
                serde_json::to_value(&field).unwrap_or_default(),
            );
            serde_json::to_vec(&doc).map(Bytes::from).unwrap_or(bytes)
        }
        _ => bytes,
    };
    let mut res = head.set_body(bytes);
    let value = format!(
        "records={}, seconds={:.3}, reason={}",
        field.records, field.seconds, field.reason
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut()
            .insert(HeaderName::from_static(LAG_HEADER), v);
    }
    Ok(ServiceResponse::new(req, res).map_into_right_body())
}

/// For the calls-in-progress cap: waits (bounded) until PostgreSQL has every record written so
/// far; then nothing is missing from its count (empty list). Otherwise this instance's calls in
/// progress, for the count to add those PostgreSQL does not have yet.
pub async fn unshipped_calls(state: &AppState) -> Vec<String> {
    let status = &state.recorder.status;
    let position = status.position(state.recorder.journal());
    match status
        .wait_shipped(position, state.config.ops.admin_read_wait())
        .await
    {
        None => Vec::new(),
        Some(_) => state.calls.open_callids(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_records_wait_and_reads_of_configuration_do_not() {
        for p in [
            "/admin/calls/c1",
            "/admin/errors/r",
            "/admin/events",
            "/admin/gate/misses",
            "/admin/sinch-errors",
            "/admin/calls-in-progress",
            "/admin/calls/c1/diagnosis",
        ] {
            assert!(waits(&Method::GET, p), "{p}");
        }
        for p in [
            "/admin/flows",
            "/admin/flows/3",
            "/admin/routes/1",
            "/admin/openapi.json",
            "/admin/alerts",
            "/admin/error-codes",
        ] {
            assert!(!waits(&Method::GET, p), "{p}");
        }
        assert!(!waits(&Method::POST, "/admin/calls/c1"));
        assert!(waits(&Method::GET, "/admin/flowsx"));
    }
}
