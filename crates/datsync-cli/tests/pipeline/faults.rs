//! Faults of the server, the locks and the final step (issue 12), done to the real binary.
//! Each test is named after its row of `../shared/design/fault-tests.md` (`rowNN_…`);
//! ARCHITECTURE.md maps the rows to their tests.
//!
//! Timing never decides a test: a process is held at an exact point by a gate — a trigger
//! on the ledger (`sync_chunks`) that waits for an advisory lock the test holds — and the
//! test acts while it is held.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{MESSY, TestDb, Work, counts, fresh_sync_id, u};
use crate::errors::{FAST_RETRY, reference};

/// The advisory lock key of the gate.
const GATE: i64 = 4242;

/// Makes the commit of chunk `chunk` (any sync) wait while the test holds the gate.
fn gate_chunk(db: &TestDb, chunk: i32) {
    db.init();
    db.batch(&format!(
        "CREATE FUNCTION datsync_test_gate() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN PERFORM pg_advisory_xact_lock_shared({GATE}); RETURN NEW; END $f$;
         CREATE TRIGGER datsync_test_gate BEFORE INSERT ON public.sync_chunks
           FOR EACH ROW WHEN (NEW.chunk_id = {chunk})
           EXECUTE FUNCTION datsync_test_gate();"
    ));
}

