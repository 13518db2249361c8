//! One run of one sync: the chunks already recorded are loaded first, then phase 1 converts
//! the rest of the source while phase 2 loads each chunk as soon as it is saved; then the
//! run finishes (`finish.rs`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, mpsc, watch};
use tokio_postgres::Client;

use super::chunk::{ChunkResult, FailedChunk};
use super::convert::{ConvertOutcome, Converted, Converter};
use super::halt::{Halt, SyncFailure};
use super::plan::Plan;
use super::progress::ChunkDone;
use super::reconcile::{Conversion, Ledger, outcome_of};
use super::{Pipeline, PipelineError, RunSummary};
use crate::checkpoint::CheckpointManager;
use crate::load::Loader;
use crate::model::{ChunkCut, ChunkId, SyncId, SyncRef};
use crate::profile::Profile;
use crate::source::SourceRef;
use crate::status::LedgerChunk;
use crate::store::Store;
use crate::telemetry::ChunkStaged;

/// The loader of a run: the profile's SQL, and the `chunk_staged` event emitted after each
/// staging COPY (the crash tests' "mid-COPY" kill point).
pub(super) fn run_loader(pipeline: &Pipeline, sync_id: &SyncId) -> Loader {
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
    /// How the chunks the ledger already has were cut, when it has some.
    pub(super) ledger_cut: Option<ChunkCut>,
    /// The loader of the profile, its SQL prepared once per run.
    pub(super) loader: Loader,
    /// Header columns the profile does not know (see `header.rs`).
    pub(super) unknown_columns: Vec<String>,
    /// The pipeline's profile with the target table's narrower columns
    /// ([`crate::profile::Column::stored`]): what validation and the transform check
    /// values against.
    pub(super) profile: Profile,
}

/// What this run did, chunk by chunk.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Chunks committed by this run.
    pub(super) loaded: u64,
    /// Time spent on the chunks committed by this run.
    pub(super) load_time: Duration,
    /// Chunks that failed transiently in this run.
    pub(super) failed: Vec<FailedChunk>,
    /// Chunks the ledger had when the run started.
    pub(super) skipped_on_resume: u64,
}

/// What the converter hands over next.
enum Next {
    /// A chunk, saved.
    Chunk(Converted),
    /// A stop was asked for: no further chunk is started.
    Stop,
    /// Every chunk was handed over.
    End,
}

