//! The shipper's SQL: a batch of journal records written in one transaction, by one of two paths
//! (PostgreSQL's CPU per row is what bounds sustained throughput; docs/recording.md). Every `COPY`
//! is in PostgreSQL's binary format ([`crate::db::copy`]):
//!
//! - **the fast path**, tried first: callbacks, errors and refusals are `COPY`ed straight into their
//!   tables, with the columns PostgreSQL would derive from the body (`body_json`, `called`,
//!   `caller`) computed here; no staging table, no `ON CONFLICT`. A row already in PostgreSQL (a
//!   batch shipped again) makes a unique constraint refuse the batch (`23505`): the transaction is
//!   rolled back and the batch goes through the staging path, in a new one;
//! - **the staging path**: callbacks, errors and refusals go through `COPY` into session-local
//!   staging tables, then into their tables with one `INSERT … SELECT … ON CONFLICT DO NOTHING`
//!   each. A callback whose derived columns svamlgate cannot be sure of (a body `jsonb` might read
//!   otherwise, [`body_facts`]) takes this way on the fast path too.
//!
//! Call states go through a staging table on both paths (an upsert that never overwrites a newer
//! state), but for those of calls whose ICE is in the batch: no row of theirs is expected yet, so
//! the fast path COPYs them straight into `call_state` (a row there after all refuses the batch,
//! which then takes the staging path).
//!
//! Each staged table is one declaration ([`Staged`]): every column the shipper COPYs sits beside
//! the function that writes its value, and columns PostgreSQL computes from the staging row are
//! named with their expression, so the column list and the values cannot drift apart; a test
//! compares them with the table's columns in PostgreSQL.
//!
//! Every row is keyed by an id fixed when its record was written: callbacks by id (and reference),
//! errors and refusals by reference, rejected replies by id, upstream exchanges by callback id. The
//! staging path's statements are idempotent (`ON CONFLICT DO NOTHING`; call-state changes apply in
//! journal order and never overwrite a newer state), and the fast path's fail as a whole on a row
//! already there: re-shipping a batch after a crash changes nothing (docs/recording.md, "How a
//! batch is written, exactly once").

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use sqlx::{AssertSqlSafe, Postgres};
use time::OffsetDateTime;

use super::{CallStateChange, CallbackRecord, OutboundRecord, Record};
use crate::db::copy::{copy_statement, CopyRows, PgType};
use crate::db::documents::{self, Kind};
use crate::db::store::Store;
use crate::error::ErrorRecord;
use crate::events::EventKind;
use crate::flows::state::context_for_row;
use crate::flows::state::CallState;
use crate::outcome::{FallbackReason, GateVerdict, ReplySource};
use uuid::Uuid;

type Tx<'c> = sqlx::Transaction<'c, Postgres>;

/// One column the shipper `COPY`s into a staging table: its name there, its type, and how a row's
/// value is written (binary COPY: the writer must use the method of that type, checked in debug
/// builds by [`checked`] and against the tables by the tests). The column list and the values come
/// from the same declaration, so they cannot drift apart (issue #22: bind by name, not by position).
pub struct Column<R> {
    /// Name of the column in the staging table (and, unless the table lists it as staging-only, in
    /// the target table).
    pub name: &'static str,
    /// Its type in PostgreSQL.
    pub ty: PgType,
    write: fn(&R, &mut CopyRows),
}

const fn col<R>(name: &'static str, ty: PgType, write: fn(&R, &mut CopyRows)) -> Column<R> {
    Column { name, ty, write }
}

impl<R> Column<R> {
    /// Writes the column's value of `r`.
    fn put(&self, r: &R, out: &mut CopyRows) {
        (self.write)(r, out);
        checked(out, self.name, self.ty);
    }
}

/// In debug builds, panics when the value just written is not of the column's declared type (a
/// NULL written by [`CopyRows::null`] is of any type).
fn checked(out: &CopyRows, name: &str, ty: PgType) {
    debug_assert!(
        out.last_type().is_none_or(|t| t == ty),
        "column {name} is declared {ty:?} but was written as {:?}",
        out.last_type()
    );
}

/// A column of the target table that `INSERT … SELECT` computes from the staging row, and that
/// the fast path writes itself.
pub struct Derived {
    /// Name of the column in the target table.
    pub name: &'static str,
    /// Its type in PostgreSQL.
    pub ty: PgType,
    /// SQL expression over the staging table's columns (the staging path).
    pub expr: &'static str,
    /// The same value, from what svamlgate read of the body (the fast path).
    value: fn(&BodyFacts, &mut CopyRows),
}

impl Derived {
    /// Writes the column's value from `facts`.
    fn put(&self, facts: &BodyFacts, out: &mut CopyRows) {
        (self.value)(facts, out);
        checked(out, self.name, self.ty);
    }
}

/// A target table and its staging twin: a temporary table (one per connection, created on first use,
/// emptied at every commit; no WAL) with the target's columns and `staging_only` ones.
pub struct Staged<R: 'static> {
    /// Target table.
    pub table: &'static str,
    staging: &'static str,
    /// Columns only the staging table has (their type is the column's): COPYed, read by
    /// `derived`, not stored.
    pub staging_only: &'static [&'static str],
    /// The columns COPY fills, each with its value.
    pub columns: &'static [Column<R>],
    /// Target columns computed from the staging row.
    pub derived: &'static [Derived],
    /// What follows `INSERT INTO table (…) SELECT … FROM staging`.
    conflict: &'static str,
}

