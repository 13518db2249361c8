//! The validation error sample of a sync, assembled from its chunk ledger (`sync_chunks`).

use tokio_postgres::Client;

use super::{StatusError, err};
use crate::model::SyncId;
use crate::pg::quote_ident;

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
