//! `--jobs N` (issue 15 item 3): N loaders on N connections in one process. A file whose
//! keys repeat across chunks loads with `--jobs 3` to the table, `sync_metadata` and ledger
//! of `--jobs 1`; killed with several chunks in flight (held at the sync's upsert lock, or
//! at the crash points of `crash.rs`) and resumed with `--jobs 3`, it ends as the
//! uninterrupted run; a sync stopped by bad input stops with the same status either way.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    CHUNK_SIZE, Outcome, Rates, Snapshot, TestDb, Work, counts, datsync, options, sync_id, u,
};

const ROWS: u64 = 6_000;
/// A third of the rows repeat an earlier key, most of them one in another chunk.
const DUPLICATES: Rates = Rates {
    invalid: 0.02,
    dup: 0.3,
    ragged: 0.01,
};

/// The file and what one uninterrupted `--jobs 1` run made of it.
struct Reference {
    work: Work,
    sync: String,
    code: Option<i32>,
    summary: serde_json::Value,
    snapshot: Snapshot,
}

impl Reference {
    fn new(seed: u64) -> Self {
        let work = Work::with_options(&datsync::SampleOptions {
            bad_value_rate: 0.02,
            ..options(ROWS, seed, DUPLICATES)
        });
        let sync = sync_id(u32::try_from(seed).unwrap());
        let db = TestDb::new();
        let ck = work.checkpoints("ck_reference");
        let out = work.run(&db, &ck, &["--sync-id", &sync, "--jobs", "1"], &[]);
        let summary = out.summary();
        assert!(matches!(out.code(), Some(0 | 2)), "{}", out.describe());
        assert!(u(&summary, "chunks_total") >= 10, "{summary}");
        let snapshot = Snapshot::take(&db, &ck, &sync);
        // Keys met again in a later chunk: some chunk's rows lost to, or replaced, a row of
        // an earlier-committed chunk of the sync.
        assert!(
            snapshot
                .ledger
                .iter()
                .any(|c| c["superseded_on_load"].as_u64() > Some(0)),
            "no key repeats across chunks"
        );
        Self {
            work,
            sync,
            code: out.code(),
            summary,
            snapshot,
        }
    }

