//! Persistence of flows that change safely: draft versions, publications (with the coverage check
//! and whether it was forced), the calls in progress of each version, the stored calls a replay
//! re-drives, and the differences shadow evaluation finds.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::flows::{FlowSummary, SaveError};
use super::store::Store;
use crate::flows::replay::{RecordedCall, RecordedEvent};

/// Differences kept per shadowed flow version (older ones are deleted).
pub const SHADOW_KEEP: i64 = 1_000;

/// Most calls one replay takes.
pub const MAX_REPLAY_CALLS: i64 = 500;

/// One version of a flow, as the admin API lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Version number.
    pub version: i32,
    /// `draft` (never live) or `published` (live at least once).
    #[schema(example = "draft")]
    pub status: String,
    /// Whether new calls get this version.
    pub live: bool,
    /// When it was saved.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it last became live (null for a draft).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub published_at: Option<OffsetDateTime>,
    /// Whether it last became live with `force` over coverage errors.
    pub forced: bool,
    /// Calls in progress pinned to this version (they finish on it).
    pub calls_in_progress: i64,
    /// No call in progress is pinned to it (a version that is not live and drained can be
    /// forgotten by the operator).
    pub drained: bool,
}

/// What a publish did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// The flow after it.
    pub flow: FlowSummary,
    /// The version that was live before.
    pub previous_version: i32,
}

/// Which stored calls a replay takes.
#[derive(Debug, Clone, Default)]
pub struct CallSelection {
    /// These call ids.
    pub callids: Vec<String>,
    /// Calls that started at or after this.
    pub since: Option<OffsetDateTime>,
    /// Calls that started before this.
    pub until: Option<OffsetDateTime>,
    /// At most this many, the latest first.
    pub last: i64,
}

/// A difference found by shadow evaluation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ShadowDifference {
    /// Row id.
    pub id: i64,
    /// The route the event came in on.
    pub route_id: Option<i64>,
    /// Sinch call id.
    pub callid: Option<String>,
    /// Reference of the live callback.
    pub callback_reference: Option<String>,
    /// ice, ace or pie.
    #[schema(value_type = String)]
    pub event_type: crate::events::EventKind,
    /// When the live event arrived.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: OffsetDateTime,
    /// The version that answered the live event.
    pub live_version: Option<i32>,
    /// The node that answered it.
    pub live_node: Option<String>,
    /// The candidate's node.
    pub candidate_node: Option<String>,
    /// For a PIE: the key pressed and its meaning in the candidate.
    #[schema(value_type = Option<crate::flows::replay::InputMapping>)]
    pub input: Option<Value>,
    /// The reply sent.
    #[schema(value_type = Option<Object>)]
    pub live_reply: Option<Value>,
    /// The reply the candidate would have sent (after the gate); null when the live input has no
    /// meaning in the candidate (see `note`).
    #[schema(value_type = Option<Object>)]
    pub candidate_reply: Option<Value>,
    /// Whether the gate passed the candidate's reply.
    pub candidate_passed: bool,
    /// Why they differ, in words.
    pub note: Option<String>,
}

/// Totals of a shadowed version.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ShadowTotals {
    /// Live events compared.
    pub compared: i64,
    /// Events whose candidate reply or node differed.
    pub differing: i64,
    /// Candidate replies the gate refused.
    pub refused: i64,
}

/// A stored event of a call a replay re-drives (`callbacks`).
#[derive(sqlx::FromRow)]
struct RecordedRow {
    callid: String,
    reference: String,
    event_type: crate::events::EventKind,
    body: Value,
    reply: Option<Value>,
    flow_version: Option<i32>,
    flow_node: Option<String>,
    received_at: OffsetDateTime,
}

impl Store {
    /// Saves a draft version (one more than the highest version); the live version does not change.
    /// None when the flow does not exist.
    pub async fn save_draft(
        &self,
        id: i64,
        document: &Value,
    ) -> Result<Option<(FlowSummary, i32)>, SaveError> {
        let mut tx = self.pool().begin().await?;
        let row: Option<FlowSummary> = sqlx::query_as(
            "SELECT id, name, current_version, created_at, updated_at FROM flows WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(s) = row else { return Ok(None) };
        let version: i32 = sqlx::query_scalar(
            "INSERT INTO flow_versions (flow_id, version, document, status) \
             SELECT $1, max(version) + 1, $2, 'draft' FROM flow_versions WHERE flow_id = $1 \
             RETURNING version",
        )
        .bind(id)
        .bind(document)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some((s, version)))
    }

