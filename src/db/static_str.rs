//! Serde for the `&'static str` fields of outbound records (values of small fixed vocabularies):
//! a value read back is interned, so each distinct text is allocated once for the process.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer};

fn intern(text: &str) -> &'static str {
    static SEEN: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let set = seen.get_or_insert_with(HashSet::new);
    if let Some(s) = set.get(text) {
        return s;
    }
    let s: &'static str = Box::leak(text.to_owned().into_boxed_str());
    set.insert(s);
    s
}

/// Reads a text into an interned `&'static str`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
    Ok(intern(&text))
}

/// The same for an optional text.
pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
    let text = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
    Ok(text.map(|t| intern(&t)))
}
