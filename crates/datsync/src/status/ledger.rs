//! Reading the chunk ledger (`sync_chunks`) chunk by chunk, and the validation error sample
//! of a sync assembled from it.

use tokio_postgres::Client;

use super::{StatusError, err};
use crate::model::{ChunkId, SyncId};
use crate::pg::quote_ident;

/// One committed chunk as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerChunk {
    /// The chunk.
    pub chunk: ChunkId,
    /// Rows staged (accepted by validation).
    pub rows: u64,
    /// Keys inserted.
    pub inserted: u64,
    /// Keys updated.
    pub updated: u64,
    /// Keys left alone because the stored row was newer.
    pub skipped_older: u64,
    /// Rows read from the source.
    pub rows_read: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Rows superseded inside the chunk.
    pub superseded: u64,
    /// Rule violations found.
    pub validation_errors_count: u64,
}

fn count(row: &tokio_postgres::Row, i: usize) -> u64 {
    u64::try_from(row.get::<_, i64>(i)).unwrap_or(0)
}

/// Every committed chunk of a sync, in chunk order.
pub async fn ledger_chunks(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<Vec<LedgerChunk>, StatusError> {
    let sql = format!(
        "SELECT chunk_id, \"rows\", inserted, updated, skipped_older, rows_read, rejected,
                superseded, validation_errors_count
           FROM {}.sync_chunks WHERE sync_id = $1 ORDER BY chunk_id",
        quote_ident(schema)
    );
    let rows = client
        .query(&sql, &[&sync_id.as_str()])
        .await
        .map_err(|e| err(sync_id, "cannot read the chunk ledger", e))?;
    Ok(rows
        .iter()
        .map(|r| LedgerChunk {
            chunk: ChunkId(u32::try_from(r.get::<_, i32>(0)).unwrap_or(0)),
            rows: count(r, 1),
            inserted: count(r, 2),
            updated: count(r, 3),
            skipped_older: count(r, 4),
            rows_read: count(r, 5),
            rejected: count(r, 6),
            superseded: count(r, 7),
            validation_errors_count: count(r, 8),
        })
        .collect())
}

/// The first `limit` validation errors of a sync, in chunk then row order, as a JSON array
/// (what `sync_metadata.validation_errors` holds).
pub async fn ledger_error_sample(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
    limit: i64,
) -> Result<serde_json::Value, StatusError> {
    let sql = format!(
        "SELECT COALESCE(jsonb_agg(e ORDER BY chunk_id, n), '[]'::jsonb) FROM (
           SELECT c.chunk_id, x.e, x.n
             FROM {}.sync_chunks c
             CROSS JOIN LATERAL jsonb_array_elements(c.validation_errors) WITH ORDINALITY AS x(e, n)
            WHERE c.sync_id = $1 AND jsonb_typeof(c.validation_errors) = 'array'
            ORDER BY c.chunk_id, x.n
            LIMIT $2) t",
        quote_ident(schema)
    );
    let row = client
        .query_one(&sql, &[&sync_id.as_str(), &limit])
        .await
        .map_err(|e| {
            err(
                sync_id,
                "cannot read the validation errors of the ledger",
                e,
            )
        })?;
    Ok(row.get(0))
}
