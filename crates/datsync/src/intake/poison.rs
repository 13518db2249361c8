//! Parking a source version whose attempts are used up, and the alert that says so.

use tokio_postgres::Client;

use super::process::from_receipt;
use super::{Action, Found, Intake, IntakeError, Processed, receipts};
use crate::alert::{AlertReport, status_needs_alert};
use crate::model::SyncStatus;

impl Intake {
    /// Parks the receipt (`poisoned_at`; its status is kept) and sends the poison alert
    /// through the pipeline's alerter. A failed delivery is logged, never an error.
    pub(super) async fn park(
        &self,
        client: &Client,
        found: &Found,
        p: &mut Processed,
    ) -> Result<(), IntakeError> {
        receipts::park(client, self.schema(), found).await?;
        p.next_attempt_at = None;
        let report = poison_report(found, p, self.policy.max_attempts);
        tracing::error!(
            source = %found.source, version = %found.version, sync_id = %report.sync_id,
            attempts = p.attempts, error = report.error_message.as_deref().unwrap_or_default(),
            "attempts used up: parked as poison, not retried again automatically"
        );
        if let Some(alerter) = self.pipeline.alerter() {
            let outcome = alerter.notify(&report).await;
            for (channel, e) in outcome.failures() {
                tracing::warn!(sync_id = %report.sync_id, ?channel, error = %e, "poison alert not delivered");
            }
        }
        Ok(())
    }
}

impl Intake {
    /// The Functions host gave up on a queue message about `found` (it moved the message to
    /// its poison queue: the last delivery died before it could answer, so the receipt could
    /// not be parked first). An unfinished receipt is parked now, with its alert; a finished
    /// or parked one is left as it is; `Ok(None)` when `found` has no receipt (nothing ever
    /// ran: a sweep loads it).
    pub async fn give_up(
        &self,
        found: &Found,
        why: &str,
    ) -> Result<Option<Processed>, IntakeError> {
        let client = self.connect().await?;
        if !receipts::try_lock(&client, found).await? {
            // Another process runs it now and records its own outcome.
            return Ok(Some(Processed::new(found, Action::SkippedBusy)));
        }
        let outcome = self.give_up_locked(&client, found, why).await;
        receipts::unlock(&client, found).await;
        outcome
    }

    async fn give_up_locked(
        &self,
        client: &Client,
        found: &Found,
        why: &str,
    ) -> Result<Option<Processed>, IntakeError> {
        let Some(r) = receipts::read(client, self.schema(), found).await? else {
            return Ok(None);
        };
        if r.poisoned {
            return Ok(Some(from_receipt(found, &r, Action::SkippedParked)));
        }
        if r.finished {
            return Ok(Some(from_receipt(found, &r, Action::SkippedDone)));
        }
        let mut p = from_receipt(found, &r, Action::Parked);
        p.error = Some(match &p.error {
            Some(last) => format!("{why}; before that: {last}"),
            None => why.to_owned(),
        });
        self.park(client, found, &mut p).await?;
        Ok(Some(p))
    }
}

/// The alert of a parked source: the file, the sync, the attempts, the last error, and that
/// it was parked. Its status is the sync's (FAILED when that has none worth an alert, as for
/// a sync that never got one).
pub(super) fn poison_report(found: &Found, p: &Processed, max_attempts: u32) -> AlertReport {
    let status = p
        .status
        .filter(|s| status_needs_alert(*s))
        .unwrap_or(SyncStatus::Failed);
    let sync_id = p
        .sync_id
        .clone()
        .unwrap_or_else(crate::pipeline::new_sync_id);
    let last = p.error.as_deref().unwrap_or("none recorded");
    let message = format!(
        "parked as poison after {} attempt(s) (the limit is {max_attempts}): datsync will not \
         retry {} (version {}) again automatically; a manual re-run still can (`datsync resume \
         {sync_id}`, or the HTTP handler's re-run); the last error: {last}",
        p.attempts, found.source, found.version
    );
    let summary = p.summary.as_ref();
    AlertReport {
        sync_id,
        file_name: found.name.clone(),
        file_path: found.source.clone(),
        status,
        error_message: Some(message),
        counts: summary.map(|s| s.counts).unwrap_or_default(),
        validation_errors_count: 0,
        validation_errors: Vec::new(),
        value_warnings: Vec::new(),
        unknown_columns: summary
            .map(|s| s.unknown_columns.clone())
            .unwrap_or_default(),
        checkpoint_dir: summary.and_then(|s| s.checkpoint_dir.clone()),
        duration: summary.map_or(std::time::Duration::ZERO, |s| {
            std::time::Duration::from_secs_f64(s.duration_s.max(0.0))
        }),
    }
}
