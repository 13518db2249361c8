//! Phase 1: the reader thread decodes the source (hashing it on the way) and the converter
//! task saves each new chunk as Parquet, then hands it to the processor.
//!
//! A resumed conversion does not decode the chunks recorded before it again when they are
//! the source's first ones: the decoder reads the header, then skips the text up to where
//! the last of them ended ([`ResumeFrom`], from its manifest entry) and cuts the next chunk
//! there. A gzip source is still read and inflated from its start; a plain one is read on
//! from the resume point, its SHA-256 up to there taken from the manifest entry ([`Input`]),
//! and the whole source's SHA-256 is recorded at the end either way.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;

use arrow_array::RecordBatch;
use tokio::sync::{Mutex, mpsc};

use super::Progress;
use super::chunk::{Prepared, prepare};
use super::halt::{BadInput, Halt, SyncFailure};
use crate::checkpoint::Manifest;
use crate::checkpoint::{CheckpointManager, ChunkCompression};
use crate::model::{ChunkId, ResumePoint, SourceFingerprint, SourceHashState, SyncId};
use crate::parse::{BatchCut, Decoder, ParseOptions, READ_BUFFER_BYTES};
use crate::profile::Profile;
use crate::source::{SourceHasher, SourceRef};
use crate::telemetry::{ChunkConverted, Telemetry};
use crate::validate::ValidateError;

/// Batches waiting between the converter and the processor. The converter takes a slot
/// ([`mpsc::Sender::reserve`]) before it asks the reader for the next batch, and the reader
/// decodes a batch only when asked: besides the batch the processor works on, at most one
/// batch is being decoded, encoded, validated and typed (its text rows dropped once
/// validated, its accepted rows once typed), or waits in the slot, typed (the memory budget
/// counts on it).
const CHANNEL_DEPTH: usize = 1;

/// A chunk ready for phase 2.
pub(super) struct Converted {
    pub(super) chunk: ChunkId,
    pub(super) rows: Rows,
    /// The Parquet file's SHA-256 (empty without checkpoints).
    pub(super) checksum: String,
    /// Bytes of the source read when the chunk was cut (as stored: compressed for gzip);
    /// `None` for a chunk read back from the checkpoint.
    pub(super) source_bytes: Option<u64>,
}

/// A chunk's rows as phase 2 receives them.
pub(super) enum Rows {
    /// As decoded (or read back from the checkpoint): the loader validates and types them.
    Text(RecordBatch),
    /// Validated and typed by the converter, beside the load of the chunk before.
    Prepared(Box<Result<Prepared, ValidateError>>),
}

/// What phase 1 found, once it read the whole source.
#[derive(Debug, Clone)]
pub(super) struct ConvertOutcome {
    /// Data rows in the source.
    pub(super) rows: u64,
    /// Chunks in the source.
    pub(super) chunks: u32,
}

/// Where a resumed conversion starts decoding: after the chunks before `next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResumeFrom {
    /// The first chunk decoded.
    pub(super) next: ChunkId,
    /// Where the chunk before it ended.
    pub(super) point: ResumePoint,
    /// The source's SHA-256 up to the point, when recorded (plain sources): the bytes
    /// before the point are then not read again.
    pub(super) hash: Option<SourceHashState>,
}

