//! Test harness: a real PostgreSQL (DATABASE_URL, or a throwaway cluster started once per test binary),
//! one fresh database per test, the app on a random local port, and a signing HTTP client.

use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgPool};
use svamlgate::app::AppState;
use svamlgate::config::{Secret, ServeArgs};
use svamlgate::db::store::Store;
use svamlgate::db::{cluster::Cluster, pool_for, Database};
use svamlgate::signature::{self, AppCredential};
use svamlgate::svaml::Validator;

pub const KEY: &str = "669E367E-6BBA-48AB-AF15-266871C28135";
pub const SECRET: &str = "BeIukql3pTKJ8RGL5zo0DA==";
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// URL of a superuser connection to the test server.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return url;
        }
        // Start the throwaway cluster on its own runtime; it lives (and is killed) with this process.
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let cluster = rt
                .block_on(Cluster::start_temporary(None))
                .expect("starting a throwaway PostgreSQL");
            let url = cluster.url().to_owned();
            std::mem::forget(cluster);
            url
        })
        .join()
        .unwrap()
    })
}

/// The validator `svamlgate serve` builds for these settings (`Validator::with_limits`), compiled
/// once per distinct limits.
fn validator(limits: svamlgate::svaml::Limits) -> std::sync::Arc<Validator> {
    use std::sync::{Arc, Mutex};
    type Compiled = Vec<(svamlgate::svaml::Limits, Arc<Validator>)>;
    static CACHE: OnceLock<Mutex<Compiled>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((_, v)) = cache.iter().find(|(l, _)| *l == limits) {
        return v.clone();
    }
    let v = Arc::new(Validator::with_limits(limits).expect("schemas compile"));
    cache.push((limits, v.clone()));
    v
}

