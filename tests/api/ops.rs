//! Operations against a real PostgreSQL: admin reads see every callback answered before them (no
//! sleeps, no settling), the calls-in-progress cap counts calls still in the journal, alerts reach
//! a local receiver that checks their signature (and a receiver that is down slows no callback),
//! and retention and redaction touch exactly what is older than the given time.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use svamlgate::config::Secret;

use crate::faults::Proxy;
use crate::helpers::{ice, spawn_app_with, wait_for, TestApp, ADMIN_TOKEN, KEY};

const ALERT_SECRET: &str = "alert-signing-secret";

/// GET without waiting for the shipper first (the helpers' `admin_get` settles).
async fn get_now(app: &TestApp, path: &str) -> (u16, Option<String>, Value) {
    let mut res = app
        .client
        .get(app.url(path))
        .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send()
        .await
        .expect("request failed");
    let body = res.body().limit(10 << 20).await.unwrap();
    let lag = res
        .headers()
        .get("x-svamlgate-recording-lag")
        .map(|v| v.to_str().unwrap().to_owned());
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (res.status().as_u16(), lag, json)
}

/// POSTs a signed callback and returns at once (no settling).
async fn send(app: &TestApp, body: &[u8]) -> (u16, Value, Duration) {
    let started = Instant::now();
    let ts = svamlgate::signature::format_timestamp(time::OffsetDateTime::now_utc());
    let res = app.send_signed_at(body, &ts).await;
    let took = started.elapsed();
    let json = serde_json::from_slice(&res.body).unwrap_or(Value::Null);
    (res.status, json, took)
}

/// POSTs a callback with a signature made with the wrong secret; returns the refusal's reference.
async fn send_badly_signed(app: &TestApp, body: &[u8]) -> String {
    let cred = svamlgate::signature::AppCredential::new(KEY, "d3Jvbmctc2VjcmV0").unwrap();
    let ts = svamlgate::signature::format_timestamp(time::OffsetDateTime::now_utc());
    let ct = "application/json; charset=utf-8";
    let auth = svamlgate::signature::sign(
        &cred,
        "POST",
        &app.config.callback_path,
        Some(ct),
        &ts,
        body,
    );
    let mut res = app
        .client
        .post(app.url(&app.config.callback_path))
        .insert_header(("authorization", auth))
        .insert_header(("x-timestamp", ts))
        .insert_header(("content-type", ct))
        .send_body(body.to_vec())
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let j: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    j["reference"].as_str().unwrap().to_owned()
}

fn dice(callid: &str) -> Vec<u8> {
    json!({"event": "dice", "callid": callid, "timestamp": "2026-11-25T10:01:00Z", "version": 1,
           "reason": "CALLERHANGUP", "result": "ANSWERED", "duration": 12})
    .to_string()
    .into_bytes()
}

/// An app whose PostgreSQL is behind a [`Proxy`] (cut: PostgreSQL away, every connection closed and
/// new ones refused, as a network partition or a stopped server looks).
async fn app_behind_proxy(
    configure: impl FnOnce(&mut svamlgate::config::ServeArgs),
) -> (TestApp, Proxy) {
    let url = crate::helpers::fresh_database().await;
    let proxy = Proxy::start(crate::faults::port_of(&url));
    let via = crate::faults::through(&url, proxy.port);
    (crate::helpers::spawn_app_on(via, configure).await, proxy)
}

fn patient(c: &mut svamlgate::config::ServeArgs) {
    // A loaded test machine: the bound is far above what a read waits in practice.
    c.ops.admin_read_wait_ms = 20_000;
    // Every refusal below is looked up by its reference: record each in full (not summarised).
    c.verification.refusals_per_window = 1_000;
}

