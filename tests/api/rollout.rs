//! Turning verification on without an outage: refusals that explain themselves (to operators, never
//! to the requester), report mode, bounded refusals under a flood, the canary through a
//! path-rewriting proxy, and `svamlgate doctor` on planted faults.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Row;
use svamlgate::signature::settings::SignatureMode;
use svamlgate::signature::{self, AppCredential};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    fixture, fresh_database, ice, spawn_app, spawn_app_on, spawn_app_with, ADMIN_TOKEN, KEY, SECRET,
};

const CT: &str = "application/json; charset=utf-8";

fn now() -> String {
    signature::format_timestamp(time::OffsetDateTime::now_utc())
}

fn cred() -> AppCredential {
    AppCredential::new(KEY, SECRET).unwrap()
}

/// Signs `body` as if for `signed_path`, at `ts`.
fn signed_for(signed_path: &str, ts: &str, body: &[u8]) -> String {
    signature::sign(&cred(), "POST", signed_path, Some(CT), ts, body)
}

#[actix_web::test]
async fn a_path_prefix_refusal_names_the_setting_to_operators_only() {
    let app = spawn_app().await;
    let body = ice("prefix-1", "+15550001");
    let ts = now();
    let auth = signed_for("/gw/sinch/callback", &ts, &body);
    let res = app
        .post_raw(
            "/sinch/callback",
            &body,
            &[
                ("authorization", &auth),
                ("x-timestamp", &ts),
                ("content-type", CT),
                ("x-forwarded-prefix", "/gw"),
            ],
        )
        .await;
    let reference = res.assert_envelope(401, 40102);
    // The requester gets the plain catalog answer: no explanation, no secret, no signature.
    let answer = String::from_utf8_lossy(&res.body).into_owned();
    let correct = signed_for("/sinch/callback", &ts, &body);
    for leak in [
        "/gw",
        "SVAMLGATE_PUBLIC_PATH_PREFIX",
        SECRET,
        auth.rsplit(':').next().unwrap(),
        correct.rsplit(':').next().unwrap(),
    ] {
        assert!(!answer.contains(leak), "{leak} in {answer}");
    }
    // The record, the admin API and the metrics label have it.
    let err = app.wait_error(&reference).await;
    let e = &err["refusal"]["explanation"];
    assert_eq!(e["cause"], "path_prefix", "{err}");
    let line = format!(
        "{}: {}",
        e["message"].as_str().unwrap(),
        e["fix"].as_str().unwrap()
    );
    assert!(
        line.contains(
            "matches if the path is `/gw/sinch/callback`: set SVAMLGATE_PUBLIC_PATH_PREFIX=/gw"
        ),
        "{line}"
    );
    let stored = err.to_string();
    assert!(!stored.contains(SECRET) && !stored.contains(correct.rsplit(':').next().unwrap()));
    let list = app.admin_get("/admin/refusals?cause=path_prefix").await;
    assert_eq!(list.status, 200);
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["reference"], reference.as_str());
    let metrics = app.get("/metrics", None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("svamlgate_signature_explanations_total{cause=\"path_prefix\"} 1"),
        "{text}"
    );
}

