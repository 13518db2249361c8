//! The only module that knows every stage: run a source, resume a sync, decide its final
//! status (the seed's Diagrams 1, 2 and 4).
//!
//! ```text
//! reader thread ─batches─> converter task ─chunks─> processor (this task)
//!  decode + hash            save Parquet,            validate, rejects, transform,
//!                           manifest                 load (one transaction + ledger row),
//!                                                    mark completed
//! ```
//!
//! Phase 1 and phase 2 overlap: a chunk is loaded as soon as its Parquet file is recorded. On
//! a resume, chunks already converted are not converted again (the reader decodes past them),
//! and chunks in the ledger are not loaded again: the ledger wins over the manifest. The final
//! counts and the validation error sample are read from the ledger, so they are the same
//! whether or not the sync was interrupted.

mod convert;
mod discover;
mod finish;
mod process;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::alert::Alerter;
use crate::checkpoint::{CheckpointError, CheckpointManager, NewCheckpoint, verify_source};
use crate::config::Settings;
use crate::load::LoadError;
use crate::model::{ChunkId, SourceFingerprint, SyncCounts, SyncId, SyncStatus};
use crate::pg::{PgError, PgSettings};
use crate::profile::Profile;
use crate::source::{SourceError, SourceRef};
use crate::status::{StatusError, SyncRegistration};
use crate::store::{Store, StoreError};
use crate::telemetry::Telemetry;

/// Attempts of a chunk's load in one run when the database fails transiently.
pub const DEFAULT_LOAD_ATTEMPTS: u32 = 4;
/// The first pause between two attempts; it doubles each time.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// Validation errors kept in `sync_metadata.validation_errors` and in each ledger row.
pub const VALIDATION_ERROR_SAMPLE: usize = crate::validate::VALIDATION_ERRORS_SAMPLE;

/// An error that stops a sync before it has a status of its own (the database cannot be
/// reached, another process holds the sync, the checkpoint cannot be trusted, …). A sync that
/// ends FAILED or BAD_INPUT is not an error: it is a [`RunSummary`] with that status.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The source cannot be opened or read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The database failed before the sync could be registered.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// Writing `sync_metadata` or reading the ledger failed.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// Reading the ledger or `sync_metadata` failed.
    #[error(transparent)]
    Read(#[from] crate::status::ReadError),
    /// The checkpoint store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checkpoint cannot be used.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Another process is writing this sync.
    #[error(
        "sync {0} is being written by another datsync process (it holds the sync's lock); \
         wait for it to finish, or stop it, then resume"
    )]
    Busy(SyncId),
    /// `resume` of a sync that exists nowhere.
    #[error(
        "sync {0} is unknown: it has no checkpoint and no sync_metadata row; check the id \
         (`datsync list`) and --checkpoint-dir"
    )]
    UnknownSync(SyncId),
    /// An internal task died (a bug); reported rather than panicking.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Receives progress while a sync runs (the CLI draws bars; tests ignore it).
pub trait Progress: Send + Sync {
    /// The source's size in bytes, when known.
    fn source_size(&self, _bytes: u64) {}
    /// A chunk was converted; `source_bytes` of the source have been read so far.
    fn converted(&self, _chunk: ChunkId, _rows: u64, _source_bytes: u64) {}
    /// A chunk was loaded (or found committed); `done` chunks are finished so far.
    fn chunk_done(&self, _chunk: ChunkId, _done: u64) {}
    /// The number of chunks, once known.
    fn total_chunks(&self, _chunks: u64) {}
    /// The run is over.
    fn finish(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What a run did: the `--json` summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The sync.
    pub sync_id: SyncId,
    /// Its final status.
    pub status: SyncStatus,
    /// Rows and chunks of the whole sync (this run and earlier ones); `chunks_failed` are
    /// those that failed in this run and are kept for a retry.
    #[serde(flatten)]
    pub counts: SyncCounts,
    /// Chunks found already committed when this run started.
    pub chunks_skipped_on_resume: u64,
    /// Wall time of this run.
    pub duration_s: f64,
    /// An estimate of the time the skipped chunks would have taken (this run's mean time per
    /// loaded chunk × chunks skipped), when the run resumed a sync.
    pub time_saved_s: Option<f64>,
    /// Where the checkpoint is, while it is kept.
    pub checkpoint_dir: Option<String>,
    /// Where the rejected rows are, when there are any.
    pub rejects_dir: Option<String>,
    /// Whether this run continued an earlier one.
    pub resumed: bool,
    /// Why the sync failed, when it did.
    pub error: Option<String>,
    /// The run was stopped (SIGTERM, see [`Pipeline::with_stop`]) before every chunk was
    /// loaded: the chunks committed stay committed, the checkpoint is kept, the status stays
    /// IN_PROGRESS and `resume` continues the sync. Not a failure of the sync.
    pub interrupted: bool,
}

impl RunSummary {
    /// Whether nothing is left that a retry could change:
    ///
    /// - SUCCESS: done.
    /// - BAD_INPUT: the input is at fault; another attempt gives the same result.
    /// - PARTIAL_SUCCESS with no failed chunk and no pending row: only rows were rejected;
    ///   they would be rejected again.
    /// - PARTIAL_SUCCESS with failed chunks or pending rows, FAILED, IN_PROGRESS, or a run
    ///   stopped on request: not final; a resume of the same sync can finish it.
    pub fn is_final(&self) -> bool {
        if self.interrupted {
            return false;
        }
        match self.status {
            SyncStatus::Success | SyncStatus::BadInput => true,
            SyncStatus::PartialSuccess => {
                self.counts.chunks_failed == 0 && self.counts.rows_pending == 0
            }
            SyncStatus::Failed | SyncStatus::InProgress => false,
        }
    }

