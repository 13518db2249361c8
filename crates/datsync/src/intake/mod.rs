//! Intake: what `datsync watch` (and the Azure Functions handler) does with the sources it
//! finds — each version of each source loaded exactly once, retried with the same sync id
//! and a growing pause, and parked as poison when the attempts are used up.
//!
//! ```text
//! listing (list_local, list_blobs) ─Found─> Intake::process ─> receipt (datsync_receipts)
//!                                                         └──> Pipeline::run / resume
//! ```
//!
//! A **receipt** is one row of `datsync_receipts` per (source, version): `source` is the
//! canonical name (an absolute path or `az://container/path`), `version` a blob's ETag
//! or a local file's size and modification time. It points at the sync that loads that
//! version and keeps its retry state. Receipts live in PostgreSQL, so two watchers and the
//! HTTP handler agree: whatever runs a sync is decided again and done under a session
//! advisory lock of the (source, version) (`datsync intake <source>\n<version>`), held while
//! the sync runs; a receipt with nothing to do (finished, parked, not due) is read on a
//! shared connection without it.
//!
//! What [`Intake::process`] does with a [`Found`] in [`Mode::Automatic`]:
//!
//! | receipt | action |
//! |---|---|
//! | none | claimed (`INSERT … ON CONFLICT DO NOTHING`) with a new sync id, attempt 1 counted, [`Pipeline::run`] → [`Action::Started`] |
//! | finished (see [`RunSummary::is_final`]) | nothing → [`Action::SkippedDone`] |
//! | parked | nothing, ever → [`Action::SkippedParked`] |
//! | unfinished, `now() < next_attempt_at` | nothing → [`Action::WaitingBackoff`] |
//! | unfinished, due, attempts < max | attempt counted, [`Pipeline::resume`] of the **same** sync id → [`Action::Resumed`] |
//! | unfinished, due, attempts ≥ max | parked, alert → [`Action::Parked`] |
//! | locked by another process | nothing → [`Action::SkippedBusy`] |
//! | due to run, but the source is no longer this version | finished, not run → [`Action::Superseded`] |
//!
//! After an attempt, the receipt gets the status, the error and `next_attempt_at = now() +`
//! [`RetryPolicy::delay`]; when the sync is not finished and the attempts are used up, it is
//! parked (`poisoned_at`) and an alert is sent. An attempt is counted when it starts, so a
//! process killed during it has used it; a run stopped on request (SIGTERM, `interrupted`)
//! or refused because another process holds the sync ([`PipelineError::Busy`]) gives its
//! attempt back and is due again at once. An error that stops a sync before it has a status
//! (the database is down, …) is a failed attempt: the pause applies.
//!
//! A new version of a source (new ETag, new size or modification time) is another receipt,
//! hence a new sync; the old receipt stays as it was.
//!
//! [`Mode::Triggered`] (the Functions host's blob trigger, the small-files alternative) is
//! [`Mode::Automatic`] without the pause: the host decides when it retries, each retry
//! continuing the same sync and counting as an attempt.
//!
//! [`Mode::Queued`] (a Storage queue message, delivered by the Functions host for the
//! `BlobCreated` event of the source) counts attempts **as the host does**: the message's
//! dequeue count `d` (1 on the first delivery) is the host's count, so an attempt sets the
//! receipt's count to `max(attempts + 1, d)` when it starts — a delivery the host made but
//! that never reached us (the process was killed first) is counted all the same. A run
//! stopped on request counts too (the host counts it). Another process on the source or its
//! sync is not an attempt of ours ([`Action::SkippedBusy`], nothing written). When the count
//! reaches the maximum (the host's `maxDequeueCount`) and the sync is still unfinished, the
//! receipt is **parked here, with its alert**, before the host would move the message to its
//! poison queue (the handler then answers 200, so the host deletes the message instead).
//! There is no pause of ours (the host waits its `visibilityTimeout` between deliveries),
//! but `next_attempt_at` is set past the host's next delivery ([`QUEUE_LEASE`],
//! [`QUEUE_REDELIVERY_SLACK`]), so a sweep ([`Mode::Automatic`] over a listing) only
//! resumes a receipt the queue has stopped retrying (a lost or poisoned message).
//!
//! [`Intake::give_up`] is what the handler does with a message the host moved to the poison
//! queue anyway (the last delivery was killed): an unfinished receipt is parked with its
//! alert.
//!
//! **Submitting large sources** ([`Intake::submit_above`], `--submit-above`,
//! `DATSYNC_SUBMIT_ABOVE`): a source larger than the threshold is not loaded in this process
//! but [submitted](Pipeline::submit) to the work queue — converted into chunks in the shared
//! checkpoint storage, each chunk queued for `datsync worker` processes (a KEDA `ScaledJob`, a
//! Container Apps job) — in the same attempt, under the same sync id ([`Action::Submitted`]).
//! Once the conversion is complete the receipt is finished: the workers load, retry and
//! finalize the sync (its status is `sync_metadata`'s), so the intake neither retries nor
//! parks it. An attempt that dies before the conversion is complete is continued by the next
//! one (`submit` again, the same sync). Smaller sources are loaded here as before.
//!
//! [`Mode::Manual`] ([`Intake::process_manual`], the handler's manual re-run) ignores the
//! pause and parking: an unfinished sync is resumed (same sync id, parked or not, with a
//! fresh budget of attempts), a finished one is loaded again by a **new** sync that the
//! receipt then points at (attempts start again at 1).

