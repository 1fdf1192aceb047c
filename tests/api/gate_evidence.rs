//! The gate's evidence bar, table-driven (issue #15): every refusing rule with a reply that trips
//! it and the quoted Sinch line it rests on; the warnings whose replies still go out (the audible
//! lints included); and, through proxy mode, a refused reply replaced by the fallback with the rule
//! and its source on record, while a reply with a dead menu branch goes out and is counted.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, LazyLock};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};
use sqlx::Row;
use svamlgate::gate::Gate;
use svamlgate::svaml::{lint, Mode, Report, Severity, Target, Validator, Violation};

use crate::helpers::{base_config, ice, spawn_app};

static VALIDATOR: LazyLock<Arc<Validator>> = LazyLock::new(|| Arc::new(Validator::new().unwrap()));

fn find<'a>(report: &'a Report, code: &str, pointer: &str) -> Option<&'a Violation> {
    report
        .violations
        .iter()
        .find(|v| v.code == code && v.pointer == pointer)
}

fn run_menu(menus: Value) -> Value {
    json!({"action": {"name": "runMenu", "menus": menus}})
}

/// A runMenu whose menu `main` has one option with this action.
fn option_action(action: &str) -> Value {
    run_menu(json!([{"id": "main", "mainPrompt": "#tts[Press 1]",
        "options": [{"dtmf": "1", "action": action}]}]))
}

/// (what, event, reply, code, pointer, a fragment of the quoted Sinch line).
type Refusal = (
    &'static str,
    Target,
    Value,
    &'static str,
    &'static str,
    &'static str,
);

