//! The shipper's SQL: a batch of journal records written in one transaction. Callbacks, errors,
//! refusals and call states go through `COPY` into session-local staging tables, then into their
//! tables with one `INSERT … SELECT` each: no statement to parse and plan per batch, no parameter
//! per value (PostgreSQL's CPU per row is what bounds sustained throughput).
//!
//! Every statement is idempotent: callbacks are keyed by id, errors and refusals by reference, rejected
//! replies by id, upstream exchanges by callback id (`ON CONFLICT DO NOTHING`); call-state changes
//! apply in journal order and never overwrite a newer state. Re-shipping a batch after a crash changes
//! nothing.

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, Postgres};
use time::OffsetDateTime;

use super::{CallStateChange, CallbackRecord, OutboundRecord, Record};
use crate::db::copy::CopyText;
use crate::db::store::Store;
use crate::error::ErrorRecord;

type Tx<'c> = sqlx::Transaction<'c, Postgres>;

/// A target table and its staging twin: a temporary table (one per connection, created on first use,
/// emptied at every commit; no WAL) with the target's columns.
struct Staged {
    table: &'static str,
    staging: &'static str,
    /// The columns COPY fills, in the order the rows are written.
    columns: &'static str,
    /// What follows `INSERT INTO table (columns) SELECT columns FROM staging`.
    conflict: &'static str,
}

/// The columns of `callbacks` the shipper writes, in the order `callback_rows` writes their values.
pub const CALLBACK_COLUMNS: &str = "id, reference, received_at, event_type, event_known, callid, \
    application_key, event_timestamp, raw_body, body, parse_warnings, signature, dedup_key, remote_addr, \
    path, duplicate_of, http_status, reply, reply_source, fallback_reason, validation, latency_us, flow_id, \
    flow_version, flow_node, route_id, gate_verdict";

/// The columns of `callbacks` other steps write after the row is in: Sinch's verdict on the reply
/// (`feedback`, shipped as an update) and the time its numbers were masked (retention).
pub const CALLBACK_COLUMNS_SET_LATER: [&str; 2] = ["rejected_by_sinch", "redacted_at"];

const CALLBACKS: Staged = Staged {
    table: "callbacks",
    staging: "ship_callbacks",
    columns: CALLBACK_COLUMNS,
    conflict: "ON CONFLICT (id) DO NOTHING",
};

const ERRORS: Staged = Staged {
    table: "errors",
    staging: "ship_errors",
    columns: "reference, occurred_at, error_code, http_status, status, message, method, path, remote_addr, \
        callback_id, detail",
    conflict: "ON CONFLICT (reference) DO NOTHING",
};

const REFUSALS: Staged = Staged {
    table: "refusals",
    staging: "ship_refusals",
    columns: "reference, received_at, reason, error_code, application_key, remote_addr, method, path, headers, \
        body_sha256, body_bytes, explanation, cause, answered, summary_count, first_at, last_at, peer",
    conflict: "ON CONFLICT (reference) DO NOTHING",
};

const CALL_STATES: Staged = Staged {
    table: "call_state",
    staging: "ship_call_state",
    columns: "callid, route_id, flow_id, flow_version, node, context, updated_at",
    conflict: "ON CONFLICT (callid) DO UPDATE SET route_id = EXCLUDED.route_id, flow_id = EXCLUDED.flow_id, \
        flow_version = EXCLUDED.flow_version, node = EXCLUDED.node, context = EXCLUDED.context, \
        updated_at = EXCLUDED.updated_at WHERE call_state.updated_at <= EXCLUDED.updated_at",
};