impl<R> Staged<R> {
    /// The target table's columns this table writes: the COPYed ones (but the staging-only) and the
    /// derived ones. The fast path COPYs exactly these, in this order.
    pub fn target_columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.target_types().map(|(name, _)| name)
    }

    /// [`Staged::target_columns`], each with its declared type.
    pub fn target_types(&self) -> impl Iterator<Item = (&'static str, PgType)> + '_ {
        self.stored_columns()
            .map(|c| (c.name, c.ty))
            .chain(self.derived.iter().map(|d| (d.name, d.ty)))
    }

    /// The COPYed columns that the target table has (all but the staging-only ones).
    fn stored_columns(&self) -> impl Iterator<Item = &Column<R>> + '_ {
        self.columns
            .iter()
            .filter(|c| !self.staging_only.contains(&c.name))
    }

    /// The fast path's COPY payload of `rows`: the target's columns, the derived ones from each
    /// row's facts.
    fn direct_rows<'r>(&self, rows: impl IntoIterator<Item = (&'r R, BodyFacts)>) -> CopyRows
    where
        R: 'r,
    {
        let mut out = CopyRows::new();
        for (r, facts) in rows {
            for c in self.stored_columns() {
                c.put(r, &mut out);
            }
            for d in self.derived {
                d.put(&facts, &mut out);
            }
            out.end_row();
        }
        out
    }

    /// COPYs `rows` (encoded by [`Staged::direct_rows`], or by [`Staged::copy_rows`] for a table
    /// without staging-only or derived columns) straight into the table (the fast path).
    async fn write_direct(
        &self,
        tx: &mut Tx<'_>,
        rows: &CopyRows,
        steps: &mut Steps,
    ) -> Result<(), sqlx::Error> {
        if rows.rows() == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let sql = copy_statement(self.table, self.target_columns());
        copy_in(tx, &sql, rows).await?;
        steps.copy += started.elapsed();
        Ok(())
    }

    /// The COPY payload of `rows`: one line per row, the values in the order of `columns`.
    fn copy_rows<'r>(&self, rows: impl IntoIterator<Item = &'r R>) -> CopyRows
    where
        R: 'r,
    {
        let mut out = CopyRows::new();
        for r in rows {
            for c in self.columns {
                c.put(r, &mut out);
            }
            out.end_row();
        }
        out
    }

    fn create_sql(&self) -> String {
        let extra: String = self
            .columns
            .iter()
            .filter(|c| self.staging_only.contains(&c.name))
            .map(|c| format!(", {} {}", c.name, c.ty.sql_name()))
            .collect();
        // Quietly: IF NOT EXISTS would send a notice for every batch after the first.
        format!(
            "SET LOCAL client_min_messages = warning; \
             CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS{extra}) ON COMMIT DELETE ROWS",
            self.staging, self.table
        )
    }

    fn copy_sql(&self) -> String {
        copy_statement(self.staging, self.columns.iter().map(|c| c.name))
    }

    fn insert_sql(&self) -> String {
        let targets: Vec<&str> = self.target_columns().collect();
        let values: Vec<&str> = self
            .stored_columns()
            .map(|c| c.name)
            .chain(self.derived.iter().map(|d| d.expr))
            .collect();
        format!(
            "INSERT INTO {} ({}) SELECT {} FROM {} {}",
            self.table,
            targets.join(", "),
            values.join(", "),
            self.staging,
            self.conflict
        )
    }

    /// COPYs `rows` (encoded by [`Staged::copy_rows`]) into the staging table, then moves them
    /// into the table; the wall time of each goes to `steps`.
    async fn write(
        &self,
        tx: &mut Tx<'_>,
        rows: &CopyRows,
        steps: &mut Steps,
    ) -> Result<(), sqlx::Error> {
        if rows.rows() == 0 {
            return Ok(());
        }
        let copied = self.stage(tx, rows, steps).await?;
        sqlx::query(AssertSqlSafe(self.insert_sql()))
            .execute(&mut **tx)
            .await?;
        steps.insert += copied.elapsed();
        Ok(())
    }

    /// Creates the staging table if needed and COPYs `rows` into it; returns when the COPY ended.
    async fn stage(
        &self,
        tx: &mut Tx<'_>,
        rows: &CopyRows,
        steps: &mut Steps,
    ) -> Result<Instant, sqlx::Error> {
        let started = Instant::now();
        sqlx::raw_sql(AssertSqlSafe(self.create_sql()))
            .execute(&mut **tx)
            .await?;
        copy_in(tx, &self.copy_sql(), rows).await?;
        let copied = Instant::now();
        steps.copy += copied - started;
        Ok(copied)
    }
}

impl Staged<CallbackRecord> {
    /// [`Staged::write`], returning the ids of the callbacks inserted (not those already there),
    /// for the console's counts.
    async fn write_inserted(
        &self,
        tx: &mut Tx<'_>,
        rows: &CopyRows,
        steps: &mut Steps,
    ) -> Result<HashSet<Uuid>, sqlx::Error> {
        if rows.rows() == 0 {
            return Ok(HashSet::new());
        }
        let copied = self.stage(tx, rows, steps).await?;
        let ids: Vec<Uuid> =
            sqlx::query_scalar(AssertSqlSafe(format!("{} RETURNING id", self.insert_sql())))
                .fetch_all(&mut **tx)
                .await?;
        steps.insert += copied.elapsed();
        Ok(ids.into_iter().collect())
    }
}

