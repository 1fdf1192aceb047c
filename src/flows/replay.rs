//! Real calls re-driven through a candidate flow version: the recorded ICE, then the PIE answers the
//! caller actually gave, with the same timing facts (the recorded event bodies are replayed; only a
//! PIE's `menuResult` is rewritten when the candidate's menu gives the caller's key another meaning).
//!
//! The key a caller pressed is known from the menu that was sent (the recorded reply before the PIE)
//! and the value Sinch reported: `return(sales)` from a menu whose key 1 returns `sales` was key 1.
//! In the candidate, key 1 may return something else: it is replayed as the key, not as the value.
//! An input that has no meaning in the candidate (the key is no longer an option, opens a sub-menu
//! whose keys were never recorded, or the candidate sends no menu at that point) ends that call's
//! replay and is reported.
//!
//! Nothing here does I/O: nothing is sent to Sinch, nothing is recorded. [`Session`] is also what
//! shadow evaluation (`live::shadow`) steps event by event.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::engine::{decide, Stage};
use super::menu::{self, OptionAction, RunMenu};
use super::model::FlowDoc;
use super::render::EventContext;
use crate::events::EventKind;
use crate::svaml::report::Violation;
use crate::svaml::{CallContext, Mode, Target, Validator};

/// How replies are judged: the gate's validator and mode, and the fallback that goes out instead of
/// a refused reply.
pub struct Judge<'a> {
    /// The validator.
    pub validator: &'a Validator,
    /// Normal or strict.
    pub mode: Mode,
    /// The pre-validated fallback of each event.
    pub fallback: &'a (dyn Fn(Target) -> Value + Sync),
}

/// One stored event of a call.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// The callback's reference.
    pub reference: String,
    /// ice, ace, pie, dice or notify.
    pub event_type: EventKind,
    /// The event as received.
    pub body: Value,
    /// The reply sent (ICE, ACE, PIE).
    pub reply: Option<Value>,
    /// The flow version that answered.
    pub flow_version: Option<i32>,
    /// The node that answered.
    pub node: Option<String>,
    /// When it arrived.
    pub received_at: OffsetDateTime,
}

/// A stored call: its events in arrival order (replays of an event excluded).
#[derive(Debug, Clone)]
pub struct RecordedCall {
    /// Sinch call id.
    pub callid: String,
    /// The events.
    pub events: Vec<RecordedEvent>,
}

/// A PIE's `menuResult`, as replay shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MenuInput {
    /// `type`.
    pub r#type: String,
    /// `value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `menuId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub menu_id: Option<String>,
}

impl MenuInput {
    fn of(pie: &Value) -> MenuInput {
        let mr = pie.get("menuResult");
        let text = |k: &str| {
            mr.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        MenuInput {
            r#type: text("type").unwrap_or_default(),
            value: text("value"),
            menu_id: text("menuId"),
        }
    }
}

/// What the caller did, and how it reads in the candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InputMapping {
    /// What Sinch reported to the live flow.
    pub recorded: MenuInput,
    /// The key the caller pressed (from the menu that was sent), when it is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What the candidate receives (null when the input has no meaning in it).
    pub candidate: Option<MenuInput>,
    /// Whether the candidate receives something else than was recorded (a moved key).
    pub moved: bool,
}

/// The answer of the candidate to one event.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// The event answered.
    pub target: Target,
    /// For a PIE: the input and its meaning in the candidate.
    pub input: Option<InputMapping>,
    /// Why the input has no meaning in the candidate (then nothing was answered).
    pub meaningless: Option<String>,
    /// The node that answers.
    pub node: Option<String>,
    /// Why (see `flows::engine`).
    pub via: String,
    /// What would go out: the reply, or the fallback when the gate refuses it.
    pub reply: Value,
    /// The rendered reply before the gate.
    pub candidate: Value,
    /// Whether the gate passes it.
    pub passed: bool,
    /// The gate's errors when it does not.
    pub violations: Vec<Violation>,
}

