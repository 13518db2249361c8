//! The seed's operations: saving and loading chunks, chunk transitions, finalizing, cleanup.

use arrow_array::RecordBatch;
use sha2::{Digest, Sha256};

use super::chunk::{self, ChunkLines};
use super::clock::stamp;
use super::manifest::{ChunkEntry, ChunkOutcome, JournalEntry, verify_source};
use super::{CheckpointError, CheckpointManager};
use crate::model::{CheckpointStatus, ChunkId, ChunkStatus, SourceFingerprint, hex};
use crate::store::{ObjectKey, chunk_file_name};

impl CheckpointManager {
    /// Writes a decoder text batch as chunk `chunk`'s Parquet file and records it `ready`.
    ///
    /// Saving a chunk that is already recorded with the same rows returns its entry (a resumed
    /// conversion); with other rows it is a [`CheckpointError::ChunkConflict`]. A file left by
    /// a crash before it was recorded is reused when it holds exactly this batch, else
    /// rewritten.
    pub async fn save_chunk_parquet(
        &mut self,
        chunk: ChunkId,
        batch: &RecordBatch,
    ) -> Result<ChunkEntry, CheckpointError> {
        self.save_encoded_chunk_parquet(chunk, batch, None).await
    }

    /// [`Self::save_chunk_parquet`] with the batch already encoded by
    /// [`super::encode_parquet`] (`encoded`), so that a caller can encode outside the lock
    /// that guards the manager; `None` encodes here.
    pub async fn save_encoded_chunk_parquet(
        &mut self,
        chunk: ChunkId,
        batch: &RecordBatch,
        encoded: Option<bytes::Bytes>,
    ) -> Result<ChunkEntry, CheckpointError> {
        let sync_id = self.sync_id.clone();
        let manifest = &self.loaded().await?.manifest;
        if manifest.phase != CheckpointStatus::Converting {
            return Err(self.invalid_state("save a chunk"));
        }
        let lines =
            ChunkLines::of(batch).map_err(|reason| CheckpointError::BadBatch { chunk, reason })?;
        if let Some(entry) = manifest.chunk(chunk) {
            let recorded = (entry.rows, entry.first_line, entry.last_line);
            if recorded == (lines.rows, lines.first_line, lines.last_line) {
                return Ok(entry.clone());
            }
            return Err(CheckpointError::ChunkConflict {
                sync_id,
                chunk,
                reason: format!(
                    "recorded {} rows on lines {}..={}, now {} rows on lines {}..={}",
                    recorded.0,
                    recorded.1,
                    recorded.2,
                    lines.rows,
                    lines.first_line,
                    lines.last_line
                ),
            });
        }
        let key = ObjectKey::chunk(&sync_id, chunk);
        let leftover = if self.loaded().await?.unrecorded.remove(&chunk) {
            self.store.get(&key).await?
        } else {
            None
        };
        let bytes = match leftover {
            Some(old) if chunk::decode(old.clone()).is_ok_and(|b| b == *batch) => old,
            _ => {
                let bytes = match encoded {
                    Some(bytes) => bytes,
                    None => chunk::encode(batch, self.options.compression)
                        .map_err(|source| CheckpointError::Parquet { chunk, source })?,
                };
                self.store.put(&key, bytes.clone()).await?;
                bytes
            }
        };
        let now = stamp(self.clock.now());
        let entry = ChunkEntry {
            chunk_id: chunk,
            status: ChunkStatus::Ready,
            rows: lines.rows,
            parquet_path: chunk_file_name(chunk),
            parquet_size_bytes: bytes.len() as u64,
            created_at: now.clone(),
            processed_at: None,
            records_inserted: 0,
            records_updated: 0,
            validation_errors: 0,
            first_line: lines.first_line,
            last_line: lines.last_line,
            parquet_sha256: hex(&Sha256::digest(&bytes)),
            attempts: 0,
            error: None,
            failed_at: None,
            rows_rejected: 0,
        };
        self.journal(JournalEntry {
            seq: 0,
            updated_at: now,
            status: CheckpointStatus::Converting,
            phase: CheckpointStatus::Converting,
            error: None,
            chunk: entry.clone(),
        })
        .await?;
        Ok(entry)
    }

