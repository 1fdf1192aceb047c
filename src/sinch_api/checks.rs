//! Checks made before a request leaves for Sinch, each answered locally with a catalog code:
//!
//! * phone numbers must be E.164 (`+`, country code, up to 15 digits): 400 40005;
//! * a callout's `method` and its object: 400 40001 / 40002, with Sinch's own wording;
//! * a customCallout's inline `ice`/`ace`/`pie` SVAML passes the gate for its event (URLs and
//!   empty strings pass through): 400 40001 with the report;
//! * a manage-call body passes the gate's `manage` schema (hangup, continue or park): 400 40001;
//! * a call leg is `caller`, `callee` or `both`; a participant command is `mute`, `unmute`,
//!   `onhold` or `resume`, `moh` only with `onhold`: 400 40001;
//! * ids put in a path use a small safe alphabet, so that the path sent is the path signed.

use serde_json::{json, Value};

use crate::catalog::code;
use crate::outcome::{CalloutMethod, LocalCheck};
use crate::redact::mask_number;
use crate::svaml::{Mode, Target, Validator};

/// A request refused before it left; recorded in `outbound_requests` and answered with the
/// envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRefusal {
    /// Catalog code.
    pub code: u32,
    /// Message for the client.
    pub message: String,
    /// `outbound_requests.local_check` value.
    pub check: LocalCheck,
    /// Structured details (the gate report, the field).
    pub details: Option<Value>,
}

impl LocalRefusal {
    fn new(code: u32, check: LocalCheck, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            check,
            details: None,
        }
    }
    fn body(code: u32, message: impl Into<String>) -> Self {
        Self::new(code, LocalCheck::InvalidBody, message)
    }
    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

pub use crate::events::is_e164;

/// 40005 unless `value` is E.164; the message names the field and says what is wrong, with the
/// number masked.
pub fn check_number(field: &str, value: &str) -> Result<(), LocalRefusal> {
    if is_e164(value) {
        return Ok(());
    }
    let shown = mask_number(value);
    let why = if !value.starts_with('+') {
        "is missing its leading plus sign"
    } else {
        "is not an E.164 number"
    };
    Err(LocalRefusal::new(
        code::NUMBER_MISSING_LEADING_PLUS,
        LocalCheck::InvalidNumber,
        format!(
            "{field} {why} ({shown}): send numbers in E.164 format, '+', country code and number, e.g. +46701234567"
        ),
    )
    .with_details(json!({"field": field})))
}

/// What the checks learnt about a callout.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedCallout {
    /// ttsCallout, conferenceCallout or customCallout.
    pub method: CalloutMethod,
    /// destination.endpoint, when given.
    pub destination: Option<String>,
    /// conferenceId of a conference callout.
    pub conference_id: Option<String>,
    /// Whether Sinch will send a DICE for the call.
    pub dice_expected: bool,
    /// Things that will not stop the callout but that the operator should know.
    pub warnings: Vec<String>,
}

fn string_field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<&'a str>, LocalRefusal> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(LocalRefusal::body(
            code::PARAMETER_VALIDATION,
            format!("{at}.{key} must be a string"),
        )),
    }
}

/// Checks a callout body (the Calling API's `POST /calling/v1/callouts` body, unchanged), in
/// this order: the method and its object, the destination, the cli, what the method itself
/// needs, the inline SVAML of a customCallout; then whether a DICE will come.
pub fn check_callout(
    doc: &Value,
    validator: &Validator,
    mode: Mode,
) -> Result<CheckedCallout, LocalRefusal> {
    let (method, c) = callout_object(doc)?;
    let destination = callout_destination(method, c)?;
    if let Some(cli) = string_field(c, method.as_str(), "cli")? {
        check_number(&format!("{method}.cli"), cli)?;
    }
    let mut warnings = Vec::new();
    let mut conference_id = None;
    match method {
        CalloutMethod::Conference => conference_id = Some(conference_id_of(c, &mut warnings)?),
        CalloutMethod::Tts => tts_warnings(c, validator, &mut warnings)?,
        CalloutMethod::Custom => check_inline_svaml(c, validator, mode)?,
    }
    let dice_expected = dice_expected(method, c);
    if !dice_expected {
        warnings.push(
            "enableDice is not set: svamlgate will not learn when this call ends, and counts it as in \
             progress for SINCH_UNTRACKED_CALL_SECS"
                .to_owned(),
        );
    }
    Ok(CheckedCallout {
        method,
        destination,
        conference_id,
        dice_expected,
        warnings,
    })
}

