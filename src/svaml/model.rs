//! The typed SVAML model: a document ([`Svaml`]) of instructions and one action, every instruction
//! and action Sinch documents with its options. It serializes to the canonical wire form
//! (lowerCamel names, `name` tag, absent options omitted) and deserializes it back. svamlgate's
//! built-in replies are written with it (`gate::builtin_default`,
//! `gate::builtin_fallback`); the property tests generate replies of every shape with it.
//!
//! ```
//! use svamlgate::svaml::model::{Action, Svaml};
//! let bye = Svaml::builder().say("Goodbye", "en-US").hangup();
//! assert_eq!(bye.to_value()["action"]["name"], "hangup");
//! assert_eq!(Svaml::new(Action::Continue).to_value()["action"]["name"], "continue");
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::SvamlError;

/// A SVAML document: ordered instructions plus exactly one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Svaml {
    /// Instructions executed in order before the action (omitted when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instructions: Vec<Instruction>,
    /// The single action.
    pub action: Action,
}

impl Svaml {
    /// A document with only an action.
    pub fn new(action: Action) -> Svaml {
        Svaml {
            instructions: Vec::new(),
            action,
        }
    }

    /// Starts a builder.
    pub fn builder() -> SvamlBuilder {
        SvamlBuilder::default()
    }

    /// JSON value of the document.
    pub fn to_value(&self) -> Value {
        // Serializing these plain data types into a Value cannot fail (string keys only).
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Builder for [`Svaml`]: add instructions, then finish with the action.
#[derive(Debug, Clone, Default)]
pub struct SvamlBuilder {
    instructions: Vec<Instruction>,
}

impl SvamlBuilder {
    /// Appends `say` with text and locale.
    pub fn say(mut self, text: impl Into<String>, locale: impl Into<String>) -> Self {
        self.instructions.push(Instruction::Say(Say {
            text: Some(text.into()),
            locale: Some(locale.into()),
        }));
        self
    }

    /// Finishes the document with `hangup`.
    pub fn hangup(self) -> Svaml {
        Svaml {
            instructions: self.instructions,
            action: Action::Hangup,
        }
    }
}

/// A SVAML instruction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "camelCase")]
pub enum Instruction {
    /// `playFiles`.
    PlayFiles(PlayFiles),
    /// `say`.
    Say(Say),
    /// `sendDtmf`.
    SendDtmf(SendDtmf),
    /// `setCookie`.
    SetCookie(SetCookie),
    /// `answer`.
    Answer,
    /// `startRecording`.
    StartRecording(StartRecording),
    /// `stopRecording`.
    StopRecording,
}

/// A SVAML action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "camelCase")]
pub enum Action {
    /// `hangup`.
    Hangup,
    /// `continue`.
    Continue,
    /// `connectPstn`.
    ConnectPstn(ConnectPstn),
    /// `connectMxp`.
    ConnectMxp(ConnectMxp),
    /// `connectConf`.
    ConnectConf(ConnectConf),
    /// `connectSip`.
    ConnectSip(ConnectSip),
    /// `connectStream`.
    ConnectStream(ConnectStream),
    /// `runMenu`.
    RunMenu(RunMenu),
    /// `park`.
    Park(Park),
    /// `startRecording`, as the action of a Calls API manage-call body only (Sinch's Calling API
    /// page, "Manage Call"); in callback replies it is an instruction
    /// ([`Instruction::StartRecording`]). The gate refuses it as the action of an ICE, ACE or PIE
    /// reply (`schema:enum`: no action name of callback replies).
    StartRecording(StartRecordingAction),
    /// `stopRecording`, as the action of a manage-call body only (see [`Action::StartRecording`]).
    StopRecording,
}

impl Action {
    /// Whether only a Calls API manage-call body may carry this action (never a callback reply).
    pub fn manage_only(&self) -> bool {
        matches!(self, Action::StartRecording(_) | Action::StopRecording)
    }
}

/// `playFiles` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayFiles {
    /// Prompts: URLs, `#tts[...]`, `#ssml[...]` or file ids.
    pub ids: Vec<String>,
    /// TTS locale (needed for #tts/#ssml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// `say` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Say {
    /// Text (≤ 600 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// TTS locale/voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// `sendDtmf` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendDtmf {
    /// Tones: 0-9, #, w.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `setCookie` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetCookie {
    /// Cookie name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Cookie value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `startRecording` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRecording {
    /// Recording options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<StartRecordingOptions>,
}

/// `startRecording` as a manage-call action: its options are under `recordingOptions` (the
/// instruction's are under `options`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRecordingAction {
    /// Recording options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_options: Option<StartRecordingOptions>,
}

