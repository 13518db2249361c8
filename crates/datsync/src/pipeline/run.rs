//! One run of one sync: the chunks already recorded are loaded first, then phase 1 converts
//! the rest of the source while phase 2 loads each chunk as soon as it is saved; then the
//! run finishes (`finish.rs`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, mpsc, watch};
use tokio_postgres::Client;

use super::chunk::{ChunkResult, FailedChunk};
use super::convert::{ConvertOutcome, Converted, Converter, ResumeFrom};
use super::halt::{Halt, SyncFailure};
use super::jobs::{Conn, Feed, Helper};
use super::plan::Plan;
use super::queue::Mode;
use super::reconcile::{Conversion, Ledger, outcome_of};
use super::{Pipeline, PipelineError, RunSummary};
use crate::checkpoint::CheckpointManager;
use crate::load::{LoadPoint, Loader};
use crate::model::{ChunkCut, ChunkId, SyncId, SyncRef};
use crate::profile::Profile;
use crate::source::SourceRef;
use crate::status::LedgerChunk;
use crate::store::Store;
use crate::telemetry::{ChunkStaged, DerivedCommitted};

/// The loader of a run: the profile's SQL, and the `chunk_staged` event emitted after each
/// chunk's COPY, staging or straight into the table (the crash tests' "mid-COPY" kill point),
/// and `derived_committed` once its derived tables are committed beside it.
pub(super) fn run_loader(pipeline: &Pipeline, sync_id: &SyncId) -> Loader {
    let telemetry = pipeline.telemetry.clone();
    let sync_id = sync_id.clone();
    Loader::new(&pipeline.profile).with_hook(Arc::new(move |point, chunk| match point {
        LoadPoint::Staged => telemetry.emit(&ChunkStaged {
            sync_id: &sync_id,
            chunk,
        }),
        LoadPoint::DerivedCommitted => telemetry.emit(&DerivedCommitted {
            sync_id: &sync_id,
            chunk,
        }),
    }))
}

/// What the loaders of a run share: everything of the run but its session.
pub(super) struct Shared<'a> {
    pub(super) pipeline: &'a Pipeline,
    pub(super) plan: &'a Plan,
    pub(super) sync_ref: SyncRef,
    /// Where rejects go (and checkpoints, when `manager` is set).
    pub(super) store: Store,
    pub(super) manager: Option<Arc<Mutex<CheckpointManager>>>,
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
    /// With `--jobs` above 1, the backend of the session that holds the sync's writer lock
    /// (`jobs.rs`); `None` with one loader, whose session is the run's.
    pub(super) writer: Option<Mutex<i32>>,
    /// Whether the chunks are loaded here, queued for workers, or claimed from the queue.
    pub(super) mode: Mode,
    /// A worker's claim: the transaction that claimed the chunk is still open on the
    /// loader's connection (a retry opens a new one and claims the chunk again).
    pub(super) claim_open: std::sync::atomic::AtomicBool,
}

/// One run of one sync: what its loaders share, and the run's session, which holds the
/// sync's writer lock (and, with one loader, commits the chunks). Reads through to
/// [`Shared`].
pub(super) struct Run<'a> {
    pub(super) shared: Shared<'a>,
    pub(super) client: Client,
    /// The session's backend process id, with more than one loader (0 with one).
    pub(super) pid: i32,
    /// The other loaders' connections (`--jobs` above 1, see `jobs.rs`).
    pub(super) helpers: Vec<Helper>,
}

impl<'a> std::ops::Deref for Run<'a> {
    type Target = Shared<'a>;

    fn deref(&self) -> &Self::Target {
        &self.shared
    }
}