/// The authorization sent, extra headers, the cause expected, a text the explanation holds.
type Variant = (
    String,
    Vec<(&'static str, String)>,
    &'static str,
    &'static str,
);

#[actix_web::test]
async fn each_variant_gets_its_named_explanation_end_to_end() {
    // Eight refusals of one reason from one peer: all recorded one by one.
    let app = spawn_app_with(|c| c.verification.refusals_per_window = 20).await;
    let body = ice("variants-1", "+15550002");
    let ts = now();
    let other = AppCredential::new(KEY, "JViE5vDor0Sw3WllZka15Q==").unwrap();
    let undecoded = AppCredential::new(
        KEY,
        &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, SECRET),
    )
    .unwrap();
    let cases: Vec<Variant> = vec![
        (
            signed_for("/sinch/callback/", &ts, &body),
            vec![],
            "trailing_slash",
            "`/sinch/callback/`",
        ),
        (
            signed_for("/sinch/callback?tenant=7", &ts, &body),
            vec![],
            "query_string",
            "remove the query string",
        ),
        (
            signature::sign(
                &cred(),
                "POST",
                "/sinch/callback",
                Some("application/json"),
                &ts,
                &body,
            ),
            vec![],
            "content_type",
            "matches if content-type is `application/json`",
        ),
        (
            signed_for("/gw/sinch/callback", &ts, &body),
            vec![("x-original-uri", "/gw/sinch/callback".to_owned())],
            "path_prefix",
            "SVAMLGATE_PUBLIC_PATH_PREFIX=/gw",
        ),
        (
            signed_for("/gw/sinch/callback", &ts, &body),
            vec![("x-forwarded-uri", "/gw/sinch/callback".to_owned())],
            "path_prefix",
            "X-Forwarded-Uri",
        ),
        (
            signature::sign(&undecoded, "POST", "/sinch/callback", Some(CT), &ts, &body),
            vec![],
            "secret_not_decoded",
            "without base64-decoding",
        ),
        (
            signature::sign(&other, "POST", "/sinch/callback", Some(CT), &ts, &body),
            vec![],
            "unexplained",
            "Certainly right: the key",
        ),
    ];
    for (auth, extra, cause, needle) in cases {
        let path = if cause == "query_string" {
            "/sinch/callback?tenant=7"
        } else {
            "/sinch/callback"
        };
        let mut h: Vec<(&str, &str)> = vec![
            ("authorization", &auth),
            ("x-timestamp", &ts),
            ("content-type", CT),
        ];
        for (k, v) in &extra {
            h.push((k, v));
        }
        let res = app.post_raw(path, &body, &h).await;
        let reference = res.assert_envelope(401, 40102);
        let err = app.wait_error(&reference).await;
        let e = &err["refusal"]["explanation"];
        assert_eq!(e["cause"], cause, "{err}");
        let text = e.to_string();
        assert!(text.contains(needle), "{cause}: {text}");
    }
    // A stale but correctly signed request: the clock difference.
    let old =
        signature::format_timestamp(time::OffsetDateTime::now_utc() - time::Duration::seconds(412));
    let auth = signed_for("/sinch/callback", &old, &body);
    let res = app
        .post_raw(
            "/sinch/callback",
            &body,
            &[
                ("authorization", &auth),
                ("x-timestamp", &old),
                ("content-type", CT),
            ],
        )
        .await;
    let reference = res.assert_envelope(401, 40105);
    let err = app.wait_error(&reference).await;
    let e = &err["refusal"]["explanation"];
    assert_eq!(e["cause"], "clock_skew", "{err}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(" s behind this host's clock"),
        "{err}"
    );
}