/// Sends `rows` by `sql` (a `COPY … FROM STDIN`).
async fn copy_in(tx: &mut Tx<'_>, sql: &str, rows: &CopyRows) -> Result<(), sqlx::Error> {
    let mut copy = tx.copy_in_raw(sql).await?;
    copy.send(rows.bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// Where a batch's wall time went in PostgreSQL: `COPY` (straight into the tables, or into the
/// staging tables with their creation), the statements that move rows into the tables (`INSERT …
/// SELECT`, and the few statements per record for rare rows), and the commit (its WAL flush).
#[derive(Debug, Default, Clone, Copy)]
pub struct Steps {
    /// Rows COPYed into the tables, or staging tables created and filled.
    pub copy: Duration,
    /// Rows moved into the tables, call states applied, rare rows written.
    pub insert: Duration,
    /// `COMMIT`.
    pub commit: Duration,
}

/// The columns of `callbacks` other steps write after the row is in: Sinch's verdict on the reply
/// (`feedback`, shipped as an update) and the time its numbers were masked (retention).
pub const CALLBACK_COLUMNS_SET_LATER: [&str; 2] = ["rejected_by_sinch", "redacted_at"];

/// The columns of `errors` set after the row is in: the time its numbers were masked (retention).
pub const ERROR_COLUMNS_SET_LATER: [&str; 1] = ["redacted_at"];

/// What the shipper writes into `callbacks`. On the staging path the body goes into the staging
/// table only, where PostgreSQL parses it as `jsonb` once: `body_json` says whether it took it, and
/// the ICE's called and calling numbers are read from it for the console's search. The fast path
/// sends those three values instead, as svamlgate read them ([`body_facts`]). The row keeps the
/// bytes once, in `raw_body`; `c.body` parses them again when read
/// (`migrations/0013_body_stored_once.sql`).
pub const CALLBACKS: Staged<CallbackRecord> = Staged {
    table: "callbacks",
    staging: "ship_callbacks",
    staging_only: &["body"],
    columns: &[
        col("id", PgType::Uuid, |r, o| {
            o.uuid(r.callback.id);
        }),
        col("reference", PgType::Text, |r, o| {
            o.text(&r.callback.reference);
        }),
        col("received_at", PgType::Timestamptz, |r, o| {
            o.timestamp(r.callback.received_at);
        }),
        col("event_type", PgType::Text, |r, o| {
            o.text(r.callback.event_type.as_str());
        }),
        col("event_known", PgType::Bool, |r, o| {
            o.bool(r.callback.event_known);
        }),
        col("callid", PgType::Text, |r, o| {
            o.opt_text(r.callback.callid.as_deref());
        }),
        col("application_key", PgType::Text, |r, o| {
            o.opt_text(r.callback.application_key.as_deref());
        }),
        col("event_timestamp", PgType::Timestamptz, |r, o| {
            o.opt_timestamp(r.callback.event_timestamp);
        }),
        col("raw_body", PgType::Bytea, |r, o| {
            o.bytea(&r.callback.raw_body);
        }),
        col("body", PgType::Jsonb, |r, o| {
            o.opt_jsonb(body_json(&r.callback));
        }),
        col("parse_warnings", PgType::Jsonb, |r, o| {
            let warnings = r.callback.parse_warnings.as_ref().map(|w| w.to_string());
            o.opt_jsonb(warnings.as_deref());
        }),
        col("signature", PgType::Text, |r, o| {
            o.text(r.callback.signature.as_str());
        }),
        col("dedup_key", PgType::Text, |r, o| {
            o.opt_text(r.callback.dedup_key.as_deref());
        }),
        col("remote_addr", PgType::Text, |r, o| {
            o.opt_text(r.callback.remote_addr.as_deref());
        }),
        col("path", PgType::Text, |r, o| {
            o.text(&r.callback.path);
        }),
        col("duplicate_of", PgType::Uuid, |r, o| {
            o.opt_uuid(r.duplicate_of);
        }),
        col("http_status", PgType::Int2, |r, o| {
            o.int2(i16::try_from(r.outcome.http_status).unwrap_or(i16::MAX));
        }),
        col("reply_id", PgType::Uuid, |r, o| {
            o.opt_uuid(
                r.outcome
                    .reply
                    .as_deref()
                    .map(|v| documents::id_of(v.get())),
            );
        }),
        col("reply_source", PgType::Text, |r, o| {
            o.text(r.outcome.reply_source.as_str());
        }),
        col("fallback_reason", PgType::Text, |r, o| {
            o.opt_text(r.outcome.fallback_reason.map(|r| r.as_str()));
        }),
        col("validation_id", PgType::Uuid, |r, o| {
            o.opt_uuid(
                r.outcome
                    .validation
                    .as_deref()
                    .map(|v| documents::id_of(v.get())),
            );
        }),
        col("latency_us", PgType::Int8, |r, o| {
            o.int8(r.outcome.latency_us);
        }),
        col("flow_id", PgType::Int8, |r, o| {
            o.opt_int8(r.outcome.flow_id);
        }),
        col("flow_version", PgType::Int4, |r, o| {
            o.opt_int4(r.outcome.flow_version);
        }),
        col("flow_node", PgType::Text, |r, o| {
            o.opt_text(r.outcome.flow_node.as_deref());
        }),
        col("route_id", PgType::Int8, |r, o| {
            o.opt_int8(r.outcome.route_id);
        }),
        col("gate_verdict", PgType::Text, |r, o| {
            o.opt_text(r.outcome.gate_verdict.map(|v| v.as_str()));
        }),
    ],
    derived: &[
        Derived {
            name: "body_json",
            ty: PgType::Bool,
            expr: "body IS NOT NULL",
            value: |f, o| {
                o.bool(f.json);
            },
        },
        Derived {
            name: "called",
            ty: PgType::Text,
            expr: "CASE WHEN event_type = 'ice' THEN body->'to'->>'endpoint' END",
            value: |f, o| {
                o.opt_text(f.called.as_deref());
            },
        },
        Derived {
            name: "caller",
            ty: PgType::Text,
            expr: "CASE WHEN event_type = 'ice' THEN body->>'cli' END",
            value: |f, o| {
                o.opt_text(f.caller.as_deref());
            },
        },
    ],
    conflict: "ON CONFLICT (id) DO NOTHING",
};

/// What the shipper writes into `errors`.
pub const ERRORS: Staged<ErrorRecord> = Staged {
    table: "errors",
    staging: "ship_errors",
    staging_only: &[],
    columns: &[
        col("reference", PgType::Text, |r, o| {
            o.text(&r.reference);
        }),
        col("occurred_at", PgType::Timestamptz, |r, o| {
            o.opt_timestamp(r.occurred_at);
        }),
        col("error_code", PgType::Int4, |r, o| {
            o.int4(error_code(r));
        }),
        col("http_status", PgType::Int2, |r, o| {
            o.int2(i16::try_from(r.http_status).unwrap_or(i16::MAX));
        }),
        col("status", PgType::Text, |r, o| {
            o.text(&r.status);
        }),
        col("message", PgType::Text, |r, o| {
            o.text(&r.message);
        }),
        col("method", PgType::Text, |r, o| {
            o.opt_text(r.method.as_deref());
        }),
        col("path", PgType::Text, |r, o| {
            o.opt_text(r.path.as_deref());
        }),
        col("remote_addr", PgType::Text, |r, o| {
            o.opt_text(r.remote_addr.as_deref());
        }),
        col("callback_id", PgType::Uuid, |r, o| {
            o.opt_uuid(r.callback_id);
        }),
        col("detail", PgType::Jsonb, |r, o| {
            let detail = r.detail.as_ref().map(|d| d.to_string());
            o.opt_jsonb(detail.as_deref());
        }),
    ],
    derived: &[],
    conflict: "ON CONFLICT (reference) DO NOTHING",
};

/// What the shipper writes into `refusals` (only for errors that carry a refusal).
pub const REFUSALS: Staged<ErrorRecord> = Staged {
    table: "refusals",
    staging: "ship_refusals",
    staging_only: &[],
    columns: &[
        col("reference", PgType::Text, |r, o| {
            o.text(&r.reference);
        }),
        col("received_at", PgType::Timestamptz, |r, o| {
            o.opt_timestamp(r.occurred_at);
        }),
        col("reason", PgType::Text, |r, o| {
            o.opt_text(r.refusal.as_ref().map(|x| x.reason.as_str()));
        }),
        col("error_code", PgType::Int4, |r, o| {
            o.int4(error_code(r));
        }),
        col("application_key", PgType::Text, |r, o| {
            o.opt_text(
                r.refusal
                    .as_ref()
                    .and_then(|x| x.application_key.as_deref()),
            );
        }),
        col("remote_addr", PgType::Text, |r, o| {
            o.opt_text(r.remote_addr.as_deref());
        }),
        col("method", PgType::Text, |r, o| {
            o.text(r.method.as_deref().unwrap_or("POST"));
        }),
        col("path", PgType::Text, |r, o| {
            o.text(r.path.as_deref().unwrap_or_default());
        }),
        col("headers", PgType::Jsonb, |r, o| {
            let headers = r.refusal.as_ref().map(|x| x.headers.to_string());
            o.opt_jsonb(headers.as_deref());
        }),
        col("body_sha256", PgType::Text, |r, o| {
            o.opt_text(r.refusal.as_ref().map(|x| x.body_sha256.as_str()));
        }),
        col("body_bytes", PgType::Int4, |r, o| {
            o.opt_int4(
                r.refusal
                    .as_ref()
                    .map(|x| i32::try_from(x.body_bytes).unwrap_or(i32::MAX)),
            );
        }),
        col("explanation", PgType::Jsonb, |r, o| {
            let explanation = r
                .refusal
                .as_ref()
                .and_then(|x| x.explanation.as_ref())
                .and_then(|x| serde_json::to_string(x).ok());
            o.opt_jsonb(explanation.as_deref());
        }),
        col("cause", PgType::Text, |r, o| {
            let cause = r.refusal.as_ref().and_then(|x| x.explanation.as_ref());
            o.opt_text(cause.map(|x| x.cause.as_str()));
        }),
        col("answered", PgType::Bool, |r, o| {
            o.bool(r.refusal.as_ref().is_some_and(|x| x.answered));
        }),
        col("summary_count", PgType::Int8, |r, o| {
            let s = r.refusal.as_ref().and_then(|x| x.summary.as_ref());
            o.opt_int8(s.map(|s| i64::try_from(s.count).unwrap_or(i64::MAX)));
        }),
        col("first_at", PgType::Timestamptz, |r, o| {
            let s = r.refusal.as_ref().and_then(|x| x.summary.as_ref());
            o.opt_timestamp(s.map(|s| s.first_at));
        }),
        col("last_at", PgType::Timestamptz, |r, o| {
            let s = r.refusal.as_ref().and_then(|x| x.summary.as_ref());
            o.opt_timestamp(s.map(|s| s.last_at));
        }),
        col("peer", PgType::Text, |r, o| {
            let s = r.refusal.as_ref().and_then(|x| x.summary.as_ref());
            o.opt_text(s.map(|s| s.peer.as_str()));
        }),
    ],
    derived: &[],
    conflict: "ON CONFLICT (reference) DO NOTHING",
};

fn error_code(e: &ErrorRecord) -> i32 {
    i32::try_from(e.error_code).unwrap_or(i32::MAX)
}

/// The state a callback set on its call (`None` for an ended call or no change).
fn set_state(r: &CallbackRecord) -> Option<(&str, &CallState)> {
    match &r.call_state {
        Some(CallStateChange::Set { callid, state }) => Some((callid.as_str(), state)),
        _ => None,
    }
}

/// What the shipper writes into `call_state`: one row per call, from the callback whose change was the
/// call's last of the batch (its arrival time is the state's time).
pub const CALL_STATES: Staged<CallbackRecord> = Staged {
    table: "call_state",
    staging: "ship_call_state",
    staging_only: &[],
    columns: &[
        col("callid", PgType::Text, |r, o| {
            o.opt_text(set_state(r).map(|(c, _)| c));
        }),
        col("route_id", PgType::Int8, |r, o| {
            o.opt_int8(set_state(r).and_then(|(_, s)| s.route_id));
        }),
        col("flow_id", PgType::Int8, |r, o| {
            o.opt_int8(set_state(r).and_then(|(_, s)| s.flow_id));
        }),
        col("flow_version", PgType::Int4, |r, o| {
            o.opt_int4(set_state(r).and_then(|(_, s)| s.flow_version));
        }),
        col("node", PgType::Text, |r, o| {
            o.opt_text(set_state(r).and_then(|(_, s)| s.node.as_deref()));
        }),
        col("context", PgType::Jsonb, |r, o| {
            let context = set_state(r).map(|(c, s)| context_for_row(&s.context, c));
            o.jsonb(context.as_deref().unwrap_or("null"));
        }),
        col("updated_at", PgType::Timestamptz, |r, o| {
            o.timestamp(r.callback.received_at);
        }),
    ],
    derived: &[],
    conflict: "ON CONFLICT (callid) DO UPDATE SET route_id = EXCLUDED.route_id, flow_id = EXCLUDED.flow_id, \
        flow_version = EXCLUDED.flow_version, node = EXCLUDED.node, context = EXCLUDED.context, \
        updated_at = EXCLUDED.updated_at WHERE call_state.updated_at <= EXCLUDED.updated_at",
};

/// The records of a batch by kind, shipped in one transaction.
#[derive(Default)]
struct Part<'a> {
    /// Callback rows, with their errors, rejected replies and upstream exchanges.
    callbacks: Vec<&'a CallbackRecord>,
    /// Errors recorded on their own.
    errors: Vec<&'a ErrorRecord>,
    /// Callbacks whose Sinch report marks an earlier reply (after that reply's row is in).
    reports: Vec<&'a CallbackRecord>,
    /// Stages of requests to Sinch, in journal order.
    outbound: Vec<&'a OutboundRecord>,
}

impl<'a> Part<'a> {
    fn of(records: &[&'a Record]) -> Part<'a> {
        let mut p = Part::default();
        for r in records {
            match r {
                Record::Callback(c) => p.callbacks.push(c),
                Record::Error(e) => p.errors.push(e),
                Record::Outbound(o) => p.outbound.push(o),
            }
        }
        p.reports = p
            .callbacks
            .iter()
            .copied()
            .filter(|c| c.sinch_report.is_some())
            .collect();
        p
    }
}

impl Store {
    /// Writes a batch of journal records in one transaction (encoded here; the shipper's batches
    /// are encoded ahead, [`Store::ship_batch`]).
    pub async fn ship(&self, records: &[&Record]) -> Result<(), sqlx::Error> {
        let p = Part::of(records);
        self.write_part(&p, &Encoded::of(&p), &mut Steps::default(), Commit::Flushed)
            .await
            .map(|_| ())
    }

    /// Writes a batch encoded ahead of time ([`Batch::new`]) in one transaction. The wall time of
    /// its steps is added to `steps`. With [`Commit::Deferred`] it returns where its commit is
    /// durable ([`Deferred`]).
    pub async fn ship_batch(
        &self,
        batch: &Batch,
        steps: &mut Steps,
        commit: Commit,
    ) -> Result<Option<Deferred>, sqlx::Error> {
        let records: Vec<&Record> = batch.records.iter().collect();
        let part = Part::of(&records);
        let marked = self
            .write_part(&part, &batch.encoded, steps, commit)
            .await?;
        let Commit::Deferred(mark) = commit else {
            return Ok(None);
        };
        let started = Instant::now();
        let mut deferred = self.wal_positions(mark).await?;
        steps.commit += started.elapsed();
        // The mark was there before this transaction wrote it: no crash since the last one.
        deferred.intact = marked;
        Ok(Some(deferred))
    }

    /// PostgreSQL's WAL positions now: every transaction committed before this call is durable
    /// once the flushed position reaches the returned `lsn`; and whether the shipper's `mark`
    /// (`ship_marks`, written by each deferred commit) is still there (for a deferred batch,
    /// [`Store::ship_batch`] says instead whether it was there before the batch wrote it).
    pub async fn wal_positions(&self, mark: Uuid) -> Result<Deferred, sqlx::Error> {
        let (lsn, flushed, intact): (i64, i64, bool) = sqlx::query_as(
            "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint, (pg_current_wal_flush_lsn() - '0/0')::bigint, \
             EXISTS (SELECT 1 FROM ship_marks WHERE token = $1)",
        )
        .bind(mark)
        .fetch_one(self.pool())
        .await?;
        Ok(Deferred {
            lsn: u64::try_from(lsn).unwrap_or(0),
            flushed: u64::try_from(flushed).unwrap_or(0),
            intact,
        })
    }

    /// Writes `p`, whose COPY payloads are `e`, in one transaction: by the fast path, and when a
    /// unique constraint refuses it (some of its rows are in PostgreSQL already: a batch shipped
    /// again), by the staging path, whose statements skip the rows already in.
    async fn write_part(
        &self,
        p: &Part<'_>,
        e: &Encoded,
        steps: &mut Steps,
        commit: Commit,
    ) -> Result<bool, sqlx::Error> {
        if !FAST_PATH.load(Ordering::Relaxed) {
            return self.write_tx(p, e, Path::Staged, steps, commit).await;
        }
        match self.write_tx(p, e, Path::Fast, steps, commit).await {
            Err(err) if is_unique_violation(&err) => {
                STAGED_AGAIN.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %err, "a batch is in PostgreSQL already, in part or whole; shipping it through the staging tables");
                self.write_tx(p, e, Path::Staged, steps, commit).await
            }
            result => result,
        }
    }

    /// Writes `p` in one transaction by `path`. A failed transaction is rolled back (the
    /// connection does it before it is used again). Returns whether the shipper's mark was in
    /// `ship_marks` already ([`Commit::Deferred`]; true otherwise).
    async fn write_tx(
        &self,
        p: &Part<'_>,
        e: &Encoded,
        path: Path,
        steps: &mut Steps,
        commit: Commit,
    ) -> Result<bool, sqlx::Error> {
        let started = Instant::now();
        let mut tx = self.pool().begin().await?;
        let mut marked = true;
        if let Commit::Deferred(mark) = commit {
            // One round trip; the token is a uuid svamlgate made, not input. A row inserted
            // means the mark was gone.
            let written = sqlx::raw_sql(AssertSqlSafe(format!(
                "SET LOCAL synchronous_commit = off; \
                 INSERT INTO ship_marks (token) VALUES ('{mark}') ON CONFLICT DO NOTHING"
            )))
            .execute(&mut *tx)
            .await?;
            marked = written.rows_affected() == 0;
        }
        // The replies and reports before the rows that point at them (a sweep keeps them).
        documents::store(&mut tx, &e.replies, &e.reports).await?;
        steps.copy += started.elapsed();
        // The callbacks the staging table inserted (not already there), counted for the console
        // beside those the fast path COPYs (all of which are new, or the transaction fails).
        let inserted = match path {
            Path::Fast => {
                CALLBACKS.write_direct(&mut tx, &e.callbacks, steps).await?;
                let inserted = CALLBACKS
                    .write_inserted(&mut tx, &e.callbacks_unsure, steps)
                    .await?;
                ERRORS.write_direct(&mut tx, &e.errors, steps).await?;
                REFUSALS.write_direct(&mut tx, &e.refusals, steps).await?;
                inserted
            }
            Path::Staged => {
                // Encoded for the fast path: its callbacks again, all for the staging table.
                let again;
                let all = if e.callbacks.rows() == 0 {
                    &e.callbacks_unsure
                } else {
                    again = CALLBACKS.copy_rows(p.callbacks.iter().copied());
                    &again
                };
                let inserted = CALLBACKS.write_inserted(&mut tx, all, steps).await?;
                ERRORS.write(&mut tx, &e.errors, steps).await?;
                REFUSALS.write(&mut tx, &e.refusals, steps).await?;
                inserted
            }
        };
        let started = Instant::now();
        let mut counts = match path {
            Path::Fast => e.counts.clone(),
            Path::Staged => ConsoleCounts::default(),
        };
        if !inserted.is_empty() {
            for c in &p.callbacks {
                if inserted.contains(&c.callback.id) {
                    counts.add(c);
                }
            }
        }
        counts.write(&mut tx).await?;
        for c in &p.callbacks {
            write_rare_rows(&mut tx, c).await?;
        }
        if !e.ended.is_empty() {
            sqlx::query(
                "DELETE FROM call_state c USING unnest($1::text[], $2::timestamptz[]) AS e (callid, at) \
                 WHERE c.callid = e.callid AND c.updated_at <= e.at",
            )
            .bind(&e.ended)
            .bind(&e.ended_at)
            .execute(&mut *tx)
            .await?;
        }
        steps.insert += started.elapsed();
        match path {
            Path::Fast => {
                CALL_STATES
                    .write_direct(&mut tx, &e.new_calls, steps)
                    .await?
            }
            Path::Staged => CALL_STATES.write(&mut tx, &e.new_calls, steps).await?,
        }
        CALL_STATES.write(&mut tx, &e.states, steps).await?;
        let started = Instant::now();
        for c in &p.reports {
            if let Some(report) = &c.sinch_report {
                mark_rejected_by_sinch(&mut tx, c, report).await?;
            }
        }
        for o in &p.outbound {
            ship_outbound(&mut tx, o).await?;
        }
        let committing = Instant::now();
        steps.insert += committing - started;
        tx.commit().await?;
        steps.commit += committing.elapsed();
        Ok(marked)
    }
}

/// A callback's rows that are rare (one statement each): its rejected reply and its upstream
/// exchange.
async fn write_rare_rows(tx: &mut Tx<'_>, c: &CallbackRecord) -> Result<(), sqlx::Error> {
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
        .execute(&mut **tx)
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
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// How a batch's transaction commits ([`Store::ship_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// `COMMIT` returns once PostgreSQL has made it durable (its `synchronous_commit` setting).
    Flushed,
    /// `SET LOCAL synchronous_commit = off`: `COMMIT` returns before PostgreSQL flushes it to disk
    /// (its WAL writer does, within three times `wal_writer_delay`). The rows are visible at once;
    /// they are durable once the flushed WAL position reaches [`Deferred::lsn`], and a PostgreSQL
    /// crash before that may lose them, so the caller keeps the batch until then. The shipper's
    /// mark is written into `ship_marks` (unlogged: emptied by crash recovery) in the same
    /// transaction ([`Deferred::intact`]).
    Deferred(Uuid),
}

/// Where a [`Commit::Deferred`] commit stands: durable once PostgreSQL's flushed WAL position
/// reaches `lsn`; `flushed` is that position when it was read. Positions compare only while the
/// server has not crashed since the commit (`intact`): recovery may write WAL again below a
/// commit it lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    /// WAL position (bytes) read after the commit returned.
    pub lsn: u64,
    /// WAL position flushed to disk, read at the same time.
    pub flushed: u64,
    /// Whether the shipper's mark was in `ship_marks` (before the batch wrote it again): false
    /// after a crash of the server (a restart, or the postmaster reinitialising after a backend
    /// crashed), and before the shipper's first deferred commit.
    pub intact: bool,
}

/// How a part is written: [`Store::write_part`].
#[derive(Debug, Clone, Copy)]
enum Path {
    /// `COPY` straight into the tables; refused as a whole (`23505`) when a row is in already.
    Fast,
    /// Through the staging tables and `INSERT … SELECT … ON CONFLICT DO NOTHING`.
    Staged,
}

/// Batches that the fast path found in PostgreSQL already, in part or whole, and
/// that went through the staging tables: [`staged_again`].
static STAGED_AGAIN: AtomicU64 = AtomicU64::new(0);

/// How many batches this process shipped again through the
/// staging tables because some of their rows were in PostgreSQL already.
pub fn staged_again() -> u64 {
    STAGED_AGAIN.load(Ordering::Relaxed)
}

static FAST_PATH: AtomicBool = AtomicBool::new(true);

/// Whether batches try the fast path first (the default), or go through the staging tables only
/// (the shipper before it: for measurements, `tests/api/ship.rs`).
pub fn set_fast_path(on: bool) {
    FAST_PATH.store(on, Ordering::Relaxed);
}

/// Whether PostgreSQL refused a statement for a unique constraint (`23505`).
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// The COPY payloads of a part and its call-state changes, encoded before its transaction begins
/// (so that the shipper can encode the next batch while PostgreSQL works on this one). Errors and
/// refusals have no staging-only or derived columns: one payload serves both paths.
struct Encoded {
    /// The fast path's callbacks ([`Staged::direct_rows`]): those whose body facts are sure.
    callbacks: CopyRows,
    /// The fast path's other callbacks, for the staging table (nearly always none).
    callbacks_unsure: CopyRows,
    errors: CopyRows,
    refusals: CopyRows,
    /// The last state each call of the part was set to.
    states: CopyRows,
    /// The same for calls whose ICE is in the part: no row of theirs is expected in `call_state`
    /// yet, so the fast path COPYs them straight into it (a row already there refuses the batch).
    new_calls: CopyRows,
    /// Calls whose last change ended them, with the time of that change.
    ended: Vec<String>,
    ended_at: Vec<OffsetDateTime>,
    /// The distinct replies the callbacks point at (`replies`, stored before them).
    replies: documents::Distinct,
    /// The distinct reports the callbacks point at (`reports`, stored before them).
    reports: documents::Distinct,
    /// The console's counts of the fast path's callbacks (`callbacks`).
    counts: ConsoleCounts,
}

impl Encoded {
    fn of(p: &Part<'_>) -> Encoded {
        let mut errors: Vec<&ErrorRecord> =
            p.callbacks.iter().flat_map(|c| c.errors.iter()).collect();
        errors.extend(p.errors.iter().copied());
        // An error recorded without its time (a journal of an older release) gets one, the same
        // in errors and refusals.
        let now = OffsetDateTime::now_utc();
        let errors: Vec<Cow<'_, ErrorRecord>> = errors
            .into_iter()
            .map(|e| match e.occurred_at {
                Some(_) => Cow::Borrowed(e),
                None => Cow::Owned(ErrorRecord {
                    occurred_at: Some(now),
                    ..e.clone()
                }),
            })
            .collect();
        let CallStates {
            sets,
            new_calls,
            ended,
            ended_at,
        } = last_call_states(&p.callbacks);
        let mut sure = Vec::with_capacity(p.callbacks.len());
        let mut unsure = Vec::new();
        for c in &p.callbacks {
            match FAST_PATH
                .load(Ordering::Relaxed)
                .then(|| body_facts(&c.callback))
                .flatten()
            {
                Some(facts) => sure.push((*c, facts)),
                None => unsure.push(*c),
            }
        }
        let mut counts = ConsoleCounts::default();
        for (c, _) in &sure {
            counts.add(c);
        }
        Encoded {
            counts,
            callbacks: CALLBACKS.direct_rows(sure),
            callbacks_unsure: CALLBACKS.copy_rows(unsure),
            errors: ERRORS.copy_rows(errors.iter().map(|e| e.as_ref())),
            refusals: REFUSALS.copy_rows(
                errors
                    .iter()
                    .map(|e| e.as_ref())
                    .filter(|e| e.refusal.is_some()),
            ),
            states: CALL_STATES.copy_rows(sets),
            new_calls: CALL_STATES.copy_rows(new_calls),
            ended,
            ended_at,
            replies: documents::Distinct::of(
                Kind::Reply,
                p.callbacks
                    .iter()
                    .filter_map(|c| c.outcome.reply.as_deref().map(RawValue::get)),
            ),
            reports: documents::Distinct::of(
                Kind::Report,
                p.callbacks
                    .iter()
                    .filter_map(|c| c.outcome.validation.as_deref().map(RawValue::get)),
            ),
        }
    }
}

/// A group of the console's callbacks: the minute (Unix time / 60), event type, reply source,
/// fallback reason and gate verdict, as recorded (texts only when written).
type MinuteKey = (
    i64,
    EventKind,
    ReplySource,
    Option<FallbackReason>,
    Option<GateVerdict>,
);

/// A group of the gate's findings: the minute, the finding's code, severity and source (`->>` of
/// its keys, empty for NULL) and the reply's gate verdict.
type FindingKey = (i64, String, String, String, Option<GateVerdict>);

/// The console's per-minute counts of the callbacks a transaction inserts: callbacks by event
/// type, reply source, fallback reason and gate verdict (`console_minutes`), and the gate's
/// findings by rule code, severity, source and gate verdict (`console_rule_minutes`). Added by
/// `console_add_counts` (`migrations/0018_console_counts_by_the_shipper.sql`) in the transaction
/// that inserts the rows, so that they commit together. The groups are those of the trigger this
/// replaced (`0012`): `date_trunc('minute', received_at)`, the columns' text or empty, and for
/// findings each element of the report's `violations` array with `->>` of its keys; the tests
/// compare them with that query over the rows.
#[derive(Debug, Default, Clone, PartialEq)]
struct ConsoleCounts {
    callbacks: HashMap<MinuteKey, i64>,
    findings: HashMap<FindingKey, i64>,
}

impl ConsoleCounts {
    /// Counts `c`.
    fn add(&mut self, c: &CallbackRecord) {
        let minute = c.callback.received_at.unix_timestamp().div_euclid(60);
        let verdict = c.outcome.gate_verdict;
        *self
            .callbacks
            .entry((
                minute,
                c.callback.event_type.clone(),
                c.outcome.reply_source,
                c.outcome.fallback_reason,
                verdict,
            ))
            .or_default() += 1;
        // The report's `violations` alone, parsed only when it is a non-empty array (a valid
        // reply's is `[]`).
        #[derive(serde::Deserialize)]
        struct Report<'a> {
            #[serde(borrow)]
            violations: Option<&'a RawValue>,
        }
        let Some(Report {
            violations: Some(violations),
        }) = c
            .outcome
            .validation
            .as_deref()
            .and_then(|r| serde_json::from_str::<Report<'_>>(r.get()).ok())
        else {
            return;
        };
        if !violations.get().starts_with('[') || violations.get() == "[]" {
            return;
        }
        let Ok(violations) = serde_json::from_str::<Vec<serde_json::Value>>(violations.get())
        else {
            return;
        };
        for v in &violations {
            *self
                .findings
                .entry((
                    minute,
                    json_text(v.get("code")),
                    json_text(v.get("severity")),
                    json_text(v.get("source")),
                    verdict,
                ))
                .or_default() += 1;
        }
    }

    /// Adds the counts in `tx` (nothing when there are none).
    async fn write(&self, tx: &mut Tx<'_>) -> Result<(), sqlx::Error> {
        if self.callbacks.is_empty() && self.findings.is_empty() {
            return Ok(());
        }
        // As the columns hold them, in key order (two instances' upserts take the rows' locks
        // in the same order).
        type Columns = (
            Vec<OffsetDateTime>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<String>,
            Vec<i64>,
        );
        fn columns(groups: impl Iterator<Item = (i64, [String; 4], i64)>) -> Columns {
            let mut rows: Vec<_> = groups.collect();
            rows.sort_unstable();
            let mut out = Columns::default();
            for (minute, [a, b, c, d], n) in rows {
                out.0.push(
                    OffsetDateTime::from_unix_timestamp(minute.saturating_mul(60))
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                );
                out.1.push(a);
                out.2.push(b);
                out.3.push(c);
                out.4.push(d);
                out.5.push(n);
            }
            out
        }
        let text = |v: Option<&'static str>| v.unwrap_or("").to_owned();
        let m = columns(self.callbacks.iter().map(|((minute, e, s, f, g), n)| {
            let texts = [
                e.as_str().to_owned(),
                s.as_str().to_owned(),
                text(f.map(|f| f.as_str())),
                text(g.map(|g| g.as_str())),
            ];
            (*minute, texts, *n)
        }));
        let r = columns(
            self.findings
                .iter()
                .map(|((minute, code, severity, source, g), n)| {
                    let texts = [
                        code.clone(),
                        severity.clone(),
                        source.clone(),
                        text(g.map(|g| g.as_str())),
                    ];
                    (*minute, texts, *n)
                }),
        );
        sqlx::query("SELECT console_add_counts($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
            .bind(m.0)
            .bind(m.1)
            .bind(m.2)
            .bind(m.3)
            .bind(m.4)
            .bind(m.5)
            .bind(r.0)
            .bind(r.1)
            .bind(r.2)
            .bind(r.3)
            .bind(r.4)
            .bind(r.5)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// What PostgreSQL's `->>` gives of a JSON value, `coalesce`d to empty: a string's text, another
/// value's JSON, empty for null or a missing key.
fn json_text(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A batch of journal records with its COPY payloads encoded: what [`Store::ship_batch`] writes.
pub struct Batch {
    records: Vec<Record>,
    encoded: Encoded,
}

impl Batch {
    /// Encodes `records` for [`Store::ship_batch`].
    pub fn new(records: Vec<Record>) -> Batch {
        let encoded = {
            let refs: Vec<&Record> = records.iter().collect();
            Encoded::of(&Part::of(&refs))
        };
        Batch { records, encoded }
    }

    /// The records, in journal order.
    pub fn records(&self) -> &[Record] {
        &self.records
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
    crate::db::outbound::insert_request(&mut **tx, &o.request, o.created_at).await?;
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
        .bind(o.request.id)
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

/// What the fast path writes of a callback's body instead of having PostgreSQL parse it: the
/// values of [`CALLBACKS`]' derived columns.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BodyFacts {
    /// `body_json`: the body is JSON that `jsonb` takes.
    pub json: bool,
    /// `called`: an ICE's `to.endpoint`, as `->>` reads it.
    pub called: Option<String>,
    /// `caller`: an ICE's `cli`, as `->>` reads it.
    pub caller: Option<String>,
}

/// The values PostgreSQL would derive from the body on the staging path ([`CALLBACKS`]' derived
/// expressions), read by svamlgate; `None` when it cannot be sure they are the same, and the row
/// goes through the staging table: a body `jsonb` might refuse or read otherwise than serde_json
/// ([`plain_for_jsonb`]), a duplicated `cli` or `to` key (`jsonb` keeps the last, serde refuses),
/// or a `cli` or `to.endpoint` that is not a string or null (`->>` writes `jsonb`'s text of it).
pub fn body_facts(c: &super::NewCallback) -> Option<BodyFacts> {
    #[derive(serde::Deserialize)]
    struct Ice<'a> {
        #[serde(borrow)]
        cli: Option<&'a RawValue>,
        #[serde(borrow)]
        to: Option<&'a RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct To<'a> {
        #[serde(borrow)]
        endpoint: Option<&'a RawValue>,
    }
    /// `->>` of a value: a string unescaped, NULL for JSON null or an absent key.
    fn text(v: Option<&RawValue>) -> Option<Option<String>> {
        match v {
            None => Some(None),
            Some(v) if v.get().starts_with('"') => serde_json::from_str(v.get()).ok().map(Some),
            Some(_) => None,
        }
    }
    let Some(body) = body_json(c) else {
        return Some(BodyFacts::default());
    };
    if !plain_for_jsonb(body) {
        return None;
    }
    if c.event_type.as_str() != "ice" {
        return Some(BodyFacts {
            json: true,
            ..BodyFacts::default()
        });
    }
    let ice: Ice<'_> = serde_json::from_str(body).ok()?;
    let called = match ice.to {
        // `->` of a key of anything but an object is NULL.
        Some(to) if to.get().starts_with('{') => {
            text(serde_json::from_str::<To<'_>>(to.get()).ok()?.endpoint)?
        }
        _ => None,
    };
    Some(BodyFacts {
        json: true,
        called,
        caller: text(ice.cli)?,
    })
}

/// Whether `jsonb` surely takes a JSON text that serde_json took, and reads it the same: no number
/// with an exponent or a run of more than 1,000 digits (`numeric` has bounds serde's `f64` has not,
/// and the other way round), and no `\u` escape beyond ASCII (surrogates, which `jsonb` checks
/// otherwise; code points a database not in UTF-8 cannot hold). Bodies Sinch sends have none.
fn plain_for_jsonb(text: &str) -> bool {
    let b = text.as_bytes();
    let mut in_string = false;
    let mut digits = 0usize;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if in_string {
            match c {
                b'"' => in_string = false,
                b'\\' => {
                    if b.get(i + 1) == Some(&b'u') {
                        let ascii = b.get(i + 2..i + 4) == Some(b"00".as_slice())
                            && b.get(i + 4).is_some_and(|h| (b'0'..=b'7').contains(h));
                        if !ascii {
                            return false;
                        }
                    }
                    i += 1;
                }
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'0'..=b'9' => {
                    digits += 1;
                    if digits > 1000 {
                        return false;
                    }
                    i += 1;
                    continue;
                }
                b'e' | b'E'
                    if i > 0
                        && b.get(i - 1)
                            .is_some_and(|p| p.is_ascii_digit() || *p == b'.') =>
                {
                    return false;
                }
                _ => {}
            }
            digits = 0;
        }
        i += 1;
    }
    true
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
           SELECT id FROM callbacks WHERE callid = $2 AND id <> $3 AND reply_id IS NOT NULL \
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

/// A batch's call-state changes, the last change of each call winning ([`last_call_states`]).
struct CallStates<'a> {
    /// Callbacks whose change set a state, of calls that began before the batch.
    sets: Vec<&'a CallbackRecord>,
    /// The same, of calls whose ICE (not a replay) is in the batch.
    new_calls: Vec<&'a CallbackRecord>,
    /// Calls that ended, and when.
    ended: Vec<String>,
    ended_at: Vec<OffsetDateTime>,
}

/// The batch's call-state changes, the last change of each call winning: the callbacks whose
/// change set a state (apart, those of calls the batch opened), and the calls that ended with when.
/// A stored state written later (by another instance) than the change is kept (the statements'
/// conditions; on the fast path, a row of a call the batch opened sends the batch through the
/// staging path, whose upsert keeps it).
fn last_call_states<'a>(callbacks: &[&'a CallbackRecord]) -> CallStates<'a> {
    let mut last: HashMap<&str, &CallbackRecord> = HashMap::new();
    let mut opened: HashSet<&str> = HashSet::new();
    for c in callbacks {
        if let Some(change) = &c.call_state {
            let callid = match change {
                CallStateChange::Set { callid, .. } | CallStateChange::Ended { callid } => callid,
            };
            last.insert(callid.as_str(), c);
            if c.callback.event_type == EventKind::Ice && c.duplicate_of.is_none() {
                opened.insert(callid.as_str());
            }
        }
    }
    let mut states = CallStates {
        sets: Vec::new(),
        new_calls: Vec::new(),
        ended: Vec::new(),
        ended_at: Vec::new(),
    };
    for (callid, c) in last {
        if set_state(c).is_none() {
            states.ended.push(callid.to_owned());
            states.ended_at.push(c.callback.received_at);
        } else if opened.contains(callid) {
            states.new_calls.push(c);
        } else {
            states.sets.push(c);
        }
    }
    states
}
