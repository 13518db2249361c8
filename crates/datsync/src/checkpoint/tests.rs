use super::manifest::{ParseProblem, parse_entry, parse_manifest};
use super::*;
use crate::model::SourceFingerprint;

fn manifest() -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        sync_id: SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap(),
        source_file: "a.dat".into(),
        source_path: "in/a.dat".into(),
        file_size_bytes: 10,
        total_chunks: 0,
        chunk_size: 5,
        chunk_bytes: None,
        max_line_bytes: None,
        status: CheckpointStatus::Converting,
        phase: CheckpointStatus::Converting,
        created_at: "2025-01-29T14:30:22Z".into(),
        updated_at: "2025-01-29T14:30:22Z".into(),
        source_fingerprint: SourceFingerprint {
            size_bytes: 10,
            etag: Some("\"e1\"".into()),
            modified: None,
            sha256: None,
        },
        compression: ChunkCompression::Snappy,
        journal_seq: 0,
        error: None,
        chunks: Vec::new(),
    }
}

fn chunk(id: u32, status: ChunkStatus) -> ChunkEntry {
    ChunkEntry {
        chunk_id: ChunkId(id),
        status,
        rows: 5,
        parquet_path: crate::store::chunk_file_name(ChunkId(id)),
        parquet_size_bytes: 100,
        created_at: "2025-01-29T14:30:23Z".into(),
        processed_at: None,
        records_inserted: 0,
        records_updated: 0,
        validation_errors: 0,
        first_line: 2 + u64::from(id) * 5,
        last_line: 6 + u64::from(id) * 5,
        parquet_sha256: "0".repeat(64),
        attempts: 0,
        error: None,
        failed_at: None,
        rows_rejected: 0,
        source_end: false,
        resume_point: None,
        source_hash: None,
    }
}

#[test]
fn journal_entries_apply_idempotently_and_keep_chunks_sorted() {
    let mut m = manifest();
    let entry = |seq, id, status| JournalEntry {
        seq,
        updated_at: format!("2025-01-29T14:31:{seq:02}Z"),
        status: CheckpointStatus::Converting,
        phase: CheckpointStatus::Converting,
        error: None,
        chunk: chunk(id, status),
    };
    m.apply(entry(1, 2, ChunkStatus::Ready));
    m.apply(entry(2, 0, ChunkStatus::Ready));
    m.apply(entry(3, 0, ChunkStatus::Processing));
    let once = m.clone();
    m.apply(entry(3, 0, ChunkStatus::Processing));
    assert_eq!(m, once);
    let ids: Vec<u32> = m.chunks.iter().map(|c| c.chunk_id.0).collect();
    assert_eq!(ids, vec![0, 2]);
    assert_eq!(m.total_chunks, 2);
    assert_eq!(m.updated_at, "2025-01-29T14:31:03Z");
    assert_eq!(m.chunk(ChunkId(0)).unwrap().status, ChunkStatus::Processing);
}

#[test]
fn manifests_round_trip_and_bad_ones_say_why() {
    let mut m = manifest();
    m.put_chunk(chunk(0, ChunkStatus::Completed));
    let bytes = serde_json::to_vec_pretty(&m).unwrap();
    assert_eq!(parse_manifest(&bytes).unwrap(), m);
    let problem = |b: &[u8]| match parse_manifest(b) {
        Err(ParseProblem::Corrupt(reason)) => reason,
        Err(ParseProblem::Version(v)) => format!("version {v}"),
        Ok(_) => "ok".to_owned(),
    };
    assert_eq!(problem(b""), "empty file");
    assert_eq!(problem(b"  \n"), "empty file");
    assert!(problem(&bytes[..bytes.len() - 3]).starts_with("truncated"));
    assert!(problem(b"[1,2]").starts_with("not a valid manifest"));
    assert_eq!(problem(b"{\"sync_id\":\"x\"}"), "no format_version field");
    assert_eq!(problem(b"{\"format_version\":9}"), "version 9");
    assert!(matches!(parse_entry(b""), Err(ParseProblem::Corrupt(_))));
}

