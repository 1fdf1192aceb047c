//! Validation reports: every schema and lint violation of one check, with JSON Pointers,
//! stable codes, expected/found values and fix hints. Serializes to camelCase JSON and renders
//! one line per violation with `Display`.

use std::fmt;

use jsonschema::error::ValidationErrorKind;
use jsonschema::ValidationError;
use serde::Serialize;
use serde_json::Value;

use super::lint::{self, Rule};
pub use super::policy::NO_SINCH_SOURCE;
use super::policy::{Policy, SchemaPolicies};
use super::{action_names, instruction_names, Mode, Target, SCHEMA_BUNDLE_VERSION};

/// Severity of a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Makes the document invalid.
    Error,
    /// Reported, but the document stays valid (normal mode only).
    Warning,
}

impl Severity {
    /// Both severities.
    pub const ALL: [Severity; 2] = [Severity::Error, Severity::Warning];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A severity is stored as its name (`console_rule_minutes.severity`) and read back as
/// `Stored<Severity>`.
impl crate::outcome::Vocabulary for Severity {
    const NAME: &'static str = "Severity";
    fn text(self) -> &'static str {
        self.as_str()
    }
    fn from_text(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One problem found in a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// Error or warning (after applying the mode).
    pub severity: Severity,
    /// JSON Pointer into the document; for a missing required member it points at the member.
    pub pointer: String,
    /// `schema:<keyword>` (e.g. `schema:enum`) or a lint code (`SVAMLnnn`).
    pub code: String,
    /// What was expected, if it can be stated briefly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What was found (credentials are redacted; `Report::masked` masks phone numbers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// Human-readable description.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Where the rule comes from: a Sinch doc page or SDK file, or `svamlgate` when no Sinch source
    /// states it (such a finding is never an error in normal mode).
    pub source: String,
    /// The line of the source the rule rests on, quoted as read (every refusing rule has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// When the quoted line was read at its source (`YYYY-MM-DD`), or why it was not re-read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<String>,
    /// Whether strict mode turns this warning into an error. Strict mode is the canonical spelling
    /// Sinch documents today; spellings Sinch's own SDKs and examples emit stay warnings there.
    #[serde(skip)]
    pub strict_error: bool,
}

impl Violation {
    /// A new violation without expected/found/hint; its source is `svamlgate` until
    /// [`Violation::source`] names one, and strict mode makes it an error.
    pub fn new(
        severity: Severity,
        pointer: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Violation {
        Violation {
            severity,
            pointer: pointer.into(),
            code: code.into(),
            expected: None,
            found: None,
            message: message.into(),
            hint: None,
            source: NO_SINCH_SOURCE.to_owned(),
            quote: None,
            read: None,
            strict_error: true,
        }
    }

    /// Sets the quoted line of the source and when it was read.
    pub fn evidence(mut self, quote: impl Into<String>, read: impl Into<String>) -> Violation {
        self.quote = Some(quote.into());
        self.read = Some(read.into());
        self
    }

    /// Sets `source`.
    pub fn source(mut self, source: impl Into<String>) -> Violation {
        self.source = source.into();
        self
    }

    /// Sets whether strict mode turns this warning into an error.
    pub fn strict_error(mut self, strict_error: bool) -> Violation {
        self.strict_error = strict_error;
        self
    }

    /// Sets `expected`.
    pub fn expected(mut self, expected: impl Into<String>) -> Violation {
        self.expected = Some(expected.into());
        self
    }

    /// Sets `found`.
    pub fn found(mut self, found: impl Into<String>) -> Violation {
        self.found = Some(found.into());
        self
    }

    /// Sets `hint`.
    pub fn hint(mut self, hint: impl Into<String>) -> Violation {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(
            f,
            "{:<7} {} [{}] {}",
            self.severity.as_str(),
            pointer,
            self.code,
            self.message
        )?;
        if let Some(expected) = &self.expected {
            write!(f, "; expected: {expected}")?;
        }
        if let Some(found) = &self.found {
            write!(f, "; found: {found}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        write!(f, "; source: {}", self.source)?;
        if let Some(quote) = &self.quote {
            write!(f, "; says: \"{quote}\"")?;
            if let Some(read) = &self.read {
                write!(f, " (read {read})")?;
            }
        }
        Ok(())
    }
}

/// Result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(description = "An SVAML validation report.")]
pub struct Report {
    /// `true` when there is no error (warnings allowed).
    pub valid: bool,
    /// `ice`, `ace`, `pie`, `manage`, or `event:<kind>` for inbound events.
    #[schema(value_type = String)]
    pub target: &'static str,
    /// Mode the check ran in.
    pub mode: Mode,
    /// Version of the SVAML schema bundle used.
    #[schema(value_type = String)]
    pub bundle_version: &'static str,
    /// Number of errors.
    pub error_count: usize,
    /// Number of warnings.
    pub warning_count: usize,
    /// All violations, schema ones first, then lint ones.
    pub violations: Vec<Violation>,
}

impl Report {
    /// Applies the mode (strict promotes the warnings marked [`Violation::strict_error`]) and counts.
    pub(crate) fn finish(
        target: &'static str,
        mode: Mode,
        mut violations: Vec<Violation>,
    ) -> Report {
        if mode == Mode::Strict {
            for v in violations.iter_mut().filter(|v| v.strict_error) {
                v.severity = Severity::Error;
            }
        }
        let error_count = violations
            .iter()
            .filter(|v| v.severity == Severity::Error)
            .count();
        Report {
            valid: error_count == 0,
            target,
            mode,
            bundle_version: SCHEMA_BUNDLE_VERSION,
            error_count,
            warning_count: violations.len() - error_count,
            violations,
        }
    }

    /// Violations with severity error.
    pub fn errors(&self) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(|v| v.severity == Severity::Error)
    }

    /// Violations with severity warning.
    pub fn warnings(&self) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(|v| v.severity == Severity::Warning)
    }

    /// Whether any violation has this code (for tests).
    #[cfg(test)]
    pub(crate) fn has_code(&self, code: &str) -> bool {
        self.violations.iter().any(|v| v.code == code)
    }

    /// Copy with the numbers of 6 or more digits in `found` masked as in logs
    /// ([`crate::redact::mask_numbers_in`]: `+46701234567` → `+467******67`).
    pub fn masked(&self) -> Report {
        let mut copy = self.clone();
        for v in &mut copy.violations {
            if let Some(found) = &v.found {
                v.found = Some(crate::redact::mask_numbers_in(found));
            }
        }
        copy
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "svaml {} ({} mode, bundle {}): {}, {} error(s), {} warning(s)",
            self.target,
            self.mode,
            self.bundle_version,
            if self.valid { "valid" } else { "invalid" },
            self.error_count,
            self.warning_count
        )?;
        for v in &self.violations {
            write!(f, "\n{v}")?;
        }
        Ok(())
    }
}

const FOUND_MAX_CHARS: usize = 120;

/// Short rendering of an instance value: strings raw, everything else compact JSON; truncated.
pub(crate) fn render_found(pointer: &str, value: &Value) -> String {
    if pointer.ends_with("/credentials") {
        return "[redacted]".to_owned();
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => format!("object with {} member(s)", map.len()),
        Value::Array(items) => format!("array with {} item(s)", items.len()),
        other => other.to_string(),
    };
    truncate(text)
}

fn truncate(text: String) -> String {
    if text.chars().count() <= FOUND_MAX_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(FOUND_MAX_CHARS).collect();
    cut.push('…');
    cut
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join_pointer(parent: &str, key: &str) -> String {
    let escaped = key.replace('~', "~0").replace('/', "~1");
    format!("{parent}/{escaped}")
}

fn list(values: &[&str]) -> String {
    values.join(", ")
}

/// Hint for a few well-known misspellings seen in SDKs and legacy docs.
fn unknown_property_hint(key: &str) -> String {
    let known = match key {
        "badge" => Some("the .NET SDK serializes `barge` as `badge`; use `barge`"),
        "introPromt" => {
            Some("the .NET SDK serializes `introPrompt` as `introPromt`; use `introPrompt`")
        }
        "destination" => Some("for startRecording options use `destinationUrl`"),
        "callheaders" => Some("use `callHeaders`"),
        "hangupCause" | "barge" => Some(
            "a property of Sinch's legacy server SDK, in none of Sinch's current models; remove it",
        ),
        _ => None,
    };
    known.map_or_else(
        || "in none of Sinch's models for this object: remove it or fix its spelling (strict mode refuses unknown properties)".to_owned(),
        str::to_owned,
    )
}

/// Name enum failure on `/action/name` or `/instructions/N/name` (names in another casing were
/// already mapped to the canonical name, see [`super::normalize_names`]): explain it precisely.
fn name_violation(pointer: &str, found: &str, target: Target, is_action: bool) -> Violation {
    let (all, allowed, kind, rule): (&[&str], &[&str], &str, &Rule) = if is_action {
        (
            action_names(),
            target.allowed_actions(),
            "action",
            &lint::R001,
        )
    } else {
        (
            instruction_names(),
            target.allowed_instructions(),
            "instruction",
            &lint::R002,
        )
    };
    let expected = allowed.join("|");
    if all.contains(&found) {
        return rule
            .at(
                pointer,
                format!(
                    "{kind} {found} is not allowed in {}; allowed: {}",
                    target.describe(),
                    list(allowed)
                ),
            )
            .expected(expected)
            .found(found)
            .hint(if is_action {
                "choose an action that Sinch's table allows for this event"
            } else {
                "remove the instruction or move it to a reply where Sinch's table allows it"
            });
    }
    let hint = if found.eq_ignore_ascii_case("ReportCallStatus") {
        "ReportCallStatus is a legacy DICE-only instruction; DICE replies are not interpreted, remove it".to_owned()
    } else {
        format!("use one of: {}", list(allowed))
    };
    Violation::new(
        Severity::Error,
        pointer,
        "schema:enum",
        format!("unknown {kind} name {found}"),
    )
    .expected(expected)
    .found(found)
    .hint(hint)
    .source(UNKNOWN_NAME_SOURCE)
}

/// Sinch's name enums of actions and instructions.
const UNKNOWN_NAME_SOURCE: &str = "developers.sinch.com/docs/voice/api-reference/svaml (actions and instructions); sinch-sdk-java voice/models/v1/svaml/{action,instruction}/*.java (name enums)";

/// Converts one jsonschema error into violations (several for multiple unknown properties), with
/// the severity and source of the failed constraint from the schemas' `x-policy` entries.
pub(crate) fn push_schema_error(
    error: &ValidationError<'_>,
    target: Option<Target>,
    policies: &SchemaPolicies,
    out: &mut Vec<Violation>,
) {
    let pointer = error.instance_path().as_str();
    let instance: &Value = error.instance();
    let keyword = error.kind().keyword();
    let location = error.absolute_keyword_location().map(|u| u.as_str());
    let required = match error.kind() {
        ValidationErrorKind::Required { property } => property.as_str(),
        _ => None,
    };
    let policy = policies.lookup(location, keyword, required);
    let site = Site {
        severity: policy.severity,
        pointer,
        code: format!("schema:{keyword}"),
        instance,
    };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            push_unknown_properties(&site, unexpected, &policy, out);
            return;
        }
        ValidationErrorKind::Enum { .. } => {
            if let (Some(target), Value::String(found)) = (target, instance) {
                if let Some(v) = name_enum(pointer, found, target) {
                    out.push(v);
                    return;
                }
            }
        }
        _ => {}
    }
    let violation = describe_schema_error(&site, error.kind()).unwrap_or_else(|| {
        Violation::new(
            site.severity,
            pointer,
            site.code,
            error.masked().to_string(),
        )
    });
    let violation = violation
        .source(policy.source)
        .strict_error(policy.strict_error);
    out.push(match (policy.quote, policy.read) {
        (Some(quote), Some(read)) => violation.evidence(quote, read),
        _ => violation,
    });
}

