//! The integration-test binary: the whole service against a real PostgreSQL.

mod admin;
mod callbacks;
mod helpers;
mod signatures;
