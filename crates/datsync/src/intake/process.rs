//! [`Intake::process`]: the decisions of the module docs' table, under the intake lock, in
//! two halves — [`Intake::begin`] decides (and counts the attempt), [`Ready::run`] runs it —
//! so a caller can learn the sync id before the sync runs (the handler's manual re-run
//! answers at once).

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_postgres::Client;

use super::receipts::{self, Outcome, Receipt};
use super::{Action, Found, Intake, IntakeError, Mode, Processed, Ran};
use crate::model::{SyncId, SyncStatus};
use crate::pipeline::PipelineError;

/// One attempt about to run.
struct Attempt {
    sync_id: SyncId,
    /// Attempts counted, this one included.
    attempts: u32,
    /// The count and error to put back when the attempt does not count.
    previous: (u32, Option<String>),
    /// [`Action::Started`]: a new sync (`Pipeline::run`); [`Action::Resumed`]: a resume.
    action: Action,
    /// The receipt was parked before this (manual) attempt un-parked it: an attempt that
    /// does not count parks it again.
    was_parked: bool,
    /// Who asked.
    mode: Mode,
}

impl Attempt {
    /// Attempt `attempts` (the first, unless a queue delivery says otherwise) of a new sync.
    fn new_sync(sync_id: SyncId, attempts: u32, mode: Mode) -> Self {
        Self {
            sync_id,
            attempts,
            previous: (0, None),
            action: Action::Started,
            was_parked: false,
            mode,
        }
    }

    /// Attempt `attempts` of the receipt's sync, a resume.
    fn resume(sync_id: SyncId, attempts: u32, r: &Receipt, mode: Mode) -> Self {
        Self {
            sync_id,
            attempts,
            previous: (r.attempts, r.last_error.clone()),
            action: Action::Resumed,
            was_parked: false,
            mode,
        }
    }

    /// Whether a run stopped on request uses this attempt: only when the host counted it.
    fn stop_counts(&self) -> bool {
        matches!(self.mode, Mode::Queued { .. })
    }
}

/// What [`Intake::begin`] decided: nothing to run (and why), or one attempt ready to run.
pub enum Begun<'a> {
    /// Nothing runs: the outcome says why (done, parked, busy, not due, …).
    Done(Processed),
    /// An attempt is counted in its receipt; [`Ready::run`] runs it.
    Ready(Ready<'a>),
}

/// An attempt counted in its receipt, holding the intake lock of its source until it has
/// run (dropped unrun, the lock goes with its session; the attempt stays counted, as for a
/// process that dies).
pub struct Ready<'a> {
    intake: &'a Intake,
    client: Client,
    found: &'a Found,
    attempt: Attempt,
}

impl Ready<'_> {
    /// The sync this attempt runs.
    pub fn sync_id(&self) -> &SyncId {
        &self.attempt.sync_id
    }

    /// Attempts counted, this one included.
    pub fn attempts(&self) -> u32 {
        self.attempt.attempts
    }

    /// [`Action::Started`] (a new sync) or [`Action::Resumed`].
    pub fn action(&self) -> Action {
        self.attempt.action
    }

    /// Runs the sync and records what came of it, unless this version is gone.
    pub async fn run(self) -> Result<Processed, IntakeError> {
        let outcome = self
            .intake
            .attempt(&self.client, self.found, self.attempt)
            .await;
        receipts::unlock(&self.client, self.found).await;
        outcome
    }
}

/// What the decisions under the lock come to.
enum Decision {
    Done(Box<Processed>),
    Run(Attempt),
}

impl Intake {
    /// Decides about `found` and runs its sync when that is due (see the module docs). Errs
    /// only when the receipts cannot be read or written; a failed sync is an `Ok` outcome.
    pub async fn process(&self, found: &Found, mode: Mode) -> Result<Processed, IntakeError> {
        match self.begin(found, mode).await? {
            Begun::Done(p) => Ok(p),
            Begun::Ready(ready) => ready.run().await,
        }
    }

