//! Phase 2: each pending chunk is validated, its rejects kept, transformed and loaded (one
//! transaction with its ledger row), then marked completed — with retries on transient
//! database errors, and the ledger winning over the manifest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use tokio::sync::Mutex;
use tokio_postgres::Client;

use super::convert::{ConvertOutcome, Converter, regenerate};
use super::{Abort, Ledger, Pipeline, PipelineError, Plan, RunSummary, VALIDATION_ERROR_SAMPLE};
use crate::checkpoint::{CheckpointManager, ChunkOutcome, encode_parquet};
use crate::load::{ChunkFacts, ChunkLoad, Loader};
use crate::model::{CheckpointStatus, ChunkId, SyncRef};
use crate::pg::ErrorClass;
use crate::status::LedgerChunk;
use crate::store::{ObjectKey, Store};
use crate::telemetry::{ChunkCommitted, ChunkCompleted, ChunkFailed, ChunkStaged, RowsRejected};

/// The loader of a run: the profile's SQL, and the `chunk_staged` event emitted after each
/// staging COPY (the crash tests' "mid-COPY" kill point).
pub(super) fn run_loader(pipeline: &Pipeline, sync_id: &crate::model::SyncId) -> Loader {
    let telemetry = pipeline.telemetry.clone();
    let sync_id = sync_id.clone();
    Loader::new(&pipeline.profile).with_staged_hook(Arc::new(move |chunk| {
        telemetry.emit(&ChunkStaged {
            sync_id: &sync_id,
            chunk,
        });
    }))
}

/// One run of one sync.
pub(super) struct Run<'a> {
    pub(super) pipeline: &'a Pipeline,
    pub(super) plan: &'a Plan,
    pub(super) sync_ref: SyncRef,
    /// Where rejects go (and checkpoints, when `manager` is set).
    pub(super) store: Store,
    pub(super) manager: Option<Arc<Mutex<CheckpointManager>>>,
    pub(super) client: Client,
    pub(super) started: Instant,
    pub(super) checkpoint_dir: Option<String>,
    /// The validation errors of a chunk that stopped the sync (error rate above the
    /// threshold): it is never committed, so the ledger does not have them, yet they are what
    /// `sync_metadata` and the alert must show.
    pub(super) stopping_errors: Option<(u64, serde_json::Value)>,
    /// The chunk size of the chunks the ledger already has, when it has some.
    pub(super) ledger_chunk_size: Option<usize>,
    /// The loader of the profile, its SQL prepared once per run.
    pub(super) loader: Loader,
}

/// What this run did, chunk by chunk.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Chunks committed by this run.
    pub(super) loaded: u64,
    /// Time spent on the chunks committed by this run.
    pub(super) load_time: Duration,
    /// Chunks that failed transiently in this run, with the last error.
    pub(super) failed: Vec<(ChunkId, String)>,
    /// Chunks the ledger had when the run started.
    pub(super) skipped_on_resume: u64,
}

