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
//! The body is first parsed into a [`serde_json::Value`] and the fields are extracted with small
//! typed helpers, so no input can make parsing fail wholesale or panic.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Longest event name kept verbatim in [`EventKind::Unknown`] (in characters).
pub const MAX_UNKNOWN_EVENT_LEN: usize = 64;

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

// ---------------------------------------------------------------------------------------------
// Event kind
// ---------------------------------------------------------------------------------------------

/// The `event` discriminator of a callback.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Incoming Call Event.
    Ice,
    /// Answered Call Event.
    Ace,
    /// Disconnected Call Event.
    Dice,
    /// Prompt Input Event.
    Pie,
    /// Notification Event.
    Notify,
    /// Any other value, kept as given (truncated to [`MAX_UNKNOWN_EVENT_LEN`] characters).
    Unknown(String),
}

impl EventKind {
    /// Parses an event name case-insensitively (surrounding whitespace ignored).
    pub fn parse(name: &str) -> Self {
        let t = name.trim();
        if t.eq_ignore_ascii_case("ice") {
            Self::Ice
        } else if t.eq_ignore_ascii_case("ace") {
            Self::Ace
        } else if t.eq_ignore_ascii_case("dice") {
            Self::Dice
        } else if t.eq_ignore_ascii_case("pie") {
            Self::Pie
        } else if t.eq_ignore_ascii_case("notify") {
            Self::Notify
        } else {
            Self::Unknown(name.chars().take(MAX_UNKNOWN_EVENT_LEN).collect())
        }
    }

    /// Lower-case name (`"ice"`, …); unknown kinds return the (truncated) name as received.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ice => "ice",
            Self::Ace => "ace",
            Self::Dice => "dice",
            Self::Pie => "pie",
            Self::Notify => "notify",
            Self::Unknown(s) => s,
        }
    }

    /// Whether Sinch interprets a SVAML reply to this event (ICE, ACE, PIE).
    pub fn expects_svaml(&self) -> bool {
        matches!(self, Self::Ice | Self::Ace | Self::Pie)
    }
}