    /// The deciding half of [`Intake::process`]: takes the intake lock of `found`, reads its
    /// receipt, and either says why nothing runs or counts the attempt that is to run.
    pub async fn begin<'a>(
        &'a self,
        found: &'a Found,
        mode: Mode,
    ) -> Result<Begun<'a>, IntakeError> {
        if mode == Mode::Automatic
            && let Some(skipped) = self.nothing_to_do(found).await?
        {
            return Ok(Begun::Done(skipped));
        }
        let client = self.connect().await?;
        if !receipts::try_lock(&client, found).await? {
            tracing::debug!(source = %found.source, "another process is deciding about this source");
            return Ok(Begun::Done(Processed::new(found, Action::SkippedBusy)));
        }
        match self.decide(&client, found, mode).await {
            Ok(Decision::Done(p)) => {
                receipts::unlock(&client, found).await;
                Ok(Begun::Done(*p))
            }
            Err(e) => Err(e),
            Ok(Decision::Run(attempt)) => Ok(Begun::Ready(Ready {
                intake: self,
                client,
                found,
                attempt,
            })),
        }
    }

    /// A watch cycle meets mostly finished files: their receipts are read on one shared
    /// connection, without a session and a lock of their own. Reading without the lock may
    /// see a receipt a moment old, which only delays an attempt; whatever runs a sync decides
    /// again under the lock.
    async fn nothing_to_do(&self, found: &Found) -> Result<Option<Processed>, IntakeError> {
        let mut shared = self.shared.lock().await;
        let client = match shared.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connect().await?,
        };
        let receipt = receipts::read(&client, self.schema(), found).await?;
        *shared = Some(client);
        Ok(receipt.and_then(|r| {
            let action = if r.poisoned {
                Action::SkippedParked
            } else if r.finished {
                Action::SkippedDone
            } else if !r.due {
                Action::WaitingBackoff
            } else {
                return None;
            };
            Some(from_receipt(found, &r, action))
        }))
    }

    pub(super) async fn connect(&self) -> Result<Client, IntakeError> {
        let mut client = crate::pg::connect(self.pipeline.pg()).await?;
        if !self.migrated.load(Ordering::Acquire) {
            crate::pg::init_db(&mut client, self.pipeline.profile()).await?;
            self.migrated.store(true, Ordering::Release);
        }
        Ok(client)
    }

    pub(super) fn schema(&self) -> &str {
        &self.pipeline.profile().schema
    }

    async fn decide(
        &self,
        client: &Client,
        found: &Found,
        mode: Mode,
    ) -> Result<Decision, IntakeError> {
        let Some(receipt) = receipts::read(client, self.schema(), found).await? else {
            let sync_id = crate::pipeline::new_sync_id();
            let attempts = match mode {
                Mode::Queued { delivery } => delivery.max(1),
                _ => 1,
            };
            let pause = self.pause(mode, attempts, true);
            let claimed =
                receipts::claim(client, self.schema(), found, &sync_id, attempts, pause).await?;
            if !claimed {
                return Ok(Decision::Done(Box::new(Processed::new(
                    found,
                    Action::SkippedBusy,
                ))));
            }
            tracing::info!(source = %found.source, version = %found.version, %sync_id, "new source version: starting its sync");
            return Ok(Decision::Run(Attempt::new_sync(sync_id, attempts, mode)));
        };
        match mode {
            Mode::Automatic => self.automatic(client, found, receipt, mode, true).await,
            Mode::Triggered | Mode::Queued { .. } => {
                self.automatic(client, found, receipt, mode, false).await
            }
            Mode::Manual => self.manual(client, found, receipt).await,
        }
    }

    /// How long from now until a receipt is due again: the retry policy's pause, and for a
    /// queue delivery the time the host may take to deliver the message again (while the
    /// attempt runs: its lease on the message; after it: its next poll), so that a sweep only
    /// takes over a receipt whose message the queue no longer retries.
    fn pause(&self, mode: Mode, attempts: u32, starting: bool) -> Duration {
        let pause = self.policy.delay(attempts);
        match (mode, starting) {
            (Mode::Queued { .. }, true) => pause + super::QUEUE_LEASE,
            (Mode::Queued { .. }, false) => pause + super::QUEUE_REDELIVERY_SLACK,
            _ => pause,
        }
    }

    async fn automatic(
        &self,
        client: &Client,
        found: &Found,
        r: Receipt,
        mode: Mode,
        paced: bool,
    ) -> Result<Decision, IntakeError> {
        if r.poisoned {
            return Ok(Decision::Done(Box::new(from_receipt(
                found,
                &r,
                Action::SkippedParked,
            ))));
        }
        if r.finished {
            return Ok(Decision::Done(Box::new(from_receipt(
                found,
                &r,
                Action::SkippedDone,
            ))));
        }
        if paced && !r.due {
            return Ok(Decision::Done(Box::new(from_receipt(
                found,
                &r,
                Action::WaitingBackoff,
            ))));
        }
        let sync_id = receipt_sync_id(found, &r)?;
        if r.attempts >= self.policy.max_attempts {
            // The last attempt ended without recording an outcome (its process died), or
            // the limit was lowered since.
            let mut p = from_receipt(found, &r, Action::Parked);
            if p.error.is_none() {
                p.error = Some(
                    "the process running the last attempt stopped without recording its \
                     outcome (killed?)"
                        .to_owned(),
                );
            }
            self.park(client, found, &mut p).await?;
            return Ok(Decision::Done(Box::new(p)));
        }
        let attempts = match mode {
            // The host's count wins when it is ahead: deliveries that died before they
            // reached the receipt were attempts all the same.
            Mode::Queued { delivery } => (r.attempts + 1).max(delivery),
            _ => r.attempts + 1,
        };
        let pause = self.pause(mode, attempts, true);
        receipts::begin_attempt(client, self.schema(), found, attempts, pause, false).await?;
        tracing::info!(source = %found.source, %sync_id, attempt = attempts, "resuming the source's unfinished sync");
        Ok(Decision::Run(Attempt::resume(sync_id, attempts, &r, mode)))
    }

    async fn manual(
        &self,
        client: &Client,
        found: &Found,
        r: Receipt,
    ) -> Result<Decision, IntakeError> {
        if r.finished {
            let sync_id = crate::pipeline::new_sync_id();
            receipts::restart(client, self.schema(), found, &sync_id, self.policy.delay(1)).await?;
            tracing::info!(source = %found.source, previous = %r.sync_id, %sync_id, "manual re-run of a finished source: a new sync");
            return Ok(Decision::Run(Attempt::new_sync(sync_id, 1, Mode::Manual)));
        }
        let sync_id = receipt_sync_id(found, &r)?;
        receipts::begin_attempt(client, self.schema(), found, 1, self.policy.delay(1), true)
            .await?;
        tracing::info!(source = %found.source, %sync_id, "manual re-run: resuming the unfinished sync");
        Ok(Decision::Run(Attempt {
            was_parked: r.poisoned,
            ..Attempt::resume(sync_id, 1, &r, Mode::Manual)
        }))
    }

    /// Runs the sync and records what came of it, unless this version is gone.
    async fn attempt(
        &self,
        client: &Client,
        found: &Found,
        a: Attempt,
    ) -> Result<Processed, IntakeError> {
        if let Some(p) = self.superseded(client, found, &a).await? {
            return Ok(p);
        }
        self.run_attempt(client, found, a).await
    }

    async fn run_attempt(
        &self,
        client: &Client,
        found: &Found,
        a: Attempt,
    ) -> Result<Processed, IntakeError> {
        let outcome = if a.action == Action::Started {
            self.start_sync(found, &a.sync_id).await
        } else {
            self.resume_sync(found, &a.sync_id).await
        };
        let mut p = Processed {
            sync_id: Some(a.sync_id.clone()),
            attempts: a.attempts,
            ..Processed::new(found, a.action)
        };
        let recorded = match outcome {
            Err(
                PipelineError::Busy(_)
                | PipelineError::SourceBusy { .. }
                | PipelineError::LockLost(_),
            ) => self.busy(client, found, &a, &mut p).await?,
            Err(e) => {
                let error = e.to_string();
                tracing::warn!(source = %found.source, sync_id = %a.sync_id, attempt = a.attempts, error = %error, "the sync stopped with an error");
                p.error = Some(error);
                receipts::record(
                    client,
                    self.schema(),
                    found,
                    &Outcome {
                        status: None,
                        attempts: a.attempts,
                        delay: self.pause(a.mode, a.attempts, false),
                        error: p.error.as_deref(),
                        finished: false,
                    },
                )
                .await?
            }
            Ok(Ran::Submitted(submitted)) => {
                self.handed_off(client, found, &a, &mut p, submitted)
                    .await?
            }
            Ok(Ran::Loaded(summary)) if summary.interrupted => {
                // Not an attempt (the next cycle or start continues at once), unless the
                // host counted it.
                let (attempts, delay) = if a.stop_counts() {
                    (a.attempts, self.pause(a.mode, a.attempts, false))
                } else {
                    (a.previous.0, Duration::ZERO)
                };
                p.attempts = attempts;
                p.interrupted = true;
                p.error.clone_from(&summary.error);
                p.summary = Some(summary);
                receipts::record(
                    client,
                    self.schema(),
                    found,
                    &Outcome {
                        status: Some(SyncStatus::InProgress),
                        attempts,
                        delay,
                        error: p.error.as_deref(),
                        finished: false,
                    },
                )
                .await?
            }
            Ok(Ran::Loaded(summary)) => {
                p.finished = summary.is_final();
                p.error.clone_from(&summary.error);
                let status = summary.status;
                p.summary = Some(summary);
                receipts::record(
                    client,
                    self.schema(),
                    found,
                    &Outcome {
                        status: Some(status),
                        attempts: a.attempts,
                        delay: self.pause(a.mode, a.attempts, false),
                        error: p.error.as_deref(),
                        finished: p.finished,
                    },
                )
                .await?
            }
        };
        p.status = Some(recorded.status);
        if !p.finished {
            p.next_attempt_at = Some(recorded.next_attempt_at);
        }
        let used_up = a.attempts >= self.policy.max_attempts;
        let counted = !p.interrupted || a.stop_counts();
        if used_up && !p.finished && counted && p.action != Action::SkippedBusy {
            p.action = Action::Parked;
            self.park(client, found, &mut p).await?;
        }
        Ok(p)
    }
}

