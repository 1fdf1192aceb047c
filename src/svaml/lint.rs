//! Lint rules for what the JSON Schemas cannot express. Every rule has a stable code, a severity
//! and the source it rests on ([`RULES`]), judged by the evidence bar written once in
//! [`super::policy`]: a rule refuses where a current Sinch source says the reply is an error, and
//! then carries the quoted line and the date it was read ([`Rule::quote`], [`Rule::read`]);
//! everything else is a warning, recorded and counted but never a reason to replace a reply.
//! "strict" says whether strict mode (canonical spelling, for CI) turns the warning into an error.
//! The audible lints (SVAML090-093) say what a caller would hear; they are never refusals.
//!
//! Sources: JAVA = `sinch/sinch-sdk-java` `openapi-contracts/src/main/com/sinch/sdk/domains/`
//! (generated from Sinch's Voice API OpenAPI 1.0.1); NODE = `sinch/sinch-sdk-node` `packages/`;
//! LEGACY = `sinch/docs` `docs/voice/voice-rest-api/voice-rest-api-callback-api.md`;
//! SKILLS = `sinch/skills` `skills/sinch-voice-api/references/svaml.md`; WEB = developers.sinch.com.
//!
//! | code | severity | strict | rule | source |
//! |---|---|---|---|---|
//! | SVAML001 | error | error | action not allowed for the event | WEB /docs/voice/api-reference/svaml (actions table); manage: NODE ManagedCallSvamlRequestBody, JAVA ManagedCallSvamlAction, and startRecording/stopRecording from `sinch/docs` voice-rest-api-calling-api.md |
//! | SVAML002 | error | error | instruction not allowed for ICE/ACE/PIE | SKILLS instruction table; WEB /docs/voice/api-reference/svaml/instructions |
//! | SVAML003 | warning | error | action/instruction name in another casing than lowerCamel | WEB /docs/voice/api-reference/svaml (lowerCamel); other casings on WEB /docs/voice/api-reference/recording, /docs/in-app-calling/voice-recording, LEGACY |
//! | SVAML004 | warning | error | manage-call body with an instruction other than playFiles/say | NODE calls-request-data.ts (callLeg: playFiles, say); NODE ManagedCallSvamlRequestBody allows any instruction |
//! | SVAML010 | warning | warning | connectPstn `number`/`cli` of digits without a leading `+` | LEGACY connectPstn (+461234567890); NODE voice/src/models/v1/custom-callout-request/custom-callout-request.ts (46000000001) |
//! | SVAML011 | warning | error | connectPstn `number`/`cli` is not a phone number (`cli` may be `private`) | JAVA voice/models/v1/svaml/action/SvamlActionConnectPstn.java; LEGACY (cli `private`) |
//! | SVAML020 | error | error | runMenu has no menu `main` and no `mainMenu` naming one of its menus | JAVA voice/models/v1/svaml/action/SvamlActionRunMenu.java, NODE svaml-action-run-menu.ts, .NET RunMenu.cs ("If no menu has an id value of main, an error is returned.") |
//! | SVAML021 | warning | error | runMenu `mainMenu` names no existing menu | svamlgate |
//! | SVAML022 | warning | error | option `menu(x)` names no existing menu (a dead branch: logged at error, counted in `svamlgate_gate_dead_branches_total`) | svamlgate |
//! | SVAML023 | warning | error | two options of one menu share the same DTMF | svamlgate |
//! | SVAML024 | error | error | option action is not `menu(<id>)` / `return(<value>)` | JAVA voice/models/v1/svaml/action/MenuOption.java and NODE option.ts ("The following values are accepted"); .NET DtmfAction (bare verbs) is hand-written, the generated model wins |
//! | SVAML025 | warning | error | two menus share the same id | svamlgate |
//! | SVAML026 | warning | error | no menu `main`, but `mainMenu` names one of the menus | JAVA SvamlActionRunMenu.java getMainMenu ("Selects the menu item from the menus array to play first.") vs getMenus (an error without `main`) |
//! | SVAML027 | warning | error | menu option DTMF contains `w` (a pause, not a key) | JAVA voice/models/v1/svaml/action/MenuOption.java (dtmf is a DTMF string, where w is a 500 ms pause) |
//! | SVAML030 | warning | error | connectPstn `locale` is not `ll-CC` | JAVA voice/models/v1/svaml/action/SvamlActionConnectPstn.java (getLocale) |
//! | SVAML031 | warning | error | TTS locale/voice in none of the known forms | WEB /docs/voice/api-reference/voice-locales; NODE voice/src/models/v1/enums.ts (TtsVoice, open) |
//! | SVAML032 | warning | error | playFiles with #tts/#ssml prompts but no `locale` | JAVA SvamlInstructionPlayFiles.java ("required" with TTS/SSML) vs JAVA CHANGELOG 1.4.0 ("no longer required") |
//! | SVAML033 | warning | error | connectPstn `indications: "false"` | JAVA SvamlActionConnectPstn.java IndicationsEnum has `false`; NODE and LEGACY list `no` |
//! | SVAML040 | error | error | cookie data of the call over 1024 bytes (keys + last value of each key) | LEGACY setCookie ("may not exceed 1024 bytes") |
//! | SVAML041 | warning | error | the same cookie key is set twice in one reply | svamlgate |
//! | SVAML050 | warning | error | malformed prompt (unbalanced brackets, unknown `#directive`, empty part) | JAVA voice/models/v1/svaml/action/Menu.java (prompt syntax) |
//! | SVAML051 | warning | error | prompt URL is not http(s) | JAVA Menu.java ("URL references to external media resources") |
//! | SVAML052 | warning | error | plain text (with spaces) used as a prompt | JAVA Menu.java (#tts[], #ssml[], pre-recorded messages, URLs) |
//! | SVAML053 | warning | warning | `#ssml[...]` content does not start with `<speak>` | WEB svaml.instruction.playFiles example `#ssml[Thank you for calling Sinch!]` vs JAVA Menu.java / SKILLS `<speak>` |
//! | SVAML060 | warning | warning | connectMxp uses the SDK spelling `callheaders` | JAVA voice/models/v1/svaml/action/SvamlActionConnectMxpImpl.java, .NET ConnectMxp (`callheaders`) vs NODE/LEGACY (`callHeaders`) |
//! | SVAML061 | error | error | call header key + value exceed 1024 bytes | LEGACY call headers ("maximum size … is 1024 bytes") |
//! | SVAML062 | warning | error | connectMxp has both `callHeaders` and `callheaders` | svamlgate |
//! | SVAML070 | warning | warning | connectSip `transport` in lower case | JAVA SvamlActionConnectSip.java (upper case) vs NODE (both) and LEGACY (`tls`) |
//! | SVAML071 | warning | error | connectStream endpoint is not a ws:// or wss:// URL | JAVA voice/models/v1/destination/DestinationWebSocket.java |
//! | SVAML072 | warning | error | connectSip endpoint does not look like a SIP address | LEGACY connectSip (46708000000@sip.foo.com) |
//! | SVAML073 | warning | error | recording `destinationUrl` scheme is not s3/azure/gs/https | WEB /docs/in-app-calling/voice-recording (S3, Azure Blob Storage, Google Cloud Storage) |
//! | SVAML080 | error | error | `say` text longer than the account's limit (default 600, `SVAMLGATE_MAX_SAY_CHARS`) | JAVA voice/models/v1/svaml/instruction/SvamlInstructionSay.java ("Default maximum length is 600 characters. To change this limit, please contact support.") |
//! | SVAML090 | warning | warning | `say` text or `#tts[…]`/`#ssml[…]` content empty, or only punctuation or whitespace (audible) | svamlgate |
//! | SVAML091 | warning | warning | `playFiles` in an ICE reply with no `answer` before it (audible) | SKILLS SKILL.md gotcha 6 ("Place `answer` before `playFiles`") |
//! | SVAML092 | warning | warning | ICE reply that hangs up without any `say` or `playFiles` (audible) | svamlgate |
//! | SVAML093 | warning | warning | the menu a runMenu plays first has no `mainPrompt`, or a blank one (audible) | svamlgate |
//!
//! Lints only look at members whose JSON type is what they expect, so they never panic and do
//! not repeat schema errors on malformed documents.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::{Map, Value};