#[actix_web::test]
async fn report_mode_answers_a_mis_signed_callback_and_still_refuses_a_stale_replay() {
    let app = spawn_app_with(|c| c.verification.signature_mode = SignatureMode::Report).await;
    let body = ice("report-1", "+15550003");
    let ts = now();
    let auth = signed_for("/gw/sinch/callback", &ts, &body);
    let headers = [
        ("authorization", auth.as_str()),
        ("x-timestamp", ts.as_str()),
        ("content-type", CT),
        ("x-forwarded-prefix", "/gw"),
    ];
    let res = app.post_raw("/sinch/callback", &body, &headers).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert!(res.json()["action"].is_object(), "an SVAML reply");
    let row = sqlx::query("SELECT id, signature FROM callbacks WHERE callid = 'report-1'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("signature"), "reported");
    let id: uuid::Uuid = row.get("id");
    let refusal = sqlx::query(
        "SELECT r.answered, r.cause, r.explanation->>'message' AS message FROM refusals r \
         JOIN errors e ON e.reference = r.reference WHERE e.callback_id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(refusal.get::<bool, _>("answered"));
    assert_eq!(refusal.get::<String, _>("cause"), "path_prefix");
    assert!(refusal
        .get::<String, _>("message")
        .contains("/gw/sinch/callback"));
    let ready = app.get("/readyz", None).await.json();
    assert_eq!(ready["checks"]["signature"]["mode"], "report", "{ready}");
    assert_eq!(
        ready["checks"]["signature"]["reportedFailures"], 1,
        "{ready}"
    );
    assert!(ready["checks"]["signature"]["lastReported"]["explanation"]
        .as_str()
        .unwrap()
        .contains("SVAMLGATE_PUBLIC_PATH_PREFIX=/gw"));

    // A byte-identical replay is answered from the dedup index, not processed again.
    let again = app.post_raw("/sinch/callback", &body, &headers).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, res.body);
    let dup: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM callbacks WHERE callid = 'report-1' AND reply_source = 'duplicate'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(dup, 1);

    // Freshness still applies: a stale request is refused whatever its signature.
    let stale =
        signature::format_timestamp(time::OffsetDateTime::now_utc() - time::Duration::minutes(10));
    for auth in [
        signed_for("/sinch/callback", &stale, &body),
        signed_for("/gw/sinch/callback", &stale, &body),
    ] {
        let res = app
            .post_raw(
                "/sinch/callback",
                &body,
                &[
                    ("authorization", &auth),
                    ("x-timestamp", &stale),
                    ("content-type", CT),
                ],
            )
            .await;
        res.assert_envelope(401, 40105);
    }
}

#[actix_web::test]
async fn per_key_report_mode_leaves_other_keys_enforced() {
    let other_key = "other-app";
    let other_secret = "bXkta2V5LXNlY3JldA==";
    let app = spawn_app_with(|c| {
        c.applications = Some(svamlgate::config::Secret::new(format!(
            "{other_key}:{other_secret}"
        )));
        c.verification.signature_mode_keys = Some(format!("{other_key}:report"));
    })
    .await;
    let body = ice("perkey-1", "+15550004");
    let ts = now();
    let other = AppCredential::new(other_key, other_secret).unwrap();
    let auth = signature::sign(&other, "POST", "/elsewhere", Some(CT), &ts, &body);
    let h = [
        ("authorization", auth.as_str()),
        ("x-timestamp", ts.as_str()),
        ("content-type", CT),
    ];
    assert_eq!(app.post_raw("/sinch/callback", &body, &h).await.status, 200);
    let auth = signed_for("/elsewhere", &ts, &body);
    let h = [
        ("authorization", auth.as_str()),
        ("x-timestamp", ts.as_str()),
        ("content-type", CT),
    ];
    app.post_raw("/sinch/callback", &body, &h)
        .await
        .assert_envelope(401, 40102);
}

#[actix_web::test]
async fn report_mode_warns_at_start() {
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
        .env("SVAMLGATE_SIGNATURE_MODE", "report")
        .env("SVAMLGATE_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = run_then_stop(&mut child, port, |base| async move {
        // A mis-signed callback, answered; its explanation is logged; nothing secret is.
        let body = fixture("sinch/ice-node-sdk-1.json");
        let ts = now();
        let auth = signed_for("/gw/sinch/callback", &ts, &body);
        let res = awc::Client::default()
            .post(format!("{base}/sinch/callback"))
            .insert_header(("authorization", auth.clone()))
            .insert_header(("x-timestamp", ts.clone()))
            .insert_header(("content-type", CT))
            .insert_header(("x-forwarded-prefix", "/gw"))
            .send_body(body.clone())
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        vec![
            auth.rsplit(':').next().unwrap().to_owned(),
            signed_for("/sinch/callback", &ts, &body)
                .rsplit(':')
                .next()
                .unwrap()
                .to_owned(),
        ]
    })
    .await;
    let (stderr, signatures) = stderr;
    assert!(
        stderr.contains("SVAMLGATE_SIGNATURE_MODE=report"),
        "{stderr}"
    );
    assert!(stderr.contains("answered anyway (report mode)"), "{stderr}");
    assert!(
        stderr.contains("set SVAMLGATE_PUBLIC_PATH_PREFIX=/gw"),
        "{stderr}"
    );
    for secret in [SECRET, ADMIN_TOKEN, &signatures[0], &signatures[1]] {
        assert!(
            !stderr.contains(secret),
            "a secret or signature reached the logs"
        );
    }
}

