//! The database half of sync status: registering a sync (and its `sync_seq`), writing
//! progress and the final status to `sync_metadata`, reading the chunk ledger, and
//! refreshing materialized views; and reading it back for `datsync list` / `status`
//! (merged with the checkpoint manifest, the ledger winning).

use tokio_postgres::Client;

use crate::model::{ChunkId, SyncCounts, SyncId, SyncRef, SyncStatus, UnknownSyncStatus};
use crate::pg::{ErrorClass, PgError, SYNC_SEQUENCE, fit_text_sql, quote_ident};

/// A `sync_metadata` write or ledger read failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// A statement failed.
    #[error("sync {sync_id}: {source}")]
    Query {
        /// The sync.
        sync_id: SyncId,
        /// The failure.
        source: PgError,
    },
    /// The final status was written for a sync that was never registered.
    #[error("sync {sync_id}: the sync is not registered in sync_metadata; register it first")]
    NotRegistered {
        /// The sync.
        sync_id: SyncId,
    },
    /// `sync_metadata` holds a status datsync never writes.
    #[error("sync {sync_id}: sync_metadata holds {source}")]
    UnknownStatus {
        /// The sync.
        sync_id: SyncId,
        /// The text found.
        source: UnknownSyncStatus,
    },
}

impl StatusError {
    /// Whether a retry can succeed: that of the failed statement, else fatal.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Query { source, .. } => source.class(),
            Self::NotRegistered { .. } | Self::UnknownStatus { .. } => ErrorClass::Fatal,
        }
    }
}

/// What is known about a sync when it is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRegistration {
    /// The sync id.
    pub sync_id: SyncId,
    /// Base name of the source (also every row's `source_file`).
    pub file_name: String,
    /// Full path or URL of the source.
    pub file_path: String,
    /// Size of the source in bytes, when known.
    pub file_size_bytes: Option<i64>,
    /// The store that holds the sync's checkpoint and rejects (an absolute directory or a
    /// URL), when it can be opened again (not `memory://`).
    pub checkpoint_location: Option<String>,
}

/// The end of a sync.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncOutcome {
    /// Final status (`FAILED` never replaces a stored `BAD_INPUT`).
    pub status: SyncStatus,
    /// Final counts (the stored ones are kept when `None`: counts are never erased).
    pub counts: Option<SyncCounts>,
    /// Rule violations found (kept when `None`).
    pub validation_errors_count: Option<u64>,
    /// The error, if any (kept when `None`).
    pub error_message: Option<String>,
    /// A sample of validation errors (kept when `None`).
    pub validation_errors: Option<serde_json::Value>,
}

fn meta(schema: &str) -> String {
    format!("{}.sync_metadata", quote_ident(schema))
}

fn err(sync_id: &SyncId, context: &str, e: tokio_postgres::Error) -> StatusError {
    StatusError::Query {
        sync_id: sync_id.clone(),
        source: PgError::query(context, e),
    }
}

/// A count as PostgreSQL's `bigint`.
fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Registers a sync (status `IN_PROGRESS`), drawing its `sync_seq` from
/// `datsync_sync_seq` the first time; a resumed sync keeps its number.
pub async fn register_sync(
    client: &Client,
    schema: &str,
    reg: &SyncRegistration,
) -> Result<SyncRef, StatusError> {
    let seq_name = format!("{}.{}", quote_ident(schema), quote_ident(SYNC_SEQUENCE));
    let sql = format!(
        "INSERT INTO {m} AS m (sync_id, file_name, file_path, file_size_bytes, status,
                               started_at, updated_at, sync_seq, checkpoint_location)
         VALUES ($1::text, {name}, {path}, $4::bigint, 'IN_PROGRESS', now(), now(),
                 nextval($5::text::regclass), $6::text)
         ON CONFLICT (sync_id) DO UPDATE
            SET status = 'IN_PROGRESS', completed_at = NULL, updated_at = now(),
                -- A halted sync run again is a new attempt: its end is told again, even
                -- with the same outcome (a finished one keeps them: a resume that redoes
                -- its final steps tells no one twice).
                hooks_called_for = CASE WHEN m.status IN ('FAILED', 'BAD_INPUT')
                                        THEN NULL ELSE m.hooks_called_for END,
                alerted_for = CASE WHEN m.status IN ('FAILED', 'BAD_INPUT')
                                   THEN NULL ELSE m.alerted_for END,
                sync_seq = COALESCE(m.sync_seq, EXCLUDED.sync_seq),
                checkpoint_location = COALESCE(EXCLUDED.checkpoint_location,
                                               m.checkpoint_location)
         RETURNING sync_seq",
        m = meta(schema),
        // A legacy sync_metadata's varchar columns: the name and path are cut to fit.
        name = fit_text_sql("$2::text", schema, "sync_metadata", "file_name"),
        path = fit_text_sql("$3::text", schema, "sync_metadata", "file_path"),
    );
    let row = client
        .query_one(
            &sql,
            &[
                &reg.sync_id.as_str(),
                &reg.file_name,
                &reg.file_path,
                &reg.file_size_bytes,
                &seq_name,
                &reg.checkpoint_location,
            ],
        )
        .await
        .map_err(|e| err(&reg.sync_id, "cannot register the sync in sync_metadata", e))?;
    Ok(SyncRef {
        sync_id: reg.sync_id.clone(),
        sync_seq: row.get(0),
        source_file: reg.file_name.clone(),
    })
}

