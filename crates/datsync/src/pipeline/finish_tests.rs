//! The final status and the counts of `finish.rs` (Diagram 4's last boxes).

use super::*;
use crate::model::ChunkId;
use crate::pg::PgError;
use crate::pipeline::chunk::FailedChunk;
use crate::pipeline::halt::TransientFailure;

fn id() -> SyncId {
    SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap()
}

fn counts(rows_read: u64, loaded: u64, rejected: u64) -> SyncCounts {
    SyncCounts {
        rows_read,
        rows_loaded: loaded,
        rows_rejected: rejected,
        rows_pending: rows_read - loaded - rejected,
        ..SyncCounts::default()
    }
}

#[test]
fn the_final_status_follows_diagram_4() {
    let none = Tally::default();
    let ok = decide(None, &none, &counts(10, 10, 0), &id());
    assert_eq!(
        (ok.status, ok.error, ok.class),
        (SyncStatus::Success, None, None)
    );
    let rejected = decide(None, &none, &counts(10, 8, 2), &id());
    assert_eq!(rejected.status, SyncStatus::PartialSuccess);
    assert_eq!(rejected.error, None);
    let pending = decide(None, &none, &counts(10, 6, 0), &id());
    assert_eq!(pending.status, SyncStatus::Failed);
    assert!(
        pending
            .error
            .unwrap()
            .starts_with("4 of the source's 10 rows")
    );
    assert_eq!(pending.class, Some(ErrorClass::Fatal));
}

/// A connection that timed out (transient).
fn timed_out() -> PgError {
    PgError::Connect {
        database: "d".into(),
        user: "u".into(),
        nothing_configured: false,
        failures: vec![crate::pg::AttemptFailure {
            server: "db:5432".into(),
            address: None,
            sslmode: "sslmode=verify-full".into(),
            how: String::new(),
            cause: "timeout expired after 30 s".into(),
            class: ErrorClass::Transient,
            sqlstate: None,
        }],
    }
}

/// The ledger's sums and a chunk that stopped the sync: rows read and rejected include
/// the stopped chunk's, the rest of it is pending, and everything adds up.
#[test]
fn a_sync_stopped_by_the_threshold_counts_what_it_read_and_rejected() {
    let totals = LedgerTotals {
        chunks: 2,
        rows: 180,
        inserted: 150,
        updated: 10,
        skipped_older: 5,
        // 180 staged + 4 rejected + 1 superseded in their chunk.
        rows_read: 185,
        rejected: 4,
        superseded: 1,
        superseded_on_load: 15,
        validation_errors_count: 5,
        value_warnings: 7,
        derived_failed: 0,
    };
    let stopped = TooManyRejects {
        source_name: "/in/a.dat".into(),
        chunk: ChunkId(2),
        rejected: 40,
        rows_read: 100,
        threshold: 0.1,
        errors_count: 41,
        errors: Vec::new(),
    };
    // Without a manifest the rows read are the ledger's: the stopped chunk is added.
    let c = super::counts(&totals, 185, 3, &Tally::default(), Some(&stopped));
    assert_eq!(c.rows_read, 285);
    assert_eq!(
        (
            c.rows_loaded,
            c.rows_rejected,
            c.rows_superseded,
            c.rows_pending
        ),
        (165, 44, 16, 60)
    );
    assert_eq!(
        c.rows_loaded,
        c.records_inserted + c.records_updated + c.records_skipped_older
    );
    assert_eq!(c.value_warnings, 7);
    // A manifest that read further counts those rows as pending.
    let c = super::counts(&totals, 450, 5, &Tally::default(), Some(&stopped));
    assert_eq!((c.rows_read, c.rows_pending), (450, 225));
    let c = super::counts(&totals, 185, 2, &Tally::default(), None);
    assert_eq!(
        c.rows_read,
        c.rows_loaded + c.rows_rejected + c.rows_superseded + c.rows_pending
    );
    assert_eq!(c.rows_pending, 0);
}

#[test]
fn failed_chunks_leave_a_partial_success_that_a_resume_can_finish() {
    let tally = Tally {
        failed: vec![FailedChunk {
            chunk: ChunkId(3),
            error: TransientFailure::Connect(timed_out()),
        }],
        ..Tally::default()
    };
    let v = decide(None, &tally, &counts(10, 6, 0), &id());
    assert_eq!(v.status, SyncStatus::PartialSuccess);
    assert_eq!(
        v.error.as_deref(),
        Some(
            "1 chunk(s) failed and are kept for a retry (`datsync resume \
             sync_20250129_143022_a3f4b2c1`): chunk 3: cannot connect to database \
             \"d\" as user \"u\": db:5432 (sslmode=verify-full): timeout expired after 30 s"
        )
    );
    assert_eq!(v.class, Some(ErrorClass::Transient));
}

#[test]
fn a_halt_gives_its_status_its_message_and_its_class() {
    let halt = Halt::from(BadInput::UnknownColumns {
        source_name: "/in/a.dat".into(),
        profile: "ztdwr".into(),
        columns: vec!["EXTRA".into()],
    });
    let v = decide(Some(&halt), &Tally::default(), &counts(10, 0, 0), &id());
    assert_eq!(v.status, SyncStatus::BadInput);
    assert_eq!(v.error.as_deref(), Some(halt.to_string().as_str()));
    assert_eq!(v.class, Some(ErrorClass::Fatal));
    let failed = Halt::from(crate::pipeline::halt::SyncFailure::Connect(timed_out()));
    let v = decide(Some(&failed), &Tally::default(), &counts(10, 0, 0), &id());
    assert_eq!(
        (v.status, v.class),
        (SyncStatus::Failed, Some(ErrorClass::Transient))
    );
}
