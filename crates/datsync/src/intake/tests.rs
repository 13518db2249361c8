use std::time::Duration;

use super::*;
use crate::model::SyncCounts;

fn summary(status: SyncStatus) -> RunSummary {
    RunSummary {
        sync_id: SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap(),
        status,
        counts: SyncCounts {
            rows_read: 100,
            rows_loaded: 100,
            records_inserted: 100,
            chunks_total: 2,
            chunks_completed: 2,
            ..SyncCounts::default()
        },
        chunks_skipped_on_resume: 0,
        duration_s: 0.5,
        time_saved_s: None,
        checkpoint_dir: None,
        rejects_dir: None,
        unknown_columns: Vec::new(),
        resumed: false,
        error: None,
        error_class: None,
        interrupted: false,
        all_older: false,
        already_loaded: false,
        derived_failed: 0,
        hooks_failed: 0,
    }
}

#[test]
fn the_pause_doubles_up_to_its_cap() {
    let policy = RetryPolicy::default();
    let secs: Vec<u64> = (1..=8).map(|n| policy.delay(n).as_secs()).collect();
    assert_eq!(secs, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
    assert_eq!(policy.delay(0), Duration::from_secs(60));
    assert_eq!(policy.delay(u32::MAX), DEFAULT_MAX_BACKOFF);
    let zero = RetryPolicy {
        backoff: Duration::ZERO,
        ..policy
    };
    assert_eq!(zero.delay(5), Duration::ZERO);
}

#[test]
fn what_is_final() {
    assert!(summary(SyncStatus::Success).is_final());
    assert!(summary(SyncStatus::BadInput).is_final());
    assert!(!summary(SyncStatus::Failed).is_final());
    assert!(!summary(SyncStatus::InProgress).is_final());
    let mut rejected_only = summary(SyncStatus::PartialSuccess);
    rejected_only.counts.rows_rejected = 3;
    assert!(rejected_only.is_final());
    let mut failed_chunk = summary(SyncStatus::PartialSuccess);
    failed_chunk.counts.chunks_failed = 1;
    failed_chunk.counts.rows_pending = 50;
    assert!(!failed_chunk.is_final());
    let stopped = RunSummary {
        interrupted: true,
        ..summary(SyncStatus::Success)
    };
    assert!(!stopped.is_final());
}

#[test]
fn exit_codes_follow_the_run() {
    let found = Found {
        source: "/in/a.dat".into(),
        name: "a.dat".into(),
        version: "1-2".into(),
        size: 1,
    };
    let ran = |status| Processed {
        summary: Some(summary(status)),
        ..Processed::new(&found, Action::Started)
    };
    assert_eq!(ran(SyncStatus::Success).exit_code(), 0);
    assert_eq!(ran(SyncStatus::PartialSuccess).exit_code(), 2);
    assert_eq!(ran(SyncStatus::Failed).exit_code(), 1);
    assert_eq!(ran(SyncStatus::BadInput).exit_code(), 1);
    let stopped = Processed {
        interrupted: true,
        ..ran(SyncStatus::InProgress)
    };
    assert_eq!(stopped.exit_code(), 0);
    let error = Processed {
        error: Some("cannot connect".into()),
        ..Processed::new(&found, Action::Resumed)
    };
    assert_eq!(error.exit_code(), 1);
    assert_eq!(Processed::new(&found, Action::SkippedDone).exit_code(), 0);
    assert_eq!(
        Processed::new(&found, Action::WaitingBackoff).exit_code(),
        0
    );
    assert_eq!(Processed::new(&found, Action::SkippedParked).exit_code(), 0);
    assert_eq!(Processed::new(&found, Action::Parked).exit_code(), 1);
    let json = serde_json::to_value(ran(SyncStatus::Success)).unwrap();
    assert_eq!(json["action"], "started");
    assert_eq!(json["summary"]["status"], "SUCCESS");
}

#[test]
fn the_poison_alert_says_what_and_why() {
    let found = Found {
        source: "/in/a.dat".into(),
        name: "a.dat".into(),
        version: "1-2".into(),
        size: 1,
    };
    let p = Processed {
        sync_id: Some(SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap()),
        status: Some(SyncStatus::InProgress),
        attempts: 5,
        error: Some("cannot connect to db".into()),
        ..Processed::new(&found, Action::Parked)
    };
    let r = poison::poison_report(&found, &p, 5);
    assert_eq!(r.status, SyncStatus::Failed);
    assert_eq!(r.file_name, "a.dat");
    assert_eq!(r.sync_id.as_str(), "sync_20250129_143022_a3f4b2c1");
    let m = r.error_message.unwrap();
    for part in [
        "parked as poison",
        "5 attempt(s)",
        "cannot connect to db",
        "/in/a.dat",
    ] {
        assert!(m.contains(part), "{part}: {m}");
    }
}

/// The HTTP handler shares one intake between tasks: it and its futures must be sendable.
#[allow(dead_code)]
fn an_intake_is_shared_between_tasks(intake: &Intake, found: &Found) {
    fn send<T: Send>(_: T) {}
    fn sync<T: Sync>(_: &T) {}
    sync(intake);
    send(intake.process(found, Mode::Automatic));
    send(intake.process_manual(found));
    send(list_local(std::path::Path::new(".")));
}
