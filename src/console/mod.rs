//! The operator console at `/console`: server-rendered HTML pages over the records (the same
//! queries as the admin API, plus the counts of migration 0012), a little plain JavaScript served
//! as a static file (auto-refresh, copy to clipboard), and SVG charts drawn on the server.
//!
//! - [`auth`]: the session cookie made by logging in with the admin token, CSRF tokens, and the
//!   throttle on wrong tokens that the admin API's bearer check shares.
//! - [`listeners`]: the operator listener (`SVAMLGATE_ADMIN_LISTEN`): when it is set, the public
//!   listener answers only the callback path and `/healthz`.
//! - [`pages`]: Overview, Calls (search and one call), Errors, Gate, Flows and routes.
//! - [`view`]: the page frame, JSON with violating pointers marked, masking, charts.
//! - [`queries`]: the reads no admin endpoint has.
//!
//! Every response of the console carries a Content-Security-Policy without inline script
//! (`default-src 'self'`, `frame-ancestors 'none'`), `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer`, `Cache-Control: no-store`, and `Server-Timing` (the server
//! time the benchmark reads).

pub mod auth;
pub mod listeners;
pub mod pages;
pub mod queries;
pub mod view;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use serde::Deserialize;

use crate::app::AppState;
use crate::catalog::code;
use crate::error::ApiError;
use auth::{Session, Sessions, Throttle, LOGIN_COOKIE, SESSION_COOKIE};

/// The console's shared state: sessions and the wrong-token throttle (one per process, shared by
/// every worker; the admin API's bearer check uses the same throttle).
#[derive(Debug)]
pub struct Console {
    /// Logged-in operators.
    pub sessions: Sessions,
    /// Wrong tokens per peer.
    pub throttle: Throttle,
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// The last count of calls in progress.
    pub in_progress: InProgress,
}

/// How old the count of calls in progress may be before a page starts a recount.
pub const IN_PROGRESS_MAX_AGE: Duration = Duration::from_secs(5);

/// The count of calls in progress (against `SINCH_MAX_CALLS_IN_PROGRESS`), kept for the pages:
/// counting scans the last hours of callbacks, so a page shows the last count with its age and a
/// stale count is recounted in the background, off the page's time.
#[derive(Debug, Default)]
pub struct InProgress {
    last: std::sync::Mutex<Option<(Instant, i64)>>,
    counting: std::sync::atomic::AtomicBool,
}

impl InProgress {
    fn last(&self) -> Option<(Instant, i64)> {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, n: i64) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), n));
    }
}

/// The count of calls in progress and its age: counted now when there is none yet, else the last
/// count (recounted in the background when older than [`IN_PROGRESS_MAX_AGE`]).
pub async fn calls_in_progress(
    state: &web::Data<AppState>,
    console: &web::Data<Console>,
) -> Option<(i64, Duration)> {
    use std::sync::atomic::Ordering;
    let limits = state.sinch.limits();
    let store = crate::db::outbound::OutboundStore::new(state.store.pool().clone());
    match console.in_progress.last() {
        None => {
            let n = store.count_in_progress(&limits).await.ok()?;
            console.in_progress.set(n);
            Some((n, Duration::ZERO))
        }
        Some((at, n)) => {
            if at.elapsed() > IN_PROGRESS_MAX_AGE
                && !console.in_progress.counting.swap(true, Ordering::AcqRel)
            {
                let console = console.clone();
                tokio::spawn(async move {
                    if let Ok(n) = store.count_in_progress(&limits).await {
                        console.in_progress.set(n);
                    }
                    console.in_progress.counting.store(false, Ordering::Release);
                });
            }
            Some((n, at.elapsed()))
        }
    }
}

impl Console {
    /// A console whose sessions last `session_ttl`.
    pub fn new(session_ttl: Duration) -> Console {
        Console {
            sessions: Sessions::default(),
            throttle: Throttle::default(),
            session_ttl,
            in_progress: InProgress::default(),
        }
    }
}

/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const JS: &str = include_str!("static/console.js");
const CSS: &str = include_str!("static/console.css");
const FAVICON: &str = include_str!("static/favicon.svg");

/// Registers the console under `/console` (plain actix routes: the console is not part of the
/// admin API's OpenAPI document).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .wrap(from_fn(security_headers))
            .route("/static/console.js", web::get().to(js))
            .route("/static/console.css", web::get().to(css))
            .route("/static/favicon.svg", web::get().to(favicon))
            .route("/login", web::get().to(login_form))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .configure(pages::routes)
            .default_service(web::to(not_found)),
    );
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(JS)
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(CSS)
}