impl Staged {
    /// COPYs `rows` into the staging table, then moves them into the table.
    async fn ship(&self, tx: &mut Tx<'_>, rows: &CopyText) -> Result<(), sqlx::Error> {
        if rows.rows() == 0 {
            return Ok(());
        }
        // Quietly: IF NOT EXISTS would send a notice for every batch after the first.
        let create = format!(
            "SET LOCAL client_min_messages = warning; \
             CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS",
            self.staging, self.table
        );
        sqlx::raw_sql(AssertSqlSafe(create))
            .execute(&mut **tx)
            .await?;
        let mut copy = tx
            .copy_in_raw(&format!(
                "COPY {} ({}) FROM STDIN",
                self.staging, self.columns
            ))
            .await?;
        copy.send(rows.bytes()).await?;
        copy.finish().await?;
        let insert = format!(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} {conflict}",
            table = self.table,
            columns = self.columns,
            staging = self.staging,
            conflict = self.conflict
        );
        sqlx::query(AssertSqlSafe(insert))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Writes a batch of journal records in one transaction.
    pub async fn ship(&self, records: &[&Record]) -> Result<(), sqlx::Error> {
        let mut callbacks: Vec<&CallbackRecord> = Vec::new();
        let mut errors: Vec<&ErrorRecord> = Vec::new();
        let mut outbound: Vec<&OutboundRecord> = Vec::new();
        for r in records {
            match r {
                Record::Callback(c) => {
                    callbacks.push(c);
                    errors.extend(c.errors.iter());
                }
                Record::Error(e) => errors.push(e),
                Record::Outbound(o) => outbound.push(o),
            }
        }
        let mut tx = self.pool().begin().await?;
        CALLBACKS.ship(&mut tx, &callback_rows(&callbacks)).await?;
        let (error_rows, refusal_rows) = error_rows(&errors);
        ERRORS.ship(&mut tx, &error_rows).await?;
        REFUSALS.ship(&mut tx, &refusal_rows).await?;
        for c in &callbacks {
            if let Some(r) = &c.rejected {
                sqlx::query(
                    "INSERT INTO rejected_replies (id, callback_id, reference, event_type, source, reply, raw_reply, report) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (id) DO NOTHING",
                )
                .bind(r.id)
                .bind(c.callback.id)
                .bind(&r.reference)
                .bind(&r.event_type)
                .bind(r.source.as_str())
                .bind(&r.reply)
                .bind(&r.raw_reply)
                .bind(sqlx::types::Json(&r.report))
                .execute(&mut *tx)
                .await?;
            }
            if let Some(u) = &c.upstream {
                sqlx::query(
                    "INSERT INTO upstream_exchanges (callback_id, url, status, body, latency_us, failure, created_at) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (callback_id) DO NOTHING",
                )
                .bind(c.callback.id)
                .bind(&u.url)
                .bind(u.status.map(|s| i16::try_from(s).unwrap_or(i16::MAX)))
                .bind(&u.body)
                .bind(u.latency_us)
                .bind(&u.failure)
                .bind(c.callback.received_at)
                .execute(&mut *tx)
                .await?;
            }
        }
        apply_call_states(&mut tx, &callbacks).await?;
        for c in &callbacks {
            if let Some(report) = &c.sinch_report {
                mark_rejected_by_sinch(&mut tx, c, report).await?;
            }
        }
        for o in outbound {
            ship_outbound(&mut tx, o).await?;
        }
        tx.commit().await
    }
}

/// Whether PostgreSQL refused the records themselves (bad data, a constraint, a statement it will
/// never take), as opposed to failing to take them now (a lost or refused connection, shutdown,
/// a full disk, a conflict between transactions): only then are records set aside. A connection
/// lost mid-batch is retried, never shipped record by record.
pub fn refuses_records(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    // SQLSTATE classes: 22 data exception, 23 integrity constraint violation, 42 syntax error or
    // access rule violation, 54 program limit exceeded. Everything else (08 connection exception,
    // 53 insufficient resources, 57 operator intervention, 58 system error, 40 rollback, XX
    // internal) says nothing about the records.
    db.code().is_some_and(|c| {
        ["22", "23", "42", "54"]
            .iter()
            .any(|class| c.starts_with(class))
    })
}

