//! What reaches the logs: JSON lines when asked, request spans with the call's fields, masked phone
//! numbers, and never a secret.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{fixture, fresh_database, wait_serving, ADMIN_TOKEN, KEY, SECRET};

#[actix_web::test]
async fn json_logs_mask_numbers_and_never_print_secrets() {
    let db = fresh_database().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_svamlgate"))
        .arg("serve")
        .env("DATABASE_URL", &db)
        .env(
            "SVAMLGATE_DATA_DIR",
            crate::helpers::base_config().db.data_dir,
        )
        .env("SVAMLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SINCH_APPLICATION_KEY", KEY)
        .env("SINCH_APPLICATION_SECRET", SECRET)
        .env("SVAMLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SVAMLGATE_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = awc::Client::default();
    let base = format!("http://127.0.0.1:{port}");
    wait_serving(&base, Duration::from_secs(10)).await;
    let body = fixture("sinch/ice-nuget-serversdk-1.json");
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
    let res = client
        .post(format!("{base}/sinch/callback"))
        .insert_header(("authorization", auth.clone()))
        .insert_header(("x-timestamp", ts))
        .insert_header(("content-type", "application/json"))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    // A refused one too, and an admin call.
    let _ = client
        .post(format!("{base}/sinch/callback"))
        .send_body("{}")
        .await;
    let _ = client
        .get(format!("{base}/admin/events"))
        .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send()
        .await;

    // SIGTERM: graceful shutdown, then read everything it logged.
    // SAFETY: the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    let signature = auth.split_once(':').unwrap().1;
    for secret in [SECRET, ADMIN_TOKEN, signature] {
        assert!(!stderr.contains(secret), "a secret reached the logs");
    }
    assert!(
        !stderr.contains("46708168731"),
        "an unmasked caller number reached the logs"
    );
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let answered = lines
        .iter()
        .find(|l| l["message"] == "callback answered")
        .unwrap_or_else(|| panic!("no 'callback answered' line in {stderr}"));
    assert_eq!(answered["caller"], "467******31");
    let span = &answered["span"];
    assert_eq!(span["event"], "ice", "{answered}");
    assert_eq!(
        span["callid"],
        "241b8ab35e0e83814c4e775a66cf50db@193.45.63.102"
    );
    assert_eq!(span["method"], "POST");
    assert!(span["reference"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(lines.iter().any(|l| l["message"] == "callback refused"));
}
