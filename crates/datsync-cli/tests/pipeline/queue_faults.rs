//! The work queue when work fails or is done twice (issue 15, review MEDIUM 4 and 5, LOW
//! 10): a sync's hooks and alert are sent once per outcome however many times its final
//! steps run (a finisher killed after them, a worker finishing what a `resume` finished beside
//! it); a chunk that keeps failing is held back, then given up, and its sync finishes without
//! it and is completed by `resume`; a finish whose writer lock another process holds is held
//! back, not claimed over and over; queue rows no claim can take are marked failed and leave
//! the scale figure.
//!
//! Real binary, real PostgreSQL, a real HTTP server receiving the hooks and the alert
//! webhook. Waits are on conditions with a deadline; nothing sleeps for timing.

use std::path::{Path, PathBuf};

use datsync::TestHttpServer;
use serde_json::Value;

use super::workers::{
    LENIENT, assert_same_out_of_order, finish, queue_len, reference, spawn, sync_args, wait_for,
    worker,
};
use crate::common::{CLEAN, MESSY, Snapshot, TABLE, TestDb, Work, datsync, sync_id, u};

/// `datsync.toml` in `dir`: a hook for each status, on `server`.
fn hooks_config(dir: &Path, server: &TestHttpServer) -> PathBuf {
    let path = dir.join("datsync.toml");
    let hook = |name: &str| {
        format!(
            "[[hooks.on_{name}]]\nname = \"{name}\"\nurl = \"{}\"\n\n",
            server.url(&format!("/hooks/{name}"))
        )
    };
    std::fs::write(
        &path,
        [hook("success"), hook("partial"), hook("failure")].concat(),
    )
    .unwrap();
    path
}

/// The paths `server` received so far.
fn received(server: &TestHttpServer) -> Vec<String> {
    server.received().into_iter().map(|r| r.path).collect()
}

