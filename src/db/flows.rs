//! Persistence of call flows (versioned), routes, per-call flow state and upstream exchanges.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::store::Store;
use crate::flows::routes::{GateMode, Route, RouteTarget};
use crate::flows::state::CallState;
use crate::secret::Secret;

/// A flow as listed by the admin API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
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

/// The columns of `routes` a [`Route`] is read from.
const ROUTE_COLUMNS: &str =
    "id, name, called, caller_prefix, priority, target_kind, flow_id, upstream_url, \
     upstream_key, upstream_secret, upstream_timeout_ms, gate_mode, shadow_version";

/// A `routes` row.
#[derive(sqlx::FromRow)]
struct RouteRow {
    id: i64,
    name: String,
    called: Option<String>,
    caller_prefix: Option<String>,
    priority: i32,
    target_kind: String,
    flow_id: Option<i64>,
    upstream_url: Option<String>,
    upstream_key: Option<String>,
    upstream_secret: Option<String>,
    upstream_timeout_ms: Option<i32>,
    gate_mode: Option<String>,
    shadow_version: Option<i32>,
}

impl From<RouteRow> for Route {
    fn from(r: RouteRow) -> Self {
        let target = if r.target_kind == "flow" {
            RouteTarget::Flow {
                flow_id: r.flow_id.unwrap_or_default(),
            }
        } else {
            RouteTarget::Upstream {
                url: r.upstream_url.unwrap_or_default(),
                key: r.upstream_key.unwrap_or_default(),
                secret_b64: Secret::new(r.upstream_secret.unwrap_or_default()),
                timeout_ms: r.upstream_timeout_ms.and_then(|t| u64::try_from(t).ok()),
            }
        };
        Route {
            id: r.id,
            name: r.name,
            called: r.called,
            caller_prefix: r.caller_prefix,
            priority: r.priority,
            target,
            gate_mode: r.gate_mode.map(|m| GateMode::parse(&m)),
            shadow_version: r.shadow_version,
        }
    }
}

/// A `call_state` row.
#[derive(sqlx::FromRow)]
struct CallStateRow {
    route_id: Option<i64>,
    flow_id: Option<i64>,
    flow_version: Option<i32>,
    node: Option<String>,
    context: Value,
    updated_at: OffsetDateTime,
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

type RouteQuery<'q> =
    sqlx::query::QueryAs<'q, sqlx::Postgres, RouteRow, sqlx::postgres::PgArguments>;

/// Binds a route's 10 columns as `$1`…`$10`, in table order.
fn bind_route<'q>(q: RouteQuery<'q>, route: &'q Route) -> RouteQuery<'q> {
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
        let s: FlowSummary = sqlx::query_as(
            "INSERT INTO flows (name, current_version) VALUES ($1, 1) \
             RETURNING id, name, current_version, created_at, updated_at",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
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
        let s: FlowSummary = sqlx::query_as(
            "UPDATE flows SET name = $2, updated_at = now(), current_version = \
             (SELECT max(version) + 1 FROM flow_versions WHERE flow_id = $1) WHERE id = $1 \
             RETURNING id, name, current_version, created_at, updated_at",
        )
        .bind(id)
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
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
        sqlx::query_as(
            "SELECT id, name, current_version, created_at, updated_at FROM flows ORDER BY id",
        )
        .fetch_all(self.pool())
        .await
    }

    /// One flow.
    pub async fn get_flow(&self, id: i64) -> Result<Option<FlowSummary>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, current_version, created_at, updated_at FROM flows WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
    }

    /// The document of a flow version (the current one when `version` is None).
    pub async fn flow_document(
        &self,
        id: i64,
        version: Option<i32>,
    ) -> Result<Option<(i32, Value)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT v.version, v.document FROM flow_versions v JOIN flows f ON f.id = v.flow_id \
             WHERE v.flow_id = $1 AND v.version = COALESCE($2, f.current_version)",
        )
        .bind(id)
        .bind(version)
        .fetch_optional(self.pool())
        .await
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
        let sql = format!(
            "INSERT INTO routes (name, called, caller_prefix, priority, target_kind, flow_id, upstream_url, \
             upstream_key, upstream_secret, upstream_timeout_ms, gate_mode, shadow_version) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) RETURNING {ROUTE_COLUMNS}"
        );
        let row = bind_route(sqlx::query_as(sqlx::AssertSqlSafe(sql)), route)
            .bind(route.gate_mode.map(GateMode::as_str))
            .bind(route.shadow_version)
            .fetch_one(self.pool())
            .await
            .map_err(classify)?;
        Ok(Route::from(row))
    }

    /// Replaces a route; None when it does not exist.
    pub async fn update_route(&self, id: i64, route: &Route) -> Result<Option<Route>, SaveError> {
        let sql = format!(
            "UPDATE routes SET name = $1, called = $2, caller_prefix = $3, priority = $4, target_kind = $5, \
             flow_id = $6, upstream_url = $7, upstream_key = $8, upstream_secret = $9, upstream_timeout_ms = $10, \
             gate_mode = $12, shadow_version = $13, updated_at = now() WHERE id = $11 RETURNING {ROUTE_COLUMNS}"
        );
        let row = bind_route(sqlx::query_as(sqlx::AssertSqlSafe(sql)), route)
            .bind(id)
            .bind(route.gate_mode.map(GateMode::as_str))
            .bind(route.shadow_version)
            .fetch_optional(self.pool())
            .await
            .map_err(classify)?;
        Ok(row.map(Route::from))
    }

    /// All routes.
    pub async fn list_routes(&self) -> Result<Vec<Route>, sqlx::Error> {
        let sql = format!("SELECT {ROUTE_COLUMNS} FROM routes ORDER BY id");
        let rows: Vec<RouteRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(Route::from).collect())
    }

    /// One route.
    pub async fn get_route(&self, id: i64) -> Result<Option<Route>, sqlx::Error> {
        let sql = format!("SELECT {ROUTE_COLUMNS} FROM routes WHERE id = $1");
        let row: Option<RouteRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(Route::from))
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
        let row: Option<CallStateRow> = sqlx::query_as(
            "SELECT route_id, flow_id, flow_version, node, context, updated_at FROM call_state WHERE callid = $1",
        )
        .bind(callid)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| {
            let state = CallState {
                route_id: r.route_id,
                flow_id: r.flow_id,
                flow_version: r.flow_version,
                node: r.node,
                context: crate::flows::state::context_from_row(r.context, callid),
            };
            (state, r.updated_at)
        }))
    }
}
