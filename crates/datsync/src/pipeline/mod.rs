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
//! With `--jobs N` the processor is N loaders on N connections (each with a second one for
//! the derived tables), each taking the next chunk (`jobs.rs`).
//!
//! Phase 1 and phase 2 overlap: a chunk is loaded as soon as its Parquet file is recorded. On
//! a resume, chunks already converted are not converted again (the reader decodes past them),
//! and chunks in the ledger are not loaded again: the ledger wins over the manifest. The final
//! counts and the validation error sample are read from the ledger, so they are the same
//! whether or not the sync was interrupted.
//!
//! One file per step of a run, in the order a run takes them:
//!
//! | file | what it does |
//! |---|---|
//! | `plan.rs` | what a run works on: the source and the sync (new, the source's unfinished one, or the one resumed) |
//! | `open.rs` | the database, the writer lock, the sync's registration and its checkpoint |
//! | `cut.rs` | how the sync's chunks are cut: by the settings, or as recorded |
//! | `reconcile.rs` | manifest against ledger: committed chunks marked completed, the chunks left to load |
//! | `run.rs` | the two phases of one run |
//! | `jobs.rs` | the run's loaders: one chunk at a time each, on N connections with `--jobs N` |
//! | `convert.rs` | phase 1: the reader thread and the converter task |
//! | `recorded.rs` | chunks already converted: read back, regenerated from the source, the conversion finished by hashing |
//! | `chunk.rs` | one chunk from validation to commit, and what came of it ([`ChunkResult`](chunk::ChunkResult)) |
//! | `retry.rs` | a chunk's load retried on transient database errors |
//! | `session.rs` | the run's database session: connecting through an outage, the writer lock taken again on a new connection |
//! | `queue.rs` | the work queue: `submit` queues the chunks it saves, a `worker` claims one in the transaction that loads it, and finishes a sync once its chunks are in |
//! | `finish.rs` | the final status, `sync_metadata`, cleanup, the hooks, the alert, retention |
//! | `halt.rs` | why a sync stops early, typed (bad input, failure, stop) |
//! | `progress.rs` | the [`Progress`] a caller watches |

mod chunk;
mod convert;
mod cut;
mod finish;
mod halt;
mod header;
mod jobs;
mod open;
mod plan;
mod progress;
mod queue;
mod reconcile;
mod recorded;
mod retry;
mod run;
mod session;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::Alerter;
use crate::checkpoint::CheckpointError;
use crate::config::Settings;
use crate::hooks::Hooks;
use crate::model::{SyncCounts, SyncId, SyncStatus};
use crate::pg::{ErrorClass, PgError, PgSettings};
use crate::profile::Profile;
use crate::source::{SourceError, SourceRef};
use crate::status::{ReadError, StatusError};
use crate::store::StoreError;
use crate::telemetry::{Metrics, Telemetry};

pub(crate) use plan::new_sync_id;
pub use progress::{ChunkDone, NoProgress, Progress};
pub use queue::{QueueStatus, Submitted, WorkerOptions, WorkerReport, pending_work, scale_query};
use retry::LoadRetries;

/// Attempts of a chunk's load in one run when the database fails transiently.
pub const DEFAULT_LOAD_ATTEMPTS: u32 = 4;
/// The first pause between two attempts; it doubles each time.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// How long a run waits out a database outage (the server down, restarting, in shutdown,
/// out of disk or connections) before the sync ends FAILED with its checkpoint kept.
pub const DEFAULT_DB_RETRY_FOR: Duration = Duration::from_secs(300);
/// The environment variable that sets the outage budget (`90s`, `5m`, `1h`; a bare number is
/// seconds).
pub const DB_RETRY_FOR_ENV: &str = "DATSYNC_DB_RETRY_FOR";

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
    Read(#[from] ReadError),
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
    /// Another process is running `run` on the same source (its sync, when it could be
    /// named): this run started no sync of its own.
    #[error(
        "{source_path} is being loaded by another datsync process{}; this run started no sync \
         of its own: wait for that one to finish (`datsync status`), or stop it and run again",
        holder.as_ref().map(|s| format!(" as sync {s}")).unwrap_or_default()
    )]
    SourceBusy {
        /// The source.
        source_path: String,
        /// The sync that holds it, when `sync_metadata` names one.
        holder: Option<SyncId>,
    },
    /// The connection that held the sync's writer lock was lost, and by the time a new one
    /// was made another process held the lock: this process stopped without writing more.
    #[error(
        "sync {0}: the connection that held its writer lock was lost, and another datsync \
         process holds the lock now; this process stopped without writing anything more (the \
         other process continues the sync; `datsync status {0}` shows it)"
    )]
    LockLost(SyncId),
    /// The checkpoint is damaged (`checkpoint/audit.rs`) and repairing it needs the source,
    /// which cannot be read.
    #[error(
        "the checkpoint of sync {sync_id} is damaged: {damage}. It is repaired by cutting those \
         chunks again from the source, which cannot be read now: make {source_path} readable \
         again (the same bytes) and run `datsync resume {sync_id}`, or load the source anew \
         with `datsync run {source_path} --fresh`"
    )]
    DamagedCheckpoint {
        /// The sync.
        sync_id: SyncId,
        /// What is damaged ([`crate::checkpoint::Damage`]).
        damage: String,
        /// The source as recorded.
        source_path: String,
    },
    /// `resume` of a sync that exists nowhere.
    #[error(
        "sync {0} is unknown: it has no checkpoint and no sync_metadata row; check the id \
         (`datsync list`) and --checkpoint-dir"
    )]
    UnknownSync(SyncId),
    /// `submit` or `worker` cannot share the sync's chunks with other processes.
    #[error("the work queue needs chunks that every worker can read: {reason}")]
    NotShared {
        /// Why not.
        reason: String,
    },
    /// An internal task died (a bug); reported rather than panicking.
    #[error("internal error: {task}: {error}")]
    Internal {
        /// What the task was doing.
        task: &'static str,
        /// How it ended.
        error: tokio::task::JoinError,
    },
}

