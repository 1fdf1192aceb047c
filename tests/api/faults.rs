//! Faults, tested against the real binary and real PostgreSQL: the embedded postgres killed with
//! SIGKILL under load, svamlgate killed with SIGKILL under load while PostgreSQL is unreachable, a
//! replay after such a restart, and a corrupt journal tail. Every test counts what was answered
//! against what landed in PostgreSQL.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use svamlgate::signature::{self, AppCredential};

use crate::helpers::{
    fixture, fresh_database, ice, pie, wait_for, wait_serving, wait_until, ADMIN_TOKEN, KEY, SECRET,
};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// svamlgate as a child process.
struct Service {
    child: Child,
    base: String,
    data_dir: PathBuf,
}

impl Service {
    async fn start(data_dir: &Path, database_url: Option<&str>) -> Service {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_svamlgate"));
        cmd.arg("serve")
            .env_remove("DATABASE_URL")
            .env("SVAMLGATE_DATA_DIR", data_dir)
            .env("SVAMLGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("SINCH_APPLICATION_KEY", KEY)
            .env("SINCH_APPLICATION_SECRET", SECRET)
            .env("SVAMLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SVAMLGATE_WORKERS", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = database_url {
            cmd.env("DATABASE_URL", url);
        }
        let child = cmd.spawn().expect("starting svamlgate");
        let svc = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
        };
        // The embedded cluster's first start (initdb) can take a while on a loaded machine.
        wait_serving(&svc.base, Duration::from_secs(60)).await;
        svc
    }

    fn kill9(&mut self) {
        // SAFETY: our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// The embedded cluster's URL, from the files svamlgate keeps in its data directory.
    fn embedded_url(&self) -> String {
        let pw = std::fs::read_to_string(self.data_dir.join("pg-password")).unwrap();
        let port = std::fs::read_to_string(self.data_dir.join("pg-port")).unwrap();
        format!(
            "postgres://svamlgate:{}@127.0.0.1:{}/postgres",
            pw.trim(),
            port.trim()
        )
    }

    async fn ready(&self) -> Value {
        let client = awc::Client::default();
        let mut res = client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()
    }

    /// Waits until PostgreSQL answers and the journal is shipped.
    async fn drained(&self, within: Duration) -> Value {
        wait_for(within, async || {
            let r = self.ready().await;
            if r["checks"]["database"] == "ok" && r["shipping"]["lagRecords"] == 0 {
                Ok(r)
            } else {
                Err(format!("journal not drained: {r}"))
            }
        })
        .await
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn data_dir() -> PathBuf {
    let d = crate::helpers::base_config().db.data_dir;
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn signed_headers(body: &[u8], ts: &str) -> Vec<(&'static str, String)> {
    let cred = AppCredential::new(KEY, SECRET).unwrap();
    let ct = "application/json";
    let auth = signature::sign(&cred, "POST", "/sinch/callback", Some(ct), ts, body);
    vec![
        ("authorization", auth),
        ("x-timestamp", ts.to_owned()),
        ("content-type", ct.to_owned()),
    ]
}

async fn post(client: &awc::Client, base: &str, body: &[u8], ts: &str) -> Option<(u16, Vec<u8>)> {
    let mut req = client
        .post(format!("{base}/sinch/callback"))
        .timeout(Duration::from_secs(5));
    for (k, v) in signed_headers(body, ts) {
        req = req.insert_header((k, v));
    }
    let mut res = req.send_body(body.to_vec()).await.ok()?;
    let bytes = res.body().await.ok()?;
    Some((res.status().as_u16(), bytes.to_vec()))
}

/// What one load run answered: callid → (status, body, timestamp, request body).
type Answered = HashMap<String, (u16, Vec<u8>, String, Vec<u8>)>;

/// Sends distinct ICEs from `workers` concurrent senders for `duration`, each pausing `pause` between
/// requests; `during` runs once after `at`. Returns what was answered (a full reply received).
async fn load(
    base: &str,
    to: &str,
    workers: usize,
    pause: Duration,
    duration: Duration,
    at: Duration,
    during: impl FnOnce(),
) -> (Answered, u64) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(5))
        .finish();
    let answered = std::cell::RefCell::new(Answered::new());
    let failed = AtomicU64::new(0);
    let started = Instant::now();
    let counter = AtomicU64::new(0);
    let run = |w: usize| {
        let (client, answered, failed, counter) = (&client, &answered, &failed, &counter);
        async move {
            while started.elapsed() < duration {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let callid = format!("load-{w}-{n}");
                let body = ice(&callid, to);
                let ts = signature::format_timestamp(time::OffsetDateTime::now_utc());
                match post(client, base, &body, &ts).await {
                    Some((status, reply)) => {
                        answered
                            .borrow_mut()
                            .insert(callid, (status, reply, ts, body));
                    }
                    None => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Pacing, not waiting: each worker's rate of callbacks.
                tokio::time::sleep(pause).await;
            }
        }
    };
    let fault = async {
        // Time itself must pass: the fault strikes `at` into the load.
        tokio::time::sleep(at).await;
        during();
    };
    let senders = futures_util::future::join_all((0..workers).map(run));
    futures_util::future::join(senders, fault).await;
    (answered.into_inner(), failed.load(Ordering::Relaxed))
}

async fn admin(base: &str, method: &str, path: &str, body: &Value) -> Value {
    let client = awc::Client::default();
    let m = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut res = client
        .request(m, format!("{base}{path}"))
        .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send_json(body)
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "{method} {path}: {}",
        res.status()
    );
    res.json::<Value>().await.unwrap()
}

async fn metrics_text(base: &str) -> String {
    let mut res = awc::Client::default()
        .get(format!("{base}/metrics"))
        .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send()
        .await
        .unwrap();
    String::from_utf8(res.body().await.unwrap().to_vec()).unwrap()
}

/// The value of an unlabelled metric in the Prometheus text.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn count_rows(url: &str, sql: &str) -> i64 {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[actix_web::test]
async fn embedded_postgres_killed_under_load_costs_no_call_and_no_record() {
    let dir = data_dir();
    let svc = Service::start(&dir, None).await;
    // An IVR flow on the called number: the normal reply is its menu, never the fallback.
    let flow: Value = serde_json::from_slice(&fixture("flows/ivr.json")).unwrap();
    let created = admin(&svc.base, "POST", "/admin/flows", &flow).await;
    let flow_id = created["flow"]["id"].as_i64().unwrap();
    admin(
        &svc.base,
        "POST",
        "/admin/routes",
        &json!({"name": "ivr", "called": "+15550100", "target": {"kind": "flow", "flowId": flow_id}}),
    )
    .await;
    svc.drained(Duration::from_secs(10)).await;

    let pid_file = dir.join("pg/postmaster.pid");
    let postmaster: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (answered, failed) = load(
        &svc.base,
        "+15550100",
        6,
        Duration::from_millis(20),
        Duration::from_secs(6),
        Duration::from_secs(2),
        || {
            // As the OOM killer would.
            // SAFETY: a plain kill(2) of the postmaster we started.
            unsafe { libc::kill(postmaster, libc::SIGKILL) };
        },
    )
    .await;
    assert_eq!(failed, 0, "every request got an answer");
    assert!(answered.len() > 100, "load ran: {}", answered.len());
    for (callid, (status, reply, _, _)) in &answered {
        assert_eq!(*status, 200, "{callid}");
        let reply: Value = serde_json::from_slice(reply).unwrap();
        assert_eq!(
            reply["action"]["name"], "runMenu",
            "{callid} got its flow's menu, not the fallback: {reply}"
        );
    }
    // svamlgate started its database again and shipped everything answered, exactly once.
    let ready = svc.drained(Duration::from_secs(60)).await;
    assert_eq!(ready["checks"]["embeddedCluster"], "running", "{ready}");
    let url = svc.embedded_url();
    let rows = count_rows(
        &url,
        "SELECT count(*) FROM callbacks WHERE callid LIKE 'load-%'",
    )
    .await;
    eprintln!(
        "postgres SIGKILL under load: {} answered (all with the flow's reply), {rows} rows, cluster after: {}",
        answered.len(),
        ready["checks"]["embeddedCluster"]
    );
    assert_eq!(rows as usize, answered.len());
    let distinct = count_rows(
        &url,
        "SELECT count(DISTINCT callid) FROM callbacks WHERE callid LIKE 'load-%'",
    )
    .await;
    assert_eq!(distinct, rows);
    // Caught up, svamlgate passes over the files the catch-up and the recovery wrote and writes
    // their dirty pages out (src/db/writeback.rs); /metrics counts it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let passes = loop {
        let text = metrics_text(&svc.base).await;
        let passes = gauge(&text, "svamlgate_embedded_cluster_writeback_passes");
        assert!(
            gauge(&text, "svamlgate_embedded_cluster_writeback_ranges").is_some(),
            "{text}"
        );
        if passes.is_some_and(|p| p >= 1.0) || Instant::now() > deadline {
            break passes;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        passes.is_some_and(|p| p >= 1.0),
        "no complete writeback pass while caught up: {passes:?}"
    );
    eprintln!(
        "writeback while caught up: {passes:?} passes, {:?} ranges written",
        gauge(
            &metrics_text(&svc.base).await,
            "svamlgate_embedded_cluster_writeback_ranges"
        )
    );
    let fallbacks = count_rows(
        &url,
        "SELECT count(*) FROM callbacks WHERE reply_source <> 'flow' AND callid LIKE 'load-%'",
    )
    .await;
    assert_eq!(fallbacks, 0);
}

/// A TCP proxy in front of PostgreSQL that can be cut: "PostgreSQL unreachable" on demand.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    up: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    /// Connections being piped now.
    open: Arc<AtomicU64>,
}

impl Proxy {
    pub(crate) fn start(target: u16) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(AtomicU64::new(0));
        let open = Arc::new(AtomicU64::new(0));
        let (up2, gen2, open2) = (up.clone(), generation.clone(), open.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if !up2.load(Ordering::Acquire) {
                        drop(inbound);
                        continue;
                    }
                    let (up3, gen3, open3) = (up2.clone(), gen2.clone(), open2.clone());
                    let born = gen3.load(Ordering::Acquire);
                    open3.fetch_add(1, Ordering::AcqRel);
                    tokio::spawn(async move {
                        // Counted until this task ends, however it ends.
                        struct Open(Arc<AtomicU64>);
                        impl Drop for Open {
                            fn drop(&mut self) {
                                self.0.fetch_sub(1, Ordering::AcqRel);
                            }
                        }
                        let _open = Open(open3);
                        let Ok(mut outbound) =
                            tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                        else {
                            return;
                        };
                        let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                        // Watches the switch for as long as the connection lives (no deadline).
                        let cut = async {
                            while up3.load(Ordering::Acquire)
                                && gen3.load(Ordering::Acquire) == born
                            {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        };
                        tokio::select! { _ = copy => {}, _ = cut => {} }
                    });
                }
            });
        });
        Proxy {
            port,
            up,
            generation,
            open,
        }
    }

    /// Opens or cuts the way to PostgreSQL. A cut returns once every connection piped before it
    /// is closed (each watches the switch every 20 ms), so what the test does next meets the cut;
    /// it fails the test when one is still open after 10 s.
    pub(crate) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        if !up {
            let until = Instant::now() + Duration::from_secs(10);
            while self.open.load(Ordering::Acquire) > 0 {
                assert!(
                    Instant::now() < until,
                    "every connection through the proxy is closed"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

pub(crate) fn port_of(url: &str) -> u16 {
    let after_at = url.rsplit_once('@').map_or(url, |(_, r)| r);
    let host_port = after_at.split('/').next().unwrap();
    host_port.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// `url` over TCP to `port` on 127.0.0.1 (a proxy's): the embedded cluster's socket directory
/// (`?host=`, what svamlgate itself connects over) is dropped.
pub(crate) fn through(url: &str, port: u16) -> String {
    let url = url.split_once('?').map_or(url, |(u, _)| u);
    url.replacen(&format!(":{}/", port_of(url)), &format!(":{port}/"), 1)
        .replacen("@localhost:", "@127.0.0.1:", 1)
}

#[actix_web::test]
async fn svamlgate_killed_under_load_while_postgres_is_away_loses_no_answered_callback() {
    let db = fresh_database().await;
    let proxy = Proxy::start(port_of(&db));
    let via_proxy = through(&db, proxy.port);
    let dir = data_dir();
    let mut svc = Service::start(&dir, Some(&via_proxy)).await;
    svc.drained(Duration::from_secs(10)).await;

    proxy.set_up(false);
    let pid = svc.child.id() as i32;
    let (answered, _failed) = load(
        &svc.base,
        "+15550199",
        6,
        Duration::from_millis(10),
        Duration::from_secs(3),
        Duration::from_millis(1500),
        || {
            // SAFETY: a plain kill(2) of our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        },
    )
    .await;
    let _ = svc.child.wait();
    let answered: Answered = answered
        .into_iter()
        .filter(|(_, (status, _, _, _))| *status == 200)
        .collect();
    assert!(answered.len() > 50, "load ran: {}", answered.len());

    // Back up, PostgreSQL still away: a replay of an answered callback gets its stored reply.
    let svc = Service::start(&dir, Some(&via_proxy)).await;
    let (callid, (_, reply, ts, body)) = answered.iter().next().unwrap();
    let client = awc::Client::default();
    let (status, again) = post(&client, &svc.base, body, ts).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        again, *reply,
        "replay of {callid} after a restart during the outage"
    );

    proxy.set_up(true);
    svc.drained(Duration::from_secs(30)).await;
    let originals = count_rows(
        &db,
        "SELECT count(*) FROM callbacks WHERE callid LIKE 'load-%' AND duplicate_of IS NULL",
    )
    .await;
    let distinct = count_rows(
        &db,
        "SELECT count(DISTINCT callid) FROM callbacks WHERE callid LIKE 'load-%' AND duplicate_of IS NULL",
    )
    .await;
    assert_eq!(distinct, originals, "no callback recorded twice");
    // Every answered callback is there (a request cut by the kill before its reply may be too).
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db)
        .await
        .unwrap();
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT callid FROM callbacks WHERE callid LIKE 'load-%' AND duplicate_of IS NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    let missing: Vec<&String> = answered.keys().filter(|c| !stored.contains(*c)).collect();
    eprintln!(
        "svamlgate SIGKILL under load, PostgreSQL cut: {} answered 200, {} originals stored ({} distinct), {} missing",
        answered.len(),
        originals,
        distinct,
        missing.len()
    );
    assert!(missing.is_empty(), "answered but lost: {missing:?}");
    let replays: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM callbacks WHERE callid = $1 AND duplicate_of IS NOT NULL",
    )
    .bind(callid)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(replays, 1);
}

#[actix_web::test]
async fn a_corrupt_journal_tail_is_cut_and_start_up_goes_on() {
    let app = crate::helpers::spawn_app().await;
    app.pool.close().await;
    for i in 0..3 {
        let res = app
            .post_signed(&ice(&format!("tail-{i}"), "+15550123"))
            .await;
        assert_eq!(res.status, 200);
    }
    app.stop().await;
    // A crash in the middle of a write: the last frame is cut short, and garbage follows.
    let journal = app.config.db.data_dir.join("journal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    segments.sort();
    let last = segments.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    let len = bytes.len();
    bytes.truncate(len - 10);
    bytes.extend_from_slice(b"\xde\xad\xbe\xef garbage");
    std::fs::write(last, bytes).unwrap();

    let dir = app.config.db.data_dir.clone();
    let back = crate::helpers::spawn_app_on(app.db_url.clone(), move |c| c.db.data_dir = dir).await;
    back.settle().await;
    let m = String::from_utf8(back.get("/metrics", None).await.body).unwrap();
    assert!(m.contains("svamlgate_journal_cut_bytes_total"), "{m}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM callbacks WHERE callid LIKE 'tail-%'")
        .fetch_one(&back.pool)
        .await
        .unwrap();
    assert_eq!(rows, 2, "the two intact records shipped, the torn one cut");
    // And it keeps working.
    assert_eq!(
        back.post_signed(&ice("tail-after", "+15550123"))
            .await
            .status,
        200
    );
}

/// Two instances on one database: a call whose events land on both follows its flow, and a change
/// made through one takes effect on the other within 2 s.
#[actix_web::test]
async fn two_instances_on_one_database_follow_one_call() {
    let peers = |c: &mut svamlgate::config::ServeArgs| c.peer_state_wait_ms = 250;
    let a = crate::helpers::spawn_app_with(peers).await;
    let b = crate::helpers::spawn_app_on(a.db_url.clone(), peers).await;
    let flow: Value = serde_json::from_slice(&fixture("flows/ivr.json")).unwrap();
    let created = a
        .admin_send("POST", "/admin/flows", Some(&flow))
        .await
        .json();
    let flow_id = created["flow"]["id"].as_i64().unwrap();
    let route = json!({"name": "ivr", "called": "+15550100", "target": {"kind": "flow", "flowId": flow_id}});
    let made = Instant::now();
    assert_eq!(
        a.admin_send("POST", "/admin/routes", Some(&route))
            .await
            .status,
        201
    );
    wait_until(
        "the route reaches B within 2 s",
        Duration::from_secs(2).saturating_sub(made.elapsed()),
        async || !b.state.live.routes().is_empty(),
    )
    .await;

    // ICE on A, PIE on B, PIE on A, DICE on B.
    let r1 = a.post_signed(&ice("two-1", "+15550100")).await.json();
    assert_eq!(r1["action"]["name"], "runMenu");
    let r2 = b.post_signed(&pie("two-1", "return", "pin")).await.json();
    assert_eq!(r2["action"]["name"], "runMenu", "{r2}");
    assert_eq!(
        r2["action"]["menus"][0]["maxDigits"], 4,
        "B continued the call: {r2}"
    );
    let r3 = a
        .post_signed(&pie("two-1", "sequence", "1234"))
        .await
        .json();
    assert_eq!(r3["action"]["name"], "connectPstn", "A took B's step: {r3}");
    let dice = json!({"event": "dice", "callid": "two-1", "timestamp": "2026-11-25T10:01:00Z",
                      "reason": "CALLERHANGUP", "result": "ANSWERED"});
    assert_eq!(b.post_signed(dice.to_string().as_bytes()).await.status, 200);
    let sources: Vec<String> = sqlx::query_scalar(
        "SELECT reply_source FROM callbacks WHERE callid = 'two-1' ORDER BY received_at",
    )
    .fetch_all(&a.pool)
    .await
    .unwrap();
    assert_eq!(sources, ["flow", "flow", "flow", "none"]);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM call_state WHERE callid = 'two-1'")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the call's state is gone after its DICE");

    // A route removed through B stops routing on A within 2 s.
    let id = b.state.live.routes()[0].id;
    let removed = Instant::now();
    assert_eq!(
        b.admin_send("DELETE", &format!("/admin/routes/{id}"), None)
            .await
            .status,
        204
    );
    wait_until(
        "the removal reaches A within 2 s",
        Duration::from_secs(2).saturating_sub(removed.elapsed()),
        async || a.state.live.routes().is_empty(),
    )
    .await;
}

/// As root, from a directory the `postgres` account cannot enter (a clone in root's 0700 home):
/// the embedded cluster goes where postgres can reach it, and the README's psql line still works.
#[actix_web::test]
async fn the_embedded_cluster_runs_from_a_home_only_root_can_enter() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED the_embedded_cluster_runs_from_a_home_only_root_can_enter: not root \
             (as another user PostgreSQL runs as that user; CI runs it as root)"
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let home = data_dir().join("root-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = home.join(".svamlgate");
    let svc = Service::start(&dir, None).await;
    let ready = svc.drained(Duration::from_secs(30)).await;
    assert_eq!(ready["checks"]["database"], "ok", "{ready}");
    let location = std::fs::read_to_string(dir.join("pg-location")).unwrap();
    assert!(
        location.starts_with("/var/lib/svamlgate/clusters/"),
        "{location}"
    );
    // The password and port files beside the data directory reach the cluster.
    let n = count_rows(&svc.embedded_url(), "SELECT count(*) FROM callbacks").await;
    assert_eq!(n, 0);
    drop(svc);
    // The postmaster dies with its parent (it removes its pid file as it stops); then its files
    // are removed.
    let pid_file = Path::new(location.trim()).join("pg/postmaster.pid");
    wait_until(
        "the postmaster stops with svamlgate",
        Duration::from_secs(30),
        async || !pid_file.exists(),
    )
    .await;
    let _ = std::fs::remove_dir_all(location.trim());
}

/// The embedded server's processes (each backend, the WAL writer, the checkpointer, …) lead
/// sessions of their own. Where the kernel groups tasks by session, a process's nice counts only
/// within its session's autogroup, so svamlgate lowers each one's autogroup: the catch-up's
/// backend yields the CPU to replies, as the nice it was started with meant. svamlgate's own
/// autogroup (which the postmaster shares) is left alone.
#[actix_web::test]
async fn the_embedded_servers_processes_yield_the_cpu_in_their_own_autogroups() {
    use sqlx::Connection as _;
    use svamlgate::db::autogroup::{enabled, nice_of};
    if !enabled() {
        eprintln!("SKIPPED: this kernel does not group tasks by session");
        return;
    }
    let dir = data_dir().join("autogroups");
    let svc = Service::start(&dir, None).await;
    let ready = svc.drained(Duration::from_secs(30)).await;
    assert_eq!(ready["checks"]["database"], "ok", "{ready}");
    let own = nice_of(svc.child.id());
    let mut conn = sqlx::PgConnection::connect(&svc.embedded_url())
        .await
        .unwrap();
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let backend = u32::try_from(backend).unwrap();
    wait_until(
        "a new backend's autogroup is lowered",
        Duration::from_secs(10),
        async || nice_of(backend) == Some(svamlgate::db::cluster::BACKGROUND_NICE),
    )
    .await;
    let writer: i32 =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        nice_of(u32::try_from(writer).unwrap()),
        Some(svamlgate::db::cluster::BACKGROUND_NICE),
        "the WAL writer's too"
    );
    assert_eq!(
        nice_of(svc.child.id()),
        own,
        "svamlgate's own is left alone"
    );
    drop(conn);
    drop(svc);
}

/// At the journal's disk limit with PostgreSQL away readiness fails (so a balancer sends calls
/// elsewhere), the journal stays within its limit, and every callback that still arrives is
/// answered (its record waits in memory).
#[actix_web::test]
async fn readiness_reports_the_journal_disk_limit() {
    let app = crate::helpers::spawn_app_with(|c| c.journal_max_bytes = 1_000).await;
    app.pool.close().await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["checks"]["journal"], "ok");
    for i in 0..4 {
        let res = app
            .post_signed(&ice(&format!("disk-{i}"), "+15550123"))
            .await;
        assert_eq!(res.status, 200, "answered whatever the journal's size");
    }
    let ready = app.get("/readyz", None).await;
    let body = ready.json();
    assert_eq!(ready.status, 503, "{body}");
    assert_eq!(body["checks"]["journal"], "over_limit", "{body}");
    assert!(
        body["shipping"]["journalBytes"].as_u64().unwrap() <= 1_000,
        "never past the limit: {body}"
    );
    assert_eq!(body["shipping"]["lagRecords"], 4, "{body}");
    assert_eq!(body["shipping"]["memoryRecords"], 4, "{body}");
    assert_eq!(
        app.post_signed(&ice("disk-4", "+15550123")).await.status,
        200
    );
}

