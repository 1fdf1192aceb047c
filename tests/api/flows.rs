//! Reply sources end to end: an IVR flow driven with signed requests, flow and route admin, and proxy
//! mode against a local upstream that answers valid, invalid, late and not at all.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{
    fixture, ice, pie, spawn_app, spawn_app_with, wait_until, Documented, TestApp,
};

fn flow_doc(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("flows/{name}"))).unwrap()
}

async fn create_flow(app: &TestApp, doc: &Value) -> i64 {
    let res = app.admin_send("POST", "/admin/flows", Some(doc)).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res.json()["flow"]["id"].as_i64().unwrap()
}

async fn create_route(app: &TestApp, route: Value) -> i64 {
    let res = app.admin_send("POST", "/admin/routes", Some(&route)).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res.json()["id"].as_i64().unwrap()
}

#[actix_web::test]
async fn ivr_flow_end_to_end() {
    let app = spawn_app().await;
    let flow_id = create_flow(&app, &flow_doc("ivr.json")).await;
    create_route(&app, json!({"name": "main line", "called": "+15550100", "target": {"kind": "flow", "flowId": flow_id}})).await;

    let r1 = app.post_signed(&ice("ivr-1", "+15550100")).await.json();
    assert_eq!(r1["action"]["name"], "runMenu");
    assert!(r1["action"]["menus"][0]["mainPrompt"]
        .as_str()
        .unwrap()
        .contains("Welcome"));

    let r2 = app.post_signed(&pie("ivr-1", "return", "pin")).await.json();
    assert_eq!(r2["action"]["name"], "runMenu");
    assert_eq!(r2["action"]["menus"][0]["maxDigits"], 4);

    let r3 = app
        .post_signed(&pie("ivr-1", "sequence", "1234"))
        .await
        .json();
    assert_eq!(r3["action"]["name"], "connectPstn");
    assert_eq!(
        r3["instructions"][0]["text"],
        "You entered 1234. Connecting you to your account manager."
    );

    let dice = json!({"event": "dice", "callid": "ivr-1", "timestamp": "2026-11-25T10:01:00Z", "reason": "CALLERHANGUP", "result": "ANSWERED"});
    let r4 = app.post_signed(dice.to_string().as_bytes()).await;
    assert_eq!(r4.status, 200);
    assert!(r4.body.is_empty());

    let timeline = app.admin_get("/admin/calls/ivr-1").await.json();
    let events = timeline["events"].as_array().unwrap();
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap().to_owned(),
                e["flowNode"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("ice".into(), "welcome".into()),
            ("pie".into(), "pin".into()),
            ("pie".into(), "pinEntered".into()),
            ("dice".into(), "-".into())
        ]
    );
    assert!(events[..3]
        .iter()
        .all(|e| e["replySource"] == "flow" && e["flowVersion"] == 1 && e["flowId"] == flow_id));
    let state: i64 = sqlx::query_scalar("SELECT count(*) FROM call_state")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(state, 0, "call state dropped at DICE");
}

#[actix_web::test]
async fn calls_keep_their_flow_version_and_new_calls_get_the_new_one() {
    let app = spawn_app().await;
    let mut doc = flow_doc("ivr.json");
    let flow_id = create_flow(&app, &doc).await;
    create_route(
        &app,
        json!({"name": "default", "target": {"kind": "flow", "flowId": flow_id}}),
    )
    .await;
    app.post_signed(&ice("v-1", "+15550199")).await;
    doc["nodes"]["goodbye"]["instructions"][0]["text"] = json!("Version two says goodbye.");
    let res = app
        .admin_send("PUT", &format!("/admin/flows/{flow_id}"), Some(&doc))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["flow"]["currentVersion"], 2);
    // The call that started on v1 stays on v1.
    let r = app.post_signed(&pie("v-1", "timeout", "")).await.json();
    assert_eq!(
        r["instructions"][0]["text"],
        "Thank you for calling Example Corp. Goodbye."
    );
    app.post_signed(&ice("v-2", "+15550199")).await;
    let r = app.post_signed(&pie("v-2", "timeout", "")).await.json();
    assert_eq!(r["instructions"][0]["text"], "Version two says goodbye.");
    let versions: Vec<i32> = sqlx::query("SELECT flow_version FROM callbacks WHERE callid = 'v-2'")
        .fetch_all(&app.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("flow_version"))
        .collect();
    assert_eq!(versions, [2, 2]);
    let got = app
        .admin_get(&format!("/admin/flows/{flow_id}?version=1"))
        .await
        .json();
    assert_eq!(got["versions"], json!([1, 2]));
    let exported = app
        .admin_get(&format!("/admin/flows/{flow_id}/export"))
        .await;
    assert_eq!(
        exported.json()["nodes"]["goodbye"]["instructions"][0]["text"],
        "Version two says goodbye."
    );
}

