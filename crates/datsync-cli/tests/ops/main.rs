//! `datsync init-db`, `list`, `status` and `gc` as a user runs them: the real binary against
//! the real PostgreSQL (one database per test) and real checkpoint directories. The state
//! they inspect is built with the library.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_wrap)]

mod adopt;
mod connect;
mod fixture;
mod gc;
mod harness;
mod init_db;
mod list_status;
mod redaction;

/// An older sync (SUCCESS, no checkpoint).
const OLDER: &str = "sync_20250129_143022_a3f4b2c1";
/// A newer sync (PARTIAL_SUCCESS, with a checkpoint).
const NEWER: &str = "sync_20250130_090000_0badf00d";
