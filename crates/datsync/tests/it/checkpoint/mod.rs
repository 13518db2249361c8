//! The checkpoint manager: a conformance suite per store backend, crash injection, and the
//! manifest's shape against the seed's example.

mod conformance;
mod crash;
mod rejects_retention;
mod schema;

use std::sync::Arc;

use arrow_array::RecordBatch;
use chrono::{DateTime, Utc};
use datsync::{
    CheckpointManager, CheckpointOptions, ChunkOutcome, Clock, Decoder, ManualClock, NewCheckpoint,
    ParseError, ParseOptions, Profile, SampleOptions, SampleSize, SourceFingerprint, Store, SyncId,
    decode_reader, write_sample,
};

/// A generated source file and the decoder's text batches over it.
pub struct Source {
    pub bytes: Vec<u8>,
    pub batches: Vec<RecordBatch>,
}

impl Source {
    /// `rows` generated rows cut into chunks of `chunk_rows`.
    pub fn generate(rows: u64, chunk_rows: usize) -> Self {
        let mut bytes = Vec::new();
        let options = SampleOptions {
            size: SampleSize::Rows(rows),
            ragged_rate: 0.01,
            invalid_rate: 0.02,
            ..SampleOptions::default()
        };
        write_sample(&mut bytes, &options).unwrap();
        let mut decoder = Decoder::new(
            &Profile::ztdwr(),
            ParseOptions {
                batch_rows: chunk_rows,
                ..ParseOptions::default()
            },
        );
        let mut batches = Vec::new();
        decode_reader(&bytes[..], &mut decoder, |b| {
            batches.push(b);
            Ok::<(), ParseError>(())
        })
        .unwrap();
        Self { bytes, batches }
    }

    /// The fingerprint known before reading.
    pub fn fingerprint(&self) -> SourceFingerprint {
        SourceFingerprint {
            size_bytes: self.bytes.len() as u64,
            etag: None,
            modified: Some("2025-01-29T14:00:00Z".to_owned()),
            sha256: None,
        }
    }

    /// The fingerprint once read to the end.
    pub fn final_fingerprint(&self) -> SourceFingerprint {
        let mut reader = datsync::HashingReader::new(&self.bytes[..]);
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        SourceFingerprint {
            sha256: Some(reader.sha256_hex()),
            ..self.fingerprint()
        }
    }

    pub fn new_checkpoint(&self, chunk_rows: u64) -> NewCheckpoint {
        NewCheckpoint {
            source_file: "ZTDWR_20250129.dat".to_owned(),
            source_path: "data/hex-ztdwr/ZTDWR_20250129.dat".to_owned(),
            fingerprint: self.fingerprint(),
            cut: datsync::ChunkCut::rows_only(chunk_rows),
        }
    }
}

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-01-29T14:30:22Z")
        .unwrap()
        .to_utc()
}

pub fn sync_id(n: u32) -> SyncId {
    SyncId::new(t0(), n)
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t0()))
}

pub fn manager(store: &Store, sync: &SyncId, clock: &Arc<ManualClock>) -> CheckpointManager {
    manager_with(store, sync, clock, CheckpointOptions::default())
}

/// A new checkpoint of `source` cut in chunks of `chunk_rows`, every chunk saved and the
/// conversion finished.
pub async fn converted(m: &mut CheckpointManager, source: &Source, chunk_rows: u64) {
    m.create_checkpoint(source.new_checkpoint(chunk_rows))
        .await
        .unwrap();
    for (i, batch) in source.batches.iter().enumerate() {
        m.save_chunk_parquet(datsync::ChunkId(i as u32), batch)
            .await
            .unwrap();
    }
    m.finalize_conversion(source.final_fingerprint())
        .await
        .unwrap();
}

pub fn manager_with(
    store: &Store,
    sync: &SyncId,
    clock: &Arc<ManualClock>,
    options: CheckpointOptions,
) -> CheckpointManager {
    let clock: Arc<dyn Clock> = clock.clone();
    CheckpointManager::new(store.clone(), sync.clone())
        .with_clock(clock)
        .with_options(options)
}

/// What loading chunk `i` "did", made up but distinct per chunk.
pub fn outcome(i: u32, rows: u64) -> ChunkOutcome {
    ChunkOutcome {
        records_inserted: rows.saturating_sub(u64::from(i % 3)),
        records_updated: u64::from(i % 3),
        validation_errors: u64::from(i),
        rows_rejected: u64::from(i / 2),
    }
}

/// Each store backend the suites run against. A new backend joins by adding a case here.
pub enum Backend {
    Memory,
    Local(tempfile::TempDir),
}

impl Backend {
    pub fn open(&self) -> Store {
        match self {
            Self::Memory => Store::open("memory://").unwrap(),
            Self::Local(dir) => Store::open(&format!("file://{}", dir.path().display())).unwrap(),
        }
    }
}