/// Recording options. `credentials` is secret and never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRecordingOptions {
    /// Storage URL, e.g. `s3://bucket/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_url: Option<String>,
    /// Storage credentials (secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    /// File format (default mp3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Send recording notify events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_events: Option<bool>,
    /// Transcription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcription_options: Option<TranscriptionOptions>,
}

impl fmt::Debug for StartRecordingOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartRecordingOptions")
            .field("destination_url", &self.destination_url)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "[redacted]"),
            )
            .field("format", &self.format)
            .field("notification_events", &self.notification_events)
            .field("transcription_options", &self.transcription_options)
            .finish()
    }
}

/// Transcription options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptionOptions {
    /// Enable transcription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Transcription locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// Ring-back tone country (`indications`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Indications {
    At,
    Au,
    Bg,
    Br,
    Be,
    Ch,
    Cl,
    Cn,
    Cz,
    De,
    Dk,
    Ee,
    Es,
    Fi,
    Fr,
    Gr,
    Hu,
    Il,
    In,
    It,
    Lt,
    Jp,
    Mx,
    My,
    Nl,
    No,
    Nz,
    Ph,
    Pl,
    Pt,
    Ru,
    Se,
    Sg,
    Th,
    Uk,
    Us,
    Tw,
    Ve,
    Za,
}

/// SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Transport {
    /// UDP (default).
    #[serde(alias = "udp")]
    Udp,
    /// TCP.
    #[serde(alias = "tcp")]
    Tcp,
    /// TLS.
    #[serde(alias = "tls")]
    Tls,
}

/// Music on hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Moh {
    /// Progress tone.
    Ring,
    /// Music loop 1.
    Music1,
    /// Music loop 2.
    Music2,
    /// Music loop 3.
    Music3,
}

/// Conference DTMF handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMode {
    /// Ignore DTMF.
    Ignore,
    /// Forward DTMF to the other participants.
    Forward,
    /// Detect DTMF and raise PIE events.
    Detect,
}

/// Answering machine detection request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Amd {
    /// Enable AMD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Report asynchronously (notify event).
    #[serde(default, rename = "async", skip_serializing_if = "Option::is_none")]
    pub async_: Option<bool>,
}

/// Call header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallHeader {
    /// Header key.
    pub key: String,
    /// Header value.
    pub value: String,
}

/// Destination object (`{type, endpoint}`) of connectMxp/connectSip/connectStream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// `username`, `sip` or `Websocket`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// User id, SIP address or WebSocket URL.
    pub endpoint: String,
}

/// `connectPstn` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectPstn {
    /// E.164 destination (`+…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// `ll-CC` locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Seconds, ≤ 14400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<u32>,
    /// Ringing timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial_timeout: Option<u32>,
    /// Caller id (E.164 or `private`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli: Option<String>,
    /// Suppress ACE/DICE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppress_callbacks: Option<bool>,
    /// DTMF sent on pick-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtmf: Option<String>,
    /// Ring-back tone country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indications: Option<Indications>,
    /// AMD request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amd: Option<Amd>,
}

/// `connectMxp` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectMxp {
    /// In-app user destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
    /// Headers for the callee client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_headers: Option<Vec<CallHeader>>,
}

/// `connectConf` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectConf {
    /// Conference id (≤ 64 characters).
    pub conference_id: String,
    /// DTMF options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference_dtmf_options: Option<ConferenceDtmfOptions>,
    /// Music on hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moh: Option<Moh>,
}

/// Conference DTMF options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConferenceDtmfOptions {
    /// Mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DtmfMode>,
    /// Digits before PIE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_digits: Option<u32>,
    /// Timeout in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_mills: Option<u32>,
}

/// `connectSip` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectSip {
    /// SIP destination.
    pub destination: Destination,
    /// Seconds, ≤ 14400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<u32>,
    /// Caller id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli: Option<String>,
    /// Transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// Suppress ACE/DICE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppress_callbacks: Option<bool>,
    /// Private SIP headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_headers: Option<Vec<CallHeader>>,
    /// Music on hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moh: Option<Moh>,
}

