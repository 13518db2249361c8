//! Diagram 4's error handling, with real failures: a transient database error on one chunk
//! (a trigger raising SQLSTATE 40001 while a flag row exists), a fatal one (22012), too many
//! rejected rows, a missing required column; plus `--no-checkpoint`, one writer per sync,
//! and every line accounted for.

use std::path::Path;

use crate::common::{
    CHUNK_SIZE, KEY, MESSY, Rates, Snapshot, TABLE, TestDb, Work, assert_counts_add_up,
    assert_counts_match_out_of_order, assert_metadata_matches, counts, fresh_sync_id, rejects, u,
};

/// A key loaded from chunk `chunk` (per the reference database) that appears on exactly one
/// line of the file, so a trigger on it fails that chunk and no other.
pub(crate) fn lone_key_of_chunk(reference: &TestDb, file: &Path, chunk: u64) -> String {
    let size: u64 = CHUNK_SIZE.parse().unwrap();
    // Data lines start at line 2: chunk k holds lines k*size+2 ..= (k+1)*size+1.
    let (first, last) = (
        i64::try_from(chunk * size + 2).unwrap(),
        i64::try_from((chunk + 1) * size + 1).unwrap(),
    );
    let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
    let first_fields: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split("~|^").next().unwrap_or("").trim())
        .collect();
    reference
        .query(
            &format!(
                "SELECT {KEY} FROM {TABLE} WHERE source_line BETWEEN $1 AND $2 ORDER BY source_line"
            ),
            &[&first, &last],
        )
        .iter()
        .map(|r| r.get::<_, String>(0))
        .find(|k| first_fields.iter().filter(|f| *f == k).count() == 1)
        .expect("a key that appears once in the chunk")
}

/// A trigger on the target table that raises `sqlstate` for `key`, while `flag` has a row
/// when `flag` is set.
pub(crate) fn failing_trigger(db: &TestDb, key: &str, sqlstate: &str, flag: Option<&str>) {
    db.init();
    let condition = match flag {
        Some(table) => {
            db.batch(&format!(
                "CREATE TABLE {table} (on_ boolean); INSERT INTO {table} VALUES (true);"
            ));
            format!("AND EXISTS (SELECT 1 FROM {table})")
        }
        None => String::new(),
    };
    db.batch(&format!(
        "CREATE FUNCTION datsync_test_fail() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           IF NEW.{KEY} = '{key}' {condition} THEN
             RAISE EXCEPTION 'injected failure %', '{sqlstate}' USING ERRCODE = '{sqlstate}';
           END IF;
           RETURN NEW;
         END $f$;
         CREATE TRIGGER datsync_test_fail BEFORE INSERT ON {TABLE}
           FOR EACH ROW EXECUTE FUNCTION datsync_test_fail();"
    ));
}

/// The reference: one uninterrupted run of the work file with `sync` in a fresh database.
pub(crate) fn reference(work: &Work, sync: &str) -> (TestDb, serde_json::Value, Option<i32>) {
    let db = TestDb::new();
    let out = work.run(
        &db,
        &work.checkpoints("ck_reference"),
        &["--sync-id", sync],
        &[],
    );
    assert!(matches!(out.code(), Some(0 | 2)), "{}", out.describe());
    (db, out.summary(), out.code())
}

pub(crate) const FAST_RETRY: (&str, &str) = ("DATSYNC_RETRY_BACKOFF_MS", "1");

#[test]
fn transient_error_fails_one_chunk_then_resume_completes_it() {
    let work = Work::new(4_000, 31, MESSY);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let key = lone_key_of_chunk(&reference_db, &work.file, 3);

    let db = TestDb::new();
    failing_trigger(&db, &key, "40001", Some("datsync_test_flag"));
    let ck = work.checkpoints("ck");
    let out = work.run(&db, &ck, &["--sync-id", &sync], &[FAST_RETRY]);
    let s = out.summary();
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert_eq!(s["status"], "PARTIAL_SUCCESS", "{s}");
    assert_eq!(u(&s, "chunks_failed"), 1, "{s}");
    assert_eq!(u(&s, "chunks_completed"), u(&expected, "chunks_total") - 1);
    assert!(u(&s, "rows_pending") > 0, "{s}");
    assert!(s["error"].as_str().unwrap().contains("chunk 3"), "{s}");
    assert_eq!(
        out.stderr
            .matches("transient database error; retrying")
            .count(),
        4,
        "four attempts: {}",
        out.stderr
    );
    assert!(ck.join(&sync).join("manifest.json").exists());
    assert!(s["checkpoint_dir"].is_string(), "{s}");
    assert_eq!(db.metadata(&sync).unwrap()["status"], "PARTIAL_SUCCESS");
    assert_eq!(
        db.committed_chunks(&sync) as u64,
        u(&expected, "chunks_total") - 1
    );

    db.batch("DELETE FROM datsync_test_flag");
    let out = work.resume(&db, &ck, &sync, &[FAST_RETRY]);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["resumed"], true);
    assert_eq!(u(&s, "chunks_failed"), 0);
    assert_eq!(u(&s, "chunks_skipped_on_resume"), u(&s, "chunks_total") - 1);
    // Chunk 3 was loaded after the chunks that follow it. The table must be the same:
    // newest wins whatever the order.
    assert_counts_match_out_of_order(&s, &expected);
    assert!(!ck.join(&sync).exists(), "checkpoint removed after success");
    assert_eq!(db.table(), reference_db.table(), "target rows differ");
    let (m, r) = (
        db.metadata(&sync).unwrap(),
        reference_db.metadata(&sync).unwrap(),
    );
    for k in [
        "status",
        "records_total",
        "records_failed",
        "records_superseded",
        "records_inserted",
        "records_updated",
        "records_skipped_older",
        "records_loaded",
        "records_pending",
        "validation_errors_count",
        "validation_errors",
        "error_message",
    ] {
        assert_eq!(m[k], r[k], "sync_metadata.{k}");
    }
    assert_metadata_matches(&m, &s);
}

