//! What `sync_metadata` says about one sync.

use tokio_postgres::Client;

use super::{StatusError, err};
use crate::model::{SyncId, SyncStatus};
use crate::pg::quote_ident;

/// The registered facts of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSync {
    /// The source as given (path or URL).
    pub file_path: Option<String>,
    /// The source's base name.
    pub file_name: Option<String>,
    /// The stored status.
    pub status: SyncStatus,
    /// The delimiter the source's header used, once recorded.
    pub source_delimiter: Option<String>,
    /// Rows rejected, as last recorded.
    pub records_failed: i64,
    /// Value warnings, as last recorded.
    pub value_warnings: i64,
}

/// The `sync_metadata` row of a sync, if it is registered.
pub async fn stored_sync(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<Option<StoredSync>, StatusError> {
    let sql = format!(
        "SELECT file_path, file_name, status, source_delimiter,
                COALESCE(records_failed, 0)::bigint, COALESCE(value_warnings, 0)::bigint
           FROM {}.sync_metadata WHERE sync_id = $1",
        quote_ident(schema)
    );
    let row = client
        .query_opt(&sql, &[&sync_id.as_str()])
        .await
        .map_err(|e| err(sync_id, "cannot read sync_metadata", e))?;
    let Some(r) = row else {
        return Ok(None);
    };
    let status = r
        .get::<_, String>(2)
        .parse()
        .map_err(|source| StatusError::UnknownStatus {
            sync_id: sync_id.clone(),
            source,
        })?;
    Ok(Some(StoredSync {
        file_path: r.get(0),
        file_name: r.get(1),
        status,
        source_delimiter: r.get(3),
        records_failed: r.get(4),
        value_warnings: r.get(5),
    }))
}

/// Where a sync's checkpoint and rejects are kept, as its last run recorded it
/// (`sync_metadata.checkpoint_location`: an absolute directory or a URL); `None` for an
/// unknown sync, one registered before the location was recorded, or one kept in memory.
pub async fn recorded_location(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<Option<String>, StatusError> {
    // Read through to_jsonb: a table not migrated yet has no such column, and says NULL.
    let sql = format!(
        "SELECT to_jsonb(m) ->> 'checkpoint_location' FROM {}.sync_metadata m
          WHERE sync_id = $1",
        quote_ident(schema)
    );
    let row = client
        .query_opt(&sql, &[&sync_id.as_str()])
        .await
        .map_err(|e| err(sync_id, "cannot read sync_metadata", e))?;
    Ok(row.and_then(|r| r.get(0)))
}

/// The sync that holds the source `file_path` for another process's `run` (see
/// `pg/lock.rs`): its sync registered for that source, the unfinished ones first, then the
/// most recently updated.
pub async fn source_holder(
    client: &Client,
    schema: &str,
    file_path: &str,
) -> Result<Option<SyncId>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT sync_id FROM {}.sync_metadata WHERE file_path = $1
          ORDER BY (status = 'IN_PROGRESS') DESC, updated_at DESC LIMIT 1",
        quote_ident(schema)
    );
    let row = client.query_opt(&sql, &[&file_path]).await?;
    Ok(row.and_then(|r| SyncId::parse(&r.get::<_, String>(0)).ok()))
}
