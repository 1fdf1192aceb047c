//! SVAML gate: validates SVAML replies (and inbound Sinch Voice callback events) against the
//! embedded JSON Schema bundle in `schemas/` plus lint rules for what a schema cannot express.
//!
//! * [`Validator`] compiles every schema once (offline, from `include_str!`-embedded files) and
//!   checks a document for a [`Target`] (ICE/ACE/PIE reply or Calls API manage-call body) in a
//!   [`Mode`], returning a [`Report`] with *all* violations at once.
//! * [`model`] is a typed builder for SVAML documents.
//! * Lint codes (`SVAMLnnn`) are listed in [`lint`]; schema violations use `schema:<keyword>`.

pub mod lint;
pub mod model;
pub mod report;
pub mod schema;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

pub use report::{Report, Severity, Violation};

/// Version of the embedded schema bundle (`schemas/bundle.json` → `version`).
pub const SCHEMA_BUNDLE_VERSION: &str = "1.0.0";

/// Canonical (lowerCamel) names of all SVAML actions.
pub const ACTION_NAMES: [&str; 9] = [
    "hangup",
    "continue",
    "connectPstn",
    "connectMxp",
    "connectConf",
    "connectSip",
    "connectStream",
    "runMenu",
    "park",
];

/// Canonical (lowerCamel) names of all SVAML instructions.
pub const INSTRUCTION_NAMES: [&str; 7] = [
    "playFiles",
    "say",
    "sendDtmf",
    "setCookie",
    "answer",
    "startRecording",
    "stopRecording",
];

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
    /// The builder was finished without an action.
    #[error("a SVAML document needs exactly one action")]
    MissingAction,
    /// A menu option action string is not `menu(<id>)` or `return(<value>)`.
    #[error("invalid menu option action `{0}`: expected menu(<id>) or return(<value>)")]
    InvalidMenuAction(String),
}

/// What a SVAML document is checked for: a reply to ICE, ACE or PIE, or a Calls API
/// manage-call (PATCH) body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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

    /// Actions allowed for this target (same lists as `schemas/svaml/responses/*.json`).
    pub fn allowed_actions(self) -> &'static [&'static str] {
        match self {
            Target::Ice => &[
                "hangup",
                "connectPstn",
                "connectMxp",
                "connectConf",
                "connectSip",
                "connectStream",
                "runMenu",
                "park",
            ],
            Target::Ace => &["hangup", "continue", "connectConf", "runMenu"],
            Target::Pie => &[
                "hangup",
                "continue",
                "connectPstn",
                "connectConf",
                "connectSip",
                "runMenu",
            ],
            Target::Manage => &["hangup", "continue", "park"],
        }
    }

    /// Instructions allowed for this target (same lists as `schemas/svaml/responses/*.json`).
    pub fn allowed_instructions(self) -> &'static [&'static str] {
        match self {
            Target::Ice => &INSTRUCTION_NAMES,
            Target::Ace => &[
                "playFiles",
                "say",
                "setCookie",
                "startRecording",
                "stopRecording",
            ],
            Target::Pie => &[
                "playFiles",
                "say",
                "sendDtmf",
                "setCookie",
                "startRecording",
                "stopRecording",
            ],
            Target::Manage => &["playFiles", "say"],
        }
    }

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

/// Inbound Sinch Voice callback event kinds (lenient schemas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSchema {
    /// Incoming Call Event.
    Ice,
    /// Answered Call Event.
    Ace,
    /// Disconnected Call Event.
    Dice,
    /// Prompt Input Event.
    Pie,
    /// Notification Event.
    Notify,
}

impl EventSchema {
    /// All event kinds.
    pub const ALL: [EventSchema; 5] = [
        EventSchema::Ice,
        EventSchema::Ace,
        EventSchema::Dice,
        EventSchema::Pie,
        EventSchema::Notify,
    ];

    /// Lower-case name as in the event's `event` member.
    pub fn as_str(self) -> &'static str {
        match self {
            EventSchema::Ice => "ice",
            EventSchema::Ace => "ace",
            EventSchema::Dice => "dice",
            EventSchema::Pie => "pie",
            EventSchema::Notify => "notify",
        }
    }

    pub(crate) fn report_target(self) -> &'static str {
        match self {
            EventSchema::Ice => "event:ice",
            EventSchema::Ace => "event:ace",
            EventSchema::Dice => "event:dice",
            EventSchema::Pie => "event:pie",
            EventSchema::Notify => "event:notify",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            EventSchema::Ice => 0,
            EventSchema::Ace => 1,
            EventSchema::Dice => 2,
            EventSchema::Pie => 3,
            EventSchema::Notify => 4,
        }
    }
}

impl fmt::Display for EventSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventSchema {
    type Err = SvamlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventSchema::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| SvamlError::UnknownEvent(s.to_owned()))
    }
}

/// How strictly a document is judged.
///
/// * `Normal`: unknown properties and lint warnings are reported as warnings (document stays valid).
/// * `Strict`: every warning is an error (unknown properties, lower-case transport, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Unknown properties and lint warnings are warnings.
    #[default]
    Normal,
    /// Warnings are promoted to errors.
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

/// Compiled SVAML gate. Build once with [`Validator::new`] and share it (it is `Send + Sync`).
pub struct Validator {
    compiled: schema::Compiled,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("bundle_version", &SCHEMA_BUNDLE_VERSION)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// Compiles all embedded schemas (no file system or network access).
    pub fn new() -> Result<Validator, SvamlError> {
        Ok(Validator {
            compiled: schema::Compiled::new()?,
        })
    }

    /// Checks a SVAML document for `target`; returns every schema and lint violation.
    pub fn check(&self, target: Target, doc: &Value, mode: Mode) -> Report {
        let schema = self.compiled.reply(target);
        let mut violations = Vec::new();
        if !schema.is_valid(doc) {
            for error in schema.iter_errors(doc) {
                report::push_schema_error(&error, Some(target), &mut violations);
            }
        }
        lint::lint(doc, target, &mut violations);
        Report::finish(target.as_str(), mode, violations)
    }

    /// Checks an inbound callback event against its lenient schema (normal mode).
    pub fn check_event(&self, kind: EventSchema, doc: &Value) -> Report {
        let schema = self.compiled.event(kind);
        let mut violations = Vec::new();
        if !schema.is_valid(doc) {
            for error in schema.iter_errors(doc) {
                report::push_schema_error(&error, None, &mut violations);
            }
        }
        Report::finish(kind.report_target(), Mode::Normal, violations)
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
        assert_eq!(
            "Notify".parse::<EventSchema>().unwrap(),
            EventSchema::Notify
        );
        assert_eq!("STRICT".parse::<Mode>().unwrap(), Mode::Strict);
    }

    #[test]
    fn validator_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Validator>();
    }
}
