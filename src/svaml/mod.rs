//! SVAML gate: validates SVAML replies (and inbound Sinch Voice callback events) against the
//! embedded JSON Schema bundle in `schemas/` plus lint rules for what a schema cannot express.
//!
//! * [`Validator`] compiles every schema once (offline, from `include_str!`-embedded files) and
//!   checks a document for a [`Target`] (ICE/ACE/PIE reply or Calls API manage-call body) in a
//!   [`Mode`], returning a [`Report`] with *all* violations at once.
//! * [`model`] is the typed SVAML model (the built-in replies are written with it).
//! * Lint codes (`SVAMLnnn`) are listed in [`lint`]; schema violations use `schema:<keyword>`.
//! * Severity policy: a finding is an error only where a Sinch source says Sinch rejects the reply;
//!   every rule and every non-obvious schema constraint names its source ([`lint::RULES`],
//!   [`policy`]), and each [`Violation`] carries it.
//! * Names in another casing than lowerCamel (`ConnectPstn`, `Say`, `runmenu`) are checked as the
//!   canonical name, with warning SVAML003.
//! * [`Validator::check_in_call`] checks a reply with what the call did before (its cookies);
//!   [`cookies_set`] extracts the cookies a reply sets.

pub mod event_target;
pub mod lint;
pub mod memo;
pub mod model;
pub mod policy;
pub mod report;
pub mod schema;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

use crate::events::EventKind;

pub use report::{Report, Severity, Violation};

/// Sinch's default limit of a `say` text, in characters (support can raise it per account).
pub const DEFAULT_MAX_SAY_CHARS: usize = 600;

/// Limits that Sinch lets support raise per account; the defaults are Sinch's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Largest `say` text, in characters (rule SVAML080).
    pub max_say_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_say_chars: DEFAULT_MAX_SAY_CHARS,
        }
    }
}

/// What a call did before the reply being checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// Cookies set by the call's earlier replies: the last value of each key.
    pub cookies: BTreeMap<String, String>,
}

/// The cookies a reply sets: the last value of each key of its `setCookie` instructions (in any
/// casing of the name). A `setCookie` without a string `key` sets nothing; one without a string
/// `value` sets the empty string.
pub fn cookies_set(doc: &Value) -> BTreeMap<String, String> {
    let mut cookies = BTreeMap::new();
    // Member and instruction names in any casing, exactly as the gate reads them.
    let (doc, _) = normalize_names(doc, Target::Ice);
    let Some(instructions) = doc.get("instructions").and_then(Value::as_array) else {
        return cookies;
    };
    for instruction in instructions {
        if instruction.get("name").and_then(Value::as_str) != Some("setCookie") {
            continue;
        }
        if let Some(key) = instruction.get("key").and_then(Value::as_str) {
            let value = instruction
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or_default();
            cookies.insert(key.to_owned(), value.to_owned());
        }
    }
    cookies
}

/// A name given in another casing than the canonical one.
struct Renamed {
    /// Where the name is in the document as received.
    pointer: String,
    original: String,
    canonical: &'static str,
    /// `action`, `instruction` or `member` (a top-level member such as `Action`).
    kind: &'static str,
}

/// Action names that only the Calls API manage-call body knows (Sinch's Calling API page shows
/// recording started and stopped as the action of a manage-call request).
const MANAGE_ONLY_ACTIONS: [&str; 2] = ["startRecording", "stopRecording"];

