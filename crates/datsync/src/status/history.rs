//! Reading what the database recorded about syncs: recent `sync_metadata` rows (for
//! `datsync list`), one sync's row with its validation sample, and its ledger rows (for
//! `datsync status`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio_postgres::{Client, Row};

use crate::model::{ChunkCut, RecordedStatus, UnknownSyncStatus};
use crate::pg::{PgError, quote_ident};

/// How many validation errors of the JSONB sample a [`SyncDetail`] keeps.
pub const VALIDATION_SAMPLE_SHOWN: usize = 5;

/// Reading sync history failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The schema has no `sync_metadata` or `sync_chunks` table.
    #[error(
        "schema `{schema}` has no datsync tables (sync_metadata, sync_chunks); run \
         `datsync init-db` first, or check DB_SCHEMA"
    )]
    NotInitialized {
        /// The schema.
        schema: String,
    },
    /// A query failed.
    #[error(transparent)]
    Query(#[from] PgError),
    /// A `sync_metadata` row holds a status datsync never writes.
    #[error("sync {sync_id}: sync_metadata holds {source}")]
    UnknownStatus {
        /// The sync.
        sync_id: String,
        /// The text found.
        source: UnknownSyncStatus,
    },
}

/// One `sync_metadata` row, as `datsync list` and `datsync status` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRecord {
    /// The sync id.
    pub sync_id: String,
    /// `IN_PROGRESS`, `SUCCESS`, `PARTIAL_SUCCESS`, `BAD_INPUT` or `FAILED`; in an adopted
    /// database, a legacy loader's rows keep the status as it spelled it.
    pub status: RecordedStatus,
    /// Base name of the source.
    pub file_name: Option<String>,
    /// Full path or URL of the source.
    pub file_path: Option<String>,
    /// Size of the source in bytes.
    pub file_size_bytes: Option<i64>,
    /// Rows read.
    pub records_total: i64,
    /// Keys inserted.
    pub records_inserted: i64,
    /// Keys updated.
    pub records_updated: i64,
    /// Rows rejected.
    pub records_failed: i64,
    /// Rows not applied because the stored row was newer.
    pub records_skipped_older: i64,
    /// Duplicate keys replaced by a later line of the file.
    pub records_superseded: i64,
    /// Rows that are the sync's last word on their key (inserted + updated + skipped older).
    pub records_loaded: i64,
    /// Rows of chunks not committed (failed, or not reached).
    pub records_pending: i64,
    /// Rule violations found.
    pub validation_errors_count: i64,
    /// Values not loaded as written (NULL, midnight, rounded).
    pub value_warnings: i64,
    /// Header columns the profile does not know (canonical names), not loaded.
    pub unknown_columns: Vec<String>,
    /// The error, if any.
    pub error_message: Option<String>,
    /// When the sync was first started (RFC 3339, UTC).
    pub started_at: String,
    /// When it last ended (RFC 3339, UTC); `None` while in progress.
    pub completed_at: Option<String>,
    /// Seconds from the first start to the last end.
    pub duration_seconds: Option<f64>,
    /// The newest stored row that kept rows of this sync out as older
    /// (`records_skipped_older`); `None` when none was. In the `status --json` report at the
    /// top (`older_than`), with its version made readable.
    #[serde(skip)]
    pub older_than: Option<OlderThan>,
}

/// The newest stored row (by `(row_version, sync_seq)`) of another sync that a sync's rows
/// were older than, so they were not applied: the version that won, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OlderThan {
    /// Rows of the sync not applied because the table held a newer row
    /// (`records_skipped_older`).
    pub rows: i64,
    /// Its `row_version` as stored (text that sorts in time order); `None` when the profile
    /// has no version (then the later sync won) or the row has none.
    pub version: Option<String>,
    /// `version` as a person reads it, in the profile's forms
    /// ([`crate::profile::readable_version`]); filled by [`OlderThan::name_version`].
    pub version_readable: Option<String>,
    /// The `sync_seq` of the sync that stored it.
    pub sync_seq: i64,
    /// That sync.
    pub sync_id: Option<String>,
    /// The file it came from (`source_file`).
    pub file: Option<String>,
}

impl OlderThan {
    /// Fills [`Self::version_readable`] in `profile`'s forms.
    pub fn name_version(&mut self, profile: &crate::profile::Profile) {
        self.version_readable = self
            .version
            .as_deref()
            .map(|v| crate::profile::readable_version(profile, v));
    }
}

