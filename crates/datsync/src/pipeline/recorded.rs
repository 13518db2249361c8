//! Chunks converted before this run: read back from their Parquet files (regenerated from
//! the source when a file is missing or corrupt), and a conversion whose chunks are all
//! recorded finished by hashing the source.

use super::convert::{ConvertOutcome, Converted, ResumeFrom, Rows, regenerate};
use super::halt::{Halt, SyncFailure};
use super::run::Shared;
use crate::model::{ChunkId, SourceFingerprint};

impl Shared<'_> {
    /// A recorded chunk's batch and its file's checksum, the file regenerated from the
    /// source when it is missing or corrupt (or disagrees with its entry); `None` when the
    /// source has no such chunk: the entry is stray, and is dropped.
    pub(super) async fn recorded_chunk(&self, chunk: ChunkId) -> Result<Option<Converted>, Halt> {
        let Some(manager) = &self.manager else {
            return Err(SyncFailure::NoCheckpoint { chunk }.into());
        };
        let loaded = manager.lock().await.load_chunk(chunk).await;
        match loaded {
            Ok(batch) => {
                let m = manager.lock().await;
                let checksum = m
                    .manifest()
                    .and_then(|m| m.chunk(chunk))
                    .map(|e| e.parquet_sha256.clone())
                    .unwrap_or_default();
                Ok(Some(Converted {
                    chunk,
                    rows: Rows::Text(batch),
                    checksum,
                    source_bytes: None,
                }))
            }
            Err(e) if e.needs_regeneration() => {
                tracing::warn!(sync_id = %self.plan.sync_id, %chunk, error = %e, "regenerating the chunk from the source");
                let Some(source) = self.plan.source.clone() else {
                    return Err(SyncFailure::CannotRegenerate {
                        error: Box::new(e),
                        sync_id: self.plan.sync_id.clone(),
                        source_path: self.plan.source_path.clone(),
                    }
                    .into());
                };
                let profile = self.pipeline.profile.clone();
                let options = self.pipeline.parse_options(self.cut().await);
                let from = manager
                    .lock()
                    .await
                    .manifest()
                    .and_then(|m| ResumeFrom::of(m, chunk));
                let read = source.clone();
                let batch = tokio::task::spawn_blocking(move || {
                    regenerate(&read, &profile, options, chunk, from)
                })
                .await
                .map_err(|e| SyncFailure::task_died(format!("regenerating chunk {chunk}"), e))??;
                let Some(batch) = batch else {
                    // The source is the one the checkpoint was made from (checked when it was
                    // opened, and here against the file opened): the entry is what is wrong.
                    super::run::unchanged(&source)?;
                    tracing::warn!(sync_id = %self.plan.sync_id, %chunk, "the checkpoint records a chunk the source does not have (a stray entry); dropping it");
                    manager.lock().await.forget_chunks(&[chunk], false).await?;
                    return Ok(None);
                };
                let entry = manager
                    .lock()
                    .await
                    .rewrite_chunk_parquet(chunk, &batch)
                    .await?;
                Ok(Some(Converted {
                    chunk,
                    rows: Rows::Text(batch),
                    checksum: entry.parquet_sha256,
                    source_bytes: None,
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Ends phase 1 of a sync whose chunks are all recorded: hashes the source (no decoding)
    /// and finalizes the conversion with its SHA-256.
    pub(super) async fn finalize_by_hashing(&self) -> Result<ConvertOutcome, Halt> {
        let (Some(manager), Some(source)) = (&self.manager, self.plan.source.clone()) else {
            return Err(SyncFailure::SourceUnreadable {
                source_path: self.plan.source_path.clone(),
            }
            .into());
        };
        tracing::info!(sync_id = %self.plan.sync_id, "every chunk is recorded; finishing the conversion by hashing the source");
        let hashed = source.clone();
        let digest = tokio::task::spawn_blocking(move || hashed.digest())
            .await
            .map_err(|e| SyncFailure::task_died("hashing the source", e))??;
        super::run::unchanged(&source)?;
        let fingerprint = SourceFingerprint {
            size_bytes: digest.bytes,
            sha256: Some(digest.sha256),
            ..self.plan.fingerprint.clone()
        };
        let mut m = manager.lock().await;
        m.finalize_conversion(fingerprint).await?;
        let (rows, chunks) = m
            .manifest()
            .map_or((0, 0), |m| (m.total_rows(), m.total_chunks));
        self.pipeline.progress.total_chunks(u64::from(chunks));
        Ok(ConvertOutcome { rows, chunks })
    }
}
