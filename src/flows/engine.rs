//! Flow execution: which node answers a callback, and every SVAML a flow can emit.
//!
//! The engine is stateless: the caller (the gate) keeps, per call, the id of the node whose SVAML
//! was sent last ([`Decision::node`]) and passes it back as `current_node` on the next PIE.
//!
//! Rules of [`decide`]:
//! - ICE → the `start` node.
//! - ACE → the `ace` node, or `{"action":{"name":"continue"}}` when the flow has none.
//! - PIE → from `current_node`, the first `next` key present among: the `return(...)` value (for
//!   `menuResult.type` `return`), the lowercase type (`sequence`, `timeout`, `invalidinput`,
//!   `error`, `hangup`, `return`), `default`; otherwise `fallbackNode`; otherwise a hangup reply.
//!   A PIE of type `hangup` (the caller hung up during the menu) without an explicit `hangup` key
//!   is answered with a hangup directly (no default/fallback: there is nobody to talk to).
//!   An unknown or missing `current_node` (lost state, flow edited) goes to `fallbackNode`/hangup.
//!
//! `Decision::via` explains the choice for logs:
//! `node:<id>` (ICE/ACE), `ace:continue`, `transition:<from>-><to>` (the matched key is in
//! [`Decision::key`]), `fallback:<from>-><to>` (`<from>` is `?` when unknown),
//! `no-transition:hangup`, `caller-hangup:hangup`, `missing-node:<id>` (start/ace/target node
//! absent: only possible for a flow that failed [`crate::flows::model::FlowDoc::check_structure`]).

use serde::Serialize;
use serde_json::{json, Value};
use std::fmt;

use super::model::FlowDoc;
use super::render::EventContext;
use crate::events::{EventKind, ParsedEvent};
use crate::svaml::Target;

/// Which callback is being answered.
#[derive(Clone, PartialEq, Eq)]
pub enum Stage {
    /// Incoming call event.
    Ice,
    /// Answered call event.
    Ace,
    /// Prompt input event (from `menuResult`).
    Pie {
        /// `menuResult.type` as sent (compared case-insensitively).
        menu_result_type: String,
        /// `menuResult.value` (the return value or the digits).
        value: Option<String>,
        /// `menuResult.menuId`.
        menu_id: Option<String>,
    },
}

impl Stage {
    /// The stage of a callback: ICE, ACE or PIE (with its `menuResult`); `None` for the events that
    /// flows do not answer (DICE, Notify, unknown). A PIE without `menuResult.type` gets type `""`,
    /// which matches only `default`.
    pub fn of(event: &ParsedEvent) -> Option<Stage> {
        match event.kind {
            EventKind::Ice => Some(Stage::Ice),
            EventKind::Ace => Some(Stage::Ace),
            EventKind::Pie => {
                let menu = event.menu_result();
                Some(Stage::Pie {
                    menu_result_type: menu
                        .and_then(|m| m.r#type.as_ref())
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    value: menu.and_then(|m| m.value.clone()),
                    menu_id: menu.and_then(|m| m.menu_id.clone()),
                })
            }
            EventKind::Dice | EventKind::Notify | EventKind::Unknown(_) => None,
        }
    }

    /// What the reply to this stage is checked as: the same as [`EventKind::reply_target`] of
    /// its event.
    pub fn target(&self) -> Target {
        match self {
            Stage::Ice => Target::Ice,
            Stage::Ace => Target::Ace,
            Stage::Pie { .. } => Target::Pie,
        }
    }
}

impl fmt::Debug for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Ice => f.write_str("Ice"),
            Stage::Ace => f.write_str("Ace"),
            Stage::Pie {
                menu_result_type,
                value,
                menu_id,
            } => f
                .debug_struct("Pie")
                .field("menu_result_type", menu_result_type)
                // The value may be a PIN: only its length is shown.
                .field(
                    "value",
                    &value
                        .as_ref()
                        .map(|v| format!("<{} chars>", v.chars().count())),
                )
                .field("menu_id", menu_id)
                .finish(),
        }
    }
}

/// The engine's answer to one callback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The node whose SVAML is being sent (store it as the call's current node); `None` when the
    /// reply did not come from a node (`continue`/`hangup` defaults).
    pub node: Option<String>,
    /// The `next` key that matched (PIE transitions only).
    pub key: Option<String>,
    /// The rendered SVAML reply (always an object with an `action`).
    pub svaml: Value,
    /// Why this reply was chosen (see the module docs for the formats).
    pub via: String,
}