/// `connectStream` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectStream {
    /// WebSocket destination.
    pub destination: Destination,
    /// Stream options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming_options: Option<StreamingOptions>,
    /// Seconds, ≤ 14400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<u32>,
    /// Headers sent in the initial message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_headers: Option<Vec<CallHeader>>,
}

/// Stream options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamingOptions {
    /// Protocol version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Sample rate in Hz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
}

/// `runMenu` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMenu {
    /// DTMF interrupts prompts (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barge: Option<bool>,
    /// TTS locale (required with `enable_voice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Id of the first menu.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_menu: Option<String>,
    /// Speech input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_voice: Option<bool>,
    /// Menus; one must have id `main`.
    pub menus: Vec<Menu>,
}

/// One IVR menu.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Menu {
    /// Menu id (`main` plays first).
    pub id: String,
    /// Prompt played first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_prompt: Option<String>,
    /// Prompt played on invalid input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_prompt: Option<String>,
    /// Repeat count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u32>,
    /// Digits collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_digits: Option<u32>,
    /// Silence timeout (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_mills: Option<u32>,
    /// Max voice input time (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timeout_mills: Option<u32>,
    /// Options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<MenuOption>,
}

/// Menu option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MenuOption {
    /// Keys selecting this option.
    pub dtmf: String,
    /// What happens.
    pub action: MenuAction,
}

/// Menu option action, `menu(<id>)` or `return(<value>)` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MenuAction {
    /// Go to another menu.
    Menu(String),
    /// End the menu and report `value` in a PIE.
    Return(String),
}

impl fmt::Display for MenuAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MenuAction::Menu(id) => write!(f, "menu({id})"),
            MenuAction::Return(value) => write!(f, "return({value})"),
        }
    }
}

impl FromStr for MenuAction {
    type Err = SvamlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || SvamlError::InvalidMenuAction(s.to_owned());
        let inner = |prefix: &str| {
            s.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(')'))
                .map(str::to_owned)
        };
        if let Some(id) = inner("menu(") {
            if id.is_empty() {
                return Err(invalid());
            }
            Ok(MenuAction::Menu(id))
        } else if let Some(value) = inner("return(") {
            Ok(MenuAction::Return(value))
        } else {
            Err(invalid())
        }
    }
}