/// Waits for the service on `port`, runs `f`, stops the service with SIGTERM; returns its stderr
/// and what `f` returned.
async fn run_then_stop<F, Fut, T>(child: &mut std::process::Child, port: u16, f: F) -> (String, T)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let base = format!("http://127.0.0.1:{port}");
    crate::helpers::wait_serving(&base, Duration::from_secs(10)).await;
    let out = f(base).await;
    // SAFETY: the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success());
    (stderr, out)
}

/// Sends `n` unsigned POSTs of `size` bytes over one keep-alive-less connection each, raw.
async fn unsigned_post(addr: &str, size: usize) -> u16 {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let head = format!(
        "POST /sinch/callback HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         authorization: application not-a-key:AAAA\r\nx-timestamp: {}\r\ncontent-length: {size}\r\n\
         connection: close\r\n\r\n",
        now()
    );
    if s.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    // The body goes out whatever the server does with it (it may answer first and close).
    let _ = s.write_all(&vec![b'x'; size]).await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    std::str::from_utf8(&buf)
        .ok()
        .and_then(|t| t.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn a_refusal_flood_is_bounded_and_legitimate_callbacks_keep_answering() {
    let app = spawn_app_with(|c| c.workers = Some(2)).await;
    let addr = app.addr.clone();
    // Baseline latency of legitimate callbacks.
    let mut baseline = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        let r = app
            .send_signed_at(&ice(&format!("base-{i}"), "+15550005"), &now())
            .await;
        assert_eq!(r.status, 200);
        baseline.push(t.elapsed());
    }
    app.settle().await;
    let journal_before = app.state.recorder.journal().bytes();
    // 16 connections, each sending unsigned 30 KB POSTs with an unknown key back to back.
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for _ in 0..16 {
        let (addr, sent, refused, stop) =
            (addr.clone(), sent.clone(), refused.clone(), stop.clone());
        flooders.push(actix_web::rt::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let status = unsigned_post(&addr, 30_000).await;
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if status == 401 {
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    // Legitimate callbacks meanwhile.
    let during = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let r = app
            .send_signed_at(&ice(&format!("during-{i}"), "+15550005"), &now())
            .await;
        assert_eq!(r.status, 200, "a legitimate callback during the flood");
        during.lock().unwrap().push(t.elapsed());
        i += 1;
        // Pacing, not waiting: legitimate callbacks every 20 ms for the flood's 4 s.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in flooders {
        let _ = f.await;
    }
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    let refused = refused.load(std::sync::atomic::Ordering::Relaxed);
    let counted = app.state.metrics.counter(
        "svamlgate_signature_refusals_total",
        &[("reason", "unknown_key")],
    );
    assert!(
        counted > 100,
        "the flood ran: {counted} refused ({refused} 401s read of {sent} sent)"
    );
    app.settle().await;
    let journal_growth = app
        .state
        .recorder
        .journal()
        .bytes()
        .saturating_sub(journal_before);
    // Close the window: the summary row is recorded at shutdown.
    app.stop().await;
    // A pool of its own: the app's may hold connections opened on its stopped workers' runtimes.
    let pool = &svamlgate::db::pool_for(&app.db_url, 1).await.unwrap();
    let rows = sqlx::query(
        "SELECT count(*) AS n, count(*) FILTER (WHERE summary_count IS NOT NULL) AS summaries, \
         coalesce(sum(summary_count), 0)::bigint AS summarized, \
         coalesce(sum(pg_column_size(refusals.*)), 0)::bigint AS bytes, \
         count(*) FILTER (WHERE body_sha256 = '' AND body_bytes = 30000) AS unread, \
         count(*) FILTER (WHERE cause = 'unknown_key' \
           AND explanation->>'message' LIKE '%not configured here (configured: `669E367E%') AS explained \
         FROM refusals WHERE reason = 'unknown_key'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let (n, summaries, summarized, bytes, unread): (i64, i64, i64, i64, i64) = (
        rows.get("n"),
        rows.get("summaries"),
        rows.get("summarized"),
        rows.get("bytes"),
        rows.get("unread"),
    );
    let mut base = baseline.clone();
    base.sort();
    let mut dur = during.lock().unwrap().clone();
    dur.sort();
    eprintln!(
        "flood: {sent} unsigned 30 KB POSTs ({counted} refused, {refused} 401s read) in 4 s; refusals rows {n} \
         ({summaries} summary for {summarized}), {bytes} bytes in refusals; journal +{journal_growth} \
         bytes (with {} legitimate callbacks); legitimate p50 {:?} before, {:?} during, max during {:?}",
        dur.len(),
        base[base.len() / 2],
        dur[dur.len() / 2],
        dur.last().unwrap()
    );
    // One window: 5 recorded one by one, one summary counting the rest.
    assert_eq!(n, 6, "rows");
    assert_eq!(summaries, 1);
    assert_eq!(summarized as u64 + 5, counted);
    assert_eq!(unread, n, "bodies are never read");
    let explained: i64 = rows.get("explained");
    assert_eq!(explained, 5, "the ones recorded one by one are explained");
    assert!(bytes < 64 * 1024, "{bytes} bytes of refusals");
    // Legitimate callbacks stayed far inside their deadline.
    assert!(
        dur[dur.len() / 2] < Duration::from_millis(250),
        "p50 during the flood {:?}",
        dur[dur.len() / 2]
    );
}

/// A TCP proxy on `listener` that rewrites the request line's path `from` into `to` and forwards to
/// the address in `target` (changeable while it runs).
fn rewriting_proxy(
    listener: std::net::TcpListener,
    target: Arc<Mutex<String>>,
    from: &'static str,
    to: &'static str,
) {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    actix_web::rt::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let target = target.lock().unwrap().clone();
            actix_web::rt::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).replacen(from, to, 1);
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                if upstream.write_all(text.as_bytes()).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
}

#[actix_web::test]
async fn the_canary_through_a_path_rewriting_proxy_fails_with_the_path_and_recovers() {
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let public = format!(
        "http://127.0.0.1:{}/gw/sinch/callback",
        proxy.local_addr().unwrap().port()
    );
    let target = Arc::new(Mutex::new(String::new()));
    rewriting_proxy(
        proxy,
        target.clone(),
        "POST /gw/sinch/callback ",
        "POST /sinch/callback ",
    );
    let public_for_app = public.clone();
    let app = spawn_app_with(move |c| c.verification.public_url = Some(public_for_app)).await;
    *target.lock().unwrap() = app.addr.clone();

    let run = svamlgate::canary::run_once(&app.state).await;
    assert!(!run.ok, "{run:?}");
    assert_eq!(run.failed_stage.as_deref(), Some("signature"), "{run:?}");
    let explanation = run.explanation.clone().unwrap_or_default();
    assert!(
        explanation.contains("matches if the path is `/gw/sinch/callback`")
            && explanation.contains("set SVAMLGATE_PUBLIC_PATH_PREFIX=/gw"),
        "{explanation}"
    );
    assert!(run.dns_ms.is_some() && run.connect_ms.is_some() && run.answer_ms.is_some());
    assert!(app
        .state
        .verification
        .canary
        .alert()
        .is_some_and(|a| a.contains("SVAMLGATE_PUBLIC_PATH_PREFIX=/gw")));
    let ready = app.get("/readyz", None).await.json();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(
        ready["checks"]["canary"]["failedStage"], "signature",
        "{ready}"
    );
    let db = app.db_url.clone();
    app.stop().await;

    // The operator sets the prefix: the canary passes, and is recorded and counted apart.
    let public_for_app = public.clone();
    let app = spawn_app_on(db, move |c| {
        c.verification.public_url = Some(public_for_app);
        c.public_path_prefix = Some("/gw".to_owned());
    })
    .await;
    *target.lock().unwrap() = app.addr.clone();
    let run = svamlgate::canary::run_once(&app.state).await;
    assert!(run.ok, "{run:?}");
    assert_eq!(run.status, Some(200));
    assert!(app.state.verification.canary.alert().is_none());
    let ready = app.get("/readyz", None).await.json();
    assert_eq!(ready["checks"]["canary"]["ok"], true, "{ready}");
    // Recorded apart: the canary_callbacks view (records reach PostgreSQL a moment later).
    let canaries: i64 = crate::helpers::wait_for(Duration::from_secs(10), async || {
        app.settle().await;
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM canary_callbacks WHERE http_status = 200")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if n > 0 {
            Ok(n)
        } else {
            Err("the canary's callback never reached canary_callbacks")
        }
    })
    .await;
    assert_eq!(canaries, 1);
    let metrics = String::from_utf8_lossy(&app.get("/metrics", None).await.body).into_owned();
    assert!(
        metrics.contains("svamlgate_canary_callbacks_total{event=\"ice\""),
        "{metrics}"
    );
    assert!(
        !metrics.contains("svamlgate_callbacks_total{event=\"ice\""),
        "counted apart"
    );
    assert!(metrics.contains("svamlgate_canary_up 1"), "{metrics}");
    assert_eq!(
        app.state.calls.len(),
        0,
        "the canary is never a call in progress"
    );
}

fn doctor() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_svamlgate"));
    for v in [
        "SINCH_APPLICATION_KEY",
        "SINCH_APPLICATION_SECRET",
        "SINCH_APPLICATIONS",
        "DATABASE_URL",
        "SVAMLGATE_ADMIN_TOKEN",
        "SVAMLGATE_DATA_DIR",
        "SVAMLGATE_PUBLIC_URL",
    ] {
        c.env_remove(v);
    }
    c.arg("doctor");
    c
}

