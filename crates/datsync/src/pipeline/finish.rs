//! The end of a run (Diagram 4's last boxes): the final status from the ledger, materialized
//! views, `sync_metadata`, checkpoint cleanup, alerts and retention.
//!
//! `sync_metadata` gets its final status before the checkpoints are deleted: a crash during
//! cleanup leaves a finished sync whose resume only deletes what is left.

use std::sync::Arc;

use serde::Deserialize as _;

use super::convert::ConvertOutcome;
use super::process::{Run, Tally};
use super::{Abort, PipelineError, RunSummary, VALIDATION_ERROR_SAMPLE};
use crate::alert::AlertReport;
use crate::checkpoint::{Clock, RetentionPolicy, SystemClock, remove_expired};
use crate::model::{RowError, SyncCounts, SyncStatus};
use crate::status::{LedgerTotals, SyncOutcome, ViewOutcome};
use crate::store::ObjectKey;
use crate::telemetry::{CleanupStarted, SyncFinished};

impl Run<'_> {
    pub(super) async fn finish(
        self,
        abort: Option<Abort>,
        tally: &Tally,
        converted: Option<ConvertOutcome>,
        resumed: bool,
    ) -> Result<RunSummary, PipelineError> {
        if matches!(abort, Some(Abort::Stopped)) {
            return self.interrupted(tally, resumed).await;
        }
        let p = self.pipeline;
        let schema = &p.profile.schema;
        let sync_id = &self.plan.sync_id;
        let totals = crate::status::ledger_totals(&self.client, schema, sync_id).await?;
        let (rows_read, chunks_total) = self.source_totals(converted.as_ref(), &totals).await;
        let failed = tally.failed.len() as u64;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        let pending =
            rows_read.saturating_sub(n(totals.rows) + n(totals.superseded) + n(totals.rejected));
        let (status, error) = decide(abort, tally, &totals, rows_read, pending, sync_id);
        let loaded_all =
            matches!(status, SyncStatus::Success | SyncStatus::PartialSuccess) && failed == 0;
        if loaded_all && p.settings.enable_mv_refresh {
            self.refresh_views().await;
        }
        let sample = crate::status::ledger_error_sample(
            &self.client,
            schema,
            sync_id,
            i64::try_from(VALIDATION_ERROR_SAMPLE).unwrap_or(i64::MAX),
        )
        .await?;
        // A chunk that stopped the sync was not committed: its errors are not in the ledger.
        let empty = sample.as_array().is_none_or(Vec::is_empty);
        let (sample, errors_count) = match &self.stopping_errors {
            Some((count, errors)) if empty => (
                errors.clone(),
                totals.validation_errors_count + to_i64(*count),
            ),
            _ => (sample, totals.validation_errors_count),
        };
        let counts = counts(&totals, rows_read, chunks_total, tally);
        let outcome = SyncOutcome {
            status,
            counts: Some(counts),
            validation_errors_count: Some(u64::try_from(errors_count).unwrap_or(0)),
            error_message: error.clone(),
            validation_errors: Some(sample.clone()),
        };
        crate::status::finish_sync(&self.client, schema, sync_id, &outcome).await?;
        let mut checkpoint_dir = self.checkpoint_dir.clone();
        if let Some(m) = &self.manager {
            let mut m = m.lock().await;
            if let Some(message) = error.as_ref().filter(|_| !loaded_all) {
                m.mark_sync_failed(message).await?;
            } else if loaded_all && p.settings.cleanup_on_success {
                p.telemetry.emit(&CleanupStarted { sync_id });
                m.cleanup().await?;
                checkpoint_dir = None;
            }
        }
        p.telemetry.emit(&SyncFinished { sync_id, status });
        let summary = self.summary(status, error, counts, tally, resumed, checkpoint_dir);
        self.alert(&summary, &sample, u64::try_from(errors_count).unwrap_or(0))
            .await;
        self.expire_old_checkpoints().await;
        p.progress.finish();
        Ok(summary)
    }

    /// A run stopped on request ([`super::Pipeline::with_stop`]): no final status, no alert,
    /// no cleanup. `sync_metadata` stays IN_PROGRESS with the progress of the committed
    /// chunks, the checkpoint stays as it is, and `resume` continues the sync.
    async fn interrupted(self, tally: &Tally, resumed: bool) -> Result<RunSummary, PipelineError> {
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
        let counts = counts(&totals, rows_read, chunks_total, tally);
        let mut summary = self.summary(
            SyncStatus::InProgress,
            Some(error),
            counts,
            tally,
            resumed,
            self.checkpoint_dir.clone(),
        );
        summary.interrupted = true;
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
        status: SyncStatus,
        error: Option<String>,
        counts: SyncCounts,
        tally: &Tally,
        resumed: bool,
        checkpoint_dir: Option<String>,
    ) -> RunSummary {
        let time_saved_s = (tally.skipped_on_resume > 0 && tally.loaded > 0).then(|| {
            tally.load_time.as_secs_f64() / tally.loaded as f64 * tally.skipped_on_resume as f64
        });
        RunSummary {
            sync_id: self.plan.sync_id.clone(),
            status,
            counts,
            chunks_skipped_on_resume: tally.skipped_on_resume,
            duration_s: self.started.elapsed().as_secs_f64(),
            time_saved_s,
            checkpoint_dir,
            rejects_dir: (counts.rows_rejected > 0).then(|| {
                self.store
                    .describe(&ObjectKey::rejects_dir(&self.plan.sync_id))
            }),
            resumed,
            error,
            interrupted: false,
        }
    }

    async fn alert(&self, summary: &RunSummary, sample: &serde_json::Value, errors_count: u64) {
        let Some(alerter) = &self.pipeline.alerter else {
            return;
        };
        if !self.pipeline.alert_retryable && !summary.is_final() {
            tracing::debug!(sync_id = %summary.sync_id, status = %summary.status, "no alert: a retry follows");
            return;
        }
        let validation_errors = sample
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| RowError::deserialize(e).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        let report = AlertReport {
            sync_id: summary.sync_id.clone(),
            file_name: self.plan.file_name.clone(),
            file_path: self.plan.source_path.clone(),
            status: summary.status,
            error_message: summary.error.clone(),
            counts: summary.counts,
            validation_errors_count: errors_count,
            validation_errors,
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
            Ok(report) if !report.removed.is_empty() => {
                tracing::info!(removed = ?report.removed, "expired checkpoints removed");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "removing expired checkpoints failed"),
        }
    }
}

