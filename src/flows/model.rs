//! The flow document format (what operators write, import and export as JSON) and its
//! structural checks.
//!
//! ```json
//! {
//!   "formatVersion": 1,
//!   "name": "support-line",
//!   "description": "optional free text",
//!   "start": "welcome",            // node answering the ICE
//!   "ace": "answered",             // optional: node answering an ACE (absent: reply `continue`)
//!   "fallbackNode": "goodbye",     // optional: node for a PIE that no `next` entry handles
//!   "nodes": {
//!     "welcome": {
//!       "description": "optional note",
//!       "instructions": [ { "name": "say", "text": "Hello ${caller}", "locale": "en-US" } ],
//!       "action": { "name": "runMenu", "menus": [ { "id": "main", "mainPrompt": "#tts[Press 1]",
//!                   "options": [ { "dtmf": "1", "action": "return(sales)" } ] } ] },
//!       "next": { "sales": "sales", "timeout": "welcome", "default": "goodbye" }
//!     }
//!   }
//! }
//! ```
//!
//! - `instructions` and `action` are SVAML exactly as Sinch documents it; they are kept as raw JSON
//!   here and validated by the SVAML gate (see [`crate::flows::engine::emissions`]). Strings may
//!   contain `${...}` placeholders ([`crate::flows::render`]).
//! - `next` maps what the PIE following this node reported to the node that answers it. Keys are
//!   `return(<value>)` values used in the node's menu options, or one of the [`RESERVED_NEXT_KEYS`]:
//!   the lowercase `menuResult.type` (`sequence`, `timeout`, `invalidinput`, `error`, `hangup`,
//!   `return` for any return value without its own key) and `default`. A PIE is also produced by
//!   `connectConf` with `conferenceDtmfOptions`, so such nodes may have `next` too (no return values).
//! - Unknown fields are rejected at the top level and in nodes (typos are caught), duplicate keys
//!   in `nodes` and `next` are rejected, and `formatVersion` defaults to 1 (the only version).

use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;

use super::render::{self, EventContext, Piece, PLACEHOLDERS};

/// The only flow format version this build understands.
pub const FORMAT_VERSION: u32 = 1;

/// `next` keys with a fixed meaning; every other key is a `return(...)` value.
pub const RESERVED_NEXT_KEYS: &[&str] = &[
    "sequence",
    "timeout",
    "invalidinput",
    "error",
    "hangup",
    "return",
    "default",
];

/// Maximum length of a flow name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A declarative call flow. Unknown fields and duplicate keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = FlowDocument)]
pub struct FlowDoc {
    /// Document format version: 1, the default when absent (`FORMAT_VERSION`).
    #[serde(default = "default_format_version")]
    #[schema(minimum = 1, maximum = 1, default = 1)]
    pub format_version: u32,
    /// Human-readable name (non-empty, at most 100 characters: `MAX_NAME_CHARS`).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Free text for operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Id of the node that answers the ICE.
    pub start: String,
    /// Id of the node that answers an ACE; absent: the reply is `{"action":{"name":"continue"}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ace: Option<String>,
    /// Id of the node that answers a PIE no `next` entry handles (else the call is hung up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_node: Option<String>,
    /// The nodes, by id.
    #[serde(deserialize_with = "unique_keys")]
    pub nodes: BTreeMap<String, Node>,
}

/// One step of a flow: an SVAML template plus the transitions taken on the following PIE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = FlowNode)]
pub struct Node {
    /// Free text for operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// SVAML `instructions` (normally an array), copied into the reply after rendering; strings
    /// may contain `${...}` placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Value>,
    /// SVAML `action`, copied into the reply after rendering.
    #[schema(value_type = Object)]
    pub action: Value,
    /// What the following PIE reported → id of the node that answers it. Keys are
    /// `return(<value>)` values of the node's menus or one of `sequence`, `timeout`,
    /// `invalidinput`, `error`, `hangup`, `return`, `default` (see the module docs).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub next: BTreeMap<String, String>,
}

