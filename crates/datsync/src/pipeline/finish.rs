//! The end of a run (Diagram 4's last boxes): the final status from the ledger, materialized
//! views, `sync_metadata`, checkpoint cleanup, post-sync hooks, alerts and retention.
//!
//! `sync_metadata` gets its final status before the checkpoints are deleted: a crash during
//! cleanup leaves a finished sync whose resume only deletes what is left.
//!
//! The final steps that reach outside (post-sync hooks, the alert) are done once per
//! *outcome* of a sync (its status, committed chunks and error): each is recorded in
//! `sync_metadata` (`hooks_called_for`, `alerted_for`) as soon as it is done, and every
//! finisher, which holds the sync's writer lock, reads the records first. A second finish of
//! the same outcome (a finish cut short and done again by the next worker or `resume`, a
//! worker finishing a sync that a `resume` or `submit` finished beside it) skips them; an
//! outcome that changed (a resume that loaded the chunks that had failed) has them again.
//! A process that dies between a hook's call (or the alert) and its record, or loses the
//! database in between, has it done again by the next finish: at least once, and once
//! unless a crash falls in that instant.

use std::sync::Arc;

use serde::Deserialize as _;

use super::convert::ConvertOutcome;
use super::halt::{BadInput, Halt, SyncFailure, TooManyRejects};
use super::run::{Run, Tally};
use super::session::{Outage, Reconnect};
use super::{PipelineError, RunSummary};
use crate::alert::AlertReport;
use crate::checkpoint::{Clock, RetentionPolicy, SystemClock, remove_expired};
use crate::model::{RowError, RowErrorKind, SyncCounts, SyncId, SyncStatus};
use crate::pg::ErrorClass;
use crate::status::{FinalStep, LedgerSample, LedgerTotals, SyncOutcome, ViewOutcome};
use crate::store::ObjectKey;
use crate::telemetry::{CleanupStarted, FinalStepsDone, SyncFinished};
use crate::validate::VALIDATION_ERRORS_SAMPLE;

/// The final status of a sync and why.
struct Verdict {
    status: SyncStatus,
    /// The message of `sync_metadata.error_message` and the summary.
    error: Option<String>,
    /// Whether trying again can help, when there is an error.
    class: Option<ErrorClass>,
}

/// The validation errors a sync reports: the count and the first ones.
struct ErrorSample {
    count: u64,
    /// The first [`VALIDATION_ERRORS_SAMPLE`], as `sync_metadata.validation_errors` holds them.
    json: serde_json::Value,
}

