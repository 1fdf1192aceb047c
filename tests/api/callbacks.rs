//! Callbacks end to end: every Sinch fixture, malformed input, and the rows that land.

use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{fixture, spawn_app, spawn_app_with, wait_until};

const EVENT_FIXTURES: &[(&str, &str, bool)] = &[
    ("sinch/ice-java-sdk-1.json", "ice", true),
    ("sinch/ice-node-sdk-1.json", "ice", true),
    ("sinch/ice-nuget-serversdk-1.json", "ice", true),
    ("sinch/ace-java-sdk-1.json", "ace", true),
    ("sinch/ace-sinch-docs-signing-1.json", "ace", true),
    ("sinch/pie-java-sdk-1.json", "pie", true),
    ("sinch/pie-node-sdk-1.json", "pie", true),
    ("sinch/dice-java-sdk-1.json", "dice", false),
    ("sinch/dice-dotnet-sdk-1.json", "dice", false),
    ("sinch/notify-java-sdk-1.json", "notify", false),
];

#[actix_web::test]
async fn every_fixture_is_answered_and_recorded() {
    let app = spawn_app().await;
    let validator = svamlgate::svaml::Validator::new().unwrap();
    for (name, event, svaml) in EVENT_FIXTURES {
        let body = fixture(name);
        let res = app.post_signed(&body).await;
        assert_eq!(
            res.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&res.body)
        );
        let reference = res
            .header("x-svamlgate-reference")
            .expect("reference header")
            .to_owned();
        if *svaml {
            let reply = res.json();
            let target: svamlgate::svaml::Target = event.parse().unwrap();
            let report = validator.check(target, &reply, svamlgate::svaml::Mode::Strict);
            assert!(report.valid, "{name}: reply not valid: {report}");
        } else {
            assert!(res.body.is_empty(), "{name}: expected empty body");
        }
        let row = sqlx::query(
            "SELECT event_type, event_known, raw_body, http_status, c.reply, reply_source, latency_us, signature \
             FROM callbacks c WHERE reference = $1",
        )
        .bind(&reference)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(row.get::<String, _>("event_type"), *event);
        assert!(row.get::<bool, _>("event_known"));
        assert_eq!(
            row.get::<Vec<u8>, _>("raw_body"),
            body,
            "{name}: raw body stored byte for byte"
        );
        assert_eq!(row.get::<i16, _>("http_status"), 200);
        assert_eq!(row.get::<Option<Value>, _>("reply").is_some(), *svaml);
        assert_eq!(
            row.get::<String, _>("reply_source"),
            if *svaml { "default" } else { "none" }
        );
        assert!(row.get::<i64, _>("latency_us") > 0);
        assert_eq!(row.get::<String, _>("signature"), "verified");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM callbacks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, EVENT_FIXTURES.len() as i64);
}

#[actix_web::test]
async fn malformed_json_gets_40003_and_is_recorded() {
    let app = spawn_app().await;
    let res = app.post_signed(b"{\"event\": \"ice\", ").await;
    let reference = res.assert_envelope(400, 40003);
    let err = app.wait_error(&reference).await;
    assert_eq!(err["errorCode"], 40003);
    assert_eq!(err["path"], "/sinch/callback");
    // The raw body is kept too, with the key that signed it.
    let row = sqlx::query("SELECT raw_body, application_key FROM callbacks WHERE reference = $1")
        .bind(&reference)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(row.get::<Vec<u8>, _>("raw_body"), b"{\"event\": \"ice\", ");
    assert_eq!(
        row.get::<Option<String>, _>("application_key").as_deref(),
        Some(crate::helpers::KEY)
    );
}

