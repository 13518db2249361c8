//! Integration tests of the datsync library, one module per theme.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod alert;
mod blob_source;
mod checkpoint;
mod intake;
mod libpq;
mod load_pg;
mod pgtemp;
mod validate_transform;
