//! Reads for the admin API. Callbacks and errors are written only by the shipper ([`crate::db::ship`]); nothing on the reply path calls this module,
//! except a bounded read of another instance's call state ([`crate::calls`]).

use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

/// Handle to the database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

/// A callback row as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredCallback {
    /// Row id.
    pub id: Uuid,
    /// Reference.
    pub reference: String,
    /// Arrival time.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Event type.
    pub event_type: String,
    /// Known event type.
    pub event_known: bool,
    /// Call id.
    pub callid: Option<String>,
    /// Application key.
    pub application_key: Option<String>,
    /// verified / unverified.
    pub signature: String,
    /// Original of a duplicate.
    pub duplicate_of: Option<Uuid>,
    /// HTTP status answered (None while in flight).
    pub http_status: Option<i16>,
    /// Reply sent.
    pub reply: Option<Value>,
    /// Source of the reply.
    pub reply_source: Option<String>,
    /// Why a fallback went out.
    pub fallback_reason: Option<String>,
    /// Gate report.
    pub validation: Option<Value>,
    /// Latency in µs.
    pub latency_us: Option<i64>,
    /// Parsed body.
    pub body: Option<Value>,
    /// Parse warnings.
    pub parse_warnings: Option<Value>,
    /// Flow id.
    pub flow_id: Option<i64>,
    /// Flow version.
    pub flow_version: Option<i32>,
    /// Flow node.
    pub flow_node: Option<String>,
    /// Route id.
    pub route_id: Option<i64>,
    /// passed, rejected or observed.
    pub gate_verdict: Option<String>,
    /// Sinch's report that it could not use this reply.
    pub rejected_by_sinch: Option<Value>,
}

/// A reply the gate passed and Sinch rejected (view `gate_misses`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateMiss {
    /// Reference of the callback whose reply it was.
    pub reference: String,
    /// When that callback arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Call id.
    pub callid: Option<String>,
    /// Event type.
    pub event_type: String,
    /// What produced the reply.
    pub reply_source: Option<String>,
    /// The reply Sinch rejected.
    pub reply: Option<Value>,
    /// The gate's report on it (valid, with any warnings).
    pub validation: Option<Value>,
    /// Sinch's report: kind, errorCode, message, reason, result, reportReference.
    pub rejected_by_sinch: Option<Value>,
    /// The report event as Sinch sent it (Notify or DICE body).
    pub report: Option<Value>,
}

/// An error row (with its refusal, if it was one).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
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
    pub method: Option<String>,
    /// Path.
    pub path: Option<String>,
    /// Peer.
    pub remote_addr: Option<String>,
    /// Callback row.
    pub callback_id: Option<Uuid>,
    /// Internal detail.
    pub detail: Option<Value>,
    /// Refusal details, for signature refusals.
    pub refusal: Option<Value>,
}

/// Filter of `GET /admin/events`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Event type.
    pub event_type: Option<String>,
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
     signature, duplicate_of, http_status, reply, reply_source, fallback_reason, validation, latency_us, body, \
     parse_warnings, flow_id, flow_version, flow_node, route_id, gate_verdict, rejected_by_sinch";