impl PipelineError {
    /// Whether trying again later can succeed: the class of the database error behind it;
    /// a busy sync is transient (its writer finishes); anything else is fatal.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Pg(e) | Self::Read(ReadError::Query(e)) => e.class(),
            Self::Status(e) => e.class(),
            Self::Busy(_) | Self::SourceBusy { .. } | Self::LockLost(_) => ErrorClass::Transient,
            _ => ErrorClass::Fatal,
        }
    }

    /// Whether the database is away or short of resources (see `session.rs`).
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Pg(e)
            | Self::Read(ReadError::Query(e))
            | Self::Status(StatusError::Query { source: e, .. }) => e.is_outage(),
            _ => false,
        }
    }

    /// The sync the error is about, when there is one: the sync held by another process,
    /// or whose lock was lost.
    pub fn sync_id(&self) -> Option<&SyncId> {
        match self {
            Self::Busy(id)
            | Self::LockLost(id)
            | Self::UnknownSync(id)
            | Self::DamagedCheckpoint { sync_id: id, .. } => Some(id),
            Self::SourceBusy { holder, .. } => holder.as_ref(),
            _ => None,
        }
    }
}

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
    /// Where the rejected rows and value warnings are, when there are any
    /// (`datsync rejects SYNC_ID` prints them).
    pub rejects_dir: Option<String>,
    /// Header columns of the source that the profile does not know (canonical names, file
    /// order): not loaded; see the profile's `unknown_columns` setting.
    #[serde(default)]
    pub unknown_columns: Vec<String>,
    /// Whether this run continued an earlier one.
    pub resumed: bool,
    /// Why the sync failed, when it did.
    pub error: Option<String>,
    /// Whether trying `error` again can help (the class of the stage's error), when the
    /// sync stopped on one; not part of the `--json` summary.
    #[serde(skip)]
    pub error_class: Option<ErrorClass>,
    /// The run was stopped (SIGTERM, see [`PipelineBuilder::stop`]) before every chunk was
    /// loaded: the chunks committed stay committed, the checkpoint is kept, the status stays
    /// IN_PROGRESS and `resume` continues the sync. Not a failure of the sync.
    pub interrupted: bool,
    /// Every row the sync loaded was older than the row already stored for its key (a newer
    /// version, or an equal one from a later sync): the file changed nothing in the table —
    /// it arrived late, or was loaded again.
    #[serde(default)]
    pub all_older: bool,
    /// `run SOURCE` found the source already loaded by a sync that ended with a final
    /// status (same path, same size and modification time or ETag): nothing was loaded and
    /// no sync was started; the summary is that sync's (`--fresh` loads the source again).
    #[serde(default)]
    pub already_loaded: bool,
    /// Upserts of derived tables (`[[derived]]`) that failed and were rolled back, in the
    /// sync's committed chunks (those chunks are loaded; see `load/derived.rs`).
    #[serde(default)]
    pub derived_failed: u64,
    /// Post-sync hooks of this run that failed after their retries (logged; the status is
    /// unchanged; see [`crate::hooks`]).
    #[serde(default)]
    pub hooks_failed: u64,
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
        if self.already_loaded {
            return true;
        }
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

    /// The process exit code: 0 SUCCESS, 2 PARTIAL_SUCCESS, 1 FAILED or BAD_INPUT; 0 when
    /// the source was already loaded (nothing was done, whatever that sync's status).
    pub fn exit_code(&self) -> u8 {
        if self.already_loaded {
            return 0;
        }
        match self.status {
            SyncStatus::Success => 0,
            SyncStatus::PartialSuccess => 2,
            SyncStatus::Failed | SyncStatus::BadInput | SyncStatus::InProgress => 1,
        }
    }
}

