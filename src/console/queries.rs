//! The console's own reads: what no admin endpoint answers yet. Each one is bounded by an index
//! (the counts of migration 0012, `callbacks_received`, `errors_occurred`, `refusals_received`,
//! the partial indexes of the call search); `benches/console.rs` times every page over a million
//! callbacks.

use sqlx::{PgPool, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::events::EventKind;
use crate::outcome::{FallbackReason, GateVerdict, RefusalReason, ReplySource, Stored};
use crate::svaml::Severity;

/// Callbacks of a window by what happened to them (from `console_minutes`). The vocabularies are
/// read as [`Stored`]: a value another version wrote is kept as text (`Stored::Other`), so a page
/// still renders and each page says what it does with a value it does not know.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Count {
    /// Event type (an empty name, for a body that was not an event, reads as `Unknown("")`).
    pub event_type: EventKind,
    /// Reply source (the table's empty text reads as `None`).
    pub reply_source: Option<Stored<ReplySource>>,
    /// Fallback reason (`None` when no fallback went out).
    pub fallback_reason: Option<Stored<FallbackReason>>,
    /// Gate verdict (`None` when nothing was gated).
    pub gate_verdict: Option<Stored<GateVerdict>>,
    /// How many.
    pub n: i64,
}

/// The counts of callbacks since `since`.
pub async fn counts(pool: &PgPool, since: OffsetDateTime) -> Result<Vec<Count>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_type, NULLIF(reply_source, '') AS reply_source, \
         NULLIF(fallback_reason, '') AS fallback_reason, NULLIF(gate_verdict, '') AS gate_verdict, \
         sum(callbacks)::bigint AS n \
         FROM console_minutes WHERE minute >= date_trunc('minute', $1::timestamptz) \
         GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC",
    )
    .bind(since)
    .fetch_all(pool)
    .await
}

/// Callbacks and fallbacks per bucket (`minute` or `hour`) since `since`, oldest first:
/// (bucket start, callbacks, fallbacks).
pub async fn series(
    pool: &PgPool,
    since: OffsetDateTime,
    bucket: &'static str,
) -> Result<Vec<(OffsetDateTime, i64, i64)>, sqlx::Error> {
    let rows: Vec<(OffsetDateTime, i64, Option<i64>)> = sqlx::query_as(
        "SELECT date_trunc($2, minute) AS t, sum(callbacks)::bigint AS n, \
         (sum(callbacks) FILTER (WHERE fallback_reason <> ''))::bigint AS f \
         FROM console_minutes WHERE minute >= date_trunc('minute', $1::timestamptz) GROUP BY 1 ORDER BY 1",
    )
    .bind(since)
    .bind(bucket)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, n, f)| (t, n, f.unwrap_or(0)))
        .collect())
}

/// Findings of the gate by rule since `since` (from `console_rule_minutes`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuleCount {
    /// Rule code.
    pub code: String,
    /// error or warning.
    pub severity: Stored<Severity>,
    /// The rule's source.
    pub source: String,
    /// passed, rejected, observed (`None`: the table's empty text, verdict unknown).
    pub gate_verdict: Option<Stored<GateVerdict>>,
    /// How many.
    pub n: i64,
}

/// Findings by rule since `since`, most frequent first.
pub async fn rules(pool: &PgPool, since: OffsetDateTime) -> Result<Vec<RuleCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT code, severity, source, NULLIF(gate_verdict, '') AS gate_verdict, \
         sum(findings)::bigint AS n FROM console_rule_minutes \
         WHERE minute >= date_trunc('minute', $1::timestamptz) GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC, 1 LIMIT 200",
    )
    .bind(since)
    .fetch_all(pool)
    .await
}

/// Signature refusals since `since` by reason.
pub async fn refusals(
    pool: &PgPool,
    since: OffsetDateTime,
) -> Result<Vec<(Stored<RefusalReason>, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT reason, count(*) AS n FROM refusals WHERE received_at >= $1 GROUP BY 1 ORDER BY 2 DESC",
    )
    .bind(since)
    .fetch_all(pool)
    .await
}

