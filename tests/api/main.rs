//! The integration-test binary: the whole service against a real PostgreSQL.

mod admin;
mod callbacks;
mod cli;
mod faults;
mod flows;
mod gate_feedback;
mod helpers;
mod logging;
mod openapi;
mod ship;
mod signatures;
mod sinch_api;
mod svaml_corpus;
