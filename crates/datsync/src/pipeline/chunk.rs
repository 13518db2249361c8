//! One chunk from validation to commit: validate and transform (in the converter, as it cuts
//! the chunk, or here: [`prepare`]), keep the rejects and the value warnings, load (one
//! transaction with its ledger row, retried on transient errors), mark it in the manifest.
//! What came of it is a [`ChunkResult`]; what stops the sync is a [`Halt`].
//!
//! The rejects and warnings files are written before the transaction, and again (the same
//! bytes) when a crash makes the chunk load again; the ledger row counts them in the chunk's
//! transaction, so they are counted exactly once.

use arrow_array::RecordBatch;

use super::halt::{BadInput, Halt, SyncFailure, TooManyRejects, TransientFailure};
use super::jobs::Conn;
use super::retry::LoadAttempt;
use super::run::Shared;
use crate::checkpoint::{ChunkCompression, ChunkOutcome, encode_parquet};
use crate::load::{ChunkFacts, ChunkLoad};
use crate::model::{ChunkCounts, ChunkId, RowError};
use crate::store::ObjectKey;
use crate::telemetry::{ChunkCommitted, ChunkCompleted, ChunkFailed, RowsRejected, ValuesWarned};
use std::time::Instant;

use super::convert::{Converted, Rows};
use crate::profile::Profile;
use crate::transform::{TransformError, Transformed};
use crate::validate::{VALIDATION_ERRORS_SAMPLE, ValidateError, Validated};

/// A chunk's rows validated and typed: work on the rows alone, no effect anywhere, done by
/// the converter as it cuts a chunk (so it overlaps the load of the one before), else by the
/// loader ([`prepare`]).
pub(super) struct Prepared {
    /// What validation decided; its accepted and superseded rows are dropped once typed
    /// (the memory budget counts each chunk's rows once).
    validated: Validated,
    /// The accepted rows typed, with the value warnings of the accepted and the superseded
    /// rows in line order; or why they cannot be (reported after the rejects are kept, as
    /// a sync that stops keeps them).
    typed: Result<Transformed, TransformError>,
    /// Whether no row is left to load.
    nothing_loaded: bool,
}

/// Validates and types a chunk's text rows ([`Prepared`]); a batch that lacks the profile's
/// columns is an error.
pub(super) fn prepare(profile: &Profile, batch: RecordBatch) -> Result<Prepared, ValidateError> {
    let mut validated = crate::validate::validate(profile, &batch)?;
    // The accepted rows are a copy: the text batch is not needed for the load.
    drop(batch);
    let nothing_loaded = validated.loaded() == 0;
    let take = |b: &mut RecordBatch| {
        let empty = RecordBatch::new_empty(b.schema());
        std::mem::replace(b, empty)
    };
    let accepted = take(&mut validated.accepted);
    let superseded = take(&mut validated.superseded_rows);
    let typed = crate::transform::transform(profile, &accepted).and_then(|mut typed| {
        // The text rows are typed: dropped now, not held beside the typed ones.
        drop(accepted);
        // Rows superseded inside the chunk are checked too: the warnings of a file do not
        // depend on where its chunks are cut.
        if superseded.num_rows() > 0 {
            typed
                .warnings
                .extend(crate::transform::transform(profile, &superseded)?.warnings);
            typed.warnings.sort_by_key(|w| w.line);
        }
        Ok(typed)
    });
    Ok(Prepared {
        validated,
        typed,
        nothing_loaded,
    })
}

/// What happened to one chunk.
pub(super) enum ChunkResult {
    /// Committed with its ledger row, and marked completed (or skipped: every row was
    /// rejected) in the manifest; what its rows became.
    Committed(ChunkCounts),
    /// Transient database errors outlasted the attempts: marked failed, kept for a resume.
    Failed(FailedChunk),
    /// `submit`: put in the work queue for the workers (`queue.rs`).
    Queued,
    /// A worker's claim on the chunk was lost before a retry (another process holds or
    /// loaded it, or its sync stopped), or the ledger had the chunk committed by another
    /// process: nothing loaded by this one.
    Released,
}

/// A chunk given up on in this run.
#[derive(Debug)]
pub(super) struct FailedChunk {
    /// The chunk.
    pub(super) chunk: ChunkId,
    /// The last error.
    pub(super) error: TransientFailure,
}