#[actix_web::test]
async fn every_admin_read_sees_what_was_answered_before_it_100_times_out_of_100() {
    let app = spawn_app_with(patient).await;
    for i in 0..100 {
        let callid = format!("ryw-{i}");
        let (status, _, _) = send(&app, &ice(&callid, "+15550100")).await;
        assert_eq!(status, 200);
        let (status, lag, timeline) = get_now(&app, &format!("/admin/calls/{callid}")).await;
        assert_eq!(status, 200, "lookup {i}: {timeline}");
        assert_eq!(lag, None);
        assert_eq!(
            timeline["events"][0]["callid"],
            callid.as_str(),
            "{timeline}"
        );
        assert!(timeline.get("recordingLag").is_none());

        let (status, _, page) = get_now(&app, &format!("/admin/events?callid={callid}")).await;
        assert_eq!(status, 200);
        assert_eq!(
            page["items"].as_array().unwrap().len(),
            1,
            "events {i}: {page}"
        );

        let (status, _, inprogress) = get_now(&app, "/admin/calls-in-progress").await;
        assert_eq!(status, 200);
        assert_eq!(inprogress["inProgress"], i + 1, "calls in progress {i}");

        if i % 10 == 0 {
            let reference = send_badly_signed(&app, &ice(&format!("bad-{i}"), "+15550100")).await;
            let (status, _, error) = get_now(&app, &format!("/admin/errors/{reference}")).await;
            assert_eq!(status, 200, "error {i}: {error}");
            assert_eq!(error["reference"], reference.as_str());

            let notify = json!({"event": "notify", "callid": callid, "version": 1, "type": "callingerror",
                                "errorCode": 40001, "errorMsg": "Illegal SVAML"});
            assert_eq!(send(&app, notify.to_string().as_bytes()).await.0, 200);
            let (status, _, misses) = get_now(&app, "/admin/gate/misses").await;
            assert_eq!(status, 200);
            assert!(
                misses.to_string().contains(&callid),
                "gate misses {i}: {misses}"
            );

            let (status, _, diagnosis) =
                get_now(&app, &format!("/admin/calls/{callid}/diagnosis")).await;
            assert_eq!(status, 200, "diagnosis {i}: {diagnosis}");
            let arrived = diagnosis["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == "callback_arrived")
                .cloned()
                .unwrap_or_default();
            assert_eq!(arrived["status"], "pass", "diagnosis {i}: {diagnosis}");
        }
    }
    // Ends the shipper and its connections now, not when the test binary exits.
    app.stop().await;
}

fn callout_body() -> Value {
    json!({"method": "ttsCallout", "ttsCallout": {"destination": {"type": "number", "endpoint": "+14045005000"},
           "cli": "+14045001000", "locale": "en-US", "text": "Hello", "enableDice": true}})
}

#[actix_web::test]
async fn an_eleventh_call_is_refused_at_once_also_while_postgresql_is_away() {
    let (app, db) = app_behind_proxy(patient).await;
    for i in 0..10 {
        assert_eq!(
            send(&app, &ice(&format!("cap-{i}"), "+15550100")).await.0,
            200
        );
    }
    let res = app
        .admin_send("POST", "/admin/callouts", Some(&callout_body()))
        .await;
    res.assert_envelope(429, 42900);
    assert_eq!(res.json()["details"]["inProgress"], 10);

    // One call ends: a place is free (the DICE is counted at once too).
    assert_eq!(send(&app, &dice("cap-0")).await.0, 200);
    let (_, _, n) = get_now(&app, "/admin/calls-in-progress").await;
    assert_eq!(n["inProgress"], 9);

    // PostgreSQL away: this instance's own calls still count.
    db.set_up(false);
    for i in 10..12 {
        assert_eq!(
            send(&app, &ice(&format!("cap-{i}"), "+15550100")).await.0,
            200
        );
    }
    let started = Instant::now();
    let res = app
        .admin_send("POST", "/admin/callouts", Some(&callout_body()))
        .await;
    res.assert_envelope(429, 42900);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let (status, lag, n) = get_now(&app, "/admin/calls-in-progress").await;
    assert_eq!(status, 200, "{n}");
    assert_eq!(n["inProgress"], 11);
    assert!(lag.unwrap().contains("reason=database_unavailable"));
    assert_eq!(n["recordingLag"]["reason"], "database_unavailable");
    db.set_up(true);
    // Ends the shipper and its connections now, not when the test binary exits.
    app.stop().await;
}

#[actix_web::test]
async fn while_postgresql_is_away_a_read_answers_at_once_and_says_the_lag() {
    let (app, db) = app_behind_proxy(patient).await;
    assert_eq!(send(&app, &ice("away-0", "+15550100")).await.0, 200);
    let (status, lag, _) = get_now(&app, "/admin/calls/away-0").await;
    assert_eq!((status, lag), (200, None));

    db.set_up(false);
    assert_eq!(send(&app, &ice("away-1", "+15550100")).await.0, 200);
    let started = Instant::now();
    let (status, lag, body) = get_now(&app, "/admin/calls/away-1").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(status == 404 || status == 503, "{status} {body}");
    let lag = lag.expect("the lag header");
    assert!(lag.starts_with("records="), "{lag}");
    assert_eq!(
        body["recordingLag"]["reason"], "database_unavailable",
        "{body}"
    );
    assert!(body["recordingLag"]["records"].as_u64().unwrap() >= 1);
    assert!(
        body["reference"].is_string(),
        "still an error envelope: {body}"
    );
    // The document says so (the document itself does not wait).
    let (status, lag, doc) = get_now(&app, "/admin/openapi.json").await;
    assert_eq!((status, lag), (200, None));
    let op = &doc["paths"]["/admin/calls/{callid}"]["get"]["responses"];
    assert!(
        op["200"]["headers"]["x-svamlgate-recording-lag"].is_object(),
        "{op}"
    );
    assert!(doc["components"]["schemas"]["RecordingLag"].is_object());

    // Back: the shipper catches up and the same read finds the call, without a lag.
    db.set_up(true);
    // The shipper backs off while PostgreSQL is away; the read's own wait is bounded.
    let found = wait_for(Duration::from_secs(30), async || {
        let (status, lag, body) = get_now(&app, "/admin/calls/away-1").await;
        if status == 200 && lag.is_none() {
            Ok(body)
        } else {
            Err(format!(
                "the call is not found without a lag after PostgreSQL came back: HTTP {status}, lag {lag:?}"
            ))
        }
    })
    .await;
    assert_eq!(found["callid"], "away-1");
    // Ends the shipper and its connections now, not when the test binary exits.
    app.stop().await;
}

/// A webhook receiver that checks each delivery's signature; the alerts it accepted arrive on
/// the channel (a delivery with a bad signature is answered 401 and reported as `null`).
async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        let tx = tx.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let tx = tx.clone();
            async move {
                let header = req
                    .headers()
                    .get(svamlgate::alerts::deliver::SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                if !svamlgate::alerts::deliver::verify(ALERT_SECRET, header, &body, now, 300) {
                    let _ = tx.send(Value::Null);
                    return HttpResponse::Unauthorized().finish();
                }
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = tx.send(v);
                HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    (format!("http://{addr}/hook"), rx)
}

/// Waits (at most 30 s) for the alert of `rule` in `state`; every delivery on the way must be
/// signed right and carry a Slack `text`.
async fn expect_alert(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>,
    rule: &str,
    state: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {state} alert for {rule}"))
            .unwrap();
        assert!(!got.is_null(), "a delivery with a bad signature");
        assert!(got["text"].as_str().unwrap().contains("svamlgate"), "{got}");
        if got["alert"]["rule"] == rule && got["alert"]["state"] == state {
            return got;
        }
    }
}

#[actix_web::test]
async fn each_alert_rule_reaches_a_signed_webhook_fires_and_resolves() {
    let (hook, mut rx) = receiver().await;
    let (app, db) = app_behind_proxy(|c| {
        patient(c);
        c.ops.alert_webhooks = Some(Secret::new(hook.clone()));
        c.ops.alert_secret = Some(Secret::new(ALERT_SECRET));
        c.ops.alert_rules = Some(
            "fallback=3/2s/0s,upstream=3/2s/0s,gate_miss=1/2s/0s,signature_failures=5/2s/0s,journal_lag=1/1s/0s"
                .into(),
        );
    })
    .await;

    // A fallback storm (a proxy-mode app that is down): fallbacks by reason, and the upstream rule.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let route = json!({"name": "down app", "called": "+15550300",
        "target": {"kind": "upstream", "url": format!("http://127.0.0.1:{closed}/cb"), "key": "k", "secretB64": "c2VjcmV0"}});
    assert_eq!(
        app.admin_send("POST", "/admin/routes", Some(&route))
            .await
            .status,
        201
    );
    for i in 0..3 {
        let (status, reply, _) = send(&app, &ice(&format!("storm-{i}"), "+15550300")).await;
        assert_eq!(status, 200);
        assert_eq!(reply["action"]["name"], "hangup");
    }
    let fired = expect_alert(&mut rx, "fallback", "firing").await;
    assert_eq!(fired["alert"]["key"], "upstream_error");
    assert_eq!(fired["alert"]["count"], 3.0);
    let text = fired["text"].as_str().unwrap();
    assert!(
        text.contains("storm-0") && text.contains("/admin/events"),
        "{text}"
    );
    assert!(fired["alert"]["examples"][0]["reference"].is_string());
    let (_, _, listed) = get_now(&app, "/admin/alerts").await;
    assert!(
        listed["firing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "fallback"),
        "{listed}"
    );
    expect_alert(&mut rx, "fallback", "resolved").await;

    // A gate miss: Sinch says it could not use a reply the gate passed.
    assert_eq!(send(&app, &ice("miss-1", "+15550100")).await.0, 200);
    let notify = json!({"event": "notify", "callid": "miss-1", "version": 1, "type": "callingerror",
                        "errorCode": 40001, "errorMsg": "Illegal SVAML"});
    assert_eq!(send(&app, notify.to_string().as_bytes()).await.0, 200);
    let miss = expect_alert(&mut rx, "gate_miss", "firing").await;
    assert!(miss["text"].as_str().unwrap().contains("miss-1"));
    assert_eq!(miss["alert"]["adminPath"], "/admin/gate/misses");
    expect_alert(&mut rx, "gate_miss", "resolved").await;

    // A signature storm.
    let mut refs = Vec::new();
    for i in 0..5 {
        refs.push(send_badly_signed(&app, &ice(&format!("sig-{i}"), "+15550100")).await);
    }
    let sig = expect_alert(&mut rx, "signature_failures", "firing").await;
    assert!(sig["text"].as_str().unwrap().contains(refs.last().unwrap()));
    assert!(sig["text"].as_str().unwrap().contains("signature_mismatch"));
    expect_alert(&mut rx, "signature_failures", "resolved").await;

    // A stuck journal: PostgreSQL away while callbacks keep coming.
    db.set_up(false);
    assert_eq!(send(&app, &ice("stuck-1", "+15550100")).await.0, 200);
    let stuck = expect_alert(&mut rx, "journal_lag", "firing").await;
    assert_eq!(stuck["alert"]["adminPath"], "/readyz");
    db.set_up(true);
    expect_alert(&mut rx, "journal_lag", "resolved").await;

    let (_, _, listed) = get_now(&app, "/admin/alerts").await;
    assert!(listed["firing"].as_array().unwrap().is_empty(), "{listed}");
    assert!(listed["recent"].as_array().unwrap().len() >= 8);
    assert_eq!(listed["webhooks"], 1);
    crate::helpers::Documented::fetch(&app)
        .await
        .check("GET", "/admin/alerts", 200, &listed);
    // Ends the shipper and its connections now, not when the test binary exits.
    app.stop().await;
}

