//! The integration-test binary: the whole service against a real PostgreSQL.

mod admin;
mod callbacks;
mod cli;
mod console;
mod faults;
mod flow_changes;
mod flows;
mod gate_evidence;
mod gate_feedback;
mod helpers;
mod journal_faults;
mod logging;
mod open_calls;
mod openapi;
mod ops;
mod rollout;
mod ship;
mod signatures;
mod sinch_api;
mod svaml_corpus;
mod vocabulary;
