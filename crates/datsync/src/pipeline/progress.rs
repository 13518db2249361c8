//! What a run tells whoever watches it (the CLI draws bars; services and tests ignore it).

use crate::model::ChunkId;

/// Receives progress while a sync runs.
pub trait Progress: Send + Sync {
    /// The source's size in bytes, when known.
    fn source_size(&self, _bytes: u64) {}
    /// A chunk was converted; `source_bytes` of the source have been read so far.
    fn converted(&self, _chunk: ChunkId, _rows: u64, _source_bytes: u64) {}
    /// A chunk was loaded (or found committed); `done` chunks are finished so far.
    fn chunk_done(&self, _chunk: ChunkId, _done: u64) {}
    /// The number of chunks, once known.
    fn total_chunks(&self, _chunks: u64) {}
    /// The run is over.
    fn finish(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