impl ResumeFrom {
    /// After the latest chunk before `until` of the manifest's leading run (chunks 0, 1, ...
    /// with no gap) whose resume point agrees with its entry: its rows are the rows of the
    /// chunks up to it, and it is past the chunk's last line. `None` when there is none
    /// (chunk 0 is not recorded, or the manifest predates resume points): the source is
    /// decoded from the start.
    pub(super) fn of(manifest: &Manifest, until: ChunkId) -> Option<Self> {
        // A conversion that ended once and was reopened by a repair checks the whole source
        // against the SHA-256 it recorded: it reads the source from its start.
        let whole_hash_known = manifest.source_fingerprint.sha256.is_some();
        let mut rows = 0u64;
        let mut found = None;
        for (i, entry) in (0u32..).zip(&manifest.chunks) {
            if entry.chunk_id.0 != i || entry.chunk_id >= until {
                break;
            }
            rows = rows.saturating_add(entry.rows);
            if let Some(point) = entry.resume_point
                && point.rows == rows
                && point.lines >= entry.last_line
            {
                found = Some(Self {
                    next: ChunkId(i.saturating_add(1)),
                    point,
                    // Saved at the block boundary just before the point.
                    hash: entry.source_hash.clone().filter(|h| {
                        !whole_hash_known
                            && h.bytes > 0
                            && h.bytes % HASH_BLOCK as u64 == 0
                            && h.bytes < point.text_offset
                            && point.text_offset - h.bytes <= HASH_BLOCK as u64
                    }),
                });
            }
        }
        found
    }
}

enum ReaderMsg {
    Batch {
        chunk: ChunkId,
        batch: RecordBatch,
        /// The offset the reader is at (progress).
        bytes_read: u64,
        /// Bytes of it jumped over, not read ([`Input::try_jump`]): not counted as read.
        bytes_skipped: u64,
        /// The decoder cut it at the end of the source.
        source_end: bool,
        /// Where decoding resumes after it.
        resume_point: Option<ResumePoint>,
        /// The source's SHA-256 up to the resume point (plain sources).
        source_hash: Option<SourceHashState>,
    },
    Done {
        rows: u64,
        chunks: u32,
        sha256: String,
        bytes: u64,
        /// Bytes jumped over, not read.
        bytes_skipped: u64,
    },
}

/// The reader's side of the hand-over: batches go out one at a time, each only once the
/// converter asked for it (a token on `wanted`).
struct Handover {
    tx: mpsc::Sender<Result<ReaderMsg, Halt>>,
    wanted: mpsc::Receiver<()>,
}

/// What the reader decodes: the source, how, and from where.
struct Reading {
    path: SourceRef,
    profile: Profile,
    options: ParseOptions,
    /// Chunks not sent (decoded and dropped).
    recorded: BTreeSet<ChunkId>,
    /// Where decoding starts, past the chunks before it.
    from: Option<ResumeFrom>,
}

impl Reading {
    /// The decoder, at the resume point when there is one, and the id of its first chunk.
    fn decoder(&self) -> (Decoder, u32) {
        let decoder = Decoder::new(&self.profile, self.options);
        let Some(from) = &self.from else {
            return (decoder, 0);
        };
        tracing::info!(source = %self.path.name(), chunks_skipped = from.next.0,
            resume_line = from.point.lines + 1, text_bytes_skipped = from.point.text_offset,
            "the chunks recorded before this run are not decoded again: decoding resumes after them");
        (decoder.resume_at(from.point), from.next.0)
    }

    /// Logs what the decoder did once the source ended (`chunks` of it).
    fn decoded(&self, decoder: &Decoder, chunks: u32) {
        let name = self.path.name();
        let stats = decoder.stats();
        let rows_decoded = stats
            .rows
            .saturating_sub(self.from.as_ref().map_or(0, |f| f.point.rows));
        tracing::debug!(source = %name, rows = stats.rows, rows_decoded, long_lines = stats.long_lines,
            ragged_rows = stats.ragged_rows, unknown_columns = stats.unknown_columns.len(),
            byte_cut_chunks = stats.byte_cut_batches, "source decoded");
        if self.from.is_some() {
            tracing::info!(source = %name, rows = stats.rows, rows_decoded, chunks,
                "source decoded from the resume point");
        }
    }
}