/// Ships one stage of a request to Sinch: the request row is created by whichever stage arrives
/// first (so that the order of stages does not matter), an attempt is keyed by its id, and the
/// outcome is set (idempotent).
async fn ship_outbound(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    o: &OutboundRecord,
) -> Result<(), sqlx::Error> {
    let r = &o.request;
    sqlx::query(
        "INSERT INTO outbound_requests (id, reference, operation, method, path, body, callid, \
         conference_id, call_leg, callout_method, destination, dice_expected, local_check, local_report, outcome, \
         finished_at, idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, CASE WHEN $15 = 'refused_locally' THEN $17 END, $16, $17) ON CONFLICT DO NOTHING",
    )
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
    .bind(o.created_at)
    .execute(&mut **tx)
    .await?;
    if let (Some(id), Some(a)) = (o.attempt_id, &o.attempt) {
        sqlx::query(
            "INSERT INTO outbound_attempts (id, request_id, attempt, sent_at, latency_us, auth_scheme, x_timestamp, \
             http_status, response_body, retry_after_ms, failure, failure_detail, error_code, error_status, \
             error_message, error_reference, classified_code, code_mismatch, decision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(a.request_id)
        .bind(a.attempt)
        .bind(a.sent_at)
        .bind(a.latency_us)
        .bind(a.auth_scheme)
        .bind(&a.x_timestamp)
        .bind(a.http_status)
        .bind(&a.response_body)
        .bind(a.retry_after_ms)
        .bind(a.failure)
        .bind(&a.failure_detail)
        .bind(a.error_code)
        .bind(&a.error_status)
        .bind(&a.error_message)
        .bind(&a.error_reference)
        .bind(a.classified_code)
        .bind(a.code_mismatch)
        .bind(a.decision)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(f) = &o.finish {
        sqlx::query(
            "UPDATE outbound_requests SET finished_at = $13, outcome = $2, http_status = $3, attempts = $4, \
             latency_us = $5, response_body = $6, callid = coalesce($7, callid), error_code = $8, error_status = $9, \
             error_message = $10, error_reference = $11, failure = $12 WHERE id = $1",
        )
        .bind(r.id)
        .bind(f.outcome)
        .bind(f.http_status)
        .bind(f.attempts)
        .bind(f.latency_us)
        .bind(&f.response_body)
        .bind(&f.callid)
        .bind(f.error_code)
        .bind(&f.error_status)
        .bind(&f.error_message)
        .bind(&f.error_reference)
        .bind(f.failure)
        .bind(o.at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The JSON text of a body that parsed as an event, for the `body` column: the raw bytes themselves
/// (without a byte-order mark), which PostgreSQL reads as `jsonb`. NULL for a body that did not
/// parse, and for one that PostgreSQL's `jsonb` cannot hold (a `\u0000` escape): the row is kept
/// either way, with the bytes in `raw_body`.
fn body_json(c: &super::NewCallback) -> Option<&str> {
    if !c.body_is_json {
        return None;
    }
    let raw = c
        .raw_body
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(&c.raw_body);
    let text = std::str::from_utf8(raw).ok()?;
    (!text.contains("\\u0000")).then_some(text)
}

fn callback_rows(rows: &[&CallbackRecord]) -> CopyText {
    let mut out = CopyText::new();
    for r in rows {
        let c = &r.callback;
        let o = &r.outcome;
        let warnings = c.parse_warnings.as_ref().map(|w| w.to_string());
        out.uuid(c.id)
            .text(&c.reference)
            .timestamp(c.received_at)
            .text(c.event_type.as_str())
            .bool(c.event_known)
            .opt_text(c.callid.as_deref())
            .opt_text(c.application_key.as_deref())
            .opt_timestamp(c.event_timestamp)
            .bytea(&c.raw_body)
            .opt_text(body_json(c))
            .opt_text(warnings.as_deref())
            .text(c.signature.as_str())
            .opt_text(c.dedup_key.as_deref())
            .opt_text(c.remote_addr.as_deref())
            .text(&c.path)
            .opt_uuid(r.duplicate_of)
            .int(i64::from(i16::try_from(o.http_status).unwrap_or(i16::MAX)))
            .opt_text(o.reply.as_deref().map(|v| v.get()))
            .text(o.reply_source.as_str())
            .opt_text(o.fallback_reason.map(|r| r.as_str()))
            .opt_text(o.validation.as_deref().map(|v| v.get()))
            .int(o.latency_us)
            .opt_int(o.flow_id)
            .opt_int(o.flow_version.map(i64::from))
            .opt_text(o.flow_node.as_deref())
            .opt_int(o.route_id)
            .opt_text(o.gate_verdict.map(|v| v.as_str()));
        out.end_row();
    }
    out
}

/// Rows of `errors`, and of `refusals` for the errors that are signature refusals.
fn error_rows(rows: &[&ErrorRecord]) -> (CopyText, CopyText) {
    let mut errors = CopyText::new();
    let mut refusals = CopyText::new();
    for e in rows {
        let at = e.occurred_at.unwrap_or_else(OffsetDateTime::now_utc);
        let code = i64::from(i32::try_from(e.error_code).unwrap_or(i32::MAX));
        let detail = e.detail.as_ref().map(|d| d.to_string());
        errors
            .text(&e.reference)
            .timestamp(at)
            .int(code)
            .int(i64::from(i16::try_from(e.http_status).unwrap_or(i16::MAX)))
            .text(&e.status)
            .text(&e.message)
            .opt_text(e.method.as_deref())
            .opt_text(e.path.as_deref())
            .opt_text(e.remote_addr.as_deref())
            .opt_uuid(e.callback_id)
            .opt_text(detail.as_deref());
        errors.end_row();
        if let Some(r) = &e.refusal {
            let headers = r.headers.to_string();
            refusals
                .text(&e.reference)
                .timestamp(at)
                .text(&r.reason)
                .int(code)
                .opt_text(r.application_key.as_deref())
                .opt_text(e.remote_addr.as_deref())
                .text(e.method.as_deref().unwrap_or("POST"))
                .text(e.path.as_deref().unwrap_or_default())
                .text(&headers)
                .text(&r.body_sha256)
                .int(i64::from(i32::try_from(r.body_bytes).unwrap_or(i32::MAX)));
            let explanation = r
                .explanation
                .as_ref()
                .and_then(|x| serde_json::to_string(x).ok());
            let summary = r.summary.as_ref();
            refusals
                .opt_text(explanation.as_deref())
                .opt_text(r.explanation.as_ref().map(|x| x.cause.as_str()))
                .bool(r.answered)
                .opt_int(summary.map(|s| i64::try_from(s.count).unwrap_or(i64::MAX)))
                .opt_timestamp(summary.map(|s| s.first_at))
                .opt_timestamp(summary.map(|s| s.last_at))
                .opt_text(summary.map(|s| s.peer.as_str()));
            refusals.end_row();
        }
    }
    (errors, refusals)
}

/// Marks the reply svamlgate last sent on the call (before the report arrived) as rejected by Sinch.
/// Idempotent: the same mark is set again when a batch is re-shipped.
async fn mark_rejected_by_sinch(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    c: &CallbackRecord,
    report: &super::SinchReport,
) -> Result<(), sqlx::Error> {
    let mark = serde_json::json!({
        "reportId": c.callback.id,
        "reportReference": c.callback.reference,
        "kind": report.kind,
        "errorCode": report.error_code,
        "message": report.message,
        "reason": report.reason,
        "result": report.result,
    });
    sqlx::query(
        "UPDATE callbacks SET rejected_by_sinch = $1 WHERE id = (\
           SELECT id FROM callbacks WHERE callid = $2 AND id <> $3 AND reply IS NOT NULL \
           AND event_type IN ('ice', 'ace', 'pie') AND duplicate_of IS NULL AND received_at <= $4 \
           ORDER BY received_at DESC, id DESC LIMIT 1)",
    )
    .bind(mark)
    .bind(&report.callid)
    .bind(c.callback.id)
    .bind(c.callback.received_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Applies the batch's call-state changes: the last change of each call wins, and a stored state
/// written later (by another instance) than the change is kept.
async fn apply_call_states(
    tx: &mut Tx<'_>,
    callbacks: &[&CallbackRecord],
) -> Result<(), sqlx::Error> {
    let mut last: HashMap<&str, (&CallStateChange, OffsetDateTime)> = HashMap::new();
    for c in callbacks {
        if let Some(change) = &c.call_state {
            let callid = match change {
                CallStateChange::Set { callid, .. } | CallStateChange::Ended { callid } => callid,
            };
            last.insert(callid.as_str(), (change, c.callback.received_at));
        }
    }
    let mut sets = CopyText::new();
    let mut ended: Vec<&str> = Vec::new();
    let mut ended_at: Vec<OffsetDateTime> = Vec::new();
    for (callid, (change, at)) in last {
        match change {
            CallStateChange::Set { state: s, .. } => {
                let context = serde_json::to_string(&s.context).ok();
                sets.text(callid)
                    .opt_int(s.route_id)
                    .opt_int(s.flow_id)
                    .opt_int(s.flow_version.map(i64::from))
                    .opt_text(s.node.as_deref())
                    .text(context.as_deref().unwrap_or("null"))
                    .timestamp(at);
                sets.end_row();
            }
            CallStateChange::Ended { .. } => {
                ended.push(callid);
                ended_at.push(at);
            }
        }
    }
    if !ended.is_empty() {
        sqlx::query(
            "DELETE FROM call_state c USING unnest($1::text[], $2::timestamptz[]) AS e (callid, at) \
             WHERE c.callid = e.callid AND c.updated_at <= e.at",
        )
        .bind(&ended)
        .bind(&ended_at)
        .execute(&mut **tx)
        .await?;
    }
    CALL_STATES.ship(tx, &sets).await
}
