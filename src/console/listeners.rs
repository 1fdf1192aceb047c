//! The operator listener. With `SVAMLGATE_ADMIN_LISTEN` set (e.g. `127.0.0.1:9090`), svamlgate
//! listens twice: the public listener (`SVAMLGATE_LISTEN`, the callback URL Sinch reaches) answers
//! only the callback path and `/healthz`; the operator listener answers everything (admin API,
//! console, metrics, readiness). Without it, one listener answers everything, as before.

use std::net::SocketAddr;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::error::ApiError;

/// Where the operator listener listens (None: there is none).
#[derive(Debug, Clone)]
pub struct Listeners {
    /// The bound address of the operator listener.
    pub admin: Option<SocketAddr>,
    /// The callback path.
    callback_path: String,
}

impl Listeners {
    /// The listeners of a server whose callback path is `callback_path`.
    pub fn new(admin: Option<SocketAddr>, callback_path: &str) -> Listeners {
        Listeners {
            admin,
            callback_path: callback_path.to_owned(),
        }
    }

    /// Whether a request for `path` that arrived on `local` is answered.
    pub fn allows(&self, local: SocketAddr, path: &str) -> bool {
        match self.admin {
            None => true,
            Some(admin) if admin == local => true,
            Some(_) => path == self.callback_path || path == "/healthz",
        }
    }
}

/// Answers 404 (a Sinch envelope) on the public listener for everything but the callback path and
/// `/healthz`, when an operator listener is set.
pub async fn only_public_paths(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let allowed = match req.app_data::<web::Data<Listeners>>() {
        Some(l) => l.allows(req.app_config().local_addr(), req.path()),
        None => true,
    };
    if allowed {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let e = ApiError::not_found(format!(
        "No route for {} {} on this listener",
        req.method(),
        req.path()
    ));
    Ok(req.into_response(e.error_response()).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_listener_answers_only_callbacks_and_healthz() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let admin: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let l = Listeners::new(Some(admin), "/sinch/callback");
        assert!(l.allows(public, "/sinch/callback"));
        assert!(l.allows(public, "/healthz"));
        for p in [
            "/admin/events",
            "/console",
            "/metrics",
            "/readyz",
            "/sinch/callback/x",
        ] {
            assert!(!l.allows(public, p), "{p}");
            assert!(l.allows(admin, p), "{p}");
        }
        let one = Listeners::new(None, "/sinch/callback");
        assert!(one.allows(public, "/admin/events"));
    }
}
