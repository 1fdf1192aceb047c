//! Flows that change safely, end to end against real PostgreSQL: drafts, publish (refused on a
//! coverage error unless forced, recorded), calls finishing on their pinned version, rollback,
//! coverage, replay of recorded calls, and shadow evaluation.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{fixture, ice, pie, spawn_app, Documented, TestApp, ADMIN_TOKEN};

fn flow_doc(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("flows/{name}"))).unwrap()
}

/// The IVR with keys 1 and 2 of the main menu swapped (1 support, 2 sales).
fn swapped_ivr() -> Value {
    let mut doc = flow_doc("ivr.json");
    let opts = &mut doc["nodes"]["welcome"]["action"]["menus"][0]["options"];
    opts[0]["action"] = json!("return(support)");
    opts[1]["action"] = json!("return(sales)");
    doc
}

async fn flow_with_route(app: &TestApp, called: &str) -> i64 {
    let res = app
        .admin_send("POST", "/admin/flows", Some(&flow_doc("ivr.json")))
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let flow_id = res.json()["flow"]["id"].as_i64().unwrap();
    let res = app
        .admin_send(
            "POST",
            "/admin/routes",
            Some(&json!({"name": format!("line {called}"), "called": called,
                         "target": {"kind": "flow", "flowId": flow_id}})),
        )
        .await;
    assert_eq!(res.status, 201);
    flow_id
}

async fn save_draft(app: &TestApp, flow_id: i64, doc: &Value) -> i64 {
    let res = app
        .admin_send(
            "PUT",
            &format!("/admin/flows/{flow_id}?draft=true"),
            Some(doc),
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let body = res.json();
    assert_eq!(body["status"], "draft");
    body["version"].as_i64().unwrap()
}

async fn versions(app: &TestApp, flow_id: i64) -> Value {
    let res = app
        .admin_get(&format!("/admin/flows/{flow_id}/versions"))
        .await;
    assert_eq!(res.status, 200);
    let body = res.json();
    Documented::fetch(app)
        .await
        .check("GET", "/admin/flows/{id}/versions", 200, &body);
    body
}

fn version(list: &Value, v: i64) -> &Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["version"] == v)
        .unwrap()
}

#[actix_web::test]
async fn drafts_publish_pinned_calls_and_rollback() {
    let app = spawn_app().await;
    let flow_id = flow_with_route(&app, "+15550111").await;
    let mut v2 = flow_doc("ivr.json");
    v2["nodes"]["goodbye"]["instructions"][0]["text"] = json!("Version two says goodbye.");
    assert_eq!(save_draft(&app, flow_id, &v2).await, 2);

    // A draft changes nothing for callers.
    app.post_signed(&ice("d-1", "+15550111")).await;
    let r = app.post_signed(&pie("d-1", "timeout", "")).await.json();
    assert_eq!(
        r["instructions"][0]["text"],
        "Thank you for calling Example Corp. Goodbye."
    );
    let list = versions(&app, flow_id).await;
    assert_eq!(list["currentVersion"], 1);
    assert_eq!(version(&list, 2)["status"], "draft");
    assert_eq!(version(&list, 2)["live"], false);
    assert_eq!(version(&list, 1)["callsInProgress"], 1);
    assert_eq!(version(&list, 1)["drained"], false);
    assert_eq!(version(&list, 2)["drained"], true);

    // Publish v2 while the call on v1 is in progress: that call finishes on v1.
    let res = app
        .admin_send(
            "POST",
            &format!("/admin/flows/{flow_id}/versions/2/publish"),
            None,
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let body = res.json();
    Documented::fetch(&app).await.check(
        "POST",
        "/admin/flows/{id}/versions/{version}/publish",
        200,
        &body,
    );
    assert_eq!(body["flow"]["currentVersion"], 2);
    assert_eq!(body["previousVersion"], 1);
    assert_eq!(body["forced"], false);
    let r = app.post_signed(&pie("d-1", "timeout", "")).await.json();
    assert_eq!(
        r["instructions"][0]["text"], "Thank you for calling Example Corp. Goodbye.",
        "the call in progress stays on its pinned version"
    );
    app.post_signed(&ice("d-2", "+15550111")).await;
    let r = app.post_signed(&pie("d-2", "timeout", "")).await.json();
    assert_eq!(r["instructions"][0]["text"], "Version two says goodbye.");
    let list = versions(&app, flow_id).await;
    assert_eq!(version(&list, 1)["callsInProgress"], 1);
    assert_eq!(version(&list, 2)["callsInProgress"], 1);
    assert_eq!(version(&list, 2)["status"], "published");
    // DICE ends the call on v1: v1 is drained.
    let dice = json!({"event": "dice", "callid": "d-1", "timestamp": "2026-11-25T10:01:00Z", "reason": "CALLERHANGUP", "result": "ANSWERED"});
    app.post_signed(dice.to_string().as_bytes()).await;
    let list = versions(&app, flow_id).await;
    assert_eq!(version(&list, 1)["callsInProgress"], 0);
    assert_eq!(version(&list, 1)["drained"], true);

    // Rolling back is publishing v1 again.
    let res = app
        .admin_send(
            "POST",
            &format!("/admin/flows/{flow_id}/versions/1/publish"),
            Some(&json!({"reason": "rollback"})),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["flow"]["currentVersion"], 1);
    app.post_signed(&ice("d-3", "+15550111")).await;
    let r = app.post_signed(&pie("d-3", "timeout", "")).await.json();
    assert_eq!(
        r["instructions"][0]["text"],
        "Thank you for calling Example Corp. Goodbye."
    );
    // The history: create, publish v2, publish v1.
    let via: Vec<(String, i32)> =
        sqlx::query("SELECT via, version FROM flow_publications WHERE flow_id = $1 ORDER BY id")
            .bind(flow_id)
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("via"), r.get("version")))
            .collect();
    assert_eq!(
        via,
        [
            ("create".to_owned(), 1),
            ("publish".to_owned(), 2),
            ("publish".to_owned(), 1)
        ]
    );

    // A `status` field works like ?draft=true; a PUT without either is live at once, as before.
    let mut v3 = v2.clone();
    v3["status"] = json!("draft");
    let res = app
        .admin_send("PUT", &format!("/admin/flows/{flow_id}"), Some(&v3))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["version"], 3);
    assert_eq!(res.json()["flow"]["currentVersion"], 1);
    let res = app
        .admin_send("PUT", &format!("/admin/flows/{flow_id}"), Some(&v2))
        .await;
    assert_eq!(res.json()["version"], 4);
    assert_eq!(res.json()["status"], "published");
    assert_eq!(res.json()["flow"]["currentVersion"], 4);
    let bad = app
        .admin_send(
            "PUT",
            &format!("/admin/flows/{flow_id}?draft=maybe"),
            Some(&v2),
        )
        .await;
    bad.assert_envelope(400, 40001);
    let res = app
        .admin_send(
            "POST",
            &format!("/admin/flows/{flow_id}/versions/9/publish"),
            None,
        )
        .await;
    res.assert_envelope(404, 40400);
}

