//! Embedded JSON Schema bundle (`schemas/**`, compiled into the binary with `include_str!`) and
//! the validators compiled from it once, through a single offline `jsonschema::Registry`.

use serde_json::{json, Value};

use super::{EventSchema, SvamlError, Target};

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

macro_rules! embed_schemas {
    ($($path:literal),* $(,)?) => {
        &[$(SchemaFile {
            path: $path,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/", $path)),
        }),*]
    };
}

/// Every schema file of the bundle. Adding a file to `schemas/` without listing it here (and in
/// `schemas/bundle.json`) fails the `every_schema_file_is_embedded` test.
pub static SCHEMA_FILES: &[SchemaFile] = embed_schemas!(
    "events/ace.json",
    "events/defs.json",
    "events/dice.json",
    "events/ice.json",
    "events/notify.json",
    "events/pie.json",
    "svaml/actions/connectConf.json",
    "svaml/actions/connectMxp.json",
    "svaml/actions/connectPstn.json",
    "svaml/actions/connectSip.json",
    "svaml/actions/connectStream.json",
    "svaml/actions/continue.json",
    "svaml/actions/hangup.json",
    "svaml/actions/park.json",
    "svaml/actions/runMenu.json",
    "svaml/defs.json",
    "svaml/instructions/answer.json",
    "svaml/instructions/playFiles.json",
    "svaml/instructions/say.json",
    "svaml/instructions/sendDtmf.json",
    "svaml/instructions/setCookie.json",
    "svaml/instructions/startRecording.json",
    "svaml/instructions/stopRecording.json",
    "svaml/responses/ace.json",
    "svaml/responses/ice.json",
    "svaml/responses/manage.json",
    "svaml/responses/pie.json",
);

/// The bundle manifest (`schemas/bundle.json`: version and file list).
pub const BUNDLE_MANIFEST: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/bundle.json"));

/// Schema path (below `schemas/`) used for a reply target.
pub fn reply_schema_path(target: Target) -> &'static str {
    match target {
        Target::Ice => "svaml/responses/ice.json",
        Target::Ace => "svaml/responses/ace.json",
        Target::Pie => "svaml/responses/pie.json",
        Target::Manage => "svaml/responses/manage.json",
    }
}

/// Schema path (below `schemas/`) used for an inbound event.
pub fn event_schema_path(kind: EventSchema) -> &'static str {
    match kind {
        EventSchema::Ice => "events/ice.json",
        EventSchema::Ace => "events/ace.json",
        EventSchema::Dice => "events/dice.json",
        EventSchema::Pie => "events/pie.json",
        EventSchema::Notify => "events/notify.json",
    }
}

/// All compiled validators (4 reply targets, 5 inbound events).
pub(crate) struct Compiled {
    replies: Vec<jsonschema::Validator>,
    events: Vec<jsonschema::Validator>,
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
        let registry = jsonschema::Registry::new()
            .extend(documents.iter().map(|(uri, doc)| (uri.as_str(), doc)))
            .and_then(|builder| builder.prepare())
            .map_err(|e| SvamlError::Registry(e.to_string()))?;
        let build = |path: &'static str| {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .with_registry(&registry)
                .build(&json!({ "$ref": format!("{SCHEMA_ID_BASE}{path}") }))
                .map_err(|e| SvamlError::Compile {
                    path,
                    message: e.to_string(),
                })
        };
        let replies = Target::ALL
            .into_iter()
            .map(|t| build(reply_schema_path(t)))
            .collect::<Result<Vec<_>, _>>()?;
        let events = EventSchema::ALL
            .into_iter()
            .map(|k| build(event_schema_path(k)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Compiled { replies, events })
    }

    pub(crate) fn reply(&self, target: Target) -> &jsonschema::Validator {
        &self.replies[target.index()]
    }

    pub(crate) fn event(&self, kind: EventSchema) -> &jsonschema::Validator {
        &self.events[kind.index()]
    }
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

    #[test]
    fn every_schema_file_is_embedded_and_listed_in_bundle() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let mut on_disk = BTreeSet::new();
        walk(&base, &base, &mut on_disk);
        let embedded: BTreeSet<String> = SCHEMA_FILES.iter().map(|f| f.path.to_owned()).collect();
        assert_eq!(embedded.len(), SCHEMA_FILES.len(), "duplicate entries");
        assert_eq!(on_disk, embedded);
        let manifest: Value = serde_json::from_str(BUNDLE_MANIFEST).unwrap();
        let listed: BTreeSet<String> = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, embedded);
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

    #[test]
    fn reply_schemas_list_the_same_names_as_target_tables() {
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

    #[test]
    fn compiles_offline() {
        assert!(Compiled::new().is_ok());
    }
}