/// Decodes the source on a thread of its own and sends the batches of the chunks not
/// recorded, one per token sent on the returned sender.
fn spawn_reader(reading: Reading) -> (mpsc::Sender<()>, mpsc::Receiver<Result<ReaderMsg, Halt>>) {
    let (tx, rx) = mpsc::channel(1);
    let (want_tx, wanted) = mpsc::channel(1);
    std::thread::spawn(move || {
        let mut handover = Handover { tx, wanted };
        let result = read_source(&reading, &mut handover);
        if let Err(halt) = result {
            let _ = handover.tx.blocking_send(Err(halt));
        }
    });
    (want_tx, rx)
}

/// The hash state is saved at a multiple of SHA-256's block.
const HASH_BLOCK: usize = crate::source::SHA256_BLOCK_BYTES;

/// The source as the reader thread reads it: its bytes hashed as the decoder consumes them,
/// so that the hash can be saved at a resume point, and the jump to a resume point whose
/// hash was recorded, so that a resume reads the source on from there.
///
/// The hasher stays at a block boundary, the last 1 to 64 bytes consumed held in `tail`:
/// its saved state is then the state words alone, with none of the source's bytes (a line
/// may hold personal data), and a resume reads on from that boundary, the 1 to 64 bytes
/// before the point fed to the decoder again (it checks the last is a line break).
struct Input {
    reader: Box<dyn Read + Send>,
    /// The offset the reader is at: bytes of the source read or jumped over so far.
    read_to: u64,
    /// Bytes jumped over (not read) so far: `read_to - skipped` were read.
    skipped: u64,
    hasher: SourceHasher,
    /// Bytes consumed and not hashed yet (1 to 64 once any were consumed).
    tail: Vec<u8>,
    /// The recorded hash state to jump to, restored, until the jump is made or cannot be
    /// any more.
    jump: Option<SourceHasher>,
}

impl Input {
    fn open(reading: &Reading) -> Result<Self, Halt> {
        let saved = reading.from.as_ref().and_then(|f| f.hash.as_ref());
        let jump = saved.and_then(SourceHasher::restore);
        if let (Some(saved), None) = (saved, &jump) {
            tracing::info!(source = %reading.path.name(), format = %saved.format,
                "the recorded hash state cannot be used: the source is read from its start");
        }
        // Before a jump only the header is wanted: a blob is fetched in ranges of one read
        // buffer until then, not of BLOB_RANGE_BYTES.
        let range = if jump.is_some() {
            READ_BUFFER_BYTES as u64
        } else {
            crate::source::BLOB_RANGE_BYTES
        };
        Ok(Self {
            reader: reading.path.reader_at_in_ranges(0, range)?,
            read_to: 0,
            skipped: 0,
            hasher: SourceHasher::default(),
            tail: Vec::with_capacity(2 * HASH_BLOCK),
            jump,
        })
    }

    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buffer)?;
        self.read_to += n as u64;
        Ok(n)
    }

    /// Hashes the bytes the decoder consumed, all but the last 1 to 64.
    fn consumed(&mut self, mut bytes: &[u8]) {
        if self.tail.len() + bytes.len() <= HASH_BLOCK {
            self.tail.extend_from_slice(bytes);
            return;
        }
        if !self.tail.is_empty() {
            let (fill, rest) = bytes.split_at(HASH_BLOCK - self.tail.len());
            self.tail.extend_from_slice(fill);
            self.hasher.update(&self.tail);
            self.tail.clear();
            bytes = rest;
        }
        let keep = (bytes.len().saturating_sub(1)) % HASH_BLOCK + 1;
        let (whole, rest) = bytes.split_at(bytes.len().saturating_sub(keep));
        self.hasher.update(whole);
        self.tail.extend_from_slice(rest);
    }

    /// Bytes consumed so far.
    fn consumed_bytes(&self) -> u64 {
        self.hasher.bytes() + self.tail.len() as u64
    }

    /// The SHA-256 of every byte consumed.
    fn sha256_hex(&self) -> String {
        let mut all = self.hasher.clone();
        all.update(&self.tail);
        all.sha256_hex()
    }

    /// Once the decoder has read the header and skips the text up to the resume point:
    /// takes the recorded hash up and reads the source on from where it ends. `true` when
    /// it jumped: what is left of the current buffer is not fed.
    fn try_jump(&mut self, decoder: &mut Decoder, path: &SourceRef) -> Result<bool, Halt> {
        let Some(at) = self.jump.as_ref().map(SourceHasher::bytes) else {
            return Ok(false);
        };
        if self.consumed_bytes() > at {
            // The decoder is past it already: the hash from the start goes on.
            self.jump = None;
            return Ok(false);
        }
        if !decoder.skip_to(at) {
            return Ok(false);
        }
        let Some(restored) = self.jump.take() else {
            return Ok(false);
        };
        let not_read = at - self.read_to.min(at);
        tracing::info!(source = %path.name(), source_bytes_not_read = not_read,
            resume_byte = at, "the source is read on from the resume point: the bytes before it are not read again");
        self.reader = path.reader_at(at)?;
        self.skipped += not_read;
        self.read_to = at;
        self.hasher = restored;
        self.tail.clear();
        Ok(true)
    }

    /// The end of the source: its rows and chunks, and the SHA-256 and length of all of it.
    fn done(&self, decoder: &Decoder, chunks: u32) -> ReaderMsg {
        ReaderMsg::Done {
            rows: decoder.stats().rows,
            chunks,
            sha256: self.sha256_hex(),
            bytes: self.consumed_bytes(),
            bytes_skipped: self.skipped,
        }
    }

    /// The hash state to record with `point`, the resume point after the batch just taken:
    /// for a plain source (its text offsets are its byte offsets) consumed exactly up to it.
    fn saved_at(&self, point: &ResumePoint, decoder: &Decoder) -> Option<SourceHashState> {
        (!decoder.is_gzip() && point.text_offset == self.consumed_bytes())
            .then(|| self.hasher.save())
    }
}

