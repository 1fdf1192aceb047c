//! `GET /admin/openapi.json`: the OpenAPI document of the whole admin API, written by hand in
//! `src/http/openapi.json` and checked by a test against the routes that exist.

use actix_web::HttpResponse;

/// The document, embedded at build time.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// Serves the document.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT)
}
