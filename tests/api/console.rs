//! The operator console: login, sessions, CSRF, throttled wrong tokens (console and admin API),
//! escaping and masking, the operator listener, and every page in a real Chromium driven over
//! WebDriver (screenshots into docs/console/).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::helpers::{
    fixture, ice, spawn_app, spawn_app_with, wait_for, wait_until, TestApp, ADMIN_TOKEN,
};

// ---------------------------------------------------------------------------------------------
// A console client over plain HTTP (cookies by hand).

struct Page {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of a `name="csrf"` hidden input.
    fn csrf(&self) -> String {
        let i = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field: {}", self.body));
        let rest = &self.body[i + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn fetch(
    app: &TestApp,
    base: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&[(&str, &str)]>,
    extra: &[(&str, &str)],
) -> Page {
    let m = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let _ = app;
    // Redirects are what is tested: not followed.
    let client = awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut req = client.request(m, format!("http://{base}{path}"));
    if let Some(c) = cookie {
        req = req.insert_header(("cookie", c.to_owned()));
    }
    for (k, v) in extra {
        req = req.insert_header((*k, *v));
    }
    let mut res = match form {
        Some(f) => req.send_form(&f.to_vec()).await,
        None => req.send().await,
    }
    .expect("request failed");
    let body = res.body().limit(10 << 20).await.expect("body").to_vec();
    Page {
        status: res.status().as_u16(),
        headers: res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Logs in on `base`; returns the session cookie (`name=value`) and the overview page.
async fn login(app: &TestApp, base: &str) -> (String, Page) {
    let form = fetch(app, base, "GET", "/console/login", None, None, &[]).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let login_cookie = cookie_pair(form.cookies()[0]);
    let csrf = form.csrf();
    let res = fetch(
        app,
        base,
        "POST",
        "/console/login",
        Some(&login_cookie),
        Some(&[("token", ADMIN_TOKEN), ("csrf", &csrf)]),
        &[],
    )
    .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let session = res
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("svamlgate_console="))
        .map(cookie_pair)
        .expect("session cookie");
    let overview = fetch(app, base, "GET", "/console", Some(&session), None, &[]).await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    (session, overview)
}

// ---------------------------------------------------------------------------------------------
// Without a browser.

#[actix_web::test]
async fn login_sets_a_strict_session_cookie_and_logout_ends_it() {
    let app = spawn_app().await;
    let base = app.addr.clone();
    // Not logged in: to the login form.
    let res = fetch(&app, &base, "GET", "/console/calls", None, None, &[]).await;
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/console/login"));

    let form = fetch(&app, &base, "GET", "/console/login", None, None, &[]).await;
    assert_eq!(form.status, 200);
    let csp = form.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(form.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(form.header("referrer-policy"), Some("no-referrer"));
    assert!(!form.body.contains("<script>"), "no inline script");
    let login_cookie = cookie_pair(form.cookies()[0]);
    let csrf = form.csrf();

    // A wrong token: the form again, 401.
    let wrong = fetch(
        &app,
        &base,
        "POST",
        "/console/login",
        Some(&login_cookie),
        Some(&[("token", "nope"), ("csrf", &csrf)]),
        &[],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong token"));
    // The right token without the form's CSRF token: refused.
    let forged = fetch(
        &app,
        &base,
        "POST",
        "/console/login",
        None,
        Some(&[("token", ADMIN_TOKEN), ("csrf", &csrf)]),
        &[],
    )
    .await;
    assert_eq!(forged.status, 403);

    // Behind a proxy that says https, the cookie is Secure.
    let res = fetch(
        &app,
        &base,
        "POST",
        "/console/login",
        Some(&login_cookie),
        Some(&[("token", ADMIN_TOKEN), ("csrf", &csrf)]),
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let set = res
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("svamlgate_console="))
        .unwrap()
        .to_owned();
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Secure",
        "Max-Age=28800",
    ] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    // Over plain http, it is not.
    let (session, overview) = login(&app, &base).await;
    assert!(overview.body.contains("<section id=\"alerts\">"));
    let res = fetch(&app, &base, "GET", "/console/login", None, None, &[]).await;
    assert!(!res.cookies()[0].contains("Secure"));

    // Logout needs the session's CSRF token.
    let csrf = overview.csrf();
    let res = fetch(
        &app,
        &base,
        "POST",
        "/console/logout",
        Some(&session),
        Some(&[("csrf", "x")]),
        &[],
    )
    .await;
    assert_eq!(res.status, 403);
    let res = fetch(
        &app,
        &base,
        "POST",
        "/console/logout",
        Some(&session),
        Some(&[("csrf", &csrf)]),
        &[],
    )
    .await;
    assert_eq!(res.status, 303);
    assert!(res.cookies()[0].contains("Max-Age=0"));
    let res = fetch(&app, &base, "GET", "/console", Some(&session), None, &[]).await;
    assert_eq!(res.status, 303, "the session is over");
}

#[actix_web::test]
async fn sessions_expire() {
    let app = spawn_app_with(|c| c.console_session_secs = 1).await;
    let base = app.addr.clone();
    let (session, _) = login(&app, &base).await;
    // Time itself must pass (the session lasts 1 s): the page is asked again until it expires.
    wait_until(
        "an expired session sends to the login form",
        Duration::from_secs(4),
        async || {
            fetch(&app, &base, "GET", "/console", Some(&session), None, &[])
                .await
                .status
                == 303
        },
    )
    .await;
}

#[actix_web::test]
async fn wrong_tokens_are_throttled_on_the_admin_api_and_the_login_form() {
    let app = spawn_app().await;
    let base = app.addr.clone();
    for i in 0..6 {
        let r = app.get("/admin/events", Some("wrong")).await;
        r.assert_envelope(401, 40108);
        let _ = i;
    }
    // Blocked now: even the right token waits.
    let r = app.get("/admin/events", Some(ADMIN_TOKEN)).await;
    r.assert_envelope(429, 42901);
    // The console's login from the same address is blocked too.
    let form = fetch(&app, &base, "GET", "/console/login", None, None, &[]).await;
    let login_cookie = cookie_pair(form.cookies()[0]);
    let res = fetch(
        &app,
        &base,
        "POST",
        "/console/login",
        Some(&login_cookie),
        Some(&[("token", ADMIN_TOKEN), ("csrf", &form.csrf())]),
        &[],
    )
    .await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert!(res.header("retry-after").is_some());
    assert!(res.body.contains("Too many wrong tokens"));
}

#[actix_web::test]
async fn the_public_listener_answers_only_callbacks_and_healthz_when_an_operator_listener_is_set() {
    let app = spawn_app_with(|c| c.admin_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let admin = app.admin_addr.clone().expect("operator listener");
    assert_ne!(admin, app.addr);
    assert_eq!(
        app.post_signed(&ice("pub-1", "+15550001")).await.status,
        200
    );
    assert_eq!(app.get("/healthz", None).await.status, 200);
    for path in [
        "/admin/events",
        "/metrics",
        "/readyz",
        "/console",
        "/console/login",
        "/admin/openapi.json",
    ] {
        let r = app.get(path, Some(ADMIN_TOKEN)).await;
        r.assert_envelope(404, 40400);
    }
    // The operator listener answers the rest.
    // The record reaches PostgreSQL a moment after the answer.
    wait_for(Duration::from_secs(10), async || {
        let r = fetch(
            &app,
            &admin,
            "GET",
            "/admin/events",
            None,
            None,
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
        if r.status == 200 && r.body.contains("pub-1") {
            Ok(())
        } else {
            Err(format!("pub-1 not listed: HTTP {} {}", r.status, r.body))
        }
    })
    .await;
    assert_eq!(
        fetch(&app, &admin, "GET", "/metrics", None, None, &[])
            .await
            .status,
        200
    );
    let (session, _) = login(&app, &admin).await;
    let call = fetch(
        &app,
        &admin,
        "GET",
        "/console/calls/pub-1",
        Some(&session),
        None,
        &[],
    )
    .await;
    assert_eq!(call.status, 200, "{}", call.body);
}

#[actix_web::test]
async fn event_values_are_escaped_and_numbers_masked_until_revealed() {
    let app = spawn_app().await;
    let base = app.addr.clone();
    let mut event: Value = serde_json::from_slice(&ice("xss-1", "+46700000000")).unwrap();
    event["custom"] = json!("<script>alert('custom')</script><img src=x onerror=alert(1)>");
    event["cli"] = json!("\"><script>alert(2)</script>46708168731");
    assert_eq!(
        app.post_signed(event.to_string().as_bytes()).await.status,
        200
    );
    let (session, _) = login(&app, &base).await;
    let page = fetch(
        &app,
        &base,
        "GET",
        "/console/calls/xss-1",
        Some(&session),
        None,
        &[],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        !page.body.contains("<script>alert"),
        "unescaped script: {}",
        page.body
    );
    assert!(!page.body.contains("<img src=x"), "unescaped tag");
    assert!(page.body.contains("&lt;script&gt;alert("), "shown as text");
    assert!(!page.body.contains("46700000000"), "called number masked");
    assert!(page.body.contains("+467******00"), "masked as in logs");
    // The search finds the call by its full number, and shows it masked.
    let found = fetch(
        &app,
        &base,
        "GET",
        "/console/calls?called=%2B46700000000",
        Some(&session),
        None,
        &[],
    )
    .await;
    let results = &found.body[found.body.find("id=\"results\"").expect("results")..];
    assert!(results.contains("xss-1"), "{}", found.body);
    assert!(!results.contains("46700000000"), "masked in the results");
    // Revealing needs the CSRF token; then the numbers are in clear.
    let csrf = page.csrf();
    let res = fetch(
        &app,
        &base,
        "POST",
        "/console/calls/xss-1/reveal",
        Some(&session),
        Some(&[("csrf", "forged")]),
        &[],
    )
    .await;
    assert_eq!(res.status, 403);
    let res = fetch(
        &app,
        &base,
        "POST",
        "/console/calls/xss-1/reveal",
        Some(&session),
        Some(&[("csrf", &csrf)]),
        &[],
    )
    .await;
    assert_eq!(res.status, 200);
    assert!(res.body.contains("+46700000000"));
    assert!(res.body.contains("numbers revealed (logged)"));
    assert!(!res.body.contains("<script>alert"));
    // State-changing forms refuse a missing token.
    for path in ["/console/gate/validate", "/console/flows/1/simulate"] {
        let res = fetch(
            &app,
            &base,
            "POST",
            path,
            Some(&session),
            Some(&[("reply", "{}")]),
            &[],
        )
        .await;
        assert_eq!(res.status, 403, "{path}");
    }
}

#[actix_web::test]
async fn every_page_answers_within_the_session_and_errors_are_pages() {
    let app = spawn_app().await;
    let base = app.addr.clone();
    let (session, _) = login(&app, &base).await;
    for path in [
        "/console",
        "/console?window=day",
        "/console/calls",
        "/console/errors",
        "/console/gate?window=day",
        "/console/flows",
    ] {
        let p = fetch(&app, &base, "GET", path, Some(&session), None, &[]).await;
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        assert_eq!(p.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(p
            .header("server-timing")
            .is_some_and(|t| t.starts_with("app;dur=")));
    }
    let missing = fetch(
        &app,
        &base,
        "GET",
        "/console/calls/nope",
        Some(&session),
        None,
        &[],
    )
    .await;
    assert_eq!(missing.status, 404);
    assert!(missing
        .body
        .contains("No events or outbound requests recorded for call nope"));
    assert!(missing.header("content-security-policy").is_some());
    let bad_time = fetch(
        &app,
        &base,
        "GET",
        "/console/calls?from=yesterday",
        Some(&session),
        None,
        &[],
    )
    .await;
    assert_eq!(bad_time.status, 400);
}

// ---------------------------------------------------------------------------------------------
// In Chromium.

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

fn find_binary(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// chromedriver, killed (and its profile removed) on drop.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A test that failed never closed its session: end the browser chromedriver started
        // (the processes whose command line names this test's own profile directory).
        let profile = self.profile.display().to_string();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&profile) {
                // SAFETY: kill(2) on a pid read from /proc; no memory is involved.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn start_driver(driver: &Path) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let profile = std::env::temp_dir().join(format!(
        "svamlgate-chromium-{}",
        uuid::Uuid::new_v4().simple()
    ));
    wait_until(
        "chromedriver listens",
        Duration::from_secs(10),
        async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;
    Driver {
        child,
        port,
        profile,
    }
}

/// Chrome's console messages (chromedriver's log endpoint).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

async fn console_errors(c: &fantoccini::Client) -> Vec<String> {
    let log = c
        .issue_cmd(BrowserLog)
        .await
        .expect("reading the browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &fantoccini::Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// The text of the first element matching `css`, once there is one. A page that reloads
/// meanwhile (a form's answer arriving, the Overview's auto-refresh) makes the element stale: it
/// is then looked up again.
async fn text(c: &fantoccini::Client, css: &str) -> String {
    wait_for(Duration::from_secs(5), async || {
        let element = c
            .wait()
            .for_element(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        element.text().await.map_err(|e| format!("{css}: {e}"))
    })
    .await
}

/// Records what the pages show: a call whose reply the gate refused (fallback sent), a call with a
/// `<script>` in `custom`, a flow with two versions and its route, a gate miss, a signature
/// refusal. Returns the refusal's reference.
async fn seed(app: &TestApp) -> String {
    let url = broken_app().await;
    let route = json!({"name": "support line", "called": "+46700000001",
                       "target": {"kind": "upstream", "url": url, "key": "k", "secretB64": "c2VjcmV0"}});
    assert_eq!(
        app.admin_send("POST", "/admin/routes", Some(&route))
            .await
            .status,
        201
    );
    let flow: Value = serde_json::from_slice(&fixture("flows/ivr.json")).unwrap();
    let created = app.admin_send("POST", "/admin/flows", Some(&flow)).await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["flow"]["id"].as_i64().unwrap();
    let mut v2 = flow.clone();
    v2["description"] = json!("Version 2: a friendlier goodbye.");
    assert_eq!(
        app.admin_send("PUT", &format!("/admin/flows/{id}"), Some(&v2))
            .await
            .status,
        200
    );
    let route = json!({"name": "main IVR", "called": "+46700000002", "target": {"kind": "flow", "flowId": id}});
    assert_eq!(
        app.admin_send("POST", "/admin/routes", Some(&route))
            .await
            .status,
        201
    );

    // The refused reply: the app's connectPstn has no valid number; the fallback goes out.
    let reply = app
        .post_signed(&ice("call-refused", "+46700000001"))
        .await
        .json();
    assert!(reply["instructions"].is_array(), "the fallback: {reply}");
    // A call answered by the flow, with a script in custom.
    let mut event: Value = serde_json::from_slice(&ice("call-script", "+46700000002")).unwrap();
    event["custom"] = json!("<script>window.__xss = 1</script>");
    assert_eq!(
        app.post_signed(event.to_string().as_bytes()).await.status,
        200
    );
    // A gate miss: the default reply passed, Sinch says it was illegal.
    assert_eq!(
        app.post_signed(&ice("call-miss", "+15559999")).await.status,
        200
    );
    let notify = json!({"event": "notify", "callid": "call-miss", "version": 1, "type": "callingerror",
                        "errorCode": 40001, "errorMsg": "Illegal SVAML: unknown action"});
    assert_eq!(
        app.post_signed(notify.to_string().as_bytes()).await.status,
        200
    );
    // A signature refusal.
    let bad = app
        .post_raw(
            &app.config.callback_path.clone(),
            &ice("call-forged", "+46700000001"),
            &[
                (
                    "authorization",
                    "Application 669E367E-6BBA-48AB-AF15-266871C28135:AAAA",
                ),
                (
                    "x-timestamp",
                    &svamlgate::signature::format_timestamp(time::OffsetDateTime::now_utc()),
                ),
                ("content-type", "application/json; charset=utf-8"),
            ],
        )
        .await;
    let reference = bad.assert_envelope(401, 40102);
    app.wait_error(&reference).await;
    // Every record is in PostgreSQL before the browser looks (a loaded machine ships late).
    for callid in ["call-refused", "call-script", "call-miss"] {
        let path = format!("/admin/calls/{callid}");
        wait_until(
            &format!("{callid} is recorded"),
            Duration::from_secs(10),
            async || {
                let r = app.admin_get(&path).await;
                r.status == 200
                    && (callid != "call-miss"
                        || r.json()["events"].as_array().map_or(0, Vec::len) == 2)
            },
        )
        .await;
    }
    reference
}

#[actix_web::test]
async fn the_console_in_chromium() {
    let (Some(chromium), Some(chromedriver)) = (
        find_binary(&[
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            "/usr/bin/google-chrome",
        ]),
        find_binary(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]),
    ) else {
        eprintln!("SKIPPED the_console_in_chromium: no chromium and chromedriver found (apt-get install -y chromium chromium-driver)");
        return;
    };
    let app = spawn_app().await;
    let refusal = seed(&app).await;
    // The seeded gate miss fires its alert (on the alerts thread): the overview lists it.
    wait_until(
        "the gate miss alert fires",
        Duration::from_secs(30),
        async || {
            app.state
                .alerts
                .list()
                .firing
                .iter()
                .any(|a| a.rule.as_str() == "gate_miss")
        },
    )
    .await;
    let driver = start_driver(&chromedriver).await;
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({
        "binary": chromium,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000",
                 format!("--user-data-dir={}", driver.profile.display())],
    }));
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let c =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a Chromium session");
    let base = format!("http://{}", app.addr);
    tour(&c, &base, &refusal).await;
    let errors = console_errors(&c).await;
    c.close().await.ok();
    assert!(
        errors.is_empty(),
        "errors in the browser console: {errors:#?}"
    );
}

async fn tour(c: &fantoccini::Client, base: &str, refusal: &str) {
    use fantoccini::Locator::{Css, Id, LinkText};
    // Not logged in: the login form.
    c.goto(&format!("{base}/console/calls")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/console/login");
    c.find(Id("token"))
        .await
        .unwrap()
        .send_keys("wrong")
        .await
        .unwrap();
    c.find(Id("login")).await.unwrap().click().await.unwrap();
    assert_eq!(text(c, "#login-error").await, "Wrong token");
    // The wrong token's answer is a 401, which Chrome logs; nothing else may be there (the log
    // endpoint hands each entry out once).
    let expected = console_errors(c).await;
    assert!(
        expected.len() == 1
            && expected[0].contains("/console/login")
            && expected[0].contains("401"),
        "{expected:#?}"
    );
    shot(c, "login").await;
    c.find(Id("token"))
        .await
        .unwrap()
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    c.find(Id("login")).await.unwrap().click().await.unwrap();
    c.wait()
        .for_element(Id("alerts"))
        .await
        .expect("the overview after login");
    assert_eq!(c.current_url().await.unwrap().path(), "/console");

    // Overview.
    let firing = text(c, "#firing-alerts").await;
    assert!(firing.contains("gate_miss"), "{firing}");
    let callbacks = text(c, "#t-callbacks .value").await;
    assert!(callbacks.parse::<u64>().unwrap() >= 4, "{callbacks}");
    assert_eq!(text(c, "#t-refused .value").await, "1");
    assert_eq!(text(c, "#t-misses .value").await, "1");
    assert_eq!(text(c, "#t-signature .value").await, "1");
    assert!(text(c, "#by-reason").await.contains("invalid"));
    c.find(Css("figure.chart svg polyline"))
        .await
        .expect("a chart");
    shot(c, "overview").await;

    // Calls: find the refused call by its called number.
    c.find(LinkText("Calls"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Css("input[name=called]"))
        .await
        .unwrap()
        .send_keys("+46700000001")
        .await
        .unwrap();
    c.find(Id("search")).await.unwrap().click().await.unwrap();
    let results = text(c, "#results").await;
    assert!(
        results.contains("call-refused") && results.contains("+467******01"),
        "{results}"
    );
    assert!(!results.contains("call-script"));
    shot(c, "calls").await;
    c.find(LinkText("call-refused"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Its timeline: the refused reply (the violating pointer marked) and the fallback.
    let refused = text(c, "#timeline .refused").await;
    assert!(
        refused.contains("Refused reply (from upstream)"),
        "{refused}"
    );
    // The error's pointer is marked (a warning on the same reply may be marked too).
    let mut titles = Vec::new();
    for m in c
        .find_all(Css("#timeline .refused mark.violation"))
        .await
        .expect("the violating pointers marked")
    {
        titles.push(m.attr("title").await.unwrap().unwrap_or_default());
    }
    assert!(titles.iter().any(|t| t == "/instructions"), "{titles:?}");
    assert!(text(c, "#timeline .reply h3")
        .await
        .contains("Fallback sent instead"));
    assert!(text(c, "#timeline").await.contains("fallback: invalid"));
    assert!(
        text(c, "#diagnosis").await.contains("svaml_valid")
            || text(c, "#diagnosis").await.contains("SVAML")
    );
    c.find(Css("#timeline details.replay summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(c, "#replay-0")
        .await
        .contains("svamlgate sign --path /sinch/callback --send"));
    c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    shot(c, "call").await;

    // The script in custom is text, and did not run.
    c.goto(&format!("{base}/console/calls/call-script"))
        .await
        .unwrap();
    c.find(Css("#timeline details.body summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(c, "#timeline details.body")
        .await
        .contains("<script>window.__xss = 1</script>"));
    let ran = c
        .execute("return typeof window.__xss", vec![])
        .await
        .unwrap();
    assert_eq!(ran, json!("undefined"));

    // Errors: paste the refusal's reference.
    c.find(LinkText("Errors"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Id("reference"))
        .await
        .unwrap()
        .send_keys(refusal)
        .await
        .unwrap();
    c.find(Id("lookup")).await.unwrap().click().await.unwrap();
    let record = text(c, "#record").await;
    assert!(
        record.contains("40102") && record.contains("signature_mismatch"),
        "{record}"
    );
    assert!(text(c, "#by-code").await.contains("42202"));
    shot(c, "errors").await;

    // Gate: the rule that refused, the miss, and a pasted reply.
    c.find(LinkText("Gate"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(c, "#misses").await.contains("call-miss"));
    let reply = c.find(Id("reply")).await.unwrap();
    reply.clear().await.unwrap();
    reply
        .send_keys(r#"{"instructions": "say hello", "action": {"name": "hangup"}}"#)
        .await
        .unwrap();
    c.find(Id("validate")).await.unwrap().click().await.unwrap();
    assert!(text(c, "#validation").await.contains("invalid"));
    c.find(Css("#validation mark.violation"))
        .await
        .expect("the pointer marked");
    shot(c, "gate").await;

    // Flows and routes: the tree, the diff, the simulator.
    c.find(LinkText("Flows & routes"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let routes = text(c, "#routes").await;
    assert!(
        routes.contains("support line") && routes.contains("main IVR"),
        "{routes}"
    );
    shot(c, "flows").await;
    c.find(LinkText("Example Corp IVR"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(c, "#tree").await.contains("welcome"));
    c.find(Id("simulate")).await.unwrap().click().await.unwrap();
    assert!(text(c, "#sim-result").await.contains("passes the gate"));
    shot(c, "flow").await;
    c.find(Id("diff-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(c, "#diff tr.ins").await.contains("friendlier goodbye"));

    // Log out: back to the login form, and the pages are closed.
    c.find(Css("form.logout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Id("token"))
        .await
        .expect("the login form after logout");
    assert_eq!(c.current_url().await.unwrap().path(), "/console/login");
    c.goto(&format!("{base}/console")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/console/login");
}