fn default_format_version() -> u32 {
    FORMAT_VERSION
}

/// Deserializes a JSON object into a map, rejecting duplicate keys (serde would keep the last).
fn unique_keys<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct UniqueVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for UniqueVisitor<T> {
        type Value = BTreeMap<String, T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = BTreeMap::new();
            while let Some(key) = access.next_key::<String>()? {
                if map.contains_key(&key) {
                    return Err(A::Error::custom(format!("duplicate key `{key}`")));
                }
                let value = access.next_value()?;
                map.insert(key, value);
            }
            Ok(map)
        }
    }
    d.deserialize_map(UniqueVisitor(PhantomData))
}

/// Why a flow document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// Not JSON, or JSON of the wrong shape (unknown field, missing `start`, duplicate key, ...).
    #[error("invalid flow document: {message}")]
    Json {
        /// serde_json's message (includes line and column).
        message: String,
        /// 1-based line of the error (0 if unknown).
        line: usize,
        /// 1-based column of the error (0 if unknown).
        column: usize,
    },
}

/// How serious a problem of a flow or route is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ProblemSeverity)]
pub enum Severity {
    /// The flow must not be saved.
    Error,
    /// Suspicious but workable.
    Warning,
}

/// A finding of [`FlowDoc::check_structure`] (also used by route validation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(description = "A problem of a flow or route document.")]
pub struct FlowProblem {
    /// JSON pointer into the checked document, e.g. `/nodes/welcome/next/sales`.
    pub pointer: String,
    /// Stable machine-readable code, e.g. `next-target-missing`.
    #[schema(value_type = String, example = "next-target-missing")]
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// Human-readable explanation.
    pub message: String,
}

impl FlowProblem {
    fn error(pointer: String, code: &'static str, message: String) -> FlowProblem {
        FlowProblem {
            pointer,
            code,
            severity: Severity::Error,
            message,
        }
    }
    fn warning(pointer: String, code: &'static str, message: String) -> FlowProblem {
        FlowProblem {
            pointer,
            code,
            severity: Severity::Warning,
            message,
        }
    }
    /// `true` for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `true` if any problem is an error (the flow or route must then be refused).
pub fn has_errors(problems: &[FlowProblem]) -> bool {
    problems.iter().any(FlowProblem::is_error)
}

/// Escapes one JSON pointer reference token (RFC 6901).
pub fn pointer_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// What makes Sinch send a PIE after a node's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieSource {
    /// The action is `runMenu`.
    Menu,
    /// The action is `connectConf` with `conferenceDtmfOptions`.
    ConferenceDtmf,
    /// No PIE follows this node.
    None,
}

/// A `return(<value>)` menu option found in a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuReturn {
    /// The value inside `return(...)`.
    pub value: String,
    /// Pointer of the option's `action`, relative to the node (e.g. `/action/menus/0/options/1/action`).
    pub pointer: String,
}

impl Node {
    /// The action's `name` if it is a string.
    pub fn action_name(&self) -> Option<&str> {
        self.action.get("name").and_then(Value::as_str)
    }

    /// Whether (and why) a PIE follows this node's reply. Action names compare case-insensitively
    /// (legacy spellings such as `RunMenu` exist).
    pub fn pie_source(&self) -> PieSource {
        match self.action_name().map(str::to_ascii_lowercase).as_deref() {
            Some("runmenu") => PieSource::Menu,
            Some("connectconf") if self.action.get("conferenceDtmfOptions").is_some() => {
                PieSource::ConferenceDtmf
            }
            _ => PieSource::None,
        }
    }

