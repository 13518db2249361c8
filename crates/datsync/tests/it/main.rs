//! Integration tests of the datsync library, one module per theme.

#![allow(clippy::unwrap_used)]

mod checkpoint;
