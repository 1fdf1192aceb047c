//! Typed SVAML model and builder. Serializes to the canonical wire form (lowerCamel names,
//! `name` tag, absent options omitted) and deserializes it back.
//!
//! ```
//! use svamlgate::svaml::model::{ConnectPstn, Svaml};
//! let svaml = Svaml::builder()
//!     .say("Connecting you now", "en-US")
//!     .connect_pstn(ConnectPstn::to("+46700000000").cli("private"))
//!     .build()
//!     .unwrap();
//! assert_eq!(svaml.to_value()["action"]["name"], "connectPstn");
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

/// Builder for [`Svaml`]: add instructions, set the action, then [`SvamlBuilder::build`].
#[derive(Debug, Clone, Default)]
pub struct SvamlBuilder {
    instructions: Vec<Instruction>,
    action: Option<Action>,
}

impl SvamlBuilder {
    /// Appends any instruction.
    pub fn instruction(mut self, instruction: impl Into<Instruction>) -> Self {
        self.instructions.push(instruction.into());
        self
    }

    /// Appends `say` with text and locale.
    pub fn say(self, text: impl Into<String>, locale: impl Into<String>) -> Self {
        self.instruction(Say {
            text: Some(text.into()),
            locale: Some(locale.into()),
        })
    }

    /// Appends `playFiles` with the given prompts and locale.
    pub fn play_files<I, S>(self, ids: I, locale: Option<&str>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.instruction(PlayFiles {
            ids: ids.into_iter().map(Into::into).collect(),
            locale: locale.map(str::to_owned),
        })
    }

    /// Appends `sendDtmf`.
    pub fn send_dtmf(self, value: impl Into<String>) -> Self {
        self.instruction(SendDtmf {
            value: Some(value.into()),
        })
    }

    /// Appends `setCookie`.
    pub fn set_cookie(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.instruction(SetCookie {
            key: Some(key.into()),
            value: Some(value.into()),
        })
    }

    /// Appends `answer`.
    pub fn answer(self) -> Self {
        self.instruction(Instruction::Answer)
    }

    /// Appends `startRecording`.
    pub fn start_recording(self, options: Option<StartRecordingOptions>) -> Self {
        self.instruction(StartRecording { options })
    }

    /// Appends `stopRecording`.
    pub fn stop_recording(self) -> Self {
        self.instruction(Instruction::StopRecording)
    }

    /// Sets the action (replacing a previous one).
    pub fn action(mut self, action: impl Into<Action>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Sets `hangup`.
    pub fn hangup(self) -> Self {
        self.action(Action::Hangup)
    }

    /// Sets `continue`.
    pub fn continue_call(self) -> Self {
        self.action(Action::Continue)
    }

    /// Sets `connectPstn`.
    pub fn connect_pstn(self, action: ConnectPstn) -> Self {
        self.action(action)
    }

    /// Sets `connectMxp`.
    pub fn connect_mxp(self, action: ConnectMxp) -> Self {
        self.action(action)
    }

    /// Sets `connectConf`.
    pub fn connect_conf(self, action: ConnectConf) -> Self {
        self.action(action)
    }

    /// Sets `connectSip`.
    pub fn connect_sip(self, action: ConnectSip) -> Self {
        self.action(action)
    }

    /// Sets `connectStream`.
    pub fn connect_stream(self, action: ConnectStream) -> Self {
        self.action(action)
    }

    /// Sets `runMenu`.
    pub fn run_menu(self, action: RunMenu) -> Self {
        self.action(action)
    }

    /// Sets `park`.
    pub fn park(self, action: Park) -> Self {
        self.action(action)
    }

    /// Finishes the document; fails when no action was set.
    pub fn build(self) -> Result<Svaml, SvamlError> {
        Ok(Svaml {
            instructions: self.instructions,
            action: self.action.ok_or(SvamlError::MissingAction)?,
        })
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

impl Instruction {
    /// Wire name of the instruction.
    pub fn name(&self) -> &'static str {
        match self {
            Instruction::PlayFiles(_) => "playFiles",
            Instruction::Say(_) => "say",
            Instruction::SendDtmf(_) => "sendDtmf",
            Instruction::SetCookie(_) => "setCookie",
            Instruction::Answer => "answer",
            Instruction::StartRecording(_) => "startRecording",
            Instruction::StopRecording => "stopRecording",
        }
    }
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
}

impl Action {
    /// Wire name of the action.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Hangup => "hangup",
            Action::Continue => "continue",
            Action::ConnectPstn(_) => "connectPstn",
            Action::ConnectMxp(_) => "connectMxp",
            Action::ConnectConf(_) => "connectConf",
            Action::ConnectSip(_) => "connectSip",
            Action::ConnectStream(_) => "connectStream",
            Action::RunMenu(_) => "runMenu",
            Action::Park(_) => "park",
        }
    }
}

macro_rules! into_enum {
    ($enum:ident: $($ty:ident),*) => {
        $(impl From<$ty> for $enum {
            fn from(value: $ty) -> Self {
                $enum::$ty(value)
            }
        })*
    };
}
into_enum!(Instruction: PlayFiles, Say, SendDtmf, SetCookie, StartRecording);
into_enum!(Action: ConnectPstn, ConnectMxp, ConnectConf, ConnectSip, ConnectStream, RunMenu, Park);

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