/// Replies the gate passed that Sinch rejected (gate misses), since `since`.
pub async fn gate_misses_since(pool: &PgPool, since: OffsetDateTime) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM gate_misses WHERE received_at >= $1")
        .bind(since)
        .fetch_one(pool)
        .await
}

/// Sinch's rejections of replies (gate misses and rejections of replies sent in observe mode).
pub async fn sinch_rejections_since(
    pool: &PgPool,
    since: OffsetDateTime,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM callbacks WHERE rejected_by_sinch IS NOT NULL AND received_at >= $1",
    )
    .bind(since)
    .fetch_one(pool)
    .await
}

/// Errors since `since` by code: (code, count, latest).
pub async fn errors_by_code(
    pool: &PgPool,
    since: OffsetDateTime,
) -> Result<Vec<(i32, i64, OffsetDateTime)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT error_code, count(*) AS n, max(occurred_at) AS last FROM errors WHERE occurred_at >= $1 \
         GROUP BY 1 ORDER BY 2 DESC",
    )
    .bind(since)
    .fetch_all(pool)
    .await
}

/// One recent error.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ErrorRow {
    /// Reference.
    pub reference: String,
    /// When.
    pub occurred_at: OffsetDateTime,
    /// Code.
    pub error_code: i32,
    /// Message sent.
    pub message: String,
    /// Method and path.
    pub path: Option<String>,
    /// The call of the callback it belongs to.
    pub callid: Option<String>,
}

/// The newest errors (of one code, if given).
pub async fn recent_errors(
    pool: &PgPool,
    code: Option<i32>,
    limit: i64,
) -> Result<Vec<ErrorRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.reference, e.occurred_at, e.error_code, e.message, e.path, c.callid FROM errors e \
         LEFT JOIN callbacks c ON c.id = e.callback_id \
         WHERE ($1::int IS NULL OR e.error_code = $1) ORDER BY e.occurred_at DESC LIMIT $2",
    )
    .bind(code)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A callback found by its reference: (id, callid, event type, received at).
pub async fn callback_by_reference(
    pool: &PgPool,
    reference: &str,
) -> Result<Option<(Uuid, Option<String>, EventKind, OffsetDateTime)>, sqlx::Error> {
    // A reference is its callback's id since 0020; rows written before have one of their own,
    // in the partial index callbacks_reference_own (migrations/0020_reference_is_the_id.sql).
    sqlx::query_as(
        "SELECT id, callid, event_type, received_at FROM callbacks \
         WHERE id = $1 OR (reference = $2 AND reference <> id::text) LIMIT 1",
    )
    .bind(Uuid::parse_str(reference).ok())
    .bind(reference)
    .fetch_optional(pool)
    .await
}

/// The call of a callback row.
pub async fn callid_of(pool: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT callid FROM callbacks WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .flatten(),
    )
}

/// What the call search filters on (every field optional; all given ones must hold).
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Exact call id.
    pub callid: Option<String>,
    /// Called number of the ICE (with or without `+`).
    pub called: Option<String>,
    /// Caller number (`cli`) of the ICE (with or without `+`).
    pub caller: Option<String>,
    /// Received at or after.
    pub from: Option<OffsetDateTime>,
    /// Received before.
    pub until: Option<OffsetDateTime>,
    /// fallback, rejected, observed, sinch_rejected, passed.
    pub outcome: Option<String>,
}

/// The outcomes the search knows.
pub const OUTCOMES: [(&str, &str); 5] = [
    ("fallback", "fallback sent (any reason)"),
    ("rejected", "refused by the gate"),
    ("observed", "invalid, sent in observe mode"),
    ("sinch_rejected", "rejected by Sinch"),
    ("passed", "passed the gate"),
];

/// One callback found.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Found {
    /// Reference.
    pub reference: String,
    /// When.
    pub received_at: OffsetDateTime,
    /// Event type.
    pub event_type: EventKind,
    /// Call id.
    pub callid: Option<String>,
    /// Caller (ICE `cli`).
    pub caller: Option<String>,
    /// Called (ICE `to.endpoint`).
    pub called: Option<String>,
    /// Reply source.
    pub reply_source: Option<Stored<ReplySource>>,
    /// Fallback reason.
    pub fallback_reason: Option<Stored<FallbackReason>>,
    /// Gate verdict.
    pub gate_verdict: Option<Stored<GateVerdict>>,
    /// Whether Sinch rejected the reply.
    pub rejected_by_sinch: bool,
}

