//! What handlers take from a request, and how a request that does not fit is answered: always a
//! Sinch error envelope with a catalog code.
//!
//! - [`read_body`]: the one body reader (bounded; refuses an oversized body from its Content-Length
//!   before reading it). The callback endpoint uses it directly, because its signature is checked
//!   over the raw bytes.
//! - [`Body`]: a whole body of at most `LIMIT` bytes (400 40003 beyond).
//! - [`Json`]: a body of at most `LIMIT` bytes parsed into `T` (400 40003 when it is not JSON or
//!   not a `T`). Any content type is accepted, as Sinch's own API does.
//! - actix-web's `Path` and `Query` are configured by [`path_config`] and [`query_config`]: a value
//!   that does not parse, or an unknown query parameter where the query type refuses them, is
//!   400 40001.
//! - The path parameters of the admin API ([`CallPath`], [`IdPath`], …), each described once for
//!   the OpenAPI document.
//! - [`page_limit`]: the `limit` of a paged listing.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{dev, web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::catalog::code;
use crate::error::ApiError;

fn too_large(limit: usize) -> ApiError {
    ApiError::invalid_request(format!(
        "Request body is larger than {limit} bytes (SVAMLGATE_MAX_BODY_BYTES); Sinch callbacks are far smaller"
    ))
}

/// Reads at most `limit` bytes of body; refuses early when Content-Length already says it is larger.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: dev::Payload,
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

/// A whole request body of at most `LIMIT` bytes.
#[derive(Debug)]
pub struct Body<const LIMIT: usize>(pub Vec<u8>);

impl<const LIMIT: usize> FromRequest for Body<LIMIT> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move { read_body(&req, payload, LIMIT).await.map(Body) })
    }
}

/// A JSON body of at most `LIMIT` bytes, parsed into `T`.
#[derive(Debug)]
pub struct Json<T, const LIMIT: usize>(pub T);

impl<T, const LIMIT: usize> Json<T, LIMIT> {
    /// The parsed body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// 400 40003 for a body that is not JSON, or not the JSON the endpoint takes.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid_request(if e.is_data() {
            let name = std::any::type_name::<T>();
            let name = name.rsplit("::").next().unwrap_or(name);
            format!("Body is not a valid {name} document (see /admin/openapi.json): {e}")
        } else {
            format!("Body is not valid JSON: {e}")
        })
    })
}

impl<T: DeserializeOwned + 'static, const LIMIT: usize> FromRequest for Json<T, LIMIT> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let bytes = read_body(&req, payload, LIMIT).await?;
            parse_json(&bytes).map(Json)
        })
    }
}

fn bad_parameter(message: String) -> actix_web::Error {
    ApiError::new(code::PARAMETER_VALIDATION, message).into()
}

/// Path segments that do not parse (e.g. a flow id that is not a number): 400 40001.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|e, req| {
        bad_parameter(format!(
            "Path {} has a parameter that is not valid: {e}",
            req.path()
        ))
    })
}

/// Query parameters that do not parse, or that the endpoint does not know: 400 40001.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| bad_parameter(format!("Query parameter is not valid: {e}")))
}

/// actix-web's own `Json` (not used by the admin API, which takes [`Json`]): 400 40003.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .content_type_required(false)
        .error_handler(|e, _| ApiError::invalid_request(format!("Body is not valid: {e}")).into())
}

/// The `limit` of a paged listing: `default` when absent, 400 40001 unless positive, at most `max`.
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if n > 0 => Ok(n.min(max)),
        Some(_) => Err(ApiError::new(
            code::PARAMETER_VALIDATION,
            "limit must be a positive integer",
        )),
    }
}

/// A `since` query parameter: an ISO-8601 timestamp, else 400 40001.
pub fn since(value: Option<&str>) -> Result<Option<time::OffsetDateTime>, ApiError> {
    value
        .map(|s| {
            crate::timestamp::parse(s).ok_or_else(|| {
                ApiError::new(
                    code::PARAMETER_VALIDATION,
                    "since must be an ISO-8601 timestamp, e.g. 2026-01-31T12:00:00Z",
                )
            })
        })
        .transpose()
}

/// `{callid}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CallPath {
    /// The call id Sinch sent.
    pub callid: String,
}

