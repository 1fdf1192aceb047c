//! Embedded JSON Schema bundle (`schemas/**`, compiled into the binary with `include_str!`) and
//! the validators compiled from it once, through a single offline `jsonschema::Registry`.

use std::sync::OnceLock;

use serde_json::{json, Value};

use super::policy::SchemaPolicies;
use super::{SvamlError, Target};
use crate::events::EventKind;

/// Base URI of every schema `$id`; a file's `$id` is this plus its path below `schemas/`.
pub const SCHEMA_ID_BASE: &str = "https://svamlgate.dev/schemas/";

/// One embedded schema file.
#[derive(Debug, Clone, Copy)]
pub struct SchemaFile {
    /// Path below `schemas/` (also the `$id` suffix).
    pub path: &'static str,
    /// File contents.
    pub text: &'static str,
}

/// Every schema file of the bundle, in path order: the build script (`build.rs`) lists what is
/// under `schemas/`, so adding a file there is all it takes to embed it.
pub static SCHEMA_FILES: &[SchemaFile] = include!(concat!(env!("OUT_DIR"), "/schema_files.rs"));

/// Schema path (below `schemas/`) used for a reply target.
pub fn reply_schema_path(target: Target) -> &'static str {
    match target {
        Target::Ice => "svaml/responses/ice.json",
        Target::Ace => "svaml/responses/ace.json",
        Target::Pie => "svaml/responses/pie.json",
        Target::Manage => "svaml/responses/manage.json",
    }
}

/// The names of the schema files directly under `dir` (e.g. `svaml/actions/`): one per action or
/// instruction, named after it.
pub(crate) fn names_under(dir: &str) -> Vec<&'static str> {
    SCHEMA_FILES
        .iter()
        .filter_map(|f| f.path.strip_prefix(dir)?.strip_suffix(".json"))
        .filter(|name| !name.contains('/'))
        .collect()
}

/// The action and instruction names a reply schema allows (`$defs.action` and
/// `$defs.instruction`, `properties.name.enum`), in the schema's order.
pub(crate) fn reply_names(target: Target) -> (Vec<String>, Vec<String>) {
    let path = reply_schema_path(target);
    let schema: Value = SCHEMA_FILES
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| serde_json::from_str(f.text).ok())
        .unwrap_or(Value::Null);
    let names = |def: &str| -> Vec<String> {
        schema["$defs"][def]["properties"]["name"]["enum"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    (names("action"), names("instruction"))
}

/// The lenient schema of a callback event: its path below `schemas/`, and the report's target.
pub fn event_schema(kind: &EventKind) -> Result<(&'static str, &'static str), SvamlError> {
    Ok(match kind {
        EventKind::Ice => ("events/ice.json", "event:ice"),
        EventKind::Ace => ("events/ace.json", "event:ace"),
        EventKind::Dice => ("events/dice.json", "event:dice"),
        EventKind::Pie => ("events/pie.json", "event:pie"),
        EventKind::Notify => ("events/notify.json", "event:notify"),
        EventKind::Unknown(name) => return Err(SvamlError::UnknownEvent(name.clone())),
    })
}

/// The compiled reply validators (4 targets) and the severity policy of every schema constraint.
/// The event schemas are compiled only when first asked for (the CLI, tests): the reply path
/// never checks events against them.
pub(crate) struct Compiled {
    replies: Vec<jsonschema::Validator>,
    documents: Vec<(String, Value)>,
    events: OnceLock<Vec<(EventKind, jsonschema::Validator)>>,
    policies: SchemaPolicies,
}

impl Compiled {
    pub(crate) fn new() -> Result<Compiled, SvamlError> {
        let mut documents = Vec::with_capacity(SCHEMA_FILES.len());
        for file in SCHEMA_FILES {
            let value: Value =
                serde_json::from_str(file.text).map_err(|e| SvamlError::SchemaJson {
                    path: file.path,
                    message: e.to_string(),
                })?;
            documents.push((format!("{SCHEMA_ID_BASE}{}", file.path), value));
        }
        let policies =
            SchemaPolicies::new(SCHEMA_FILES.iter().zip(documents.iter().map(|(_, v)| v)))
                .map_err(SvamlError::Registry)?;
        let replies = compile(&documents, Target::ALL.map(reply_schema_path).to_vec())?;
        Ok(Compiled {
            replies,
            documents,
            events: OnceLock::new(),
            policies,
        })
    }

    pub(crate) fn policies(&self) -> &SchemaPolicies {
        &self.policies
    }

    pub(crate) fn reply(&self, target: Target) -> &jsonschema::Validator {
        &self.replies[target.index()]
    }

    /// The validator of a callback event's schema, and the report's target.
    pub(crate) fn event(
        &self,
        kind: &EventKind,
    ) -> Result<(&jsonschema::Validator, &'static str), SvamlError> {
        let (_, target) = event_schema(kind)?;
        let events = match self.events.get() {
            Some(events) => events,
            None => {
                let kinds = EventKind::KNOWN;
                let paths = kinds
                    .iter()
                    .map(|k| event_schema(k).map(|(path, _)| path))
                    .collect::<Result<Vec<_>, _>>()?;
                let compiled = compile(&self.documents, paths)?;
                self.events
                    .get_or_init(|| kinds.into_iter().zip(compiled).collect())
            }
        };
        events
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, v)| (v, target))
            .ok_or_else(|| SvamlError::UnknownEvent(kind.to_string()))
    }
}

