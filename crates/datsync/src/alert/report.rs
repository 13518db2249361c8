//! The plain data an alert is made from: what the pipeline knows when a sync ends.

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::model::{RowError, SyncCounts, SyncId, SyncStatus};

/// How many validation errors an alert lists row by row; the rest are only counted.
pub const MAX_LISTED_VALIDATION_ERRORS: usize = 20;

/// What the pipeline reports about one finished (or aborted) sync. Filled by the pipeline,
/// read by [`crate::alert::Alerter`]; it holds no connection strings or passwords.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertReport {
    /// The sync this report is about.
    pub sync_id: SyncId,
    /// The source file's name (last path segment).
    pub file_name: String,
    /// The source's path or object URL, as the user gave it.
    pub file_path: String,
    /// The final status of the sync.
    pub status: SyncStatus,
    /// Why the sync failed or aborted, when it did.
    pub error_message: Option<String>,
    /// Row and chunk counts.
    #[serde(flatten)]
    pub counts: SyncCounts,
    /// How many rows failed validation in total.
    pub validation_errors_count: u64,
    /// The first rows that failed validation, in line order (the pipeline may pass more
    /// than [`MAX_LISTED_VALIDATION_ERRORS`]; alerts list at most that many).
    pub validation_errors: Vec<RowError>,
    /// The first values not loaded as written (their count is `counts.value_warnings`);
    /// alerts list at most [`MAX_LISTED_VALIDATION_ERRORS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_warnings: Vec<RowError>,
    /// Header columns the profile does not know (canonical names), not loaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_columns: Vec<String>,
    /// Where the sync's checkpoints (manifest, chunks, rejects) are kept, when they are.
    pub checkpoint_dir: Option<String>,
    /// How long the sync ran.
    #[serde(rename = "duration_s", serialize_with = "seconds")]
    pub duration: Duration,
}

impl AlertReport {
    /// Whether a sync that ended with this report's status raises an alert: FAILED,
    /// BAD_INPUT and PARTIAL_SUCCESS do; SUCCESS and IN_PROGRESS do not.
    pub fn needs_alert(&self) -> bool {
        status_needs_alert(self.status)
    }

    /// The validation errors an alert lists: at most [`MAX_LISTED_VALIDATION_ERRORS`].
    pub fn listed_validation_errors(&self) -> &[RowError] {
        let n = self
            .validation_errors
            .len()
            .min(MAX_LISTED_VALIDATION_ERRORS);
        &self.validation_errors[..n]
    }

    /// The value warnings an alert lists: at most [`MAX_LISTED_VALIDATION_ERRORS`].
    pub fn listed_value_warnings(&self) -> &[RowError] {
        let n = self.value_warnings.len().min(MAX_LISTED_VALIDATION_ERRORS);
        &self.value_warnings[..n]
    }

    /// A copy with secrets masked in every free-text field that could carry one (error
    /// message, file path, checkpoint location); see [`crate::alert::redact_secrets`].
    #[must_use]
    pub fn redacted(&self) -> Self {
        let mut r = self.clone();
        r.error_message = r.error_message.as_deref().map(super::redact_secrets);
        r.file_path = super::redact_secrets(&r.file_path);
        r.checkpoint_dir = r.checkpoint_dir.as_deref().map(super::redact_secrets);
        r.validation_errors.truncate(MAX_LISTED_VALIDATION_ERRORS);
        r.value_warnings.truncate(MAX_LISTED_VALIDATION_ERRORS);
        r
    }
}

/// Whether a sync that ended with `status` raises an alert (FAILED, BAD_INPUT,
/// PARTIAL_SUCCESS).
pub fn status_needs_alert(status: SyncStatus) -> bool {
    matches!(
        status,
        SyncStatus::Failed | SyncStatus::BadInput | SyncStatus::PartialSuccess
    )
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}
