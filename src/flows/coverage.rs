//! Whole-call coverage: every path a caller can take through a flow, walked as Sinch would drive it.
//!
//! From the ICE (and the ACE, when the flow answers one) the walk renders each reply, gates it in its
//! call (the cookie budget counts every `setCookie` earlier on the path), and, when Sinch would send a
//! PIE after it, builds every PIE the caller can cause: each `return(...)` option of every menu the
//! caller can reach (with the key pressed), digits for a menu with `maxDigits` (or a conference with
//! `conferenceDtmfOptions`), silence (`timeout`), a key no option uses (`invalidinput`), `error`,
//! and the caller hanging up. Each PIE is read by the same event reader and answered by the same
//! engine ([`crate::flows::engine::decide`]) as a live one.
//!
//! A position is the node whose reply was sent last plus the cookies set so far; each position is
//! expanded once (breadth first, so the path shown for a finding is a shortest one), and the walk
//! stops after [`MAX_STATES`] positions (the report says so).
//!
//! Findings (errors refuse a publish; see [`CoverageReport::valid`]):
//!
//! | code | severity | what |
//! |---|---|---|
//! | `gate-refused` | error | a reply on some path is refused by the gate (the fallback would go out) |
//! | `gate-warning` | warning | a reply on some path has gate warnings |
//! | `option-leads-nowhere` | error | a key the menu offers (or digits it collects) is handled by nothing: the call is hung up in silence |
//! | `option-menu-missing` | error | an option opens `menu(x)` and the runMenu has no menu `x` |
//! | `option-caught-by-default` | warning | an offered key has no `next` entry of its own and ends in `default` or `fallbackNode` |
//! | `option-duplicate-key` | warning | two options of one menu use the same key (only the first fires) |
//! | `menu-unreached` | warning | a menu of a runMenu no key leads to |
//! | `trap-loop` | error | a position from which no input of the caller ends the call or leaves the menus (only hanging up does) |
//! | `hangup-without-prompt` | warning | a path ends in a hangup without a word to the caller |
//! | `node-unreached` | warning | no path reaches this node |
//! | `walk-truncated` | warning | the walk stopped at [`MAX_STATES`] positions |

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{json, Value};

use super::engine::{decide, Stage};
use super::menu::{self, OptionAction, RunMenu};
use super::model::{has_errors, pointer_token, FlowDoc, FlowProblem, Severity};
use super::render::EventContext;
use crate::svaml::report::{Report, Violation};
use crate::svaml::{CallContext, Mode, Target, Validator};

/// Most positions (node + cookies) the walk expands.
pub const MAX_STATES: usize = 2_000;

/// Most work the longest-path search may do before it settles for the deepest shortest path.
const LONGEST_BUDGET: usize = 200_000;

/// The PIE input a step answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CoverageInput)]
pub struct Input {
    /// `menuResult.type`: return, sequence, timeout, invalidinput, error or hangup.
    pub kind: String,
    /// `menuResult.value`, when Sinch sends one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `menuResult.menuId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub menu_id: Option<String>,
    /// The key the caller pressed (or the digits entered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// In words: `press 1 (sales)`, `enter 1234`, `silence (timeout)`, ….
    pub label: String,
}

/// What the gate made of a step's reply.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CoverageGate)]
pub struct GateView {
    /// Whether the gate passes the reply (else the fallback goes out).
    pub passed: bool,
    /// Codes of the errors.
    pub errors: Vec<String>,
    /// Codes of the warnings.
    pub warnings: Vec<String>,
}

/// How a step continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CoverageNext)]
pub enum Next {
    /// Sinch sends a PIE after this reply: the children are the caller's inputs.
    Input,
    /// The call leaves the flow (connects, hangs up, continues, parks).
    End,
    /// The gate refuses the reply: the fallback goes out and the call ends.
    Refused,
    /// The same position (node and cookies) on this path before: see `see`.
    Loop,
    /// The same position was reached on a shorter path: see `see`.
    Seen,
    /// Not expanded: the walk reached its limit.
    Truncated,
}

/// One event of a path and its reply.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CoverageStep)]
pub struct Step {
    /// Step id (index in `steps`).
    pub id: usize,
    /// The step whose reply this event follows (null for the ICE and the ACE).
    pub parent: Option<usize>,
    /// Events from the start of the call (the ICE is 1).
    pub depth: usize,
    /// ice, ace or pie.
    pub event: &'static str,
    /// What the caller did (PIE only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
    /// The PIE Sinch would send (PIE only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub pie: Option<Value>,
    /// The node that answers (null for the engine's own hangup or continue).
    pub node: Option<String>,
    /// Why the engine chose it (see `flows::engine`).
    pub via: String,
    /// What the caller hears, in order.
    pub hears: Vec<String>,
    /// What the reply does then, in words.
    pub then: String,
    /// The rendered reply.
    #[schema(value_type = Object)]
    pub reply: Value,
    /// The gate's verdict on it, in the call (cookies set earlier on the path count).
    pub gate: GateView,
    /// Cookies of the call after this reply.
    pub cookies: BTreeMap<String, String>,
    /// How the path continues.
    pub next: Next,
    /// For `loop` and `seen`: the step that expands the same position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub see: Option<usize>,
    /// Child steps (the inputs after this reply).
    pub children: Vec<usize>,
}

