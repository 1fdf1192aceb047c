//! Reply sources: what decides the SVAML for an ICE, ACE or PIE. At the first event of a call a route
//! (by called number and caller prefix) selects a stored call flow or the customer's own app
//! (proxy mode); the choice, the flow version and the flow's position are kept per call in
//! `call_state`, so ACE and PIE continue where the call is. Without a route, the configured default
//! reply is used. Whatever the source, the gate checks the result and the deadline bounds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use crate::app::AppState;
use crate::db::flows::CallState;
use crate::events::{EventKind, ParsedEvent};
use crate::flows::engine::{self, Stage};
use crate::flows::model::FlowDoc;
use crate::flows::render::EventContext;
use crate::flows::routes::{self, Route, RouteTarget};
use crate::signature::{self, AppCredential};
use crate::svaml::Target;
use crate::upstream::{self, UpstreamClient, UpstreamRequest};

/// Why a source produced no usable reply.
#[derive(Debug, Clone)]
pub struct SourceFailure {
    /// Stable reason: deadline, upstream_error, flow_error.
    pub reason: &'static str,
    /// Human message for logs and the errors table.
    pub message: String,
    /// What the source answered, when it answered something unusable.
    pub raw_reply: Option<String>,
}

/// The decided candidate reply and where it came from.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The candidate (still to be gated), or why there is none.
    pub candidate: Result<Value, SourceFailure>,
    /// flow, upstream or default.
    pub source: &'static str,
    /// Route selected.
    pub route_id: Option<i64>,
    /// Flow used.
    pub flow_id: Option<i64>,
    /// Flow version used.
    pub flow_version: Option<i32>,
    /// Flow node emitted.
    pub flow_node: Option<String>,
}

impl Decision {
    /// A decision without a usable reply.
    pub fn failed(reason: &'static str, message: impl Into<String>) -> Decision {
        Decision {
            candidate: Err(SourceFailure {
                reason,
                message: message.into(),
                raw_reply: None,
            }),
            source: "none",
            route_id: None,
            flow_id: None,
            flow_version: None,
            flow_node: None,
        }
    }

    fn default_reply(state: &AppState, target: Target) -> Decision {
        Decision {
            candidate: Ok(state.gate.default_reply(target).clone()),
            source: "default",
            route_id: None,
            flow_id: None,
            flow_version: None,
            flow_node: None,
        }
    }
}

/// How long routes and flows' current versions are reused before PostgreSQL is asked again.
/// Changes made through this instance's admin API take effect at once; other instances sharing the
/// database see them within this time.
pub const CONFIG_TTL: Duration = Duration::from_secs(2);

/// Flow versions (immutable, parsed once) and each flow's current version (reused for
/// [`CONFIG_TTL`]). When the database cannot be read, the last known current version keeps
/// answering calls.
#[derive(Debug, Default)]
pub struct FlowCache {
    docs: Mutex<HashMap<(i64, i32), Arc<FlowDoc>>>,
    current: Mutex<HashMap<i64, (Instant, i32)>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FlowCache {
    /// The parsed document of a flow version (current when `version` is None).
    pub async fn get(
        &self,
        state: &AppState,
        flow_id: i64,
        version: Option<i32>,
    ) -> Result<Option<(i32, Arc<FlowDoc>)>, String> {
        let cached_current = locked(&self.current).get(&flow_id).copied();
        let wanted = version.or(cached_current
            .filter(|(at, _)| at.elapsed() < CONFIG_TTL)
            .map(|(_, v)| v));
        if let Some(v) = wanted {
            if let Some(doc) = locked(&self.docs).get(&(flow_id, v)) {
                return Ok(Some((v, doc.clone())));
            }
        }
        let loaded = match state.store.flow_document(flow_id, version).await {
            Ok(l) => l,
            Err(e) => {
                // Stale is better than nothing while the database is away.
                let stale = version.or(cached_current.map(|(_, v)| v));
                if let Some(doc) = stale.and_then(|v| {
                    locked(&self.docs)
                        .get(&(flow_id, v))
                        .map(|d| (v, d.clone()))
                }) {
                    tracing::warn!(error = %e, flow_id, "database unavailable; using the cached flow");
                    return Ok(Some(doc));
                }
                return Err(e.to_string());
            }
        };
        let Some((v, doc)) = loaded else {
            return Ok(None);
        };
        let bytes = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
        let flow = Arc::new(FlowDoc::from_json(&bytes).map_err(|e| e.to_string())?);
        locked(&self.docs).insert((flow_id, v), flow.clone());
        if version.is_none() {
            locked(&self.current).insert(flow_id, (Instant::now(), v));
        }
        Ok(Some((v, flow)))
    }

    /// Forgets a flow's current version (after it was changed or deleted here).
    pub fn invalidate(&self, flow_id: i64) {
        locked(&self.current).remove(&flow_id);
    }
}

/// The routing table, reused for [`CONFIG_TTL`]; when the database cannot be read, the last good
/// table keeps routing calls.
#[derive(Debug, Default)]
pub struct RouteCache {
    inner: Mutex<Option<(Instant, Arc<Vec<Route>>)>>,
}

impl RouteCache {
    /// The routes, or None when they were never loaded and the database is unavailable.
    pub async fn get(&self, state: &AppState) -> Option<Arc<Vec<Route>>> {
        let cached = locked(&self.inner).clone();
        if let Some((at, routes)) = &cached {
            if at.elapsed() < CONFIG_TTL {
                return Some(routes.clone());
            }
        }
        match state.store.list_routes().await {
            Ok(all) => {
                let all = Arc::new(all);
                *locked(&self.inner) = Some((Instant::now(), all.clone()));
                Some(all)
            }
            Err(e) => {
                tracing::warn!(error = %e, stale = cached.is_some(), "could not load routes");
                cached.map(|(_, r)| r)
            }
        }
    }