const COUNT_SETS: &str = "records_total = COALESCE($2::bigint, m.records_total),
    records_inserted = COALESCE($3::bigint, m.records_inserted),
    records_updated = COALESCE($4::bigint, m.records_updated),
    records_failed = COALESCE($5::bigint, m.records_failed),
    records_skipped_older = COALESCE($6::bigint, m.records_skipped_older),
    records_superseded = COALESCE($7::bigint, m.records_superseded),
    validation_errors_count = COALESCE($8::bigint, m.validation_errors_count),
    records_loaded = COALESCE($12::bigint, m.records_loaded),
    records_pending = COALESCE($13::bigint, m.records_pending),
    value_warnings = COALESCE($14::bigint, m.value_warnings),
    updated_at = now()";

/// Writes the final status, counts, error and validation sample; returns the status as
/// stored (a stored `BAD_INPUT` is never replaced by `FAILED`, and keeps its message). A
/// SUCCESS or PARTIAL_SUCCESS replaces the error message of an earlier run, even by none.
pub async fn finish_sync(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
    outcome: &SyncOutcome,
) -> Result<SyncStatus, StatusError> {
    let sql = format!(
        "UPDATE {} AS m SET {COUNT_SETS},
            status = CASE WHEN m.status = 'BAD_INPUT' AND $9::text = 'FAILED' THEN m.status ELSE $9::text END,
            error_message = CASE WHEN $9::text IN ('SUCCESS', 'PARTIAL_SUCCESS') THEN {message}
                                 ELSE COALESCE({message}, m.error_message) END,
            validation_errors = COALESCE($11::jsonb, m.validation_errors),
            {older_than},
            completed_at = now(),
            duration_seconds = EXTRACT(EPOCH FROM now() - m.started_at)::double precision
          WHERE sync_id = $1::text
          RETURNING status",
        meta(schema),
        message = fit_text_sql("$10::text", schema, "sync_metadata", "error_message"),
        older_than = ledger::older_than_sets(schema),
    );
    let c = outcome.counts.as_ref();
    let count = |f: fn(&SyncCounts) -> u64| c.map(|c| bigint(f(c)));
    let row = client
        .query_opt(
            &sql,
            &[
                &sync_id.as_str(),
                &count(|c| c.rows_read),
                &count(|c| c.records_inserted),
                &count(|c| c.records_updated),
                &count(|c| c.rows_rejected),
                &count(|c| c.records_skipped_older),
                &count(|c| c.rows_superseded),
                &outcome.validation_errors_count.map(bigint),
                &outcome.status.as_str(),
                &outcome.error_message,
                &outcome.validation_errors,
                &count(|c| c.rows_loaded),
                &count(|c| c.rows_pending),
                &count(|c| c.value_warnings),
            ],
        )
        .await
        .map_err(|e| err(sync_id, "cannot write the final status to sync_metadata", e))?;
    let Some(row) = row else {
        return Err(StatusError::NotRegistered {
            sync_id: sync_id.clone(),
        });
    };
    row.get::<_, String>(0)
        .parse()
        .map_err(|source| StatusError::UnknownStatus {
            sync_id: sync_id.clone(),
            source,
        })
}

/// What a sync's `sync_metadata` row says of its final steps (migration 13): its status and
/// the outcomes whose hooks were called and whose alert was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalSteps {
    /// The stored status (as text: a legacy table may hold others).
    pub status: Option<String>,
    /// The outcome whose post-sync hooks were called.
    pub hooks_called_for: Option<String>,
    /// The outcome whose alert was sent.
    pub alerted_for: Option<String>,
}

/// One final step recorded once per outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalStep {
    /// The post-sync hooks were called.
    Hooks,
    /// The alert was sent.
    Alert,
}

/// The final steps `sync_id` has had (all `None` for a sync not registered).
pub async fn final_steps(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<FinalSteps, StatusError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT status::text, hooks_called_for, alerted_for FROM {} WHERE sync_id = $1",
                meta(schema)
            ),
            &[&sync_id.as_str()],
        )
        .await
        .map_err(|e| err(sync_id, "cannot read the sync's final steps", e))?;
    Ok(row.map_or_else(FinalSteps::default, |r| FinalSteps {
        status: r.get(0),
        hooks_called_for: r.get(1),
        alerted_for: r.get(2),
    }))
}

/// Records that `step` was done for `outcome` (see [`FinalSteps`]).
pub async fn mark_final_step(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
    step: FinalStep,
    outcome: &str,
) -> Result<(), StatusError> {
    let column = match step {
        FinalStep::Hooks => "hooks_called_for",
        FinalStep::Alert => "alerted_for",
    };
    client
        .execute(
            &format!(
                "UPDATE {} SET {column} = $2 WHERE sync_id = $1",
                meta(schema)
            ),
            &[&sync_id.as_str(), &outcome],
        )
        .await
        .map_err(|e| err(sync_id, "cannot record a final step", e))?;
    Ok(())
}

