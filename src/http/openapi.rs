//! `GET /admin/openapi.json`: the OpenAPI document of the admin API and the service endpoints.
//!
//! The document is generated (utoipa). Each operation comes from the `#[utoipa::path]` attribute of
//! its handler; [`super::routes`] registers the handlers through `utoipa-actix-web`, so the routes
//! that exist and the operations of the document come from the same list. [`ApiDoc`] adds what is
//! not an operation: the title, the tags, the bearer scheme and the error [`Envelope`].
//!
//! The bodies are described by the types they are made of: each derives `utoipa::ToSchema` where
//! it is defined (storage rows in `db`, flows and routes in `flows`, the SVAML report in `svaml`,
//! the diagnosis, the catalog, the vocabulary of `outcome`), with `#[schema(...)]` where the serde
//! output needs saying (RFC 3339 times, texts of enums, `&'static str` fields). JSON that svamlgate
//! passes on from Sinch (`sinch_api::bodies`) is described by types that are never built; every
//! read of the database is a typed row, so its type describes it. A handler names a
//! type in its `#[utoipa::path]` and the type's schema, and those it refers to, become components;
//! [`ApiDoc`] lists them as well.
//!
//! The shared error responses (all an [`Envelope`]) are declared once below, each with its
//! examples; handlers name them through the marker types of [`responses`].
//!
//! [`document`] adds what every operation shares rather than repeating it per handler: the
//! answers of the admin middleware and of an unexpected failure (401, 403, 500) on every admin
//! operation, and no security requirement on the service endpoints.

use actix_web::{get, web, HttpResponse};
use serde_json::{json, Value};
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Components, ContentBuilder, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder,
};
use utoipa::{Modify, OpenApi};

use crate::catalog;
use crate::error::Envelope;