/// A finding of the walk.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CoverageFinding)]
pub struct Finding {
    /// error (refuses a publish) or warning.
    pub severity: Severity,
    /// Stable code (see the table in the module docs of `flows::coverage`).
    #[schema(value_type = String, example = "trap-loop")]
    pub code: &'static str,
    /// The node concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// JSON pointer into the flow document, when there is one place to fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// In words.
    pub message: String,
    /// The path that reaches it, one label per event, from the ICE.
    pub path: Vec<String>,
    /// The step concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The gate's findings, for `gate-refused` and `gate-warning`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

/// The longest path a caller can take without coming back to a position.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LongestPath {
    /// Events on it (the ICE is 1).
    pub steps: usize,
    /// The path, one label per event.
    pub path: Vec<String>,
    /// false when the search was cut short: then it is the deepest first-reached step.
    pub exact: bool,
}

/// The whole-call coverage report of a flow.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CoverageReport {
    /// The flow's name.
    pub flow: String,
    /// No error: neither a structural one nor a finding of the walk.
    pub valid: bool,
    /// Errors (structural problems and findings).
    pub errors: usize,
    /// Warnings (structural problems and findings).
    pub warnings: usize,
    /// The structural check of the document (as on save).
    pub problems: Vec<FlowProblem>,
    /// What the walk found, errors first.
    pub findings: Vec<Finding>,
    /// Nodes some path reaches.
    pub reached_nodes: Vec<String>,
    /// Nodes no path reaches.
    pub unreached_nodes: Vec<String>,
    /// The longest path.
    pub longest_path: LongestPath,
    /// Positions (node + cookies) expanded.
    pub positions: usize,
    /// Whether the walk stopped at its limit.
    pub truncated: bool,
    /// Every step, parents before children; the ICE is step 0.
    pub steps: Vec<Step>,
}

/// The position after a reply: where the engine is and what the call carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Position {
    node: Option<String>,
    cookies: BTreeMap<String, String>,
}

struct Walker<'a> {
    flow: &'a FlowDoc,
    validator: &'a Validator,
    mode: Mode,
    steps: Vec<Step>,
    /// Context kept after each step (the engine fills later events from it).
    contexts: Vec<EventContext>,
    positions: HashMap<Position, usize>,
    findings: Vec<Finding>,
    static_done: BTreeSet<String>,
    warned: BTreeSet<(Option<String>, &'static str, String)>,
    truncated: bool,
}

const SAMPLE_TIMESTAMP: &str = "2026-01-01T12:00:00Z";
const KEYS: [&str; 12] = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "*", "#"];

fn digits(n: u64) -> String {
    "1234567890"
        .chars()
        .cycle()
        .take(n.clamp(1, 20) as usize)
        .collect()
}

/// The ICE that starts the walk (values of [`EventContext::sample`]).
pub fn sample_ice() -> Value {
    let s = EventContext::sample();
    json!({"event": "ice", "callid": s.callid, "timestamp": SAMPLE_TIMESTAMP, "version": 1,
           "cli": s.caller, "to": {"type": "number", "endpoint": s.called}, "domain": "pstn",
           "originationType": "PSTN", "custom": s.custom, "applicationKey": "sample"})
}

fn sample_ace() -> Value {
    let s = EventContext::sample();
    json!({"event": "ace", "callid": s.callid, "timestamp": SAMPLE_TIMESTAMP, "version": 1,
           "custom": s.custom, "applicationKey": "sample"})
}

/// The PIE Sinch sends for `input`, with the cookies of the call (in the form Sinch's legacy server
/// SDK reads them: `[{"key", "value"}]`).
fn pie_event(input: &Input, cookies: &BTreeMap<String, String>) -> Value {
    let s = EventContext::sample();
    let mut result = json!({"type": input.kind, "inputMethod": "dtmf"});
    if let Some(v) = &input.value {
        result["value"] = json!(v);
    }
    if let Some(m) = &input.menu_id {
        result["menuId"] = json!(m);
    }
    let mut pie = json!({"event": "pie", "callid": s.callid, "timestamp": SAMPLE_TIMESTAMP,
                         "version": 1, "menuResult": result, "custom": s.custom,
                         "applicationKey": "sample"});
    if !cookies.is_empty() {
        pie["cookies"] = cookies
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
    }
    pie
}

