//! The HTTP layer: translates between HTTP and the core ([`crate::callback`], the store, the gate).
//!
//! - [`build`] is the one startup path (`svamlgate serve`, the tests, the benchmark through the
//!   binary): the state, then the server.
//! - [`routes`] registers every route; the OpenAPI document ([`openapi`]) is collected from that
//!   same registration.
//! - [`extract`] holds what handlers take from a request (bounded bodies, typed JSON, path and
//!   query parameters) and answers what does not fit with a Sinch error envelope.
//! - One middleware gives every request a span (method, path, event, callid, reference), request
//!   metrics, and the recording of every error envelope in the errors table.

pub mod admin;
pub mod admin_alerts;
pub mod admin_flow_changes;
pub mod admin_flows;
pub mod admin_gate;
pub mod admin_refusals;
pub mod admin_sinch;
pub mod callback;
pub mod extract;
pub mod fresh;
pub mod health;
pub mod openapi;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpServer};
use tracing::Instrument;
use utoipa_actix_web::{scope, AppExt};

use crate::app::AppState;
use crate::config::ServeArgs;
use crate::db::store::Store;
use crate::error::{ApiError, ErrorRecord};
use crate::svaml::Validator;

/// Registers every route on `app` and returns it with the operations of the registered handlers.
/// The callback path is configurable, so it is registered by hand (and documented at its default,
/// see [`openapi::ApiDoc`]); every other route is registered as a documented handler
/// (`.service(handler)`), never with `.route(...)`, so it cannot be missing from the document.
pub fn routes<T>(app: App<T>, callback_path: &str) -> (App<T>, utoipa::openapi::OpenApi)
where
    T: actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Error = actix_web::Error,
        InitError = (),
    >,
{
    app.service(
        web::resource(callback_path)
            .route(web::post().to(callback::receive))
            .default_service(web::to(callback::wrong_method)),
    )
    .into_utoipa_app()
    .service(health::healthz)
    .service(health::readyz)
    .service(health::metrics)
    .service(
        scope::scope("/admin")
            .wrap(from_fn(fresh::read_your_writes))
            .wrap(from_fn(admin::require_admin))
            .configure(admin::routes),
    )
    .split_for_parts()
    // The operator console: HTML pages, not part of the OpenAPI document.
    .map_first(|app| app.configure(crate::console::routes))
}

/// `(a, b)` with `f` applied to `a`.
trait MapFirst<A, B> {
    fn map_first<C>(self, f: impl FnOnce(A) -> C) -> (C, B);
}

impl<A, B> MapFirst<A, B> for (A, B) {
    fn map_first<C>(self, f: impl FnOnce(A) -> C) -> (C, B) {
        (f(self.0), self.1)
    }
}

/// The OpenAPI document of the routes [`routes`] registers.
pub fn openapi_document() -> serde_json::Result<serde_json::Value> {
    let (_, collected) = routes(App::new(), "/sinch/callback");
    openapi::document(collected)
}

