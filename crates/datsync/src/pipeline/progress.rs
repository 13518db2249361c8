//! What a run tells whoever watches it (the CLI draws bars; services and tests ignore it).

use std::time::Duration;

use crate::model::{ChunkCounts, ChunkId};

/// Receives progress while a sync runs.
pub trait Progress: Send + Sync {
    /// The source's size in bytes (as stored: compressed for gzip), when known.
    fn source_size(&self, _bytes: u64) {}
    /// A chunk was converted; `source_bytes` of the source have been read so far.
    fn converted(&self, _chunk: ChunkId, _rows: u64, _source_bytes: u64) {}
    /// A chunk was committed by this run.
    fn chunk_done(&self, _done: &ChunkDone) {}
    /// The number of chunks, once known.
    fn total_chunks(&self, _chunks: u64) {}
    /// The run is over.
    fn finish(&self) {}
}

/// A chunk committed by this run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkDone {
    /// The chunk.
    pub chunk: ChunkId,
    /// Chunks finished so far (by this run and before it).
    pub done: u64,
    /// What the chunk did.
    pub counts: ChunkCounts,
    /// Bytes of the source read when the chunk was cut (as stored), when known: not for a
    /// chunk read back from the checkpoint.
    pub source_bytes: Option<u64>,
    /// The run's time so far.
    pub elapsed: Duration,
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