impl Run<'_> {
    /// Loads the recorded chunks, runs phase 1 (if unfinished) with phase 2 on its heels,
    /// then decides the final status.
    pub(super) async fn execute(mut self) -> Result<RunSummary, PipelineError> {
        let ledger = self.ledger().await?;
        let mut tally = Tally {
            skipped_on_resume: ledger.len() as u64,
            ..Tally::default()
        };
        let reconciled = self.reconcile(&ledger).await?;
        let resumed = !ledger.is_empty() || !reconciled.recorded.is_empty();
        let mut halt = self.check_header().await.err();
        if halt.is_none() {
            halt = self
                .load_recorded(&reconciled.pending, &mut tally)
                .await
                .err();
        }
        let mut converted = None;
        if halt.is_none() {
            let result = match reconciled.conversion {
                Conversion::Done => Ok(None),
                Conversion::HashOnly => self.finalize_by_hashing().await.map(Some),
                Conversion::Continue => self
                    .convert_and_process(reconciled.recorded.clone(), &ledger, &mut tally)
                    .await
                    .map(Some),
            };
            match result {
                Ok(outcome) => converted = outcome,
                Err(h) => halt = Some(h),
            }
        }
        self.finish(halt, &tally, converted, resumed).await
    }

    /// A finished sync whose checkpoint was cleaned up: only the final steps run again, from
    /// the ledger.
    pub(super) async fn finished(mut self) -> Result<RunSummary, PipelineError> {
        let tally = Tally {
            skipped_on_resume: self.ledger().await?.len() as u64,
            ..Tally::default()
        };
        let p = self.pipeline;
        self.unknown_columns =
            crate::status::recorded_header(&self.client, &p.profile.schema, &self.plan.sync_id)
                .await?
                .map(|h| h.unknown_columns)
                .unwrap_or_default();
        self.finish(None, &tally, None, true).await
    }

    /// Loads the chunks recorded before this run and not committed, in order (a stray entry,
    /// for a chunk the source does not have, is dropped).
    async fn load_recorded(&mut self, pending: &[ChunkId], tally: &mut Tally) -> Result<(), Halt> {
        for &chunk in pending {
            if self.pipeline.stopping() {
                return Err(Halt::Stopped);
            }
            if let Some(c) = self.recorded_chunk(chunk).await? {
                self.load(c, tally).await?;
            }
        }
        Ok(())
    }

    /// Phase 1 with phase 2 on its heels: each chunk is loaded as soon as it is saved.
    async fn convert_and_process(
        &mut self,
        recorded: BTreeSet<ChunkId>,
        ledger: &Ledger,
        tally: &mut Tally,
    ) -> Result<ConvertOutcome, Halt> {
        let p = self.pipeline;
        let Some(source) = self.plan.source.clone() else {
            return Err(SyncFailure::SourceUnreadable {
                source_path: self.plan.source_path.clone(),
            }
            .into());
        };
        let converter = Converter {
            sync_id: self.plan.sync_id.clone(),
            source,
            profile: p.profile.clone(),
            options: p.parse_options(self.cut().await),
            recorded,
            fingerprint: self.plan.fingerprint.clone(),
            manager: self.manager.clone(),
            telemetry: p.telemetry.clone(),
            progress: p.progress.clone(),
        };
        let (mut chunks, handle) = converter.spawn();
        let mut halt = None;
        let mut stop = p.stop.clone();
        loop {
            let c = match next_chunk(&mut chunks, stop.as_mut()).await {
                Next::Chunk(c) => c,
                Next::Stop => {
                    halt = Some(Halt::Stopped);
                    break;
                }
                Next::End => break,
            };
            let result = match ledger.get(&c.chunk) {
                Some(done) => self.complete_from_ledger(c.chunk, done).await,
                None => self.load(c, tally).await,
            };
            if let Err(h) = result {
                halt = Some(h);
                break;
            }
        }
        // Stopped: the converter ends at its next hand-over (its chunk files are kept).
        drop(chunks);
        let joined = handle.await;
        if let Some(h) = halt {
            return Err(h);
        }
        joined.map_err(|e| SyncFailure::task_died("the converter task died", e))?
    }

    /// Loads one chunk and counts what came of it. A local source that changed since the
    /// run opened it stops the run first: the chunk's bytes may be the new ones.
    async fn load(&mut self, c: Converted, tally: &mut Tally) -> Result<(), Halt> {
        if let Some(source) = &self.plan.source {
            unchanged(source)?;
        }
        let t0 = Instant::now();
        let (chunk, source_bytes) = (c.chunk, c.source_bytes);
        match self.process(c).await? {
            ChunkResult::Committed(counts) => {
                tally.loaded += 1;
                tally.load_time += t0.elapsed();
                self.pipeline.progress.chunk_done(&ChunkDone {
                    chunk,
                    done: tally.loaded + tally.skipped_on_resume,
                    counts,
                    source_bytes,
                    elapsed: self.started.elapsed(),
                });
            }
            ChunkResult::Failed(failed) => tally.failed.push(failed),
        }
        Ok(())
    }

    /// How this sync's chunks are cut: as the checkpoint recorded, else as the ledger
    /// recorded, else as the settings say — whatever `--chunk-size`, `--chunk-bytes` or
    /// `--max-line-bytes` say now (chunks are cut again from the source on a resume, and must
    /// be cut where they were).
    pub(super) async fn cut(&self) -> ChunkCut {
        let p = self.pipeline;
        let requested = self.ledger_cut.unwrap_or_else(|| p.settings_cut());
        let Some(manager) = &self.manager else {
            return requested;
        };
        let recorded = manager
            .lock()
            .await
            .manifest()
            .map(crate::checkpoint::Manifest::cut)
            .filter(|c| c.rows > 0)
            .map(|c| p.effective_cut(c));
        match recorded {
            Some(cut) if cut != requested => {
                tracing::info!(sync_id = %self.plan.sync_id, chunk_size = cut.rows,
                    chunk_bytes = ?cut.bytes, max_line_bytes = ?cut.max_line_bytes,
                    "cutting chunks as the checkpoint recorded, not as the settings say");
                cut
            }
            Some(cut) => cut,
            None => requested,
        }
    }

    /// A chunk converted again whose commit the ledger has: marked completed, not loaded.
    async fn complete_from_ledger(&self, chunk: ChunkId, done: &LedgerChunk) -> Result<(), Halt> {
        if let Some(m) = &self.manager {
            m.lock()
                .await
                .mark_chunk_complete(chunk, outcome_of(done))
                .await?;
        }
        Ok(())
    }
}

/// [`SourceRef::changed`] as a halt: a chunk read before this check holds the source as the
/// sync opened it, so a chunk is saved (phase 1) and committed (phase 2) only after it.
pub(super) fn unchanged(source: &SourceRef) -> Result<(), Halt> {
    match source.changed() {
        None => Ok(()),
        Some(change) => {
            let source_path = source.name();
            tracing::error!(source = %source_path, change = %change,
                "the source changed while it was being loaded; stopping before the next chunk is saved or committed");
            Err(SyncFailure::SourceChanged {
                source_path,
                change,
            }
            .into())
        }
    }
}

/// The next converted chunk, or [`Next::Stop`] as soon as a stop is asked for: the
/// processor starts no further chunk, even while the converter is still reading.
async fn next_chunk(
    chunks: &mut mpsc::Receiver<Converted>,
    stop: Option<&mut watch::Receiver<bool>>,
) -> Next {
    let received = |c: Option<Converted>| c.map_or(Next::End, Next::Chunk);
    let Some(stop) = stop else {
        return received(chunks.recv().await);
    };
    if *stop.borrow() {
        return Next::Stop;
    }
    tokio::select! {
        biased;
        // A closed sender (the caller dropped it) never stops the run.
        Ok(_) = stop.wait_for(|s| *s) => Next::Stop,
        c = chunks.recv() => received(c),
    }
}