fn variants(number: &str) -> Vec<String> {
    let bare: String = number
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let digits = bare.trim_start_matches('+').to_owned();
    let mut v = vec![format!("+{digits}"), digits, bare];
    v.sort();
    v.dedup();
    v
}

const FOUND_COLUMNS: &str =
    "SELECT reference, received_at, event_type, callid, caller, called, reply_source, fallback_reason, gate_verdict, \
     rejected_by_sinch IS NOT NULL AS rejected_by_sinch FROM callbacks WHERE true";

/// The filters of `s` other than the number looked up by index (`skip`: `called` or `caller`).
fn push_filters(q: &mut QueryBuilder<sqlx::Postgres>, s: &Search, skip: Option<&str>) {
    if let Some(c) = &s.callid {
        q.push(" AND callid = ").push_bind(c.trim().to_owned());
    }
    if let (Some(n), false) = (&s.called, skip == Some("called")) {
        q.push(" AND event_type = 'ice' AND called = ANY(")
            .push_bind(variants(n))
            .push(")");
    }
    if let (Some(n), false) = (&s.caller, skip == Some("caller")) {
        q.push(" AND event_type = 'ice' AND caller = ANY(")
            .push_bind(variants(n))
            .push(")");
    }
    if let Some(t) = s.from {
        q.push(" AND received_at >= ").push_bind(t);
    }
    if let Some(t) = s.until {
        q.push(" AND received_at < ").push_bind(t);
    }
    match s.outcome.as_deref() {
        Some("fallback") => {
            q.push(" AND fallback_reason IS NOT NULL");
        }
        Some("rejected") => {
            q.push(" AND fallback_reason IS NOT NULL AND gate_verdict = 'rejected'");
        }
        Some("observed") => {
            q.push(" AND gate_verdict = 'observed'");
        }
        Some("sinch_rejected") => {
            q.push(" AND rejected_by_sinch IS NOT NULL");
        }
        Some("passed") => {
            q.push(" AND gate_verdict = 'passed'");
        }
        _ => {}
    }
}

/// Callbacks matching `s`, newest first (at most `limit`).
///
/// A number is looked up as one equality per spelling (with and without `+`), each read newest
/// first from its index (`callbacks_ice_called`, `callbacks_ice_cli`) and merged: an `= ANY(…)`
/// cannot be read in time order from the index, and the planner then prefers to walk every
/// callback by time.
pub async fn search(pool: &PgPool, s: &Search, limit: i64) -> Result<Vec<Found>, sqlx::Error> {
    let keyed = match (&s.called, &s.caller) {
        (Some(n), _) => Some(("called", "called", variants(n))),
        (None, Some(n)) => Some(("caller", "caller", variants(n))),
        (None, None) => None,
    };
    let mut q = QueryBuilder::new("");
    match keyed {
        None => {
            q.push(FOUND_COLUMNS);
            push_filters(&mut q, s, None);
        }
        Some((skip, expr, values)) => {
            q.push("SELECT * FROM (");
            for (i, v) in values.into_iter().enumerate() {
                if i > 0 {
                    q.push(" UNION ALL ");
                }
                q.push("(").push(FOUND_COLUMNS);
                q.push(" AND event_type = 'ice' AND ")
                    .push(expr)
                    .push(" = ")
                    .push_bind(v);
                push_filters(&mut q, s, Some(skip));
                q.push(" ORDER BY received_at DESC LIMIT ")
                    .push_bind(limit)
                    .push(")");
            }
            q.push(") found");
        }
    }
    q.push(" ORDER BY received_at DESC LIMIT ").push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

/// The raw body of a callback (for the replay command), by id.
pub async fn raw_body(pool: &PgPool, id: Uuid) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT raw_body FROM callbacks WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}