/// Where a schema error happened: what every violation built from it starts with.
struct Site<'a> {
    severity: Severity,
    pointer: &'a str,
    code: String,
    instance: &'a Value,
}

impl Site<'_> {
    /// A violation at the error's pointer with its severity and code.
    fn violation(&self, message: impl Into<String>) -> Violation {
        Violation::new(self.severity, self.pointer, self.code.clone(), message)
    }

    /// The failing value as shown in `found` (credentials redacted).
    fn found(&self) -> String {
        render_found(self.pointer, self.instance)
    }
}

/// One violation per unknown property of an `additionalProperties`/`unevaluatedProperties` error.
fn push_unknown_properties(
    site: &Site<'_>,
    unexpected: &[String],
    policy: &Policy,
    out: &mut Vec<Violation>,
) {
    for key in unexpected {
        out.push(
            Violation::new(
                site.severity,
                join_pointer(site.pointer, key),
                site.code.clone(),
                format!("unknown property `{key}`"),
            )
            .found(key.clone())
            .hint(unknown_property_hint(key))
            .source(policy.source.clone())
            .strict_error(policy.strict_error),
        );
    }
}

/// The violation of one failed keyword (without source and evidence), or `None` for a keyword
/// without a dedicated message.
fn describe_schema_error(site: &Site<'_>, kind: &ValidationErrorKind) -> Option<Violation> {
    use ValidationErrorKind as K;
    Some(match kind {
        K::Required { property } => required_violation(site, property.as_str().unwrap_or_default()),
        K::Enum { options } => enum_violation(site, options),
        K::Constant { expected_value } => constant_violation(site, expected_value),
        K::Type { kind } => type_violation(site, kind),
        K::MaxLength { limit } => max_length_violation(site, limit),
        K::MinLength { limit } => site
            .violation("string is too short")
            .expected(format!("at least {limit} character(s)"))
            .found(site.found())
            .hint("provide a non-empty value or remove the member"),
        K::Maximum { limit } | K::ExclusiveMaximum { limit } => site
            .violation("number is too large")
            .expected(format!("≤ {limit}"))
            .found(site.found())
            .hint(format!("use a value of at most {limit}")),
        K::Minimum { limit } | K::ExclusiveMinimum { limit } => site
            .violation("number is too small")
            .expected(format!("≥ {limit}"))
            .found(site.found())
            .hint(format!("use a value of at least {limit}")),
        K::MinItems { limit } => site
            .violation("array has too few items")
            .expected(format!("at least {limit} item(s)"))
            .found(site.found()),
        K::Pattern { pattern } => pattern_violation(site, pattern),
        _ => return None,
    })
}

