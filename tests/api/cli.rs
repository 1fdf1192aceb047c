//! The command line: `validate` exit codes and reports, `sign` output, and refusing to start with an
//! invalid fallback.

use std::process::Command;

use crate::helpers::{base_config, fixture, spawn_app, KEY, SECRET};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_svamlgate"));
    c.env_remove("SINCH_APPLICATION_KEY")
        .env_remove("SINCH_APPLICATION_SECRET");
    c
}

fn write_temp(name: &str, content: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "svamlgate-cli-{}-{name}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&p, content).unwrap();
    p
}

/// Runs the binary with its standard output on a pipe whose read end is already closed, so every
/// write meets a closed pipe (`svamlgate validate --json FILE | head -c 300` once the reader has
/// gone); returns the exit status and standard error.
fn run_into_closed_pipe(args: &[&std::ffi::OsStr]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = bin()
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("running svamlgate");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A closed pipe on standard output ends each printing command quietly: no panic, nothing on
/// stderr, and the command's own exit code (an invalid document still exits 1).
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::ffi::OsStr;
    let valid = write_temp(
        "pipe.json",
        r#"{"instructions":[{"name":"say","text":"Hi","locale":"en-US"}],"action":{"name":"hangup"}}"#,
    );
    let invalid = write_temp("pipe-bad.json", r#"{"action":{"name":"park"}}"#);
    let ace = write_temp(
        "pipe-ace.json",
        &String::from_utf8(fixture("sinch/ace-sinch-docs-signing-1.json")).unwrap(),
    );
    let os = OsStr::new;
    let cases: [(Vec<&OsStr>, i32); 5] = [
        (
            vec![
                os("validate"),
                os("--event"),
                os("ice"),
                os("--json"),
                valid.as_os_str(),
            ],
            0,
        ),
        (
            vec![os("validate"), os("--event"), os("ice"), valid.as_os_str()],
            0,
        ),
        (
            vec![
                os("validate"),
                os("--event"),
                os("ace"),
                os("--json"),
                invalid.as_os_str(),
            ],
            1,
        ),
        (
            vec![
                os("validate"),
                os("--event"),
                os("ace"),
                os("--callback"),
                ace.as_os_str(),
            ],
            0,
        ),
        (
            vec![
                os("sign"),
                os("--key"),
                os(KEY),
                os("--secret"),
                os(SECRET),
                ace.as_os_str(),
            ],
            0,
        ),
    ];
    for (args, code) in cases {
        let (status, stderr) = run_into_closed_pipe(&args);
        assert_eq!(
            status.code(),
            Some(code),
            "{args:?}: {status}, stderr: {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: stderr: {stderr}"
        );
    }
}

#[test]
fn validate_exit_codes_and_reports() {
    let valid = write_temp(
        "ok.json",
        r#"{"instructions":[{"name":"say","text":"Hi","locale":"en-US"}],"action":{"name":"hangup"}}"#,
    );
    let out = bin()
        .args(["validate", "--event", "ice"])
        .arg(&valid)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let invalid = write_temp(
        "bad.json",
        r#"{"action":{"name":"connectPstn","number":"4670"}}"#,
    );
    let out = bin()
        .args(["validate", "--event", "ace", "--json"])
        .arg(&invalid)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert!(
        report["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["pointer"] == "/action/name"),
        "{report}"
    );

    assert!(
        report["violations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["source"].is_string() && v["severity"].is_string()),
        "{report}"
    );

    // Warnings alone exit 0 (the reply would go out); the report names severity and source.
    let warned = write_temp(
        "warn.json",
        r#"{"action":{"name":"connectPstn","number":"46000000001","maxDuration":90}}"#,
    );
    let out = bin()
        .args(["validate", "--event", "ice"])
        .arg(&warned)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("warning /action/number [SVAML010]")
            && text.contains("; source: ")
            && text.contains("custom-callout-request.ts"),
        "{text}"
    );
    let out = bin()
        .args(["validate", "--event", "ice", "--strict"])
        .arg(&warned)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "Sinch's own spelling is no strict error"
    );

    // The say limit is a setting: Sinch's default 600, raised per account.
    let long = write_temp(
        "say.json",
        &format!(
            r#"{{"instructions":[{{"name":"say","text":"{}"}}],"action":{{"name":"hangup"}}}}"#,
            "a".repeat(700)
        ),
    );
    let run = |extra: &[&str], env: Option<&str>| {
        let mut c = bin();
        c.env_remove("SVAMLGATE_MAX_SAY_CHARS");
        if let Some(v) = env {
            c.env("SVAMLGATE_MAX_SAY_CHARS", v);
        }
        c.args(["validate", "--event", "ice"])
            .args(extra)
            .arg(&long)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(run(&[], None), Some(1));
    assert_eq!(run(&["--max-say-chars", "800"], None), Some(0));
    assert_eq!(run(&[], Some("800")), Some(0));
    assert_eq!(run(&["--max-say-chars", "0"], None), Some(2));

    let unknown = write_temp("unknown.json", r#"{"action":{"name":"hangup"},"extra":1}"#);
    let normal = bin()
        .args(["validate", "--event", "ice"])
        .arg(&unknown)
        .output()
        .unwrap();
    assert_eq!(
        normal.status.code(),
        Some(0),
        "unknown properties only warn in normal mode"
    );
    let strict = bin()
        .args(["validate", "--event", "ice", "--strict"])
        .arg(&unknown)
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(1));

    let not_json = write_temp("nj.json", "{nope");
    assert_eq!(
        bin()
            .args(["validate", "--event", "ice"])
            .arg(&not_json)
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        bin()
            .args(["validate", "--event", "ice", "/no/such/file"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn validate_callback_checks_an_event_against_its_schema() {
    let dice = write_temp(
        "dice.json",
        &String::from_utf8(fixture("sinch/dice-java-sdk-1.json")).unwrap(),
    );
    let ok = bin()
        .args(["validate", "--event", "dice", "--callback", "--json"])
        .arg(&dice)
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let out: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(out["report"]["target"], "event:dice");
    assert_eq!(out["readerWarnings"], serde_json::json!([]));

    // The same DICE checked as a PIE: its event name is wrong for that schema.
    let wrong = bin()
        .args(["validate", "--event", "pie", "--callback"])
        .arg(&dice)
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("/event"));

    // A field of the wrong type: the schema says so, and so does the reader (which ignores it).
    let bad = write_temp(
        "bad-dice.json",
        r#"{"event":"dice","callid":"c","duration":"long"}"#,
    );
    let out = bin()
        .args(["validate", "--event", "dice", "--callback"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/duration"), "{text}");
    assert!(text.contains("reader: /duration"), "{text}");

    // No schema for an event Sinch does not send.
    let unknown = bin()
        .args(["validate", "--event", "ring", "--callback"])
        .arg(&dice)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn sign_prints_the_documented_vector() {
    let body = write_temp(
        "ace.json",
        &String::from_utf8(fixture("sinch/ace-sinch-docs-signing-1.json")).unwrap(),
    );
    let out = bin()
        .args([
            "sign",
            "--key",
            KEY,
            "--secret",
            SECRET,
            "--path",
            "/sinch/callback/ace",
        ])
        .args([
            "--timestamp",
            "2014-09-24T10:59:41Z",
            "--content-type",
            "application/json",
        ])
        .arg(&body)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "authorization: application {KEY}:Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4="
        )),
        "{text}"
    );
    assert!(text.contains("content-md5: REWF+X220L4/Gw1spXOU7g=="));
}

#[actix_web::test]
async fn sign_send_drives_a_running_service() {
    let app = spawn_app().await;
    let body = write_temp(
        "ice.json",
        &String::from_utf8(fixture("sinch/ice-node-sdk-1.json")).unwrap(),
    );
    let base = format!("http://{}", app.addr);
    let out = tokio::task::spawn_blocking(move || {
        bin()
            .args(["sign", "--key", KEY, "--secret", SECRET, "--send", &base])
            .arg(&body)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("HTTP 200"), "{text}");
    assert!(text.contains("\"action\""));
}

#[actix_web::test]
async fn a_fallback_with_only_strict_findings_starts() {
    let mut config = base_config();
    config.fallback_ice = Some(
        r#"{"instructions":[{"name":"Say","text":"Sorry","locale":"en-US"}],"action":{"name":"Hangup"}}"#
            .into(),
    );
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    let validator = std::sync::Arc::new(svamlgate::svaml::Validator::new().unwrap());
    let state =
        svamlgate::app::AppState::build(config, svamlgate::db::store::Store::new(pool), validator)
            .await;
    assert!(state.is_ok(), "{:#}", state.err().unwrap());
}

#[actix_web::test]
async fn an_invalid_fallback_refuses_to_start() {
    let mut config = base_config();
    config.fallback_ice = Some(r#"{"action":{"name":"continue"}}"#.into());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    let validator = std::sync::Arc::new(svamlgate::svaml::Validator::new().unwrap());
    let err =
        svamlgate::app::AppState::build(config, svamlgate::db::store::Store::new(pool), validator)
            .await
            .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("fallback") && msg.contains("ICE"), "{msg}");
}

#[test]
fn a_bad_setting_is_reported_not_ignored() {
    let out = bin().env("SVAMLGATE_LISTEN", "garbage").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--listen") && err.contains("garbage"), "{err}");
}