/// One sync's row with the first entries of its validation sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncDetail {
    /// The row.
    #[serde(flatten)]
    pub record: SyncRecord,
    /// The first [`VALIDATION_SAMPLE_SHOWN`] entries of `validation_errors` (each
    /// `{line, column, value, reason}` as written by the pipeline).
    pub validation_errors_sample: Vec<serde_json::Value>,
    /// Entries in the stored sample.
    pub validation_errors_sampled: usize,
}

/// One committed chunk in the ledger `sync_chunks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerChunk {
    /// The chunk id.
    pub chunk_id: u32,
    /// Rows loaded.
    pub rows: i64,
    /// Keys inserted.
    pub inserted: i64,
    /// Keys updated.
    pub updated: i64,
    /// Keys skipped because the stored row was newer.
    pub skipped_older: i64,
    /// When the chunk's transaction committed (RFC 3339 with microseconds, UTC).
    pub committed_at: String,
    /// Rows of the chunk read from the source.
    pub rows_read: i64,
    /// Rows rejected by validation.
    pub rejected: i64,
    /// Rows superseded by a later line with the same key in the chunk.
    pub superseded: i64,
    /// Rule violations found.
    pub validation_errors_count: i64,
}

/// How many columns [`RECORD_COLUMNS`] selects.
const RECORD_COLUMN_COUNT: usize = 24;

const RECORD_COLUMNS: &str = "sync_id::text, status::text, file_name::text, file_path::text,
    file_size_bytes::bigint, COALESCE(records_total, 0)::bigint,
    COALESCE(records_inserted, 0)::bigint, COALESCE(records_updated, 0)::bigint,
    COALESCE(records_failed, 0)::bigint, COALESCE(records_skipped_older, 0)::bigint,
    COALESCE(records_superseded, 0)::bigint, COALESCE(validation_errors_count, 0)::bigint,
    error_message::text, started_at::timestamptz, completed_at::timestamptz,
    duration_seconds::double precision, COALESCE(records_loaded, 0)::bigint,
    COALESCE(records_pending, 0)::bigint, COALESCE(value_warnings, 0)::bigint,
    unknown_columns::jsonb, older_than_version::text, older_than_sync_seq::bigint,
    older_than_sync_id::text, older_than_file::text";

/// The `limit` most recent syncs, newest first (by `started_at`).
pub async fn recent_syncs(
    client: &Client,
    schema: &str,
    limit: u32,
) -> Result<Vec<SyncRecord>, ReadError> {
    ensure_tables(client, schema).await?;
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM {}.sync_metadata
          ORDER BY started_at DESC, sync_id DESC LIMIT $1",
        quote_ident(schema)
    );
    let rows = client
        .query(&sql, &[&i64::from(limit)])
        .await
        .map_err(|e| PgError::query("cannot read sync_metadata", e))?;
    Ok(rows.iter().map(record).collect())
}

/// One sync's row and validation sample; `None` when `sync_metadata` has no such sync.
pub async fn sync_detail(
    client: &Client,
    schema: &str,
    sync_id: &str,
) -> Result<Option<SyncDetail>, ReadError> {
    ensure_tables(client, schema).await?;
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, validation_errors::jsonb FROM {}.sync_metadata
          WHERE sync_id = $1",
        quote_ident(schema)
    );
    let row = client
        .query_opt(&sql, &[&sync_id])
        .await
        .map_err(|e| PgError::query("cannot read sync_metadata", e))?;
    let Some(r) = row else {
        return Ok(None);
    };
    let sample: Option<serde_json::Value> = r.get(RECORD_COLUMN_COUNT);
    let entries = match sample {
        Some(serde_json::Value::Array(items)) => items,
        Some(serde_json::Value::Null) | None => Vec::new(),
        Some(other) => vec![other],
    };
    Ok(Some(SyncDetail {
        record: record(&r),
        validation_errors_sampled: entries.len(),
        validation_errors_sample: entries.into_iter().take(VALIDATION_SAMPLE_SHOWN).collect(),
    }))
}

/// The most recently started sync's id, if any.
pub async fn latest_sync_id(client: &Client, schema: &str) -> Result<Option<String>, ReadError> {
    Ok(recent_syncs(client, schema, 1)
        .await?
        .into_iter()
        .next()
        .map(|r| r.sync_id))
}

