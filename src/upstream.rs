//! Proxy mode: forward a callback event to the customer's own app and read its SVAML reply.
//!
//! [`UpstreamClient::forward`] POSTs the event body (bytes exactly as given) with the given
//! `authorization`, `x-timestamp` and `content-type` headers, and returns an [`UpstreamOutcome`]
//! describing what happened; it never panics and never returns early without one.
//!
//! - **Timeout**: one deadline covers connecting, sending, the response head and reading the body
//!   (`tokio::time::timeout` around the whole exchange); awc's own timeout is disabled.
//! - **Body cap**: at most [`MAX_BODY_BYTES`] are read; larger replies fail with
//!   [`UpstreamFailure::TooLarge`].
//! - **`http://` and `https://`**: TLS is rustls (ring provider) with the Mozilla root
//!   certificates; a certificate that does not verify is a [`UpstreamFailure::Connect`].
//! - Redirects are not followed (a signed POST must not be replayed elsewhere); a 3xx is a
//!   [`UpstreamFailure::BadStatus`]. The response `content-type` is not checked, the body is.
//! - Signing is the caller's job: compute the header with `crate::signature::sign` over
//!   [`request_path`] of the upstream URL and pass it in [`UpstreamRequest::authorization`].
//!
//! `awc::Client` is `!Send`: keep one `UpstreamClient` per actix worker, e.g. created inside the
//! `HttpServer::new` app factory (`web::Data::new(UpstreamClient::new())`, which runs once per
//! worker) or in a `thread_local!`. It must be used from within the actix runtime.

use actix_web::web::Bytes;
use awc::error::{PayloadError, SendRequestError};
use serde_json::Value;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Maximum accepted reply body size (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `user-agent` sent upstream.
pub const USER_AGENT: &str = concat!("svamlgate/", env!("CARGO_PKG_VERSION"));

/// One request to forward.
#[derive(Debug, Clone)]
pub struct UpstreamRequest<'a> {
    /// `http://` URL of the customer's callback endpoint.
    pub url: &'a str,
    /// Value for the `authorization` header (precomputed signature); omitted when `None`.
    pub authorization: Option<String>,
    /// Value for the `x-timestamp` header (the one signed into `authorization`).
    pub x_timestamp: String,
    /// Value for the `content-type` header (the one signed into `authorization`).
    pub content_type: &'a str,
    /// Request body, sent byte for byte.
    pub body: &'a [u8],
    /// Deadline for the whole exchange.
    pub timeout: Duration,
}

/// Why forwarding did not produce usable SVAML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamFailure {
    /// No complete reply within the timeout.
    #[error("upstream did not answer within the timeout")]
    Timeout,
    /// The URL is unusable, no connection could be made, or TLS failed (e.g. certificate).
    #[error("could not connect to upstream: {0}")]
    Connect(String),
    /// The connection was made but the HTTP exchange failed (reset, malformed reply, bad header).
    #[error("HTTP exchange with upstream failed: {0}")]
    Protocol(String),
    /// The upstream answered with a non-2xx status.
    #[error("upstream answered HTTP {0}")]
    BadStatus(u16),
    /// The reply body exceeds [`MAX_BODY_BYTES`].
    #[error("upstream reply is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The reply body is not a JSON object.
    #[error("upstream reply is not a JSON object: {0}")]
    NotJson(String),
    /// The reply body is empty.
    #[error("upstream reply body is empty")]
    EmptyBody,
}

impl UpstreamFailure {
    /// Stable short code for logs and storage, e.g. `timeout`, `bad_status`.
    pub fn code(&self) -> &'static str {
        match self {
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Connect(_) => "connect",
            UpstreamFailure::Protocol(_) => "protocol",
            UpstreamFailure::BadStatus(_) => "bad_status",
            UpstreamFailure::TooLarge => "too_large",
            UpstreamFailure::NotJson(_) => "not_json",
            UpstreamFailure::EmptyBody => "empty_body",
        }
    }
}

/// What happened when forwarding.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamOutcome {
    /// HTTP status, if a response head arrived (also set when the body then timed out).
    pub status: Option<u16>,
    /// The reply body (at most [`MAX_BODY_BYTES`]), if it was read completely.
    pub body: Option<Vec<u8>>,
    /// Time from starting the request until the outcome was known.
    pub latency: Duration,
    /// `None` when the reply is a 2xx with a JSON object body (then `json` is set).
    pub error: Option<UpstreamFailure>,
    /// The parsed reply, when `error` is `None`.
    pub json: Option<Value>,
}