/// A fresh, migrated database; returns its URL.
pub async fn fresh_database() -> String {
    let base: PgConnectOptions = server_url().parse().unwrap();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect_with(&base)
        .await
        .expect("connecting to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let url = with_database(server_url(), &name);
    let db = Database::from_pool(pool_for(&url, 4).await.unwrap());
    db.migrate().await.unwrap();
    db.pool.close().await;
    url
}

/// `url` with its database replaced by `name`; the query (the embedded cluster's `?host=` socket
/// directory, a path of its own) is kept as it is.
fn with_database(url: &str, name: &str) -> String {
    let (url, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    match url.rfind('/') {
        Some(i) if url[..i].contains('@') || url[..i].ends_with(char::is_numeric) => {
            format!("{}/{name}{query}", &url[..i])
        }
        _ => format!("{url}/{name}{query}"),
    }
}

pub struct TestApp {
    pub addr: String,
    /// The operator listener (SVAMLGATE_ADMIN_LISTEN), when the test set one.
    #[allow(dead_code)]
    pub admin_addr: Option<String>,
    pub pool: PgPool,
    pub db_url: String,
    pub client: awc::Client,
    pub config: ServeArgs,
    #[allow(dead_code)]
    pub state: actix_web::web::Data<AppState>,
    server: actix_web::dev::ServerHandle,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and its shipper, as on SIGTERM (keeps the database and the data directory).
    pub async fn stop(&self) {
        self.server.stop(true).await;
        self.state.shutdown(Duration::from_secs(2)).await;
    }

    /// Waits until every record written so far is in PostgreSQL, the way an admin read waits (on
    /// the shipped position, woken by the shipper), and also for records held in memory. Returns
    /// at once while PostgreSQL does not take records (tests of outages read what is there).
    /// Fails the test, loudly, when shipping has not caught up within 60 s.
    pub async fn settle(&self) {
        use svamlgate::recording::position::LagReason;
        let status = &self.state.recorder.status;
        let position = status.position(self.state.recorder.journal());
        let budget = Duration::from_secs(60);
        let until = std::time::Instant::now() + budget;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match status.wait_shipped(position, left).await {
                None => break,
                Some(lag) if lag.reason == LagReason::DatabaseUnavailable => {
                    // The shipper's last batch failed. When this test's own pool (the same URL)
                    // reaches PostgreSQL, that was a passing fault (a pool timeout on a loaded
                    // machine): wait on. When it does not, the test cut PostgreSQL: read what is
                    // there. Said, not silent.
                    if !self.reachable().await || std::time::Instant::now() >= until {
                        eprintln!(
                            "settle: PostgreSQL does not take records now, not waiting: {lag:?}"
                        );
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Some(lag) => {
                    panic!(
                        "settle: records up to {position} not shipped within {budget:?}: {lag:?}"
                    )
                }
            }
        }
        while !status.memory.is_empty() {
            if status.known_down() && !self.reachable().await {
                eprintln!(
                    "settle: PostgreSQL does not take records now, not waiting for {} held in memory",
                    status.memory.len()
                );
                return;
            }
            assert!(
                std::time::Instant::now() < until,
                "settle: {} records still held in memory after {budget:?}",
                status.memory.len()
            );
            let moved = status.shipped_moved.notified();
            let _ = tokio::time::timeout(Duration::from_millis(50), moved).await;
        }
    }

    /// Whether PostgreSQL answers this test's pool (the URL the app ships to) within 2 s.
    async fn reachable(&self) -> bool {
        let probe = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool);
        matches!(
            tokio::time::timeout(Duration::from_secs(2), probe).await,
            Ok(Ok(1))
        )
    }

    /// POSTs a body to the callback path, signed with the test key.
    pub async fn post_signed(&self, body: &[u8]) -> Response {
        let ts = signature::format_timestamp(time::OffsetDateTime::now_utc());
        self.post_signed_at(body, &ts).await
    }

    pub async fn post_signed_at(&self, body: &[u8], ts: &str) -> Response {
        let res = self.send_signed_at(body, ts).await;
        // Records reach PostgreSQL through the journal, a moment after the reply: tests read them.
        self.settle().await;
        res
    }

    /// POSTs a signed body and returns as soon as the answer is in (does not wait for shipping).
    pub async fn send_signed_at(&self, body: &[u8], ts: &str) -> Response {
        let cred = AppCredential::new(KEY, SECRET).unwrap();
        let ct = "application/json; charset=utf-8";
        let auth = signature::sign(
            &cred,
            "POST",
            &self.config.callback_path,
            Some(ct),
            ts,
            body,
        );
        self.send_raw(
            &self.config.callback_path.clone(),
            body,
            &[
                ("authorization", &auth),
                ("x-timestamp", ts),
                ("content-type", ct),
            ],
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Response {
        let res = self.send_raw(path, body, headers).await;
        // Records reach PostgreSQL through the journal, a moment after the reply: tests read them.
        self.settle().await;
        res
    }

    async fn send_raw(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Response {
        let mut req = self.client.post(self.url(path));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let mut res = req.send_body(body.to_vec()).await.expect("request failed");
        Response::read(&mut res).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.settle().await;
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        let mut res = req.send().await.expect("request failed");
        Response::read(&mut res).await
    }

    pub async fn admin_get(&self, path: &str) -> Response {
        self.get(path, Some(ADMIN_TOKEN)).await
    }

    pub async fn admin_send(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let m = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let req = self
            .client
            .request(m, self.url(path))
            .insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")));
        let mut res = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        }
        .expect("request failed");
        let res = Response::read(&mut res).await;
        self.settle().await;
        res
    }

    /// Waits until an error row with this reference exists and returns it via the admin API.
    pub async fn wait_error(&self, reference: &str) -> Value {
        wait_for(Duration::from_secs(10), async || {
            let r = self.admin_get(&format!("/admin/errors/{reference}")).await;
            match r.status {
                200 => Ok(r.json()),
                s => Err(format!("error {reference} never recorded (last HTTP {s})")),
            }
        })
        .await
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    async fn read<S>(res: &mut awc::ClientResponse<S>) -> Response
    where
        S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    {
        let body = res
            .body()
            .limit(10 << 20)
            .await
            .expect("reading body")
            .to_vec();
        Response {
            status: res.status().as_u16(),
            headers: res
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a Sinch error envelope with this status and code; returns its reference.
    pub fn assert_envelope(&self, status: u16, code: u64) -> String {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let j = self.json();
        assert_eq!(j["errorCode"].as_u64(), Some(code), "{j}");
        assert!(
            j["status"]
                .as_str()
                .unwrap()
                .starts_with(&status.to_string()),
            "{j}"
        );
        assert!(!j["message"].as_str().unwrap().is_empty());
        j["reference"].as_str().expect("reference").to_owned()
    }
}

/// Parent of the per-test data directories; what earlier runs left there is removed once.
fn test_data_root() -> &'static std::path::Path {
    static ROOT: OnceLock<std::path::PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let tmp = std::env::temp_dir();
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let name = e.file_name();
                // Only what runs that have ended left (another test binary may be running).
                let ended = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("svamlgate-test-data-"))
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
                if ended {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        tmp.join(format!("svamlgate-test-data-{}", std::process::id()))
    })
}

pub fn base_config() -> ServeArgs {
    let mut c = ServeArgs::for_tests();
    c.application_key = Some(KEY.to_owned());
    c.application_secret = Some(Secret::new(SECRET));
    c.admin_token = Some(Secret::new(ADMIN_TOKEN));
    // One worker per test app: the tests run many apps at once on few cores.
    c.workers = Some(1);
    // The journal lives in the data directory: one per test, never the repository's .svamlgate.
    c.db.data_dir = test_data_root().join(uuid::Uuid::new_v4().simple().to_string());
    // The shipper as it runs with the embedded cluster: commits that do not wait for PostgreSQL's
    // disk, the journal's checkpoint moving once PostgreSQL reports them flushed.
    c.ship_commit = svamlgate::config::ShipCommit::Deferred;
    c
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let url = fresh_database().await;
    spawn_app_on(url, configure).await
}

/// Starts the app on an existing database (e.g. to restart it), through the same startup path as
/// `svamlgate serve`.
pub async fn spawn_app_on(db_url: String, configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let mut config = base_config();
    configure(&mut config);
    let pool = pool_for(&db_url, 8).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = svamlgate::http::build(
        config.clone(),
        Store::new(pool.clone()),
        validator(config.limits()),
        None,
        listener,
    )
    .await
    .expect("the app builds");
    let handle = app.server.handle();
    actix_web::rt::spawn(app.server);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    TestApp {
        addr: app.addr.to_string(),
        admin_addr: app.admin_addr.map(|a| a.to_string()),
        pool,
        db_url,
        client,
        config,
        state: app.state,
        server: handle,
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A signed-ready ICE for `callid` to the number `to`, as Sinch sends it.
pub fn ice(callid: &str, to: &str) -> Vec<u8> {
    serde_json::json!({"event": "ice", "callid": callid, "timestamp": "2026-11-25T10:00:00Z", "version": 1,
           "cli": "46708168731", "to": {"type": "did", "endpoint": to}, "domain": "pstn",
           "originationType": "PSTN", "applicationKey": "k"})
    .to_string()
    .into_bytes()
}

/// A PIE for `callid` from the menu `main`.
pub fn pie(callid: &str, kind: &str, value: &str) -> Vec<u8> {
    serde_json::json!({"event": "pie", "callid": callid, "timestamp": "2026-11-25T10:00:05Z", "version": 1,
           "menuResult": {"menuId": "main", "type": kind, "value": value, "inputMethod": "dtmf"}})
    .to_string()
    .into_bytes()
}

/// The admin API's OpenAPI document, to check answers against what it promises.
pub struct Documented(Value);

impl Documented {
    pub async fn fetch(app: &TestApp) -> Documented {
        Documented(app.admin_get("/admin/openapi.json").await.json())
    }

    /// Asserts that `status` is documented for the operation and `body` matches its schema.
    pub fn check(&self, method: &str, template: &str, status: u16, body: &Value) {
        let op = &self.0["paths"][template][method.to_lowercase()];
        let mut res = &op["responses"][status.to_string()];
        assert!(
            res.is_object(),
            "{method} {template}: {status} not documented: {body}"
        );
        if let Some(r) = res["$ref"].as_str() {
            res = self.0.pointer(r.trim_start_matches('#')).unwrap();
        }
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.0["components"],
            "allOf": [res["content"]["application/json"]["schema"]],
        });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap();
        let problems: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            problems.is_empty(),
            "{method} {template} {status}: {problems:#?}\n{body:#}"
        );
    }
}

/// The one way a test waits for something to happen: tries `attempt` until it gives `Ok`, every
/// 20 ms, and returns that value. Fails the test with the last `Err` (say what was awaited and
/// what was seen) when nothing came within `within`, so a wait for a thing that never happens
/// fails instead of hanging or passing.
pub async fn wait_for<T, E: std::fmt::Display>(
    within: Duration,
    mut attempt: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let until = std::time::Instant::now() + within;
    loop {
        let last = match attempt().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            std::time::Instant::now() < until,
            "waited {within:?} in vain: {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `condition` holds (see [`wait_for`]); `what` names it when it never does.
pub async fn wait_until(what: &str, within: Duration, mut condition: impl AsyncFnMut() -> bool) {
    wait_for(within, async || {
        if condition().await {
            Ok(())
        } else {
            Err(format!("until {what}"))
        }
    })
    .await
}

/// Waits until a service started as a process answers `GET {base}/healthz` with success; fails the
/// test when it does not within `within`.
pub async fn wait_serving(base: &str, within: Duration) {
    let client = awc::Client::default();
    wait_until("the service answers /healthz", within, async || {
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await
}
