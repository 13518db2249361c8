//! `intake` through its library API against the real PostgreSQL: manual re-runs (a new sync
//! for a finished source; an unfinished or parked one resumed at once), sources and syncs
//! held by another session skipped without counting an attempt, and a stop asked before a
//! run.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use datsync::{
    Action, Found, Intake, Pipeline, PipelineBuilder, Profile, RawSettings, RetryPolicy,
    SyncStatus, list_local_sources,
};
use tokio_postgres::Client;

use crate::load_pg::db::{TestDb, with_db};

fn intake(db: &TestDb, ck: &Path, policy: RetryPolicy) -> Intake {
    Intake::new(pipeline(db, ck), policy)
}

fn pipeline(db: &TestDb, ck: &Path) -> PipelineBuilder {
    let settings = RawSettings {
        checkpoint_base_path: Some(ck.display().to_string()),
        chunk_size: Some(300),
        ..RawSettings::default()
    }
    .validate()
    .unwrap();
    Pipeline::builder(Profile::ztdwr(), settings, db.settings.clone())
        .retry_backoff(Duration::from_millis(1))
}

/// A directory with one clean sample file, and what a listing finds in it.
async fn one_file(rows: u64) -> (tempfile::TempDir, Found) {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    let options = datsync::SampleOptions {
        size: datsync::SampleSize::Rows(rows),
        seed: 91,
        ..datsync::SampleOptions::default()
    };
    datsync::write_sample(File::create(inbox.join("a.dat")).unwrap(), &options).unwrap();
    let mut found = list_local_sources(&inbox).await.unwrap();
    assert_eq!(found.len(), 1);
    (dir, found.remove(0))
}

/// Every insert into the target table fails with a fatal error (the sync ends FAILED).
async fn fail_inserts(c: &mut Client) {
    datsync::init_db(c, &Profile::ztdwr()).await.unwrap();
    c.batch_execute(
        "CREATE FUNCTION fail_all() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN RAISE EXCEPTION 'injected failure 22012' USING ERRCODE = '22012'; END $f$;
         CREATE TRIGGER fail_all BEFORE INSERT ON transport_documents
           FOR EACH ROW EXECUTE FUNCTION fail_all();",
    )
    .await
    .unwrap();
}