/// The routes of the admin API, `(METHOD, path)`, as registered (for tests and tooling).
pub fn admin_routes() -> Vec<(String, String)> {
    let (_, collected) = routes(App::new(), "/sinch/callback");
    let mut out = Vec::new();
    for (path, item) in collected.paths.paths {
        if !path.starts_with("/admin/") {
            continue;
        }
        let methods = [
            ("GET", item.get.is_some()),
            ("PUT", item.put.is_some()),
            ("POST", item.post.is_some()),
            ("DELETE", item.delete.is_some()),
            ("PATCH", item.patch.is_some()),
        ];
        for (method, present) in methods {
            if present {
                out.push((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// Answers every unknown route with 404 40400.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "No route for {} {}",
        req.method(),
        req.path()
    )))
}

/// A started svamlgate: its state, its HTTP server (to be awaited) and the address it listens on.
pub struct Application {
    /// Shared state (the shipper runs until [`AppState::shutdown`]).
    pub state: web::Data<AppState>,
    /// The running server; awaiting it waits for SIGINT/SIGTERM or a stop through its handle.
    pub server: Server,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where the operator listener listens (SVAMLGATE_ADMIN_LISTEN), if there is one.
    pub admin_addr: Option<SocketAddr>,
}

/// The one startup path (`svamlgate serve`, the tests, the benchmarks through the binary): builds
/// the state from the configuration ([`AppState::build`]) and starts the server on an already bound
/// listener (port 0 in tests). `cluster` is the embedded PostgreSQL's supervisor, when there is one.
pub async fn build(
    config: ServeArgs,
    store: Store,
    validator: Arc<Validator>,
    cluster: Option<Arc<crate::db::cluster::Health>>,
    listener: TcpListener,
) -> anyhow::Result<Application> {
    let mut state = AppState::build(config, store, validator).await?;
    if let Some(c) = &cluster {
        state.alerts.watch_cluster(c.clone());
        // The embedded cluster's dirty pages go out while the shipper is caught up (at most a
        // batch behind), and the thread ends with this state.
        let status = Arc::downgrade(&state.recorder.status);
        crate::db::writeback::spawn(c.clone(), move || {
            status
                .upgrade()
                .map(|s| s.lag_records() <= crate::recording::shipper::BATCH as u64)
        })?;
    }
    state.cluster = cluster;
    let state = web::Data::new(state);
    crate::canary::spawn(&state);
    let addr = listener.local_addr()?;
    let admin_listener = match state.config.admin_listen {
        Some(a) => Some(TcpListener::bind(a).map_err(|e| {
            anyhow::anyhow!("binding the operator listener SVAMLGATE_ADMIN_LISTEN={a}: {e}")
        })?),
        None => None,
    };
    let admin_addr = admin_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let server = serve(state.clone(), listener, admin_listener)?;
    Ok(Application {
        state,
        server,
        addr,
        admin_addr,
    })
}

/// Starts the server for `state` on `listener`.
fn serve(
    state: web::Data<AppState>,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
) -> anyhow::Result<Server> {
    let callback_path = state.config.callback_path.clone();
    let admin_addr = admin_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let listeners = web::Data::new(crate::console::listeners::Listeners::new(
        admin_addr,
        &callback_path,
    ));
    let console = web::Data::new(crate::console::Console::new(Duration::from_secs(
        state.config.console_session_secs,
    )));
    let workers = state.config.workers;
    let shutdown = state.config.shutdown_timeout_secs;
    let document = serde_json::to_string(&openapi_document()?)?;
    let document = web::Data::new(openapi::Served(document));
    let mut server = HttpServer::new(move || {
        let app = App::new()
            .app_data(state.clone())
            .app_data(document.clone())
            .app_data(extract::path_config())
            .app_data(extract::query_config())
            .app_data(extract::json_config())
            .app_data(listeners.clone())
            .app_data(console.clone())
            .wrap(from_fn(crate::console::listeners::only_public_paths))
            .wrap(from_fn(observe));
        let (app, _) = routes(app, &callback_path);
        app.default_service(web::to(not_found))
    })
    .listen(listener)?;
    if let Some(admin) = admin_listener {
        server = server.listen(admin)?;
    }
    let mut server = server
        .shutdown_timeout(shutdown)
        .client_request_timeout(Duration::from_secs(10));
    if let Some(w) = workers {
        server = server.workers(w);
    }
    Ok(server.run())
}

/// Span, metrics and error recording for every request.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let peer = req.peer_addr().map(|a| a.to_string());
    let span = tracing::info_span!(
        "request",
        method = %method,
        path = %path,
        event = tracing::field::Empty,
        callid = tracing::field::Empty,
        reference = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    // Handlers' errors are already responses here; only middleware errors are Err, and ours never fail.
    let res = next.call(req).instrument(span.clone()).await?;
    let status = res.status().as_u16();
    span.record("status", status);
    if let Some(state) = state {
        let pattern = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let status_s = status.to_string();
        let labels = [
            ("route", pattern.as_str()),
            ("method", method.as_str()),
            ("status", status_s.as_str()),
        ];
        state.metrics.inc("svamlgate_http_requests_total", &labels);
        state.metrics.observe(
            "svamlgate_http_request_duration_seconds",
            &[("route", pattern.as_str())],
            started.elapsed(),
        );
        if let Some(record) = res.response().extensions().get::<ErrorRecord>() {
            let mut record = record.clone();
            record.method = Some(method.clone());
            record.path = Some(path.clone());
            record.remote_addr = peer;
            span.record("reference", record.reference.as_str());
            state.recorder.error_in_background(record);
        }
    }
    if status >= 500 {
        span.in_scope(|| tracing::error!(status, "request failed"));
    }
    Ok(res)
}