#[actix_web::test]
async fn missing_event_gets_40002() {
    let app = spawn_app().await;
    let res = app.post_signed(br#"{"callid":"x","version":1}"#).await;
    let reference = res.assert_envelope(400, 40002);
    assert_eq!(app.wait_error(&reference).await["errorCode"], 40002);
}

#[actix_web::test]
async fn non_object_bodies_get_40003() {
    let app = spawn_app().await;
    for body in [&b"[]"[..], b"42", b"\"ice\"", b""] {
        let res = app.post_signed(body).await;
        res.assert_envelope(400, 40003);
    }
}

#[actix_web::test]
async fn unknown_event_is_stored_flagged_and_acknowledged() {
    let app = spawn_app().await;
    let res = app
        .post_signed(br#"{"event":"teleport","callid":"u-1"}"#)
        .await;
    assert_eq!(res.status, 200);
    assert!(res.body.is_empty());
    let row = sqlx::query("SELECT event_type, event_known FROM callbacks WHERE callid = 'u-1'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("event_type"), "teleport");
    assert!(!row.get::<bool, _>("event_known"));
}

#[actix_web::test]
async fn wrong_types_in_non_essential_fields_never_cost_the_call() {
    let app = spawn_app().await;
    let body = json!({
        "event": "ice", "callid": "wt-1", "timestamp": 12, "version": "one",
        "userRate": "cheap", "to": 46701234567i64, "cli": {"n": 1}, "duration": [], "callHeaders": "x"
    });
    let res = app.post_signed(body.to_string().as_bytes()).await;
    assert_eq!(res.status, 200);
    assert!(res.json()["action"]["name"].is_string());
    let warnings: Value =
        sqlx::query_scalar("SELECT parse_warnings FROM callbacks WHERE callid = 'wt-1'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        warnings.as_array().map(|a| a.len() >= 3).unwrap_or(false),
        "{warnings}"
    );
}

#[actix_web::test]
async fn oversized_bodies_are_refused_before_being_read() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024).await;
    let big = format!("{{\"event\":\"ice\",\"custom\":\"{}\"}}", "x".repeat(5000));
    let res = app.post_signed(big.as_bytes()).await;
    let reference = res.assert_envelope(400, 40003);
    assert!(res.json()["message"].as_str().unwrap().contains("1024"));
    app.wait_error(&reference).await;
}

#[actix_web::test]
async fn unknown_route_and_wrong_method_get_envelopes() {
    let app = spawn_app().await;
    let res = app.get("/nope", None).await;
    let reference = res.assert_envelope(404, 40400);
    let err = app.wait_error(&reference).await;
    assert_eq!(err["path"], "/nope");
    let res = app.get("/sinch/callback", None).await;
    res.assert_envelope(400, 40001);
}

#[actix_web::test]
async fn callback_path_is_configurable() {
    let app = spawn_app_with(|c| c.callback_path = "/hooks/voice".into()).await;
    let res = app.post_signed(&fixture("sinch/ice-node-sdk-1.json")).await;
    assert_eq!(res.status, 200);
    app.post_raw("/sinch/callback", b"{}", &[])
        .await
        .assert_envelope(404, 40400);
}

#[actix_web::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz", None).await.status, 200);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["checks"]["database"], "ok");
    app.post_signed(&fixture("sinch/ice-node-sdk-1.json")).await;
    let m = app.get("/metrics", None).await;
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("svamlgate_callbacks_total{event=\"ice\",outcome=\"default\"} 1"),
        "{text}"
    );
    assert!(text.contains("svamlgate_http_request_duration_seconds_bucket"));
    assert!(
        !text.contains("callId") && !text.contains("+1234567770"),
        "no call ids or numbers as labels"
    );
    // Database gone: callers are still answered (from the journal), so readiness stays up and says
    // the database is away.
    app.pool.close().await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 200);
    let ready = ready.json();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_ne!(ready["checks"]["database"], "ok", "{ready}");
    assert_eq!(ready["checks"]["journal"], "ok", "{ready}");
}

