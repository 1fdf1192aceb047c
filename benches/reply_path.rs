//! Whole reply path over loopback: signed ICE callbacks through HTTP, signature check, parsing,
//! duplicate claim, route + flow decision, gate, and the PostgreSQL record, with N requests in
//! flight. Prints throughput and latency percentiles. Uses `DATABASE_URL` (a superuser URL) or a
//! throwaway cluster from the installed PostgreSQL binaries.
//!
//! `cargo bench --bench reply_path` (defaults: 4,000 requests, 16 in flight; override with
//! `SVAMLGATE_BENCH_REQUESTS` and `SVAMLGATE_BENCH_CONCURRENCY`). Only 127.0.0.1 is contacted, and
//! the run is bounded in count.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;
use svamlgate::app::AppState;
use svamlgate::config::{Secret, ServeArgs};
use svamlgate::db::{cluster::Cluster, pool_for, store::Store, Database};
use svamlgate::signature::{self, AppCredential};
use svamlgate::svaml::Validator;

const KEY: &str = "bench-key";
const SECRET: &str = "YmVuY2gtc2VjcmV0";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let requests = env_usize("SVAMLGATE_BENCH_REQUESTS", 4_000);
    let concurrency = env_usize("SVAMLGATE_BENCH_CONCURRENCY", 16).max(1);

    // Database: a fresh one on DATABASE_URL's server, or a throwaway cluster.
    let mut cluster = None;
    let server_url = match std::env::var("DATABASE_URL") {
        Ok(u) => u,
        Err(_) => {
            let c = Cluster::start_temporary(None).await?;
            let u = c.url().to_owned();
            cluster = Some(c);
            u
        }
    };
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&server_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    let base = server_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or(server_url.clone());
    let url = format!("{base}/{name}");
    let pool = pool_for(&url, 16).await?;
    Database::from_pool(pool.clone()).migrate().await?;

    let mut config = ServeArgs::for_tests();
    config.application_key = Some(KEY.into());
    config.application_secret = Some(Secret::new(SECRET));
    config.admin_token = Some(Secret::new("bench"));
    let state = actix_web::web::Data::new(
        AppState::build(
            config,
            Store::new(pool.clone()),
            Arc::new(Validator::new()?),
        )
        .await?,
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = svamlgate::http::serve(state, listener)?;
    let handle = server.handle();
    actix_web::rt::spawn(server);

    // A flow on a route, so the measured path includes routing, the flow engine and call state.
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let flow: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/flows/ivr.json"))?;
    let mut res = client
        .post(format!("http://{addr}/admin/flows"))
        .insert_header(("authorization", "Bearer bench"))
        .send_json(&flow)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let created: serde_json::Value = res.json().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let flow_id = created["flow"]["id"].as_i64().unwrap_or(1);
    client
        .post(format!("http://{addr}/admin/routes"))
        .insert_header(("authorization", "Bearer bench"))
        .send_json(&json!({"name": "bench", "called": "+15550100", "target": {"kind": "flow", "flowId": flow_id}}))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let cred = Arc::new(AppCredential::new(KEY, SECRET)?);
    let url = Arc::new(format!("http://{addr}/sinch/callback"));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (cred, url) = (cred.clone(), url.clone());
        let share = requests / concurrency + usize::from(worker < requests % concurrency);
        tasks.push(actix_web::rt::spawn(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish();
            let mut latencies = Vec::with_capacity(share);
            let mut failures = 0usize;
            for i in 0..share {
                let body =
                    json!({"event": "ice", "callid": format!("bench-{worker}-{i}"), "version": 1,
                    "timestamp": "2026-11-25T10:00:00Z", "cli": "46708168731",
                    "to": {"type": "did", "endpoint": "+15550100"}, "domain": "pstn"})
                    .to_string();
                let ts = signature::format_timestamp(time::OffsetDateTime::now_utc());
                let ct = "application/json";
                let auth = signature::sign(
                    &cred,
                    "POST",
                    "/sinch/callback",
                    Some(ct),
                    &ts,
                    body.as_bytes(),
                );
                let t = Instant::now();
                let res = client
                    .post(url.as_str())
                    .insert_header(("authorization", auth))
                    .insert_header(("x-timestamp", ts))
                    .insert_header(("content-type", ct))
                    .send_body(body)
                    .await;
                match res {
                    Ok(mut r) if r.status().is_success() => {
                        let _ = r.body().await;
                        latencies.push(t.elapsed());
                    }
                    _ => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let mut all = Vec::with_capacity(requests);
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await?;
        all.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    println!("reply path: {requests} signed ICE callbacks, {concurrency} in flight, flow route, PostgreSQL record");
    println!(
        "  throughput {:.0} req/s   p50 {:.2?}   p90 {:.2?}   p99 {:.2?}   max {:.2?}   failures {failures}",
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM callbacks")
        .fetch_one(&pool)
        .await?;
    println!("  callbacks recorded: {recorded}");

    handle.stop(true).await;
    pool.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    drop(cluster);
    Ok(())
}
