//! Storage of requests to Sinch's Calling API (`outbound_requests`, `outbound_attempts`, see
//! migration 0005), the calls-in-progress count, and the reads the admin API lists (the
//! diagnosis reads its own typed rows, in `diagnosis::facts`).
//!
//! [`OutboundStore`] only reads. Writing takes an `OutboundWriter` (`recording::outbound`) (`OutboundStore::journaled` in `recording::outbound`):
//! every request, attempt and outcome goes through the journal and the shipper
//! (`recording::ship` holds the SQL that writes them); the one direct write is a callout's
//! admission, which must count and insert under one lock ([`OutboundStore::admit_callout_with`]).

use std::time::Duration;

use serde_json::Value;
use sqlx::{PgExecutor, PgPool, Row};

use crate::outcome::{AttemptDecision, LocalCheck, RequestOutcome};
use time::OffsetDateTime;
use uuid::Uuid;

/// Reads of the outbound tables.
#[derive(Clone, Debug)]
pub struct OutboundStore {
    pool: PgPool,
}

/// A request as first recorded.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewOutbound {
    /// Row id (UUIDv7).
    pub id: Uuid,
    /// svamlgate's reference.
    pub reference: String,
    /// Operation name.
    #[serde(deserialize_with = "crate::db::static_str::deserialize")]
    pub operation: &'static str,
    /// HTTP method.
    #[serde(deserialize_with = "crate::db::static_str::deserialize")]
    pub method: &'static str,
    /// API path.
    pub path: String,
    /// JSON body.
    pub body: Option<Value>,
    /// Call id, when known.
    pub callid: Option<String>,
    /// Conference id.
    pub conference_id: Option<String>,
    /// Call leg.
    pub call_leg: Option<String>,
    /// Callout method.
    #[serde(deserialize_with = "crate::db::static_str::option")]
    pub callout_method: Option<&'static str>,
    /// Callout destination.
    pub destination: Option<String>,
    /// Whether a DICE will come.
    pub dice_expected: Option<bool>,
    /// Result of the local checks.
    pub local_check: LocalCheck,
    /// Details of a failed check.
    pub local_report: Option<Value>,
    /// Initial outcome: `pending` or `refused_locally`.
    pub outcome: RequestOutcome,
    /// Idempotency-Key of a callout.
    pub idempotency_key: Option<String>,
}

/// One attempt.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AttemptRecord {
    /// The request row.
    pub request_id: Uuid,
    /// 1, 2, 3, …
    pub attempt: i16,
    /// Start of the attempt.
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    /// Duration in µs.
    pub latency_us: i64,
    /// signed or basic.
    #[serde(deserialize_with = "crate::db::static_str::deserialize")]
    pub auth_scheme: &'static str,
    /// x-timestamp sent.
    pub x_timestamp: Option<String>,
    /// HTTP status.
    pub http_status: Option<i16>,
    /// Answer text.
    pub response_body: Option<String>,
    /// Retry-After in ms.
    pub retry_after_ms: Option<i64>,
    /// connect, timeout, io, too_large.
    #[serde(deserialize_with = "crate::db::static_str::option")]
    pub failure: Option<&'static str>,
    /// Library message.
    pub failure_detail: Option<String>,
    /// errorCode.
    pub error_code: Option<i32>,
    /// status.
    pub error_status: Option<String>,
    /// message.
    pub error_message: Option<String>,
    /// reference.
    pub error_reference: Option<String>,
    /// Catalog reading.
    pub classified_code: Option<i32>,
    /// Disagreement flag.
    pub code_mismatch: Option<bool>,
    /// What followed.
    pub decision: AttemptDecision,
}

/// How a request ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FinalRecord {
    /// success, sinch_error, no_answer, unknown.
    pub outcome: RequestOutcome,
    /// Last HTTP status.
    pub http_status: Option<i16>,
    /// Attempts made.
    pub attempts: i16,
    /// Total time in µs.
    pub latency_us: i64,
    /// JSON answer.
    pub response_body: Option<Value>,
    /// Call id learnt from the answer.
    pub callid: Option<String>,
    /// errorCode.
    pub error_code: Option<i32>,
    /// status.
    pub error_status: Option<String>,
    /// message.
    pub error_message: Option<String>,
    /// reference.
    pub error_reference: Option<String>,
    /// Last failure.
    #[serde(deserialize_with = "crate::db::static_str::option")]
    pub failure: Option<&'static str>,
}

