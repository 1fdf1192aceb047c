//! The HTTP layer: translates between HTTP and the core ([`crate::callback`], the store, the gate).
//! One middleware gives every request a span (method, path, event, callid, reference), request metrics,
//! and the recording of every error envelope in the errors table.

pub mod admin;
pub mod admin_flows;
pub mod admin_gate;
pub mod admin_sinch;
pub mod callback;
pub mod health;
pub mod openapi;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpServer};
use tracing::Instrument;

use crate::app::AppState;
use crate::error::{ApiError, ErrorRecord};

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig, callback_path: &str) {
    cfg.service(
        web::resource(callback_path)
            .route(web::post().to(callback::receive))
            .default_service(web::to(callback::wrong_method)),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .service(
        web::scope("/admin")
            .wrap(from_fn(admin::require_admin))
            .configure(admin::routes),
    );
}

/// Answers every unknown route with 404 40400.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "No route for {} {}",
        req.method(),
        req.path()
    )))
}

fn bad_parameter(message: String) -> actix_web::Error {
    ApiError::new(crate::catalog::code::PARAMETER_VALIDATION, message).into()
}

/// Builds and starts the server on an already bound listener (port 0 in tests).
pub fn serve(state: web::Data<AppState>, listener: TcpListener) -> std::io::Result<Server> {
    let callback_path = state.config.callback_path.clone();
    let workers = state.config.workers;
    let shutdown = state.config.shutdown_timeout_secs;
    let mut server = HttpServer::new(move || {
        let path = callback_path.clone();
        App::new()
            .app_data(state.clone())
            .app_data(web::PathConfig::default().error_handler(|e, _| bad_parameter(e.to_string())))
            .app_data(
                web::QueryConfig::default().error_handler(|e, _| bad_parameter(e.to_string())),
            )
            .wrap(from_fn(observe))
            .configure(move |cfg| routes(cfg, &path))
            .default_service(web::to(not_found))
    })
    .listen(listener)?
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
