//! Embeds the JSON Schema bundle: every `.json` file under `schemas/` (except the manifest) goes
//! into the binary through a generated list that `src/svaml/schema.rs` includes. A new schema file
//! (a new SVAML action, say) needs no second list. It also has Cargo rebuild when `migrations/`
//! changes (see `main`).

use std::path::{Path, PathBuf};

fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path: PathBuf = entry?.path();
        if path.is_dir() {
            walk(&path, base, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            if let Ok(rel) = path.strip_prefix(base) {
                let rel = rel.to_string_lossy().replace('\\', "/");
                if rel != "bundle.json" {
                    out.push(rel);
                }
            }
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=schemas");
    // `sqlx::migrate!` embeds migrations/ at compile time but does not tell Cargo: a migration
    // added or edited would otherwise leave an older list in the binary.
    println!("cargo:rerun-if-changed=migrations");
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let mut files = Vec::new();
    walk(&base, &base, &mut files)?;
    files.sort();
    let mut list = String::from("&[\n");
    for rel in files {
        list.push_str(&format!(
            "    SchemaFile {{ path: {rel:?}, text: include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/schemas/{rel}\")) }},\n"
        ));
    }
    list.push(']');
    let out = std::env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    std::fs::write(out.join("schema_files.rs"), list)
}