    /// The `return(...)` options of this node's `runMenu` menus, in document order.
    pub fn menu_returns(&self) -> Vec<MenuReturn> {
        let mut out = Vec::new();
        if self.pie_source() != PieSource::Menu {
            return out;
        }
        let menus = self.action.get("menus").and_then(Value::as_array);
        for (mi, menu) in menus.into_iter().flatten().enumerate() {
            let options = menu.get("options").and_then(Value::as_array);
            for (oi, option) in options.into_iter().flatten().enumerate() {
                let action = option.get("action").and_then(Value::as_str).unwrap_or("");
                if let Some(value) = action
                    .trim()
                    .strip_prefix("return(")
                    .and_then(|r| r.strip_suffix(')'))
                {
                    out.push(MenuReturn {
                        value: value.to_owned(),
                        pointer: format!("/action/menus/{mi}/options/{oi}/action"),
                    });
                }
            }
        }
        out
    }

    /// Whether any of this node's menus collects digits (`maxDigits` set), producing `sequence`.
    pub fn collects_digits(&self) -> bool {
        self.pie_source() == PieSource::Menu
            && self
                .action
                .get("menus")
                .and_then(Value::as_array)
                .is_some_and(|menus| menus.iter().any(|m| m.get("maxDigits").is_some()))
    }

    /// Renders this node's SVAML reply: `{"instructions": ..., "action": ...}` with placeholders
    /// substituted (`instructions` only if the node has them).
    pub fn render(&self, ctx: &EventContext) -> Value {
        let mut out = serde_json::Map::new();
        if let Some(instructions) = &self.instructions {
            out.insert("instructions".to_owned(), render::render(instructions, ctx));
        }
        out.insert("action".to_owned(), render::render(&self.action, ctx));
        Value::Object(out)
    }
}

fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl FlowDoc {
    /// Parses a flow document from JSON bytes (structure is not checked: see
    /// [`FlowDoc::check_structure`]).
    pub fn from_json(bytes: &[u8]) -> Result<FlowDoc, FlowError> {
        serde_json::from_slice(bytes).map_err(|e| FlowError::Json {
            message: e.to_string(),
            line: e.line(),
            column: e.column(),
        })
    }

    /// Node ids reachable from `start`, `ace` and `fallbackNode` by following `next`.
    pub fn reachable(&self) -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = [
            Some(self.start.as_str()),
            self.ace.as_deref(),
            self.fallback_node.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        while let Some(id) = stack.pop() {
            let Some((key, node)) = self.nodes.get_key_value(id) else {
                continue;
            };
            if seen.insert(key.as_str()) {
                stack.extend(node.next.values().map(String::as_str));
            }
        }
        seen
    }

    /// Node ids that can answer a PIE: `next` targets of reachable nodes, plus `fallbackNode`
    /// (only ids that exist).
    pub fn pie_nodes(&self) -> BTreeSet<&str> {
        let reachable = self.reachable();
        let mut out: BTreeSet<&str> = self
            .nodes
            .iter()
            .filter(|(id, _)| reachable.contains(id.as_str()))
            .flat_map(|(_, n)| n.next.values().map(String::as_str))
            .chain(self.fallback_node.as_deref())
            .collect();
        out.retain(|id| self.nodes.contains_key(*id));
        out
    }

    /// Checks everything about the flow except SVAML validity (which the gate checks on
    /// [`crate::flows::engine::emissions`]): references, node ids, `next` keys, placeholders and
    /// reachability. Problems come in a deterministic order.
    pub fn check_structure(&self) -> Vec<FlowProblem> {
        let mut p = Vec::new();
        self.check_header(&mut p);
        self.check_references(&mut p);
        let reachable = self.reachable();
        let no_input_nodes: BTreeSet<&str> = [Some(self.start.as_str()), self.ace.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        for (id, node) in &self.nodes {
            let base = format!("/nodes/{}", pointer_token(id));
            if !valid_node_id(id) {
                p.push(FlowProblem::error(
                    base.clone(),
                    "node-id-invalid",
                    "node ids must be 1-64 characters of A-Z, a-z, 0-9, `_`, `-` or `.`".into(),
                ));
            }
            self.check_next(id, node, &base, &mut p);
            let mut strings = Vec::new();
            if let Some(instructions) = &node.instructions {
                collect_strings(instructions, format!("{base}/instructions"), &mut strings);
            }
            collect_strings(&node.action, format!("{base}/action"), &mut strings);
            for (pointer, s) in strings {
                check_placeholders(s, &pointer, no_input_nodes.contains(id.as_str()), &mut p);
            }
            if !reachable.contains(id.as_str()) {
                p.push(FlowProblem::warning(
                    base,
                    "node-unreachable",
                    format!(
                        "node `{id}` is not reachable from start, ace or fallbackNode; it is never used"
                    ),
                ));
            }
        }
        p
    }

    /// The format version, the name, and that there are nodes.
    fn check_header(&self, p: &mut Vec<FlowProblem>) {
        if self.format_version != FORMAT_VERSION {
            p.push(FlowProblem::error(
                "/formatVersion".into(),
                "format-version-unsupported",
                format!(
                    "formatVersion {} is not supported (this build reads version {FORMAT_VERSION})",
                    self.format_version
                ),
            ));
        }
        if self.name.trim().is_empty() {
            p.push(FlowProblem::error(
                "/name".into(),
                "name-empty",
                "the flow needs a non-empty name".into(),
            ));
        } else if self.name.chars().count() > MAX_NAME_CHARS {
            p.push(FlowProblem::error(
                "/name".into(),
                "name-too-long",
                format!("the flow name is longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        if self.nodes.is_empty() {
            p.push(FlowProblem::error(
                "/nodes".into(),
                "nodes-empty",
                "the flow has no nodes".into(),
            ));
        }
    }

    /// `start`, `ace` and `fallbackNode` name nodes that exist.
    fn check_references(&self, p: &mut Vec<FlowProblem>) {
        let refs = [
            ("/start", Some(&self.start), "start-missing"),
            ("/ace", self.ace.as_ref(), "ace-missing"),
            (
                "/fallbackNode",
                self.fallback_node.as_ref(),
                "fallback-missing",
            ),
        ];
        for (pointer, target, code) in refs {
            if let Some(target) = target {
                if !self.nodes.contains_key(target) {
                    p.push(FlowProblem::error(
                        pointer.into(),
                        code,
                        format!("there is no node `{target}`"),
                    ));
                }
            }
        }
    }

    /// The node's `next`: each key can occur in a PIE after it and leads to a node; and each
    /// input its menus offer is handled.
    fn check_next(&self, id: &str, node: &Node, base: &str, p: &mut Vec<FlowProblem>) {
        let source = node.pie_source();
        let returns = node.menu_returns();
        let return_values: BTreeSet<&str> = returns.iter().map(|r| r.value.as_str()).collect();
        for (key, target) in &node.next {
            let pointer = format!("{base}/next/{}", pointer_token(key));
            if let Some(problem) = next_key_problem(id, key, source, &return_values, &pointer) {
                p.push(problem);
            }
            if !self.nodes.contains_key(target) {
                p.push(FlowProblem::error(
                    pointer,
                    "next-target-missing",
                    format!("there is no node `{target}`"),
                ));
            }
        }
        if source == PieSource::None {
            return;
        }
        self.check_inputs_handled(node, &returns, base, p);
    }

    /// Warnings for inputs a menu offers that no `next` entry, `default` or `fallbackNode`
    /// handles, and for return values that are reserved keys.
    fn check_inputs_handled(
        &self,
        node: &Node,
        returns: &[MenuReturn],
        base: &str,
        p: &mut Vec<FlowProblem>,
    ) {
        let has = |k: &str| node.next.contains_key(k);
        let caught = has("default") || self.fallback_node.is_some();
        for r in returns {
            if RESERVED_NEXT_KEYS.contains(&r.value.as_str()) {
                p.push(FlowProblem::warning(
                    format!("{base}{}", r.pointer),
                    "return-value-reserved",
                    format!(
                        "return({}) uses a reserved next key; it shares the transition of that PIE type",
                        r.value
                    ),
                ));
            } else if !has(&r.value) && !has("return") && !caught {
                p.push(FlowProblem::warning(
                    format!("{base}{}", r.pointer),
                    "return-unhandled",
                    format!(
                        "no `next` entry for return({}) and no default or fallbackNode: the call \
                         will be hung up",
                        r.value
                    ),
                ));
            }
        }
        if node.collects_digits() && !has("sequence") && !caught {
            p.push(FlowProblem::warning(
                format!("{base}/next"),
                "sequence-unhandled",
                "a menu collects digits (maxDigits) but there is no `sequence`, `default` or \
                 fallbackNode: the call will be hung up after input"
                    .into(),
            ));
        }
    }
}

/// What is wrong with a `next` key of node `id`, if anything: a node no PIE follows has no
/// `next`; after a menu a key is a return value or a reserved key, after a conference a reserved
/// key other than `return`.
fn next_key_problem(
    id: &str,
    key: &str,
    source: PieSource,
    return_values: &BTreeSet<&str>,
    pointer: &str,
) -> Option<FlowProblem> {
    if source == PieSource::None {
        return Some(FlowProblem::error(
            pointer.to_owned(),
            "next-without-menu",
            format!(
                "node `{id}` has `next` but its action is neither runMenu nor connectConf \
                 with conferenceDtmfOptions, so no PIE follows it"
            ),
        ));
    }
    let reserved = RESERVED_NEXT_KEYS.contains(&key);
    let known = match source {
        PieSource::Menu => reserved || return_values.contains(key),
        _ => reserved && key != "return",
    };
    if known {
        return None;
    }
    let hint = if RESERVED_NEXT_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
        format!(" (type keys are lowercase: `{}`)", key.to_ascii_lowercase())
    } else if source == PieSource::Menu {
        " (not a return(...) value of this node's menus)".to_owned()
    } else {
        String::new()
    };
    Some(FlowProblem::error(
        pointer.to_owned(),
        "next-key-unknown",
        format!(
            "`{key}` never occurs in a PIE after node `{id}`; use a return(...) \
             value or one of {}{hint}",
            RESERVED_NEXT_KEYS.join(", ")
        ),
    ))
}

/// Collects `(pointer, string)` for every string value inside `v`.
fn collect_strings<'a>(v: &'a Value, pointer: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((pointer, s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_strings(item, format!("{pointer}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                collect_strings(item, format!("{pointer}/{}", pointer_token(k)), out);
            }
        }
        _ => {}
    }
}

fn check_placeholders(s: &str, pointer: &str, no_input: bool, p: &mut Vec<FlowProblem>) {
    for piece in render::pieces(s) {
        match piece {
            Piece::Text(_) => {}
            Piece::Unterminated(rest) => p.push(FlowProblem::error(
                pointer.to_owned(),
                "placeholder-unterminated",
                format!("`{rest}` opens a placeholder without a closing `}}` (write `$$` for a literal `$`)"),
            )),
            Piece::Var(name) if PLACEHOLDERS.contains(&name) => {
                if no_input && (name == "input" || name == "menuId") {
                    p.push(FlowProblem::warning(
                        pointer.to_owned(),
                        "placeholder-unavailable",
                        format!(
                            "`${{{name}}}` is empty when this node answers an ICE or ACE (only a PIE carries menu input)"
                        ),
                    ));
                }
            }
            Piece::Var(name) => {
                let close = PLACEHOLDERS
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(name.trim()));
                let hint = close
                    .map(|k| format!("; did you mean `${{{k}}}`?"))
                    .unwrap_or_else(|| format!("; known: {}", PLACEHOLDERS.join(", ")));
                p.push(FlowProblem::error(
                    pointer.to_owned(),
                    "placeholder-unknown",
                    format!("unknown placeholder `${{{name}}}`{hint}"),
                ));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn fixture(name: &str) -> FlowDoc {
        let path = format!("{}/tests/fixtures/flows/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap();
        FlowDoc::from_json(&bytes).unwrap()
    }

    fn codes(p: &[FlowProblem]) -> Vec<(&str, &str, Severity)> {
        p.iter()
            .map(|x| (x.pointer.as_str(), x.code, x.severity))
            .collect()
    }

    #[test]
    fn example_flows_are_clean() {
        for name in ["ivr.json", "forward.json", "conference.json"] {
            let flow = fixture(name);
            assert_eq!(flow.check_structure(), vec![], "{name}");
            // Export and re-import is lossless.
            let again = FlowDoc::from_json(serde_json::to_string_pretty(&flow).unwrap().as_bytes())
                .unwrap();
            assert_eq!(again, flow, "{name}");
        }
    }

    #[test]
    fn unknown_fields_and_duplicates_are_rejected() {
        let e = FlowDoc::from_json(br#"{"name":"x","start":"a","nodes":{},"fallback":"a"}"#)
            .unwrap_err();
        let FlowError::Json { message, line, .. } = e;
        assert!(message.contains("unknown field `fallback`"), "{message}");
        assert_eq!(line, 1);

        let e = FlowDoc::from_json(
            br#"{"name":"x","start":"a","nodes":{"a":{"action":{"name":"hangup"},"nxt":{}}}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `nxt`"), "{e}");

        let e = FlowDoc::from_json(
            br#"{"name":"x","start":"a","nodes":{"a":{"action":{}},"a":{"action":{}}}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("duplicate key `a`"), "{e}");

        let e = FlowDoc::from_json(b"{not json").unwrap_err();
        assert!(matches!(e, FlowError::Json { line: 1, .. }), "{e:?}");

        let e = FlowDoc::from_json(br#"{"name":"x","nodes":{}}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `start`"), "{e}");
    }

    #[test]
    fn defaults_and_serialization() {
        let f = FlowDoc::from_json(
            br#"{"name":"x","start":"a","nodes":{"a":{"action":{"name":"hangup"}}}}"#,
        )
        .unwrap();
        assert_eq!(f.format_version, 1);
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"formatVersion":1,"name":"x","start":"a","nodes":{"a":{"action":{"name":"hangup"}}}})
        );
    }

    fn flow(v: Value) -> FlowDoc {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn reference_and_key_problems() {
        let f = flow(json!({
            "formatVersion": 2,
            "name": " ",
            "start": "nope",
            "ace": "gone",
            "fallbackNode": "missing",
            "nodes": {
                "menu": {
                    "action": {"name": "runMenu", "menus": [{"id": "main", "options": [
                        {"dtmf": "1", "action": "return(sales)"},
                        {"dtmf": "2", "action": "return(timeout)"},
                        {"dtmf": "3", "action": "menu(main)"}
                    ]}]},
                    "next": {"sales": "x/y", "slaes": "menu", "Timeout": "menu", "default": "menu"}
                },
                "bad id!": {"action": {"name": "hangup"}, "next": {"default": "menu"}},
                "conf": {"action": {"name": "connectConf", "conferenceId": "c",
                                    "conferenceDtmfOptions": {"mode": "detect"}},
                         "next": {"sequence": "menu", "return": "menu"}}
            }
        }));
        let p = f.check_structure();
        assert_eq!(
            codes(&p),
            vec![
                (
                    "/formatVersion",
                    "format-version-unsupported",
                    Severity::Error
                ),
                ("/name", "name-empty", Severity::Error),
                ("/start", "start-missing", Severity::Error),
                ("/ace", "ace-missing", Severity::Error),
                ("/fallbackNode", "fallback-missing", Severity::Error),
                ("/nodes/bad id!", "node-id-invalid", Severity::Error),
                (
                    "/nodes/bad id!/next/default",
                    "next-without-menu",
                    Severity::Error
                ),
                ("/nodes/bad id!", "node-unreachable", Severity::Warning),
                (
                    "/nodes/conf/next/return",
                    "next-key-unknown",
                    Severity::Error
                ),
                ("/nodes/conf", "node-unreachable", Severity::Warning),
                (
                    "/nodes/menu/next/Timeout",
                    "next-key-unknown",
                    Severity::Error
                ),
                (
                    "/nodes/menu/next/sales",
                    "next-target-missing",
                    Severity::Error
                ),
                (
                    "/nodes/menu/next/slaes",
                    "next-key-unknown",
                    Severity::Error
                ),
                (
                    "/nodes/menu/action/menus/0/options/1/action",
                    "return-value-reserved",
                    Severity::Warning
                ),
                ("/nodes/menu", "node-unreachable", Severity::Warning),
            ]
        );
        let timeout = p
            .iter()
            .find(|x| x.pointer == "/nodes/menu/next/Timeout")
            .unwrap();
        assert!(
            timeout.message.contains("lowercase: `timeout`"),
            "{}",
            timeout.message
        );
        let missing = p.iter().find(|x| x.code == "next-target-missing").unwrap();
        assert_eq!(missing.message, "there is no node `x/y`");
        assert!(has_errors(&p));
    }

    #[test]
    fn placeholder_problems() {
        let f = flow(json!({
            "name": "p",
            "start": "a",
            "nodes": {
                "a": {
                    "instructions": [{"name": "say", "text": "hi ${Caller} ${input} $${x} $5"}],
                    "action": {"name": "runMenu", "menus": [{"id": "main", "maxDigits": 4,
                               "mainPrompt": "#tts[${foo}]", "repeatPrompt": "x ${caller"}]},
                    "next": {"sequence": "b"}
                },
                "b": {"action": {"name": "connectPstn", "number": "${input}", "cli": "${caller}"}}
            }
        }));
        let p = f.check_structure();
        assert_eq!(
            codes(&p),
            vec![
                (
                    "/nodes/a/instructions/0/text",
                    "placeholder-unknown",
                    Severity::Error
                ),
                (
                    "/nodes/a/instructions/0/text",
                    "placeholder-unavailable",
                    Severity::Warning
                ),
                (
                    "/nodes/a/action/menus/0/mainPrompt",
                    "placeholder-unknown",
                    Severity::Error
                ),
                (
                    "/nodes/a/action/menus/0/repeatPrompt",
                    "placeholder-unterminated",
                    Severity::Error
                ),
            ]
        );
        assert_eq!(
            p.first().unwrap().message,
            "unknown placeholder `${Caller}`; did you mean `${caller}`?"
        );
    }

    #[test]
    fn unhandled_results_warn_only_without_default_or_fallback() {
        let mut f = flow(json!({
            "name": "w",
            "start": "a",
            "nodes": {
                "a": {
                    "action": {"name": "runMenu", "menus": [{"id": "main", "maxDigits": 2, "options": [
                        {"dtmf": "1", "action": "return(x)"}]}]},
                    "next": {"timeout": "a"}
                }
            }
        }));
        assert_eq!(
            codes(&f.check_structure()),
            vec![
                (
                    "/nodes/a/action/menus/0/options/0/action",
                    "return-unhandled",
                    Severity::Warning
                ),
                ("/nodes/a/next", "sequence-unhandled", Severity::Warning),
            ]
        );
        f.fallback_node = Some("a".into());
        assert_eq!(f.check_structure(), vec![]);
    }

    #[test]
    fn reachability_and_pie_nodes() {
        let f = fixture("ivr.json");
        let pie = f.pie_nodes();
        assert!(pie.contains("goodbye"));
        // welcome is re-entered on invalid input, so it answers both the ICE and a PIE.
        assert!(pie.contains("welcome"));
        assert_eq!(pie.len(), 8);
        assert_eq!(f.reachable().len(), f.nodes.len());
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
    }
}
