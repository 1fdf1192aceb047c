//! The gate's verdicts, remembered: a reply produced by a stored flow is the same document for
//! every call that reaches the same node with the same inputs, so its schema check and lints need
//! to run once, not once per callback.
//!
//! A [`Memo`] maps a checked document to its [`Report`]. The key is everything the report depends
//! on: the target, the mode, the validator's account limits, the document (compared member by
//! member in order, never by hash alone) and the cookies the call set earlier. The validator's
//! compiled schemas and policies never change once built; a validator with other limits is a
//! different key, so a report is never served for other limits or another mode.
//!
//! The table is direct-mapped (one entry per slot, the newer one wins) and bounded: documents
//! larger than [`MAX_DOC_BYTES`] of text are checked every time and not kept. Each slot has its own
//! read-write lock: nothing global is taken, and a hit shares the slot with readers only.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::{CallContext, Limits, Mode, Report, Target, Validator};

/// Slots of the table (documents kept at most).
pub const SLOTS: usize = 256;

/// Largest document kept, counted as the bytes of its strings and keys (the rest is small).
pub const MAX_DOC_BYTES: usize = 64 * 1024;

struct Entry {
    fingerprint: u64,
    target: Target,
    mode: Mode,
    limits: Limits,
    doc: Value,
    cookies: BTreeMap<String, String>,
    report: Report,
}

