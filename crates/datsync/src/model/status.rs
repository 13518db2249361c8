//! Statuses: of a sync (`sync_metadata.status`), of a chunk and of a checkpoint (the
//! manifest's states).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The final (or current) status of a sync, as written to `sync_metadata.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncStatus {
    /// Running or interrupted.
    InProgress,
    /// Every chunk committed; checkpoints removed.
    Success,
    /// Some chunks failed (kept for retry) or some rows were rejected.
    PartialSuccess,
    /// A fatal input error: missing required column, error rate above the threshold.
    BadInput,
    /// A fatal error that is not the input's fault.
    Failed,
}

impl SyncStatus {
    /// The text stored in `sync_metadata.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Success => "SUCCESS",
            Self::PartialSuccess => "PARTIAL_SUCCESS",
            Self::BadInput => "BAD_INPUT",
            Self::Failed => "FAILED",
        }
    }
}

/// Every sync status, in the order of [`SyncStatus::as_str`].
const SYNC_STATUSES: [SyncStatus; 5] = [
    SyncStatus::InProgress,
    SyncStatus::Success,
    SyncStatus::PartialSuccess,
    SyncStatus::BadInput,
    SyncStatus::Failed,
];

/// Text that is not a sync status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a sync status (IN_PROGRESS, SUCCESS, PARTIAL_SUCCESS, BAD_INPUT or FAILED)")]
pub struct UnknownSyncStatus(pub String);

impl FromStr for SyncStatus {
    type Err = UnknownSyncStatus;

    /// Parses the text stored in `sync_metadata.status` (and `datsync_receipts.status`):
    /// exactly what [`SyncStatus::as_str`] writes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SYNC_STATUSES
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownSyncStatus(s.to_owned()))
    }
}

/// A sync's status as `sync_metadata` holds it: one of datsync's, or the text another loader
/// wrote there before datsync adopted the database (`init-db --adopt`), shown as it was
/// spelled, never reinterpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedStatus {
    /// A status datsync writes.
    Known(SyncStatus),
    /// Any other text (a legacy loader's `success`, `COMPLETED` …).
    Legacy(String),
}

impl RecordedStatus {
    /// Reads the stored text.
    pub fn from_stored(text: &str) -> Self {
        text.parse()
            .map_or_else(|_| Self::Legacy(text.to_owned()), Self::Known)
    }

    /// The status when it is one of datsync's.
    pub fn known(&self) -> Option<SyncStatus> {
        match self {
            Self::Known(s) => Some(*s),
            Self::Legacy(_) => None,
        }
    }

    /// The text as stored.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(s) => s.as_str(),
            Self::Legacy(t) => t,
        }
    }
}

impl PartialEq<SyncStatus> for RecordedStatus {
    fn eq(&self, other: &SyncStatus) -> bool {
        self.known() == Some(*other)
    }
}

impl From<SyncStatus> for RecordedStatus {
    fn from(s: SyncStatus) -> Self {
        Self::Known(s)
    }
}

impl fmt::Display for RecordedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for RecordedStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The state of one chunk in a checkpoint manifest (the seed's chunk states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkStatus {
    /// Parquet written, waiting to be loaded.
    Ready,
    /// Being loaded (or interrupted while being loaded).
    Processing,
    /// Loaded and committed.
    Completed,
    /// Loading failed; will be retried.
    Failed,
    /// Intentionally not loaded (for example every row was invalid).
    Skipped,
}

impl ChunkStatus {
    /// The text used in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// Whether the chunk still has to be loaded: ready, failed, or processing when a run was
    /// interrupted.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Ready | Self::Processing | Self::Failed)
    }

    /// Whether nothing more will happen to the chunk: completed or skipped.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Completed | Self::Skipped)
    }
}

impl fmt::Display for ChunkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The state of a checkpointed sync, used for the manifest's `status` and `phase`: converting
/// → ready → processing → completed, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointStatus {
    /// Phase 1: the source is being converted into Parquet chunks.
    Converting,
    /// Every chunk is converted; none has been loaded yet.
    Ready,
    /// Phase 2: chunks are being loaded.
    Processing,
    /// Every chunk is completed or skipped.
    Completed,
    /// The sync stopped on an error; it can be resumed.
    Failed,
}

impl CheckpointStatus {
    /// The text used in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Converting => "converting",
            Self::Ready => "ready",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Whether a sync in this state may still be running (converting, ready or processing).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Converting | Self::Ready | Self::Processing)
    }
}

impl fmt::Display for CheckpointStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_statuses_round_trip_through_their_text() {
        for status in SYNC_STATUSES {
            assert_eq!(status.as_str().parse::<SyncStatus>(), Ok(status));
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
        }
        for bad in ["", "success", "DONE", " SUCCESS"] {
            let e = bad.parse::<SyncStatus>().unwrap_err();
            assert!(e.to_string().contains("not a sync status"), "{e}");
        }
        assert_eq!(format!("{:<12}|", SyncStatus::Failed), "FAILED      |");
    }
}