use super::report::{render_found, Severity, Violation};
use super::Target;

/// A lint rule: code, severity in normal mode, whether strict mode makes it an error, and the
/// source it rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Stable code, `SVAMLnnn`.
    pub code: &'static str,
    /// Severity in normal mode.
    pub severity: Severity,
    /// Whether strict mode turns a warning of this rule into an error.
    pub strict_error: bool,
    /// What the rule checks.
    pub summary: &'static str,
    /// Doc page or SDK file the rule rests on (`svamlgate` when no Sinch source states it).
    pub source: &'static str,
    /// The line of the source the verdict rests on, quoted as read (empty when the rule has no
    /// Sinch source). Every refusing rule has one (see [`super::policy`], the evidence bar).
    pub quote: &'static str,
    /// When the quoted line was last read at its source (`YYYY-MM-DD`), or why it was not re-read.
    pub read: &'static str,
}

impl Rule {
    /// A violation of this rule at `pointer`.
    pub fn at(&self, pointer: impl Into<String>, message: impl Into<String>) -> Violation {
        let v = Violation::new(self.severity, pointer, self.code, message)
            .source(self.source)
            .strict_error(self.strict_error);
        if self.quote.is_empty() {
            v
        } else {
            v.evidence(self.quote, self.read)
        }
    }

    /// This rule with the quoted line of its source and the date it was read.
    const fn says(mut self, quote: &'static str, read: &'static str) -> Rule {
        self.quote = quote;
        self.read = read;
        self
    }
}

const fn rule(
    code: &'static str,
    severity: Severity,
    strict_error: bool,
    summary: &'static str,
    source: &'static str,
) -> Rule {
    Rule {
        code,
        severity,
        strict_error,
        summary,
        source,
        quote: "",
        read: "",
    }
}

/// The day the sources quoted below were re-read (with the search tool's copies of Sinch's SDK
/// repositories and developers.sinch.com).
pub const READ: &str = super::policy::EVIDENCE_READ_ON;

use Severity::{Error as E, Warning as W};

const NONE: &str = super::policy::NO_SINCH_SOURCE;

/// Action not allowed for the event.
pub const R001: Rule = rule("SVAML001", E, true, "action not allowed for the event",
    "developers.sinch.com/docs/voice/api-reference/svaml (actions table ICE/ACE/PIE); manage-call: sinch-sdk-node voice/src/models/v1 (ManagedCallSvamlRequestBody), sinch-sdk-java voice/models/v1/svaml/internal/SvamlActionPatchInternalImpl.java, and startRecording/stopRecording: sinch/docs docs/voice/voice-rest-api/voice-rest-api-calling-api.md")
    .says("| Action | Functionality | ICE | ACE | PIE* | … | continue | Continues the call | ☐ | ☑ | ☑ |", READ);
/// Instruction not allowed for ICE, ACE or PIE.
pub const R002: Rule = rule("SVAML002", E, true, "instruction not allowed for the event",
    "sinch/skills skills/sinch-voice-api/references/svaml.md (instructions table ICE/ACE/PIE); developers.sinch.com/docs/voice/api-reference/svaml/instructions")
    .says("| Instruction | ICE | ACE | PIE | … | `sendDtmf` | ✅ | — | ✅ | … | `answer` | ✅ | — | — |", READ);
/// Name in another casing than lowerCamel.
pub const R003: Rule = rule("SVAML003", W, true, "action/instruction name not in lowerCamel casing",
    "developers.sinch.com/docs/voice/api-reference/svaml (lowerCamel names); Sinch pages also publish other casings: developers.sinch.com/docs/voice/api-reference/recording (StartRecording, Say), /docs/in-app-calling/voice-recording (connectMXP), sinch/docs voice-rest-api-callback-api.md (ConnectPstn, RunMenu, Hangup, …)")
    .says("{\"name\" : \"ConnectPstn\", \"number\" : \"+461234567890\", …} (sinch/docs voice-rest-api-callback-api.md, ConnectPstn example)", READ);
/// Manage-call body with an instruction other than playFiles or say.
pub const R004: Rule = rule("SVAML004", W, true, "manage-call body with an instruction other than playFiles or say",
    "sinch-sdk-node calls-request-data.ts (callLeg applies to playFiles and say); ManagedCallSvamlRequestBody types instructions as any SvamlInstruction");
/// Phone number without the leading plus.
pub const R010: Rule = rule("SVAML010", W, false, "connectPstn number/cli of digits without a leading +",
    "sinch/docs voice-rest-api-callback-api.md connectPstn (E.164, example +461234567890); Sinch's own inline ICE example uses 46000000001: sinch-sdk-node voice/src/models/v1/custom-callout-request/custom-callout-request.ts")
    .says("If inline ICE SVAML is passed, exclude *cli* and *destination* properties from the *customCallout* request body. Example: {\"action\":{\"name\":\"connectPstn\",\"number\":\"46000000001\",\"maxDuration\":90}}", READ);
/// Not a phone number.
pub const R011: Rule = rule("SVAML011", W, true, "connectPstn number/cli is not a phone number (cli may be private)",
    "sinch-sdk-java voice/models/v1/svaml/action/SvamlActionConnectPstn.java (getNumber, getCli); sinch/docs voice-rest-api-callback-api.md (cli \"private\")")
    .says("Used to override the CLI (or caller ID) of the client. The phone number of the person who initiated the call is shown as the CLI. To set your own CLI, you may use your verified number or your Dashboard virtual number.", READ);
/// No menu `main`, and no `mainMenu` naming a menu: Sinch returns an error.
pub const R020: Rule = rule("SVAML020", E, true, "runMenu has no menu with id main and no mainMenu naming one of its menus",
    "sinch-sdk-java voice/models/v1/svaml/action/SvamlActionRunMenu.java (getMenus), generated from Sinch's Voice API description; the same sentence in sinch-sdk-node packages/voice/src/models/v1/mod-svaml/svaml-action-run-menu/svaml-action-run-menu.ts (menus) and sinch-sdk-dotnet src/Sinch/Voice/Calls/Actions/RunMenu.cs (Menus). The legacy page says it too: sinch/docs docs/voice/voice-rest-api/voice-rest-api-callback-api.md (RunMenu: \"The menu with “id” : “main” will always play first, otherwise an error will be returned.\"). Sinch's serializer test DTOs without a menu main are round-trip data, not replies")
    .says("The list of menus available. The menu with the id value of main will always play first. If no menu has an id value of main, an error is returned.", READ);
/// `mainMenu` names no menu.
pub const R021: Rule = rule(
    "SVAML021",
    W,
    true,
    "runMenu mainMenu names no existing menu",
    NONE,
);
/// `menu(x)` names no menu.
pub const R022: Rule = rule(
    "SVAML022",
    W,
    true,
    "menu option goes to a menu that does not exist",
    NONE,
);
/// Duplicate DTMF in one menu.
pub const R023: Rule = rule(
    "SVAML023",
    W,
    true,
    "two options of one menu share the same DTMF",
    NONE,
);
/// Option action grammar.
pub const R024: Rule = rule("SVAML024", E, true, "menu option action is not menu(<id>) or return(<value>)",
    "sinch-sdk-java voice/models/v1/svaml/action/MenuOption.java (getAction), generated from Sinch's Voice API description, and sinch-sdk-node packages/voice/src/models/v1/option/option.ts (action, current version). sinch-sdk-dotnet src/Sinch/Voice/Calls/Actions/RunMenu.cs (DtmfAction) is hand-written and lists only the verbs \"menu\" and \"return\" without an argument; the generated model wins, so a bare verb is refused too")
    .says("Determines which action is taken when the DTMF digit is pressed. The following values are accepted: - If you want to navigate to another menu, use menu(value). - If you want to perform another behavior you have coded in your application, use return (value)", READ);
