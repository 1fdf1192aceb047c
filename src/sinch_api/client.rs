//! One HTTP exchange with the Calling API, with awc (rustls) and two deadlines: connecting
//! (DNS, TCP, TLS) and the whole exchange. A failure to connect is told apart from a failure
//! after connecting, because only the first proves that the request never reached Sinch.
//!
//! `awc::Client` is `!Send`: one client per thread, kept in a `thread_local!`, used from within
//! the actix runtime.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use awc::error::{PayloadError, SendRequestError};

use super::retry::AttemptEnd;
use super::signing::{AuthHeaders, JSON};

/// Largest answer body read; larger answers are `too_large`.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// `user-agent` sent to Sinch.
pub use crate::upstream::USER_AGENT;

/// Why an attempt got no (usable) answer (a too-large answer is one over [`MAX_ANSWER_BYTES`]);
/// part of the outbound vocabulary.
pub use crate::outcome::AttemptFailure as Failure;

/// What one attempt produced.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    /// HTTP status, when an answer head arrived.
    pub status: Option<u16>,
    /// Answer body (empty when none was read).
    pub body: Vec<u8>,
    /// `Retry-After` header as sent.
    pub retry_after: Option<String>,
    /// Why no usable answer came.
    pub failure: Option<(Failure, String)>,
    /// Time the attempt took.
    pub latency: Duration,
}

impl RawAnswer {
    /// How the attempt ended, for the retry rules. A too-large answer counts by its status.
    pub fn end(&self) -> AttemptEnd {
        match (self.status, self.failure.as_ref().map(|f| f.0)) {
            (Some(s), None) | (Some(s), Some(Failure::TooLarge)) => AttemptEnd::Status(s),
            (_, Some(Failure::Connect)) => AttemptEnd::Connect,
            (_, Some(Failure::Timeout)) => AttemptEnd::Timeout,
            _ => AttemptEnd::Io,
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Exchange<'a> {
    /// Full URL.
    pub url: &'a str,
    /// Method, upper-case.
    pub method: &'a str,
    /// Authentication headers.
    pub auth: &'a AuthHeaders,
    /// JSON body, if any (sent with `content-type: application/json`).
    pub body: Option<&'a [u8]>,
    /// Deadline of the whole exchange.
    pub timeout: Duration,
    /// Deadline of connecting.
    pub connect_timeout: Duration,
}

thread_local! {
    static CLIENT: RefCell<Option<(Duration, awc::Client)>> = const { RefCell::new(None) };
}

fn client(connect_timeout: Duration) -> awc::Client {
    CLIENT.with(|cell| {
        let mut slot = cell.borrow_mut();
        match slot.as_ref() {
            Some((t, c)) if *t == connect_timeout => c.clone(),
            _ => {
                let c = awc::Client::builder()
                    .connector(awc::Connector::new().timeout(connect_timeout))
                    .disable_redirects()
                    .disable_timeout()
                    .finish();
                *slot = Some((connect_timeout, c.clone()));
                c
            }
        }
    })
}

fn classify(e: SendRequestError) -> (Failure, String) {
    match e {
        SendRequestError::Url(e) => (Failure::Connect, format!("invalid URL: {e}")),
        SendRequestError::Connect(e) => (Failure::Connect, e.to_string()),
        SendRequestError::Timeout => (Failure::Timeout, "timed out".to_owned()),
        other => (Failure::Io, other.to_string()),
    }
}

/// Sends one request; never panics, always returns what happened.
pub async fn exchange(x: &Exchange<'_>) -> RawAnswer {
    let started = Instant::now();
    let mut status = None;
    let mut retry_after = None;
    let result = tokio::time::timeout(x.timeout, async {
        let method = awc::http::Method::from_bytes(x.method.as_bytes())
            .map_err(|e| (Failure::Connect, format!("invalid method: {e}")))?;
        let mut req = client(x.connect_timeout)
            .request(method, x.url)
            .insert_header(("authorization", x.auth.authorization.expose()))
            .insert_header(("accept", JSON))
            .insert_header(("user-agent", USER_AGENT));
        if let Some(ts) = &x.auth.x_timestamp {
            req = req.insert_header(("x-timestamp", ts.as_str()));
        }
        let sent = match x.body {
            Some(b) => {
                req.insert_header(("content-type", JSON))
                    .send_body(Bytes::copy_from_slice(b))
                    .await
            }
            None => req.send().await,
        };
        let mut res = sent.map_err(classify)?;
        status = Some(res.status().as_u16());
        retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match res.body().limit(MAX_ANSWER_BYTES).await {
            Ok(b) => Ok(b.to_vec()),
            Err(PayloadError::Overflow) => Err((
                Failure::TooLarge,
                format!("answer larger than {MAX_ANSWER_BYTES} bytes"),
            )),
            Err(e) => Err((Failure::Io, format!("reading the answer failed: {e}"))),
        }
    })
    .await;
    let latency = started.elapsed();
    let (body, failure) = match result {
        Ok(Ok(body)) => (body, None),
        Ok(Err(f)) => (Vec::new(), Some(f)),
        Err(_) => (
            Vec::new(),
            Some((
                Failure::Timeout,
                format!("no complete answer within {} ms", x.timeout.as_millis()),
            )),
        ),
    };
    RawAnswer {
        status,
        body,
        retry_after,
        failure,
        latency,
    }
}
