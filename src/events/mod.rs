//! Typed, lenient models of Sinch Voice v1 callback events (ICE, ACE, DICE, PIE, Notify).
//!
//! [`parse_event`] turns the raw body of a callback into a [`ParsedEvent`]. Only a body that is not
//! JSON, not a JSON object, or lacks a string `event` field is rejected. Everything else is accepted
//! as far as possible:
//!
//! * unknown fields are kept in the `extra` map of the struct they appear in;
//! * the call id is read from `callid` or, failing that, `callId`;
//! * enum values match case-insensitively; unknown values are kept as `Other(String)`;
//! * numbers given as strings (`"15"`) are accepted;
//! * timestamps may carry any number of fraction digits, and may lack a zone (then UTC);
//! * a field of the wrong type becomes `None` (or is coerced where that is harmless, e.g. a number
//!   where a string is expected) and a [`FieldWarning`] naming its JSON pointer is recorded.
//!
//! The body is parsed once into a [`serde_json::Value`] and the fields are moved out of it by small
//! typed helpers (nothing is copied; what no field took is `extra`), so no input can make parsing
//! fail wholesale or panic. The body itself stays with the callback's record, as it arrived.
//!
//! The module's parts: `kind` (which event it is, and what derives from that), `model` (the
//! typed events), and the lenient reader that fills them in.

mod kind;
mod model;
mod reader;

use serde::Serialize;
use serde_json::Value;

use reader::{read_ace, read_dice, read_ice, read_notify, read_pie, Reader};
use time::OffsetDateTime;

pub use kind::{EventKind, MAX_UNKNOWN_EVENT_LEN};
pub use model::*;

/// Why a callback body could not be parsed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body is not valid JSON.
    #[error("malformed JSON at line {line}, column {column}: {detail}")]
    MalformedJson {
        /// 1-based line of the error (0 if unknown, e.g. empty body).
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// Short description of the syntax problem (never contains body text).
        detail: String,
    },
    /// The body is valid JSON but not an object.
    #[error("callback body is not a JSON object")]
    NotAnObject,
    /// The object has no `event` field (or it is `null`).
    #[error("callback body has no \"event\" field")]
    MissingEvent,
    /// The `event` field is not a string.
    #[error("callback \"event\" field is not a string")]
    EventNotString,
}

/// A non-fatal problem with one field of an event: the field was ignored or coerced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldWarning {
    /// JSON pointer of the offending field, e.g. `/userRate` or `/menuResult/value`.
    pub pointer: String,
    /// What was wrong and what was done about it (never contains the field value).
    pub message: String,
}

/// A parsed callback: envelope fields, typed body and warnings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParsedEvent {
    /// The `event` discriminator.
    pub kind: EventKind,
    /// Call id from `callid` (preferred) or `callId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callid: Option<String>,
    /// Application key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_key: Option<String>,
    /// Event time (UTC when the body gave no zone).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub timestamp: Option<OffsetDateTime>,
    /// Event-specific fields.
    pub body: Event,
    /// Fields that were ignored or coerced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<FieldWarning>,
}

impl ParsedEvent {
    /// Whether Sinch interprets a SVAML reply to this event.
    pub fn expects_svaml(&self) -> bool {
        self.kind.expects_svaml()
    }

    /// The `to` destination (ICE: the called number/user; DICE: the destination of the call).
    pub fn to(&self) -> Option<&Destination> {
        match &self.body {
            Event::Ice(e) => e.to.as_ref(),
            Event::Dice(e) => e.to.as_ref(),
            _ => None,
        }
    }

    /// `to.endpoint` of an ICE (the called number) or DICE, as received.
    pub fn to_endpoint(&self) -> Option<&str> {
        self.to().and_then(|d| d.endpoint.as_deref())
    }

    /// The caller as received: ICE `cli`, DICE `from`.
    pub fn caller(&self) -> Option<&str> {
        match &self.body {
            Event::Ice(e) => e.cli.as_deref(),
            Event::Dice(e) => e.from.as_deref(),
            _ => None,
        }
    }

    /// The PIE `menuResult`.
    pub fn menu_result(&self) -> Option<&MenuResult> {
        match &self.body {
            Event::Pie(e) => e.menu_result.as_ref(),
            _ => None,
        }
    }

    /// AMD result (ACE synchronous, Notify asynchronous).
    pub fn amd(&self) -> Option<&Amd> {
        match &self.body {
            Event::Ace(e) => e.amd.as_ref(),
            Event::Notify(e) => e.amd.as_ref(),
            _ => None,
        }
    }

    /// The `custom` field of any event kind.
    pub fn custom(&self) -> Option<&str> {
        match &self.body {
            Event::Ice(e) => e.custom.as_deref(),
            Event::Ace(e) => e.custom.as_deref(),
            Event::Dice(e) => e.custom.as_deref(),
            Event::Pie(e) => e.custom.as_deref(),
            Event::Notify(e) => e.custom.as_deref(),
            Event::Unknown => None,
        }
    }