#[actix_web::test]
async fn a_webhook_that_hangs_or_is_down_slows_no_callback() {
    // One receiver accepts connections and never answers; another refuses them.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_addr = hang.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hang.incoming() {
            held.push(s);
        }
    });
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hooks = format!("http://{hang_addr}/hook,http://127.0.0.1:{closed}/hook");
    let app = spawn_app_with(|c| {
        c.ops.alert_webhooks = Some(Secret::new(hooks));
        c.ops.alert_rules = Some("signature_failures=1/100ms/0s,fallback=1/100ms/0s".into());
    })
    .await;
    let route = json!({"name": "down app", "called": "+15550301",
        "target": {"kind": "upstream", "url": format!("http://127.0.0.1:{closed}/cb"), "key": "k", "secretB64": "c2VjcmV0"}});
    assert_eq!(
        app.admin_send("POST", "/admin/routes", Some(&route))
            .await
            .status,
        201
    );
    let mut slowest = Duration::ZERO;
    // At least 40 rounds, and for at least a few of the alerts thread's ticks: a fast machine
    // ends 40 rounds between two ticks, and a tick sees only the last 100 ms of events.
    let started = Instant::now();
    for i in 0.. {
        if i >= 40 && started.elapsed() > 4 * svamlgate::alerts::TICK {
            break;
        }
        // Each one fires (and resolves) alerts: the delivery queue fills with hanging deliveries.
        let (status, _, took) = send(&app, &ice(&format!("slow-{i}"), "+15550301")).await;
        assert_eq!(status, 200);
        slowest = slowest.max(took);
        send_badly_signed(&app, &ice(&format!("slow-sig-{i}"), "+15550301")).await;
        let (status, _, took) = send(&app, &ice(&format!("plain-{i}"), "+15550100")).await;
        assert_eq!(status, 200);
        slowest = slowest.max(took);
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a callback took {slowest:?} while deliveries hung"
    );
    let (_, _, listed) = get_now(&app, "/admin/alerts").await;
    assert!(!listed["recent"].as_array().unwrap().is_empty());
    // Ends the shipper and its connections now, not when the test binary exits.
    app.stop().await;
}

