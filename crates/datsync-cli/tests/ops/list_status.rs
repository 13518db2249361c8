//! `datsync list` and `datsync status`.

use serde_json::Value;

use crate::fixture::seed;
use crate::harness::{TestDb, datsync, json};
use crate::{NEWER, OLDER};

#[test]
fn list_shows_recent_syncs_newest_first() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let ck = cwd.path().join("ck");
    let s = seed(&db, &ck);
    let url = db.url();

    let list = json(&datsync(
        cwd.path(),
        &["list", "--database-url", &url, "--json"],
        &[],
    ));
    let syncs = list["syncs"].as_array().unwrap();
    let ids: Vec<&str> = syncs
        .iter()
        .map(|v| v["sync_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![NEWER, OLDER], "newest first");
    let n = &syncs[0];
    assert_eq!(n["status"], "PARTIAL_SUCCESS");
    assert_eq!(n["file_name"], "ztdwr.dat");
    assert_eq!(n["records_total"], s.total);
    let inserted: u64 = s.loads.iter().map(|l| l.inserted).sum();
    let updated: u64 = s.loads.iter().map(|l| l.updated).sum();
    assert_eq!(n["records_inserted"], inserted);
    assert_eq!(n["records_updated"], updated);
    assert_eq!(n["records_failed"], s.rejected);
    assert!(n["duration_seconds"].as_f64().unwrap() >= 0.0);
    let limited = json(&datsync(
        cwd.path(),
        &["list", "--database-url", &url, "--json", "--limit", "1"],
        &[],
    ));
    assert_eq!(limited["syncs"].as_array().unwrap().len(), 1);
    let listed = datsync(cwd.path(), &["list", "--database-url", &url], &[]);
    assert!(
        listed.1.contains(NEWER) && listed.1.contains("PARTIAL_SUCCESS"),
        "{}",
        listed.1
    );
}

#[test]
fn status_merges_metadata_ledger_and_checkpoint() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let ck = cwd.path().join("ck");
    let s = seed(&db, &ck);
    let url = db.url();
    let ck_arg = ck.to_str().unwrap();
    let inserted: u64 = s.loads.iter().map(|l| l.inserted).sum();
    let updated: u64 = s.loads.iter().map(|l| l.updated).sum();

    // No id: the most recent sync.
    let st = json(&datsync(
        cwd.path(),
        &[
            "status",
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck_arg,
            "--json",
        ],
        &[],
    ));
    assert_eq!(st["sync_id"], NEWER);
    assert_eq!(st["metadata"]["status"], "PARTIAL_SUCCESS");
    assert_eq!(
        st["metadata"]["error_message"],
        "1 chunk failed: connection reset"
    );
    assert_eq!(st["metadata"]["validation_errors_count"], s.errors.len());
    assert!(!s.errors.is_empty(), "the sample has invalid rows");
    let sample = st["metadata"]["validation_errors_sample"]
        .as_array()
        .unwrap();
    assert_eq!(sample.len(), s.errors.len().min(5));
    assert_eq!(sample[0]["line"], s.errors[0].line);
    assert_eq!(
        sample[0]["reason"].as_str(),
        Some(s.errors[0].reason.as_str())
    );
    assert_eq!(st["ledger"]["chunks_committed"], 2);
    assert_eq!(st["ledger"]["inserted"], inserted);
    assert_eq!(st["ledger"]["updated"], updated);
    assert_eq!(st["progress"]["text"], "2/3 chunks completed");
    assert_eq!(st["progress"]["chunks_completed"], 2);
    assert_eq!(st["progress"]["chunks_failed"], 1);
    assert_eq!(st["checkpoint"]["status"], "processing");
    let chunks = st["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 3);
    // The ledger wins: chunk 1 is committed although the manifest says failed.
    assert_eq!(chunks[1]["status"], "completed");
    assert_eq!(chunks[1]["manifest_status"], "failed");
    assert_eq!(chunks[1]["committed"], true);
    assert_eq!(chunks[1]["inserted"], s.loads[1].inserted);
    assert_eq!(chunks[1]["error"], Value::Null);
    assert_eq!(
        (
            chunks[0]["first_line"].as_u64(),
            chunks[0]["last_line"].as_u64()
        ),
        (Some(2), Some(11))
    );
    assert_eq!(chunks[2]["status"], "failed");
    assert_eq!(chunks[2]["attempts"], 1);
    let failed = st["failed_chunks"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0]["chunk_id"].as_u64(), failed[0]["error"].as_str()),
        (Some(2), Some("connection reset"))
    );
    assert!(st["time_saved"].is_null() && st["time_saved_note"].is_string());

    // The older sync by id: no checkpoint, the ledger alone.
    let old = json(&datsync(
        cwd.path(),
        &[
            "status",
            OLDER,
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck_arg,
            "--json",
        ],
        &[],
    ));
    assert_eq!(old["metadata"]["status"], "SUCCESS");
    assert_eq!(old["ledger"]["chunks_committed"], 1);
    assert!(old["checkpoint"].is_null());
    assert_eq!(
        old["progress"]["text"],
        "1 chunks committed (total unknown without a checkpoint)"
    );

    // Text forms, and the checkpoint directory from CHECKPOINT_BASE_PATH.
    let text = datsync(
        cwd.path(),
        &["status", NEWER, "--database-url", &url],
        &[("CHECKPOINT_BASE_PATH", ck_arg)],
    );
    assert_eq!(text.0, 0, "{}", text.2);
    assert!(text.1.contains("2/3 chunks completed"), "{}", text.1);
    assert!(text.1.contains("failed chunk  2"), "{}", text.1);
    assert!(text.1.contains("completed*"), "{}", text.1);
}

#[test]
fn an_unknown_sync_is_a_clear_error() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    let (code, _, err) = datsync(cwd.path(), &["status", "--database-url", &url], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("init-db"), "{err}");
    json(&datsync(
        cwd.path(),
        &["init-db", "--database-url", &url, "--json"],
        &[],
    ));
    let (code, out, err) = datsync(
        cwd.path(),
        &[
            "status",
            "sync_20000101_000000_deadbeef",
            "--database-url",
            &url,
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("sync_20000101_000000_deadbeef not found"),
        "{err}"
    );
    let (code, _, err) = datsync(cwd.path(), &["status", "--database-url", &url], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no syncs recorded"), "{err}");
    let (code, _, err) = datsync(
        cwd.path(),
        &["status", "not-a-sync", "--database-url", &url],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("invalid sync id"), "{err}");
}
