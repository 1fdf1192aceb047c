//! The gate's two feedback loops: observe mode per route (an invalid reply goes out as it is, and
//! what the gate would have done is kept), and Sinch's own verdicts (Notify callingerror 40001 and
//! DICE CALLBACKERROR) linked to the reply svamlgate last sent, with gate misses listed.

use std::net::TcpListener;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{ice, spawn_app, spawn_app_with, Documented};

/// A customer app that answers every callback with a reply no Sinch source allows
/// (`instructions` must be an array).
async fn broken_app() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|| async {
            HttpResponse::Ok()
                .json(json!({"instructions": "say hello", "action": {"name": "hangup"}}))
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    format!("http://{addr}/hook")
}

async fn route(app: &crate::helpers::TestApp, called: &str, url: &str, mode: Option<&str>) {
    let mut r = json!({"name": format!("app {called}"), "called": called,
                       "target": {"kind": "upstream", "url": url, "key": "k", "secretB64": "c2VjcmV0"}});
    if let Some(m) = mode {
        r["gateMode"] = json!(m);
    }
    let res = app.admin_send("POST", "/admin/routes", Some(&r)).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["gateMode"], r["gateMode"]);
}

#[actix_web::test]
async fn observe_mode_sends_the_invalid_reply_and_keeps_what_the_gate_would_have_done() {
    let app = spawn_app().await;
    let url = broken_app().await;
    route(&app, "+15550001", &url, Some("observe")).await;
    route(&app, "+15550002", &url, None).await;

    // Observe: the reply goes out as the app sent it.
    let observed = app.post_signed(&ice("obs-1", "+15550001")).await.json();
    assert_eq!(observed["instructions"], "say hello");
    // Enforce (the default): the fallback.
    let enforced = app.post_signed(&ice("enf-1", "+15550002")).await.json();
    assert_eq!(enforced["action"]["name"], "hangup");
    assert!(enforced["instructions"].is_array());

    let rows = sqlx::query(
        "SELECT callid, reply_source, gate_verdict, fallback_reason, (callbacks.validation->>'valid')::boolean AS valid \
         FROM callbacks ORDER BY received_at",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let got: Vec<(String, String, String, Option<String>, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.get("callid"),
                r.get("reply_source"),
                r.get("gate_verdict"),
                r.get("fallback_reason"),
                r.get("valid"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "obs-1".into(),
                "upstream".into(),
                "observed".into(),
                None,
                false
            ),
            (
                "enf-1".into(),
                "fallback".into(),
                "rejected".into(),
                Some("invalid".into()),
                false
            ),
        ]
    );
    let m = String::from_utf8(app.get("/metrics", None).await.body).unwrap();
    assert!(
        m.contains("svamlgate_gate_replies_total{event=\"ice\",verdict=\"observed\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("svamlgate_gate_replies_total{event=\"ice\",verdict=\"rejected\"} 1"),
        "{m}"
    );
    // Only the enforced one has a rejected candidate.
    let rejected: i64 = sqlx::query_scalar("SELECT count(*) FROM rejected_replies")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rejected, 1);
}

#[actix_web::test]
async fn the_global_gate_mode_applies_to_default_replies_and_routes_without_one() {
    let app = spawn_app_with(|c| c.gate_mode = svamlgate::flows::routes::GateMode::Observe).await;
    let url = broken_app().await;
    route(&app, "+15550003", &url, None).await;
    let observed = app.post_signed(&ice("obs-2", "+15550003")).await.json();
    assert_eq!(observed["instructions"], "say hello");
    route(&app, "+15550004", &url, Some("enforce")).await;
    let enforced = app.post_signed(&ice("enf-2", "+15550004")).await.json();
    assert!(enforced["instructions"].is_array());
}

