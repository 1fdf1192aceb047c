//! Placeholder substitution in flow templates.
//!
//! Any JSON string inside a node's `instructions`/`action` may contain placeholders that are filled
//! from the callback event when the node is rendered:
//!
//! | placeholder  | value                                                                          |
//! |--------------|--------------------------------------------------------------------------------|
//! | `${caller}`  | ICE `cli` / DICE `from`; digits-only values get a leading `+` (E.164)          |
//! | `${called}`  | `to.endpoint` (same normalization)                                             |
//! | `${custom}`  | the event's `custom` string                                                    |
//! | `${input}`   | PIE `menuResult.value` (digits of a `sequence`, or the `return(...)` value)    |
//! | `${callid}`  | the event's `callid`                                                           |
//! | `${menuId}`  | PIE `menuResult.menuId`                                                        |
//!
//! `$$` renders a literal `$`; a `$` not followed by `{` or `$` is kept as is (so `"costs $5"`
//! needs no escaping). Placeholders are substituted in string *values* only, never in object keys.
//!
//! Rendering never fails: a placeholder whose value is missing renders as the empty string, and an
//! unknown or unterminated placeholder is copied literally. Flows are checked when saved
//! ([`crate::flows::model::FlowDoc::check_structure`] rejects unknown placeholders), and anything
//! that becomes invalid after rendering (for example an empty `number`) is caught by the SVAML gate.
//!
//! ACE and PIE events carry no `cli`/`to`: keep the ICE context in call state and complete later
//! contexts with [`EventContext::fill_missing_from`].

use serde::{Deserialize, Serialize};

use crate::events::ParsedEvent;
use serde_json::Value;
use std::fmt;

/// Names accepted inside `${...}`.
pub const PLACEHOLDERS: &[&str] = &["caller", "called", "custom", "input", "callid", "menuId"];

/// Event data available to templates. Serializable so it can be kept in call state.
///
/// `Debug` masks phone numbers, input (may be a PIN) and `custom`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(description = "Values of the call's first event, for `${...}` placeholders.")]
pub struct EventContext {
    /// Calling party (ICE `cli`, DICE `from`), normalized to `+digits` when it is a number.
    pub caller: Option<String>,
    /// Called endpoint (`to.endpoint`), normalized like `caller`.
    pub called: Option<String>,
    /// The event's `custom` string.
    pub custom: Option<String>,
    /// PIE `menuResult.value`.
    pub input: Option<String>,
    /// The call id (`callid`, or `callId` as some docs spell it).
    pub callid: Option<String>,
    /// PIE `menuResult.menuId`.
    pub menu_id: Option<String>,
}

impl EventContext {
    /// The context of a callback (any event type; absent fields become `None`).
    pub fn of(event: &ParsedEvent) -> EventContext {
        let menu = event.menu_result();
        EventContext {
            caller: event.caller().map(normalize_number),
            called: event.to_endpoint().map(normalize_number),
            custom: event.custom().map(str::to_owned),
            input: menu.and_then(|m| m.value.clone()),
            callid: event.callid.clone(),
            menu_id: menu.and_then(|m| m.menu_id.clone()),
        }
    }

    /// The context used to render flows for validation (see [`crate::flows::engine::emissions`]).
    pub fn sample() -> EventContext {
        EventContext {
            caller: Some("+15550100000".to_owned()),
            called: Some("+15550100001".to_owned()),
            custom: Some("sample".to_owned()),
            input: Some("1234".to_owned()),
            callid: Some("00000000-0000-4000-8000-000000000000".to_owned()),
            menu_id: Some("main".to_owned()),
        }
    }

    /// Fills every `None` field from `stored` (e.g. the ICE context kept in call state), so that
    /// `${caller}` still works when answering a PIE.
    pub fn fill_missing_from(&mut self, stored: &EventContext) {
        fn fill(slot: &mut Option<String>, from: &Option<String>) {
            if slot.is_none() {
                slot.clone_from(from);
            }
        }
        fill(&mut self.caller, &stored.caller);
        fill(&mut self.called, &stored.called);
        fill(&mut self.custom, &stored.custom);
        fill(&mut self.input, &stored.input);
        fill(&mut self.callid, &stored.callid);
        fill(&mut self.menu_id, &stored.menu_id);
    }