#[actix_web::test]
async fn publish_refuses_a_version_with_a_coverage_error_unless_forced() {
    let app = spawn_app().await;
    let flow_id = flow_with_route(&app, "+15550112").await;
    // The defects pass the save-time check (each reply alone is valid): the draft is saved.
    let v = save_draft(&app, flow_id, &flow_doc("defects.json")).await;
    let res = app
        .admin_send(
            "POST",
            &format!("/admin/flows/{flow_id}/versions/{v}/publish"),
            Some(&json!({})),
        )
        .await;
    res.assert_envelope(400, 40001);
    let body = res.json();
    Documented::fetch(&app).await.check(
        "POST",
        "/admin/flows/{id}/versions/{version}/publish",
        400,
        &body,
    );
    let codes: Vec<&str> = body["details"]["coverage"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    for c in [
        "trap-loop",
        "option-leads-nowhere",
        "option-menu-missing",
        "gate-refused",
    ] {
        assert!(codes.contains(&c), "{c} not in {codes:?}");
    }
    let list = versions(&app, flow_id).await;
    assert_eq!(list["currentVersion"], 1, "nothing was published");

    let res = app
        .admin_send(
            "POST",
            &format!("/admin/flows/{flow_id}/versions/{v}/publish"),
            Some(&json!({"force": true, "reason": "incident 42: known defects"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["forced"], true);
    let row = sqlx::query(
        "SELECT forced, reason, errors, report FROM flow_publications WHERE flow_id = $1 AND via = 'publish'",
    )
    .bind(flow_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(row.get::<bool, _>("forced"));
    assert_eq!(
        row.get::<Option<String>, _>("reason").as_deref(),
        Some("incident 42: known defects")
    );
    assert!(row.get::<i32, _>("errors") >= 4);
    assert!(row
        .get::<Value, _>("report")
        .to_string()
        .contains("trap-loop"));
    assert_eq!(versions(&app, flow_id).await["items"][1]["forced"], true);
}

#[actix_web::test]
async fn coverage_of_a_version_as_json_and_text() {
    let app = spawn_app().await;
    let flow_id = flow_with_route(&app, "+15550113").await;
    let res = app
        .admin_get(&format!("/admin/flows/{flow_id}/versions/1/coverage"))
        .await;
    assert_eq!(res.status, 200);
    let report = res.json();
    Documented::fetch(&app).await.check(
        "GET",
        "/admin/flows/{id}/versions/{version}/coverage",
        200,
        &report,
    );
    assert_eq!(report["valid"], true, "{report:#}");
    assert_eq!(report["unreachedNodes"], json!([]));
    let res = app
        .admin_get(&format!(
            "/admin/flows/{flow_id}/versions/1/coverage?format=text"
        ))
        .await;
    let text = String::from_utf8(res.body.clone()).unwrap();
    assert!(
        text.contains("#0 ICE → welcome: \"Welcome to Example Corp."),
        "{text}"
    );
    app.admin_get(&format!(
        "/admin/flows/{flow_id}/versions/1/coverage?format=xml"
    ))
    .await
    .assert_envelope(400, 40001);
    app.admin_get(&format!("/admin/flows/{flow_id}/versions/7/coverage"))
        .await
        .assert_envelope(404, 40400);
}

/// Drives four calls through the IVR: key 1 (sales), keys 2 then 1 (support, billing), key 3 and a
/// PIN, and silence.
async fn four_calls(app: &TestApp, called: &str, prefix: &str) -> Vec<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let script: [&[(&str, &str)]; 4] = [
        &[("return", "sales")],
        &[("return", "support"), ("return", "billing")],
        &[("return", "pin"), ("sequence", "4711")],
        &[("timeout", "")],
    ];
    for (i, pies) in script.iter().enumerate() {
        let callid = format!("{prefix}-{i}");
        let mut bodies = vec![app.post_signed(&ice(&callid, called)).await.body];
        for (kind, value) in pies.iter() {
            bodies.push(app.post_signed(&pie(&callid, kind, value)).await.body);
        }
        out.push(bodies);
    }
    out
}

#[actix_web::test]
async fn replay_finds_exactly_the_calls_that_pressed_moved_keys() {
    let app = spawn_app().await;
    let flow_id = flow_with_route(&app, "+15550114").await;
    four_calls(&app, "+15550114", "r").await;
    let v2 = save_draft(&app, flow_id, &swapped_ivr()).await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM callbacks")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let before = count().await;

    // The version that answered them: no difference.
    let res = app
        .admin_send(
            "POST",
            &format!("/admin/flows/{flow_id}/versions/1/replay"),
            Some(&json!({"last": 10})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let same = res.json();
    Documented::fetch(&app).await.check(
        "POST",
        "/admin/flows/{id}/versions/{version}/replay",
        200,
        &same,
    );
    assert_eq!(same["calls"], 4);
    assert_eq!(same["same"], 4, "{same:#}");
    assert_eq!(same["pathDifferent"], 0);

    // Keys 1 and 2 swapped: exactly the calls that pressed them take another path, from their
    // first key; the others hear another menu (its options changed) but go the same way.
    let res = app
        .admin_send(
            "POST",
            &format!("/admin/flows/{flow_id}/versions/{v2}/replay"),
            None,
        )
        .await;
    let moved = res.json();
    assert_eq!(moved["pathDifferent"], 2, "{moved:#}");
    assert_eq!(moved["repliesDifferent"], 2, "{moved:#}");
    let mut differing: Vec<&str> = moved["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["samePath"] == false)
        .map(|c| c["callid"].as_str().unwrap())
        .collect();
    differing.sort_unstable();
    assert_eq!(differing, ["r-0", "r-1"]);
    let r0 = moved["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["callid"] == "r-0")
        .unwrap();
    let d = &r0["firstPathDifference"];
    assert_eq!(d["index"], 1);
    assert_eq!(d["input"]["key"], "1");
    assert_eq!(d["input"]["recorded"]["value"], "sales");
    assert_eq!(d["input"]["candidate"]["value"], "support");
    assert_eq!(d["recorded"]["node"], "sales");
    assert_eq!(d["candidate"]["node"], "support");
    assert_eq!(d["recorded"]["reply"]["action"]["name"], "connectPstn");
    assert_eq!(d["candidate"]["reply"]["action"]["name"], "runMenu");
    // r-1 pressed 2 (support) then 1 (billing): now 2 is sales, and the call's second key has no
    // meaning there (sales sends no menu).
    let r1 = moved["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["callid"] == "r-1")
        .unwrap();
    assert_eq!(r1["firstPathDifference"]["candidate"]["node"], "sales");
    assert_eq!(r1["meaninglessInput"]["index"], 2, "{r1:#}");

    // By call id, and nothing was recorded as a callback.
    let res = app
        .admin_send(
            "POST",
            &format!("/admin/flows/{flow_id}/versions/{v2}/replay"),
            Some(&json!({"callids": ["r-2"]})),
        )
        .await;
    assert_eq!(res.json()["calls"], 1);
    assert_eq!(res.json()["items"][0]["samePath"], true);
    assert_eq!(count().await, before);

    // The same from the command line, through the running service: exit 1, the moved keys shown.
    let base = format!("http://{}", app.addr);
    let (flow, version) = (flow_id.to_string(), v2.to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_svamlgate"))
            .args(["flow", "replay", "--server", &base, "--token", ADMIN_TOKEN])
            .args(["--flow", &flow, "--version", &version, "--last", "10"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("4 call(s) replayed: 0 the same, 2 on another path"),
        "{text}"
    );
    assert!(
        text.contains("other path  r-0: event 1 (pie) after key 1 (recorded sales, now support)"),
        "{text}"
    );
    assert!(
        text.contains("recorded  sales: \"Connecting you to sales.\" → connects to +12025550143"),
        "{text}"
    );

    app.admin_send(
        "POST",
        &format!("/admin/flows/{flow_id}/versions/1/replay"),
        Some(&json!({"last": 0})),
    )
    .await
    .assert_envelope(400, 40001);
}

#[actix_web::test]
async fn shadowing_leaves_the_live_replies_byte_for_byte_the_same() {
    let app = spawn_app().await;
    let flow_id = flow_with_route(&app, "+15550115").await;
    let plain = four_calls(&app, "+15550115", "plain").await;
    let v2 = save_draft(&app, flow_id, &swapped_ivr()).await;
    let routes = app.admin_get("/admin/routes").await.json();
    let mut route = routes["items"][0].clone();
    let route_id = route["id"].as_i64().unwrap();
    route["shadowVersion"] = json!(v2);
    let res = app
        .admin_send("PUT", &format!("/admin/routes/{route_id}"), Some(&route))
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["shadowVersion"], v2);

    let shadowed = four_calls(&app, "+15550115", "shadowed").await;
    assert_eq!(
        plain, shadowed,
        "the replies went out byte for byte the same"
    );

    // 4 ICEs and 6 PIEs were compared; r-0's and r-1's first key differ.
    let report = crate::helpers::wait_for(Duration::from_secs(10), async || {
        let res = app
            .admin_get(&format!("/admin/flows/{flow_id}/versions/{v2}/shadow"))
            .await;
        assert_eq!(res.status, 200);
        let body = res.json();
        if body["totals"]["compared"] == 10 {
            Ok(body)
        } else {
            Err(format!("not 10 compared: {body:#}"))
        }
    })
    .await;
    Documented::fetch(&app).await.check(
        "GET",
        "/admin/flows/{id}/versions/{version}/shadow",
        200,
        &report,
    );
    assert_eq!(report["totals"]["compared"], 10, "{report:#}");
    assert_eq!(report["routes"], json!([route_id]));
    // Every ICE hears another menu (its options changed); only the calls that pressed a moved
    // key take another path.
    let mut other_path: Vec<&str> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["liveNode"] != d["candidateNode"])
        .map(|d| d["callid"].as_str().unwrap())
        .collect();
    other_path.sort_unstable();
    other_path.dedup();
    assert_eq!(other_path, ["shadowed-0", "shadowed-1"], "{report:#}");
    let first = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["callid"] == "shadowed-0" && d["eventType"] == "pie")
        .unwrap();
    assert_eq!(first["liveNode"], "sales");
    assert_eq!(first["candidateNode"], "support");
    assert_eq!(first["input"]["key"], "1");
    // Only live callbacks are recorded: the 10 events of the shadowed batch, nothing more.
    app.settle().await;
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM callbacks WHERE callid LIKE 'shadowed-%'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(n, 10);
    // A shadow version on an upstream route is refused.
    let bad = json!({"name": "u", "called": "+15550116", "shadowVersion": 2,
        "target": {"kind": "upstream", "url": "http://127.0.0.1:9/x", "key": "k", "secretB64": "c2VjcmV0"}});
    app.admin_send("POST", "/admin/routes", Some(&bad))
        .await
        .assert_envelope(400, 40001);
}

#[test]
fn flow_check_command_exit_codes() {
    let run = |file: &str, json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_svamlgate"));
        c.args(["flow", "check"]);
        if json {
            c.arg("--json");
        }
        c.arg(format!(
            "{}/tests/fixtures/flows/{file}",
            env!("CARGO_MANIFEST_DIR")
        ));
        c.output().unwrap()
    };
    let ok = run("ivr.json", false);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(text.contains("Flow \"Example Corp IVR\": OK"), "{text}");
    let bad = run("defects.json", true);
    assert_eq!(bad.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(report["valid"], false);
    let missing = run("no-such-file.json", false);
    assert_eq!(missing.status.code(), Some(2));
}