/// No menu `main`, but `mainMenu` names an existing menu.
pub const R026: Rule = rule("SVAML026", W, true, "runMenu has no menu with id main; mainMenu names the menu to play first",
    "sinch-sdk-java voice/models/v1/svaml/action/SvamlActionRunMenu.java: getMainMenu selects the first menu, while getMenus says an error is returned without a menu main; the sources conflict, so this is a warning")
    .says("Selects the menu item from the menus array to play first.", READ);
/// Duplicate menu id.
pub const R025: Rule = rule("SVAML025", W, true, "two menus share the same id", NONE);
/// `w` in a menu option's DTMF.
pub const R027: Rule = rule("SVAML027", W, true, "menu option DTMF contains w (a pause, not a key)",
    "sinch-sdk-java voice/models/v1/svaml/action/MenuOption.java (dtmf is a DTMF string; w is a 500 ms pause: SvamlActionConnectPstn.java getDtmf)")
    .says("A DTMF digit the user can press to trigger the configured action. (ConnectPstn getDtmf: w renders a 500ms pause.)", READ);
/// connectPstn locale form.
pub const R030: Rule = rule("SVAML030", W, true, "connectPstn locale is not ll-CC",
    "sinch-sdk-java voice/models/v1/svaml/action/SvamlActionConnectPstn.java (getLocale: ISO 639 code, dash, ISO 3166-1 alpha-2)")
    .says("Specifies the locale. Uses the language code according to ISO 639, a dash (-), and a country code according to ISO 3166-1 alpha-2. If not specified, the default locale of en-US is used.", READ);
/// TTS locale form.
pub const R031: Rule = rule("SVAML031", W, true, "TTS locale or voice in none of the known forms",
    "developers.sinch.com/docs/voice/api-reference/voice-locales; sinch-sdk-node voice/src/models/v1/enums.ts (TtsVoice, open list)");
/// playFiles TTS without locale.
pub const R032: Rule = rule("SVAML032", W, true, "playFiles plays #tts/#ssml prompts without a locale",
    "sinch-sdk-java voice/models/v1/svaml/instruction/SvamlInstructionPlayFiles.java (\"If using SSML or TTS, this is a required field\") vs sinch-sdk-java CHANGELOG 1.4.0 (\"no longer required\")");
/// indications "false".
pub const R033: Rule = rule("SVAML033", W, true, "connectPstn indications is \"false\"",
    "sinch-sdk-java voice/models/v1/svaml/action/SvamlActionConnectPstn.java (IndicationsEnum.FALSE) vs sinch-sdk-node and sinch/docs voice-rest-api-callback-api.md (Norway is \"no\")")
    .says("public static final IndicationsEnum FALSE = new IndicationsEnum(\"false\"); (Java) vs type Indication = … | 'nl' | 'no' | 'nz' | … (Node)", READ);
/// Cookie budget.
pub const R040: Rule = rule("SVAML040", E, true, "cookie data of the call exceeds 1024 bytes",
    "sinch/docs voice-rest-api-callback-api.md setCookie (\"The total size of cookie data (keys and values) may not exceed 1024 bytes\")")
    .says("Limitations: The total size of cookie data (keys and values) may not exceed 1024 bytes.", READ);
/// Duplicate cookie key.
pub const R041: Rule = rule(
    "SVAML041",
    W,
    true,
    "the same cookie key is set twice in one reply",
    NONE,
);
/// Malformed prompt.
pub const R050: Rule = rule("SVAML050", W, true, "malformed prompt (brackets, unknown #directive, empty part)",
    "sinch-sdk-java voice/models/v1/svaml/action/Menu.java (getMainPrompt: #tts[], #ssml[], #href[...], URLs, joined with ;)")
    .says("You can use text-to-speech using the #tts[] element, SSML commands using the #ssml[] element, pre-recorded messages, or URL references to external media resources. You can use multiple prompts by separating each prompt with a semi-colon (;).", READ);
/// Prompt URL scheme.
pub const R051: Rule = rule("SVAML051", W, true, "prompt URL is not an absolute http(s) URL",
    "sinch-sdk-java voice/models/v1/svaml/action/Menu.java (\"URL references to external media resources\")")
    .says("For external media resources, you can use an #href[...] or directly specify the full URL.", READ);
/// Plain text as a prompt.
pub const R052: Rule = rule("SVAML052", W, true, "plain text used as a prompt",
    "sinch-sdk-java voice/models/v1/svaml/action/Menu.java (#tts[], #ssml[], pre-recorded messages, or URL references)")
    .says("You can use text-to-speech using the #tts[] element, SSML commands using the #ssml[] element, pre-recorded messages, or URL references to external media resources.", READ);
/// SSML without `<speak>`.
pub const R053: Rule = rule("SVAML053", W, false, "#ssml[...] content does not start with <speak>",
    "developers.sinch.com/docs/voice/api-reference/svaml/instructions (playFiles example #ssml[Thank you for calling Sinch!]) vs sinch/skills references/svaml.md (#ssml[<speak>…</speak>])");
/// `callheaders` spelling.
pub const R060: Rule = rule("SVAML060", W, false, "connectMxp uses the SDK spelling callheaders",
    "sinch-sdk-java voice/models/v1/svaml/action/SvamlActionConnectMxpImpl.java and sinch-sdk-dotnet src/Sinch/Voice/Calls/Actions (callheaders) vs sinch-sdk-node and sinch/docs (callHeaders)");
/// Call header size.
pub const R061: Rule = rule("SVAML061", E, true, "call header key + value exceed 1024 bytes",
    "sinch/docs voice-rest-api-callback-api.md (\"The maximum size for the value of call headers is 1024 bytes\")")
    .says("The maximum size for the value of call headers is 1024 bytes (counted as the UTF-8 encoded size of each header key/value pair)", "not re-read on 2026-12-02: the page is not in the search tool's index; quoted as recorded in svamlgate's spec notes");
/// Both header spellings.
pub const R062: Rule = rule(
    "SVAML062",
    W,
    true,
    "connectMxp has both callHeaders and callheaders",
    NONE,
);
/// Lower-case transport.
pub const R070: Rule = rule("SVAML070", W, false, "connectSip transport in lower case",
    "sinch-sdk-java voice/models/v1/svaml/action/SvamlActionConnectSip.java (UDP, TCP, TLS) vs sinch-sdk-node (both cases) and sinch/docs voice-rest-api-callback-api.md (\"tls\")")
    .says("TransportEnum UDP = new TransportEnum(\"UDP\") (Java) vs transport?: 'udp' | 'tcp' | 'tls' | 'UDP' | 'TCP' | 'TLS' | string (Node) and \"transport\": \"tls\" (sinch/docs connectSIP example)", READ);
/// Stream endpoint.
pub const R071: Rule = rule("SVAML071", W, true, "connectStream endpoint is not a ws:// or wss:// URL",
    "sinch-sdk-java voice/models/v1/destination/DestinationWebSocket.java (\"The Stream/Websocket server address\")");
/// SIP endpoint.
pub const R072: Rule = rule(
    "SVAML072",
    W,
    true,
    "connectSip endpoint does not look like a SIP address",
    "sinch/docs voice-rest-api-callback-api.md connectSip (46708000000@sip.foo.com)",
)
.says(
    "\"destination\": { \"endpoint\": \"46708000000@sip.foo.com\" }",
    READ,
);
/// Recording destination scheme.
pub const R073: Rule = rule("SVAML073", W, true, "recording destinationUrl scheme is not s3, azure, gs or https",
    "developers.sinch.com/docs/in-app-calling/voice-recording (Amazon S3, Azure Blob Storage, Google Cloud Storage)");