async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .body(FAVICON)
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, PageError> {
    Err(PageError(ApiError::not_found(format!(
        "No console page {}",
        req.path()
    ))))
}

/// The security headers, and the server time of the page.
async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={ms:.3}")) {
        h.insert(header::HeaderName::from_static("server-timing"), v);
    }
    Ok(res)
}

/// An error shown as an HTML page: the status, message and reference of the [`ApiError`] (which is
/// recorded like any other error envelope).
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        PageError(ApiError::from(e))
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let res = self.0.error_response();
        let e = &self.0;
        let body = view::bare_page(
            "Something went wrong",
            html! {
                p { (e.message) }
                p { "Error " code { (e.code) } ", reference " code #ref { (e.reference) } }
                p { a href="/console" { "Back to the overview" } " · " a href=(format!("/console/errors?reference={}", e.reference)) { "Look up this reference" } }
            },
        )
        .into_string();
        let mut res = res.set_body(body).map_into_boxed_body();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        res
    }
}

/// An HTML page response.
pub fn ok(markup: Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

fn peer(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Whether the browser reached svamlgate over https (directly, or through a proxy that says so
/// with `X-Forwarded-Proto: https` or `Forwarded: proto=https`): cookies get `Secure`.
fn over_https(req: &HttpRequest) -> bool {
    if req.connection_info().scheme() == "https" {
        return true;
    }
    let h = req.headers();
    h.get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
        || h.get("forwarded")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"))
}

fn cookie(req: &HttpRequest, name: &str, value: &str, max_age: u64) -> String {
    let secure = if over_https(req) { "; Secure" } else { "" };
    format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

fn cookie_of(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie_value(h, name).map(str::to_owned))
}

/// The state pieces every page needs.
pub struct Ctx {
    /// The app.
    pub state: web::Data<AppState>,
    /// The console.
    pub console: web::Data<Console>,
    /// The operator's session.
    pub session: Session,
}

/// Why a page was not shown.
pub enum Denied {
    /// Not logged in: go to the login form.
    Login,
    /// An error page.
    Error(PageError),
}

impl From<Denied> for HttpResponse {
    fn from(d: Denied) -> HttpResponse {
        match d {
            Denied::Login => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/console/login"))
                .finish(),
            Denied::Error(e) => e.error_response(),
        }
    }
}

fn shared(req: &HttpRequest) -> Result<(web::Data<AppState>, web::Data<Console>), Denied> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let console = req.app_data::<web::Data<Console>>().cloned();
    match (state, console) {
        (Some(s), Some(c)) if s.admin_token_digest.is_some() => Ok((s, c)),
        (Some(_), Some(_)) => Err(Denied::Error(PageError(ApiError::new(
            code::FORBIDDEN,
            "The console is disabled: set SVAMLGATE_ADMIN_TOKEN to enable it",
        )))),
        _ => Err(Denied::Error(PageError(ApiError::new(
            code::INTERNAL_ERROR,
            "The console is not set up",
        )))),
    }
}

/// The logged-in operator's context, or where to send them.
pub fn session(req: &HttpRequest) -> Result<Ctx, Denied> {
    let (state, console) = shared(req)?;
    let session = cookie_of(req, SESSION_COOKIE)
        .and_then(|c| console.sessions.get(&c))
        .ok_or(Denied::Login)?;
    Ok(Ctx {
        state,
        console,
        session,
    })
}

/// Checks the CSRF token of a state-changing form.
pub fn check_csrf(ctx: &Ctx, given: &str) -> Result<(), PageError> {
    if auth::same_token(&ctx.session.csrf, given) {
        Ok(())
    } else {
        Err(PageError(ApiError::new(
            code::FORBIDDEN,
            "The form's CSRF token is missing or stale: reload the page and try again",
        )))
    }
}

fn login_page(csrf: &str, message: Option<&str>) -> Markup {
    view::bare_page(
        "Log in",
        html! {
            @if let Some(m) = message { p.bad #login-error { (m) } }
            form.login method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "Admin token (SVAMLGATE_ADMIN_TOKEN)" }
                input type="password" id="token" name="token" autocomplete="current-password" required autofocus;
                button type="submit" id="login" { "Log in" }
            }
        },
    )
}

async fn login_form(req: HttpRequest) -> HttpResponse {
    if let Err(d) = shared(&req) {
        return d.into();
    }
    if session(&req).is_ok() {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/console"))
            .finish();
    }
    let csrf = auth::random_token();
    let mut res = ok(login_page(&csrf, None));
    if let Ok(v) = HeaderValue::from_str(&cookie(&req, LOGIN_COOKIE, &csrf, 3600)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The login form.
#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    csrf: String,
}

async fn login(req: HttpRequest, form: web::Form<LoginForm>) -> HttpResponse {
    let (state, console) = match shared(&req) {
        Ok(x) => x,
        Err(d) => return d.into(),
    };
    let Some(expected) = state.admin_token_digest else {
        return HttpResponse::Forbidden().finish();
    };
    let ip = peer(&req);
    let fresh_form = |status: actix_web::http::StatusCode, message: &str| {
        let csrf = auth::random_token();
        let mut res = ok(login_page(&csrf, Some(message)));
        *res.status_mut() = status;
        if let Ok(v) = HeaderValue::from_str(&cookie(&req, LOGIN_COOKIE, &csrf, 3600)) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        res
    };
    if let Err(wait) = console.throttle.check(ip) {
        tracing::warn!(peer = %ip, "console login refused: too many wrong tokens");
        let mut res = fresh_form(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many wrong tokens: try again in {} s",
                wait.as_secs().max(1)
            ),
        );
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return res;
    }
    let login_csrf = cookie_of(&req, LOGIN_COOKIE).unwrap_or_default();
    if login_csrf.is_empty() || !auth::same_token(&login_csrf, &form.csrf) {
        return fresh_form(
            actix_web::http::StatusCode::FORBIDDEN,
            "The login form expired: log in again",
        );
    }
    if !auth::is_admin_token(form.token.trim(), &expected) {
        let wait = console.throttle.fail(ip);
        tracing::warn!(peer = %ip, blocked_secs = wait.as_secs(), "console login with a wrong token");
        return fresh_form(actix_web::http::StatusCode::UNAUTHORIZED, "Wrong token");
    }
    console.throttle.succeed(ip);
    let (value, _) = console.sessions.create(console.session_ttl);
    tracing::info!(peer = %ip, "console login");
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console"))
        .finish();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&cookie(
        &req,
        SESSION_COOKIE,
        &value,
        console.session_ttl.as_secs(),
    )) {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cookie(&req, LOGIN_COOKIE, "", 0)) {
        h.append(header::SET_COOKIE, v);
    }
    res
}