mod list;
mod poison;
mod process;
mod receipts;
mod state;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

pub use list::{
    SOURCE_SUFFIXES, TEMP_SUFFIXES, found_blob, is_source_name, list, list_blobs, list_local,
};
pub use process::{Begun, Ready};
pub use state::SyncState;

use crate::model::{SyncId, SyncStatus};
use crate::pg::PgError;
use crate::pipeline::{Pipeline, PipelineBuilder, PipelineError, RunSummary, Submitted};

/// Attempts of a sync before it is parked as poison.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// The pause after the first attempt; it doubles after each one.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(60);
/// The longest pause between two attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long the Functions host keeps a queue message invisible while its invocation runs
/// (renewed until it ends): a killed process's message is delivered again at most this long
/// after it was last renewed.
pub const QUEUE_LEASE: Duration = Duration::from_secs(10 * 60);
/// Time allowed beyond the host's `visibilityTimeout` for its next poll of the queue (its
/// `maxPollingInterval`, one minute by default) before a sweep may take a receipt over.
pub const QUEUE_REDELIVERY_SLACK: Duration = Duration::from_secs(2 * 60);

/// One object or file seen by a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// The canonical source name: an absolute path (later `az://container/path`).
    pub source: String,
    /// The object's or file's name, for people.
    pub name: String,
    /// What identifies these bytes: a blob's ETag, a local file's `<size>-<mtime_ns>`.
    pub version: String,
    /// Size in bytes.
    pub size: u64,
}

/// An error that keeps intake from deciding about a source (a failed sync is not one: it is
/// recorded in the receipt and reported in [`Processed`]).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The watched place cannot be listed.
    #[error("cannot list {place}: {error}; check that it exists and can be read")]
    List {
        /// The directory (or, later, container prefix).
        place: String,
        /// What failed.
        #[source]
        error: std::io::Error,
    },
    /// The receipts cannot be read or written (the database is down, …).
    #[error(transparent)]
    Pg(#[from] PgError),
    /// A receipt holds what datsync never writes.
    #[error(
        "the receipt of {source_name} (version {version}) is corrupt: {message}; delete that \
         row of datsync_receipts to load the source again"
    )]
    Corrupt {
        /// The source.
        source_name: String,
        /// Its version.
        version: String,
        /// What is wrong.
        message: String,
    },
    /// The source named does not exist (a blob deleted since, a wrong name).
    #[error("{source_name}: no such blob or file")]
    Missing {
        /// The source.
        source_name: String,
    },
    /// An internal task died (a bug); reported rather than panicking.
    #[error("internal error: {0}")]
    Internal(String),
}

impl IntakeError {
    /// Whether the source named does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Missing { .. })
    }
}

