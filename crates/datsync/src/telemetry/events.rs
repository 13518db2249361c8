//! The events of a sync, one struct each.

use super::{Event, Metrics};
use crate::model::{ChunkCounts, ChunkId, SyncId};
use crate::pipeline::RunSummary;

/// A chunk's Parquet file is written and listed in the manifest.
pub struct ChunkConverted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Rows in the chunk.
    pub rows: u64,
    /// Bytes of the source read since the previous chunk was handed over (as stored).
    pub source_bytes: u64,
}

impl Event for ChunkConverted<'_> {
    const NAME: &'static str = "chunk_converted";
    fn log(&self) {
        tracing::debug!(sync_id = %self.sync_id, chunk = self.chunk.0, rows = self.rows, "chunk converted");
    }
    fn record(&self, metrics: &Metrics) {
        metrics.source_read(self.source_bytes);
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

/// A chunk's derived tables are committed on the loader's second connection and its rows
/// are written; its own transaction is not committed yet (`load/derived.rs`, "Beside the
/// chunk's transaction").
pub struct DerivedCommitted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
}

impl Event for DerivedCommitted<'_> {
    const NAME: &'static str = "derived_committed";
    fn log(&self) {
        tracing::trace!(sync_id = %self.sync_id, chunk = self.chunk.0, "chunk's derived tables committed");
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

/// A chunk is committed and marked completed in the manifest: the progress line of a run
/// (INFO, one per chunk, with structured fields for `--log-format json`).
pub struct ChunkCompleted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
    /// What the chunk did.
    pub counts: &'a ChunkCounts,
    /// Wall time of the chunk, from validation to commit.
    pub seconds: f64,
    /// Share of the source read when the chunk was cut (0 to 1; compressed bytes for gzip),
    /// when known (not for a chunk read back from the checkpoint).
    pub source_read: Option<f64>,
    /// Estimated seconds left, from the share of the source read and the run's time so far.
    pub eta_s: Option<f64>,
}

impl Event for ChunkCompleted<'_> {
    const NAME: &'static str = "chunk_completed";
    fn log(&self) {
        let c = self.counts;
        let rows_per_s = per_second(c.rows, self.seconds);
        tracing::info!(
            sync_id = %self.sync_id, chunk = self.chunk.0, rows = c.rows, inserted = c.inserted,
            updated = c.updated, skipped_older = c.skipped_older, superseded = c.superseded,
            rejected = c.rejected, warnings = c.warnings, seconds = round(self.seconds, 3),
            rows_per_s, source_read_pct = self.source_read.map(|s| round(s * 100.0, 1)),
            eta_s = self.eta_s.map(|s| s.round() as u64),
            "chunk loaded"
        );
    }
    fn record(&self, metrics: &Metrics) {
        metrics.chunk_committed(self.counts, self.seconds);
        metrics
            .live()
            .chunk_committed(self.sync_id, self.counts, self.source_read, self.eta_s);
    }
}

/// `count / seconds`, whole, 0 when no time passed.
pub(crate) fn per_second(count: u64, seconds: f64) -> u64 {
    if seconds > 0.0 {
        (count as f64 / seconds).round() as u64
    } else {
        0
    }
}

/// `value` rounded to `digits` decimals.
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
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
    fn record(&self, metrics: &Metrics) {
        metrics.chunk_failed();
        metrics
            .live()
            .chunk_failed(self.sync_id, self.chunk, self.error);
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

/// A sync was halted for every worker (its status written, its chunk rows deleted, its
/// finish row queued, in one transaction); its final steps follow.
pub struct SyncHalted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// Its status: BAD_INPUT or FAILED.
    pub status: crate::model::SyncStatus,
}

impl Event for SyncHalted<'_> {
    const NAME: &'static str = "sync_halted";
    fn log(&self) {
        tracing::debug!(sync_id = %self.sync_id, status = %self.status, "sync halted; finishing it");
    }
}

/// A worker claimed a sync's finish row (it holds the row while it finishes the sync).
pub struct FinishClaimed<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
}

impl Event for FinishClaimed<'_> {
    const NAME: &'static str = "finish_claimed";
    fn log(&self) {
        tracing::debug!(sync_id = %self.sync_id, "finish row claimed");
    }
}

/// A finish's steps that reach outside (hooks, alert) are done and recorded, and old
/// checkpoints expired: what is left is the release of the sync (a worker's finish row).
pub struct FinalStepsDone<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
}

impl Event for FinalStepsDone<'_> {
    const NAME: &'static str = "final_steps_done";
    fn log(&self) {
        tracing::debug!(sync_id = %self.sync_id, "final steps done");
    }
}

/// A sync reached a final status: the summary line of a run, every count in a field.
pub struct SyncFinished<'a> {
    /// What the run did (the `--json` summary).
    pub summary: &'a RunSummary,
    /// Rows rejected in the chunk that stopped the sync (never committed, so in no
    /// [`ChunkCompleted`]).
    pub rejected_uncommitted: u64,
}

impl Event for SyncFinished<'_> {
    const NAME: &'static str = "sync_finished";
    fn log(&self) {
        let s = self.summary;
        let c = &s.counts;
        tracing::info!(
            sync_id = %s.sync_id, status = %s.status, rows_read = c.rows_read,
            rows_loaded = c.rows_loaded, inserted = c.records_inserted,
            updated = c.records_updated, skipped_older = c.records_skipped_older,
            rejected = c.rows_rejected, superseded = c.rows_superseded,
            pending = c.rows_pending, warnings = c.value_warnings,
            chunks_total = c.chunks_total, chunks_completed = c.chunks_completed,
            chunks_failed = c.chunks_failed, chunks_skipped_on_resume = s.chunks_skipped_on_resume,
            seconds = round(s.duration_s, 3), rows_per_s = per_second(c.rows_read, s.duration_s),
            resumed = s.resumed, error = s.error.as_deref(),
            "sync finished"
        );
    }
    fn record(&self, metrics: &Metrics) {
        let s = self.summary;
        metrics.sync_finished(
            s.status,
            s.is_final() && s.status != crate::model::SyncStatus::BadInput,
            s.chunks_skipped_on_resume,
            self.rejected_uncommitted,
        );
    }
}