fn required_violation(site: &Site<'_>, name: &str) -> Violation {
    Violation::new(
        site.severity,
        join_pointer(site.pointer, name),
        site.code.clone(),
        format!("required property `{name}` is missing"),
    )
    .expected(name)
    .hint(format!("add `{name}`"))
}

fn enum_violation(site: &Site<'_>, options: &Value) -> Violation {
    let expected = options
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("|")
        })
        .unwrap_or_default();
    site.violation("value is not one of the allowed values")
        .expected(expected)
        .found(site.found())
        .hint("use one of the expected values (values are case-sensitive)")
}

fn constant_violation(site: &Site<'_>, expected_value: &Value) -> Violation {
    site.violation("value does not match the required constant")
        .expected(
            expected_value
                .as_str()
                .map_or_else(|| expected_value.to_string(), str::to_owned),
        )
        .found(site.found())
}

fn type_violation(site: &Site<'_>, kind: &jsonschema::error::TypeKind) -> Violation {
    let expected = match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join("|"),
    };
    let hint = if expected == "string" && site.instance.is_number() {
        "quote the value: this member is a JSON string".to_owned()
    } else {
        format!("use a JSON {expected}")
    };
    let found = json_type_name(site.instance);
    site.violation(format!("wrong type: {found} instead of {expected}"))
        .expected(expected)
        .found(found)
        .hint(hint)
}

