//! Time per chunk update as the manifest grows: `mark_chunk_complete` called once per chunk
//! on checkpoints of 10, 1,000 and 5,000 chunks, on the in-memory store and a local
//! directory (with fsync). The baseline also rewrites the whole manifest at every update
//! (`compact()` after each), which is what a journal-less manager would do; it is measured
//! on the first 200 updates only, as it gets slow.
//!
//! Run: `cargo bench -p datsync --bench manifest`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use datsync::checkpoint::{
    CheckpointManager, CheckpointOptions, ChunkOutcome, Clock, ManualClock, NewCheckpoint,
};
use datsync::model::{ChunkId, SourceFingerprint, SyncId};
use datsync::store::Store;

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
        chunk_size: 1,
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

/// Figures over a run of updates.
struct Figures {
    mean: Duration,
    median: Duration,
    p99: Duration,
    worst: Duration,
}

/// Marks `updates` chunks complete one by one (rewriting the manifest after each one when
/// `rewrite`).
async fn measure(m: &mut CheckpointManager, updates: u32, rewrite: bool) -> Figures {
    let mut times = Vec::with_capacity(updates as usize);
    for i in 0..updates {
        let started = Instant::now();
        m.mark_chunk_complete(ChunkId(i), ChunkOutcome::default())
            .await
            .expect("mark complete");
        if rewrite {
            m.compact().await.expect("compact");
        }
        times.push(started.elapsed());
    }
    let mean = times.iter().sum::<Duration>() / updates;
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    Figures {
        mean,
        median: at(0.5),
        p99: at(0.99),
        worst: at(1.0),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn run(name: &str, store: &Store) {
    for chunks in SIZES {
        let mut m = prepare(store, chunks, 1).await;
        let f = measure(&mut m, chunks, false).await;
        let mut base = prepare(store, chunks, 2).await;
        let b = measure(&mut base, chunks.min(BASELINE_UPDATES), true).await;
        println!(
            "{name:<6} {chunks:>5} chunks | journal: mean {:>7.1} median {:>7.1} p99 {:>8.1} \
             max {:>8.1} | rewrite-every-time: mean {:>8.1} median {:>8.1}  (µs per update)",
            us(f.mean),
            us(f.median),
            us(f.p99),
            us(f.worst),
            us(b.mean),
            us(b.median),
        );
        m.cleanup().await.expect("cleanup");
        base.cleanup().await.expect("cleanup");
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
