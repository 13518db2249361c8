//! The status of one sync, merged from `sync_metadata`, the chunk ledger and the checkpoint
//! manifest (for `datsync status`). Pure: the caller reads the three sources.
//!
//! The ledger wins: a chunk with a ledger row is committed, whatever the manifest says (the
//! manifest is updated after the commit, so a crash in between leaves it behind).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::history::{LedgerChunk, OlderThan, SyncDetail};
use crate::checkpoint::{CheckpointManager, ChunkEntry, Manifest};
use crate::model::{CheckpointStatus, ChunkStatus, SyncId};
use crate::store::Store;

/// What was found in the checkpoint directory for the sync.
#[derive(Debug, Clone)]
pub enum CheckpointState {
    /// No checkpoint: never made, removed after a success, or removed by `gc`.
    Absent,
    /// The manifest, journal applied.
    Found(Box<Manifest>),
    /// A checkpoint exists but cannot be read; the message says why.
    Unreadable(String),
}

/// The merged status of one sync.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// The sync id.
    pub sync_id: String,
    /// The `sync_metadata` row, when there is one.
    pub metadata: Option<SyncDetail>,
    /// The ledger: committed chunks and their sums.
    pub ledger: LedgerSummary,
    /// The checkpoint directory or URL that was looked at.
    pub checkpoint_dir: String,
    /// The checkpoint, when one exists and is readable.
    pub checkpoint: Option<CheckpointSummary>,
    /// Why there is no checkpoint summary, when there is none.
    pub checkpoint_note: Option<String>,
    /// Chunk progress (`"120/150 chunks completed"`).
    pub progress: ChunkProgress,
    /// Every chunk known to the manifest or the ledger, by id (ledger wins).
    pub chunks: Vec<ChunkRow>,
    /// The chunks whose state is `failed`.
    pub failed_chunks: Vec<ChunkRow>,
    /// An estimate of the time resuming saved, when it can be computed honestly.
    pub time_saved: Option<TimeSavedEstimate>,
    /// Why there is no estimate, when there is none.
    pub time_saved_note: Option<String>,
    /// The newest stored row that the sync's rows were older than, so they were not applied
    /// (from `sync_metadata`); `None` when no row was skipped as older.
    pub older_than: Option<OlderThan>,
    /// Every row the sync loaded was older than the table's (`records_loaded =
    /// records_skipped_older > 0`): the file changed nothing. The status stays what it is
    /// (SUCCESS when nothing failed): a late file is not an error.
    pub all_older: bool,
}

impl StatusReport {
    /// Shows the winning version in `profile`'s forms ([`OlderThan::name_version`]).
    pub fn name_versions(&mut self, profile: &crate::profile::Profile) {
        if let Some(o) = &mut self.older_than {
            o.name_version(profile);
        }
    }
}

/// Sums of the ledger rows of a sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LedgerSummary {
    /// Committed chunks.
    pub chunks_committed: u64,
    /// Rows in them.
    pub rows: i64,
    /// Keys inserted.
    pub inserted: i64,
    /// Keys updated.
    pub updated: i64,
    /// Keys skipped because the stored row was newer.
    pub skipped_older: i64,
}

/// The checkpoint as its manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointSummary {
    /// `converting`, `ready`, `processing`, `completed` or `failed`.
    pub status: CheckpointStatus,
    /// The stage reached.
    pub phase: CheckpointStatus,
    /// When the checkpoint was created.
    pub created_at: String,
    /// Its last change.
    pub updated_at: String,
    /// The source as given.
    pub source_path: String,
    /// Rows per chunk.
    pub chunk_size: u64,
    /// Rows in all chunks.
    pub rows: u64,
    /// The sync's error, when it failed.
    pub error: Option<String>,
}

/// Chunk counts by state (after the ledger is applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkProgress {
    /// Chunks in the manifest (or, without one, in the ledger).
    pub chunks_total: u64,
    /// Whether `chunks_total` is final (the conversion is finished).
    pub total_final: bool,
    /// Chunks completed.
    pub chunks_completed: u64,
    /// Chunks skipped (nothing to load).
    pub chunks_skipped: u64,
    /// Chunks failed.
    pub chunks_failed: u64,
    /// Chunks ready or processing.
    pub chunks_pending: u64,
    /// `"N/M chunks completed"` (completed and skipped count as done).
    pub text: String,
}