/// The calls-in-progress cap and how long a call counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// SINCH_MAX_CALLS_IN_PROGRESS.
    pub max_in_progress: u32,
    /// SINCH_CALL_MAX_AGE_SECS.
    pub max_age: Duration,
    /// SINCH_UNTRACKED_CALL_SECS.
    pub untracked: Duration,
}

/// Result of admitting a callout.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Recorded as pending; this many calls were in progress before it.
    Admitted(i64),
    /// Refused and recorded as such; this many calls are in progress.
    Full(i64),
    /// A callout with the same Idempotency-Key is pending, placed or of unknown outcome:
    /// nothing was recorded or sent.
    Duplicate(EarlierCallout),
}

/// The callout an Idempotency-Key already names.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EarlierCallout {
    /// Its reference.
    pub reference: String,
    /// pending, success or unknown.
    pub outcome: RequestOutcome,
    /// Its HTTP status from Sinch.
    pub http_status: Option<i16>,
    /// Sinch's answer.
    pub response_body: Option<Value>,
    /// Its call id.
    pub callid: Option<String>,
    /// Attempts it made.
    pub attempts: i16,
}

/// Filter of `GET /admin/sinch-errors`.
#[derive(Debug, Clone, Default)]
pub struct SinchErrorFilter {
    /// errorCode as sent, or the catalog reading.
    pub code: Option<i32>,
    /// Sent at or after.
    pub since: Option<OffsetDateTime>,
    /// Sinch's reference, or svamlgate's.
    pub reference: Option<String>,
    /// Page size.
    pub limit: i64,
}

const INSERT: &str = "INSERT INTO outbound_requests (id, reference, operation, method, path, body, callid, \
     conference_id, call_leg, callout_method, destination, dice_expected, local_check, local_report, outcome, \
     finished_at, idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
     $14, $15, CASE WHEN $15 = 'refused_locally' THEN $17 END, $16, $17) ON CONFLICT DO NOTHING";

/// How many calls are in progress: the rows of `open_calls_within` (migration 0014, the one
/// definition; the view `open_calls` is the same function without windows), `$1` =
/// SINCH_CALL_MAX_AGE_SECS, `$2` = SINCH_UNTRACKED_CALL_SECS (the window of calls without a DICE
/// to come). The function is inlined by PostgreSQL, so the windows use the time indexes.
const COUNT_OPEN: &str = "SELECT count(*) AS n \
     FROM open_calls_within(make_interval(secs => $1), make_interval(secs => $2))";

/// The call ids of the calls in progress within `$1` (whether a DICE is expected or not);
/// callouts Sinch gave no call id appear as `pending:` and their reference.
const OPEN_CALLIDS: &str = "SELECT callid \
     FROM open_calls_within(make_interval(secs => $1), make_interval(secs => $1))";

/// The JSON of one request with its attempts (`r` = outbound_requests).
const REQUEST_JSON: &str = "jsonb_build_object(
    'reference', r.reference, 'createdAt', r.created_at, 'finishedAt', r.finished_at,
    'operation', r.operation, 'method', r.method, 'path', r.path, 'body', r.body, 'callid', r.callid,
    'conferenceId', r.conference_id, 'callLeg', r.call_leg, 'calloutMethod', r.callout_method,
    'destination', r.destination, 'diceExpected', r.dice_expected, 'localCheck', r.local_check,
    'localReport', r.local_report, 'outcome', r.outcome, 'httpStatus', r.http_status,
    'attemptCount', r.attempts, 'latencyUs', r.latency_us, 'response', r.response_body,
    'errorCode', r.error_code, 'errorStatus', r.error_status, 'errorMessage', r.error_message,
    'errorReference', r.error_reference, 'failure', r.failure,
    'attempts', coalesce((SELECT jsonb_agg(jsonb_build_object(
        'attempt', a.attempt, 'sentAt', a.sent_at, 'latencyUs', a.latency_us, 'authScheme', a.auth_scheme,
        'httpStatus', a.http_status, 'retryAfterMs', a.retry_after_ms, 'failure', a.failure,
        'failureDetail', a.failure_detail, 'errorCode', a.error_code, 'errorStatus', a.error_status,
        'errorMessage', a.error_message, 'errorReference', a.error_reference,
        'classifiedCode', a.classified_code, 'codeMismatch', a.code_mismatch, 'decision', a.decision,
        'responseBody', a.response_body) ORDER BY a.attempt)
      FROM outbound_attempts a WHERE a.request_id = r.id), '[]'::jsonb))";