impl std::ops::DerefMut for Run<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.shared
    }
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
pub(super) enum Next {
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
            halt = self.open_helpers().await.err();
        }
        let mut converted = None;
        if halt.is_none() {
            let pending = reconciled.pending.clone().into_iter();
            let result = match reconciled.conversion {
                Conversion::Done => self
                    .load_chunks(Feed::recorded(pending), &mut tally)
                    .await
                    .map(|()| None),
                Conversion::HashOnly => {
                    match self.load_chunks(Feed::recorded(pending), &mut tally).await {
                        Ok(()) => self.finalize_by_hashing().await.map(Some),
                        Err(h) => Err(h),
                    }
                }
                Conversion::Continue => self
                    .convert_and_process(reconciled.recorded.clone(), pending, &ledger, &mut tally)
                    .await
                    .map(Some),
            };
            match result {
                Ok(outcome) => converted = outcome,
                Err(h) => halt = Some(h),
            }
        }
        if let Err(lost) = self.close_helpers().await {
            halt = Some(lost);
        }
        if self.mode == Mode::Submit {
            return self.submitted(halt, &tally, converted, resumed).await;
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

    /// Phase 1 with phase 2 on its heels: the chunks recorded before this run and not
    /// committed (`pending`) are loaded first, then each new chunk as soon as it is saved.
    async fn convert_and_process(
        &mut self,
        recorded: BTreeSet<ChunkId>,
        pending: std::vec::IntoIter<ChunkId>,
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
        let from = match &self.manager {
            Some(m) => m
                .lock()
                .await
                .manifest()
                .and_then(|m| ResumeFrom::of(m, ChunkId(u32::MAX))),
            None => None,
        };
        let converter = Converter {
            sync_id: self.plan.sync_id.clone(),
            source,
            profile: p.profile.clone(),
            options: p.parse_options(self.cut().await),
            recorded,
            from,
            fingerprint: self.plan.fingerprint.clone(),
            manager: self.manager.clone(),
            telemetry: p.telemetry.clone(),
            progress: p.progress.clone(),
            prepare: (self.mode != Mode::Submit).then(|| Arc::new(self.profile.clone())),
        };
        let (chunks, handle) = converter.spawn();
        // The receiver is dropped on return: stopped, the converter ends at its next
        // hand-over (its chunk files are kept).
        let loaded = self
            .load_chunks(Feed::recorded(pending).then(chunks, ledger), tally)
            .await;
        let joined = handle.await;
        loaded?;
        joined.map_err(|e| SyncFailure::task_died("the converter task died", e))?
    }
}

impl Shared<'_> {
    /// Loads one chunk on `conn`: what came of it, and how long it took. A local source
    /// that changed since the run opened it stops the run first: the chunk's bytes may be
    /// the new ones.
    pub(super) async fn load(
        &self,
        conn: &mut Conn<'_>,
        c: Converted,
    ) -> Result<(ChunkResult, Duration), Halt> {
        if self.mode == Mode::Submit {
            let t0 = Instant::now();
            return Ok((self.enqueue(conn, c).await?, t0.elapsed()));
        }
        if let Some(source) = &self.plan.source {
            unchanged(source)?;
        }
        let t0 = Instant::now();
        let result = self.process(conn, c).await?;
        Ok((result, t0.elapsed()))
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
    pub(super) async fn complete_from_ledger(
        &self,
        chunk: ChunkId,
        done: &LedgerChunk,
    ) -> Result<(), Halt> {
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
/// processor starts no further chunk, even while the converter is still reading; or
/// [`Next::End`] as soon as another loader stopped the sync (`halted`, see `jobs.rs`).
pub(super) async fn next_chunk(
    chunks: &mut mpsc::Receiver<Converted>,
    stop: Option<&mut watch::Receiver<bool>>,
    halted: &mut watch::Receiver<bool>,
) -> Next {
    let received = |c: Option<Converted>| c.map_or(Next::End, Next::Chunk);
    if *halted.borrow() {
        return Next::End;
    }
    let Some(stop) = stop else {
        return tokio::select! {
            biased;
            Ok(_) = halted.wait_for(|h| *h) => Next::End,
            c = chunks.recv() => received(c),
        };
    };
    if *stop.borrow() {
        return Next::Stop;
    }
    tokio::select! {
        biased;
        // A closed sender (the caller dropped it) never stops the run.
        Ok(_) = stop.wait_for(|s| *s) => Next::Stop,
        Ok(_) = halted.wait_for(|h| *h) => Next::End,
        c = chunks.recv() => received(c),
    }
}