/// The callout method and its object.
fn callout_object(
    doc: &Value,
) -> Result<(CalloutMethod, &serde_json::Map<String, Value>), LocalRefusal> {
    let Some(root) = doc.as_object() else {
        return Err(LocalRefusal::body(
            code::INVALID_REQUEST,
            "The callout body must be a JSON object: {\"method\": ..., \"<method>\": {...}}",
        ));
    };
    let method = match root.get("method") {
        None | Some(Value::Null) => return Err(LocalRefusal::body(
            code::MISSING_PARAMETER,
            "method is missing: it must be `ttsCallout`, `conferenceCallout`, or `customCallout`",
        )),
        Some(m) => m.as_str().and_then(CalloutMethod::parse).ok_or_else(|| {
            LocalRefusal::body(
                code::PARAMETER_VALIDATION,
                "Method needs to be `ttsCallout`, `conferenceCallout`, or `customCallout`",
            )
        })?,
    };
    let Some(c) = root.get(method.as_str()).and_then(Value::as_object) else {
        return Err(LocalRefusal::body(
            code::MISSING_PARAMETER,
            format!("The `{method}` object is missing: the body must be {{\"method\": \"{method}\", \"{method}\": {{...}}}}"),
        ));
    };
    Ok((method, c))
}

/// `destination.endpoint`, checked (E.164 for a number); a customCallout may have none.
fn callout_destination(
    method: CalloutMethod,
    c: &serde_json::Map<String, Value>,
) -> Result<Option<String>, LocalRefusal> {
    match c.get("destination") {
        None | Some(Value::Null) if method == CalloutMethod::Custom => Ok(None),
        None | Some(Value::Null) => Err(LocalRefusal::body(
            code::MISSING_PARAMETER,
            format!("{method}.destination is missing: {{\"type\": \"number\", \"endpoint\": \"+14045005000\"}}"),
        )),
        Some(Value::Object(d)) => {
            let at = format!("{method}.destination");
            let kind = string_field(d, &at, "type")?.ok_or_else(|| {
                LocalRefusal::body(code::MISSING_PARAMETER, format!("{at}.type is missing: number, username or sip"))
            })?;
            let endpoint = string_field(d, &at, "endpoint")?.ok_or_else(|| {
                LocalRefusal::body(code::MISSING_PARAMETER, format!("{at}.endpoint is missing"))
            })?;
            match kind.to_ascii_lowercase().as_str() {
                "number" => check_number(&format!("{at}.endpoint"), endpoint)?,
                "username" | "sip" => {}
                _ => {
                    return Err(LocalRefusal::body(
                        code::PARAMETER_VALIDATION,
                        format!("{at}.type must be number, username or sip"),
                    ))
                }
            }
            Ok(Some(endpoint.to_owned()))
        }
        Some(_) => Err(LocalRefusal::body(
            code::PARAMETER_VALIDATION,
            format!("{method}.destination must be an object {{\"type\", \"endpoint\"}}"),
        )),
    }
}

/// A conferenceCallout's `conferenceId` (required, warned about past 64 characters).
fn conference_id_of(
    c: &serde_json::Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<String, LocalRefusal> {
    let id = string_field(c, "conferenceCallout", "conferenceId")?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            LocalRefusal::body(
                code::MISSING_PARAMETER,
                "conferenceCallout.conferenceId is missing",
            )
        })?;
    if id.chars().count() > 64 {
        warnings.push(
            "conferenceId is longer than 64 characters, the limit Sinch documents for connectConf"
                .to_owned(),
        );
    }
    Ok(id.to_owned())
}

/// A ttsCallout's `text` and `prompts`: typed, and warned about when silent or too long.
fn tts_warnings(
    c: &serde_json::Map<String, Value>,
    validator: &Validator,
    warnings: &mut Vec<String>,
) -> Result<(), LocalRefusal> {
    let text = string_field(c, "ttsCallout", "text")?;
    let prompts = string_field(c, "ttsCallout", "prompts")?;
    if text.is_none() && prompts.is_none() {
        warnings
            .push("ttsCallout has neither text nor prompts: the call will be silent".to_owned());
    }
    let limit = validator.limits().max_say_chars;
    if text.is_some_and(|t| t.chars().count() > limit) {
        warnings.push(format!(
            "text is longer than {limit} characters, the account's TTS limit \
             (SVAMLGATE_MAX_SAY_CHARS; Sinch's default is 600, support can raise it)"
        ));
    }
    Ok(())
}

