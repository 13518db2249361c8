//! The validation error sample of a sync, assembled from its chunk ledger (`sync_chunks`).

use tokio_postgres::Client;

use super::{StatusError, err};
use crate::model::SyncId;
use crate::pg::quote_ident;

/// Which sample of the ledger to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerSample {
    /// The broken rules of rejected rows (`sync_chunks.validation_errors`).
    Rejected,
    /// The value warnings (`sync_chunks.value_warnings_sample`).
    Warnings,
}

/// The first `limit` validation errors (or value warnings) of a sync, in chunk then row
/// order, as a JSON array (what `sync_metadata.validation_errors` is made of).
pub async fn ledger_error_sample(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
    which: LedgerSample,
    limit: i64,
) -> Result<serde_json::Value, StatusError> {
    let column = match which {
        LedgerSample::Rejected => "validation_errors",
        LedgerSample::Warnings => "value_warnings_sample",
    };
    let sql = format!(
        "SELECT COALESCE(jsonb_agg(e ORDER BY chunk_id, n), '[]'::jsonb) FROM (
           SELECT c.chunk_id, x.e, x.n
             FROM {}.sync_chunks c
             CROSS JOIN LATERAL jsonb_array_elements(c.{column}) WITH ORDINALITY AS x(e, n)
            WHERE c.sync_id = $1 AND jsonb_typeof(c.{column}) = 'array'
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

/// Copies the ledger's sums into the sync's `sync_metadata` row, so that `list` and `status`
/// show a running sync's progress (status unchanged; the final write replaces these counts
/// with the same sums and the rows read of the whole source). The rows read are those of the
/// committed chunks, so nothing is pending yet and the counts add up.
pub async fn progress_from_ledger(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<(), StatusError> {
    let s = quote_ident(schema);
    let sql = format!(
        "UPDATE {s}.sync_metadata AS m
            SET records_total = l.rows_read, records_inserted = l.inserted,
                records_updated = l.updated, records_failed = l.rejected,
                records_skipped_older = l.skipped_older,
                records_superseded = l.superseded + l.superseded_on_load,
                records_loaded = l.rows - l.superseded_on_load, records_pending = 0,
                validation_errors_count = l.errors, value_warnings = l.warnings,
                {older_than}, updated_at = now()
           FROM (SELECT COALESCE(sum(rows_read), 0)::bigint AS rows_read,
                        COALESCE(sum(\"rows\"), 0)::bigint AS rows,
                        COALESCE(sum(inserted), 0)::bigint AS inserted,
                        COALESCE(sum(updated), 0)::bigint AS updated,
                        COALESCE(sum(rejected), 0)::bigint AS rejected,
                        COALESCE(sum(skipped_older), 0)::bigint AS skipped_older,
                        COALESCE(sum(superseded), 0)::bigint AS superseded,
                        COALESCE(sum(superseded_on_load), 0)::bigint AS superseded_on_load,
                        COALESCE(sum(validation_errors_count), 0)::bigint AS errors,
                        COALESCE(sum(value_warnings), 0)::bigint AS warnings
                   FROM {s}.sync_chunks WHERE sync_id = $1) AS l
          WHERE m.sync_id = $1",
        older_than = older_than_sets(schema),
    );
    client
        .execute(&sql, &[&sync_id.as_str()])
        .await
        .map_err(|e| err(sync_id, "cannot write progress to sync_metadata", e))?;
    Ok(())
}

/// The `SET` item of a `sync_metadata` update (whose sync id is `$1`) that folds the chunks'
/// `older_than_*` into the sync's: the newest by `(version, sync_seq)` of the stored rows that
/// kept the sync's older rows out; all NULL when no chunk skipped a row as older.
pub(crate) fn older_than_sets(schema: &str) -> String {
    format!(
        "(older_than_version, older_than_sync_seq, older_than_sync_id, older_than_file) =
           (SELECT c.older_than_version, c.older_than_sync_seq, c.older_than_sync_id,
                   c.older_than_file
              FROM {}.sync_chunks c
             WHERE c.sync_id = $1 AND c.older_than_sync_seq IS NOT NULL
             ORDER BY COALESCE(c.older_than_version, '') COLLATE \"C\" DESC,
                      c.older_than_sync_seq DESC
             LIMIT 1)",
        quote_ident(schema)
    )
}