impl UpstreamOutcome {
    /// The upstream's SVAML (a JSON object, not yet validated), or why there is none.
    pub fn svaml(&self) -> Result<Value, UpstreamFailure> {
        match (&self.error, &self.json) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(v)) => Ok(v.clone()),
            (None, None) => Err(UpstreamFailure::EmptyBody),
        }
    }
}

/// The path part of a URL (no query or fragment; `/` if empty): the resource to sign.
pub fn request_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find(['/', '?', '#']) {
        Some(i) if after_scheme[i..].starts_with('/') => {
            let path = &after_scheme[i..];
            path.split(['?', '#']).next().unwrap_or("/")
        }
        _ => "/",
    }
}

/// HTTP client for proxy mode (one per actix worker; see the module docs).
#[derive(Clone)]
pub struct UpstreamClient {
    client: awc::Client,
}

impl Default for UpstreamClient {
    fn default() -> Self {
        UpstreamClient::new()
    }
}

impl UpstreamClient {
    /// A client without redirects and without awc's own timeout (each request has its own).
    pub fn new() -> UpstreamClient {
        UpstreamClient {
            client: awc::Client::builder()
                .disable_redirects()
                .disable_timeout()
                .finish(),
        }
    }

    /// Forwards one event (see the module docs for the rules). Always returns an outcome.
    pub async fn forward(&self, req: &UpstreamRequest<'_>) -> UpstreamOutcome {
        let started = Instant::now();
        let status = Cell::new(None);
        let result = match usable_url(req.url) {
            Err(e) => Err(e),
            Ok(()) => tokio::time::timeout(req.timeout, self.exchange(req, &status))
                .await
                .unwrap_or(Err(UpstreamFailure::Timeout)),
        };
        classify(result, status.get(), started.elapsed())
    }

    async fn exchange(
        &self,
        req: &UpstreamRequest<'_>,
        status: &Cell<Option<u16>>,
    ) -> Result<(u16, Vec<u8>), UpstreamFailure> {
        let mut request = self
            .client
            .post(req.url)
            .insert_header(("x-timestamp", req.x_timestamp.as_str()))
            .insert_header(("content-type", req.content_type))
            .insert_header(("accept", "application/json"))
            .insert_header(("user-agent", USER_AGENT));
        if let Some(auth) = &req.authorization {
            request = request.insert_header(("authorization", auth.as_str()));
        }
        let mut response = request
            .send_body(Bytes::copy_from_slice(req.body))
            .await
            .map_err(send_error)?;
        let code = response.status();
        status.set(Some(code.as_u16()));
        match response.body().limit(MAX_BODY_BYTES).await {
            Ok(bytes) => Ok((code.as_u16(), bytes.to_vec())),
            Err(PayloadError::Overflow) if code.is_success() => Err(UpstreamFailure::TooLarge),
            // For an error status the status is what matters; the body is only diagnostics.
            Err(_) if !code.is_success() => Err(UpstreamFailure::BadStatus(code.as_u16())),
            Err(e) => Err(UpstreamFailure::Protocol(format!(
                "reading the reply body failed: {e}"
            ))),
        }
    }
}

/// Whether `url` can be forwarded to: `http://` or `https://`, and a valid URI.
fn usable_url(url: &str) -> Result<(), UpstreamFailure> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(UpstreamFailure::Connect(
            "the upstream URL must start with http:// or https://".to_owned(),
        ));
    }
    match url.parse::<awc::http::Uri>() {
        Ok(_) => Ok(()),
        Err(e) => Err(UpstreamFailure::Connect(format!("invalid URL: {e}"))),
    }
}

/// The outcome of an exchange: its failure, or the status and body it read, which are usable
/// SVAML only as a 2xx with a JSON object body. `status` is the status of a response head that
/// arrived before a failure.
fn classify(
    result: Result<(u16, Vec<u8>), UpstreamFailure>,
    status: Option<u16>,
    latency: Duration,
) -> UpstreamOutcome {
    let (code, body) = match result {
        Ok(read) => read,
        Err(error) => {
            return UpstreamOutcome {
                status,
                body: None,
                latency,
                error: Some(error),
                json: None,
            }
        }
    };
    let (error, json) = if !(200..300).contains(&code) {
        (Some(UpstreamFailure::BadStatus(code)), None)
    } else {
        match parse_object(&body) {
            Ok(v) => (None, Some(v)),
            Err(e) => (Some(e), None),
        }
    };
    UpstreamOutcome {
        status: Some(code),
        body: Some(body),
        latency,
        error,
        json,
    }
}