/// `{callid}/leg/{leg}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CallLegPath {
    /// The call id Sinch sent.
    pub callid: String,
    /// The call leg: caller, callee or both (others: 400 40001).
    #[param(example = "caller")]
    pub leg: String,
}

/// `{conferenceid}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConferencePath {
    /// The conference id (1 to 128 characters of A-Z, a-z, 0-9 and . _ ~ @ : + = -; others: 400 40001).
    pub conferenceid: String,
}

/// `{conferenceid}/{callid}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ParticipantPath {
    /// The conference id (1 to 128 characters of A-Z, a-z, 0-9 and . _ ~ @ : + = -; others: 400 40001).
    pub conferenceid: String,
    /// The call id of the participant.
    pub callid: String,
}

/// `{id}` of a flow or a route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    /// The flow's or route's id. Not an integer: 400 40001.
    #[param(minimum = 1)]
    pub id: i64,
}

/// `{reference}` of an error.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ReferencePath {
    /// The `reference` of an error envelope.
    pub reference: String,
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn page_limit_defaults_caps_and_refuses() {
        assert_eq!(page_limit(None, 50, 500).unwrap(), 50);
        assert_eq!(page_limit(Some(7), 50, 500).unwrap(), 7);
        assert_eq!(page_limit(Some(100_000), 50, 500).unwrap(), 500);
        for bad in [0, -1] {
            let e = page_limit(Some(bad), 50, 500).unwrap_err();
            assert_eq!(e.code, code::PARAMETER_VALIDATION);
        }
    }

    #[test]
    fn since_parses_iso_8601_or_refuses() {
        assert!(since(None).unwrap().is_none());
        assert!(since(Some("2026-01-31T12:00:00Z")).unwrap().is_some());
        assert_eq!(
            since(Some("yesterday")).unwrap_err().code,
            code::PARAMETER_VALIDATION
        );
    }

    #[derive(Debug, serde::Deserialize)]
    struct Shape {
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn json_that_is_not_json_or_not_the_shape_is_40003() {
        let e = parse_json::<Shape>(b"{").unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
        assert!(
            e.message.starts_with("Body is not valid JSON"),
            "{}",
            e.message
        );
        let e = parse_json::<Shape>(br#"{"name": 1}"#).unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
        assert!(
            e.message.contains("not a valid Shape document"),
            "{}",
            e.message
        );
    }

    #[actix_web::test]
    async fn bodies_are_bounded_before_and_while_reading() {
        let (req, mut payload) = TestRequest::post().set_payload("12345").to_http_parts();
        let body = Body::<5>::from_request(&req, &mut payload).await.unwrap();
        assert_eq!(body.0, b"12345");
        // Content-Length says too much: refused before reading.
        let (req, mut payload) = TestRequest::post().set_payload("123456").to_http_parts();
        let e = Body::<5>::from_request(&req, &mut payload)
            .await
            .unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
        // No Content-Length: refused once the chunks pass the limit.
        let (req, _) = TestRequest::post().to_http_parts();
        let stream = futures_util::stream::iter([Ok::<_, actix_web::error::PayloadError>(
            web::Bytes::from_static(b"123456"),
        )]);
        let boxed: Pin<Box<dyn futures_util::Stream<Item = _>>> = Box::pin(stream);
        let payload = dev::Payload::Stream { payload: boxed };
        let e = read_body(&req, payload, 5).await.unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
        let (req, payload) = TestRequest::post()
            .insert_header(("content-length", "five"))
            .to_http_parts();
        let e = read_body(&req, payload, 5).await.unwrap_err();
        assert!(e.message.contains("Content-Length"), "{}", e.message);
    }

    #[actix_web::test]
    async fn json_extractor_parses_within_its_limit() {
        let (req, mut payload) = TestRequest::post()
            .set_payload(r#"{"name": "a"}"#)
            .to_http_parts();
        let Json(shape) = Json::<Shape, 64>::from_request(&req, &mut payload)
            .await
            .unwrap();
        assert_eq!(shape.name, "a");
        let (req, mut payload) = TestRequest::post()
            .set_payload(r#"{"name": "a"}"#)
            .to_http_parts();
        let e = Json::<Shape, 4>::from_request(&req, &mut payload)
            .await
            .unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
    }
}
