//! Severity policy of schema constraints.
//!
//! A reply is refused (error) only where a Sinch source says Sinch rejects it: a type, a `required`,
//! an enum or a limit in Sinch's API description or docs, or the per-event table. Everything else
//! is a warning: the reply goes out, and the warning is recorded and counted.
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
//! emits). `x-source` on a schema object names the source of everything below it that has no entry
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

/// The verdict on one schema constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Error or warning in normal mode.
    pub severity: Severity,
    /// Doc page or SDK file the verdict rests on.
    pub source: String,
    /// Whether strict mode promotes a warning to an error.
    pub strict_error: bool,
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
                            format!("{base}{pointer}/x-policy/{key} is malformed")
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
    Some(Policy {
        severity,
        source: source.to_owned(),
        strict_error,
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
    fn percent_decoding_of_locations() {
        assert_eq!(normalize("a#/%24defs/x"), "a#/$defs/x");
        assert_eq!(normalize("a#/plain"), "a#/plain");
        assert_eq!(normalize("a#/bad%zz"), "a#/bad%zz");
        assert_eq!(normalize("a#/end%2"), "a#/end%2");
    }
}
