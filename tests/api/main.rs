//! The integration-test binary: the whole service against a real PostgreSQL.

mod admin;
mod callbacks;
mod cli;
mod flows;
mod helpers;
mod logging;
mod openapi;
mod signatures;
mod sinch_api;
mod svaml_corpus;
