//! Shared vocabulary of every stage: sync ids, chunk ids, source fingerprints, line
//! positions and statuses.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A 1-based physical line number in the (decompressed) source; the header is line 1.
pub type LineNo = u64;

/// The name of the column holding each row's source line number in a text batch.
pub const LINE_COLUMN: &str = "_line";
/// The name of the column holding a parse-level row error (a ragged row), else null.
pub const ERROR_COLUMN: &str = "_error";
/// The name of the column holding the raw text of a row with a parse-level error, else null.
pub const RAW_COLUMN: &str = "_raw";

/// Identifies one sync of one source: `sync_YYYYMMDD_HHMMSS_xxxxxxxx` (UTC start time and
/// eight hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SyncId(String);

/// A string that is not a valid sync id.
#[derive(Debug, thiserror::Error)]
#[error("invalid sync id `{0}`: expected sync_YYYYMMDD_HHMMSS_xxxxxxxx")]
pub struct InvalidSyncId(pub String);

impl SyncId {
    /// Makes a sync id from a UTC start time and eight random hex digits.
    pub fn new(started: chrono::DateTime<chrono::Utc>, random: u32) -> Self {
        Self(format!(
            "sync_{}_{random:08x}",
            started.format("%Y%m%d_%H%M%S")
        ))
    }

    /// Parses and checks a sync id.
    pub fn parse(s: &str) -> Result<Self, InvalidSyncId> {
        let b = s.as_bytes();
        let ok = b.len() == 29
            && s.starts_with("sync_")
            && b[5..13].iter().all(u8::is_ascii_digit)
            && b[13] == b'_'
            && b[14..20].iter().all(u8::is_ascii_digit)
            && b[20] == b'_'
            && b[21..]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidSyncId(s.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SyncId {
    type Error = InvalidSyncId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SyncId> for String {
    fn from(id: SyncId) -> Self {
        id.0
    }
}

impl fmt::Display for SyncId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The 0-based index of a chunk within a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChunkId(pub u32);

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What identifies the bytes of a source, so that a checkpoint is only ever resumed against
/// the same input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFingerprint {
    /// Size in bytes of the source as stored (compressed, if it is gzip).
    pub size_bytes: u64,
    /// The object store's ETag, when the source is an object.
    pub etag: Option<String>,
    /// Last modification time (RFC 3339), when known.
    pub modified: Option<String>,
    /// Lower-case hex SHA-256 of the stored bytes, once they have been read to the end.
    pub sha256: Option<String>,
}

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

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
        f.write_str(self.as_str())
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
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_ids_round_trip_and_reject_garbage() {
        let t = chrono::DateTime::parse_from_rfc3339("2025-01-29T14:30:22Z")
            .unwrap()
            .to_utc();
        let id = SyncId::new(t, 0xa3f4_b2c1);
        assert_eq!(id.as_str(), "sync_20250129_143022_a3f4b2c1");
        assert_eq!(SyncId::parse(id.as_str()).unwrap(), id);
        for bad in [
            "",
            "sync_",
            "sync_20250129_143022_A3F4B2C1",
            "sync_2025012_143022_a3f4b2c1x",
            "../etc",
        ] {
            assert!(SyncId::parse(bad).is_err(), "{bad}");
        }
    }
}