fn line<'a>(out: &'a str, level: &str, check: &str) -> Option<&'a str> {
    out.lines()
        .find(|l| l.starts_with(level) && l.split_whitespace().nth(1) == Some(check))
}

#[actix_web::test]
async fn doctor_passes_a_good_configuration_and_fails_on_planted_faults() {
    let db = fresh_database().await;
    let data = crate::helpers::base_config().db.data_dir;
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let good = |c: &mut Command| {
        c.env("DATABASE_URL", &db)
            .env("SVAMLGATE_DATA_DIR", &data)
            .env("SVAMLGATE_LISTEN", listen.to_string())
            .env("SINCH_APPLICATION_KEY", KEY)
            .env("SINCH_APPLICATION_SECRET", SECRET)
            .env(
                "SVAMLGATE_ADMIN_TOKEN",
                "3f9c1a7e5b2d4c6e8a0b1c2d3e4f5a6b7c8d9e0f",
            );
    };
    let mut c = doctor();
    good(&mut c);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for check in ["keys", "admin", "database", "journal", "clock", "listen"] {
        assert!(line(&text, "ok", check).is_some(), "{check}: {text}");
    }

    // A secret that is not base64.
    let mut c = doctor();
    good(&mut c);
    c.env("SINCH_APPLICATION_SECRET", "app-secret");
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let l = line(&text, "error", "keys").unwrap_or_else(|| panic!("{text}"));
    assert!(
        l.contains("not valid base64") && !l.contains("app-secret"),
        "{l}"
    );

    // A journal directory that cannot be written (a file stands where the data directory goes).
    let file = std::env::temp_dir().join(format!("svamlgate-doctor-{}", uuid::Uuid::new_v4()));
    std::fs::write(&file, b"x").unwrap();
    let mut c = doctor();
    good(&mut c);
    c.env("SVAMLGATE_DATA_DIR", &file);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(line(&text, "error", "journal").is_some(), "{text}");
    std::fs::remove_file(&file).unwrap();

    // A database URL that refuses connections.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = doctor();
    good(&mut c);
    c.env(
        "DATABASE_URL",
        format!("postgres://svamlgate:x@127.0.0.1:{closed}/postgres"),
    );
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let l = line(&text, "error", "database").unwrap_or_else(|| panic!("{text}"));
    assert!(l.contains("cannot connect"), "{l}");
    assert!(!text.contains(SECRET));

    // The listen address in use.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = doctor();
    good(&mut c);
    c.env("SVAMLGATE_LISTEN", held.local_addr().unwrap().to_string());
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(line(&String::from_utf8_lossy(&out.stdout), "error", "listen").is_some());
}

