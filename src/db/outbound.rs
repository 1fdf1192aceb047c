//! Storage of requests to Sinch's Calling API (`outbound_requests`, `outbound_attempts`, see
//! migration 0005), the calls-in-progress count, and the reads of them: typed rows
//! ([`OutboundRequest`] with its [`OutboundAttempt`]s, [`SinchErrorItem`]) that the admin API, the
//! console and the diagnosis (`diagnosis::facts`) share. The vocabulary columns read as their
//! types from [`crate::outcome`] (text another version wrote kept as [`Stored::Other`]).
//!
//! [`OutboundStore`] only reads. Writing takes an `OutboundWriter` (`recording::outbound`):
//! every request, attempt and outcome goes through the journal and the shipper
//! (`recording::ship` holds the SQL that writes them); the one direct write is a callout's
//! admission, which must count and insert under one lock ([`OutboundStore::admit_callout_with`]).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::outcome::{
    AttemptDecision, AttemptFailure, AuthScheme, CalloutMethod, HttpMethod, LocalCheck, Operation,
    RequestOutcome, Stored,
};

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
    /// The Calling API operation.
    pub operation: Operation,
    /// HTTP method (the operation's).
    pub method: HttpMethod,
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
    pub callout_method: Option<CalloutMethod>,
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
    pub auth_scheme: AuthScheme,
    /// x-timestamp sent.
    pub x_timestamp: Option<String>,
    /// HTTP status.
    pub http_status: Option<i16>,
    /// Answer text.
    pub response_body: Option<String>,
    /// Retry-After in ms.
    pub retry_after_ms: Option<i64>,
    /// connect, timeout, io, too_large.
    pub failure: Option<AttemptFailure>,
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
    pub failure: Option<AttemptFailure>,
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

/// The columns of `outbound_requests` an [`OutboundRequest`] reads (`attempts` is its count,
/// `attemptCount` in the JSON; `response_body` is `response`).
const REQUEST_COLUMNS: &str = "id, reference, created_at, finished_at, operation, method, path, body, \
     callid, conference_id, call_leg, callout_method, destination, dice_expected, local_check, \
     local_report, outcome, http_status, attempts AS attempt_count, latency_us, response_body AS response, \
     error_code, error_status, error_message, error_reference, failure";

/// A request svamlgate sent (or refused to send) to Sinch's Calling API, with every attempt: a row
/// of `outbound_requests`, its attempts read by a second query. The vocabulary columns read as
/// their types, text written by another version kept as [`Stored::Other`]; times are RFC 3339 in
/// UTC (`Z`), as every admin read writes them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(
    description = "A request svamlgate sent (or refused to send) to Sinch's Calling API, with every attempt."
)]
pub struct OutboundRequest {
    /// Row id (not shown).
    #[serde(skip)]
    pub id: Uuid,
    /// svamlgate's reference (`GET /admin/calls/{callid}/diagnosis` accepts it).
    pub reference: String,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it ended; null while pending.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(required = true)]
    pub finished_at: Option<OffsetDateTime>,
    /// The Calling API operation.
    #[schema(value_type = Operation)]
    pub operation: Stored<Operation>,
    /// HTTP method.
    #[schema(value_type = HttpMethod)]
    pub method: Stored<HttpMethod>,
    /// API path.
    pub path: String,
    /// JSON body sent.
    #[schema(required = true)]
    pub body: Option<Value>,
    /// Call id, when known.
    #[schema(required = true)]
    pub callid: Option<String>,
    /// Conference id.
    #[schema(required = true)]
    pub conference_id: Option<String>,
    /// Call leg.
    #[schema(required = true)]
    pub call_leg: Option<String>,
    /// Callout method.
    #[schema(required = true, value_type = Option<CalloutMethod>)]
    pub callout_method: Option<Stored<CalloutMethod>>,
    /// Callout destination (masked).
    #[schema(required = true)]
    pub destination: Option<String>,
    /// Whether a DICE will come.
    #[schema(required = true)]
    pub dice_expected: Option<bool>,
    /// Result of the local checks.
    #[schema(value_type = LocalCheck)]
    pub local_check: Stored<LocalCheck>,
    /// Details of a failed check.
    #[schema(required = true)]
    pub local_report: Option<Value>,
    /// How the request ended.
    #[schema(value_type = RequestOutcome)]
    pub outcome: Stored<RequestOutcome>,
    /// Last HTTP status.
    #[schema(required = true)]
    pub http_status: Option<i16>,
    /// Attempts made.
    pub attempt_count: i16,
    /// Total time in µs.
    #[schema(required = true)]
    pub latency_us: Option<i64>,
    /// Sinch's JSON answer.
    #[schema(required = true)]
    pub response: Option<Value>,
    /// Sinch's errorCode.
    #[schema(required = true)]
    pub error_code: Option<i32>,
    /// Sinch's status.
    #[schema(required = true)]
    pub error_status: Option<String>,
    /// Sinch's message.
    #[schema(required = true)]
    pub error_message: Option<String>,
    /// Sinch's reference.
    #[schema(required = true)]
    pub error_reference: Option<String>,
    /// Last failure.
    #[schema(required = true, value_type = Option<AttemptFailure>)]
    pub failure: Option<Stored<AttemptFailure>>,
    /// Every HTTP exchange, in order.
    #[sqlx(skip)]
    pub attempts: Vec<OutboundAttempt>,
}

