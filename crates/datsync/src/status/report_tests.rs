use chrono::{DateTime, Utc};

use super::report::*;
use super::{LedgerChunk, SyncDetail, SyncRecord};
use crate::checkpoint::{ChunkCompression, ChunkEntry, FORMAT_VERSION, Manifest};
use crate::model::{CheckpointStatus, ChunkId, ChunkStatus, SourceFingerprint, SyncId};

const ID: &str = "sync_20250129_143022_a3f4b2c1";

fn chunk(id: u32, status: ChunkStatus) -> ChunkEntry {
    ChunkEntry {
        chunk_id: ChunkId(id),
        status,
        rows: 10,
        parquet_path: crate::store::chunk_file_name(ChunkId(id)),
        parquet_size_bytes: 100,
        created_at: "2025-01-29T14:30:23Z".into(),
        processed_at: None,
        records_inserted: 0,
        records_updated: 0,
        validation_errors: 0,
        first_line: 2 + u64::from(id) * 10,
        last_line: 11 + u64::from(id) * 10,
        parquet_sha256: "0".repeat(64),
        attempts: 1,
        error: (status == ChunkStatus::Failed).then(|| "connection reset".to_owned()),
        failed_at: None,
        rows_rejected: 1,
        source_end: false,
        resume_point: None,
        source_hash: None,
    }
}

fn manifest(phase: CheckpointStatus, chunks: Vec<ChunkEntry>) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        sync_id: SyncId::parse(ID).unwrap(),
        source_file: "a.dat".into(),
        source_path: "in/a.dat".into(),
        file_size_bytes: 10,
        total_chunks: chunks.len() as u32,
        chunk_size: 10,
        chunk_bytes: None,
        max_line_bytes: None,
        status: phase,
        phase,
        created_at: "2025-01-29T14:30:22Z".into(),
        updated_at: "2025-01-29T14:31:22Z".into(),
        source_fingerprint: SourceFingerprint {
            size_bytes: 10,
            etag: None,
            modified: None,
            sha256: None,
        },
        compression: ChunkCompression::Snappy,
        journal_seq: 0,
        error: None,
        chunks,
    }
}

fn ledger(id: u32, at: &str) -> LedgerChunk {
    LedgerChunk {
        chunk_id: id,
        rows: 9,
        inserted: 7,
        updated: 2,
        skipped_older: 0,
        committed_at: at.into(),
        rows_read: 0,
        rejected: 0,
        superseded: 0,
        validation_errors_count: 0,
    }
}

fn detail() -> SyncDetail {
    SyncDetail {
        record: SyncRecord {
            sync_id: ID.into(),
            status: crate::model::SyncStatus::PartialSuccess.into(),
            file_name: Some("a.dat".into()),
            file_path: None,
            file_size_bytes: None,
            records_total: 30,
            records_inserted: 14,
            records_updated: 4,
            records_failed: 3,
            records_skipped_older: 0,
            records_superseded: 0,
            records_loaded: 18,
            records_pending: 9,
            validation_errors_count: 3,
            value_warnings: 2,
            unknown_columns: vec!["tonase".into()],
            error_message: None,
            started_at: "2025-01-29T14:30:22Z".into(),
            completed_at: None,
            duration_seconds: None,
            older_than: None,
        },
        validation_errors_sample: Vec::new(),
        validation_errors_sampled: 0,
    }
}