/// A candidate's side of one call: where its engine is, the context and cookies it carries, and the
/// last replies of both sides (to read the next PIE).
#[derive(Debug, Clone, Default)]
pub struct Session {
    node: Option<String>,
    ctx: EventContext,
    cookies: BTreeMap<String, String>,
    candidate_reply: Option<Value>,
    live_reply: Option<Value>,
}

enum Translation {
    Event(Value, InputMapping),
    Meaningless(String, InputMapping),
}

fn rewrite(pie: &Value, to: &MenuInput) -> Value {
    let mut out = pie.clone();
    let mut mr = pie.get("menuResult").cloned().unwrap_or_else(|| json!({}));
    mr["type"] = json!(to.r#type);
    match &to.value {
        Some(v) => mr["value"] = json!(v),
        None => {
            if let Some(m) = mr.as_object_mut() {
                m.remove("value");
            }
        }
    }
    if let Some(m) = &to.menu_id {
        mr["menuId"] = json!(m);
    }
    out["menuResult"] = mr;
    out
}

/// Reads a recorded PIE in the candidate: the key from the live menu, its meaning in the candidate's.
fn translate(pie: &Value, live_prev: Option<&Value>, cand_prev: Option<&Value>) -> Translation {
    let recorded = MenuInput::of(pie);
    let kind = recorded.r#type.to_ascii_lowercase();
    let mapping = InputMapping {
        recorded,
        key: None,
        candidate: None,
        moved: false,
    };
    let cand_menu = cand_prev.and_then(RunMenu::of_reply);
    let cand_conf = cand_prev.and_then(menu::conference_digits);
    if cand_menu.is_none() && cand_conf.is_none() {
        let then = cand_prev.map_or("nothing".to_owned(), |r| menu::hears(r).1);
        return Translation::Meaningless(
            format!("the candidate sends no menu at this point (its reply {then}), so this input cannot happen"),
            mapping,
        );
    }
    match kind.as_str() {
        "return" => {
            let live_menu = live_prev.and_then(RunMenu::of_reply);
            translate_return(pie, mapping, live_menu.as_ref(), cand_menu.as_ref())
        }
        "sequence" => translate_sequence(pie, mapping, cand_menu.as_ref(), cand_conf.is_some()),
        _ => as_recorded(pie, mapping),
    }
}

/// The recorded PIE, unchanged: it means the same in the candidate.
fn as_recorded(pie: &Value, mut mapping: InputMapping) -> Translation {
    mapping.candidate = Some(mapping.recorded.clone());
    Translation::Event(pie.clone(), mapping)
}

/// A `return`: the key the caller pressed in the live menu, and what that key does in the
/// candidate's menu of the same id (or its first menu).
fn translate_return(
    pie: &Value,
    mut mapping: InputMapping,
    live_menu: Option<&RunMenu>,
    cand_menu: Option<&RunMenu>,
) -> Translation {
    let recorded = mapping.recorded.clone();
    let value = recorded.value.clone().unwrap_or_default();
    let key = live_menu.and_then(|m| m.key_of_return(recorded.menu_id.as_deref(), &value));
    mapping.key.clone_from(&key);
    let Some(cand) = cand_menu else {
        return Translation::Meaningless(
            "the candidate runs a conference here, not a menu".into(),
            mapping,
        );
    };
    let Some(key) = key else {
        // The live menu is unknown (e.g. a fallback went out): keep the value if the
        // candidate offers it.
        return if cand.menus.iter().any(|m| m.key_of_return(&value).is_some()) {
            as_recorded(pie, mapping)
        } else {
            Translation::Meaningless(
                format!("return({value}) is not offered by the candidate's menu"),
                mapping,
            )
        };
    };
    let menu = recorded
        .menu_id
        .as_deref()
        .and_then(|id| cand.menu(id))
        .or_else(|| cand.menu(&cand.first));
    match menu.and_then(|m| m.option(&key).map(|o| (m, o))) {
        Some((m, o)) => match &o.action {
            OptionAction::Return(v) => {
                let to = MenuInput {
                    r#type: recorded.r#type.clone(),
                    value: Some(v.clone()),
                    menu_id: Some(m.id.clone()),
                };
                mapping.moved = to.value != recorded.value;
                mapping.candidate = Some(to.clone());
                Translation::Event(rewrite(pie, &to), mapping)
            }
            OptionAction::Menu(sub) => Translation::Meaningless(
                format!("key {key} now opens menu `{sub}`; what the caller would press there is not recorded"),
                mapping,
            ),
            OptionAction::Other(a) => {
                Translation::Meaningless(format!("key {key} now does `{a}`"), mapping)
            }
        },
        None => Translation::Meaningless(
            format!("key {key} is no longer an option of the candidate's menu"),
            mapping,
        ),
    }
}

/// A `sequence`: the digits go to a conference or to a candidate menu that collects digits as
/// they are; else, when the candidate's first menu has them as an option, they become that
/// option's `return`.
fn translate_sequence(
    pie: &Value,
    mut mapping: InputMapping,
    cand_menu: Option<&RunMenu>,
    conference: bool,
) -> Translation {
    let recorded = mapping.recorded.clone();
    let digits = recorded.value.clone().unwrap_or_default();
    mapping.key = Some(digits.clone());
    if conference {
        return as_recorded(pie, mapping);
    }
    let Some(cand) = cand_menu else {
        return as_recorded(pie, mapping);
    };
    let collecting = recorded
        .menu_id
        .as_deref()
        .and_then(|id| cand.menu(id))
        .filter(|m| m.max_digits.is_some())
        .or_else(|| {
            cand.reachable()
                .into_iter()
                .find(|m| m.max_digits.is_some())
        });
    if let Some(m) = collecting {
        let to = MenuInput {
            menu_id: Some(m.id.clone()),
            ..recorded
        };
        mapping.candidate = Some(to.clone());
        return Translation::Event(rewrite(pie, &to), mapping);
    }
    let first = cand.menu(&cand.first);
    match first.and_then(|m| m.option(&digits)) {
        Some(o) => match &o.action {
            OptionAction::Return(v) => {
                let to = MenuInput {
                    r#type: "return".into(),
                    value: Some(v.clone()),
                    menu_id: first.map(|m| m.id.clone()),
                };
                mapping.moved = true;
                mapping.candidate = Some(to.clone());
                Translation::Event(rewrite(pie, &to), mapping)
            }
            _ => Translation::Meaningless(
                format!("the digits {digits} now open a sub-menu"),
                mapping,
            ),
        },
        None => Translation::Meaningless(
            "the candidate's menu does not collect digits here".into(),
            mapping,
        ),
    }
}

impl Session {
    /// Answers one recorded event with the candidate. `live_reply` is the reply that was sent to it
    /// (kept to read the next PIE). `None` for events that get no reply (DICE, Notify, unknown).
    pub fn step(
        &mut self,
        flow: &FlowDoc,
        judge: &Judge<'_>,
        event: &Value,
        live_reply: Option<&Value>,
    ) -> Option<StepResult> {
        let live_prev = std::mem::replace(&mut self.live_reply, live_reply.cloned());
        let parsed = crate::events::parse_value(event.clone()).ok()?;
        let stage = Stage::of(&parsed)?;
        let (target, replayed, input) = match stage {
            Stage::Ice | Stage::Ace => (stage.target(), parsed, None),
            Stage::Pie { .. } => {
                match translate(event, live_prev.as_ref(), self.candidate_reply.as_ref()) {
                    Translation::Event(e, mapping) => {
                        let parsed = crate::events::parse_value(e).ok()?;
                        (stage.target(), parsed, Some(mapping))
                    }
                    Translation::Meaningless(why, mapping) => {
                        return Some(StepResult {
                            target: Target::Pie,
                            input: Some(mapping),
                            meaningless: Some(why),
                            node: None,
                            via: String::new(),
                            reply: Value::Null,
                            candidate: Value::Null,
                            passed: true,
                            violations: Vec::new(),
                        });
                    }
                }
            }
        };
        let stage = Stage::of(&replayed)?;
        if target == Target::Ice {
            *self = Session {
                live_reply: self.live_reply.take(),
                ..Session::default()
            };
        }
        let mut ctx = EventContext::of(&replayed);
        ctx.fill_missing_from(&self.ctx);
        let d = decide(flow, &stage, self.node.as_deref(), &ctx);
        let report = judge.validator.check_in_call(
            target,
            &d.svaml,
            judge.mode,
            &CallContext {
                cookies: self.cookies.clone(),
            },
        );
        let reply = if report.valid {
            d.svaml.clone()
        } else {
            (judge.fallback)(target)
        };
        self.cookies.extend(crate::svaml::cookies_set(&reply));
        self.node = d.node.clone().or(self.node.take());
        self.ctx = ctx;
        self.candidate_reply = Some(reply.clone());
        Some(StepResult {
            target,
            input,
            meaningless: None,
            node: d.node,
            via: d.via,
            reply,
            candidate: d.svaml,
            passed: report.valid,
            violations: report.errors().cloned().collect(),
        })
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    /// The node that answered.
    pub node: Option<String>,
    /// The reply that went (or would go) out.
    #[schema(value_type = Object)]
    pub reply: Value,
}

/// The first event of a call where the candidate answers differently.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// Index of the event in the call (0: the ICE).
    pub index: usize,
    /// ice, ace or pie.
    #[schema(value_type = String)]
    pub event: EventKind,
    /// The recorded callback's reference.
    pub reference: String,
    /// For a PIE: what the caller did and how the candidate reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<InputMapping>,
    /// What was sent.
    pub recorded: Side,
    /// What the candidate would send.
    pub candidate: Side,
    /// Why the candidate chose it.
    pub via: String,
    /// Whether the node differs (else only the reply does).
    pub path_differs: bool,
}

/// A recorded input that has no meaning in the candidate.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeaninglessInput {
    /// Index of the PIE in the call.
    pub index: usize,
    /// The recorded callback's reference.
    pub reference: String,
    /// What the caller did.
    pub input: InputMapping,
    /// Why it has no meaning in the candidate.
    pub reason: String,
}

