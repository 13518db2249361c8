//! Integration tests of the datsync library, one module per theme.

mod checkpoint;