fn canonical_name(names: &[&'static str], found: &str) -> Option<&'static str> {
    if names.contains(&found) {
        return None;
    }
    names
        .iter()
        .copied()
        .find(|n| n.eq_ignore_ascii_case(found))
}

/// Maps names in another casing (`ConnectPSTN`, `Say`, `runmenu`, a top-level `Action`) to the
/// canonical lowerCamel name, so the schema, the per-event table and the lints apply to it. The
/// document is copied only when a name changes.
fn normalize_names(doc: &Value, target: Target) -> (Cow<'_, Value>, Vec<Renamed>) {
    let Some(root) = doc.as_object() else {
        return (Cow::Borrowed(doc), Vec::new());
    };
    let mut renames = Vec::new();
    for member in ["action", "instructions"] {
        if root.contains_key(member) {
            continue;
        }
        if let Some(found) = root.keys().find(|k| k.eq_ignore_ascii_case(member)) {
            renames.push(Renamed {
                pointer: format!("/{}", found.replace('~', "~0").replace('/', "~1")),
                original: found.clone(),
                canonical: member,
                kind: "member",
            });
        }
    }
    // The member as the document spells it (`Action` when there is no `action`).
    let key_of = |canonical: &'static str| -> &str {
        if root.contains_key(canonical) {
            return canonical;
        }
        root.keys()
            .find(|k| k.eq_ignore_ascii_case(canonical))
            .map_or(canonical, String::as_str)
    };
    let (action_key, instructions_key) = (key_of("action"), key_of("instructions"));
    if let Some(name) = root
        .get(action_key)
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
    {
        let canonical = canonical_name(action_names(), name).or_else(|| {
            (target == Target::Manage)
                .then(|| canonical_name(&MANAGE_ONLY_ACTIONS, name))
                .flatten()
        });
        if let Some(canonical) = canonical {
            renames.push(Renamed {
                pointer: "/action/name".to_owned(),
                original: name.to_owned(),
                canonical,
                kind: "action",
            });
        }
    }
    if let Some(instructions) = root.get(instructions_key).and_then(Value::as_array) {
        for (i, instruction) in instructions.iter().enumerate() {
            if let Some(name) = instruction.get("name").and_then(Value::as_str) {
                if let Some(canonical) = canonical_name(instruction_names(), name) {
                    renames.push(Renamed {
                        pointer: format!("/instructions/{i}/name"),
                        original: name.to_owned(),
                        canonical,
                        kind: "instruction",
                    });
                }
            }
        }
    }
    if renames.is_empty() {
        return (Cow::Borrowed(doc), renames);
    }
    let mut copy = root.clone();
    for r in renames.iter().filter(|r| r.kind == "member") {
        if let Some(value) = copy.remove(&r.original) {
            copy.insert(r.canonical.to_owned(), value);
        }
    }
    let mut copy = Value::Object(copy);
    for r in renames.iter().filter(|r| r.kind != "member") {
        if let Some(slot) = copy.pointer_mut(&r.pointer) {
            *slot = Value::from(r.canonical);
        }
    }
    (Cow::Owned(copy), renames)
}

/// Version of the embedded schema bundle (`schemas/bundle.json` → `version`).
pub const SCHEMA_BUNDLE_VERSION: &str = "1.1.0";

/// Canonical (lowerCamel) names of all SVAML actions: one schema file each under
/// `schemas/svaml/actions/`.
pub fn action_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| schema::names_under("svaml/actions/"))
}

/// Canonical (lowerCamel) names of all SVAML instructions: one schema file each under
/// `schemas/svaml/instructions/`.
pub fn instruction_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| schema::names_under("svaml/instructions/"))
}

/// What each target allows, read from its reply schema (`schemas/svaml/responses/*.json`):
/// `(actions, instructions)`, by [`Target::index`].
fn allowed() -> &'static [(Vec<&'static str>, Vec<&'static str>)] {
    static ALLOWED: OnceLock<Vec<(Vec<&'static str>, Vec<&'static str>)>> = OnceLock::new();
    ALLOWED.get_or_init(|| {
        Target::ALL
            .into_iter()
            .map(|t| {
                let known = |name: &str| {
                    action_names()
                        .iter()
                        .chain(instruction_names())
                        .find(|n| **n == name)
                        .copied()
                };
                let (actions, instructions) = schema::reply_names(t);
                (
                    actions.iter().filter_map(|n| known(n)).collect(),
                    instructions.iter().filter_map(|n| known(n)).collect(),
                )
            })
            .collect()
    })
}