#[actix_web::test]
async fn a_flow_that_could_emit_invalid_svaml_is_refused_with_the_full_report() {
    let app = spawn_app().await;
    let mut doc = flow_doc("ivr.json");
    doc["nodes"]["sales"]["action"]["number"] = json!("12025550143"); // no leading +: a warning
    doc["nodes"]["sales"]["action"]["maxDuration"] = json!(99999); // over Sinch's 14400: an error
    doc["nodes"]["goodbye"]["action"] = json!({"name": "park"}); // park is ICE-only; goodbye answers PIEs
    let res = app.admin_send("POST", "/admin/flows", Some(&doc)).await;
    res.assert_envelope(400, 40001);
    let details = &res.json()["details"];
    let failing: Vec<&str> = details["emissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["report"]["valid"] == false)
        .map(|e| e["node"].as_str().unwrap())
        .collect();
    assert!(
        failing.contains(&"sales") && failing.contains(&"goodbye"),
        "{details}"
    );
    let sales = details["emissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"] == "sales")
        .unwrap();
    let severity_of = |code: &str| {
        sales["report"]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["code"] == code)
            .map(|v| v["severity"].clone())
    };
    assert_eq!(severity_of("SVAML010"), Some(json!("warning")), "{sales}");
    assert_eq!(
        severity_of("schema:maximum"),
        Some(json!("error")),
        "{sales}"
    );
    let flows = app.admin_get("/admin/flows").await.json();
    assert!(flows["items"].as_array().unwrap().is_empty());
    // Structural errors are reported too.
    let broken =
        json!({"name": "b", "start": "nope", "nodes": {"a": {"action": {"name": "hangup"}}}});
    let res = app.admin_send("POST", "/admin/flows", Some(&broken)).await;
    res.assert_envelope(400, 40001);
    assert!(res.json()["details"]["problems"]
        .to_string()
        .contains("start-missing"));
}

