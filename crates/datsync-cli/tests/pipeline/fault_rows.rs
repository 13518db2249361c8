//! Rows of `../shared/design/fault-tests.md` that the older tests covered in part, done to
//! the real binary in full (each test is named after its row, `rowNN_…`; ARCHITECTURE.md
//! maps the rows to their tests). Timing never decides a test: a run is held at a pause
//! point (`DATSYNC_PAUSE_AT`) or stopped at an event (`DATSYNC_KILL_AT`, `DATSYNC_TERM_AT`).

use std::io::BufRead as _;

use crate::common::{KEY, MESSY, Snapshot, TABLE, TestDb, Work, counts, fresh_sync_id, u};
use crate::errors::{FAST_RETRY, reference};
use crate::private::{Server, finish, reached, spawn};

/// `datsync ARGS --database-url URL --checkpoint-dir CK --chunk-size 500 --json`, started.
fn start(
    work: &Work,
    url: &str,
    ck: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Child {
    let mut all = args.to_vec();
    all.extend([
        "--database-url",
        url,
        "--checkpoint-dir",
        ck.to_str().unwrap(),
        "--chunk-size",
        crate::common::CHUNK_SIZE,
        "--json",
    ]);
    spawn(work.path(), &all, env)
}

fn signal(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        signal,
    )
    .unwrap();
}

/// The reference run's snapshot beside its database and summary.
fn reference_snapshot(work: &Work, sync: &str) -> (Snapshot, serde_json::Value, Option<i32>) {
    let (db, summary, code) = reference(work, sync);
    (
        Snapshot::take(&db, &work.checkpoints("ck_reference"), sync),
        summary,
        code,
    )
}

/// Row 7, the first SIGTERM: `datsync run` is sent SIGTERM while chunk 2 is inside its
/// transaction. The chunk in flight commits, no further chunk starts, the sync stays
/// IN_PROGRESS with its checkpoint, and the summary says it was interrupted and how to
/// continue; the same command again continues the sync and ends with exactly what an
/// uninterrupted run leaves.
#[test]
fn row07_sigterm_finishes_the_chunk_in_flight_and_the_same_command_completes() {
    let work = Work::new(3_000, 701, MESSY);
    let sync = fresh_sync_id();
    let (reference, expected, expected_code) = reference_snapshot(&work, &sync);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &sync],
        &[("DATSYNC_TERM_AT", "chunk_staged:3")],
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("SIGTERM"), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "IN_PROGRESS", "{s}");
    assert_eq!(s["interrupted"], true, "{s}");
    assert_eq!(
        db.committed_chunks(&sync),
        3,
        "the chunk in flight committed, no further one"
    );
    assert_eq!(db.metadata(&sync).unwrap()["status"], "IN_PROGRESS");
    assert!(
        ck.join(&sync).join("manifest.json").exists(),
        "checkpoint kept"
    );

    let out = work.run(&db, &ck, &[], &[]);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["sync_id"], sync.as_str(), "the same sync continued: {s}");
    assert_eq!(u(&s, "chunks_skipped_on_resume"), 3, "{s}");
    assert_eq!(counts(&s), counts(&expected));
    Snapshot::take(&db, &ck, &sync).assert_same(&reference, "stopped, then run again");
}

/// Row 7, the second SIGTERM: a run is held inside chunk 1's transaction; the first SIGTERM
/// is acknowledged on stderr, the second makes the process exit at once (143) without
/// committing the chunk it holds. The same command again ends with exactly what an
/// uninterrupted run leaves.
#[test]
fn row07_a_second_sigterm_exits_at_once_and_the_same_command_completes() {
    let work = Work::new(2_000, 702, MESSY);
    let sync = fresh_sync_id();
    let (reference, expected, expected_code) = reference_snapshot(&work, &sync);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let pauses = tempfile::tempdir().unwrap();
    let mut run = start(
        &work,
        &db.url(),
        &ck,
        &["run", work.file(), "--sync-id", &sync],
        &[
            ("DATSYNC_PAUSE_AT", "chunk_staged:2"),
            ("DATSYNC_PAUSE_DIR", pauses.path().to_str().unwrap()),
        ],
    );
    let marker = pauses.path().join("chunk_staged-2");
    assert!(reached(&marker, &mut run), "the run ended before chunk 1");
    let stderr = run.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    signal(&run, nix::sys::signal::Signal::SIGTERM);
    let mut seen = String::new();
    loop {
        let line = lines
            .next()
            .expect("stderr ended before the first SIGTERM was acknowledged")
            .unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("stopping:") {
            break;
        }
    }
    signal(&run, nix::sys::signal::Signal::SIGTERM);
    let status = run.wait().unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(status.code(), Some(143), "{seen}{}", rest.join("\n"));
    assert!(
        rest.iter().any(|l| l.contains("second signal")),
        "{seen}{}",
        rest.join("\n")
    );
    db.wait_for_other_sessions();
    assert_eq!(db.committed_chunks(&sync), 1, "chunk 1 was not committed");

    let out = work.run(&db, &ck, &[], &[]);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["sync_id"], sync.as_str(), "{s}");
    assert_eq!(counts(&s), counts(&expected));
    Snapshot::take(&db, &ck, &sync).assert_same(&reference, "stopped twice, then run again");
}

