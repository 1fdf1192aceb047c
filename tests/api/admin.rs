//! The admin API: authentication, call timelines, errors, event listing, validation.

use serde_json::json;

use crate::helpers::{fixture, spawn_app, spawn_app_with, ADMIN_TOKEN};

#[actix_web::test]
async fn admin_auth() {
    let app = spawn_app().await;
    app.get("/admin/events", None)
        .await
        .assert_envelope(401, 40100);
    app.get("/admin/events", Some("wrong"))
        .await
        .assert_envelope(401, 40108);
    assert_eq!(
        app.get("/admin/events", Some(ADMIN_TOKEN)).await.status,
        200
    );
    let disabled = spawn_app_with(|c| c.admin_token = None).await;
    let res = disabled.get("/admin/events", Some(ADMIN_TOKEN)).await;
    res.assert_envelope(403, 40300);
    assert!(res.json()["message"]
        .as_str()
        .unwrap()
        .contains("SVAMLGATE_ADMIN_TOKEN"));
}

#[actix_web::test]
async fn call_timeline_in_order() {
    let app = spawn_app().await;
    for name in [
        "sinch/ice-java-sdk-1.json",
        "sinch/ace-java-sdk-1.json",
        "sinch/pie-java-sdk-1.json",
        "sinch/dice-java-sdk-1.json",
    ] {
        assert_eq!(app.post_signed(&fixture(name)).await.status, 200);
    }
    let res = app.admin_get("/admin/calls/a%20call%20id").await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let j = res.json();
    let types: Vec<&str> = j["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ice", "ace", "pie", "dice"]);
    assert_eq!(j["events"][0]["reply"]["action"]["name"], "hangup");
    app.admin_get("/admin/calls/nope")
        .await
        .assert_envelope(404, 40400);
}

#[actix_web::test]
async fn events_listing_filters_pages_and_caps() {
    let app = spawn_app().await;
    for name in [
        "sinch/ice-node-sdk-1.json",
        "sinch/ace-java-sdk-1.json",
        "sinch/ice-java-sdk-1.json",
        "sinch/notify-java-sdk-1.json",
    ] {
        app.post_signed(&fixture(name)).await;
    }
    let all = app.admin_get("/admin/events").await.json();
    assert_eq!(all["items"].as_array().unwrap().len(), 4);
    assert_eq!(all["items"][0]["eventType"], "notify", "newest first");
    let ice = app.admin_get("/admin/events?type=ice").await.json();
    assert_eq!(ice["items"].as_array().unwrap().len(), 2);
    let page1 = app.admin_get("/admin/events?limit=3").await.json();
    assert_eq!(page1["items"].as_array().unwrap().len(), 3);
    let next = page1["nextBefore"].as_str().unwrap();
    let page2 = app
        .admin_get(&format!("/admin/events?limit=3&before={next}"))
        .await
        .json();
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2["items"][0]["eventType"], "ice");
    assert_eq!(
        app.admin_get("/admin/events?limit=100000").await.json()["limit"],
        500
    );
    let by_call = app.admin_get("/admin/events?callid=callId").await.json();
    assert_eq!(by_call["items"].as_array().unwrap().len(), 1);
    let future = app
        .admin_get("/admin/events?since=2999-01-01T00:00:00Z")
        .await
        .json();
    assert!(future["items"].as_array().unwrap().is_empty());
    app.admin_get("/admin/events?limit=abc")
        .await
        .assert_envelope(400, 40001);
    app.admin_get("/admin/events?since=yesterday")
        .await
        .assert_envelope(400, 40001);
    app.admin_get("/admin/events?colour=red")
        .await
        .assert_envelope(400, 40001);
}

#[actix_web::test]
async fn database_unavailable_on_admin_is_503() {
    let app = spawn_app().await;
    app.pool.close().await;
    app.admin_get("/admin/events")
        .await
        .assert_envelope(503, 50300);
}

