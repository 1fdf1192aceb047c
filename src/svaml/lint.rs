//! Lint rules for what the JSON Schemas cannot express. Every rule has a stable code:
//!
//! | code | severity | rule |
//! |---|---|---|
//! | SVAML001 | error | action not allowed for the target event (reported from the schema's name enum) |
//! | SVAML002 | error | instruction not allowed for the target event (idem) |
//! | SVAML003 | error | action/instruction name not in canonical lowerCamel casing (`connectPSTN`) |
//! | SVAML010 | error | connectPstn `number`/`cli` not E.164 with leading `+` (`cli` may be `private`); Sinch error 40005 |
//! | SVAML020 | error | runMenu has no menu with id `main` |
//! | SVAML021 | error | runMenu `mainMenu` names no existing menu |
//! | SVAML022 | error | option `menu(x)` names no existing menu |
//! | SVAML023 | error | two options of one menu share the same DTMF |
//! | SVAML024 | error | option action is not `menu(<id>)` / `return(<value>)` |
//! | SVAML025 | error | two menus share the same id |
//! | SVAML030 | error | connectPstn `locale` is not `ll-CC` (ISO 639 + ISO 3166-1 alpha-2) |
//! | SVAML031 | warning | TTS locale/voice in none of the known forms (`ll-CC`, `ll-CC/female`, `ll-CC/Voice`, `Voice`) |
//! | SVAML032 | warning | playFiles with #tts/#ssml prompts but no `locale` |
//! | SVAML040 | error | setCookie keys and values exceed 1024 bytes in total |
//! | SVAML041 | warning | the same cookie key is set twice |
//! | SVAML050 | error | malformed prompt (unbalanced brackets, unknown `#directive`, empty part) |
//! | SVAML051 | error | prompt URL is not http(s) |
//! | SVAML052 | error | plain text used as a menu/park prompt (must be `#tts[...]`) |
//! | SVAML053 | warning | `#ssml[...]` content does not start with `<speak>` |
//! | SVAML060 | warning | connectMxp uses the SDK spelling `callheaders` |
//! | SVAML061 | error | call header key + value exceed 1024 bytes |
//! | SVAML062 | error | connectMxp has both `callHeaders` and `callheaders` |
//! | SVAML070 | warning | connectSip `transport` in lower case |
//! | SVAML071 | error | connectStream endpoint is not a ws:// or wss:// URL |
//! | SVAML072 | warning | connectSip endpoint does not look like a SIP address |
//! | SVAML073 | warning | startRecording `destinationUrl` scheme is not s3/azure/gs/https |
//!
//! Lints only look at members whose JSON type is what they expect, so they never panic and do
//! not repeat schema errors on malformed documents.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::report::{render_found, Severity, Violation};
use super::Target;

static E164: LazyLock<Regex> = LazyLock::new(|| re(r"^\+[1-9][0-9]{5,14}$"));
static LOCALE: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z]{2,3}-[A-Z]{2}$"));
static TTS_LOCALE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(?:[a-z]{2,3}(?:-[A-Za-z0-9]{2,4}){0,2}(?:/\p{L}[\p{L}\- ]*)?|\p{Lu}\p{L}+)$")
});
static MENU_ACTION: LazyLock<Regex> = LazyLock::new(|| re(r"^(menu|return)\((.*)\)$"));
static FILE_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_.\-]+$"));

fn re(pattern: &str) -> Regex {
    // The patterns are constants covered by tests; an invalid one is a programming error that
    // must surface at the first check rather than silently disabling a rule.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("lint regex is valid")
}

/// Cookie data budget (keys + values of all setCookie instructions, bytes).
pub const COOKIE_BUDGET_BYTES: usize = 1024;
/// Maximum size of one call header key + value (UTF-8 bytes).
pub const CALL_HEADER_MAX_BYTES: usize = 1024;

fn err(pointer: String, code: &str, message: impl Into<String>) -> Violation {
    Violation::new(Severity::Error, pointer, code, message)
}

fn warn(pointer: String, code: &str, message: impl Into<String>) -> Violation {
    Violation::new(Severity::Warning, pointer, code, message)
}

