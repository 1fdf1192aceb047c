//! The typed events (ICE, ACE, DICE, PIE, Notify) and their parts, as the lenient reader fills them.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::normalize_msisdn;

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
