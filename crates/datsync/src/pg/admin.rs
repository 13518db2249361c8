//! The administration `datsync demo` and `datsync bench` need: a database of their own
//! (dropped and created again), and a target emptied between two measured runs. Names are
//! quoted: they are never SQL.

use tokio_postgres::Client;

use super::{PgError, quote_ident, quote_qualified};
use crate::profile::Profile;

/// Drops database `name` if it exists (closing its sessions), then creates it empty.
pub async fn recreate_database(client: &Client, name: &str) -> Result<(), PgError> {
    drop_database(client, name).await?;
    client
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
        .await
        .map_err(|e| PgError::query(format!("cannot create the database {name}"), e))
}

/// Drops database `name` if it exists, closing its sessions.
pub async fn drop_database(client: &Client, name: &str) -> Result<(), PgError> {
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await
        .map_err(|e| PgError::query(format!("cannot drop the database {name}"), e))
}

/// Drops schema `name` with everything in it, if it exists, then creates it empty.
pub async fn recreate_schema(client: &Client, name: &str) -> Result<(), PgError> {
    let s = quote_ident(name);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}"
        ))
        .await
        .map_err(|e| PgError::query(format!("cannot create the schema {name} again"), e))
}

/// Empties the profile's target table and its derived tables (`[[derived]]`: `drivers` in
/// the built-in profile) and writes a checkpoint, so that the next measured load starts as a
/// first load does: no stored row, no stored driver (a derived table left full makes every
/// later run update each of its rows instead of inserting them), and a clean buffer cache.
pub async fn empty_target(client: &Client, profile: &Profile) -> Result<(), PgError> {
    let tables: Vec<String> = std::iter::once(&profile.table)
        .chain(profile.derived.iter().map(|d| &d.table))
        .map(|t| quote_qualified(&profile.schema, t))
        .collect();
    client
        .batch_execute(&format!("TRUNCATE {}; CHECKPOINT", tables.join(", ")))
        .await
        .map_err(|e| PgError::query(format!("cannot empty {}", tables.join(", ")), e))
}
