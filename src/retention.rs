//! Retention and redaction: the database stays bounded, and phone numbers do not stay forever.
//!
//! * [`prune`] deletes callbacks (with their errors, rejected replies and upstream exchanges),
//!   errors and refusals of no callback, outbound requests (with their attempts) and stale call
//!   state older than a time. It deletes in short batches ([`BATCH`] rows, one short transaction
//!   each, oldest first, found through the time indexes): the reply path never writes here (the
//!   shipper does, and waits at most one batch), and the space is reused by autovacuum instead of
//!   growing the tables. Flows, routes and their versions are never touched; rows of a call still
//!   in progress (an ICE or ACE without DICE, within `SINCH_CALL_MAX_AGE_SECS`; a callout not yet
//!   ended) are kept.
//! * [`redact`] masks phone numbers and SIP identities in the stored bodies and columns of rows
//!   older than a time, keeping the rows, with the masking rule of the logs ([`crate::redact`]):
//!   identity fields (`cli`, `endpoint`, `number`, `destination`, …) through
//!   [`crate::redact::mask_number`], every other text through [`crate::redact::mask_numbers_in`];
//!   ids (`callid`, references, keys) are kept. A masked row is marked (`redacted_at`, migration
//!   0008) and not read again. Replies and gate reports are shared between rows (migrations 0015
//!   and 0019): a masked row points at a masked copy of its reply and of its report.
//! * Both end by deleting the replies and reports no callback points at any more
//!   ([`documents::sweep`]): those of deleted rows, and the unmasked documents masked rows no
//!   longer point at.
//! * [`spawn_hourly`] runs both every hour with `SVAMLGATE_RETENTION_DAYS` and
//!   `SVAMLGATE_REDACT_AFTER_DAYS`, off the reply path; `svamlgate prune` runs them once.
//!   What was removed or masked is logged and counted (`svamlgate_pruned_rows_total{table}`,
//!   `svamlgate_redacted_rows_total{table}`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::ServeArgs;
use crate::db::documents::{self, Kind};
use crate::db::store::Store;
use crate::metrics::Metrics;
use crate::redact::{mask_number, mask_numbers_in};

/// Rows deleted per transaction.
pub const BATCH: i64 = 5000;
/// Rows masked per transaction.
pub const REDACT_BATCH: i64 = 500;
/// How often the service prunes and redacts.
pub const EVERY: Duration = Duration::from_secs(3600);

/// Rows touched, per table.
pub type Counts = BTreeMap<&'static str, u64>;

/// Call ids of the calls in progress: an ICE or ACE without a DICE within `max_age`, and
/// callouts pending, placed or of unknown outcome within `max_age` whose DICE has not come
/// (`pending:` and the reference for those Sinch gave no call id), as `open_calls_within`
/// (migration 0014) defines them.
async fn calls_in_progress(pool: &PgPool, max_age: Duration) -> Result<Vec<String>, sqlx::Error> {
    crate::db::outbound::open_callids(pool, max_age).await
}

fn add(counts: &mut Counts, table: &'static str, n: u64) {
    if n > 0 {
        *counts.entry(table).or_default() += n;
    }
}

/// Deletes what is older than `before` (see the module documentation); returns the rows deleted
/// per table. Each step deletes one batch per transaction until it finds nothing more.
pub async fn prune(
    pool: &PgPool,
    before: OffsetDateTime,
    max_age: Duration,
) -> Result<Counts, sqlx::Error> {
    let open = calls_in_progress(pool, max_age).await?;
    let mut counts = Counts::new();
    while prune_callbacks(pool, before, &open, &mut counts).await? {}
    while prune_errors_of_no_callback(pool, before, &mut counts).await? {}
    while prune_outbound(pool, before, &open, &mut counts).await? {}
    let n = sqlx::query("DELETE FROM call_state WHERE updated_at < $1 AND NOT (callid = ANY($2))")
        .bind(before)
        .bind(&open)
        .execute(pool)
        .await?;
    add(&mut counts, "call_state", n.rows_affected());
    sweep(pool, &mut counts).await?;
    Ok(counts)
}

