//! The seed's `CheckpointManager`: Parquet chunks and `manifest.json`, crash-proof.
//!
//! # Layout
//!
//! ```text
//! <base>/<sync_id>/manifest.json              the seed's manifest (plus our fields)
//! <base>/<sync_id>/chunk_0000.parquet         one per chunk; more digits past 9999
//! <base>/<sync_id>/journal/000000000042.json  chunk transitions not yet folded in
//! ```
//!
//! The names are built by [`crate::store`], the only module that talks to `object_store`.
//!
//! # Manifest and journal
//!
//! `manifest.json` is the seed-shaped document ([`Manifest`]). Rewriting it on every chunk
//! transition would cost time proportional to the number of chunks (about 450 bytes each, so
//! 2 MB at 5,000 chunks) on every one of thousands of updates. Instead each chunk transition
//! (`save_chunk_parquet`, `mark_chunk_*`) is written as one small journal object holding the
//! chunk's whole new entry and the sync's status ([`JournalEntry`]). The manifest is rewritten
//! ("compacted") at every change of sync state (create, finalize, completed, failed) and
//! whenever the journal holds `max(compact_every, total_chunks)` entries
//! ([`CheckpointOptions::compact_every`]): the journal then never outgrows the manifest, so
//! a compaction's cost (proportional to the chunk count) is spread over as many updates, and
//! an update costs one small PUT plus a constant share of a compaction, whatever the number
//! of chunks. Opening a checkpoint reads at most that many journal objects (16 at a time).
//! Figures: `cargo bench -p datsync --bench manifest`.
//!
//! The truth is `manifest.json` plus the journal entries whose sequence number is above the
//! manifest's `journal_seq`, applied in order. Entries carry whole states, not deltas, so
//! applying one twice is harmless; entries at or below `journal_seq` are leftovers of a
//! compaction interrupted before it deleted them and are ignored (and deleted at the next
//! compaction). `manifest.json` alone is always a complete, readable manifest that is at
//! most `max(compact_every, total_chunks)` chunk transitions behind, and never behind on the
//! sync's status.
//!
//! # Crashes
//!
//! Every object is written by one atomic PUT (see [`crate::store`]): a crash leaves the
//! previous or the next version of the manifest or of a journal entry, never a torn one. A
//! chunk's Parquet file is written before the journal entry that records it; a file left
//! without an entry by a crash is found by the listing made when the checkpoint is opened
//! ([`CheckpointManager::unrecorded_chunks`]) and, when that chunk is saved again, read back
//! and reused if it holds exactly the batch being saved, else rewritten. A chunk is recorded
//! once per id, so it is never counted twice. An empty, truncated or
//! unreadable manifest is a [`CheckpointError::ManifestCorrupt`] naming the file and the ways
//! out (rebuild the checkpoint from the source and the database with `datsync resume SYNC_ID
//! --rebuild-checkpoint`, start a new sync with `--fresh`, or delete the directory): never a
//! silent restart from zero. A journal object that is unreadable or holds another entry than its name says
//! is left unread and named ([`CheckpointManager::damaged_journal`]): entries hold whole
//! states, so one left out loses at most a transition, and the pipeline's audit of the
//! checkpoint against the source and the ledger repairs what it lost (see `audit.rs`).
//!
//! # States
//!
//! Chunks: `ready` → `processing` → `completed` | `failed` (retried: → `processing`), or
//! `skipped`. The sync's `status`: `converting` → `ready` → `processing` → `completed`, or
//! `failed`; its `phase` is the same but keeps the stage reached when the status is `failed`,
//! so a failed sync resumes where it stopped. Phase 1 and 2 may overlap: chunks can be
//! processed while the sync is still converting.
//!
//! # Retention
//!
//! See [`remove_expired`]: directories whose last update is older than N days go, but a sync
//! that may still be running is kept for at least [`DEFAULT_ACTIVE_GRACE_HOURS`] after its
//! last update.

mod audit;
mod chunks;
mod clock;
mod codec;
mod journal;
mod manager;
mod manifest;
mod retention;
mod transitions;