/// The JSON of a request, as `REQUEST_JSON` builds it (described here for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[schema(
    rename_all = "camelCase",
    description = "A request svamlgate sent (or refused to send) to Sinch's Calling API, with every attempt."
)]
pub struct OutboundRequest {
    /// svamlgate's reference (`GET /admin/calls/{callid}/diagnosis` accepts it).
    pub reference: String,
    /// When it was recorded.
    pub created_at: OffsetDateTime,
    /// When it ended; null while pending.
    pub finished_at: Option<OffsetDateTime>,
    /// The Calling API operation.
    #[schema(value_type = crate::outcome::Operation)]
    pub operation: String,
    /// HTTP method.
    pub method: String,
    /// API path.
    pub path: String,
    /// JSON body sent.
    pub body: Option<Value>,
    /// Call id, when known.
    pub callid: Option<String>,
    /// Conference id.
    pub conference_id: Option<String>,
    /// Call leg.
    pub call_leg: Option<String>,
    /// Callout method.
    pub callout_method: Option<String>,
    /// Callout destination (masked).
    pub destination: Option<String>,
    /// Whether a DICE will come.
    pub dice_expected: Option<bool>,
    /// Result of the local checks.
    #[schema(schema_with = local_checks)]
    pub local_check: String,
    /// Details of a failed check.
    pub local_report: Option<Value>,
    /// How the request ended.
    #[schema(schema_with = outcomes)]
    pub outcome: String,
    /// Last HTTP status.
    pub http_status: Option<i16>,
    /// Attempts made.
    pub attempt_count: i16,
    /// Total time in µs.
    pub latency_us: Option<i64>,
    /// Sinch's JSON answer.
    pub response: Option<Value>,
    /// Sinch's errorCode.
    pub error_code: Option<i32>,
    /// Sinch's status.
    pub error_status: Option<String>,
    /// Sinch's message.
    pub error_message: Option<String>,
    /// Sinch's reference.
    pub error_reference: Option<String>,
    /// Last failure.
    pub failure: Option<String>,
    /// Every HTTP exchange, in order.
    pub attempts: Vec<OutboundAttempt>,
}

/// One HTTP exchange with Sinch, as `REQUEST_JSON` builds it (described for the OpenAPI
/// document).
#[derive(utoipa::ToSchema)]
#[schema(
    rename_all = "camelCase",
    description = "One HTTP exchange with Sinch."
)]
pub struct OutboundAttempt {
    /// 1, 2, 3, …
    pub attempt: i16,
    /// Start of the attempt.
    pub sent_at: OffsetDateTime,
    /// Duration in µs.
    pub latency_us: i64,
    /// How the request was authenticated.
    #[schema(schema_with = auth_schemes)]
    pub auth_scheme: String,
    /// HTTP status.
    pub http_status: Option<i16>,
    /// Retry-After in ms.
    pub retry_after_ms: Option<i64>,
    /// connect, timeout, io or too_large; null when Sinch answered.
    pub failure: Option<String>,
    /// Library message.
    pub failure_detail: Option<String>,
    /// Sinch's errorCode.
    pub error_code: Option<i32>,
    /// Sinch's status.
    pub error_status: Option<String>,
    /// Sinch's message.
    pub error_message: Option<String>,
    /// Sinch's reference.
    pub error_reference: Option<String>,
    /// The catalog's reading of the answer.
    pub classified_code: Option<i32>,
    /// Whether Sinch's code and the catalog's reading disagree.
    pub code_mismatch: Option<bool>,
    /// What followed the attempt.
    #[schema(schema_with = decisions)]
    pub decision: String,
    /// Answer text.
    pub response_body: Option<String>,
}