impl Intake {
    /// The source was submitted to the work queue: nothing is left for the intake to do,
    /// the workers load and finish the sync.
    async fn handed_off(
        &self,
        client: &Client,
        found: &Found,
        a: &Attempt,
        p: &mut Processed,
        submitted: crate::pipeline::Submitted,
    ) -> Result<receipts::Recorded, IntakeError> {
        tracing::info!(source = %found.source, sync_id = %a.sync_id, chunks = submitted.chunks_total, "submitted to the work queue: datsync worker processes load it");
        p.action = Action::Submitted;
        p.finished = true;
        p.submitted = Some(Box::new(submitted));
        let recorded = receipts::record(
            client,
            self.schema(),
            found,
            &Outcome {
                status: Some(SyncStatus::InProgress),
                attempts: a.attempts,
                delay: Duration::ZERO,
                error: None,
                finished: true,
            },
        )
        .await?;
        Ok(recorded)
    }

    /// Not an attempt: another process is writing the sync right now. The count, the error
    /// and (for a manual re-run of a parked receipt) the parking are put back.
    async fn busy(
        &self,
        client: &Client,
        found: &Found,
        a: &Attempt,
        p: &mut Processed,
    ) -> Result<receipts::Recorded, IntakeError> {
        tracing::info!(source = %found.source, sync_id = %a.sync_id, "the sync is being written by another process; skipped this time");
        p.action = Action::SkippedBusy;
        p.attempts = a.previous.0;
        p.error.clone_from(&a.previous.1);
        let recorded = receipts::record(
            client,
            self.schema(),
            found,
            &Outcome {
                status: None,
                attempts: a.previous.0,
                delay: Duration::ZERO,
                error: a.previous.1.as_deref(),
                finished: false,
            },
        )
        .await?;
        if a.was_parked {
            receipts::park(client, self.schema(), found).await?;
        }
        Ok(recorded)
    }