/// A candidate reply the gate would refuse.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusedReply {
    /// Index of the event in the call.
    pub index: usize,
    /// ice, ace or pie.
    #[schema(value_type = String)]
    pub event: EventKind,
    /// The node whose reply it is.
    pub node: Option<String>,
    /// The refused reply.
    #[schema(value_type = Object)]
    pub reply: Value,
    /// The gate's errors.
    pub violations: Vec<Violation>,
}

/// One call replayed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallReplay {
    /// Sinch call id.
    pub callid: String,
    /// When its first event arrived.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// The version that answered it live.
    pub recorded_version: Option<i32>,
    /// Events answered by the candidate.
    pub events: usize,
    /// Whether the path is the same: every event answered by the same node, every input with a
    /// meaning in the candidate.
    pub same_path: bool,
    /// Whether every reply is the same, byte for byte as JSON (a reworded prompt or a reordered
    /// menu changes replies without changing the path).
    pub same_replies: bool,
    /// Both.
    pub same: bool,
    /// The first event answered differently (node or reply), both replies side by side.
    pub first_difference: Option<Difference>,
    /// The first event answered by another node (the caller's path changes there).
    pub first_path_difference: Option<Difference>,
    /// The recorded input that has no meaning in the candidate (the replay of the call stops there).
    pub meaningless_input: Option<MeaninglessInput>,
    /// Inputs the candidate reads differently (moved keys).
    pub moved_keys: Vec<InputMapping>,
    /// Replies the gate would now refuse.
    pub refused: Vec<RefusedReply>,
}