impl Indications {
    /// All values.
    pub const ALL: [Indications; 39] = [
        Self::At,
        Self::Au,
        Self::Bg,
        Self::Br,
        Self::Be,
        Self::Ch,
        Self::Cl,
        Self::Cn,
        Self::Cz,
        Self::De,
        Self::Dk,
        Self::Ee,
        Self::Es,
        Self::Fi,
        Self::Fr,
        Self::Gr,
        Self::Hu,
        Self::Il,
        Self::In,
        Self::It,
        Self::Lt,
        Self::Jp,
        Self::Mx,
        Self::My,
        Self::Nl,
        Self::No,
        Self::Nz,
        Self::Ph,
        Self::Pl,
        Self::Pt,
        Self::Ru,
        Self::Se,
        Self::Sg,
        Self::Th,
        Self::Uk,
        Self::Us,
        Self::Tw,
        Self::Ve,
        Self::Za,
    ];
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

impl CallHeader {
    /// New header.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> CallHeader {
        CallHeader {
            key: key.into(),
            value: value.into(),
        }
    }
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

impl Destination {
    /// In-app user destination.
    pub fn username(user: impl Into<String>) -> Destination {
        Destination {
            kind: Some("username".to_owned()),
            endpoint: user.into(),
        }
    }

    /// SIP destination.
    pub fn sip(address: impl Into<String>) -> Destination {
        Destination {
            kind: Some("sip".to_owned()),
            endpoint: address.into(),
        }
    }

    /// WebSocket destination.
    pub fn websocket(url: impl Into<String>) -> Destination {
        Destination {
            kind: Some("Websocket".to_owned()),
            endpoint: url.into(),
        }
    }
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

impl ConnectPstn {
    /// Connects to `number` (E.164 with `+`).
    pub fn to(number: impl Into<String>) -> ConnectPstn {
        ConnectPstn {
            number: Some(number.into()),
            ..ConnectPstn::default()
        }
    }

    /// Sets the caller id.
    pub fn cli(mut self, cli: impl Into<String>) -> Self {
        self.cli = Some(cli.into());
        self
    }

    /// Sets the locale.
    pub fn locale(mut self, locale: impl Into<String>) -> Self {
        self.locale = Some(locale.into());
        self
    }

    /// Sets the maximum duration (seconds).
    pub fn max_duration(mut self, seconds: u32) -> Self {
        self.max_duration = Some(seconds);
        self
    }
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

impl ConnectConf {
    /// Joins conference `id`.
    pub fn id(id: impl Into<String>) -> ConnectConf {
        ConnectConf {
            conference_id: id.into(),
            ..ConnectConf::default()
        }
    }
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

impl ConnectSip {
    /// Connects to SIP `address`.
    pub fn to(address: impl Into<String>) -> ConnectSip {
        ConnectSip {
            destination: Destination::sip(address),
            ..ConnectSip::default()
        }
    }
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

impl ConnectStream {
    /// Streams to WebSocket `url`.
    pub fn to(url: impl Into<String>) -> ConnectStream {
        ConnectStream {
            destination: Destination::websocket(url),
            ..ConnectStream::default()
        }
    }
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

impl RunMenu {
    /// A runMenu with the given menus.
    pub fn new(menus: Vec<Menu>) -> RunMenu {
        RunMenu {
            menus,
            ..RunMenu::default()
        }
    }
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

impl Menu {
    /// A menu with an id and main prompt.
    pub fn new(id: impl Into<String>, main_prompt: impl Into<String>) -> Menu {
        Menu {
            id: id.into(),
            main_prompt: Some(main_prompt.into()),
            ..Menu::default()
        }
    }

    /// Adds an option.
    pub fn option(mut self, dtmf: impl Into<String>, action: MenuAction) -> Self {
        self.options.push(MenuOption {
            dtmf: dtmf.into(),
            action,
        });
        self
    }
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
            .answer()
            .say("Hi", "en-US")
            .connect_pstn(ConnectPstn::to("+46700000000").cli("private"))
            .build()
            .unwrap();
        assert_eq!(
            svaml.to_value(),
            json!({
                "instructions": [
                    {"name": "answer"},
                    {"name": "say", "text": "Hi", "locale": "en-US"}
                ],
                "action": {"name": "connectPstn", "number": "+46700000000", "cli": "private"}
            })
        );
        assert_eq!(
            Svaml::new(Action::Hangup).to_value(),
            json!({"action": {"name": "hangup"}})
        );
        assert!(matches!(
            Svaml::builder().say("a", "en-US").build(),
            Err(SvamlError::MissingAction)
        ));
    }

    #[test]
    fn roundtrip_menu_and_enums() {
        let svaml = Svaml::builder()
            .run_menu(RunMenu::new(vec![
                Menu::new("main", "#tts[Press 1]")
                    .option("1", MenuAction::Menu("sub".into()))
                    .option("2", MenuAction::Return("sales".into())),
                Menu::new("sub", "#tts[Sub]"),
            ]))
            .build()
            .unwrap();
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
}