/// Every input a caller can give after `reply`, with the static findings of its menus.
fn inputs_after(reply: &Value) -> Vec<Input> {
    let (mut out, first_menu) = if let Some(run) = RunMenu::of_reply(reply) {
        (menu_inputs(&run), Some(run.first.clone()))
    } else if let Some(n) = menu::conference_digits(reply) {
        (vec![sequence(n, None)], None)
    } else {
        return Vec::new();
    };
    for (kind, label) in [
        ("timeout", "silence (timeout)"),
        ("error", "Sinch reports an error"),
        ("hangup", "caller hangs up"),
    ] {
        out.push(Input {
            kind: kind.into(),
            value: None,
            menu_id: first_menu.clone(),
            key: None,
            label: label.into(),
        });
    }
    out
}

/// Digits for a menu (or conference) that collects `n` of them.
fn sequence(n: u64, menu_id: Option<String>) -> Input {
    let d = digits(n);
    Input {
        kind: "sequence".into(),
        value: Some(d.clone()),
        menu_id,
        key: Some(d.clone()),
        label: format!("enter {d}"),
    }
}

/// The inputs the menus of a runMenu offer: each key of a `return(...)` option (the first option
/// of a key only), digits where a menu collects them, and a key no option uses.
fn menu_inputs(run: &RunMenu) -> Vec<Input> {
    let mut out = Vec::new();
    let reachable = run.reachable();
    for m in &reachable {
        let mut seen_keys = BTreeSet::new();
        for o in &m.options {
            if !seen_keys.insert(o.dtmf.clone()) {
                continue;
            }
            if let OptionAction::Return(v) = &o.action {
                out.push(Input {
                    kind: "return".into(),
                    value: Some(v.clone()),
                    menu_id: Some(m.id.clone()),
                    key: Some(o.dtmf.clone()),
                    label: if m.id == run.first {
                        format!("press {} ({v})", o.dtmf)
                    } else {
                        format!("press {} in menu {} ({v})", o.dtmf, m.id)
                    },
                });
            }
        }
        if let Some(n) = m.max_digits {
            out.push(sequence(n, Some(m.id.clone())));
        }
    }
    let used: BTreeSet<&str> = reachable
        .iter()
        .flat_map(|m| m.options.iter().map(|o| o.dtmf.as_str()))
        .collect();
    if used.is_empty() {
        return out;
    }
    if let Some(k) = KEYS.iter().find(|k| !used.contains(**k)) {
        out.push(Input {
            kind: "invalidinput".into(),
            value: Some((*k).to_owned()),
            menu_id: Some(run.first.clone()),
            key: Some((*k).to_owned()),
            label: format!("press {k} (no such option)"),
        });
    }
    out
}

/// Kinds of input that are the caller's choice (hanging up and Sinch errors are not ways out of a
/// menu the caller chose).
fn is_choice(kind: &str) -> bool {
    matches!(kind, "return" | "sequence" | "timeout" | "invalidinput")
}

impl<'a> Walker<'a> {
    fn label(&self, id: usize) -> String {
        let s = &self.steps[id];
        let to = s
            .node
            .clone()
            .unwrap_or_else(|| format!("({})", s.then.clone()));
        match &s.input {
            Some(i) => format!("{} → {to}", i.label),
            None => format!("{} → {to}", s.event.to_uppercase()),
        }
    }