fn read_source(reading: &Reading, handover: &mut Handover) -> Result<(), Halt> {
    let recorded = &reading.recorded;
    let name = reading.path.name();
    let mut input = Input::open(reading)?;
    let (mut decoder, mut next) = reading.decoder();
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    let bad = |error| BadInput::Parse {
        source_name: name.clone(),
        error,
    };
    // Whether the converter asked for the batch being decoded: a batch is decoded (and so
    // held) only once it is wanted. Recorded chunks are dropped as decoded.
    let mut wanted = false;
    let requests = &mut handover.wanted;
    // Waits until the converter wants a batch; `false` once it is gone.
    let mut wait = |wanted: &mut bool| {
        if !*wanted {
            *wanted = requests.blocking_recv().is_some();
        }
        *wanted
    };
    let send = |batch: RecordBatch,
                decoder: &Decoder,
                input: &Input,
                next: &mut u32,
                wanted: &mut bool| {
        let chunk = ChunkId(*next);
        *next += 1;
        if recorded.contains(&chunk) {
            return true;
        }
        *wanted = false;
        let resume_point = decoder.resume_point();
        handover
            .tx
            .blocking_send(Ok(ReaderMsg::Batch {
                chunk,
                batch,
                bytes_read: input.read_to,
                bytes_skipped: input.skipped,
                source_end: decoder.last_cut() == Some(BatchCut::End),
                source_hash: resume_point
                    .as_ref()
                    .and_then(|p| input.saved_at(p, decoder)),
                resume_point,
            }))
            .is_ok()
    };
    loop {
        if !wait(&mut wanted) {
            return Ok(());
        }
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(SyncFailure::Read {
                    source_name: name,
                    error,
                }
                .into());
            }
        };
        let mut pos = 0;
        while pos < n {
            if !wait(&mut wanted) {
                return Ok(());
            }
            let used = decoder.decode(&buffer[pos..n]).map_err(bad)?;
            input.consumed(&buffer[pos..pos + used]);
            pos += used;
            if input.try_jump(&mut decoder, &reading.path)? {
                break;
            }
            while let Some(batch) = decoder.next_batch() {
                if !send(batch, &decoder, &input, &mut next, &mut wanted) {
                    return Ok(());
                }
            }
        }
    }
    loop {
        if !wait(&mut wanted) {
            return Ok(());
        }
        let Some(batch) = decoder.flush().map_err(bad)? else {
            break;
        };
        if !send(batch, &decoder, &input, &mut next, &mut wanted) {
            return Ok(());
        }
    }
    reading.decoded(&decoder, next);
    let done = input.done(&decoder, next);
    if !wait(&mut wanted) {
        return Ok(());
    }
    let _ = handover.tx.blocking_send(Ok(done));
    Ok(())
}