fn callback_from_row(r: &sqlx::postgres::PgRow) -> Result<StoredCallback, sqlx::Error> {
    Ok(StoredCallback {
        id: r.try_get("id")?,
        reference: r.try_get("reference")?,
        received_at: r.try_get("received_at")?,
        event_type: r.try_get("event_type")?,
        event_known: r.try_get("event_known")?,
        callid: r.try_get("callid")?,
        application_key: r.try_get("application_key")?,
        signature: r.try_get("signature")?,
        duplicate_of: r.try_get("duplicate_of")?,
        http_status: r.try_get("http_status")?,
        reply: r.try_get("reply")?,
        reply_source: r.try_get("reply_source")?,
        fallback_reason: r.try_get("fallback_reason")?,
        validation: r.try_get("validation")?,
        latency_us: r.try_get("latency_us")?,
        body: r.try_get("body")?,
        parse_warnings: r.try_get("parse_warnings")?,
        flow_id: r.try_get("flow_id")?,
        flow_version: r.try_get("flow_version")?,
        flow_node: r.try_get("flow_node")?,
        route_id: r.try_get("route_id")?,
        gate_verdict: r.try_get("gate_verdict")?,
        rejected_by_sinch: r.try_get("rejected_by_sinch")?,
    })
}

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
        let rows = sqlx::query(
            "SELECT m.reference, m.received_at, m.callid, m.event_type, m.reply_source, m.reply, m.validation, \
             m.rejected_by_sinch, r.body AS report FROM gate_misses m \
             LEFT JOIN callbacks r ON r.id = (m.rejected_by_sinch->>'reportId')::uuid \
             ORDER BY m.received_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GateMiss {
                    reference: r.try_get("reference")?,
                    received_at: r.try_get("received_at")?,
                    callid: r.try_get("callid")?,
                    event_type: r.try_get("event_type")?,
                    reply_source: r.try_get("reply_source")?,
                    reply: r.try_get("reply")?,
                    validation: r.try_get("validation")?,
                    rejected_by_sinch: r.try_get("rejected_by_sinch")?,
                    report: r.try_get("report")?,
                })
            })
            .collect()
    }

    /// Every callback of one call, in arrival order.
    pub async fn call_timeline(&self, callid: &str) -> Result<Vec<StoredCallback>, sqlx::Error> {
        let sql = format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE callid = $1 ORDER BY received_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(callid)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(callback_from_row).collect()
    }

    /// Rejected replies of one call.
    pub async fn rejected_replies_for_call(&self, callid: &str) -> Result<Vec<Value>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT jsonb_build_object('callbackId', r.callback_id, 'reference', r.reference, 'eventType', r.event_type, \
             'source', r.source, 'reply', r.reply, 'rawReply', r.raw_reply, 'report', r.report, \
             'createdAt', r.created_at) AS j \
             FROM rejected_replies r JOIN callbacks c ON c.id = r.callback_id WHERE c.callid = $1 ORDER BY r.created_at",
        )
        .bind(callid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get::<Value, _>("j")).collect()
    }

    /// Callbacks, newest first.
    pub async fn list_events(&self, f: &EventFilter) -> Result<Vec<StoredCallback>, sqlx::Error> {
        let sql = format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks \
             WHERE ($1::text IS NULL OR event_type = $1) AND ($2::text IS NULL OR callid = $2) \
             AND ($3::timestamptz IS NULL OR received_at >= $3) AND ($4::uuid IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&f.event_type)
            .bind(&f.callid)
            .bind(f.since)
            .bind(f.before)
            .bind(f.limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(callback_from_row).collect()
    }

    /// One error by reference.
    pub async fn get_error(&self, reference: &str) -> Result<Option<StoredError>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT e.reference, e.occurred_at, e.error_code, e.http_status, e.status, e.message, e.method, e.path, \
             e.remote_addr, e.callback_id, e.detail, \
             CASE WHEN r.reference IS NULL THEN NULL ELSE jsonb_build_object('reason', r.reason, \
               'applicationKey', r.application_key, 'headers', r.headers, 'bodySha256', r.body_sha256, \
               'bodyBytes', r.body_bytes) END AS refusal \
             FROM errors e LEFT JOIN refusals r ON r.reference = e.reference WHERE e.reference = $1",
        )
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(StoredError {
            reference: r.try_get("reference")?,
            occurred_at: r.try_get("occurred_at")?,
            error_code: r.try_get("error_code")?,
            http_status: r.try_get("http_status")?,
            status: r.try_get("status")?,
            message: r.try_get("message")?,
            method: r.try_get("method")?,
            path: r.try_get("path")?,
            remote_addr: r.try_get("remote_addr")?,
            callback_id: r.try_get("callback_id")?,
            detail: r.try_get("detail")?,
            refusal: r.try_get("refusal")?,
        }))
    }
}