/// Declares the shared error responses: a marker type per response, which handlers name in their
/// `responses(...)` (it stands for a `$ref` to the component), and [`shared_responses`], the
/// components themselves (an [`Envelope`] with a description and named examples).
macro_rules! shared_responses {
    ($(
        $(#[$meta:meta])*
        $name:ident: $description:literal { $($example:literal => $value:expr),+ $(,)? }
    )*) => {
        /// Shared error response markers.
        pub mod responses {
            use super::*;
            $(
                $(#[$meta])*
                #[doc = concat!("The shared `", stringify!($name), "` error response (an `Envelope`).")]
                pub struct $name;
                impl<'r> utoipa::ToResponse<'r> for $name {
                    fn response() -> (&'r str, RefOr<Response>) {
                        (stringify!($name), Ref::from_response_name(stringify!($name)).into())
                    }
                }
            )*
        }

        /// The shared error responses, by name.
        fn shared_responses() -> Vec<(&'static str, Response)> {
            vec![$(
                (
                    stringify!($name),
                    envelope_response($description, vec![$(($example, $value)),+]),
                ),
            )*]
        }
    };
}

/// A response whose body is an [`Envelope`], with named examples.
fn envelope_response(description: &str, examples: Vec<(&str, Value)>) -> Response {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Envelope")))
        .examples_from_iter(
            examples
                .into_iter()
                .map(|(name, value)| (name, ExampleBuilder::new().value(Some(value)).build())),
        )
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build()
}

/// An example envelope: the catalog's status line for `code`, the message, a sample reference, and
/// `details` when given.
fn envelope(code: u32, message: &str, details: Option<Value>) -> Value {
    let status = catalog::lookup(code).map(|i| i.status_line());
    let mut v = json!({
        "status": status,
        "errorCode": code,
        "message": message,
        "reference": "01969c1e-7f1a-7cc2-9a55-3b1f0c2d4e5f",
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}

const ADMIN_DISABLED: &str = "The admin API is disabled: set SVAMLGATE_ADMIN_TOKEN to enable it";

shared_responses! {
    BadRequest: "The request is invalid: a bad parameter (40001), a missing one (40002) or an unreadable body (40003)." {
        "parameterValidation" => envelope(40001, "limit must be a positive integer", None),
    }
    FlowRefused: "The body is not a flow document (40003), or the flow was refused (40001) with its `FlowCheck` in `details`." {
        "refused" => envelope(
            40001,
            "The flow was refused: it has structural errors or can emit SVAML that the gate would reject; see details",
            Some(json!({"valid": false, "problems": [{"pointer": "/nodes/welcome/next/sales", "code": "next-target-missing", "severity": "error", "message": "there is no node `sales`"}], "emissions": []})),
        ),
    }
    PublishRefused: "The body is not `{force?, reason?}` (40003); the version has structural errors or a reply the gate refuses (40001, `details.check`, never overridden); or whole-call coverage found errors and `force` was not given (40001, `details.coverage`: the findings with their paths)." {
        "coverage" => envelope(
            40001,
            "The version was not published: coverage found 1 error(s); fix them, or publish with \"force\": true (recorded); see details",
            Some(json!({"coverage": {"valid": false, "errors": 1, "warnings": 0, "problems": [], "findings": [{"severity": "error", "code": "trap-loop", "node": "maze", "pointer": "/nodes/maze/next", "message": "once at node `maze`, no key, digits or silence leads out of the menus: the caller can only hang up", "path": ["ICE → welcome", "press 5 (maze) → maze"], "step": 5}], "unreachedNodes": [], "longestPath": {"steps": 3, "path": [], "exact": true}}})),
        ),
    }
    RouteRefused: "The body is not a route document (40003), the route has problems (40001, `details.problems`), or a flow target names a missing flow (40001, create only)." {
        "refused" => envelope(
            40001,
            "The route was refused; see details",
            Some(json!({"problems": [{"pointer": "/target/secretB64", "code": "route-secret-redacted", "severity": "error", "message": "send the application secret itself: stored secrets are never returned"}]})),
        ),
    }
    Unauthorized: "No bearer token (40100) or a wrong one (40108)." {
        "missing" => envelope(40100, "Missing admin credentials: send Authorization: Bearer <SVAMLGATE_ADMIN_TOKEN>", None),
        "invalid" => envelope(40108, "Admin token is invalid", None),
    }
    AdminDisabled: "The admin API is disabled because SVAMLGATE_ADMIN_TOKEN is not set (40300)." {
        "disabled" => envelope(40300, ADMIN_DISABLED, None),
    }
    NotFound: "Nothing with that id, reference or version (40400)." {
        "notFound" => envelope(40400, "No flow 7", None),
    }
    Conflict: "A name is already taken, a referenced flow does not exist, or the flow is still used by a route (40900)." {
        "nameTaken" => envelope(40900, "A flow with that name already exists", None),
    }
    InternalError: "Unexpected failure (50000); the reference identifies it in the errors table." {
        "internal" => envelope(50000, "Internal error; the reference identifies it for support", None),
    }
    DatabaseUnavailable: "The database did not answer (50300); try again shortly." {
        "unavailable" => envelope(50300, "Database temporarily unavailable; try again shortly", None),
    }
    SinchRefusedLocally: "Refused before it left for Sinch (recorded with outcome refused_locally): a number not in E.164 (40005), a wrong or missing callout field (40001, 40002), inline SVAML or a manage-call body the gate refused (40001, the reports in `details`), an unreadable body (40003); or Sinch answered 400 (`details.sinch`)." {
        "number" => envelope(
            40005,
            "ttsCallout.destination.endpoint is missing its leading plus sign (140******00): send numbers in E.164 format, '+', country code and number, e.g. +46701234567",
            Some(json!({"field": "ttsCallout.destination.endpoint"})),
        ),
    }
    SinchUnauthorized: "No admin token (40100) or a wrong one (40108); or Sinch refused svamlgate's credentials (401xx, Sinch's own body in `details.sinch`)." {
        "sinch" => envelope(
            40102,
            "Sinch refused the request: HTTP 401, read as 401 InvalidSignature: Request has invalid signature",
            Some(json!({"sinch": {"httpStatus": 401, "errorCode": 40102, "status": "401 MissingParameter", "message": "Request has invalid signature", "reference": null, "classifiedCode": 40102, "codeMismatch": false, "remedy": "..."}, "attempts": 1})),
        ),
    }
    SinchForbidden: "The admin API is disabled (40300, no SVAMLGATE_ADMIN_TOKEN); or Sinch answered 403 (`details.sinch`)." {
        "disabled" => envelope(40300, ADMIN_DISABLED, None),
    }
    SinchError: "Sinch answered with an error. The envelope carries the catalog code svamlgate reads the answer as (its HTTP status follows from that code), svamlgate's `reference`, and Sinch's own body under `details.sinch`: `errorCode` as sent (number or string), `status`, `message`, `reference` (for Sinch support), `classifiedCode`, `codeMismatch`." {
        "credit" => envelope(
            40200,
            "Sinch refused the request: HTTP 402, read as 402 PaymentRequired: Not enough credit (Sinch reference 6a3f...)",
            Some(json!({"sinch": {"httpStatus": 402, "errorCode": 40200, "status": "402 PaymentRequired", "message": "Not enough credit", "reference": "6a3f...", "classifiedCode": 40200, "codeMismatch": false, "remedy": "Add credit to the Sinch account, then resend."}, "attempts": 1})),
        ),
    }
    SinchTooMany: "Too many calls in progress (42900, refused locally: the message says how to raise SINCH_MAX_CALLS_IN_PROGRESS; `details` has the count), or Sinch answered 429 (42900, 42901) and retrying did not help or Retry-After was longer than SINCH_API_RETRY_MAX_MS." {
        "cap" => envelope(
            42900,
            "Too many calls in progress: 10 of SINCH_MAX_CALLS_IN_PROGRESS=10 (Sinch's default account limit is 10 concurrent calls). Wait for a call to end, or ask your Sinch account manager to raise the account's limit and then raise SINCH_MAX_CALLS_IN_PROGRESS to match.",
            Some(json!({"inProgress": 10, "limit": 10})),
        ),
    }
    SinchUnavailable: "No answer from Sinch (50300: connection failures, timeouts, after the retries allowed; for a callout that timed out after it was sent, the message says it may have placed the call and was not repeated), Sinch answered 503, key and secret are not configured (50301), or the database did not answer (50300)." {
        "unknown" => envelope(
            50300,
            "Sinch did not answer the callout (timeout: no complete answer within 10000 ms). It may or may not have placed the call, so svamlgate did not send it again: a second attempt could place a second call. Watch for the call's callbacks before placing it again.",
            Some(json!({"failure": "unknown_outcome", "attempts": 1})),
        ),
    }
    SinchConflict: "A callout with the same Idempotency-Key is in flight or its outcome is unknown (40900, the earlier reference in `details`); or Sinch answered 409 (`details.sinch`)." {
        "inFlight" => envelope(
            40900,
            "A callout with this Idempotency-Key is in flight: wait for its answer (reference 01a2...); it is not sent again",
            Some(json!({"earlierReference": "01a2...", "outcome": "pending"})),
        ),
    }
}

/// What an operation that sends a request to Sinch's Calling API can answer besides its success:
/// a local refusal (400), or Sinch's own error read through the catalog.
pub struct SinchFailures;

impl utoipa::IntoResponses for SinchFailures {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        [
            ("400", "SinchRefusedLocally"),
            ("401", "SinchUnauthorized"),
            ("402", "SinchError"),
            ("403", "SinchForbidden"),
            ("404", "SinchError"),
            ("409", "SinchError"),
            ("422", "SinchError"),
            ("429", "SinchTooMany"),
            ("500", "SinchError"),
            ("503", "SinchUnavailable"),
        ]
        .into_iter()
        .map(|(status, name)| (status.to_owned(), Ref::from_response_name(name).into()))
        .collect()
    }
}

/// What the document holds besides its operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "svamlgate admin API",
        description = "Administration of svamlgate, the validating gate for Sinch Voice callbacks: recorded callbacks and errors, the error catalog, SVAML validation, call flows and routes, and calls placed and controlled through Sinch's Calling API (callouts, call and conference control, Sinch's errors, the troubleshooting checklist per call). Every /admin operation needs `Authorization: Bearer <SVAMLGATE_ADMIN_TOKEN>`; without that variable the admin API answers 403. Errors are Sinch error envelopes (`Envelope`). Every time in a body is RFC 3339 in UTC, with `Z` and the stored precision (e.g. `2026-01-31T12:00:01.5Z`). The `service` operations (health, metrics, the callback endpoint) need no admin token."
    ),
    tags(
        (name = "calls", description = "Call timelines."),
        (name = "events", description = "Recorded callbacks."),
        (name = "errors", description = "Recorded errors and the error catalog."),
        (name = "svaml", description = "SVAML validation on demand."),
        (name = "flows", description = "Declarative call flows (versioned)."),
        (name = "routes", description = "Which flow or customer app answers a call."),
        (name = "meta", description = "This document."),
        (name = "service", description = "Health, metrics and the Sinch callback endpoint (no admin token)."),
        (name = "sinch", description = "Talking to Sinch's Calling API: callouts, call and conference control (checked before they leave, retried, recorded), Sinch's errors, calls in progress."),
        (name = "gate", description = "What the gate did, and what Sinch said about it."),
        (name = "alerts", description = "Alerts firing and recent (also delivered to SVAMLGATE_ALERT_WEBHOOKS)."),
    ),
    security(("adminToken" = [])),
    components(schemas(
        Envelope,
        crate::db::store::StoredCallback,
        crate::db::store::StoredError,
        crate::db::store::RejectedReply,
        crate::db::store::GateMiss,
        crate::db::flows::FlowSummary,
        crate::db::outbound::OutboundRequest,
        crate::db::outbound::SinchErrorItem,
        crate::catalog::ErrorCodeInfo,
        crate::svaml::Report,
        crate::flows::model::FlowDoc,
        crate::flows::check::FlowCheck,
        crate::flows::routes::Route,
        crate::flows::render::EventContext,
        crate::diagnosis::Diagnosis,
        crate::sinch_api::bodies::CalloutRequest,
        crate::sinch_api::bodies::CalloutAnswer,
        crate::sinch_api::bodies::ManageCallBody,
        crate::sinch_api::bodies::ParticipantCommand,
        crate::sinch_api::bodies::CallInformation,
        crate::sinch_api::bodies::ConferenceInfo,
        super::fresh::RecordingLag,
    )),
    paths(super::callback::receive),
    modifiers(&AdminDefaults)
)]
pub struct ApiDoc;

