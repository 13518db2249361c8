//! Idempotent runs (issue 12 item 6, fault-tests row 13): `run SOURCE` on a source that a
//! sync with the same fingerprint (path, size, modification time) already loaded to a final
//! status does not load it again — it prints `already loaded as sync <id> (<status>)`, exits
//! 0 and starts no sync; `--fresh` loads it again; a sync that did not end with a final
//! status is continued, not refused; a changed file is a new sync.

use crate::common::{CLEAN, MESSY, Rates, TestDb, Work, counts, datsync, u};

/// Rows of `sync_metadata`.
fn syncs(db: &TestDb) -> i64 {
    db.query("SELECT count(*) FROM public.sync_metadata", &[])[0].get(0)
}

/// The newest `updated_at` of the target table, as text (unchanged when nothing was written).
fn last_write(db: &TestDb) -> String {
    db.query(
        "SELECT max(updated_at)::text FROM public.transport_documents",
        &[],
    )[0]
    .get::<_, Option<String>>(0)
    .unwrap_or_default()
}

/// Runs the file once to `status`, then again: already loaded, nothing written, same
/// summary; in text too; `--fresh` is a second sync.
fn run_twice(rates: Rates, status: &str, code: i32) {
    let work = Work::new(2_000, 61, rates);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let first = work.run(&db, &ck, &[], &[]);
    assert_eq!(first.code(), Some(code), "{}", first.describe());
    let first = first.summary();
    assert_eq!(first["status"], status);
    assert_eq!(first["already_loaded"], false);
    let table = db.table();
    let written = last_write(&db);

    let again = work.run(&db, &ck, &[], &[]);
    assert_eq!(again.code(), Some(0), "{}", again.describe());
    let s = again.summary();
    assert_eq!(s["already_loaded"], true, "{s}");
    assert_eq!(
        counts(&s),
        counts(&first),
        "the summary is the loading sync's"
    );
    assert_eq!(syncs(&db), 1, "no sync_metadata row was added");
    assert_eq!(db.table(), table);
    assert_eq!(last_write(&db), written, "no row was written again");

    // In text, from another directory: the path is recorded absolute.
    let url = db.url();
    let text = datsync(
        std::env::temp_dir().as_path(),
        &[
            "run",
            work.file(),
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(text.code(), Some(0), "{}", text.describe());
    let expected = format!(
        "already loaded as sync {} ({status})",
        first["sync_id"].as_str().unwrap()
    );
    assert!(text.stdout.contains(&expected), "{}", text.describe());
    assert_eq!(syncs(&db), 1);

    let fresh = work.run(&db, &ck, &["--fresh"], &[]);
    assert_eq!(fresh.code(), Some(code), "{}", fresh.describe());
    let f = fresh.summary();
    assert_eq!(f["already_loaded"], false);
    assert_ne!(f["sync_id"], first["sync_id"]);
    assert_eq!(f["rows_read"], first["rows_read"]);
    assert_eq!(syncs(&db), 2, "--fresh loads it again as a sync of its own");
    // The newest final sync now answers.
    let third = work.run(&db, &ck, &[], &[]);
    assert_eq!(third.code(), Some(0), "{}", third.describe());
    assert_eq!(third.summary()["sync_id"], f["sync_id"]);
    assert_eq!(syncs(&db), 2);
}

#[test]
fn row13_a_file_loaded_with_success_is_not_loaded_again() {
    run_twice(CLEAN, "SUCCESS", 0);
}

#[test]
fn row13_a_file_loaded_with_rejected_rows_only_is_not_loaded_again() {
    run_twice(MESSY, "PARTIAL_SUCCESS", 2);
}

#[test]
fn row13_a_file_that_ended_bad_input_is_not_loaded_again() {
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
    let first = work.run(&db, &ck, &[], &[]);
    assert_eq!(first.code(), Some(1), "{}", first.describe());
    let first = first.summary();
    assert_eq!(first["status"], "BAD_INPUT");
    let again = work.run(&db, &ck, &[], &[]);
    assert_eq!(again.code(), Some(0), "{}", again.describe());
    let s = again.summary();
    assert_eq!(s["already_loaded"], true);
    assert_eq!(s["status"], "BAD_INPUT");
    assert_eq!(s["sync_id"], first["sync_id"]);
    assert_eq!(
        s["error"], first["error"],
        "the summary says why it was bad input"
    );
    assert_eq!(syncs(&db), 1);
}

/// A sync killed mid-run is IN_PROGRESS (not final): the next `run` continues it (only the
/// chunks not committed are loaded); once it succeeded, the next `run` is a no-op.
#[test]
fn row13_a_partial_run_is_continued_then_a_no_op() {
    let work = Work::new(3_000, 62, MESSY);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let killed = work.run(&db, &ck, &[], &[("DATSYNC_KILL_AT", "chunk_completed:2")]);
    assert!(killed.killed(), "{}", killed.describe());
    assert_eq!(syncs(&db), 1);

    let resumed = work.run(&db, &ck, &[], &[]);
    assert_eq!(resumed.code(), Some(2), "{}", resumed.describe());
    let s = resumed.summary();
    assert_eq!(s["already_loaded"], false);
    assert_eq!(s["resumed"], true);
    assert!(s["chunks_skipped_on_resume"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(syncs(&db), 1, "the killed sync was continued");

    let (reference, expected, _) = crate::errors::reference(&work, s["sync_id"].as_str().unwrap());
    assert_eq!(
        db.table(),
        reference.table(),
        "the exact table of a clean run"
    );
    assert_eq!(counts(&s), counts(&expected));

    let again = work.run(&db, &ck, &[], &[]);
    assert_eq!(again.code(), Some(0), "{}", again.describe());
    assert_eq!(again.summary()["already_loaded"], true);
    assert_eq!(again.summary()["sync_id"], s["sync_id"]);
    assert_eq!(syncs(&db), 1);
}

/// A sync killed after its last chunk committed, before its final status: its checkpoint
/// says every chunk is done, `sync_metadata` says IN_PROGRESS. The next `run` of the same
/// source finishes that sync (no chunk loaded again) instead of starting a new one, which
/// would load every row a second time and, cut short in turn, let a chunk's earlier lines
/// win over later lines of the same version. Both kill points after the last commit: before
/// and after the checkpoint marks the chunk completed.
#[test]
fn row13_a_sync_killed_after_its_last_chunk_is_finished_by_the_next_run() {
    let work = Work::new(3_000, 62, MESSY);
    for event in ["chunk_committed", "chunk_completed"] {
        let db = TestDb::new();
        let ck = work.checkpoints(&format!("ck_{event}"));
        // 3,000 lines in chunks of 500: the sixth is the last.
        let kill_at = format!("{event}:6");
        let killed = work.run(&db, &ck, &[], &[("DATSYNC_KILL_AT", &kill_at)]);
        assert!(killed.killed(), "{kill_at}: {}", killed.describe());
        db.wait_for_other_sessions();
        assert_eq!(syncs(&db), 1);

        let resumed = work.run(&db, &ck, &[], &[]);
        assert_eq!(resumed.code(), Some(2), "{kill_at}: {}", resumed.describe());
        let s = resumed.summary();
        assert_eq!(s["already_loaded"], false, "{kill_at}: {s}");
        assert_eq!(s["status"], "PARTIAL_SUCCESS", "{kill_at}: {s}");
        assert_eq!(syncs(&db), 1, "{kill_at}: the killed sync was finished");
        assert_eq!(s["chunks_skipped_on_resume"], 6, "{kill_at}: {s}");

        let (reference, expected, _) =
            crate::errors::reference(&work, s["sync_id"].as_str().unwrap());
        assert_eq!(u(&expected, "chunks_total"), 6);
        assert_eq!(
            db.table(),
            reference.table(),
            "{kill_at}: a clean run's table"
        );
        assert_eq!(counts(&s), counts(&expected), "{kill_at}");

        let again = work.run(&db, &ck, &[], &[]);
        assert_eq!(again.code(), Some(0), "{kill_at}: {}", again.describe());
        assert_eq!(again.summary()["already_loaded"], true);
        assert_eq!(syncs(&db), 1);
    }
}

/// A sync with a failed chunk (PARTIAL_SUCCESS, rows pending) whose checkpoint is gone
/// (expired and removed, deleted by hand): `run` again does not finish it from the ledger,
/// which would call it done without the failed chunk's rows; it loads the file as a new
/// sync, every row.
#[test]
fn row13_a_sync_with_pending_rows_and_no_checkpoint_is_loaded_again_not_called_done() {
    use crate::errors::{FAST_RETRY, failing_trigger, lone_key_of_chunk, reference};
    let work = Work::new(4_000, 31, MESSY);
    let (reference_db, expected, _) = reference(&work, &crate::common::fresh_sync_id());
    let key = lone_key_of_chunk(&reference_db, &work.file, 3);
    let db = TestDb::new();
    failing_trigger(&db, &key, "40001", Some("datsync_test_flag"));
    let ck = work.checkpoints("ck");
    let first = work.run(&db, &ck, &[], &[FAST_RETRY]);
    assert_eq!(first.code(), Some(2), "{}", first.describe());
    let f = first.summary();
    assert_eq!(f["status"], "PARTIAL_SUCCESS", "{f}");
    assert_eq!(u(&f, "chunks_failed"), 1, "{f}");
    assert!(u(&f, "rows_pending") > 0, "{f}");

    db.batch("DELETE FROM datsync_test_flag");
    std::fs::remove_dir_all(ck.join(f["sync_id"].as_str().unwrap())).unwrap();
    let again = work.run(&db, &ck, &[], &[]);
    assert!(matches!(again.code(), Some(0 | 2)), "{}", again.describe());
    let s = again.summary();
    assert_ne!(s["sync_id"], f["sync_id"], "a new sync: {s}");
    assert_eq!(u(&s, "rows_pending"), 0, "{s}");
    assert_eq!(u(&s, "rows_read"), u(&expected, "rows_read"), "{s}");
    let failed: i64 = db.query(
        "SELECT count(*) FROM public.transport_documents WHERE surat_pengantar_barang = $1",
        &[&key],
    )[0]
    .get(0);
    assert_eq!(failed, 1, "the failed chunk's row is loaded");
    let rows = |db: &TestDb| -> i64 {
        db.query("SELECT count(*) FROM public.transport_documents", &[])[0].get(0)
    };
    assert_eq!(rows(&db), rows(&reference_db), "every row of the file");
    assert_eq!(syncs(&db), 2);
}

/// A sync that ended FAILED (its chunk failed on a fatal database error) is not final:
/// `run` again continues it.
#[test]
fn row13_a_failed_sync_is_continued_not_refused() {
    let work = Work::new(2_000, 63, CLEAN);
    let db = TestDb::new();
    db.init();
    // Every commit fails until the trigger is dropped.
    db.batch(
        "CREATE FUNCTION datsync_test_fail() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN RAISE EXCEPTION 'refused by the test' USING ERRCODE = '42501'; END $f$;
         CREATE TRIGGER datsync_test_fail BEFORE INSERT ON public.sync_chunks
           FOR EACH ROW EXECUTE FUNCTION datsync_test_fail();",
    );
    let ck = work.checkpoints("ck");
    let failed = work.run(&db, &ck, &[], &[crate::errors::FAST_RETRY]);
    assert_ne!(failed.code(), Some(0), "{}", failed.describe());
    let f = failed.summary();
    assert_ne!(f["status"], "SUCCESS", "{f}");
    db.batch("DROP TRIGGER datsync_test_fail ON public.sync_chunks");

    let again = work.run(&db, &ck, &[], &[]);
    assert_eq!(again.code(), Some(0), "{}", again.describe());
    let s = again.summary();
    assert_eq!(s["already_loaded"], false);
    assert_eq!(s["status"], "SUCCESS");
    assert_eq!(s["sync_id"], f["sync_id"], "the failed sync was continued");
    assert_eq!(syncs(&db), 1);
}

/// A file with new content (another size and modification time) under the same name is a
/// new sync; so is the same content under another name.
#[test]
fn row13_a_changed_or_renamed_file_is_loaded() {
    let work = Work::new(1_000, 64, CLEAN);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let first = work.run(&db, &ck, &[], &[]);
    assert_eq!(first.code(), Some(0), "{}", first.describe());
    crate::common::write_sample(&work.file, 1_200, 65, CLEAN);
    let changed = work.run(&db, &ck, &[], &[]);
    assert_eq!(changed.code(), Some(0), "{}", changed.describe());
    let c = changed.summary();
    assert_eq!(c["already_loaded"], false);
    assert_eq!(c["rows_read"], 1_200);
    assert_eq!(syncs(&db), 2);

    let renamed = work.path().join("copy_of_extract.dat");
    std::fs::copy(&work.file, &renamed).unwrap();
    let url = db.url();
    let out = datsync(
        work.path(),
        &[
            "run",
            renamed.to_str().unwrap(),
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.summary()["already_loaded"], false);
    assert_eq!(syncs(&db), 3);
}