/// Errors of the SVAML module (schema compilation, parsing of names, builder misuse).
#[derive(Debug, thiserror::Error)]
pub enum SvamlError {
    /// An embedded schema file is not valid JSON.
    #[error("embedded schema {path} is not valid JSON: {message}")]
    SchemaJson {
        /// Path below `schemas/`.
        path: &'static str,
        /// Parser message.
        message: String,
    },
    /// The schema registry could not be built.
    #[error("schema registry error: {0}")]
    Registry(String),
    /// A validator could not be compiled.
    #[error("schema {path} failed to compile: {message}")]
    Compile {
        /// Path below `schemas/`.
        path: &'static str,
        /// Compiler message.
        message: String,
    },
    /// Unknown reply target name.
    #[error("unknown SVAML target `{0}` (expected ice, ace, pie or manage)")]
    UnknownTarget(String),
    /// Unknown inbound event name.
    #[error("unknown event `{0}` (expected ice, ace, dice, pie or notify)")]
    UnknownEvent(String),
    /// Unknown mode name.
    #[error("unknown mode `{0}` (expected normal or strict)")]
    UnknownMode(String),
    /// A menu option action string is not `menu(<id>)` or `return(<value>)`.
    #[error("invalid menu option action `{0}`: expected menu(<id>) or return(<value>)")]
    InvalidMenuAction(String),
}

/// What a SVAML document is checked for: a reply to ICE, ACE or PIE, or a Calls API
/// manage-call (PATCH) body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Reply to an Incoming Call Event.
    Ice,
    /// Reply to an Answered Call Event.
    Ace,
    /// Reply to a Prompt Input Event.
    Pie,
    /// Body of the Calls API manage-call endpoints.
    Manage,
}

impl Target {
    /// All targets.
    pub const ALL: [Target; 4] = [Target::Ice, Target::Ace, Target::Pie, Target::Manage];

    /// Lower-case name (`ice`, `ace`, `pie`, `manage`).
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Ice => "ice",
            Target::Ace => "ace",
            Target::Pie => "pie",
            Target::Manage => "manage",
        }
    }

    /// Human label used in messages ("a reply to ICE", "a Calls API manage-call body").
    pub fn describe(self) -> &'static str {
        match self {
            Target::Ice => "a reply to ICE",
            Target::Ace => "a reply to ACE",
            Target::Pie => "a reply to PIE",
            Target::Manage => "a Calls API manage-call body",
        }
    }

    /// Actions allowed for this target, as its reply schema (`schemas/svaml/responses/*.json`)
    /// lists them: Sinch's per-event table for ICE, ACE and PIE; hangup, continue and park for
    /// manage-call bodies, plus startRecording and stopRecording as Sinch's Calling API page shows
    /// them there.
    pub fn allowed_actions(self) -> &'static [&'static str] {
        &allowed()[self.index()].0
    }

    /// Instructions allowed for this target, as its reply schema lists them: Sinch's per-event
    /// table for ICE, ACE and PIE. A manage-call body accepts any instruction (those other than
    /// playFiles and say raise warning SVAML004).
    pub fn allowed_instructions(self) -> &'static [&'static str] {
        &allowed()[self.index()].1
    }

    /// Position in [`Target::ALL`] (for tables indexed by target).
    pub(crate) fn index(self) -> usize {
        match self {
            Target::Ice => 0,
            Target::Ace => 1,
            Target::Pie => 2,
            Target::Manage => 3,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Target {
    type Err = SvamlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| SvamlError::UnknownTarget(s.to_owned()))
    }
}

/// How strictly a document is judged.
///
/// * `Normal`: only what a Sinch source says Sinch rejects is an error; unknown properties and
///   everything else are warnings (the document stays valid).
/// * `Strict`: canonical form, for linting in CI: warnings about a spelling other than the one
///   Sinch documents today become errors (unknown properties, casing, prompt grammar, …). Spellings
///   that Sinch's own SDKs and examples emit (`transport: "tls"`, `callheaders`, `#ssml[...]`
///   without `<speak>`, numbers without `+`) stay warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only what Sinch rejects is an error.
    #[default]
    Normal,
    /// Non-canonical spellings are errors too.
    Strict,
}

impl Mode {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Strict => "strict",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = SvamlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "normal" => Ok(Mode::Normal),
            "strict" => Ok(Mode::Strict),
            _ => Err(SvamlError::UnknownMode(s.to_owned())),
        }
    }
}

/// Compiled SVAML gate. Build once with [`Validator::new`] (Sinch's default limits) or
/// [`Validator::with_limits`] and share it (it is `Send + Sync`).
pub struct Validator {
    compiled: schema::Compiled,
    limits: Limits,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("bundle_version", &SCHEMA_BUNDLE_VERSION)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// Compiles all embedded schemas (no file system or network access), with Sinch's default
    /// account limits.
    pub fn new() -> Result<Validator, SvamlError> {
        Validator::with_limits(Limits::default())
    }

