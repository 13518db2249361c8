//! What a source's earlier syncs loaded: the fingerprint each sync recorded of its source
//! when it was first registered (`sync_metadata.source_fingerprint`, migration 8), read back
//! so that `run SOURCE` on a source a finished sync already loaded does not load it again.

use tokio_postgres::Client;

use super::{StatusError, err, meta};
use crate::model::{SourceFingerprint, SyncCounts, SyncId, SyncStatus};
use crate::pg::PgError;

/// Records what the sync's source was, the first time only: a resume never replaces the
/// fingerprint of the bytes its chunks were cut from.
pub async fn record_source_fingerprint(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
    fingerprint: &SourceFingerprint,
) -> Result<(), StatusError> {
    let value = serde_json::to_value(fingerprint).unwrap_or(serde_json::Value::Null);
    let sql = format!(
        "UPDATE {} SET source_fingerprint = COALESCE(source_fingerprint, $2::jsonb)
          WHERE sync_id = $1",
        meta(schema)
    );
    client
        .execute(&sql, &[&sync_id.as_str(), &value])
        .await
        .map_err(|e| err(sync_id, "cannot record the source's fingerprint", e))?;
    Ok(())
}

/// The fingerprint the sync recorded of its source when it was first registered, if any
/// (what a checkpoint rebuilt from the source is checked against).
pub async fn recorded_source_fingerprint(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<Option<SourceFingerprint>, StatusError> {
    let sql = format!(
        "SELECT source_fingerprint FROM {} WHERE sync_id = $1",
        meta(schema)
    );
    let rows = client
        .query(&sql, &[&sync_id.as_str()])
        .await
        .map_err(|e| err(sync_id, "cannot read the source's recorded fingerprint", e))?;
    Ok(rows
        .first()
        .and_then(|r| r.get::<_, Option<serde_json::Value>>(0))
        .and_then(|v| serde_json::from_value(v).ok()))
}

/// An earlier sync of a source, as `sync_metadata` and the ledger recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlierSync {
    /// The sync.
    pub sync_id: SyncId,
    /// Its status.
    pub status: SyncStatus,
    /// What its source was when it was first registered.
    pub fingerprint: SourceFingerprint,
    /// Its counts (`chunks_total` and `chunks_completed` are the ledger's chunks; a sync
    /// that ended never has failed chunks recorded here).
    pub counts: SyncCounts,
    /// Header columns its profile did not know.
    pub unknown_columns: Vec<String>,
    /// Its error message, when it has one.
    pub error_message: Option<String>,
}

/// The syncs of the source `file_path` that recorded a fingerprint, the most recently
/// started first. Rows whose status datsync does not write (a legacy loader's) are left out.
pub async fn earlier_syncs(
    client: &Client,
    schema: &str,
    file_path: &str,
) -> Result<Vec<EarlierSync>, PgError> {
    let sql = format!(
        "SELECT m.sync_id::text, m.status::text, m.source_fingerprint,
                COALESCE(m.records_total, 0)::bigint, COALESCE(m.records_loaded, 0)::bigint,
                COALESCE(m.records_failed, 0)::bigint, COALESCE(m.records_superseded, 0)::bigint,
                COALESCE(m.records_pending, 0)::bigint, COALESCE(m.records_inserted, 0)::bigint,
                COALESCE(m.records_updated, 0)::bigint,
                COALESCE(m.records_skipped_older, 0)::bigint,
                COALESCE(m.value_warnings, 0)::bigint, m.unknown_columns::jsonb,
                m.error_message::text,
                (SELECT count(*) FROM {chunks} c WHERE c.sync_id = m.sync_id)::bigint
           FROM {m} m
          WHERE m.file_path = $1 AND m.source_fingerprint IS NOT NULL
          ORDER BY m.started_at DESC, m.sync_id DESC",
        m = meta(schema),
        chunks = format_args!("{}.sync_chunks", crate::pg::quote_ident(schema)),
    );
    let rows = client
        .query(&sql, &[&file_path])
        .await
        .map_err(|e| PgError::query(format!("cannot read the earlier syncs of {file_path}"), e))?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(rows
        .iter()
        .filter_map(|r| {
            let sync_id = SyncId::parse(&r.get::<_, String>(0)).ok()?;
            let status: SyncStatus = r.get::<_, Option<String>>(1)?.parse().ok()?;
            let fingerprint: SourceFingerprint =
                serde_json::from_value(r.get::<_, serde_json::Value>(2)).ok()?;
            let chunks = n(r.get(14));
            Some(EarlierSync {
                sync_id,
                status,
                fingerprint,
                counts: SyncCounts {
                    rows_read: n(r.get(3)),
                    rows_loaded: n(r.get(4)),
                    rows_rejected: n(r.get(5)),
                    rows_superseded: n(r.get(6)),
                    rows_pending: n(r.get(7)),
                    records_inserted: n(r.get(8)),
                    records_updated: n(r.get(9)),
                    records_skipped_older: n(r.get(10)),
                    value_warnings: n(r.get(11)),
                    chunks_total: chunks,
                    chunks_completed: chunks,
                    chunks_failed: 0,
                },
                unknown_columns: r
                    .get::<_, Option<serde_json::Value>>(12)
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default(),
                error_message: r.get(13),
            })
        })
        .collect())
}
