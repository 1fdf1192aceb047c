//! Severity policy: the evidence bar, and its form in the schema files.
//!
//! # The evidence bar (both ways; lint rules and schema constraints alike)
//!
//! * **Refuse** (error: the fallback goes out) where a current Sinch source says the reply is an
//!   error: a `required`, an enum, a type or a limit in Sinch's API description or in an SDK model
//!   generated from it, Sinch's per-event table, or a sentence such as "an error is returned". A
//!   valid reply refused is as bad as an invalid reply let through, and a reply Sinch calls an
//!   error ends in an error tone or silence while a validated fallback was at hand.
//! * **Warn** (the reply goes out, the finding is recorded and counted) where the sources conflict
//!   or say nothing, or where Sinch itself publishes such a reply as a working example.
//! * **When two SDKs disagree**, the model generated from Sinch's API description (the Java SDK's
//!   `openapi-contracts`, "OpenAPI document version: 1.0.1") wins over a hand-written one, and the
//!   rule says so in its source. Sinch's serializer test DTOs are round-trip data with deliberately
//!   odd values, not replies Sinch presents as working.
//! * **Every rule keeps its evidence**: the source (repository and path, or a doc page), the quoted
//!   line, and the date it was read ([`EVIDENCE_READ_ON`] for the re-reading of 2026-12-02). A
//!   refusing rule without them does not load: `x-policy` entries are checked when the schemas are
//!   compiled (below), lint rules by a test over [`super::lint::RULES`].
//!
//! In the schema files (`schemas/**`) a constraint that is not plainly a type or enum of Sinch's API
//! description carries its verdict beside it, in an `x-policy` member of the same schema object:
//!
//! ```json
//! "maxDuration": {
//!   "type": "integer", "minimum": 0, "maximum": 600,
//!   "x-policy": {
//!     "maximum": {"severity": "error", "source": "sinch/docs … park: maximum 600 seconds"},
//!     "minimum": {"severity": "warning", "source": "svamlgate (…)"}
//!   }
//! }
//! ```
//!
//! A key is a keyword, or `required/<property>` for one property of a `required` list. An entry may
//! say `"strict": false` when strict mode must not promote the warning (a spelling Sinch itself
//! emits). An entry may carry `"quote"` (the line of the source, as read) and `"read"` (when); an
//! entry with `"severity": "error"` must carry both and a source other than [`NO_SINCH_SOURCE`], or
//! the schemas do not load. `x-source` on a schema object names the source of everything below it that has no entry
//! of its own.
//!
//! Without an entry, `type`, `enum`, `const` and `required` are errors and unknown properties are
//! warnings, all with the nearest `x-source` as their source (the model that lists the members and
//! their types); every other keyword (`minimum`, `minLength`, `pattern`, …) is a warning with no
//! Sinch source: a limit without a named Sinch source never refuses a reply.

use std::collections::HashMap;

use serde_json::Value;

use super::report::Severity;
use super::schema::{SchemaFile, SCHEMA_ID_BASE};

/// Source named when no Sinch source states a constraint.
pub const NO_SINCH_SOURCE: &str = "svamlgate (no Sinch source states this)";

/// The day the quoted Sinch sources were last re-read (the `read` of most rules).
pub const EVIDENCE_READ_ON: &str = "2026-12-02";

/// The verdict on one schema constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Error or warning in normal mode.
    pub severity: Severity,
    /// Doc page or SDK file the verdict rests on.
    pub source: String,
    /// Whether strict mode promotes a warning to an error.
    pub strict_error: bool,
    /// The quoted line of the source (required for an error).
    pub quote: Option<String>,
    /// When the quoted line was read (required for an error).
    pub read: Option<String>,
}

/// Every `x-policy` entry and `x-source` of the embedded schemas, keyed by absolute location
/// (`https://svamlgate.dev/schemas/svaml/actions/park.json#/properties/maxDuration/maximum`).
#[derive(Debug, Default)]
pub(crate) struct SchemaPolicies {
    entries: HashMap<String, Policy>,
    sources: HashMap<String, String>,
}

/// Keywords that are errors when no `x-policy` entry says otherwise.
fn default_severity(keyword: &str) -> Severity {
    match keyword {
        "type" | "enum" | "const" | "required" => Severity::Error,
        _ => Severity::Warning,
    }
}

