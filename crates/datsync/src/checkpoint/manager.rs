//! The manager: one sync's checkpoint — opening it (the manifest with the journal applied
//! after it), creating it, and removing it. How state is written is in `journal.rs`, the
//! chunk files in `chunks.rs`, the seed's state transitions in `transitions.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use super::clock::{Clock, SystemClock, stamp};
use super::manifest::{
    FORMAT_VERSION, JournalEntry, Manifest, ParseProblem, parse_entry, parse_manifest,
};
use super::{CheckpointError, CheckpointOptions, ChunkCompression};
use crate::model::{CheckpointStatus, ChunkId, SourceFingerprint, SyncId};
use crate::store::{ObjectKey, ObjectKind, Store};

/// Journal objects read or deleted at once.
pub(super) const JOURNAL_IO_CONCURRENCY: usize = 16;

/// What a new checkpoint describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckpoint {
    /// The source's base name.
    pub source_file: String,
    /// The source as given (path or URL).
    pub source_path: String,
    /// What identifies the source (its SHA-256 usually comes later, with
    /// [`CheckpointManager::finalize_conversion`]).
    pub fingerprint: SourceFingerprint,
    /// How the chunks are cut (rows per chunk at most, byte budget, line limit).
    pub cut: crate::model::ChunkCut,
}

/// The seed's `CheckpointManager` for one sync. See the module docs for the design.
#[derive(Debug)]
pub struct CheckpointManager {
    pub(super) store: Store,
    pub(super) sync_id: SyncId,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) options: CheckpointOptions,
    pub(super) state: Option<State>,
    /// Done chunks' files being removed ([`CheckpointOptions::remove_done_files`]), awaited
    /// before the checkpoint is removed.
    pub(super) removals: tokio::task::JoinSet<()>,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub(super) struct State {
    pub(super) manifest: Manifest,
    /// The next journal sequence number (never reused, even after a failed write).
    pub(super) next_seq: u64,
    /// Journal entries written since the manifest was last written.
    pub(super) since_compaction: u32,
    /// Chunks completed or skipped (kept so that an update never scans every chunk).
    pub(super) done: usize,
    /// Chunk files found without a manifest entry when the checkpoint was opened (left by
    /// a crash between writing the file and recording it); only these are read back before
    /// a save, so a fresh conversion never pays for a read.
    pub(super) unrecorded: BTreeSet<ChunkId>,
    /// Journal objects folded into the manifest but not deleted yet.
    pub(super) stale: Vec<u64>,
    /// Journal objects that were not applied when the checkpoint was opened: unreadable, or
    /// holding another entry than their name says (see `audit.rs`).
    pub(super) damaged: Vec<String>,
}

impl CheckpointManager {
    /// A manager for `sync_id`'s checkpoint in `store` (`base_path/sync_id` in the seed).
    pub fn new(store: Store, sync_id: SyncId) -> Self {
        Self {
            store,
            sync_id,
            clock: Arc::new(SystemClock),
            options: CheckpointOptions::default(),
            state: None,
            removals: tokio::task::JoinSet::new(),
        }
    }

    /// Uses another clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses other settings.
    #[must_use]
    pub fn with_options(mut self, options: CheckpointOptions) -> Self {
        self.options = CheckpointOptions {
            compact_every: options.compact_every.max(1),
            ..options
        };
        self
    }

    /// The sync.
    pub fn sync_id(&self) -> &SyncId {
        &self.sync_id
    }

    /// Chunk files found without a manifest entry when the checkpoint was opened and not
    /// saved since (a crash came between writing and recording them).
    pub fn unrecorded_chunks(&self) -> Vec<ChunkId> {
        self.state
            .as_ref()
            .map(|s| s.unrecorded.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The manifest as it stands (journal applied), once loaded or created.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.state.as_ref().map(|s| &s.manifest)
    }

    /// The compression of the checkpoint's chunk files: the manifest's (a resumed checkpoint
    /// keeps the one it was made with), else the options'.
    pub fn chunk_compression(&self) -> ChunkCompression {
        self.manifest()
            .map_or(self.options.compression, |m| m.compression)
    }

    /// Whether a checkpoint exists; loads it (manifest and journal) if so. An unreadable
    /// checkpoint is an error, never `false`.
    pub async fn checkpoint_exists(&mut self) -> Result<bool, CheckpointError> {
        if self.state.is_none() {
            self.state = self.load().await?;
        }
        Ok(self.state.is_some())
    }

    /// Creates the checkpoint: writes a manifest with status `converting` and no chunks.
    pub async fn create_checkpoint(&mut self, new: NewCheckpoint) -> Result<(), CheckpointError> {
        if self.checkpoint_exists().await? {
            return Err(CheckpointError::AlreadyExists {
                dir: self.store.describe_sync(&self.sync_id),
            });
        }
        let now = stamp(self.clock.now());
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            sync_id: self.sync_id.clone(),
            source_file: new.source_file,
            source_path: new.source_path,
            file_size_bytes: new.fingerprint.size_bytes,
            total_chunks: 0,
            chunk_size: new.cut.rows,
            chunk_bytes: new.cut.bytes,
            max_line_bytes: new.cut.max_line_bytes,
            status: CheckpointStatus::Converting,
            phase: CheckpointStatus::Converting,
            created_at: now.clone(),
            updated_at: now,
            source_fingerprint: new.fingerprint,
            compression: self.options.compression,
            journal_seq: 0,
            error: None,
            chunks: Vec::new(),
        };
        self.write_manifest(&manifest).await?;
        self.state = Some(State {
            manifest,
            next_seq: 1,
            since_compaction: 0,
            done: 0,
            unrecorded: BTreeSet::new(),
            stale: Vec::new(),
            damaged: Vec::new(),
        });
        Ok(())
    }