/// One chunk as `datsync status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkRow {
    /// The chunk id.
    pub chunk_id: u32,
    /// The state after the ledger is applied (a chunk in the ledger is `completed`).
    pub status: ChunkStatus,
    /// The state the manifest records, when the manifest lists the chunk.
    pub manifest_status: Option<ChunkStatus>,
    /// Whether the ledger has the chunk.
    pub committed: bool,
    /// Rows in the chunk file (or loaded, for a chunk only the ledger knows).
    pub rows: u64,
    /// First source line (from the manifest).
    pub first_line: Option<u64>,
    /// Last source line (from the manifest).
    pub last_line: Option<u64>,
    /// Keys inserted (the ledger's figure when committed).
    pub inserted: u64,
    /// Keys updated (the ledger's figure when committed).
    pub updated: u64,
    /// Rows rejected by validation (from the manifest).
    pub rejected: u64,
    /// Processing attempts (from the manifest).
    pub attempts: u32,
    /// The last error of a chunk that is not committed.
    pub error: Option<String>,
    /// When the manifest recorded the chunk done.
    pub processed_at: Option<String>,
}

/// An estimate of the time a resume saved: the chunks committed before the resume (which
/// it skipped) times the mean time between two commits before it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimeSavedEstimate {
    /// Chunks committed before the resume.
    pub chunks_skipped: u64,
    /// Mean seconds per chunk, measured from the ledger's commit times before the resume.
    pub seconds_per_chunk: f64,
    /// `chunks_skipped × seconds_per_chunk`.
    pub seconds: f64,
}

/// Why `datsync status` shows no time-saved figure when the resume time is unknown.
pub const TIME_SAVED_NOT_RECORDED: &str = "not shown: datsync does not record when a sync \
     was resumed, so the chunks a resume skipped cannot be told apart from the others";
/// Why there is no figure when fewer than two chunks were committed before the resume.
pub const TIME_SAVED_TOO_FEW: &str = "not shown: fewer than two chunks were committed before \
     the resume, too few to measure the time per chunk";

/// Estimates the time saved by a resume that started at `resumed_at`: the ledger chunks
/// committed before it were skipped; their cost is measured from the spacing of their
/// commit times. `None` with fewer than two commits before the resume (nothing to measure).
pub fn estimate_time_saved(
    ledger: &[LedgerChunk],
    resumed_at: DateTime<Utc>,
) -> Option<TimeSavedEstimate> {
    let mut before: Vec<DateTime<Utc>> = ledger
        .iter()
        .filter_map(|c| DateTime::parse_from_rfc3339(&c.committed_at).ok())
        .map(|t| t.to_utc())
        .filter(|t| *t < resumed_at)
        .collect();
    before.sort_unstable();
    let (first, last) = (before.first()?, before.last()?);
    let n = before.len() as u64;
    if n < 2 {
        return None;
    }
    let span = (*last - *first).as_seconds_f64();
    let per_chunk = span / (n - 1) as f64;
    Some(TimeSavedEstimate {
        chunks_skipped: n,
        seconds_per_chunk: per_chunk,
        seconds: per_chunk * n as f64,
    })
}

/// Merges the three sources into one report. `resumed_at`, when known, is the start of the
/// last resume; the time it saved is then estimated with [`estimate_time_saved`].
pub fn build_report(
    sync_id: &str,
    metadata: Option<SyncDetail>,
    ledger: &[LedgerChunk],
    checkpoint: CheckpointState,
    checkpoint_dir: &str,
    resumed_at: Option<DateTime<Utc>>,
) -> StatusReport {
    let (manifest, checkpoint_note) = match checkpoint {
        CheckpointState::Found(m) => (Some(m), None),
        CheckpointState::Absent => (
            None,
            Some(format!(
                "no checkpoint in {checkpoint_dir} (never made, deleted after a success, or \
                 removed by gc); chunk details come from the ledger alone"
            )),
        ),
        CheckpointState::Unreadable(why) => (None, Some(why)),
    };
    let chunks = merge_chunks(manifest.as_deref(), ledger);
    let progress = progress(manifest.as_deref(), &chunks);
    let failed_chunks = chunks
        .iter()
        .filter(|c| c.status == ChunkStatus::Failed)
        .cloned()
        .collect();
    let time_saved = resumed_at.and_then(|at| estimate_time_saved(ledger, at));
    let time_saved_note = match (resumed_at, time_saved) {
        (_, Some(_)) => None,
        (Some(_), None) => Some(TIME_SAVED_TOO_FEW.to_owned()),
        (None, None) => Some(TIME_SAVED_NOT_RECORDED.to_owned()),
    };
    let older_than = metadata.as_ref().and_then(|m| m.record.older_than.clone());
    let all_older = metadata.as_ref().is_some_and(|m| {
        m.record.records_loaded > 0 && m.record.records_skipped_older == m.record.records_loaded
    });
    StatusReport {
        sync_id: sync_id.to_owned(),
        metadata,
        ledger: summarize(ledger),
        checkpoint_dir: checkpoint_dir.to_owned(),
        checkpoint: manifest.as_deref().map(summary),
        checkpoint_note,
        progress,
        chunks,
        failed_chunks,
        time_saved,
        time_saved_note,
        older_than,
        all_older,
    }
}