    fn path(&self, id: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            out.push(self.label(c));
            cur = self.steps[c].parent;
        }
        out.reverse();
        out
    }

    fn is_ancestor(&self, maybe: usize, of: usize) -> bool {
        let mut cur = Some(of);
        while let Some(c) = cur {
            if c == maybe {
                return true;
            }
            cur = self.steps[c].parent;
        }
        false
    }

    /// Answers `event` after `parent` (None: the first event of the call), adds the step and queues
    /// its position when a PIE follows.
    fn answer(
        &mut self,
        parent: Option<usize>,
        event: Value,
        input: Option<Input>,
        queue: &mut VecDeque<usize>,
    ) {
        let Ok(parsed) = crate::events::parse_value(event.clone()) else {
            return;
        };
        let Some(stage) = Stage::of(&parsed) else {
            return;
        };
        let target = stage.target();
        let label = target.as_str();
        let mut ctx = EventContext::of(&parsed);
        let (current, cookies_before) = match parent {
            Some(p) => {
                ctx.fill_missing_from(&self.contexts[p]);
                let pos = self.position_of(p);
                (pos.node, pos.cookies)
            }
            None => (None, BTreeMap::new()),
        };
        let d = decide(self.flow, &stage, current.as_deref(), &ctx);
        let report = self.validator.check_in_call(
            target,
            &d.svaml,
            self.mode,
            &CallContext {
                cookies: cookies_before.clone(),
            },
        );
        let mut cookies = cookies_before;
        if report.valid {
            cookies.extend(crate::svaml::cookies_set(&d.svaml));
        }
        let pie = matches!(target, Target::Pie).then_some(event);
        let id = self.push_step(parent, label, input, pie, &d, &report, cookies.clone());
        self.contexts.push(ctx);
        if !report.valid {
            self.steps[id].next = Next::Refused;
            self.refused_finding(id, label, &d, &report);
            return;
        }
        self.warning_findings(id, label, &d, &report);
        if let Some(n) = &d.node {
            self.static_menu_findings(n, &d.svaml, id);
        }
        let kind = self.steps[id].input.as_ref().map(|i| i.kind.clone());
        if let Some(kind) = kind.as_deref() {
            self.transition_findings(id, kind, &d);
        }
        if !menu::expects_pie(&d.svaml) {
            self.silent_hangup_finding(parent, id, kind.as_deref().unwrap_or(label), &d);
            return;
        }
        let node = d.node.clone().or(current);
        self.queue_position(id, Position { node, cookies }, queue);
    }

    /// Adds the step of a decided reply (its continuation still `End`) under `parent`; returns
    /// its id.
    #[allow(clippy::too_many_arguments)]
    fn push_step(
        &mut self,
        parent: Option<usize>,
        event: &'static str,
        input: Option<Input>,
        pie: Option<Value>,
        d: &super::engine::Decision,
        report: &Report,
        cookies: BTreeMap<String, String>,
    ) -> usize {
        let (hears, then) = menu::hears(&d.svaml);
        let id = self.steps.len();
        let depth = parent.map_or(1, |p| self.steps[p].depth + 1);
        let gate = GateView {
            passed: report.valid,
            errors: report.errors().map(|v| v.code.clone()).collect(),
            warnings: report.warnings().map(|v| v.code.clone()).collect(),
        };
        self.steps.push(Step {
            id,
            parent,
            depth,
            event,
            input,
            pie,
            node: d.node.clone(),
            via: d.via.clone(),
            hears,
            then,
            reply: d.svaml.clone(),
            gate,
            cookies,
            next: Next::End,
            see: None,
            children: Vec::new(),
        });
        if let Some(p) = parent {
            self.steps[p].children.push(id);
        }
        id
    }

    /// `gate-refused`: the gate refuses the reply of step `id`.
    fn refused_finding(
        &mut self,
        id: usize,
        label: &str,
        d: &super::engine::Decision,
        report: &Report,
    ) {
        self.findings.push(Finding {
            severity: Severity::Error,
            code: "gate-refused",
            node: d.node.clone(),
            pointer: d.node.as_ref().map(|n| format!("/nodes/{}", pointer_token(n))),
            message: format!(
                "the gate refuses the {label} reply of {} on this path, so the caller gets the fallback: {}",
                d.node.as_deref().map_or("the engine".to_owned(), |n| format!("node `{n}`")),
                report
                    .errors()
                    .map(|v| format!("{} {}", v.code, v.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            path: self.path(id),
            step: Some(id),
            violations: report.errors().cloned().collect(),
        });
    }

    /// `gate-warning`: each warning of the reply of step `id`, once per node, event and code.
    fn warning_findings(
        &mut self,
        id: usize,
        label: &str,
        d: &super::engine::Decision,
        report: &Report,
    ) {
        for w in report.warnings() {
            if self.warned.insert((
                d.node.clone(),
                "gate-warning",
                format!("{label}:{}", w.code),
            )) {
                self.findings.push(Finding {
                    severity: Severity::Warning,
                    code: "gate-warning",
                    node: d.node.clone(),
                    pointer: None,
                    message: format!("{} {}", w.code, w.message),
                    path: self.path(id),
                    step: Some(id),
                    violations: vec![w.clone()],
                });
            }
        }
    }

    /// `hangup-without-prompt`: the reply of step `id` ends the call without a word, for an input
    /// (`kind`, or the event for the first ones) other than the caller hanging up or a choice the
    /// flow does not handle (that is `option-leads-nowhere`).
    fn silent_hangup_finding(
        &mut self,
        parent: Option<usize>,
        id: usize,
        kind: &str,
        d: &super::engine::Decision,
    ) {
        let silent = !menu::is_audible(&d.svaml) && menu::is_hangup(&d.svaml);
        let unhandled_choice = matches!(kind, "return" | "sequence")
            && (d.via.starts_with("no-transition") || d.via.starts_with("missing-node"));
        if !silent || kind == "hangup" || unhandled_choice {
            return;
        }
        let from = parent.and_then(|p| self.position_of(p).node);
        if self.warned.insert((
            from.clone(),
            "hangup-without-prompt",
            format!("{kind}:{}", d.via),
        )) {
            self.findings.push(Finding {
                severity: Severity::Warning,
                code: "hangup-without-prompt",
                node: d.node.clone().or(from),
                pointer: None,
                message: "the call is hung up without a word to the caller".into(),
                path: self.path(id),
                step: Some(id),
                violations: Vec::new(),
            });
        }
    }

    /// Where step `id` continues when a PIE follows: a position seen before (on this path: a
    /// loop), the walk's limit, or a new position to expand.
    fn queue_position(&mut self, id: usize, pos: Position, queue: &mut VecDeque<usize>) {
        match self.positions.get(&pos) {
            Some(&other) => {
                let looped = self.is_ancestor(other, id);
                self.steps[id].next = if looped { Next::Loop } else { Next::Seen };
                self.steps[id].see = Some(other);
            }
            None if self.positions.len() >= MAX_STATES => {
                self.steps[id].next = Next::Truncated;
                self.truncated = true;
            }
            None => {
                self.positions.insert(pos, id);
                self.steps[id].next = Next::Input;
                queue.push_back(id);
            }
        }
    }

    fn position_of(&self, id: usize) -> Position {
        // The engine keeps the current node when a reply comes from no node.
        let mut node = None;
        let mut cur = Some(id);
        while let Some(c) = cur {
            if let Some(n) = &self.steps[c].node {
                node = Some(n.clone());
                break;
            }
            cur = self.steps[c].parent;
        }
        Position {
            node,
            cookies: self.steps[id].cookies.clone(),
        }
    }

    fn transition_findings(&mut self, id: usize, kind: &str, d: &super::engine::Decision) {
        let Some(parent) = self.steps[id].parent else {
            return;
        };
        let from = self.position_of(parent).node;
        let input = self.steps[id].input.clone();
        let Some(input) = input else { return };
        if !matches!(kind, "return" | "sequence") {
            return;
        }
        let what = match kind {
            "return" => format!(
                "key {} (return({}))",
                input.key.as_deref().unwrap_or("?"),
                input.value.as_deref().unwrap_or("")
            ),
            _ => "the digits entered".to_owned(),
        };
        let from_name = from.as_deref().unwrap_or("?");
        let nowhere = d.via.starts_with("no-transition") || d.via.starts_with("missing-node");
        let by_default = d.key.as_deref() == Some("default") || d.via.starts_with("fallback:");
        let value_key = match kind {
            "return" => format!(
                "/next/{}",
                pointer_token(input.value.as_deref().unwrap_or(""))
            ),
            _ => "/next/sequence".to_owned(),
        };
        let tag = format!("{kind}:{}", input.value.as_deref().unwrap_or(""));
        if nowhere
            && self
                .warned
                .insert((from.clone(), "option-leads-nowhere", tag.clone()))
        {
            self.findings.push(Finding {
                severity: Severity::Error,
                code: "option-leads-nowhere",
                node: from.clone(),
                pointer: from
                    .as_ref()
                    .map(|n| format!("/nodes/{}{value_key}", pointer_token(n))),
                message: format!(
                    "node `{from_name}` offers {what} but nothing handles it (no `next` entry, no default, no fallbackNode): the call is hung up in silence"
                ),
                path: self.path(id),
                step: Some(id),
                violations: Vec::new(),
            });
        } else if by_default
            && kind == "return"
            && self
                .warned
                .insert((from.clone(), "option-caught-by-default", tag))
        {
            self.findings.push(Finding {
                severity: Severity::Warning,
                code: "option-caught-by-default",
                node: from.clone(),
                pointer: from
                    .as_ref()
                    .map(|n| format!("/nodes/{}{value_key}", pointer_token(n))),
                message: format!(
                    "node `{from_name}` offers {what} without a `next` entry of its own; it ends in {}",
                    d.node.as_deref().map_or("a hangup".to_owned(), |n| format!("`{n}`"))
                ),
                path: self.path(id),
                step: Some(id),
                violations: Vec::new(),
            });
        }
    }

    /// Findings about the menus of a node's reply that hold on every path (reported once).
    fn static_menu_findings(&mut self, node: &str, reply: &Value, id: usize) {
        if !self.static_done.insert(node.to_owned()) {
            return;
        }
        let Some(run) = RunMenu::of_reply(reply) else {
            return;
        };
        let reachable: BTreeSet<usize> = run.reachable().iter().map(|m| m.index).collect();
        let base = format!("/nodes/{}/action/menus", pointer_token(node));
        for m in &run.menus {
            if !reachable.contains(&m.index) {
                self.findings.push(Finding {
                    severity: Severity::Warning,
                    code: "menu-unreached",
                    node: Some(node.to_owned()),
                    pointer: Some(format!("{base}/{}", m.index)),
                    message: format!(
                        "menu `{}` of node `{node}` is never played: no option of a reachable menu opens it",
                        m.id
                    ),
                    path: self.path(id),
                    step: Some(id),
                    violations: Vec::new(),
                });
                continue;
            }
            let mut keys = BTreeSet::new();
            for o in &m.options {
                let pointer = format!("{base}/{}/options/{}", m.index, o.index);
                if !keys.insert(o.dtmf.as_str()) {
                    self.findings.push(Finding {
                        severity: Severity::Warning,
                        code: "option-duplicate-key",
                        node: Some(node.to_owned()),
                        pointer: Some(pointer.clone()),
                        message: format!(
                            "key {} is used twice in menu `{}`; only the first option fires",
                            o.dtmf, m.id
                        ),
                        path: self.path(id),
                        step: Some(id),
                        violations: Vec::new(),
                    });
                }
                if let OptionAction::Menu(target) = &o.action {
                    if run.menu(target).is_none() {
                        self.findings.push(Finding {
                            severity: Severity::Error,
                            code: "option-menu-missing",
                            node: Some(node.to_owned()),
                            pointer: Some(format!("{pointer}/action")),
                            message: format!(
                                "key {} of menu `{}` opens menu `{target}`, which this runMenu does not have",
                                o.dtmf, m.id
                            ),
                            path: self.path(id),
                            step: Some(id),
                            violations: Vec::new(),
                        });
                    }
                }
            }
        }
    }

    fn expand(&mut self, id: usize, queue: &mut VecDeque<usize>) {
        let reply = self.steps[id].reply.clone();
        let cookies = self.steps[id].cookies.clone();
        for input in inputs_after(&reply) {
            let pie = pie_event(&input, &cookies);
            self.answer(Some(id), pie, Some(input), queue);
        }
    }

    /// Positions (by expanding step) from which no choice of the caller leads out.
    fn trapped(&self) -> Vec<usize> {
        let states: Vec<usize> = self.positions.values().copied().collect();
        let mut exits: BTreeSet<usize> = BTreeSet::new();
        let mut reverse: HashMap<usize, Vec<usize>> = HashMap::new();
        for &s in &states {
            for &c in &self.steps[s].children {
                let child = &self.steps[c];
                let choice = child.input.as_ref().is_some_and(|i| is_choice(&i.kind));
                if !choice {
                    continue;
                }
                match child.next {
                    Next::End | Next::Refused | Next::Truncated => {
                        exits.insert(s);
                    }
                    Next::Input => reverse.entry(c).or_default().push(s),
                    Next::Loop | Next::Seen => {
                        if let Some(t) = child.see {
                            reverse.entry(t).or_default().push(s);
                        }
                    }
                }
            }
        }
        let mut free = exits.clone();
        let mut todo: Vec<usize> = exits.into_iter().collect();
        while let Some(s) = todo.pop() {
            for &p in reverse.get(&s).into_iter().flatten() {
                if free.insert(p) {
                    todo.push(p);
                }
            }
        }
        let mut trapped: Vec<usize> = states.into_iter().filter(|s| !free.contains(s)).collect();
        trapped.sort_unstable();
        trapped
    }

    fn longest(&self) -> LongestPath {
        // Successors of each step: its children, and for loop/seen steps nothing (the position
        // is expanded elsewhere; coming back to it would repeat a position).
        let roots: Vec<usize> = self
            .steps
            .iter()
            .filter(|s| s.parent.is_none())
            .map(|s| s.id)
            .collect();
        let mut best: Vec<usize> = Vec::new();
        let mut budget = LONGEST_BUDGET;
        let mut exact = true;
        for r in roots {
            let mut on_path: Vec<usize> = Vec::new();
            let mut visiting: BTreeSet<usize> = BTreeSet::new();
            self.dfs(
                r,
                &mut on_path,
                &mut visiting,
                &mut best,
                &mut budget,
                &mut exact,
            );
        }
        if !exact {
            if let Some(deepest) = self.steps.iter().max_by_key(|s| s.depth) {
                let mut path = Vec::new();
                let mut cur = Some(deepest.id);
                while let Some(c) = cur {
                    path.push(c);
                    cur = self.steps[c].parent;
                }
                path.reverse();
                if path.len() > best.len() {
                    best = path;
                }
            }
        }
        LongestPath {
            steps: best.len(),
            path: best.iter().map(|&s| self.label(s)).collect(),
            exact,
        }
    }

    fn dfs(
        &self,
        step: usize,
        on_path: &mut Vec<usize>,
        visiting: &mut BTreeSet<usize>,
        best: &mut Vec<usize>,
        budget: &mut usize,
        exact: &mut bool,
    ) {
        if *budget == 0 {
            *exact = false;
            return;
        }
        *budget -= 1;
        on_path.push(step);
        let s = &self.steps[step];
        // A loop/seen step continues from the step that expands its position.
        let expands = match s.next {
            Next::Input => Some(step),
            Next::Seen | Next::Loop => s.see,
            _ => None,
        };
        let mut extended = false;
        if let Some(e) = expands {
            if visiting.insert(e) {
                for &c in &self.steps[e].children {
                    extended = true;
                    self.dfs(c, on_path, visiting, best, budget, exact);
                }
                visiting.remove(&e);
            }
        }
        if !extended && on_path.len() > best.len() {
            *best = on_path.clone();
        }
        on_path.pop();
    }
}

/// Walks every path of `flow` and reports (see the module docs). Never fails: a flow with
/// structural errors is walked as the engine would run it.
pub fn coverage(validator: &Validator, mode: Mode, flow: &FlowDoc) -> CoverageReport {
    let problems = flow.check_structure();
    let mut w = Walker {
        flow,
        validator,
        mode,
        steps: Vec::new(),
        contexts: Vec::new(),
        positions: HashMap::new(),
        findings: Vec::new(),
        static_done: BTreeSet::new(),
        warned: BTreeSet::new(),
        truncated: false,
    };
    let mut queue = VecDeque::new();
    w.answer(None, sample_ice(), None, &mut queue);
    if flow.ace.is_some() {
        w.answer(None, sample_ace(), None, &mut queue);
    }
    while let Some(id) = queue.pop_front() {
        w.expand(id, &mut queue);
    }
    w.trap_findings();
    let reached: BTreeSet<String> = w.steps.iter().filter_map(|s| s.node.clone()).collect();
    let unreached: Vec<String> = flow
        .nodes
        .keys()
        .filter(|n| !reached.contains(*n))
        .cloned()
        .collect();
    w.walk_findings(&unreached);
    let longest_path = w.longest();
    let mut findings = std::mem::take(&mut w.findings);
    findings.sort_by_key(|f| f.severity != Severity::Error);
    let count = |sev: Severity| {
        problems.iter().filter(|p| p.severity == sev).count()
            + findings.iter().filter(|f| f.severity == sev).count()
    };
    let errors = count(Severity::Error);
    let warnings = count(Severity::Warning);
    CoverageReport {
        flow: flow.name.clone(),
        valid: errors == 0 && !has_errors(&problems),
        errors,
        warnings,
        problems,
        findings,
        reached_nodes: reached.into_iter().collect(),
        unreached_nodes: unreached,
        longest_path,
        positions: w.positions.len(),
        truncated: w.truncated,
        steps: w.steps,
    }
}

impl Walker<'_> {
    /// `trap-loop`: once per node, the positions no input of the caller leads out of.
    fn trap_findings(&mut self) {
        for s in self.trapped() {
            let node = self.position_of(s).node;
            if self
                .warned
                .insert((node.clone(), "trap-loop", String::new()))
            {
                self.findings.push(Finding {
                    severity: Severity::Error,
                    code: "trap-loop",
                    pointer: node.as_ref().map(|n| format!("/nodes/{}/next", pointer_token(n))),
                    message: format!(
                        "once at {}, no key, digits or silence leads out of the menus: the caller can only hang up",
                        node.as_deref().map_or("this point".to_owned(), |n| format!("node `{n}`"))
                    ),
                    node,
                    path: self.path(s),
                    step: Some(s),
                    violations: Vec::new(),
                });
            }
        }
    }

    /// Findings of the walk as a whole: `node-unreached` for each of `unreached`, and
    /// `walk-truncated` when the walk stopped at its limit.
    fn walk_findings(&mut self, unreached: &[String]) {
        for n in unreached {
            self.findings.push(Finding {
                severity: Severity::Warning,
                code: "node-unreached",
                node: Some(n.clone()),
                pointer: Some(format!("/nodes/{}", pointer_token(n))),
                message: format!("no path a caller can take reaches node `{n}`"),
                path: Vec::new(),
                step: None,
                violations: Vec::new(),
            });
        }
        if self.truncated {
            self.findings.push(Finding {
                severity: Severity::Warning,
                code: "walk-truncated",
                node: None,
                pointer: None,
                message: format!(
                    "the walk stopped after {MAX_STATES} positions (node and cookies); paths beyond are not covered"
                ),
                path: Vec::new(),
                step: None,
                violations: Vec::new(),
            });
        }
    }
}

fn quote(texts: &[String]) -> String {
    texts
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The readable form: a summary, the findings with their paths, and the paths as an indented tree
/// with what the caller hears at each step.
pub fn render_text(r: &CoverageReport) -> String {
    let mut out = String::new();
    text_summary(&mut out, r);
    text_problems(&mut out, r);
    let _ = writeln!(out, "\nPaths:");
    let roots: Vec<usize> = r
        .steps
        .iter()
        .filter(|s| s.parent.is_none())
        .map(|s| s.id)
        .collect();
    let mut stack: Vec<(usize, usize)> = roots.into_iter().rev().map(|id| (id, 0)).collect();
    while let Some((id, indent)) = stack.pop() {
        let s = &r.steps[id];
        text_step(&mut out, s, indent);
        for &c in s.children.iter().rev() {
            stack.push((c, indent + 1));
        }
    }
    out
}

/// The verdict and the walk's figures.
fn text_summary(out: &mut String, r: &CoverageReport) {
    let _ = writeln!(
        out,
        "Flow \"{}\": {} ({} error(s), {} warning(s))",
        r.flow,
        if r.valid { "OK" } else { "NOT OK" },
        r.errors,
        r.warnings
    );
    let _ = writeln!(
        out,
        "{} steps, {} positions, {} of {} nodes reached, longest path {} steps{}{}",
        r.steps.len(),
        r.positions,
        r.reached_nodes.len(),
        r.reached_nodes.len() + r.unreached_nodes.len(),
        r.longest_path.steps,
        if r.longest_path.exact {
            ""
        } else {
            " (at least)"
        },
        if r.truncated { " (walk truncated)" } else { "" }
    );
}

/// The structure problems and the walk's findings, each with where and how to reach it.
fn text_problems(out: &mut String, r: &CoverageReport) {
    if !r.problems.is_empty() {
        let _ = writeln!(out, "\nStructure:");
        for p in &r.problems {
            let sev = if p.is_error() { "error" } else { "warning" };
            let _ = writeln!(out, "  {sev:7} {} {}: {}", p.code, p.pointer, p.message);
        }
    }
    if !r.findings.is_empty() {
        let _ = writeln!(out, "\nFindings:");
        for f in &r.findings {
            let sev = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = writeln!(out, "  {sev:7} {}: {}", f.code, f.message);
            if let Some(p) = &f.pointer {
                let _ = writeln!(out, "          at {p}");
            }
            if !f.path.is_empty() {
                let _ = writeln!(out, "          path: {}", f.path.join(" / "));
            }
        }
    }
}

/// One line of the path tree: the input, the node, what the caller hears and how it goes on.
fn text_step(out: &mut String, s: &Step, indent: usize) {
    let id = s.id;
    let pad = "  ".repeat(indent + 1);
    let head = match &s.input {
        Some(i) => i.label.clone(),
        None => s.event.to_uppercase(),
    };
    let to = s.node.as_deref().unwrap_or("(engine)");
    let heard = if s.hears.is_empty() {
        String::new()
    } else {
        format!(" {}", quote(&s.hears))
    };
    let tail = match s.next {
        Next::Input | Next::End => String::new(),
        Next::Refused => format!(
            " [REFUSED by the gate: {}; the fallback goes out]",
            s.gate.errors.join(", ")
        ),
        Next::Loop => format!(" [back to step {}]", s.see.unwrap_or_default()),
        Next::Seen => format!(" [continues as step {}]", s.see.unwrap_or_default()),
        Next::Truncated => " [not walked: limit]".to_owned(),
    };
    let warn = if s.gate.warnings.is_empty() || !s.gate.passed {
        String::new()
    } else {
        format!(" (gate warnings: {})", s.gate.warnings.join(", "))
    };
    let _ = writeln!(
        out,
        "{pad}#{id} {head} → {to}:{heard} → {}{tail}{warn}",
        s.then
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::model::tests::fixture;

    fn run(name: &str) -> CoverageReport {
        coverage(&Validator::new().unwrap(), Mode::Normal, &fixture(name))
    }

    fn codes(r: &CoverageReport) -> Vec<(&'static str, Option<&str>)> {
        r.findings
            .iter()
            .map(|f| (f.code, f.node.as_deref()))
            .collect()
    }

    #[test]
    fn example_ivr_is_covered_without_errors() {
        let r = run("ivr.json");
        assert!(r.valid, "{}", render_text(&r));
        assert!(r.unreached_nodes.is_empty(), "{:?}", r.unreached_nodes);
        assert_eq!(r.reached_nodes.len(), 8);
        // ICE → press 2 → press 1 (billing) is three events; the longest goes through welcome twice
        // at most (invalid input loops back to the same position, which is not repeated).
        assert!(r.longest_path.steps >= 3, "{:?}", r.longest_path);
        assert!(r.longest_path.exact);
        // Every step that answers a PIE carries the PIE Sinch would send.
        let pin = r
            .steps
            .iter()
            .find(|s| s.node.as_deref() == Some("pinEntered"))
            .unwrap();
        assert_eq!(pin.pie.as_ref().unwrap()["menuResult"]["type"], "sequence");
        assert_eq!(
            pin.hears[0],
            "You entered 1234. Connecting you to your account manager."
        );
        let text = render_text(&r);
        assert!(
            text.contains("press 1 (sales) → sales: \"Connecting you to sales.\""),
            "{text}"
        );
        assert!(text.contains("[back to step 0]"), "{text}");
    }

    #[test]
    fn planted_defects_are_each_found() {
        let r = run("defects.json");
        let found = codes(&r);
        assert!(!r.valid);
        for expected in [
            ("trap-loop", Some("maze")),
            ("option-leads-nowhere", Some("welcome")),
            ("option-menu-missing", Some("welcome")),
            ("gate-refused", Some("vault")),
            ("node-unreached", Some("orphan")),
            ("hangup-without-prompt", Some("welcome")),
        ] {
            assert!(found.contains(&expected), "{expected:?} not in {found:?}");
        }
        let refused = r
            .findings
            .iter()
            .find(|f| f.code == "gate-refused")
            .unwrap();
        assert_eq!(refused.violations[0].code, "SVAML040");
        assert_eq!(
            refused.path,
            [
                "ICE → welcome",
                "press 4 (deep) → deep1",
                "press 1 (on) → deep2",
                "press 1 (on) → vault"
            ]
        );
        // Each cookie on its own passes: the structural check and the save-time gate find nothing.
        let check = crate::flows::check::check_flow(
            &Validator::new().unwrap(),
            Mode::Normal,
            &fixture("defects.json"),
        );
        assert!(check.valid);
    }

    #[test]
    fn clean_examples_are_valid() {
        for name in ["forward.json", "conference.json"] {
            let r = run(name);
            assert!(r.valid, "{name}: {}", render_text(&r));
        }
    }
}