/// The backend waiting at the gate, once one is (a condition polled, not a time slept).
fn wait_at_gate(db: &TestDb, child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = db.query(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                AND objid = $1::bigint::oid AND database = (SELECT oid FROM pg_database
                WHERE datname = current_database())",
            &[&GATE],
        );
        if let Some(r) = rows.first() {
            return r.get(0);
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it reached the gate"
        );
        assert!(Instant::now() < deadline, "nothing reached the gate");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `datsync ARGS --database-url … --checkpoint-dir … --chunk-size 500 --json`, started.
fn spawn(work: &Work, db: &TestDb, ck: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    spawn_at(work, &db.url(), ck, args, env)
}

/// [`spawn`] against the database at `url`.
fn spawn_at(work: &Work, url: &str, ck: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datsync"));
    cmd.args(args)
        .args(["--database-url", url])
        .args(["--checkpoint-dir", ck.to_str().unwrap()])
        .args(["--chunk-size", crate::common::CHUNK_SIZE, "--json"])
        .current_dir(work.path())
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// What a started process printed and how it ended.
fn finish(child: Child) -> crate::common::Outcome {
    let out = child.wait_with_output().unwrap();
    crate::common::Outcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn metadata_rows(db: &TestDb) -> i64 {
    db.query("SELECT count(*) FROM public.sync_metadata", &[])[0].get(0)
}

/// Row 11 (`pg_terminate_backend`) and promise 7: the connection that holds a run's writer
/// lock is terminated while the run is inside chunk 2's commit, and another session takes
/// the sync's lock at once. The run connects again, finds the lock taken, and stops
/// without writing anything more: the ledger keeps chunks 0 and 1 only. A resume then ends
/// with the table and counts of an uninterrupted run, in one sync.
#[test]
fn row11_a_run_whose_lock_connection_is_terminated_never_writes_beside_another() {
    let work = Work::new(3_000, 1101, MESSY);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let db = TestDb::new();
    gate_chunk(&db, 2);
    let gate = db.session();
    gate.query("SELECT pg_advisory_lock($1)", &[&GATE]);
    let ck = work.checkpoints("ck");
    let mut run = spawn(
        &work,
        &db,
        &ck,
        &["run", work.file(), "--sync-id", &sync],
        &[FAST_RETRY],
    );
    let pid = wait_at_gate(&db, &mut run);
    // The other writer: it ends the run's session and takes the sync's writer lock, which
    // it is granted the moment that session is gone.
    let other = db.session();
    other.query("SELECT pg_terminate_backend($1)", &[&pid]);
    other.query(
        "SELECT pg_advisory_lock(hashtextextended('datsync writer ' || $1, 0))",
        &[&sync],
    );
    let out = finish(run);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr
            .contains("another datsync process holds the lock now"),
        "{}",
        out.describe()
    );
    // Item 8: the `--json` summary of an exit without a status.
    let s = out.summary();
    assert_eq!(s["sync_id"], sync.as_str(), "{s}");
    assert!(s["status"].is_null(), "{s}");
    assert_eq!(s["retryable"], true, "{s}");
    let ledger: Vec<i32> = db
        .query(
            "SELECT chunk_id FROM public.sync_chunks WHERE sync_id = $1 ORDER BY 1",
            &[&sync],
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ledger, [0, 1], "nothing written after the lock was lost");
    drop(other);
    drop(gate);

    let out = work.resume(&db, &ck, &sync, &[]);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    assert_eq!(counts(&out.summary()), counts(&expected));
    assert_eq!(u(&out.summary(), "chunks_skipped_on_resume"), 2);
    assert_eq!(db.table(), reference_db.table(), "target rows differ");
    assert_eq!(metadata_rows(&db), 1, "one sync");
}

/// Row 14: two `datsync run FILE` started at the same instant (a barrier releases both)
/// make one sync. The winner is held at its first commit until the loser has exited; the
/// loser exits 1 naming the winner's sync, having registered nothing. The winner ends with
/// the table and counts of an uninterrupted run.
#[test]
fn row14_two_runs_of_one_file_started_at_the_same_instant_make_one_sync() {
    let work = Work::new(2_000, 1401, MESSY);
    let (reference_db, expected, expected_code) = reference(&work, &fresh_sync_id());
    let db = TestDb::new();
    gate_chunk(&db, 0);
    let gate = db.session();
    gate.query("SELECT pg_advisory_lock($1)", &[&GATE]);
    let ck = work.checkpoints("ck");
    let barrier = std::sync::Barrier::new(2);
    let mut runs: Vec<Child> = std::thread::scope(|s| {
        let start = || {
            barrier.wait();
            spawn(&work, &db, &ck, &["run", work.file()], &[])
        };
        let a = s.spawn(start);
        let b = s.spawn(start);
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    // The loser exits on its own; the winner waits at the gate.
    let deadline = Instant::now() + Duration::from_secs(120);
    let loser = loop {
        if let Some(i) = (0..2).find(|&i| runs[i].try_wait().unwrap().is_some()) {
            break i;
        }
        assert!(Instant::now() < deadline, "neither run was refused");
        std::thread::sleep(Duration::from_millis(10));
    };
    let loser_out = finish(runs.remove(loser));
    drop(gate);
    let winner = finish(runs.remove(0));
    assert_eq!(winner.code(), expected_code, "{}", winner.describe());
    let s = winner.summary();
    let winner_sync = s["sync_id"].as_str().unwrap().to_owned();
    assert_eq!(loser_out.code(), Some(1), "{}", loser_out.describe());
    assert!(
        loser_out.stderr.contains(&format!(
            "is being loaded by another datsync process as sync {winner_sync}"
        )),
        "{}",
        loser_out.describe()
    );
    let j = loser_out.summary();
    assert_eq!(j["sync_id"], winner_sync.as_str(), "{j}");
    assert!(j["status"].is_null(), "{j}");
    assert_eq!(metadata_rows(&db), 1, "one sync_metadata row");
    let mut got = counts(&s);
    let mut want = counts(&expected);
    got.remove("sync_id");
    want.remove("sync_id");
    assert_eq!(got, want);
    assert_eq!(
        db.table_without(&["sync_id"]),
        reference_db.table_without(&["sync_id"]),
        "target rows differ"
    );
}

/// A private PostgreSQL server the test stops and starts (`datsync::TempPostgres`), with a
/// client of the test's own for assertions. Commits are synchronous: an immediate stop is a
/// crash, and the tests assert that what was committed stays.
struct Server {
    pg: datsync::TempPostgres,
    rt: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Self {
        let options = datsync::TempPostgresOptions {
            settings: vec![("synchronous_commit".into(), "on".into())],
            ..datsync::TempPostgresOptions::default()
        };
        let pg = datsync::TempPostgres::start_with(&options).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self { pg, rt }
    }

    fn url(&self) -> String {
        self.pg.connection_string()
    }

    fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            let conn = tokio::spawn(conn);
            let rows = client
                .query(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            drop(client);
            let _ = conn.await;
            rows
        })
    }

    /// The target table as [`TestDb::table`] gives it.
    fn table(&self) -> Vec<String> {
        use crate::common::{KEY, TABLE};
        self.query(&format!(
            "SELECT (to_jsonb(t) - 'created_at' - 'updated_at')::text FROM {TABLE} t ORDER BY {KEY}"
        ))
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    fn metadata_rows(&self) -> i64 {
        self.query("SELECT count(*) FROM public.sync_metadata")[0].get(0)
    }
}

/// Waits until the run reaches pause point `marker` (its file appears).
fn wait_paused(marker: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before {}", marker.display());
        }
        assert!(
            Instant::now() < deadline,
            "never reached {}",
            marker.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Row 11 (the server stopped by SIGINT and SIGQUIT, then started again) and issue 12 item
/// 2: a run of a 10,000-row file in 20 chunks is held inside a chunk's transaction (after
/// its staging COPY) while the test stops its server — fast the first time, immediate the
/// second — and starts it again. The run connects again, takes its writer lock again,
/// loads the chunk again and ends with the counts and table of an uninterrupted run.
#[test]
fn row11_server_stopped_fast_then_immediate_during_a_run_ends_with_the_exact_table() {
    let work = Work::new(10_000, 1103, MESSY);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let mut server = Server::start();
    let pauses = tempfile::tempdir().unwrap();
    let ck = work.checkpoints("ck");
    let url = server.url();
    let mut run = spawn_at(
        &work,
        &url,
        &ck,
        &["run", work.file(), "--sync-id", &sync],
        &[
            FAST_RETRY,
            ("DATSYNC_PAUSE_AT", "chunk_staged:4,chunk_staged:13"),
            ("DATSYNC_PAUSE_DIR", pauses.path().to_str().unwrap()),
        ],
    );
    for (marker, mode) in [
        ("chunk_staged-4", datsync::StopMode::Fast),
        ("chunk_staged-13", datsync::StopMode::Immediate),
    ] {
        let marker = pauses.path().join(marker);
        wait_paused(&marker, &mut run);
        server.pg.stop_now(mode).unwrap();
        server.pg.start_again().unwrap();
        std::fs::remove_file(&marker).unwrap();
    }
    let out = finish(run);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    assert_eq!(counts(&out.summary()), counts(&expected));
    assert!(
        out.stderr.contains("writer lock is held again"),
        "{}",
        out.describe()
    );
    assert_eq!(server.table(), reference_db.table(), "target rows differ");
    assert_eq!(server.metadata_rows(), 1);
}

/// Row 11 with the server gone for good (issue 12 items 2 and 8): the server is stopped
/// while a run is held inside chunk 3's transaction and stays down past the outage budget
/// (`DATSYNC_DB_RETRY_FOR=2s`). The run ends FAILED, exit 1, with its `--json` summary, its
/// checkpoint kept and a message naming the resume; once the server is back, that resume
/// ends with the table and counts of an uninterrupted run.
#[test]
fn row11_server_down_past_the_budget_fails_the_sync_and_the_resume_finishes_it() {
    let work = Work::new(3_000, 1104, MESSY);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let mut server = Server::start();
    let pauses = tempfile::tempdir().unwrap();
    let ck = work.checkpoints("ck");
    let url = server.url();
    let mut run = spawn_at(
        &work,
        &url,
        &ck,
        &["run", work.file(), "--sync-id", &sync],
        &[
            FAST_RETRY,
            ("DATSYNC_DB_RETRY_FOR", "2s"),
            ("DATSYNC_PAUSE_AT", "chunk_staged:4"),
            ("DATSYNC_PAUSE_DIR", pauses.path().to_str().unwrap()),
        ],
    );
    let marker = pauses.path().join("chunk_staged-4");
    wait_paused(&marker, &mut run);
    server.pg.stop_now(datsync::StopMode::Fast).unwrap();
    std::fs::remove_file(&marker).unwrap();
    let out = finish(run);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "FAILED", "{s}");
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains("DATSYNC_DB_RETRY_FOR") && error.contains(&format!("datsync resume {sync}")),
        "{error}"
    );
    assert_eq!(u(&s, "chunks_completed"), 3, "{s}");
    assert!(
        ck.join(&sync).join("manifest.json").exists(),
        "checkpoint kept"
    );

    server.pg.start_again().unwrap();
    let out = crate::common::datsync(
        work.path(),
        &[
            "resume",
            &sync,
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    assert_eq!(counts(&out.summary()), counts(&expected));
    assert_eq!(server.table(), reference_db.table(), "target rows differ");
    assert_eq!(server.metadata_rows(), 1);
}

/// Row 12: a run started while the server is in a smart (graceful) shutdown — it refuses new
/// connections (57P03) while a session of the test's lives — waits for it: once the session
/// ends, the server stops and is started again, and the run ends with the table and counts
/// of an uninterrupted run.
#[test]
fn row12_a_run_started_during_a_graceful_shutdown_waits_and_completes() {
    use std::io::BufRead as _;
    let work = Work::new(1_500, 1201, MESSY);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let mut server = Server::start();
    // A session that keeps the server in its smart shutdown.
    let (holder, conn) = server
        .rt
        .block_on(tokio_postgres::connect(
            &server.url(),
            tokio_postgres::NoTls,
        ))
        .unwrap();
    let conn = server.rt.spawn(conn);
    server.pg.stop_now(datsync::StopMode::Smart).unwrap();
    let ck = work.checkpoints("ck");
    let mut run = spawn_at(
        &work,
        &server.url(),
        &ck,
        &["run", work.file(), "--sync-id", &sync],
        &[FAST_RETRY],
    );
    // Its stderr, line by line: the run says when it is waiting for the database.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = run.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = lines_tx.send(line);
        }
        all
    });
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .expect("the run never said it was waiting for the database");
        if line.contains("waiting for it") {
            assert!(line.contains("57P03"), "{line}");
            break;
        }
    }
    drop(holder);
    server.rt.block_on(conn).unwrap().unwrap();
    server.pg.wait_stopped().unwrap();
    server.pg.start_again().unwrap();
    let out = run.wait_with_output().unwrap();
    let stderr = reader.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), expected_code, "{stdout}\n{stderr}");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(counts(&s), counts(&expected));
    assert_eq!(server.table(), reference_db.table(), "target rows differ");
    assert_eq!(server.metadata_rows(), 1);
}