    /// Ends phase 1: checks that chunks `0..n` are all recorded, records the source's final
    /// fingerprint (with its SHA-256) and moves the sync to `ready`. Calling it again once
    /// finalized does nothing.
    pub async fn finalize_conversion(
        &mut self,
        fingerprint: SourceFingerprint,
    ) -> Result<(), CheckpointError> {
        let now = stamp(self.clock.now());
        let sync_id = self.sync_id.clone();
        let manifest = &self.loaded().await?.manifest;
        if manifest.phase != CheckpointStatus::Converting {
            return Ok(());
        }
        verify_source(manifest, &fingerprint).map_err(CheckpointError::SourceChanged)?;
        if let Some(gap) = (0u32..)
            .zip(&manifest.chunks)
            .find(|(i, c)| c.chunk_id.0 != *i)
        {
            return Err(CheckpointError::MissingChunk {
                sync_id,
                chunk: ChunkId(gap.0),
            });
        }
        let mut next = manifest.clone();
        let old = &manifest.source_fingerprint;
        next.source_fingerprint = SourceFingerprint {
            size_bytes: fingerprint.size_bytes,
            etag: fingerprint.etag.or_else(|| old.etag.clone()),
            modified: fingerprint.modified.or_else(|| old.modified.clone()),
            sha256: fingerprint.sha256.or_else(|| old.sha256.clone()),
        };
        next.file_size_bytes = fingerprint.size_bytes;
        next.phase = if next.all_done() {
            CheckpointStatus::Completed
        } else if next.chunks.iter().all(|c| c.status == ChunkStatus::Ready) {
            CheckpointStatus::Ready
        } else {
            CheckpointStatus::Processing
        };
        next.status = next.phase;
        next.error = None;
        next.updated_at = now;
        self.commit(next).await
    }

    /// The chunks still to load: `ready`, `failed`, and `processing` (interrupted), by id.
    pub async fn get_pending_chunks(&mut self) -> Result<Vec<ChunkId>, CheckpointError> {
        let manifest = &self.loaded().await?.manifest;
        Ok(manifest
            .chunks
            .iter()
            .filter(|c| c.status.is_pending())
            .map(|c| c.chunk_id)
            .collect())
    }

    /// Reads a chunk back, checking its size, SHA-256 and lines against the manifest. A
    /// missing or corrupt file is [`CheckpointError::ChunkMissing`] /
    /// [`CheckpointError::ChunkCorrupt`]: regenerate the chunk from the source.
    pub async fn load_chunk(&mut self, chunk: ChunkId) -> Result<RecordBatch, CheckpointError> {
        let sync_id = self.sync_id.clone();
        let entry = self
            .loaded()
            .await?
            .manifest
            .chunk(chunk)
            .cloned()
            .ok_or_else(|| CheckpointError::UnknownChunk {
                sync_id: sync_id.clone(),
                chunk,
            })?;
        let key = ObjectKey::chunk(&sync_id, chunk);
        let path = self.store.describe(&key);
        let corrupt = |reason: String| CheckpointError::ChunkCorrupt {
            chunk,
            path: path.clone(),
            reason,
        };
        let Some(bytes) = self.store.get(&key).await? else {
            return Err(CheckpointError::ChunkMissing {
                chunk,
                path: path.clone(),
            });
        };
        if bytes.len() as u64 != entry.parquet_size_bytes {
            return Err(corrupt(format!(
                "{} bytes, the manifest says {}",
                bytes.len(),
                entry.parquet_size_bytes
            )));
        }
        if hex(&Sha256::digest(&bytes)) != entry.parquet_sha256 {
            return Err(corrupt("checksum mismatch".to_owned()));
        }
        let batch = chunk::decode(bytes).map_err(&corrupt)?;
        let lines = ChunkLines::of(&batch).map_err(&corrupt)?;
        if (lines.rows, lines.first_line, lines.last_line)
            != (entry.rows, entry.first_line, entry.last_line)
        {
            return Err(corrupt("rows differ from the manifest".to_owned()));
        }
        Ok(batch)
    }

