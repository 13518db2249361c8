//! Rejects expire with the checkpoint retention: with their checkpoint when it has one, by
//! their own age otherwise, never while their sync may still run.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{TimeDelta, Utc};
use datsync::{
    ChunkId, Clock, KeepReason, ManualClock, ObjectKey, RetentionPolicy, Store,
    remove_expired_checkpoints as remove_expired,
};

use crate::checkpoint::{Source, manager, sync_id};

async fn put_rejects(store: &Store, n: u32) {
    for key in [
        ObjectKey::rejects(&sync_id(n), ChunkId(0)),
        ObjectKey::warnings(&sync_id(n), ChunkId(0)),
    ] {
        store.put(&key, Bytes::from_static(b"x")).await.unwrap();
    }
}

async fn scenario(store: &Store) {
    let source = Source::generate(100, 100);
    // 40: a running sync (checkpoint converting); 41: a finished sync whose checkpoint was
    // cleaned up (rejects only); 42: a finished sync with its checkpoint kept (failed).
    for n in [40, 41, 42] {
        put_rejects(store, n).await;
    }
    // The rejects were written at real times; the clock starts just after them.
    let clock = Arc::new(ManualClock::new(Utc::now() + TimeDelta::seconds(1)));
    let mut running = manager(store, &sync_id(40), &clock);
    running
        .create_checkpoint(source.new_checkpoint(100))
        .await
        .unwrap();
    running
        .save_chunk_parquet(ChunkId(0), &source.batches[0])
        .await
        .unwrap();
    let mut failed = manager(store, &sync_id(42), &clock);
    failed
        .create_checkpoint(source.new_checkpoint(100))
        .await
        .unwrap();
    failed.mark_sync_failed("kept for the test").await.unwrap();
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let gc = |days| {
        let (store, clock) = (store.clone(), dyn_clock.clone());
        async move {
            remove_expired(&store, &RetentionPolicy::days(days), &clock)
                .await
                .unwrap()
        }
    };

    // Young: everything stays.
    let r = gc(7).await;
    assert!(r.rejects_removed.is_empty(), "{r:?}");
    assert_eq!(r.rejects_kept.len(), 3);

    // Retention 0, within the day: the failed sync's checkpoint and rejects go; the running
    // one stays; rejects without a checkpoint may belong to a running sync: they stay.
    let r = gc(0).await;
    assert_eq!(r.removed, vec![sync_id(42)]);
    assert_eq!(r.rejects_removed, vec![sync_id(42)]);
    assert_eq!(
        r.rejects_kept,
        vec![
            (sync_id(40), KeepReason::Active),
            (sync_id(41), KeepReason::Active)
        ]
    );

    // Eight days on with a retention of 7: nothing of theirs is left.
    clock.advance(TimeDelta::days(8));
    let r = gc(7).await;
    assert_eq!(r.removed, vec![sync_id(40)]);
    assert_eq!(r.rejects_removed, vec![sync_id(40), sync_id(41)]);
    assert!(store.list_rejects_syncs().await.unwrap().is_empty());
    assert!(
        store.list_rejects(&sync_id(41)).await.unwrap().is_empty(),
        "rejects of 41 left"
    );
}

#[tokio::test]
async fn rejects_expire_with_the_checkpoint_retention_in_memory() {
    scenario(&Store::open("memory://").unwrap()).await;
}

#[tokio::test]
async fn rejects_expire_with_the_checkpoint_retention_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&Store::open(dir.path().to_str().unwrap()).unwrap()).await;
    assert!(
        !dir.path()
            .join("rejects")
            .join(sync_id(41).as_str())
            .exists()
    );
}