fn send_error(e: SendRequestError) -> UpstreamFailure {
    match e {
        SendRequestError::Url(e) => UpstreamFailure::Connect(format!("invalid URL: {e}")),
        SendRequestError::Connect(e) => UpstreamFailure::Connect(e.to_string()),
        SendRequestError::Timeout => UpstreamFailure::Timeout,
        other => UpstreamFailure::Protocol(other.to_string()),
    }
}

fn parse_object(body: &[u8]) -> Result<Value, UpstreamFailure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(UpstreamFailure::EmptyBody);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(UpstreamFailure::NotJson(format!(
            "expected an object, got {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
        Err(e) => Err(UpstreamFailure::NotJson(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Clone, Default)]
    struct Seen {
        authorization: Option<String>,
        x_timestamp: Option<String>,
        content_type: Option<String>,
        user_agent: Option<String>,
        path: String,
        body: Vec<u8>,
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    fn header(req: &HttpRequest, name: &str) -> Option<String> {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    async fn handler(req: HttpRequest, body: web::Bytes, log: web::Data<Log>) -> HttpResponse {
        log.lock().unwrap().push(Seen {
            authorization: header(&req, "authorization"),
            x_timestamp: header(&req, "x-timestamp"),
            content_type: header(&req, "content-type"),
            user_agent: header(&req, "user-agent"),
            path: req.path().to_owned(),
            body: body.to_vec(),
        });
        match req.path() {
            "/ok" => HttpResponse::Ok()
                .content_type("application/json")
                .body(r#"{"action":{"name":"hangup"}}"#),
            "/notjson" => HttpResponse::Ok().body("<html>hello</html>"),
            "/array" => HttpResponse::Ok().body("[1,2]"),
            "/empty" => HttpResponse::Ok().finish(),
            "/big" => HttpResponse::Ok().body(vec![b' '; MAX_BODY_BYTES + 1]),
            "/slow" => {
                actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
                HttpResponse::Ok().body(r#"{"action":{"name":"hangup"}}"#)
            }
            "/redirect" => HttpResponse::Found()
                .insert_header(("location", "/ok"))
                .finish(),
            _ => HttpResponse::InternalServerError().body("oops"),
        }
    }

    fn request<'a>(url: &'a str, body: &'a [u8], timeout_ms: u64) -> UpstreamRequest<'a> {
        UpstreamRequest {
            url,
            authorization: Some("application app-key:c2lnbmF0dXJl".to_owned()),
            x_timestamp: "2014-09-24T10:59:41Z".to_owned(),
            content_type: "application/json; charset=utf-8",
            body,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    /// A customer's app on a free port, answering by path (see [`handler`]); what it saw is logged.
    struct CustomerApp {
        base: String,
        log: Log,
        handle: actix_web::dev::ServerHandle,
    }

    impl CustomerApp {
        fn start() -> CustomerApp {
            let log: Log = Arc::default();
            let data = web::Data::new(log.clone());
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .default_service(web::to(handler))
            })
            .workers(1)
            .shutdown_timeout(0)
            .bind(("127.0.0.1", 0))
            .unwrap();
            let addr = *server.addrs().first().unwrap();
            let server = server.run();
            let handle = server.handle();
            actix_web::rt::spawn(server);
            CustomerApp {
                base: format!("http://{addr}"),
                log,
                handle,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }

        fn last_seen(&self) -> Seen {
            self.log.lock().unwrap().last().cloned().unwrap()
        }
    }

    /// Exact bytes, including a trailing newline and non-ASCII, must arrive untouched.
    const BODY: &[u8] =
        "{\"event\":\"ice\",\"cli\":\"46708168731\",\"custom\":\"\u{e9}\"}\n".as_bytes();

    #[actix_web::test]
    async fn forward_sends_the_bytes_and_headers_given_and_reads_svaml() {
        let app = CustomerApp::start();
        let client = UpstreamClient::new();
        let out = client
            .forward(&request(&app.url("/ok?x=1"), BODY, 2000))
            .await;
        assert_eq!(out.error, None);
        assert_eq!(out.status, Some(200));
        assert_eq!(
            out.svaml().unwrap(),
            serde_json::json!({"action": {"name": "hangup"}})
        );
        assert_eq!(
            out.body.as_deref(),
            Some(&br#"{"action":{"name":"hangup"}}"#[..])
        );
        assert!(out.latency > Duration::ZERO && out.latency < Duration::from_secs(2));
        let s = app.last_seen();
        assert_eq!(
            s.authorization.as_deref(),
            Some("application app-key:c2lnbmF0dXJl")
        );
        assert_eq!(s.x_timestamp.as_deref(), Some("2014-09-24T10:59:41Z"));
        assert_eq!(
            s.content_type.as_deref(),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(s.user_agent.as_deref(), Some(USER_AGENT));
        assert_eq!(s.path, "/ok");
        assert_eq!(s.body, BODY);

        // no authorization header when none is given
        let url = app.url("/ok");
        let mut unsigned = request(&url, b"{}", 2000);
        unsigned.authorization = None;
        assert_eq!(client.forward(&unsigned).await.error, None);
        assert_eq!(app.last_seen().authorization, None);
        app.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn forward_refuses_bodies_that_are_not_a_json_object() {
        let app = CustomerApp::start();
        let client = UpstreamClient::new();
        let out = client
            .forward(&request(&app.url("/notjson"), BODY, 2000))
            .await;
        assert_eq!(out.status, Some(200));
        assert!(
            matches!(&out.error, Some(UpstreamFailure::NotJson(m)) if m.contains("expected value")),
            "{out:?}"
        );
        assert_eq!(out.body.as_deref(), Some(&b"<html>hello</html>"[..]));
        assert_eq!(out.svaml(), Err(out.error.clone().unwrap()));

        let out = client
            .forward(&request(&app.url("/array"), BODY, 2000))
            .await;
        assert_eq!(
            out.error,
            Some(UpstreamFailure::NotJson(
                "expected an object, got an array".into()
            ))
        );

        let out = client
            .forward(&request(&app.url("/empty"), BODY, 2000))
            .await;
        assert_eq!(
            (out.status, out.error.clone()),
            (Some(200), Some(UpstreamFailure::EmptyBody))
        );
        assert_eq!(out.svaml(), Err(UpstreamFailure::EmptyBody));

        let out = client.forward(&request(&app.url("/big"), BODY, 2000)).await;
        assert_eq!(
            (out.status, out.error.clone(), out.body.clone()),
            (Some(200), Some(UpstreamFailure::TooLarge), None)
        );
        app.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn forward_refuses_error_statuses_and_redirects() {
        let app = CustomerApp::start();
        let client = UpstreamClient::new();
        // 500 keeps the body for diagnostics
        let out = client
            .forward(&request(&app.url("/fail"), BODY, 2000))
            .await;
        assert_eq!(out.status, Some(500));
        assert_eq!(out.error, Some(UpstreamFailure::BadStatus(500)));
        assert_eq!(out.body.as_deref(), Some(&b"oops"[..]));
        assert_eq!(
            out.error.as_ref().map(UpstreamFailure::code),
            Some("bad_status")
        );
        // redirects are not followed
        let out = client
            .forward(&request(&app.url("/redirect"), BODY, 2000))
            .await;
        assert_eq!(out.error, Some(UpstreamFailure::BadStatus(302)));
        assert_eq!(app.last_seen().path, "/redirect");
        app.handle.stop(false).await;
    }

    #[actix_web::test]
    async fn forward_obeys_the_timeout_strictly() {
        let app = CustomerApp::start();
        let client = UpstreamClient::new();
        let out = client.forward(&request(&app.url("/slow"), BODY, 200)).await;
        assert_eq!(out.error, Some(UpstreamFailure::Timeout));
        assert_eq!((out.status, out.body.clone()), (None, None));
        assert!(
            out.latency >= Duration::from_millis(200),
            "{:?}",
            out.latency
        );
        assert!(
            out.latency < Duration::from_millis(1000),
            "{:?}",
            out.latency
        );
        app.handle.stop(false).await;
    }

    #[test]
    fn classify_outcomes() {
        let ms = Duration::from_millis(3);
        let ok = |code: u16, body: &[u8]| classify(Ok((code, body.to_vec())), Some(code), ms);
        let out = ok(200, br#"{"action":{"name":"hangup"}}"#);
        assert_eq!((out.error, out.status), (None, Some(200)));
        assert_eq!(
            out.json,
            Some(serde_json::json!({"action": {"name": "hangup"}}))
        );
        // (status, body) → failure
        let table: [(u16, &[u8], UpstreamFailure); 6] = [
            (204, b"", UpstreamFailure::EmptyBody),
            (200, b" \n", UpstreamFailure::EmptyBody),
            (
                200,
                b"7",
                UpstreamFailure::NotJson("expected an object, got a number".into()),
            ),
            (
                200,
                b"null",
                UpstreamFailure::NotJson("expected an object, got null".into()),
            ),
            (500, b"{}", UpstreamFailure::BadStatus(500)),
            (302, b"", UpstreamFailure::BadStatus(302)),
        ];
        for (code, body, failure) in table {
            let out = ok(code, body);
            assert_eq!(out.error, Some(failure), "{code} {body:?}");
            assert_eq!((out.status, out.json), (Some(code), None));
            assert_eq!(out.body.as_deref(), Some(body), "the body is kept");
            assert_eq!(out.latency, ms);
        }
        // A failure after the response head keeps its status, and no body.
        let out = classify(Err(UpstreamFailure::TooLarge), Some(200), ms);
        assert_eq!(
            (out.status, out.body, out.error),
            (Some(200), None, Some(UpstreamFailure::TooLarge))
        );
        let out = classify(Err(UpstreamFailure::Timeout), None, ms);
        assert_eq!(
            (out.status, out.error),
            (None, Some(UpstreamFailure::Timeout))
        );
    }

    #[test]
    fn usable_urls() {
        assert_eq!(usable_url("http://a.example/cb"), Ok(()));
        assert_eq!(usable_url("HTTPS://a.example:8443/cb?x=1"), Ok(()));
        for url in ["ftp://a.example/cb", "a.example/cb", "", "http:/a"] {
            assert!(
                matches!(usable_url(url), Err(UpstreamFailure::Connect(m)) if m.contains("http:// or https://")),
                "{url}"
            );
        }
        assert!(matches!(
            usable_url("http://exa mple.com/"),
            Err(UpstreamFailure::Connect(m)) if m.starts_with("invalid URL")
        ));
    }

    #[actix_web::test]
    async fn forward_connection_failures() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = UpstreamClient::new();
        let url = format!("http://127.0.0.1:{port}/cb");
        let out = client.forward(&request(&url, b"{}", 2000)).await;
        assert!(
            matches!(&out.error, Some(UpstreamFailure::Connect(_))),
            "{out:?}"
        );
        assert_eq!((out.status, out.body.clone()), (None, None));
        assert!(out.latency < Duration::from_secs(2));

        // https is attempted: against a plain-HTTP port the TLS handshake fails as a connect error.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = plain.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            if let Ok((mut s, _)) = plain.accept() {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
            }
        });
        let out = client
            .forward(&request(
                &format!("https://127.0.0.1:{port}/cb"),
                b"{}",
                2000,
            ))
            .await;
        assert!(
            matches!(
                &out.error,
                Some(UpstreamFailure::Connect(_) | UpstreamFailure::Protocol(_))
            ),
            "{out:?}"
        );
        assert_eq!(
            out.status, None,
            "no HTTP answer over a failed TLS handshake"
        );
        let out = client
            .forward(&request("ftp://example.com/cb", b"{}", 2000))
            .await;
        assert_eq!(
            out.error.as_ref().map(UpstreamFailure::code),
            Some("connect")
        );
        let out = client
            .forward(&request("http://exa mple.com/", b"{}", 2000))
            .await;
        assert!(
            matches!(&out.error, Some(UpstreamFailure::Connect(m)) if m.starts_with("invalid URL")),
            "{out:?}"
        );
    }

    #[test]
    fn request_paths() {
        assert_eq!(
            request_path("http://a.example:8080/sinch/cb?x=1#f"),
            "/sinch/cb"
        );
        assert_eq!(request_path("http://a.example"), "/");
        assert_eq!(request_path("http://a.example?x=/y"), "/");
        assert_eq!(request_path("http://a.example/"), "/");
    }

    #[test]
    fn failure_texts() {
        assert_eq!(
            UpstreamFailure::BadStatus(503).to_string(),
            "upstream answered HTTP 503"
        );
        assert_eq!(UpstreamFailure::Timeout.code(), "timeout");
        assert_eq!(
            UpstreamFailure::TooLarge.to_string(),
            "upstream reply is larger than 65536 bytes"
        );
    }
}
