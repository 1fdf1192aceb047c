//! Reads for the admin API. Callbacks and errors are written only by the shipper (`recording::ship`); nothing on the reply path calls this module,
//! except a bounded read of another instance's call state (`calls`).

use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::refusals::SummaryColumns;
use crate::events::EventKind;
use crate::outcome::{FallbackReason, GateVerdict, ReplySource, SignatureState, Stored};

/// Handle to the database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

/// A callback row as the admin API shows it. The vocabulary columns read as their types, text
/// written by another version kept as [`Stored::Other`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
#[schema(description = "A recorded callback.")]
pub struct StoredCallback {
    /// Row id (UUIDv7, time-ordered).
    pub id: Uuid,
    /// Reference.
    pub reference: String,
    /// Arrival time.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// ice, ace, dice, pie, notify, or an unknown type as received.
    #[schema(value_type = String)]
    pub event_type: EventKind,
    /// Whether the event type is one svamlgate knows.
    pub event_known: bool,
    /// Call id.
    #[schema(required = true)]
    pub callid: Option<String>,
    /// Application key.
    #[schema(required = true)]
    pub application_key: Option<String>,
    /// Whether the signature was verified.
    #[schema(value_type = crate::outcome::SignatureState)]
    pub signature: Stored<SignatureState>,
    /// For a replay: the original callback.
    #[schema(required = true)]
    pub duplicate_of: Option<Uuid>,
    /// Status answered; null while in flight.
    #[schema(required = true)]
    pub http_status: Option<i16>,
    /// The reply sent (SVAML), or null.
    #[schema(required = true)]
    pub reply: Option<Value>,
    /// Where the reply came from.
    #[schema(required = true, value_type = Option<crate::outcome::ReplySource>)]
    pub reply_source: Option<Stored<ReplySource>>,
    /// Why a fallback was sent.
    #[schema(required = true, value_type = Option<crate::outcome::FallbackReason>)]
    pub fallback_reason: Option<Stored<FallbackReason>>,
    /// The gate's report of the candidate reply (a `Report`), or null.
    #[schema(required = true)]
    pub validation: Option<Value>,
    /// Time to answer, in microseconds.
    #[schema(required = true)]
    pub latency_us: Option<i64>,
    /// The parsed event.
    #[schema(required = true)]
    pub body: Option<Value>,
    /// Warnings from parsing the event.
    #[schema(required = true)]
    pub parse_warnings: Option<Value>,
    /// Flow id.
    #[schema(required = true)]
    pub flow_id: Option<i64>,
    /// Flow version.
    #[schema(required = true)]
    pub flow_version: Option<i32>,
    /// Flow node.
    #[schema(required = true)]
    pub flow_node: Option<String>,
    /// Route id.
    #[schema(required = true)]
    pub route_id: Option<i64>,
    /// What the gate said of the decided reply: passed, rejected (the fallback went out instead),
    /// observed (invalid, sent anyway in observe mode).
    #[schema(value_type = Option<crate::outcome::GateVerdict>)]
    pub gate_verdict: Option<Stored<GateVerdict>>,
    /// Set when Sinch reported it could not use this reply: kind, errorCode, message, reason,
    /// result, reportId, reportReference.
    pub rejected_by_sinch: Option<Value>,
}

/// A reply the gate passed and Sinch rejected (view `gate_misses`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct GateMiss {
    /// Reference of the callback whose reply Sinch rejected.
    pub reference: String,
    /// When that callback arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Call id.
    pub callid: Option<String>,
    /// Event type.
    #[schema(value_type = String)]
    pub event_type: EventKind,
    /// What produced the reply.
    #[schema(value_type = Option<crate::outcome::ReplySource>)]
    pub reply_source: Option<Stored<ReplySource>>,
    /// The reply Sinch rejected.
    pub reply: Option<Value>,
    /// The gate's report on it (valid, with any warnings).
    pub validation: Option<Value>,
    /// Sinch's report: kind (callingerror, callbackerror), errorCode, message, reason, result,
    /// reportId, reportReference.
    pub rejected_by_sinch: Option<Value>,
    /// The report event as Sinch sent it (Notify or DICE body).
    pub report: Option<Value>,
}

/// An error row (with its refusal, if it was one).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
#[schema(description = "A recorded error.")]
pub struct StoredError {
    /// Reference.
    pub reference: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// Sinch code.
    pub error_code: i32,
    /// HTTP status.
    pub http_status: i16,
    /// Status line.
    pub status: String,
    /// Message sent.
    pub message: String,
    /// Method.
    #[schema(required = true)]
    pub method: Option<String>,
    /// Path.
    #[schema(required = true)]
    pub path: Option<String>,
    /// Peer.
    #[schema(required = true)]
    pub remote_addr: Option<String>,
    /// Callback row.
    #[schema(required = true)]
    pub callback_id: Option<Uuid>,
    /// Internal detail (never sent with the envelope itself).
    #[schema(required = true)]
    pub detail: Option<Value>,
    /// Refusal details, for signature refusals (read from `refusals` by a second query).
    #[schema(required = true)]
    #[sqlx(skip)]
    pub refusal: Option<Refusal>,
}

