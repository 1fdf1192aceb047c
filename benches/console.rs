//! Server time of every console page with a million callbacks in PostgreSQL.
//!
//! Loads `CALLBACKS` callbacks (default 1,000,000) spread over the last `DAYS` days (default 7)
//! into a fresh database (a throwaway cluster, or the server of DATABASE_URL): ICE, ACE, PIE,
//! DICE and Notify bodies with numbers, about 3% fallbacks with their refused replies and error
//! rows, gate warnings, Sinch rejections and signature refusals. Then starts svamlgate on it,
//! logs in to the console and requests each page `ROUNDS` times (default 20), printing p50 and
//! max of the server time (the `Server-Timing` header the console sets) and of the round trip.
//! No harness: `cargo bench --bench console` (`CALLBACKS=100000 cargo bench --bench console` for
//! a quick run).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use svamlgate::config::{Secret, ServeArgs};
use svamlgate::db::store::Store;
use svamlgate::db::{cluster::Cluster, pool_for, Database};
use svamlgate::svaml::Validator;

const TOKEN: &str = "bench-admin-token";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The two replies the loaded callbacks point at (`replies`, migration 0015), each stored once
/// under the digest of its text as the shipper stores it (`db::documents::id_of`).
const REPLIES: [&str; 2] = [
    r#"{"instructions":[{"name":"say","text":"Sorry, try again later.","locale":"en-US"}],"action":{"name":"hangup"}}"#,
    r#"{"instructions":[],"action":{"name":"connectPstn","number":"+46700000000","cli":"+46700000001"}}"#,
];

/// The three gate reports the loaded callbacks point at (`reports`, migration 0019), stored the
/// same way: the fallback's (invalid), a pass with a warning, a clean pass.
const REPORTS: [&str; 3] = [
    r#"{"valid":false,"target":"ice","errorCount":1,"warningCount":0,"violations":[{"severity":"error","pointer":"/action/number","code":"schema:pattern","message":"not E.164","source":"https://developers.sinch.com/docs/voice/api-reference/svaml/actions"}]}"#,
    r#"{"valid":true,"target":"ice","errorCount":0,"warningCount":1,"violations":[{"severity":"warning","pointer":"/action/locale","code":"SVAML012","message":"locale","source":"svamlgate"}]}"#,
    r#"{"valid":true,"target":"ice","errorCount":0,"warningCount":0,"violations":[]}"#,
];

/// Inserts callbacks `from..to` (of `total`, spread over `days`) in one statement, pointing at the
/// two [`REPLIES`] by their ids (`$5` the fallback's, `$6` the upstream reply's) and at the three
/// [`REPORTS`] (`$7`, `$8`, `$9`).
const LOAD: &str = r#"
INSERT INTO callbacks (id, reference, received_at, event_type, event_known, callid, application_key,
    raw_body, body_json, called, caller, signature, dedup_key, http_status, reply_id, reply_source, fallback_reason, validation_id,
    latency_us, remote_addr, path, gate_verdict, rejected_by_sinch, flow_id, flow_version, flow_node)
SELECT
    gen_random_uuid(),
    'bench-' || i,
    now() - make_interval(secs => (($3::bigint - i)::double precision / $3::bigint) * $4::double precision * 86400),
    ev,
    true,
    'call-' || (i / 4),
    'bench-key',
    convert_to(b::text, 'UTF8'),
    true,
    CASE WHEN ev = 'ice' THEN b->'to'->>'endpoint' END,
    CASE WHEN ev = 'ice' THEN b->>'cli' END,
    'verified',
    md5(i::text),
    200,
    CASE WHEN ev IN ('ice', 'ace', 'pie') THEN
        CASE WHEN fb THEN $5::uuid ELSE $6::uuid END
    END,
    CASE WHEN ev IN ('ice', 'ace', 'pie') THEN CASE WHEN fb THEN 'fallback' ELSE 'upstream' END ELSE 'none' END,
    CASE WHEN fb AND ev IN ('ice', 'ace', 'pie') THEN 'invalid' END,
    CASE WHEN ev IN ('ice', 'ace', 'pie') THEN
        CASE WHEN fb THEN $7::uuid WHEN i % 10 = 0 THEN $8::uuid ELSE $9::uuid END
    END,
    200 + (i % 900),
    '10.0.0.1:5000',
    '/sinch/callback',
    CASE WHEN ev IN ('ice', 'ace', 'pie') THEN CASE WHEN fb THEN 'rejected' ELSE 'passed' END END,
    CASE WHEN ev = 'ice' AND i % 5000 = 0 THEN '{"kind":"callingerror","errorCode":40001,"message":"Illegal SVAML"}'::jsonb END,
    NULL, NULL, NULL