/// The app is built as `svamlgate serve` builds it: the account's say limit reaches the gate.
#[actix_web::test]
async fn the_say_limit_setting_reaches_the_gate() {
    // 80 characters: the built-in fallback's prompt (73) still fits, so the app starts.
    let app = spawn_app_with(|c| c.max_say_chars = 80).await;
    let reply = json!({"instructions": [{"name": "say", "text": "Hello there. ".repeat(8), "locale": "en-US"}],
                       "action": {"name": "hangup"}});
    let report = app
        .admin_send("POST", "/admin/svaml/validate?event=ice", Some(&reply))
        .await
        .json();
    assert_eq!(report["valid"], false, "{report}");
    assert!(report.to_string().contains("SVAML080"), "{report}");
}

/// The say limit reaches the reply path too: the same upstream reply goes out under the built-in
/// limit and is refused (the fallback goes out instead) under a limit it exceeds.
#[actix_web::test]
async fn the_say_limit_setting_gates_callback_replies() {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let reply = json!({"instructions": [{"name": "say", "text": "Hello there. ".repeat(8), "locale": "en-US"}],
                       "action": {"name": "hangup"}});
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = format!("http://{}/cb", listener.local_addr().unwrap());
    let body = reply.clone();
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/cb",
            web::post().to(move || {
                let body = body.clone();
                async move { HttpResponse::Ok().json(body) }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    let route = json!({"name": "long say", "called": "+15550008080",
        "target": {"kind": "upstream", "url": upstream, "key": "up-key", "secretB64": "c2VjcmV0"}});

    let under_default = spawn_app().await;
    let made = under_default
        .admin_send("POST", "/admin/routes", Some(&route))
        .await;
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    let res = under_default
        .post_signed(&crate::helpers::ice("say-1", "+15550008080"))
        .await;
    assert_eq!(res.json(), reply, "the reply fits the built-in limit");

    let limited = spawn_app_with(|c| c.max_say_chars = 80).await;
    let made = limited
        .admin_send("POST", "/admin/routes", Some(&route))
        .await;
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    let res = limited
        .post_signed(&crate::helpers::ice("say-2", "+15550008080"))
        .await;
    assert_eq!(
        res.json(),
        svamlgate::gate::builtin_fallback(svamlgate::svaml::Target::Ice)
    );
    let (source, reason): (String, Option<String>) = sqlx::query_as(
        "SELECT reply_source, fallback_reason FROM callbacks WHERE callid = 'say-2'",
    )
    .fetch_one(&limited.pool)
    .await
    .unwrap();
    assert_eq!(
        (source.as_str(), reason.as_deref()),
        ("fallback", Some("invalid"))
    );
}

#[actix_web::test]
async fn error_catalog_and_validation_endpoints() {
    let app = spawn_app().await;
    let codes = app.admin_get("/admin/error-codes").await.json();
    let list = codes["errorCodes"].as_array().unwrap();
    assert!(list.len() >= 28);
    assert!(list.iter().any(|c| c["code"] == 42202));
    let ok = app
        .admin_send(
            "POST",
            "/admin/svaml/validate?event=ice",
            Some(&json!({"action": {"name": "hangup"}})),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["valid"], true);
    let bad = app
        .admin_send(
            "POST",
            "/admin/svaml/validate?event=ace",
            Some(&json!({"action": {"name": "park"}})),
        )
        .await
        .json();
    assert_eq!(bad["valid"], false);
    let v = &bad["violations"][0];
    assert_eq!(v["severity"], "error");
    assert_eq!(v["code"], "SVAML001");
    assert!(
        v["source"]
            .as_str()
            .unwrap()
            .contains("developers.sinch.com/docs/voice/api-reference/svaml"),
        "{bad}"
    );
    // A warning comes with its severity and source, and leaves the document valid.
    let warned = app
        .admin_send(
            "POST",
            "/admin/svaml/validate?event=ice",
            Some(&json!({"action": {"name": "connectMXP", "destination": {"type": "username", "endpoint": "johndoe"}}})),
        )
        .await
        .json();
    assert_eq!(warned["valid"], true, "{warned}");
    assert_eq!(warned["violations"][0]["severity"], "warning");
    assert_eq!(warned["violations"][0]["code"], "SVAML003");
    assert!(warned["violations"][0]["source"].is_string());
    app.admin_send("POST", "/admin/svaml/validate", Some(&json!({})))
        .await
        .assert_envelope(400, 40002);
}