/// The converter stage's inputs.
pub(super) struct Converter {
    pub(super) sync_id: SyncId,
    pub(super) source: SourceRef,
    pub(super) profile: Profile,
    /// The decoder settings, which cut the chunks.
    pub(super) options: ParseOptions,
    /// Chunks already recorded: not saved or sent (the others, missing ones between them
    /// included, are cut, saved and sent); decoded again unless `from` skips them.
    pub(super) recorded: BTreeSet<ChunkId>,
    /// Where decoding starts: past the leading recorded chunks, when their manifest entries
    /// say where they end.
    pub(super) from: Option<ResumeFrom>,
    pub(super) fingerprint: SourceFingerprint,
    pub(super) manager: Option<Arc<Mutex<CheckpointManager>>>,
    pub(super) telemetry: Arc<Telemetry>,
    pub(super) progress: Arc<dyn Progress>,
    /// The profile chunks are validated and typed with here, beside the load of the chunk
    /// before: the run's, which carries the target table's narrower columns (`None` for
    /// `submit`, whose workers do it).
    pub(super) prepare: Option<Arc<Profile>>,
}

impl Converter {
    /// Starts phase 1; chunks arrive on the returned receiver, the outcome from the task.
    pub(super) fn spawn(
        self,
    ) -> (
        mpsc::Receiver<Converted>,
        tokio::task::JoinHandle<Result<ConvertOutcome, Halt>>,
    ) {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let handle = tokio::spawn(self.run(tx));
        (rx, handle)
    }

    async fn run(self, out: mpsc::Sender<Converted>) -> Result<ConvertOutcome, Halt> {
        let (want, mut input) = spawn_reader(Reading {
            path: self.source.clone(),
            profile: self.profile.clone(),
            options: self.options,
            recorded: self.recorded.clone(),
            from: self.from.clone(),
        });
        let mut checked = false;
        // Bytes of the source counted into the metrics so far.
        let mut counted = 0u64;
        loop {
            // A slot for the next chunk first, then the batch: the reader decodes it only
            // now, once the processor took the previous one. (A processor that stopped
            // leaves no slot: the end of the source is still recorded, a batch is not sent.)
            let slot = out.reserve().await.ok();
            // A reader that stopped has sent why, or is gone (both seen below).
            let _ = want.send(()).await;
            let Some(msg) = input.recv().await else {
                return Err(SyncFailure::ReaderGone.into());
            };
            match msg? {
                ReaderMsg::Batch {
                    chunk,
                    batch,
                    bytes_read,
                    bytes_skipped,
                    source_end,
                    resume_point,
                    source_hash,
                } => {
                    if !checked {
                        self.check_columns(&batch)?;
                        checked = true;
                    }
                    // Read before this check: the source as the sync opened it, or the run
                    // stops here (nothing cut from changed bytes is ever saved).
                    super::run::unchanged(&self.source)?;
                    let checksum = self
                        .save(chunk, &batch, source_end, resume_point, source_hash)
                        .await?;
                    let rows = batch.num_rows() as u64;
                    self.telemetry.emit(&ChunkConverted {
                        sync_id: &self.sync_id,
                        chunk,
                        rows,
                        source_bytes: (bytes_read - bytes_skipped).saturating_sub(counted),
                    });
                    counted = counted.max(bytes_read - bytes_skipped);
                    self.progress.converted(chunk, rows, bytes_read);
                    let Some(slot) = slot else {
                        return Err(SyncFailure::ProcessorGone.into());
                    };
                    // Saved: the rows are validated and typed now, while the loader loads the
                    // chunk before (the text batch is moved in and dropped once validated).
                    let rows = self.prepare(chunk, batch).await?;
                    slot.send(Converted {
                        chunk,
                        rows,
                        checksum,
                        source_bytes: Some(bytes_read),
                    });
                }
                ReaderMsg::Done {
                    rows,
                    chunks,
                    sha256,
                    bytes,
                    bytes_skipped,
                } => {
                    self.telemetry
                        .metrics()
                        .source_read((bytes - bytes_skipped).saturating_sub(counted));
                    // The length and SHA-256 recorded must be those of the file opened.
                    super::run::unchanged(&self.source)?;
                    self.finalize(bytes, sha256).await?;
                    self.progress.total_chunks(u64::from(chunks));
                    return Ok(ConvertOutcome { rows, chunks });
                }
            }
        }
    }