fn refusals() -> Vec<Refusal> {
    let main_menu = "If no menu has an id value of main, an error is returned.";
    let accepted = "The following values are accepted: - If you want to navigate to another menu, use menu(value).";
    vec![
        // The five kinds of issue #15.
        (
            "ICE reply with instructions and no action",
            Target::Ice,
            json!({"instructions": [{"name": "say", "text": "Hello", "locale": "en-US"}]}),
            "schema:required",
            "/action",
            "Instructions must always accompany an action and will not work standalone.",
        ),
        (
            "runMenu without a menu main or a mainMenu naming one (ICE)",
            Target::Ice,
            run_menu(json!([{"id": "start", "mainPrompt": "#tts[Hi]"}])),
            "SVAML020",
            "/action/menus",
            main_menu,
        ),
        (
            "runMenu without a menu main, mainMenu naming no menu (PIE)",
            Target::Pie,
            json!({"action": {"name": "runMenu", "mainMenu": "nowhere", "menus": [{"id": "start", "mainPrompt": "#tts[Hi]"}]}}),
            "SVAML020",
            "/action/menus",
            main_menu,
        ),
        (
            "runMenu without menus",
            Target::Ice,
            json!({"action": {"name": "runMenu"}}),
            "schema:required",
            "/action/menus",
            main_menu,
        ),
        (
            "runMenu with an empty menus list",
            Target::Ace,
            run_menu(json!([])),
            "schema:minItems",
            "/action/menus",
            main_menu,
        ),
        (
            "a menu without id",
            Target::Ice,
            run_menu(
                json!([{"id": "main", "mainPrompt": "#tts[Hi]"}, {"mainPrompt": "#tts[Sub]"}]),
            ),
            "schema:required",
            "/action/menus/1/id",
            "The identifier of a menu. One menu must have the ID value of main. Field is required",
        ),
        (
            "an option action goto(x)",
            Target::Ice,
            option_action("goto(main)"),
            "SVAML024",
            "/action/menus/0/options/0/action",
            accepted,
        ),
        (
            "an option action that is a bare verb (.NET DtmfAction)",
            Target::Pie,
            option_action("menu"),
            "SVAML024",
            "/action/menus/0/options/0/action",
            accepted,
        ),
        (
            "connectPstn indications outside Sinch's list",
            Target::Ice,
            json!({"action": {"name": "connectPstn", "number": "+46700000000", "indications": "xx"}}),
            "schema:enum",
            "/action/indications",
            "type Indication = 'at' | 'au'",
        ),
        (
            "connectSip transport outside Sinch's list",
            Target::Ice,
            json!({"action": {"name": "connectSip", "destination": {"type": "sip", "endpoint": "a@sip.example.com"}, "transport": "SCTP"}}),
            "schema:enum",
            "/action/transport",
            "TransportEnum(\"UDP\")",
        ),
        // The refusing rules that were already there, each with its quoted line.
        (
            "connectPstn on ACE",
            Target::Ace,
            json!({"action": {"name": "connectPstn", "number": "+46700000000"}}),
            "SVAML001",
            "/action/name",
            "continue | Continues the call",
        ),
        (
            "answer on PIE",
            Target::Pie,
            json!({"instructions": [{"name": "answer"}], "action": {"name": "hangup"}}),
            "SVAML002",
            "/instructions/0/name",
            "| `answer` | ✅ | — | — |",
        ),
        (
            "cookie data over 1024 bytes",
            Target::Ice,
            json!({"instructions": [{"name": "setCookie", "key": "k", "value": "v".repeat(1024)}], "action": {"name": "hangup"}}),
            "SVAML040",
            "/instructions/0",
            "may not exceed 1024 bytes",
        ),
        (
            "a call header over 1024 bytes",
            Target::Ice,
            json!({"action": {"name": "connectMxp", "destination": {"type": "username", "endpoint": "u"}, "callHeaders": [{"key": "k", "value": "v".repeat(1024)}]}}),
            "SVAML061",
            "/action/callHeaders/0",
            "call headers is 1024 bytes",
        ),
        (
            "say longer than 600 characters",
            Target::Ice,
            json!({"instructions": [{"name": "say", "text": "a".repeat(601), "locale": "en-US"}], "action": {"name": "hangup"}}),
            "SVAML080",
            "/instructions/0/text",
            "Default maximum length is 600 characters.",
        ),
        (
            "maxDuration over 14400",
            Target::Ice,
            json!({"action": {"name": "connectPstn", "maxDuration": 14401}}),
            "schema:maximum",
            "/action/maxDuration",
            "(max 14400 seconds)",
        ),
        (
            "park maxDuration over 600",
            Target::Ice,
            json!({"action": {"name": "park", "introPrompt": "#tts[Hold]", "holdPrompt": "#tts[Still holding]", "maxDuration": 601}}),
            "schema:maximum",
            "/action/maxDuration",
            "can be set to maximum 600 seconds",
        ),
        (
            "conferenceId over 64 characters",
            Target::Ice,
            json!({"action": {"name": "connectConf", "conferenceId": "c".repeat(65)}}),
            "schema:maxLength",
            "/action/conferenceId",
            "Shouldn't exceed 64 characters.",
        ),
        (
            "DTMF sent with a letter",
            Target::Ice,
            json!({"action": {"name": "connectPstn", "dtmf": "12a"}}),
            "schema:pattern",
            "/action/dtmf",
            "Valid characters are: 0-9, #, and w.",
        ),
        (
            "a menu key that is not DTMF",
            Target::Ice,
            run_menu(
                json!([{"id": "main", "mainPrompt": "#tts[Hi]", "options": [{"dtmf": "x", "action": "return(x)"}]}]),
            ),
            "schema:pattern",
            "/action/menus/0/options/0/dtmf",
            "A DTMF digit the user can press",
        ),
        (
            "enableVoice without locale",
            Target::Ice,
            json!({"action": {"name": "runMenu", "enableVoice": true, "menus": [{"id": "main", "mainPrompt": "#tts[Say yes]"}]}}),
            "schema:required",
            "/action/locale",
            "the locale property is required",
        ),
    ]
}

