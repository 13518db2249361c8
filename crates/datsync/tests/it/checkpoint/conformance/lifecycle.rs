//! A sync from start to end: conversion, loading, resume, journal, cleanup.

use chrono::TimeDelta;
use datsync::{
    CheckpointOptions, CheckpointStatus, ChunkCompression, ChunkId, ChunkStatus, ObjectKey,
    ObjectKind, Store,
};

use crate::checkpoint::{Source, clock, converted, manager, manager_with, outcome, sync_id};

pub async fn full_run_then_cleanup(store: &Store) {
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

pub async fn resume_after_failed_chunks(store: &Store) {
    let source = Source::generate(3_000, 500);
    let (sync, clock) = (sync_id(2), clock());
    let mut m = manager(store, &sync, &clock);
    converted(&mut m, &source, 500).await;
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

pub async fn journal_is_replayed_and_compacted(store: &Store) {
    let source = Source::generate(2_000, 100);
    let (sync, clock) = (sync_id(3), clock());
    let options = CheckpointOptions {
        compact_every: 7,
        compression: ChunkCompression::Zstd,
        ..CheckpointOptions::default()
    };
    let mut m = manager_with(store, &sync, &clock, options);
    converted(&mut m, &source, 100).await;
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
    let on_disk: datsync::Manifest = serde_json::from_slice(&raw).unwrap();
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

/// The chunk files `store` holds for `sync`, by chunk id.
async fn chunk_files(store: &Store, sync: &datsync::SyncId) -> Vec<u32> {
    let mut ids: Vec<u32> = store
        .list_sync(sync)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|o| match o.kind {
            ObjectKind::Chunk(id) => Some(id.0),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// With `remove_done_files` (the pipeline's default), a chunk's file goes once its entry says
/// done — completed or skipped — and only then; a chunk that failed keeps its file. A new
/// process opens the checkpoint as it is: the pending chunks are there to load, the done ones
/// are not read. Without it, every file stays until the cleanup.
pub async fn done_chunk_files_go_as_their_chunks_are_done(store: &Store) {
    let source = Source::generate(2_000, 500);
    let (sync, clock) = (sync_id(4), clock());
    let options = CheckpointOptions {
        remove_done_files: true,
        ..CheckpointOptions::default()
    };
    let mut m = manager_with(store, &sync, &clock, options);
    converted(&mut m, &source, 500).await;
    m.mark_chunk_processing(ChunkId(0)).await.unwrap();
    m.await_removals().await;
    assert_eq!(
        chunk_files(store, &sync).await,
        vec![0, 1, 2, 3],
        "processing"
    );
    m.mark_chunk_complete(ChunkId(0), outcome(0, 500))
        .await
        .unwrap();
    m.mark_chunk_processing(ChunkId(1)).await.unwrap();
    m.mark_chunk_skipped(ChunkId(1), "every row was rejected", outcome(1, 0))
        .await
        .unwrap();
    m.mark_chunk_processing(ChunkId(2)).await.unwrap();
    m.mark_chunk_failed(ChunkId(2), "connection timeout")
        .await
        .unwrap();
    m.await_removals().await;
    assert_eq!(chunk_files(store, &sync).await, vec![2, 3], "0 and 1 done");
    drop(m);

    // A new process: chunks 2 and 3 to load, read from their files.
    let mut m = manager_with(store, &sync, &clock, options);
    assert!(m.checkpoint_exists().await.unwrap());
    assert_eq!(
        m.get_pending_chunks().await.unwrap(),
        vec![ChunkId(2), ChunkId(3)]
    );
    for id in [ChunkId(2), ChunkId(3)] {
        m.mark_chunk_processing(id).await.unwrap();
        let batch = m.load_chunk(id).await.unwrap();
        assert_eq!(batch, source.batches[id.0 as usize], "chunk {id}");
        m.mark_chunk_complete(id, outcome(id.0, 500)).await.unwrap();
    }
    assert_eq!(m.manifest().unwrap().status, CheckpointStatus::Completed);
    // The cleanup waits for the removals under way, then leaves nothing.
    m.cleanup().await.unwrap();
    assert!(store.list_sync(&sync).await.unwrap().is_empty());

    // Every recorded chunk done, so no chunk file left: the journal still tells a checkpoint
    // whose manifest is lost from none at all.
    let lost = sync_id(13);
    let mut m = manager_with(store, &lost, &clock, options);
    m.create_checkpoint(source.new_checkpoint(500))
        .await
        .unwrap();
    for (i, batch) in source.batches.iter().take(2).enumerate() {
        let id = ChunkId(i as u32);
        m.save_chunk_parquet(id, batch).await.unwrap();
        m.mark_chunk_processing(id).await.unwrap();
        m.mark_chunk_complete(id, outcome(id.0, 500)).await.unwrap();
    }
    m.await_removals().await;
    assert!(chunk_files(store, &lost).await.is_empty());
    store.delete(&ObjectKey::manifest(&lost)).await.unwrap();
    let err = manager_with(store, &lost, &clock, options)
        .checkpoint_exists()
        .await
        .unwrap_err();
    assert!(
        matches!(err, datsync::CheckpointError::ManifestMissing { .. }),
        "{err}"
    );
    store.delete_sync(&lost).await.unwrap();

    // Off (the library's default): done chunks keep their files until the cleanup.
    let kept = sync_id(12);
    let mut m = manager(store, &kept, &clock);
    converted(&mut m, &source, 500).await;
    m.mark_chunk_processing(ChunkId(0)).await.unwrap();
    m.mark_chunk_complete(ChunkId(0), outcome(0, 500))
        .await
        .unwrap();
    m.await_removals().await;
    assert_eq!(chunk_files(store, &kept).await, vec![0, 1, 2, 3]);
    m.cleanup().await.unwrap();
}