    /// Forgets the table (after a change made here).
    pub fn invalidate(&self) {
        *locked(&self.inner) = None;
    }
}

thread_local! {
    // awc clients are !Send: one per worker thread.
    static UPSTREAM: UpstreamClient = UpstreamClient::new();
}

/// The request details proxy mode forwards.
#[derive(Debug, Clone, Copy)]
pub struct Forward<'a> {
    /// Raw body as received.
    pub body: &'a [u8],
    /// content-type as received.
    pub content_type: Option<&'a str>,
    /// When the reply must be out.
    pub deadline_at: Instant,
}

/// Decides the candidate reply for an event that expects SVAML.
pub async fn decide(
    state: &AppState,
    event: &ParsedEvent,
    target: Target,
    callback_id: Uuid,
    forward: Forward<'_>,
) -> Decision {
    let mut ctx = EventContext::from_event(&event.raw);
    let callid = event.callid.as_deref();
    let stored = match callid {
        Some(c) if target != Target::Ice => state.store.call_state(c).await.ok().flatten(),
        _ => None,
    };
    if let Some(s) = &stored {
        ctx.fill_missing_from(&s.context);
    }
    // The route: the one pinned to the call, else chosen now.
    let table = state.routes.get(state).await;
    let table = table.as_deref().map(Vec::as_slice).unwrap_or_default();
    let route = match stored.as_ref().and_then(|s| s.route_id) {
        Some(id) => table.iter().find(|r| r.id == id).cloned(),
        None => routes::select(table, ctx.called.as_deref(), ctx.caller.as_deref()).cloned(),
    };
    let Some(route) = route else {
        return Decision::default_reply(state, target);
    };
    match &route.target {
        RouteTarget::Flow { flow_id } => {
            from_flow(state, event, target, &route, *flow_id, stored, ctx).await
        }
        RouteTarget::Upstream { .. } => {
            let d = from_upstream(state, &route, callback_id, forward).await;
            if let Some(c) = callid {
                let s = CallState {
                    route_id: Some(route.id),
                    flow_id: None,
                    flow_version: None,
                    node: None,
                    context: ctx,
                };
                if let Err(e) = state.store.save_call_state(c, &s).await {
                    tracing::warn!(error = %e, "could not save call state");
                }
            }
            d
        }
    }
}