    /// Compiles all embedded schemas, with account limits (e.g. a `say` limit raised by Sinch
    /// support).
    pub fn with_limits(limits: Limits) -> Result<Validator, SvamlError> {
        Ok(Validator {
            compiled: schema::Compiled::new()?,
            limits,
        })
    }

    /// The quoted Sinch lines of the schema constraints that refuse a reply on their own evidence
    /// (`x-policy` entries with severity error), for tests and documentation of the evidence bar.
    pub fn refusing_quotes(&self) -> Vec<&str> {
        self.compiled.policies().refusing_quotes()
    }

    /// The account limits this validator applies.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Checks a SVAML document for `target`; returns every schema and lint violation. The cookie
    /// budget counts this reply's cookies only; see [`Validator::check_in_call`].
    pub fn check(&self, target: Target, doc: &Value, mode: Mode) -> Report {
        self.check_in_call(target, doc, mode, &CallContext::default())
    }

    /// Checks a SVAML document for `target` as a reply within a call: the cookie budget (SVAML040,
    /// 1024 bytes of keys and values) counts the last value of each key over the cookies the call
    /// set earlier (`context.cookies`) and this reply's `setCookie` instructions.
    pub fn check_in_call(
        &self,
        target: Target,
        doc: &Value,
        mode: Mode,
        context: &CallContext,
    ) -> Report {
        let (doc, renames) = normalize_names(doc, target);
        let doc: &Value = &doc;
        let schema = self.compiled.reply(target);
        let mut violations: Vec<Violation> = renames
            .iter()
            .map(|r| {
                lint::R003
                    .at(
                        r.pointer.clone(),
                        format!(
                            "{} name {} is not in the lowerCamel casing of Sinch's API reference; checked as {}",
                            r.kind, r.original, r.canonical
                        ),
                    )
                    .expected(r.canonical)
                    .found(r.original.clone())
                    .hint(format!(
                        "use {}; Sinch's pages also publish other casings, and whether Sinch matches names case-insensitively is not documented",
                        r.canonical
                    ))
            })
            .collect();
        if !schema.is_valid(doc) {
            for error in schema.iter_errors(doc) {
                report::push_schema_error(
                    &error,
                    Some(target),
                    self.compiled.policies(),
                    &mut violations,
                );
            }
        }
        // A table violation reports the name as the reply spelled it.
        for v in violations.iter_mut().filter(|v| v.code != lint::R003.code) {
            if let Some(r) = renames.iter().find(|r| r.pointer == v.pointer) {
                v.found = Some(r.original.clone());
            }
        }
        let ctx = lint::LintContext {
            max_say_chars: self.limits.max_say_chars,
            earlier_cookies: &context.cookies,
        };
        lint::lint(doc, target, &ctx, &mut violations);
        Report::finish(target.as_str(), mode, violations)
    }

