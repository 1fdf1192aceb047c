//! The JSON the admin API exchanges about Sinch's Calling API, described for the OpenAPI document.
//!
//! Sinch's own bodies pass through svamlgate unchanged: a request body is checked ([`super::checks`])
//! and sent as it came, and an answer is Sinch's JSON object plus svamlgate's fields
//! ([`super::Performed::into_result`]). These types are never built; they name the fields the
//! checks read and Sinch documents, so the document can show them.

use serde_json::Value;
use utoipa::ToSchema;

use super::checks::{MOH_CLASSES, PARTICIPANT_COMMANDS};
use crate::outcome::{text_schema, CalloutMethod};

/// The Calling API's callout body exactly as Sinch documents it (`POST /calling/v1/callouts`),
/// sent unchanged after the checks: numbers (cli, destination.endpoint of type number) in E.164,
/// and a customCallout's inline ice/ace/pie SVAML (JSON text) valid for its event; URLs pass
/// through.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(examples(json!({
    "method": "ttsCallout",
    "ttsCallout": {
        "cli": "+14045001000",
        "destination": {"type": "number", "endpoint": "+14045005000"},
        "locale": "en-US",
        "text": "Hello, this is a call from Sinch.",
        "enableDice": true
    }
})))]
pub struct CalloutRequest {
    /// Which of the three callouts; its object is the member of that name.
    #[schema(schema_with = callout_methods)]
    pub method: String,
    /// cli, destination {type, endpoint}, dtmf, domain, custom, locale, text, prompts, enableAce,
    /// enableDice, enablePie.
    #[schema(value_type = Option<Object>)]
    pub tts_callout: Option<Value>,
    /// cli, destination, conferenceId (required), conferenceDtmfOptions, dtmf, maxDuration,
    /// enableAce, enableDice, enablePie, locale, greeting, mohClass, custom, domain.
    #[schema(value_type = Option<Object>)]
    pub conference_callout: Option<Value>,
    /// cli, destination, dtmf, custom, maxDuration, ice, ace, pie (each a callback URL or SVAML as
    /// JSON text).
    #[schema(value_type = Option<Object>)]
    pub custom_callout: Option<Value>,
}

/// A managed-call SVAML body: instructions (say, playFiles) and an action of hangup, continue or
/// park. Checked with the gate's `manage` target before it is sent.
#[derive(ToSchema)]
#[schema(examples(json!({
    "instructions": [{"name": "say", "text": "Goodbye", "locale": "en-US"}],
    "action": {"name": "hangup"}
})))]
pub struct ManageCallBody {
    /// SVAML instructions.
    #[schema(value_type = Option<Vec<Object>>)]
    pub instructions: Option<Vec<Value>>,
    /// SVAML action.
    #[schema(value_type = Option<Object>)]
    pub action: Option<Value>,
}

/// The body of `PATCH /admin/conferences/{conferenceid}/{callid}`.
#[derive(ToSchema)]
pub struct ParticipantCommand {
    /// What to do with the participant.
    #[schema(schema_with = participant_commands)]
    pub command: String,
    /// Music on hold; only with onhold.
    #[schema(schema_with = moh_classes)]
    pub moh: Option<String>,
}

/// Sinch's JSON answer, unchanged, plus svamlgate's fields (every successful answer carries them).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SinchAnswer {
    /// svamlgate's reference of the request (GET /admin/calls/{callid}/diagnosis accepts it,
    /// outbound_requests.reference).
    pub reference: String,
    /// HTTP status Sinch answered (200, 204).
    pub sinch_status: u16,
    /// Attempts made (retries after 429, 5xx, network errors).
    #[schema(minimum = 1)]
    pub attempts: u32,
    /// What the checks noticed without refusing (e.g. enableDice not set).
    pub warnings: Option<Vec<String>>,
    /// true when this is the stored answer of an earlier callout with the same Idempotency-Key
    /// (nothing was sent).
    pub replayed: Option<bool>,
}

/// Sinch's answer to a callout.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalloutAnswer {
    #[serde(flatten)]
    pub answer: SinchAnswer,
    /// Sinch's call id.
    pub call_id: String,
}

/// Sinch's call information: from, to, domain, callId, duration, status (ONGOING, FINAL), result,
/// reason, timestamp, custom, userRate, debit.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallInformation {
    #[serde(flatten)]
    pub answer: SinchAnswer,
    /// Sinch's call id.
    pub call_id: Option<String>,
    /// ONGOING or FINAL.
    pub status: Option<String>,
    /// The call's result.
    pub result: Option<String>,
    /// Why it ended.
    pub reason: Option<String>,
}

/// Sinch's conference information.
#[derive(ToSchema)]
pub struct ConferenceInfo {
    #[serde(flatten)]
    pub answer: SinchAnswer,
    /// The participants.
    pub participants: Option<Vec<ConferenceParticipant>>,
}

/// One participant of a conference, as Sinch describes it.
#[derive(ToSchema)]
pub struct ConferenceParticipant {
    /// The participant's number.
    pub cli: Option<String>,
    /// Its call id.
    pub id: Option<String>,
    /// Seconds in the conference.
    pub duration: Option<i64>,
    /// Whether it is muted.
    pub muted: Option<bool>,
    /// Whether it is on hold.
    pub onhold: Option<bool>,
}

fn callout_methods() -> utoipa::openapi::Object {
    text_schema(CalloutMethod::ALL.iter().map(|m| m.as_str()))
}

fn participant_commands() -> utoipa::openapi::Object {
    text_schema(PARTICIPANT_COMMANDS)
}

fn moh_classes() -> utoipa::openapi::Object {
    let mut schema = text_schema(MOH_CLASSES);
    schema.description = Some("Music on hold; only with onhold.".to_owned());
    schema
}
