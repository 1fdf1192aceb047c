//! Signed callbacks: every refusal reason, stored; duplicates answered from the stored reply, also
//! across a restart; verification switched off explicitly.

use sqlx::Row;

use crate::helpers::{fixture, spawn_app, spawn_app_on, spawn_app_with, KEY, SECRET};
use svamlgate::signature::{self, AppCredential};

type Case = (Vec<(&'static str, String)>, u64, &'static str);

fn now() -> String {
    signature::format_timestamp(time::OffsetDateTime::now_utc())
}

#[actix_web::test]
async fn every_refusal_reason_is_answered_and_stored() {
    let app = spawn_app().await;
    let body = fixture("sinch/ice-node-sdk-1.json");
    let ts = now();
    let cred = AppCredential::new(KEY, SECRET).unwrap();
    let ct = "application/json; charset=utf-8";
    let good = signature::sign(&cred, "POST", "/sinch/callback", Some(ct), &ts, &body);
    let stale =
        signature::format_timestamp(time::OffsetDateTime::now_utc() - time::Duration::minutes(10));
    let stale_auth = signature::sign(&cred, "POST", "/sinch/callback", Some(ct), &stale, &body);
    let future =
        signature::format_timestamp(time::OffsetDateTime::now_utc() + time::Duration::minutes(10));
    let future_auth = signature::sign(&cred, "POST", "/sinch/callback", Some(ct), &future, &body);
    let other = AppCredential::new("other-key", "c2VjcmV0").unwrap();
    let unknown_auth = signature::sign(&other, "POST", "/sinch/callback", Some(ct), &ts, &body);
    let cases: Vec<Case> = vec![
        (
            vec![("x-timestamp", ts.clone())],
            40100,
            "authorization_missing",
        ),
        (
            vec![
                ("authorization", "application nocolon".into()),
                ("x-timestamp", ts.clone()),
            ],
            40100,
            "authorization_malformed",
        ),
        (
            vec![
                ("authorization", format!("Basic {KEY}:{SECRET}")),
                ("x-timestamp", ts.clone()),
            ],
            40107,
            "basic_not_allowed",
        ),
        (
            vec![("authorization", good.clone())],
            40101,
            "timestamp_missing",
        ),
        (
            vec![
                ("authorization", good.clone()),
                ("x-timestamp", "yesterday".into()),
            ],
            40101,
            "timestamp_invalid",
        ),
        (
            vec![
                (
                    "authorization",
                    format!("application {KEY}:{}", "A".repeat(44)),
                ),
                ("x-timestamp", ts.clone()),
            ],
            40102,
            "signature_mismatch",
        ),
        (
            vec![("authorization", stale_auth), ("x-timestamp", stale)],
            40105,
            "timestamp_too_old",
        ),
        (
            vec![("authorization", unknown_auth), ("x-timestamp", ts.clone())],
            40108,
            "unknown_key",
        ),
        (
            vec![
                ("authorization", format!("Bearer {KEY}:{SECRET}")),
                ("x-timestamp", ts.clone()),
            ],
            40107,
            "unsupported_scheme",
        ),
        (
            vec![
                ("authorization", format!("application {KEY}:not*base64")),
                ("x-timestamp", ts.clone()),
            ],
            40102,
            "signature_not_base64",
        ),
        (
            vec![("authorization", future_auth), ("x-timestamp", future)],
            40105,
            "timestamp_in_future",
        ),
    ];
    for (headers, code, reason) in cases {
        let mut h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        h.push(("content-type", ct));
        let res = app.post_raw("/sinch/callback", &body, &h).await;
        let reference = res.assert_envelope(401, code);
        let err = app.wait_error(&reference).await;
        assert_eq!(err["refusal"]["reason"], reason, "{err}");
        let headers = err["refusal"]["headers"].to_string();
        assert!(
            !headers.contains(&"A".repeat(44)),
            "signature value never stored"
        );
        assert_eq!(err["refusal"]["bodyBytes"], body.len());
    }
    let processed: i64 = sqlx::query_scalar("SELECT count(*) FROM callbacks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(processed, 0, "refused requests are never processed");
}

#[actix_web::test]
async fn no_key_configured_refuses_with_40108_naming_the_setting() {
    let app = spawn_app_with(|c| {
        c.application_key = None;
        c.application_secret = None;
    })
    .await;
    let res = app.post_signed(&fixture("sinch/ice-node-sdk-1.json")).await;
    res.assert_envelope(401, 40108);
    assert!(res.json()["message"]
        .as_str()
        .unwrap()
        .contains("SINCH_APPLICATION_KEY"));
    assert_eq!(
        app.admin_get("/admin/events").await.status,
        200,
        "admin API still served"
    );
}

#[actix_web::test]
async fn rotation_accepts_every_configured_key() {
    let app = spawn_app_with(|c| {
        c.applications = Some(svamlgate::config::Secret::new("old-key:b2xkc2VjcmV0"));
    })
    .await;
    let body = fixture("sinch/ace-java-sdk-1.json");
    let ts = now();
    let ct = "application/json";
    let old = AppCredential::new("old-key", "b2xkc2VjcmV0").unwrap();
    let auth = signature::sign(&old, "POST", "/sinch/callback", Some(ct), &ts, &body);
    let res = app
        .post_raw(
            "/sinch/callback",
            &body,
            &[
                ("authorization", &auth),
                ("x-timestamp", &ts),
                ("content-type", ct),
            ],
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        app.post_signed(&body).await.status,
        200,
        "the current key too"
    );
}

#[actix_web::test]
async fn a_replay_gets_the_stored_reply_and_is_not_processed_again_even_after_restart() {
    let app = spawn_app().await;
    let body = fixture("sinch/ice-java-sdk-1.json");
    let at = time::OffsetDateTime::now_utc();
    let ts = signature::format_timestamp(at);
    let first = app.post_signed_at(&body, &ts).await;
    assert_eq!(first.status, 200);
    let second = app.post_signed_at(&body, &ts).await;
    assert_eq!(second.status, 200);
    assert_eq!(first.json(), second.json());
    app.stop().await;
    // Replay protection is rebuilt from the journal in the data directory.
    let dir = app.config.db.data_dir.clone();
    let restarted = spawn_app_on(app.db_url.clone(), move |c| c.db.data_dir = dir).await;
    let third = restarted.post_signed_at(&body, &ts).await;
    assert_eq!(third.json(), first.json());
    let rows = sqlx::query(
        "SELECT reply_source, duplicate_of IS NOT NULL AS dup FROM callbacks ORDER BY id",
    )
    .fetch_all(&restarted.pool)
    .await
    .unwrap();
    let kinds: Vec<(String, bool)> = rows
        .iter()
        .map(|r| (r.get("reply_source"), r.get("dup")))
        .collect();
    assert_eq!(
        kinds,
        [
            ("default".to_owned(), false),
            ("duplicate".to_owned(), true),
            ("duplicate".to_owned(), true)
        ]
    );
    let timeline = restarted
        .admin_get("/admin/calls/a%20call%20id")
        .await
        .json();
    assert_eq!(timeline["duplicates"], 2);
    let events = timeline["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "the replays show as one event: {timeline}");
    assert_eq!(events[0]["replays"].as_array().unwrap().len(), 2);
    // A new timestamp (the next second, well within the allowed skew) is a new request, not a
    // replay.
    let next = signature::format_timestamp(at + time::Duration::seconds(1));
    assert_ne!(next, ts);
    restarted.post_signed_at(&body, &next).await;
    let originals: i64 =
        sqlx::query_scalar("SELECT count(*) FROM callbacks WHERE duplicate_of IS NULL")
            .fetch_one(&restarted.pool)
            .await
            .unwrap();
    assert_eq!(originals, 2);
}

#[actix_web::test]
async fn verification_can_be_switched_off_and_events_are_marked_unverified() {
    let app = spawn_app_with(|c| c.verify_signatures = false).await;
    let res = app
        .post_raw(
            "/sinch/callback",
            &fixture("sinch/ice-node-sdk-1.json"),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(res.status, 200);
    let sig: String = sqlx::query_scalar("SELECT signature FROM callbacks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sig, "unverified");
}

#[actix_web::test]
async fn public_path_prefix_is_put_back_before_verifying() {
    let app = spawn_app_with(|c| c.public_path_prefix = Some("/public".into())).await;
    let body = fixture("sinch/ice-node-sdk-1.json");
    let ts = now();
    let ct = "application/json";
    let cred = AppCredential::new(KEY, SECRET).unwrap();
    // Sinch signed the public URL path; the proxy stripped /public.
    let auth = signature::sign(
        &cred,
        "POST",
        "/public/sinch/callback",
        Some(ct),
        &ts,
        &body,
    );
    let res = app
        .post_raw(
            "/sinch/callback",
            &body,
            &[
                ("authorization", &auth),
                ("x-timestamp", &ts),
                ("content-type", ct),
            ],
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
}

#[actix_web::test]
async fn concurrent_identical_requests_are_processed_once() {
    let app = spawn_app().await;
    let body = fixture("sinch/ice-nuget-serversdk-1.json");
    let ts = now();
    let (a, b, c) = tokio::join!(
        app.post_signed_at(&body, &ts),
        app.post_signed_at(&body, &ts),
        app.post_signed_at(&body, &ts)
    );
    assert_eq!((a.status, b.status, c.status), (200, 200, 200));
    assert_eq!(a.json(), b.json());
    assert_eq!(a.json(), c.json());
    let originals: i64 =
        sqlx::query_scalar("SELECT count(*) FROM callbacks WHERE duplicate_of IS NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let replays: i64 =
        sqlx::query_scalar("SELECT count(*) FROM callbacks WHERE duplicate_of IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((originals, replays), (1, 2));
}
