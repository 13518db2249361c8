//! Chunk files: a decoder text batch saved as chunk N's Parquet file and recorded `ready`,
//! read back and checked against the manifest, or rewritten from a regenerated batch.

use arrow_array::RecordBatch;
use sha2::{Digest, Sha256};

use super::clock::stamp;
use super::codec::{self, ChunkLines};
use super::manifest::{ChunkEntry, JournalEntry};
use super::{CheckpointError, CheckpointManager};
use crate::model::{CheckpointStatus, ChunkId, ChunkStatus, ResumePoint, SourceHashState, hex};
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
        self.save_encoded_chunk_parquet(chunk, batch, None, false, None, None)
            .await
    }

    /// [`Self::save_chunk_parquet`] with the batch already encoded by
    /// [`super::encode_parquet`] (`encoded`), so that a caller can encode outside the lock
    /// that guards the manager (`None` encodes here), and `source_end` when the decoder cut
    /// this chunk at the end of the source ([`ChunkEntry::source_end`]), and where decoding
    /// resumes after it ([`ChunkEntry::resume_point`]) with the source's hash up to there
    /// ([`ChunkEntry::source_hash`]).
    pub async fn save_encoded_chunk_parquet(
        &mut self,
        chunk: ChunkId,
        batch: &RecordBatch,
        encoded: Option<bytes::Bytes>,
        source_end: bool,
        resume_point: Option<ResumePoint>,
        source_hash: Option<SourceHashState>,
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
            Some(old) if codec::decode(old.clone()).is_ok_and(|b| b == *batch) => old,
            _ => {
                let bytes = match encoded {
                    Some(bytes) => bytes,
                    None => codec::encode(batch, self.chunk_compression())
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
            source_end,
            resume_point,
            source_hash,
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
        let batch = codec::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
        let lines = ChunkLines::of(&batch).map_err(&corrupt)?;
        if (lines.rows, lines.first_line, lines.last_line)
            != (entry.rows, entry.first_line, entry.last_line)
        {
            return Err(corrupt("rows differ from the manifest".to_owned()));
        }
        Ok(batch)
    }

    /// Writes chunk `chunk`'s Parquet file again from a batch regenerated from the source,
    /// after [`Self::load_chunk`] found it missing, corrupt or disagreeing with its entry. The
    /// caller vouches that the source is the one the checkpoint was made from, so the batch
    /// is the truth: an entry that records other rows (count, first or last line) is the
    /// damaged part, and takes the batch's. The chunk keeps its state.
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
        let recorded = (entry.rows, entry.first_line, entry.last_line);
        if recorded != (lines.rows, lines.first_line, lines.last_line) {
            tracing::warn!(%sync_id, %chunk,
                recorded = %format_args!("{} rows on lines {}..={}", recorded.0, recorded.1, recorded.2),
                source = %format_args!("{} rows on lines {}..={}", lines.rows, lines.first_line, lines.last_line),
                "the chunk's entry disagrees with the source; the source's rows replace it");
            entry.rows = lines.rows;
            entry.first_line = lines.first_line;
            entry.last_line = lines.last_line;
        }
        let bytes = codec::encode(batch, compression)
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
}