    /// Deletes the checkpoint directory (chunk files and journal first, the manifest last).
    pub async fn cleanup(&mut self) -> Result<(), CheckpointError> {
        self.await_removals().await;
        self.store.delete_sync(&self.sync_id).await?;
        self.state = None;
        Ok(())
    }

    /// Waits until the files of the chunks done so far are removed (or failed to be:
    /// [`CheckpointOptions::remove_done_files`]).
    pub async fn await_removals(&mut self) {
        while self.removals.join_next().await.is_some() {}
    }

    /// The loaded state, loading it first if needed.
    pub(super) async fn loaded(&mut self) -> Result<&mut State, CheckpointError> {
        if !self.checkpoint_exists().await? {
            return Err(CheckpointError::NoCheckpoint {
                sync_id: self.sync_id.clone(),
            });
        }
        self.state
            .as_mut()
            .ok_or_else(|| CheckpointError::NoCheckpoint {
                sync_id: self.sync_id.clone(),
            })
    }

    /// Reads the manifest and applies the journal after it.
    async fn load(&self) -> Result<Option<State>, CheckpointError> {
        let key = ObjectKey::manifest(&self.sync_id);
        let Some(bytes) = self.store.get(&key).await? else {
            let objects = self.store.list_sync(&self.sync_id).await?;
            // Chunk files, or journal objects: a checkpoint whose recorded chunks are all done
            // may hold no chunk file any more (`CheckpointOptions::remove_done_files`).
            if objects
                .iter()
                .any(|o| matches!(o.kind, ObjectKind::Chunk(_) | ObjectKind::Journal(_)))
            {
                return Err(CheckpointError::ManifestMissing {
                    sync_id: self.sync_id.clone(),
                    dir: self.store.describe_sync(&self.sync_id),
                });
            }
            return Ok(None);
        };
        let mut manifest = parse_manifest(&bytes).map_err(|p| self.parse_error(&key, p))?;
        if manifest.sync_id != self.sync_id {
            return Err(self.corrupt(&key, format!("it belongs to {}", manifest.sync_id)));
        }
        let objects = self.store.list_sync(&self.sync_id).await?;
        let mut seqs: Vec<u64> = objects
            .iter()
            .filter_map(|o| match o.kind {
                ObjectKind::Journal(seq) => Some(seq),
                _ => None,
            })
            .collect();
        seqs.sort_unstable();
        let (stale, fresh): (Vec<u64>, Vec<u64>) =
            seqs.iter().partition(|&&s| s <= manifest.journal_seq);
        let read: Vec<Result<JournalEntry, String>> = futures::stream::iter(fresh.iter().copied())
            .map(|seq| self.read_entry(seq))
            .buffered(JOURNAL_IO_CONCURRENCY)
            .try_collect()
            .await?;
        // Entries hold whole states: one left out loses at most a transition, which the
        // pipeline's audit against the source and the ledger finds (see `audit.rs`).
        let mut damaged = Vec::new();
        for entry in read {
            match entry {
                Ok(entry) => manifest.apply(entry),
                Err(why) => {
                    tracing::warn!(sync_id = %self.sync_id, journal = %why, "a journal object of the checkpoint is left unread");
                    damaged.push(why);
                }
            }
        }
        let unrecorded = objects
            .iter()
            .filter_map(|o| match o.kind {
                ObjectKind::Chunk(id) if manifest.chunk(id).is_none() => Some(id),
                _ => None,
            })
            .collect();
        let next_seq = seqs.last().copied().unwrap_or(0).max(manifest.journal_seq) + 1;
        Ok(Some(State {
            done: count_done(&manifest),
            unrecorded,
            manifest,
            next_seq,
            since_compaction: u32::try_from(fresh.len()).unwrap_or(u32::MAX),
            stale: [stale, fresh].concat(),
            damaged,
        }))
    }

    /// A journal entry, or (`Err`) the object's name and why it cannot be applied. A store
    /// failure is an error of its own.
    async fn read_entry(&self, seq: u64) -> Result<Result<JournalEntry, String>, CheckpointError> {
        let key = ObjectKey::journal(&self.sync_id, seq);
        let path = self.store.describe(&key);
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(Err(format!("{path} vanished while being read")));
        };
        let entry = match parse_entry(&bytes) {
            Ok(entry) => entry,
            Err(ParseProblem::Corrupt(reason)) => {
                return Ok(Err(format!("{path} is unreadable ({reason})")));
            }
            Err(ParseProblem::Version(v)) => {
                return Ok(Err(format!("{path} has format version {v}")));
            }
        };
        if entry.seq != seq {
            return Ok(Err(format!(
                "{path} holds entry {} (a copy of another entry)",
                entry.seq
            )));
        }
        Ok(Ok(entry))
    }

    fn parse_error(&self, key: &ObjectKey, problem: ParseProblem) -> CheckpointError {
        match problem {
            ParseProblem::Corrupt(reason) => self.corrupt(key, reason),
            ParseProblem::Version(found) => CheckpointError::UnsupportedFormat {
                path: self.store.describe(key),
                found,
                expected: FORMAT_VERSION,
            },
        }
    }

    fn corrupt(&self, key: &ObjectKey, reason: String) -> CheckpointError {
        CheckpointError::ManifestCorrupt {
            sync_id: self.sync_id.clone(),
            path: self.store.describe(key),
            reason,
            dir: self.store.describe_sync(&self.sync_id),
        }
    }
}

pub(super) fn count_done(manifest: &Manifest) -> usize {
    manifest
        .chunks
        .iter()
        .filter(|c| c.status.is_done())
        .count()
}
