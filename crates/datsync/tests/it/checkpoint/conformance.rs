//! One set of checkpoint scenarios, run against every store backend. A new backend (the
//! Azure emulator) joins by adding one test that calls [`run_all`].

use std::sync::Arc;

use bytes::Bytes;
use chrono::TimeDelta;
use datsync::checkpoint::{
    CheckpointError, CheckpointOptions, ChunkCompression, Clock, KeepReason, RetentionPolicy,
    remove_expired, verify_source,
};
use datsync::model::{CheckpointStatus, ChunkId, ChunkStatus, SourceFingerprint};
use datsync::store::{CrashPoint, FaultPlan, ObjectKey, ObjectKind, Store};

use super::{Source, clock, manager, manager_with, outcome, sync_id};

/// Every scenario, each on its own sync in `store`.
pub async fn run_all(store: Store) {
    full_run_then_cleanup(&store).await;
    resume_after_failed_chunks(&store).await;
    journal_is_replayed_and_compacted(&store).await;
    unreadable_manifests_are_errors_with_a_way_out(&store).await;
    missing_and_corrupt_chunks_are_named(&store).await;
    an_unrecorded_chunk_file_is_reused_or_rewritten(&store).await;
    source_changes_are_detected(&store).await;
    wrong_transitions_and_states_are_refused(&store).await;
    a_failed_sync_resumes_in_its_phase(&store).await;
    chunk_names_grow_past_four_digits(&store).await;
    retention_removes_old_checkpoints_but_not_running_ones(&store).await;
}

#[tokio::test]
async fn memory() {
    run_all(Store::open("memory://").unwrap()).await;
}