    /// The process exit code: 0 SUCCESS, 2 PARTIAL_SUCCESS, 1 FAILED or BAD_INPUT.
    pub fn exit_code(&self) -> u8 {
        match self.status {
            SyncStatus::Success => 0,
            SyncStatus::PartialSuccess => 2,
            SyncStatus::Failed | SyncStatus::BadInput | SyncStatus::InProgress => 1,
        }
    }
}

/// Everything a run needs, built once.
pub struct Pipeline {
    /// The profile, `DB_SCHEMA`/`DB_TABLE` overrides applied.
    pub profile: Profile,
    /// Pipeline settings.
    pub settings: Settings,
    /// Database settings.
    pub pg: PgSettings,
    /// Alert channels (`None`: no alerts).
    pub alerter: Option<Alerter>,
    /// Events and crash injection.
    pub telemetry: Arc<Telemetry>,
    /// Progress display.
    pub progress: Arc<dyn Progress>,
    /// Load attempts per chunk and run.
    pub load_attempts: u32,
    /// First pause between attempts.
    pub retry_backoff: Duration,
    /// Asks the run to stop: once it reads `true`, the processor finishes the chunk in
    /// flight and loads no further chunk (see [`Pipeline::with_stop`]).
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Whether a run that ends in a state a retry can change (FAILED, failed chunks) sends
    /// its alert. `true` for `run`/`resume`; the intake turns it off, retries, and alerts
    /// once when it parks the source.
    pub alert_retryable: bool,
}

impl Pipeline {
    /// A pipeline with default retries, no alerts and no progress display.
    pub fn new(mut profile: Profile, settings: Settings, pg: PgSettings) -> Self {
        crate::config::apply_overrides(&mut profile, &settings);
        Self {
            profile,
            settings,
            pg,
            alerter: None,
            telemetry: Arc::new(Telemetry::default()),
            progress: Arc::new(NoProgress),
            load_attempts: DEFAULT_LOAD_ATTEMPTS,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            stop: None,
            alert_retryable: true,
        }
    }

    /// Stops runs gracefully when `stop` turns `true` (the CLI sets it on SIGTERM): the chunk
    /// in flight finishes and commits, no further chunk is loaded, the checkpoint is kept and
    /// the run returns a summary with `interrupted` set and status IN_PROGRESS.
    #[must_use]
    pub fn with_stop(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.telemetry.observe_stop(stop.clone());
        self.stop = Some(stop);
        self
    }

    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Uses crash injection and counters from `env` (see [`crate::telemetry`]).
    #[must_use]
    pub fn with_env(mut self, env: &HashMap<String, String>) -> Self {
        self.telemetry = Arc::new(Telemetry::from_env(env));
        if let Some(stop) = &self.stop {
            self.telemetry.observe_stop(stop.clone());
        }
        self
    }

    /// Loads a source (a local path or an `az://` URL): continues its unfinished sync when
    /// there is one (same name and fingerprint) unless `fresh`, or the sync `sync_id` when
    /// given.
    pub async fn run(
        &self,
        source: &str,
        sync_id: Option<SyncId>,
        fresh: bool,
    ) -> Result<RunSummary, PipelineError> {
        // Recorded absolute (manifest, sync_metadata): a resume may run in another directory.
        let source = SourceRef::open(source).await?;
        self.run_source(source, sync_id, fresh).await
    }