/// Inline SVAML of a customCallout: each of `ice`, `ace`, `pie` given as JSON text passes the
/// gate for its event; every refusal is reported at once.
fn check_inline_svaml(
    c: &serde_json::Map<String, Value>,
    validator: &Validator,
    mode: Mode,
) -> Result<(), LocalRefusal> {
    let mut reports = serde_json::Map::new();
    for (key, target) in [
        ("ice", Target::Ice),
        ("ace", Target::Ace),
        ("pie", Target::Pie),
    ] {
        let Some(svaml) = inline_svaml(c, key)? else {
            continue;
        };
        let report = validator.check(target, &svaml, mode);
        if !report.valid {
            reports.insert(key.to_owned(), json!(report.masked()));
        }
    }
    if reports.is_empty() {
        return Ok(());
    }
    let fields: Vec<String> = reports
        .keys()
        .map(|k| format!("customCallout.{k}"))
        .collect();
    Err(LocalRefusal::new(
        code::PARAMETER_VALIDATION,
        LocalCheck::InvalidSvaml,
        format!(
            "Inline SVAML refused by the gate in {}: see details for every violation",
            fields.join(", ")
        ),
    )
    .with_details(json!({"reports": reports})))
}

/// `customCallout.<key>` read as SVAML: `None` when absent, empty or a callback URL.
fn inline_svaml(
    c: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<Value>, LocalRefusal> {
    let Some(text) = string_field(c, "customCallout", key)? else {
        return Ok(None);
    };
    let t = text.trim();
    let lower = t.get(..8).unwrap_or(t).to_ascii_lowercase();
    if t.is_empty() || lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(None);
    }
    serde_json::from_str(t).map(Some).map_err(|e| {
        LocalRefusal::new(
            code::PARAMETER_VALIDATION,
            LocalCheck::InvalidSvaml,
            format!("customCallout.{key} must be a callback URL or SVAML as JSON text; it is neither ({e})"),
        )
        .with_details(json!({"field": format!("customCallout.{key}")}))
    })
}

/// Whether Sinch will send a DICE: a custom callout's DICE goes to the application's callback
/// URL; the others send one only with `enableDice`.
fn dice_expected(method: CalloutMethod, c: &serde_json::Map<String, Value>) -> bool {
    match method {
        CalloutMethod::Custom => true,
        _ => c
            .get("enableDice")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

/// Checks a manage-call body (`PATCH /calling/v1/calls/id/{callId}[/leg/{callLeg}]`) against the
/// gate's `manage` target.
pub fn check_manage(doc: &Value, validator: &Validator, mode: Mode) -> Result<(), LocalRefusal> {
    if !doc.is_object() {
        return Err(LocalRefusal::body(
            code::INVALID_REQUEST,
            "The manage-call body must be a JSON object {\"instructions\": [...], \"action\": {...}}",
        ));
    }
    let report = validator.check(Target::Manage, doc, mode);
    if report.valid {
        Ok(())
    } else {
        Err(LocalRefusal::new(
            code::PARAMETER_VALIDATION,
            LocalCheck::InvalidSvaml,
            format!(
                "The manage-call body is not valid ({} error(s)); the action must be hangup, continue or park: see details",
                report.error_count
            ),
        )
        .with_details(json!({"report": report.masked()})))
    }
}

/// The call legs of `PATCH .../leg/{callLeg}`.
pub const CALL_LEGS: [&str; 3] = ["caller", "callee", "both"];

/// 40001 unless `leg` is caller, callee or both.
pub fn check_leg(leg: &str) -> Result<&'static str, LocalRefusal> {
    CALL_LEGS
        .iter()
        .copied()
        .find(|l| *l == leg)
        .ok_or_else(|| {
            LocalRefusal::body(
                code::PARAMETER_VALIDATION,
                "callLeg must be caller, callee or both",
            )
        })
}

/// Commands of `PATCH /calling/v1/conferences/id/{conferenceId}/{callId}`.
pub const PARTICIPANT_COMMANDS: [&str; 4] = ["mute", "unmute", "onhold", "resume"];
/// Music-on-hold classes for `onhold`.
pub const MOH_CLASSES: [&str; 4] = ["ring", "music1", "music2", "music3"];

/// Checks `{command, moh?}`.
pub fn check_participant_command(doc: &Value) -> Result<(), LocalRefusal> {
    let Some(o) = doc.as_object() else {
        return Err(LocalRefusal::body(
            code::INVALID_REQUEST,
            "The body must be a JSON object {\"command\": \"mute\"}",
        ));
    };
    let command = string_field(o, "body", "command")?.ok_or_else(|| {
        LocalRefusal::body(
            code::MISSING_PARAMETER,
            "command is missing: mute, unmute, onhold or resume",
        )
    })?;
    if !PARTICIPANT_COMMANDS.contains(&command) {
        return Err(LocalRefusal::body(
            code::PARAMETER_VALIDATION,
            "command must be mute, unmute, onhold or resume",
        ));
    }
    if let Some(moh) = string_field(o, "body", "moh")? {
        if command != "onhold" {
            return Err(LocalRefusal::body(
                code::PARAMETER_VALIDATION,
                "moh is only allowed with the onhold command",
            ));
        }
        if !MOH_CLASSES.contains(&moh) {
            return Err(LocalRefusal::body(
                code::PARAMETER_VALIDATION,
                "moh must be ring, music1, music2 or music3",
            ));
        }
    }
    Ok(())
}

/// Longest id accepted in a path.
pub const MAX_ID_LEN: usize = 128;

/// 40001 unless `value` is 1–128 characters of `A-Z a-z 0-9 . _ ~ @ : + = -`: such ids need no
/// percent-encoding, so the path sent is the path signed.
pub fn check_id(name: &str, value: &str) -> Result<(), LocalRefusal> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~@:+=-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(LocalRefusal::body(
            code::PARAMETER_VALIDATION,
            format!(
                "{name} must be 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9 and . _ ~ @ : + = -"
            ),
        ))
    }
}