/// Row 1: a run killed (SIGKILL) after chunk 2's transaction committed and before its
/// checkpoint marks it completed. The resume finds it in the ledger and does not load it
/// again: every row whose newest line is in chunks 0–2 is untouched — `updated_at` and
/// `created_at` included — and chunks 0–2's ledger rows keep their commit time; the sync
/// ends with the counts of an uninterrupted run.
#[test]
fn row01_a_chunk_committed_before_a_kill_is_not_applied_again() {
    let work = Work::new(3_000, 101, MESSY);
    let sync = fresh_sync_id();
    let (reference, expected, expected_code) = reference_snapshot(&work, &sync);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &sync],
        &[("DATSYNC_KILL_AT", "chunk_committed:3")],
    );
    assert!(out.killed(), "{}", out.describe());
    db.wait_for_other_sessions();
    assert_eq!(db.committed_chunks(&sync), 3);
    let rows = |db: &TestDb| -> Vec<(String, i64, String)> {
        db.query(
            &format!("SELECT {KEY}, source_line, to_jsonb(t)::text FROM {TABLE} t ORDER BY {KEY}"),
            &[],
        )
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    };
    let commits = |db: &TestDb| -> Vec<String> {
        db.query(
            "SELECT committed_at::text FROM public.sync_chunks WHERE sync_id = $1
              ORDER BY chunk_id",
            &[&sync],
        )
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let before = rows(&db);
    let committed_before = commits(&db);
    assert!(!before.is_empty());

    let out = work.resume(&db, &ck, &sync, &[]);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    let s = out.summary();
    assert_eq!(counts(&s), counts(&expected));
    assert_eq!(u(&s, "chunks_skipped_on_resume"), 3, "{s}");
    Snapshot::take(&db, &ck, &sync).assert_same(&reference, "killed after a commit");
    // Lines 2..=1501 are chunks 0–2 (500 data lines each after the header).
    let after: std::collections::BTreeMap<String, (i64, String)> = rows(&db)
        .into_iter()
        .map(|(k, line, json)| (k, (line, json)))
        .collect();
    let mut untouched = 0;
    for (key, line, json) in &before {
        let (now_line, now) = &after[key];
        if *now_line == *line {
            assert_eq!(
                now, json,
                "{key}: its row changed though its chunk was not loaded again"
            );
            untouched += 1;
        }
    }
    assert!(untouched > 1_000, "{untouched} rows compared");
    assert_eq!(
        commits(&db)[..3],
        committed_before[..],
        "chunks 0–2 were not committed again"
    );
}

/// Row 11, the server killed with SIGKILL (its postmaster) while a run is held inside chunk
/// 3's transaction; once every process of the killed server has gone, the server is
/// started again (crash recovery). The run connects again and ends with the table and
/// counts of an uninterrupted run.
#[test]
fn row11_server_killed_with_sigkill_during_a_run_ends_with_the_exact_table() {
    let work = Work::new(3_000, 1105, MESSY);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let mut server = Server::start();
    server.create_db("killed");
    let pauses = tempfile::tempdir().unwrap();
    let ck = work.checkpoints("ck");
    let url = server.url("killed");
    let mut run = start(
        &work,
        &url,
        &ck,
        &["run", work.file(), "--sync-id", &sync],
        &[
            FAST_RETRY,
            ("DATSYNC_PAUSE_AT", "chunk_staged:4"),
            ("DATSYNC_PAUSE_DIR", pauses.path().to_str().unwrap()),
        ],
    );
    let marker = pauses.path().join("chunk_staged-4");
    assert!(reached(&marker, &mut run), "the run ended before chunk 3");
    server.kill_and_start_again();
    std::fs::remove_file(&marker).unwrap();
    let out = finish(run);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    assert_eq!(counts(&out.summary()), counts(&expected));
    let table: Vec<String> = server
        .query(
            "killed",
            &format!(
                "SELECT (to_jsonb(t) - 'created_at' - 'updated_at')::text FROM {TABLE} t ORDER BY {KEY}"
            ),
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(table, reference_db.table(), "target rows differ");
}

/// Row 35, a permanent error that is the database's answer, not a fault: the run's role may
/// not write the target table and does not own it (42501). The run fails at once — no
/// retry, no wait, no chunk in the ledger — naming the privilege; the transient errors of row 6 and the outages of row 11
/// are retried (`faults.rs`).
#[test]
fn row35_a_missing_privilege_fails_fast_without_retries() {
    let work = Work::new(1_000, 3501, MESSY);
    let db = TestDb::new();
    db.init();
    let role = format!("{}_loader", db.name);
    db.batch(&format!(
        "CREATE ROLE {role} LOGIN;
         GRANT ALL ON DATABASE {} TO {role};
         GRANT USAGE, CREATE ON SCHEMA public TO {role};
         GRANT ALL ON ALL TABLES IN SCHEMA public TO {role};
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role};
         REVOKE INSERT, UPDATE ON {TABLE} FROM {role};",
        db.name
    ));
    let url = db.url().replace("root@", &format!("{role}@"));
    let ck = work.checkpoints("ck");
    let out = finish(start(
        &work,
        &url,
        &ck,
        &["run", work.file()],
        &[FAST_RETRY],
    ));
    db.batch(&format!(
        "REASSIGN OWNED BY {role} TO root; DROP OWNED BY {role}; DROP ROLE {role};"
    ));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    // Wherever the privilege is first needed (datsync's own tables, or the target's rows
    // once a role without ownership can run syncs: issue 12 item 7), SQLSTATE 42501.
    // The message is on stderr (an error before the sync has a status) or in the summary
    // (a sync that ended FAILED at its first chunk).
    assert!(
        out.stderr.contains("42501") || out.stdout.contains("42501"),
        "{}",
        out.describe()
    );
    assert!(
        !out.stderr.contains("retrying") && !out.stderr.contains("waiting for it"),
        "a permanent error is not retried: {}",
        out.describe()
    );
    let chunks: i64 = db.query("SELECT count(*) FROM public.sync_chunks", &[])[0].get(0);
    assert_eq!(chunks, 0, "nothing committed");
}