/// One HTTP exchange with Sinch: a row of `outbound_attempts`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(description = "One HTTP exchange with Sinch.")]
pub struct OutboundAttempt {
    /// The request (not shown).
    #[serde(skip)]
    pub request_id: Uuid,
    /// 1, 2, 3, …
    pub attempt: i16,
    /// Start of the attempt.
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    /// Duration in µs.
    pub latency_us: i64,
    /// How the request was authenticated.
    #[schema(value_type = AuthScheme)]
    pub auth_scheme: Stored<AuthScheme>,
    /// HTTP status.
    #[schema(required = true)]
    pub http_status: Option<i16>,
    /// Retry-After in ms.
    #[schema(required = true)]
    pub retry_after_ms: Option<i64>,
    /// Why no (usable) answer came; null when Sinch answered.
    #[schema(required = true, value_type = Option<AttemptFailure>)]
    pub failure: Option<Stored<AttemptFailure>>,
    /// Library message.
    #[schema(required = true)]
    pub failure_detail: Option<String>,
    /// Sinch's errorCode.
    #[schema(required = true)]
    pub error_code: Option<i32>,
    /// Sinch's status.
    #[schema(required = true)]
    pub error_status: Option<String>,
    /// Sinch's message.
    #[schema(required = true)]
    pub error_message: Option<String>,
    /// Sinch's reference.
    #[schema(required = true)]
    pub error_reference: Option<String>,
    /// The catalog's reading of the answer.
    #[schema(required = true)]
    pub classified_code: Option<i32>,
    /// Whether Sinch's code and the catalog's reading disagree.
    #[schema(required = true)]
    pub code_mismatch: Option<bool>,
    /// What followed the attempt.
    #[schema(value_type = AttemptDecision)]
    pub decision: Stored<AttemptDecision>,
    /// Answer text.
    #[schema(required = true)]
    pub response_body: Option<String>,
}

/// An error answer from Sinch: an attempt answered with HTTP 400 or more, with its request.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(description = "An error answer from Sinch.")]
pub struct SinchErrorItem {
    /// When the attempt was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    /// svamlgate's reference.
    pub reference: String,
    /// The Calling API operation.
    #[schema(value_type = Operation)]
    pub operation: Stored<Operation>,
    /// HTTP method.
    #[schema(value_type = HttpMethod)]
    pub method: Stored<HttpMethod>,
    /// API path.
    pub path: String,
    /// Call id, when known.
    #[schema(required = true)]
    pub callid: Option<String>,
    /// Which attempt.
    pub attempt: i16,
    /// HTTP status Sinch answered.
    pub http_status: i16,
    /// Sinch's errorCode.
    #[schema(required = true)]
    pub error_code: Option<i32>,
    /// The catalog's reading of the answer.
    #[schema(required = true)]
    pub classified_code: Option<i32>,
    /// Sinch's status.
    #[schema(required = true)]
    pub status: Option<String>,
    /// Sinch's message.
    #[schema(required = true)]
    pub message: Option<String>,
    /// Sinch's reference (for Sinch support).
    #[schema(required = true)]
    pub sinch_reference: Option<String>,
    /// Whether Sinch's code and the catalog's reading disagree.
    #[schema(required = true)]
    pub code_mismatch: Option<bool>,
    /// What followed the attempt.
    #[schema(value_type = AttemptDecision)]
    pub decision: Stored<AttemptDecision>,
}