/// The ledger rows of a sync, by chunk id.
pub async fn ledger_chunks(
    client: &Client,
    schema: &str,
    sync_id: &str,
) -> Result<Vec<LedgerChunk>, ReadError> {
    ensure_tables(client, schema).await?;
    let sql = format!(
        "SELECT chunk_id::integer, \"rows\"::bigint, inserted::bigint, updated::bigint,
                skipped_older::bigint, committed_at::timestamptz, rows_read::bigint,
                rejected::bigint, superseded::bigint, validation_errors_count::bigint
           FROM {}.sync_chunks WHERE sync_id = $1 ORDER BY chunk_id",
        quote_ident(schema)
    );
    let rows = client
        .query(&sql, &[&sync_id])
        .await
        .map_err(|e| PgError::query("cannot read the chunk ledger sync_chunks", e))?;
    Ok(rows
        .iter()
        .map(|r| LedgerChunk {
            chunk_id: r.get::<_, i32>(0).max(0).cast_unsigned(),
            rows: r.get(1),
            inserted: r.get(2),
            updated: r.get(3),
            skipped_older: r.get(4),
            committed_at: r
                .get::<_, DateTime<Utc>>(5)
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            rows_read: r.get(6),
            rejected: r.get(7),
            superseded: r.get(8),
            validation_errors_count: r.get(9),
        })
        .collect())
}

/// How the chunks the ledger has for a sync were cut, `None` when it has none. Rows committed
/// before the cut was recorded (migration 5) were cut by rows only, at the size of the largest
/// chunk. Needs the schema migrated by `pg::init_db` (the pipeline runs it first).
pub async fn ledger_cut(
    client: &Client,
    schema: &str,
    sync_id: &str,
) -> Result<Option<ChunkCut>, ReadError> {
    let sql = format!(
        "SELECT cut_rows, cut_bytes, cut_max_line_bytes, max(rows_read) OVER ()
           FROM {}.sync_chunks WHERE sync_id = $1
          ORDER BY cut_rows IS NULL, chunk_id LIMIT 1",
        quote_ident(schema)
    );
    let row = client
        .query_opt(&sql, &[&sync_id])
        .await
        .map_err(|e| PgError::query("cannot read the chunk ledger sync_chunks", e))?;
    let n = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).filter(|&v| v > 0);
    Ok(row.and_then(|r| match n(r.get(0)) {
        Some(rows) => Some(ChunkCut {
            rows,
            bytes: n(r.get(1)),
            max_line_bytes: n(r.get(2)),
        }),
        None => n(r.get(3)).map(|rows| ChunkCut {
            rows,
            bytes: None,
            max_line_bytes: None,
        }),
    }))
}

/// Fails with [`ReadError::NotInitialized`] unless both datsync tables exist.
async fn ensure_tables(client: &Client, schema: &str) -> Result<(), ReadError> {
    let s = quote_ident(schema);
    let present: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
            &[&format!("{s}.sync_metadata"), &format!("{s}.sync_chunks")],
        )
        .await
        .map_err(|e| PgError::query("cannot look up the datsync tables", e))?
        .get(0);
    if present {
        Ok(())
    } else {
        Err(ReadError::NotInitialized {
            schema: schema.to_owned(),
        })
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn record(r: &Row) -> SyncRecord {
    let sync_id: String = r.get(0);
    let status = RecordedStatus::from_stored(&r.get::<_, Option<String>>(1).unwrap_or_default());
    SyncRecord {
        sync_id,
        status,
        file_name: r.get(2),
        file_path: r.get(3),
        file_size_bytes: r.get(4),
        records_total: r.get(5),
        records_inserted: r.get(6),
        records_updated: r.get(7),
        records_failed: r.get(8),
        records_skipped_older: r.get(9),
        records_superseded: r.get(10),
        validation_errors_count: r.get(11),
        error_message: r.get(12),
        started_at: r
            .get::<_, Option<DateTime<Utc>>>(13)
            .map(stamp)
            .unwrap_or_default(),
        completed_at: r.get::<_, Option<DateTime<Utc>>>(14).map(stamp),
        duration_seconds: r.get(15),
        records_loaded: r.get(16),
        records_pending: r.get(17),
        value_warnings: r.get(18),
        unknown_columns: r
            .get::<_, Option<serde_json::Value>>(19)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
        older_than: r.get::<_, Option<i64>>(21).map(|sync_seq| OlderThan {
            rows: r.get(9),
            version: r.get(20),
            version_readable: None,
            sync_seq,
            sync_id: r.get(22),
            file: r.get(23),
        }),
    }
}
