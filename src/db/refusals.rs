//! Reading `refusals` for the admin API: refusals recorded one by one and the summary rows of the
//! refusal limit (`verification::limiter`), with their explanations.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use time::OffsetDateTime;

use super::store::Store;

/// Refusals recorded past the per-window limit, counted in one row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryDoc {
    /// How many refusals (this row's sample included).
    pub count: i64,
    /// The first of them.
    pub first_at: String,
    /// The last of them.
    pub last_at: String,
    /// The peer address (`*`: peers past the tracked number).
    pub peer: String,
}

/// One `refusals` row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusalRow {
    /// Reference (also an error row, `GET /admin/errors/{reference}`).
    pub reference: String,
    /// When the request arrived (a summary: its last refusal).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub received_at: OffsetDateTime,
    /// The refusal reason, e.g. `signature_mismatch`.
    pub reason: String,
    /// The Sinch error code answered.
    pub error_code: i32,
    /// The key the request named.
    #[schema(required = true)]
    pub application_key: Option<String>,
    /// Peer address.
    #[schema(required = true)]
    pub remote_addr: Option<String>,
    /// Path as received.
    pub path: String,
    /// Hex SHA-256 of the body (empty when the body was not read).
    pub body_sha256: String,
    /// Body length (the declared one when the body was not read).
    pub body_bytes: i32,
    /// Why, in words.
    #[schema(required = true, value_type = Option<crate::signature::Explanation>)]
    pub explanation: Option<Value>,
    /// Report mode answered the callback anyway.
    pub answered: bool,
    /// Set on a summary row.
    #[schema(required = true)]
    pub summary: Option<SummaryDoc>,
}

/// Which refusals to list.
#[derive(Debug, Clone, Default)]
pub struct RefusalFilter {
    /// Only this reason.
    pub reason: Option<String>,
    /// Only this explanation cause.
    pub cause: Option<String>,
    /// Only at or after.
    pub since: Option<OffsetDateTime>,
    /// Only summary rows (`true`) or only rows recorded one by one (`false`).
    pub summaries: Option<bool>,
    /// At most this many.
    pub limit: i64,
}

impl Store {
    /// Refusals, newest first.
    pub async fn refusals(&self, f: &RefusalFilter) -> Result<Vec<RefusalRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT reference, received_at, reason, error_code, application_key, remote_addr, path, \
             body_sha256, body_bytes, explanation, answered, summary_count, first_at, last_at, peer \
             FROM refusals WHERE ($1::text IS NULL OR reason = $1) AND ($2::text IS NULL OR cause = $2) \
             AND ($3::timestamptz IS NULL OR received_at >= $3) \
             AND ($4::boolean IS NULL OR (summary_count IS NOT NULL) = $4) \
             ORDER BY received_at DESC, reference DESC LIMIT $5",
        )
        .bind(&f.reason)
        .bind(&f.cause)
        .bind(f.since)
        .bind(f.summaries)
        .bind(f.limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let count: Option<i64> = r.try_get("summary_count")?;
                let first: Option<OffsetDateTime> = r.try_get("first_at")?;
                let last: Option<OffsetDateTime> = r.try_get("last_at")?;
                let peer: Option<String> = r.try_get("peer")?;
                let summary = match (count, first, last) {
                    (Some(count), Some(first), Some(last)) => Some(SummaryDoc {
                        count,
                        first_at: crate::timestamp::format(first),
                        last_at: crate::timestamp::format(last),
                        peer: peer.unwrap_or_default(),
                    }),
                    _ => None,
                };
                Ok(RefusalRow {
                    reference: r.try_get("reference")?,
                    received_at: r.try_get("received_at")?,
                    reason: r.try_get("reason")?,
                    error_code: r.try_get("error_code")?,
                    application_key: r.try_get("application_key")?,
                    remote_addr: r.try_get("remote_addr")?,
                    path: r.try_get("path")?,
                    body_sha256: r.try_get("body_sha256")?,
                    body_bytes: r.try_get("body_bytes")?,
                    explanation: r.try_get("explanation")?,
                    answered: r.try_get("answered")?,
                    summary,
                })
            })
            .collect()
    }
}
