//! Phase 1: the reader thread decodes the source (hashing it on the way) and the converter
//! task saves each new chunk as Parquet, then hands it to the processor.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;

use arrow_array::RecordBatch;
use tokio::sync::{Mutex, mpsc};

use super::Progress;
use super::halt::{BadInput, Halt, SyncFailure};
use crate::checkpoint::{CheckpointManager, ChunkCompression};
use crate::model::{ChunkId, SourceFingerprint, SyncId};
use crate::parse::{BatchCut, Decoder, ParseOptions, READ_BUFFER_BYTES};
use crate::profile::Profile;
use crate::source::SourceRef;
use crate::telemetry::{ChunkConverted, Telemetry};

/// Batches waiting between the converter and the processor. The converter takes a slot
/// ([`mpsc::Sender::reserve`]) before it asks the reader for the next batch, and the reader
/// decodes a batch only when asked: besides the batch the processor works on, at most one
/// batch is being decoded or encoded, or waits in the slot (the memory budget counts on it).
const CHANNEL_DEPTH: usize = 1;

/// A chunk ready for phase 2.
pub(super) struct Converted {
    pub(super) chunk: ChunkId,
    pub(super) batch: RecordBatch,
    /// The Parquet file's SHA-256 (empty without checkpoints).
    pub(super) checksum: String,
    /// Bytes of the source read when the chunk was cut (as stored: compressed for gzip);
    /// `None` for a chunk read back from the checkpoint.
    pub(super) source_bytes: Option<u64>,
}

/// What phase 1 found, once it read the whole source.
#[derive(Debug, Clone)]
pub(super) struct ConvertOutcome {
    /// Data rows in the source.
    pub(super) rows: u64,
    /// Chunks in the source.
    pub(super) chunks: u32,
}

enum ReaderMsg {
    Batch {
        chunk: ChunkId,
        batch: RecordBatch,
        bytes_read: u64,
        /// The decoder cut it at the end of the source.
        source_end: bool,
    },
    Done {
        rows: u64,
        chunks: u32,
        sha256: String,
        bytes: u64,
    },
}

/// The reader's side of the hand-over: batches go out one at a time, each only once the
/// converter asked for it (a token on `wanted`).
struct Handover {
    tx: mpsc::Sender<Result<ReaderMsg, Halt>>,
    wanted: mpsc::Receiver<()>,
}

/// Decodes `path` on a thread of its own and sends the batches of the chunks not in
/// `recorded`, one per token sent on the returned sender.
fn spawn_reader(
    path: SourceRef,
    profile: Profile,
    options: ParseOptions,
    recorded: BTreeSet<ChunkId>,
) -> (mpsc::Sender<()>, mpsc::Receiver<Result<ReaderMsg, Halt>>) {
    let (tx, rx) = mpsc::channel(1);
    let (want_tx, wanted) = mpsc::channel(1);
    std::thread::spawn(move || {
        let mut handover = Handover { tx, wanted };
        let result = read_source(&path, &profile, options, &recorded, &mut handover);
        if let Err(halt) = result {
            let _ = handover.tx.blocking_send(Err(halt));
        }
    });
    (want_tx, rx)
}