/// say text length.
pub const R080: Rule = rule("SVAML080", E, true, "say text longer than the account's limit",
    "sinch-sdk-java voice/models/v1/svaml/instruction/SvamlInstructionSay.java; sinch-sdk-node packages/voice/src/models/v1/mod-svaml/svaml-instruction-say/svaml-instruction-say.ts and sinch-sdk-dotnet Say (text)")
    .says("Contains the message that will be spoken. Default maximum length is 600 characters. To change this limit, please contact support.", READ);

/// Source of the audible lints: what the caller hears is svamlgate's own judgement.
const AUDIBLE: &str =
    "svamlgate audible lint (no Sinch source states this; a warning, never a refusal)";
/// `say` or `#tts[...]`/`#ssml[...]` text with nothing to speak.
pub const R090: Rule = rule(
    "SVAML090",
    W,
    false,
    "say or #tts/#ssml text is empty, or only punctuation or whitespace",
    AUDIBLE,
);
/// playFiles on ICE with no answer before it.
pub const R091: Rule = rule("SVAML091", W, false, "playFiles in an ICE reply without an answer instruction before it",
    "sinch/skills skills/sinch-voice-api/SKILL.md (Gotchas and Best Practices 6; Instructions table: answer \"Required before playing prompts on unanswered calls\"); sinch/skills skills/sinch-voice-api/references/svaml.md (answer: \"Place before `playFiles` if playing audio on an unanswered call.\")")
    .says("Instruction ordering matters. Array order = execution order. Place `answer` before `playFiles`; place `startRecording` before the connecting action.", READ);
/// hangup on ICE with no prompt at all.
pub const R092: Rule = rule(
    "SVAML092",
    W,
    false,
    "ICE reply hangs up without any say or playFiles",
    AUDIBLE,
);
/// runMenu whose first menu has no main prompt.
pub const R093: Rule = rule(
    "SVAML093",
    W,
    false,
    "runMenu: the menu played first has no mainPrompt, or an empty one",
    AUDIBLE,
);

/// Every lint rule, in code order.
pub const RULES: &[Rule] = &[
    R001, R002, R003, R004, R010, R011, R020, R021, R022, R023, R024, R025, R026, R027, R030, R031,
    R032, R033, R040, R041, R050, R051, R052, R053, R060, R061, R062, R070, R071, R072, R073, R080,
    R090, R091, R092, R093,
];

/// Rules whose finding is a certain dead branch of the call when the caller reaches it (a key
/// that leads to a menu that does not exist). They stay warnings (the rest of the reply works),
/// but the reply path logs them at error and counts them in
/// `svamlgate_gate_dead_branches_total{event,rule}` as well as with the other warnings.
pub const DEAD_BRANCH_RULES: &[&str] = &[R022.code];

/// Whether a finding of this code is a certain dead branch ([`DEAD_BRANCH_RULES`]).
pub fn is_dead_branch(code: &str) -> bool {
    DEAD_BRANCH_RULES.contains(&code)
}

static E164: LazyLock<Regex> = LazyLock::new(|| re(r"^\+[1-9][0-9]{5,14}$"));
static DIGITS: LazyLock<Regex> = LazyLock::new(|| re(r"^[0-9]+$"));
static LOCALE: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z]{2,3}-[A-Z]{2}$"));
static TTS_LOCALE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(?:[a-z]{2,3}(?:-[A-Za-z0-9]{2,4}){0,2}(?:/\p{L}[\p{L}\- ]*)?|\p{Lu}\p{L}+)$")
});
static MENU_ACTION: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^(menu|return)\s*\((.*)\)$"));
/// A pre-recorded message name or file id such as `welcome` or `greeting.wav`.
static FILE_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_.\-/]+$"));

fn re(pattern: &str) -> Regex {
    // The patterns are constants covered by tests; an invalid one is a programming error that
    // must surface at the first check rather than silently disabling a rule.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("lint regex is valid")
}

/// Cookie data budget (keys + values of a call's cookies, last value of each key, bytes).
pub const COOKIE_BUDGET_BYTES: usize = 1024;
/// Maximum size of one call header key + value (UTF-8 bytes).
pub const CALL_HEADER_MAX_BYTES: usize = 1024;

/// What a lint run knows beyond the document.
pub(crate) struct LintContext<'a> {
    /// Largest accepted `say` text, in characters.
    pub max_say_chars: usize,
    /// Cookies set by earlier replies of the call (last value of each key).
    pub earlier_cookies: &'a BTreeMap<String, String>,
}

fn str_of<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// Runs every lint rule on `doc` (names already in canonical casing) for `target`.
pub(crate) fn lint(doc: &Value, target: Target, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
    let Some(root) = doc.as_object() else {
        return;
    };
    if let Some(Value::Array(instructions)) = root.get("instructions") {
        lint_instructions(instructions, target, ctx, out);
    }
    if let Some(Value::Object(action)) = root.get("action") {
        lint_action(action, out);
        if target == Target::Ice && str_of(action, "name") == Some("hangup") {
            let prompts = root
                .get("instructions")
                .and_then(Value::as_array)
                .is_some_and(|list| {
                    list.iter().any(|i| {
                        matches!(
                            i.get("name").and_then(Value::as_str),
                            Some("say" | "playFiles")
                        )
                    })
                });
            if !prompts {
                out.push(
                    R092.at("/action/name", "the reply hangs up an incoming call without saying or playing anything")
                        .hint("the caller hears the call drop without a word; add a say or playFiles before the hangup (e.g. why the call ends)"),
                );
            }
        }
    }
}

/// Whether a text has nothing a TTS engine would speak: empty, or only whitespace and
/// punctuation (no letter or digit). With `markup` (SSML), tags are not spoken and are skipped.
pub(crate) fn is_silent(text: &str, markup: bool) -> bool {
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' if markup => in_tag = true,
            '>' if markup => in_tag = false,
            c if !in_tag && c.is_alphanumeric() => return false,
            _ => {}
        }
    }
    true
}

fn silent_text(pointer: String, text: &str) -> Violation {
    R090.at(
        pointer,
        "nothing to speak: the text is empty or only punctuation or whitespace",
    )
    .found(render_found("", &Value::from(text)))
    .hint("a connected caller hears silence here; write the words to speak")
}

fn lint_instructions(
    instructions: &[Value],
    target: Target,
    ctx: &LintContext<'_>,
    out: &mut Vec<Violation>,
) {
    let mut cookies = CookieTally::new(ctx.earlier_cookies);
    let mut answered = false;
    for (i, instruction) in instructions.iter().enumerate() {
        let Some(obj) = instruction.as_object() else {
            continue;
        };
        let base = format!("/instructions/{i}");
        let name = str_of(obj, "name");
        if target == Target::Manage {
            lint_manage_instruction(name, &base, out);
        }
        match name {
            Some("answer") => answered = true,
            Some("playFiles") => {
                if target == Target::Ice && !answered {
                    out.push(play_files_unanswered(&base));
                }
                lint_play_files(obj, &base, out);
            }
            Some("say") => lint_say(obj, &base, ctx, out),
            Some("setCookie") => cookies.set(obj, i, &base, out),
            Some("startRecording") => {
                if let Some(options) = obj.get("options").and_then(Value::as_object) {
                    check_recording_destination(options, &format!("{base}/options"), out);
                }
            }
            _ => {}
        }
    }
    cookies.check_budget(out);
}

/// SVAML004: a manage-call body with an instruction other than playFiles or say.
fn lint_manage_instruction(name: Option<&str>, base: &str, out: &mut Vec<Violation>) {
    if let Some(name) = name.filter(|n| !matches!(*n, "playFiles" | "say")) {
        out.push(
            R004.at(
                format!("{base}/name"),
                format!("instruction {name} in a manage-call body; Sinch documents playFiles and say for these endpoints"),
            )
            .found(name)
            .hint("check that Sinch carries this instruction out on a manage-call request"),
        );
    }
}