    /// Checks a callback event as Sinch sends it against its lenient schema (normal mode): what
    /// `svamlgate validate --callback` does for a payload a test or a customer's app will send.
    /// The event schemas are compiled at the first call, never on the reply path.
    pub fn check_event(&self, kind: &EventKind, doc: &Value) -> Result<Report, SvamlError> {
        let (schema, target) = self.compiled.event(kind)?;
        let mut violations = Vec::new();
        if !schema.is_valid(doc) {
            for error in schema.iter_errors(doc) {
                report::push_schema_error(&error, None, self.compiled.policies(), &mut violations);
            }
        }
        Ok(Report::finish(target, Mode::Normal, violations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parse_display_roundtrip() {
        for t in Target::ALL {
            assert_eq!(t.to_string().parse::<Target>().unwrap(), t);
        }
        assert_eq!("ICE".parse::<Target>().unwrap(), Target::Ice);
        assert_eq!(" Manage ".parse::<Target>().unwrap(), Target::Manage);
        assert!(matches!(
            "dice".parse::<Target>(),
            Err(SvamlError::UnknownTarget(s)) if s == "dice"
        ));
        assert_eq!("STRICT".parse::<Mode>().unwrap(), Mode::Strict);
    }

    fn codes(report: &Report) -> Vec<(&str, &str, Severity)> {
        report
            .violations
            .iter()
            .map(|v| (v.code.as_str(), v.pointer.as_str(), v.severity))
            .collect()
    }

    #[test]
    fn casing_variants_are_checked_as_the_canonical_name_with_a_warning() {
        let v = Validator::new().unwrap();
        let doc = serde_json::json!({
            "instructions": [{"name": "Say", "text": "Hi"}, {"name": "StartRecording", "options": {"destinationUrl": "s3://b/"}}],
            "action": {"name": "connectMXP", "destination": {"type": "username", "endpoint": "johndoe"}}
        });
        let report = v.check(Target::Ice, &doc, Mode::Normal);
        assert!(report.valid, "{report}");
        assert_eq!(
            codes(&report),
            [
                ("SVAML003", "/action/name", Severity::Warning),
                ("SVAML003", "/instructions/0/name", Severity::Warning),
                ("SVAML003", "/instructions/1/name", Severity::Warning),
            ]
        );
        assert_eq!(report.violations[0].found.as_deref(), Some("connectMXP"));
        assert_eq!(report.violations[0].expected.as_deref(), Some("connectMxp"));
        // Strict mode is the canonical spelling.
        assert!(!v.check(Target::Ice, &doc, Mode::Strict).valid);
        // The per-event table applies to the canonical name; found is the reply's spelling.
        let cont = serde_json::json!({"action": {"name": "Continue"}});
        let report = v.check(Target::Ice, &cont, Mode::Normal);
        assert!(!report.valid);
        let table = report
            .violations
            .iter()
            .find(|v| v.code == "SVAML001")
            .unwrap();
        assert_eq!(table.found.as_deref(), Some("Continue"));
        assert!(v.check(Target::Ace, &cont, Mode::Normal).valid);
        // Properties are checked against the canonical action's schema.
        let pstn = serde_json::json!({"action": {"name": "ConnectPstn", "maxDuration": 99999}});
        let report = v.check(Target::Ice, &pstn, Mode::Normal);
        assert!(report.has_code("schema:maximum"), "{report}");
        // Unknown names stay unknown.
        let dial = serde_json::json!({"action": {"name": "Dial"}});
        assert!(v
            .check(Target::Ice, &dial, Mode::Normal)
            .has_code("schema:enum"));
    }

    #[test]
    fn top_level_members_in_another_casing_are_read_canonically() {
        let v = Validator::new().unwrap();
        let doc = serde_json::json!({"Action": {"name": "ConnectConf", "conferenceId": "myConference123"}});
        let report = v.check(Target::Ice, &doc, Mode::Normal);
        assert!(report.valid, "{report}");
        assert_eq!(
            codes(&report),
            [
                ("SVAML003", "/Action", Severity::Warning),
                ("SVAML003", "/action/name", Severity::Warning),
            ]
        );
        // The per-event table applies to what the member holds.
        let ace = serde_json::json!({"Action": {"name": "park"}});
        assert!(v
            .check(Target::Ace, &ace, Mode::Normal)
            .has_code("SVAML001"));
        // With both spellings, `action` is the action and `Action` an unknown member.
        let both = serde_json::json!({"action": {"name": "hangup"}, "Action": {"name": "park"}});
        let report = v.check(Target::Ice, &both, Mode::Normal);
        assert!(
            report.valid && report.has_code("schema:additionalProperties"),
            "{report}"
        );
    }

    #[test]
    fn manage_call_bodies_accept_recording_actions() {
        let v = Validator::new().unwrap();
        let start = serde_json::json!({"action": {"name": "startRecording", "recordingOptions": {"destinationUrl": "s3://my-s3-bucket", "credentials": "k:s:eu-central-1"}}});
        assert!(v
            .check(Target::Manage, &start, Mode::Strict)
            .violations
            .is_empty());
        let stop = serde_json::json!({"action": {"name": "StopRecording"}});
        let report = v.check(Target::Manage, &stop, Mode::Normal);
        assert_eq!(
            codes(&report),
            [("SVAML003", "/action/name", Severity::Warning)]
        );
        // Not an action of callback replies.
        assert!(!v.check(Target::Ice, &start, Mode::Normal).valid);
    }

    #[test]
    fn say_limit_is_a_setting() {
        let long = "a".repeat(601);
        let doc = serde_json::json!({"instructions": [{"name": "say", "text": long}], "action": {"name": "hangup"}});
        let default = Validator::new().unwrap();
        assert_eq!(default.limits().max_say_chars, DEFAULT_MAX_SAY_CHARS);
        let report = default.check(Target::Ice, &doc, Mode::Normal);
        assert_eq!(
            codes(&report),
            [("SVAML080", "/instructions/0/text", Severity::Error)]
        );
        let raised = Validator::with_limits(Limits {
            max_say_chars: 1000,
        })
        .unwrap();
        assert!(raised
            .check(Target::Ice, &doc, Mode::Strict)
            .violations
            .is_empty());
        // Characters, not bytes.
        let accents = serde_json::json!({"instructions": [{"name": "say", "text": "é".repeat(600)}], "action": {"name": "hangup"}});
        assert!(default.check(Target::Ice, &accents, Mode::Normal).valid);
    }

    #[test]
    fn cookie_budget_counts_the_last_value_of_each_key_over_the_call() {
        let v = Validator::new().unwrap();
        // PIE: an ICE that hangs up without a prompt draws audible warning SVAML092.
        let big = "x".repeat(600);
        // The same key twice: only the last value counts (601 bytes), with a warning.
        let doc = serde_json::json!({"instructions": [
            {"name": "setCookie", "key": "a", "value": big},
            {"name": "setCookie", "key": "a", "value": big}
        ], "action": {"name": "hangup"}});
        let report = v.check(Target::Pie, &doc, Mode::Normal);
        assert!(report.valid, "{report}");
        assert_eq!(
            codes(&report),
            [("SVAML041", "/instructions/1/key", Severity::Warning)]
        );
        assert_eq!(
            cookies_set(&doc),
            BTreeMap::from([("a".to_owned(), big.clone())])
        );
        // Earlier cookies of the call count too …
        let mut context = CallContext::default();
        context.cookies.insert("b".to_owned(), "y".repeat(500));
        let report = v.check_in_call(Target::Pie, &doc, Mode::Normal, &context);
        assert_eq!(
            codes(&report),
            [
                ("SVAML041", "/instructions/1/key", Severity::Warning),
                ("SVAML040", "/instructions/1", Severity::Error)
            ]
        );
        assert!(report.violations[1].message.contains("earlier"), "{report}");
        // … unless this reply replaces them.
        context.cookies.insert("a".to_owned(), "z".repeat(900));
        context.cookies.remove("b");
        assert!(
            v.check_in_call(Target::Pie, &doc, Mode::Normal, &context)
                .valid
        );
        // A reply that sets no cookie is not blamed for the call's earlier ones.
        context.cookies.insert("c".to_owned(), "z".repeat(2000));
        let hangup = serde_json::json!({"action": {"name": "hangup"}});
        assert!(v
            .check_in_call(Target::Pie, &hangup, Mode::Normal, &context)
            .violations
            .is_empty());
        // Exactly 1024 bytes is within the budget.
        let exact = serde_json::json!({"instructions": [{"name": "SetCookie", "key": "k", "value": "v".repeat(1023)}], "action": {"name": "hangup"}});
        assert!(v.check(Target::Pie, &exact, Mode::Normal).valid);
        assert_eq!(cookies_set(&exact).len(), 1);
    }

    #[test]
    fn cookies_set_reads_names_in_any_casing() {
        let doc = serde_json::json!({"Instructions": [{"name": "SetCookie", "key": "a", "value": "1"}],
                         "action": {"name": "hangup"}});
        assert_eq!(cookies_set(&doc).get("a").map(String::as_str), Some("1"));
    }

    #[test]
    fn cookies_set_ignores_what_sets_nothing() {
        let doc = serde_json::json!({"instructions": [
            {"name": "setCookie", "key": "a"},
            {"name": "setCookie", "value": "no key"},
            {"name": "say", "key": "b", "value": "x"},
            {"name": "setCookie", "key": "c", "value": 5},
            null
        ], "action": {"name": "hangup"}});
        assert_eq!(
            cookies_set(&doc),
            BTreeMap::from([
                ("a".to_owned(), String::new()),
                ("c".to_owned(), String::new())
            ])
        );
        assert!(cookies_set(&serde_json::json!([1])).is_empty());
    }

    #[test]
    fn validator_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Validator>();
    }
}