/// Everything a run needs, built once by a [`PipelineBuilder`].
pub struct Pipeline {
    /// The profile, `DB_SCHEMA`/`DB_TABLE` overrides applied.
    profile: Profile,
    settings: Settings,
    pg: PgSettings,
    /// Alert channels (`None`: no alerts).
    alerter: Option<Alerter>,
    /// Post-sync hooks (`None`: none).
    hooks: Option<Hooks>,
    /// Events and kill points.
    telemetry: Arc<Telemetry>,
    progress: Arc<dyn Progress>,
    retries: LoadRetries,
    /// Once it reads `true`, the processor finishes the chunk in flight and loads no further
    /// chunk (see [`PipelineBuilder::stop`]).
    stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Whether a run that ends in a state a retry can change (FAILED, failed chunks) sends
    /// its alert: `true` for `run`/`resume`; the intake turns it off, retries, and alerts
    /// once when it parks the source.
    alert_retryable: bool,
}

impl Pipeline {
    /// A builder: default retries, no alerts, no progress display, no stop signal.
    pub fn builder(profile: Profile, settings: Settings, pg: PgSettings) -> PipelineBuilder {
        PipelineBuilder::new(profile, settings, pg)
    }

    /// The profile, with the `DB_SCHEMA` / `DB_TABLE` overrides of the settings.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The pipeline settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The database settings.
    pub fn pg(&self) -> &PgSettings {
        &self.pg
    }

    /// The alert channels, when any are configured.
    pub(crate) fn alerter(&self) -> Option<&Alerter> {
        self.alerter.as_ref()
    }

    /// The metrics this pipeline counts into.
    pub fn metrics(&self) -> &Metrics {
        self.telemetry.metrics()
    }

    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
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
        self.run_source_as(source, sync_id, fresh, queue::Mode::Load)
            .await
    }

    /// [`Self::run_source`], loading the chunks (`run`) or queueing them (`submit`).
    async fn run_source_as(
        &self,
        source: SourceRef,
        sync_id: Option<SyncId>,
        fresh: bool,
        mode: queue::Mode,
    ) -> Result<RunSummary, PipelineError> {
        let store = self.store().await?;
        let (client, stored) = self.connect_migrated().await?;
        // The source's lock, before the sync is chosen: two runs of one source started at
        // the same instant make one sync (see `pg/lock.rs`).
        let source_key =
            crate::pg::source_key(&self.profile.schema, &self.profile.table, &source.name());
        self.lock_source(&client, &source_key, &source.name())
            .await?;
        // Decided under the source's lock: two runs of one source cannot both decide to load it.
        let mut unfinished = None;
        if sync_id.is_none() && !fresh {
            match self.earlier(&client, &source).await? {
                plan::Earlier::Loaded(summary) => return Ok(*summary),
                plan::Earlier::Unfinished(id) => unfinished = Some(id),
                plan::Earlier::None => {}
            }
        }
        let plan = self
            .plan_run(&store, source, sync_id, fresh, unfinished)
            .await?;
        // Boxed: the sync's state machine is large, and callers keep theirs small.
        Box::pin(self.sync(plan, store, (client, stored), Some(source_key), mode)).await
    }

    /// Continues a sync: finishes its conversion if it was cut short, loads every chunk the
    /// ledger does not have, and decides its final status again.
    pub async fn resume(&self, sync_id: SyncId) -> Result<RunSummary, PipelineError> {
        let store = self.store().await?;
        let plan = self.plan_resume(&store, sync_id).await?;
        let session = self.connect_migrated().await?;
        // Boxed: the sync's state machine is large, and callers keep theirs small.
        Box::pin(self.sync(plan, store, session, None, queue::Mode::Load)).await
    }

    /// `resume SYNC_ID --rebuild-checkpoint`: discards the sync's checkpoint (an unreadable
    /// or missing manifest cannot be repaired in place) and resumes it as a sync without
    /// one: the chunks are cut again from the source, which must be the one the sync started
    /// from (the fingerprint in `sync_metadata`), and the ledger decides which are
    /// committed, so none is loaded twice. Done under the sync's writer lock, so a running
    /// process never loses its checkpoint.
    pub async fn rebuild_checkpoint(&self, sync_id: SyncId) -> Result<RunSummary, PipelineError> {
        let store = self.store().await?;
        let session = self.connect_migrated().await?;
        // Taken again by `sync` on this same session (the lock is reentrant there).
        if !crate::pg::try_lock_sync(&session.0, &sync_id).await? {
            return Err(PipelineError::Busy(sync_id));
        }
        let stored = crate::status::stored_sync(&session.0, &self.profile.schema, &sync_id).await?;
        if stored.and_then(|s| s.file_path).is_none() {
            // Its source is named nowhere else: the checkpoint is kept.
            return Err(PipelineError::UnknownSync(sync_id));
        }
        tracing::warn!(%sync_id, checkpoint = %store.describe_sync(&sync_id),
            "discarding the checkpoint; rebuilding it from the source and the database");
        store.delete_sync(&sync_id).await?;
        let plan = self.plan_resume(&store, sync_id).await?;
        Box::pin(self.sync(plan, store, session, None, queue::Mode::Load)).await
    }
}

