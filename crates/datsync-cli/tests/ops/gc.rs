//! `datsync gc`.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use datsync::{
    CheckpointManager, ChunkId, ChunkOutcome, Clock, ManualClock, Profile, Store, SyncId,
};

use crate::fixture::{chunks, fingerprint, new_checkpoint};
use crate::harness::{datsync, json, rt};
use crate::{NEWER, OLDER};

#[test]
fn gc_removes_expired_checkpoints_and_keeps_running_ones() {
    let cwd = tempfile::tempdir().unwrap();
    let ck = cwd.path().join("ck");
    let profile = Profile::ztdwr();
    let (file, chunks) = chunks(&profile);
    let old = SyncId::parse(OLDER).unwrap();
    let active = SyncId::parse(NEWER).unwrap();
    rt().block_on(async {
        let store = Store::open(ck.to_str().unwrap()).unwrap();
        // A finished sync last updated 30 days ago.
        let clock = Arc::new(ManualClock::new(Utc::now() - TimeDelta::days(30)));
        let mut m = CheckpointManager::new(store.clone(), old.clone())
            .with_clock(clock.clone() as Arc<dyn Clock>);
        m.create_checkpoint(new_checkpoint(&file)).await.unwrap();
        m.save_chunk_parquet(ChunkId(0), &chunks[0].0)
            .await
            .unwrap();
        m.finalize_conversion(fingerprint(&file)).await.unwrap();
        m.mark_chunk_complete(ChunkId(0), ChunkOutcome::default())
            .await
            .unwrap();
        // A converting sync last updated two hours ago: it may still be running.
        let clock = Arc::new(ManualClock::new(Utc::now() - TimeDelta::hours(2)));
        let mut m =
            CheckpointManager::new(store, active.clone()).with_clock(clock as Arc<dyn Clock>);
        m.create_checkpoint(new_checkpoint(&file)).await.unwrap();
        m.save_chunk_parquet(ChunkId(0), &chunks[0].0)
            .await
            .unwrap();
    });
    let ck_arg = ck.to_str().unwrap();
    // Default retention (7 days): the 30-day-old one goes, the 2-hour-old one is recent.
    let r = json(&datsync(
        cwd.path(),
        &["gc", "--json"],
        &[("CHECKPOINT_BASE_PATH", ck_arg)],
    ));
    assert_eq!(r["retention_days"], 7);
    assert_eq!(r["removed"], serde_json::json!([OLDER]));
    assert_eq!(
        r["kept"],
        serde_json::json!([{ "sync_id": NEWER, "reason": "recent" }])
    );
    assert!(!ck.join(OLDER).exists() && ck.join(NEWER).exists());
    // Retention 0 days from the environment: the running sync is still kept.
    let r = json(&datsync(
        cwd.path(),
        &["gc", "--checkpoint-dir", ck_arg, "--json"],
        &[("CHECKPOINT_RETENTION_DAYS", "0")],
    ));
    assert_eq!(r["retention_days"], 0);
    assert_eq!(r["removed"], serde_json::json!([]));
    assert_eq!(
        r["kept"],
        serde_json::json!([{ "sync_id": NEWER, "reason": "active" }])
    );
    let text = datsync(
        cwd.path(),
        &["gc", "--days", "0", "--checkpoint-dir", ck_arg],
        &[],
    );
    assert!(
        text.1
            .contains("kept         sync_20250130_090000_0badf00d: its sync may still be running"),
        "{}",
        text.1
    );
    // A directory that does not exist: nothing to do, and nothing created.
    let missing = cwd.path().join("nope");
    let r = json(&datsync(
        cwd.path(),
        &[
            "gc",
            "--checkpoint-dir",
            missing.to_str().unwrap(),
            "--json",
        ],
        &[],
    ));
    assert_eq!(
        (
            r["removed"].as_array().unwrap().len(),
            r["kept"].as_array().unwrap().len()
        ),
        (0, 0)
    );
    assert!(!missing.exists());
}