/// SIGTERM with PostgreSQL unreachable: svamlgate exits within its grace period, and what it
/// could not ship is shipped by the next start.
#[actix_web::test]
async fn sigterm_leaves_unshipped_records_in_the_journal_for_the_next_start() {
    let db = fresh_database().await;
    let proxy = Proxy::start(port_of(&db));
    let via_proxy = through(&db, proxy.port);
    let dir = data_dir();
    let mut svc = Service::start(&dir, Some(&via_proxy)).await;
    svc.drained(Duration::from_secs(10)).await;
    proxy.set_up(false);
    let client = awc::Client::default();
    for i in 0..5 {
        let ts = signature::format_timestamp(time::OffsetDateTime::now_utc());
        let (status, _) = post(
            &client,
            &svc.base,
            &ice(&format!("term-{i}"), "+15550123"),
            &ts,
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
    }
    let started = Instant::now();
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(svc.child.id() as i32, libc::SIGTERM) };
    let status = svc.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "within the grace period"
    );
    proxy.set_up(true);
    let svc = Service::start(&dir, Some(&via_proxy)).await;
    svc.drained(Duration::from_secs(30)).await;
    let rows = count_rows(
        &db,
        "SELECT count(*) FROM callbacks WHERE callid LIKE 'term-%'",
    )
    .await;
    assert_eq!(rows, 5);
}