/// Compiles the schemas at `paths` (below `schemas/`) against one offline registry of the bundle.
fn compile(
    documents: &[(String, Value)],
    paths: Vec<&'static str>,
) -> Result<Vec<jsonschema::Validator>, SvamlError> {
    let registry = jsonschema::Registry::new()
        .extend(documents.iter().map(|(uri, doc)| (uri.as_str(), doc)))
        .and_then(|builder| builder.prepare())
        .map_err(|e| SvamlError::Registry(e.to_string()))?;
    paths
        .into_iter()
        .map(|path| {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .with_registry(&registry)
                .build(&json!({ "$ref": format!("{SCHEMA_ID_BASE}{path}") }))
                .map_err(|e| SvamlError::Compile {
                    path,
                    message: e.to_string(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if rel != "bundle.json" {
                    out.insert(rel);
                }
            }
        }
    }

    /// The bundle manifest (`schemas/bundle.json`: name and version).
    const BUNDLE_MANIFEST: &str =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/bundle.json"));

    #[test]
    fn every_schema_file_is_embedded_and_the_bundle_version_matches() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let mut on_disk = BTreeSet::new();
        walk(&base, &base, &mut on_disk);
        let embedded: BTreeSet<String> = SCHEMA_FILES.iter().map(|f| f.path.to_owned()).collect();
        assert_eq!(embedded.len(), SCHEMA_FILES.len(), "duplicate entries");
        assert_eq!(on_disk, embedded);
        let manifest: Value = serde_json::from_str(BUNDLE_MANIFEST).unwrap();
        assert_eq!(manifest["version"], super::super::SCHEMA_BUNDLE_VERSION);
    }

    #[test]
    fn every_schema_is_valid_against_its_metaschema_and_has_id_title_description() {
        for file in SCHEMA_FILES {
            let schema: Value = serde_json::from_str(file.text).unwrap();
            if let Err(e) = jsonschema::meta::validate(&schema) {
                panic!("{} is not a valid schema: {e}", file.path);
            }
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{}",
                file.path
            );
            assert_eq!(
                schema["$id"],
                format!("{SCHEMA_ID_BASE}{}", file.path),
                "{}",
                file.path
            );
            assert!(schema["title"].is_string(), "{} lacks title", file.path);
            assert!(
                schema["description"].is_string(),
                "{} lacks description",
                file.path
            );
        }
    }

    /// Every name a reply schema allows has its own schema file (a name without one would be
    /// dropped from the target's table).
    #[test]
    fn every_name_a_reply_schema_allows_has_its_schema_file() {
        for target in Target::ALL {
            let file = SCHEMA_FILES
                .iter()
                .find(|f| f.path == reply_schema_path(target))
                .unwrap();
            let schema: Value = serde_json::from_str(file.text).unwrap();
            let names = |def: &str| -> Vec<String> {
                schema["$defs"][def]["properties"]["name"]["enum"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            };
            assert_eq!(names("action"), target.allowed_actions(), "{target}");
            assert_eq!(
                names("instruction"),
                target.allowed_instructions(),
                "{target}"
            );
        }
    }

    /// Every `x-policy` entry sits beside the keyword it judges, and an error names a Sinch source.
    fn check_policies(path: &str, pointer: &str, node: &Value, seen: &mut usize) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Object(entries)) = map.get("x-policy") {
                    for (key, entry) in entries {
                        *seen += 1;
                        let at = format!("{path}#{pointer}/x-policy/{key}");
                        match key.split_once('/') {
                            Some(("required", property)) => assert!(
                                map["required"]
                                    .as_array()
                                    .is_some_and(|r| r.iter().any(|p| p == property)),
                                "{at}: {property} is not in required"
                            ),
                            _ => assert!(map.contains_key(key), "{at}: no keyword {key} beside it"),
                        }
                        let source = entry["source"].as_str().unwrap_or_default();
                        assert!(!source.trim().is_empty(), "{at}: no source");
                        if entry["severity"] == "error" {
                            assert_ne!(source, crate::svaml::policy::NO_SINCH_SOURCE, "{at}");
                        } else {
                            assert_eq!(entry["severity"], "warning", "{at}");
                        }
                    }
                }
                for (key, child) in map {
                    if key != "x-policy" {
                        check_policies(path, &format!("{pointer}/{key}"), child, seen);
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    check_policies(path, &format!("{pointer}/{i}"), child, seen);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn policies_sit_beside_their_keywords_and_every_svaml_schema_names_a_source() {
        let mut seen = 0;
        for file in SCHEMA_FILES {
            let schema: Value = serde_json::from_str(file.text).unwrap();
            check_policies(file.path, "", &schema, &mut seen);
            assert!(
                schema["x-source"].is_string(),
                "{} lacks x-source",
                file.path
            );
        }
        assert!(seen >= 12, "{seen} x-policy entries");
        // Every limit that is an error names its source.
        let compiled = Compiled::new().unwrap();
        let p = compiled.policies().lookup(
            Some("https://svamlgate.dev/schemas/svaml/actions/park.json#/properties/maxDuration/maximum"),
            "maximum",
            None,
        );
        assert_eq!(p.severity, super::super::Severity::Error);
        assert!(p.source.contains("600 seconds"), "{}", p.source);
        let p = compiled.policies().lookup(
            Some("https://svamlgate.dev/schemas/svaml/actions/park.json#/properties/maxDuration/minimum"),
            "minimum",
            None,
        );
        assert_eq!(p.severity, super::super::Severity::Warning);
        assert_eq!(p.source, crate::svaml::policy::NO_SINCH_SOURCE);
        let p = compiled.policies().lookup(
            Some("https://svamlgate.dev/schemas/svaml/instructions/setCookie.json#/required"),
            "required",
            Some("key"),
        );
        assert_eq!(p.severity, super::super::Severity::Warning);
        let p = compiled.policies().lookup(None, "type", None);
        assert_eq!(p.severity, super::super::Severity::Error);
    }

    #[test]
    fn compiles_offline() {
        assert!(Compiled::new().is_ok());
    }
}