impl Serialize for MenuAction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MenuAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `park` properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Park {
    /// TTS locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Played once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intro_prompt: Option<String>,
    /// Looped while parked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_prompt: Option<String>,
    /// Seconds, ≤ 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builder_serializes_canonical_wire_form() {
        let svaml = Svaml::builder()
            .say("Hi", "en-US")
            .say("Bye", "sv-SE")
            .hangup();
        assert_eq!(
            svaml.to_value(),
            json!({
                "instructions": [
                    {"name": "say", "text": "Hi", "locale": "en-US"},
                    {"name": "say", "text": "Bye", "locale": "sv-SE"}
                ],
                "action": {"name": "hangup"}
            })
        );
        assert_eq!(
            Svaml::new(Action::Hangup).to_value(),
            json!({"action": {"name": "hangup"}})
        );
        let pstn = Svaml {
            instructions: vec![Instruction::Answer],
            action: Action::ConnectPstn(ConnectPstn {
                number: Some("+46700000000".into()),
                cli: Some("private".into()),
                ..ConnectPstn::default()
            }),
        };
        assert_eq!(
            pstn.to_value(),
            json!({
                "instructions": [{"name": "answer"}],
                "action": {"name": "connectPstn", "number": "+46700000000", "cli": "private"}
            })
        );
    }

    #[test]
    fn roundtrip_menu_and_enums() {
        let menu = |id: &str, prompt: &str, options: Vec<MenuOption>| Menu {
            id: id.into(),
            main_prompt: Some(prompt.into()),
            options,
            ..Menu::default()
        };
        let option = |dtmf: &str, action| MenuOption {
            dtmf: dtmf.into(),
            action,
        };
        let svaml = Svaml::new(Action::RunMenu(RunMenu {
            menus: vec![
                menu(
                    "main",
                    "#tts[Press 1]",
                    vec![
                        option("1", MenuAction::Menu("sub".into())),
                        option("2", MenuAction::Return("sales".into())),
                    ],
                ),
                menu("sub", "#tts[Sub]", vec![]),
            ],
            ..RunMenu::default()
        }));
        let value = svaml.to_value();
        assert_eq!(
            value["action"]["menus"][0]["options"][0]["action"],
            "menu(sub)"
        );
        assert_eq!(
            value["action"]["menus"][0]["options"][1]["action"],
            "return(sales)"
        );
        let back: Svaml = serde_json::from_value(value).unwrap();
        assert_eq!(back, svaml);
        let sip: ConnectSip = serde_json::from_value(json!({
            "destination": {"endpoint": "a@b"}, "transport": "tls", "moh": "music2"
        }))
        .unwrap();
        assert_eq!(sip.transport, Some(Transport::Tls));
        assert_eq!(serde_json::to_value(Transport::Tls).unwrap(), "TLS");
        assert_eq!(serde_json::to_value(Indications::No).unwrap(), "no");
        assert!("menu()".parse::<MenuAction>().is_err());
        assert!("Menu(x)".parse::<MenuAction>().is_err());
    }

    #[test]
    fn credentials_not_in_debug() {
        let options = StartRecordingOptions {
            credentials: Some("AKIA:SECRET".into()),
            ..Default::default()
        };
        let debug = format!("{options:?}");
        assert!(!debug.contains("SECRET"));
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn manage_call_recording_actions_read_and_write_sinch_examples() {
        // Sinch's Calling API page, Manage Call: "Example Start Recording", "Example Stop Recording".
        let start = json!({"action": {"name": "startRecording", "recordingOptions": {
            "destinationUrl": "s3://my-s3-bucket", "credentials": "k:s:eu-central-1",
            "format": "mp3", "notificationEvents": true}}});
        let svaml: Svaml = serde_json::from_value(start.clone()).unwrap();
        let Action::StartRecording(StartRecordingAction {
            recording_options: Some(options),
        }) = &svaml.action
        else {
            panic!("read as {:?}", svaml.action);
        };
        assert_eq!(
            options.destination_url.as_deref(),
            Some("s3://my-s3-bucket")
        );
        assert_eq!(options.notification_events, Some(true));
        assert!(svaml.action.manage_only());
        assert_eq!(svaml.to_value(), start);
        let stop = json!({"action": {"name": "stopRecording"}});
        let svaml: Svaml = serde_json::from_value(stop.clone()).unwrap();
        assert_eq!(svaml.action, Action::StopRecording);
        assert_eq!(svaml.to_value(), stop);
        assert!(!Action::Park(Park::default()).manage_only());
        // The instruction keeps its own member name (`options`).
        let instruction: Instruction =
            serde_json::from_value(json!({"name": "startRecording", "options": {"format": "wav"}}))
                .unwrap();
        assert!(matches!(
            instruction,
            Instruction::StartRecording(StartRecording { options: Some(_) })
        ));
    }
}

/// The model against the schemas: every action and instruction that has a schema file under
/// `schemas/svaml/{actions,instructions}/` (the names [`crate::svaml::action_names`] and
/// [`crate::svaml::instruction_names`] read from the embedded files, as the gate does) is a
/// variant here, and every variant here has a schema file, except the manage-only actions
/// ([`Action::manage_only`]), which only the manage-call response schema names. Adding
/// `schemas/svaml/actions/x.json` without `Action::X` (or the reverse) fails
/// `schema_actions_and_instructions_are_all_modelled`.
#[cfg(test)]
mod schema_coverage {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::svaml::{action_names, instruction_names, Target};

    /// One value of every [`Action`] variant. The `match` has no wildcard, so a variant added to
    /// the model does not compile until it is listed here too.
    fn every_action() -> Vec<Action> {
        let all = vec![
            Action::Hangup,
            Action::Continue,
            Action::ConnectPstn(ConnectPstn::default()),
            Action::ConnectMxp(ConnectMxp::default()),
            Action::ConnectConf(ConnectConf::default()),
            Action::ConnectSip(ConnectSip::default()),
            Action::ConnectStream(ConnectStream::default()),
            Action::RunMenu(RunMenu::default()),
            Action::Park(Park::default()),
            Action::StartRecording(StartRecordingAction::default()),
            Action::StopRecording,
        ];
        for a in &all {
            match a {
                Action::Hangup
                | Action::Continue
                | Action::ConnectPstn(_)
                | Action::ConnectMxp(_)
                | Action::ConnectConf(_)
                | Action::ConnectSip(_)
                | Action::ConnectStream(_)
                | Action::RunMenu(_)
                | Action::Park(_)
                | Action::StartRecording(_)
                | Action::StopRecording => {}
            }
        }
        all
    }

