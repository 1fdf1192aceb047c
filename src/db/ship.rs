//! The shipper's SQL: a batch of journal records written in one transaction with multi-row inserts.
//! Every statement is idempotent: callbacks are keyed by id, errors and refusals by reference, rejected
//! replies by id, upstream exchanges by callback id; call-state changes apply in journal order and never
//! overwrite a newer state. Re-shipping a batch after a crash changes nothing.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::store::Store;
use crate::error::ErrorRecord;
use crate::recording::{CallStateChange, CallbackRecord, OutboundRecord, Record};

/// Rows per INSERT statement (PostgreSQL allows 65,535 parameters; callbacks bind 27 each).
const ROWS_PER_STATEMENT: usize = 1000;

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
        for chunk in callbacks.chunks(ROWS_PER_STATEMENT) {
            insert_callbacks(&mut tx, chunk).await?;
        }
        for chunk in errors.chunks(ROWS_PER_STATEMENT) {
            insert_errors(&mut tx, chunk).await?;
        }
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

async fn insert_callbacks(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[&CallbackRecord],
) -> Result<(), sqlx::Error> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "INSERT INTO callbacks (id, reference, received_at, event_type, event_known, callid, application_key, \
         event_timestamp, raw_body, body, parse_warnings, signature, dedup_key, remote_addr, path, duplicate_of, \
         http_status, reply, reply_source, fallback_reason, validation, latency_us, flow_id, flow_version, \
         flow_node, route_id, gate_verdict) ",
    );
    // The journal keeps the raw body only; parse it again for the jsonb column.
    let bodies: Vec<Option<Value>> = rows
        .iter()
        .map(|r| {
            let raw = &r.callback.raw_body;
            let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
            r.callback
                .body_is_json
                .then(|| serde_json::from_slice(raw).ok())
                .flatten()
        })
        .collect();
    q.push_values(rows.iter().zip(&bodies), |mut b, (r, body)| {
        let c = &r.callback;
        let o = &r.outcome;
        b.push_bind(c.id)
            .push_bind(&c.reference)
            .push_bind(c.received_at)
            .push_bind(&c.event_type)
            .push_bind(c.event_known)
            .push_bind(&c.callid)
            .push_bind(&c.application_key)
            .push_bind(c.event_timestamp)
            .push_bind(&c.raw_body)
            .push_bind(body)
            .push_bind(&c.parse_warnings)
            .push_bind(c.signature.as_str())
            .push_bind(&c.dedup_key)
            .push_bind(&c.remote_addr)
            .push_bind(&c.path)
            .push_bind(r.duplicate_of)
            .push_bind(i16::try_from(o.http_status).unwrap_or(i16::MAX))
            .push_bind(o.reply.as_deref().map(sqlx::types::Json))
            .push_bind(o.reply_source.as_str())
            .push_bind(o.fallback_reason.map(|r| r.as_str()))
            .push_bind(o.validation.as_deref().map(sqlx::types::Json))
            .push_bind(o.latency_us)
            .push_bind(o.flow_id)
            .push_bind(o.flow_version)
            .push_bind(&o.flow_node)
            .push_bind(o.route_id)
            .push_bind(o.gate_verdict.map(|v| v.as_str()));
    });
    q.push(" ON CONFLICT (id) DO NOTHING");
    q.build().persistent(false).execute(&mut **tx).await?;
    Ok(())
}