/// An error answer from Sinch, as [`OutboundStore::sinch_errors`] builds it (described for the
/// OpenAPI document).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase", description = "An error answer from Sinch.")]
pub struct SinchErrorItem {
    /// When the attempt was sent.
    pub sent_at: OffsetDateTime,
    /// svamlgate's reference.
    pub reference: String,
    /// The Calling API operation.
    #[schema(value_type = crate::outcome::Operation)]
    pub operation: String,
    /// HTTP method.
    pub method: String,
    /// API path.
    pub path: String,
    /// Call id, when known.
    pub callid: Option<String>,
    /// Which attempt.
    pub attempt: i16,
    /// HTTP status Sinch answered.
    pub http_status: i16,
    /// Sinch's errorCode.
    pub error_code: Option<i32>,
    /// The catalog's reading of the answer.
    pub classified_code: Option<i32>,
    /// Sinch's status.
    pub status: Option<String>,
    /// Sinch's message.
    pub message: Option<String>,
    /// Sinch's reference (for Sinch support).
    pub sinch_reference: Option<String>,
    /// Whether Sinch's code and the catalog's reading disagree.
    pub code_mismatch: Option<bool>,
    /// What followed the attempt.
    #[schema(schema_with = decisions)]
    pub decision: String,
}

fn local_checks() -> utoipa::openapi::Object {
    crate::outcome::text_schema(LocalCheck::ALL.iter().map(|v| v.as_str()))
}

fn outcomes() -> utoipa::openapi::Object {
    crate::outcome::text_schema(RequestOutcome::ALL.iter().map(|v| v.as_str()))
}

fn auth_schemes() -> utoipa::openapi::Object {
    crate::outcome::text_schema(["signed", "basic"])
}

fn decisions() -> utoipa::openapi::Object {
    crate::outcome::text_schema(AttemptDecision::ALL.iter().map(|v| v.as_str()))
}

/// Writes a request row as first recorded (refused locally: finished when created), once: a
/// request already there is left as it is. The one statement for it, used by the callout
/// admission and by the shipper.
pub async fn insert_request<'e>(
    exec: impl PgExecutor<'e>,
    r: &NewOutbound,
    created_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT)
        .bind(r.id)
        .bind(&r.reference)
        .bind(r.operation)
        .bind(r.method)
        .bind(&r.path)
        .bind(&r.body)
        .bind(&r.callid)
        .bind(&r.conference_id)
        .bind(&r.call_leg)
        .bind(r.callout_method)
        .bind(&r.destination)
        .bind(r.dice_expected)
        .bind(r.local_check)
        .bind(&r.local_report)
        .bind(r.outcome)
        .bind(&r.idempotency_key)
        .bind(created_at)
        .execute(exec)
        .await
        .map(|_| ())
}

async fn count_open<'e>(exec: impl PgExecutor<'e>, l: &CallLimits) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(COUNT_OPEN)
        .bind(l.max_age.as_secs_f64())
        .bind(l.untracked.min(l.max_age).as_secs_f64())
        .fetch_one(exec)
        .await?;
    row.try_get("n")
}

/// The call ids of the calls in progress within `max_age` (whether a DICE is expected or not),
/// callouts Sinch gave no call id as `pending:` and their reference: retention keeps their
/// records whole.
pub async fn open_callids<'e>(
    exec: impl PgExecutor<'e>,
    max_age: Duration,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(OPEN_CALLIDS)
        .bind(max_age.as_secs_f64())
        .fetch_all(exec)
        .await
}

/// How many of `callids` (calls in progress known to this instance) have no ICE or ACE in
/// PostgreSQL yet (their records are still in the journal).
pub async fn count_unrecorded<'e>(
    exec: impl PgExecutor<'e>,
    callids: &[String],
) -> Result<i64, sqlx::Error> {
    if callids.is_empty() {
        return Ok(0);
    }
    let row = sqlx::query(
        "SELECT count(*) AS n FROM unnest($1::text[]) AS l(callid) WHERE NOT EXISTS \
         (SELECT 1 FROM callbacks c WHERE c.callid = l.callid AND c.event_type IN ('ice', 'ace'))",
    )
    .bind(callids)
    .fetch_one(exec)
    .await?;
    row.try_get("n")
}

/// Advisory-lock key serialising callout admission (any constant; "svamlgat" in ASCII).
const ADMISSION_LOCK: i64 = 0x7376_616d_6c67_6174;

impl OutboundStore {
    /// Wraps a pool.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool these reads use.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Calls in progress now.
    pub async fn count_in_progress(&self, limits: &CallLimits) -> Result<i64, sqlx::Error> {
        count_open(&self.pool, limits).await
    }