/// Moves every row of a call (callbacks, their errors, rejected replies and exchanges) `ago`
/// into the past.
async fn age_call(app: &TestApp, callid: &str, ago: &str) {
    for sql in [
        "UPDATE errors SET occurred_at = now() - $2::interval WHERE callback_id IN (SELECT id FROM callbacks WHERE callid = $1)",
        "UPDATE rejected_replies SET created_at = now() - $2::interval WHERE callback_id IN (SELECT id FROM callbacks WHERE callid = $1)",
        "UPDATE callbacks SET received_at = now() - $2::interval WHERE callid = $1",
        "UPDATE call_state SET updated_at = now() - $2::interval WHERE callid = $1",
    ] {
        sqlx::query(sql).bind(callid).bind(ago).execute(&app.pool).await.unwrap();
    }
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

async fn outbound(app: &TestApp, reference: &str, ago: &str, callid: Option<&str>, outcome: &str) {
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO outbound_requests (id, reference, created_at, operation, method, path, body, callid, destination, \
         local_check, outcome) VALUES ($1, $2, now() - $3::interval, 'callout', 'POST', '/calling/v1/callouts', \
         '{\"method\":\"ttsCallout\",\"ttsCallout\":{\"destination\":{\"type\":\"number\",\"endpoint\":\"+14045005000\"}}}', \
         $4, '+14045005000', 'passed', $5)",
    )
    .bind(id)
    .bind(reference)
    .bind(ago)
    .bind(callid)
    .bind(outcome)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO outbound_attempts (id, request_id, attempt, sent_at, latency_us, auth_scheme, x_timestamp, http_status, \
         response_body, decision) VALUES ($1, $2, 1, now() - $3::interval, 1000, 'signed', 'x', 200, \
         '{\"callId\":\"abc\",\"to\":\"+14045005000\"}', 'done')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(id)
    .bind(ago)
    .execute(&app.pool)
    .await
    .unwrap();
}