    /// Writes chunk `chunk`'s Parquet file again from a batch regenerated from the source,
    /// after [`Self::load_chunk`] found it missing or corrupt. The batch must hold the rows the
    /// manifest records (same count, same first and last line), else the source has changed
    /// ([`CheckpointError::ChunkConflict`]). The chunk keeps its state.
    pub async fn rewrite_chunk_parquet(
        &mut self,
        chunk: ChunkId,
        batch: &RecordBatch,
    ) -> Result<ChunkEntry, CheckpointError> {
        let sync_id = self.sync_id.clone();
        let lines =
            ChunkLines::of(batch).map_err(|reason| CheckpointError::BadBatch { chunk, reason })?;
        let manifest = &self.loaded().await?.manifest;
        let mut entry =
            manifest
                .chunk(chunk)
                .cloned()
                .ok_or_else(|| CheckpointError::UnknownChunk {
                    sync_id: sync_id.clone(),
                    chunk,
                })?;
        let (status, phase, error) = (manifest.status, manifest.phase, manifest.error.clone());
        // The file is rewritten as the checkpoint's other chunks were written.
        let compression = manifest.compression;
        if (entry.rows, entry.first_line, entry.last_line)
            != (lines.rows, lines.first_line, lines.last_line)
        {
            return Err(CheckpointError::ChunkConflict {
                sync_id,
                chunk,
                reason: format!(
                    "recorded {} rows on lines {}..={}, regenerated {} rows on lines {}..={}",
                    entry.rows,
                    entry.first_line,
                    entry.last_line,
                    lines.rows,
                    lines.first_line,
                    lines.last_line
                ),
            });
        }
        let bytes = chunk::encode(batch, compression)
            .map_err(|source| CheckpointError::Parquet { chunk, source })?;
        self.store
            .put(&ObjectKey::chunk(&sync_id, chunk), bytes.clone())
            .await?;
        entry.parquet_size_bytes = bytes.len() as u64;
        entry.parquet_sha256 = hex(&Sha256::digest(&bytes));
        let now = stamp(self.clock.now());
        self.journal(JournalEntry {
            seq: 0,
            updated_at: now,
            status,
            phase,
            error,
            chunk: entry.clone(),
        })
        .await?;
        Ok(entry)
    }

    /// Marks a chunk `processing` (from ready, failed, or processing after a crash) and counts
    /// the attempt.
    pub async fn mark_chunk_processing(&mut self, chunk: ChunkId) -> Result<(), CheckpointError> {
        self.transition(chunk, ChunkStatus::Processing, |entry, _| {
            entry.attempts += 1;
        })
        .await
    }

    /// Marks a chunk `completed` with what its load did (also from `ready`: the ledger says
    /// it was committed). Completing a completed chunk does nothing.
    pub async fn mark_chunk_complete(
        &mut self,
        chunk: ChunkId,
        outcome: ChunkOutcome,
    ) -> Result<(), CheckpointError> {
        self.transition(chunk, ChunkStatus::Completed, |entry, now| {
            entry.processed_at = Some(now.to_owned());
            entry.records_inserted = outcome.records_inserted;
            entry.records_updated = outcome.records_updated;
            entry.validation_errors = outcome.validation_errors;
            entry.rows_rejected = outcome.rows_rejected;
            entry.error = None;
        })
        .await
    }