/// How many times a sync is tried and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a sync is parked as poison (at least 1).
    pub max_attempts: u32,
    /// The pause after the first attempt; doubled after each further one.
    pub backoff: Duration,
    /// The longest pause.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }
}

impl RetryPolicy {
    /// The pause after attempt `attempts` (1-based): `backoff × 2^(attempts-1)`, at most
    /// `max_backoff`.
    pub fn delay(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// Who asks: a watch cycle (or a sweep), the Functions host's blob trigger, the host's
/// delivery of a queue message, or a person (the handler's manual re-run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Receipts, pauses and parking apply.
    Automatic,
    /// Receipts and parking apply, pauses do not: the Functions host paces its own retries
    /// of a blob trigger (each one continues the same sync, and counts as an attempt).
    Triggered,
    /// A queue message's delivery by the Functions host: attempts counted as the host counts
    /// them, parked at the host's limit before the host would poison the message (see the
    /// module docs).
    Queued {
        /// The message's dequeue count (1 on its first delivery).
        delivery: u32,
    },
    /// Pauses and parking do not; a finished sync is loaded again (see the module docs).
    Manual,
}

/// What [`Intake::process`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A new sync was run.
    Started,
    /// The receipt's sync was continued.
    Resumed,
    /// Nothing to do: the sync is finished.
    SkippedDone,
    /// Another process holds this source or its sync; tried again next time.
    SkippedBusy,
    /// The sync is unfinished, and its next attempt is not due yet.
    WaitingBackoff,
    /// The attempts are used up: parked as poison now, and an alert sent.
    Parked,
    /// Parked earlier; never retried automatically.
    SkippedParked,
    /// The source is larger than the submit threshold: it was converted into chunks for the
    /// work queue, and `datsync worker` processes load it (see the module docs).
    Submitted,
    /// The source was replaced (or deleted) before this version could be loaded: another
    /// version is another receipt; nothing is left to do for this one.
    Superseded,
}

/// The outcome for one [`Found`]: the JSON line of `datsync watch --json` and the handler's
/// answer.
#[derive(Debug, Clone, Serialize)]
pub struct Processed {
    /// The source.
    pub source: String,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What was done.
    pub action: Action,
    /// The sync the receipt points at (none when the receipt could not be read).
    pub sync_id: Option<SyncId>,
    /// The receipt's status: IN_PROGRESS until a run of its sync ends with another.
    pub status: Option<SyncStatus>,
    /// Attempts counted.
    pub attempts: u32,
    /// Nothing is left to do for this version (see [`RunSummary::is_final`]).
    pub finished: bool,
    /// This call's run was stopped on request; the next cycle continues it.
    pub interrupted: bool,
    /// When an unfinished sync is due again (UTC, RFC 3339).
    pub next_attempt_at: Option<String>,
    /// The last error.
    pub error: Option<String>,
    /// The run's summary, when this call ran the sync.
    pub summary: Option<RunSummary>,
    /// What the submit did, when this call submitted the sync to the work queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submitted: Option<Box<Submitted>>,
}

impl Processed {
    fn new(found: &Found, action: Action) -> Self {
        Self {
            source: found.source.clone(),
            name: found.name.clone(),
            version: found.version.clone(),
            action,
            sync_id: None,
            status: None,
            attempts: 0,
            finished: false,
            interrupted: false,
            next_attempt_at: None,
            error: None,
            summary: None,
            submitted: None,
        }
    }

    /// The exit code this outcome calls for, as `datsync run`'s: 1 when it was parked now,
    /// or its run ended FAILED or BAD_INPUT or with an error; 2 when its run ended
    /// PARTIAL_SUCCESS; 0 otherwise (nothing ran, SUCCESS, or stopped on request).
    pub fn exit_code(&self) -> u8 {
        match self.action {
            Action::Parked => 1,
            Action::Started | Action::Resumed if self.interrupted => 0,
            Action::Started | Action::Resumed => match &self.summary {
                Some(s) => s.exit_code(),
                None => u8::from(self.error.is_some()),
            },
            Action::SkippedDone
            | Action::SkippedBusy
            | Action::WaitingBackoff
            | Action::SkippedParked
            | Action::Superseded
            | Action::Submitted => 0,
        }
    }
}

