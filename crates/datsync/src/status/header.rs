//! What a sync's source header said, recorded once in `sync_metadata` before any chunk is
//! loaded: the columns the profile does not know (`unknown_columns`, a JSON array) and the
//! delimiter (`source_delimiter`, the join of its fields, used to show a rejected row as a
//! line). A resume that does not read the header again reads them from here.

use tokio_postgres::Client;

use super::{StatusError, err, meta};
use crate::model::SyncId;

/// The header facts of a sync as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordedHeader {
    /// Canonical names of the header columns the profile does not know, in file order.
    pub unknown_columns: Vec<String>,
    /// What joins the fields of a line of the source (`~|^`, a tab, `|`).
    pub delimiter: Option<String>,
}

/// The recorded header facts of a sync; `None` before they are recorded.
pub async fn recorded_header(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<Option<RecordedHeader>, StatusError> {
    let sql = format!(
        "SELECT unknown_columns, source_delimiter FROM {} WHERE sync_id = $1
            AND unknown_columns IS NOT NULL",
        meta(schema)
    );
    let row = client
        .query_opt(&sql, &[&sync_id.as_str()])
        .await
        .map_err(|e| {
            err(
                sync_id,
                "cannot read the recorded header of sync_metadata",
                e,
            )
        })?;
    Ok(row.map(|r| RecordedHeader {
        unknown_columns: serde_json::from_value(r.get(0)).unwrap_or_default(),
        delimiter: r.get(1),
    }))
}

/// Records the header facts of a sync (registered before).
pub async fn record_header(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
    header: &RecordedHeader,
) -> Result<(), StatusError> {
    let sql = format!(
        "UPDATE {} SET unknown_columns = $2::jsonb, source_delimiter = $3::text, updated_at = now()
          WHERE sync_id = $1",
        meta(schema)
    );
    let unknown = serde_json::Value::from(header.unknown_columns.clone());
    client
        .execute(&sql, &[&sync_id.as_str(), &unknown, &header.delimiter])
        .await
        .map_err(|e| err(sync_id, "cannot record the header in sync_metadata", e))?;
    Ok(())
}
