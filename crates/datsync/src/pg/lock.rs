//! One writer per sync: a session-level advisory lock keyed by the sync id, held on a
//! connection of its own for the whole run. A process that dies (even by `kill -9`) loses
//! its connection and so its lock.

use tokio_postgres::Client;

use super::PgError;
use crate::model::SyncId;

/// Takes the writer lock of a sync if it is free; `false` when another session holds it.
pub async fn try_lock_sync(client: &Client, sync_id: &SyncId) -> Result<bool, PgError> {
    let key = format!("datsync writer {sync_id}");
    let row = client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .map_err(|e| PgError::query("cannot take the sync's writer lock", e))?;
    Ok(row.get(0))
}