/// A refused callback signature: the `refusals` row of an error.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
#[schema(description = "A refused callback signature.")]
pub struct Refusal {
    /// Why the signature was refused, e.g. `signature_mismatch`.
    pub reason: String,
    /// Key named in the authorization header.
    #[schema(required = true)]
    pub application_key: Option<String>,
    /// Request headers, signature removed.
    #[schema(value_type = Object)]
    pub headers: Value,
    /// Hex SHA-256 of the body.
    pub body_sha256: String,
    /// Body length.
    pub body_bytes: i32,
    /// Why, in words (see `crate::signature::Explanation`), when the reason has an explanation.
    #[schema(required = true, value_type = Option<crate::signature::Explanation>)]
    pub explanation: Option<Value>,
    /// Report mode: the callback was answered normally despite the failure.
    pub answered: bool,
    /// Set on a summary row: the refusals of one peer and reason in one window past the ones
    /// recorded one by one.
    #[schema(required = true, value_type = Option<crate::db::refusals::SummaryDoc>)]
    #[sqlx(flatten)]
    pub summary: SummaryColumns,
}

/// A reply the gate stopped (the fallback went out instead): a row of `rejected_replies`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
#[schema(description = "A reply the gate stopped (the fallback went out instead).")]
pub struct RejectedReply {
    /// The callback the reply answered.
    pub callback_id: Uuid,
    /// Reference of the error recorded for the rejection.
    pub reference: String,
    /// Event type.
    #[schema(value_type = String)]
    pub event_type: EventKind,
    /// Reply source that produced the rejected reply.
    #[schema(value_type = crate::outcome::ReplySource)]
    pub source: Stored<ReplySource>,
    /// The rejected reply as JSON, if it was JSON.
    #[schema(required = true)]
    pub reply: Option<Value>,
    /// The rejected reply as received, when it was not JSON.
    #[schema(required = true)]
    pub raw_reply: Option<String>,
    /// The gate's report (a `Report`).
    #[schema(value_type = crate::svaml::Report)]
    pub report: Value,
    /// When it was stopped.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Filter of `GET /admin/events`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Event type.
    pub event_type: Option<EventKind>,
    /// Call id.
    pub callid: Option<String>,
    /// Received at or after.
    pub since: Option<OffsetDateTime>,
    /// Only rows older than this id (paging cursor).
    pub before: Option<Uuid>,
    /// Page size.
    pub limit: i64,
}

const CALLBACK_COLUMNS: &str = "id, reference, received_at, event_type, event_known, callid, application_key, \
     signature, duplicate_of, http_status, callbacks.reply AS reply, reply_source, fallback_reason, callbacks.validation AS validation, latency_us, callbacks.body AS body, \
     parse_warnings, flow_id, flow_version, flow_node, route_id, gate_verdict, rejected_by_sinch";

impl Store {
    /// Wraps a pool.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool (for health checks and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `SELECT 1`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Replies the gate passed and Sinch rejected, newest first.
    pub async fn gate_misses(&self, limit: i64) -> Result<Vec<GateMiss>, sqlx::Error> {
        sqlx::query_as(
            "SELECT m.reference, m.received_at, m.callid, m.event_type, m.reply_source, m.reply, m.validation, \
             m.rejected_by_sinch, r.body AS report FROM gate_misses m \
             LEFT JOIN callbacks r ON r.id = (m.rejected_by_sinch->>'reportId')::uuid \
             ORDER BY m.received_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Every callback of one call, in arrival order.
    pub async fn call_timeline(&self, callid: &str) -> Result<Vec<StoredCallback>, sqlx::Error> {
        let sql = format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE callid = $1 ORDER BY received_at, id"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(callid)
            .fetch_all(&self.pool)
            .await
    }

    /// Rejected replies of one call, in the order they were stopped.
    pub async fn rejected_replies_for_call(
        &self,
        callid: &str,
    ) -> Result<Vec<RejectedReply>, sqlx::Error> {
        sqlx::query_as(
            "SELECT r.callback_id, r.reference, r.event_type, r.source, r.reply, r.raw_reply, r.report, \
             r.created_at FROM rejected_replies r JOIN callbacks c ON c.id = r.callback_id \
             WHERE c.callid = $1 ORDER BY r.created_at",
        )
        .bind(callid)
        .fetch_all(&self.pool)
        .await
    }

    /// Callbacks, newest first.
    pub async fn list_events(&self, f: &EventFilter) -> Result<Vec<StoredCallback>, sqlx::Error> {
        let sql = format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks \
             WHERE ($1::text IS NULL OR event_type = $1) AND ($2::text IS NULL OR callid = $2) \
             AND ($3::timestamptz IS NULL OR received_at >= $3) AND ($4::uuid IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&f.event_type)
            .bind(&f.callid)
            .bind(f.since)
            .bind(f.before)
            .bind(f.limit)
            .fetch_all(&self.pool)
            .await
    }

    /// One error by reference, with its refusal when it was one (a second query).
    pub async fn get_error(&self, reference: &str) -> Result<Option<StoredError>, sqlx::Error> {
        let error: Option<StoredError> = sqlx::query_as(
            "SELECT reference, occurred_at, error_code, http_status, status, message, method, path, \
             remote_addr, callback_id, detail FROM errors WHERE reference = $1",
        )
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?;
        let Some(mut error) = error else {
            return Ok(None);
        };
        error.refusal = sqlx::query_as(
            "SELECT reason, application_key, headers, body_sha256, body_bytes, explanation, answered, \
             summary_count, first_at, last_at, peer FROM refusals WHERE reference = $1",
        )
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?;
        Ok(Some(error))
    }
}