#[tokio::test]
async fn local_directory() {
    let dir = tempfile::tempdir().unwrap();
    run_all(Store::open(dir.path().to_str().unwrap()).unwrap()).await;
    // Every scenario cleaned up after itself, leftover temp files included.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

async fn full_run_then_cleanup(store: &Store) {
    let source = Source::generate(2_500, 1_000);
    let (sync, clock) = (sync_id(1), clock());
    let mut m = manager(store, &sync, &clock);
    assert!(!m.checkpoint_exists().await.unwrap());
    m.create_checkpoint(source.new_checkpoint(1_000))
        .await
        .unwrap();
    assert!(m.checkpoint_exists().await.unwrap());
    for (i, batch) in source.batches.iter().enumerate() {
        clock.advance(TimeDelta::seconds(1));
        let entry = m
            .save_chunk_parquet(ChunkId(i as u32), batch)
            .await
            .unwrap();
        assert_eq!(entry.status, ChunkStatus::Ready);
        assert_eq!(entry.rows, batch.num_rows() as u64);
    }
    m.finalize_conversion(source.final_fingerprint())
        .await
        .unwrap();
    let manifest = m.manifest().unwrap();
    assert_eq!(
        (manifest.status, manifest.total_chunks),
        (CheckpointStatus::Ready, 3)
    );
    assert_eq!(manifest.source_fingerprint, source.final_fingerprint());
    assert_eq!(manifest.total_rows(), 2_500);
    let pending = m.get_pending_chunks().await.unwrap();
    assert_eq!(pending, vec![ChunkId(0), ChunkId(1), ChunkId(2)]);
    for id in pending {
        m.mark_chunk_processing(id).await.unwrap();
        assert_eq!(m.manifest().unwrap().status, CheckpointStatus::Processing);
        let batch = m.load_chunk(id).await.unwrap();
        assert_eq!(
            batch, source.batches[id.0 as usize],
            "chunk {id} round trip"
        );
        m.mark_chunk_complete(id, outcome(id.0, batch.num_rows() as u64))
            .await
            .unwrap();
    }
    assert!(m.get_pending_chunks().await.unwrap().is_empty());
    let done = m.manifest().unwrap().clone();
    assert_eq!(
        (done.status, done.phase),
        (CheckpointStatus::Completed, CheckpointStatus::Completed)
    );
    // A new process reads the same state.
    let mut again = manager(store, &sync, &clock);
    assert!(again.checkpoint_exists().await.unwrap());
    assert_eq!(again.manifest().unwrap(), &done);
    m.cleanup().await.unwrap();
    assert!(store.list_sync(&sync).await.unwrap().is_empty());
    let mut gone = manager(store, &sync, &clock);
    assert!(!gone.checkpoint_exists().await.unwrap());
}

async fn resume_after_failed_chunks(store: &Store) {
    let source = Source::generate(3_000, 500);
    let (sync, clock) = (sync_id(2), clock());
    let mut m = manager(store, &sync, &clock);
    m.create_checkpoint(source.new_checkpoint(500))
        .await
        .unwrap();
    for (i, batch) in source.batches.iter().enumerate() {
        m.save_chunk_parquet(ChunkId(i as u32), batch)
            .await
            .unwrap();
    }
    m.finalize_conversion(source.final_fingerprint())
        .await
        .unwrap();
    for id in 0..4 {
        m.mark_chunk_processing(ChunkId(id)).await.unwrap();
        if id == 2 {
            m.mark_chunk_failed(ChunkId(id), "connection timeout")
                .await
                .unwrap();
        } else {
            m.mark_chunk_complete(ChunkId(id), outcome(id, 500))
                .await
                .unwrap();
        }
    }
    m.mark_chunk_processing(ChunkId(4)).await.unwrap();
    drop(m); // killed while chunk 4 was processing

    let mut m = manager(store, &sync, &clock);
    let pending = m.get_pending_chunks().await.unwrap();
    assert_eq!(pending, vec![ChunkId(2), ChunkId(4), ChunkId(5)]);
    let failed = m.manifest().unwrap().chunk(ChunkId(2)).unwrap().clone();
    assert_eq!(failed.status, ChunkStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("connection timeout"));
    assert!(failed.failed_at.is_some());
    for id in pending {
        m.mark_chunk_processing(id).await.unwrap();
        m.mark_chunk_complete(id, outcome(id.0, 500)).await.unwrap();
    }
    let manifest = m.manifest().unwrap();
    assert_eq!(manifest.status, CheckpointStatus::Completed);
    let attempts: Vec<u32> = manifest.chunks.iter().map(|c| c.attempts).collect();
    assert_eq!(attempts, vec![1, 1, 2, 1, 2, 1]);
    assert!(manifest.chunks.iter().all(|c| c.error.is_none()));
    m.cleanup().await.unwrap();
}

async fn journal_is_replayed_and_compacted(store: &Store) {
    let source = Source::generate(2_000, 100);
    let (sync, clock) = (sync_id(3), clock());
    let options = CheckpointOptions {
        compact_every: 7,
        compression: ChunkCompression::Zstd,
    };
    let mut m = manager_with(store, &sync, &clock, options);
    m.create_checkpoint(source.new_checkpoint(100))
        .await
        .unwrap();
    for (i, batch) in source.batches.iter().enumerate() {
        m.save_chunk_parquet(ChunkId(i as u32), batch)
            .await
            .unwrap();
    }
    m.finalize_conversion(source.final_fingerprint())
        .await
        .unwrap();
    for id in 0..13 {
        clock.advance(TimeDelta::seconds(1));
        m.mark_chunk_processing(ChunkId(id)).await.unwrap();
        m.mark_chunk_complete(ChunkId(id), outcome(id, 100))
            .await
            .unwrap();
    }
    let expected = m.manifest().unwrap().clone();
    // manifest.json alone is a complete manifest, a few transitions behind.
    let raw = store
        .get(&ObjectKey::manifest(&sync))
        .await
        .unwrap()
        .unwrap();
    let on_disk: datsync::checkpoint::Manifest = serde_json::from_slice(&raw).unwrap();
    assert_eq!(on_disk.chunks.len(), 20);
    assert!(on_disk.journal_seq > 0);
    let journal: Vec<u64> = store
        .list_sync(&sync)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|o| match o.kind {
            ObjectKind::Journal(seq) => Some(seq),
            _ => None,
        })
        .collect();
    // The journal never holds more entries than max(compact_every, total_chunks) = 20.
    assert!(!journal.is_empty() && journal.len() < 20, "{journal:?}");
    assert!(journal.iter().all(|&s| s > on_disk.journal_seq));
    // With the journal applied, a new process sees the true state.
    let mut again = manager_with(store, &sync, &clock, options);
    assert!(again.checkpoint_exists().await.unwrap());
    let mut seen = again.manifest().unwrap().clone();
    seen.journal_seq = expected.journal_seq;
    assert_eq!(seen, expected);
    assert_eq!(on_disk.compression, ChunkCompression::Zstd);
    again.cleanup().await.unwrap();
}