fn max_length_violation(site: &Site<'_>, limit: &u64) -> Violation {
    let len = site.instance.as_str().map_or(0, |s| s.chars().count());
    site.violation(format!(
        "string is too long ({len} characters, at most {limit} allowed)"
    ))
    .expected(format!("at most {limit} characters"))
    .found(format!("{len} characters"))
    .hint(format!("shorten it to {limit} characters or fewer"))
}

fn pattern_violation(site: &Site<'_>, pattern: &str) -> Violation {
    let hint = if pattern == "^[0-9#w]*$" {
        "Sinch's DTMF strings contain only 0-9, # and w (a 500 ms pause)"
    } else {
        "make the value match the expected pattern"
    };
    site.violation("value does not match the required format")
        .expected(pattern)
        .found(site.found())
        .hint(hint)
}

/// Recognises an enum failure of an action/instruction `name`.
fn name_enum(pointer: &str, found: &str, target: Target) -> Option<Violation> {
    let parent = pointer.strip_suffix("/name")?;
    if parent == "/action" {
        return Some(name_violation(pointer, found, target, true));
    }
    let index = parent.strip_prefix("/instructions/")?;
    if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) {
        return Some(name_violation(pointer, found, target, false));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_is_truncated_and_credentials_redacted() {
        let long = Value::String("x".repeat(500));
        let rendered = render_found("/a", &long);
        assert_eq!(rendered.chars().count(), FOUND_MAX_CHARS + 1);
        assert_eq!(
            render_found(
                "/instructions/0/options/credentials",
                &Value::from("secret")
            ),
            "[redacted]"
        );
    }

    #[test]
    fn strict_promotes_warnings() {
        let v = vec![Violation::new(
            Severity::Warning,
            "/a",
            "schema:additionalProperties",
            "m",
        )];
        let normal = Report::finish("ice", Mode::Normal, v.clone());
        assert!(normal.valid);
        assert_eq!(normal.warning_count, 1);
        let strict = Report::finish("ice", Mode::Strict, v);
        assert!(!strict.valid);
        assert_eq!(strict.error_count, 1);
    }
}