    /// Marks a chunk `failed` with the error; it stays pending and is retried.
    pub async fn mark_chunk_failed(
        &mut self,
        chunk: ChunkId,
        error: &str,
    ) -> Result<(), CheckpointError> {
        self.transition(chunk, ChunkStatus::Failed, |entry, now| {
            entry.failed_at = Some(now.to_owned());
            entry.error = Some(error.to_owned());
        })
        .await
    }

    /// Marks a chunk `skipped` (for example every row was invalid), with the reason.
    pub async fn mark_chunk_skipped(
        &mut self,
        chunk: ChunkId,
        reason: &str,
        outcome: ChunkOutcome,
    ) -> Result<(), CheckpointError> {
        self.transition(chunk, ChunkStatus::Skipped, |entry, now| {
            entry.processed_at = Some(now.to_owned());
            entry.validation_errors = outcome.validation_errors;
            entry.rows_rejected = outcome.rows_rejected;
            entry.error = Some(reason.to_owned());
        })
        .await
    }

    /// Marks the sync `failed` with the error; its phase is kept so that it resumes there.
    pub async fn mark_sync_failed(&mut self, error: &str) -> Result<(), CheckpointError> {
        let now = stamp(self.clock.now());
        let mut next = self.loaded().await?.manifest.clone();
        next.status = CheckpointStatus::Failed;
        next.error = Some(error.to_owned());
        next.updated_at = now;
        self.commit(next).await
    }

    /// Deletes the checkpoint directory (chunk files and journal first, the manifest last).
    pub async fn cleanup(&mut self) -> Result<(), CheckpointError> {
        self.store.delete_sync(&self.sync_id).await?;
        self.state = None;
        Ok(())
    }

    /// Moves a chunk to `to`, updating the sync's status: a chunk transition resumes a failed
    /// sync, the first processing moves `ready` to `processing`, and the last chunk done
    /// after the conversion completes the sync (then the manifest is rewritten at once).
    async fn transition(
        &mut self,
        chunk: ChunkId,
        to: ChunkStatus,
        update: impl FnOnce(&mut ChunkEntry, &str),
    ) -> Result<(), CheckpointError> {
        let now = stamp(self.clock.now());
        let sync_id = self.sync_id.clone();
        let state = self.loaded().await?;
        let (manifest, done) = (&state.manifest, state.done);
        let Some(current) = manifest.chunk(chunk) else {
            return Err(CheckpointError::UnknownChunk { sync_id, chunk });
        };
        let from = current.status;
        if from.is_done() {
            if from == to {
                return Ok(());
            }
            return Err(CheckpointError::InvalidTransition {
                sync_id,
                chunk,
                from,
                to,
            });
        }
        let mut entry = current.clone();
        entry.status = to;
        update(&mut entry, &now);
        let mut phase = manifest.phase;
        if phase == CheckpointStatus::Ready && to == ChunkStatus::Processing {
            phase = CheckpointStatus::Processing;
        }
        // `current` is not done, so every other chunk is done when `done` counts them all.
        let others_done = done + 1 == manifest.chunks.len();
        if phase != CheckpointStatus::Converting && to.is_done() && others_done {
            phase = CheckpointStatus::Completed;
        }
        self.journal(JournalEntry {
            seq: 0,
            updated_at: now,
            status: phase,
            phase,
            error: None,
            chunk: entry,
        })
        .await?;
        if phase == CheckpointStatus::Completed
            && let Err(e) = self.compact().await
        {
            // The completion is durable in the journal; the manifest catches up later.
            tracing::warn!(sync_id = %self.sync_id, error = %e, "manifest compaction failed");
        }
        Ok(())
    }

    fn invalid_state(&self, op: &'static str) -> CheckpointError {
        let (status, phase) = self
            .manifest()
            .map_or((CheckpointStatus::Failed, CheckpointStatus::Failed), |m| {
                (m.status, m.phase)
            });
        CheckpointError::InvalidState {
            sync_id: self.sync_id.clone(),
            op,
            status,
            phase,
        }
    }
}