async fn insert_errors(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[&ErrorRecord],
) -> Result<(), sqlx::Error> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "INSERT INTO errors (reference, occurred_at, error_code, http_status, status, message, method, path, \
         remote_addr, callback_id, detail) ",
    );
    q.push_values(rows, |mut b, e| {
        b.push_bind(e.reference.clone())
            .push_bind(e.occurred_at.unwrap_or_else(OffsetDateTime::now_utc))
            .push_bind(i32::try_from(e.error_code).unwrap_or(i32::MAX))
            .push_bind(i16::try_from(e.http_status).unwrap_or(i16::MAX))
            .push_bind(e.status.clone())
            .push_bind(e.message.clone())
            .push_bind(e.method.clone())
            .push_bind(e.path.clone())
            .push_bind(e.remote_addr.clone())
            .push_bind(e.callback_id)
            .push_bind(e.detail.clone());
    });
    q.push(" ON CONFLICT (reference) DO NOTHING");
    q.build().persistent(false).execute(&mut **tx).await?;
    let refusals: Vec<&ErrorRecord> = rows
        .iter()
        .copied()
        .filter(|e| e.refusal.is_some())
        .collect();
    if refusals.is_empty() {
        return Ok(());
    }
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "INSERT INTO refusals (reference, received_at, reason, error_code, application_key, remote_addr, method, \
         path, headers, body_sha256, body_bytes, explanation, cause, answered, summary_count, first_at, last_at, \
         peer) ",
    );
    q.push_values(refusals, |mut b, e| {
        let r = e.refusal.as_ref();
        b.push_bind(e.reference.clone())
            .push_bind(e.occurred_at.unwrap_or_else(OffsetDateTime::now_utc))
            .push_bind(r.map(|r| r.reason.clone()))
            .push_bind(i32::try_from(e.error_code).unwrap_or(i32::MAX))
            .push_bind(r.and_then(|r| r.application_key.clone()))
            .push_bind(e.remote_addr.clone())
            .push_bind(e.method.clone().unwrap_or_else(|| "POST".into()))
            .push_bind(e.path.clone().unwrap_or_default())
            .push_bind(r.map(|r| r.headers.clone()).unwrap_or(Value::Null))
            .push_bind(r.map(|r| r.body_sha256.clone()))
            .push_bind(r.map_or(0, |r| i32::try_from(r.body_bytes).unwrap_or(i32::MAX)))
            .push_bind(
                r.and_then(|r| r.explanation.as_ref())
                    .and_then(|e| serde_json::to_value(e).ok()),
            )
            .push_bind(
                r.and_then(|r| r.explanation.as_ref())
                    .map(|e| e.cause.as_str()),
            )
            .push_bind(r.is_some_and(|r| r.answered));
        let summary = r.and_then(|r| r.summary.as_ref());
        b.push_bind(summary.map(|s| i64::try_from(s.count).unwrap_or(i64::MAX)))
            .push_bind(summary.map(|s| s.first_at))
            .push_bind(summary.map(|s| s.last_at))
            .push_bind(summary.map(|s| s.peer.clone()));
    });
    q.push(" ON CONFLICT (reference) DO NOTHING");
    q.build().persistent(false).execute(&mut **tx).await?;
    Ok(())
}

/// Marks the reply svamlgate last sent on the call (before the report arrived) as rejected by Sinch.
/// Idempotent: the same mark is set again when a batch is re-shipped.
async fn mark_rejected_by_sinch(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    c: &CallbackRecord,
    report: &crate::recording::SinchReport,
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
    tx: &mut sqlx::Transaction<'_, Postgres>,
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
    let mut sets = Vec::new();
    for (callid, (change, at)) in last {
        match change {
            CallStateChange::Set { state, .. } => sets.push((callid, state, at)),
            CallStateChange::Ended { .. } => {
                sqlx::query("DELETE FROM call_state WHERE callid = $1 AND updated_at <= $2")
                    .bind(callid)
                    .bind(at)
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    if sets.is_empty() {
        return Ok(());
    }
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "INSERT INTO call_state (callid, route_id, flow_id, flow_version, node, context, updated_at) ",
    );
    q.push_values(sets, |mut b, (callid, s, at)| {
        b.push_bind(callid.to_owned())
            .push_bind(s.route_id)
            .push_bind(s.flow_id)
            .push_bind(s.flow_version)
            .push_bind(s.node.clone())
            .push_bind(serde_json::to_value(&s.context).unwrap_or(Value::Null))
            .push_bind(at);
    });
    q.push(
        " ON CONFLICT (callid) DO UPDATE SET route_id = EXCLUDED.route_id, flow_id = EXCLUDED.flow_id, \
         flow_version = EXCLUDED.flow_version, node = EXCLUDED.node, context = EXCLUDED.context, \
         updated_at = EXCLUDED.updated_at WHERE call_state.updated_at <= EXCLUDED.updated_at",
    );
    q.build().persistent(false).execute(&mut **tx).await?;
    Ok(())
}