impl Run<'_> {
    /// Decides the final status (or, stopped on request, none) and does what follows it. A
    /// connection lost on the way is made again (with the writer lock) and the final steps
    /// are done again — each can be done twice — for as long as the outage budget lasts;
    /// after it, the summary says FAILED, the checkpoint is kept and marked failed, and the
    /// next run or resume finishes the sync (its `sync_metadata` row stays IN_PROGRESS).
    pub(super) async fn finish(
        mut self,
        halt: Option<Halt>,
        tally: &Tally,
        converted: Option<ConvertOutcome>,
        resumed: bool,
    ) -> Result<RunSummary, PipelineError> {
        if matches!(halt, Some(Halt::LockLost)) {
            // Another process writes the sync now: its status is that process's to decide.
            return Err(PipelineError::LockLost(self.plan.sync_id.clone()));
        }
        // A sync stopped by an outage has spent its budget: one more try, then the summary.
        let stopped_by_outage = matches!(halt, Some(Halt::Failed(SyncFailure::Outage { .. })));
        let retry_for = if stopped_by_outage {
            std::time::Duration::ZERO
        } else {
            self.pipeline.retries.retry_for
        };
        let gave_up = |waited: std::time::Duration, e: &dyn std::fmt::Display| match &halt {
            Some(h) if stopped_by_outage => h.to_string(),
            _ => outage_message(&self.shared.plan.sync_id, waited, e),
        };
        let mut outage: Option<Outage> = None;
        loop {
            if self.client.is_closed() {
                match self.reconnect().await {
                    Ok(()) => {}
                    Err(Reconnect::Halt(Halt::LockLost)) => {
                        return Err(PipelineError::LockLost(self.plan.sync_id.clone()));
                    }
                    Err(Reconnect::Halt(h)) => {
                        return Ok(self.unfinished(&h.to_string(), tally, resumed).await);
                    }
                    Err(Reconnect::Transient(e)) => {
                        let o = outage
                            .get_or_insert_with(|| Outage::begin(self.pipeline.retries.backoff));
                        if o.wait(retry_for).await {
                            continue;
                        }
                        let message = gave_up(o.lasted(), &e);
                        return Ok(self.unfinished(&message, tally, resumed).await);
                    }
                }
            }
            let result = if matches!(halt, Some(Halt::Stopped)) {
                self.interrupted(tally, resumed).await
            } else {
                self.finish_once(halt.as_ref(), tally, converted.as_ref(), resumed)
                    .await
            };
            match result {
                Err(e) if e.is_outage() => {
                    tracing::warn!(sync_id = %self.plan.sync_id, error = %e, "the database was lost during the final steps; doing them again");
                    let o =
                        outage.get_or_insert_with(|| Outage::begin(self.pipeline.retries.backoff));
                    if !o.wait(retry_for).await {
                        let message = gave_up(o.lasted(), &e);
                        return Ok(self.unfinished(&message, tally, resumed).await);
                    }
                    // A broken connection is made again at the top; any other outage
                    // (53xxx, 57P0x on a live session) is tried again on the same one.
                }
                other => return other,
            }
        }
    }

    /// The summary of a run that could not write its final status: FAILED, with `error`;
    /// the checkpoint kept and marked failed; counts as far as this run knows them.
    async fn unfinished(&self, error: &str, tally: &Tally, resumed: bool) -> RunSummary {
        let p = self.pipeline;
        if let Some(m) = &self.manager
            && let Err(e) = m.lock().await.mark_sync_failed(error).await
        {
            tracing::warn!(sync_id = %self.plan.sync_id, error = %e, "the checkpoint could not be marked failed");
        }
        let totals = LedgerTotals::default();
        let (rows_read, chunks_total) = self.source_totals(None, &totals).await;
        let mut counts = counts(&totals, rows_read, chunks_total, tally, None);
        counts.chunks_completed = tally.loaded + tally.skipped_on_resume;
        let verdict = Verdict {
            status: SyncStatus::Failed,
            error: Some(error.to_owned()),
            class: Some(ErrorClass::Transient),
        };
        tracing::error!(sync_id = %self.plan.sync_id, error, "the sync could not be finished");
        p.progress.finish();
        self.summary(verdict, counts, tally, resumed, self.checkpoint_dir.clone())
    }

    /// The final steps, once: the status from the ledger, views, `sync_metadata`, cleanup,
    /// the alert, retention. An outcome whose final steps are all recorded (see the module
    /// docs) with the same status stored is not written nor told again: only what is left of
    /// its queue rows and checkpoint is deleted.
    async fn finish_once(
        &self,
        halt: Option<&Halt>,
        tally: &Tally,
        converted: Option<&ConvertOutcome>,
        resumed: bool,
    ) -> Result<RunSummary, PipelineError> {
        let p = self.pipeline;
        let sync_id = &self.plan.sync_id;
        let totals = crate::status::ledger_totals(&self.client, &p.profile.schema, sync_id).await?;
        let (rows_read, chunks_total) = self.source_totals(converted, &totals).await;
        let counts = counts(&totals, rows_read, chunks_total, tally, stopped_chunk(halt));
        let verdict = decide(halt, tally, &counts, sync_id);
        let loaded_all = matches!(
            verdict.status,
            SyncStatus::Success | SyncStatus::PartialSuccess
        ) && counts.chunks_failed == 0;
        let key = outcome_key(&verdict, &counts);
        let done = crate::status::final_steps(&self.client, &p.profile.schema, sync_id).await?;
        let told = |mark: &Option<String>| mark.as_deref() == Some(key.as_str());
        let finished_before = done.status.as_deref() == Some(verdict.status.as_str())
            && told(&done.hooks_called_for)
            && told(&done.alerted_for);
        if finished_before {
            tracing::info!(%sync_id, status = %verdict.status,
                "the sync was finished with this outcome before; only what is left of it is removed");
        }
        if loaded_all && p.settings.enable_mv_refresh && !finished_before {
            self.refresh_views().await;
        }
        let sample = self.error_sample(&totals, halt).await?;
        if !finished_before {
            let outcome = SyncOutcome {
                status: verdict.status,
                counts: Some(counts),
                validation_errors_count: Some(sample.count),
                error_message: verdict.error.clone(),
                validation_errors: Some(sample.json.clone()),
            };
            crate::status::finish_sync(&self.client, &p.profile.schema, sync_id, &outcome).await?;
        }
        // The sync has a status of its own now: nothing of it is left for the workers but
        // the chunks they gave up, while it lacks them.
        super::queue::forget_sync(&self.client, &p.profile.schema, sync_id, !loaded_all).await?;
        let checkpoint_dir = self.settle_checkpoint(&verdict, loaded_all).await?;
        // After the last step that can fail (and so be done again): the hooks, once per
        // outcome.
        let hooks_failed = if told(&done.hooks_called_for) {
            tracing::info!(%sync_id, "the post-sync hooks were called for this outcome before");
            0
        } else {
            let failed = self.call_hooks(verdict.status).await;
            self.mark_done(FinalStep::Hooks, &key).await;
            failed
        };
        let mut summary = self.summary(verdict, counts, tally, resumed, checkpoint_dir);
        summary.hooks_failed = hooks_failed;
        summary.derived_failed = u64::try_from(totals.derived_failed).unwrap_or(0);
        if summary.derived_failed > 0 {
            tracing::warn!(%sync_id, failed = summary.derived_failed,
                "derived tables were not updated from some chunks (their rows are loaded); see the warnings above");
        }
        p.telemetry.emit(&SyncFinished {
            summary: &summary,
            rejected_uncommitted: stopped_chunk(halt).map_or(0, |s| s.rejected),
        });
        if told(&done.alerted_for) {
            tracing::info!(%sync_id, "the alert for this outcome was sent before");
        } else if self.alert(&summary, &sample).await {
            self.mark_done(FinalStep::Alert, &key).await;
        }
        self.expire_old_checkpoints().await;
        p.telemetry.emit(&FinalStepsDone { sync_id });
        p.progress.finish();
        Ok(summary)
    }

    /// A run stopped on request ([`super::PipelineBuilder::stop`]): no final status, no
    /// alert, no cleanup. `sync_metadata` stays IN_PROGRESS with the progress of the
    /// committed chunks, the checkpoint stays as it is, and `resume` continues the sync.
    async fn interrupted(&self, tally: &Tally, resumed: bool) -> Result<RunSummary, PipelineError> {
        let p = self.pipeline;
        let sync_id = &self.plan.sync_id;
        let totals = crate::status::ledger_totals(&self.client, &p.profile.schema, sync_id).await?;
        let (rows_read, chunks_total) = self.source_totals(None, &totals).await;
        tracing::info!(%sync_id, chunks_completed = totals.chunks, "stopped on request after the chunk in flight; resume continues the sync");
        let error = format!(
            "stopped on request (SIGTERM) after {} committed chunk(s); `datsync resume {sync_id}` \
             or the next watch cycle continues it",
            totals.chunks
        );
        let verdict = Verdict {
            status: SyncStatus::InProgress,
            error: Some(error),
            class: None,
        };
        let counts = counts(&totals, rows_read, chunks_total, tally, None);
        let checkpoint_dir = self.checkpoint_dir.clone();
        let mut summary = self.summary(verdict, counts, tally, resumed, checkpoint_dir);
        summary.interrupted = true;
        p.telemetry
            .metrics()
            .sync_interrupted(summary.chunks_skipped_on_resume);
        p.progress.finish();
        Ok(summary)
    }

    /// Rows and chunks of the whole source: from the manifest, else from this run's reading.
    async fn source_totals(
        &self,
        converted: Option<&ConvertOutcome>,
        totals: &LedgerTotals,
    ) -> (u64, u64) {
        if let Some(m) = &self.manager {
            let m = m.lock().await;
            if let Some(manifest) = m.manifest() {
                return (manifest.total_rows(), u64::from(manifest.total_chunks));
            }
        }
        match converted {
            Some(c) => (c.rows, u64::from(c.chunks)),
            None => (
                u64::try_from(totals.rows_read).unwrap_or(0),
                u64::try_from(totals.chunks).unwrap_or(0),
            ),
        }
    }

    /// The validation errors of the sync: the ledger's first broken rules, then the ones of a
    /// chunk that stopped the sync (never committed, so not in the ledger), then the ledger's
    /// first value warnings, each with its `kind`.
    async fn error_sample(
        &self,
        totals: &LedgerTotals,
        halt: Option<&Halt>,
    ) -> Result<ErrorSample, PipelineError> {
        let limit = i64::try_from(VALIDATION_ERRORS_SAMPLE).unwrap_or(i64::MAX);
        let schema = &self.pipeline.profile.schema;
        let sync_id = &self.plan.sync_id;
        let sample =
            |which| crate::status::ledger_error_sample(&self.client, schema, sync_id, which, limit);
        let mut entries = into_entries(sample(LedgerSample::Rejected).await?);
        let mut count = u64::try_from(totals.validation_errors_count).unwrap_or(0);
        if let Some(stopped) = stopped_chunk(halt) {
            count += stopped.errors_count;
            let room = VALIDATION_ERRORS_SAMPLE.saturating_sub(entries.len());
            entries.extend(
                stopped
                    .errors
                    .iter()
                    .take(room)
                    .filter_map(|e| serde_json::to_value(e).ok()),
            );
        }
        let warnings = into_entries(sample(LedgerSample::Warnings).await?);
        if let Some(first) = warnings.first() {
            let first = RowError::deserialize(first).unwrap_or_default();
            tracing::warn!(%sync_id, count = totals.value_warnings, line = first.line,
                column = first.column.as_deref().unwrap_or(""), value = first.value.as_deref().unwrap_or(""),
                reason = %first.reason,
                "values not loaded as written (NULL, midnight or rounded); `datsync rejects {sync_id} --kind warning` lists them");
        }
        entries.extend(warnings);
        Ok(ErrorSample {
            count,
            json: serde_json::Value::Array(entries),
        })
    }

    /// The checkpoint after the final status: kept and marked failed when the sync stopped
    /// on an error, deleted when every chunk is loaded (and cleanup is on). Returns where it
    /// still is.
    async fn settle_checkpoint(
        &self,
        verdict: &Verdict,
        loaded_all: bool,
    ) -> Result<Option<String>, PipelineError> {
        let p = self.pipeline;
        let Some(m) = &self.manager else {
            return Ok(self.checkpoint_dir.clone());
        };
        let mut m = m.lock().await;
        if let Some(message) = verdict.error.as_ref().filter(|_| !loaded_all) {
            m.mark_sync_failed(message).await?;
        } else if loaded_all && p.settings.cleanup_on_success {
            p.telemetry.emit(&CleanupStarted {
                sync_id: &self.plan.sync_id,
            });
            m.cleanup().await?;
            return Ok(None);
        }
        Ok(self.checkpoint_dir.clone())
    }

    async fn refresh_views(&self) {
        let p = self.pipeline;
        let views =
            crate::status::views_to_refresh(p.settings.materialized_views.as_deref(), &p.profile);
        let outcomes = crate::status::refresh_materialized_views(&self.client, &views).await;
        let missing: Vec<&str> = outcomes
            .iter()
            .filter(|r| r.outcome == ViewOutcome::Missing)
            .map(|r| r.view.as_str())
            .collect();
        if !missing.is_empty() {
            tracing::info!(count = missing.len(), views = %missing.join(","), "materialized views that do not exist were skipped");
        }
    }

    fn summary(
        &self,
        verdict: Verdict,
        counts: SyncCounts,
        tally: &Tally,
        resumed: bool,
        checkpoint_dir: Option<String>,
    ) -> RunSummary {
        let all_older =
            counts.rows_loaded > 0 && counts.records_skipped_older == counts.rows_loaded;
        if all_older {
            tracing::warn!(sync_id = %self.plan.sync_id, source = %self.plan.source_path,
                rows = counts.rows_loaded,
                "every row of this file is older than the table's: the table is unchanged (a file \
                 that arrived late, or loaded again); `datsync status` names the version that won");
        }
        let time_saved_s = (tally.skipped_on_resume > 0 && tally.loaded > 0).then(|| {
            tally.load_time.as_secs_f64() / tally.loaded as f64 * tally.skipped_on_resume as f64
        });
        RunSummary {
            sync_id: self.plan.sync_id.clone(),
            status: verdict.status,
            counts,
            chunks_skipped_on_resume: tally.skipped_on_resume,
            duration_s: self.started.elapsed().as_secs_f64(),
            time_saved_s,
            checkpoint_dir,
            rejects_dir: (counts.rows_rejected + counts.value_warnings > 0).then(|| {
                self.store
                    .describe(&ObjectKey::rejects_dir(&self.plan.sync_id))
            }),
            unknown_columns: self.unknown_columns.clone(),
            resumed,
            error: verdict.error,
            error_class: verdict.class,
            interrupted: false,
            all_older,
            already_loaded: false,
            derived_failed: 0,
            hooks_failed: 0,
        }
    }

    /// The post-sync hooks of `status` (after the views, whatever came of their refresh);
    /// returns how many failed, each counted in `datsync_hook_failures_total`.
    async fn call_hooks(&self, status: SyncStatus) -> u64 {
        let Some(hooks) = &self.pipeline.hooks else {
            return 0;
        };
        let failed = hooks.run(&self.plan.sync_id, status).await;
        for name in &failed {
            self.pipeline.telemetry.metrics().hook_failed(name);
        }
        failed.len() as u64
    }

    /// Records that `step` was done for the outcome `key` (a failure is logged: the step is
    /// then done again by the next finish of the sync).
    async fn mark_done(&self, step: FinalStep, key: &str) {
        let p = self.pipeline;
        let sync_id = &self.plan.sync_id;
        if let Err(e) =
            crate::status::mark_final_step(&self.client, &p.profile.schema, sync_id, step, key)
                .await
        {
            tracing::warn!(%sync_id, ?step, error = %e, "the final step could not be recorded; the next finish of the sync does it again");
        }
    }

    /// Sends the alert of the finish (when the alert settings ask for one); `true` when the
    /// alert step is done for this outcome (sent, not needed, or no alerter configured),
    /// `false` when the alert waits for the retry that follows.
    async fn alert(&self, summary: &RunSummary, sample: &ErrorSample) -> bool {
        let Some(alerter) = &self.pipeline.alerter else {
            // Nothing to send: the step is done for this outcome.
            return true;
        };
        if !self.pipeline.alert_retryable && !summary.is_final() {
            tracing::debug!(sync_id = %summary.sync_id, status = %summary.status, "no alert: a retry follows");
            return false;
        }
        let (value_warnings, validation_errors): (Vec<RowError>, Vec<RowError>) = sample
            .json
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| RowError::deserialize(e).unwrap_or_default())
                    .partition(|e| e.kind == RowErrorKind::Warning)
            })
            .unwrap_or_default();
        let report = AlertReport {
            sync_id: summary.sync_id.clone(),
            file_name: self.plan.file_name.clone(),
            file_path: self.plan.source_path.clone(),
            status: summary.status,
            error_message: summary.error.clone(),
            counts: summary.counts,
            validation_errors_count: sample.count,
            validation_errors,
            value_warnings,
            unknown_columns: summary.unknown_columns.clone(),
            checkpoint_dir: summary
                .checkpoint_dir
                .clone()
                .or_else(|| summary.rejects_dir.clone()),
            duration: std::time::Duration::from_secs_f64(summary.duration_s),
        };
        let outcome = alerter.notify(&report).await;
        for failure in outcome.failures() {
            tracing::warn!(sync_id = %summary.sync_id, failure = ?failure, "alert not delivered");
        }
        true
    }

    /// Removes checkpoints older than the retention (`CHECKPOINT_RETENTION_DAYS`); a failure
    /// is logged, never fatal.
    async fn expire_old_checkpoints(&self) {
        if self.manager.is_none() {
            return;
        }
        let policy = RetentionPolicy::days(self.pipeline.settings.retention_days);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        match remove_expired(&self.store, &policy, &clock).await {
            Ok(report) if !report.removed.is_empty() || !report.rejects_removed.is_empty() => {
                tracing::info!(removed = ?report.removed, rejects_removed = ?report.rejects_removed,
                    "expired checkpoints and rejects removed");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "removing expired checkpoints failed"),
        }
    }
}

