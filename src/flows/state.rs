//! Where a call in progress is in its flow: what svamlgate remembers between one event of a call
//! and the next (held by `calls`, journaled as a call-state change by
//! `recording`, stored in `call_state` by `db`).

use std::time::Duration;

use super::render::EventContext;

/// A call not heard of for this long is forgotten (longer than any call Sinch keeps up): by
/// `calls` in memory, and when counting the calls still on a flow version.
pub const IDLE_LIMIT: Duration = Duration::from_secs(6 * 3600);

/// What is remembered about a call in progress.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CallState {
    /// Route chosen at the first event.
    pub route_id: Option<i64>,
    /// Flow pinned at the first event.
    pub flow_id: Option<i64>,
    /// Version pinned.
    pub flow_version: Option<i32>,
    /// Node sent last.
    pub node: Option<String>,
    /// Values of the first event.
    pub context: EventContext,
}