/// Deletes the replies and reports no callback points at any more.
async fn sweep(pool: &PgPool, counts: &mut Counts) -> Result<(), sqlx::Error> {
    for kind in [Kind::Reply, Kind::Report] {
        add(counts, kind.table(), documents::sweep(pool, kind).await?);
    }
    Ok(())
}

/// One batch of callbacks older than `before` and of no open call (with their replays, and what
/// hangs off them); false when there was none. A callback a newer replay points at is kept.
async fn prune_callbacks(
    pool: &PgPool,
    before: OffsetDateTime,
    open: &[String],
    counts: &mut Counts,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT c.id FROM callbacks c
         WHERE c.received_at < $1
           AND (c.callid IS NULL OR NOT (c.callid = ANY($2)))
           AND NOT EXISTS (SELECT 1 FROM callbacks d WHERE d.duplicate_of = c.id AND d.received_at >= $1)
         ORDER BY c.received_at LIMIT $3",
    )
    .bind(before)
    .bind(open)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        return Ok(false);
    }
    let mut all: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM callbacks WHERE duplicate_of = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
    let dups = all.clone();
    all.extend(ids.iter().copied());
    all.sort_unstable();
    all.dedup();
    for (table, sql) in [
        ("rejected_replies", "DELETE FROM rejected_replies WHERE callback_id = ANY($1)"),
        ("upstream_exchanges", "DELETE FROM upstream_exchanges WHERE callback_id = ANY($1)"),
        (
            "refusals",
            "DELETE FROM refusals WHERE reference IN (SELECT reference FROM errors WHERE callback_id = ANY($1))",
        ),
        ("errors", "DELETE FROM errors WHERE callback_id = ANY($1)"),
    ] {
        let n = sqlx::query(sql).bind(&all).execute(&mut *tx).await?;
        add(counts, table, n.rows_affected());
    }
    let mut n =
        sqlx::query("DELETE FROM callbacks WHERE id = ANY($1) AND duplicate_of IS NOT NULL")
            .bind(&dups)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    n += sqlx::query("DELETE FROM callbacks WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    add(counts, "callbacks", n);
    tx.commit().await?;
    Ok(true)
}

/// One batch of errors of no callback (and their refusals) older than `before`; false when there
/// was none. An error a rejected reply names is kept.
async fn prune_errors_of_no_callback(
    pool: &PgPool,
    before: OffsetDateTime,
    counts: &mut Counts,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let refs: Vec<String> = sqlx::query_scalar(
        "SELECT e.reference FROM errors e
         WHERE e.callback_id IS NULL AND e.occurred_at < $1
           AND NOT EXISTS (SELECT 1 FROM rejected_replies r WHERE r.reference = e.reference)
         ORDER BY e.occurred_at LIMIT $2",
    )
    .bind(before)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if refs.is_empty() {
        return Ok(false);
    }
    for (table, sql) in [
        ("refusals", "DELETE FROM refusals WHERE reference = ANY($1)"),
        ("errors", "DELETE FROM errors WHERE reference = ANY($1)"),
    ] {
        let n = sqlx::query(sql).bind(&refs).execute(&mut *tx).await?;
        add(counts, table, n.rows_affected());
    }
    tx.commit().await?;
    Ok(true)
}

/// One batch of outbound requests (with their attempts) older than `before` and of no open call;
/// false when there was none.
async fn prune_outbound(
    pool: &PgPool,
    before: OffsetDateTime,
    open: &[String],
    counts: &mut Counts,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT r.id FROM outbound_requests r
         WHERE r.created_at < $1
           AND NOT (coalesce(r.callid, 'pending:' || r.reference) = ANY($2))
         ORDER BY r.created_at LIMIT $3",
    )
    .bind(before)
    .bind(open)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        return Ok(false);
    }
    for (table, sql) in [
        (
            "outbound_attempts",
            "DELETE FROM outbound_attempts WHERE request_id = ANY($1)",
        ),
        (
            "outbound_requests",
            "DELETE FROM outbound_requests WHERE id = ANY($1)",
        ),
    ] {
        let n = sqlx::query(sql).bind(&ids).execute(&mut *tx).await?;
        add(counts, table, n.rows_affected());
    }
    tx.commit().await?;
    Ok(true)
}