/// What identifies the outcome of a finish for its final steps (see the module docs): the
/// status, the committed chunks and the error message (by its SHA-256), readable in
/// `sync_metadata` (`SUCCESS chunks 12 error none`).
fn outcome_key(verdict: &Verdict, counts: &SyncCounts) -> String {
    use sha2::Digest as _;
    let error = verdict.error.as_deref().map_or_else(
        || "none".to_owned(),
        |e| {
            let digest = crate::model::hex(&sha2::Sha256::digest(e.as_bytes()));
            digest.get(..16).unwrap_or(&digest).to_owned()
        },
    );
    format!(
        "{} chunks {} error {error}",
        verdict.status, counts.chunks_completed
    )
}

/// The message of final steps that could not reach the database for the whole outage
/// budget.
fn outage_message(
    sync_id: &SyncId,
    waited: std::time::Duration,
    error: &dyn std::fmt::Display,
) -> String {
    format!(
        "the database could not be reached for {}s (DATSYNC_DB_RETRY_FOR) while the sync was \
         finishing: {error}; the checkpoint is kept: `datsync resume {sync_id}` finishes the \
         sync once the database is back",
        waited.as_secs()
    )
}

/// The final status and its error message (Diagram 4's last boxes).
fn decide(halt: Option<&Halt>, tally: &Tally, counts: &SyncCounts, sync_id: &SyncId) -> Verdict {
    let verdict = |status, error: String, class| Verdict {
        status,
        error: Some(error),
        class: Some(class),
    };
    let failed = tally.failed.len();
    let pending = counts.rows_pending;
    match halt {
        Some(h @ Halt::BadInput(_)) => verdict(SyncStatus::BadInput, h.to_string(), h.class()),
        Some(h @ Halt::Failed(_)) => verdict(SyncStatus::Failed, h.to_string(), h.class()),
        // Handled before (`Run::interrupted`, the lock lost); never a final status.
        Some(Halt::Stopped | Halt::LockLost) => Verdict {
            status: SyncStatus::InProgress,
            error: None,
            class: None,
        },
        None if failed > 0 => verdict(
            SyncStatus::PartialSuccess,
            format!(
                "{failed} chunk(s) failed and are kept for a retry (`datsync resume {sync_id}`): {}",
                tally
                    .failed
                    .iter()
                    .map(|f| format!("chunk {}: {}", f.chunk, f.error))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            ErrorClass::Transient,
        ),
        // Every chunk committed, yet source rows unaccounted for: the committed chunks
        // were cut differently (another checkpoint, another chunk size). Never a success.
        None if pending > 0 => verdict(
            SyncStatus::Failed,
            format!(
                "{pending} of the source's {} rows are in no committed chunk: the \
                 chunks committed earlier do not line up with this run's (was the sync \
                 started with another --checkpoint-dir or --chunk-size?); resume it with \
                 the checkpoint it was started with, or load the file again with --fresh",
                counts.rows_read
            ),
            ErrorClass::Fatal,
        ),
        None if counts.rows_rejected > 0 => Verdict {
            status: SyncStatus::PartialSuccess,
            error: None,
            class: None,
        },
        None => Verdict {
            status: SyncStatus::Success,
            error: None,
            class: None,
        },
    }
}

/// The chunk that stopped the sync above the error threshold, if one did.
fn stopped_chunk(halt: Option<&Halt>) -> Option<&TooManyRejects> {
    match halt {
        Some(Halt::BadInput(BadInput::TooManyRejects(stopped))) => Some(stopped),
        _ => None,
    }
}

/// The entries of a JSON array (none for anything else).
fn into_entries(sample: serde_json::Value) -> Vec<serde_json::Value> {
    match sample {
        serde_json::Value::Array(entries) => entries,
        _ => Vec::new(),
    }
}

/// The counts of the sync: the ledger's sums, the source's rows and chunks, this run's
/// failed chunks, and the rows read and rejected of a chunk that stopped the sync (its other
/// rows are pending: nothing of it was loaded).
fn counts(
    totals: &LedgerTotals,
    rows_read: u64,
    chunks_total: u64,
    tally: &Tally,
    stopped: Option<&TooManyRejects>,
) -> SyncCounts {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    let (stopped_read, stopped_rejected) = stopped.map_or((0, 0), |s| (s.rows_read, s.rejected));
    // Without a manifest the rows read are the ledger's, which lacks the stopped chunk.
    let rows_read = rows_read.max(n(totals.rows_read) + stopped_read);
    let loaded = n(totals.loaded());
    let rejected = n(totals.rejected) + stopped_rejected;
    let superseded = n(totals.superseded_all());
    SyncCounts {
        rows_read,
        rows_loaded: loaded,
        rows_rejected: rejected,
        rows_superseded: superseded,
        rows_pending: rows_read.saturating_sub(loaded + rejected + superseded),
        records_inserted: n(totals.inserted),
        records_updated: n(totals.updated),
        records_skipped_older: n(totals.skipped_older),
        value_warnings: n(totals.value_warnings),
        chunks_total,
        chunks_completed: n(totals.chunks),
        chunks_failed: tally.failed.len() as u64,
    }
}

#[cfg(test)]
#[path = "finish_tests.rs"]
mod tests;
