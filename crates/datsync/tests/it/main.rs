//! Integration tests, one module per theme.

mod validate_transform;