#[test]
fn fatal_database_error_fails_the_sync_and_keeps_checkpoints() {
    let work = Work::new(2_000, 32, MESSY);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let key = lone_key_of_chunk(&reference_db, &work.file, 1);
    let reference = Snapshot::take(&reference_db, &work.checkpoints("ck_reference"), &sync);

    let db = TestDb::new();
    failing_trigger(&db, &key, "22012", None);
    let ck = work.checkpoints("ck");
    let out = work.run(&db, &ck, &["--sync-id", &sync], &[FAST_RETRY]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "FAILED");
    assert!(
        !out.stderr.contains("retrying"),
        "a fatal error is not retried: {}",
        out.stderr
    );
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("injected failure 22012"), "{error}");
    let m = db.metadata(&sync).unwrap();
    assert_eq!(m["status"], "FAILED");
    assert!(
        m["error_message"]
            .as_str()
            .is_some_and(|e| e.contains("injected failure 22012")),
        "{m}"
    );
    assert!(ck.join(&sync).join("manifest.json").exists());
    assert_eq!(db.committed_chunks(&sync), 1, "chunk 0 only");

    // The cause removed, the kept checkpoint resumes to the reference result.
    db.batch("DROP TRIGGER datsync_test_fail ON public.transport_documents");
    let out = work.resume(&db, &ck, &sync, &[]);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    assert_eq!(counts(&out.summary()), counts(&expected));
    Snapshot::take(&db, &ck, &sync).assert_same(&reference, "resumed after FAILED");
}

#[test]
fn too_many_rejected_rows_is_bad_input() {
    let work = Work::new(
        1_000,
        33,
        Rates {
            invalid: 0.5,
            dup: 0.0,
            ragged: 0.0,
        },
    );
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = fresh_sync_id();
    let out = work.run(&db, &ck, &["--sync-id", &sync], &[]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "BAD_INPUT");
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("VALIDATION_ERROR_THRESHOLD"), "{error}");
    let m = db.metadata(&sync).unwrap();
    assert_eq!(m["status"], "BAD_INPUT");
    assert_eq!(m["error_message"], s["error"]);
    assert!(ck.join(&sync).join("manifest.json").exists());
    assert_eq!(db.table().len(), 0, "nothing loaded");
    // The rows it read and rejected are reported, and the counts add up: the first chunk's
    // rejected rows, the rest of what was read pending.
    let rejected = u(&s, "rows_rejected");
    assert!(rejected > 0 && u(&s, "rows_read") >= rejected, "{s}");
    assert_eq!(u(&s, "rows_loaded"), 0, "{s}");
    assert!(u(&m, "validation_errors_count") >= rejected, "{m}");
    assert_counts_add_up(&s);
    assert_metadata_matches(&m, &s);
    // Each rejected row is in its rejects file.
    let files = rejects(&ck, &sync);
    assert_eq!(files.values().map(Vec::len).sum::<usize>() as u64, rejected);
}

#[test]
fn missing_required_column_is_bad_input_naming_it() {
    let work = Work::new(50, 34, crate::common::CLEAN);
    // Drop the `nik_supir` field from the header and every row (bytes: some rows are
    // Latin-1).
    let bytes = std::fs::read(&work.file).unwrap();
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let fields = |line: &[u8]| -> Vec<Vec<u8>> {
        let text: Vec<u8> = line.to_vec();
        let mut out = vec![Vec::new()];
        let mut i = 0;
        while i < text.len() {
            if text[i..].starts_with(b"~|^") {
                out.push(Vec::new());
                i += 3;
            } else {
                out.last_mut().unwrap().push(text[i]);
                i += 1;
            }
        }
        out
    };
    let at = fields(lines[0])
        .iter()
        .position(|h| h.as_slice() == b"nik_supir")
        .unwrap();
    let mut file = Vec::new();
    for line in &lines {
        let mut f = fields(line);
        f.remove(at);
        file.extend(f.join(&b"~|^"[..]));
        file.push(b'\n');
    }
    std::fs::write(&work.file, file).unwrap();

    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = fresh_sync_id();
    let out = work.run(&db, &ck, &["--sync-id", &sync], &[]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "BAD_INPUT");
    assert!(
        s["error"].as_str().unwrap().contains("nik_supir"),
        "the message names the column: {s}"
    );
    assert_eq!(db.metadata(&sync).unwrap()["status"], "BAD_INPUT");
    assert_eq!(db.table().len(), 0);
}