    /// [`Self::run`] on a source already opened.
    pub async fn run_source(
        &self,
        source: SourceRef,
        sync_id: Option<SyncId>,
        fresh: bool,
    ) -> Result<RunSummary, PipelineError> {
        let store = self.store().await?;
        let fingerprint = source.fingerprint();
        let path = source.name();
        let discover = !fresh && sync_id.is_none() && self.settings.enable_checkpointing;
        let found = if discover {
            discover::unfinished_sync(&store, &source).await?
        } else {
            None
        };
        if let Some(id) = &found {
            tracing::info!(sync_id = %id, source = %path, "continuing the unfinished sync of this source (use --fresh to start a new one)");
        }
        let sync_id = sync_id.or(found).unwrap_or_else(new_sync_id);
        let plan = Plan {
            sync_id,
            file_name: source.file_name(),
            source: Some(source),
            source_path: path,
            fingerprint,
        };
        // Boxed: the sync's state machine is large, and callers keep theirs small.
        Box::pin(self.sync(plan, store)).await
    }

    /// Continues a sync: finishes its conversion if it was cut short, loads every chunk the
    /// ledger does not have, and decides its final status again.
    pub async fn resume(&self, sync_id: SyncId) -> Result<RunSummary, PipelineError> {
        let store = self.store().await?;
        let mut source_path = None;
        if self.settings.enable_checkpointing {
            let mut manager = CheckpointManager::new(store.clone(), sync_id.clone());
            if manager.checkpoint_exists().await?
                && let Some(m) = manager.manifest()
            {
                source_path = Some((
                    m.source_path.clone(),
                    m.source_file.clone(),
                    Some(m.source_fingerprint.clone()),
                ));
            }
        }
        if source_path.is_none() {
            let mut client = crate::pg::connect(&self.pg).await?;
            crate::pg::init_db(&mut client, &self.profile).await?;
            if let Some(stored) =
                crate::status::stored_sync(&client, &self.profile.schema, &sync_id).await?
                && let Some(path) = stored.file_path
            {
                let name = stored.file_name.unwrap_or_else(|| base_name(&path));
                source_path = Some((path, name, None));
            }
        }
        let Some((path, file_name, recorded)) = source_path else {
            return Err(PipelineError::UnknownSync(sync_id));
        };
        let (source, fingerprint) = match SourceRef::open(&path).await {
            Ok(source) => {
                let fingerprint = source.fingerprint();
                (Some(source), fingerprint)
            }
            // Without the source a sync can still finish when every chunk is converted.
            Err(e) => {
                tracing::warn!(sync_id = %sync_id, source = %path, error = %e, "the source cannot be opened; finishing from the checkpoint");
                (None, recorded.unwrap_or_default())
            }
        };
        let plan = Plan {
            sync_id,
            source,
            file_name,
            source_path: path,
            fingerprint,
        };
        // Boxed: the sync's state machine is large, and callers keep theirs small.
        Box::pin(self.sync(plan, store)).await
    }

    /// Where checkpoints and rejects are kept (rejects are kept even without checkpoints).
    async fn store(&self) -> Result<Store, PipelineError> {
        let store = Store::open(&self.settings.checkpoint_base)?;
        store.ensure_container().await;
        Ok(store)
    }

    async fn sync(&self, plan: Plan, store: Store) -> Result<RunSummary, PipelineError> {
        let started = Instant::now();
        let schema = self.profile.schema.clone();
        let mut client = crate::pg::connect(&self.pg).await?;
        crate::pg::init_db(&mut client, &self.profile).await?;
        let lock = crate::pg::connect(&self.pg).await?;
        if !crate::pg::try_lock_sync(&lock, &plan.sync_id).await? {
            return Err(PipelineError::Busy(plan.sync_id));
        }
        let stored = crate::status::stored_sync(&client, &schema, &plan.sync_id).await?;
        let finished = stored
            .as_ref()
            .is_some_and(|s| matches!(s.status, SyncStatus::Success | SyncStatus::PartialSuccess));
        let sync_ref = crate::status::register_sync(
            &client,
            &schema,
            &SyncRegistration {
                sync_id: plan.sync_id.clone(),
                file_name: plan.file_name.clone(),
                file_path: plan.source_path.clone(),
                file_size_bytes: i64::try_from(plan.fingerprint.size_bytes).ok(),
            },
        )
        .await?;
        let checkpointing = self.settings.enable_checkpointing;
        // A finished sync whose checkpoint is gone was cleaned up (perhaps cut short): it
        // has nothing left to convert or load.
        let cleaned = finished
            && (!checkpointing
                || !CheckpointManager::new(store.clone(), plan.sync_id.clone())
                    .checkpoint_exists()
                    .await?);
        // Chunks committed earlier were cut at some size; without their checkpoint the
        // ledger tells it (its largest chunk), and chunks must be cut there again.
        let ledger_chunk_size =
            crate::status::ledger_chunks(&client, &schema, plan.sync_id.as_str())
                .await?
                .iter()
                .map(|c| c.rows_read)
                .max()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0);
        let manager = if checkpointing && !cleaned {
            Some(
                self.open_checkpoint(&store, &plan, ledger_chunk_size)
                    .await?,
            )
        } else {
            None
        };
        let checkpoint_dir = manager.as_ref().map(|_| store.describe_sync(&plan.sync_id));
        self.progress.source_size(plan.fingerprint.size_bytes);
        let plan = if cleaned {
            Plan {
                source: None,
                ..plan
            }
        } else {
            plan
        };
        let run = process::Run {
            pipeline: self,
            plan: &plan,
            sync_ref,
            store,
            manager: manager.map(|m| Arc::new(Mutex::new(m))),
            client,
            started,
            checkpoint_dir,
            stopping_errors: None,
            ledger_chunk_size,
            loader: process::run_loader(self, &plan.sync_id),
        };
        let outcome = if cleaned {
            run.finished().await
        } else {
            run.execute().await
        };
        drop(lock);
        outcome
    }