    /// The chunk's rows validated and typed on a blocking thread ([`Rows::Prepared`]), or as
    /// they are when the loader does it (`submit`).
    async fn prepare(&self, chunk: ChunkId, batch: RecordBatch) -> Result<Rows, Halt> {
        let Some(profile) = &self.prepare else {
            return Ok(Rows::Text(batch));
        };
        let profile = Arc::clone(profile);
        let prepared = tokio::task::spawn_blocking(move || prepare(&profile, batch))
            .await
            .map_err(|e| {
                SyncFailure::task_died(format!("chunk {chunk}: validation and transform died"), e)
            })?;
        Ok(Rows::Prepared(Box::new(prepared)))
    }

    /// The first batch's columns: a required one missing is bad input.
    fn check_columns(&self, batch: &RecordBatch) -> Result<(), Halt> {
        crate::validate::check_columns(&self.profile, batch.schema_ref()).map_err(|error| {
            BadInput::Columns {
                source_name: self.source.name(),
                error,
            }
            .into()
        })
    }

    /// Saves a chunk's Parquet file and records it; returns the file's SHA-256 (empty
    /// without checkpoints).
    async fn save(
        &self,
        chunk: ChunkId,
        batch: &RecordBatch,
        source_end: bool,
        resume_point: Option<ResumePoint>,
        source_hash: Option<SourceHashState>,
    ) -> Result<String, Halt> {
        let Some(m) = &self.manager else {
            return Ok(String::new());
        };
        // Encoded on a blocking thread, outside the manager's lock: the processor marks
        // chunks meanwhile instead of waiting. A resumed checkpoint keeps the compression it
        // was made with.
        let compression = m.lock().await.chunk_compression();
        let encoded = encode(chunk, batch, compression).await?;
        let entry = m
            .lock()
            .await
            .save_encoded_chunk_parquet(
                chunk,
                batch,
                Some(encoded),
                source_end,
                resume_point,
                source_hash,
            )
            .await?;
        Ok(entry.parquet_sha256)
    }

    /// Ends phase 1 in the checkpoint: the source's length and SHA-256 as read.
    async fn finalize(&self, bytes: u64, sha256: String) -> Result<(), Halt> {
        if let Some(m) = &self.manager {
            let fingerprint = SourceFingerprint {
                size_bytes: bytes,
                sha256: Some(sha256),
                ..self.fingerprint.clone()
            };
            m.lock().await.finalize_conversion(fingerprint).await?;
        }
        Ok(())
    }
}