impl Shared<'_> {
    /// Validates and transforms one chunk (unless the converter did: [`Rows::Prepared`]),
    /// keeps its rejects and warnings, and loads it on `conn`.
    pub(super) async fn process(
        &self,
        conn: &mut Conn<'_>,
        c: Converted,
    ) -> Result<ChunkResult, Halt> {
        let started = Instant::now();
        let Converted {
            chunk,
            rows,
            checksum,
            source_bytes,
        } = c;
        if let Some(m) = &self.manager {
            m.lock().await.mark_chunk_processing(chunk).await?;
        }
        let prepared = match rows {
            Rows::Text(batch) => prepare(&self.profile, batch),
            Rows::Prepared(prepared) => *prepared,
        };
        let Prepared {
            validated,
            typed,
            nothing_loaded,
        } = prepared.map_err(|error| BadInput::Columns {
            source_name: self.plan.source_path.clone(),
            error,
        })?;
        let mut facts = self.check_rejects(chunk, &validated).await?;
        drop(validated);
        let typed = typed.map_err(|error| SyncFailure::Transform {
            source_name: self.plan.source_path.clone(),
            chunk,
            error,
        })?;
        self.keep_warnings(chunk, &typed.warnings, &mut facts)
            .await?;
        let load = match self
            .load_with_retries(conn, chunk, &checksum, &typed.batch, &facts)
            .await?
        {
            LoadAttempt::Loaded(load) => load,
            LoadAttempt::Transient(error) => return self.give_up(chunk, error).await,
            LoadAttempt::Released => return Ok(ChunkResult::Released),
        };
        let counts = ChunkCounts {
            rows: facts.rows_read,
            inserted: load.inserted,
            updated: load.updated,
            skipped_older: load.skipped_older,
            superseded: facts.superseded + load.superseded,
            rejected: facts.rejected,
            warnings: facts.value_warnings,
            derived_failed: load.derived_failed,
        };
        self.committed(conn.client, chunk, &load, &facts, nothing_loaded)
            .await?;
        if load.already_committed {
            // Another process committed it (a worker beside a resume, or the other way
            // round): counted there, not as this process's work.
            tracing::info!(sync_id = %self.plan.sync_id, %chunk, "the chunk was committed by another process");
            return Ok(ChunkResult::Released);
        }
        self.pipeline.telemetry.emit(&ChunkCompleted {
            sync_id: &self.plan.sync_id,
            chunk,
            counts: &counts,
            seconds: started.elapsed().as_secs_f64(),
            source_read: source_bytes.map(|b| self.source_share(b)),
            eta_s: source_bytes.and_then(|b| self.eta_s(b)),
        });
        Ok(ChunkResult::Committed(counts))
    }

    /// The share of the source that `bytes` are (0 to 1).
    fn source_share(&self, bytes: u64) -> f64 {
        let size = self.plan.fingerprint.size_bytes;
        if size == 0 {
            1.0
        } else {
            (bytes as f64 / size as f64).min(1.0)
        }
    }

    /// Seconds left at this run's pace, once `bytes` of the source are read.
    fn eta_s(&self, bytes: u64) -> Option<f64> {
        let share = self.source_share(bytes);
        (share > 0.0).then(|| self.started.elapsed().as_secs_f64() * (1.0 - share) / share)
    }

    /// Keeps the chunk's rejected rows and stops the sync when they are too many; returns
    /// what validation decided, for the ledger.
    async fn check_rejects(
        &self,
        chunk: ChunkId,
        validated: &Validated,
    ) -> Result<ChunkFacts, Halt> {
        let p = self.pipeline;
        let (rows_read, rejected) = (validated.rows_read as u64, validated.rejected() as u64);
        if rejected > 0 {
            self.keep_rejects(chunk, &validated.rejects).await?;
            p.telemetry.emit(&RowsRejected {
                sync_id: &self.plan.sync_id,
                chunk,
                count: rejected,
            });
        }
        // What leaves the rejects files is masked: personal values, raw lines (pii).
        let sample = self.profile.masked_errors(
            &validated.errors[..validated.errors.len().min(VALIDATION_ERRORS_SAMPLE)],
        );
        let threshold = p.settings.error_threshold;
        if crate::validate::exceeds_threshold(rejected, rows_read, threshold) {
            return Err(BadInput::TooManyRejects(Box::new(TooManyRejects {
                source_name: self.plan.source_path.clone(),
                chunk,
                rejected,
                rows_read,
                threshold,
                errors_count: validated.errors.len() as u64,
                errors: sample,
            }))
            .into());
        }
        Ok(ChunkFacts {
            rows_read,
            rejected,
            superseded: validated.superseded as u64,
            validation_errors_count: validated.errors.len() as u64,
            validation_errors: serde_json::to_value(&sample).ok(),
            cut: Some(self.cut().await),
            value_warnings: 0,
            value_warnings_sample: None,
        })
    }

    /// Writes a chunk's value warnings to `rejects/<sync_id>/warnings_NNNN.parquet`, logs
    /// them, and records their count and first ones in `facts` for the ledger.
    async fn keep_warnings(
        &self,
        chunk: ChunkId,
        warnings: &[RowError],
        facts: &mut ChunkFacts,
    ) -> Result<(), Halt> {
        if warnings.is_empty() {
            return Ok(());
        }
        let batch =
            crate::rejects::warnings_batch(warnings).map_err(|error| SyncFailure::Rejects {
                chunk,
                error: error.into(),
            })?;
        let bytes = encode_parquet(&batch, ChunkCompression::default())
            .map_err(|error| SyncFailure::Rejects { chunk, error })?;
        self.store
            .put(&ObjectKey::warnings(&self.plan.sync_id, chunk), bytes)
            .await?;
        // The warnings file keeps the values; the log and the ledger get them masked.
        let sample = self
            .profile
            .masked_errors(&warnings[..warnings.len().min(VALIDATION_ERRORS_SAMPLE)]);
        if let Some(first) = sample.first() {
            self.pipeline.telemetry.emit(&ValuesWarned {
                sync_id: &self.plan.sync_id,
                chunk,
                count: warnings.len() as u64,
                first,
            });
        }
        facts.value_warnings = warnings.len() as u64;
        facts.value_warnings_sample = serde_json::to_value(&sample).ok();
        Ok(())
    }

    /// A committed chunk: marked completed (skipped when every row was rejected), progress
    /// copied to `sync_metadata` (on `client`, the connection that committed it).
    async fn committed(
        &self,
        client: &tokio_postgres::Client,
        chunk: ChunkId,
        load: &ChunkLoad,
        facts: &ChunkFacts,
        nothing_loaded: bool,
    ) -> Result<(), Halt> {
        let p = self.pipeline;
        let sync_id = &self.plan.sync_id;
        p.telemetry.emit(&ChunkCommitted { sync_id, chunk });
        let outcome = ChunkOutcome {
            records_inserted: load.inserted,
            records_updated: load.updated,
            validation_errors: facts.validation_errors_count,
            rows_rejected: facts.rejected,
        };
        if let Some(m) = &self.manager {
            let mut m = m.lock().await;
            if nothing_loaded {
                m.mark_chunk_skipped(chunk, "every row was rejected", outcome)
                    .await?;
            } else {
                m.mark_chunk_complete(chunk, outcome).await?;
            }
        }
        if let Err(e) =
            crate::status::progress_from_ledger(client, &p.profile.schema, sync_id).await
        {
            tracing::warn!(%sync_id, error = %e, "progress not written to sync_metadata");
        }
        Ok(())
    }

    /// A chunk whose attempts are used up: marked failed with its last error, kept for a
    /// resume; the run goes on.
    async fn give_up(&self, chunk: ChunkId, error: TransientFailure) -> Result<ChunkResult, Halt> {
        let message = error.to_string();
        if let Some(m) = &self.manager {
            m.lock().await.mark_chunk_failed(chunk, &message).await?;
        }
        self.pipeline.telemetry.emit(&ChunkFailed {
            sync_id: &self.plan.sync_id,
            chunk,
            error: &message,
        });
        Ok(ChunkResult::Failed(FailedChunk { chunk, error }))
    }

    /// Writes a chunk's rejected rows to `rejects/<sync_id>/rejects_NNNN.parquet`.
    async fn keep_rejects(&self, chunk: ChunkId, rejects: &RecordBatch) -> Result<(), Halt> {
        let bytes = encode_parquet(rejects, ChunkCompression::default())
            .map_err(|error| SyncFailure::Rejects { chunk, error })?;
        self.store
            .put(&ObjectKey::rejects(&self.plan.sync_id, chunk), bytes)
            .await?;
        Ok(())
    }
}
