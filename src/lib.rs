//! svamlgate: a Sinch Voice callback gateway. It verifies signed callbacks, decides each reply from stored
//! call flows or the customer's own app, checks every SVAML reply against schema and lint rules before it
//! leaves (falling back to a pre-validated reply), and records everything in PostgreSQL.
//!
//! Module map, in the order a callback travels:
//! [`http`] → [`callback`] → [`signature`] → [`events`] → [`sources`] ([`flows`] in service through
//! [`live`], [`upstream`]) →
//! [`gate`] ([`svaml`]) → [`recording`] (the journal, shipped to [`db`]); [`outcome`] names what
//! happened (reply source, fallback reason, gate verdict, signature state); errors are [`error`] envelopes
//! from the [`catalog`]; [`calls`] holds calls in progress (and [`recording::replay`] the recent
//! dedup keys), both in a [`shards`] map; [`timestamp`] reads Sinch's timestamps; [`redact`] masks
//! numbers; [`secret`] holds secrets; [`app`] holds the shared state; [`cli`] is the command line.
//! The modules form layers, listed in ARCHITECTURE.md and held by `tests/module_graph.rs`.
//!
//! Outbound: [`sinch_api`] places and controls calls through Sinch's Calling API (checked, capped,
//! retried, recorded by [`db::outbound`]); [`diagnosis`] walks Sinch's troubleshooting steps per call.
//!
//! Operators: [`console`] serves the operator console (HTML pages over the same records) and the
//! operator listener (`SVAMLGATE_ADMIN_LISTEN`).

pub mod alerts;
pub mod app;
pub mod callback;
pub mod calls;
pub mod canary;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod diagnosis;
pub mod doctor;
pub mod error;
pub mod events;
pub mod feedback;
pub mod flows;
pub mod gate;
pub mod http;
pub mod live;
pub mod metrics;
pub mod ops;
pub mod outcome;
pub mod recording;
pub mod redact;
pub mod refusals;
pub mod retention;
pub mod secret;
pub mod shards;
pub mod signature;
pub mod sinch_api;
pub mod sources;
pub mod svaml;
pub mod telemetry;
pub mod timestamp;
pub mod upstream;
pub mod verification;
