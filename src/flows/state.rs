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

/// A call's context as `call_state.context` holds it: only the values the call has, and no call
/// id when it is the row's own (`call_state.callid`). A call state is written for every new call,
/// and the nulls and the repeated call id were a third of its row (docs/benchmarks.md, session
/// 20). [`context_from_row`] reads it back, and reads the full form rows written before too.
pub fn context_for_row(context: &EventContext, callid: &str) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Stored<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        called: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        custom: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        input: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        callid: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        menu_id: Option<&'a str>,
    }
    // Every field named (no `..`): a field added to EventContext does not compile here until it
    // is stored too.
    let EventContext {
        caller,
        called,
        custom,
        input,
        callid: own,
        menu_id,
    } = context;
    let stored = Stored {
        caller: caller.as_deref(),
        called: called.as_deref(),
        custom: custom.as_deref(),
        input: input.as_deref(),
        callid: own.as_deref().filter(|c| *c != callid),
        menu_id: menu_id.as_deref(),
    };
    serde_json::to_string(&stored).unwrap_or_else(|_| "{}".to_owned())
}

/// The context of a `call_state` row for `callid` ([`context_for_row`]); an unreadable one reads
/// as empty, as before.
pub fn context_from_row(value: serde_json::Value, callid: &str) -> EventContext {
    let mut context: EventContext = serde_json::from_value(value).unwrap_or_default();
    if context.callid.is_none() {
        context.callid = Some(callid.to_owned());
    }
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_context_keeps_only_what_the_call_has_and_reads_back_whole() {
        let context = EventContext {
            caller: Some("+46708168731".into()),
            called: Some("+15550100".into()),
            callid: Some("abc@1.2.3.4".into()),
            ..EventContext::default()
        };
        let text = context_for_row(&context, "abc@1.2.3.4");
        assert_eq!(text, r#"{"caller":"+46708168731","called":"+15550100"}"#);
        let back = context_from_row(serde_json::from_str(&text).unwrap(), "abc@1.2.3.4");
        assert!(back == context);
        // Rows written before (every field, nulls included) read the same.
        let full = serde_json::to_value(&context).unwrap();
        assert!(context_from_row(full, "abc@1.2.3.4") == context);
        // A call id other than the row's is kept.
        let other = context_for_row(&context, "another");
        assert!(other.contains(r#""callid":"abc@1.2.3.4""#), "{other}");
        assert!(context_from_row(serde_json::from_str(&other).unwrap(), "another") == context);
        // Every value, and a menu id in camelCase.
        let pie = EventContext {
            custom: Some("x".into()),
            input: Some("1".into()),
            menu_id: Some("main".into()),
            ..context.clone()
        };
        let text = context_for_row(&pie, "abc@1.2.3.4");
        assert!(text.contains(r#""menuId":"main""#), "{text}");
        assert!(context_from_row(serde_json::from_str(&text).unwrap(), "abc@1.2.3.4") == pie);
    }
}
