//! What the handler's status route answers about one sync: its `sync_metadata` row and its
//! receipt, without paths, errors or anything else a caller did not send.

use serde::Serialize;

use super::{Intake, IntakeError, receipts};
use crate::model::{SyncId, SyncStatus};

/// One sync as the status route shows it: status and counts, attempts and parking — never a
/// path, an error text or a setting (those go to the logs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncState {
    /// The sync.
    pub sync_id: String,
    /// `sync_metadata`'s status (`IN_PROGRESS` until a run ends), else the receipt's.
    pub status: SyncStatus,
    /// The source's file name.
    pub file_name: Option<String>,
    /// Rows read so far.
    pub rows_read: i64,
    /// Keys inserted.
    pub records_inserted: i64,
    /// Keys updated.
    pub records_updated: i64,
    /// Rows rejected.
    pub rows_rejected: i64,
    /// Duplicate keys replaced by a later line.
    pub rows_superseded: i64,
    /// When the sync was first started (RFC 3339, UTC); `None` before it registered.
    pub started_at: Option<String>,
    /// When it last ended (RFC 3339, UTC); `None` while in progress.
    pub completed_at: Option<String>,
    /// Attempts its receipt counted.
    pub attempts: Option<u32>,
    /// Nothing is left to do for its source version.
    pub finished: bool,
    /// Parked as poison: not retried automatically.
    pub parked: bool,
    /// When an unfinished sync is due again (UTC, RFC 3339).
    pub next_attempt_at: Option<String>,
}

impl Intake {
    /// What is recorded about `sync_id` (its `sync_metadata` row and the receipt pointing at
    /// it); `None` when neither knows it.
    pub async fn sync_state(&self, sync_id: &SyncId) -> Result<Option<SyncState>, IntakeError> {
        let client = self.connect().await?;
        let detail = crate::status::sync_detail(&client, self.schema(), sync_id.as_str())
            .await
            .map_err(|e| match e {
                crate::status::ReadError::Query(pg) => IntakeError::Pg(pg),
                other => IntakeError::Internal(other.to_string()),
            })?;
        let receipt = receipts::for_sync(&client, self.schema(), sync_id).await?;
        if detail.is_none() && receipt.is_none() {
            return Ok(None);
        }
        let record = detail.map(|d| d.record);
        let (name, receipt) = match receipt {
            Some((name, r)) => (Some(name), Some(r)),
            None => (None, None),
        };
        let status = record
            .as_ref()
            .and_then(|r| r.status.known())
            .or_else(|| receipt.as_ref().map(|r| r.status))
            .unwrap_or(SyncStatus::InProgress);
        let count = |f: fn(&crate::status::SyncRecord) -> i64| record.as_ref().map_or(0, f);
        Ok(Some(SyncState {
            sync_id: sync_id.to_string(),
            status,
            file_name: record.as_ref().and_then(|r| r.file_name.clone()).or(name),
            rows_read: count(|r| r.records_total),
            records_inserted: count(|r| r.records_inserted),
            records_updated: count(|r| r.records_updated),
            rows_rejected: count(|r| r.records_failed),
            rows_superseded: count(|r| r.records_superseded),
            started_at: record.as_ref().map(|r| r.started_at.clone()),
            completed_at: record.as_ref().and_then(|r| r.completed_at.clone()),
            attempts: receipt.as_ref().map(|r| r.attempts),
            finished: receipt.as_ref().is_some_and(|r| r.finished),
            parked: receipt.as_ref().is_some_and(|r| r.poisoned),
            next_attempt_at: receipt
                .as_ref()
                .filter(|r| !r.finished && !r.poisoned)
                .map(|r| r.next_attempt_at.clone()),
        }))
    }
}