async fn unreadable_manifests_are_errors_with_a_way_out(store: &Store) {
    let source = Source::generate(300, 100);
    let clock = clock();
    let sync = sync_id(5);
    let mut m = manager(store, &sync, &clock);
    m.create_checkpoint(source.new_checkpoint(100))
        .await
        .unwrap();
    m.save_chunk_parquet(ChunkId(0), &source.batches[0])
        .await
        .unwrap();
    m.finalize_conversion(source.fingerprint()).await.unwrap();
    let key = ObjectKey::manifest(&sync);
    let full = store.get(&key).await.unwrap().unwrap();
    let cases: Vec<(&str, Bytes)> = vec![
        ("empty file", Bytes::new()),
        ("truncated", full.slice(..full.len() / 2)),
        (
            "not a valid manifest",
            Bytes::from_static(b"{\"format_version\":1,\"x\":[]}"),
        ),
        (
            "not a valid manifest",
            Bytes::from_static(b"\x00\x01binary"),
        ),
    ];
    for (reason, bytes) in cases {
        store.put(&key, bytes).await.unwrap();
        let err = manager(store, &sync, &clock)
            .checkpoint_exists()
            .await
            .unwrap_err();
        assert!(
            matches!(err, CheckpointError::ManifestCorrupt { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(reason) && text.contains("manifest.json"),
            "{text}"
        );
        assert!(
            text.contains("--fresh") && text.contains("delete"),
            "{text}"
        );
    }
    let newer = String::from_utf8(full.to_vec())
        .unwrap()
        .replace("\"format_version\": 1", "\"format_version\": 2");
    store.put(&key, Bytes::from(newer)).await.unwrap();
    let err = manager(store, &sync, &clock)
        .checkpoint_exists()
        .await
        .unwrap_err();
    assert!(
        matches!(err, CheckpointError::UnsupportedFormat { found: 2, .. }),
        "{err}"
    );
    // A directory with chunk files and no manifest is not a fresh start either.
    store.delete(&key).await.unwrap();
    let err = manager(store, &sync, &clock)
        .checkpoint_exists()
        .await
        .unwrap_err();
    assert!(
        matches!(err, CheckpointError::ManifestMissing { .. }),
        "{err}"
    );
    store.delete_sync(&sync).await.unwrap();
}

async fn missing_and_corrupt_chunks_are_named(store: &Store) {
    let source = Source::generate(300, 100);
    let (sync, clock) = (sync_id(6), clock());
    let mut m = manager(store, &sync, &clock);
    m.create_checkpoint(source.new_checkpoint(100))
        .await
        .unwrap();
    for (i, batch) in source.batches.iter().enumerate() {
        m.save_chunk_parquet(ChunkId(i as u32), batch)
            .await
            .unwrap();
    }
    let chunk1 = ObjectKey::chunk(&sync, ChunkId(1));
    let good = store.get(&chunk1).await.unwrap().unwrap();
    let mut flipped = good.to_vec();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    for (bytes, what) in [
        (Bytes::from(flipped), "checksum mismatch"),
        (good.slice(..good.len() - 10), "bytes, the manifest says"),
    ] {
        store.put(&chunk1, bytes).await.unwrap();
        let err = m.load_chunk(ChunkId(1)).await.unwrap_err();
        assert!(
            matches!(
                err,
                CheckpointError::ChunkCorrupt {
                    chunk: ChunkId(1),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.needs_regeneration());
        assert!(
            err.to_string().contains(what) && err.to_string().contains("chunk_0001.parquet"),
            "{err}"
        );
    }
    store.delete(&chunk1).await.unwrap();
    let err = m.load_chunk(ChunkId(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            CheckpointError::ChunkMissing {
                chunk: ChunkId(1),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.needs_regeneration());
    assert_eq!(m.load_chunk(ChunkId(2)).await.unwrap(), source.batches[2]);
    let err = m.load_chunk(ChunkId(9)).await.unwrap_err();
    assert!(matches!(err, CheckpointError::UnknownChunk { .. }), "{err}");
    m.cleanup().await.unwrap();
}

async fn an_unrecorded_chunk_file_is_reused_or_rewritten(store: &Store) {
    let source = Source::generate(300, 100);
    let (sync, clock) = (sync_id(7), clock());
    let mut m = manager(store, &sync, &clock);
    m.create_checkpoint(source.new_checkpoint(100))
        .await
        .unwrap();
    m.save_chunk_parquet(ChunkId(0), &source.batches[0])
        .await
        .unwrap();
    // Crash after the chunk file of chunk 1 is written, before its journal entry.
    let plan = Arc::new(FaultPlan::crash_at(2, CrashPoint::Before));
    let mut dying = manager(&store.with_faults(plan.clone()), &sync, &clock);
    dying
        .save_chunk_parquet(ChunkId(1), &source.batches[1])
        .await
        .unwrap_err();
    assert!(plan.crashed());
    let chunk1 = ObjectKey::chunk(&sync, ChunkId(1));
    let orphan = store.get(&chunk1).await.unwrap().unwrap();
    // Resumed: the file is recognised and reused, recorded once.
    let mut m = manager(store, &sync, &clock);
    assert!(m.checkpoint_exists().await.unwrap());
    assert_eq!(m.unrecorded_chunks(), vec![ChunkId(1)]);
    let entry = m
        .save_chunk_parquet(ChunkId(1), &source.batches[1])
        .await
        .unwrap();
    assert_eq!(store.get(&chunk1).await.unwrap().unwrap(), orphan);
    assert_eq!(entry.parquet_size_bytes, orphan.len() as u64);
    assert_eq!(m.manifest().unwrap().total_chunks, 2);
    assert!(m.unrecorded_chunks().is_empty());
    // Saved again with the same rows: nothing changes, nothing is counted twice.
    let again = m
        .save_chunk_parquet(ChunkId(1), &source.batches[1])
        .await
        .unwrap();
    assert_eq!(again, entry);
    assert_eq!(m.manifest().unwrap().total_rows(), 200);
    // A leftover file with other rows is rewritten.
    let plan = Arc::new(FaultPlan::crash_at(2, CrashPoint::Before));
    let mut dying = manager(&store.with_faults(plan), &sync, &clock);
    dying
        .save_chunk_parquet(ChunkId(2), &source.batches[0])
        .await
        .unwrap_err();
    let mut m = manager(store, &sync, &clock);
    m.save_chunk_parquet(ChunkId(2), &source.batches[2])
        .await
        .unwrap();
    assert_eq!(m.load_chunk(ChunkId(2)).await.unwrap(), source.batches[2]);
    // A recorded chunk saved with other rows is a conflict (the source changed).
    let err = m
        .save_chunk_parquet(ChunkId(1), &source.batches[2])
        .await
        .unwrap_err();
    assert!(
        matches!(err, CheckpointError::ChunkConflict { .. }),
        "{err}"
    );
    m.cleanup().await.unwrap();
}

async fn source_changes_are_detected(store: &Store) {
    let source = Source::generate(300, 100);
    let (sync, clock) = (sync_id(8), clock());
    let mut m = manager(store, &sync, &clock);
    m.create_checkpoint(source.new_checkpoint(100))
        .await
        .unwrap();
    let manifest = m.manifest().unwrap().clone();
    assert!(verify_source(&manifest, &source.fingerprint()).is_ok());
    let grown = SourceFingerprint {
        size_bytes: source.fingerprint().size_bytes + 1,
        ..source.fingerprint()
    };
    let err = verify_source(&manifest, &grown).unwrap_err();
    assert_eq!(err.differences[0].field, "size_bytes");
    let touched = SourceFingerprint {
        modified: Some("2025-02-01T00:00:00Z".to_owned()),
        ..source.fingerprint()
    };
    assert_eq!(
        verify_source(&manifest, &touched).unwrap_err().differences[0].field,
        "modified"
    );
    let err = m.finalize_conversion(grown).await.unwrap_err();
    assert!(matches!(err, CheckpointError::SourceChanged(_)), "{err}");
    for (i, batch) in source.batches.iter().enumerate() {
        m.save_chunk_parquet(ChunkId(i as u32), batch)
            .await
            .unwrap();
    }
    m.finalize_conversion(source.final_fingerprint())
        .await
        .unwrap();
    let manifest = m.manifest().unwrap().clone();
    // Same bytes (same SHA-256), copied with a new mtime: the same source.
    let copied = SourceFingerprint {
        modified: Some("2025-03-01T00:00:00Z".to_owned()),
        ..source.final_fingerprint()
    };
    assert!(verify_source(&manifest, &copied).is_ok());
    let edited = SourceFingerprint {
        sha256: Some("0".repeat(64)),
        ..source.final_fingerprint()
    };
    let err = verify_source(&manifest, &edited).unwrap_err();
    assert_eq!(err.differences[0].field, "sha256");
    assert!(err.to_string().contains("--fresh"), "{err}");
    m.cleanup().await.unwrap();
}

async fn wrong_transitions_and_states_are_refused(store: &Store) {
    let source = Source::generate(300, 100);
    let (sync, clock) = (sync_id(9), clock());
    let mut m = manager(store, &sync, &clock);
    let err = m.get_pending_chunks().await.unwrap_err();
    assert!(matches!(err, CheckpointError::NoCheckpoint { .. }), "{err}");
    m.create_checkpoint(source.new_checkpoint(100))
        .await
        .unwrap();
    let err = manager(store, &sync, &clock)
        .create_checkpoint(source.new_checkpoint(100))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CheckpointError::AlreadyExists { .. }),
        "{err}"
    );
    m.save_chunk_parquet(ChunkId(0), &source.batches[0])
        .await
        .unwrap();
    m.save_chunk_parquet(ChunkId(2), &source.batches[2])
        .await
        .unwrap();
    let err = m
        .finalize_conversion(source.fingerprint())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CheckpointError::MissingChunk {
                chunk: ChunkId(1),
                ..
            }
        ),
        "{err}"
    );
    m.save_chunk_parquet(ChunkId(1), &source.batches[1])
        .await
        .unwrap();
    // Phases overlap: a chunk can be loaded while the conversion goes on.
    m.mark_chunk_processing(ChunkId(0)).await.unwrap();
    m.mark_chunk_complete(ChunkId(0), outcome(0, 100))
        .await
        .unwrap();
    assert_eq!(m.manifest().unwrap().status, CheckpointStatus::Converting);
    m.finalize_conversion(source.final_fingerprint())
        .await
        .unwrap();
    assert_eq!(m.manifest().unwrap().status, CheckpointStatus::Processing);
    let err = m
        .save_chunk_parquet(ChunkId(3), &source.batches[0])
        .await
        .unwrap_err();
    assert!(matches!(err, CheckpointError::InvalidState { .. }), "{err}");
    let err = m.mark_chunk_failed(ChunkId(0), "late").await.unwrap_err();
    assert!(
        matches!(
            err,
            CheckpointError::InvalidTransition {
                from: ChunkStatus::Completed,
                to: ChunkStatus::Failed,
                ..
            }
        ),
        "{err}"
    );
    m.mark_chunk_complete(ChunkId(0), outcome(0, 100))
        .await
        .unwrap();
    // The ledger says chunk 1 was committed: ready → completed directly.
    m.mark_chunk_complete(ChunkId(1), outcome(1, 100))
        .await
        .unwrap();
    m.mark_chunk_skipped(ChunkId(2), "every row invalid", outcome(2, 0))
        .await
        .unwrap();
    let manifest = m.manifest().unwrap();
    assert_eq!(manifest.status, CheckpointStatus::Completed);
    assert_eq!(
        manifest.chunk(ChunkId(2)).unwrap().status,
        ChunkStatus::Skipped
    );
    let err = m.mark_chunk_processing(ChunkId(2)).await.unwrap_err();
    assert!(
        matches!(err, CheckpointError::InvalidTransition { .. }),
        "{err}"
    );
    m.cleanup().await.unwrap();
}

async fn a_failed_sync_resumes_in_its_phase(store: &Store) {
    let source = Source::generate(300, 100);
    let (sync, clock) = (sync_id(10), clock());
    let mut m = manager(store, &sync, &clock);
    m.create_checkpoint(source.new_checkpoint(100))
        .await
        .unwrap();
    m.save_chunk_parquet(ChunkId(0), &source.batches[0])
        .await
        .unwrap();
    m.mark_sync_failed("disk full").await.unwrap();
    let mut m = manager(store, &sync, &clock);
    let manifest = m
        .get_pending_chunks()
        .await
        .map(|_| m.manifest().unwrap().clone())
        .unwrap();
    assert_eq!(
        (manifest.status, manifest.phase),
        (CheckpointStatus::Failed, CheckpointStatus::Converting)
    );
    assert_eq!(manifest.error.as_deref(), Some("disk full"));
    m.save_chunk_parquet(ChunkId(1), &source.batches[1])
        .await
        .unwrap();
    assert_eq!(m.manifest().unwrap().status, CheckpointStatus::Converting);
    assert_eq!(m.manifest().unwrap().error, None);
    m.cleanup().await.unwrap();
}

async fn chunk_names_grow_past_four_digits(store: &Store) {
    let source = Source::generate(100, 100);
    let (sync, clock) = (sync_id(11), clock());
    let mut m = manager(store, &sync, &clock);
    m.create_checkpoint(source.new_checkpoint(100))
        .await
        .unwrap();
    let entry = m
        .save_chunk_parquet(ChunkId(12_345), &source.batches[0])
        .await
        .unwrap();
    assert_eq!(entry.parquet_path, "chunk_12345.parquet");
    assert_eq!(
        m.load_chunk(ChunkId(12_345)).await.unwrap(),
        source.batches[0]
    );
    let first = m
        .save_chunk_parquet(ChunkId(0), &source.batches[0])
        .await
        .unwrap();
    assert_eq!(first.parquet_path, "chunk_0000.parquet");
    m.cleanup().await.unwrap();
}

async fn retention_removes_old_checkpoints_but_not_running_ones(store: &Store) {
    let source = Source::generate(100, 100);
    let clock = clock();
    let start = clock.now();
    // (sync, days before "now" of its last update, finished?)
    let cases = [
        (20, 10, true),
        (21, 3, true),
        (22, 10, false),
        (23, 0, false),
    ];
    for (n, _, finished) in cases {
        let mut m = manager(store, &sync_id(n), &clock);
        m.create_checkpoint(source.new_checkpoint(100))
            .await
            .unwrap();
        m.save_chunk_parquet(ChunkId(0), &source.batches[0])
            .await
            .unwrap();
        if finished {
            m.finalize_conversion(source.fingerprint()).await.unwrap();
            m.mark_chunk_complete(ChunkId(0), outcome(0, 100))
                .await
                .unwrap();
        }
    }
    // Rewind each sync's last update by touching it at the right time.
    for (n, days_ago, _) in cases {
        clock.set(start - TimeDelta::days(days_ago));
        let mut m = manager(store, &sync_id(n), &clock);
        m.get_pending_chunks().await.unwrap();
        let last = m.manifest().unwrap().chunks[0].clone();
        if last.status == ChunkStatus::Ready {
            m.mark_chunk_processing(ChunkId(0)).await.unwrap();
        } else {
            m.mark_sync_failed("kept for the test").await.unwrap();
        }
    }
    clock.set(start);
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let report = remove_expired(store, &RetentionPolicy::days(7), &dyn_clock)
        .await
        .unwrap();
    assert_eq!(report.removed, vec![sync_id(20), sync_id(22)]);
    assert_eq!(
        report.kept,
        vec![
            (sync_id(21), KeepReason::Recent),
            (sync_id(23), KeepReason::Recent)
        ]
    );
    // Retention 0: the finished one goes, the one running right now stays.
    let report = remove_expired(store, &RetentionPolicy::days(0), &dyn_clock)
        .await
        .unwrap();
    assert_eq!(report.removed, vec![sync_id(21)]);
    assert_eq!(report.kept, vec![(sync_id(23), KeepReason::Active)]);
    clock.advance(TimeDelta::hours(25));
    let report = remove_expired(store, &RetentionPolicy::days(0), &dyn_clock)
        .await
        .unwrap();
    assert_eq!(report.removed, vec![sync_id(23)]);
    assert!(store.list_syncs().await.unwrap().is_empty());
}
