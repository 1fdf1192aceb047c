//! The lenient reader: typed fields out of one JSON object, with a warning (never a failure) for a
//! field of the wrong type, and every unread key kept as `extra`.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::model::*;
use super::{FieldWarning, ENVELOPE_KEYS};

pub(super) fn read_ice(r: &mut Reader<'_, '_>) -> Ice {
    Ice {
        version: r.int("version"),
        call_resource_url: r.string("callResourceUrl"),
        custom: r.string("custom"),
        user_rate: r.object("userRate", "a price object", read_price),
        cli: r.string("cli"),
        to: r.destination("to"),
        domain: r.string("domain").map(|s| Domain::parse(&s)),
        origination_type: r.string("originationType").map(|s| Domain::parse(&s)),
        duration: r.int("duration"),
        rdnis: r.string("rdnis"),
        call_headers: r.call_headers("callHeaders"),
        conference_id: r.string("conferenceId"),
        user: r.string("user"),
        extra: r.extra(),
    }
}

pub(super) fn read_ace(r: &mut Reader<'_, '_>) -> Ace {
    Ace {
        version: r.int("version"),
        custom: r.string("custom"),
        amd: r.object("amd", "an AMD object", read_amd),
        call_resource_url: r.string("callResourceUrl"),
        conference_id: r.string("conferenceId"),
        user: r.string("user"),
        extra: r.extra(),
    }
}

pub(super) fn read_dice(r: &mut Reader<'_, '_>) -> Dice {
    Dice {
        version: r.int("version"),
        reason: r.string("reason").map(|s| DiceReason::parse(&s)),
        result: r.string("result").map(|s| DiceResult::parse(&s)),
        custom: r.string("custom"),
        debit: r.object("debit", "a price object", read_price),
        user_rate: r.object("userRate", "a price object", read_price),
        to: r.destination("to"),
        duration: r.int("duration"),
        from: r.string("from"),
        call_headers: r.call_headers("callHeaders"),
        conference_id: r.string("conferenceId"),
        user: r.string("user"),
        extra: r.extra(),
    }
}

pub(super) fn read_pie(r: &mut Reader<'_, '_>) -> Pie {
    Pie {
        version: r.int("version"),
        menu_result: r.object("menuResult", "a menuResult object", read_menu_result),
        custom: r.string("custom"),
        conference_id: r.string("conferenceId"),
        extra: r.extra(),
    }
}

pub(super) fn read_notify(r: &mut Reader<'_, '_>) -> Notify {
    Notify {
        version: r.int("version"),
        r#type: r.string("type").map(|s| NotifyType::parse(&s)),
        conference_id: r.string("conferenceId"),
        custom: r.string("custom"),
        destination: r.string("destination"),
        amd: r.object("amd", "an AMD object", read_amd),
        error_code: r.int("errorCode"),
        error_msg: r.string("errorMsg"),
        user: r.string("user"),
        extra: r.extra(),
    }
}

fn read_price(r: &mut Reader<'_, '_>) -> Price {
    Price {
        currency_id: r.string("currencyId"),
        amount: r.float("amount"),
        formatted: r.string("formatted"),
        extra: r.extra(),
    }
}

fn read_amd(r: &mut Reader<'_, '_>) -> Amd {
    Amd {
        status: r.string("status").map(|s| AmdStatus::parse(&s)),
        reason: r.string("reason").map(|s| AmdReason::parse(&s)),
        duration: r.int("duration"),
        extra: r.extra(),
    }
}

fn read_menu_result(r: &mut Reader<'_, '_>) -> MenuResult {
    MenuResult {
        menu_id: r.string("menuId"),
        r#type: r.string("type").map(|s| MenuResultType::parse(&s)),
        value: r.string("value"),
        input_method: r.string("inputMethod").map(|s| InputMethod::parse(&s)),
        extra: r.extra(),
    }
}

fn read_destination(r: &mut Reader<'_, '_>) -> Destination {
    Destination {
        r#type: r.string("type").map(|s| DestinationType::parse(&s)),
        endpoint: r.string("endpoint"),
        extra: r.extra(),
    }
}

fn read_call_header(r: &mut Reader<'_, '_>) -> CallHeader {
    CallHeader {
        key: r.string("key"),
        value: r.string("value"),
        extra: r.extra(),
    }
}

/// JSON type name for warning messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Escapes one JSON pointer reference token (RFC 6901).
pub(super) fn escape_pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Extracts typed fields from one JSON object, recording warnings. Each value read is moved out of
/// the object (no copy); what is left at the end is `extra`.
pub(super) struct Reader<'a, 'w> {
    obj: &'a mut Map<String, Value>,
    /// JSON pointer of `obj` ("" for the root).
    base: String,
    warnings: &'w mut Vec<FieldWarning>,
}

impl<'a, 'w> Reader<'a, 'w> {
    pub(super) fn new(
        obj: &'a mut Map<String, Value>,
        base: String,
        warnings: &'w mut Vec<FieldWarning>,
    ) -> Self {
        Self {
            obj,
            base,
            warnings,
        }
    }

    fn pointer(&self, key: &str) -> String {
        format!("{}/{}", self.base, escape_pointer_token(key))
    }

    pub(super) fn warn(&mut self, key: &str, message: impl Into<String>) {
        let pointer = self.pointer(key);
        self.warnings.push(FieldWarning {
            pointer,
            message: message.into(),
        });
    }