async fn receipt(c: &Client) -> (String, i32, bool, Option<String>) {
    let r = c
        .query_one(
            "SELECT sync_id, attempts, poisoned_at IS NOT NULL, last_error FROM datsync_receipts",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

async fn syncs(c: &Client) -> i64 {
    c.query_one("SELECT count(*) FROM sync_metadata", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_manual_rerun_of_a_finished_source_is_a_new_sync() {
    with_db(|db| async move {
        let (dir, found) = one_file(700).await;
        let intake = intake(&db, &dir.path().join("ck"), RetryPolicy::default());
        let first = intake
            .process(&found, datsync::Mode::Automatic)
            .await
            .unwrap();
        assert_eq!(first.action, Action::Started);
        assert_eq!(first.status, Some(SyncStatus::Success));
        assert!(first.finished);
        let again = intake
            .process(&found, datsync::Mode::Automatic)
            .await
            .unwrap();
        assert_eq!(
            (again.action, &again.sync_id),
            (Action::SkippedDone, &first.sync_id)
        );

        let manual = intake.process_manual(&found).await.unwrap();
        assert_eq!(manual.action, Action::Started);
        assert_ne!(manual.sync_id, first.sync_id, "a new sync");
        assert_eq!(manual.status, Some(SyncStatus::Success));
        assert_eq!(manual.attempts, 1);
        let c = db.client().await;
        let (id, attempts, parked, _) = receipt(&c).await;
        assert_eq!(
            Some(id.as_str()),
            manual.sync_id.as_ref().map(datsync::SyncId::as_str)
        );
        assert_eq!((attempts, parked), (1, false));
        assert_eq!(syncs(&c).await, 2);
    })
    .await;
}

#[tokio::test]
async fn a_manual_rerun_resumes_a_parked_sync_at_once() {
    with_db(|db| async move {
        let (dir, found) = one_file(700).await;
        let mut c = db.client().await;
        fail_inserts(&mut c).await;
        let policy = RetryPolicy {
            max_attempts: 1,
            backoff: Duration::from_secs(3600),
            ..RetryPolicy::default()
        };
        let intake = intake(&db, &dir.path().join("ck"), policy);
        let first = intake
            .process(&found, datsync::Mode::Automatic)
            .await
            .unwrap();
        assert_eq!(first.action, Action::Parked, "{first:?}");
        assert_eq!(first.status, Some(SyncStatus::Failed));
        let parked = intake
            .process(&found, datsync::Mode::Automatic)
            .await
            .unwrap();
        assert_eq!(parked.action, Action::SkippedParked);

        // A manual re-run that finds the sync held by another process does not happen: the
        // receipt stays parked.
        let other = db.client().await;
        let sync = first.sync_id.clone().unwrap();
        assert!(datsync::try_lock_sync(&other, &sync).await.unwrap());
        let busy = intake.process_manual(&found).await.unwrap();
        assert_eq!(busy.action, Action::SkippedBusy, "{busy:?}");
        drop(other);
        let (_, attempts, parked, _) = receipt(&c).await;
        assert_eq!(
            (attempts, parked),
            (1, true),
            "still parked, attempt given back"
        );
        let still = intake
            .process(&found, datsync::Mode::Automatic)
            .await
            .unwrap();
        assert_eq!(still.action, Action::SkippedParked);

        c.batch_execute("DROP TRIGGER fail_all ON transport_documents")
            .await
            .unwrap();
        // The pause (an hour) and the parking do not hold a manual re-run back.
        let manual = intake.process_manual(&found).await.unwrap();
        assert_eq!(manual.action, Action::Resumed, "{manual:?}");
        assert_eq!(manual.sync_id, first.sync_id, "the same sync");
        assert_eq!(manual.status, Some(SyncStatus::Success));
        assert!(manual.finished);
        let (_, attempts, parked, error) = receipt(&c).await;
        assert_eq!((attempts, parked, error), (1, false, None));
        assert_eq!(syncs(&c).await, 1);
    })
    .await;
}

#[tokio::test]
async fn held_sources_and_syncs_are_skipped_without_counting_an_attempt() {
    with_db(|db| async move {
        let (dir, found) = one_file(400).await;
        let mut c = db.client().await;
        fail_inserts(&mut c).await;
        let policy = RetryPolicy {
            max_attempts: 3,
            backoff: Duration::ZERO,
            ..RetryPolicy::default()
        };
        let intake = intake(&db, &dir.path().join("ck"), policy);
        let auto = datsync::Mode::Automatic;
        let first = intake.process(&found, auto).await.unwrap();
        assert_eq!((first.action, first.attempts), (Action::Started, 1));
        let sync = first.sync_id.clone().unwrap();

        // Another process writes the sync (it holds the sync's writer lock).
        let other = db.client().await;
        assert!(datsync::try_lock_sync(&other, &sync).await.unwrap());
        let busy = intake.process(&found, auto).await.unwrap();
        assert_eq!(
            (busy.action, busy.attempts),
            (Action::SkippedBusy, 1),
            "{busy:?}"
        );
        let (_, attempts, _, error) = receipt(&c).await;
        assert_eq!(attempts, 1, "not an attempt");
        assert!(
            error.unwrap().contains("injected failure"),
            "the last error is kept"
        );
        drop(other);

        // Another process decides about this source right now (it holds the intake lock).
        let other = db.client().await;
        let key = format!("datsync intake {}\n{}", found.source, found.version);
        other
            .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
            .await
            .unwrap();
        let busy = intake.process(&found, auto).await.unwrap();
        assert_eq!(
            (busy.action, busy.sync_id.as_ref()),
            (Action::SkippedBusy, None)
        );
        drop(other);

        let next = intake.process(&found, auto).await.unwrap();
        assert_eq!(
            (next.action, next.attempts),
            (Action::Resumed, 2),
            "{next:?}"
        );
        assert_eq!(next.sync_id.as_ref(), Some(&sync));
    })
    .await;
}

#[tokio::test]
async fn a_stop_asked_before_a_run_leaves_its_sync_uncounted_and_due() {
    with_db(|db| async move {
        let (dir, found) = one_file(900).await;
        let (stop, stopped) = tokio::sync::watch::channel(true);
        let pipeline = pipeline(&db, &dir.path().join("ck")).stop(stopped);
        let policy = RetryPolicy {
            backoff: Duration::from_secs(3600),
            ..RetryPolicy::default()
        };
        let intake = Intake::new(pipeline, policy);
        let auto = datsync::Mode::Automatic;
        let first = intake.process(&found, auto).await.unwrap();
        assert_eq!(first.action, Action::Started);
        assert!(first.interrupted, "{first:?}");
        assert_eq!(
            (first.attempts, first.status),
            (0, Some(SyncStatus::InProgress))
        );
        let summary = first.summary.as_ref().unwrap();
        assert!(summary.interrupted);
        assert_eq!(summary.status, SyncStatus::InProgress);
        assert_eq!(summary.counts.chunks_completed, 0);

        stop.send(false).unwrap();
        // Due at once, whatever the pause.
        let next = intake.process(&found, auto).await.unwrap();
        assert_eq!(
            (next.action, next.attempts),
            (Action::Resumed, 1),
            "{next:?}"
        );
        assert_eq!(next.sync_id, first.sync_id);
        assert_eq!(next.status, Some(SyncStatus::Success));
        assert_eq!(next.summary.unwrap().counts.rows_loaded, 900);
    })
    .await;
}

#[tokio::test]
async fn an_error_before_the_sync_has_a_status_is_an_attempt_and_waits_its_pause() {
    with_db(|db| async move {
        let (dir, found) = one_file(300).await;
        // The checkpoint directory cannot be made: a file is in the way.
        let blocked = dir.path().join("ck");
        std::fs::write(&blocked, "not a directory").unwrap();
        let policy = RetryPolicy {
            backoff: Duration::from_secs(3600),
            ..RetryPolicy::default()
        };
        let intake = intake(&db, &blocked.join("inner"), policy);
        let auto = datsync::Mode::Automatic;
        let first = intake.process(&found, auto).await.unwrap();
        assert_eq!(first.action, Action::Started, "{first:?}");
        assert!(first.summary.is_none(), "{first:?}");
        let error = first.error.as_deref().unwrap();
        assert!(
            error.contains("ck"),
            "the checkpoint directory is named: {error}"
        );
        assert_eq!((first.attempts, first.exit_code()), (1, 1));
        assert!(first.next_attempt_at.is_some());
        let next = intake.process(&found, auto).await.unwrap();
        assert_eq!(
            (next.action, next.attempts),
            (Action::WaitingBackoff, 1),
            "{next:?}"
        );
        assert_eq!(next.error, first.error, "the error is recorded");
    })
    .await;
}

/// A version listed but replaced before its run starts is not loaded under its receipt: the
/// receipt is finished as superseded, no sync runs, no attempt is used; the version the
/// source has now is a receipt of its own.
#[tokio::test]
async fn a_version_replaced_before_its_run_is_superseded_not_loaded() {
    with_db(|db| async move {
        let (dir, listed) = one_file(400).await;
        let intake = intake(&db, &dir.path().join("ck"), RetryPolicy::default());
        // What a listing saw a moment before the file was rewritten.
        let stale = Found {
            version: format!("{}-stale", listed.size),
            ..listed.clone()
        };
        let p = intake
            .process(&stale, datsync::Mode::Automatic)
            .await
            .unwrap();
        assert_eq!(p.action, Action::Superseded, "{p:?}");
        assert!(p.finished && p.summary.is_none(), "{p:?}");
        assert_eq!(p.attempts, 0);
        let c = db.client().await;
        assert_eq!(
            syncs(&c).await,
            0,
            "nothing was loaded under the stale receipt"
        );
        let (_, attempts, parked, error) = receipt(&c).await;
        assert_eq!((attempts, parked), (0, false));
        assert!(error.unwrap().contains("replaced"));
        // Listed again, it is finished: nothing to do.
        let again = intake
            .process(&stale, datsync::Mode::Automatic)
            .await
            .unwrap();
        assert_eq!(again.action, Action::SkippedDone);
        // The version the file has now loads as a sync of its own.
        let now = intake
            .process(&listed, datsync::Mode::Automatic)
            .await
            .unwrap();
        assert_eq!(now.action, Action::Started, "{now:?}");
        assert_eq!(now.status, Some(SyncStatus::Success));
        assert_eq!(syncs(&c).await, 1);
    })
    .await;
}

/// A queue delivery stopped on request counts (the host counted it), is not due before the
/// host's next delivery, and at the host's limit is parked rather than left to the host's
/// poison queue.
#[tokio::test]
async fn a_stopped_queue_delivery_counts_and_the_last_one_parks() {
    with_db(|db| async move {
        let (dir, found) = one_file(900).await;
        let (stop, stopped) = tokio::sync::watch::channel(true);
        let pipeline = pipeline(&db, &dir.path().join("ck")).stop(stopped);
        let policy = RetryPolicy {
            max_attempts: 2,
            backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(60),
        };
        let intake = Intake::new(pipeline, policy);
        let first = intake
            .process(&found, datsync::Mode::Queued { delivery: 1 })
            .await
            .unwrap();
        assert_eq!(
            (first.action, first.attempts),
            (Action::Started, 1),
            "{first:?}"
        );
        assert!(first.interrupted && !first.finished, "{first:?}");
        // A sweep meanwhile leaves it to the queue: not due before the host's next delivery.
        let swept = intake
            .process(&found, datsync::Mode::Automatic)
            .await
            .unwrap();
        assert_eq!(swept.action, Action::WaitingBackoff, "{swept:?}");
        let last = intake
            .process(&found, datsync::Mode::Queued { delivery: 2 })
            .await
            .unwrap();
        assert_eq!(
            (last.action, last.attempts),
            (Action::Parked, 2),
            "{last:?}"
        );
        let c = db.client().await;
        let (_, attempts, parked, _) = receipt(&c).await;
        assert_eq!((attempts, parked), (2, true));
        // A manual re-run still can: it is decided (its sync id known) before it runs.
        stop.send(false).unwrap();
        let datsync::Begun::Ready(ready) =
            intake.begin(&found, datsync::Mode::Manual).await.unwrap()
        else {
            panic!("a manual re-run runs");
        };
        assert_eq!(Some(ready.sync_id()), last.sync_id.as_ref());
        assert_eq!(ready.action(), Action::Resumed);
        let done = ready.run().await.unwrap();
        assert!(done.finished, "{done:?}");
        assert_eq!(done.status, Some(SyncStatus::Success));
    })
    .await;
}