#[actix_web::test]
async fn the_caller_is_answered_even_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.pool.close().await;
    let started = std::time::Instant::now();
    let res = app.post_signed(&fixture("sinch/ice-node-sdk-1.json")).await;
    assert_eq!(res.status, 200);
    let reply = res.json();
    let v = svamlgate::svaml::Validator::new().unwrap();
    assert!(
        v.check(
            svamlgate::svaml::Target::Ice,
            &reply,
            svamlgate::svaml::Mode::Strict
        )
        .valid
    );
    // The reply did not wait for the database: it went out once its record was in the journal.
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
    assert_eq!(res.header("content-type"), Some("application/json"));
    let m = String::from_utf8(app.get("/metrics", None).await.body).unwrap();
    assert!(m.contains("svamlgate_journal_lag_records 1"), "{m}");
    assert!(!m.contains("svamlgate_record_failures_total{"), "{m}");
}

#[actix_web::test]
async fn records_made_while_the_database_was_gone_are_written_when_it_is_back() {
    let app = spawn_app().await;
    let data_dir = app.config.db.data_dir.clone();
    app.pool.close().await;
    let ok = app
        .post_signed(&fixture("sinch/ice-nuget-serversdk-1.json"))
        .await;
    assert_eq!(ok.status, 200);
    let bad = app.post_signed(b"{not json").await;
    let bad_ref = bad.assert_envelope(400, 40003);
    // Both wait in the journal on disk.
    let m = String::from_utf8(app.get("/metrics", None).await.body).unwrap();
    assert!(m.contains("svamlgate_journal_lag_records 2"), "{m}");
    app.stop().await;

    // The service comes back with a working database: the journal is shipped.
    let dir = data_dir.clone();
    let back = crate::helpers::spawn_app_on(app.db_url.clone(), move |c| c.db.data_dir = dir).await;
    wait_until(
        "both records are shipped after the restart",
        std::time::Duration::from_secs(10),
        async || {
            let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM callbacks")
                .fetch_one(&back.pool)
                .await
                .unwrap();
            rows == 2
        },
    )
    .await;
    let row =
        sqlx::query("SELECT http_status, reply_source, raw_body FROM callbacks WHERE callid = $1")
            .bind("241b8ab35e0e83814c4e775a66cf50db@193.45.63.102")
            .fetch_one(&back.pool)
            .await
            .unwrap();
    assert_eq!(row.get::<i16, _>("http_status"), 200);
    assert_eq!(row.get::<String, _>("reply_source"), "default");
    assert_eq!(
        row.get::<Vec<u8>, _>("raw_body"),
        fixture("sinch/ice-nuget-serversdk-1.json")
    );
    assert_eq!(back.wait_error(&bad_ref).await["errorCode"], 40003);
    back.settle().await;
    assert_eq!(
        back.state.recorder.status.lag_records(),
        0,
        "journal drained"
    );
}

/// Random bodies, signed, through the whole HTTP path: every answer is a 200 with a valid reply
/// (ICE/ACE/PIE), an empty 200, or a 400 envelope; never a 500, never a dropped connection.
#[actix_web::test]
async fn arbitrary_signed_bodies_never_cost_a_500() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9+ ]{0,12}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let fields = prop::sample::select(vec![
        "callid",
        "to",
        "cli",
        "timestamp",
        "menuResult",
        "userRate",
        "custom",
        "amd",
        "duration",
        "version",
    ]);
    let event = prop::sample::select(vec!["ice", "ace", "pie", "dice", "notify", "ICE", "other"]);
    let body = (
        event,
        prop::collection::vec((fields, value.clone()), 0..6),
        any::<bool>(),
        value,
    );
    let mut runner = TestRunner::deterministic();
    let app = spawn_app().await;
    let validator = svamlgate::svaml::Validator::new().unwrap();
    for _ in 0..120 {
        let (event, fields, as_object, other) = body.new_tree(&mut runner).unwrap().current();
        let bytes = if as_object {
            let mut m = serde_json::Map::new();
            m.insert("event".into(), json!(event));
            for (k, v) in fields {
                m.insert(k.to_owned(), v);
            }
            Value::Object(m).to_string().into_bytes()
        } else {
            other.to_string().into_bytes()
        };
        let res = app.post_signed(&bytes).await;
        match res.status {
            200 => {
                let lower = event.to_ascii_lowercase();
                if as_object && ["ice", "ace", "pie"].contains(&lower.as_str()) {
                    let target: svamlgate::svaml::Target = lower.parse().unwrap();
                    let report =
                        validator.check(target, &res.json(), svamlgate::svaml::Mode::Strict);
                    assert!(
                        report.valid,
                        "{}: {report}",
                        String::from_utf8_lossy(&bytes)
                    );
                } else {
                    assert!(res.body.is_empty(), "{}", String::from_utf8_lossy(&bytes));
                }
            }
            400 => {
                res.json();
            }
            other => panic!("status {other} for {}", String::from_utf8_lossy(&bytes)),
        }
    }
}