/// Old and new calls, an old call still in progress, an old refusal, old and new outbound
/// requests, a flow and a route.
async fn history(app: &TestApp) {
    let flow: Value = serde_json::from_slice(&crate::helpers::fixture("flows/ivr.json")).unwrap();
    let res = app.admin_send("POST", "/admin/flows", Some(&flow)).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let route = json!({"name": "keep", "called": "+15550999", "target": {"kind": "flow", "flowId": res.json()["flow"]["id"]}});
    assert_eq!(
        app.admin_send("POST", "/admin/routes", Some(&route))
            .await
            .status,
        201
    );
    for callid in ["old-ended", "old-open", "new-ended"] {
        app.post_signed(&ice(callid, "+15550100")).await;
    }
    app.post_signed(&dice("old-ended")).await;
    app.post_signed(&dice("new-ended")).await;
    let refused = send_badly_signed(app, &ice("old-refused", "+15550100")).await;
    app.settle().await;
    // The refusal's records reach PostgreSQL through the journal too.
    app.wait_error(&refused).await;
    sqlx::query("UPDATE errors SET occurred_at = now() - interval '2 hours' WHERE reference = $1")
        .bind(&refused)
        .execute(&app.pool)
        .await
        .unwrap();
    age_call(app, "old-ended", "2 hours").await;
    age_call(app, "old-open", "2 hours").await;
    outbound(
        app,
        "out-old",
        "2 hours",
        Some("old-callout"),
        "sinch_error",
    )
    .await;
    outbound(app, "out-old-open", "2 hours", Some("old-open"), "success").await;
    outbound(app, "out-new", "1 minute", None, "success").await;
}

#[actix_web::test]
async fn prune_removes_exactly_what_is_older_and_keeps_calls_in_progress_flows_and_routes() {
    let app = spawn_app_with(|_| {}).await;
    history(&app).await;
    let callbacks_before = count(&app, "SELECT count(*) FROM callbacks").await;
    let before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let metrics = svamlgate::metrics::Metrics::new();
    let (deleted, _) = svamlgate::retention::run_once(
        &app.pool,
        Some(before),
        None,
        Duration::from_secs(4 * 3600),
        &metrics,
    )
    .await
    .unwrap();
    // old-ended: its ICE and DICE; the refusal: its error and refusal rows; out-old with its attempt.
    assert_eq!(deleted.get("callbacks"), Some(&2), "{deleted:?}");
    assert_eq!(deleted.get("refusals"), Some(&1), "{deleted:?}");
    assert_eq!(deleted.get("errors"), Some(&1), "{deleted:?}");
    assert_eq!(deleted.get("outbound_requests"), Some(&1), "{deleted:?}");
    assert_eq!(deleted.get("outbound_attempts"), Some(&1), "{deleted:?}");
    assert_eq!(
        count(&app, "SELECT count(*) FROM callbacks").await,
        callbacks_before - 2
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM callbacks WHERE callid = 'old-ended'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM callbacks WHERE callid = 'old-open'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM callbacks WHERE callid = 'new-ended'"
        )
        .await,
        2
    );
    assert_eq!(count(&app, "SELECT count(*) FROM refusals").await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM outbound_requests WHERE reference IN ('out-old-open', 'out-new')"
        )
        .await,
        2
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM outbound_requests").await,
        2
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM outbound_attempts").await,
        2
    );
    assert_eq!(count(&app, "SELECT count(*) FROM flows").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM flow_versions").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM routes").await, 1);
    assert!(metrics.counter("svamlgate_pruned_rows_total", &[("table", "callbacks")]) == 2);
    // Nothing older left: a second run deletes nothing.
    let (again, _) = svamlgate::retention::run_once(
        &app.pool,
        Some(before),
        None,
        Duration::from_secs(4 * 3600),
        &metrics,
    )
    .await
    .unwrap();
    assert!(again.is_empty(), "{again:?}");
    // The admin API still answers for what is left.
    assert_eq!(app.admin_get("/admin/calls/old-ended").await.status, 404);
    assert_eq!(app.admin_get("/admin/calls/new-ended").await.status, 200);
    // Ends the shipper and its connections now, not when the test binary exits.
    app.stop().await;
}

