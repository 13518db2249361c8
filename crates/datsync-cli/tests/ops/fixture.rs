//! The state the commands inspect, built with the library.

use std::path::Path;

use arrow_array::RecordBatch;
use datsync::{
    CheckpointManager, ChunkId, ChunkLoad, ChunkOutcome, Decoder, Loader, NewCheckpoint,
    ParseError, ParseOptions, Profile, RowError, SampleOptions, SampleSize, SourceFingerprint,
    Store, SyncCounts, SyncId, SyncOutcome, SyncRegistration, SyncStatus, connect, decode_reader,
    finish_sync, init_db, register_sync, write_sample,
};

use crate::harness::{TestDb, rt};
use crate::{NEWER, OLDER};

type Chunks = Vec<(RecordBatch, RecordBatch, u64, Vec<RowError>)>;

pub fn chunks(profile: &Profile) -> (Vec<u8>, Chunks) {
    let mut file = Vec::new();
    let options = SampleOptions {
        size: SampleSize::Rows(30),
        seed: 7,
        invalid_rate: 0.1,
        ..SampleOptions::default()
    };
    write_sample(&mut file, &options).unwrap();
    let mut decoder = Decoder::new(
        profile,
        ParseOptions {
            batch_rows: 10,
            ..ParseOptions::default()
        },
    );
    let mut out = Vec::new();
    decode_reader(file.as_slice(), &mut decoder, |text| {
        let v = datsync::validate(profile, &text).unwrap();
        let typed = datsync::transform(profile, &v.accepted).unwrap().batch;
        out.push((text, typed, v.rejected() as u64, v.errors));
        Ok::<(), ParseError>(())
    })
    .unwrap();
    (file, out)
}

pub fn fingerprint(file: &[u8]) -> SourceFingerprint {
    SourceFingerprint {
        size_bytes: file.len() as u64,
        etag: None,
        modified: None,
        sha256: None,
    }
}

pub fn new_checkpoint(file: &[u8]) -> NewCheckpoint {
    NewCheckpoint {
        source_file: "ztdwr.dat".into(),
        source_path: "/in/ztdwr.dat".into(),
        fingerprint: fingerprint(file),
        cut: datsync::ChunkCut::rows_only(10),
    }
}

/// What [`seed`] built, to compare with what the commands print.
pub struct Seeded {
    /// Loads of chunks 0 and 1 of the newer sync.
    pub loads: [ChunkLoad; 2],
    /// Rows read, rows rejected, validation errors of the newer sync.
    pub total: i64,
    pub rejected: i64,
    pub errors: Vec<RowError>,
}

/// Two syncs in the database: the older one SUCCESS; the newer one PARTIAL_SUCCESS with
/// chunks 0 and 1 in the ledger, and a checkpoint whose manifest has chunk 0 completed,
/// chunk 1 failed (the crash came between its commit and the manifest update: the ledger
/// wins) and chunk 2 failed.
pub fn seed(db: &TestDb, ck_dir: &Path) -> Seeded {
    let profile = Profile::ztdwr();
    let (file, chunks) = chunks(&profile);
    assert_eq!(chunks.len(), 3);
    rt().block_on(async {
        let mut client = connect(&db.settings()).await.unwrap();
        init_db(&mut client, &profile).await.unwrap();
        let loader = Loader::new(&profile);
        let reg = |id: &str| SyncRegistration {
            sync_id: SyncId::parse(id).unwrap(),
            file_name: "ztdwr.dat".into(),
            file_path: "/in/ztdwr.dat".into(),
            file_size_bytes: Some(file.len() as i64),
            checkpoint_location: None,
        };
        let older = register_sync(&client, "public", &reg(OLDER)).await.unwrap();
        loader
            .load_chunk(&mut client, &older, ChunkId(0), "c0", &chunks[0].1)
            .await
            .unwrap();
        let done = SyncOutcome {
            status: SyncStatus::Success,
            counts: Some(SyncCounts {
                rows_read: 10,
                ..SyncCounts::default()
            }),
            validation_errors_count: None,
            error_message: None,
            validation_errors: None,
        };
        finish_sync(&client, "public", &older.sync_id, &done)
            .await
            .unwrap();

        let newer = register_sync(&client, "public", &reg(NEWER)).await.unwrap();
        let mut loads = [ChunkLoad::default(); 2];
        for (i, load) in loads.iter_mut().enumerate() {
            *load = loader
                .load_chunk(&mut client, &newer, ChunkId(i as u32), "c", &chunks[i].1)
                .await
                .unwrap();
        }
        let errors: Vec<RowError> = chunks.iter().flat_map(|c| c.3.clone()).collect();
        let rejected: u64 = chunks.iter().map(|c| c.2).sum();
        let outcome = SyncOutcome {
            status: SyncStatus::PartialSuccess,
            counts: Some(SyncCounts {
                rows_read: 30,
                records_inserted: loads.iter().map(|l| l.inserted).sum(),
                records_updated: loads.iter().map(|l| l.updated).sum(),
                rows_rejected: rejected,
                ..SyncCounts::default()
            }),
            validation_errors_count: Some(errors.len() as u64),
            error_message: Some("1 chunk failed: connection reset".into()),
            validation_errors: Some(serde_json::to_value(&errors).unwrap()),
        };
        finish_sync(&client, "public", &newer.sync_id, &outcome)
            .await
            .unwrap();

        let store = Store::open(ck_dir.to_str().unwrap()).unwrap();
        let mut m = CheckpointManager::new(store, newer.sync_id.clone());
        m.create_checkpoint(new_checkpoint(&file)).await.unwrap();
        for (i, c) in chunks.iter().enumerate() {
            m.save_chunk_parquet(ChunkId(i as u32), &c.0).await.unwrap();
        }
        m.finalize_conversion(fingerprint(&file)).await.unwrap();
        let outcome = |l: &ChunkLoad, rejected| ChunkOutcome {
            records_inserted: l.inserted,
            records_updated: l.updated,
            validation_errors: rejected,
            rows_rejected: rejected,
        };
        m.mark_chunk_processing(ChunkId(0)).await.unwrap();
        m.mark_chunk_complete(ChunkId(0), outcome(&loads[0], chunks[0].2))
            .await
            .unwrap();
        m.mark_chunk_processing(ChunkId(1)).await.unwrap();
        m.mark_chunk_failed(ChunkId(1), "killed after commit")
            .await
            .unwrap();
        m.mark_chunk_processing(ChunkId(2)).await.unwrap();
        m.mark_chunk_failed(ChunkId(2), "connection reset")
            .await
            .unwrap();
        Seeded {
            loads,
            total: 30,
            rejected: rejected as i64,
            errors,
        }
    })
}