/// A stand-in for Sinch's Calling API that checks the signature of a GET with the test key and
/// secret: 404 (unknown call) when it is right, 401 otherwise.
async fn sinch_checking_signatures() -> (String, actix_web::dev::ServerHandle) {
    async fn handle(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let expected = signature::sign(
            &cred(),
            "GET",
            req.path(),
            None,
            &header("x-timestamp"),
            b"",
        );
        if header("authorization") == expected {
            actix_web::HttpResponse::NotFound().finish()
        } else {
            actix_web::HttpResponse::Unauthorized().finish()
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().default_service(actix_web::web::to(handle))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (url, handle)
}

#[actix_web::test]
async fn doctor_online_names_the_key_sinch_refuses() {
    let (url, server) = sinch_checking_signatures().await;
    let mut config = crate::helpers::base_config();
    config.sinch_api.sinch_api_base_url = url;
    let sinch = |checks: Vec<svamlgate::doctor::Check>| {
        checks
            .into_iter()
            .find(|c| c.check == "sinch")
            .expect("the sinch check ran")
    };
    let ok = sinch(svamlgate::doctor::run(&config, true).await);
    assert_eq!(ok.level, svamlgate::doctor::Level::Ok, "{}", ok.message);
    config.application_secret = Some(svamlgate::config::Secret::new("JViE5vDor0Sw3WllZka15Q=="));
    let refused = sinch(svamlgate::doctor::run(&config, true).await);
    assert_eq!(refused.level, svamlgate::doctor::Level::Error);
    assert!(
        refused.message.contains(KEY) && refused.message.contains("401"),
        "{}",
        refused.message
    );
    assert!(!refused.message.contains("JViE5vDor0Sw3WllZka15Q=="));
    // Offline, Sinch is not asked.
    assert!(svamlgate::doctor::run(&config, false)
        .await
        .iter()
        .all(|c| c.check != "sinch"));
    server.stop(false).await;
}

#[actix_web::test]
async fn canary_failures_name_their_stage() {
    // Nothing listens: the connect stage.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = spawn_app_with(move |c| {
        c.verification.public_url = Some(format!("http://{closed}/sinch/callback"));
    })
    .await;
    let run = svamlgate::canary::run_once(&app.state).await;
    assert_eq!(run.failed_stage.as_deref(), Some("connect"), "{run:?}");
    assert!(run.dns_ms.is_some() && run.connect_ms.is_none());
    assert_eq!(run.consecutive_failures, 1);
    let run = svamlgate::canary::run_once(&app.state).await;
    assert_eq!(run.consecutive_failures, 2);
    app.stop().await;

    // Answered correctly but slower than the threshold: an alert too.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let public = format!("http://{}/sinch/callback", proxy.local_addr().unwrap());
    let target = Arc::new(Mutex::new(String::new()));
    rewriting_proxy(
        proxy,
        target.clone(),
        "POST /sinch/callback ",
        "POST /sinch/callback ",
    );
    let app = spawn_app_with(move |c| {
        c.verification.public_url = Some(public);
        c.verification.canary_slow_ms = 0;
    })
    .await;
    *target.lock().unwrap() = app.addr.clone();
    let run = svamlgate::canary::run_once(&app.state).await;
    assert_eq!(run.status, Some(200), "{run:?}");
    assert_eq!(run.failed_stage.as_deref(), Some("slow"), "{run:?}");
    assert!(app
        .state
        .verification
        .canary
        .alert()
        .is_some_and(|a| a.contains("SVAMLGATE_CANARY_SLOW_MS")));
    let metrics = String::from_utf8_lossy(&app.get("/metrics", None).await.body).into_owned();
    assert!(metrics.contains("svamlgate_canary_up 0"), "{metrics}");
    assert!(
        metrics.contains("svamlgate_canary_runs_total{result=\"slow\"} 1"),
        "{metrics}"
    );
}