    /// Opens the sync's checkpoint, creating it when there is none, and refuses it when the
    /// source has changed.
    async fn open_checkpoint(
        &self,
        store: &Store,
        plan: &Plan,
        ledger_chunk_size: Option<usize>,
    ) -> Result<CheckpointManager, PipelineError> {
        let options = crate::checkpoint::CheckpointOptions {
            compression: self.settings.compression,
            ..crate::checkpoint::CheckpointOptions::default()
        };
        let mut manager =
            CheckpointManager::new(store.clone(), plan.sync_id.clone()).with_options(options);
        if manager.checkpoint_exists().await? {
            // The chunks were cut from the source as it was: a source that has changed since
            // is refused, whatever the phase (a resume never mixes two versions of a file).
            if let (Some(m), Some(source)) = (manager.manifest(), &plan.source) {
                same_source(m, source)
                    .await?
                    .map_err(CheckpointError::from)?;
            }
        } else {
            manager
                .create_checkpoint(NewCheckpoint {
                    source_file: plan.file_name.clone(),
                    source_path: plan.source_path.clone(),
                    fingerprint: plan.fingerprint.clone(),
                    chunk_size: ledger_chunk_size.unwrap_or(self.settings.chunk_size) as u64,
                })
                .await?;
        }
        Ok(manager)
    }
}

/// What a run works on.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) sync_id: SyncId,
    /// The source, when it can be read.
    pub(crate) source: Option<SourceRef>,
    pub(crate) file_name: String,
    pub(crate) source_path: String,
    pub(crate) fingerprint: SourceFingerprint,
}

/// How a chunk's processing went wrong enough to stop the sync.
#[derive(Debug)]
pub(crate) enum Abort {
    /// The input is at fault: BAD_INPUT.
    BadInput(String),
    /// Anything else: FAILED.
    Failed(String),
    /// A stop was asked for ([`Pipeline::with_stop`]): not a status, the sync goes on later.
    Stopped,
}

impl From<LoadError> for Abort {
    fn from(e: LoadError) -> Self {
        Self::Failed(e.to_string())
    }
}

impl From<CheckpointError> for Abort {
    fn from(e: CheckpointError) -> Self {
        Self::Failed(e.to_string())
    }
}

impl From<StoreError> for Abort {
    fn from(e: StoreError) -> Self {
        Self::Failed(e.to_string())
    }
}

/// A new sync id: the current UTC time and eight random hex digits.
pub(crate) fn new_sync_id() -> SyncId {
    use std::hash::{BuildHasher, Hasher};
    // `RandomState` is seeded from the OS per process: eight hex digits that two processes
    // started in the same second do not share.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    SyncId::new(chrono::Utc::now(), h.finish() as u32)
}

/// Whether `source` holds the bytes the manifest was made from. Same size but another
/// modification time or ETag: the bytes decide when the manifest knows their SHA-256 (a
/// copied, touched or re-uploaded file is still the same source).
pub(crate) async fn same_source(
    m: &crate::checkpoint::Manifest,
    source: &SourceRef,
) -> Result<Result<(), crate::checkpoint::SourceMismatch>, PipelineError> {
    let found = source.fingerprint();
    let Err(mismatch) = verify_source(m, &found) else {
        return Ok(Ok(()));
    };
    let recorded = &m.source_fingerprint;
    if recorded.size_bytes == found.size_bytes && recorded.sha256.is_some() {
        let source = source.clone();
        let sha256 = tokio::task::spawn_blocking(move || source.sha256())
            .await
            .map_err(|e| PipelineError::Internal(format!("hashing the source: {e}")))??;
        if recorded.sha256.as_deref() == Some(sha256.as_str()) {
            return Ok(Ok(()));
        }
    }
    Ok(Err(mismatch))
}

fn base_name(path: &str) -> String {
    path.rsplit(['/', '\\']).next().unwrap_or(path).to_owned()
}

/// The chunks the ledger records as committed, by id.
pub(crate) type Ledger = HashMap<ChunkId, crate::status::LedgerChunk>;