async fn timeline(app: &crate::helpers::TestApp, callid: &str) -> Vec<Value> {
    let t = app
        .admin_get(&format!("/admin/calls/{callid}"))
        .await
        .json();
    Documented::fetch(app)
        .await
        .check("GET", "/admin/calls/{callid}", 200, &t);
    t["events"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn sinch_reports_mark_the_last_reply_and_gate_passed_ones_are_misses() {
    let app = spawn_app().await;
    // Call 1: the default ICE reply passed the gate; Sinch says it was illegal SVAML.
    assert_eq!(
        app.post_signed(&ice("rej-1", "+15559999")).await.status,
        200
    );
    let notify = json!({"event": "notify", "callid": "rej-1", "version": 1, "type": "callingerror",
                        "errorCode": 40001, "errorMsg": "Illegal SVAML: unknown action"});
    assert_eq!(
        app.post_signed(notify.to_string().as_bytes()).await.status,
        200
    );
    // Call 2: Sinch hangs up with CALLBACKERROR.
    assert_eq!(
        app.post_signed(&ice("rej-2", "+15559999")).await.status,
        200
    );
    let dice = json!({"event": "dice", "callid": "rej-2", "timestamp": "2026-11-25T10:01:00Z",
                      "reason": "CALLBACKERROR", "result": "FAILED"});
    assert_eq!(
        app.post_signed(dice.to_string().as_bytes()).await.status,
        200
    );
    // Call 3: a callingerror that is Sinch's own internal error is not a verdict on the reply.
    assert_eq!(
        app.post_signed(&ice("rej-3", "+15559999")).await.status,
        200
    );
    let internal = json!({"event": "notify", "callid": "rej-3", "version": 1, "type": "callingerror",
                          "errorCode": 50000, "errorMsg": "Internal error"});
    assert_eq!(
        app.post_signed(internal.to_string().as_bytes())
            .await
            .status,
        200
    );

    let events = timeline(&app, "rej-1").await;
    let ice_row = events.iter().find(|e| e["eventType"] == "ice").unwrap();
    assert_eq!(
        ice_row["rejectedBySinch"]["kind"], "callingerror",
        "{ice_row}"
    );
    assert_eq!(ice_row["rejectedBySinch"]["errorCode"], 40001);
    assert_eq!(
        ice_row["rejectedBySinch"]["message"],
        "Illegal SVAML: unknown action"
    );
    assert_eq!(ice_row["gateVerdict"], "passed");
    let events = timeline(&app, "rej-2").await;
    let ice_row = events.iter().find(|e| e["eventType"] == "ice").unwrap();
    assert_eq!(ice_row["rejectedBySinch"]["kind"], "callbackerror");
    assert_eq!(ice_row["rejectedBySinch"]["result"], "FAILED");
    let events = timeline(&app, "rej-3").await;
    assert!(events.iter().all(|e| e["rejectedBySinch"].is_null()));

    let misses = app.admin_get("/admin/gate/misses").await.json();
    Documented::fetch(&app)
        .await
        .check("GET", "/admin/gate/misses", 200, &misses);
    let items = misses["items"].as_array().unwrap();
    let calls: Vec<&str> = items
        .iter()
        .map(|i| i["callid"].as_str().unwrap())
        .collect();
    assert_eq!(calls, ["rej-2", "rej-1"], "newest first: {misses}");
    assert_eq!(
        items[1]["rejectedBySinch"]["message"],
        "Illegal SVAML: unknown action"
    );
    assert_eq!(items[1]["report"]["type"], "callingerror");
    assert_eq!(items[1]["reply"]["action"]["name"], "hangup");

    let m = String::from_utf8(app.get("/metrics", None).await.body).unwrap();
    assert!(
        m.contains("svamlgate_sinch_rejected_replies_total{event=\"ice\",source=\"default\"} 2"),
        "{m}"
    );
}

/// A customer app that sets a 600-byte cookie on every reply: `a` on ICE and PIE, `b` on ACE.
async fn cookie_app() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|body: web::Bytes| async move {
            let event: Value = serde_json::from_slice(&body).unwrap_or_default();
            let (key, action) = match event["event"].as_str() {
                Some("ace") => ("b", json!({"name": "continue"})),
                Some("pie") => ("a", json!({"name": "hangup"})),
                _ => ("a", json!({"name": "hangup"})),
            };
            HttpResponse::Ok().json(json!({
                "instructions": [{"name": "setCookie", "key": key, "value": "x".repeat(600)}],
                "action": action
            }))
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    format!("http://{addr}/hook")
}

/// Sinch keeps a call's cookies for the whole call, within 1,024 bytes: the budget counts the last
/// value of each key across the call's replies.
#[actix_web::test]
async fn the_cookie_budget_holds_across_a_call() {
    let app = spawn_app().await;
    let url = cookie_app().await;
    route(&app, "+15550005", &url, None).await;
    let ice = app.post_signed(&ice("cookie-1", "+15550005")).await.json();
    assert_eq!(ice["instructions"][0]["key"], "a", "600 bytes fit: {ice}");
    // ACE sets another 600-byte cookie: 1,200 bytes for the call, so the fallback goes out.
    let ace = json!({"event": "ace", "callid": "cookie-1", "timestamp": "2026-11-25T10:00:02Z", "version": 1});
    let ace = app.post_signed(ace.to_string().as_bytes()).await.json();
    assert_eq!(ace, json!({"action": {"name": "continue"}}), "{ace}");
    // PIE sets `a` again: its last value replaces the first, still 600 bytes.
    let pie = json!({"event": "pie", "callid": "cookie-1", "timestamp": "2026-11-25T10:00:05Z", "version": 1,
                     "menuResult": {"menuId": "main", "type": "sequence", "value": "1", "inputMethod": "dtmf"}});
    let pie = app.post_signed(pie.to_string().as_bytes()).await.json();
    assert_eq!(pie["instructions"][0]["key"], "a", "{pie}");
    let verdicts: Vec<(String, String)> = sqlx::query(
        "SELECT event_type, gate_verdict FROM callbacks WHERE callid = 'cookie-1' ORDER BY received_at",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("event_type"), r.get("gate_verdict")))
    .collect();
    assert_eq!(
        verdicts,
        [
            ("ice".into(), "passed".into()),
            ("ace".into(), "rejected".into()),
            ("pie".into(), "passed".into())
        ]
    );
    let report: Value = sqlx::query_scalar(
        "SELECT report FROM rejected_replies r JOIN callbacks c ON c.id = r.callback_id WHERE c.callid = 'cookie-1'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(report.to_string().contains("SVAML040"), "{report}");
}