/// Remembered reports of checked documents (see the module docs).
pub struct Memo {
    slots: Box<[RwLock<Option<Arc<Entry>>>]>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl fmt::Debug for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memo")
            .field("slots", &self.slots.len())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

impl Default for Memo {
    fn default() -> Self {
        Memo::new()
    }
}

impl Memo {
    /// An empty table of [`SLOTS`] slots.
    pub fn new() -> Memo {
        Memo {
            slots: (0..SLOTS).map(|_| RwLock::new(None)).collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Checks `doc` as [`Validator::check_in_call`] does, answering from the table when the same
    /// document was checked before with the same target, mode, limits and earlier cookies.
    pub fn check_in_call(
        &self,
        validator: &Validator,
        target: Target,
        doc: &Value,
        mode: Mode,
        context: &CallContext,
    ) -> Report {
        let limits = validator.limits();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        target.hash(&mut hasher);
        mode.hash(&mut hasher);
        limits.max_say_chars.hash(&mut hasher);
        context.cookies.hash(&mut hasher);
        let size = hash_value(doc, &mut hasher);
        if size > MAX_DOC_BYTES {
            return validator.check_in_call(target, doc, mode, context);
        }
        let fingerprint = hasher.finish();
        // The slot index: the fingerprint's low bits (SLOTS is a power of two).
        let slot = &self.slots[usize::try_from(fingerprint).unwrap_or(0) % self.slots.len()];
        let kept = slot.read().ok().and_then(|e| e.clone());
        if let Some(entry) = kept.filter(|e| {
            e.fingerprint == fingerprint
                && e.target == target
                && e.mode == mode
                && e.limits == limits
                && e.cookies == context.cookies
                && same_value(&e.doc, doc)
        }) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return entry.report.clone();
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let report = validator.check_in_call(target, doc, mode, context);
        let entry = Arc::new(Entry {
            fingerprint,
            target,
            mode,
            limits,
            doc: doc.clone(),
            cookies: context.cookies.clone(),
            report: report.clone(),
        });
        if let Ok(mut s) = slot.write() {
            *s = Some(entry);
        }
        report
    }

    /// Checks answered from the table.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Checks that ran the validator.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

/// Feeds `v` into `h` (members in their order, each value tagged with its kind); returns the bytes
/// of its strings and keys.
fn hash_value(v: &Value, h: &mut impl Hasher) -> usize {
    match v {
        Value::Null => {
            h.write_u8(0);
            0
        }
        Value::Bool(b) => {
            h.write_u8(1);
            b.hash(h);
            0
        }
        Value::Number(n) => {
            h.write_u8(2);
            if let Some(u) = n.as_u64() {
                h.write_u8(0);
                h.write_u64(u);
            } else if let Some(i) = n.as_i64() {
                h.write_u8(1);
                h.write_i64(i);
            } else if let Some(f) = n.as_f64() {
                h.write_u8(2);
                h.write_u64(f.to_bits());
            }
            0
        }
        Value::String(s) => {
            h.write_u8(3);
            s.hash(h);
            s.len()
        }
        Value::Array(items) => {
            h.write_u8(4);
            h.write_usize(items.len());
            items.iter().map(|i| hash_value(i, h)).sum()
        }
        Value::Object(map) => {
            h.write_u8(5);
            h.write_usize(map.len());
            map.iter()
                .map(|(k, v)| {
                    k.hash(h);
                    k.len() + hash_value(v, h)
                })
                .sum()
        }
    }
}

/// Equality member by member and in order (a document whose members come in another order is
/// another document here, whatever order the map type keeps), numbers by their representation.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs() -> Vec<Value> {
        vec![
            json!({"action": {"name": "hangup"}}),
            json!({"action": {"name": "continue"}}),
            json!({"instructions": [{"name": "say", "text": "Hello", "locale": "en-US"}], "action": {"name": "hangup"}}),
            json!({"instructions": [{"name": "say", "text": "a".repeat(700)}], "action": {"name": "hangup"}}),
            json!({"instructions": [{"name": "Say", "text": "Hi"}], "Action": {"name": "ConnectPstn", "number": "+12025550143", "maxDuration": 99999}}),
            json!({"instructions": [{"name": "setCookie", "key": "k", "value": "v".repeat(600)}], "action": {"name": "hangup"}}),
            json!({"action": {"name": "connectPstn", "number": "+12025550143", "maxDuration": 3600}}),
            json!({"action": {"name": "connectPstn", "number": "+12025550143", "maxDuration": 3600.0}}),
            json!({"action": {"name": "runMenu", "mainMenu": "main", "menus": [{"id": "main", "mainPrompt": "#tts[Press 1]", "options": [{"dtmf": "1", "action": "return(a)"}]}]}}),
            json!({"action": {"name": "runMenu", "menus": []}}),
            json!([1, 2]),
            json!(null),
        ]
    }

    fn contexts() -> Vec<CallContext> {
        let mut big = CallContext::default();
        big.cookies.insert("first".to_owned(), "y".repeat(600));
        vec![CallContext::default(), big]
    }

    #[test]
    fn a_remembered_report_is_the_fresh_one() {
        let validator = Validator::new().unwrap();
        let memo = Memo::new();
        // Twice over every combination: the second round is answered from the table.
        for round in 0..2 {
            for doc in docs() {
                for target in Target::ALL {
                    for mode in [Mode::Normal, Mode::Strict] {
                        for context in contexts() {
                            let fresh = validator.check_in_call(target, &doc, mode, &context);
                            let kept = memo.check_in_call(&validator, target, &doc, mode, &context);
                            assert_eq!(kept, fresh, "round {round}, {target} {mode} {doc}");
                        }
                    }
                }
            }
        }
        assert!(memo.hits() > 0, "{memo:?}");
    }

    #[test]
    fn the_same_document_hits() {
        let validator = Validator::new().unwrap();
        let memo = Memo::new();
        let doc = docs().remove(2);
        let context = CallContext::default();
        let first = memo.check_in_call(&validator, Target::Ice, &doc, Mode::Normal, &context);
        let second = memo.check_in_call(
            &validator,
            Target::Ice,
            &doc.clone(),
            Mode::Normal,
            &context,
        );
        assert_eq!((memo.misses(), memo.hits()), (1, 1));
        assert_eq!(first, second);
    }

    #[test]
    fn other_limits_mode_target_or_cookies_are_checked_again() {
        let default = Validator::new().unwrap();
        let raised = Validator::with_limits(Limits {
            max_say_chars: 1000,
        })
        .unwrap();
        let memo = Memo::new();
        let long = json!({"instructions": [{"name": "say", "text": "a".repeat(700)}], "action": {"name": "hangup"}});
        let none = CallContext::default();
        assert!(
            !memo
                .check_in_call(&default, Target::Ice, &long, Mode::Normal, &none)
                .valid
        );
        // Raised limits: the remembered refusal is not served.
        assert!(
            memo.check_in_call(&raised, Target::Ice, &long, Mode::Normal, &none)
                .valid
        );
        // The default limits' report is still kept beside it (the one hit of this test).
        assert!(
            !memo
                .check_in_call(&default, Target::Ice, &long, Mode::Normal, &none)
                .valid
        );
        // Another mode.
        let casing =
            json!({"instructions": [{"name": "Say", "text": "Hi"}], "action": {"name": "hangup"}});
        assert!(
            memo.check_in_call(&default, Target::Ice, &casing, Mode::Normal, &none)
                .valid
        );
        assert!(
            !memo
                .check_in_call(&default, Target::Ice, &casing, Mode::Strict, &none)
                .valid
        );
        // Another target.
        let cont = json!({"action": {"name": "continue"}});
        assert!(
            memo.check_in_call(&default, Target::Ace, &cont, Mode::Normal, &none)
                .valid
        );
        assert!(
            !memo
                .check_in_call(&default, Target::Ice, &cont, Mode::Normal, &none)
                .valid
        );
        // The call's earlier cookies.
        let cookie = json!({"instructions": [{"name": "setCookie", "key": "k", "value": "v".repeat(600)}], "action": {"name": "hangup"}});
        assert!(
            memo.check_in_call(&default, Target::Pie, &cookie, Mode::Normal, &none)
                .valid
        );
        let mut earlier = CallContext::default();
        earlier.cookies.insert("first".to_owned(), "y".repeat(600));
        assert!(
            !memo
                .check_in_call(&default, Target::Pie, &cookie, Mode::Normal, &earlier)
                .valid
        );
        assert_eq!(memo.hits(), 1, "{memo:?}");
    }

    #[test]
    fn documents_differing_in_one_value_or_order_are_different() {
        let a = json!({"action": {"name": "connectPstn", "number": "+12025550143", "maxDuration": 3600}});
        let b = json!({"action": {"name": "connectPstn", "number": "+12025550143", "maxDuration": 3600.0}});
        let c = json!({"action": {"name": "connectPstn", "number": "+12025550144", "maxDuration": 3600}});
        assert!(same_value(&a, &a.clone()));
        assert!(!same_value(&a, &b) && !same_value(&a, &c));
        assert!(!same_value(&json!([1, 2]), &json!([2, 1])));
        assert!(!same_value(&json!([1]), &json!([1, 1])));
        assert!(!same_value(&json!({"a": null}), &json!({"b": null})));
        assert!(!same_value(&json!("1"), &json!(1)));
    }

    #[test]
    fn large_documents_are_not_kept() {
        let validator = Validator::new().unwrap();
        let memo = Memo::new();
        let doc = json!({"instructions": [{"name": "say", "text": "a".repeat(MAX_DOC_BYTES)}], "action": {"name": "hangup"}});
        let none = CallContext::default();
        for _ in 0..2 {
            let report = memo.check_in_call(&validator, Target::Ice, &doc, Mode::Normal, &none);
            assert_eq!(report, validator.check(Target::Ice, &doc, Mode::Normal));
        }
        assert_eq!((memo.hits(), memo.misses()), (0, 0));
    }
}
