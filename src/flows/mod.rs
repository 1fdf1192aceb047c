//! Declarative call flows: the operator-written alternative to proxying callbacks to a customer app.
//!
//! A flow ([`model::FlowDoc`]) is a JSON document of named nodes; each node is an SVAML template
//! (`instructions` + `action`, exactly as Sinch documents them) plus `next` transitions taken on
//! the PIE that follows the node's `runMenu`. The modules here are pure (no I/O):
//!
//! - [`model`]: the document format, parsing and structural checks ([`model::FlowDoc::check_structure`]);
//! - [`render`]: `${placeholder}` substitution from event data ([`render::EventContext`]);
//! - [`engine`]: which node answers an ICE/ACE/PIE ([`engine::decide`]) and every SVAML a flow can
//!   emit ([`engine::emissions`]) so it can be validated before the flow is saved;
//! - [`routes`]: which flow or upstream app handles a call ([`routes::select`]);
//! - [`menu`]: what a reply asks of the caller (menus, keys) and what the caller hears;
//! - [`coverage`]: every path a caller can take, walked and gated ([`coverage::coverage`]);
//! - [`replay`]: stored calls re-driven through a candidate version, and the per-event comparison
//!   that shadowing uses ([`replay::replay_call`]).
//!
//! Loading them from PostgreSQL into memory, and shadowing a candidate version beside the live one
//! on a route, are `live`'s (this module sits below the database layer).
//!
//! Example flows live in `tests/fixtures/flows/`.

pub mod check;
pub mod coverage;
pub mod engine;
pub mod menu;
pub mod model;
pub mod render;
pub mod replay;
pub mod routes;
pub mod state;