impl SchemaPolicies {
    /// Collects the policies of every schema file (already parsed by the caller).
    pub(crate) fn new<'a>(
        files: impl IntoIterator<Item = (&'a SchemaFile, &'a Value)>,
    ) -> Result<SchemaPolicies, String> {
        let mut policies = SchemaPolicies::default();
        for (file, doc) in files {
            let base = format!("{SCHEMA_ID_BASE}{}#", file.path);
            policies.collect(&base, "", doc)?;
        }
        Ok(policies)
    }

    fn collect(&mut self, base: &str, pointer: &str, node: &Value) -> Result<(), String> {
        match node {
            Value::Object(map) => {
                if let Some(source) = map.get("x-source") {
                    let source = source
                        .as_str()
                        .ok_or_else(|| format!("{base}{pointer}/x-source is not a string"))?;
                    self.sources
                        .insert(format!("{base}{pointer}"), source.to_owned());
                }
                if let Some(entries) = map.get("x-policy") {
                    let entries = entries
                        .as_object()
                        .ok_or_else(|| format!("{base}{pointer}/x-policy is not an object"))?;
                    for (key, entry) in entries {
                        let policy = parse_policy(entry).ok_or_else(|| {
                            format!("{base}{pointer}/x-policy/{key} is malformed (an error needs a Sinch source, a quote and a read date)")
                        })?;
                        self.entries
                            .insert(format!("{base}{pointer}/{key}"), policy);
                    }
                }
                for (key, child) in map {
                    if key != "x-policy" {
                        self.collect(base, &format!("{pointer}/{}", escape(key)), child)?;
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    self.collect(base, &format!("{pointer}/{i}"), child)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The quoted lines of every refusing `x-policy` entry (each constraint that refuses a reply
    /// on its own evidence), sorted and without repeats.
    pub(crate) fn refusing_quotes(&self) -> Vec<&str> {
        let mut quotes: Vec<&str> = self
            .entries
            .values()
            .filter(|p| p.severity == Severity::Error)
            .filter_map(|p| p.quote.as_deref())
            .collect();
        quotes.sort_unstable();
        quotes.dedup();
        quotes
    }

    /// The verdict for a failed keyword at `location` (the error's absolute keyword location, or
    /// `None` when the validator gave none); `property` is the missing member of a `required`.
    pub(crate) fn lookup(
        &self,
        location: Option<&str>,
        keyword: &str,
        property: Option<&str>,
    ) -> Policy {
        let fallback = Policy {
            severity: default_severity(keyword),
            source: NO_SINCH_SOURCE.to_owned(),
            strict_error: true,
            quote: None,
            read: None,
        };
        let Some(location) = location.map(normalize) else {
            return fallback;
        };
        if let Some(property) = property {
            if let Some(p) = self
                .entries
                .get(&format!("{location}/{}", escape(property)))
            {
                return p.clone();
            }
        }
        if let Some(p) = self.entries.get(location.as_str()) {
            return p.clone();
        }
        if !matches!(
            keyword,
            "type"
                | "enum"
                | "const"
                | "required"
                | "additionalProperties"
                | "unevaluatedProperties"
        ) {
            return fallback;
        }
        // The nearest x-source of the schema object holding the keyword, or of an ancestor.
        let mut node = location.as_str();
        while let Some((parent, _)) = node.rsplit_once('/') {
            if let Some(source) = self.sources.get(parent) {
                return Policy {
                    source: source.clone(),
                    ..fallback
                };
            }
            node = parent;
        }
        fallback
    }
}

fn parse_policy(entry: &Value) -> Option<Policy> {
    let severity = match entry.get("severity")?.as_str()? {
        "error" => Severity::Error,
        "warning" => Severity::Warning,
        _ => return None,
    };
    let source = entry.get("source")?.as_str()?.trim();
    if source.is_empty() {
        return None;
    }
    let strict_error = match entry.get("strict") {
        None => true,
        Some(v) => v.as_bool()?,
    };
    let text = |key: &str| -> Option<Option<String>> {
        match entry.get(key) {
            None => Some(None),
            Some(v) => {
                let t = v.as_str()?.trim();
                (!t.is_empty()).then(|| Some(t.to_owned()))
            }
        }
    };
    let (quote, read) = (text("quote")?, text("read")?);
    // The evidence bar: a refusal names a Sinch source, quotes it and says when it was read.
    if severity == Severity::Error
        && (source == NO_SINCH_SOURCE || quote.is_none() || read.is_none())
    {
        return None;
    }
    Some(Policy {
        severity,
        source: source.to_owned(),
        strict_error,
        quote,
        read,
    })
}

/// JSON Pointer escaping of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Percent-decodes the fragment of a location URI (the validator encodes characters such as `$`).
fn normalize(location: &str) -> String {
    if !location.contains('%') {
        return location.to_owned();
    }
    let bytes = location.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| location.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_without_its_evidence_does_not_load() {
        let ok = serde_json::json!({"severity": "error", "source": "sinch-sdk-java X.java",
            "quote": "Field is required", "read": "2026-12-02"});
        let policy = parse_policy(&ok).map(|p| (p.severity, p.quote, p.read));
        assert_eq!(
            policy,
            Some((
                Severity::Error,
                Some("Field is required".to_owned()),
                Some("2026-12-02".to_owned())
            ))
        );
        for missing in ["quote", "read"] {
            let mut entry = ok.clone();
            entry.as_object_mut().map(|o| o.remove(missing));
            assert!(parse_policy(&entry).is_none(), "{missing}");
        }
        let mut unsourced = ok.clone();
        unsourced["source"] = serde_json::json!(NO_SINCH_SOURCE);
        assert!(parse_policy(&unsourced).is_none());
        // A warning may rest on no Sinch source and quote nothing.
        let warning = serde_json::json!({"severity": "warning", "source": NO_SINCH_SOURCE});
        assert!(parse_policy(&warning).is_some());
    }

    #[test]
    fn percent_decoding_of_locations() {
        assert_eq!(normalize("a#/%24defs/x"), "a#/$defs/x");
        assert_eq!(normalize("a#/plain"), "a#/plain");
        assert_eq!(normalize("a#/bad%zz"), "a#/bad%zz");
        assert_eq!(normalize("a#/end%2"), "a#/end%2");
    }
}
