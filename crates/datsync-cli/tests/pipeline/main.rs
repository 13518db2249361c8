//! `datsync run` and `datsync resume` as a user runs them, against the real PostgreSQL on
//! `127.0.0.1:5432` (each test in a database of its own) and real files in temp dirs: the
//! pipeline's promises (resume, exactly-once effect after `kill -9`, newest wins, nothing lost
//! silently, stale checkpoints never trusted, one writer per sync) and Diagram 4's error
//! handling; `datsync watch` over a directory; blob sources and checkpoints on the Azure
//! and S3 emulators.

// Test helpers unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, missing_docs)]

mod alerts;
mod azure;
mod bad_rows;
mod changing;
mod common;
mod config;
mod corpus;
mod crash;
mod damaged;
mod decoder;
mod derived;
mod derived_insert;
mod disk;
mod draft;
mod errors;
mod faithful;
mod fault_rows;
mod faults;
mod hooks;
mod idempotent;
mod jobs;
mod keys;
mod model;
mod observe;
mod pii;
mod private;
mod privilege;
mod queue_faults;
mod resume;
mod s3;
mod seek;
mod serve;
mod types;
mod versions;
mod watch;
mod workers;