fn read_source(
    path: &SourceRef,
    profile: &Profile,
    options: ParseOptions,
    recorded: &BTreeSet<ChunkId>,
    handover: &mut Handover,
) -> Result<(), Halt> {
    let name = path.name();
    let mut reader = path.reader()?;
    let mut decoder = Decoder::new(profile, options);
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    let mut next = 0u32;
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
    let send = |batch: RecordBatch, cut, bytes_read: u64, next: &mut u32, wanted: &mut bool| {
        let chunk = ChunkId(*next);
        *next += 1;
        if recorded.contains(&chunk) {
            return true;
        }
        *wanted = false;
        handover
            .tx
            .blocking_send(Ok(ReaderMsg::Batch {
                chunk,
                batch,
                bytes_read,
                source_end: cut == Some(BatchCut::End),
            }))
            .is_ok()
    };
    loop {
        if !wait(&mut wanted) {
            return Ok(());
        }
        let n = match reader.read(&mut buffer) {
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
            pos += decoder.decode(&buffer[pos..n]).map_err(bad)?;
            while let Some(batch) = decoder.next_batch() {
                let cut = decoder.last_cut();
                if !send(batch, cut, reader.bytes_read(), &mut next, &mut wanted) {
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
        let cut = decoder.last_cut();
        if !send(batch, cut, reader.bytes_read(), &mut next, &mut wanted) {
            return Ok(());
        }
    }
    let stats = decoder.stats();
    tracing::debug!(source = %name, rows = stats.rows, long_lines = stats.long_lines,
        ragged_rows = stats.ragged_rows, unknown_columns = stats.unknown_columns.len(),
        byte_cut_chunks = stats.byte_cut_batches, "source decoded");
    let done = ReaderMsg::Done {
        rows: decoder.stats().rows,
        chunks: next,
        sha256: reader.sha256_hex(),
        bytes: reader.bytes_read(),
    };
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
    /// Chunks already recorded: decoded again but not saved or sent (the others, missing
    /// ones between them included, are cut, saved and sent).
    pub(super) recorded: BTreeSet<ChunkId>,
    pub(super) fingerprint: SourceFingerprint,
    pub(super) manager: Option<Arc<Mutex<CheckpointManager>>>,
    pub(super) telemetry: Arc<Telemetry>,
    pub(super) progress: Arc<dyn Progress>,
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
        let (want, mut input) = spawn_reader(
            self.source.clone(),
            self.profile.clone(),
            self.options,
            self.recorded.clone(),
        );
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
                    source_end,
                } => {
                    if !checked {
                        self.check_columns(&batch)?;
                        checked = true;
                    }
                    // Read before this check: the source as the sync opened it, or the run
                    // stops here (nothing cut from changed bytes is ever saved).
                    super::run::unchanged(&self.source)?;
                    let checksum = self.save(chunk, &batch, source_end).await?;
                    let rows = batch.num_rows() as u64;
                    self.telemetry.emit(&ChunkConverted {
                        sync_id: &self.sync_id,
                        chunk,
                        rows,
                        source_bytes: bytes_read.saturating_sub(counted),
                    });
                    counted = counted.max(bytes_read);
                    self.progress.converted(chunk, rows, bytes_read);
                    let Some(slot) = slot else {
                        return Err(SyncFailure::ProcessorGone.into());
                    };
                    slot.send(Converted {
                        chunk,
                        batch,
                        checksum,
                        source_bytes: Some(bytes_read),
                    });
                }
                ReaderMsg::Done {
                    rows,
                    chunks,
                    sha256,
                    bytes,
                } => {
                    self.telemetry
                        .metrics()
                        .source_read(bytes.saturating_sub(counted));
                    // The length and SHA-256 recorded must be those of the file opened.
                    super::run::unchanged(&self.source)?;
                    self.finalize(bytes, sha256).await?;
                    self.progress.total_chunks(u64::from(chunks));
                    return Ok(ConvertOutcome { rows, chunks });
                }
            }
        }
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
    ) -> Result<String, Halt> {
        let Some(m) = &self.manager else {
            return Ok(String::new());
        };
        // Encoded on a blocking thread, outside the manager's lock: the processor marks
        // chunks meanwhile instead of waiting. A resumed checkpoint keeps the compression it
        // was made with.
        let compression = m
            .lock()
            .await
            .manifest()
            .map_or_else(ChunkCompression::default, |m| m.compression);
        let encoded = encode(chunk, batch, compression).await?;
        let entry = m
            .lock()
            .await
            .save_encoded_chunk_parquet(chunk, batch, Some(encoded), source_end)
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

/// Decodes the source again up to chunk `chunk` and returns that chunk's batch (to rewrite a
/// missing or corrupt chunk file); `None` when the source ends before it.
pub(super) fn regenerate(
    path: &SourceRef,
    profile: &Profile,
    options: ParseOptions,
    chunk: ChunkId,
) -> Result<Option<RecordBatch>, Halt> {
    let name = path.name();
    let reader = path.reader()?;
    let mut decoder = Decoder::new(profile, options);
    let mut index = 0u32;
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