/// `datsync queue --json` on `db`.
fn queue_json(work: &Work, db: &TestDb) -> Value {
    let out = datsync(
        work.path(),
        &["queue", "--database-url", &db.url(), "--json"],
        &[],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    out.summary()
}

/// Submits the work's file as `sync` with `env`; returns its chunks.
fn submit(work: &Work, db: &TestDb, ck: &Path, sync: &str, env: &[(&str, &str)]) -> u64 {
    let url = db.url();
    let out = datsync(
        work.path(),
        &sync_args(&url, ck, &["submit", work.file(), "--sync-id", sync]),
        env,
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    u(&out.summary(), "chunks_total")
}

/// The final-step marks of `sync` (`hooks_called_for`, `alerted_for`).
fn marks(db: &TestDb, sync: &str) -> (Option<String>, Option<String>) {
    let row = &db.query(
        "SELECT hooks_called_for, alerted_for FROM public.sync_metadata WHERE sync_id = $1",
        &[&sync],
    )[0];
    (row.get(0), row.get(1))
}

/// A submitted sync of a file with rejected rows (PARTIAL_SUCCESS), whose hooks and alert
/// webhook go to a server of the test.
struct Told {
    server: TestHttpServer,
    work: Work,
    config: String,
    alert_url: String,
    db: TestDb,
    ck: PathBuf,
    sync: String,
    total: u64,
}

impl Told {
    fn submitted(seed: u64, sync: u32) -> Self {
        let server = TestHttpServer::http(&[200]).unwrap();
        let work = Work::new(600, seed, MESSY);
        let config = hooks_config(work.path(), &server)
            .to_str()
            .unwrap()
            .to_owned();
        let alert_url = server.url("/alert");
        let db = TestDb::new();
        let ck = work.checkpoints("ck");
        let sync = sync_id(sync);
        let mut told = Self {
            server,
            work,
            config,
            alert_url,
            db,
            ck,
            sync,
            total: 0,
        };
        told.total = submit(&told.work, &told.db, &told.ck, &told.sync, &told.env());
        told
    }

    /// The hooks' configuration, the alert webhook and a lenient threshold.
    fn env(&self) -> [(&str, &str); 3] {
        [
            ("DATSYNC_CONFIG", self.config.as_str()),
            ("ALERT_WEBHOOK_URL", self.alert_url.as_str()),
            LENIENT,
        ]
    }
}

#[test]
fn a_finish_done_again_after_a_kill_calls_no_hook_and_sends_no_alert_twice() {
    let told = Told::submitted(41, 0x0f1_0001);
    let Told {
        server,
        work,
        db,
        ck,
        sync,
        total,
        ..
    } = &told;
    let (total, env) = (*total, told.env());
    // The first worker loads every chunk, finishes the sync and dies after its final steps,
    // before it deletes the finish row: the row is free again.
    let killed = finish(worker(
        work,
        db,
        "3s",
        &[
            env[0],
            env[1],
            env[2],
            ("DATSYNC_KILL_AT", "final_steps_done:1"),
        ],
    ));
    assert!(killed.killed(), "{}", killed.describe());
    db.wait_for_other_sessions();
    assert_eq!(db.metadata(sync).unwrap()["status"], "PARTIAL_SUCCESS");
    assert_eq!(queue_len(db), 1, "the finish row is free again");
    let mut first = received(server);
    first.sort();
    assert_eq!(
        first,
        ["/alert", "/hooks/partial"],
        "one hook and one alert"
    );
    let (hooks, alerted) = marks(db, sync);
    let outcome = format!("PARTIAL_SUCCESS chunks {total} error none");
    assert_eq!(hooks.as_deref(), Some(outcome.as_str()));
    assert_eq!(alerted.as_deref(), Some(outcome.as_str()));
    // The next worker takes the row and finishes the sync again: nothing sent again.
    let again = finish(worker(work, db, "1s", &env));
    assert_eq!(again.code(), Some(0), "{}", again.describe());
    let finished = again.summary()["syncs_finished"].to_string();
    assert!(finished.contains(sync.as_str()), "{finished}");
    assert_eq!(received(server), Vec::<String>::new(), "sent twice");
    assert_eq!(queue_len(db), 0);
    assert!(!ck.join(sync).exists(), "the checkpoint is still there");
    let m = db.metadata(sync).unwrap();
    assert_eq!(m["status"], "PARTIAL_SUCCESS", "{m}");
    assert_eq!(db.committed_chunks(sync) as u64, total);
}

#[test]
fn a_worker_holding_the_finish_row_while_resume_finishes_the_sync_sends_nothing_twice() {
    let told = Told::submitted(43, 0x0f1_0002);
    let Told {
        server,
        work,
        db,
        ck,
        sync,
        ..
    } = &told;
    let env = told.env();
    // The worker loads every chunk, claims the finish row and is held there.
    let pauses = tempfile::tempdir().unwrap();
    let marker = pauses.path().join("finish_claimed-1");
    let pause_dir = pauses.path().to_str().unwrap();
    let held = worker(
        work,
        db,
        "2s",
        &[
            env[0],
            env[1],
            env[2],
            ("DATSYNC_PAUSE_AT", "finish_claimed:1"),
            ("DATSYNC_PAUSE_DIR", pause_dir),
        ],
    );
    wait_for("the worker to claim the finish row", || marker.exists());
    // Meanwhile `resume` finishes the sync (the finish row, locked, stays).
    let url = db.url();
    let resumed = datsync(work.path(), &sync_args(&url, ck, &["resume", sync]), &env);
    assert_eq!(resumed.code(), Some(2), "{}", resumed.describe());
    assert_eq!(resumed.summary()["status"], "PARTIAL_SUCCESS");
    let mut first = received(server);
    first.sort();
    assert_eq!(
        first,
        ["/alert", "/hooks/partial"],
        "one hook and one alert"
    );
    // The worker goes on: it finishes the sync again, and tells no one.
    std::fs::remove_file(&marker).unwrap();
    let out = finish(held);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.summary()["syncs_finished"]
            .to_string()
            .contains(sync.as_str()),
        "{}",
        out.describe()
    );
    assert_eq!(received(server), Vec::<String>::new(), "sent twice");
    assert_eq!(queue_len(db), 0);
    assert_eq!(db.metadata(sync).unwrap()["status"], "PARTIAL_SUCCESS");
}

/// A trigger on the target table that fails every write of a source line in `lines` with a
/// serialization failure (40001: transient, so each attempt is retried, then counted).
fn failing_lines(db: &TestDb, lines: (i64, i64)) {
    let (from, to) = lines;
    db.batch(&format!(
        "CREATE FUNCTION datsync_test_fail_line() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           IF NEW.source_line BETWEEN {from} AND {to} THEN
             RAISE EXCEPTION 'injected failure of lines {from}-{to}' USING ERRCODE = '40001';
           END IF;
           RETURN NEW;
         END $f$;
         CREATE TRIGGER datsync_test_fail_line BEFORE INSERT OR UPDATE ON {TABLE}
           FOR EACH ROW EXECUTE FUNCTION datsync_test_fail_line();"
    ));
}

#[test]
fn a_chunk_that_keeps_failing_is_held_back_then_given_up_and_resume_loads_it() {
    let work = Work::with_options(&crate::common::options(4_000, 47, MESSY));
    let sync = sync_id(0x0f1_0003);
    let reference = reference(&work, &sync);
    let db = TestDb::new();
    let ck = work.checkpoints("ck_queue");
    let total = submit(&work, &db, &ck, &sync, &[LENIENT]);
    // Lines of the fourth chunk (lines 242 to 321, the header being line 1) fail every
    // time they are written: some of them are valid rows.
    failing_lines(&db, (250, 300));
    let args = [
        "worker",
        "--database-url",
        &db.url(),
        "--exit-when-idle",
        "--max-idle",
        "2s",
        "--max-attempts",
        "2",
        "--backoff",
        "300ms",
        "--json",
    ];
    let out = finish(spawn(work.path(), &args, &[LENIENT]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(u(&out.summary(), "chunks_loaded"), total - 1);
    // The chunk was claimed twice, held back between the two, then given up.
    let rows = db.query(
        "SELECT chunk_id, attempts, last_error, failed_at IS NOT NULL,
                not_before > failed_at
           FROM public.chunk_queue WHERE sync_id = $1",
        &[&sync],
    );
    assert_eq!(
        rows.len(),
        1,
        "only the chunk given up is left in the queue"
    );
    let (chunk, attempts, error): (i32, i32, String) =
        (rows[0].get(0), rows[0].get(1), rows[0].get(2));
    assert_eq!(attempts, 2);
    assert!(
        error.contains("injected failure of lines 250-300"),
        "{error}"
    );
    assert_eq!(chunk, 3, "{error}");
    assert!(rows[0].get::<_, bool>(3), "not marked given up");
    assert!(rows[0].get::<_, bool>(4), "no backoff recorded");
    // Not pending any more: the scalers stop; `queue` counts it as failed.
    let q = queue_json(&work, &db);
    assert_eq!((u(&q, "pending"), u(&q, "failed")), (0, 1), "{q}");
    let query = q["query"].as_str().unwrap();
    let scaled: i64 = db.query(query, &[])[0].get(0);
    assert_eq!(scaled, 0, "{query}");
    // The sync finished without it, naming it; its checkpoint is kept for the resume.
    let m = db.metadata(&sync).unwrap();
    assert_eq!(m["status"], "PARTIAL_SUCCESS", "{m}");
    let message = m["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("chunk {chunk}")) && message.contains("given up"),
        "{message}"
    );
    assert_eq!(db.committed_chunks(&sync) as u64, total - 1);
    assert!(ck.join(&sync).exists(), "the checkpoint was removed");
    // Mended, the resume loads it: the uninterrupted run's result, the queue empty.
    db.batch(&format!(
        "DROP TRIGGER datsync_test_fail_line ON {TABLE}; DROP FUNCTION datsync_test_fail_line();"
    ));
    let url = db.url();
    let resumed = datsync(
        work.path(),
        &sync_args(&url, &ck, &["resume", &sync]),
        &[LENIENT],
    );
    assert_eq!(resumed.code(), Some(2), "{}", resumed.describe());
    assert_eq!(
        crate::common::counts(&resumed.summary()),
        crate::common::counts(&reference.summary)
    );
    assert_same_out_of_order(
        &Snapshot::take(&db, &ck, &sync),
        &reference.snapshot,
        "a chunk given up, then resumed",
    );
    assert_eq!(queue_len(&db), 0, "work left in the queue");
}

#[test]
fn a_finish_whose_sync_another_process_holds_is_held_back_not_claimed_over_and_over() {
    let work = Work::new(400, 53, CLEAN);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = sync_id(0x0f1_0004);
    submit(&work, &db, &ck, &sync, &[]);
    // The test holds the sync's writer lock, as a `run` or `resume` of it would.
    let holder = db.session();
    holder.query(
        "SELECT pg_advisory_lock(hashtextextended($1, 0))",
        &[&format!("datsync writer {sync}")],
    );
    let args = [
        "worker",
        "--database-url",
        &db.url(),
        "--exit-when-idle",
        "--max-idle",
        "1s",
        "--backoff",
        "10m",
        "--json",
    ];
    let out = finish(spawn(work.path(), &args, &[]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.summary()["syncs_finished"], serde_json::json!([]));
    let row = &db.query(
        "SELECT attempts, last_error, not_before > now() + interval '5 minutes', failed_at IS NULL
           FROM public.chunk_queue WHERE sync_id = $1 AND chunk_id = -1",
        &[&sync],
    )[0];
    assert_eq!(row.get::<_, i32>(0), 1, "claimed once, then held back");
    assert!(
        row.get::<_, String>(1)
            .contains("another process holds the sync"),
        "{:?}",
        row.get::<_, String>(1)
    );
    assert!(row.get::<_, bool>(2), "no backoff");
    assert!(row.get::<_, bool>(3), "a finish row is never given up");
    let q = queue_json(&work, &db);
    assert_eq!(
        (u(&q, "pending"), u(&q, "finishing"), u(&q, "waiting")),
        (1, 1, 1),
        "{q}"
    );
    // The holder goes; `resume` finishes the sync and the finish row goes with it.
    drop(holder);
    db.wait_for_other_sessions();
    let url = db.url();
    let resumed = datsync(work.path(), &sync_args(&url, &ck, &["resume", &sync]), &[]);
    assert_eq!(resumed.code(), Some(0), "{}", resumed.describe());
    assert_eq!(resumed.summary()["status"], "SUCCESS");
    assert_eq!(queue_len(&db), 0);
}

#[test]
fn queue_rows_no_claim_can_take_are_marked_failed_and_leave_the_scale_figure() {
    let work = Work::new(200, 59, CLEAN);
    let db = TestDb::new();
    db.init();
    let good = sync_id(0x0f1_0005);
    db.batch(&format!(
        "INSERT INTO public.sync_metadata (sync_id, status) VALUES
           ('not a sync id', 'IN_PROGRESS'), ('{good}', 'IN_PROGRESS');
         INSERT INTO public.chunk_queue (sync_id, chunk_id) VALUES
           ('not a sync id', 0), ('{good}', -5), ('sync_20990101_000000_deadbeef', 0);"
    ));
    assert_eq!(u(&queue_json(&work, &db), "pending"), 3);
    let out = finish(worker(&work, &db, "500ms", &[]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let rows = db.query(
        "SELECT sync_id, chunk_id, last_error FROM public.chunk_queue
          WHERE failed_at IS NOT NULL ORDER BY chunk_id, sync_id",
        &[],
    );
    let failed: Vec<(String, i32, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(failed[0].2.contains("names no chunk"), "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|(id, _, e)| id == "not a sync id" && e.contains("no valid sync id")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|(id, _, e)| id.starts_with("sync_2099")
                && e.contains("sync_metadata does not have")),
        "{failed:?}"
    );
    let q = queue_json(&work, &db);
    assert_eq!((u(&q, "pending"), u(&q, "failed")), (0, 3), "{q}");
}

#[test]
fn a_chunk_whose_storage_is_away_is_held_back_and_never_given_up() {
    let work = Work::new(400, 61, CLEAN);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = sync_id(0x0f1_0006);
    let total = submit(&work, &db, &ck, &sync, &[]);
    // The sync's checkpoint storage cannot be opened (as an account that is away).
    let location: String = db.query(
        "SELECT checkpoint_location FROM public.sync_metadata WHERE sync_id = $1",
        &[&sync],
    )[0]
    .get(0);
    db.query(
        "UPDATE public.sync_metadata SET checkpoint_location = 'nosuchscheme://away'
          WHERE sync_id = $1",
        &[&sync],
    );
    let args = [
        "worker",
        "--database-url",
        &db.url(),
        "--exit-when-idle",
        "--max-idle",
        "1s",
        "--max-attempts",
        "1",
        "--backoff",
        "100ms",
        "--json",
    ];
    let out = finish(spawn(work.path(), &args, &[]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let row = &db.query(
        "SELECT count(*) FILTER (WHERE attempts >= 1), count(*) FILTER (WHERE failed_at IS NOT NULL)
           FROM public.chunk_queue WHERE sync_id = $1 AND chunk_id >= 0",
        &[&sync],
    )[0];
    assert!(row.get::<_, i64>(0) >= 1, "no attempt recorded");
    assert_eq!(
        row.get::<_, i64>(1),
        0,
        "a chunk was given up for its storage"
    );
    assert_eq!(db.metadata(&sync).unwrap()["status"], "IN_PROGRESS");
    // Back: the next worker loads every chunk and finishes the sync.
    db.query(
        "UPDATE public.sync_metadata SET checkpoint_location = $2 WHERE sync_id = $1",
        &[&sync, &location],
    );
    db.batch("UPDATE public.chunk_queue SET not_before = NULL");
    let out = finish(worker(&work, &db, "1s", &[]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(u(&out.summary(), "chunks_loaded"), total);
    assert_eq!(db.metadata(&sync).unwrap()["status"], "SUCCESS");
    assert_eq!(queue_len(&db), 0);
}

#[test]
fn a_halted_sync_run_again_that_halts_again_is_told_again() {
    let server = TestHttpServer::http(&[200]).unwrap();
    let work = super::workers::halting_work();
    let alert_url = server.url("/alert");
    let env = [("ALERT_WEBHOOK_URL", alert_url.as_str())];
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = sync_id(0x0f1_0007);
    submit(&work, &db, &ck, &sync, &env);
    let out = finish(worker(&work, &db, "1s", &env));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(db.metadata(&sync).unwrap()["status"], "BAD_INPUT");
    assert_eq!(received(&server), ["/alert"]);
    // Run again as it is: it halts again, with the same outcome, and says so again.
    let url = db.url();
    let again = datsync(work.path(), &sync_args(&url, &ck, &["resume", &sync]), &env);
    assert_eq!(again.code(), Some(1), "{}", again.describe());
    assert_eq!(db.metadata(&sync).unwrap()["status"], "BAD_INPUT");
    assert_eq!(
        received(&server),
        ["/alert"],
        "the second halt was not told"
    );
}

/// A `resume` of a submitted sync (which may run beside workers) keeps the files of the
/// chunks it commits: a worker that claimed one of them before the resume committed it reads
/// its file before it finds the chunk committed. A run's own sync removes each done chunk's
/// file at once (`checkpoint::conformance`); a queued one keeps them until its cleanup.
#[test]
fn a_resume_beside_the_queue_keeps_the_files_of_the_chunks_it_commits() {
    let work = Work::new(2_000, 61, CLEAN);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = sync_id(0x0f1_0006);
    let total = submit(&work, &db, &ck, &sync, &[]);
    assert!(total >= 3, "{total} chunks");
    let url = db.url();
    let killed = datsync(
        work.path(),
        &sync_args(&url, &ck, &["resume", &sync]),
        &[("DATSYNC_KILL_AT", "chunk_committed:2")],
    );
    assert!(killed.killed(), "{}", killed.describe());
    db.wait_for_other_sessions();
    let committed: Vec<u32> = db
        .ledger(&sync)
        .iter()
        .filter_map(|c| u32::try_from(c["chunk_id"].as_u64()?).ok())
        .collect();
    assert!(!committed.is_empty(), "the resume committed chunks");
    assert!(queue_len(&db) > 0, "chunks are still queued");
    let files = crate::common::chunk_files(&ck, &sync);
    for chunk in &committed {
        let name = datsync::chunk_file_name(datsync::ChunkId(*chunk));
        assert!(
            files.iter().any(|f| f.ends_with(&name)),
            "chunk {chunk} committed by the resume lost its file: {files:?}"
        );
    }
    let resumed = datsync(work.path(), &sync_args(&url, &ck, &["resume", &sync]), &[]);
    assert_eq!(resumed.code(), Some(0), "{}", resumed.describe());
    assert_eq!(resumed.summary()["status"], "SUCCESS");
    assert_eq!(queue_len(&db), 0);
    assert!(!ck.join(&sync).exists(), "cleaned up");
}