FROM (
    SELECT i,
           (ARRAY['ice','ace','pie','dice'])[(i % 4) + 1] AS ev,
           (i % 33 = 1) AS fb,
           CASE (i % 4)
             WHEN 0 THEN jsonb_build_object('event','ice','callid','call-' || (i / 4),'version',1,
                  'cli', (46708000000 + (i / 4) % 100000)::text,
                  'to', jsonb_build_object('type','did','endpoint','+4670000' || lpad(((i / 4) % 1000)::text, 4, '0')),
                  'domain','pstn','originationType','PSTN','custom','order ' || i)
             WHEN 1 THEN jsonb_build_object('event','ace','callid','call-' || (i / 4),'version',1)
             WHEN 2 THEN jsonb_build_object('event','pie','callid','call-' || (i / 4),'version',1,
                  'menuResult', jsonb_build_object('menuId','main','type','sequence','value','1','inputMethod','dtmf'))
             ELSE jsonb_build_object('event','dice','callid','call-' || (i / 4),'version',1,'reason','MANAGERHANGUP','result','ANSWERED')
           END AS b
    FROM generate_series($1::bigint, $2::bigint - 1) AS i
) s
"#;

const ERRORS: &str = r#"
INSERT INTO errors (reference, occurred_at, error_code, http_status, status, message, method, path, callback_id, detail)
SELECT 'bench-err-' || c.reference, c.received_at, 42202, 422, '422 InvalidCallbackResponse',
       'The reply was invalid, the fallback was sent', 'POST', '/sinch/callback', c.id, c.validation
FROM callbacks c WHERE c.fallback_reason IS NOT NULL AND c.received_at >= $1 AND c.received_at < $2;
INSERT INTO rejected_replies (id, callback_id, reference, created_at, event_type, source, reply, report)
SELECT gen_random_uuid(), c.id, 'bench-err-' || c.reference, c.received_at, c.event_type, 'upstream',
       '{"action":{"name":"connectPstn","number":"not a number"}}'::jsonb, c.validation
FROM callbacks c WHERE c.fallback_reason IS NOT NULL AND c.received_at >= $1 AND c.received_at < $2;
"#;

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run())
}