/// Cases of [`row06_random_faults_per_chunk_end_as_classified_and_resume_exactly`].
const FAULT_CASES: u64 = 3;

/// What a chunk's commit meets in one case of row 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// SQLSTATE 40001 on every attempt: retried, then given up on; the run goes on.
    Transient,
    /// SQLSTATE 22012: the sync stops FAILED.
    Terminal,
}

/// A trigger on the ledger that raises each chunk's fault while `datsync_test_flag` has a row.
fn fault_trigger(db: &TestDb, faults: &[Fault]) {
    let list = |f: Fault| {
        let ids: Vec<String> = (0..faults.len())
            .filter(|&i| faults[i] == f)
            .map(|i| i.to_string())
            .collect();
        format!("ARRAY[{}]::int[]", ids.join(","))
    };
    db.init();
    db.batch(&format!(
        "CREATE TABLE datsync_test_flag (on_ boolean); INSERT INTO datsync_test_flag VALUES (true);
         CREATE FUNCTION datsync_test_fault() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           IF EXISTS (SELECT 1 FROM datsync_test_flag) THEN
             IF NEW.chunk_id = ANY({}) THEN
               RAISE EXCEPTION 'injected failure 40001' USING ERRCODE = '40001';
             END IF;
             IF NEW.chunk_id = ANY({}) THEN
               RAISE EXCEPTION 'injected failure 22012' USING ERRCODE = '22012';
             END IF;
           END IF;
           RETURN NEW;
         END $f$;
         CREATE TRIGGER datsync_test_fault BEFORE INSERT ON public.sync_chunks
           FOR EACH ROW EXECUTE FUNCTION datsync_test_fault();",
        list(Fault::Transient),
        list(Fault::Terminal)
    ));
}