#[actix_web::test]
async fn simulate_shows_the_reply_and_its_report() {
    let app = spawn_app().await;
    let flow_id = create_flow(&app, &flow_doc("ivr.json")).await;
    let body = json!({"event": serde_json::from_slice::<Value>(&pie("s", "return", "sales")).unwrap(), "currentNode": "welcome"});
    let res = app
        .admin_send(
            "POST",
            &format!("/admin/flows/{flow_id}/simulate"),
            Some(&body),
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let j = res.json();
    assert_eq!(j["node"], "sales");
    assert_eq!(j["passed"], true);
    assert_eq!(j["reply"]["action"]["name"], "connectPstn");
    assert_eq!(j["report"]["valid"], true);
}

#[actix_web::test]
async fn routes_admin_crud_and_secret_never_returned() {
    let app = spawn_app().await;
    let id = create_route(
        &app,
        json!({"name": "app", "called": "+15550111", "callerPrefix": "+46", "priority": 5,
               "target": {"kind": "upstream", "url": "http://127.0.0.1:9/cb", "key": "k", "secretB64": "c2VjcmV0", "timeoutMs": 500}}),
    )
    .await;
    let got = app.admin_get(&format!("/admin/routes/{id}")).await;
    assert!(!String::from_utf8_lossy(&got.body).contains("c2VjcmV0"));
    assert_eq!(got.json()["target"]["secretB64"], "<redacted>");
    let bad = app
        .admin_send(
            "POST",
            "/admin/routes",
            Some(&json!({"name": "x", "target": {"kind": "flow", "flowId": 999}})),
        )
        .await;
    bad.assert_envelope(400, 40001);
    let dup = app
        .admin_send("POST", "/admin/routes", Some(&json!({"name": "app", "target": {"kind": "upstream", "url": "http://127.0.0.1:9/", "key": "k", "secretB64": "c2VjcmV0"}})))
        .await;
    dup.assert_envelope(409, 40900);
    let updated = app
        .admin_send(
            "PUT",
            &format!("/admin/routes/{id}"),
            Some(&json!({"name": "app", "called": "+15550112", "priority": 9,
                "target": {"kind": "upstream", "url": "https://app.example.com/cb", "key": "k2", "secretB64": "c2VjcmV0Mg=="}})),
        )
        .await;
    assert_eq!(
        updated.status,
        200,
        "{}",
        String::from_utf8_lossy(&updated.body)
    );
    let u = updated.json();
    assert_eq!(
        (
            u["called"].as_str(),
            u["priority"].as_i64(),
            u["callerPrefix"].is_null()
        ),
        (Some("+15550112"), Some(9), true)
    );
    assert_eq!(u["target"]["url"], "https://app.example.com/cb");
    let secret: String = sqlx::query_scalar("SELECT upstream_secret FROM routes WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(secret, "c2VjcmV0Mg==", "the new secret is stored");
    assert_eq!(
        app.admin_send("DELETE", &format!("/admin/routes/{id}"), None)
            .await
            .status,
        204
    );
    app.admin_get(&format!("/admin/routes/{id}"))
        .await
        .assert_envelope(404, 40400);
}

/// A local stand-in for a customer's app.
async fn upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/valid",
                web::post().to(|req: actix_web::HttpRequest, body: web::Bytes| async move {
                    // The forwarded request is signed as Sinch signs, with the route's key.
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let (auth, ts, ct) = (h("authorization"), h("x-timestamp"), h("content-type"));
                    let ring =
                        svamlgate::signature::KeyRing::parse_list("up-key:c2VjcmV0").unwrap();
                    let signed = svamlgate::signature::CallbackRequest {
                        method: "POST",
                        path: req.path(),
                        content_type: ct.as_deref(),
                        x_timestamp: ts.as_deref(),
                        authorization: auth.as_deref(),
                        body: &body,
                    };
                    let policy = svamlgate::signature::VerifyPolicy::default();
                    match svamlgate::signature::verify(
                        &ring,
                        &signed,
                        time::OffsetDateTime::now_utc(),
                        &policy,
                    ) {
                        Ok(_) => HttpResponse::Ok().json(
                            json!({"action": {"name": "connectPstn", "number": "+15550177"}}),
                        ),
                        Err(e) => HttpResponse::Unauthorized().body(e.to_string()),
                    }
                }),
            )
            .route(
                "/invalid",
                web::post().to(|| async {
                    HttpResponse::Ok().json(
                        json!({"action": {"name": "connectPstn", "number": "+15550177", "maxDuration": 99999}}),
                    )
                }),
            )
            .route(
                // The pattern of Sinch's own inline ICE example: numbers without a leading +.
                "/no-plus",
                web::post().to(|| async {
                    HttpResponse::Ok().json(
                        json!({"action": {"name": "connectPstn", "number": "46000000001", "cli": "12015555555", "maxDuration": 90}}),
                    )
                }),
            )
            .route(
                "/garbage",
                web::post().to(|| async { HttpResponse::Ok().body("<html>oops</html>") }),
            )
            .route(
                "/late",
                web::post().to(|| async {
                    // Time itself must pass: this upstream answers after the 400 ms deadline.
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    HttpResponse::Ok().json(json!({"action": {"name": "hangup"}}))
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    format!("http://{addr}")
}

#[actix_web::test]
async fn proxy_mode_valid_invalid_late_and_down() {
    let app = spawn_app_with(|c| c.deadline_ice_ms = 400).await;
    let base = upstream().await;
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for (n, path) in [
        ("1", "/valid"),
        ("2", "/invalid"),
        ("3", "/late"),
        ("4", "/garbage"),
    ] {
        create_route(&app, json!({"name": format!("r{n}"), "called": format!("+1555020000{n}"),
            "target": {"kind": "upstream", "url": format!("{base}{path}"), "key": "up-key", "secretB64": "c2VjcmV0"}})).await;
    }
    create_route(&app, json!({"name": "no-plus", "called": "+15550200006",
        "target": {"kind": "upstream", "url": format!("{base}/no-plus"), "key": "up-key", "secretB64": "c2VjcmV0"}})).await;
    create_route(&app, json!({"name": "down", "called": "+15550200005",
        "target": {"kind": "upstream", "url": format!("http://127.0.0.1:{closed}/cb"), "key": "up-key", "secretB64": "c2VjcmV0"}})).await;
    let fallback = svamlgate::gate::builtin_fallback(svamlgate::svaml::Target::Ice);

    let ok = app.post_signed(&ice("p-1", "+15550200001")).await.json();
    assert_eq!(ok["action"]["number"], "+15550177");
    // A reply Sinch accepts goes out as it is, even when it only draws warnings.
    let no_plus = app.post_signed(&ice("p-6", "+15550200006")).await.json();
    assert_eq!(
        no_plus,
        json!({"action": {"name": "connectPstn", "number": "46000000001", "cli": "12015555555", "maxDuration": 90}})
    );
    for (callid, to, reason) in [
        ("p-2", "+15550200002", "invalid"),
        ("p-3", "+15550200003", "deadline"),
        ("p-4", "+15550200004", "upstream_error"),
        ("p-5", "+15550200005", "upstream_error"),
    ] {
        let started = std::time::Instant::now();
        let res = app.post_signed(&ice(callid, to)).await;
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{callid} answered before the deadline"
        );
        assert_eq!(res.json(), fallback, "{callid}");
        let row =
            sqlx::query("SELECT reply_source, fallback_reason FROM callbacks WHERE callid = $1")
                .bind(callid)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert_eq!(row.get::<String, _>("reply_source"), "fallback");
        assert_eq!(row.get::<String, _>("fallback_reason"), reason, "{callid}");
    }
    // The upstream exchanges and the rejected reply are on record: one exchange per call.
    wait_until(
        "six upstream exchanges are recorded",
        Duration::from_secs(10),
        async || {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM upstream_exchanges")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            n >= 6
        },
    )
    .await;
    let ex = sqlx::query("SELECT c.callid, u.status, u.failure FROM upstream_exchanges u JOIN callbacks c ON c.id = u.callback_id ORDER BY c.callid")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let got: Vec<(String, Option<i16>, Option<String>)> =
        ex.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(got[0], ("p-1".to_owned(), Some(200), None));
    assert_eq!(got[1], ("p-2".to_owned(), Some(200), None));
    assert_eq!(got[2].2.as_deref(), Some("timeout"));
    assert_eq!(got[3].2.as_deref(), Some("not_json"));
    assert!(got[4].1.is_none());
    let timeline = app.admin_get("/admin/calls/p-2").await.json();
    Documented::fetch(&app)
        .await
        .check("GET", "/admin/calls/{callid}", 200, &timeline);
    let rejected = &timeline["rejectedReplies"][0];
    assert_eq!(rejected["source"], "upstream");
    assert!(
        rejected["report"]
            .to_string()
            .contains("/action/maxDuration"),
        "{rejected}"
    );
    let metrics = String::from_utf8(app.get("/metrics", None).await.body).unwrap();
    assert!(
        metrics.contains("svamlgate_gate_replies_total{event=\"ice\",verdict=\"rejected\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("svamlgate_fallbacks_total{event=\"ice\",reason=\"deadline\"} 1"));
}

#[actix_web::test]
async fn a_flow_keeps_answering_new_calls_while_the_database_is_gone() {
    let app = spawn_app().await;
    let flow_id = create_flow(&app, &flow_doc("ivr.json")).await;
    create_route(&app, json!({"name": "main", "called": "+15550100", "target": {"kind": "flow", "flowId": flow_id}})).await;
    let warm = app.post_signed(&ice("db-1", "+15550100")).await.json();
    assert_eq!(warm["action"]["name"], "runMenu");
    app.pool.close().await;
    let res = app.post_signed(&ice("db-2", "+15550100")).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), warm, "routes and the flow come from the cache");
}

#[actix_web::test]
async fn route_changes_take_effect_at_once() {
    let app = spawn_app().await;
    let flow_id = create_flow(&app, &flow_doc("ivr.json")).await;
    let default = app.post_signed(&ice("rc-1", "+15550100")).await.json();
    assert_eq!(
        default["action"]["name"], "hangup",
        "no route yet: the default reply"
    );
    create_route(&app, json!({"name": "main", "called": "+15550100", "target": {"kind": "flow", "flowId": flow_id}})).await;
    let routed = app.post_signed(&ice("rc-2", "+15550100")).await.json();
    assert_eq!(routed["action"]["name"], "runMenu");
}
