//! `GET /admin/openapi.json`: the OpenAPI document of the admin API and the service endpoints.
//!
//! The document is generated (utoipa). Each operation comes from the `#[utoipa::path]` attribute of
//! its handler; [`super::routes`] registers the handlers through `utoipa-actix-web`, so the routes
//! that exist and the operations of the document come from the same list. [`ApiDoc`] adds what is
//! not an operation: the title, the tags, the bearer scheme and the error [`Envelope`].
//!
//! The response bodies of the admin API are built from types spread over the storage, flow and
//! Sinch modules; until those types derive `ToSchema` themselves, their schemas (and the shared
//! error responses, which all point at [`Envelope`]) are kept in `openapi-components.json`, and
//! handlers name them through the marker types below. A name used by a handler but missing from
//! that file fails this module's unit test.
//!
//! [`document`] adds what every operation shares rather than repeating it per handler: the
//! answers of the admin middleware and of an unexpected failure (401, 403, 500) on every admin
//! operation, and no security requirement on the service endpoints.

use std::borrow::Cow;

use actix_web::{get, web, HttpResponse};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, OpenApi as Document, Ref, RefOr, Response, Schema};
use utoipa::{Modify, OpenApi};

use crate::error::Envelope;

/// Schemas and shared error responses kept as JSON (see the module documentation).
const KEPT_COMPONENTS: &str = include_str!("openapi-components.json");

/// Declares marker types that stand for a schema kept in `openapi-components.json`.
macro_rules! kept_schemas {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("The `", stringify!($name), "` schema of the document.")]
            pub struct $name;
            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    Ref::from_schema_name(stringify!($name)).into()
                }
            }
            impl utoipa::ToSchema for $name {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($name))
                }
            }
        )*
        /// Every schema name handlers refer to through the markers.
        pub const KEPT_SCHEMAS: &[&str] = &[$(stringify!($name)),*];
    };
}

/// Declares marker types that stand for a shared error response kept in `openapi-components.json`.
macro_rules! kept_responses {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("The shared `", stringify!($name), "` error response (an `Envelope`).")]
            pub struct $name;
            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), Ref::from_response_name(stringify!($name)).into())
                }
            }
        )*
        /// Every response name handlers refer to through the markers.
        pub const KEPT_RESPONSES: &[&str] = &[$(stringify!($name)),*];
    };
}

/// Schema markers.
pub mod schemas {
    use super::*;
    kept_schemas!(
        CallInformation,
        ErrorCodeInfo,
        FlowCheck,
        FlowSummary,
        GateMiss,
        OutboundRequest,
        RejectedReply,
        SinchErrorItem,
        StoredCallback,
        CalloutAnswer,
        CalloutRequest,
        ConferenceInfo,
        Diagnosis,
        EventContext,
        FlowDocument,
        ManageCallBody,
        ParticipantCommand,
        Report,
        Route,
        RouteInput,
        SinchAnswer,
        StoredError,
    );

    /// The body of `POST /admin/svaml/validate`.
    pub struct SvamlDocument;
    impl utoipa::PartialSchema for SvamlDocument {
        fn schema() -> RefOr<Schema> {
            utoipa::openapi::ObjectBuilder::new()
                .description(Some(
                    "An SVAML document (`instructions` and an `action`). Any JSON value is accepted \
                     (at most 1 MiB); the report says what the gate finds wrong with it.",
                ))
                .build()
                .into()
        }
    }
    impl utoipa::ToSchema for SvamlDocument {}
}

/// Shared error response markers.
pub mod responses {
    use super::*;
    kept_responses!(
        BadRequest,
        FlowRefused,
        RouteRefused,
        Unauthorized,
        AdminDisabled,
        NotFound,
        Conflict,
        InternalError,
        DatabaseUnavailable,
        SinchRefusedLocally,
        SinchUnauthorized,
        SinchForbidden,
        SinchError,
        SinchTooMany,
        SinchUnavailable,
        SinchConflict,
    );
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
        description = "Administration of svamlgate, the validating gate for Sinch Voice callbacks: recorded callbacks and errors, the error catalog, SVAML validation, call flows and routes, and calls placed and controlled through Sinch's Calling API (callouts, call and conference control, Sinch's errors, the troubleshooting checklist per call). Every /admin operation needs `Authorization: Bearer <SVAMLGATE_ADMIN_TOKEN>`; without that variable the admin API answers 403. Errors are Sinch error envelopes (`Envelope`). The `service` operations (health, metrics, the callback endpoint) need no admin token."
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
    ),
    security(("adminToken" = [])),
    components(schemas(Envelope)),
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
/// 401, 403 and 500 on every admin operation that does not document its own), and the kept
/// components.
pub fn document(collected: Document) -> serde_json::Result<serde_json::Value> {
    let mut doc = ApiDoc::openapi();
    doc.merge(collected);
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/admin/") {
            // Service endpoints need no admin token: no security requirement at all.
            operations_mut(item).for_each(|op| op.security = Some(Vec::new()));
            continue;
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
    let mut doc = serde_json::to_value(&doc)?;
    let kept: KeptComponents = serde_json::from_str(KEPT_COMPONENTS)?;
    // The markers registered a reference to themselves; the kept schema takes its place.
    for (section, entries) in [("schemas", kept.schemas), ("responses", kept.responses)] {
        if let Some(target) = doc["components"][section].as_object_mut() {
            target.extend(entries);
        } else {
            doc["components"][section] = serde_json::Value::Object(entries);
        }
    }
    Ok(doc)
}

#[derive(serde::Deserialize)]
struct KeptComponents {
    schemas: serde_json::Map<String, serde_json::Value>,
    responses: serde_json::Map<String, serde_json::Value>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_names_a_kept_component() {
        let kept: KeptComponents = serde_json::from_str(KEPT_COMPONENTS).unwrap();
        for name in schemas::KEPT_SCHEMAS {
            assert!(kept.schemas.contains_key(*name), "schema {name} not kept");
        }
        for name in responses::KEPT_RESPONSES {
            assert!(
                kept.responses.contains_key(*name),
                "response {name} not kept"
            );
        }
    }
}