#[actix_web::test]
async fn redact_masks_exactly_what_is_older_with_the_log_rule_and_keeps_the_rows() {
    let app = spawn_app_with(|_| {}).await;
    history(&app).await;
    // Replies are stored once and shared between rows (0015). One with a number only an old row
    // points at, one an old row and a newer row share.
    let only = r#"{"action":{"name":"connectPstn","number":"+46700000001"}}"#;
    let shared = r#"{"action":{"name":"connectPstn","number":"+46708168731"}}"#;
    let point = |callid: &'static str, event: &'static str, text: &'static str| {
        let pool = app.pool.clone();
        async move {
            let id = svamlgate::db::documents::id_of(text);
            sqlx::query(
                "INSERT INTO replies (id, reply) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(text)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("UPDATE callbacks SET reply_id = $1 WHERE callid = $2 AND event_type = $3")
                .bind(id)
                .bind(callid)
                .bind(event)
                .execute(&pool)
                .await
                .unwrap();
            id
        }
    };
    let only_id = point("old-ended", "ice", only).await;
    let shared_id = point("old-ended", "dice", shared).await;
    point("new-ended", "ice", shared).await;
    // Gate reports are stored once too (0019): one with a number that only the old ICE points at.
    let report = r#"{"valid":true,"violations":[{"severity":"warning","code":"SVAML012","found":"+46700000002","source":"s"}]}"#;
    let report_id = svamlgate::db::documents::id_of(report);
    sqlx::query("INSERT INTO reports (id, report) VALUES ($1, $2::jsonb)")
        .bind(report_id)
        .bind(report)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE callbacks SET validation_id = $1 WHERE callid = 'old-ended' AND event_type = 'ice'",
    )
    .bind(report_id)
    .execute(&app.pool)
    .await
    .unwrap();
    let before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let metrics = svamlgate::metrics::Metrics::new();
    let (_, masked) = svamlgate::retention::run_once(
        &app.pool,
        None,
        Some(before),
        Duration::from_secs(4 * 3600),
        &metrics,
    )
    .await
    .unwrap();
    assert_eq!(masked.get("callbacks"), Some(&2), "{masked:?}");
    assert_eq!(masked.get("errors"), Some(&1), "{masked:?}");
    assert_eq!(masked.get("outbound_requests"), Some(&1), "{masked:?}");
    assert_eq!(masked.get("outbound_attempts"), Some(&1), "{masked:?}");
    let cli = |callid: &'static str| {
        let pool = app.pool.clone();
        async move {
            let row: (Option<String>, Vec<u8>, Option<time::OffsetDateTime>) = sqlx::query_as(
                "SELECT c.body->>'cli', raw_body, redacted_at FROM callbacks c WHERE callid = $1 AND event_type = 'ice'",
            )
            .bind(callid)
            .fetch_one(&pool)
            .await
            .unwrap();
            row
        }
    };
    let (old_cli, old_raw, old_at) = cli("old-ended").await;
    assert_eq!(
        old_cli.as_deref(),
        Some(svamlgate::redact::mask_number("46708168731").as_str())
    );
    assert_eq!(old_cli.as_deref(), Some("467******31"));
    assert!(!String::from_utf8_lossy(&old_raw).contains("46708168731"));
    assert_eq!(
        serde_json::from_slice::<Value>(&old_raw).unwrap()["callid"],
        "old-ended"
    );
    assert!(old_at.is_some());
    // Newer rows, and the call still in progress, keep their numbers.
    let (new_cli, new_raw, new_at) = cli("new-ended").await;
    assert_eq!(new_cli.as_deref(), Some("46708168731"));
    assert!(String::from_utf8_lossy(&new_raw).contains("46708168731"));
    assert!(new_at.is_none());
    assert_eq!(cli("old-open").await.0.as_deref(), Some("46708168731"));
    // The console's search columns hold what the body holds, masked or not.
    let searched: Vec<(String, bool)> = sqlx::query_as(
        "SELECT callid, caller IS NOT DISTINCT FROM c.body->>'cli' \
                AND called IS NOT DISTINCT FROM c.body->'to'->>'endpoint' AND caller IS NOT NULL \
         FROM callbacks c WHERE event_type = 'ice' ORDER BY callid",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(
        searched.len() >= 3 && searched.iter().all(|(_, same)| *same),
        "{searched:?}"
    );
    let dest: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT reference, destination FROM outbound_requests ORDER BY reference")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        dest,
        vec![
            ("out-new".to_owned(), Some("+14045005000".to_owned())),
            ("out-old".to_owned(), Some("+140******00".to_owned())),
            ("out-old-open".to_owned(), Some("+14045005000".to_owned())),
        ]
    );
    let attempt: String = sqlx::query_scalar(
        "SELECT a.response_body FROM outbound_attempts a JOIN outbound_requests r ON r.id = a.request_id WHERE r.reference = 'out-old'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        attempt.contains("+140******00") && attempt.contains("abc"),
        "{attempt}"
    );
    // The old rows point at masked copies of their replies; the newer row keeps its own, and the
    // unmasked reply no row points at any more is gone.
    let reply = |callid: &'static str, event: &'static str| {
        let pool = app.pool.clone();
        async move {
            let v: Value = sqlx::query_scalar(
                "SELECT c.reply FROM callbacks c WHERE callid = $1 AND event_type = $2",
            )
            .bind(callid)
            .bind(event)
            .fetch_one(&pool)
            .await
            .unwrap();
            v["action"]["number"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert_eq!(
        reply("old-ended", "ice").await,
        svamlgate::redact::mask_number("+46700000001")
    );
    assert_eq!(
        reply("old-ended", "dice").await,
        svamlgate::redact::mask_number("+46708168731")
    );
    assert_eq!(reply("new-ended", "ice").await, "+46708168731");
    let stored = |id: uuid::Uuid| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM replies WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(stored(only_id).await, 0, "the unmasked reply is deleted");
    assert_eq!(stored(shared_id).await, 1, "a newer row still points at it");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM replies WHERE reply::text LIKE '%46700000001%'"
        )
        .await,
        0
    );
    assert_eq!(masked.get("replies"), Some(&1), "{masked:?}");
    // The old ICE points at a masked copy of its report, and the unmasked one is gone.
    let found: Option<String> = sqlx::query_scalar(
        "SELECT c.validation->'violations'->0->>'found' FROM callbacks c WHERE callid = 'old-ended' AND event_type = 'ice'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        found.as_deref(),
        Some(svamlgate::redact::mask_numbers_in("+46700000002").as_str())
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM reports WHERE report::text LIKE '%46700000002%'"
        )
        .await,
        0
    );
    assert!(masked.get("reports").is_some_and(|n| *n >= 1), "{masked:?}");
    // Rows are kept; a second run masks nothing more.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM callbacks WHERE callid = 'old-ended'"
        )
        .await,
        2
    );
    let (_, again) = svamlgate::retention::run_once(
        &app.pool,
        None,
        Some(before),
        Duration::from_secs(4 * 3600),
        &metrics,
    )
    .await
    .unwrap();
    assert!(again.is_empty(), "{again:?}");
    // Ends the shipper and its connections now, not when the test binary exits.
    app.stop().await;
}