#[test]
fn no_checkpoint_gives_the_same_table_and_counts() {
    let work = Work::new(3_000, 35, MESSY);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let reference = Snapshot::take(&reference_db, &work.checkpoints("ck_reference"), &sync);

    let mut reference = reference;
    for row in &mut reference.ledger {
        row["checksum"] = serde_json::Value::Null;
    }
    let args = ["--sync-id", sync.as_str(), "--no-checkpoint"];
    // Uninterrupted, then killed twice and run again: without checkpoints a run reads the
    // whole source again, and the ledger still keeps committed chunks from loading twice.
    for kills in [&[][..], &["chunk_committed:2", "chunk_staged:3"][..]] {
        let db = TestDb::new();
        let ck = work.checkpoints(&format!("ck_{}", kills.len()));
        for kill_at in kills {
            let out = work.run(&db, &ck, &args, &[("DATSYNC_KILL_AT", kill_at)]);
            assert!(out.killed(), "{}", out.describe());
        }
        let out = work.run(&db, &ck, &args, &[]);
        assert_eq!(out.code(), expected_code, "{}", out.describe());
        assert_eq!(counts(&out.summary()), counts(&expected));
        assert!(!ck.join(&sync).exists(), "no checkpoint directory");
        let mut got = Snapshot::take(&db, &ck, &sync);
        // Without checkpoints there is no Parquet file, so no checksum in the ledger.
        for row in &mut got.ledger {
            assert_eq!(row["checksum"], "");
            row["checksum"] = serde_json::Value::Null;
        }
        got.assert_same(&reference, &format!("--no-checkpoint, killed at {kills:?}"));
    }
}

#[test]
fn a_sync_held_by_another_process_is_refused() {
    let work = Work::new(600, 36, crate::common::CLEAN);
    let db = TestDb::new();
    db.init();
    let ck = work.checkpoints("ck");
    let sync = fresh_sync_id();
    let holder = db.session();
    holder.query(
        "SELECT pg_advisory_lock(hashtextextended('datsync writer ' || $1, 0))",
        &[&sync],
    );
    let out = work.run(&db, &ck, &["--sync-id", &sync], &[]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr
            .contains("is being written by another datsync process"),
        "{}",
        out.stderr
    );
    assert!(db.table().is_empty(), "nothing written");
    assert!(db.ledger(&sync).is_empty());
    drop(holder);
    let out = work.run(&db, &ck, &["--sync-id", &sync], &[]);
    assert_eq!(out.code(), Some(0), "free again: {}", out.describe());
}

#[test]
fn every_line_is_loaded_superseded_or_rejected() {
    let work = Work::new(3_000, 37, MESSY);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let out = work.run(&db, &ck, &[], &[]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let s = out.summary();
    let sync = s["sync_id"].as_str().unwrap();
    assert_eq!(s["status"], "PARTIAL_SUCCESS");
    assert_eq!(u(&s, "rows_read"), 3_000);
    assert_eq!(
        u(&s, "rows_read"),
        u(&s, "rows_loaded") + u(&s, "rows_rejected") + u(&s, "rows_superseded"),
        "{s}"
    );
    assert_eq!(u(&s, "rows_pending"), 0);
    assert!(
        u(&s, "rows_rejected") > 0 && u(&s, "rows_superseded") > 0,
        "{s}"
    );
    let rejected = rejects(&ck, sync);
    let lines: Vec<u64> = rejected.values().flatten().copied().collect();
    assert_eq!(lines.len() as u64, u(&s, "rows_rejected"), "{rejected:?}");
    let distinct: std::collections::BTreeSet<_> = lines.iter().collect();
    assert_eq!(distinct.len(), lines.len(), "a line rejected twice");
    assert!(lines.iter().all(|l| (2..=3_001).contains(l)));
    assert!(
        s["rejects_dir"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .ends_with(&format!("rejects/{sync}")),
        "{s}"
    );
    let m = db.metadata(sync).unwrap();
    assert_metadata_matches(&m, &s);
    assert_counts_add_up(&s);
    // An empty table: one insert per distinct key, no update (keys recur across chunks).
    assert_eq!(db.table().len() as u64, u(&s, "records_inserted"));
    assert_eq!(u(&s, "records_updated"), 0, "{s}");
}