/// A request refused before it left for Sinch: its catalog code, message and details.
impl From<LocalRefusal> for crate::error::ApiError {
    fn from(r: LocalRefusal) -> Self {
        let e = Self::new(r.code, r.message);
        match r.details {
            Some(d) => e.with_details(d),
            None => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validator {
        Validator::new().unwrap()
    }

    fn tts(dest: &str) -> Value {
        json!({"method": "ttsCallout", "ttsCallout": {"cli": "+14045001000",
            "destination": {"type": "number", "endpoint": dest}, "locale": "en-US", "text": "Hello", "enableDice": true}})
    }

    #[test]
    fn e164() {
        for ok in ["+14045005000", "+46700000000", "+12", "+123456789012345"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "14045005000",
            "+",
            "+1",
            "+0123",
            "+1234567890123456",
            "+1 404",
            "+1-404",
            "",
            "++1",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
        let e = check_number("cli", "46700000000").unwrap_err();
        assert_eq!(e.code, 40005);
        assert!(e.message.contains("leading plus"), "{}", e.message);
        assert!(!e.message.contains("46700000000"), "masked: {}", e.message);
        let e = check_number("cli", "+4670abc").unwrap_err();
        assert!(e.message.contains("not an E.164"));
    }

    #[test]
    fn tts_callout() {
        let c = check_callout(&tts("+14045005000"), &v(), Mode::Normal).unwrap();
        assert_eq!(c.method, CalloutMethod::Tts);
        assert_eq!(c.destination.as_deref(), Some("+14045005000"));
        assert!(c.dice_expected);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(
            check_callout(&tts("14045005000"), &v(), Mode::Normal)
                .unwrap_err()
                .code,
            40005
        );
        let mut bad_cli = tts("+14045005000");
        bad_cli["ttsCallout"]["cli"] = json!("4045001000");
        assert_eq!(
            check_callout(&bad_cli, &v(), Mode::Normal)
                .unwrap_err()
                .code,
            40005
        );
        let mut no_dice = tts("+14045005000");
        no_dice["ttsCallout"]["enableDice"] = json!(false);
        let c = check_callout(&no_dice, &v(), Mode::Normal).unwrap();
        assert!(!c.dice_expected);
        assert!(c.warnings.iter().any(|w| w.contains("enableDice")));
        // usernames are not numbers
        let user = json!({"method": "ttsCallout", "ttsCallout": {"destination": {"type": "username", "endpoint": "alice"}, "text": "x"}});
        assert!(check_callout(&user, &v(), Mode::Normal).is_ok());
    }

    #[test]
    fn callout_structure() {
        let code = |doc: Value| check_callout(&doc, &v(), Mode::Normal).unwrap_err().code;
        assert_eq!(code(json!([])), 40003);
        assert_eq!(code(json!({})), 40002);
        assert_eq!(code(json!({"method": "smsCallout"})), 40001);
        assert_eq!(code(json!({"method": 7})), 40001);
        assert_eq!(code(json!({"method": "ttsCallout"})), 40002);
        assert_eq!(
            code(json!({"method": "ttsCallout", "ttsCallout": {"text": "x"}})),
            40002
        );
        assert_eq!(
            code(
                json!({"method": "ttsCallout", "ttsCallout": {"destination": {"type": "fax", "endpoint": "+12345"}}})
            ),
            40001
        );
        assert_eq!(
            code(json!({"method": "ttsCallout", "ttsCallout": {"destination": "+12345"}})),
            40001
        );
        assert_eq!(
            code(
                json!({"method": "conferenceCallout", "conferenceCallout": {"destination": {"type": "number", "endpoint": "+12345"}}})
            ),
            40002
        );
        let conf = json!({"method": "conferenceCallout", "conferenceCallout": {"conferenceId": "room1",
            "destination": {"type": "number", "endpoint": "+12345678"}}});
        let c = check_callout(&conf, &v(), Mode::Normal).unwrap();
        assert_eq!(c.conference_id.as_deref(), Some("room1"));
        assert!(!c.dice_expected);
    }

    #[test]
    fn custom_callout_inline_svaml_goes_through_the_gate() {
        let good_ice =
            r#"{"action":{"name":"connectPstn","number":"+12233445566","cli":"+12234325234"}}"#;
        let ok = json!({"method": "customCallout", "customCallout": {"cli": "+14045001000",
            "destination": {"type": "number", "endpoint": "+14045005000"},
            "ice": good_ice,
            "ace": r#"{"instructions":[{"name":"say","text":"Hello","locale":"en-US"}],"action":{"name":"hangup"}}"#,
            "pie": "https://example.com/sinch"}});
        let c = check_callout(&ok, &v(), Mode::Normal).unwrap();
        assert!(c.dice_expected);
        // connectPstn is not allowed after ACE.
        let mut bad = ok.clone();
        bad["customCallout"]["ace"] = json!(good_ice);
        let e = check_callout(&bad, &v(), Mode::Normal).unwrap_err();
        assert_eq!((e.code, e.check), (40001, LocalCheck::InvalidSvaml));
        let d = e.details.unwrap();
        assert_eq!(d["reports"]["ace"]["valid"], false, "{d}");
        assert!(d["reports"].get("ice").is_none());
        let mut not_json = ok.clone();
        not_json["customCallout"]["pie"] = json!("{nope");
        assert_eq!(
            check_callout(&not_json, &v(), Mode::Normal)
                .unwrap_err()
                .code,
            40001
        );
        let mut not_string = ok;
        not_string["customCallout"]["ice"] = json!({"action": {"name": "hangup"}});
        assert_eq!(
            check_callout(&not_string, &v(), Mode::Normal)
                .unwrap_err()
                .code,
            40001
        );
    }

    #[test]
    fn manage_and_conference_bodies() {
        let ok = json!({"instructions":[{"name":"say","text":"Bye","locale":"en-US"}],"action":{"name":"hangup"}});
        assert!(check_manage(&ok, &v(), Mode::Normal).is_ok());
        let bad = json!({"action":{"name":"connectPstn","number":"+12233445566"}});
        let e = check_manage(&bad, &v(), Mode::Normal).unwrap_err();
        assert_eq!(e.code, 40001);
        assert!(e.details.unwrap()["report"]["violations"].is_array());
        assert_eq!(
            check_manage(&json!("x"), &v(), Mode::Normal)
                .unwrap_err()
                .code,
            40003
        );

        assert_eq!(check_leg("callee"), Ok("callee"));
        assert_eq!(check_leg("Callee").unwrap_err().code, 40001);

        assert!(check_participant_command(&json!({"command": "mute"})).is_ok());
        assert!(check_participant_command(&json!({"command": "onhold", "moh": "ring"})).is_ok());
        for (doc, c) in [
            (json!({}), 40002),
            (json!({"command": "kick"}), 40001),
            (json!({"command": "mute", "moh": "ring"}), 40001),
            (json!({"command": "onhold", "moh": "jazz"}), 40001),
            (json!([]), 40003),
        ] {
            assert_eq!(
                check_participant_command(&doc).unwrap_err().code,
                c,
                "{doc}"
            );
        }
    }

    #[test]
    fn ids_in_paths() {
        for ok in [
            "adf92089-df2a-4f14-a377-1e975f588fe4",
            "822aa4b7_257",
            "abc@10.0.0.1:5060",
            "room+1",
        ] {
            assert!(check_id("callId", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a b", "a?b", "a%2F", "é", &"x".repeat(129)] {
            assert_eq!(check_id("callId", bad).unwrap_err().code, 40001, "{bad}");
        }
    }
}
