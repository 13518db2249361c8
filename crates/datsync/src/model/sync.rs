//! A sync as the stages pass it on: the registered sync ([`SyncRef`]) and its counts
//! ([`SyncCounts`]).

use serde::{Deserialize, Serialize};

use super::SyncId;

/// The sync a chunk belongs to, as registered in `sync_metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRef {
    /// The sync id.
    pub sync_id: SyncId,
    /// The number drawn from `datsync_sync_seq` when the sync was first registered.
    pub sync_seq: i64,
    /// The base name of the source, stored in every row's `source_file`.
    pub source_file: String,
}

/// The rows of one committed chunk, by what came of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkCounts {
    /// Data rows of the chunk (read from the source).
    pub rows: u64,
    /// Keys inserted.
    pub inserted: u64,
    /// Keys whose stored row, from an earlier sync, was replaced.
    pub updated: u64,
    /// Keys left alone because the stored row is newer.
    pub skipped_older: u64,
    /// Rows that lost to a later row of the same sync (in the chunk or on load).
    pub superseded: u64,
    /// Rows rejected by validation.
    pub rejected: u64,
    /// Values not loaded as written.
    pub warnings: u64,
    /// Derived tables whose upsert failed for the chunk (rolled back; the chunk loaded).
    pub derived_failed: u64,
}

/// The row and chunk counts of a sync: what a run reports (`--json`), what an alert says,
/// and what `sync_metadata` stores (`records_total` = `rows_read`, `records_failed` =
/// `rows_rejected`, …). Every source line is counted once:
/// `rows_read = rows_loaded + rows_rejected + rows_superseded + rows_pending`, and every
/// loaded row once: `rows_loaded = records_inserted + records_updated +
/// records_skipped_older`. These hold in every status, and are the same whatever order the
/// chunks committed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncCounts {
    /// Data rows read from the source (all chunks; the header not included).
    pub rows_read: u64,
    /// Rows that are the sync's last word on their key: inserted, updated, or older than the
    /// stored row of another sync.
    pub rows_loaded: u64,
    /// Rows rejected by validation or parsing (kept in the rejects files), including those of
    /// a chunk that stopped the sync (error threshold).
    pub rows_rejected: u64,
    /// Rows replaced by a later line of the same sync with the same key (in the same chunk or
    /// in another one).
    pub rows_superseded: u64,
    /// Rows of chunks not committed yet (failed, or not reached because the sync stopped).
    pub rows_pending: u64,
    /// Keys inserted (no row had the key before this sync).
    pub records_inserted: u64,
    /// Keys whose row, from an earlier sync, this sync replaced.
    pub records_updated: u64,
    /// Keys left alone because the stored row, from another sync, is newer.
    pub records_skipped_older: u64,
    /// Values not loaded as written (read as NULL, a time as midnight, an integer rounded):
    /// the warning records of `datsync rejects --kind warning`.
    pub value_warnings: u64,
    /// Chunks the source was cut into.
    pub chunks_total: u64,
    /// Chunks committed.
    pub chunks_completed: u64,
    /// Chunks that failed and are kept for a retry.
    pub chunks_failed: u64,
}