/// Builds a [`Pipeline`]; every setting has a default but the profile, the pipeline
/// settings and the database settings.
pub struct PipelineBuilder {
    pipeline: Pipeline,
    /// The environment that arms the kill points (see [`Self::env`]).
    env: HashMap<String, String>,
    /// The metrics the pipeline counts into.
    metrics: Arc<Metrics>,
}

impl PipelineBuilder {
    fn new(mut profile: Profile, settings: Settings, pg: PgSettings) -> Self {
        crate::config::apply_overrides(&mut profile, &settings);
        Self {
            pipeline: Pipeline {
                profile,
                settings,
                pg,
                alerter: None,
                hooks: None,
                telemetry: Arc::new(Telemetry::default()),
                progress: Arc::new(NoProgress),
                retries: LoadRetries {
                    attempts: DEFAULT_LOAD_ATTEMPTS,
                    backoff: DEFAULT_RETRY_BACKOFF,
                    retry_for: DEFAULT_DB_RETRY_FOR,
                },
                stop: None,
                alert_retryable: true,
            },
            env: HashMap::new(),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Sends alerts through `alerter` when a sync ends FAILED, BAD_INPUT or PARTIAL_SUCCESS.
    #[must_use]
    pub fn alerter(mut self, alerter: Alerter) -> Self {
        self.pipeline.alerter = Some(alerter);
        self
    }

    /// Calls `hooks` after each sync that reaches a final status, by that status.
    #[must_use]
    pub fn hooks(mut self, hooks: Hooks) -> Self {
        self.pipeline.hooks = Some(hooks);
        self
    }

    /// Reports progress to `progress`.
    #[must_use]
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.pipeline.progress = progress;
        self
    }

    /// The first pause between two load attempts of a chunk after a transient database
    /// error (it doubles each attempt; default [`DEFAULT_RETRY_BACKOFF`]).
    #[must_use]
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.pipeline.retries.backoff = backoff;
        self
    }

    /// How long a database outage is waited out, at the start of a run and during it
    /// (default [`DEFAULT_DB_RETRY_FOR`], `DATSYNC_DB_RETRY_FOR`).
    #[must_use]
    pub fn db_retry_for(mut self, retry_for: Duration) -> Self {
        self.pipeline.retries.retry_for = retry_for;
        self
    }

    /// Load attempts of a chunk in one run (at least one; default
    /// [`DEFAULT_LOAD_ATTEMPTS`]).
    #[must_use]
    pub fn load_attempts(mut self, attempts: u32) -> Self {
        self.pipeline.retries.attempts = attempts.max(1);
        self
    }

    /// Stops runs gracefully when `stop` turns `true` (the CLI sets it on SIGTERM): the chunk
    /// in flight finishes and commits, no further chunk is loaded, the checkpoint is kept and
    /// the run returns a summary with `interrupted` set and status IN_PROGRESS.
    #[must_use]
    pub fn stop(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.pipeline.stop = Some(stop);
        self
    }

    /// Arms the kill points of `env` (`DATSYNC_KILL_AT`, `DATSYNC_TERM_AT`, with the
    /// `crash-injection` feature; see the crate's features).
    #[must_use]
    pub fn env(mut self, env: &HashMap<String, String>) -> Self {
        self.env.clone_from(env);
        self
    }

    /// Counts into `metrics` (the process's, shared by its pipelines; default: metrics of
    /// this pipeline alone).
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Whether a run that ends in a state a retry can change sends its alert (see
    /// [`crate::intake`], which turns it off and alerts when it parks a source).
    #[must_use]
    pub(crate) fn alert_retryable(mut self, alert: bool) -> Self {
        self.pipeline.alert_retryable = alert;
        self
    }

    /// The pipeline.
    pub fn build(self) -> Pipeline {
        let mut pipeline = self.pipeline;
        if let Some(hooks) = &pipeline.hooks {
            for name in hooks.names() {
                self.metrics.hook_configured(name);
            }
        }
        pipeline.telemetry = Arc::new(Telemetry::from_env(&self.env).with_metrics(self.metrics));
        if let Some(stop) = &pipeline.stop {
            pipeline.telemetry.observe_stop(stop.clone());
        }
        pipeline
    }
}