/// The requests with their attempts (read by one more query), in attempt order.
async fn with_attempts(
    pool: &PgPool,
    mut requests: Vec<OutboundRequest>,
) -> Result<Vec<OutboundRequest>, sqlx::Error> {
    if requests.is_empty() {
        return Ok(requests);
    }
    let ids: Vec<Uuid> = requests.iter().map(|r| r.id).collect();
    let attempts: Vec<OutboundAttempt> = sqlx::query_as(
        "SELECT request_id, attempt, sent_at, latency_us, auth_scheme, http_status, retry_after_ms, \
         failure, failure_detail, error_code, error_status, error_message, error_reference, \
         classified_code, code_mismatch, decision, response_body \
         FROM outbound_attempts WHERE request_id = ANY($1) ORDER BY request_id, attempt",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut by_request: HashMap<Uuid, Vec<OutboundAttempt>> = HashMap::new();
    for a in attempts {
        by_request.entry(a.request_id).or_default().push(a);
    }
    for r in &mut requests {
        r.attempts = by_request.remove(&r.id).unwrap_or_default();
    }
    Ok(requests)
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
    sqlx::query_scalar(COUNT_OPEN)
        .bind(l.max_age.as_secs_f64())
        .bind(l.untracked.min(l.max_age).as_secs_f64())
        .fetch_one(exec)
        .await
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
    sqlx::query_scalar(
        "SELECT count(*) AS n FROM unnest($1::text[]) AS l(callid) WHERE NOT EXISTS \
         (SELECT 1 FROM callbacks c WHERE c.callid = l.callid AND c.event_type IN ('ice', 'ace'))",
    )
    .bind(callids)
    .fetch_one(exec)
    .await
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
    pub async fn requests_for_call(
        &self,
        callid: &str,
    ) -> Result<Vec<OutboundRequest>, sqlx::Error> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM outbound_requests WHERE callid = $1 ORDER BY created_at, id"
        );
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(callid)
            .fetch_all(&self.pool)
            .await?;
        with_attempts(&self.pool, rows).await
    }

    /// One request by svamlgate's reference, with attempts.
    pub async fn request_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<OutboundRequest>, sqlx::Error> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM outbound_requests WHERE reference = $1");
        let row: Option<OutboundRequest> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        Ok(with_attempts(&self.pool, row.into_iter().collect())
            .await?
            .pop())
    }

    /// Error answers from Sinch, newest first.
    pub async fn sinch_errors(
        &self,
        f: &SinchErrorFilter,
    ) -> Result<Vec<SinchErrorItem>, sqlx::Error> {
        sqlx::query_as(
            "SELECT a.sent_at, r.reference, r.operation, r.method, r.path, r.callid, a.attempt, \
             a.http_status, a.error_code, a.classified_code, a.error_status AS status, \
             a.error_message AS message, a.error_reference AS sinch_reference, a.code_mismatch, a.decision \
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
        .await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{decode, encode, Record};

    /// Three journal records of one request as the release before this one wrote them (the
    /// outbound vocabulary then was `&'static str`): they decode into the typed record, and the
    /// typed record writes the same texts again.
    const WRITTEN_BEFORE: [&str; 3] = [
        r#"{"v":1,"record":{"outbound":{"created_at":"2026-01-31T12:00:00.5Z","at":"2026-01-31T12:00:00.5Z","request":{"id":"018f0000-0000-7000-8000-000000000001","reference":"ref-1","operation":"callout","method":"POST","path":"/calling/v1/callouts","body":{"method":"customCallout"},"callid":null,"conference_id":null,"call_leg":null,"callout_method":"customCallout","destination":"+14045005000","dice_expected":true,"local_check":"passed","local_report":null,"outcome":"pending","idempotency_key":null},"attempt_id":null,"attempt":null,"finish":null}}}"#,
        r#"{"v":1,"record":{"outbound":{"created_at":"2026-01-31T12:00:00.5Z","at":"2026-01-31T12:00:01Z","request":{"id":"018f0000-0000-7000-8000-000000000001","reference":"ref-1","operation":"callout","method":"POST","path":"/calling/v1/callouts","body":{"method":"customCallout"},"callid":null,"conference_id":null,"call_leg":null,"callout_method":"customCallout","destination":"+14045005000","dice_expected":true,"local_check":"passed","local_report":null,"outcome":"pending","idempotency_key":null},"attempt_id":"018f0000-0000-7000-8000-000000000002","attempt":{"request_id":"018f0000-0000-7000-8000-000000000001","attempt":1,"sent_at":"2026-01-31T12:00:00.6Z","latency_us":400000,"auth_scheme":"basic","x_timestamp":null,"http_status":null,"response_body":null,"retry_after_ms":null,"failure":"too_large","failure_detail":"answer over 64 KiB","error_code":null,"error_status":null,"error_message":null,"error_reference":null,"classified_code":null,"code_mismatch":null,"decision":"give_up"},"finish":null}}}"#,
        r#"{"v":1,"record":{"outbound":{"created_at":"2026-01-31T12:00:00.5Z","at":"2026-01-31T12:00:01Z","request":{"id":"018f0000-0000-7000-8000-000000000003","reference":"ref-2","operation":"manage_call_leg","method":"PATCH","path":"/calling/v1/calls/id/c1/leg/callee","body":{},"callid":"c1","conference_id":null,"call_leg":"callee","callout_method":null,"destination":null,"dice_expected":null,"local_check":"passed","local_report":null,"outcome":"pending","idempotency_key":null},"attempt_id":null,"attempt":null,"finish":{"outcome":"no_answer","http_status":null,"attempts":3,"latency_us":1200000,"response_body":null,"callid":null,"error_code":null,"error_status":null,"error_message":null,"error_reference":null,"failure":"timeout"}}}}"#,
    ];

    fn outbound(payload: &str) -> crate::recording::OutboundRecord {
        match decode(payload.as_bytes()) {
            Ok(Record::Outbound(o)) => *o,
            other => panic!("not an outbound record: {other:?}"),
        }
    }

    #[test]
    fn records_written_before_the_typed_vocabulary_still_decode() {
        let first = outbound(WRITTEN_BEFORE[0]);
        assert_eq!(first.request.operation, Operation::Callout);
        assert_eq!(first.request.method, HttpMethod::Post);
        assert_eq!(first.request.callout_method, Some(CalloutMethod::Custom));
        let second = outbound(WRITTEN_BEFORE[1]);
        let attempt = second.attempt.expect("the attempt");
        assert_eq!(attempt.auth_scheme, AuthScheme::Basic);
        assert_eq!(attempt.failure, Some(AttemptFailure::TooLarge));
        assert_eq!(attempt.decision, AttemptDecision::GiveUp);
        let third = outbound(WRITTEN_BEFORE[2]);
        assert_eq!(third.request.operation, Operation::ManageCallLeg);
        assert_eq!(third.request.method, HttpMethod::Patch);
        assert_eq!(third.request.callout_method, None);
        let finish = third.finish.expect("the end");
        assert_eq!(finish.failure, Some(AttemptFailure::Timeout));
        assert_eq!(finish.outcome, RequestOutcome::NoAnswer);
        // Written again (in the current journal format) and read back: the same record, with
        // the same texts as before.
        for payload in WRITTEN_BEFORE {
            let record = decode(payload.as_bytes()).unwrap();
            let again = decode(&encode(&record).unwrap()).unwrap();
            let before: Value = serde_json::from_str(payload).unwrap();
            assert_eq!(
                serde_json::to_value(&again).unwrap(),
                before["record"],
                "written again as before"
            );
        }
    }

    #[test]
    fn a_record_with_a_text_outside_the_vocabulary_is_undecodable_not_misread() {
        let unknown =
            WRITTEN_BEFORE[0].replace(r#""operation":"callout""#, r#""operation":"teleport""#);
        let err = decode(unknown.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("unknown Operation \"teleport\""),
            "{err}"
        );
    }
}