impl From<&str> for EventKind {
    fn from(name: &str) -> Self {
        Self::parse(name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Open enums
// ---------------------------------------------------------------------------------------------

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $canon:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value outside the known set, kept as received.
            Other(String),
        }

        impl $name {
            /// Parses a value case-insensitively; unknown values become `Other`.
            pub fn parse(value: &str) -> Self {
                let t = value.trim();
                $(
                    if t.eq_ignore_ascii_case($canon) $(|| t.eq_ignore_ascii_case($alias))* {
                        return Self::$variant;
                    }
                )+
                Self::Other(value.to_owned())
            }

            /// Canonical spelling of the value (as received for `Other`).
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $canon, )+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::parse(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

open_enum! {
    /// `type` of a destination (`to` object).
    DestinationType {
        /// PSTN phone number.
        Number => "number",
        /// In-app (data) user id.
        Username => "username",
        /// SIP address.
        Sip => "sip",
        /// The Sinch number that was called (inbound PSTN).
        Did => "did",
        /// Streaming endpoint.
        Websocket => "websocket",
        /// Legacy: conference.
        Conference => "conference",
    }
}

open_enum! {
    /// `domain` / `originationType` of an ICE.
    Domain {
        /// Public switched telephone network.
        Pstn => "pstn",
        /// In-app (data) call.
        Mxp => "mxp",
        /// Legacy: conference.
        Conference => "conference",
        /// Legacy origination type: SIP.
        Sip => "sip",
        /// Legacy origination type: server.
        Server => "server",
    }
}

open_enum! {
    /// `amd.status`: answering machine detection verdict.
    AmdStatus {
        /// A machine answered.
        Machine => "machine",
        /// A human answered.
        Human => "human",
        /// Detection was inconclusive.
        NotSure => "notsure",
        /// The call was hung up during detection.
        Hangup => "hangup",
    }
}

open_enum! {
    /// `amd.reason`: why the AMD verdict was reached.
    AmdReason {
        /// Long greeting.
        LongGreeting => "longgreeting",
        /// Silence at the start.
        InitialSilence => "initialsilence",
        /// A beep was heard.
        Beep => "beep",
        /// Greeting (Node SDK only).
        Greeting => "greeting",
        /// Not applicable.
        NotApplicable => "n/a",
    }
}

open_enum! {
    /// DICE `reason` (union of all SDK and documentation values).
    DiceReason {
        /// Not applicable.
        NotApplicable => "N/A",
        /// Call was established.
        Established => "ESTABLISHED",
        /// Another peer answered.
        OtherPeerAnswered => "OTHERPEERANSWERED",
        /// Timed out.
        Timeout => "TIMEOUT",
        /// The caller hung up.
        CallerHangup => "CALLERHANGUP",
        /// The callee hung up.
        CalleeHangup => "CALLEEHANGUP",
        /// Blocked.
        Blocked => "BLOCKED",
        /// Hung up by the manager (API / SVAML).
        ManagerHangup => "MANAGERHANGUP",
        /// Partner has no credit.
        NoCreditPartner => "NOCREDITPARTNER",
        /// Client network problem.
        ClientNetwork => "CLIENTNETWORK",
        /// Network congestion.
        Congestion => "CONGESTION",
        /// General error.
        GeneralError => "GENERALERROR",
        /// Cancelled.
        Cancel => "CANCEL",
        /// User not found.
        UserNotFound => "USERNOTFOUND",
        /// Callback error.
        CallbackError => "CALLBACKERROR",
        /// Busy (listed by some documentation only).
        Busy => "BUSY",
        /// No answer (listed by some documentation only).
        NoAnswer => "NOANSWER",
    }
}

open_enum! {
    /// DICE `result`.
    DiceResult {
        /// Not applicable.
        NotApplicable => "N/A",
        /// The call was answered.
        Answered => "ANSWERED",
        /// The callee was busy.
        Busy => "BUSY",
        /// No answer.
        NoAnswer => "NOANSWER",
        /// The call failed.
        Failed => "FAILED",
    }
}

open_enum! {
    /// PIE `menuResult.type`.
    MenuResultType {
        /// Error with the input.
        Error => "error",
        /// A `return(...)` option fired.
        Return => "return",
        /// DTMF digits were collected.
        Sequence => "sequence",
        /// The timeout elapsed.
        Timeout => "timeout",
        /// The call was hung up.
        Hangup => "hangup",
        /// The input was invalid.
        InvalidInput => "invalidinput",
    }
}

open_enum! {
    /// PIE `menuResult.inputMethod`.
    InputMethod {
        /// Keypad digits.
        Dtmf => "dtmf",
        /// Speech.
        Voice => "voice",
    }
}

open_enum! {
    /// Notify `type` (an open set).
    NotifyType {
        /// A recording finished.
        RecordingFinished => "recording_finished",
        /// A recording file is available.
        RecordingAvailable => "recording_available",
        /// A transcription is available.
        TranscriptionAvailable => "transcription_available",
        /// Asynchronous AMD result.
        Amd => "amd",
        /// Asynchronous AMD beep.
        AmdBeep => "amd_beep",
        /// Calling error (`errorCode`, `errorMsg`).
        CallingError => "callingerror",
    }
}

// ---------------------------------------------------------------------------------------------
// Common types
// ---------------------------------------------------------------------------------------------

/// A destination (`to` object): `{ "type": ..., "endpoint": ... }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Kind of endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<DestinationType>,
    /// Phone number, user id, SIP address, … as received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Unknown fields, kept.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl Destination {
    /// The endpoint as `+digits` when it is a phone number (with or without `+`) and the type does
    /// not say otherwise (username, SIP and websocket endpoints give `None`).
    pub fn e164(&self) -> Option<String> {
        match self.r#type {
            Some(DestinationType::Username)
            | Some(DestinationType::Sip)
            | Some(DestinationType::Websocket) => None,
            _ => self.endpoint.as_deref().and_then(normalize_msisdn),
        }
    }
}

/// Money (`userRate`, `debit`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// ISO 4217 currency code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency_id: Option<String>,
    /// Amount (finite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    /// Legacy pre-formatted amount, e.g. `"$10.25"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// Unknown fields, kept.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A call header `{ "key": ..., "value": ... }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallHeader {
    /// Header name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Header value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Unknown fields, kept.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// Answering machine detection result (`amd`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Amd {
    /// Verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<AmdStatus>,
    /// Reason for the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<AmdReason>,
    /// Duration (unit not authoritatively documented).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    /// Unknown fields, kept.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// PIE `menuResult`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MenuResult {
    /// Id of the menu that triggered the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub menu_id: Option<String>,
    /// What happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<MenuResultType>,
    /// `return(...)` argument or collected digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// How the input was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_method: Option<InputMethod>,
    /// Unknown fields (e.g. `addToContext`), kept.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------
//
// The envelope fields `event`, `callid`/`callId`, `timestamp` and `applicationKey` live on
// `ParsedEvent`; the structs below hold every other field of their event.

/// Incoming Call Event.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ice {
    /// API version (always 1 in practice).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Path of the call's API resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_resource_url: Option<String>,
    /// Custom information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<String>,
    /// Rate for the call to the original destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_rate: Option<Price>,
    /// Caller id as received (often without `+`, or `private`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli: Option<String>,
    /// Called destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Destination>,
    /// Where the call is to be terminated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
    /// Where the call came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origination_type: Option<Domain>,
    /// Duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    /// Redirected dialled number id (may be empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdnis: Option<String>,
    /// Headers from the calling SDK client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_headers: Option<Vec<CallHeader>>,
    /// Conference id, in some cases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conference_id: Option<String>,
    /// Legacy: user id that initiated the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Unknown fields, kept.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// Answered Call Event.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ace {
    /// API version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Custom information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<String>,
    /// Synchronous AMD result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amd: Option<Amd>,
    /// Path of the call's API resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_resource_url: Option<String>,
    /// Conference id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conference_id: Option<String>,
    /// Legacy user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Unknown fields, kept.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// Disconnected Call Event.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dice {
    /// API version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Why the call ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<DiceReason>,
    /// Outcome of the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<DiceResult>,
    /// Custom information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<String>,
    /// Total amount charged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debit: Option<Price>,
    /// Per-minute rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_rate: Option<Price>,
    /// Destination of the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Destination>,
    /// Duration in seconds (absent when not answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    /// Initiator as received (may be `private`, often without `+`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Call headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_headers: Option<Vec<CallHeader>>,
    /// Conference id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conference_id: Option<String>,
    /// Legacy user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Unknown fields, kept.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// Prompt Input Event.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pie {
    /// API version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Menu outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub menu_result: Option<MenuResult>,
    /// Custom information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<String>,
    /// Conference id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conference_id: Option<String>,
    /// Unknown fields, kept.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// Notification Event.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notify {
    /// API version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Kind of notification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<NotifyType>,
    /// Conference id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conference_id: Option<String>,
    /// Notification-specific information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<String>,
    /// URL of a recording / transcription file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Asynchronous AMD result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amd: Option<Amd>,
    /// Error code (`callingerror` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// Error message (`callingerror` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
    /// Legacy user id (`callingerror` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Unknown fields, kept.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// The event-specific part of a callback. Serializes as the inner struct (`null` for `Unknown`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Event {
    /// Incoming Call Event.
    Ice(Ice),
    /// Answered Call Event.
    Ace(Ace),
    /// Disconnected Call Event.
    Dice(Dice),
    /// Prompt Input Event.
    Pie(Pie),
    /// Notification Event.
    Notify(Notify),
    /// Unknown event kind: only the envelope and `raw` are available.
    Unknown,
}

/// A parsed callback: envelope fields, typed body, warnings, and the raw JSON.
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
    /// The whole body as received (not serialized; show it separately, masked if needed).
    #[serde(skip)]
    pub raw: Value,
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
const ENVELOPE_KEYS: [&str; 5] = ["event", "callid", "callId", "timestamp", "applicationKey"];

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
    let obj = raw.as_object().ok_or(EventError::NotAnObject)?;
    let kind = match obj.get("event") {
        None | Some(Value::Null) => return Err(EventError::MissingEvent),
        Some(Value::String(s)) => EventKind::parse(s),
        Some(_) => return Err(EventError::EventNotString),
    };

    let mut warnings = Vec::new();
    let mut r = Reader::new(obj, String::new(), &mut warnings);
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
        raw,
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

