//! Reply sources: what decides the SVAML for an ICE, ACE or PIE. At the first event of a call a route
//! (by called number and caller prefix) selects a stored call flow or the customer's own app
//! (proxy mode); the choice, the flow version and the flow's position are kept per call in
//! `call_state`, so ACE and PIE continue where the call is. Without a route, the configured default
//! reply is used. Whatever the source, the gate checks the result and the deadline bounds it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::app::AppState;
use crate::events::{EventKind, ParsedEvent};
use crate::flows::engine::{self, Stage};
use crate::flows::render::EventContext;
use crate::flows::routes::{self, GateMode, Route, RouteTarget};
use crate::flows::state::CallState;
use crate::outcome::{FallbackReason, ReplySource};
use crate::recording::{CallStateChange, UpstreamExchange};
use crate::signature::{self, AppCredential};
use crate::svaml::Target;
use crate::upstream::{self, UpstreamClient, UpstreamRequest};

/// Why a source produced no usable reply.
#[derive(Debug, Clone)]
pub struct SourceFailure {
    /// Why: the deadline, the customer's app, or the flow.
    pub reason: FallbackReason,
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
    /// Flow, upstream or default (none when nothing was decided).
    pub source: ReplySource,
    /// Route selected.
    pub route_id: Option<i64>,
    /// Flow used.
    pub flow_id: Option<i64>,
    /// Flow version used.
    pub flow_version: Option<i32>,
    /// Flow node emitted.
    pub flow_node: Option<String>,
    /// The proxy-mode exchange, to be recorded with the callback.
    pub upstream: Option<UpstreamExchange>,
    /// The call-state change, to be recorded with the callback.
    pub call_state: Option<CallStateChange>,
    /// Whether the gate enforces or only observes for this decision.
    pub gate_mode: GateMode,
}

impl Decision {
    /// A decision without a usable reply.
    pub fn failed(reason: FallbackReason, message: impl Into<String>) -> Decision {
        Decision {
            candidate: Err(SourceFailure {
                reason,
                message: message.into(),
                raw_reply: None,
            }),
            source: ReplySource::None,
            route_id: None,
            flow_id: None,
            flow_version: None,
            flow_node: None,
            upstream: None,
            call_state: None,
            gate_mode: GateMode::Enforce,
        }
    }

    fn default_reply(state: &AppState, target: Target) -> Decision {
        Decision {
            gate_mode: state.config.gate_mode,
            candidate: Ok(state.gate.default_reply(target).clone()),
            source: ReplySource::Default,
            route_id: None,
            flow_id: None,
            flow_version: None,
            flow_node: None,
            upstream: None,
            call_state: None,
        }
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
    forward: Forward<'_>,
) -> Decision {
    let mut ctx = EventContext::of(event);
    let callid = event.callid.as_deref();
    let stored = match callid {
        Some(c) if target != Target::Ice => {
            let db_up = state
                .recorder
                .status
                .db_ok
                .load(std::sync::atomic::Ordering::Acquire);
            state
                .calls
                .current(&state.store, c, db_up, state.config.peer_state_wait())
                .await
        }
        _ => None,
    };
    if let Some(s) = &stored {
        ctx.fill_missing_from(&s.context);
    }
    // The route: the one pinned to the call, else chosen now.
    let table = state.live.routes();
    let table = table.as_slice();
    let route = match stored.as_ref().and_then(|s| s.route_id) {
        Some(id) => table.iter().find(|r| r.id == id).cloned(),
        None => routes::select(table, ctx.called.as_deref(), ctx.caller.as_deref()).cloned(),
    };
    let Some(route) = route else {
        return Decision::default_reply(state, target);
    };
    let gate_mode = route.gate_mode.unwrap_or(state.config.gate_mode);
    let mut decision = match &route.target {
        RouteTarget::Flow { flow_id } => {
            from_flow(state, event, &route, *flow_id, stored, ctx).await
        }
        RouteTarget::Upstream { .. } => {
            let mut d = from_upstream(state, &route, forward).await;
            if let Some(c) = callid {
                let s = CallState {
                    route_id: Some(route.id),
                    flow_id: None,
                    flow_version: None,
                    node: None,
                    context: ctx,
                };
                d.call_state = Some(set_call_state(c, s));
            }
            d
        }
    };
    decision.gate_mode = gate_mode;
    decision
}

async fn from_flow(
    state: &AppState,
    event: &ParsedEvent,
    route: &Route,
    flow_id: i64,
    stored: Option<CallState>,
    ctx: EventContext,
) -> Decision {
    let pinned = stored
        .as_ref()
        .filter(|s| s.flow_id == Some(flow_id))
        .and_then(|s| s.flow_version);
    let mut decision = Decision::failed(FallbackReason::FlowError, "");
    decision.source = ReplySource::Flow;
    decision.route_id = Some(route.id);
    decision.flow_id = Some(flow_id);
    let (version, flow) = match state.live.flow_or_load(&state.store, flow_id, pinned).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            decision.candidate = Err(failure(
                FallbackReason::FlowError,
                format!("flow {flow_id} of route {} not found", route.id),
            ));
            return decision;
        }
        Err(e) => {
            decision.candidate = Err(failure(
                FallbackReason::FlowError,
                format!("flow {flow_id} could not be loaded: {e}"),
            ));
            return decision;
        }
    };
    decision.flow_version = Some(version);
    let Some(stage) = Stage::of(event) else {
        decision.candidate = Err(failure(
            FallbackReason::FlowError,
            format!("flows do not answer {} events", event.kind),
        ));
        return decision;
    };
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
        decision.call_state = Some(set_call_state(c, s));
    }
    decision
}