    /// When this version of the source is gone (replaced or deleted), its receipt is
    /// finished without a run (the attempt given back); a newer version is a receipt of its
    /// own. The run opens the source itself: it must be the version the receipt names, or
    /// the receipt would be marked done for bytes it never saw (and the new version's
    /// receipt would load them again). An error reading the version lets the run report it.
    async fn superseded(
        &self,
        client: &Client,
        found: &Found,
        a: &Attempt,
    ) -> Result<Option<Processed>, IntakeError> {
        let Ok(now) = super::list::current_version(found).await else {
            return Ok(None);
        };
        if now.as_deref() == Some(found.version.as_str()) {
            return Ok(None);
        }
        let error = if now.is_none() {
            "the source was deleted before this version was loaded"
        } else {
            "the source was replaced before this version was loaded; the new version is loaded \
             as a sync of its own"
        };
        tracing::info!(source = %found.source, version = %found.version, sync_id = %a.sync_id, "{error}");
        let recorded = receipts::record(
            client,
            self.schema(),
            found,
            &Outcome {
                status: None,
                attempts: a.previous.0,
                delay: Duration::ZERO,
                error: Some(error),
                finished: true,
            },
        )
        .await?;
        Ok(Some(Processed {
            sync_id: Some(a.sync_id.clone()),
            status: Some(recorded.status),
            attempts: a.previous.0,
            finished: true,
            error: Some(error.to_owned()),
            ..Processed::new(found, Action::Superseded)
        }))
    }
}

pub(super) fn from_receipt(found: &Found, r: &Receipt, action: Action) -> Processed {
    Processed {
        sync_id: SyncId::parse(&r.sync_id).ok(),
        status: Some(r.status),
        attempts: r.attempts,
        finished: r.finished,
        next_attempt_at: (!r.finished).then(|| r.next_attempt_at.clone()),
        error: r.last_error.clone(),
        ..Processed::new(found, action)
    }
}

fn receipt_sync_id(found: &Found, r: &Receipt) -> Result<SyncId, IntakeError> {
    SyncId::parse(&r.sync_id).map_err(|e| IntakeError::Corrupt {
        source_name: found.source.clone(),
        version: found.version.clone(),
        message: e.to_string(),
    })
}