/// Runs syncs for what listings find, keeping receipts (see the module docs).
pub struct Intake {
    pipeline: Pipeline,
    policy: RetryPolicy,
    /// Whether this intake has run the migrations (once per intake).
    migrated: AtomicBool,
    /// The connection receipts are first read on (see `Intake::nothing_to_do`).
    shared: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// Sources larger than this many bytes are submitted to the work queue, not loaded
    /// here (see the module docs); `None`: every source is loaded here.
    submit_above: Option<u64>,
}

/// What an attempt's run came to.
pub(crate) enum Ran {
    /// The sync ran in this process (to its end, or stopped): its summary.
    Loaded(RunSummary),
    /// The source was submitted to the work queue; the workers load it.
    Submitted(Submitted),
}

impl Intake {
    /// An intake that runs syncs with the pipeline `pipeline` builds (its alerter also sends
    /// the poison alerts, its stop signal stops the run in flight) and retries them by
    /// `policy`.
    pub fn new(pipeline: PipelineBuilder, policy: RetryPolicy) -> Self {
        Self {
            // An attempt that a retry can change sends no alert; parking sends one.
            pipeline: pipeline.alert_retryable(false).build(),
            policy: RetryPolicy {
                max_attempts: policy.max_attempts.max(1),
                ..policy
            },
            migrated: AtomicBool::new(false),
            shared: tokio::sync::Mutex::new(None),
            submit_above: None,
        }
    }

    /// Sources larger than `bytes` are submitted to the work queue instead of loaded here
    /// (`None`, the default: none is). See the module docs.
    #[must_use]
    pub fn submit_above(mut self, bytes: Option<u64>) -> Self {
        self.submit_above = bytes;
        self
    }

    /// Whether `found` goes to the work queue.
    fn submits(&self, found: &Found) -> bool {
        self.submit_above.is_some_and(|limit| found.size > limit)
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// A manual re-run of `found` ([`Mode::Manual`]): resumes its unfinished sync ignoring
    /// the pause (and parking), else loads it again with a new sync.
    pub async fn process_manual(&self, found: &Found) -> Result<Processed, IntakeError> {
        self.process(found, Mode::Manual).await
    }

    /// The one place a new sync of a source (a path or an `az://` URL) is run — or, above
    /// the submit threshold, submitted.
    async fn start_sync(&self, found: &Found, sync_id: &SyncId) -> Result<Ran, PipelineError> {
        if self.submits(found) {
            return self.submit_sync(found, sync_id).await;
        }
        self.pipeline
            .run(&found.source, Some(sync_id.clone()), false)
            .await
            .map(Ran::Loaded)
    }

    /// The one place a receipt's sync is continued. A sync that is unknown everywhere was
    /// claimed by a process that died before it registered the sync: it starts now, with the
    /// same id. Above the submit threshold the submit is continued instead (its conversion
    /// finished, its chunks queued).
    async fn resume_sync(&self, found: &Found, sync_id: &SyncId) -> Result<Ran, PipelineError> {
        if self.submits(found) {
            return self.submit_sync(found, sync_id).await;
        }
        match self.pipeline.resume(sync_id.clone()).await {
            Err(PipelineError::UnknownSync(_)) => self.start_sync(found, sync_id).await,
            other => other.map(Ran::Loaded),
        }
    }

    /// Submits (or continues submitting) the source as `sync_id`: a submit that ended the
    /// sync at once (already loaded, bad input, stopped) reports as a run.
    async fn submit_sync(&self, found: &Found, sync_id: &SyncId) -> Result<Ran, PipelineError> {
        tracing::info!(source = %found.source, %sync_id, size = found.size, limit = ?self.submit_above, "above the submit threshold: submitting to the work queue");
        let mut submitted = self
            .pipeline
            .submit(&found.source, Some(sync_id.clone()), false)
            .await?;
        Ok(match submitted.ended.take() {
            Some(summary) => Ran::Loaded(summary),
            None => Ran::Submitted(submitted),
        })
    }
}

#[cfg(test)]
mod tests;