/// Sums of the chunk ledger of a sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    /// Committed chunks.
    pub chunks: i64,
    /// Rows in the committed chunks.
    pub rows: i64,
    /// Keys inserted.
    pub inserted: i64,
    /// Keys updated.
    pub updated: i64,
    /// Keys skipped because the stored row was newer.
    pub skipped_older: i64,
    /// Rows read from the source in the committed chunks.
    pub rows_read: i64,
    /// Rows rejected by validation in the committed chunks.
    pub rejected: i64,
    /// Rows superseded by a later line with the same key in the committed chunks (by
    /// validation, inside a chunk).
    pub superseded: i64,
    /// Rows superseded by another row of the sync when the committed chunks were upserted
    /// (counted in `rows` too).
    pub superseded_on_load: i64,
    /// Rule violations found in the committed chunks.
    pub validation_errors_count: i64,
    /// Values not loaded as written in the committed chunks.
    pub value_warnings: i64,
    /// Derived tables' upserts that failed (rolled back, the chunk loaded) in the committed
    /// chunks.
    pub derived_failed: i64,
}

impl LedgerTotals {
    /// Rows that are the sync's last word on their key: staged rows less those superseded
    /// on load (`inserted + updated + skipped_older`).
    pub fn loaded(&self) -> i64 {
        self.rows - self.superseded_on_load
    }

    /// Every row superseded by another row of the sync: in a chunk, or across chunks.
    pub fn superseded_all(&self) -> i64 {
        self.superseded + self.superseded_on_load
    }
}

/// The ledger sums of a sync (zeros when nothing is committed).
pub async fn ledger_totals(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<LedgerTotals, StatusError> {
    let sql = format!(
        "SELECT count(*), COALESCE(sum(\"rows\"), 0)::bigint, COALESCE(sum(inserted), 0)::bigint,
                COALESCE(sum(updated), 0)::bigint, COALESCE(sum(skipped_older), 0)::bigint,
                COALESCE(sum(rows_read), 0)::bigint, COALESCE(sum(rejected), 0)::bigint,
                COALESCE(sum(superseded), 0)::bigint,
                COALESCE(sum(validation_errors_count), 0)::bigint,
                COALESCE(sum(superseded_on_load), 0)::bigint,
                COALESCE(sum(value_warnings), 0)::bigint,
                COALESCE(sum(derived_failed), 0)::bigint
           FROM {}.sync_chunks WHERE sync_id = $1",
        quote_ident(schema)
    );
    let r = client
        .query_one(&sql, &[&sync_id.as_str()])
        .await
        .map_err(|e| err(sync_id, "cannot read the chunk ledger", e))?;
    Ok(LedgerTotals {
        chunks: r.get(0),
        rows: r.get(1),
        inserted: r.get(2),
        updated: r.get(3),
        skipped_older: r.get(4),
        rows_read: r.get(5),
        rejected: r.get(6),
        superseded: r.get(7),
        validation_errors_count: r.get(8),
        superseded_on_load: r.get(9),
        value_warnings: r.get(10),
        derived_failed: r.get(11),
    })
}

/// The chunks of a sync that the ledger records as committed, in order.
pub async fn committed_chunks(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<Vec<ChunkId>, StatusError> {
    let sql = format!(
        "SELECT chunk_id FROM {}.sync_chunks WHERE sync_id = $1 ORDER BY chunk_id",
        quote_ident(schema)
    );
    let rows = client
        .query(&sql, &[&sync_id.as_str()])
        .await
        .map_err(|e| err(sync_id, "cannot read the chunk ledger", e))?;
    Ok(rows
        .iter()
        .map(|r| ChunkId(r.get::<_, i32>(0).max(0) as u32))
        .collect())
}

mod header;
mod ledger;
mod loaded;
mod lookup;
mod preview;
pub use header::{RecordedHeader, record_header, recorded_header};
pub use ledger::{LedgerSample, ledger_error_sample, progress_from_ledger};
pub use loaded::{earlier_syncs, record_source_fingerprint, recorded_source_fingerprint};
pub use lookup::{StoredSync, recorded_location, source_holder, stored_sync};
pub use preview::{
    CHECKSUM_IGNORED_COLUMNS, TableChecksum, TablePreview, preview_target, table_checksum,
};
mod history;
mod report;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod report_tests;
mod views;
pub use history::{
    LedgerChunk, OlderThan, ReadError, SyncDetail, SyncRecord, VALIDATION_SAMPLE_SHOWN,
    latest_sync_id, ledger_chunks, ledger_cut, recent_syncs, sync_detail,
};
pub use report::{
    CheckpointState, CheckpointSummary, ChunkProgress, ChunkRow, LedgerSummary, StatusReport,
    TIME_SAVED_NOT_RECORDED, TIME_SAVED_TOO_FEW, TimeSavedEstimate, build_report,
    estimate_time_saved, read_checkpoint,
};
pub use views::{ViewOutcome, ViewRefresh, refresh_materialized_views, views_to_refresh};
