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

/// The backend process id of the session that holds a sync's writer lock in this database,
/// when one does (`--jobs`: a loader checks that a session of its own process holds it
/// before it loads a chunk, see `pipeline/jobs.rs`).
pub async fn sync_lock_holder(client: &Client, sync_id: &SyncId) -> Result<Option<i32>, PgError> {
    // A bigint advisory key shows in pg_locks as its high half (classid) and its low half
    // (objid), with objsubid 1.
    let row = client
        .query_opt(
            "SELECT l.pid FROM pg_locks l, (SELECT hashtextextended($1, 0) AS k) h \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND l.classid::bigint = ((h.k >> 32) & 4294967295) \
               AND l.objid::bigint = (h.k & 4294967295) \
             LIMIT 1",
            &[&format!("datsync writer {sync_id}")],
        )
        .await
        .map_err(|e| PgError::query("cannot read who holds the sync's writer lock", e))?;
    Ok(row.map(|r| r.get(0)))
}

/// Releases the writer lock of a sync that this session holds (as often as it took it).
pub async fn unlock_sync(client: &Client, sync_id: &SyncId) -> Result<(), PgError> {
    let key = format!("datsync writer {sync_id}");
    loop {
        let row = client
            .query_one(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&key],
            )
            .await
            .map_err(|e| PgError::query("cannot release the sync's writer lock", e))?;
        if !row.get::<_, bool>(0) {
            return Ok(());
        }
    }
}

/// The backend process id of the session (`pg_backend_pid()`).
pub async fn backend_pid(client: &Client) -> Result<i32, PgError> {
    let row = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(|e| PgError::query("cannot read the session's backend process id", e))?;
    Ok(row.get(0))
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