/// Inserts a callback pointing at the document `text` of `kind` (`reply_id` or `validation_id`).
async fn point_at(conn: &mut sqlx::PgConnection, kind: svamlgate::db::documents::Kind, text: &str) {
    use svamlgate::db::documents::{id_of, Kind};
    let sql = match kind {
        Kind::Reply => {
            "INSERT INTO callbacks (id, reference, received_at, event_type, event_known, raw_body, signature, path, reply_id) \
             VALUES (gen_random_uuid(), gen_random_uuid()::text, now(), 'ice', true, '\\x7b7d', 'verified', '/', $1)"
        }
        Kind::Report => {
            "INSERT INTO callbacks (id, reference, received_at, event_type, event_known, raw_body, signature, path, validation_id) \
             VALUES (gen_random_uuid(), gen_random_uuid()::text, now(), 'ice', true, '\\x7b7d', 'verified', '/', $1)"
        }
    };
    sqlx::query(sql)
        .bind(id_of(text))
        .execute(conn)
        .await
        .unwrap();
}

/// Stores `texts` as documents of `kind`, as the shipper stores a batch's.
async fn store(
    conn: &mut sqlx::PgConnection,
    kind: svamlgate::db::documents::Kind,
    texts: &[&str],
) -> Result<(), sqlx::Error> {
    use svamlgate::db::documents::{self, Distinct, Kind};
    let these = Distinct::of(kind, texts.iter().copied());
    match kind {
        Kind::Reply => documents::store(conn, &these, &Distinct::none(Kind::Report)).await,
        Kind::Report => documents::store(conn, &Distinct::none(Kind::Reply), &these).await,
    }
}

/// The sweep of replies and reports (0019) reads the unreferenced ones without a lock, then deletes
/// each only if its row version is unchanged: a document a batch started to point at after that
/// read is kept, whether the batch committed before the delete or was still open (the delete then
/// waits for it); the one nobody took is deleted.
#[actix_web::test]
async fn a_sweep_keeps_what_a_batch_started_to_point_at_and_deletes_the_rest() {
    use svamlgate::db::documents::{self, Kind};
    let pool = sqlx::PgPool::connect(&crate::helpers::fresh_database().await)
        .await
        .unwrap();
    for kind in [Kind::Reply, Kind::Report] {
        let table = kind.table();
        let [idle, committed, open, kept] = [
            r#"{"n":"idle"}"#,
            r#"{"n":"committed"}"#,
            r#"{"n":"open"}"#,
            r#"{"n":"kept"}"#,
        ];
        let mut tx = pool.begin().await.unwrap();
        store(&mut tx, kind, &[idle, committed, open, kept])
            .await
            .unwrap();
        point_at(&mut tx, kind, kept).await;
        tx.commit().await.unwrap();

        let found = documents::unreferenced(&pool, kind).await.unwrap();
        assert_eq!(found.len(), 3, "{table}: {found:?}");
        // A batch that stores its document and commits its row after the read …
        let mut tx = pool.begin().await.unwrap();
        store(&mut tx, kind, &[committed]).await.unwrap();
        point_at(&mut tx, kind, committed).await;
        tx.commit().await.unwrap();
        // … and one still open when the delete runs.
        let mut batch = pool.begin().await.unwrap();
        store(&mut batch, kind, &[open]).await.unwrap();
        point_at(&mut batch, kind, open).await;
        let delete = tokio::spawn({
            let pool = pool.clone();
            async move { documents::delete_unchanged(&pool, &found).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !delete.is_finished(),
            "{table}: the delete waits for the open batch"
        );
        batch.commit().await.unwrap();
        assert_eq!(delete.await.unwrap().unwrap(), 1, "{table}");

        let left: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT d.{}->>'n' FROM {table} d ORDER BY 1",
            match kind {
                Kind::Reply => "reply",
                Kind::Report => "report",
            }
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(left, ["committed", "kept", "open"], "{table}");
        // Every row still reads its document; a second sweep finds nothing to delete.
        let dangling: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM callbacks c WHERE (c.reply_id IS NOT NULL AND c.reply IS NULL) \
             OR (c.validation_id IS NOT NULL AND c.validation IS NULL)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(dangling, 0, "{table}");
        assert_eq!(documents::sweep(&pool, kind).await.unwrap(), 0, "{table}");
    }
    pool.close().await;
}

#[actix_web::test]
async fn svamlgate_prune_runs_both_once_from_the_command_line() {
    let app = spawn_app_with(|_| {}).await;
    history(&app).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svamlgate"))
        .args(["prune", "--before", "1h", "--redact-before", "30m"])
        .env("DATABASE_URL", &app.db_url)
        .env_remove("SVAMLGATE_RETENTION_DAYS")
        .env_remove("SVAMLGATE_REDACT_AFTER_DAYS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("deleted before") && stdout.contains("callbacks 2"),
        "{stdout}"
    );
    assert!(stdout.contains("masked before"), "{stdout}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM callbacks WHERE callid = 'old-ended'"
        )
        .await,
        0
    );
    let nothing = std::process::Command::new(env!("CARGO_BIN_EXE_svamlgate"))
        .args(["prune"])
        .env("DATABASE_URL", &app.db_url)
        .env_remove("SVAMLGATE_RETENTION_DAYS")
        .env_remove("SVAMLGATE_REDACT_AFTER_DAYS")
        .output()
        .unwrap();
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("nothing to do"));
    // Ends the shipper and its connections now, not when the test binary exits.
    app.stop().await;
}