#[test]
fn every_refusing_rule_refuses_its_reply_with_the_quoted_sinch_line() {
    let mut quotes_seen = BTreeSet::new();
    let mut codes_seen = BTreeSet::new();
    for (what, target, doc, code, pointer, fragment) in refusals() {
        let report = VALIDATOR.check(target, &doc, Mode::Normal);
        assert!(!report.valid, "{what}: went out:\n{report}");
        let v = find(&report, code, pointer)
            .unwrap_or_else(|| panic!("{what}: no {code} at {pointer}:\n{report}"));
        assert_eq!(v.severity, Severity::Error, "{what}:\n{report}");
        let quote = v.quote.as_deref().unwrap_or_default();
        assert!(quote.contains(fragment), "{what}: quote {quote:?}");
        assert!(
            v.read.as_deref().is_some_and(|r| !r.is_empty()),
            "{what}: no read date"
        );
        assert!(
            v.source != svamlgate::svaml::policy::NO_SINCH_SOURCE,
            "{what}: {v}"
        );
        // The quoted line shows where operators read reports.
        assert!(report.to_string().contains(quote), "{what}:\n{report}");
        // Every error of the reply meets the bar, not only the one looked for.
        for e in report.errors() {
            assert!(
                e.quote.is_some() || e.code.starts_with("schema:"),
                "{what}: {e}"
            );
        }
        quotes_seen.insert(quote.to_owned());
        codes_seen.insert(code);
    }
    // Every refusing lint rule is in the table.
    for rule in lint::RULES.iter().filter(|r| r.severity == Severity::Error) {
        assert!(
            codes_seen.contains(rule.code),
            "{} has no reply in the table",
            rule.code
        );
        assert!(quotes_seen.contains(rule.quote), "{}", rule.code);
    }
    // Every refusing schema constraint with its own x-policy entry is in the table too, and in
    // the severity table of docs/gate.md with its quoted line.
    let docs = include_str!("../../docs/gate.md");
    for quote in VALIDATOR.refusing_quotes() {
        assert!(
            quotes_seen.contains(quote),
            "no reply in the table trips the constraint quoting {quote:?}"
        );
        assert!(
            docs.contains(&quote.replace('|', "\\|")),
            "docs/gate.md lacks {quote:?}"
        );
    }
}

