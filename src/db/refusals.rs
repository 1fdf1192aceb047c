//! Reading `refusals` for the admin API: refusals recorded one by one and the summary rows of the
//! refusal limit (`verification::limiter`), with their explanations.

use serde::{Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

use super::store::Store;

/// Refusals recorded past the per-window limit, counted in one row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryDoc {
    /// How many refusals (this row's sample included).
    pub count: i64,
    /// The first of them.
    #[serde(with = "time::serde::rfc3339")]
    pub first_at: OffsetDateTime,
    /// The last of them.
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
    /// The peer address (`*`: peers past the tracked number).
    pub peer: String,
}

/// The summary columns of a `refusals` row (`summary_count`, `first_at`, `last_at`, `peer`): set
/// on a summary row, null on a refusal recorded one by one. Serialized as its [`SummaryDoc`], or
/// null.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct SummaryColumns {
    /// How many refusals.
    pub summary_count: Option<i64>,
    /// The first of them.
    pub first_at: Option<OffsetDateTime>,
    /// The last of them.
    pub last_at: Option<OffsetDateTime>,
    /// The peer address.
    pub peer: Option<String>,
}

impl SummaryColumns {
    /// The summary, on a summary row.
    pub fn doc(&self) -> Option<SummaryDoc> {
        match (self.summary_count, self.first_at, self.last_at) {
            (Some(count), Some(first_at), Some(last_at)) => Some(SummaryDoc {
                count,
                first_at,
                last_at,
                peer: self.peer.clone().unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

impl Serialize for SummaryColumns {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.doc().serialize(s)
    }
}

/// One `refusals` row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct RefusalRow {
    /// Reference (also an error row, `GET /admin/errors/{reference}`).
    pub reference: String,
    /// When the request arrived (a summary: its last refusal).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub received_at: OffsetDateTime,
    /// The refusal reason, e.g. `signature_mismatch`.
    pub reason: crate::outcome::RefusalReason,
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
    #[schema(required = true, value_type = Option<SummaryDoc>)]
    #[sqlx(flatten)]
    pub summary: SummaryColumns,
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
        sqlx::query_as(
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
        .await
    }
}