async fn from_flow(
    state: &AppState,
    event: &ParsedEvent,
    target: Target,
    route: &Route,
    flow_id: i64,
    stored: Option<CallState>,
    ctx: EventContext,
) -> Decision {
    let pinned = stored
        .as_ref()
        .filter(|s| s.flow_id == Some(flow_id))
        .and_then(|s| s.flow_version);
    let mut decision = Decision::failed("flow_error", "");
    decision.source = "flow";
    decision.route_id = Some(route.id);
    decision.flow_id = Some(flow_id);
    let (version, flow) = match state.flows.get(state, flow_id, pinned).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            decision.candidate = Err(failure(
                "flow_error",
                format!("flow {flow_id} of route {} not found", route.id),
            ));
            return decision;
        }
        Err(e) => {
            decision.candidate = Err(failure(
                "flow_error",
                format!("flow {flow_id} could not be loaded: {e}"),
            ));
            return decision;
        }
    };
    decision.flow_version = Some(version);
    let stage = Stage::from_event(&event.raw).unwrap_or(match target {
        Target::Ace => Stage::Ace,
        Target::Pie => Stage::Pie {
            menu_result_type: String::new(),
            value: None,
            menu_id: None,
        },
        _ => Stage::Ice,
    });
    let current = stored.as_ref().and_then(|s| s.node.clone());
    let d = engine::decide(&flow, &stage, current.as_deref(), &ctx);
    tracing::debug!(via = %d.via, "flow decision");
    decision.flow_node = d.node.clone();
    decision.candidate = Ok(d.svaml);
    if let Some(c) = event.callid.as_deref() {
        let s = CallState {
            route_id: Some(route.id),
            flow_id: Some(flow_id),
            flow_version: Some(version),
            node: d.node.or(current),
            context: ctx,
        };
        if let Err(e) = state.store.save_call_state(c, &s).await {
            tracing::warn!(error = %e, "could not save call state");
        }
    }
    decision
}

fn failure(reason: &'static str, message: String) -> SourceFailure {
    SourceFailure {
        reason,
        message,
        raw_reply: None,
    }
}

/// Margin kept between the upstream timeout and the reply deadline, to gate and answer in time.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

async fn from_upstream(
    state: &AppState,
    route: &Route,
    callback_id: Uuid,
    fwd: Forward<'_>,
) -> Decision {
    let mut decision = Decision::failed("upstream_error", "");
    decision.source = "upstream";
    decision.route_id = Some(route.id);
    let RouteTarget::Upstream {
        url,
        key,
        secret_b64,
        timeout_ms,
    } = &route.target
    else {
        return decision;
    };
    let cred = match AppCredential::new(key, secret_b64.expose()) {
        Ok(c) => c,
        Err(e) => {
            decision.candidate = Err(failure(
                "upstream_error",
                format!("route {} has an unusable key: {e}", route.id),
            ));
            return decision;
        }
    };
    let content_type = fwd.content_type.unwrap_or("application/json");
    let ts = signature::format_timestamp(time::OffsetDateTime::now_utc());
    let authorization = signature::sign(
        &cred,
        "POST",
        upstream::request_path(url),
        Some(content_type),
        &ts,
        fwd.body,
    );
    let remaining = fwd
        .deadline_at
        .saturating_duration_since(Instant::now())
        .saturating_sub(DEADLINE_MARGIN);
    let timeout = timeout_ms
        .map(Duration::from_millis)
        .map_or(remaining, |t| t.min(remaining));
    let req = UpstreamRequest {
        url,
        authorization: Some(authorization),
        x_timestamp: ts,
        content_type,
        body: fwd.body,
        timeout,
    };
    let client = UPSTREAM.with(UpstreamClient::clone);
    let outcome = client.forward(&req).await;
    let label = match &outcome.error {
        None => "ok",
        Some(e) => e.code(),
    };
    state
        .metrics
        .inc("svamlgate_upstream_requests_total", &[("outcome", label)]);
    state.metrics.observe(
        "svamlgate_upstream_duration_seconds",
        &[("outcome", label)],
        outcome.latency,
    );
    let body_text = outcome
        .body
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned());
    {
        let store = state.store.clone();
        let url = url.clone();
        let body = body_text.clone();
        let latency = i64::try_from(outcome.latency.as_micros()).unwrap_or(i64::MAX);
        let status = outcome.status;
        let fail = outcome.error.as_ref().map(|e| e.code().to_owned());
        actix_web::rt::spawn(async move {
            if let Err(e) = store
                .record_upstream(
                    callback_id,
                    &url,
                    status,
                    body.as_deref(),
                    latency,
                    fail.as_deref(),
                )
                .await
            {
                tracing::warn!(error = %e, "could not record the upstream exchange");
            }
        });
    }
    decision.candidate = outcome.svaml().map_err(|e| SourceFailure {
        reason: if matches!(e, upstream::UpstreamFailure::Timeout) {
            "deadline"
        } else {
            "upstream_error"
        },
        message: format!("upstream {}: {e}", route.name),
        raw_reply: body_text,
    });
    decision
}

/// Events that end a call (DICE) or only inform (Notify): a finished call's state is dropped.
pub async fn observe_final(state: &AppState, event: &ParsedEvent) {
    if matches!(event.kind, EventKind::Dice) {
        if let Some(c) = event.callid.as_deref() {
            if let Err(e) = state.store.delete_call_state(c).await {
                tracing::warn!(error = %e, "could not drop call state");
            }
        }
    }
}