impl Run<'_> {
    /// Runs phase 1 (if unfinished) and phase 2, then decides the final status.
    pub(super) async fn execute(mut self) -> Result<RunSummary, PipelineError> {
        let p = self.pipeline;
        let ledger: Ledger = crate::status::ledger_chunks(
            &self.client,
            &p.profile.schema,
            self.plan.sync_id.as_str(),
        )
        .await?
        .into_iter()
        .map(|c| (ChunkId(c.chunk_id), c))
        .collect();
        let mut tally = Tally {
            skipped_on_resume: ledger.len() as u64,
            ..Tally::default()
        };
        let (recorded, pending, converting, last_partial) = self.reconcile(&ledger).await?;
        let resumed = !ledger.is_empty() || recorded > 0;
        let mut abort = None;
        for chunk in pending {
            if p.stopping() {
                abort = Some(Abort::Stopped);
                break;
            }
            let item = self.recorded_chunk(chunk).await;
            let result = match item {
                Ok((batch, checksum)) => self.process(chunk, batch, &checksum, &mut tally).await,
                Err(a) => Err(a),
            };
            if let Err(a) = result {
                abort = Some(a);
                break;
            }
        }
        let mut converted = None;
        if abort.is_none() && converting {
            // A last recorded chunk shorter than the chunk size was cut at the end of the
            // source: every chunk is recorded, only the source's SHA-256 is missing.
            let result = if last_partial {
                self.finalize_by_hashing().await
            } else {
                self.convert_and_process(recorded, &ledger, &mut tally)
                    .await
            };
            match result {
                Ok(outcome) => converted = Some(outcome),
                Err(a) => abort = Some(a),
            }
        }
        self.finish(abort, &tally, converted, resumed).await
    }

    /// A finished sync whose checkpoint was cleaned up: only the final steps run again, from
    /// the ledger.
    pub(super) async fn finished(self) -> Result<RunSummary, PipelineError> {
        let p = self.pipeline;
        let committed = crate::status::ledger_chunks(
            &self.client,
            &p.profile.schema,
            self.plan.sync_id.as_str(),
        )
        .await?;
        let tally = Tally {
            skipped_on_resume: committed.len() as u64,
            ..Tally::default()
        };
        self.finish(None, &tally, None, true).await
    }

    /// Marks completed every chunk the ledger has but the manifest does not (a crash came
    /// between a commit and its manifest update); returns the number of recorded chunks, the
    /// chunks still to load, and whether phase 1 is unfinished.
    async fn reconcile(
        &self,
        ledger: &Ledger,
    ) -> Result<(u32, Vec<ChunkId>, bool, bool), PipelineError> {
        let Some(manager) = &self.manager else {
            return Ok((0, Vec::new(), true, false));
        };
        let mut m = manager.lock().await;
        let Some(manifest) = m.manifest().cloned() else {
            return Ok((0, Vec::new(), true, false));
        };
        for entry in manifest.chunks.iter().filter(|c| !c.status.is_done()) {
            if let Some(done) = ledger.get(&entry.chunk_id) {
                m.mark_chunk_complete(entry.chunk_id, outcome_of(done))
                    .await?;
            }
        }
        let pending = m.get_pending_chunks().await?;
        let converting = manifest.phase == CheckpointStatus::Converting;
        if !converting {
            self.pipeline
                .progress
                .total_chunks(u64::from(manifest.total_chunks));
        }
        let last_partial = manifest
            .chunks
            .last()
            .is_some_and(|c| c.rows < manifest.chunk_size);
        Ok((manifest.total_chunks, pending, converting, last_partial))
    }

    /// Ends phase 1 of a sync whose chunks are all recorded: hashes the source (no decoding)
    /// and finalizes the conversion with its SHA-256.
    async fn finalize_by_hashing(&self) -> Result<ConvertOutcome, Abort> {
        let (Some(manager), Some(source)) = (&self.manager, self.plan.source.clone()) else {
            return Err(Abort::Failed(format!(
                "{}: the source cannot be read, and the conversion of this sync is unfinished",
                self.plan.source_path
            )));
        };
        tracing::info!(sync_id = %self.plan.sync_id, "every chunk is recorded; finishing the conversion by hashing the source");
        let hashed = tokio::task::spawn_blocking(move || -> Result<(u64, String), String> {
            let mut reader = source.reader().map_err(|e| e.to_string())?;
            std::io::copy(&mut reader, &mut std::io::sink())
                .map_err(|e| format!("{}: {e}", source.name()))?;
            Ok((reader.bytes_read(), reader.sha256_hex()))
        })
        .await
        .map_err(|e| Abort::Failed(format!("hashing the source: {e}")))?
        .map_err(Abort::Failed)?;
        let fingerprint = crate::model::SourceFingerprint {
            size_bytes: hashed.0,
            sha256: Some(hashed.1),
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

    /// A recorded chunk's batch from its Parquet file, regenerated from the source when the
    /// file is missing or corrupt.
    async fn recorded_chunk(&self, chunk: ChunkId) -> Result<(RecordBatch, String), Abort> {
        let Some(manager) = &self.manager else {
            return Err(Abort::Failed(format!(
                "chunk {chunk} has no checkpoint to load"
            )));
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
                Ok((batch, checksum))
            }
            Err(e) if e.needs_regeneration() => {
                tracing::warn!(sync_id = %self.plan.sync_id, %chunk, error = %e, "regenerating the chunk from the source");
                let Some(source) = self.plan.source.clone() else {
                    return Err(Abort::Failed(format!(
                        "{e}; the source is not readable, so it cannot be"
                    )));
                };
                let profile = self.pipeline.profile.clone();
                let size = self.chunk_size().await;
                let batch =
                    tokio::task::spawn_blocking(move || regenerate(&source, &profile, size, chunk))
                        .await
                        .map_err(|e| Abort::Failed(format!("regenerating chunk {chunk}: {e}")))??;
                let entry = manager
                    .lock()
                    .await
                    .rewrite_chunk_parquet(chunk, &batch)
                    .await?;
                Ok((batch, entry.parquet_sha256))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Phase 1 with phase 2 on its heels: each chunk is loaded as soon as it is saved.
    async fn convert_and_process(
        &mut self,
        recorded: u32,
        ledger: &Ledger,
        tally: &mut Tally,
    ) -> Result<ConvertOutcome, Abort> {
        let p = self.pipeline;
        let Some(source) = self.plan.source.clone() else {
            return Err(Abort::Failed(format!(
                "{}: the source cannot be read, and the conversion of this sync is unfinished",
                self.plan.source_path
            )));
        };
        let converter = Converter {
            sync_id: self.plan.sync_id.clone(),
            source,
            profile: p.profile.clone(),
            chunk_size: self.chunk_size().await,
            recorded,
            fingerprint: self.plan.fingerprint.clone(),
            manager: self.manager.clone(),
            telemetry: p.telemetry.clone(),
            progress: p.progress.clone(),
        };
        let (mut chunks, handle) = converter.spawn();
        let mut abort = None;
        let mut stop = p.stop.clone();
        while let Some(c) = next_chunk(&mut chunks, stop.as_mut()).await {
            let Some(c) = c else {
                abort = Some(Abort::Stopped);
                break;
            };
            let result = match ledger.get(&c.chunk) {
                Some(done) => self.complete_from_ledger(c.chunk, done).await,
                None => self.process(c.chunk, c.batch, &c.checksum, tally).await,
            };
            if let Err(a) = result {
                abort = Some(a);
                break;
            }
        }
        // Stopped: the converter ends at its next hand-over (its chunk files are kept).
        drop(chunks);
        let outcome = handle
            .await
            .map_err(|e| Abort::Failed(format!("the converter task died: {e}")));
        match (abort, outcome) {
            (Some(a), _) | (None, Err(a) | Ok(Err(a))) => Err(a),
            (None, Ok(Ok(o))) => Ok(o),
        }
    }

    /// Rows per chunk of this sync: the checkpoint's, whatever `--chunk-size` says now (chunks
    /// are cut again from the source on a resume, and must be cut where they were).
    async fn chunk_size(&self) -> usize {
        let settings = self
            .ledger_chunk_size
            .unwrap_or(self.pipeline.settings.chunk_size);
        let Some(manager) = &self.manager else {
            return settings;
        };
        let recorded = manager
            .lock()
            .await
            .manifest()
            .and_then(|m| usize::try_from(m.chunk_size).ok())
            .filter(|&n| n > 0);
        match recorded {
            Some(n) if n != settings => {
                tracing::info!(sync_id = %self.plan.sync_id, chunk_size = n, requested = settings,
                    "using the checkpoint's chunk size");
                n
            }
            Some(n) => n,
            None => settings,
        }
    }

    async fn complete_from_ledger(&self, chunk: ChunkId, done: &LedgerChunk) -> Result<(), Abort> {
        if let Some(m) = &self.manager {
            m.lock()
                .await
                .mark_chunk_complete(chunk, outcome_of(done))
                .await?;
        }
        Ok(())
    }

    /// Validates, keeps the rejects, transforms and loads one chunk.
    async fn process(
        &mut self,
        chunk: ChunkId,
        batch: RecordBatch,
        checksum: &str,
        tally: &mut Tally,
    ) -> Result<(), Abort> {
        let p = self.pipeline;
        let t0 = Instant::now();
        if let Some(m) = &self.manager {
            m.lock().await.mark_chunk_processing(chunk).await?;
        }
        let file = &self.plan.source_path;
        let validated = crate::validate::validate(&p.profile, &batch)
            .map_err(|e| Abort::BadInput(format!("{file}: {e}")))?;
        // The accepted rows are a copy: the text batch is not needed for the load.
        drop(batch);
        let (rows_read, rejected) = (validated.rows_read as u64, validated.rejected() as u64);
        if rejected > 0 {
            self.keep_rejects(chunk, &validated.rejects).await?;
            p.telemetry.emit(&RowsRejected {
                sync_id: &self.plan.sync_id,
                chunk,
                count: rejected,
            });
        }
        if crate::validate::exceeds_threshold(rejected, rows_read, p.settings.error_threshold) {
            let sample = &validated.errors[..validated.errors.len().min(VALIDATION_ERROR_SAMPLE)];
            self.stopping_errors = serde_json::to_value(sample)
                .ok()
                .map(|json| (validated.errors.len() as u64, json));
            return Err(Abort::BadInput(too_many_rejects(
                file,
                chunk,
                &validated,
                p.settings.error_threshold,
            )));
        }
        let typed = crate::transform::transform(&p.profile, &validated.accepted)
            .map_err(|e| Abort::Failed(format!("{file}, chunk {chunk}: {e}")))?;
        let facts = ChunkFacts {
            rows_read,
            rejected,
            superseded: validated.superseded as u64,
            validation_errors_count: validated.errors.len() as u64,
            validation_errors: serde_json::to_value(
                &validated.errors[..validated.errors.len().min(VALIDATION_ERROR_SAMPLE)],
            )
            .ok(),
        };
        let load = match self
            .load_with_retries(chunk, checksum, &typed.batch, &facts)
            .await?
        {
            Ok(load) => load,
            Err(error) => {
                tally.failed.push((chunk, error));
                return Ok(());
            }
        };
        p.telemetry.emit(&ChunkCommitted {
            sync_id: &self.plan.sync_id,
            chunk,
        });
        let outcome = ChunkOutcome {
            records_inserted: load.inserted,
            records_updated: load.updated,
            validation_errors: facts.validation_errors_count,
            rows_rejected: rejected,
        };
        if let Some(m) = &self.manager {
            let mut m = m.lock().await;
            if validated.loaded() == 0 {
                m.mark_chunk_skipped(chunk, "every row was rejected", outcome)
                    .await?;
            } else {
                m.mark_chunk_complete(chunk, outcome).await?;
            }
        }
        if let Err(e) =
            crate::status::progress_from_ledger(&self.client, &p.profile.schema, &self.plan.sync_id)
                .await
        {
            tracing::warn!(sync_id = %self.plan.sync_id, error = %e, "progress not written to sync_metadata");
        }
        p.telemetry.emit(&ChunkCompleted {
            sync_id: &self.plan.sync_id,
            chunk,
            inserted: load.inserted,
            updated: load.updated,
        });
        tally.loaded += 1;
        tally.load_time += t0.elapsed();
        p.progress
            .chunk_done(chunk, tally.loaded + tally.skipped_on_resume);
        Ok(())
    }

    /// Loads a chunk, retrying transient database errors with a doubling pause; after the
    /// last attempt the chunk is marked failed (`Ok(Err(last error))`) and the run goes on.
    async fn load_with_retries(
        &mut self,
        chunk: ChunkId,
        checksum: &str,
        batch: &RecordBatch,
        facts: &ChunkFacts,
    ) -> Result<Result<ChunkLoad, String>, Abort> {
        let p = self.pipeline;
        let mut last_error = String::new();
        for attempt in 1..=p.load_attempts.max(1) {
            if attempt > 1 {
                tokio::time::sleep(p.retry_backoff * 2u32.saturating_pow(attempt - 2)).await;
            }
            if self.client.is_closed() {
                match crate::pg::connect(&p.pg).await {
                    Ok(client) => self.client = client,
                    Err(e) if e.class() == ErrorClass::Transient => {
                        last_error = e.to_string();
                        continue;
                    }
                    Err(e) => return Err(Abort::Failed(e.to_string())),
                }
            }
            match self
                .loader
                .load_chunk_with_facts(
                    &mut self.client,
                    &self.sync_ref,
                    chunk,
                    checksum,
                    batch,
                    facts,
                )
                .await
            {
                Ok(load) => return Ok(Ok(load)),
                Err(e) if e.class() == ErrorClass::Transient => {
                    tracing::warn!(sync_id = %self.plan.sync_id, %chunk, attempt, error = %e, "transient database error; retrying");
                    last_error = e.to_string();
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(m) = &self.manager {
            m.lock().await.mark_chunk_failed(chunk, &last_error).await?;
        }
        p.telemetry.emit(&ChunkFailed {
            sync_id: &self.plan.sync_id,
            chunk,
            error: &last_error,
        });
        Ok(Err(last_error))
    }

    /// Writes a chunk's rejected rows to `rejects/<sync_id>/rejects_NNNN.parquet`.
    async fn keep_rejects(&self, chunk: ChunkId, rejects: &RecordBatch) -> Result<(), Abort> {
        let bytes = encode_parquet(rejects, crate::checkpoint::ChunkCompression::default())
            .map_err(|e| {
                Abort::Failed(format!(
                    "chunk {chunk}: writing the rejects file failed: {e}"
                ))
            })?;
        self.store
            .put(&ObjectKey::rejects(&self.plan.sync_id, chunk), bytes)
            .await?;
        Ok(())
    }
}

/// The next converted chunk (`None` at the end), or `Some(None)` as soon as a stop is asked
/// for: the processor starts no further chunk, even while the converter is still reading.
async fn next_chunk(
    chunks: &mut tokio::sync::mpsc::Receiver<super::convert::Converted>,
    stop: Option<&mut tokio::sync::watch::Receiver<bool>>,
) -> Option<Option<super::convert::Converted>> {
    let Some(stop) = stop else {
        return chunks.recv().await.map(Some);
    };
    if *stop.borrow() {
        return Some(None);
    }
    tokio::select! {
        biased;
        // A closed sender (the caller dropped it) never stops the run.
        Ok(_) = stop.wait_for(|s| *s) => Some(None),
        c = chunks.recv() => c.map(Some),
    }
}

fn outcome_of(done: &LedgerChunk) -> ChunkOutcome {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    ChunkOutcome {
        records_inserted: n(done.inserted),
        records_updated: n(done.updated),
        validation_errors: n(done.validation_errors_count),
        rows_rejected: n(done.rejected),
    }
}

fn too_many_rejects(
    file: &str,
    chunk: ChunkId,
    v: &crate::validate::Validated,
    threshold: f64,
) -> String {
    let first: Vec<String> = v
        .errors
        .iter()
        .take(3)
        .map(|e| match &e.column {
            Some(c) => format!("line {} column {c}: {}", e.line, e.reason),
            None => format!("line {}: {}", e.line, e.reason),
        })
        .collect();
    format!(
        "{file}: chunk {chunk}: {} of {} rows rejected ({:.1}%), above the threshold of {:.1}% \
         (VALIDATION_ERROR_THRESHOLD); first errors: {}",
        v.rejected(),
        v.rows_read,
        100.0 * crate::validate::error_rate(v.rejected() as u64, v.rows_read as u64),
        100.0 * threshold,
        first.join("; ")
    )
}