    /// `datsync ARGS FLAGS`, with the flags every run of these tests has.
    fn datsync(&self, db: &TestDb, ck: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let args = flags(db, ck, args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        datsync(self.work.path(), &args, env)
    }

    /// The last run of a sync: its summary's counts and what it left equal the reference's.
    fn assert_same(&self, out: &Outcome, db: &TestDb, ck: &Path, context: &str) {
        assert_eq!(out.code(), self.code, "{context}: {}", out.describe());
        let s = out.summary();
        assert_eq!(
            counts(&s),
            counts(&self.summary),
            "{context}: summaries differ"
        );
        assert_eq!(
            s["value_warnings"], self.summary["value_warnings"],
            "{context}"
        );
        assert!(!ck.join(&self.sync).exists(), "{context}: checkpoint kept");
        assert_same_in_any_order(&Snapshot::take(db, ck, &self.sync), &self.snapshot, context);
    }
}

/// `args` with the flags every run of these tests has.
fn flags(db: &TestDb, ck: &Path, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.extend(
        [
            "--database-url",
            &db.url(),
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--chunk-size",
            CHUNK_SIZE,
            "--json",
        ]
        .map(str::to_owned),
    );
    all
}

/// The columns of a ledger row that depend on the order the chunks committed in: a key in
/// two chunks counts as inserted in the chunk that commits first and as superseded in the
/// other (`load/mod.rs`, "Counts"); their sum per chunk, and the sync's totals, do not.
const BY_COMMIT_ORDER: [&str; 4] = ["inserted", "updated", "skipped_older", "superseded_on_load"];

/// A ledger row without [`BY_COMMIT_ORDER`], and the sum of those.
fn split(row: &serde_json::Value) -> (serde_json::Value, u64) {
    let mut rest = row.clone();
    let mut sum = 0;
    for column in BY_COMMIT_ORDER {
        sum += rest
            .as_object_mut()
            .unwrap()
            .remove(column)
            .unwrap()
            .as_u64()
            .unwrap();
    }
    (rest, sum)
}

/// [`Snapshot::assert_same`], with the ledger compared as [`split`] does.
fn assert_same_in_any_order(got: &Snapshot, want: &Snapshot, context: &str) {
    assert_eq!(
        got.metadata, want.metadata,
        "{context}: sync_metadata differs"
    );
    assert_eq!(
        got.ledger.len(),
        want.ledger.len(),
        "{context}: ledger sizes differ"
    );
    for (a, b) in got.ledger.iter().zip(&want.ledger) {
        assert_eq!(split(a), split(b), "{context}: ledger row differs");
    }
    assert_eq!(
        got.table.len(),
        want.table.len(),
        "{context}: row counts differ"
    );
    for (a, b) in got.table.iter().zip(&want.table) {
        assert_eq!(a, b, "{context}: target rows differ");
    }
    assert_eq!(got.rejects, want.rejects, "{context}: rejects differ");
    assert_eq!(
        got.warnings, want.warnings,
        "{context}: value warnings differ"
    );
}

#[test]
fn jobs_3_loads_what_jobs_1_loads() {
    let r = Reference::new(151);
    for jobs in ["3", "2"] {
        let db = TestDb::new();
        let ck = r.work.checkpoints(&format!("ck_jobs_{jobs}"));
        let out = r
            .work
            .run(&db, &ck, &["--sync-id", &r.sync, "--jobs", jobs], &[]);
        r.assert_same(&out, &db, &ck, &format!("--jobs {jobs}"));
        assert_eq!(out.summary()["resumed"], false);
    }
    // The setting of the configuration layers: DATSYNC_JOBS.
    let db = TestDb::new();
    let ck = r.work.checkpoints("ck_env");
    let out = r
        .work
        .run(&db, &ck, &["--sync-id", &r.sync], &[("DATSYNC_JOBS", "4")]);
    r.assert_same(&out, &db, &ck, "DATSYNC_JOBS=4");
}

/// Sessions of the test database waiting for a sync's upsert lock, `(hashtext(sync), -1)`
/// (`load/mod.rs`; -1 read as an oid). Other advisory locks are not counted: a derived
/// table's writers' lock `(hashtext(table), -2)` (`load/derived.rs`) is waited for a moment
/// on the loaders' second connections while the test holds the upserts.
fn waiting(db: &TestDb) -> i64 {
    db.query(
        "SELECT count(*) FROM pg_locks
          WHERE locktype = 'advisory' AND NOT granted
            AND objsubid = 2 AND objid = 4294967295
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        &[],
    )[0]
    .get(0)
}

/// Sessions on the test database besides the test's own two, by `application_name`.
fn sessions(db: &TestDb, lock_pid: i32) -> Vec<(String, i64)> {
    db.query(
        "SELECT application_name, count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1
          GROUP BY 1 ORDER BY 1",
        &[&lock_pid],
    )
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Waits until `n` sessions wait for the sync's upsert lock, the run still going.
fn wait_for_waiting(db: &TestDb, child: &mut Child, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while waiting(db) < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {n} chunks waited to upsert"
        );
        assert!(
            Instant::now() < deadline,
            "{n} chunks never waited to upsert"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `datsync run FILE --sync-id … --jobs N` in the background, its output kept.
fn spawn_run(r: &Reference, db: &TestDb, ck: &Path, jobs: i64) -> Child {
    let args = flags(
        db,
        ck,
        &[
            "run",
            r.work.file(),
            "--sync-id",
            &r.sync,
            "--jobs",
            &jobs.to_string(),
        ],
    );
    Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(&args)
        .current_dir(r.work.path())
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The test's session holding the sync's upsert lock (`load/mod.rs`): each loader stages its
/// chunk, then waits for it. Returns the session and its backend's pid.
fn hold_upserts<'a>(db: &'a TestDb, r: &Reference) -> (crate::common::Session<'a>, i32) {
    let lock = db.session();
    lock.query("SELECT pg_advisory_lock(hashtext($1), -1)", &[&r.sync]);
    let pid = lock.query("SELECT pg_backend_pid()", &[])[0].get(0);
    (lock, pid)
}

/// A finished child's outcome.
fn outcome(child: Child) -> Outcome {
    let out = child.wait_with_output().unwrap();
    Outcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn n_chunks_stage_side_by_side_and_a_kill_with_them_in_flight_resumes_exactly() {
    let r = Reference::new(152);
    let db = TestDb::new();
    let ck = r.work.checkpoints("ck");
    for jobs in [1, 3] {
        let (lock, lock_pid) = hold_upserts(&db, &r);
        let mut child = spawn_run(&r, &db, &ck, jobs);
        wait_for_waiting(&db, &mut child, jobs);
        // N chunks in flight on N connections, no more: the converter waits for a loader.
        assert_eq!(
            waiting(&db),
            jobs,
            "--jobs {jobs}: chunks waiting to upsert"
        );
        // Each loader's connection, and its second one where a chunk's derived tables are
        // upserted beside its transaction (`load/derived.rs`), named so.
        assert_eq!(
            sessions(&db, lock_pid),
            [
                ("datsync".to_owned(), jobs),
                ("datsync (derived tables)".to_owned(), jobs)
            ],
            "--jobs {jobs}: connections"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        drop(lock);
        db.wait_for_other_sessions();
        assert_eq!(
            db.committed_chunks(&r.sync),
            0,
            "--jobs {jobs}: nothing committed"
        );
    }
    let out = r.datsync(&db, &ck, &["resume", &r.sync, "--jobs", "3"], &[]);
    r.assert_same(
        &out,
        &db,
        &ck,
        "killed with 3 chunks staged, resumed with --jobs 3",
    );
    assert_eq!(out.summary()["resumed"], true);
}

#[test]
fn killed_at_crash_points_with_jobs_then_resumed_equals_an_uninterrupted_run() {
    let r = Reference::new(153);
    let series: [&[&str]; 3] = [
        // Mid-COPY with two more chunks in flight; then after commits, before and after
        // their manifest updates.
        &["chunk_staged:4", "chunk_committed:3", "chunk_completed:2"],
        // During the conversion, then mid-COPY of the first chunks again.
        &["chunk_converted:7", "chunk_staged:2"],
        // After the last chunk's commit, before the final steps.
        &["chunk_committed:12", "sync_finished:1"],
    ];
    for (i, kills) in series.iter().enumerate() {
        let db = TestDb::new();
        let ck = r.work.checkpoints(&format!("ck_{i}"));
        for kill in *kills {
            let out = r.work.run(
                &db,
                &ck,
                &["--sync-id", &r.sync, "--jobs", "3"],
                &[("DATSYNC_KILL_AT", kill)],
            );
            assert!(out.killed(), "not killed at {kill}: {}", out.describe());
            db.wait_for_other_sessions();
        }
        let out = r.datsync(&db, &ck, &["resume", &r.sync, "--jobs", "3"], &[]);
        r.assert_same(&out, &db, &ck, &format!("killed at {kills:?}"));
    }
}

#[test]
fn bad_input_stops_every_loader_with_the_status_of_one() {
    let work = Work::new(
        3_000,
        154,
        Rates {
            invalid: 0.5,
            dup: 0.0,
            ragged: 0.0,
        },
    );
    let mut outcomes = Vec::new();
    for jobs in ["1", "3"] {
        let db = TestDb::new();
        let ck = work.checkpoints(&format!("ck_{jobs}"));
        let sync = sync_id(154);
        let out = work.run(&db, &ck, &["--sync-id", &sync, "--jobs", jobs], &[]);
        let s = out.summary();
        assert_eq!(
            s["status"],
            "BAD_INPUT",
            "--jobs {jobs}: {}",
            out.describe()
        );
        let error = s["error"].as_str().unwrap();
        assert!(error.contains("VALIDATION_ERROR_THRESHOLD"), "{error}");
        assert_eq!(db.metadata(&sync).unwrap()["status"], "BAD_INPUT");
        // Every chunk trips the threshold before its load: nothing is committed.
        assert!(db.table().is_empty(), "--jobs {jobs}");
        assert_eq!(db.committed_chunks(&sync), 0, "--jobs {jobs}");
        outcomes.push((out.code(), s["status"].clone()));
    }
    assert_eq!(outcomes[0], outcomes[1]);
}

#[test]
fn sigterm_finishes_the_chunks_in_flight_and_starts_no_other() {
    let r = Reference::new(155);
    let db = TestDb::new();
    let ck = r.work.checkpoints("ck");
    let (lock, _) = hold_upserts(&db, &r);
    let mut child = spawn_run(&r, &db, &ck, 3);
    wait_for_waiting(&db, &mut child, 3);
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // The stop is seen before the chunks in flight can commit (they wait for the lock).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    while !seen.contains("SIGTERM") {
        use std::io::Read as _;
        let mut buf = [0u8; 4096];
        let n = stderr.read(&mut buf).unwrap();
        assert!(
            n > 0 && Instant::now() < deadline,
            "no SIGTERM acknowledged: {seen}"
        );
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(lock);
    let out = outcome(child);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "IN_PROGRESS", "{s}");
    assert_eq!(s["interrupted"], true, "{s}");
    assert_eq!(
        db.committed_chunks(&r.sync),
        3,
        "the three chunks in flight committed, no further one"
    );
    let out = r
        .work
        .run(&db, &ck, &["--sync-id", &r.sync, "--jobs", "3"], &[]);
    r.assert_same(&out, &db, &ck, "stopped by SIGTERM, then run again");
    assert_eq!(u(&out.summary(), "chunks_skipped_on_resume"), 3);
}

#[test]
fn the_run_session_lost_mid_run_a_loader_takes_the_writer_lock_and_the_sync_ends_exactly() {
    let r = Reference::new(156);
    let db = TestDb::new();
    let ck = r.work.checkpoints("ck");
    let (lock, _) = hold_upserts(&db, &r);
    let mut child = spawn_run(&r, &db, &ck, 3);
    wait_for_waiting(&db, &mut child, 3);
    // The session holding the writer lock is the run's (the helpers hold none).
    let writer_lock = "SELECT l.pid FROM pg_locks l, (SELECT hashtextextended($1, 0) AS k) h
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.classid::bigint = ((h.k >> 32) & 4294967295)
          AND l.objid::bigint = (h.k & 4294967295)";
    let key = format!("datsync writer {}", r.sync);
    let holder: i32 = db.query(writer_lock, &[&key])[0].get(0);
    db.query("SELECT pg_terminate_backend($1)", &[&holder]);
    drop(lock);
    let out = outcome(child);
    r.assert_same(&out, &db, &ck, "the run's session terminated mid-run");
    assert!(
        out.stderr.contains("a loader's session holds it now"),
        "{}",
        out.describe()
    );
}