/// Row 6: random faults per chunk, `FAULT_CASES` cases from a seed printed (replay with
/// `DATSYNC_FAULT_SEED=<seed>`). A trigger on the ledger raises, for the chunks drawn, a
/// transient error (40001) on every attempt or a terminal one (22012). A terminal fault
/// ends the sync FAILED with its message at that chunk (exit 1); transient ones are retried
/// up to the attempts and kept for a resume (PARTIAL_SUCCESS, exit 2, `chunks_failed`). The
/// ledger holds exactly the chunks the model says, the others untouched. With the faults
/// gone, a resume ends with the table and counts of an uninterrupted run.
#[test]
fn row06_random_faults_per_chunk_end_as_classified_and_resume_exactly() {
    use rand::{Rng as _, SeedableRng as _};
    let seed = crate::common::seed("DATSYNC_FAULT_SEED");
    let work = Work::new(3_000, 601, crate::common::CLEAN);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let chunks = u(&expected, "chunks_total");
    for case in 0..FAULT_CASES {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_add(case));
        let faults: Vec<Fault> = (0..chunks)
            .map(|_| match rng.random_range(0..10) {
                0 => Fault::Terminal,
                1..=2 => Fault::Transient,
                _ => Fault::None,
            })
            .collect();
        let context = format!("seed {seed}, case {case}: {faults:?}");
        let db = TestDb::new();
        fault_trigger(&db, &faults);
        let ck = work.checkpoints(&format!("ck{case}"));
        let out = work.run(&db, &ck, &["--sync-id", &sync], &[FAST_RETRY]);
        let s = out.summary();
        // The model: chunks load in order; the first terminal one stops the sync.
        let stop = faults.iter().position(|f| *f == Fault::Terminal);
        let reached = stop.unwrap_or(faults.len());
        let committed: Vec<i32> = (0..reached)
            .filter(|&i| faults[i] == Fault::None)
            .map(|i| i32::try_from(i).unwrap())
            .collect();
        let transient = faults[..reached]
            .iter()
            .filter(|f| **f == Fault::Transient)
            .count();
        let ledger: Vec<i32> = db
            .query(
                "SELECT chunk_id FROM public.sync_chunks WHERE sync_id = $1 ORDER BY 1",
                &[&sync],
            )
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(ledger, committed, "{context}\n{}", out.describe());
        if let Some(t) = stop {
            assert_eq!(out.code(), Some(1), "{context}\n{}", out.describe());
            assert_eq!(s["status"], "FAILED", "{context}: {s}");
            let error = s["error"].as_str().unwrap();
            assert!(
                error.contains("injected failure 22012") && error.contains(&format!("chunk {t}")),
                "{context}: {error}"
            );
        } else if transient > 0 {
            assert_eq!(out.code(), Some(2), "{context}\n{}", out.describe());
            assert_eq!(s["status"], "PARTIAL_SUCCESS", "{context}: {s}");
            assert_eq!(u(&s, "chunks_failed"), transient as u64, "{context}: {s}");
        } else {
            assert_eq!(out.code(), expected_code, "{context}\n{}", out.describe());
        }
        assert_eq!(
            out.stderr
                .matches("transient database error; retrying")
                .count(),
            4 * transient,
            "{context}: every transient chunk tried four times\n{}",
            out.stderr
        );

        db.batch("DELETE FROM datsync_test_flag");
        let out = work.resume(&db, &ck, &sync, &[FAST_RETRY]);
        assert_eq!(out.code(), expected_code, "{context}\n{}", out.describe());
        assert_eq!(counts(&out.summary()), counts(&expected), "{context}");
        assert_eq!(
            db.table(),
            reference_db.table(),
            "{context}: target rows differ"
        );
        assert_eq!(metadata_rows(&db), 1, "{context}");
    }
}