/// `{"action":{"name":"hangup"}}`.
pub fn hangup_svaml() -> Value {
    json!({"action": {"name": "hangup"}})
}

/// `{"action":{"name":"continue"}}`.
pub fn continue_svaml() -> Value {
    json!({"action": {"name": "continue"}})
}

fn from_node(
    flow: &FlowDoc,
    id: &str,
    ctx: &EventContext,
    key: Option<&str>,
    via: String,
) -> Option<Decision> {
    flow.nodes.get(id).map(|node| Decision {
        node: Some(id.to_owned()),
        key: key.map(str::to_owned),
        svaml: node.render(ctx),
        via,
    })
}

fn canned(svaml: Value, via: String) -> Decision {
    Decision {
        node: None,
        key: None,
        svaml,
        via,
    }
}

/// Decides the reply to a callback (rules in the module docs). Never fails: a broken flow or lost
/// state degrades to `continue` (ACE) or `hangup` (ICE/PIE).
pub fn decide(
    flow: &FlowDoc,
    stage: &Stage,
    current_node: Option<&str>,
    ctx: &EventContext,
) -> Decision {
    match stage {
        Stage::Ice => from_node(flow, &flow.start, ctx, None, format!("node:{}", flow.start))
            .unwrap_or_else(|| canned(hangup_svaml(), format!("missing-node:{}", flow.start))),
        Stage::Ace => match &flow.ace {
            None => canned(continue_svaml(), "ace:continue".to_owned()),
            Some(ace) => from_node(flow, ace, ctx, None, format!("node:{ace}"))
                .unwrap_or_else(|| canned(continue_svaml(), format!("missing-node:{ace}"))),
        },
        Stage::Pie {
            menu_result_type,
            value,
            ..
        } => decide_pie(flow, menu_result_type, value.as_deref(), current_node, ctx),
    }
}

fn decide_pie(
    flow: &FlowDoc,
    menu_result_type: &str,
    value: Option<&str>,
    current_node: Option<&str>,
    ctx: &EventContext,
) -> Decision {
    let kind = menu_result_type.trim().to_ascii_lowercase();
    let current = current_node.and_then(|id| flow.nodes.get_key_value(id));
    if let Some((from, node)) = current {
        let mut keys: Vec<&str> = Vec::with_capacity(3);
        if kind == "return" {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                keys.push(v);
            }
        }
        if !kind.is_empty() {
            keys.push(&kind);
        }
        if kind == "hangup" && !node.next.contains_key("hangup") {
            return canned(hangup_svaml(), "caller-hangup:hangup".to_owned());
        }
        keys.push("default");
        if let Some((key, target)) = keys.iter().find_map(|k| node.next.get_key_value(*k)) {
            let via = format!("transition:{from}->{target}");
            if let Some(d) = from_node(flow, target, ctx, Some(key), via) {
                return d;
            }
            // Target missing (flow not checked): fall through to the fallback.
        }
    } else if kind == "hangup" {
        return canned(hangup_svaml(), "caller-hangup:hangup".to_owned());
    }
    let from = current.map(|(id, _)| id.as_str()).unwrap_or("?");
    match &flow.fallback_node {
        Some(fb) => from_node(flow, fb, ctx, None, format!("fallback:{from}->{fb}"))
            .unwrap_or_else(|| canned(hangup_svaml(), format!("missing-node:{fb}"))),
        None => canned(hangup_svaml(), "no-transition:hangup".to_owned()),
    }
}

/// One SVAML document a flow can send, with the event it answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Emission {
    /// The node id.
    pub node: String,
    /// `"ice"`, `"ace"` or `"pie"`.
    pub target: &'static str,
    /// The node rendered with a sample context.
    pub svaml: Value,
}

