//! Persistence of call flows (versioned), routes, per-call flow state and upstream exchanges.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use time::OffsetDateTime;

use super::store::Store;
use crate::flows::routes::{GateMode, Route, RouteTarget};
use crate::flows::state::CallState;
use crate::secret::Secret;

/// A flow as listed by the admin API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowSummary {
    /// Flow id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Version new calls use.
    pub current_version: i32,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last saved.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Storage errors that the admin API maps to specific answers.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// A unique name is taken.
    #[error("the name is already in use")]
    NameTaken,
    /// A referenced row does not exist, or a row is still referenced.
    #[error("{0}")]
    Reference(String),
    /// Anything else.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub(crate) fn classify(e: sqlx::Error) -> SaveError {
    if let sqlx::Error::Database(db) = &e {
        match db.code().as_deref() {
            Some("23505") => return SaveError::NameTaken,
            Some("23503") => {
                return SaveError::Reference(
                    "a referenced flow does not exist, or the flow is still used by a route".into(),
                )
            }
            _ => {}
        }
    }
    SaveError::Db(e)
}

fn summary(r: &sqlx::postgres::PgRow) -> Result<FlowSummary, sqlx::Error> {
    Ok(FlowSummary {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        current_version: r.try_get("current_version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn route_from_row(r: &sqlx::postgres::PgRow) -> Result<Route, sqlx::Error> {
    let kind: String = r.try_get("target_kind")?;
    let target = if kind == "flow" {
        RouteTarget::Flow {
            flow_id: r.try_get::<Option<i64>, _>("flow_id")?.unwrap_or_default(),
        }
    } else {
        RouteTarget::Upstream {
            url: r
                .try_get::<Option<String>, _>("upstream_url")?
                .unwrap_or_default(),
            key: r
                .try_get::<Option<String>, _>("upstream_key")?
                .unwrap_or_default(),
            secret_b64: Secret::new(
                r.try_get::<Option<String>, _>("upstream_secret")?
                    .unwrap_or_default(),
            ),
            timeout_ms: r
                .try_get::<Option<i32>, _>("upstream_timeout_ms")?
                .and_then(|t| u64::try_from(t).ok()),
        }
    };
    Ok(Route {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        called: r.try_get("called")?,
        caller_prefix: r.try_get("caller_prefix")?,
        priority: r.try_get("priority")?,
        target,
        gate_mode: r
            .try_get::<Option<String>, _>("gate_mode")?
            .map(|m| GateMode::parse(&m)),
        shadow_version: r.try_get("shadow_version")?,
    })
}

struct TargetColumns<'a> {
    kind: &'static str,
    flow_id: Option<i64>,
    url: Option<&'a str>,
    key: Option<&'a str>,
    secret: Option<&'a str>,
    timeout_ms: Option<i32>,
}

fn target_columns(t: &RouteTarget) -> TargetColumns<'_> {
    match t {
        RouteTarget::Flow { flow_id } => TargetColumns {
            kind: "flow",
            flow_id: Some(*flow_id),
            url: None,
            key: None,
            secret: None,
            timeout_ms: None,
        },
        RouteTarget::Upstream {
            url,
            key,
            secret_b64,
            timeout_ms,
        } => TargetColumns {
            kind: "upstream",
            flow_id: None,
            url: Some(url),
            key: Some(key),
            secret: Some(secret_b64.expose()),
            timeout_ms: timeout_ms.and_then(|t| i32::try_from(t).ok()),
        },
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds a route's 10 columns as `$1`…`$10`, in table order.
fn bind_route<'q>(q: PgQuery<'q>, route: &'q Route) -> PgQuery<'q> {
    let t = target_columns(&route.target);
    q.bind(&route.name)
        .bind(&route.called)
        .bind(&route.caller_prefix)
        .bind(route.priority)
        .bind(t.kind)
        .bind(t.flow_id)
        .bind(t.url)
        .bind(t.key)
        .bind(t.secret)
        .bind(t.timeout_ms)
}

impl Store {
    /// Creates a flow with version 1.
    pub async fn create_flow(
        &self,
        name: &str,
        document: &Value,
    ) -> Result<FlowSummary, SaveError> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(
            "INSERT INTO flows (name, current_version) VALUES ($1, 1) \
             RETURNING id, name, current_version, created_at, updated_at",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        let s = summary(&row)?;
        sqlx::query("INSERT INTO flow_versions (flow_id, version, document) VALUES ($1, 1, $2)")
            .bind(s.id)
            .bind(document)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO flow_publications (flow_id, version, via) VALUES ($1, 1, 'create')",
        )
        .bind(s.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Saves a new version of a flow and makes it the live one (a `PUT` without draft: today's
    /// behaviour); None when the flow does not exist. The new version is one more than the highest
    /// one (drafts included).
    pub async fn update_flow(
        &self,
        id: i64,
        name: &str,
        document: &Value,
    ) -> Result<Option<FlowSummary>, SaveError> {
        let mut tx = self.pool().begin().await?;
        let previous: Option<i32> =
            sqlx::query_scalar("SELECT current_version FROM flows WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(previous) = previous else {
            return Ok(None);
        };
        let row = sqlx::query(
            "UPDATE flows SET name = $2, updated_at = now(), current_version = \
             (SELECT max(version) + 1 FROM flow_versions WHERE flow_id = $1) WHERE id = $1 \
             RETURNING id, name, current_version, created_at, updated_at",
        )
        .bind(id)
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        let s = summary(&row)?;
        sqlx::query("INSERT INTO flow_versions (flow_id, version, document) VALUES ($1, $2, $3)")
            .bind(s.id)
            .bind(s.current_version)
            .bind(document)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO flow_publications (flow_id, version, previous_version, via) VALUES ($1, $2, $3, 'put')",
        )
        .bind(s.id)
        .bind(s.current_version)
        .bind(previous)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(s))
    }

    /// All flows.
    pub async fn list_flows(&self) -> Result<Vec<FlowSummary>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, name, current_version, created_at, updated_at FROM flows ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(summary).collect()
    }

    /// One flow.
    pub async fn get_flow(&self, id: i64) -> Result<Option<FlowSummary>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, name, current_version, created_at, updated_at FROM flows WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(summary).transpose()
    }

    /// The document of a flow version (the current one when `version` is None).
    pub async fn flow_document(
        &self,
        id: i64,
        version: Option<i32>,
    ) -> Result<Option<(i32, Value)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT v.version, v.document FROM flow_versions v JOIN flows f ON f.id = v.flow_id \
             WHERE v.flow_id = $1 AND v.version = COALESCE($2, f.current_version)",
        )
        .bind(id)
        .bind(version)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((r.try_get("version")?, r.try_get("document")?)))
            .transpose()
    }

    /// Version numbers of a flow.
    pub async fn flow_versions(&self, id: i64) -> Result<Vec<i32>, sqlx::Error> {
        sqlx::query_scalar("SELECT version FROM flow_versions WHERE flow_id = $1 ORDER BY version")
            .bind(id)
            .fetch_all(self.pool())
            .await
    }

    /// Deletes a flow (refused while a route uses it). Returns whether it existed.
    pub async fn delete_flow(&self, id: i64) -> Result<bool, SaveError> {
        let r = sqlx::query("DELETE FROM flows WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(classify)?;
        Ok(r.rows_affected() == 1)
    }

    /// Creates a route.
    pub async fn create_route(&self, route: &Route) -> Result<Route, SaveError> {
        let row = bind_route(
            sqlx::query(
                "INSERT INTO routes (name, called, caller_prefix, priority, target_kind, flow_id, upstream_url, \
                 upstream_key, upstream_secret, upstream_timeout_ms, gate_mode, shadow_version) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) RETURNING *",
            ),
            route,
        )
        .bind(route.gate_mode.map(GateMode::as_str))
        .bind(route.shadow_version)
        .fetch_one(self.pool())
        .await
        .map_err(classify)?;
        Ok(route_from_row(&row)?)
    }

    /// Replaces a route; None when it does not exist.
    pub async fn update_route(&self, id: i64, route: &Route) -> Result<Option<Route>, SaveError> {
        let row = bind_route(
            sqlx::query(
                "UPDATE routes SET name = $1, called = $2, caller_prefix = $3, priority = $4, target_kind = $5, \
                 flow_id = $6, upstream_url = $7, upstream_key = $8, upstream_secret = $9, upstream_timeout_ms = $10, \
                 gate_mode = $12, shadow_version = $13, updated_at = now() WHERE id = $11 RETURNING *",
            ),
            route,
        )
        .bind(id)
        .bind(route.gate_mode.map(GateMode::as_str))
        .bind(route.shadow_version)
        .fetch_optional(self.pool())
        .await
        .map_err(classify)?;
        Ok(row.as_ref().map(route_from_row).transpose()?)
    }

    /// All routes.
    pub async fn list_routes(&self) -> Result<Vec<Route>, sqlx::Error> {
        let rows = sqlx::query("SELECT * FROM routes ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(route_from_row).collect()
    }

    /// One route.
    pub async fn get_route(&self, id: i64) -> Result<Option<Route>, sqlx::Error> {
        let row = sqlx::query("SELECT * FROM routes WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(route_from_row).transpose()
    }

    /// Deletes a route. Returns whether it existed.
    pub async fn delete_route(&self, id: i64) -> Result<bool, sqlx::Error> {
        let r = sqlx::query("DELETE FROM routes WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The state of a call in progress, with the arrival time of the event that set it.
    pub async fn call_state(
        &self,
        callid: &str,
    ) -> Result<Option<(CallState, OffsetDateTime)>, sqlx::Error> {
        let row = sqlx::query("SELECT route_id, flow_id, flow_version, node, context, updated_at FROM call_state WHERE callid = $1")
            .bind(callid)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = row else { return Ok(None) };
        let context: Value = r.try_get("context")?;
        Ok(Some((
            CallState {
                route_id: r.try_get("route_id")?,
                flow_id: r.try_get("flow_id")?,
                flow_version: r.try_get("flow_version")?,
                node: r.try_get("node")?,
                context: serde_json::from_value(context).unwrap_or_default(),
            },
            r.try_get("updated_at")?,
        )))
    }
}