pub use audit::Damage;
pub use codec::{ChunkCompression, ChunkLines};

/// Writes a batch as one Parquet file in memory (the format of chunk files; the rejects files
/// use it too).
pub fn encode_parquet(
    batch: &arrow_array::RecordBatch,
    compression: ChunkCompression,
) -> Result<bytes::Bytes, parquet::errors::ParquetError> {
    codec::encode(batch, compression)
}

/// Reads a Parquet file written by [`encode_parquet`] back into one batch.
pub fn decode_parquet(
    bytes: bytes::Bytes,
) -> Result<arrow_array::RecordBatch, parquet::errors::ParquetError> {
    codec::decode(bytes)
}
pub use clock::{Clock, ManualClock, SystemClock};
pub use manager::{CheckpointManager, NewCheckpoint};
pub use manifest::{
    ChunkEntry, ChunkOutcome, FORMAT_VERSION, FingerprintDifference, JournalEntry, Manifest,
    SourceMismatch, verify_fingerprint, verify_source,
};
pub use retention::{
    DEFAULT_ACTIVE_GRACE_HOURS, KeepReason, RetentionPolicy, RetentionReport, remove_expired,
};

use crate::model::{CheckpointStatus, ChunkId, ChunkStatus, SyncId};
use crate::store::StoreError;

/// The fewest journal entries written between two rewrites of `manifest.json` (more when
/// there are more chunks than this).
pub const DEFAULT_COMPACT_EVERY: u32 = 100;

/// Checkpoint settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointOptions {
    /// Compression of a new checkpoint's chunk files (snappy by default, as in the seed; the
    /// pipeline sets [`ChunkCompression::for_location`]'s unless the settings name one).
    pub compression: ChunkCompression,
    /// The fewest journal entries between two rewrites of `manifest.json` (at least 1); the
    /// manifest is rewritten once the journal holds `max(compact_every, total_chunks)`.
    pub compact_every: u32,
    /// Whether a chunk's file is removed once the chunk is done (completed or skipped): the
    /// pipeline's setting when the checkpoint is removed on success anyway
    /// (`CHECKPOINT_CLEANUP_ON_SUCCESS`, on by default), so that a checkpoint holds the files
    /// of the chunks still to load, not of the whole source, and the final cleanup has little
    /// left to remove. Off by default: a done chunk's file is never read again (a resume skips
    /// done chunks, and a repair cuts chunks again from the source), but a caller that keeps
    /// checkpoints keeps them whole.
    pub remove_done_files: bool,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        Self {
            compression: ChunkCompression::default(),
            compact_every: DEFAULT_COMPACT_EVERY,
            remove_done_files: false,
        }
    }
}

