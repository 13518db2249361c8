//! `pg`, `load` and `status` against the real PostgreSQL: each test in its own database.

pub mod db;
pub mod docs;
pub mod typed_gen;

mod errors;
mod init;
mod status;
mod upsert;
mod values;
