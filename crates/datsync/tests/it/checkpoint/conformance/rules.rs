//! State rules, chunk names and retention.

use std::sync::Arc;

use chrono::TimeDelta;
use datsync::{
    CheckpointError, CheckpointStatus, ChunkId, ChunkStatus, Clock, KeepReason, RetentionPolicy,
    Store, remove_expired_checkpoints,
};

use crate::checkpoint::{Source, clock, manager, outcome, sync_id};

pub async fn wrong_transitions_and_states_are_refused(store: &Store) {
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

pub async fn a_failed_sync_resumes_in_its_phase(store: &Store) {
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

pub async fn chunk_names_grow_past_four_digits(store: &Store) {
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

pub async fn retention_removes_old_checkpoints_but_not_running_ones(store: &Store) {
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
    let report = remove_expired_checkpoints(store, &RetentionPolicy::days(7), &dyn_clock)
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
    let report = remove_expired_checkpoints(store, &RetentionPolicy::days(0), &dyn_clock)
        .await
        .unwrap();
    assert_eq!(report.removed, vec![sync_id(21)]);
    assert_eq!(report.kept, vec![(sync_id(23), KeepReason::Active)]);
    clock.advance(TimeDelta::hours(25));
    let report = remove_expired_checkpoints(store, &RetentionPolicy::days(0), &dyn_clock)
        .await
        .unwrap();
    assert_eq!(report.removed, vec![sync_id(23)]);
    assert!(store.list_syncs().await.unwrap().is_empty());
}