fn str_of<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// Runs every lint rule on `doc` for `target`, appending to `out`.
pub(crate) fn lint(doc: &Value, _target: Target, out: &mut Vec<Violation>) {
    let Some(root) = doc.as_object() else {
        return;
    };
    if let Some(Value::Array(instructions)) = root.get("instructions") {
        lint_instructions(instructions, out);
    }
    if let Some(Value::Object(action)) = root.get("action") {
        lint_action(action, out);
    }
}

fn lint_instructions(instructions: &[Value], out: &mut Vec<Violation>) {
    let mut cookie_bytes = 0usize;
    let mut cookie_over = false;
    let mut cookie_keys: Vec<&str> = Vec::new();
    for (i, instruction) in instructions.iter().enumerate() {
        let Some(obj) = instruction.as_object() else {
            continue;
        };
        let base = format!("/instructions/{i}");
        match str_of(obj, "name") {
            Some("playFiles") => {
                let mut uses_tts = false;
                if let Some(Value::Array(ids)) = obj.get("ids") {
                    for (j, id) in ids.iter().enumerate() {
                        if let Some(prompt) = id.as_str() {
                            uses_tts |= check_prompt(
                                prompt,
                                &format!("{base}/ids/{j}"),
                                PromptKind::PlayFiles,
                                out,
                            );
                        }
                    }
                }
                match obj.get("locale") {
                    Some(Value::String(locale)) => {
                        check_tts_locale(locale, format!("{base}/locale"), out)
                    }
                    None if uses_tts => out.push(
                        warn(
                            format!("{base}/locale"),
                            "SVAML032",
                            "playFiles plays #tts/#ssml prompts but has no locale",
                        )
                        .expected("a TTS locale such as en-US")
                        .hint("add \"locale\" (SDK docs: required when using TTS or SSML)"),
                    ),
                    _ => {}
                }
            }
            Some("say") => {
                if let Some(locale) = str_of(obj, "locale") {
                    check_tts_locale(locale, format!("{base}/locale"), out);
                }
            }
            Some("setCookie") => {
                let key = str_of(obj, "key").unwrap_or_default();
                let value = str_of(obj, "value").unwrap_or_default();
                if !key.is_empty() {
                    if cookie_keys.contains(&key) {
                        out.push(
                            warn(
                                format!("{base}/key"),
                                "SVAML041",
                                format!("cookie `{key}` is set more than once in this reply"),
                            )
                            .hint("set each cookie once; only the last value is kept"),
                        );
                    } else {
                        cookie_keys.push(key);
                    }
                }
                cookie_bytes += key.len() + value.len();
                if cookie_bytes > COOKIE_BUDGET_BYTES && !cookie_over {
                    cookie_over = true;
                    out.push(
                        err(
                            base.clone(),
                            "SVAML040",
                            "cookie data (all setCookie keys and values) exceeds 1024 bytes",
                        )
                        .expected(format!("at most {COOKIE_BUDGET_BYTES} bytes"))
                        .found(format!("{cookie_bytes} bytes so far"))
                        .hint("store less in cookies; keep large state on your server keyed by callid"),
                    );
                }
            }
            Some("startRecording") => {
                if let Some(url) = obj
                    .get("options")
                    .and_then(Value::as_object)
                    .and_then(|o| str_of(o, "destinationUrl"))
                {
                    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
                    if !matches!(scheme.as_deref(), Some("s3" | "azure" | "gs" | "https")) {
                        out.push(
                            warn(
                                format!("{base}/options/destinationUrl"),
                                "SVAML073",
                                "recording destinationUrl has an unexpected scheme",
                            )
                            .expected("s3://…, azure://…, gs://… or https://…")
                            .found(render_found("", &Value::from(url)))
                            .hint("use a storage URL such as s3://my-bucket/"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

fn lint_action(action: &Map<String, Value>, out: &mut Vec<Violation>) {
    match str_of(action, "name") {
        Some("connectPstn") => {
            if let Some(number) = str_of(action, "number") {
                check_e164(number, "/action/number", false, out);
            }
            if let Some(cli) = str_of(action, "cli") {
                check_e164(cli, "/action/cli", true, out);
            }
            if let Some(locale) = str_of(action, "locale") {
                if !LOCALE.is_match(locale) {
                    out.push(
                        err(
                            "/action/locale".to_owned(),
                            "SVAML030",
                            "locale must be an ISO 639 language code, '-', and an ISO 3166-1 alpha-2 country code",
                        )
                        .expected("ll-CC, e.g. en-US")
                        .found(render_found("", &Value::from(locale)))
                        .hint(locale_hint(locale)),
                    );
                }
            }
        }
        Some("connectMxp") => {
            let upper = action.get("callHeaders");
            let lower = action.get("callheaders");
            if lower.is_some() {
                if upper.is_some() {
                    out.push(
                        err(
                            "/action/callheaders".to_owned(),
                            "SVAML062",
                            "both callHeaders and callheaders are present",
                        )
                        .hint("keep only callHeaders"),
                    );
                } else {
                    out.push(
                        warn(
                            "/action/callheaders".to_owned(),
                            "SVAML060",
                            "callheaders (Java/.NET SDK spelling) used instead of callHeaders",
                        )
                        .expected("callHeaders")
                        .hint("rename to callHeaders (the documented spelling)"),
                    );
                }
            }
            check_headers(action, "callHeaders", out);
            check_headers(action, "callheaders", out);
        }
        Some("connectSip") => {
            if let Some(transport) = str_of(action, "transport") {
                if transport.bytes().any(|b| b.is_ascii_lowercase()) {
                    out.push(
                        warn(
                            "/action/transport".to_owned(),
                            "SVAML070",
                            "transport in lower case; the canonical spelling is upper case",
                        )
                        .expected(transport.to_ascii_uppercase())
                        .found(transport)
                        .hint("use UDP, TCP or TLS"),
                    );
                }
            }
            if let Some(endpoint) = action
                .get("destination")
                .and_then(Value::as_object)
                .and_then(|d| str_of(d, "endpoint"))
            {
                if !endpoint.contains('@') && !endpoint.starts_with("sip:") {
                    out.push(
                        warn(
                            "/action/destination/endpoint".to_owned(),
                            "SVAML072",
                            "SIP endpoint does not look like a SIP address",
                        )
                        .expected("user@host, e.g. 46708000000@sip.example.com")
                        .found(render_found("", &Value::from(endpoint))),
                    );
                }
            }
            check_headers(action, "callHeaders", out);
        }
        Some("connectStream") => {
            if let Some(endpoint) = action
                .get("destination")
                .and_then(Value::as_object)
                .and_then(|d| str_of(d, "endpoint"))
            {
                let lower = endpoint.to_ascii_lowercase();
                let ok = (lower.starts_with("wss://") && endpoint.len() > 6)
                    || (lower.starts_with("ws://") && endpoint.len() > 5);
                if !ok || endpoint.contains(char::is_whitespace) {
                    out.push(
                        err(
                            "/action/destination/endpoint".to_owned(),
                            "SVAML071",
                            "stream endpoint must be a WebSocket URL",
                        )
                        .expected("wss://host/path")
                        .found(render_found("", &Value::from(endpoint)))
                        .hint("use a wss:// URL of your WebSocket server"),
                    );
                }
            }
            check_headers(action, "callHeaders", out);
        }
        Some("runMenu") => lint_run_menu(action, out),
        Some("park") => {
            for key in ["introPrompt", "holdPrompt"] {
                if let Some(prompt) = str_of(action, key) {
                    check_prompt(prompt, &format!("/action/{key}"), PromptKind::Menu, out);
                }
            }
            if let Some(locale) = str_of(action, "locale") {
                check_tts_locale(locale, "/action/locale".to_owned(), out);
            }
        }
        _ => {}
    }
}

fn lint_run_menu(action: &Map<String, Value>, out: &mut Vec<Violation>) {
    if let Some(locale) = str_of(action, "locale") {
        check_tts_locale(locale, "/action/locale".to_owned(), out);
    }
    let Some(Value::Array(menus)) = action.get("menus") else {
        return;
    };
    let mut ids: Vec<&str> = Vec::with_capacity(menus.len());
    for (i, menu) in menus.iter().enumerate() {
        if let Some(id) = menu.get("id").and_then(Value::as_str) {
            if ids.contains(&id) {
                out.push(
                    err(
                        format!("/action/menus/{i}/id"),
                        "SVAML025",
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
    if !menus.is_empty() && !ids.contains(&"main") {
        out.push(
            err(
                "/action/menus".to_owned(),
                "SVAML020",
                "runMenu has no menu with id `main`; Sinch always starts with `main` and returns an error without it",
            )
            .expected("a menu with \"id\": \"main\"")
            .found(ids.join(", "))
            .hint("rename the first menu's id to main"),
        );
    }
    if let Some(main_menu) = str_of(action, "mainMenu") {
        if !ids.contains(&main_menu) {
            out.push(
                err(
                    "/action/mainMenu".to_owned(),
                    "SVAML021",
                    "mainMenu does not name an existing menu",
                )
                .expected(ids.join("|"))
                .found(main_menu)
                .hint("set mainMenu to the id of one of the menus, or remove it"),
            );
        }
    }
    for (i, menu) in menus.iter().enumerate() {
        let Some(menu) = menu.as_object() else {
            continue;
        };
        for key in ["mainPrompt", "repeatPrompt"] {
            if let Some(prompt) = str_of(menu, key) {
                check_prompt(
                    prompt,
                    &format!("/action/menus/{i}/{key}"),
                    PromptKind::Menu,
                    out,
                );
            }
        }
        let Some(Value::Array(options)) = menu.get("options") else {
            continue;
        };
        let mut seen: Vec<&str> = Vec::with_capacity(options.len());
        for (j, option) in options.iter().enumerate() {
            let Some(option) = option.as_object() else {
                continue;
            };
            let base = format!("/action/menus/{i}/options/{j}");
            if let Some(dtmf) = str_of(option, "dtmf") {
                if seen.contains(&dtmf) {
                    out.push(
                        err(
                            format!("{base}/dtmf"),
                            "SVAML023",
                            format!("DTMF `{dtmf}` selects more than one option of this menu"),
                        )
                        .found(dtmf)
                        .hint("give every option of a menu different keys"),
                    );
                } else {
                    seen.push(dtmf);
                }
            }
            let Some(option_action) = str_of(option, "action") else {
                continue;
            };
            match MENU_ACTION.captures(option_action.trim()) {
                Some(caps) => {
                    let verb = caps.get(1).map_or("", |m| m.as_str());
                    let arg = caps.get(2).map_or("", |m| m.as_str());
                    if verb == "menu" {
                        if arg.is_empty() {
                            out.push(
                                err(
                                    format!("{base}/action"),
                                    "SVAML024",
                                    "menu() needs a menu id",
                                )
                                .expected("menu(<menuId>) or return(<value>)")
                                .found(option_action),
                            );
                        } else if !ids.contains(&arg) {
                            out.push(
                                err(
                                    format!("{base}/action"),
                                    "SVAML022",
                                    format!("option goes to menu `{arg}`, which does not exist"),
                                )
                                .expected(ids.join("|"))
                                .found(option_action)
                                .hint("point menu(...) at the id of a menu in this runMenu"),
                            );
                        }
                    }
                }
                None => out.push(
                    err(
                        format!("{base}/action"),
                        "SVAML024",
                        "option action must be menu(<menuId>) or return(<value>)",
                    )
                    .expected("menu(<menuId>) or return(<value>)")
                    .found(render_found("", &Value::from(option_action)))
                    .hint("e.g. \"menu(sub)\" or \"return(sales)\" (lower case)"),
                ),
            }
        }
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
                err(
                    format!("/action/{key}/{i}"),
                    "SVAML061",
                    "call header key + value exceed 1024 bytes",
                )
                .expected(format!("at most {CALL_HEADER_MAX_BYTES} bytes"))
                .found(format!("{size} bytes"))
                .hint("shorten the header value"),
            );
        }
    }
}

fn check_e164(value: &str, pointer: &str, allow_private: bool, out: &mut Vec<Violation>) {
    if E164.is_match(value) || (allow_private && value == "private") {
        return;
    }
    let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let hint = if digits_only {
        "add the leading + and country code (Sinch rejects numbers without it: error 40005 \"Phone number missing leading plus sign\")"
    } else {
        "use E.164: + country code and subscriber number, digits only, no spaces (Sinch error 40005 for a missing +)"
    };
    let expected = if allow_private {
        "E.164 number (+ and 6-15 digits) or private"
    } else {
        "E.164 number (+ and 6-15 digits)"
    };
    out.push(
        err(
            pointer.to_owned(),
            "SVAML010",
            "phone number is not in E.164 format with a leading +",
        )
        .expected(expected)
        .found(render_found("", &Value::from(value)))
        .hint(hint),
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
            warn(pointer, "SVAML031", "unrecognised TTS locale or voice")
                .expected("ll-CC, ll-CC/female, ll-CC/male, ll-CC/<Voice> or a voice name")
                .found(render_found("", &Value::from(locale)))
                .hint("see the Sinch voice-locales list, e.g. en-US or en-US/Joanna"),
        );
    }
}

/// Where a prompt appears: playFiles also accepts legacy file ids; menus/park need #tts etc.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PromptKind {
    PlayFiles,
    Menu,
}

/// Checks prompt grammar; returns whether a #tts/#ssml part was seen.
fn check_prompt(prompt: &str, pointer: &str, kind: PromptKind, out: &mut Vec<Violation>) -> bool {
    let mut parts: Vec<&str> = Vec::new();
    let mut depth: i32 = 0;
    let mut start = 0;
    for (i, c) in prompt.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth < 0 {
                    out.push(unbalanced(pointer, prompt));
                    return false;
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
        out.push(unbalanced(pointer, prompt));
        return false;
    }
    parts.push(&prompt[start..]);
    let mut uses_tts = false;
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            out.push(
                err(pointer.to_owned(), "SVAML050", "empty prompt part")
                    .found(render_found("", &Value::from(prompt)))
                    .hint("remove the stray ';'"),
            );
            continue;
        }
        if let Some(rest) = part.strip_prefix('#') {
            let Some((directive, body)) = rest.split_once('[') else {
                out.push(malformed(pointer, part, "directive without [...]"));
                continue;
            };
            let Some(body) = body.strip_suffix(']') else {
                out.push(malformed(pointer, part, "text after the closing ]"));
                continue;
            };
            match directive {
                "tts" | "ssml" => {
                    uses_tts = true;
                    if body.trim().is_empty() {
                        out.push(malformed(pointer, part, "empty #tts/#ssml text"));
                    } else if directive == "ssml" && !body.trim_start().starts_with("<speak") {
                        out.push(
                            warn(
                                pointer.to_owned(),
                                "SVAML053",
                                "#ssml[...] content does not start with <speak>",
                            )
                            .found(render_found("", &Value::from(part)))
                            .hint("wrap SSML in <speak>…</speak>, or use #tts[...] for plain text"),
                        );
                    }
                }
                "href" => check_url(body.trim(), pointer, out),
                other => out.push(
                    err(
                        pointer.to_owned(),
                        "SVAML050",
                        format!("unknown prompt directive #{other}"),
                    )
                    .expected("#tts[...], #ssml[...] or #href[...]")
                    .found(render_found("", &Value::from(part)))
                    .hint("directives are lower case: #tts, #ssml, #href"),
                ),
            }
        } else if part.contains("://") {
            check_url(part, pointer, out);
        } else if kind == PromptKind::PlayFiles && FILE_ID.is_match(part) {
            // Legacy pre-recorded file id such as "welcome".
        } else {
            out.push(
                err(pointer.to_owned(), "SVAML052", "plain text is not a prompt")
                    .expected("#tts[...], #ssml[...], #href[url] or an http(s) URL")
                    .found(render_found("", &Value::from(part)))
                    .hint(format!("to speak it, write #tts[{part}]")),
            );
        }
    }
    uses_tts
}

fn check_url(url: &str, pointer: &str, out: &mut Vec<Violation>) {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let scheme_ok = lower.starts_with("http://") || lower.starts_with("https://");
    let host_ok = url
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    if !scheme_ok || !host_ok || url.contains(char::is_whitespace) {
        out.push(
            err(
                pointer.to_owned(),
                "SVAML051",
                "prompt URL must be an absolute http:// or https:// URL without spaces",
            )
            .expected("https://host/file.mp3")
            .found(render_found("", &Value::from(url)))
            .hint("host the audio file on an http(s) server"),
        );
    }
}

fn unbalanced(pointer: &str, prompt: &str) -> Violation {
    err(
        pointer.to_owned(),
        "SVAML050",
        "unbalanced [ ] brackets in prompt",
    )
    .found(render_found("", &Value::from(prompt)))
    .hint("every #tts[, #ssml[ and #href[ needs a closing ]")
}

fn malformed(pointer: &str, part: &str, what: &str) -> Violation {
    err(
        pointer.to_owned(),
        "SVAML050",
        format!("malformed prompt: {what}"),
    )
    .expected("#tts[...], #ssml[...] or #href[...]")
    .found(render_found("", &Value::from(part)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes_of(prompt: &str, kind: PromptKind) -> Vec<String> {
        let mut out = Vec::new();
        check_prompt(prompt, "/p", kind, &mut out);
        out.into_iter().map(|v| v.code).collect()
    }

    #[test]
    fn prompt_grammar() {
        assert!(codes_of(
            "#tts[Hello; world];#href[https://a.example/x.mp3]",
            PromptKind::Menu
        )
        .is_empty());
        assert!(codes_of("#ssml[<speak>Hi</speak>]", PromptKind::Menu).is_empty());
        assert!(codes_of("https://a.example/x.wav", PromptKind::Menu).is_empty());
        assert!(codes_of("welcome", PromptKind::PlayFiles).is_empty());
        assert_eq!(codes_of("welcome", PromptKind::Menu), ["SVAML052"]);
        assert_eq!(codes_of("#tts[Hello", PromptKind::Menu), ["SVAML050"]);
        assert_eq!(codes_of("#tts[a]]", PromptKind::Menu), ["SVAML050"]);
        assert_eq!(codes_of("#tts[]", PromptKind::Menu), ["SVAML050"]);
        assert_eq!(codes_of("#tts[a];", PromptKind::Menu), ["SVAML050"]);
        assert_eq!(codes_of("#TTS[a]", PromptKind::Menu), ["SVAML050"]);
        assert_eq!(codes_of("#href[ftp://x/y]", PromptKind::Menu), ["SVAML051"]);
        assert_eq!(
            codes_of("s3://bucket/x.mp3", PromptKind::PlayFiles),
            ["SVAML051"]
        );
        assert_eq!(codes_of("#ssml[Hi]", PromptKind::Menu), ["SVAML053"]);
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
    fn e164() {
        let mut out = Vec::new();
        check_e164("+46701234567", "/n", false, &mut out);
        check_e164("private", "/c", true, &mut out);
        assert!(out.is_empty());
        check_e164("46701234567", "/n", false, &mut out);
        check_e164("private", "/n", false, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[0].hint.as_deref().unwrap().contains("40005"));
    }

    #[test]
    fn never_panics_on_odd_shapes() {
        let docs = [
            serde_json::json!(null),
            serde_json::json!([]),
            serde_json::json!({"instructions": {}, "action": []}),
            serde_json::json!({"instructions": [1, null, {"name": 3}], "action": {"name": "runMenu", "menus": [1, {"id": 2, "options": [null, {"dtmf": 1, "action": 2}]}]}}),
            serde_json::json!({"action": {"name": "connectStream", "destination": "x"}}),
        ];
        for doc in docs {
            let mut out = Vec::new();
            lint(&doc, Target::Ice, &mut out);
        }
    }
}