/// Replays one call through `flow` (see the module docs).
pub fn replay_call(flow: &FlowDoc, judge: &Judge<'_>, call: &RecordedCall) -> CallReplay {
    let mut session = Session::default();
    let mut out = CallReplay {
        callid: call.callid.clone(),
        started_at: call.events.first().map(|e| e.received_at),
        recorded_version: call.events.iter().find_map(|e| e.flow_version),
        events: 0,
        same_path: true,
        same_replies: true,
        same: true,
        first_difference: None,
        first_path_difference: None,
        meaningless_input: None,
        moved_keys: Vec::new(),
        refused: Vec::new(),
    };
    for (index, ev) in call.events.iter().enumerate() {
        let Some(step) = session.step(flow, judge, &ev.body, ev.reply.as_ref()) else {
            continue;
        };
        if let Some(reason) = step.meaningless {
            out.same_path = false;
            out.meaningless_input = step.input.map(|input| MeaninglessInput {
                index,
                reference: ev.reference.clone(),
                input,
                reason,
            });
            break;
        }
        out.events += 1;
        if let Some(m) = step.input.as_ref().filter(|m| m.moved) {
            out.moved_keys.push(m.clone());
        }
        if !step.passed {
            out.refused.push(RefusedReply {
                index,
                event: ev.event_type.clone(),
                node: step.node.clone(),
                reply: step.candidate.clone(),
                violations: step.violations.clone(),
            });
        }
        let path_differs = step.node != ev.node;
        let reply_differs = Some(&step.reply) != ev.reply.as_ref();
        if !path_differs && !reply_differs {
            continue;
        }
        let diff = Difference {
            index,
            event: ev.event_type.clone(),
            reference: ev.reference.clone(),
            input: step.input.clone(),
            recorded: Side {
                node: ev.node.clone(),
                reply: ev.reply.clone().unwrap_or(Value::Null),
            },
            candidate: Side {
                node: step.node.clone(),
                reply: step.reply.clone(),
            },
            via: step.via.clone(),
            path_differs,
        };
        out.same_replies &= !reply_differs;
        if path_differs {
            out.same_path = false;
            if out.first_path_difference.is_none() {
                out.first_path_difference = Some(diff.clone());
            }
        }
        if out.first_difference.is_none() {
            out.first_difference = Some(diff);
        }
    }
    out.same = out.same_path && out.same_replies;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::model::tests::fixture;

    fn judge_and(f: impl FnOnce(&Judge<'_>)) {
        let validator = Validator::new().unwrap();
        let fallback = |t: Target| crate::gate::builtin_fallback(t);
        let judge = Judge {
            validator: &validator,
            mode: Mode::Normal,
            fallback: &fallback,
        };
        f(&judge);
    }

    /// Records a call as the live flow answers it (the same engine, as the reply path runs it).
    fn record(flow: &FlowDoc, callid: &str, pies: &[(&str, &str)]) -> RecordedCall {
        let mut events = vec![
            json!({"event": "ice", "callid": callid, "timestamp": "2026-11-25T10:00:00Z",
            "cli": "46708168731", "to": {"type": "did", "endpoint": "+15550100"}}),
        ];
        for (kind, value) in pies {
            events.push(json!({"event": "pie", "callid": callid, "timestamp": "2026-11-25T10:00:05Z",
                "menuResult": {"menuId": "main", "type": kind, "value": value, "inputMethod": "dtmf"}}));
        }
        let mut recorded = Vec::new();
        judge_and(|judge| {
            let mut live = Session::default();
            for (i, e) in events.iter().enumerate() {
                let step = live.step(flow, judge, e, None).unwrap();
                // The live side reads its own input as it is: feed its reply back as the live reply.
                live.live_reply = Some(step.reply.clone());
                recorded.push(RecordedEvent {
                    reference: format!("{callid}-{i}"),
                    event_type: e["event"].as_str().unwrap().into(),
                    body: e.clone(),
                    reply: Some(step.reply),
                    flow_version: Some(1),
                    node: step.node,
                    received_at: time::macros::datetime!(2026-11-25 10:00:00 UTC),
                });
            }
        });
        RecordedCall {
            callid: callid.into(),
            events: recorded,
        }
    }

    fn swapped_ivr() -> FlowDoc {
        let mut f = fixture("ivr.json");
        let opts = &mut f.nodes.get_mut("welcome").unwrap().action["menus"][0]["options"];
        opts[0]["action"] = json!("return(support)");
        opts[1]["action"] = json!("return(sales)");
        f
    }

    #[test]
    fn unchanged_flow_replays_the_same_and_moved_keys_are_replayed_as_keys() {
        let ivr = fixture("ivr.json");
        let sales = record(&ivr, "c-sales", &[("return", "sales")]);
        let pin = record(&ivr, "c-pin", &[("return", "pin"), ("sequence", "4711")]);
        let silent = record(&ivr, "c-silent", &[("timeout", "")]);
        judge_and(|judge| {
            for call in [&sales, &pin, &silent] {
                let r = replay_call(&ivr, judge, call);
                assert!(r.same, "{r:#?}");
                assert_eq!(r.events, call.events.len());
            }
            let cand = swapped_ivr();
            let r = replay_call(&cand, judge, &sales);
            assert!(!r.same && !r.same_path && !r.same_replies);
            // The menu itself changed (the ICE reply), and the path changes at the first key.
            assert_eq!(r.first_difference.as_ref().unwrap().index, 0);
            let d = r.first_path_difference.as_ref().unwrap();
            assert_eq!(d.index, 1);
            assert!(d.path_differs);
            assert_eq!(d.recorded.node.as_deref(), Some("sales"));
            assert_eq!(d.candidate.node.as_deref(), Some("support"));
            let input = d.input.as_ref().unwrap();
            assert_eq!(input.key.as_deref(), Some("1"));
            assert_eq!(
                input.candidate.as_ref().unwrap().value.as_deref(),
                Some("support")
            );
            assert_eq!(r.moved_keys.len(), 1);
            for call in [&pin, &silent] {
                let r = replay_call(&cand, judge, call);
                assert!(r.same_path && !r.same_replies, "{r:#?}");
                assert!(!r.first_difference.as_ref().unwrap().path_differs);
            }
        });
    }

    #[test]
    fn an_input_without_meaning_in_the_candidate_is_reported() {
        let ivr = fixture("ivr.json");
        let pin = record(&ivr, "c-pin", &[("return", "pin"), ("sequence", "4711")]);
        let mut cand = ivr.clone();
        let opts = cand.nodes.get_mut("welcome").unwrap().action["menus"][0]["options"]
            .as_array_mut()
            .unwrap();
        opts.pop();
        cand.nodes.get_mut("welcome").unwrap().next.remove("pin");
        judge_and(|judge| {
            let r = replay_call(&cand, judge, &pin);
            assert!(!r.same_path);
            let m = r.meaningless_input.unwrap();
            assert_eq!(m.index, 1);
            assert_eq!(m.input.key.as_deref(), Some("3"));
            assert!(
                m.reason.contains("key 3 is no longer an option"),
                "{}",
                m.reason
            );
        });
    }

    #[test]
    fn a_reply_the_gate_would_refuse_is_reported() {
        let ivr = fixture("ivr.json");
        let sales = record(&ivr, "c-sales", &[("return", "sales")]);
        let mut cand = ivr.clone();
        cand.nodes.get_mut("sales").unwrap().action["maxDuration"] = json!(99999);
        judge_and(|judge| {
            let r = replay_call(&cand, judge, &sales);
            assert_eq!(r.refused.len(), 1, "{r:#?}");
            assert_eq!(r.refused[0].node.as_deref(), Some("sales"));
            let d = r.first_difference.unwrap();
            assert_eq!(
                d.candidate.reply,
                crate::gate::builtin_fallback(Target::Pie)
            );
            assert!(!d.path_differs);
        });
    }
}