/// The bearer scheme of the admin token.
struct AdminDefaults;

impl Modify for AdminDefaults {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Components::new);
        components.add_security_scheme(
            "adminToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The value of SVAMLGATE_ADMIN_TOKEN (compared in constant time).",
                    ))
                    .build(),
            ),
        );
    }
}

fn operations_mut(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The whole document: [`ApiDoc`], the operations collected from the registered handlers (with
/// 401, 403 and 500 on every admin operation that does not document its own), and the shared
/// error responses.
pub fn document(collected: Document) -> serde_json::Result<serde_json::Value> {
    let mut doc = ApiDoc::openapi();
    doc.merge(collected);
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/admin/") {
            // Service endpoints need no admin token: no security requirement at all.
            operations_mut(item).for_each(|op| op.security = Some(Vec::new()));
            continue;
        }
        if super::fresh::waits(&actix_web::http::Method::GET, path) {
            // Read your writes: say how an answer tells that records are missing from it.
            if let Some(op) = item.get.as_mut() {
                for response in op.responses.responses.values_mut() {
                    if let utoipa::openapi::RefOr::T(r) = response {
                        r.headers.insert(
                            super::fresh::LAG_HEADER.to_owned(),
                            utoipa::openapi::header::HeaderBuilder::new()
                                .description(Some(
                                    "Present when records written before the read are not in this answer yet \
                                     (PostgreSQL away, or SVAMLGATE_ADMIN_READ_WAIT_MS ran out): \
                                     `records=N, seconds=S, reason=wait_expired|database_unavailable`. \
                                     A JSON object body then also has `recordingLag` (schema RecordingLag).",
                                ))
                                .build()
                                .into(),
                        );
                    }
                }
            }
        }
        for op in operations_mut(item) {
            for (status, name) in [
                ("401", "Unauthorized"),
                ("403", "AdminDisabled"),
                ("500", "InternalError"),
            ] {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| Ref::from_response_name(name).into());
            }
        }
    }
    let components = doc.components.get_or_insert_with(Components::new);
    for (name, response) in shared_responses() {
        components
            .responses
            .insert(name.to_owned(), response.into());
    }
    serde_json::to_value(&doc)
}

/// The document, serialized once at start.
#[derive(Debug, Clone)]
pub struct Served(pub String);

/// The OpenAPI document of the admin API (this document).
#[utoipa::path(
    operation_id = "getOpenApiDocument",
    tag = "meta",
    responses(
        (status = 200, description = "OpenAPI 3.1 document.", body = Object)
    )
)]
#[get("/openapi.json")]
pub async fn serve_document(doc: web::Data<Served>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}