/// A chunk's Parquet file, encoded on a blocking thread.
async fn encode(
    chunk: ChunkId,
    batch: &RecordBatch,
    compression: ChunkCompression,
) -> Result<bytes::Bytes, Halt> {
    let batch = batch.clone();
    let encoded =
        tokio::task::spawn_blocking(move || crate::checkpoint::encode_parquet(&batch, compression))
            .await
            .map_err(|e| {
                SyncFailure::task_died(format!("chunk {chunk}: the Parquet encoder died"), e)
            })?;
    Ok(encoded.map_err(|error| SyncFailure::Encode { chunk, error })?)
}

/// Decodes the source again up to chunk `chunk` (from `from`, a point before it, when
/// given) and returns that chunk's batch (to rewrite a missing or corrupt chunk file); `None`
/// when the source ends before it.
pub(super) fn regenerate(
    path: &SourceRef,
    profile: &Profile,
    options: ParseOptions,
    chunk: ChunkId,
    from: Option<ResumeFrom>,
) -> Result<Option<RecordBatch>, Halt> {
    let name = path.name();
    let reader = path.reader()?;
    let mut decoder = Decoder::new(profile, options);
    let mut index = 0u32;
    if let Some(from) = from.filter(|f| f.next <= chunk) {
        decoder = decoder.resume_at(from.point);
        index = from.next.0;
    }
    let mut found = None;
    let result = crate::parse::decode_reader(reader, &mut decoder, |batch| {
        if index == chunk.0 {
            found = Some(batch);
            index += 1;
            // Stop reading: the chunk is here.
            return Err(StopReading::Found);
        }
        index += 1;
        Ok(())
    });
    match (result, found) {
        (_, Some(batch)) => Ok(Some(batch)),
        (Err(StopReading::Parse(error)), None) => Err(BadInput::Parse {
            source_name: name,
            error,
        }
        .into()),
        (_, None) => Ok(None),
    }
}

enum StopReading {
    Found,
    Parse(crate::parse::ParseError),
}

impl From<crate::parse::ParseError> for StopReading {
    fn from(e: crate::parse::ParseError) -> Self {
        Self::Parse(e)
    }
}

#[cfg(test)]
mod tests {
    use sha2::Digest as _;

    use super::*;

    fn input() -> Input {
        Input {
            reader: Box::new(std::io::empty()),
            read_to: 0,
            skipped: 0,
            hasher: SourceHasher::default(),
            tail: Vec::new(),
            jump: None,
        }
    }

    /// Whatever the slicing, the hasher stays at a block boundary 1 to 64 bytes behind what
    /// was consumed, the whole hash is the bytes' SHA-256, and a state saved there and
    /// restored hashes on to the same SHA-256 as the bytes in one piece.
    #[test]
    fn consumed_bytes_are_hashed_to_a_block_boundary_behind_them() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = crate::model::hex(&sha2::Sha256::digest(&bytes));
        for step in [1, 2, 63, 64, 65, 127, 128, 300, 1000] {
            let mut input = input();
            let mut at = 0;
            for piece in bytes.chunks(step) {
                input.consumed(piece);
                at += piece.len();
                let behind = at as u64 - input.hasher.bytes();
                assert_eq!(input.consumed_bytes(), at as u64, "step {step}");
                assert_eq!(input.hasher.bytes() % HASH_BLOCK as u64, 0, "step {step}");
                assert!(
                    (1..=HASH_BLOCK as u64).contains(&behind),
                    "step {step} at {at}"
                );
                // Taken up from the saved state, the rest of the bytes give the same hash.
                let mut resumed = SourceHasher::restore(&input.hasher.save()).unwrap();
                resumed.update(&bytes[usize::try_from(input.hasher.bytes()).unwrap()..]);
                assert_eq!(resumed.sha256_hex(), whole, "step {step} at {at}");
            }
            assert_eq!(input.sha256_hex(), whole, "step {step}");
        }
    }
}
