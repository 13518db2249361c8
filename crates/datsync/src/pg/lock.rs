//! One writer per sync, one sync per source: session-level advisory locks, held on the
//! connection that commits the sync's chunks for the whole run. A process that dies (even by
//! `kill -9`) or loses its connection loses its locks with it — and with them any way to
//! commit: a chunk is only ever committed on a session that holds the sync's writer lock, so
//! a connection made again must take the lock again before it writes
//! (`pipeline/retry.rs`).
//!
//! | lock | key | held |
//! |---|---|---|
//! | writer | `datsync writer <sync_id>` | the whole run, on the committing session |
//! | source | `datsync source <schema>.<table> <source path>` | the whole run of `run SOURCE`, from before the sync is chosen |
//! | planning | `datsync planning <schema>.<table> <source path>` | while `run SOURCE` chooses and registers its sync |
//!
//! The planning lock makes the source lock's loser able to name the winner's sync: the
//! winner releases it only once its sync is registered, and the loser waits for it before
//! it looks at the source lock.

use tokio_postgres::Client;

use super::PgError;
use crate::model::SyncId;

/// Takes the writer lock of a sync if it is free; `false` when another session holds it.
/// Taking it again on the session that holds it succeeds (and stacks).
pub async fn try_lock_sync(client: &Client, sync_id: &SyncId) -> Result<bool, PgError> {
    try_lock(
        client,
        &format!("datsync writer {sync_id}"),
        "the sync's writer lock",
    )
    .await
}

/// The identity of a source for its locks: the table it loads into and its path or URL.
pub fn source_key(schema: &str, table: &str, source_path: &str) -> String {
    format!("{schema}.{table} {source_path}")
}

/// Waits for the planning lock of a source (see the module docs).
pub async fn lock_source_planning(client: &Client, source: &str) -> Result<(), PgError> {
    client
        .execute(
            "SELECT pg_advisory_lock(hashtextextended($1, 0))",
            &[&format!("datsync planning {source}")],
        )
        .await
        .map_err(|e| PgError::query("cannot take the source's planning lock", e))?;
    Ok(())
}

/// Releases the planning lock of a source.
pub async fn unlock_source_planning(client: &Client, source: &str) -> Result<(), PgError> {
    client
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&format!("datsync planning {source}")],
        )
        .await
        .map_err(|e| PgError::query("cannot release the source's planning lock", e))?;
    Ok(())
}

/// Takes the source lock if it is free; `false` when another session holds it.
pub async fn try_lock_source(client: &Client, source: &str) -> Result<bool, PgError> {
    try_lock(
        client,
        &format!("datsync source {source}"),
        "the source's lock",
    )
    .await
}

async fn try_lock(client: &Client, key: &str, what: &str) -> Result<bool, PgError> {
    let row = client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .map_err(|e| PgError::query(format!("cannot take {what}"), e))?;
    Ok(row.get(0))
}