/// SVAML091: playFiles on an incoming call before any answer instruction.
fn play_files_unanswered(base: &str) -> Violation {
    R091.at(
        format!("{base}/name"),
        "playFiles on an incoming call with no answer instruction before it",
    )
    .expected("an {\"name\": \"answer\"} instruction before playFiles")
    .hint("the call is not answered yet: the caller may hear ringing or nothing instead of the files; put an answer instruction first")
}

/// The prompts of a playFiles and its locale (SVAML032 when TTS prompts have none).
fn lint_play_files(obj: &Map<String, Value>, base: &str, out: &mut Vec<Violation>) {
    let mut uses_tts = false;
    if let Some(Value::Array(ids)) = obj.get("ids") {
        for (j, id) in ids.iter().enumerate() {
            if let Some(prompt) = id.as_str() {
                uses_tts |= check_prompt(prompt, &format!("{base}/ids/{j}"), out);
            }
        }
    }
    match obj.get("locale") {
        Some(Value::String(locale)) => check_tts_locale(locale, format!("{base}/locale"), out),
        None if uses_tts => out.push(
            R032.at(
                format!("{base}/locale"),
                "playFiles plays #tts/#ssml prompts but has no locale",
            )
            .expected("a TTS locale such as en-US")
            .hint("add \"locale\"; Sinch's API description calls it required with TTS or SSML, the Java SDK dropped that requirement in 1.4.0"),
        ),
        _ => {}
    }
}

/// A say's locale, missing or silent text (SVAML090) and text length (SVAML080).
fn lint_say(obj: &Map<String, Value>, base: &str, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
    if let Some(locale) = str_of(obj, "locale") {
        check_tts_locale(locale, format!("{base}/locale"), out);
    }
    match obj.get("text") {
        None => out.push(
            R090.at(format!("{base}/text"), "say without text: nothing to speak")
                .expected("text")
                .hint("a connected caller hears silence here; add the words to speak"),
        ),
        Some(Value::String(text)) if is_silent(text, false) => {
            out.push(silent_text(format!("{base}/text"), text));
        }
        _ => {}
    }
    let Some(text) = str_of(obj, "text") else {
        return;
    };
    let chars = text.chars().count();
    if chars > ctx.max_say_chars {
        out.push(
            R080.at(
                format!("{base}/text"),
                format!(
                    "say text has {chars} characters; the limit is {}",
                    ctx.max_say_chars
                ),
            )
            .expected(format!("at most {} characters", ctx.max_say_chars))
            .found(format!("{chars} characters"))
            .hint("shorten the text or split it over several say instructions; Sinch's default limit is 600 and support can raise it per account (then set SVAMLGATE_MAX_SAY_CHARS)"),
        );
    }
}

/// The call's cookies as the reply's setCookie instructions change them (SVAML041, SVAML040).
struct CookieTally<'a> {
    earlier: &'a BTreeMap<String, String>,
    cookies: BTreeMap<String, String>,
    keys_here: Vec<&'a str>,
    last_cookie: Option<usize>,
}

impl<'a> CookieTally<'a> {
    fn new(earlier: &'a BTreeMap<String, String>) -> Self {
        CookieTally {
            earlier,
            cookies: earlier.clone(),
            keys_here: Vec::new(),
            last_cookie: None,
        }
    }

    /// The setCookie instruction `i`: a key set twice in this reply gives SVAML041.
    fn set(&mut self, obj: &'a Map<String, Value>, i: usize, base: &str, out: &mut Vec<Violation>) {
        let Some(key) = str_of(obj, "key") else {
            return;
        };
        let value = str_of(obj, "value").unwrap_or_default();
        if self.keys_here.contains(&key) {
            out.push(
                R041.at(
                    format!("{base}/key"),
                    format!("cookie `{key}` is set more than once in this reply"),
                )
                .hint("set each cookie once; svamlgate counts only the last value against the 1024-byte budget"),
            );
        } else {
            self.keys_here.push(key);
        }
        self.cookies.insert(key.to_owned(), value.to_owned());
        self.last_cookie = Some(i);
    }

    /// SVAML040 at the last setCookie when the call's cookie data exceeds the budget.
    fn check_budget(&self, out: &mut Vec<Violation>) {
        let Some(i) = self.last_cookie else {
            return;
        };
        let total = cookie_bytes(&self.cookies);
        if total <= COOKIE_BUDGET_BYTES {
            return;
        }
        let earlier: usize = self
            .earlier
            .iter()
            .filter(|(k, _)| !self.keys_here.contains(&k.as_str()))
            .map(|(k, v)| k.len() + v.len())
            .sum();
        let message = if earlier > 0 {
            format!("cookie data of this call would be {total} bytes ({earlier} of them from cookies set by earlier replies), over {COOKIE_BUDGET_BYTES}")
        } else {
            format!("cookie data (setCookie keys and values) would be {total} bytes, over {COOKIE_BUDGET_BYTES}")
        };
        out.push(
            R040.at(format!("/instructions/{i}"), message)
                .expected(format!("at most {COOKIE_BUDGET_BYTES} bytes"))
                .found(format!("{total} bytes"))
                .hint("store less in cookies; keep large state on your server keyed by callid"),
        );
    }
}

/// Bytes of cookie data: keys plus values.
pub(crate) fn cookie_bytes(cookies: &BTreeMap<String, String>) -> usize {
    cookies.iter().map(|(k, v)| k.len() + v.len()).sum()
}

fn check_recording_destination(
    options: &Map<String, Value>,
    pointer: &str,
    out: &mut Vec<Violation>,
) {
    let Some(url) = str_of(options, "destinationUrl") else {
        return;
    };
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("s3" | "azure" | "gs" | "https")) {
        out.push(
            R073.at(
                format!("{pointer}/destinationUrl"),
                "recording destinationUrl has an unexpected scheme",
            )
            .expected("s3://…, azure://…, gs://… or https://…")
            .found(render_found("", &Value::from(url)))
            .hint("use a storage URL such as s3://my-bucket/"),
        );
    }
}

fn lint_action(action: &Map<String, Value>, out: &mut Vec<Violation>) {
    if let Some(options) = action.get("recordingOptions").and_then(Value::as_object) {
        check_recording_destination(options, "/action/recordingOptions", out);
    }
    match str_of(action, "name") {
        Some("connectPstn") => lint_connect_pstn(action, out),
        Some("connectMxp") => lint_connect_mxp(action, out),
        Some("connectSip") => {
            lint_connect_sip(action, out);
            check_headers(action, "callHeaders", out);
        }
        Some("connectStream") => {
            lint_connect_stream(action, out);
            check_headers(action, "callHeaders", out);
        }
        Some("runMenu") => lint_run_menu(action, out),
        Some("park") => lint_park(action, out),
        _ => {}
    }
}

/// connectPstn: number and cli (SVAML010/011), locale (SVAML030), indications (SVAML033).
fn lint_connect_pstn(action: &Map<String, Value>, out: &mut Vec<Violation>) {
    if let Some(number) = str_of(action, "number") {
        check_number(number, "/action/number", false, out);
    }
    if let Some(cli) = str_of(action, "cli") {
        check_number(cli, "/action/cli", true, out);
    }
    if let Some(locale) = str_of(action, "locale") {
        if !LOCALE.is_match(locale) {
            out.push(
                R030.at(
                    "/action/locale",
                    "locale is not an ISO 639 language code, '-', and an ISO 3166-1 alpha-2 country code",
                )
                .expected("ll-CC, e.g. en-US")
                .found(render_found("", &Value::from(locale)))
                .hint(locale_hint(locale)),
            );
        }
    }
    if str_of(action, "indications") == Some("false") {
        out.push(
            R033.at("/action/indications", "indications \"false\" is in the Java SDK's enum only")
                .found("false")
                .hint("\"false\" looks like a YAML reading of Norway's code; for Norway use \"no\", or omit indications"),
        );
    }
}