/// Callers before records: while callbacks queue (as many in flight as CPUs, or more), the
/// shipper holds its batches back, for at most SVAMLGATE_SHIP_DEFER_MAX_SECS; then it ships until
/// it has caught up. When the queue goes, it ships at once. Every callback lands once.
#[actix_web::test]
async fn the_shipper_yields_to_a_saturated_reply_path_for_a_bounded_time() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    let app = spawn_app_with(|c| c.ship_defer_max_secs = 2).await;
    let status = app.state.recorder.status.clone();
    let journal = app.state.recorder.journal().clone();
    let durable = || *journal.durable().borrow();
    let shipped = || status.shipped.load(Ordering::Acquire);
    let post = |from: usize| {
        let app = &app;
        async move {
            for i in from..from + 20 {
                let body = crate::helpers::ice(&format!("defer-{i}"), "+15550009999");
                let ts = svamlgate::signature::format_timestamp(time::OffsetDateTime::now_utc());
                assert_eq!(app.send_signed_at(&body, &ts).await.status, 200);
            }
        }
    };
    // Callers queueing: the reply path is saturated from the shipper's point of view.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let queue: Vec<_> = (0..cpus).map(|_| status.enter()).collect();
    // The shipper says each time it holds records back: that is what the test waits for.
    let deferrals = || {
        app.state
            .metrics
            .counter("svamlgate_ship_deferrals_total", &[])
    };
    let held_since = Instant::now();
    post(0).await;
    let before = deferrals();
    wait_until("the shipper defers", Duration::from_secs(5), async || {
        deferrals() > before
    })
    .await;
    assert!(shipped() < durable(), "shipped while callers queued");
    // The bound: it ships anyway, within the 2 s (plus a batch), while the queue stays.
    wait_until(
        "the held records are shipped within the bound",
        Duration::from_secs(6).saturating_sub(held_since.elapsed()),
        async || shipped() >= durable(),
    )
    .await;
    assert!(held_since.elapsed() >= Duration::from_millis(1500));
    // Caught up: the next records wait again, until the queue goes.
    let caught_up = deferrals();
    post(20).await;
    wait_until(
        "the shipper defers again",
        Duration::from_secs(5),
        async || deferrals() > caught_up,
    )
    .await;
    assert!(shipped() < durable(), "shipped while callers queued");
    drop(queue);
    let freed = Instant::now();
    app.settle().await;
    assert_eq!(shipped(), durable());
    assert!(freed.elapsed() < Duration::from_secs(2));
    let m = String::from_utf8(app.get("/metrics", None).await.body).unwrap();
    assert!(
        m.lines()
            .any(|l| l.starts_with("svamlgate_ship_deferrals_total ") && !l.ends_with(" 0")),
        "{m}"
    );
    let rows: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT id) FROM callbacks WHERE callid LIKE 'defer-%'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, 40);
}