fn read_ice(r: &mut Reader<'_, '_>) -> Ice {
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

fn read_ace(r: &mut Reader<'_, '_>) -> Ace {
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

fn read_dice(r: &mut Reader<'_, '_>) -> Dice {
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

fn read_pie(r: &mut Reader<'_, '_>) -> Pie {
    Pie {
        version: r.int("version"),
        menu_result: r.object("menuResult", "a menuResult object", read_menu_result),
        custom: r.string("custom"),
        conference_id: r.string("conferenceId"),
        extra: r.extra(),
    }
}

fn read_notify(r: &mut Reader<'_, '_>) -> Notify {
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
fn escape_pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Extracts typed fields from one JSON object, recording warnings and which keys were read.
struct Reader<'a, 'w> {
    obj: &'a Map<String, Value>,
    /// JSON pointer of `obj` ("" for the root).
    base: String,
    /// Keys consumed so far (everything else ends up in `extra`).
    known: Vec<&'static str>,
    warnings: &'w mut Vec<FieldWarning>,
}

impl<'a, 'w> Reader<'a, 'w> {
    fn new(obj: &'a Map<String, Value>, base: String, warnings: &'w mut Vec<FieldWarning>) -> Self {
        Self {
            obj,
            base,
            known: Vec::new(),
            warnings,
        }
    }

    fn pointer(&self, key: &str) -> String {
        format!("{}/{}", self.base, escape_pointer_token(key))
    }

    fn warn(&mut self, key: &str, message: impl Into<String>) {
        let pointer = self.pointer(key);
        self.warnings.push(FieldWarning {
            pointer,
            message: message.into(),
        });
    }

    fn mark(&mut self, key: &'static str) {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
    }

    fn has(&self, key: &str) -> bool {
        !matches!(self.obj.get(key), None | Some(Value::Null))
    }

    /// Marks `key` as known and returns its value; `null` counts as absent.
    fn take(&mut self, key: &'static str) -> Option<&'a Value> {
        self.mark(key);
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// A string; numbers and booleans are converted (with a warning), others ignored.
    fn string(&mut self, key: &'static str) -> Option<String> {
        match self.take(key)? {
            Value::String(s) => Some(s.clone()),
            v @ (Value::Number(_) | Value::Bool(_)) => {
                let msg = format!("expected a string, got {}; converted", type_name(v));
                self.warn(key, msg);
                Some(v.to_string())
            }
            v => {
                let msg = format!("expected a string, got {}; ignored", type_name(v));
                self.warn(key, msg);
                None
            }
        }
    }

    /// An integer; numeric strings are accepted, fractional numbers truncated (with a warning).
    fn int(&mut self, key: &'static str) -> Option<i64> {
        let v = self.take(key)?;
        let as_float = match v {
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
                let msg = format!("expected a number, got {}; ignored", type_name(other));
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

    fn timestamp(&mut self, key: &'static str) -> Option<OffsetDateTime> {
        match self.take(key)? {
            Value::String(s) => {
                let ts = crate::timestamp::parse(s);
                if ts.is_none() {
                    self.warn(key, "unrecognised timestamp format; ignored");
                }
                ts
            }
            other => {
                let msg = format!(
                    "expected a timestamp string, got {}; ignored",
                    type_name(other)
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
            Value::Object(inner) => {
                let base = self.pointer(key);
                let mut sub = Reader::new(inner, base, self.warnings);
                Some(read(&mut sub))
            }
            other => {
                let msg = format!("expected {what}, got {}; ignored", type_name(other));
                self.warn(key, msg);
                None
            }
        }
    }

    /// A destination object; a bare string is taken as its endpoint (with a warning).
    fn destination(&mut self, key: &'static str) -> Option<Destination> {
        if let Some(Value::String(s)) = self.obj.get(key) {
            self.mark(key);
            self.warn(
                key,
                "expected a destination object, got a string; used as endpoint",
            );
            return Some(Destination {
                endpoint: Some(s.clone()),
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
                for (i, item) in items.iter().enumerate() {
                    let item_ptr = format!("{base}/{i}");
                    match item {
                        Value::Object(inner) => {
                            let mut sub = Reader::new(inner, item_ptr, self.warnings);
                            headers.push(read_call_header(&mut sub));
                        }
                        other => {
                            self.warnings.push(FieldWarning {
                                pointer: item_ptr,
                                message: format!(
                                    "expected a call header object, got {}; skipped",
                                    type_name(other)
                                ),
                            });
                        }
                    }
                }
                Some(headers)
            }
            other => {
                let msg = format!("expected an array, got {}; ignored", type_name(other));
                self.warn(key, msg);
                None
            }
        }
    }

    /// All fields not read so far (envelope keys excluded at the root).
    fn extra(&self) -> Map<String, Value> {
        let root = self.base.is_empty();
        self.obj
            .iter()
            .filter(|(k, _)| !self.known.contains(&k.as_str()))
            .filter(|(k, _)| !(root && ENVELOPE_KEYS.contains(&k.as_str())))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use time::macros::datetime;

    const ICE_JAVA: &str = include_str!("../tests/fixtures/sinch/ice-java-sdk-1.json");
    const ICE_NODE: &str = include_str!("../tests/fixtures/sinch/ice-node-sdk-1.json");
    const ICE_NUGET: &str = include_str!("../tests/fixtures/sinch/ice-nuget-serversdk-1.json");
    const ACE_JAVA: &str = include_str!("../tests/fixtures/sinch/ace-java-sdk-1.json");
    const ACE_DOCS: &str = include_str!("../tests/fixtures/sinch/ace-sinch-docs-signing-1.json");
    const DICE_DOTNET: &str = include_str!("../tests/fixtures/sinch/dice-dotnet-sdk-1.json");
    const DICE_JAVA: &str = include_str!("../tests/fixtures/sinch/dice-java-sdk-1.json");
    const PIE_JAVA: &str = include_str!("../tests/fixtures/sinch/pie-java-sdk-1.json");
    const PIE_NODE: &str = include_str!("../tests/fixtures/sinch/pie-node-sdk-1.json");
    const NOTIFY_JAVA: &str = include_str!("../tests/fixtures/sinch/notify-java-sdk-1.json");

    fn parse(s: &str) -> ParsedEvent {
        parse_event(s.as_bytes()).unwrap()
    }

    fn parse_json(v: Value) -> ParsedEvent {
        parse_event(v.to_string().as_bytes()).unwrap()
    }

    fn ice(p: &ParsedEvent) -> &Ice {
        match &p.body {
            Event::Ice(e) => e,
            other => panic!("not an ICE: {other:?}"),
        }
    }

    fn dice(p: &ParsedEvent) -> &Dice {
        match &p.body {
            Event::Dice(e) => e,
            other => panic!("not a DICE: {other:?}"),
        }
    }

    fn ace(p: &ParsedEvent) -> &Ace {
        match &p.body {
            Event::Ace(e) => e,
            other => panic!("not an ACE: {other:?}"),
        }
    }

    fn pie(p: &ParsedEvent) -> &Pie {
        match &p.body {
            Event::Pie(e) => e,
            other => panic!("not a PIE: {other:?}"),
        }
    }

    fn notify(p: &ParsedEvent) -> &Notify {
        match &p.body {
            Event::Notify(e) => e,
            other => panic!("not a Notify: {other:?}"),
        }
    }

    fn pointers(p: &ParsedEvent) -> Vec<&str> {
        p.warnings.iter().map(|w| w.pointer.as_str()).collect()
    }

    // ----- fixtures -------------------------------------------------------------------------

    #[test]
    fn fixture_ice_java() {
        let p = parse(ICE_JAVA);
        assert_eq!(p.kind, EventKind::Ice);
        assert_eq!(p.callid.as_deref(), Some("a call id"));
        assert_eq!(p.application_key.as_deref(), Some("an app key"));
        assert_eq!(p.timestamp, Some(datetime!(2024-01-16 16:46:36 UTC)));
        assert!(p.warnings.is_empty());
        let e = ice(&p);
        assert_eq!(e.version, Some(1));
        assert_eq!(e.conference_id.as_deref(), Some("a conference id"));
        assert_eq!(
            e.call_resource_url.as_deref(),
            Some("https://calling-euc1.api.sinch.com/calling/v1/calls/id/a call id")
        );
        assert_eq!(e.custom.as_deref(), Some("my custom"));
        assert_eq!(
            e.user_rate,
            Some(Price {
                currency_id: Some("USD".into()),
                amount: Some(0.0),
                ..Price::default()
            })
        );
        assert_eq!(e.cli.as_deref(), Some("cli number"));
        let to = e.to.as_ref().unwrap();
        assert_eq!(to.r#type, Some(DestinationType::Number));
        assert_eq!(to.endpoint.as_deref(), Some("+123456879"));
        assert_eq!(to.e164().as_deref(), Some("+123456879"));
        assert_eq!(e.domain, Some(Domain::Mxp));
        assert_eq!(e.origination_type, Some(Domain::Mxp));
        assert_eq!(e.rdnis.as_deref(), Some("rdnis value"));
        assert_eq!(
            e.call_headers,
            Some(vec![CallHeader {
                key: Some("the key".into()),
                value: Some("the value".into()),
                ..CallHeader::default()
            }])
        );
        assert!(e.extra.is_empty());
        assert_eq!(p.caller(), Some("cli number"));
        assert_eq!(p.caller().and_then(normalize_msisdn), None);
        assert_eq!(p.to_endpoint(), Some("+123456879"));
        assert_eq!(p.custom(), Some("my custom"));
        assert_eq!(p.conference_id(), Some("a conference id"));
        assert_eq!(p.version(), Some(1));
        assert!(p.expects_svaml());
    }

    #[test]
    fn fixture_ice_node() {
        let p = parse(ICE_NODE);
        assert_eq!(p.kind, EventKind::Ice);
        assert_eq!(p.callid.as_deref(), Some("callId"));
        assert_eq!(p.timestamp, Some(datetime!(2023-12-29 15:07:22 UTC)));
        assert!(p.warnings.is_empty());
        let e = ice(&p);
        assert_eq!(e.cli.as_deref(), Some("1234567890"));
        assert_eq!(e.to.as_ref().unwrap().r#type, Some(DestinationType::Did));
        assert_eq!(p.to_endpoint(), Some("+1234567770"));
        assert_eq!(e.domain, Some(Domain::Pstn));
        assert_eq!(e.origination_type, Some(Domain::Pstn));
        assert_eq!(e.rdnis.as_deref(), Some(""));
        assert_eq!(e.call_headers, None);
        assert_eq!(e.user_rate, None);
    }

    #[test]
    fn fixture_ice_nuget() {
        let p = parse(ICE_NUGET);
        assert_eq!(p.kind, EventKind::Ice);
        assert_eq!(
            p.callid.as_deref(),
            Some("241b8ab35e0e83814c4e775a66cf50db@193.45.63.102")
        );
        assert_eq!(
            p.application_key.as_deref(),
            Some("94983f76-12c8-4cb9-9515-4785c7b49ca8")
        );
        assert_eq!(p.timestamp, Some(datetime!(2015-08-06 13:55:39 UTC)));
        let e = ice(&p);
        assert_eq!(e.cli.as_deref(), Some("46708168731"));
        assert_eq!(
            p.caller().and_then(normalize_msisdn).as_deref(),
            Some("+46708168731")
        );
        assert_eq!(
            e.to.as_ref().and_then(Destination::e164).as_deref(),
            Some("+462010000188")
        );
        assert_eq!(e.duration, Some(0));
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn fixture_ace_java() {
        let p = parse(ACE_JAVA);
        assert_eq!(p.kind, EventKind::Ace);
        assert_eq!(p.callid.as_deref(), Some("a call id"));
        assert_eq!(p.application_key.as_deref(), Some("my application key"));
        assert_eq!(p.timestamp, Some(datetime!(2024-01-19 12:49:53 UTC)));
        let e = ace(&p);
        assert_eq!(e.custom.as_deref(), Some("my custom value"));
        assert_eq!(
            e.amd,
            Some(Amd {
                status: Some(AmdStatus::Human),
                reason: Some(AmdReason::LongGreeting),
                duration: Some(15),
                ..Amd::default()
            })
        );
        assert_eq!(p.amd().and_then(|a| a.duration), Some(15));
        assert!(p.expects_svaml());
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn fixture_ace_docs() {
        let p = parse(ACE_DOCS);
        assert_eq!(p.kind, EventKind::Ace);
        assert_eq!(
            p.callid.as_deref(),
            Some("822aa4b7-05b4-4d83-87c7-1f835ee0b6f6_257")
        );
        assert_eq!(p.timestamp, Some(datetime!(2014-09-24 10:59:41 UTC)));
        assert_eq!(p.application_key, None);
        assert_eq!(
            ace(&p),
            &Ace {
                version: Some(1),
                ..Ace::default()
            }
        );
    }

    #[test]
    fn fixture_dice_dotnet_and_java() {
        for (src, ty) in [(DICE_DOTNET, "Number"), (DICE_JAVA, "number")] {
            let p = parse(src);
            assert_eq!(p.kind, EventKind::Dice);
            assert_eq!(p.callid.as_deref(), Some("a call id"));
            assert_eq!(p.timestamp, Some(datetime!(2024-01-19 12:49:53 UTC)));
            assert!(!p.expects_svaml());
            let e = dice(&p);
            assert_eq!(e.reason, Some(DiceReason::ManagerHangup));
            assert_eq!(e.result, Some(DiceResult::Answered));
            assert_eq!(e.debit.as_ref().and_then(|d| d.amount), Some(0.1758));
            assert_eq!(
                e.debit.as_ref().and_then(|d| d.currency_id.as_deref()),
                Some("EUR")
            );
            assert_eq!(e.user_rate.as_ref().and_then(|d| d.amount), Some(0.345));
            let to = e.to.as_ref().unwrap();
            assert_eq!(to.r#type, Some(DestinationType::Number), "type {ty}");
            assert_eq!(to.endpoint.as_deref(), Some("123456789"));
            assert_eq!(to.e164().as_deref(), Some("+123456789"));
            assert_eq!(e.duration, Some(1));
            assert_eq!(e.from.as_deref(), Some("private"));
            assert_eq!(p.caller(), Some("private"));
            assert_eq!(p.caller().and_then(normalize_msisdn), None);
            assert_eq!(p.to_endpoint(), Some("123456789"));
            assert_eq!(e.conference_id.as_deref(), Some("a conference id"));
            assert!(p.warnings.is_empty());
        }
    }

    #[test]
    fn fixture_pie_java() {
        let p = parse(PIE_JAVA);
        assert_eq!(p.kind, EventKind::Pie);
        assert_eq!(p.callid.as_deref(), Some("a call id"));
        assert_eq!(p.timestamp, Some(datetime!(2024-01-23 15:04:28 UTC)));
        let m = p.menu_result().unwrap();
        assert_eq!(m.menu_id.as_deref(), Some("confirm"));
        assert_eq!(m.r#type, Some(MenuResultType::Sequence));
        assert_eq!(m.value.as_deref(), Some("1452"));
        assert_eq!(m.input_method, Some(InputMethod::Dtmf));
        assert!(m.extra.is_empty());
        assert_eq!(pie(&p).conference_id.as_deref(), Some("a conference id"));
        assert!(p.expects_svaml());
    }

    #[test]
    fn fixture_pie_node_keeps_add_to_context() {
        let p = parse(PIE_NODE);
        assert_eq!(p.kind, EventKind::Pie);
        assert_eq!(p.callid.as_deref(), Some("callId"));
        let m = p.menu_result().unwrap();
        assert_eq!(m.value.as_deref(), Some("6789"));
        assert_eq!(m.extra.get("addToContext"), Some(&json!([])));
        assert_eq!(m.extra.len(), 1);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn fixture_notify_java() {
        let p = parse(NOTIFY_JAVA);
        assert_eq!(p.kind, EventKind::Notify);
        assert_eq!(p.callid.as_deref(), Some("a call id"));
        assert_eq!(p.timestamp, None);
        assert!(!p.expects_svaml());
        let e = notify(&p);
        assert_eq!(e.r#type, Some(NotifyType::RecordingFinished));
        assert_eq!(e.destination.as_deref(), Some("a destination"));
        assert_eq!(e.custom.as_deref(), Some("my custom value"));
        let amd = e.amd.as_ref().unwrap();
        assert_eq!(amd.status, Some(AmdStatus::Hangup));
        assert_eq!(amd.reason, Some(AmdReason::InitialSilence));
        assert_eq!(amd.duration, Some(32));
        assert!(p.warnings.is_empty());
    }

    // ----- envelope and leniency -----------------------------------------------------------

    #[test]
    fn call_id_variants() {
        let p = parse(r#"{"event":"ace","callId":"abc"}"#);
        assert_eq!(p.callid.as_deref(), Some("abc"));
        assert!(p.warnings.is_empty());
        assert!(ace(&p).extra.is_empty());

        let p = parse(r#"{"event":"ace","callid":"lower","callId":"camel"}"#);
        assert_eq!(p.callid.as_deref(), Some("lower"));
        assert_eq!(pointers(&p), ["/callId"]);

        let p = parse(r#"{"event":"ace","callid":null,"callId":"camel"}"#);
        assert_eq!(p.callid.as_deref(), Some("camel"));
        assert!(p.warnings.is_empty());

        let p = parse(r#"{"event":"ace","callid":42}"#);
        assert_eq!(p.callid.as_deref(), Some("42"));
        assert_eq!(pointers(&p), ["/callid"]);
    }

    #[test]
    fn event_kind_case_insensitive_and_unknown() {
        assert_eq!(parse(r#"{"event":"ICE"}"#).kind, EventKind::Ice);
        assert_eq!(parse(r#"{"event":"Ice"}"#).kind, EventKind::Ice);
        assert_eq!(parse(r#"{"event":"DiCe"}"#).kind, EventKind::Dice);
        assert_eq!(parse(r#"{"event":"NOTIFY"}"#).kind, EventKind::Notify);
        let p = parse(r#"{"event":"foo","callid":"c1","other":1}"#);
        assert_eq!(p.kind, EventKind::Unknown("foo".into()));
        assert_eq!(p.kind.as_str(), "foo");
        assert_eq!(p.body, Event::Unknown);
        assert_eq!(p.callid.as_deref(), Some("c1"));
        assert!(!p.expects_svaml());
        let long = "x".repeat(100);
        let kind = EventKind::parse(&long);
        assert_eq!(kind.as_str().len(), MAX_UNKNOWN_EVENT_LEN);
        let kind = EventKind::parse(&"é".repeat(70));
        assert_eq!(kind.as_str().chars().count(), MAX_UNKNOWN_EVENT_LEN);
        assert_eq!(EventKind::Pie.as_str(), "pie");
        assert_eq!(EventKind::Notify.to_string(), "notify");
        assert!(EventKind::Ice.expects_svaml());
        assert!(EventKind::Ace.expects_svaml());
        assert!(EventKind::Pie.expects_svaml());
        assert!(!EventKind::Dice.expects_svaml());
        assert!(!EventKind::Notify.expects_svaml());
    }

    #[test]
    fn fatal_errors() {
        match parse_event(b"{\"event\": \"ice\",").unwrap_err() {
            EventError::MalformedJson {
                line,
                column,
                detail,
            } => {
                assert_eq!(line, 1);
                assert_eq!(column, 16);
                assert_eq!(detail, "EOF while parsing a value");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = parse_event(b"{\n \"event\": \"ice\" x}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed JSON at line 2, column 17: expected `,` or `}`"
        );
        assert!(matches!(
            parse_event(b"").unwrap_err(),
            EventError::MalformedJson {
                line: 1,
                column: 0,
                ..
            }
        ));
        assert!(matches!(
            parse_event(b"\xff\xfe").unwrap_err(),
            EventError::MalformedJson { .. }
        ));
        assert_eq!(parse_event(b"[]").unwrap_err(), EventError::NotAnObject);
        assert_eq!(
            parse_event(b"\"ice\"").unwrap_err(),
            EventError::NotAnObject
        );
        assert_eq!(parse_event(b"null").unwrap_err(), EventError::NotAnObject);
        assert_eq!(parse_event(b"{}").unwrap_err(), EventError::MissingEvent);
        assert_eq!(
            parse_event(br#"{"event":null}"#).unwrap_err(),
            EventError::MissingEvent
        );
        assert_eq!(
            parse_event(br#"{"event":5}"#).unwrap_err(),
            EventError::EventNotString
        );
        assert_eq!(
            parse_event(br#"{"event":["ice"]}"#).unwrap_err(),
            EventError::EventNotString
        );
        assert_eq!(
            EventError::NotAnObject.to_string(),
            "callback body is not a JSON object"
        );
        assert_eq!(
            EventError::MissingEvent.to_string(),
            "callback body has no \"event\" field"
        );
        assert_eq!(
            EventError::EventNotString.to_string(),
            "callback \"event\" field is not a string"
        );
    }

    #[test]
    fn malformed_detail_does_not_echo_body() {
        let body = br#"{"event":"ice","cli":"+46708168731" "secret"}"#;
        let err = parse_event(body).unwrap_err().to_string();
        assert!(!err.contains("46708168731"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn utf8_bom_is_accepted() {
        let p = parse_event(b"\xEF\xBB\xBF{\"event\":\"ace\"}").unwrap();
        assert_eq!(p.kind, EventKind::Ace);
    }

    #[test]
    fn timestamps() {
        let p = parse(r#"{"event":"ace","timestamp":"2014-06-02T15:39:31.2729234Z"}"#);
        assert_eq!(
            p.timestamp,
            Some(datetime!(2014-06-02 15:39:31.2729234 UTC))
        );
        let p = parse(r#"{"event":"ace","timestamp":"yesterday"}"#);
        assert_eq!(p.timestamp, None);
        assert_eq!(pointers(&p), ["/timestamp"]);
        let p = parse(r#"{"event":"ace","timestamp":1705423596}"#);
        assert_eq!(p.timestamp, None);
        assert_eq!(pointers(&p), ["/timestamp"]);
    }

    #[test]
    fn msisdn_normalization() {
        assert_eq!(
            normalize_msisdn("46708168731").as_deref(),
            Some("+46708168731")
        );
        assert_eq!(
            normalize_msisdn("+46708168731").as_deref(),
            Some("+46708168731")
        );
        assert_eq!(normalize_msisdn(" 123 ").as_deref(), Some("+123"));
        assert_eq!(normalize_msisdn("private"), None);
        assert_eq!(normalize_msisdn(""), None);
        assert_eq!(normalize_msisdn("+"), None);
        assert_eq!(normalize_msisdn("++123"), None);
        assert_eq!(normalize_msisdn("+46 70 816"), None);
        assert_eq!(normalize_msisdn("1234567890123456"), None);
        assert_eq!(normalize_msisdn("sip:123@host"), None);
        let user = Destination {
            r#type: Some(DestinationType::Username),
            endpoint: Some("12345".into()),
            ..Destination::default()
        };
        assert_eq!(user.e164(), None);
        let untyped = Destination {
            endpoint: Some("12345".into()),
            ..Destination::default()
        };
        assert_eq!(untyped.e164().as_deref(), Some("+12345"));
    }

    #[test]
    fn enums_case_insensitive_and_open() {
        assert_eq!(DestinationType::parse("NUMBER"), DestinationType::Number);
        assert_eq!(
            DestinationType::parse("Websocket"),
            DestinationType::Websocket
        );
        assert_eq!(
            DestinationType::parse("email"),
            DestinationType::Other("email".into())
        );
        assert_eq!(Domain::parse("PSTN"), Domain::Pstn);
        assert_eq!(Domain::parse("MXP").as_str(), "mxp");
        assert_eq!(DiceReason::parse("n/a"), DiceReason::NotApplicable);
        assert_eq!(
            DiceReason::parse("callbackerror"),
            DiceReason::CallbackError
        );
        assert_eq!(DiceReason::parse("Congestion").as_str(), "CONGESTION");
        assert_eq!(
            DiceReason::parse("SOMETHINGNEW"),
            DiceReason::Other("SOMETHINGNEW".into())
        );
        assert_eq!(DiceResult::parse("noanswer"), DiceResult::NoAnswer);
        assert_eq!(
            MenuResultType::parse("InvalidInput"),
            MenuResultType::InvalidInput
        );
        assert_eq!(MenuResultType::parse("Return"), MenuResultType::Return);
        assert_eq!(AmdStatus::parse("NotSure"), AmdStatus::NotSure);
        assert_eq!(
            AmdStatus::parse("inprogress"),
            AmdStatus::Other("inprogress".into())
        );
        assert_eq!(AmdReason::parse("N/A"), AmdReason::NotApplicable);
        assert_eq!(NotifyType::parse("CallingError"), NotifyType::CallingError);
        assert_eq!(InputMethod::parse("VOICE"), InputMethod::Voice);

        let p = parse_json(json!({
            "event": "dice", "reason": "callerhangup", "result": "Canceled",
            "to": {"type": "Number", "endpoint": "+1555"}
        }));
        let e = dice(&p);
        assert_eq!(e.reason, Some(DiceReason::CallerHangup));
        assert_eq!(e.result, Some(DiceResult::Other("Canceled".into())));
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn numeric_strings_and_missing_version() {
        let p = parse_json(json!({
            "event": "dice", "callid": "c", "duration": "15", "version": " 1 ",
            "debit": {"currencyId": "EUR", "amount": "0.25"}
        }));
        let e = dice(&p);
        assert_eq!(e.duration, Some(15));
        assert_eq!(e.version, Some(1));
        assert_eq!(e.debit.as_ref().and_then(|d| d.amount), Some(0.25));
        assert!(p.warnings.is_empty());

        let p = parse_json(json!({"event": "ice", "duration": 15.0, "amd": null}));
        assert_eq!(ice(&p).duration, Some(15));
        assert_eq!(ice(&p).version, None);
        assert_eq!(p.version(), None);
        assert!(p.warnings.is_empty());

        let p = parse_json(json!({"event": "ice", "duration": 15.7}));
        assert_eq!(ice(&p).duration, Some(15));
        assert_eq!(pointers(&p), ["/duration"]);

        let p = parse_json(json!({"event": "ice", "duration": 1e300}));
        assert_eq!(ice(&p).duration, None);
        assert_eq!(pointers(&p), ["/duration"]);

        let p = parse_json(json!({"event": "ice", "duration": u64::MAX}));
        assert_eq!(ice(&p).duration, None);
        assert_eq!(pointers(&p), ["/duration"]);

        let p = parse_json(json!({"event": "dice", "debit": {"amount": "NaN"}}));
        assert_eq!(dice(&p).debit.as_ref().and_then(|d| d.amount), None);
        assert_eq!(pointers(&p), ["/debit/amount"]);
    }

    #[test]
    fn wrong_types_give_warnings_ice() {
        let p = parse_json(json!({
            "event": "ice",
            "callid": "c1",
            "version": "one",
            "callResourceUrl": {},
            "custom": ["x"],
            "userRate": "abc",
            "cli": 46708168731u64,
            "to": "+46708168731",
            "domain": 7,
            "originationType": true,
            "duration": {},
            "rdnis": [],
            "callHeaders": {"key": "k"},
            "conferenceId": {},
            "user": false,
            "applicationKey": []
        }));
        assert_eq!(p.kind, EventKind::Ice);
        assert_eq!(p.callid.as_deref(), Some("c1"));
        assert_eq!(p.application_key, None);
        let e = ice(&p);
        assert_eq!(e.version, None);
        assert_eq!(e.call_resource_url, None);
        assert_eq!(e.custom, None);
        assert_eq!(e.user_rate, None);
        assert_eq!(e.cli.as_deref(), Some("46708168731"));
        assert_eq!(
            e.to,
            Some(Destination {
                endpoint: Some("+46708168731".into()),
                ..Destination::default()
            })
        );
        assert_eq!(p.to_endpoint(), Some("+46708168731"));
        assert_eq!(e.domain, Some(Domain::Other("7".into())));
        assert_eq!(e.origination_type, Some(Domain::Other("true".into())));
        assert_eq!(e.duration, None);
        assert_eq!(e.rdnis, None);
        assert_eq!(e.call_headers, None);
        assert_eq!(e.conference_id, None);
        assert_eq!(e.user.as_deref(), Some("false"));
        assert!(e.extra.is_empty());
        let mut ptrs = pointers(&p);
        ptrs.sort_unstable();
        assert_eq!(
            ptrs,
            [
                "/applicationKey",
                "/callHeaders",
                "/callResourceUrl",
                "/cli",
                "/conferenceId",
                "/custom",
                "/domain",
                "/duration",
                "/originationType",
                "/rdnis",
                "/to",
                "/user",
                "/userRate",
                "/version",
            ]
        );
        let w = p
            .warnings
            .iter()
            .find(|w| w.pointer == "/userRate")
            .unwrap();
        assert_eq!(w.message, "expected a price object, got a string; ignored");
        let w = p
            .warnings
            .iter()
            .find(|w| w.pointer == "/duration")
            .unwrap();
        assert_eq!(w.message, "expected an integer, got an object; ignored");
        let w = p.warnings.iter().find(|w| w.pointer == "/cli").unwrap();
        assert_eq!(w.message, "expected a string, got a number; converted");
    }

    #[test]
    fn wrong_types_give_warnings_nested() {
        let p = parse_json(json!({
            "event": "ice",
            "to": {"type": 5, "endpoint": {"x": 1}, "note": "kept"},
            "userRate": {"currencyId": 840, "amount": "abc"},
            "callHeaders": [{"key": "a", "value": 1}, "bad", {"key": ["k"]}]
        }));
        let e = ice(&p);
        let to = e.to.as_ref().unwrap();
        assert_eq!(to.r#type, Some(DestinationType::Other("5".into())));
        assert_eq!(to.endpoint, None);
        assert_eq!(to.extra.get("note"), Some(&json!("kept")));
        let rate = e.user_rate.as_ref().unwrap();
        assert_eq!(rate.currency_id.as_deref(), Some("840"));
        assert_eq!(rate.amount, None);
        let headers = e.call_headers.as_ref().unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[0].value.as_deref(), Some("1"));
        assert_eq!(headers[1].key, None);
        assert_eq!(
            pointers(&p),
            [
                "/userRate/currencyId",
                "/userRate/amount",
                "/to/type",
                "/to/endpoint",
                "/callHeaders/0/value",
                "/callHeaders/1",
                "/callHeaders/2/key",
            ]
        );
    }

    #[test]
    fn wrong_types_give_warnings_ace_pie_notify_dice() {
        let p = parse_json(json!({"event": "ace", "amd": []}));
        assert_eq!(ace(&p).amd, None);
        assert_eq!(pointers(&p), ["/amd"]);
        assert_eq!(
            p.warnings[0].message,
            "expected an AMD object, got an array; ignored"
        );

        let p = parse_json(json!({"event": "ace", "amd": {"status": 1, "duration": "x"}}));
        let amd = ace(&p).amd.as_ref().unwrap();
        assert_eq!(amd.status, Some(AmdStatus::Other("1".into())));
        assert_eq!(amd.duration, None);
        assert_eq!(pointers(&p), ["/amd/status", "/amd/duration"]);

        let p = parse_json(json!({
            "event": "pie",
            "menuResult": {"menuId": "main", "type": "return", "value": 5, "inputMethod": []}
        }));
        let m = p.menu_result().unwrap();
        assert_eq!(m.value.as_deref(), Some("5"));
        assert_eq!(m.r#type, Some(MenuResultType::Return));
        assert_eq!(m.input_method, None);
        assert_eq!(
            pointers(&p),
            ["/menuResult/value", "/menuResult/inputMethod"]
        );

        let p = parse_json(json!({"event": "pie", "menuResult": "1234"}));
        assert_eq!(p.menu_result(), None);
        assert_eq!(pointers(&p), ["/menuResult"]);

        let p = parse_json(json!({
            "event": "notify", "type": "callingerror", "errorCode": "40001",
            "errorMsg": "Illegal SVAML", "amd": "human", "destination": 1
        }));
        let n = notify(&p);
        assert_eq!(n.r#type, Some(NotifyType::CallingError));
        assert_eq!(n.error_code, Some(40001));
        assert_eq!(n.error_msg.as_deref(), Some("Illegal SVAML"));
        assert_eq!(n.amd, None);
        assert_eq!(n.destination.as_deref(), Some("1"));
        assert_eq!(pointers(&p), ["/destination", "/amd"]);

        let p = parse_json(json!({
            "event": "dice", "debit": 0.5, "userRate": [], "to": 5, "from": {},
            "reason": [], "result": {}
        }));
        let d = dice(&p);
        assert_eq!(d.debit, None);
        assert_eq!(d.user_rate, None);
        assert_eq!(d.to, None);
        assert_eq!(d.from, None);
        assert_eq!(d.reason, None);
        assert_eq!(d.result, None);
        assert_eq!(
            pointers(&p),
            ["/reason", "/result", "/debit", "/userRate", "/to", "/from"]
        );
    }

    #[test]
    fn unknown_fields_kept_in_extra() {
        let p = parse_json(json!({
            "event": "ice", "callid": "c", "timestamp": "2024-01-16T16:46:36Z",
            "applicationKey": "k", "user": "legacy-user", "cookies": {"a": "b"},
            "reference": "r1", "delayed": false
        }));
        let e = ice(&p);
        assert_eq!(e.user.as_deref(), Some("legacy-user"));
        let keys: Vec<&str> = e.extra.keys().map(String::as_str).collect();
        assert_eq!(keys, ["cookies", "delayed", "reference"]);
        assert_eq!(e.extra.get("cookies"), Some(&json!({"a": "b"})));

        let p = parse_json(json!({
            "event": "notify", "applicationKey": "k", "timestamp": "2024-01-16T16:46:36Z"
        }));
        assert!(notify(&p).extra.is_empty());
        assert_eq!(p.application_key.as_deref(), Some("k"));
    }

    #[test]
    fn pointer_escaping() {
        assert_eq!(escape_pointer_token("a/b~c"), "a~1b~0c");
    }

    #[test]
    fn serializes_camel_case_skipping_none() {
        let p = parse(PIE_NODE);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            json!({
                "kind": "pie",
                "callid": "callId",
                "applicationKey": "appKey",
                "timestamp": "2023-12-29T15:07:22Z",
                "body": {
                    "version": 1,
                    "menuResult": {
                        "menuId": "confirm",
                        "type": "sequence",
                        "value": "6789",
                        "inputMethod": "dtmf",
                        "extra": {"addToContext": []}
                    }
                }
            })
        );

        let p = parse(DICE_DOTNET);
        let v = serde_json::to_value(&p.body).unwrap();
        assert_eq!(v["to"], json!({"type": "number", "endpoint": "123456789"}));
        assert_eq!(v["reason"], json!("MANAGERHANGUP"));
        assert_eq!(v["userRate"], json!({"currencyId": "USD", "amount": 0.345}));
        assert_eq!(v["conferenceId"], json!("a conference id"));

        let p = parse(r#"{"event":"foo","duration":"x"}"#);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v, json!({"kind": "foo", "body": null}));

        let p = parse(r#"{"event":"ace","amd":[],"timestamp":"2024-01-16T16:46:36.5+02:00"}"#);
        let v = serde_json::to_value(&p).unwrap();
        // Timestamps are normalized to UTC (the same instant).
        assert_eq!(v["timestamp"], json!("2024-01-16T14:46:36.5Z"));
        assert_eq!(
            v["warnings"],
            json!([{"pointer": "/amd", "message": "expected an AMD object, got an array; ignored"}])
        );
    }

    #[test]
    fn raw_is_kept() {
        let p = parse(ICE_NUGET);
        assert_eq!(p.raw["cli"], json!("46708168731"));
        assert_eq!(p.raw["duration"], json!(0));
    }

    #[test]
    fn deeply_nested_body_is_an_error_not_a_crash() {
        let body = format!(
            "{{\"event\":\"ice\",\"x\":{}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(matches!(
            parse_event(body.as_bytes()).unwrap_err(),
            EventError::MalformedJson { .. }
        ));
    }

    // ----- property tests ------------------------------------------------------------------

    const FIELD_NAMES: &[&str] = &[
        "callid",
        "callId",
        "timestamp",
        "applicationKey",
        "version",
        "custom",
        "userRate",
        "cli",
        "to",
        "domain",
        "originationType",
        "duration",
        "rdnis",
        "callHeaders",
        "conferenceId",
        "user",
        "callResourceUrl",
        "amd",
        "debit",
        "from",
        "reason",
        "result",
        "menuResult",
        "type",
        "destination",
        "errorCode",
        "errorMsg",
        "endpoint",
        "currencyId",
        "amount",
        "status",
        "menuId",
        "value",
        "inputMethod",
        "key",
    ];

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
            "[0-9+. -]{0,18}".prop_map(Value::String),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:?[0-9]{0,2})?"
                .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((arb_key(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(FIELD_NAMES).prop_map(str::to_owned),
            "\\PC{0,8}",
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_event(&bytes);
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
            let _ = parse_event(s.as_bytes());
        }

        #[test]
        fn never_fails_on_objects_with_event(
            event in prop::sample::select(&["ice", "ace", "dice", "pie", "notify", "ICE", "x"][..]),
            fields in prop::collection::vec((arb_key(), arb_json()), 0..16),
        ) {
            let mut obj: Map<String, Value> = fields.into_iter().collect();
            obj.insert("event".into(), Value::String(event.to_owned()));
            let body = Value::Object(obj).to_string();
            let parsed = parse_event(body.as_bytes());
            prop_assert!(parsed.is_ok(), "{:?}", parsed.err());
            if let Ok(p) = parsed {
                prop_assert_eq!(&p.kind, &EventKind::parse(event));
                // Serializing the typed view never fails either.
                prop_assert!(serde_json::to_string(&p).is_ok());
                for w in &p.warnings {
                    prop_assert!(w.pointer.starts_with('/'));
                }
            }
        }
    }
}