    /// The `conferenceId` field of any event kind.
    pub fn conference_id(&self) -> Option<&str> {
        match &self.body {
            Event::Ice(e) => e.conference_id.as_deref(),
            Event::Ace(e) => e.conference_id.as_deref(),
            Event::Dice(e) => e.conference_id.as_deref(),
            Event::Pie(e) => e.conference_id.as_deref(),
            Event::Notify(e) => e.conference_id.as_deref(),
            Event::Unknown => None,
        }
    }

    /// The `version` field of any event kind.
    pub fn version(&self) -> Option<i64> {
        match &self.body {
            Event::Ice(e) => e.version,
            Event::Ace(e) => e.version,
            Event::Dice(e) => e.version,
            Event::Pie(e) => e.version,
            Event::Notify(e) => e.version,
            Event::Unknown => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Free helpers
// ---------------------------------------------------------------------------------------------

/// Longest number of digits in an E.164 number.
const MAX_E164_DIGITS: usize = 15;

/// `+` then 2 to 15 digits, the first not 0 (ITU-T E.164): what svamlgate requires of a number it
/// sends (callouts) or routes on.
pub fn is_e164(s: &str) -> bool {
    match s.strip_prefix('+') {
        Some(d) => {
            (2..=MAX_E164_DIGITS).contains(&d.len())
                && d.bytes().all(|b| b.is_ascii_digit())
                && !d.starts_with('0')
        }
        None => false,
    }
}

/// Returns `+digits` when `s` (trimmed) is 1–15 ASCII digits with or without a leading `+`,
/// otherwise `None` (so `"private"`, `"cli number"` and SIP addresses give `None`).
pub fn normalize_msisdn(s: &str) -> Option<String> {
    let t = s.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if digits.is_empty()
        || digits.len() > MAX_E164_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(format!("+{digits}"))
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Envelope fields read by [`parse_event`] itself; never reported as `extra`.
pub(crate) const ENVELOPE_KEYS: [&str; 5] =
    ["event", "callid", "callId", "timestamp", "applicationKey"];

/// Longest `detail` kept in [`EventError::MalformedJson`].
const MAX_DETAIL_LEN: usize = 120;

/// Parses the raw body of a Sinch Voice v1 callback. See the module documentation for the
/// leniency rules; only invalid JSON, a non-object body, or a missing / non-string `event` fail.
pub fn parse_event(body: &[u8]) -> Result<ParsedEvent, EventError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let raw: Value = serde_json::from_slice(body).map_err(|e| EventError::MalformedJson {
        line: e.line(),
        column: e.column(),
        detail: json_error_detail(&e),
    })?;
    parse_value(raw)
}

/// The body of a callback as JSON (a leading byte-order mark skipped, as [`parse_event`] does), for
/// the rare reader that needs the whole document rather than the typed event.
pub fn body_json(body: &[u8]) -> Option<Value> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    serde_json::from_slice(body).ok()
}

/// Reads an event already parsed as JSON (e.g. one inside an admin request), by the same rules as
/// [`parse_event`]. The values are moved out of `raw`, not copied.
pub fn parse_value(raw: Value) -> Result<ParsedEvent, EventError> {
    let Value::Object(mut obj) = raw else {
        return Err(EventError::NotAnObject);
    };
    let kind = match obj.get("event") {
        None | Some(Value::Null) => return Err(EventError::MissingEvent),
        Some(Value::String(s)) => EventKind::parse(s),
        Some(_) => return Err(EventError::EventNotString),
    };

    let mut warnings = Vec::new();
    let mut r = Reader::new(&mut obj, String::new(), &mut warnings);
    let callid = match r.string("callid") {
        Some(id) => {
            if r.has("callId") {
                r.warn("callId", "ignored: \"callid\" takes precedence");
            }
            r.mark("callId");
            Some(id)
        }
        None => r.string("callId"),
    };
    let application_key = r.string("applicationKey");
    let timestamp = r.timestamp("timestamp");
    r.mark("event");

    let body = match kind {
        EventKind::Ice => Event::Ice(read_ice(&mut r)),
        EventKind::Ace => Event::Ace(read_ace(&mut r)),
        EventKind::Dice => Event::Dice(read_dice(&mut r)),
        EventKind::Pie => Event::Pie(read_pie(&mut r)),
        EventKind::Notify => Event::Notify(read_notify(&mut r)),
        EventKind::Unknown(_) => Event::Unknown,
    };

    Ok(ParsedEvent {
        kind,
        callid,
        application_key,
        timestamp,
        body,
        warnings,
    })
}

/// serde_json's message without its " at line L column C" suffix, bounded in length. serde_json
/// syntax errors never quote the input, so this is safe to show.
fn json_error_detail(e: &serde_json::Error) -> String {
    let mut s = e.to_string();
    if let Some(idx) = s.rfind(" at line ") {
        s.truncate(idx);
    }
    if s.chars().count() > MAX_DETAIL_LEN {
        s = s.chars().take(MAX_DETAIL_LEN).collect();
    }
    s
}

#[cfg(test)]
mod tests;
