//! What the status page shows of this process: the syncs running now with their progress,
//! and the chunks that failed lately. Kept by the events, like the metrics.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use crate::model::{ChunkCounts, ChunkId, SyncId};

/// Failed chunks remembered for the page.
const FAILURES_KEPT: usize = 20;

/// A sync running in this process.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningSync {
    /// The sync.
    pub sync_id: String,
    /// Chunks committed by this run.
    pub chunks_loaded: u64,
    /// Rows of those chunks.
    pub rows: u64,
    /// Rows per second since the run started.
    pub rows_per_s: u64,
    /// Share of the source read, in percent, when known.
    pub source_read_pct: Option<f64>,
    /// Seconds left, estimated from the share of the source read.
    pub eta_s: Option<u64>,
    /// Seconds since the run started.
    pub running_s: u64,
}

/// A chunk that failed in this process (kept for a retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedChunkNote {
    /// The sync.
    pub sync_id: String,
    /// The chunk.
    pub chunk: u32,
    /// The last error.
    pub error: String,
    /// When (UTC, RFC 3339).
    pub at: String,
}

#[derive(Debug)]
struct Entry {
    started: Instant,
    chunks_loaded: u64,
    rows: u64,
    source_read: Option<f64>,
    eta_s: Option<f64>,
}

/// The live state of the process's syncs.
#[derive(Debug, Default)]
pub struct Live {
    running: Mutex<BTreeMap<String, Entry>>,
    failures: Mutex<VecDeque<FailedChunkNote>>,
}

impl Live {
    pub(crate) fn started(&self, sync_id: &SyncId) {
        lock(&self.running).insert(
            sync_id.to_string(),
            Entry {
                started: Instant::now(),
                chunks_loaded: 0,
                rows: 0,
                source_read: None,
                eta_s: None,
            },
        );
    }

    pub(crate) fn ended(&self, sync_id: &str) {
        lock(&self.running).remove(sync_id);
    }

    pub(crate) fn chunk_committed(
        &self,
        sync_id: &SyncId,
        counts: &ChunkCounts,
        source_read: Option<f64>,
        eta_s: Option<f64>,
    ) {
        if let Some(e) = lock(&self.running).get_mut(sync_id.as_str()) {
            e.chunks_loaded += 1;
            e.rows += counts.rows;
            if source_read.is_some() {
                e.source_read = source_read;
                e.eta_s = eta_s;
            }
        }
    }

    pub(crate) fn chunk_failed(&self, sync_id: &SyncId, chunk: ChunkId, error: &str) {
        let mut failures = lock(&self.failures);
        if failures.len() == FAILURES_KEPT {
            failures.pop_back();
        }
        failures.push_front(FailedChunkNote {
            sync_id: sync_id.to_string(),
            chunk: chunk.0,
            error: error.to_owned(),
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
    }

    /// The syncs running now, by id.
    pub fn running(&self) -> Vec<RunningSync> {
        lock(&self.running)
            .iter()
            .map(|(id, e)| {
                let secs = e.started.elapsed().as_secs_f64();
                RunningSync {
                    sync_id: id.clone(),
                    chunks_loaded: e.chunks_loaded,
                    rows: e.rows,
                    rows_per_s: super::events::per_second(e.rows, secs),
                    source_read_pct: e.source_read.map(|s| (s * 1000.0).round() / 10.0),
                    eta_s: e.eta_s.map(|s| s.round() as u64),
                    running_s: secs as u64,
                }
            })
            .collect()
    }

    /// The chunks that failed lately, newest first.
    pub fn failures(&self) -> Vec<FailedChunkNote> {
        lock(&self.failures).iter().cloned().collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
