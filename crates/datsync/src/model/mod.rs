//! Shared vocabulary of every stage: sync ids, chunk ids, source fingerprints, line
//! positions, statuses ([`status`]), the registered sync and its counts ([`sync`]), row
//! errors ([`row_error`]), and the hex form of digests.

mod row_error;
mod status;
mod sync;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use row_error::{MAX_ERROR_VALUE_CHARS, RowError, RowErrorKind};
pub use status::{CheckpointStatus, ChunkStatus, RecordedStatus, SyncStatus, UnknownSyncStatus};
pub use sync::{ChunkCounts, SyncCounts, SyncRef};

/// A 1-based physical line number in the (decompressed) source; the header is line 1.
pub type LineNo = u64;

/// The name of the column holding each row's source line number in a text batch.
pub const LINE_COLUMN: &str = "_line";
/// The name of the column holding each row's own version in a typed batch (text, null for
/// none), present when the profile has `version` columns.
pub const VERSION_COLUMN: &str = "_version";
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

/// How a sync's chunks are cut from its source. It is recorded with the chunks (in the
/// manifest and in every ledger row), and a resume cuts the source again with the recorded
/// cut, whatever the settings say now: chunk ids must name the same lines on every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkCut {
    /// Rows per chunk at most.
    pub rows: u64,
    /// The byte budget per chunk; `None` for chunks cut by rows only (recorded before the
    /// byte budget existed): then every chunk but the last has exactly `rows` rows.
    pub bytes: Option<u64>,
    /// The longest line decoded into fields (a longer one costs this much of the budget);
    /// `None` when not recorded (the current setting applies).
    pub max_line_bytes: Option<u64>,
}

impl ChunkCut {
    /// A cut by row count alone (no byte budget, no recorded line limit).
    pub fn rows_only(rows: u64) -> Self {
        Self {
            rows,
            bytes: None,
            max_line_bytes: None,
        }
    }

    /// Whether a chunk of `rows` rows can only be the source's last: with a row count alone
    /// a shorter chunk was cut by the end of the source; with a byte budget, never sure.
    pub fn short_means_last(&self, rows: u64) -> bool {
        self.bytes.is_none() && rows < self.rows
    }
}

/// Where the decoding of a source can resume: just after the last record of a chunk, in the
/// decoder's state there. Recorded with each chunk (in the manifest), so that a resume skips
/// the text of the chunks recorded before it instead of decoding it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// Bytes of text before it (decompressed bytes, for gzip): the chunk's last record ends
    /// with the line break just before.
    pub text_offset: u64,
    /// Physical lines before it (the header, blank, skipped and comment lines included).
    pub lines: LineNo,
    /// Data rows before it (the rows of this chunk and of every chunk before it).
    pub rows: u64,
}

/// The SHA-256 of a source's first `bytes` bytes, as the hasher's saved state: recorded with
/// the resume point of a plain source's chunk, so that a resume takes the hash up there and
/// reads the source on from there instead of reading (and hashing) the bytes before it
/// again. Those bytes are trusted to be the ones hashed because the source is only resumed
/// when its fingerprint (size, modification time, ETag) is the checkpoint's. Saved at a
/// block boundary, the state holds none of the source's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceHashState {
    /// Stored bytes hashed: the source's first `bytes` bytes, a multiple of 64 (SHA-256's
    /// block), 1 to 64 bytes before the text offset of the resume point it is recorded with.
    pub bytes: u64,
    /// The format of `state`; a state of a format this build does not write is not used
    /// (the resume reads the source from its start).
    pub format: String,
    /// The hasher's state, base64.
    pub state: String,
}

/// What identifies the bytes of a source, so that a checkpoint is only ever resumed against
/// the same input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// The length up to which a piece of bytes is appended as one fixed block ([`short_block`]):
/// most fields and values are at most this long.
pub(crate) const SHORT_BLOCK: usize = 16;

/// The [`SHORT_BLOCK`] bytes of `data` from `start`, when the piece of `len` bytes there is at
/// most that long and `data` holds the whole block; `None` otherwise. The caller appends the
/// block (an inline move, not a `memcpy` call per piece) and cuts the bytes past the piece off
/// again, or, on `None`, appends the piece itself. Used by the decoder's columns and the COPY
/// encoder's text values.
#[inline]
pub(crate) fn short_block(data: &[u8], start: usize, len: usize) -> Option<&[u8; SHORT_BLOCK]> {
    if len > SHORT_BLOCK {
        return None;
    }
    data.get(start..start.checked_add(SHORT_BLOCK)?)?
        .try_into()
        .ok()
}

/// Lower-case hex of bytes (the form of every SHA-256 datsync records).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

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