/// (what, event, reply, code, pointer).
type Kept = (&'static str, Target, Value, &'static str, &'static str);

fn kept_warnings() -> Vec<Kept> {
    vec![
        (
            "connectPstn number without +",
            Target::Ice,
            json!({"instructions": [{"name": "say", "text": "Connecting you.", "locale": "en-US"}], "action": {"name": "connectPstn", "number": "46000000001"}}),
            "SVAML010",
            "/action/number",
        ),
        (
            "connectPstn cli without +",
            Target::Pie,
            json!({"action": {"name": "connectPstn", "number": "+46700000000", "cli": "46000000001"}}),
            "SVAML010",
            "/action/cli",
        ),
        (
            "moh outside the Java list",
            Target::Ice,
            json!({"action": {"name": "connectConf", "conferenceId": "room", "moh": "ringing"}}),
            "schema:enum",
            "/action/moh",
        ),
        (
            "a negative maxDuration",
            Target::Ice,
            json!({"action": {"name": "connectPstn", "number": "+46700000000", "maxDuration": -1}}),
            "schema:minimum",
            "/action/maxDuration",
        ),
        (
            "duplicate DTMF keys",
            Target::Ice,
            run_menu(
                json!([{"id": "main", "mainPrompt": "#tts[Press 1]", "options": [
                {"dtmf": "1", "action": "return(a)"}, {"dtmf": "1", "action": "return(b)"}]}]),
            ),
            "SVAML023",
            "/action/menus/0/options/1/dtmf",
        ),
        (
            "menu(x) to a menu that does not exist",
            Target::Ace,
            option_action("menu(sales)"),
            "SVAML022",
            "/action/menus/0/options/0/action",
        ),
        (
            "no menu main, mainMenu naming an existing menu",
            Target::Pie,
            json!({"action": {"name": "runMenu", "mainMenu": "start", "menus": [{"id": "start", "mainPrompt": "#tts[Hi]"}]}}),
            "SVAML026",
            "/action/menus",
        ),
        (
            "indications \"false\" (in the Java enum)",
            Target::Ice,
            json!({"action": {"name": "connectPstn", "number": "+46700000000", "indications": "false"}}),
            "SVAML033",
            "/action/indications",
        ),
        (
            "transport in lower case",
            Target::Ice,
            json!({"action": {"name": "connectSip", "destination": {"type": "sip", "endpoint": "a@sip.example.com"}, "transport": "tls"}}),
            "SVAML070",
            "/action/transport",
        ),
        (
            "ACE reply without an action",
            Target::Ace,
            json!({"instructions": [{"name": "say", "text": "Hello", "locale": "en-US"}]}),
            "schema:required",
            "/action",
        ),
        (
            "PIE reply without an action",
            Target::Pie,
            json!({"instructions": [{"name": "say", "text": "Hello", "locale": "en-US"}]}),
            "schema:required",
            "/action",
        ),
        (
            "manage-call body without an action",
            Target::Manage,
            json!({"instructions": [{"name": "say", "text": "Hello", "locale": "en-US"}]}),
            "schema:required",
            "/action",
        ),
        // Audible lints: what the caller would hear.
        (
            "an empty say",
            Target::Ice,
            json!({"instructions": [{"name": "say", "text": "", "locale": "en-US"}], "action": {"name": "hangup"}}),
            "SVAML090",
            "/instructions/0/text",
        ),
        (
            "a say of punctuation only",
            Target::Pie,
            json!({"instructions": [{"name": "say", "text": " ... ", "locale": "en-US"}], "action": {"name": "hangup"}}),
            "SVAML090",
            "/instructions/0/text",
        ),
        (
            "a #tts[] of whitespace",
            Target::Ace,
            json!({"instructions": [{"name": "playFiles", "ids": ["#tts[   ]"], "locale": "en-US"}], "action": {"name": "continue"}}),
            "SVAML090",
            "/instructions/0/ids/0",
        ),
        (
            "playFiles on ICE without answer before it",
            Target::Ice,
            json!({"instructions": [{"name": "playFiles", "ids": ["#tts[Welcome]"], "locale": "en-US"}], "action": {"name": "hangup"}}),
            "SVAML091",
            "/instructions/0/name",
        ),
        (
            "hangup on ICE without any prompt",
            Target::Ice,
            json!({"action": {"name": "hangup"}}),
            "SVAML092",
            "/action/name",
        ),
        (
            "runMenu whose first menu has no main prompt",
            Target::Ice,
            run_menu(json!([{"id": "main", "options": [{"dtmf": "1", "action": "return(a)"}]}])),
            "SVAML093",
            "/action/menus/0/mainPrompt",
        ),
    ]
}

#[test]
fn the_kept_warnings_and_the_audible_lints_still_go_out_with_a_hint() -> anyhow::Result<()> {
    let gate = Gate::new(VALIDATOR.clone(), &base_config())?;
    for (what, target, doc, code, pointer) in kept_warnings() {
        let report = VALIDATOR.check(target, &doc, Mode::Normal);
        assert!(report.valid, "{what}: refused:\n{report}");
        let v = find(&report, code, pointer)
            .unwrap_or_else(|| panic!("{what}: no {code} at {pointer}:\n{report}"));
        assert_eq!(v.severity, Severity::Warning, "{what}");
        assert!(!v.source.is_empty(), "{what}");
        // Through the gate, the reply itself goes out.
        let verdict = gate.pass(target, doc.clone());
        assert!(verdict.passed, "{what}");
        assert_eq!(verdict.reply, doc, "{what}");
        if code.starts_with("SVAML09") {
            let hint = v.hint.as_deref().unwrap_or_default();
            assert!(
                hint.contains("caller") && !v.strict_error,
                "{what}: an audible warning says what the caller experiences: {hint}"
            );
            // Audible lints are never refusals, not even in strict mode.
            let strict = VALIDATOR.check(target, &doc, Mode::Strict);
            assert!(
                find(&strict, code, pointer).is_some_and(|s| s.severity == Severity::Warning),
                "{what}:\n{strict}"
            );
        }
    }
    // The dead branch is the one warning logged at error and counted on its own.
    assert_eq!(lint::DEAD_BRANCH_RULES, ["SVAML022"]);
    // What a caller hears when nothing is wrong draws no audible warning.
    let fine = json!({"instructions": [{"name": "answer"}, {"name": "playFiles", "ids": ["#tts[Welcome.]"], "locale": "en-US"}],
        "action": {"name": "runMenu", "menus": [{"id": "main", "mainPrompt": "#tts[Press 1.]", "options": [{"dtmf": "1", "action": "return(a)"}]}]}});
    let report = VALIDATOR.check(Target::Ice, &fine, Mode::Strict);
    assert!(report.violations.is_empty(), "{report}");
    Ok(())
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_svamlgate"));
    c.env_remove("SINCH_APPLICATION_KEY")
        .env_remove("SINCH_APPLICATION_SECRET");
    c
}

#[test]
fn validate_prints_the_quoted_line_and_the_audible_warnings() {
    let dir = std::env::temp_dir().join(format!(
        "svamlgate-evidence-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let refused = dir.join("refused.json");
    std::fs::write(&refused, option_action("goto(main)").to_string()).unwrap();
    let out = bin()
        .args(["validate", "--event", "ice"])
        .arg(&refused)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[SVAML024]") && text.contains("The following values are accepted"),
        "{text}"
    );
    let silent = dir.join("silent.json");
    std::fs::write(&silent, json!({"action": {"name": "hangup"}}).to_string()).unwrap();
    let out = bin()
        .args(["validate", "--event", "ice", "--json"])
        .arg(&silent)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["code"] == "SVAML092" && v["severity"] == "warning"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A customer's app answering each path with a fixed reply.
fn upstream(replies: Vec<(&'static str, Value)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        let mut app = App::new();
        for (path, reply) in replies.clone() {
            app = app.route(
                path,
                web::post().to(move || {
                    let reply = reply.clone();
                    async move { HttpResponse::Ok().json(reply) }
                }),
            );
        }
        app
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    format!("http://{addr}")
}

/// The stored callback of `callid`, once the shipper has written it (the reply does not wait for
/// PostgreSQL; under load the record can take a while).
async fn stored_callback(app: &crate::helpers::TestApp, callid: &str) -> sqlx::postgres::PgRow {
    crate::helpers::wait_for(std::time::Duration::from_secs(15), async || {
        sqlx::query(
            "SELECT reply_source, fallback_reason, gate_verdict, callbacks.validation AS validation FROM callbacks WHERE callid = $1",
        )
        .bind(callid)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
        .ok_or_else(|| format!("callback {callid} never reached PostgreSQL"))
    })
    .await
}

#[actix_web::test]
async fn proxy_mode_refused_reply_gets_the_fallback_and_records_rule_and_source() {
    let app = spawn_app().await;
    let no_main = run_menu(json!([{"id": "start", "mainPrompt": "#tts[Press 1]",
        "options": [{"dtmf": "1", "action": "return(a)"}]}]));
    let dead_branch = json!({"instructions": [{"name": "say", "text": "Welcome.", "locale": "en-US"}],
        "action": {"name": "runMenu", "menus": [{"id": "main", "mainPrompt": "#tts[Press 1]",
        "options": [{"dtmf": "1", "action": "menu(sales)"}]}]}});
    let base = upstream(vec![
        ("/no-main", no_main.clone()),
        ("/dead-branch", dead_branch.clone()),
        ("/silent", json!({"action": {"name": "hangup"}})),
    ]);
    for (n, path) in ["/no-main", "/dead-branch", "/silent"].iter().enumerate() {
        let route = json!({"name": format!("e{n}"), "called": format!("+1555030000{n}"),
            "target": {"kind": "upstream", "url": format!("{base}{path}"), "key": "up-key", "secretB64": "c2VjcmV0"}});
        let res = app.admin_send("POST", "/admin/routes", Some(&route)).await;
        assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    }

    // Refused: the caller gets the validated fallback.
    let res = app.post_signed(&ice("ev-1", "+15550300000")).await;
    assert_eq!(
        res.json(),
        svamlgate::gate::builtin_fallback(Target::Ice),
        "the fallback goes out"
    );
    let row = stored_callback(&app, "ev-1").await;
    assert_eq!(row.get::<String, _>("reply_source"), "fallback");
    assert_eq!(row.get::<String, _>("fallback_reason"), "invalid");
    assert_eq!(row.get::<String, _>("gate_verdict"), "rejected");
    // The rejected reply is on record with the rule, its source and the quoted line.
    let timeline = app.admin_get("/admin/calls/ev-1").await.json();
    let rejected = &timeline["rejectedReplies"][0];
    assert_eq!(rejected["source"], "upstream", "{timeline}");
    assert_eq!(rejected["reply"], no_main, "{rejected}");
    let refusal = rejected["report"]["violations"]
        .as_array()
        .and_then(|all| all.iter().find(|v| v["code"] == "SVAML020"))
        .cloned()
        .unwrap_or_else(|| panic!("no SVAML020 in {rejected}"));
    assert_eq!(refusal["severity"], "error");
    assert!(
        refusal["source"]
            .as_str()
            .is_some_and(|s| s.contains("SvamlActionRunMenu.java")),
        "{refusal}"
    );
    assert!(
        refusal["quote"]
            .as_str()
            .is_some_and(|q| q.contains("an error is returned")),
        "{refusal}"
    );
    assert_eq!(refusal["read"], svamlgate::svaml::policy::EVIDENCE_READ_ON);

    // A dead branch goes out, with its warning stored and counted on its own.
    let res = app.post_signed(&ice("ev-2", "+15550300001")).await;
    assert_eq!(res.json(), dead_branch);
    // An ICE that hangs up in silence goes out too, with its audible warning.
    let res = app.post_signed(&ice("ev-3", "+15550300002")).await;
    assert_eq!(res.json(), json!({"action": {"name": "hangup"}}));
    let stored: Value = stored_callback(&app, "ev-3").await.get("validation");
    assert!(
        stored["violations"]
            .as_array()
            .is_some_and(|all| all.iter().any(|v| v["code"] == "SVAML092")),
        "{stored}"
    );

    let metrics = String::from_utf8(app.get("/metrics", None).await.body).unwrap();
    for line in [
        "svamlgate_gate_violations_total{event=\"ice\",rule=\"SVAML020\"} 1",
        "svamlgate_gate_warnings_total{event=\"ice\",rule=\"SVAML022\"} 1",
        "svamlgate_gate_dead_branches_total{event=\"ice\",rule=\"SVAML022\"} 1",
        "svamlgate_gate_warnings_total{event=\"ice\",rule=\"SVAML092\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    assert!(
        !metrics.contains("svamlgate_gate_dead_branches_total{event=\"ice\",rule=\"SVAML092\"}")
    );
}

/// The dead branch reaches the operator's log at error, while the reply goes out.
#[actix_web::test]
async fn a_dead_menu_branch_is_logged_at_error_and_the_reply_goes_out() {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::Duration;

    use crate::helpers::{fresh_database, KEY, SECRET};

    let dead_branch = option_action("menu(sales)");
    let db = fresh_database().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_svamlgate"))
        .arg("serve")
        .env("DATABASE_URL", &db)
        .env("SVAMLGATE_DATA_DIR", base_config().db.data_dir)
        .env("SVAMLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SINCH_APPLICATION_KEY", KEY)
        .env("SINCH_APPLICATION_SECRET", SECRET)
        .env("SVAMLGATE_DEFAULT_ICE", dead_branch.to_string())
        .env("SVAMLGATE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = awc::Client::default();
    let base = format!("http://127.0.0.1:{port}");
    crate::helpers::wait_serving(&base, Duration::from_secs(10)).await;
    let body = ice("dead-1", "+15550399999");
    let ts = svamlgate::signature::format_timestamp(time::OffsetDateTime::now_utc());
    let cred = svamlgate::signature::AppCredential::new(KEY, SECRET).unwrap();
    let auth = svamlgate::signature::sign(
        &cred,
        "POST",
        "/sinch/callback",
        Some("application/json"),
        &ts,
        &body,
    );
    let mut res = client
        .post(format!("{base}/sinch/callback"))
        .insert_header(("authorization", auth))
        .insert_header(("x-timestamp", ts))
        .insert_header(("content-type", "application/json"))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let reply: Value = res.json().await.unwrap();
    assert_eq!(reply, dead_branch, "the reply goes out");

    // SAFETY: the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = child.wait();
    let logged = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["rule"] == "SVAML022")
        .unwrap_or_else(|| panic!("no SVAML022 line in {stderr}"));
    assert_eq!(logged["level"], "ERROR", "{logged}");
    assert_eq!(logged["event"], "ice", "{logged}");
    assert_eq!(
        logged["pointer"], "/action/menus/0/options/0/action",
        "{logged}"
    );
    assert!(
        logged["message"]
            .as_str()
            .is_some_and(|m| m.contains("dead branch") && m.contains("sales")),
        "{logged}"
    );
}
