//! The service's one error type. Every error svamlgate answers with is a Sinch error envelope
//! `{status, errorCode, message, reference}` built from the catalog ([`crate::catalog`]), and every
//! reference is recorded in the `errors` table (see [`ErrorRecord`] and the recording middleware).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::catalog::{self, code};

/// A fresh reference id: a UUIDv7 (time-ordered) in its hyphenated form.
pub fn new_reference() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The Sinch error envelope every svamlgate error is answered with (errorCode is a number, as in
/// Sinch's bodies).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// HTTP status and name, e.g. `400 InvalidRequest`.
    #[schema(example = "400 InvalidRequest")]
    pub status: String,
    /// Five-digit Sinch error code; its first three digits are the HTTP status.
    #[schema(example = 40003)]
    pub error_code: u32,
    /// What went wrong, safe to show.
    pub message: String,
    /// Reference of the recorded error (see `GET /admin/errors/{reference}`).
    pub reference: String,
    /// Structured details, when there are any (e.g. a refused flow's check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// Sinch error code from the catalog.
    pub code: u32,
    /// Message sent to the client.
    pub message: String,
    /// Reference id.
    pub reference: String,
    /// Internal detail for operators (stored in errors.detail, never sent).
    pub detail: Option<serde_json::Value>,
    /// Structured details sent with the envelope.
    pub details: Option<serde_json::Value>,
    /// Set when the error was already queued for recording (the middleware must not record it twice).
    pub recorded: bool,
}

impl ApiError {
    /// An error with the given catalog code and message.
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reference: new_reference(),
            detail: None,
            details: None,
            recorded: false,
        }
    }
    /// Adds internal detail (stored, never sent).
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
    /// Adds structured details to the response (and to the stored detail).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.detail = Some(details.clone());
        self.details = Some(details);
        self
    }
    /// Marks the error as recorded already.
    pub fn already_recorded(mut self) -> Self {
        self.recorded = true;
        self
    }
    /// Uses an existing reference (e.g. the callback's own reference).
    pub fn with_reference(mut self, reference: String) -> Self {
        self.reference = reference;
        self
    }
    /// 400 40003.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_REQUEST, message)
    }
    /// 400 40002.
    pub fn missing_parameter(message: impl Into<String>) -> Self {
        Self::new(code::MISSING_PARAMETER, message)
    }
    /// 404 40400.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(code::NOT_FOUND, message)
    }
    /// 500 50000 with an opaque message; the cause goes to the log and errors.detail only.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        let e = Self::new(
            code::INTERNAL_ERROR,
            "Internal error; the reference identifies it for support",
        );
        tracing::error!(reference = %e.reference, error = %cause, "internal error");
        e.with_detail(serde_json::json!({ "cause": cause.to_string() }))
    }
    /// 503 50300: the database did not answer.
    pub fn database_unavailable(cause: &dyn std::fmt::Display) -> Self {
        let e = Self::new(
            code::TEMPORARY_DOWN,
            "Database temporarily unavailable; try again shortly",
        );
        tracing::warn!(reference = %e.reference, error = %cause, "database unavailable");
        e.with_detail(serde_json::json!({ "cause": cause.to_string() }))
    }
    /// Maps a storage error: connection problems are 503, anything else 500.
    pub fn from_db(err: &sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => Self::database_unavailable(err),
            _ => Self::internal(err),
        }
    }

    /// HTTP status from the catalog (first three digits of the code).
    pub fn http_status(&self) -> u16 {
        catalog::lookup(self.code)
            .map(|i| i.http_status)
            .unwrap_or((self.code / 100) as u16)
    }

    /// The status line, e.g. "400 InvalidRequest".
    pub fn status_line(&self) -> String {
        catalog::lookup(self.code)
            .map(|i| i.status_line())
            .unwrap_or_else(|| format!("{} Error", self.http_status()))
    }

    /// The envelope sent to the client.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            status: self.status_line(),
            error_code: self.code,
            message: self.message.clone(),
            reference: self.reference.clone(),
            details: self.details.clone(),
        }
    }

    /// What the errors table stores for this error.
    pub fn record(&self) -> ErrorRecord {
        ErrorRecord {
            reference: self.reference.clone(),
            error_code: self.code,
            http_status: self.http_status(),
            status: self.status_line(),
            message: self.message.clone(),
            detail: self.detail.clone(),
            method: None,
            path: None,
            remote_addr: None,
            callback_id: None,
            refusal: None,
            occurred_at: Some(time::OffsetDateTime::now_utc()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.code, self.message, self.reference)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code()).json(self.envelope());
        // The recording middleware picks this up and stores it with the request's method and path.
        if !self.recorded {
            res.extensions_mut().insert(self.record());
        }
        res
    }
}

/// A signature refusal, stored in `refusals` beside its `errors` row.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RefusalRecord {
    /// Stable reason (its text is `refusals.reason`).
    pub reason: crate::outcome::RefusalReason,
    /// Key named in the authorization header.
    pub application_key: Option<String>,
    /// Request headers with the signature removed.
    pub headers: serde_json::Value,
    /// Hex SHA-256 of the body.
    pub body_sha256: String,
    /// Body length.
    pub body_bytes: usize,
    /// Why, in words: what matches or what is certainly right (signature refusals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<crate::signature::Explanation>,
    /// Report mode: the callback was processed and answered normally despite the failure.
    #[serde(default)]
    pub answered: bool,
    /// A summary row: the refusals of one peer and reason in one window beyond the ones recorded
    /// one by one (this row's other fields are one sample of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<RefusalSummary>,
}

/// Refusals of one peer and reason in one window that were counted instead of recorded one by one.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RefusalSummary {
    /// The peer address (`*` for peers past the tracked number).
    pub peer: String,
    /// How many refusals (this row's sample included).
    pub count: u64,
    /// The first of them.
    #[serde(with = "time::serde::rfc3339")]
    pub first_at: time::OffsetDateTime,
    /// The last of them.
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: time::OffsetDateTime,
    /// Length of the window, in seconds.
    pub window_secs: u64,
}

/// One row of the errors table (plus, for refusals, one of the refusals table).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ErrorRecord {
    /// Reference id.
    pub reference: String,
    /// Sinch error code.
    pub error_code: u32,
    /// HTTP status.
    pub http_status: u16,
    /// Status line.
    pub status: String,
    /// Message sent.
    pub message: String,
    /// Internal detail.
    pub detail: Option<serde_json::Value>,
    /// Request method.
    pub method: Option<String>,
    /// Request path.
    pub path: Option<String>,
    /// Peer address.
    pub remote_addr: Option<String>,
    /// Callback row, when the error belongs to a recorded callback.
    pub callback_id: Option<uuid::Uuid>,
    /// Refusal details, for signature refusals.
    pub refusal: Option<RefusalRecord>,
    /// When it happened (set when the record is made; the database's clock when absent).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub occurred_at: Option<time::OffsetDateTime>,
}

/// A storage error: 503 50300 when the database did not answer, 500 50000 otherwise.
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::from_db(&err)
    }
}