    /// Calls in progress now, with those of `local_open` PostgreSQL has no record of yet.
    pub async fn count_in_progress_with(
        &self,
        limits: &CallLimits,
        local_open: &[String],
    ) -> Result<i64, sqlx::Error> {
        Ok(
            count_open(&self.pool, limits).await?
                + count_unrecorded(&self.pool, local_open).await?,
        )
    }

    /// Requests concerning one call (its callout, its control), oldest first, with attempts.
    pub async fn requests_for_call(&self, callid: &str) -> Result<Vec<Value>, sqlx::Error> {
        let sql = format!(
            "SELECT {REQUEST_JSON} AS j FROM outbound_requests r WHERE r.callid = $1 ORDER BY r.created_at, r.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(callid)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| r.try_get::<Value, _>("j")).collect()
    }

    /// One request by svamlgate's reference, with attempts.
    pub async fn request_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<Value>, sqlx::Error> {
        let sql =
            format!("SELECT {REQUEST_JSON} AS j FROM outbound_requests r WHERE r.reference = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get::<Value, _>("j")).transpose()
    }

    /// Error answers from Sinch, newest first.
    pub async fn sinch_errors(&self, f: &SinchErrorFilter) -> Result<Vec<Value>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT jsonb_build_object('sentAt', a.sent_at, 'reference', r.reference, 'operation', r.operation, \
             'method', r.method, 'path', r.path, 'callid', r.callid, 'attempt', a.attempt, \
             'httpStatus', a.http_status, 'errorCode', a.error_code, 'classifiedCode', a.classified_code, \
             'status', a.error_status, 'message', a.error_message, 'sinchReference', a.error_reference, \
             'codeMismatch', a.code_mismatch, 'decision', a.decision) AS j \
             FROM outbound_attempts a JOIN outbound_requests r ON r.id = a.request_id \
             WHERE a.http_status >= 400 \
             AND ($1::int IS NULL OR a.error_code = $1 OR a.classified_code = $1) \
             AND ($2::timestamptz IS NULL OR a.sent_at >= $2) \
             AND ($3::text IS NULL OR a.error_reference = $3 OR r.reference = $3) \
             ORDER BY a.sent_at DESC, a.id DESC LIMIT $4",
        )
        .bind(f.code)
        .bind(f.since)
        .bind(&f.reference)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get::<Value, _>("j")).collect()
    }
}

/// The one direct write of the outbound tables (the rest goes through the journal:
/// `recording::outbound::OutboundWriter`): a callout's admission.
impl OutboundStore {
    /// Counts calls in progress (with those of `local_open`, this instance's calls PostgreSQL has
    /// no record of yet) and records the callout as pending if one more is allowed, or as refused
    /// if not, in one transaction serialised with other admissions (so that two callouts at once
    /// cannot both take the last place).
    pub async fn admit_callout_with(
        &self,
        r: &NewOutbound,
        limits: &CallLimits,
        local_open: &[String],
    ) -> Result<Admission, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ADMISSION_LOCK)
            .execute(&mut *tx)
            .await?;
        if let Some(key) = &r.idempotency_key {
            let earlier: Option<EarlierCallout> = sqlx::query_as(
                "SELECT reference, outcome, http_status, response_body, callid, attempts FROM outbound_requests \
                 WHERE idempotency_key = $1 AND outcome IN ('pending', 'success', 'unknown')",
            )
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(found) = earlier {
                tx.commit().await?;
                return Ok(Admission::Duplicate(found));
            }
        }
        let n =
            count_open(&mut *tx, limits).await? + count_unrecorded(&mut *tx, local_open).await?;
        let admission = if n >= i64::from(limits.max_in_progress) {
            let mut refused = r.clone();
            refused.outcome = RequestOutcome::RefusedLocally;
            refused.local_check = LocalCheck::CapReached;
            refused.local_report = Some(serde_json::json!({
                "inProgress": n, "limit": limits.max_in_progress
            }));
            insert_request(&mut *tx, &refused, OffsetDateTime::now_utc()).await?;
            Admission::Full(n)
        } else {
            insert_request(&mut *tx, r, OffsetDateTime::now_utc()).await?;
            Admission::Admitted(n)
        };
        tx.commit().await?;
        Ok(admission)
    }
}