/// The call-state change to keep (in memory and in the journal) once the reply is decided.
fn set_call_state(callid: &str, s: CallState) -> CallStateChange {
    CallStateChange::Set {
        callid: callid.to_owned(),
        state: Box::new(s),
    }
}

fn failure(reason: FallbackReason, message: String) -> SourceFailure {
    SourceFailure {
        reason,
        message,
        raw_reply: None,
    }
}

/// Margin kept between the upstream timeout and the reply deadline, to gate and answer in time.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

async fn from_upstream(state: &AppState, route: &Route, fwd: Forward<'_>) -> Decision {
    let mut decision = Decision::failed(FallbackReason::UpstreamError, "");
    decision.source = ReplySource::Upstream;
    decision.route_id = Some(route.id);
    let req = match signed_request(route, &fwd) {
        Ok(req) => req,
        Err(failure) => {
            decision.candidate = Err(failure);
            return decision;
        }
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
    decision.upstream = Some(UpstreamExchange {
        url: req.url.to_owned(),
        status: outcome.status,
        body: body_text.clone(),
        latency_us: i64::try_from(outcome.latency.as_micros()).unwrap_or(i64::MAX),
        failure: outcome.error.as_ref().map(|e| e.code().to_owned()),
    });
    decision.candidate = outcome
        .svaml()
        .map_err(|e| upstream_failure(&route.name, &e, body_text));
    decision
}

/// The request that forwards the event to an upstream route, signed with the route's key and
/// timed to end before the reply deadline.
fn signed_request<'a>(
    route: &'a Route,
    fwd: &Forward<'a>,
) -> Result<UpstreamRequest<'a>, SourceFailure> {
    let RouteTarget::Upstream {
        url,
        key,
        secret_b64,
        timeout_ms,
    } = &route.target
    else {
        return Err(failure(FallbackReason::UpstreamError, String::new()));
    };
    let cred = AppCredential::new(key, secret_b64.expose()).map_err(|e| {
        failure(
            FallbackReason::UpstreamError,
            format!("route {} has an unusable key: {e}", route.id),
        )
    })?;
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
    Ok(UpstreamRequest {
        url,
        authorization: Some(authorization),
        x_timestamp: ts,
        content_type,
        body: fwd.body,
        timeout,
    })
}

/// Why an upstream answer is no candidate: its timeout is the deadline's, anything else the
/// customer's app's.
fn upstream_failure(
    route_name: &str,
    e: &upstream::UpstreamFailure,
    raw_reply: Option<String>,
) -> SourceFailure {
    SourceFailure {
        reason: if matches!(e, upstream::UpstreamFailure::Timeout) {
            FallbackReason::Deadline
        } else {
            FallbackReason::UpstreamError
        },
        message: format!("upstream {route_name}: {e}"),
        raw_reply,
    }
}

/// Events that end a call (DICE) or only inform (Notify): a finished call's state is dropped.
pub fn observe_final(event: &ParsedEvent) -> Option<CallStateChange> {
    if !matches!(event.kind, EventKind::Dice) {
        return None;
    }
    let callid = event.callid.as_deref()?;
    Some(CallStateChange::Ended {
        callid: callid.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamFailure;

    #[test]
    fn an_upstream_timeout_is_the_deadline_anything_else_the_app() {
        let table = [
            (UpstreamFailure::Timeout, FallbackReason::Deadline),
            (
                UpstreamFailure::BadStatus(500),
                FallbackReason::UpstreamError,
            ),
            (
                UpstreamFailure::Connect("refused".into()),
                FallbackReason::UpstreamError,
            ),
            (UpstreamFailure::EmptyBody, FallbackReason::UpstreamError),
            (UpstreamFailure::TooLarge, FallbackReason::UpstreamError),
        ];
        for (e, reason) in table {
            let f = upstream_failure("crm", &e, Some("oops".into()));
            assert_eq!(f.reason, reason, "{e}");
            assert_eq!(f.message, format!("upstream crm: {e}"));
            assert_eq!(f.raw_reply.as_deref(), Some("oops"));
        }
    }
}