/// The figure in docs/operations.md: deleting a day of a million callbacks (with an error row for
/// one in a hundred) in batches, while a writer keeps inserting callbacks as the shipper would.
/// Run on purpose: `cargo test --test api -- --ignored a_day_of_a_million_rows --nocapture`.
#[actix_web::test]
#[ignore]
async fn a_day_of_a_million_rows_is_pruned_in_batches_without_blocking_inserts() {
    let app = spawn_app_with(|_| {}).await;
    let started = Instant::now();
    let body = String::from_utf8(ice("X", "+15550100")).unwrap();
    sqlx::query(
        "INSERT INTO callbacks (id, reference, received_at, event_type, event_known, callid, raw_body, body, signature, \
         path, http_status, reply_source, latency_us) \
         SELECT gen_random_uuid(), 'bulk-' || g, now() - interval '2 days' + (g * interval '86 milliseconds'), \
                'ice', true, 'bulk-call-' || g, convert_to($1, 'UTF8'), $1::jsonb, 'verified', '/sinch/callback', 200, 'default', 900 \
         FROM generate_series(1, 1000000) g",
    )
    .bind(&body)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO callbacks (id, reference, received_at, event_type, event_known, callid, raw_body, body, signature, path) \
         SELECT gen_random_uuid(), 'bulk-dice-' || g, now() - interval '2 days' + (g * interval '86 milliseconds') + interval '1 second', \
                'dice', true, 'bulk-call-' || g, convert_to('{}', 'UTF8'), '{}'::jsonb, 'verified', '/sinch/callback' \
         FROM generate_series(1, 1000000, 100) g",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO errors (reference, occurred_at, error_code, http_status, status, message, callback_id) \
         SELECT 'bulk-err-' || c.reference, c.received_at, 42202, 422, '422 Unprocessable', 'rejected', c.id \
         FROM callbacks c WHERE c.reference LIKE 'bulk-%' AND right(c.reference, 2) = '00'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE callbacks")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("VACUUM ANALYZE errors")
        .execute(&app.pool)
        .await
        .unwrap();
    let rows = count(&app, "SELECT count(*) FROM callbacks").await;
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_total_relation_size('callbacks'))")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    println!(
        "loaded {rows} callbacks ({size}) in {:?}",
        started.elapsed()
    );

    // A writer inserting one callback every 10 ms, as the shipper would, measuring each insert.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (pool, stop, body) = (app.pool.clone(), stop.clone(), body.clone());
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut n = 0u32;
            while !stop.load(Ordering::Acquire) {
                let t = Instant::now();
                sqlx::query(
                    "INSERT INTO callbacks (id, reference, received_at, event_type, event_known, callid, raw_body, body, \
                     signature, path) VALUES ($1, $2, now(), 'ice', true, $2, convert_to($3, 'UTF8'), $3::jsonb, 'verified', '/sinch/callback')",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(format!("live-{n}"))
                .bind(&body)
                .execute(&pool)
                .await
                .unwrap();
                worst = worst.max(t.elapsed());
                n += 1;
                // Pacing, not waiting: one insert every 10 ms.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (n, worst)
        })
    };
    let t = Instant::now();
    let metrics = svamlgate::metrics::Metrics::new();
    let (deleted, _) = svamlgate::retention::run_once(
        &app.pool,
        Some(time::OffsetDateTime::now_utc() - time::Duration::hours(24)),
        None,
        Duration::from_secs(4 * 3600),
        &metrics,
    )
    .await
    .unwrap();
    let took = t.elapsed();
    stop.store(true, Ordering::Release);
    let (inserts, worst) = writer.await.unwrap();
    println!(
        "pruned {deleted:?} in {took:?}; meanwhile {inserts} inserts, the slowest {worst:?}; load {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    assert_eq!(deleted.get("callbacks"), Some(&1_010_000));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM callbacks WHERE reference LIKE 'bulk-%'"
        )
        .await,
        0
    );
    // Ends the shipper and its connections now, not when the test binary exits.
    app.stop().await;
}
