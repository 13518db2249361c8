//! The manifest document, journal entries, and the source fingerprint check.

use serde::{Deserialize, Serialize};

use super::codec::ChunkCompression;
use crate::model::{
    CheckpointStatus, ChunkCut, ChunkId, ChunkStatus, LineNo, ResumePoint, SourceFingerprint,
    SourceHashState, SyncId,
};

/// The manifest format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// `manifest.json`: the seed's fields, spelled as in the seed, plus ours (format version,
/// source fingerprint, compression, journal position, sync error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The manifest format ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The sync.
    pub sync_id: SyncId,
    /// The source's base name.
    pub source_file: String,
    /// The source as given (path or URL).
    pub source_path: String,
    /// The source's size in bytes.
    pub file_size_bytes: u64,
    /// Chunks recorded (final once the conversion is finalized).
    pub total_chunks: u32,
    /// Rows per chunk at most.
    pub chunk_size: u64,
    /// The byte budget per chunk (see [`ChunkCut`]); absent in manifests written before it
    /// existed, whose chunks were cut by rows only.
    #[serde(default)]
    pub chunk_bytes: Option<u64>,
    /// The longest line decoded into fields when the chunks were cut.
    #[serde(default)]
    pub max_line_bytes: Option<u64>,
    /// The sync's status.
    pub status: CheckpointStatus,
    /// The stage reached (kept when the status is `failed`).
    pub phase: CheckpointStatus,
    /// When the checkpoint was created.
    pub created_at: String,
    /// The last change.
    pub updated_at: String,
    /// What identifies the source's bytes.
    pub source_fingerprint: SourceFingerprint,
    /// The chunk files' compression (`none`: but a file of more than
    /// [`super::codec::UNCOMPRESSED_MAX_TEXT_BYTES`] of text, written with Snappy; each file's
    /// footer says which).
    pub compression: ChunkCompression,
    /// The last journal entry folded into this document.
    pub journal_seq: u64,
    /// Why the sync failed, when it did.
    pub error: Option<String>,
    /// The chunks, by id.
    pub chunks: Vec<ChunkEntry>,
}

/// One chunk in the manifest: the seed's fields plus ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEntry {
    /// The chunk's id.
    pub chunk_id: ChunkId,
    /// Its state.
    pub status: ChunkStatus,
    /// Rows in the chunk.
    pub rows: u64,
    /// The Parquet file's name, relative to the checkpoint directory.
    pub parquet_path: String,
    /// The Parquet file's size.
    pub parquet_size_bytes: u64,
    /// When the Parquet file was recorded.
    pub created_at: String,
    /// When the chunk was completed or skipped.
    pub processed_at: Option<String>,
    /// Rows inserted by the load.
    pub records_inserted: u64,
    /// Rows updated by the load.
    pub records_updated: u64,
    /// Validation errors found in the chunk.
    pub validation_errors: u64,
    /// The first row's source line.
    pub first_line: LineNo,
    /// The last row's source line.
    pub last_line: LineNo,
    /// Lower-case hex SHA-256 of the Parquet file.
    pub parquet_sha256: String,
    /// Times processing was started.
    pub attempts: u32,
    /// The last error, when the chunk failed (or why it was skipped).
    pub error: Option<String>,
    /// When the chunk last failed.
    pub failed_at: Option<String>,
    /// Rows rejected by validation.
    pub rows_rejected: u64,
    /// The decoder cut this chunk at the end of the source: it is the last one. (A chunk
    /// cut by the byte budget is short too, so a short chunk alone proves nothing.)
    #[serde(default)]
    pub source_end: bool,
    /// Where the decoding of the source can resume after this chunk (see
    /// [`crate::parse::Decoder::resume_point`]): a resume skips the text of the chunks
    /// recorded before it instead of decoding it again. Absent for the source's last chunk
    /// and in manifests written before it existed (their resumes decode from the start).
    #[serde(default)]
    pub resume_point: Option<ResumePoint>,
    /// The SHA-256 of the source's bytes up to the resume point, as the hasher's state (a
    /// plain source's; absent for gzip, where a resume inflates the text before the point
    /// anyway, and in manifests written before it existed): a resume takes it up and reads
    /// the source on from the point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_hash: Option<SourceHashState>,
}

/// What loading a chunk did, for [`super::CheckpointManager::mark_chunk_complete`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkOutcome {
    /// Rows inserted.
    pub records_inserted: u64,
    /// Rows updated.
    pub records_updated: u64,
    /// Validation errors found.
    pub validation_errors: u64,
    /// Rows rejected.
    pub rows_rejected: u64,
}

/// One journal object: a chunk transition with the sync's state after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    /// The entry's sequence number (also in its name).
    pub seq: u64,
    /// The sync's `updated_at` after the transition.
    pub updated_at: String,
    /// The sync's status after the transition.
    pub status: CheckpointStatus,
    /// The sync's phase after the transition.
    pub phase: CheckpointStatus,
    /// The sync's error after the transition.
    pub error: Option<String>,
    /// The chunk's whole entry after the transition.
    pub chunk: ChunkEntry,
}

impl Manifest {
    /// The chunk with this id.
    pub fn chunk(&self, id: ChunkId) -> Option<&ChunkEntry> {
        self.index(id).ok().map(|i| &self.chunks[i])
    }