/// A form that carries only its CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

async fn logout(req: HttpRequest, form: web::Form<CsrfForm>) -> HttpResponse {
    let ctx = match session(&req) {
        Ok(c) => c,
        Err(d) => return d.into(),
    };
    if let Err(e) = check_csrf(&ctx, &form.csrf) {
        return e.error_response();
    }
    if let Some(c) = cookie_of(&req, SESSION_COOKIE) {
        ctx.console.sessions.remove(&c);
    }
    tracing::info!(peer = %peer(&req), "console logout");
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/login"))
        .finish();
    if let Ok(v) = HeaderValue::from_str(&cookie(&req, SESSION_COOKIE, "", 0)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// For the admin API's bearer check: `Err(envelope)` while the peer is blocked for wrong tokens.
pub fn admin_throttled(req: &ServiceRequest) -> Result<(), ApiError> {
    let (Some(console), Some(addr)) = (req.app_data::<web::Data<Console>>(), req.peer_addr())
    else {
        return Ok(());
    };
    console.throttle.check(addr.ip()).map_err(|wait| {
        ApiError::new(
            code::VELOCITY_CONSTRAINT,
            format!(
                "Too many wrong admin tokens from this address: try again in {} s",
                wait.as_secs().max(1)
            ),
        )
    })
}

/// For the admin API's bearer check: notes a right (`true`) or wrong token from the peer.
pub fn admin_token_seen(req: &ServiceRequest, right: bool) {
    let (Some(console), Some(addr)) = (req.app_data::<web::Data<Console>>(), req.peer_addr())
    else {
        return;
    };
    if right {
        console.throttle.succeed(addr.ip());
    } else {
        let wait = console.throttle.fail(addr.ip());
        tracing::warn!(peer = %addr.ip(), blocked_secs = wait.as_secs(), "admin API called with a wrong token");
    }
}