pub use crate::redact::mask_json;

/// Masks a text column: JSON text as JSON, anything else as free text.
pub fn mask_text(s: &str) -> String {
    match serde_json::from_str::<Value>(s) {
        Ok(mut v @ (Value::Object(_) | Value::Array(_))) => {
            mask_json(&mut v);
            serde_json::to_string(&v).unwrap_or_else(|_| mask_numbers_in(s))
        }
        _ => mask_numbers_in(s),
    }
}

fn masked(v: Option<Value>) -> Option<Value> {
    v.map(|mut v| {
        mask_json(&mut v);
        v
    })
}

/// A callback to mask: id, body (as `jsonb`), raw body, reply, validation.
type CallbackToMask = (Uuid, Option<Value>, Vec<u8>, Option<Value>, Option<Value>);

/// An outbound request to mask: id, body, destination, response body, local report.
type OutboundToMask = (
    Uuid,
    Option<Value>,
    Option<String>,
    Option<Value>,
    Option<Value>,
);

/// Masks what is older than `before` (see the module documentation); returns the rows masked per
/// table. Each step masks one batch per transaction until it finds nothing more.
pub async fn redact(
    pool: &PgPool,
    before: OffsetDateTime,
    max_age: Duration,
) -> Result<Counts, sqlx::Error> {
    let open = calls_in_progress(pool, max_age).await?;
    let mut counts = Counts::new();
    while redact_callbacks(pool, before, &open, &mut counts).await? {}
    while redact_errors(pool, before, &mut counts).await? {}
    while redact_outbound(pool, before, &open, &mut counts).await? {}
    // The unmasked documents no row points at any more.
    sweep(pool, &mut counts).await?;
    Ok(counts)
}

/// One batch of callbacks older than `before` and of no open call, with their rejected replies
/// and upstream exchanges; false when there was none.
async fn redact_callbacks(
    pool: &PgPool,
    before: OffsetDateTime,
    open: &[String],
    counts: &mut Counts,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows: Vec<CallbackToMask> = sqlx::query_as(
        "SELECT id, callbacks.body AS body, raw_body, callbacks.reply AS reply, callbacks.validation AS validation FROM callbacks
         WHERE received_at < $1 AND redacted_at IS NULL
           AND (callid IS NULL OR NOT (callid = ANY($2)))
         ORDER BY received_at LIMIT $3",
    )
    .bind(before)
    .bind(open)
    .bind(REDACT_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(false);
    }
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        ids.push(mask_callback(&mut tx, row).await?);
    }
    add(counts, "callbacks", ids.len() as u64);
    let n = mask_rejected_replies(&mut tx, &ids).await?;
    add(counts, "rejected_replies", n);
    let n = mask_upstream_exchanges(&mut tx, &ids).await?;
    add(counts, "upstream_exchanges", n);
    tx.commit().await?;
    Ok(true)
}

/// Masks one callback and marks it redacted (the call search's `called` and `caller` are taken
/// again from the masked body); returns its id.
async fn mask_callback(
    tx: &mut sqlx::PgConnection,
    (id, body, raw, reply, validation): CallbackToMask,
) -> Result<Uuid, sqlx::Error> {
    let body = masked(body);
    let raw = match &body {
        Some(b) => serde_json::to_vec(b).unwrap_or_default(),
        None => mask_numbers_in(&String::from_utf8_lossy(&raw)).into_bytes(),
    };
    let reply = masked_copy(Kind::Reply, reply);
    let report = masked_copy(Kind::Report, validation);
    documents::store(tx, &reply, &report).await?;
    sqlx::query(
        "UPDATE callbacks SET raw_body = $3, reply_id = coalesce($4, reply_id), validation_id = coalesce($5, validation_id), redacted_at = now(), \
         called = CASE WHEN event_type = 'ice' THEN $2::jsonb->'to'->>'endpoint' END, \
         caller = CASE WHEN event_type = 'ice' THEN $2::jsonb->>'cli' END WHERE id = $1",
    )
    .bind(id)
    .bind(&body)
    .bind(&raw)
    .bind(reply.ids().first())
    .bind(report.ids().first())
    .execute(tx)
    .await?;
    Ok(id)
}