    /// One value of every [`Instruction`] variant (same guard as [`every_action`]).
    fn every_instruction() -> Vec<Instruction> {
        let all = vec![
            Instruction::PlayFiles(PlayFiles::default()),
            Instruction::Say(Say::default()),
            Instruction::SendDtmf(SendDtmf::default()),
            Instruction::SetCookie(SetCookie::default()),
            Instruction::Answer,
            Instruction::StartRecording(StartRecording::default()),
            Instruction::StopRecording,
        ];
        for i in &all {
            match i {
                Instruction::PlayFiles(_)
                | Instruction::Say(_)
                | Instruction::SendDtmf(_)
                | Instruction::SetCookie(_)
                | Instruction::Answer
                | Instruction::StartRecording(_)
                | Instruction::StopRecording => {}
            }
        }
        all
    }

    /// The wire names of the values, as they serialize (`name` tag).
    fn wire_names<T: Serialize>(values: &[T]) -> BTreeSet<String> {
        values
            .iter()
            .map(|v| {
                let v = serde_json::to_value(v).expect("model values serialize");
                v["name"].as_str().expect("tagged by name").to_owned()
            })
            .collect()
    }

    /// `{"name": name}` reads as the variant of that name (a missing required field is fine
    /// here; an unknown variant is not), and writes back under the same name.
    fn reads_as_variant<T: Serialize + serde::de::DeserializeOwned>(
        name: &str,
    ) -> Result<(), String> {
        match serde_json::from_value::<T>(json!({ "name": name })) {
            Ok(v) => {
                let back = serde_json::to_value(&v).map_err(|e| e.to_string())?;
                if back["name"] == name {
                    Ok(())
                } else {
                    Err(format!("{name} reads back as {}", back["name"]))
                }
            }
            Err(e) if e.to_string().contains("unknown variant") => Err(e.to_string()),
            Err(_) => Ok(()),
        }
    }

    #[test]
    fn schema_actions_and_instructions_are_all_modelled() {
        let schema_actions: BTreeSet<String> =
            action_names().iter().map(|s| (*s).to_owned()).collect();
        let schema_instructions: BTreeSet<String> = instruction_names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        // The schema side is read from the files, not empty by accident.
        assert!(schema_actions.contains("hangup") && schema_actions.len() >= 9);
        assert!(schema_instructions.contains("say") && schema_instructions.len() >= 7);

        let (manage_only, actions): (Vec<Action>, Vec<Action>) =
            every_action().into_iter().partition(Action::manage_only);
        assert_eq!(
            wire_names(&actions),
            schema_actions,
            "Action variants vs schemas/svaml/actions/*.json"
        );
        // The manage-only actions are those the manage-call body allows beyond the action files,
        // and no callback reply allows them.
        let manage_extra: BTreeSet<String> = Target::Manage
            .allowed_actions()
            .iter()
            .filter(|n| !schema_actions.contains(**n))
            .map(|n| (*n).to_owned())
            .collect();
        assert_eq!(
            wire_names(&manage_only),
            manage_extra,
            "manage-only actions"
        );
        for target in [Target::Ice, Target::Ace, Target::Pie] {
            for name in wire_names(&manage_only) {
                assert!(
                    !target.allowed_actions().contains(&name.as_str()),
                    "{target} allows {name}"
                );
            }
        }
        assert_eq!(
            wire_names(&every_instruction()),
            schema_instructions,
            "Instruction variants vs schemas/svaml/instructions/*.json"
        );
        for name in &schema_actions {
            reads_as_variant::<Action>(name)
                .unwrap_or_else(|e| panic!("action {name} is not in the model: {e}"));
        }
        for name in &schema_instructions {
            reads_as_variant::<Instruction>(name)
                .unwrap_or_else(|e| panic!("instruction {name} is not in the model: {e}"));
        }
        // The check can fail: a name only a schema could add is refused by the model.
        assert!(reads_as_variant::<Action>("connectCarrierPigeon").is_err());
        assert!(reads_as_variant::<Instruction>("hum").is_err());
    }
}