    /// Marks `key` as read: it is not `extra`.
    pub(super) fn mark(&mut self, key: &'static str) {
        self.obj.remove(key);
    }

    pub(super) fn has(&self, key: &str) -> bool {
        !matches!(self.obj.get(key), None | Some(Value::Null))
    }

    /// Marks `key` as read and moves its value out; `null` counts as absent.
    fn take(&mut self, key: &'static str) -> Option<Value> {
        match self.obj.remove(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// A string; numbers and booleans are converted (with a warning), others ignored.
    pub(super) fn string(&mut self, key: &'static str) -> Option<String> {
        match self.take(key)? {
            Value::String(s) => Some(s),
            v @ (Value::Number(_) | Value::Bool(_)) => {
                let msg = format!("expected a string, got {}; converted", type_name(&v));
                self.warn(key, msg);
                Some(v.to_string())
            }
            v => {
                let msg = format!("expected a string, got {}; ignored", type_name(&v));
                self.warn(key, msg);
                None
            }
        }
    }

    /// An integer; numeric strings are accepted, fractional numbers truncated (with a warning).
    fn int(&mut self, key: &'static str) -> Option<i64> {
        let v = self.take(key)?;
        let as_float = match &v {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    return Some(i);
                }
                n.as_f64()
            }
            Value::String(s) => {
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    return Some(i);
                }
                t.parse::<f64>().ok()
            }
            other => {
                let msg = format!("expected an integer, got {}; ignored", type_name(other));
                self.warn(key, msg);
                return None;
            }
        };
        match as_float {
            Some(f) if f.is_finite() && f.abs() < 9.0e18 => {
                if f.fract() != 0.0 {
                    self.warn(
                        key,
                        "expected an integer, got a fractional number; truncated",
                    );
                }
                // In range (checked above), so the conversion is exact up to truncation.
                Some(f.trunc() as i64)
            }
            Some(_) => {
                self.warn(key, "integer out of range; ignored");
                None
            }
            None => {
                self.warn(
                    key,
                    "expected an integer, got a non-numeric string; ignored",
                );
                None
            }
        }
    }

    /// A finite number; numeric strings are accepted.
    fn float(&mut self, key: &'static str) -> Option<f64> {
        let parsed = match self.take(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            other => {
                let msg = format!("expected a number, got {}; ignored", type_name(&other));
                self.warn(key, msg);
                return None;
            }
        };
        match parsed {
            Some(f) if f.is_finite() => Some(f),
            _ => {
                self.warn(key, "expected a finite number; ignored");
                None
            }
        }
    }

    pub(super) fn timestamp(&mut self, key: &'static str) -> Option<OffsetDateTime> {
        match self.take(key)? {
            Value::String(s) => {
                let ts = crate::timestamp::parse(&s);
                if ts.is_none() {
                    self.warn(key, "unrecognised timestamp format; ignored");
                }
                ts
            }
            other => {
                let msg = format!(
                    "expected a timestamp string, got {}; ignored",
                    type_name(&other)
                );
                self.warn(key, msg);
                None
            }
        }
    }

    /// A nested object read with `read`; anything else is ignored with a warning.
    fn object<T>(
        &mut self,
        key: &'static str,
        what: &str,
        read: impl FnOnce(&mut Reader<'_, '_>) -> T,
    ) -> Option<T> {
        match self.take(key)? {
            Value::Object(mut inner) => {
                let base = self.pointer(key);
                let mut sub = Reader::new(&mut inner, base, self.warnings);
                Some(read(&mut sub))
            }
            other => {
                let msg = format!("expected {what}, got {}; ignored", type_name(&other));
                self.warn(key, msg);
                None
            }
        }
    }

    /// A destination object; a bare string is taken as its endpoint (with a warning).
    fn destination(&mut self, key: &'static str) -> Option<Destination> {
        if let Some(Value::String(s)) = self.obj.get_mut(key) {
            let endpoint = std::mem::take(s);
            self.mark(key);
            self.warn(
                key,
                "expected a destination object, got a string; used as endpoint",
            );
            return Some(Destination {
                endpoint: Some(endpoint),
                ..Destination::default()
            });
        }
        self.object(key, "a destination object", read_destination)
    }

    /// An array of call headers; non-object elements are skipped with a warning.
    fn call_headers(&mut self, key: &'static str) -> Option<Vec<CallHeader>> {
        match self.take(key)? {
            Value::Array(items) => {
                let base = self.pointer(key);
                let mut headers = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let item_ptr = format!("{base}/{i}");
                    match item {
                        Value::Object(mut inner) => {
                            let mut sub = Reader::new(&mut inner, item_ptr, self.warnings);
                            headers.push(read_call_header(&mut sub));
                        }
                        other => {
                            self.warnings.push(FieldWarning {
                                pointer: item_ptr,
                                message: format!(
                                    "expected a call header object, got {}; skipped",
                                    type_name(&other)
                                ),
                            });
                        }
                    }
                }
                Some(headers)
            }
            other => {
                let msg = format!("expected an array, got {}; ignored", type_name(&other));
                self.warn(key, msg);
                None
            }
        }
    }

    /// All fields not read so far (envelope keys excluded at the root), moved out.
    fn extra(&mut self) -> Map<String, Value> {
        let mut rest = std::mem::take(self.obj);
        if self.base.is_empty() {
            for key in ENVELOPE_KEYS {
                rest.remove(key);
            }
        }
        rest
    }
}