/// The masked copy of a callback's reply or report, to store, or none when masking changed
/// nothing (the row keeps pointing where it did). Both are shared between rows: the unmasked one
/// stays while another row points at it, and [`documents::sweep`] deletes it after.
fn masked_copy(kind: Kind, doc: Option<Value>) -> documents::Distinct {
    let copy = masked(doc.clone());
    match copy.filter(|c| Some(c) != doc.as_ref()) {
        Some(c) => documents::Distinct::of(kind, [c.to_string().as_str()]),
        None => documents::Distinct::none(kind),
    }
}

/// Masks the rejected replies of the callbacks `ids`; returns how many.
async fn mask_rejected_replies(
    tx: &mut sqlx::PgConnection,
    ids: &[Uuid],
) -> Result<u64, sqlx::Error> {
    let rejected: Vec<(Uuid, Option<Value>, Option<String>, Value)> = sqlx::query_as(
        "SELECT id, reply, raw_reply, report FROM rejected_replies WHERE callback_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    let n = rejected.len() as u64;
    for (id, reply, raw, report) in rejected {
        sqlx::query(
            "UPDATE rejected_replies SET reply = $2, raw_reply = $3, report = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(masked(reply))
        .bind(raw.as_deref().map(mask_text))
        .bind(masked(Some(report)))
        .execute(&mut *tx)
        .await?;
    }
    Ok(n)
}

/// Masks one text column of the rows `select` finds for `ids` (`SELECT key, text … = ANY($1)`),
/// each written back through `update` (`… SET text = $2 WHERE key = $1`); returns how many.
async fn mask_text_column(
    tx: &mut sqlx::PgConnection,
    ids: &[Uuid],
    select: &'static str,
    update: &'static str,
) -> Result<u64, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(select).bind(ids).fetch_all(&mut *tx).await?;
    for (key, text) in &rows {
        sqlx::query(update)
            .bind(key)
            .bind(mask_text(text))
            .execute(&mut *tx)
            .await?;
    }
    Ok(rows.len() as u64)
}

/// Masks the upstream exchanges of the callbacks `ids`; returns how many.
async fn mask_upstream_exchanges(
    tx: &mut sqlx::PgConnection,
    ids: &[Uuid],
) -> Result<u64, sqlx::Error> {
    mask_text_column(
        tx,
        ids,
        "SELECT callback_id, body FROM upstream_exchanges WHERE callback_id = ANY($1) AND body IS NOT NULL",
        "UPDATE upstream_exchanges SET body = $2 WHERE callback_id = $1",
    )
    .await
}

/// One batch of errors older than `before`; false when there was none.
async fn redact_errors(
    pool: &PgPool,
    before: OffsetDateTime,
    counts: &mut Counts,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(String, String, Option<Value>)> = sqlx::query_as(
        "SELECT reference, message, detail FROM errors
         WHERE occurred_at < $1 AND redacted_at IS NULL
         ORDER BY occurred_at LIMIT $2",
    )
    .bind(before)
    .bind(REDACT_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(false);
    }
    let n = rows.len() as u64;
    for (reference, message, detail) in rows {
        sqlx::query(
            "UPDATE errors SET message = $2, detail = $3, redacted_at = now() WHERE reference = $1",
        )
        .bind(reference)
        .bind(mask_numbers_in(&message))
        .bind(masked(detail))
        .execute(&mut *tx)
        .await?;
    }
    add(counts, "errors", n);
    tx.commit().await?;
    Ok(true)
}

/// One batch of finished outbound requests older than `before` and of no open call, with their
/// attempts; false when there was none.
async fn redact_outbound(
    pool: &PgPool,
    before: OffsetDateTime,
    open: &[String],
    counts: &mut Counts,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows: Vec<OutboundToMask> = sqlx::query_as(
        "SELECT id, body, destination, response_body, local_report FROM outbound_requests r
         WHERE r.created_at < $1 AND r.redacted_at IS NULL
           AND (r.callid IS NULL OR NOT (r.callid = ANY($2)))
           AND r.outcome <> 'pending'
         ORDER BY r.created_at LIMIT $3",
    )
    .bind(before)
    .bind(open)
    .bind(REDACT_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(false);
    }
    let mut ids = Vec::with_capacity(rows.len());
    for (id, body, destination, response_body, local_report) in rows {
        sqlx::query(
            "UPDATE outbound_requests SET body = $2, destination = $3, response_body = $4, local_report = $5, \
             redacted_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(masked(body))
        .bind(destination.as_deref().map(mask_number))
        .bind(masked(response_body))
        .bind(masked(local_report))
        .execute(&mut *tx)
        .await?;
        ids.push(id);
    }
    add(counts, "outbound_requests", ids.len() as u64);
    let n = mask_attempt_bodies(&mut tx, &ids).await?;
    add(counts, "outbound_attempts", n);
    tx.commit().await?;
    Ok(true)
}

/// Masks Sinch's answers to the attempts of the requests `ids`; returns how many.
async fn mask_attempt_bodies(
    tx: &mut sqlx::PgConnection,
    ids: &[Uuid],
) -> Result<u64, sqlx::Error> {
    mask_text_column(
        tx,
        ids,
        "SELECT id, response_body FROM outbound_attempts WHERE request_id = ANY($1) AND response_body IS NOT NULL",
        "UPDATE outbound_attempts SET response_body = $2 WHERE id = $1",
    )
    .await
}

/// A time for `svamlgate prune`: RFC 3339 (`2026-11-01T00:00:00Z`), or an age before now
/// (`30d`, `12h`, `90m`, `45s`).
pub fn parse_time(s: &str, now: OffsetDateTime) -> anyhow::Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let age = crate::alerts::rules::duration(s)
        .filter(|_| s.trim().ends_with(|c: char| c.is_ascii_alphabetic()))
        .ok_or_else(|| {
            anyhow::anyhow!("`{s}` is neither an RFC 3339 time nor an age such as 30d or 12h")
        })?;
    let age = time::Duration::try_from(age).map_err(|e| anyhow::anyhow!("`{s}`: {e}"))?;
    Ok(now - age)
}

/// Both passes once, logged and counted: prune before `delete_before`, mask before
/// `redact_before`.
pub async fn run_once(
    pool: &PgPool,
    delete_before: Option<OffsetDateTime>,
    redact_before: Option<OffsetDateTime>,
    max_age: Duration,
    metrics: &Metrics,
) -> Result<(Counts, Counts), sqlx::Error> {
    let mut deleted = Counts::new();
    let mut redacted = Counts::new();
    if let Some(before) = delete_before {
        let started = std::time::Instant::now();
        deleted = prune(pool, before, max_age).await?;
        for (table, n) in &deleted {
            metrics.add("svamlgate_pruned_rows_total", &[("table", table)], *n);
        }
        let total: u64 = deleted.values().sum();
        tracing::info!(before = %before, rows = total, per_table = ?deleted, ms = started.elapsed().as_millis() as u64, "retention: old rows deleted");
    }
    if let Some(before) = redact_before {
        let started = std::time::Instant::now();
        redacted = redact(pool, before, max_age).await?;
        for (table, n) in &redacted {
            metrics.add("svamlgate_redacted_rows_total", &[("table", table)], *n);
        }
        let total: u64 = redacted.values().sum();
        tracing::info!(before = %before, rows = total, per_table = ?redacted, ms = started.elapsed().as_millis() as u64, "redaction: phone numbers masked in old rows");
    }
    Ok((deleted, redacted))
}

fn days_ago(days: Option<u32>, now: OffsetDateTime) -> Option<OffsetDateTime> {
    days.map(|d| now - time::Duration::days(i64::from(d)))
}

/// Prunes and redacts every hour per `SVAMLGATE_RETENTION_DAYS` and `SVAMLGATE_REDACT_AFTER_DAYS`
/// (a first round a minute after start); says once at start what is and is not done.
pub fn spawn_hourly(config: &ServeArgs, store: Store, metrics: Arc<Metrics>) {
    let (keep, mask) = (config.ops.retention_days, config.ops.redact_after_days);
    match keep {
        None => tracing::info!(
            "SVAMLGATE_RETENTION_DAYS not set: nothing is deleted, records are kept forever (the audit trail is yours)"
        ),
        Some(d) => tracing::info!(days = d, "retention: rows older than SVAMLGATE_RETENTION_DAYS are deleted hourly"),
    }
    match mask {
        None => tracing::info!("SVAMLGATE_REDACT_AFTER_DAYS not set: stored phone numbers are kept unmasked"),
        Some(d) => tracing::info!(days = d, "redaction: phone numbers in rows older than SVAMLGATE_REDACT_AFTER_DAYS are masked hourly"),
    }
    if keep.is_none() && mask.is_none() {
        return;
    }
    let max_age = Duration::from_secs(config.sinch_api.sinch_call_max_age_secs);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        loop {
            let now = OffsetDateTime::now_utc();
            if let Err(e) = run_once(
                store.pool(),
                days_ago(keep, now),
                days_ago(mask, now),
                max_age,
                &metrics,
            )
            .await
            {
                tracing::warn!(error = %e, "retention and redaction round failed; retried in an hour");
            }
            tokio::time::sleep(EVERY).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_masked_with_the_log_rule_and_ids_are_kept() {
        let mut ice = json!({
            "event": "ice", "callid": "4398599d1ba84ef3bde0a82dfb61abed", "cli": "46708168731",
            "to": {"type": "number", "endpoint": "+46708000000"}, "applicationKey": "669E367E-6BBA-48AB-AF15-266871C28135",
            "custom": "customer 1234567 called", "userId": "sip:alice@example.com",
            "instructions": [{"name": "say", "text": "Your code is 1234"}],
            "action": {"name": "connectPstn", "number": "+14045005000", "cli": "private"}
        });
        mask_json(&mut ice);
        assert_eq!(ice["callid"], "4398599d1ba84ef3bde0a82dfb61abed");
        assert_eq!(ice["cli"], mask_number("46708168731"));
        assert_eq!(ice["cli"], "467******31");
        assert_eq!(ice["to"]["endpoint"], "+467******00");
        assert_eq!(ice["to"]["type"], "number");
        assert_eq!(
            ice["applicationKey"],
            "669E367E-6BBA-48AB-AF15-266871C28135"
        );
        assert_eq!(ice["custom"], "customer 12***67 called");
        assert_eq!(ice["userId"], mask_number("sip:alice@example.com"));
        assert_eq!(ice["instructions"][0]["text"], "Your code is 1234");
        assert_eq!(ice["action"]["number"], "+140******00");
        assert_eq!(ice["action"]["cli"], "private");
        assert_eq!(mask_text("call 46708168731 now"), "call 467******31 now");
        assert_eq!(
            mask_text(r#"{"cli":"46708168731"}"#),
            r#"{"cli":"467******31"}"#
        );
    }

    #[test]
    fn times_are_rfc3339_or_an_age() {
        let now = time::macros::datetime!(2026-12-02 12:00 UTC);
        assert_eq!(
            parse_time("30d", now).unwrap(),
            time::macros::datetime!(2026-11-02 12:00 UTC)
        );
        assert_eq!(
            parse_time("90m", now).unwrap(),
            time::macros::datetime!(2026-12-02 10:30 UTC)
        );
        assert_eq!(
            parse_time("2026-11-01T00:00:00Z", now).unwrap(),
            time::macros::datetime!(2026-11-01 0:00 UTC)
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("30", now).is_err());
    }
}
