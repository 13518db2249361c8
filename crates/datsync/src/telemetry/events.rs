//! The events of a sync, one struct each.

use super::Event;
use crate::model::{ChunkId, SyncId, SyncStatus};

/// A chunk's Parquet file is written and listed in the manifest.
pub struct ChunkConverted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Rows in the chunk.
    pub rows: u64,
}

impl Event for ChunkConverted<'_> {
    const NAME: &'static str = "chunk_converted";
    fn log(&self) {
        tracing::debug!(sync_id = %self.sync_id, chunk = self.chunk.0, rows = self.rows, "chunk converted");
    }
}

/// A chunk's rows are in the staging table; the upsert and commit have not happened yet.
pub struct ChunkStaged<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
}

impl Event for ChunkStaged<'_> {
    const NAME: &'static str = "chunk_staged";
    fn log(&self) {
        tracing::trace!(sync_id = %self.sync_id, chunk = self.chunk.0, "chunk staged");
    }
}

/// A chunk's upsert and ledger row are committed; the manifest is not updated yet.
pub struct ChunkCommitted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
}

impl Event for ChunkCommitted<'_> {
    const NAME: &'static str = "chunk_committed";
    fn log(&self) {
        tracing::trace!(sync_id = %self.sync_id, chunk = self.chunk.0, "chunk committed");
    }
}

/// A chunk is marked completed in the manifest.
pub struct ChunkCompleted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
}

impl Event for ChunkCompleted<'_> {
    const NAME: &'static str = "chunk_completed";
    fn log(&self) {
        tracing::debug!(
            sync_id = %self.sync_id, chunk = self.chunk.0, inserted = self.inserted, updated = self.updated,
            "chunk completed"
        );
    }
}

/// A chunk failed for now (a transient database error after retries).
pub struct ChunkFailed<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
    /// The error.
    pub error: &'a str,
}

impl Event for ChunkFailed<'_> {
    const NAME: &'static str = "chunk_failed";
    fn log(&self) {
        tracing::warn!(sync_id = %self.sync_id, chunk = self.chunk.0, error = self.error, "chunk failed; it will be retried on resume");
    }
}

/// Rows of a chunk were rejected by validation (kept in the rejects file).
pub struct RowsRejected<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Rows rejected.
    pub count: u64,
}

impl Event for RowsRejected<'_> {
    const NAME: &'static str = "rows_rejected";
    fn log(&self) {
        tracing::debug!(sync_id = %self.sync_id, chunk = self.chunk.0, count = self.count, "rows rejected");
    }
}

/// Values of a chunk were not loaded as written (kept in the warnings file); the sync's
/// end logs them once, as a warning.
pub struct ValuesWarned<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Warnings.
    pub count: u64,
    /// The first of them.
    pub first: &'a crate::model::RowError,
}

impl Event for ValuesWarned<'_> {
    const NAME: &'static str = "values_warned";
    fn log(&self) {
        tracing::debug!(sync_id = %self.sync_id, chunk = self.chunk.0, count = self.count,
            line = self.first.line, column = self.first.column.as_deref().unwrap_or(""),
            reason = %self.first.reason, "values not loaded as written");
    }
}

/// Checkpoint cleanup begins.
pub struct CleanupStarted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
}

impl Event for CleanupStarted<'_> {
    const NAME: &'static str = "cleanup_started";
    fn log(&self) {
        tracing::debug!(sync_id = %self.sync_id, "removing checkpoints");
    }
}

/// A sync reached a final status.
pub struct SyncFinished<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// Its status.
    pub status: SyncStatus,
}

impl Event for SyncFinished<'_> {
    const NAME: &'static str = "sync_finished";
    fn log(&self) {
        tracing::info!(sync_id = %self.sync_id, status = %self.status, "sync finished");
    }
}