#[test]
fn the_ledger_wins_over_the_manifest() {
    let m = manifest(
        CheckpointStatus::Processing,
        vec![
            chunk(0, ChunkStatus::Completed),
            chunk(1, ChunkStatus::Failed),
            chunk(2, ChunkStatus::Failed),
            chunk(3, ChunkStatus::Ready),
        ],
    );
    let l = [
        ledger(0, "2025-01-29T14:30:30Z"),
        ledger(1, "2025-01-29T14:30:40Z"),
    ];
    let r = build_report(
        ID,
        Some(detail()),
        &l,
        CheckpointState::Found(Box::new(m)),
        "ck",
        None,
    );
    assert_eq!(r.progress.text, "2/4 chunks completed");
    assert_eq!(
        (
            r.progress.chunks_completed,
            r.progress.chunks_failed,
            r.progress.chunks_pending
        ),
        (2, 1, 1)
    );
    let c1 = &r.chunks[1];
    assert_eq!(c1.status, ChunkStatus::Completed);
    assert_eq!(c1.manifest_status, Some(ChunkStatus::Failed));
    assert!(c1.committed && c1.error.is_none());
    assert_eq!((c1.inserted, c1.updated, c1.rows), (7, 2, 10));
    let failed: Vec<u32> = r.failed_chunks.iter().map(|c| c.chunk_id).collect();
    assert_eq!(failed, vec![2]);
    assert_eq!(
        r.failed_chunks[0].error.as_deref(),
        Some("connection reset")
    );
    assert_eq!(r.ledger.chunks_committed, 2);
    assert_eq!((r.ledger.inserted, r.ledger.updated), (14, 4));
    assert!(r.time_saved.is_none() && r.time_saved_note.is_some());
}

#[test]
fn without_a_checkpoint_the_ledger_alone_is_shown() {
    let l = [
        ledger(0, "2025-01-29T14:30:30Z"),
        ledger(4, "2025-01-29T14:30:31Z"),
    ];
    let r = build_report(ID, None, &l, CheckpointState::Absent, "ck", None);
    assert_eq!(r.chunks.len(), 2);
    assert_eq!(r.chunks[1].chunk_id, 4);
    assert_eq!(r.chunks[1].rows, 9);
    assert!(
        r.progress.text.starts_with("2 chunks committed"),
        "{}",
        r.progress.text
    );
    assert!(!r.progress.total_final);
    assert!(r.checkpoint.is_none() && r.checkpoint_note.unwrap().contains("no checkpoint"));
}

#[test]
fn a_conversion_in_progress_says_the_total_is_not_final() {
    let m = manifest(
        CheckpointStatus::Converting,
        vec![chunk(0, ChunkStatus::Skipped), chunk(1, ChunkStatus::Ready)],
    );
    let r = build_report(
        ID,
        None,
        &[],
        CheckpointState::Found(Box::new(m)),
        "ck",
        None,
    );
    assert_eq!(
        r.progress.text,
        "1/2 chunks completed (conversion still running)"
    );
    assert_eq!(r.progress.chunks_skipped, 1);
}

#[test]
fn time_saved_is_measured_from_commits_before_the_resume() {
    let l = [
        ledger(0, "2025-01-29T14:30:30Z"),
        ledger(1, "2025-01-29T14:30:32Z"),
        ledger(2, "2025-01-29T14:30:34Z"),
        ledger(3, "2025-01-29T15:00:00Z"),
    ];
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let resumed: DateTime<Utc> = at("2025-01-29T14:59:00Z");
    let e = estimate_time_saved(&l, resumed).unwrap();
    assert_eq!(e.chunks_skipped, 3);
    assert!((e.seconds_per_chunk - 2.0).abs() < 1e-9);
    assert!((e.seconds - 6.0).abs() < 1e-9);
    assert!(estimate_time_saved(&l, at("2025-01-29T14:30:31Z")).is_none());
}

#[test]
fn a_known_resume_time_gives_a_labelled_estimate() {
    let l = [
        ledger(0, "2025-01-29T14:30:30Z"),
        ledger(1, "2025-01-29T14:30:33Z"),
        ledger(2, "2025-01-29T15:00:00Z"),
    ];
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let r = build_report(
        ID,
        None,
        &l,
        CheckpointState::Absent,
        "ck",
        Some(at("2025-01-29T14:59:00Z")),
    );
    let t = r.time_saved.unwrap();
    assert_eq!(t.chunks_skipped, 2);
    assert!((t.seconds - 6.0).abs() < 1e-9);
    assert!(r.time_saved_note.is_none());
    let r = build_report(
        ID,
        None,
        &l,
        CheckpointState::Absent,
        "ck",
        Some(at("2025-01-29T14:30:31Z")),
    );
    assert!(r.time_saved.is_none());
    assert_eq!(r.time_saved_note.as_deref(), Some(TIME_SAVED_TOO_FEW));
}