    pub(super) fn index(&self, id: ChunkId) -> Result<usize, usize> {
        self.chunks.binary_search_by_key(&id, |c| c.chunk_id)
    }

    /// Inserts or replaces a chunk's entry, keeping `chunks` sorted and `total_chunks` exact.
    pub(super) fn put_chunk(&mut self, entry: ChunkEntry) {
        match self.index(entry.chunk_id) {
            Ok(i) => self.chunks[i] = entry,
            Err(i) => self.chunks.insert(i, entry),
        }
        self.total_chunks = u32::try_from(self.chunks.len()).unwrap_or(u32::MAX);
    }

    /// Applies a journal entry (whole states: applying twice changes nothing).
    pub(super) fn apply(&mut self, entry: JournalEntry) {
        self.updated_at = entry.updated_at;
        self.status = entry.status;
        self.phase = entry.phase;
        self.error = entry.error;
        self.put_chunk(entry.chunk);
    }

    /// Whether every chunk is completed or skipped.
    pub fn all_done(&self) -> bool {
        self.chunks.iter().all(|c| c.status.is_done())
    }

    /// Rows in all chunks.
    pub fn total_rows(&self) -> u64 {
        self.chunks.iter().map(|c| c.rows).sum()
    }

    /// How the chunks are cut.
    pub fn cut(&self) -> ChunkCut {
        ChunkCut {
            rows: self.chunk_size,
            bytes: self.chunk_bytes,
            max_line_bytes: self.max_line_bytes,
        }
    }

    /// Whether the last recorded chunk is the source's last: the decoder said so when it
    /// cut it, or (chunks cut by rows only) it is shorter than the chunk size.
    pub fn last_chunk_ends_source(&self) -> bool {
        self.chunks
            .last()
            .is_some_and(|c| c.source_end || self.cut().short_means_last(c.rows))
    }
}

/// How a source differs from the one a manifest was made from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the source of {sync_id} has changed since its checkpoint was made ({}); start a new \
     sync with `--fresh`",
    differences.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
)]
pub struct SourceMismatch {
    /// The sync.
    pub sync_id: SyncId,
    /// What differs.
    pub differences: Vec<FingerprintDifference>,
}

/// One differing fingerprint field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} was {recorded}, is now {found}")]
pub struct FingerprintDifference {
    /// `size_bytes`, `etag`, `modified` or `sha256`.
    pub field: &'static str,
    /// The manifest's value.
    pub recorded: String,
    /// The source's value.
    pub found: String,
}

/// Checks that `found` describes the same bytes as the manifest's fingerprint.
///
/// The sizes must be equal. When both sides have a SHA-256 it decides alone (a copy with a
/// new modification time is still the same source); otherwise the `ETag`s are compared when
/// both are known, and the modification times when both are known.
pub fn verify_source(manifest: &Manifest, found: &SourceFingerprint) -> Result<(), SourceMismatch> {
    verify_fingerprint(&manifest.sync_id, &manifest.source_fingerprint, found)
}

/// [`verify_source`] against a fingerprint recorded elsewhere (`sync_metadata`'s, when the
/// checkpoint is gone).
pub fn verify_fingerprint(
    sync_id: &SyncId,
    recorded: &SourceFingerprint,
    found: &SourceFingerprint,
) -> Result<(), SourceMismatch> {
    let mut differences = Vec::new();
    let mut check = |field, a: &Option<String>, b: &Option<String>| {
        if let (Some(a), Some(b)) = (a, b)
            && a != b
        {
            differences.push(FingerprintDifference {
                field,
                recorded: a.clone(),
                found: b.clone(),
            });
        }
    };
    if recorded.size_bytes != found.size_bytes {
        check(
            "size_bytes",
            &Some(recorded.size_bytes.to_string()),
            &Some(found.size_bytes.to_string()),
        );
    }
    if recorded.sha256.is_some() && found.sha256.is_some() {
        check("sha256", &recorded.sha256, &found.sha256);
    } else {
        check("etag", &recorded.etag, &found.etag);
        check("modified", &recorded.modified, &found.modified);
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(SourceMismatch {
            sync_id: sync_id.clone(),
            differences,
        })
    }
}

/// Parses a manifest, checking its format version first.
pub(super) fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ParseProblem> {
    #[derive(Deserialize)]
    struct Probe {
        format_version: Option<u32>,
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseProblem::Corrupt("empty file".to_owned()));
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| corrupt(&e))?;
    match probe.format_version {
        None => return Err(ParseProblem::Corrupt("no format_version field".to_owned())),
        Some(v) if v != FORMAT_VERSION => return Err(ParseProblem::Version(v)),
        Some(_) => {}
    }
    serde_json::from_slice(bytes).map_err(|e| corrupt(&e))
}

/// Parses a journal entry.
pub(super) fn parse_entry(bytes: &[u8]) -> Result<JournalEntry, ParseProblem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseProblem::Corrupt("empty file".to_owned()));
    }
    serde_json::from_slice(bytes).map_err(|e| corrupt(&e))
}

fn corrupt(e: &serde_json::Error) -> ParseProblem {
    let what = if e.is_eof() {
        "truncated"
    } else {
        "not a valid manifest"
    };
    ParseProblem::Corrupt(format!("{what}: {e}"))
}

/// Why a manifest or journal entry could not be read.
#[derive(Debug)]
pub(super) enum ParseProblem {
    Corrupt(String),
    Version(u32),
}