/// An error of the checkpoint manager. Each names the sync, the chunk or the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `manifest.json` is empty, truncated or not a manifest.
    #[error(
        "checkpoint file {path} is unreadable ({reason}); the checkpoint cannot be trusted: \
         rebuild it from the source and the database with `datsync resume {sync_id} \
         --rebuild-checkpoint` (the chunks committed stay committed and are not loaded again), \
         start a new sync with `--fresh`, or delete {dir} to discard it"
    )]
    ManifestCorrupt {
        /// The sync.
        sync_id: SyncId,
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
        /// The checkpoint directory.
        dir: String,
    },
    /// The directory holds checkpoint files (chunk files, journal objects) but no
    /// `manifest.json`.
    #[error(
        "checkpoint directory {dir} has chunk files or journal entries but no manifest.json; rebuild the \
         checkpoint from the source and the database with `datsync resume {sync_id} \
         --rebuild-checkpoint` (the chunks committed stay committed and are not loaded again), \
         start a new sync with `--fresh`, or delete {dir} to discard it"
    )]
    ManifestMissing {
        /// The sync.
        sync_id: SyncId,
        /// The checkpoint directory.
        dir: String,
    },
    /// The manifest was written by another version of this tool.
    #[error(
        "checkpoint manifest {path} has format version {found}, this build reads version \
         {expected}; finish it with the version that wrote it, or start a new sync with `--fresh`"
    )]
    UnsupportedFormat {
        /// The file.
        path: String,
        /// The version found.
        found: u32,
        /// The version this build writes.
        expected: u32,
    },
    /// No checkpoint exists for the sync.
    #[error("no checkpoint for {sync_id}: create it first (create_checkpoint)")]
    NoCheckpoint {
        /// The sync.
        sync_id: SyncId,
    },
    /// A checkpoint already exists where a new one was to be created.
    #[error("a checkpoint already exists at {dir}; resume it, or delete it to start over")]
    AlreadyExists {
        /// The checkpoint directory.
        dir: String,
    },
    /// The operation is not allowed in the sync's current state.
    #[error("{sync_id}: cannot {op} while the sync is {status} (phase {phase})")]
    InvalidState {
        /// The sync.
        sync_id: SyncId,
        /// The operation.
        op: &'static str,
        /// The current status.
        status: CheckpointStatus,
        /// The current phase.
        phase: CheckpointStatus,
    },
    /// The chunk is not in the manifest.
    #[error("{sync_id}: chunk {chunk} is not in the manifest")]
    UnknownChunk {
        /// The sync.
        sync_id: SyncId,
        /// The chunk.
        chunk: ChunkId,
    },
    /// A chunk cannot move from its state to the one asked.
    #[error("{sync_id}: chunk {chunk} cannot go from {from} to {to}")]
    InvalidTransition {
        /// The sync.
        sync_id: SyncId,
        /// The chunk.
        chunk: ChunkId,
        /// Its state.
        from: ChunkStatus,
        /// The state asked.
        to: ChunkStatus,
    },
    /// A chunk's Parquet file is missing: regenerate the chunk from the source.
    #[error("chunk {chunk} file {path} is missing; it must be regenerated from the source")]
    ChunkMissing {
        /// The chunk.
        chunk: ChunkId,
        /// The file.
        path: String,
    },
    /// A chunk's Parquet file does not match its checksum or cannot be read: regenerate it.
    #[error(
        "chunk {chunk} file {path} is corrupt ({reason}); it must be regenerated from the source"
    )]
    ChunkCorrupt {
        /// The chunk.
        chunk: ChunkId,
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A chunk saved again holds other rows than the recorded one: the source changed.
    #[error(
        "{sync_id}: chunk {chunk} differs from the one recorded ({reason}); the source has \
         changed since the checkpoint was made: start a new sync with `--fresh`"
    )]
    ChunkConflict {
        /// The sync.
        sync_id: SyncId,
        /// The chunk.
        chunk: ChunkId,
        /// What differs.
        reason: String,
    },
    /// A batch handed to `save_chunk_parquet` is not a decoder text batch.
    #[error("chunk {chunk}: not a text batch ({reason})")]
    BadBatch {
        /// The chunk.
        chunk: ChunkId,
        /// What is wrong.
        reason: String,
    },
    /// The source differs from the one the checkpoint was made from.
    #[error(transparent)]
    SourceChanged(#[from] SourceMismatch),
    /// Chunk ids are not contiguous when the conversion is finalized.
    #[error("{sync_id}: cannot finalize: chunk {chunk} was never saved")]
    MissingChunk {
        /// The sync.
        sync_id: SyncId,
        /// The first missing chunk.
        chunk: ChunkId,
    },
    /// Writing a chunk to Parquet failed.
    #[error("chunk {chunk}: writing parquet failed: {source}")]
    Parquet {
        /// The chunk.
        chunk: ChunkId,
        /// The Parquet error.
        source: parquet::errors::ParquetError,
    },
    /// The manifest could not be serialized (an internal invariant).
    #[error("serializing the manifest of {sync_id} failed: {source}")]
    Serialize {
        /// The sync.
        sync_id: SyncId,
        /// The JSON error.
        source: serde_json::Error,
    },
}

impl CheckpointError {
    /// Whether the error is a missing or corrupt chunk file, which the pipeline fixes by
    /// converting that chunk again from the source.
    pub fn needs_regeneration(&self) -> bool {
        matches!(self, Self::ChunkMissing { .. } | Self::ChunkCorrupt { .. })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