    /// The value of placeholder `name` (one of [`PLACEHOLDERS`]); `None` if unknown or missing.
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            "caller" => self.caller.as_deref(),
            "called" => self.called.as_deref(),
            "custom" => self.custom.as_deref(),
            "input" => self.input.as_deref(),
            "callid" => self.callid.as_deref(),
            "menuId" => self.menu_id.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Debug for EventContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventContext")
            .field(
                "caller",
                &self.caller.as_deref().map(crate::redact::mask_number),
            )
            .field(
                "called",
                &self.called.as_deref().map(crate::redact::mask_number),
            )
            .field(
                "custom",
                &self.custom.as_ref().map(|c| format!("<{} bytes>", c.len())),
            )
            .field(
                "input",
                &self
                    .input
                    .as_ref()
                    .map(|i| format!("<{} chars>", i.chars().count())),
            )
            .field("callid", &self.callid)
            .field("menu_id", &self.menu_id)
            .finish()
    }
}

/// Normalizes a phone number for templates: surrounding whitespace is trimmed and a value that is
/// only digits (optionally already `+`-prefixed) becomes `+digits`. Anything else (`private`, user
/// names, SIP addresses) is returned trimmed but otherwise unchanged.
pub fn normalize_number(raw: &str) -> String {
    let t = raw.trim();
    crate::events::normalize_msisdn(t).unwrap_or_else(|| t.to_owned())
}