    /// The status of one version (`draft` or `published`); None when it does not exist.
    pub async fn version_status(
        &self,
        id: i64,
        version: i32,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT status FROM flow_versions WHERE flow_id = $1 AND version = $2")
            .bind(id)
            .bind(version)
            .fetch_optional(self.pool())
            .await
    }

    /// Makes `version` the live one (the flow takes the version's name) and records the
    /// publication. None when the flow or the version does not exist.
    #[allow(clippy::too_many_arguments)]
    pub async fn publish_version(
        &self,
        id: i64,
        version: i32,
        name: &str,
        forced: bool,
        reason: Option<&str>,
        errors: i32,
        warnings: i32,
        report: Option<&Value>,
    ) -> Result<Option<Published>, SaveError> {
        let mut tx = self.pool().begin().await?;
        let previous: Option<i32> =
            sqlx::query_scalar("SELECT current_version FROM flows WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(previous) = previous else {
            return Ok(None);
        };
        let marked = sqlx::query(
            "UPDATE flow_versions SET status = 'published' WHERE flow_id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            return Ok(None);
        }
        let flow: FlowSummary = sqlx::query_as(
            "UPDATE flows SET current_version = $2, name = $3, updated_at = now() WHERE id = $1 \
             RETURNING id, name, current_version, created_at, updated_at",
        )
        .bind(id)
        .bind(version)
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(super::flows::classify)?;
        sqlx::query(
            "INSERT INTO flow_publications (flow_id, version, previous_version, via, forced, reason, errors, warnings, report) \
             VALUES ($1, $2, $3, 'publish', $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(version)
        .bind(previous)
        .bind(forced)
        .bind(reason)
        .bind(errors)
        .bind(warnings)
        .bind(report)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Published {
            flow,
            previous_version: previous,
        }))
    }

    /// Every version of a flow with its status and the calls in progress pinned to it, as
    /// PostgreSQL knows them (`call_state`; calls idle for longer than
    /// [`crate::flows::state::IDLE_LIMIT`] are not counted). `local` adds the calls this instance holds
    /// in memory, by call id, that the journal has not shipped yet.
    pub async fn version_infos(
        &self,
        id: i64,
        local: &[(String, i32)],
    ) -> Result<Vec<VersionInfo>, sqlx::Error> {
        let idle_secs =
            i64::try_from(crate::flows::state::IDLE_LIMIT.as_secs()).unwrap_or(i64::MAX);
        let (callids, versions): (Vec<String>, Vec<i32>) = local.iter().cloned().unzip();
        sqlx::query_as(
            "WITH stored AS ( \
                 SELECT callid, flow_version FROM call_state \
                 WHERE flow_id = $1 AND updated_at > now() - make_interval(secs => $2) \
             ), mem AS ( \
                 SELECT * FROM unnest($3::text[], $4::int[]) AS m(callid, flow_version) \
             ), calls AS ( \
                 SELECT callid, flow_version FROM mem \
                 UNION SELECT callid, flow_version FROM stored WHERE callid NOT IN (SELECT callid FROM mem) \
             ) \
             SELECT v.version, v.status, v.created_at, (f.current_version = v.version) AS live, \
                    p.published_at, COALESCE(p.forced, false) AS forced, \
                    n.in_progress AS calls_in_progress, n.in_progress = 0 AS drained \
             FROM flow_versions v JOIN flows f ON f.id = v.flow_id \
             LEFT JOIN LATERAL (SELECT published_at, forced FROM flow_publications p \
                                WHERE p.flow_id = v.flow_id AND p.version = v.version \
                                ORDER BY published_at DESC, id DESC LIMIT 1) p ON true \
             CROSS JOIN LATERAL (SELECT count(*) AS in_progress FROM calls c \
                                 WHERE c.flow_version = v.version) n \
             WHERE v.flow_id = $1 ORDER BY v.version",
        )
        .bind(id)
        .bind(idle_secs as f64)
        .bind(&callids)
        .bind(&versions)
        .fetch_all(self.pool())
        .await
    }

    /// Stored calls that went through a flow (their ICE was answered by it), with every original
    /// event (replays excluded) in arrival order.
    pub async fn recorded_calls(
        &self,
        flow_id: i64,
        sel: &CallSelection,
    ) -> Result<Vec<RecordedCall>, sqlx::Error> {
        let limit = sel.last.clamp(1, MAX_REPLAY_CALLS);
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT callid FROM ( \
                 SELECT DISTINCT ON (callid) callid, received_at FROM callbacks \
                 WHERE flow_id = $1 AND event_type = 'ice' AND duplicate_of IS NULL AND callid IS NOT NULL \
                   AND (cardinality($2::text[]) = 0 OR callid = ANY($2)) \
                   AND ($3::timestamptz IS NULL OR received_at >= $3) \
                   AND ($4::timestamptz IS NULL OR received_at < $4) \
                 ORDER BY callid, received_at \
             ) c ORDER BY received_at DESC LIMIT $5",
        )
        .bind(flow_id)
        .bind(&sel.callids)
        .bind(sel.since)
        .bind(sel.until)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<RecordedRow> = sqlx::query_as(
            "SELECT callid, reference, event_type, callbacks.body AS body, callbacks.reply AS reply, flow_version, flow_node, received_at \
             FROM callbacks WHERE callid = ANY($1) AND duplicate_of IS NULL AND body_json \
             ORDER BY callid, received_at, id",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        let mut calls: Vec<RecordedCall> = Vec::new();
        for r in rows {
            let event = RecordedEvent {
                reference: r.reference,
                event_type: r.event_type,
                body: r.body,
                reply: r.reply,
                flow_version: r.flow_version,
                node: r.flow_node,
                received_at: r.received_at,
            };
            match calls.last_mut() {
                Some(c) if c.callid == r.callid => c.events.push(event),
                _ => calls.push(RecordedCall {
                    callid: r.callid,
                    events: vec![event],
                }),
            }
        }
        // Latest calls first, as selected.
        calls.sort_by_key(|c| std::cmp::Reverse(c.events.first().map(|e| e.received_at)));
        Ok(calls)
    }

    /// Counts one shadowed event and, when it differed, stores the difference (keeping the latest
    /// [`SHADOW_KEEP`] of the version).
    pub async fn record_shadow(
        &self,
        flow_id: i64,
        version: i32,
        differed: bool,
        refused: bool,
        diff: Option<&ShadowDifference>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO shadow_totals (flow_id, version, compared, differing, refused) VALUES ($1, $2, 1, $3, $4) \
             ON CONFLICT (flow_id, version) DO UPDATE SET compared = shadow_totals.compared + 1, \
             differing = shadow_totals.differing + EXCLUDED.differing, \
             refused = shadow_totals.refused + EXCLUDED.refused, updated_at = now()",
        )
        .bind(flow_id)
        .bind(version)
        .bind(i64::from(differed))
        .bind(i64::from(refused))
        .execute(&mut *tx)
        .await?;
        if let Some(d) = diff {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO shadow_differences (flow_id, version, route_id, callid, callback_reference, event_type, \
                 received_at, live_version, live_node, candidate_node, input, live_reply, candidate_reply, \
                 candidate_passed, note) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) RETURNING id",
            )
            .bind(flow_id)
            .bind(version)
            .bind(d.route_id)
            .bind(&d.callid)
            .bind(&d.callback_reference)
            .bind(&d.event_type)
            .bind(d.received_at)
            .bind(d.live_version)
            .bind(&d.live_node)
            .bind(&d.candidate_node)
            .bind(&d.input)
            .bind(&d.live_reply)
            .bind(&d.candidate_reply)
            .bind(d.candidate_passed)
            .bind(&d.note)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM shadow_differences WHERE flow_id = $1 AND version = $2 AND id <= $3 - $4",
            )
            .bind(flow_id)
            .bind(version)
            .bind(id)
            .bind(SHADOW_KEEP)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// The totals and the latest differences of a shadowed version, newest first.
    pub async fn shadow_differences(
        &self,
        flow_id: i64,
        version: i32,
        limit: i64,
    ) -> Result<(ShadowTotals, Vec<ShadowDifference>), sqlx::Error> {
        let totals: Option<ShadowTotals> = sqlx::query_as(
            "SELECT compared, differing, refused FROM shadow_totals WHERE flow_id = $1 AND version = $2",
        )
        .bind(flow_id)
        .bind(version)
        .fetch_optional(self.pool())
        .await?;
        let items = sqlx::query_as(
            "SELECT id, route_id, callid, callback_reference, event_type, received_at, live_version, live_node, \
             candidate_node, input, live_reply, candidate_reply, candidate_passed, note \
             FROM shadow_differences WHERE flow_id = $1 AND version = $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(flow_id)
        .bind(version)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok((totals.unwrap_or_default(), items))
    }
}
