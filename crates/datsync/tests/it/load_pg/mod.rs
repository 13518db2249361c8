//! `pg`, `load` and `status` against the real PostgreSQL: each test in its own database.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod db;
pub mod docs;
pub mod typed_gen;

mod admin;
mod apart;
mod direct;
mod errors;
mod init;
mod pipeline;
mod status;
mod upsert;
mod values;
mod versions;