/// The final status and its error message (Diagram 4's last boxes).
fn decide(
    abort: Option<Abort>,
    tally: &Tally,
    totals: &LedgerTotals,
    rows_read: u64,
    pending: u64,
    sync_id: &crate::model::SyncId,
) -> (SyncStatus, Option<String>) {
    let failed = tally.failed.len();
    match abort {
        Some(Abort::BadInput(m)) => (SyncStatus::BadInput, Some(m)),
        Some(Abort::Failed(m)) => (SyncStatus::Failed, Some(m)),
        // Handled before (`Run::interrupted`); never a final status.
        Some(Abort::Stopped) => (SyncStatus::InProgress, None),
        None if failed > 0 => (
            SyncStatus::PartialSuccess,
            Some(format!(
                "{failed} chunk(s) failed and are kept for a retry (`datsync resume {sync_id}`): {}",
                tally
                    .failed
                    .iter()
                    .map(|(c, e)| format!("chunk {c}: {e}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        ),
        // Every chunk committed, yet source rows unaccounted for: the committed chunks
        // were cut differently (another checkpoint, another chunk size). Never a success.
        None if pending > 0 => (
            SyncStatus::Failed,
            Some(format!(
                "{pending} of the source's {rows_read} rows are in no committed chunk: the \
                 chunks committed earlier do not line up with this run's (was the sync \
                 started with another --checkpoint-dir or --chunk-size?); resume it with \
                 the checkpoint it was started with, or load the file again with --fresh"
            )),
        ),
        None if totals.rejected > 0 => (SyncStatus::PartialSuccess, None),
        None => (SyncStatus::Success, None),
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The counts of the sync: the ledger's sums, the source's rows and chunks, and this run's
/// failed chunks.
fn counts(totals: &LedgerTotals, rows_read: u64, chunks_total: u64, tally: &Tally) -> SyncCounts {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    let accounted = n(totals.rows) + n(totals.superseded) + n(totals.rejected);
    SyncCounts {
        rows_read,
        rows_loaded: n(totals.rows),
        rows_rejected: n(totals.rejected),
        rows_superseded: n(totals.superseded),
        rows_pending: rows_read.saturating_sub(accounted),
        records_inserted: n(totals.inserted),
        records_updated: n(totals.updated),
        records_skipped_older: n(totals.skipped_older),
        chunks_total,
        chunks_completed: n(totals.chunks),
        chunks_failed: tally.failed.len() as u64,
    }
}