fn summarize(ledger: &[LedgerChunk]) -> LedgerSummary {
    ledger
        .iter()
        .fold(LedgerSummary::default(), |s, c| LedgerSummary {
            chunks_committed: s.chunks_committed + 1,
            rows: s.rows + c.rows,
            inserted: s.inserted + c.inserted,
            updated: s.updated + c.updated,
            skipped_older: s.skipped_older + c.skipped_older,
        })
}

fn summary(m: &Manifest) -> CheckpointSummary {
    CheckpointSummary {
        status: m.status,
        phase: m.phase,
        created_at: m.created_at.clone(),
        updated_at: m.updated_at.clone(),
        source_path: m.source_path.clone(),
        chunk_size: m.chunk_size,
        rows: m.total_rows(),
        error: m.error.clone(),
    }
}

fn merge_chunks(manifest: Option<&Manifest>, ledger: &[LedgerChunk]) -> Vec<ChunkRow> {
    let mut rows: BTreeMap<u32, ChunkRow> = manifest
        .map(|m| {
            m.chunks
                .iter()
                .map(|c| (c.chunk_id.0, from_manifest(c)))
                .collect()
        })
        .unwrap_or_default();
    for l in ledger {
        let row = rows
            .entry(l.chunk_id)
            .or_insert_with(|| ledger_only(l.chunk_id));
        row.status = ChunkStatus::Completed;
        row.committed = true;
        row.inserted = l.inserted.max(0).cast_unsigned();
        row.updated = l.updated.max(0).cast_unsigned();
        row.rejected = l.rejected.max(0).cast_unsigned();
        row.error = None;
        if row.manifest_status.is_none() {
            // Rows read from the source (the ledger's `rows` are the rows staged).
            row.rows = l.rows_read.max(l.rows).max(0).cast_unsigned();
        }
    }
    rows.into_values().collect()
}

fn from_manifest(c: &ChunkEntry) -> ChunkRow {
    ChunkRow {
        chunk_id: c.chunk_id.0,
        status: c.status,
        manifest_status: Some(c.status),
        committed: false,
        rows: c.rows,
        first_line: Some(c.first_line),
        last_line: Some(c.last_line),
        inserted: c.records_inserted,
        updated: c.records_updated,
        rejected: c.rows_rejected,
        attempts: c.attempts,
        error: c.error.clone(),
        processed_at: c.processed_at.clone(),
    }
}

fn ledger_only(chunk_id: u32) -> ChunkRow {
    ChunkRow {
        chunk_id,
        status: ChunkStatus::Completed,
        manifest_status: None,
        committed: true,
        rows: 0,
        first_line: None,
        last_line: None,
        inserted: 0,
        updated: 0,
        rejected: 0,
        attempts: 0,
        error: None,
        processed_at: None,
    }
}

fn progress(manifest: Option<&Manifest>, chunks: &[ChunkRow]) -> ChunkProgress {
    let count = |s: ChunkStatus| chunks.iter().filter(|c| c.status == s).count() as u64;
    let (completed, skipped, failed) = (
        count(ChunkStatus::Completed),
        count(ChunkStatus::Skipped),
        count(ChunkStatus::Failed),
    );
    let total = chunks.len() as u64;
    let total_final = manifest.is_some_and(|m| m.phase != CheckpointStatus::Converting);
    let done = completed + skipped;
    let text = match manifest {
        Some(_) if total_final => format!("{done}/{total} chunks completed"),
        Some(_) => format!("{done}/{total} chunks completed (conversion still running)"),
        None => format!("{done} chunks committed (total unknown without a checkpoint)"),
    };
    ChunkProgress {
        chunks_total: total,
        total_final,
        chunks_completed: completed,
        chunks_skipped: skipped,
        chunks_failed: failed,
        chunks_pending: total - done - failed,
        text,
    }
}

/// Reads the checkpoint of `sync_id` from `store` (`None`: the location does not exist).
pub async fn read_checkpoint(store: Option<&Store>, sync_id: &SyncId) -> CheckpointState {
    let Some(store) = store else {
        return CheckpointState::Absent;
    };
    let mut manager = CheckpointManager::new(store.clone(), sync_id.clone());
    match manager.checkpoint_exists().await {
        Ok(true) => manager.manifest().map_or(CheckpointState::Absent, |m| {
            CheckpointState::Found(Box::new(m.clone()))
        }),
        Ok(false) => CheckpointState::Absent,
        Err(e) => CheckpointState::Unreadable(e.to_string()),
    }
}