async fn run() -> anyhow::Result<()> {
    let total = env_or("CALLBACKS", 1_000_000);
    let days = env_or("DAYS", 7);
    let rounds = env_or("ROUNDS", 20) as usize;

    let (url, _cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let cluster = Cluster::start_temporary(None).await?;
            (cluster.url().to_owned(), Some(cluster))
        }
    };
    let pool = pool_for(&url, 4).await?;
    let db = Database::from_pool(pool.clone());
    let name = format!("bench_console_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await?;
    drop(db);
    // The query (the embedded cluster's `?host=` socket directory, a path) is kept as it is.
    let (base, q) = url.split_at(url.find('?').unwrap_or(url.len()));
    let db_url = match base.rfind('/') {
        Some(i) if base[..i].contains('@') => format!("{}/{name}{q}", &base[..i]),
        _ => format!("{base}/{name}{q}"),
    };
    let pool = pool_for(&db_url, 8).await?;
    Database::from_pool(pool.clone()).migrate().await?;

    eprintln!("loading {total} callbacks over {days} days …");
    let started = Instant::now();
    let chunk = 100_000u64;
    let mut from = 0;
    let reply_ids = REPLIES.map(svamlgate::db::documents::id_of);
    let report_ids = REPORTS.map(svamlgate::db::documents::id_of);
    for (id, text) in reply_ids.iter().zip(REPLIES) {
        sqlx::query(
            "INSERT INTO replies (id, reply) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(text)
        .execute(&pool)
        .await?;
    }
    for (id, text) in report_ids.iter().zip(REPORTS) {
        sqlx::query(
            "INSERT INTO reports (id, report) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(text)
        .execute(&pool)
        .await?;
    }
    while from < total {
        let to = (from + chunk).min(total);
        sqlx::query(LOAD)
            .bind(from as i64)
            .bind(to as i64)
            .bind(total as i64)
            .bind(days as f64)
            .bind(reply_ids[0])
            .bind(reply_ids[1])
            .bind(report_ids[0])
            .bind(report_ids[1])
            .bind(report_ids[2])
            .execute(&pool)
            .await?;
        from = to;
    }
    // The console's counts of the rows loaded (the shipper adds them batch by batch; this load
    // bypasses it).
    sqlx::query("SELECT console_count_again('-infinity')")
        .execute(&pool)
        .await?;
    let mut tx = pool.begin().await?;
    for stmt in ERRORS.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(sqlx::AssertSqlSafe(stmt.to_owned()))
            .bind(time::OffsetDateTime::UNIX_EPOCH)
            .bind(time::OffsetDateTime::now_utc() + time::Duration::days(1))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    // Signature refusals: an errors row first, then its refusal.
    sqlx::query(
        "INSERT INTO errors (reference, occurred_at, error_code, http_status, status, message) \
         SELECT 'bench-ref-' || i, now() - make_interval(secs => i * 60), 40102, 401, '401 InvalidSignature', \
         'Invalid signature' FROM generate_series(1, 5000) i",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO refusals (reference, received_at, reason, error_code, method, path, headers, body_sha256, body_bytes) \
         SELECT 'bench-ref-' || i, now() - make_interval(secs => i * 60), 'signature_mismatch', 40102, 'POST', \
         '/sinch/callback', '{}'::jsonb, md5(i::text), 100 FROM generate_series(1, 5000) i",
    )
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM callbacks")
        .fetch_one(&pool)
        .await?;
    eprintln!(
        "loaded {rows} callbacks in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut config = ServeArgs::for_tests();
    config.admin_token = Some(Secret::new(TOKEN));
    config.workers = Some(1);
    config.db.data_dir =
        std::env::temp_dir().join(format!("svamlgate-bench-console-{}", std::process::id()));
    let validator = Arc::new(Validator::new()?);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let app =
        svamlgate::http::build(config, Store::new(pool.clone()), validator, None, listener).await?;
    let addr = app.addr;
    let handle = app.server.handle();
    tokio::task::spawn_local(app.server);

    let client = awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(30))
        .finish();
    let base = format!("http://{addr}");
    // Log in.
    let mut form = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let body = String::from_utf8_lossy(&form.body().await?).into_owned();
    let login_cookie = form
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let res = client
        .post(format!("{base}/console/login"))
        .insert_header(("cookie", login_cookie))
        .send_form(&[("token", TOKEN), ("csrf", csrf.as_str())])
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let session = res
        .headers()
        .get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("svamlgate_console="))
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("login failed: {}", res.status()))?
        .to_owned();

    let refused: String = sqlx::query_scalar(
        "SELECT callid FROM callbacks WHERE fallback_reason IS NOT NULL ORDER BY received_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    let reference: String =
        sqlx::query_scalar("SELECT reference FROM errors ORDER BY occurred_at DESC LIMIT 1")
            .fetch_one(&pool)
            .await?;
    if std::env::var_os("EXPLAIN").is_some() {
        // The plans of one spelling of a number in the call search (EXPLAIN=1).
        for (what, sql) in [
            ("called", "EXPLAIN ANALYZE SELECT reference FROM callbacks WHERE true AND event_type = 'ice' AND called = '+46700000123' ORDER BY received_at DESC LIMIT 50"),
            ("caller", "EXPLAIN ANALYZE SELECT reference FROM callbacks WHERE true AND event_type = 'ice' AND caller = '46708012345' ORDER BY received_at DESC LIMIT 50"),
        ] {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_all(&pool)
                .await?;
            println!("{what}:\n{}", rows.join("\n"));
        }
    }
    let pages = [
        "/console".to_owned(),
        "/console?window=day".to_owned(),
        "/console/calls".to_owned(),
        format!("/console/calls?callid={refused}"),
        "/console/calls?called=%2B46700000123".to_owned(),
        "/console/calls?caller=46708012345".to_owned(),
        "/console/calls?outcome=fallback".to_owned(),
        "/console/calls?outcome=sinch_rejected".to_owned(),
        "/console/calls?outcome=rejected&called=%2B46700000123".to_owned(),
        format!("/console/calls/{refused}"),
        "/console/errors".to_owned(),
        format!("/console/errors?reference={reference}"),
        "/console/errors?code=42202".to_owned(),
        "/console/gate".to_owned(),
        "/console/gate?window=day".to_owned(),
        "/console/flows".to_owned(),
    ];
    println!("console pages, {rows} callbacks, {rounds} rounds each (server time from Server-Timing; round trip)");
    println!(
        "{:<58} {:>10} {:>10} {:>10}",
        "page", "p50 ms", "max ms", "rtt p50"
    );
    let mut worst: f64 = 0.0;
    for page in &pages {
        let (mut server, mut rtt) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            let mut res = client
                .get(format!("{base}{page}"))
                .insert_header(("cookie", session.clone()))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let _ = res.body().limit(16 << 20).await?;
            rtt.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(res.status() == 200, "{page}: {}", res.status());
            let ms = res
                .headers()
                .get("server-timing")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("app;dur="))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN);
            server.push(ms);
        }
        let p50 = pct(server.clone(), 0.5);
        worst = worst.max(p50);
        println!(
            "{:<58} {:>10.2} {:>10.2} {:>10.2}",
            page,
            p50,
            pct(server, 1.0),
            pct(rtt, 0.5)
        );
    }
    println!("slowest page p50: {worst:.2} ms (budget 100 ms)");
    handle.stop(true).await;
    Ok(())
}
