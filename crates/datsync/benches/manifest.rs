//! Time per chunk update as the manifest grows: `mark_chunk_complete` called once per chunk
//! on checkpoints of 10, 1,000 and 5,000 chunks, on the in-memory store and a local
//! directory (with fsync). The baseline also rewrites the whole manifest at every update
//! (`compact()` after each), which is what a journal-less manager would do; it is measured
//! on the first 200 updates only, as it gets slow. The six checkpoints take turns, ten
//! updates at a time, so that disk noise falls on all of them alike. The slowest update of a
//! journal run is the final compaction made when the sync completes.
//!
//! Run: `cargo bench -p datsync --bench manifest`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use datsync::{
    CheckpointManager, CheckpointOptions, ChunkId, ChunkOutcome, Clock, ManualClock, NewCheckpoint,
    SourceFingerprint, Store, SyncId,
};

const SIZES: [u32; 3] = [10, 1_000, 5_000];
const BASELINE_UPDATES: u32 = 200;

fn batch(line: u64) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("_line", DataType::UInt64, false),
        Field::new("DOC_NO", DataType::Utf8, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(UInt64Array::from(vec![line])),
            Arc::new(StringArray::from(vec![Some("0007000001")])),
        ],
    )
    .expect("valid batch")
}

/// A checkpoint with `chunks` ready chunks; returns its manager.
async fn prepare(store: &Store, chunks: u32, tag: u32) -> CheckpointManager {
    let start = chrono::DateTime::parse_from_rfc3339("2025-01-29T14:30:22Z")
        .expect("valid time")
        .to_utc();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(start));
    let sync = SyncId::new(start, chunks * 10 + tag);
    let mut m = CheckpointManager::new(store.clone(), sync)
        .with_clock(clock)
        .with_options(CheckpointOptions::default());
    m.create_checkpoint(NewCheckpoint {
        source_file: "bench.dat".into(),
        source_path: "bench.dat".into(),
        fingerprint: SourceFingerprint {
            size_bytes: 1,
            etag: None,
            modified: None,
            sha256: None,
        },
        cut: datsync::ChunkCut::rows_only(1),
    })
    .await
    .expect("create");
    for i in 0..chunks {
        m.save_chunk_parquet(ChunkId(i), &batch(u64::from(i) + 2))
            .await
            .expect("save");
    }
    let fingerprint = m.manifest().expect("loaded").source_fingerprint.clone();
    m.finalize_conversion(fingerprint).await.expect("finalize");
    m
}

/// Updates made in a row on one checkpoint before moving to the next size; the sizes take
/// turns so that a noisy disk (fsync latency on a shared machine) hits all of them alike.
const ROUND: u32 = 10;

/// One measured checkpoint.
struct Run {
    chunks: u32,
    manager: CheckpointManager,
    /// Also rewrite the whole manifest after each update (the baseline).
    rewrite: bool,
    updates: u32,
    times: Vec<Duration>,
}

impl Run {
    async fn new(store: &Store, chunks: u32, rewrite: bool) -> Self {
        let updates = if rewrite {
            chunks.min(BASELINE_UPDATES)
        } else {
            chunks
        };
        Self {
            chunks,
            manager: prepare(store, chunks, u32::from(rewrite)).await,
            rewrite,
            updates,
            times: Vec::with_capacity(updates as usize),
        }
    }

    /// Marks the next `ROUND` chunks complete one by one; false once all are.
    async fn round(&mut self) -> bool {
        for _ in 0..ROUND {
            let i = self.times.len() as u32;
            if i == self.updates {
                return false;
            }
            let started = Instant::now();
            self.manager
                .mark_chunk_complete(ChunkId(i), ChunkOutcome::default())
                .await
                .expect("mark complete");
            if self.rewrite {
                self.manager.compact().await.expect("compact");
            }
            self.times.push(started.elapsed());
        }
        true
    }

    /// Mean, median, 99th percentile and slowest, in µs.
    fn figures(&self) -> [f64; 4] {
        let mut times = self.times.clone();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        times.sort_unstable();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        [mean, at(0.5), at(0.99), at(1.0)].map(|d| d.as_secs_f64() * 1e6)
    }
}

async fn run(name: &str, store: &Store) {
    let mut runs = Vec::new();
    for chunks in SIZES {
        runs.push(Run::new(store, chunks, false).await);
        runs.push(Run::new(store, chunks, true).await);
    }
    // Let the disk write back what the preparation left dirty, so that it does not land on
    // the fsyncs of the first updates measured.
    let _ = std::process::Command::new("sync").status();
    loop {
        let mut busy = false;
        for r in &mut runs {
            busy |= r.round().await;
        }
        if !busy {
            break;
        }
    }
    for pair in runs.chunks(2) {
        let [j, b] = [&pair[0], &pair[1]].map(Run::figures);
        println!(
            "{name:<6} {:>5} chunks | journal: mean {:>7.1} median {:>7.1} p99 {:>8.1} \
             max {:>8.1} | rewrite-every-time: mean {:>8.1} median {:>8.1}  (µs per update)",
            pair[0].chunks, j[0], j[1], j[2], j[3], b[0], b[1],
        );
    }
    for r in &mut runs {
        r.manager.cleanup().await.expect("cleanup");
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        run("memory", &Store::memory()).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().to_str().expect("utf-8 path")).expect("local store");
        run("local", &store).await;
    });
}