/// One lexical piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Literal text (`$$` yields `Text("$")`).
    Text(&'a str),
    /// `${name}`; `name` may be unknown.
    Var(&'a str),
    /// `${` with no closing `}`: the rest of the string, from the `$`.
    Unterminated(&'a str),
}

/// Splits a template string into pieces.
pub(crate) fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        if pos > 0 {
            out.push(Piece::Text(&rest[..pos]));
        }
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push(Piece::Text("$"));
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => {
                    out.push(Piece::Var(&inner[..end]));
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push(Piece::Unterminated(&rest[pos..]));
                    return out;
                }
            }
        } else {
            out.push(Piece::Text("$"));
            rest = after;
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// Substitutes the placeholders of one string (see the module docs for the rules).
pub fn render_str(s: &str, ctx: &EventContext) -> String {
    if !s.contains('$') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for piece in pieces(s) {
        match piece {
            Piece::Text(t) | Piece::Unterminated(t) => out.push_str(t),
            Piece::Var(name) if PLACEHOLDERS.contains(&name) => {
                out.push_str(ctx.get(name).unwrap_or(""));
            }
            Piece::Var(name) => {
                out.push_str("${");
                out.push_str(name);
                out.push('}');
            }
        }
    }
    out
}

/// Renders a template: every string value anywhere in `template` goes through [`render_str`];
/// other values and all object keys are copied unchanged. The template is copied as it is (maps
/// node by node, without sorting their keys again), then only the strings with a `$` are rewritten.
pub fn render(template: &Value, ctx: &EventContext) -> Value {
    let mut out = template.clone();
    render_in_place(&mut out, ctx);
    out
}

/// Substitutes the placeholders of every string in `value`.
fn render_in_place(value: &mut Value, ctx: &EventContext) {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                *s = render_str(s, ctx);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| render_in_place(v, ctx)),
        Value::Object(map) => map.values_mut().for_each(|v| render_in_place(v, ctx)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::mask_number;
    use proptest::prelude::*;
    use serde_json::json;

    fn ctx() -> EventContext {
        EventContext {
            caller: Some("+46708168731".into()),
            called: Some("+15550001111".into()),
            custom: Some("vip".into()),
            input: Some("1452".into()),
            callid: Some("abc@1.2.3.4".into()),
            menu_id: Some("pin".into()),
        }
    }

    #[test]
    fn substitutes_all_placeholders() {
        let s = "${caller}|${called}|${custom}|${input}|${callid}|${menuId}";
        assert_eq!(
            render_str(s, &ctx()),
            "+46708168731|+15550001111|vip|1452|abc@1.2.3.4|pin"
        );
    }

    #[test]
    fn escapes_and_lone_dollars() {
        let c = ctx();
        assert_eq!(render_str("costs $5", &c), "costs $5");
        assert_eq!(render_str("$$${input}$$", &c), "$1452$");
        assert_eq!(render_str("$${input}", &c), "${input}");
        assert_eq!(render_str("end$", &c), "end$");
        assert_eq!(render_str("$", &c), "$");
    }

    #[test]
    fn missing_unknown_and_unterminated() {
        let empty = EventContext::default();
        assert_eq!(render_str("you entered ${input}.", &empty), "you entered .");
        assert_eq!(render_str("a ${nope} b", &ctx()), "a ${nope} b");
        assert_eq!(render_str("a ${input", &ctx()), "a ${input");
        assert_eq!(render_str("${}", &ctx()), "${}");
    }

    #[test]
    fn render_walks_nested_values_but_not_keys() {
        let t = json!({
            "instructions": [{"name": "say", "text": "Hi ${caller}", "n": 3}],
            "action": {"name": "connectPstn", "number": "${input}", "cli": "${caller}",
                       "${input}": true, "suppressCallbacks": false, "x": null}
        });
        let out = render(&t, &ctx());
        assert_eq!(
            out,
            json!({
                "instructions": [{"name": "say", "text": "Hi +46708168731", "n": 3}],
                "action": {"name": "connectPstn", "number": "1452", "cli": "+46708168731",
                           "${input}": true, "suppressCallbacks": false, "x": null}
            })
        );
    }

    fn context(event: Value) -> EventContext {
        EventContext::of(&crate::events::parse_value(event).unwrap())
    }

    #[test]
    fn context_from_ice_pie_dice() {
        let ice = json!({"event": "ice", "callid": "c1", "cli": "46708168731", "custom": "x",
                         "to": {"type": "did", "endpoint": "+15550001111"}});
        let c = context(ice);
        assert_eq!(c.caller.as_deref(), Some("+46708168731"));
        assert_eq!(c.called.as_deref(), Some("+15550001111"));
        assert_eq!(c.custom.as_deref(), Some("x"));
        assert_eq!(c.callid.as_deref(), Some("c1"));
        assert_eq!(c.input, None);

        let pie = json!({"event": "pie", "callId": "c2",
                         "menuResult": {"type": "sequence", "value": "6789", "menuId": "confirm"}});
        let mut p = context(pie);
        assert_eq!(p.input.as_deref(), Some("6789"));
        assert_eq!(p.menu_id.as_deref(), Some("confirm"));
        assert_eq!(p.callid.as_deref(), Some("c2"));
        assert_eq!(p.caller, None);
        p.fill_missing_from(&c);
        assert_eq!(p.caller.as_deref(), Some("+46708168731"));
        assert_eq!(p.callid.as_deref(), Some("c2"));
        assert_eq!(p.input.as_deref(), Some("6789"));

        let dice = json!({"event": "dice", "from": "private", "to": {"endpoint": "user-7"}});
        let d = context(dice);
        assert_eq!(d.caller.as_deref(), Some("private"));
        assert_eq!(d.called.as_deref(), Some("user-7"));

        assert_eq!(
            context(json!({"event": "notify", "cli": "+46708168731"})),
            EventContext::default()
        );
        assert_eq!(context(json!({"event": "ace", "cli": 5})).caller, None);
    }

    #[test]
    fn normalize_and_mask() {
        assert_eq!(normalize_number(" 46708168731 "), "+46708168731");
        assert_eq!(normalize_number("+46708168731"), "+46708168731");
        assert_eq!(normalize_number("+"), "+");
        assert_eq!(normalize_number("private"), "private");
        assert_eq!(mask_number("+46708168731"), "+467******31");
        assert_eq!(mask_number("12345"), "1***5");
        let dbg = format!("{:?}", ctx());
        assert!(!dbg.contains("46708168731"), "{dbg}");
        assert!(!dbg.contains("1452"), "{dbg}");
        assert!(dbg.contains("+467******31"), "{dbg}");
    }

    #[test]
    fn pieces_lexing() {
        assert_eq!(
            pieces("a${x}b$$c${y"),
            vec![
                Piece::Text("a"),
                Piece::Var("x"),
                Piece::Text("b"),
                Piece::Text("$"),
                Piece::Text("c"),
                Piece::Unterminated("${y")
            ]
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z$}{ ]{0,12}".prop_map(Value::String),
            ".{0,24}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z$]{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn render_never_panics_and_keeps_shape(t in arb_json(), input in ".{0,8}") {
            let c = EventContext { input: Some(input), ..ctx() };
            let out = render(&t, &c);
            prop_assert_eq!(out.is_object(), t.is_object());
            prop_assert_eq!(out.is_array(), t.is_array());
            // Rendering with an empty context only ever removes text.
            let plain = render(&t, &EventContext::default());
            prop_assert!(plain.to_string().len() <= t.to_string().len());
        }

        #[test]
        fn text_without_dollar_is_unchanged(s in "[^$]{0,40}") {
            prop_assert_eq!(render_str(&s, &ctx()), s);
        }
    }
}