/// Every SVAML the flow can emit: `start` for `"ice"`, `ace` for `"ace"`, and for `"pie"` every
/// node a transition of a reachable node leads to plus `fallbackNode`. A node can appear for
/// several targets. Order: the ICE emission, the ACE emission, then PIE emissions by node id.
///
/// Rendering uses [`EventContext::sample`]; ICE/ACE emissions are rendered without `input` and
/// `menuId` (those events carry none), so a template that needs them is caught by validation.
/// Nodes that do not exist or are unreachable are not emitted (`check_structure` reports them).
pub fn emissions(flow: &FlowDoc) -> Vec<Emission> {
    let sample = EventContext::sample();
    let no_input = EventContext {
        input: None,
        menu_id: None,
        ..sample.clone()
    };
    let mut out = Vec::new();
    let mut emit = |id: &str, target: &'static str, ctx: &EventContext| {
        if let Some(node) = flow.nodes.get(id) {
            out.push(Emission {
                node: id.to_owned(),
                target,
                svaml: node.render(ctx),
            });
        }
    };
    emit(&flow.start, "ice", &no_input);
    if let Some(ace) = &flow.ace {
        emit(ace, "ace", &no_input);
    }
    for id in flow.pie_nodes() {
        emit(id, "pie", &sample);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::model::tests::fixture;
    use proptest::prelude::*;

    fn pie(t: &str, v: Option<&str>) -> Stage {
        Stage::Pie {
            menu_result_type: t.to_owned(),
            value: v.map(str::to_owned),
            menu_id: Some("main".to_owned()),
        }
    }

    fn ctx() -> EventContext {
        EventContext {
            caller: Some("+46708168731".into()),
            called: Some("+12025550100".into()),
            ..EventContext::default()
        }
    }

    #[test]
    fn ivr_walkthrough() {
        let f = fixture("ivr.json");
        let d = decide(&f, &Stage::Ice, None, &ctx());
        assert_eq!(d.node.as_deref(), Some("welcome"));
        assert_eq!(d.via, "node:welcome");
        assert_eq!(d.key, None);
        assert_eq!(d.svaml["action"]["name"], "runMenu");
        assert!(d.svaml.get("instructions").is_none());

        // 1 → sales
        let d = decide(&f, &pie("return", Some("sales")), Some("welcome"), &ctx());
        assert_eq!(d.node.as_deref(), Some("sales"));
        assert_eq!(d.key.as_deref(), Some("sales"));
        assert_eq!(d.via, "transition:welcome->sales");
        assert_eq!(d.svaml["action"]["number"], "+12025550143");

        // 2 → support sub-menu → 2 technical
        let d = decide(&f, &pie("Return", Some("support")), Some("welcome"), &ctx());
        assert_eq!(d.node.as_deref(), Some("support"));
        let d = decide(
            &f,
            &pie("return", Some("technical")),
            Some("support"),
            &ctx(),
        );
        assert_eq!(d.via, "transition:support->technical");
        assert_eq!(d.svaml["action"]["name"], "connectSip");

        // 3 → PIN collection → sequence with ${input}
        let d = decide(&f, &pie("return", Some("pin")), Some("welcome"), &ctx());
        assert_eq!(d.node.as_deref(), Some("pin"));
        let mut c = ctx();
        c.input = Some("4711".into());
        let d = decide(&f, &pie("sequence", Some("4711")), Some("pin"), &c);
        assert_eq!(d.node.as_deref(), Some("pinEntered"));
        assert_eq!(d.key.as_deref(), Some("sequence"));
        assert_eq!(
            d.svaml,
            json!({
                "instructions": [{"name": "say", "locale": "en-US",
                    "text": "You entered 4711. Connecting you to your account manager."}],
                "action": {"name": "connectPstn", "number": "+12025550145", "maxDuration": 3600}
            })
        );

        // timeout on the PIN menu → goodbye via the explicit key
        let d = decide(&f, &pie("timeout", None), Some("pin"), &ctx());
        assert_eq!(d.node.as_deref(), Some("goodbye"));
        assert_eq!(d.key.as_deref(), Some("timeout"));
        assert_eq!(d.svaml["action"]["name"], "hangup");

        // invalid input on the main menu repeats it (legacy capitalised type)
        let d = decide(&f, &pie("InvalidInput", None), Some("welcome"), &ctx());
        assert_eq!(d.via, "transition:welcome->welcome");

        // unknown return value → default
        let d = decide(&f, &pie("return", Some("other")), Some("welcome"), &ctx());
        assert_eq!(d.key.as_deref(), Some("default"));
        assert_eq!(d.via, "transition:welcome->goodbye");
    }

    #[test]
    fn fallback_and_hangup_paths() {
        let mut f = fixture("ivr.json");
        // sales has no `next`: fallbackNode answers.
        let d = decide(&f, &pie("return", Some("x")), Some("sales"), &ctx());
        assert_eq!(d.node.as_deref(), Some("goodbye"));
        assert_eq!(d.key, None);
        assert_eq!(d.via, "fallback:sales->goodbye");
        // unknown current node
        let d = decide(&f, &pie("sequence", Some("1")), Some("deleted"), &ctx());
        assert_eq!(d.via, "fallback:?->goodbye");
        let d = decide(&f, &pie("sequence", Some("1")), None, &ctx());
        assert_eq!(d.via, "fallback:?->goodbye");
        // caller hung up during the menu
        let d = decide(&f, &pie("hangup", None), Some("welcome"), &ctx());
        assert_eq!(d, canned(hangup_svaml(), "caller-hangup:hangup".into()));
        // no fallback → hangup
        f.fallback_node = None;
        let d = decide(&f, &pie("error", None), Some("sales"), &ctx());
        assert_eq!(d.node, None);
        assert_eq!(d.svaml, hangup_svaml());
        assert_eq!(d.via, "no-transition:hangup");
        // empty type only matches default
        let d = decide(&f, &pie("", Some("sales")), Some("welcome"), &ctx());
        assert_eq!(d.key.as_deref(), Some("default"));
    }

    #[test]
    fn ace_and_broken_flows() {
        let fwd = fixture("forward.json");
        let d = decide(&fwd, &Stage::Ice, None, &ctx());
        assert_eq!(
            d.svaml,
            json!({"action": {"name": "connectPstn", "number": "+12025550150",
                              "cli": "+46708168731", "maxDuration": 7200, "dialTimeout": 30}})
        );
        let d = decide(&fwd, &Stage::Ace, Some("forward"), &ctx());
        assert_eq!(d.node.as_deref(), Some("answered"));
        assert_eq!(d.via, "node:answered");
        assert_eq!(d.svaml, continue_svaml());

        let ivr = fixture("ivr.json");
        let d = decide(&ivr, &Stage::Ace, Some("sales"), &ctx());
        assert_eq!(d, canned(continue_svaml(), "ace:continue".into()));

        let mut broken = ivr.clone();
        broken.start = "nope".into();
        broken.ace = Some("gone".into());
        broken.fallback_node = Some("void".into());
        assert_eq!(
            decide(&broken, &Stage::Ice, None, &ctx()),
            canned(hangup_svaml(), "missing-node:nope".into())
        );
        assert_eq!(
            decide(&broken, &Stage::Ace, None, &ctx()),
            canned(continue_svaml(), "missing-node:gone".into())
        );
        assert_eq!(
            decide(&broken, &pie("timeout", None), None, &ctx()),
            canned(hangup_svaml(), "missing-node:void".into())
        );
        // transition to a missing node falls back
        broken.fallback_node = Some("goodbye".into());
        broken
            .nodes
            .get_mut("welcome")
            .unwrap()
            .next
            .insert("sales".into(), "ghost".into());
        let d = decide(
            &broken,
            &pie("return", Some("sales")),
            Some("welcome"),
            &ctx(),
        );
        assert_eq!(d.via, "fallback:welcome->goodbye");
    }

    #[test]
    fn a_stage_is_checked_as_its_events_reply_target() {
        for name in ["ice", "ace", "pie", "dice", "notify", "other"] {
            let parsed = crate::events::parse_value(json!({"event": name})).unwrap();
            assert_eq!(
                Stage::of(&parsed).map(|s| s.target()),
                parsed.kind.reply_target(),
                "{name}"
            );
        }
    }

    #[test]
    fn stage_from_event() {
        let stage = |v: Value| Stage::of(&crate::events::parse_value(v).unwrap());
        assert_eq!(stage(json!({"event": "ice"})), Some(Stage::Ice));
        assert_eq!(stage(json!({"event": "ACE"})), Some(Stage::Ace));
        assert_eq!(stage(json!({"event": "dice"})), None);
        assert_eq!(
            Stage::of(&crate::events::parse_value(json!({"event": "notify"})).unwrap()),
            None
        );
        let p = stage(json!({"event": "pie",
            "menuResult": {"type": "sequence", "value": "6789", "menuId": "confirm"}}));
        assert_eq!(
            p,
            Some(Stage::Pie {
                menu_result_type: "sequence".into(),
                value: Some("6789".into()),
                menu_id: Some("confirm".into())
            })
        );
        let dbg = format!("{:?}", p.unwrap());
        assert!(!dbg.contains("6789"), "{dbg}");
        assert_eq!(
            stage(json!({"event": "pie"})),
            Some(Stage::Pie {
                menu_result_type: String::new(),
                value: None,
                menu_id: None
            })
        );
    }

    fn targets(f: &FlowDoc) -> Vec<(String, &'static str)> {
        emissions(f)
            .into_iter()
            .map(|e| (e.node, e.target))
            .collect()
    }

    #[test]
    fn emissions_cover_reachable_nodes() {
        let ivr = fixture("ivr.json");
        assert_eq!(
            targets(&ivr),
            vec![
                ("welcome".into(), "ice"),
                ("billing".into(), "pie"),
                ("goodbye".into(), "pie"),
                ("pin".into(), "pie"),
                ("pinEntered".into(), "pie"),
                ("sales".into(), "pie"),
                ("support".into(), "pie"),
                ("technical".into(), "pie"),
                ("welcome".into(), "pie"),
            ]
        );
        let e = emissions(&ivr);
        let pin = e.iter().find(|e| e.node == "pinEntered").unwrap();
        assert_eq!(
            pin.svaml["instructions"][0]["text"],
            "You entered 1234. Connecting you to your account manager."
        );

        let fwd = fixture("forward.json");
        let e = emissions(&fwd);
        assert_eq!(
            targets(&fwd),
            vec![("forward".into(), "ice"), ("answered".into(), "ace")]
        );
        assert_eq!(e[0].svaml["action"]["cli"], "+15550100000");

        let conf = fixture("conference.json");
        assert_eq!(
            targets(&conf),
            vec![
                ("askRoom".into(), "ice"),
                ("goodbye".into(), "pie"),
                ("join".into(), "pie")
            ]
        );
        let join = emissions(&conf)
            .into_iter()
            .find(|e| e.node == "join")
            .unwrap();
        assert_eq!(join.svaml["action"]["conferenceId"], "room-1234");

        // ICE emissions render without input so templates depending on it are exposed.
        let mut f = fwd.clone();
        f.nodes.get_mut("forward").unwrap().action["number"] = json!("${input}");
        assert_eq!(emissions(&f)[0].svaml["action"]["number"], "");
        // unreachable and missing nodes are not emitted
        f.ace = Some("missing".into());
        assert_eq!(targets(&f), vec![("forward".into(), "ice")]);
    }

    fn arb_flow() -> impl Strategy<Value = (FlowDoc, Option<String>)> {
        let ids = prop::sample::select(vec!["a", "b", "c", "zz"]);
        let key = prop::sample::select(vec![
            "sales", "sequence", "timeout", "default", "hangup", "return", "error", "x",
        ]);
        let action = prop_oneof![
            Just(
                json!({"name": "runMenu", "menus": [{"id": "main", "maxDigits": 2,
                "options": [{"dtmf": "1", "action": "return(sales)"}]}]})
            ),
            Just(json!({"name": "hangup"})),
            Just(json!("not an object")),
            Just(json!({"name": "connectPstn", "number": "${input}"})),
        ];
        let node = (
            action,
            prop::collection::btree_map(key, ids.clone(), 0..4),
            prop::option::of(Just(json!([{"name": "say", "text": "${caller} $$ ${x"}]))),
        )
            .prop_map(|(action, next, instructions)| crate::flows::model::Node {
                description: String::new(),
                instructions,
                action,
                next: next
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            });
        (
            prop::collection::btree_map(ids.clone(), node, 0..4),
            ids.clone(),
            prop::option::of(ids.clone()),
            prop::option::of(ids.clone()),
            prop::option::of(ids),
        )
            .prop_map(|(nodes, start, ace, fb, cur)| {
                let flow = FlowDoc {
                    format_version: 1,
                    name: "p".into(),
                    description: String::new(),
                    start: start.to_owned(),
                    ace: ace.map(str::to_owned),
                    fallback_node: fb.map(str::to_owned),
                    nodes: nodes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                };
                (flow, cur.map(str::to_owned))
            })
    }

    proptest! {
        #[test]
        fn decide_always_answers_with_an_action(
            (flow, cur) in arb_flow(),
            kind in prop::sample::select(vec!["return", "sequence", "timeout", "hangup", "Error", "", "weird"]),
            value in prop::option::of("[a-z0-9]{0,6}"),
            stage_pick in 0u8..3,
        ) {
            let stage = match stage_pick {
                0 => Stage::Ice,
                1 => Stage::Ace,
                _ => Stage::Pie { menu_result_type: kind.to_owned(), value, menu_id: None },
            };
            let d = decide(&flow, &stage, cur.as_deref(), &EventContext::sample());
            prop_assert!(d.svaml.is_object());
            prop_assert!(d.svaml.get("action").is_some());
            if let Some(node) = &d.node {
                prop_assert!(flow.nodes.contains_key(node));
            }
            // structure check and emissions never panic either
            let _ = flow.check_structure();
            for e in emissions(&flow) {
                prop_assert!(flow.nodes.contains_key(&e.node));
                prop_assert!(e.svaml.get("action").is_some());
            }
        }
    }
}