/// connectMxp: the header spellings (SVAML060/062) and both header lists.
fn lint_connect_mxp(action: &Map<String, Value>, out: &mut Vec<Violation>) {
    let upper = action.get("callHeaders");
    let lower = action.get("callheaders");
    if lower.is_some() {
        if upper.is_some() {
            out.push(
                R062.at(
                    "/action/callheaders",
                    "both callHeaders and callheaders are present",
                )
                .hint("keep only one; which one Sinch reads is not documented"),
            );
        } else {
            out.push(
                R060.at(
                    "/action/callheaders",
                    "callheaders (Java/.NET SDK spelling) used instead of callHeaders",
                )
                .expected("callHeaders")
                .hint("callHeaders is the spelling of Sinch's docs and Node SDK; the Java and .NET SDKs send callheaders"),
            );
        }
    }
    check_headers(action, "callHeaders", out);
    check_headers(action, "callheaders", out);
}

/// `destination.endpoint` of a connect action.
fn destination_endpoint(action: &Map<String, Value>) -> Option<&str> {
    action
        .get("destination")
        .and_then(Value::as_object)
        .and_then(|d| str_of(d, "endpoint"))
}

/// connectSip: transport casing (SVAML070) and the SIP endpoint (SVAML072).
fn lint_connect_sip(action: &Map<String, Value>, out: &mut Vec<Violation>) {
    if let Some(transport) = str_of(action, "transport") {
        if transport.bytes().any(|b| b.is_ascii_lowercase()) {
            out.push(
                R070.at(
                    "/action/transport",
                    "transport in lower case; the Java SDK's enum is upper case",
                )
                .expected(transport.to_ascii_uppercase())
                .found(transport)
                .hint("UDP, TCP or TLS (Sinch's Node SDK and docs also use lower case)"),
            );
        }
    }
    if let Some(endpoint) = destination_endpoint(action) {
        if !endpoint.contains('@') && !endpoint.starts_with("sip:") {
            out.push(
                R072.at(
                    "/action/destination/endpoint",
                    "SIP endpoint does not look like a SIP address",
                )
                .expected("user@host, e.g. 46708000000@sip.example.com")
                .found(render_found("", &Value::from(endpoint))),
            );
        }
    }
}

/// connectStream: the endpoint is a ws:// or wss:// URL (SVAML071).
fn lint_connect_stream(action: &Map<String, Value>, out: &mut Vec<Violation>) {
    let Some(endpoint) = destination_endpoint(action) else {
        return;
    };
    let lower = endpoint.to_ascii_lowercase();
    let ok = (lower.starts_with("wss://") && endpoint.len() > 6)
        || (lower.starts_with("ws://") && endpoint.len() > 5);
    if !ok || endpoint.contains(char::is_whitespace) {
        out.push(
            R071.at(
                "/action/destination/endpoint",
                "stream endpoint is not a WebSocket URL",
            )
            .expected("wss://host/path")
            .found(render_found("", &Value::from(endpoint)))
            .hint("use the wss:// URL of your WebSocket server"),
        );
    }
}

/// park: its prompts and TTS locale.
fn lint_park(action: &Map<String, Value>, out: &mut Vec<Violation>) {
    for key in ["introPrompt", "holdPrompt"] {
        if let Some(prompt) = str_of(action, key) {
            check_prompt(prompt, &format!("/action/{key}"), out);
        }
    }
    if let Some(locale) = str_of(action, "locale") {
        check_tts_locale(locale, "/action/locale".to_owned(), out);
    }
}

fn lint_run_menu(action: &Map<String, Value>, out: &mut Vec<Violation>) {
    if let Some(locale) = str_of(action, "locale") {
        check_tts_locale(locale, "/action/locale".to_owned(), out);
    }
    let Some(Value::Array(menus)) = action.get("menus") else {
        return;
    };
    let ids = menu_ids(menus, out);
    let main_menu = str_of(action, "mainMenu");
    if !menus.is_empty() && !ids.contains(&"main") {
        out.push(no_main_menu(main_menu, &ids));
    }
    check_first_prompt(menus, &ids, main_menu, out);
    if let Some(first) = main_menu {
        if !ids.contains(&first) {
            out.push(
                R021.at(
                    "/action/mainMenu",
                    "mainMenu does not name an existing menu",
                )
                .expected(ids.join("|"))
                .found(first)
                .hint("set mainMenu to the id of one of the menus, or remove it"),
            );
        }
    }
    for (i, menu) in menus.iter().enumerate() {
        if let Some(menu) = menu.as_object() {
            lint_menu(menu, i, &ids, out);
        }
    }
}

/// The menus' ids in order, each once; a repeated id gives SVAML025.
fn menu_ids<'a>(menus: &'a [Value], out: &mut Vec<Violation>) -> Vec<&'a str> {
    let mut ids: Vec<&str> = Vec::with_capacity(menus.len());
    for (i, menu) in menus.iter().enumerate() {
        if let Some(id) = menu.get("id").and_then(Value::as_str) {
            if ids.contains(&id) {
                out.push(
                    R025.at(
                        format!("/action/menus/{i}/id"),
                        format!("menu id `{id}` is used by more than one menu"),
                    )
                    .found(id)
                    .hint("give every menu a unique id"),
                );
            } else {
                ids.push(id);
            }
        }
    }
    ids
}

/// No menu has id `main`: SVAML026 when mainMenu names one of the menus, else SVAML020.
fn no_main_menu(main_menu: Option<&str>, ids: &[&str]) -> Violation {
    match main_menu {
        Some(first) if ids.contains(&first) => R026.at(
            "/action/menus",
            format!("no menu has id `main` (mainMenu selects `{first}`)"),
        )
        .expected("a menu with \"id\": \"main\"")
        .found(ids.join(", "))
        .hint("name the first menu main: Sinch's description says an error is returned without one, although mainMenu selects the first menu"),
        _ => R020.at(
            "/action/menus",
            "runMenu has no menu with id `main`, and no mainMenu naming one of its menus",
        )
        .expected("a menu with \"id\": \"main\"")
        .found(ids.join(", "))
        .hint("name the first menu main: Sinch returns an error for a runMenu without one, and the caller hears an error instead of the menu"),
    }
}

/// SVAML093: the menu played first (`main`, else the one mainMenu names) has no main prompt.
fn check_first_prompt(
    menus: &[Value],
    ids: &[&str],
    main_menu: Option<&str>,
    out: &mut Vec<Violation>,
) {
    let first = ids
        .iter()
        .position(|id| *id == "main")
        .or_else(|| main_menu.and_then(|m| ids.iter().position(|id| *id == m)))
        .and_then(|k| {
            let id = ids[k];
            menus
                .iter()
                .position(|m| m.get("id").and_then(Value::as_str) == Some(id))
        });
    let Some(i) = first else {
        return;
    };
    let blank = match menus[i].get("mainPrompt") {
        None => true,
        Some(Value::String(p)) => p.trim().is_empty(),
        Some(_) => false,
    };
    if blank {
        out.push(
            R093.at(
                format!("/action/menus/{i}/mainPrompt"),
                "the menu played first has no main prompt",
            )
            .expected("a mainPrompt such as #tts[Press 1 for sales]")
            .hint(
                "the caller hears silence and does not know which keys to press; add a mainPrompt",
            ),
        );
    }
}

/// One menu `i`: its prompts, then its options.
fn lint_menu(menu: &Map<String, Value>, i: usize, ids: &[&str], out: &mut Vec<Violation>) {
    for key in ["mainPrompt", "repeatPrompt"] {
        if let Some(prompt) = str_of(menu, key) {
            check_prompt(prompt, &format!("/action/menus/{i}/{key}"), out);
        }
    }
    let Some(Value::Array(options)) = menu.get("options") else {
        return;
    };
    let mut seen: Vec<&str> = Vec::with_capacity(options.len());
    for (j, option) in options.iter().enumerate() {
        let Some(option) = option.as_object() else {
            continue;
        };
        let base = format!("/action/menus/{i}/options/{j}");
        if let Some(dtmf) = str_of(option, "dtmf") {
            check_option_dtmf(dtmf, &base, &mut seen, out);
        }
        if let Some(option_action) = str_of(option, "action") {
            check_option_action(option_action, &base, ids, out);
        }
    }
}