#[test]
fn source_checks_follow_the_documented_rules() {
    let m = manifest();
    let same = m.source_fingerprint.clone();
    assert!(verify_source(&m, &same).is_ok());
    // Unknown on one side: not compared.
    let no_etag = SourceFingerprint {
        etag: None,
        ..same.clone()
    };
    assert!(verify_source(&m, &no_etag).is_ok());
    let new_etag = SourceFingerprint {
        etag: Some("\"e2\"".into()),
        ..same.clone()
    };
    let err = verify_source(&m, &new_etag).unwrap_err();
    assert_eq!(err.differences.len(), 1);
    assert_eq!(err.differences[0].field, "etag");
    let bigger = SourceFingerprint {
        size_bytes: 11,
        etag: Some("\"e2\"".into()),
        ..same
    };
    let fields: Vec<_> = verify_source(&m, &bigger)
        .unwrap_err()
        .differences
        .iter()
        .map(|d| d.field)
        .collect();
    assert_eq!(fields, vec!["size_bytes", "etag"]);
}

#[test]
fn chunk_statuses_serialize_as_in_the_seed() {
    let text = serde_json::to_string(&[
        ChunkStatus::Ready,
        ChunkStatus::Processing,
        ChunkStatus::Completed,
        ChunkStatus::Failed,
        ChunkStatus::Skipped,
    ])
    .unwrap();
    assert_eq!(
        text,
        r#"["ready","processing","completed","failed","skipped"]"#
    );
    let text = serde_json::to_string(&CheckpointStatus::Converting).unwrap();
    assert_eq!(text, r#""converting""#);
}

#[test]
fn retention_reads_its_setting() {
    assert_eq!(
        RetentionPolicy::default(),
        RetentionPolicy::days(crate::config::DEFAULT_RETENTION_DAYS)
    );
    assert_eq!(RetentionPolicy::days(3).max_age, chrono::TimeDelta::days(3));
}

#[test]
fn manager_futures_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let mut m = CheckpointManager::new(
        crate::store::Store::memory(),
        SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap(),
    );
    assert_send(&m.mark_chunk_complete(ChunkId(0), ChunkOutcome::default()));
    assert_send(&m.save_chunk_parquet(
        ChunkId(0),
        &arrow_array::RecordBatch::new_empty(std::sync::Arc::new(arrow_schema::Schema::empty())),
    ));
    assert_send(&m.load_chunk(ChunkId(0)));
    assert_send(&m.cleanup());
    assert_send(&m);
}

#[test]
fn audit_finds_gaps_stray_entries_and_impossible_lines() {
    let mut m = manifest();
    m.chunks = (0..4).map(|i| chunk(i, ChunkStatus::Ready)).collect();
    assert!(m.audit().is_empty(), "{}", m.audit());

    // Chunks 1 and 2 lost; chunk 3 ends the source; an entry after it.
    let mut gap = m.clone();
    gap.chunks
        .retain(|c| c.chunk_id.0 == 0 || c.chunk_id.0 == 3);
    gap.chunks[1].source_end = true;
    gap.chunks.push(chunk(40, ChunkStatus::Completed));
    let damage = gap.audit();
    assert_eq!(
        damage.gaps,
        vec![(ChunkId(1), ChunkId(2)), (ChunkId(4), ChunkId(39))]
    );
    assert_eq!(damage.past_end, vec![ChunkId(40)]);
    assert_eq!(damage.to_forget(), vec![ChunkId(40)]);
    assert!(damage.needs_source());
    let text = damage.to_string();
    assert!(text.contains("no entry for chunks 1 to 2"), "{text}");
    assert!(
        text.contains("chunk 40 after the chunk that ends the source"),
        "{text}"
    );

    // Lines that run backwards, overlap the previous chunk's, or hold more rows than lines
    // or than a chunk may; the next chunk is checked against the last good one.
    let mut lines = m.clone();
    lines.chunks[1].first_line = lines.chunks[0].last_line;
    lines.chunks[2].rows = 6;
    let damage = lines.audit();
    assert_eq!(damage.bad_lines, vec![ChunkId(1), ChunkId(2)]);
    assert!(damage.gaps.is_empty() && damage.past_end.is_empty());
    let mut backwards = m;
    backwards.chunks[3].last_line = backwards.chunks[3].first_line - 1;
    assert_eq!(backwards.audit().bad_lines, vec![ChunkId(3)]);

    // Journal objects left unread alone need no source.
    let only_journal = Damage {
        journal: vec!["journal/000000000003.json is unreadable (empty file)".into()],
        ..Damage::default()
    };
    assert!(!only_journal.is_empty() && !only_journal.needs_source());
}
