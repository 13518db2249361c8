//! Integration tests, one module per theme.

mod alert;
mod pgtemp;