/// A menu option's DTMF: used by an earlier option (SVAML023), or with a pause `w` (SVAML027).
fn check_option_dtmf<'a>(
    dtmf: &'a str,
    base: &str,
    seen: &mut Vec<&'a str>,
    out: &mut Vec<Violation>,
) {
    if seen.contains(&dtmf) {
        out.push(
            R023.at(
                format!("{base}/dtmf"),
                format!("DTMF `{dtmf}` selects more than one option of this menu"),
            )
            .found(dtmf)
            .hint("give every option of a menu different keys"),
        );
    } else {
        seen.push(dtmf);
    }
    if dtmf.contains('w') {
        out.push(
            R027.at(
                format!("{base}/dtmf"),
                "menu option DTMF contains w, a 500 ms pause that a caller cannot press",
            )
            .found(dtmf)
            .hint("use the keys the caller presses: 0-9 and #"),
        );
    }
}

/// A menu option's action: menu(<id>) of an existing menu (SVAML022) or return(<value>) (SVAML024).
fn check_option_action(option_action: &str, base: &str, ids: &[&str], out: &mut Vec<Violation>) {
    let Some(caps) = MENU_ACTION.captures(option_action.trim()) else {
        out.push(
            R024.at(
                format!("{base}/action"),
                "option action is neither menu(<menuId>) nor return(<value>)",
            )
            .expected("menu(<menuId>) or return(<value>)")
            .found(render_found("", &Value::from(option_action)))
            .hint("e.g. \"menu(sub)\" or \"return(sales)\""),
        );
        return;
    };
    let verb = caps.get(1).map_or("", |m| m.as_str());
    let arg = caps.get(2).map_or("", |m| m.as_str()).trim();
    if verb.eq_ignore_ascii_case("menu") && !ids.contains(&arg) {
        out.push(
            R022.at(
                format!("{base}/action"),
                if arg.is_empty() {
                    "menu() names no menu".to_owned()
                } else {
                    format!("option goes to menu `{arg}`, which does not exist")
                },
            )
            .expected(ids.join("|"))
            .found(option_action)
            .hint("point menu(...) at the id of a menu in this runMenu"),
        );
    }
}

fn check_headers(action: &Map<String, Value>, key: &str, out: &mut Vec<Violation>) {
    let Some(Value::Array(headers)) = action.get(key) else {
        return;
    };
    for (i, header) in headers.iter().enumerate() {
        let size = header
            .get("key")
            .and_then(Value::as_str)
            .map_or(0, str::len)
            + header
                .get("value")
                .and_then(Value::as_str)
                .map_or(0, str::len);
        if size > CALL_HEADER_MAX_BYTES {
            out.push(
                R061.at(
                    format!("/action/{key}/{i}"),
                    "call header key + value exceed 1024 bytes",
                )
                .expected(format!("at most {CALL_HEADER_MAX_BYTES} bytes"))
                .found(format!("{size} bytes"))
                .hint("shorten the header value"),
            );
        }
    }
}

fn check_number(value: &str, pointer: &str, is_cli: bool, out: &mut Vec<Violation>) {
    if E164.is_match(value) || (is_cli && value == "private") {
        return;
    }
    if DIGITS.is_match(value) {
        out.push(
            R010.at(pointer, "phone number without a leading +")
                .expected("E.164 with a leading +, e.g. +46700000000")
                .found(render_found("", &Value::from(value)))
                .hint("Sinch's docs write numbers in E.164 with a leading +; Sinch's own inline ICE example omits it, so this reply still goes out"),
        );
        return;
    }
    let expected = if is_cli {
        "E.164 number (+ and 6-15 digits) or private"
    } else {
        "E.164 number (+ and 6-15 digits)"
    };
    out.push(
        R011.at(pointer, "value does not look like a phone number")
            .expected(expected)
            .found(render_found("", &Value::from(value)))
            .hint("use + country code and subscriber number, digits only, no spaces"),
    );
}

fn locale_hint(locale: &str) -> String {
    if locale.len() == 2 && locale.bytes().all(|b| b.is_ascii_lowercase()) {
        format!(
            "add the country, e.g. {locale}-{}",
            locale.to_ascii_uppercase()
        )
    } else {
        "use language-COUNTRY such as en-US, sv-SE".to_owned()
    }
}

fn check_tts_locale(locale: &str, pointer: String, out: &mut Vec<Violation>) {
    if !TTS_LOCALE.is_match(locale) {
        out.push(
            R031.at(pointer, "unrecognised TTS locale or voice")
                .expected("ll-CC, ll-CC/female, ll-CC/male, ll-CC/<Voice> or a voice name")
                .found(render_found("", &Value::from(locale)))
                .hint("see the Sinch voice-locales list, e.g. en-US or en-US/Joanna"),
        );
    }
}

/// Checks prompt grammar (menus, park, playFiles ids); returns whether a #tts/#ssml part was seen.
fn check_prompt(prompt: &str, pointer: &str, out: &mut Vec<Violation>) -> bool {
    let Some(parts) = split_prompt(prompt) else {
        out.push(unbalanced(pointer, prompt));
        return false;
    };
    let mut uses_tts = false;
    for part in parts {
        uses_tts |= check_prompt_part(prompt, part.trim(), pointer, out);
    }
    uses_tts
}

