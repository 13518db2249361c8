//! Damaged checkpoints: unreadable manifests, missing or corrupt chunks, leftovers, changed sources.

use std::sync::Arc;

use bytes::Bytes;
use datsync::{
    CheckpointError, ChunkId, CrashPoint, FaultPlan, ObjectKey, SourceFingerprint, Store,
    verify_source,
};

use crate::checkpoint::{Source, clock, manager, sync_id};

pub async fn unreadable_manifests_are_errors_with_a_way_out(store: &Store) {
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
        let rebuild = format!("`datsync resume {sync} --rebuild-checkpoint`");
        assert!(text.contains(&rebuild), "{text}");
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
    assert!(err.to_string().contains("--rebuild-checkpoint"), "{err}");
    store.delete_sync(&sync).await.unwrap();
}

pub async fn missing_and_corrupt_chunks_are_named(store: &Store) {
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

pub async fn an_unrecorded_chunk_file_is_reused_or_rewritten(store: &Store) {
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

pub async fn source_changes_are_detected(store: &Store) {
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