/// The `;`-separated parts of a prompt (separators inside brackets do not count), or `None`
/// when its brackets are unbalanced.
fn split_prompt(prompt: &str) -> Option<Vec<&str>> {
    let mut parts: Vec<&str> = Vec::new();
    let mut depth: i32 = 0;
    let mut start = 0;
    for (i, c) in prompt.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            ';' if depth == 0 => {
                parts.push(&prompt[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return None;
    }
    parts.push(&prompt[start..]);
    Some(parts)
}

/// One trimmed part of `prompt`; whether it is a #tts/#ssml prompt.
fn check_prompt_part(prompt: &str, part: &str, pointer: &str, out: &mut Vec<Violation>) -> bool {
    if part.is_empty() {
        out.push(
            R050.at(pointer, "empty prompt part")
                .found(render_found("", &Value::from(prompt)))
                .hint("remove the stray ';'"),
        );
    } else if let Some(rest) = part.strip_prefix('#') {
        return check_directive(part, rest, pointer, out);
    } else if part.contains("://") {
        check_url(part, pointer, out);
    } else if FILE_ID.is_match(part) {
        // A pre-recorded message name or file id such as "welcome".
    } else {
        out.push(
            R052.at(pointer, "plain text is not a prompt")
                .expected("#tts[...], #ssml[...], #href[url], an http(s) URL or a pre-recorded message name")
                .found(render_found("", &Value::from(part)))
                .hint(format!("to speak it, write #tts[{part}]")),
        );
    }
    false
}

/// A `#directive[body]` part (`rest` is the part without its `#`); whether it is #tts/#ssml.
fn check_directive(part: &str, rest: &str, pointer: &str, out: &mut Vec<Violation>) -> bool {
    let Some((directive, body)) = rest.split_once('[') else {
        out.push(malformed(pointer, part, "directive without [...]"));
        return false;
    };
    let Some(body) = body.strip_suffix(']') else {
        out.push(malformed(pointer, part, "text after the closing ]"));
        return false;
    };
    match directive {
        "tts" | "ssml" => {
            if is_silent(body, directive == "ssml") {
                out.push(silent_text(pointer.to_owned(), part));
            } else if directive == "ssml" && !body.trim_start().starts_with("<speak") {
                out.push(
                    R053.at(pointer, "#ssml[...] content does not start with <speak>")
                        .found(render_found("", &Value::from(part)))
                        .hint("Sinch's examples show both forms; <speak>…</speak> is the SSML root element"),
                );
            }
            return true;
        }
        "href" => check_url(body.trim(), pointer, out),
        other => out.push(
            R050.at(pointer, format!("unknown prompt directive #{other}"))
                .expected("#tts[...], #ssml[...] or #href[...]")
                .found(render_found("", &Value::from(part)))
                .hint("Sinch documents the directives #tts, #ssml and #href, in lower case"),
        ),
    }
    false
}

fn check_url(url: &str, pointer: &str, out: &mut Vec<Violation>) {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let scheme_ok = lower.starts_with("http://") || lower.starts_with("https://");
    let host_ok = url
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    if !scheme_ok || !host_ok || url.contains(char::is_whitespace) {
        out.push(
            R051.at(
                pointer,
                "prompt URL is not an absolute http:// or https:// URL without spaces",
            )
            .expected("https://host/file.mp3")
            .found(render_found("", &Value::from(url)))
            .hint("host the audio file on an http(s) server"),
        );
    }
}

fn unbalanced(pointer: &str, prompt: &str) -> Violation {
    R050.at(pointer, "unbalanced [ ] brackets in prompt")
        .found(render_found("", &Value::from(prompt)))
        .hint("every #tts[, #ssml[ and #href[ needs a closing ]")
}

fn malformed(pointer: &str, part: &str, what: &str) -> Violation {
    R050.at(pointer, format!("malformed prompt: {what}"))
        .expected("#tts[...], #ssml[...] or #href[...]")
        .found(render_found("", &Value::from(part)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes_of(prompt: &str) -> Vec<String> {
        let mut out = Vec::new();
        check_prompt(prompt, "/p", &mut out);
        out.into_iter().map(|v| v.code).collect()
    }

    #[test]
    fn prompt_grammar() {
        assert!(codes_of("#tts[Hello; world];#href[https://a.example/x.mp3]").is_empty());
        assert!(codes_of("#ssml[<speak>Hi</speak>]").is_empty());
        assert!(codes_of("https://a.example/x.wav").is_empty());
        assert!(codes_of("welcome").is_empty());
        assert!(codes_of("welcome;#tts[Press 1]").is_empty());
        assert!(codes_of("file1.wav").is_empty());
        assert_eq!(codes_of("Please hold"), ["SVAML052"]);
        assert_eq!(codes_of("#tts[Hello"), ["SVAML050"]);
        assert_eq!(codes_of("#tts[a]]"), ["SVAML050"]);
        assert_eq!(codes_of("#tts[]"), ["SVAML090"]);
        assert_eq!(codes_of("#tts[ ... ]"), ["SVAML090"]);
        assert_eq!(codes_of("#ssml[<speak> </speak>]"), ["SVAML090"]);
        assert!(codes_of("#tts[Press 1.]").is_empty());
        assert!(codes_of("#tts[I <3 Sinch]").is_empty());
        assert!(is_silent("<speak><break time=\"1s\"/></speak>", true));
        assert!(!is_silent("<3", false));
        assert_eq!(codes_of("#tts[a];"), ["SVAML050"]);
        assert_eq!(codes_of("#TTS[a]"), ["SVAML050"]);
        assert_eq!(codes_of("#href[ftp://x/y]"), ["SVAML051"]);
        assert_eq!(codes_of("s3://bucket/x.mp3"), ["SVAML051"]);
        assert_eq!(codes_of("#ssml[Hi]"), ["SVAML053"]);
    }

    #[test]
    fn locales() {
        for ok in [
            "en-US",
            "en-US/female",
            "en-GB-WLS",
            "arb",
            "fr-FR/Céline",
            "Joanna",
            "cmn-CN",
        ] {
            assert!(TTS_LOCALE.is_match(ok), "{ok}");
        }
        for bad in ["english", "en_US/", "EN-us", ""] {
            assert!(!TTS_LOCALE.is_match(bad), "{bad}");
        }
        assert!(LOCALE.is_match("sv-SE"));
        assert!(!LOCALE.is_match("fr"));
        assert_eq!(locale_hint("fr"), "add the country, e.g. fr-FR");
    }

    #[test]
    fn phone_numbers() {
        let mut out = Vec::new();
        check_number("+46701234567", "/n", false, &mut out);
        check_number("private", "/c", true, &mut out);
        assert!(out.is_empty());
        check_number("46000000001", "/n", false, &mut out);
        check_number("private", "/n", false, &mut out);
        check_number("cli value", "/c", true, &mut out);
        let codes: Vec<&str> = out.iter().map(|v| v.code.as_str()).collect();
        assert_eq!(codes, ["SVAML010", "SVAML011", "SVAML011"]);
        assert!(out.iter().all(|v| v.severity == Severity::Warning));
        // The hint claims no more than the sources: no REST error code, no certainty of rejection.
        let hint = out[0].hint.as_deref().unwrap_or_default();
        assert!(
            !hint.contains("40005") && !hint.contains("reject"),
            "{hint}"
        );
        assert!(!out[0].strict_error && out[1].strict_error);
    }

    #[test]
    fn menu_option_actions() {
        for ok in [
            "menu(sub)",
            "return(sales)",
            "return (sales)",
            "Return(x)",
            "return()",
        ] {
            assert!(MENU_ACTION.is_match(ok), "{ok}");
        }
        for bad in ["goto(sub)", "menu", "sub", ""] {
            assert!(!MENU_ACTION.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn rules_are_unique_sorted_and_sourced() {
        let codes: Vec<&str> = RULES.iter().map(|r| r.code).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted);
        for r in RULES {
            assert!(!r.source.trim().is_empty(), "{}", r.code);
            // The evidence bar: an error needs a Sinch source, the quoted line and when it was read.
            if r.severity == Severity::Error {
                assert_ne!(
                    r.source, NONE,
                    "{} is an error without a Sinch source",
                    r.code
                );
                assert!(
                    !r.quote.trim().is_empty() && !r.read.trim().is_empty(),
                    "{} is an error without the quoted Sinch line and its read date",
                    r.code
                );
            }
            // A quote always comes with its read date.
            assert_eq!(r.quote.is_empty(), r.read.is_empty(), "{}", r.code);
        }
        let rule_for = |code: &str| RULES.iter().find(|r| r.code == code);
        assert_eq!(rule_for("SVAML040"), Some(&R040));
        assert_eq!(rule_for("SVAML999"), None);
    }

    #[test]
    fn docs_list_every_rule_with_its_severity_and_quote() {
        let doc = include_str!("../../docs/gate.md");
        for r in RULES {
            let row = format!("| {} | {} |", r.code, r.severity.as_str());
            assert!(doc.contains(&row), "docs/gate.md lacks the row {row}");
        }
    }

    #[test]
    fn module_doc_table_matches_rules() {
        let text = include_str!("lint.rs");
        let rows: Vec<(String, String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("//! | SVAML"))
            .map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                (
                    format!("SVAML{}", cells[0]),
                    cells[1].to_owned(),
                    cells[2].to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String, String)> = RULES
            .iter()
            .map(|r| {
                let strict = if r.severity == Severity::Error || r.strict_error {
                    "error"
                } else {
                    "warning"
                };
                (
                    r.code.to_owned(),
                    r.severity.as_str().to_owned(),
                    strict.to_owned(),
                )
            })
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn never_panics_on_odd_shapes() {
        let docs = [
            serde_json::json!(null),
            serde_json::json!([]),
            serde_json::json!({"instructions": {}, "action": []}),
            serde_json::json!({"instructions": [1, null, {"name": 3}], "action": {"name": "runMenu", "menus": [1, {"id": 2, "options": [null, {"dtmf": 1, "action": 2}]}]}}),
            serde_json::json!({"action": {"name": "connectStream", "destination": "x"}}),
            serde_json::json!({"instructions": [{"name": "setCookie", "value": "v"}], "action": {"name": "hangup", "recordingOptions": 1}}),
        ];
        let cookies = BTreeMap::new();
        let ctx = LintContext {
            max_say_chars: 600,
            earlier_cookies: &cookies,
        };
        for doc in docs {
            for target in Target::ALL {
                let mut out = Vec::new();
                lint(&doc, target, &ctx, &mut out);
            }
        }
    }
}
