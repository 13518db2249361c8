//! The work queue (issue 15 items 1, 2 and 4): `datsync submit` and several `datsync worker`
//! processes, killed with SIGKILL at random points and started again, end with the table,
//! `sync_metadata`, ledger, rejects and warnings of one uninterrupted `datsync run` of the
//! same file; a sync halted by the error threshold stops every worker; `--exit-when-idle`
//! exits 0.
//!
//! Waits are on conditions (the processes' exits, the ledger in the database), each with a
//! deadline; nothing sleeps for timing. Replay a failure with
//! `DATSYNC_QUEUE_SEED=<seed printed by the test>`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::common::{MESSY, Outcome, Snapshot, TestDb, Work, datsync, options, sync_id, u};

/// Rows of the file and rows per chunk: about fifty small chunks.
const ROWS: u64 = 4_000;
const CHUNK: &str = "80";
/// Kill points a worker reaches while it loads chunks.
const WORKER_EVENTS: [&str; 4] = [
    "rows_rejected",
    "chunk_staged",
    "chunk_committed",
    "chunk_completed",
];
/// A threshold no chunk of the kill test's file reaches (fifty chunks of 80 rows: one with
/// nine rejected rows would stop the sync at the default 10%).
pub(super) const LENIENT: (&str, &str) = ("VALIDATION_ERROR_THRESHOLD", "0.5");
/// The longest any wait of these tests lasts.
const DEADLINE: Duration = Duration::from_secs(240);

/// `datsync ARGS` with the database, checkpoint directory and chunk size of these tests.
pub(super) fn sync_args<'a>(db_url: &'a str, ck: &'a Path, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend([
        "--database-url",
        db_url,
        "--checkpoint-dir",
        ck.to_str().unwrap(),
        "--chunk-size",
        CHUNK,
        "--json",
    ]);
    all
}

/// A process of the binary started in the background (stdout and stderr kept).
pub(super) fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datsync"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("DATSYNC_RETRY_BACKOFF_MS", "20")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

pub(super) fn finish(child: Child) -> Outcome {
    let out = child.wait_with_output().unwrap();
    Outcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `datsync worker` on `db`, exiting once idle for `max_idle`.
pub(super) fn worker(work: &Work, db: &TestDb, max_idle: &str, env: &[(&str, &str)]) -> Child {
    worker_with(work, db, max_idle, "1", env)
}

/// [`worker`] loading `concurrency` chunks at once.
pub(super) fn worker_with(
    work: &Work,
    db: &TestDb,
    max_idle: &str,
    concurrency: &str,
    env: &[(&str, &str)],
) -> Child {
    let url = db.url();
    spawn(
        work.path(),
        &[
            "worker",
            "--database-url",
            &url,
            "--exit-when-idle",
            "--max-idle",
            max_idle,
            "--concurrency",
            concurrency,
            "--json",
        ],
        env,
    )
}

/// Chunks of the sync the process `pid` committed (the ledger's `worker` is `host:pid`).
fn committed_by(db: &TestDb, sync: &str, pid: u32) -> i64 {
    // The first worker's migration may not have run yet.
    let migrated: bool =
        db.query("SELECT to_regclass('public.chunk_queue') IS NOT NULL", &[])[0].get(0);
    if !migrated {
        return 0;
    }
    db.query(
        "SELECT count(*) FROM public.sync_chunks WHERE sync_id = $1 AND worker LIKE $2",
        &[&sync, &format!("%:{pid}")],
    )[0]
    .get(0)
}

pub(super) fn queue_len(db: &TestDb) -> i64 {
    db.query("SELECT count(*) FROM public.chunk_queue", &[])[0].get(0)
}

/// The chunks the checkpoint's manifest (its journal applied) says are done.
fn manifest_done(ck: &Path, sync: &str) -> BTreeSet<u64> {
    let dir = ck.join(sync);
    let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
        return BTreeSet::new();
    };
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let folded = manifest["journal_seq"].as_u64().unwrap_or(0);
    let mut state: std::collections::BTreeMap<u64, String> = manifest["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["chunk_id"].as_u64().unwrap(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut entries: Vec<Value> = std::fs::read_dir(dir.join("journal"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
                .filter_map(|t| serde_json::from_str(&t).ok())
                .collect()
        })
        .unwrap_or_default();
    entries.sort_by_key(|e| e["seq"].as_u64());
    for e in entries.iter().filter(|e| e["seq"].as_u64() > Some(folded)) {
        state.insert(
            e["chunk"]["chunk_id"].as_u64().unwrap(),
            e["chunk"]["status"].as_str().unwrap().to_owned(),
        );
    }
    state
        .into_iter()
        .filter(|(_, s)| s == "completed" || s == "skipped")
        .map(|(c, _)| c)
        .collect()
}

/// Requires that the manifest claims no chunk done that the ledger lacks.
fn assert_manifest_claims_only_commits(db: &TestDb, ck: &Path, sync: &str, context: &str) {
    let committed: BTreeSet<u64> = db
        .ledger(sync)
        .iter()
        .map(|c| c["chunk_id"].as_u64().unwrap())
        .collect();
    let done = manifest_done(ck, sync);
    let claimed: Vec<_> = done.difference(&committed).collect();
    assert!(
        claimed.is_empty(),
        "{context}: the manifest says chunks {claimed:?} are done; the ledger lacks them"
    );
}

/// Waits for `cond`, polling, until the deadline.
pub(super) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One round: workers with random kill points, and one that the test kills with SIGKILL
/// once it has committed a chunk or two; every worker ends (killed, or idle).
fn kill_round(
    rng: &mut ChaCha8Rng,
    work: &Work,
    db: &TestDb,
    sync: &str,
    history: &mut Vec<String>,
) -> Vec<Outcome> {
    let mut children = Vec::new();
    for _ in 0..3 {
        let event = WORKER_EVENTS[rng.random_range(0..WORKER_EVENTS.len())];
        let kill_at = format!("{event}:{}", rng.random_range(1..=4));
        history.push(kill_at.clone());
        children.push(worker(
            work,
            db,
            "3s",
            &[("DATSYNC_KILL_AT", &kill_at), LENIENT],
        ));
    }
    let mut target = worker(work, db, "3s", &[LENIENT]);
    let after = rng.random_range(1..=2);
    history.push(format!("SIGKILL after {after} commit(s)"));
    let pid = target.id();
    wait_for("the worker to commit or end", || {
        committed_by(db, sync, pid) >= after || target.try_wait().unwrap().is_some()
    });
    // Killed at once: it may be in the middle of its next chunk.
    let _ = target.kill();
    children.push(target);
    children.into_iter().map(finish).collect()
}

/// The ledger columns that depend on the order chunks commit in: a key in two chunks is
/// inserted by the chunk that commits first and superseded in the other.
const ORDER_DEPENDENT: [&str; 4] = ["inserted", "updated", "skipped_older", "superseded_on_load"];

/// [`Snapshot::assert_same`] for chunks committed in any order: the table, `sync_metadata`,
/// rejects and warnings equal; every ledger row equal but for [`ORDER_DEPENDENT`], whose
/// sums over the sync are equal.
pub(super) fn assert_same_out_of_order(got: &Snapshot, reference: &Snapshot, context: &str) {
    let split = |ledger: &[Value]| {
        let mut sums = [0u64; ORDER_DEPENDENT.len()];
        let rows: Vec<Value> = ledger
            .iter()
            .map(|row| {
                let mut row = row.clone();
                for (i, column) in ORDER_DEPENDENT.iter().enumerate() {
                    sums[i] += row[*column].as_u64().unwrap();
                    row.as_object_mut().unwrap().remove(*column);
                }
                row
            })
            .collect();
        (rows, sums)
    };
    let (rows, sums) = split(&got.ledger);
    let (want_rows, want_sums) = split(&reference.ledger);
    assert_eq!(
        rows.len(),
        want_rows.len(),
        "{context}: ledger sizes differ"
    );
    for (a, b) in rows.iter().zip(&want_rows) {
        assert_eq!(a, b, "{context}: ledger row differs");
    }
    assert_eq!(
        sums, want_sums,
        "{context}: ledger sums of {ORDER_DEPENDENT:?} differ"
    );
    let same = Snapshot {
        table: got.table.clone(),
        metadata: got.metadata.clone(),
        ledger: reference.ledger.clone(),
        rejects: got.rejects.clone(),
        warnings: got.warnings.clone(),
    };
    same.assert_same(reference, context);
}

/// What an uninterrupted `datsync run` of the file left.
pub(super) struct Reference {
    pub(super) summary: Value,
    pub(super) snapshot: Snapshot,
}

pub(super) fn reference(work: &Work, sync: &str) -> Reference {
    let db = TestDb::new();
    let ck = work.checkpoints("ck_reference");
    let url = db.url();
    let out = datsync(
        work.path(),
        &sync_args(&url, &ck, &["run", work.file(), "--sync-id", sync]),
        &[LENIENT],
    );
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let summary = out.summary();
    assert!(u(&summary, "chunks_total") >= 40, "{summary}");
    assert!(u(&summary, "rows_superseded") > 0, "{summary}");
    assert!(u(&summary, "rows_rejected") > 0, "{summary}");
    Reference {
        summary,
        snapshot: Snapshot::take(&db, &ck, sync),
    }
}

/// The clean restart: workers loading two chunks at once, each killed if it finishes the
/// sync (after its final status, before its cleanup: the finish row is then free again for
/// the next one), then workers that run to the end; the sync is finished once more.
fn clean_round(work: &Work, db: &TestDb, ck: &Path, sync: &str, context: &str) {
    let kill = [("DATSYNC_KILL_AT", "cleanup_started:1"), LENIENT];
    let first: Vec<Outcome> = (0..3)
        .map(|_| worker_with(work, db, "3s", "2", &kill))
        .collect::<Vec<_>>()
        .into_iter()
        .map(finish)
        .collect();
    for out in &first {
        assert!(
            out.killed() || out.code() == Some(0),
            "{context}: {}",
            out.describe()
        );
    }
    assert!(
        first.iter().any(Outcome::killed),
        "{context}: no worker finished the sync"
    );
    db.wait_for_other_sessions();
    let m = db.metadata(sync).unwrap();
    assert_eq!(m["status"], "PARTIAL_SUCCESS", "{context}: {m}");
    assert!(
        ck.join(sync).exists(),
        "{context}: cleaned up before the kill"
    );
    assert_eq!(queue_len(db), 1, "{context}: the finish row is free again");
    let last: Vec<Outcome> = (0..3)
        .map(|_| worker(work, db, "2s", &[LENIENT]))
        .collect::<Vec<_>>()
        .into_iter()
        .map(finish)
        .collect();
    for out in &last {
        assert_eq!(out.code(), Some(0), "{context}: {}", out.describe());
    }
    let finished_by: usize = last
        .iter()
        .map(|o| o.summary()["syncs_finished"].as_array().unwrap().len())
        .sum();
    assert_eq!(finished_by, 1, "{context}: the sync is finished once");
}

#[test]
fn workers_killed_at_random_points_end_as_one_uninterrupted_run() {
    let seed = crate::common::seed("DATSYNC_QUEUE_SEED");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Duplicate keys across chunks (the generator repeats earlier keys), rejected rows,
    // value warnings.
    let work = Work::with_options(&datsync::SampleOptions {
        bad_value_rate: 0.02,
        ..options(ROWS, rng.random(), MESSY)
    });
    let sync = sync_id(rng.random());
    let reference = reference(&work, &sync);
    let chunks_total = u(&reference.summary, "chunks_total");

    let db = TestDb::new();
    let ck = work.checkpoints("ck_queue");
    let url = db.url();
    let mut history = Vec::new();
    // Round 1: the workers start with the submit, and load while it converts.
    let submit = spawn(
        work.path(),
        &sync_args(&url, &ck, &["submit", work.file(), "--sync-id", &sync]),
        &[LENIENT],
    );
    let round1 = kill_round(&mut rng, &work, &db, &sync, &mut history);
    let submitted = finish(submit);
    assert_eq!(submitted.code(), Some(0), "{}", submitted.describe());
    let s = submitted.summary();
    assert_eq!(s["sync_id"], sync.as_str(), "{s}");
    assert_eq!(u(&s, "chunks_total"), chunks_total, "{s}");
    // Round 2 (the submit done); then round 3 restarts cleanly: a worker killed while it
    // finishes the sync (after its final status, before its cleanup), then workers that
    // run to the end.
    db.wait_for_other_sessions();
    assert_manifest_claims_only_commits(&db, &ck, &sync, "after round 1");
    let round2 = kill_round(&mut rng, &work, &db, &sync, &mut history);
    db.wait_for_other_sessions();
    assert_manifest_claims_only_commits(&db, &ck, &sync, "after round 2");
    let context = format!("seed {seed}, kills {history:?}");
    for out in round1.iter().chain(&round2) {
        assert!(
            out.killed() || out.code() == Some(0),
            "{context}: {}",
            out.describe()
        );
    }
    let committed = db.committed_chunks(&sync) as u64;
    assert!(
        committed < chunks_total,
        "{context}: every chunk was committed before the clean round ({committed})"
    );
    clean_round(&work, &db, &ck, &sync, &context);
    // The table, counts, ledger, rejects and warnings of the uninterrupted run.
    assert_same_out_of_order(
        &Snapshot::take(&db, &ck, &sync),
        &reference.snapshot,
        &context,
    );
    let ledger = db.ledger(&sync);
    let ids: Vec<u64> = ledger
        .iter()
        .map(|c| c["chunk_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (0..chunks_total).collect::<Vec<_>>(), "{context}");
    let workers: i64 = db.query(
        "SELECT count(DISTINCT worker) FROM public.sync_chunks WHERE sync_id = $1",
        &[&sync],
    )[0]
    .get(0);
    assert!(workers > 1, "{context}: one worker committed every chunk");
    assert_eq!(queue_len(&db), 0, "{context}: work left in the queue");
    assert!(
        !ck.join(&sync).exists(),
        "{context}: the checkpoint is still there"
    );
    println!("{context}: {workers} workers, same as the uninterrupted run");
}

#[test]
fn a_sync_halted_by_the_threshold_stops_every_worker() {
    let work = halting_work();
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let url = db.url();
    let out = datsync(
        work.path(),
        &sync_args(&url, &ck, &["submit", work.file()]),
        &[],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let s = out.summary();
    let sync = s["sync_id"].as_str().unwrap().to_owned();
    let total = u(&s, "chunks_total");
    assert!(total >= 30, "{s}");
    assert_eq!(
        queue_len(&db),
        i64::try_from(total).unwrap() + 1,
        "each chunk and the finish"
    );
    let children: Vec<Child> = (0..3).map(|_| worker(&work, &db, "1s", &[])).collect();
    let outs: Vec<Outcome> = children.into_iter().map(finish).collect();
    for out in &outs {
        assert_eq!(out.code(), Some(0), "{}", out.describe());
    }
    let halted: usize = outs
        .iter()
        .map(|o| o.summary()["syncs_halted"].as_array().unwrap().len())
        .sum();
    assert!(halted >= 1, "no worker halted the sync");
    let m = db.metadata(&sync).unwrap();
    assert_eq!(m["status"], "BAD_INPUT", "{m}");
    let error = m["error_message"].as_str().unwrap_or_default();
    assert!(error.contains("threshold"), "{error}");
    // Stopped for every worker: far from every chunk loaded, nothing left in the queue.
    let committed = db.committed_chunks(&sync) as u64;
    assert!(
        committed < total / 2,
        "{committed} of {total} chunks loaded"
    );
    assert_eq!(queue_len(&db), 0);
}

/// The sync's `status`, whether its final steps wrote `completed_at`, and its error.
fn final_state(db: &TestDb, sync: &str) -> (String, bool, String) {
    let row = &db.query(
        "SELECT status, completed_at IS NOT NULL, COALESCE(error_message, '')
           FROM public.sync_metadata WHERE sync_id = $1",
        &[&sync],
    )[0];
    (row.get(0), row.get(1), row.get(2))
}

/// The `chunk_id`s in the work queue.
fn queued_chunks(db: &TestDb) -> Vec<i32> {
    db.query(
        "SELECT chunk_id FROM public.chunk_queue ORDER BY chunk_id",
        &[],
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The status the checkpoint's manifest records for the sync.
fn manifest_status(ck: &Path, sync: &str) -> String {
    let text = std::fs::read_to_string(ck.join(sync).join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["status"].as_str().unwrap_or_default().to_owned()
}

/// Review HIGH 1: a worker killed right after it halted a sync (its status, the deletion of
/// its chunk rows and its finish row are one transaction) leaves the finish row, and the
/// next worker does the final steps: counts from the ledger, `completed_at`, the
/// checkpoint marked failed, the queue empty. Before the fix the finish row was deleted with
/// the chunk rows and nothing finished the sync.
#[test]
fn a_worker_killed_right_after_halting_a_sync_leaves_its_final_steps_to_the_next() {
    let work = halting_work();
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let url = db.url();
    let out = datsync(
        work.path(),
        &sync_args(&url, &ck, &["submit", work.file()]),
        &[],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let sync = out.summary()["sync_id"].as_str().unwrap().to_owned();
    let halter = finish(worker(
        &work,
        &db,
        "3s",
        &[("DATSYNC_KILL_AT", "sync_halted:1")],
    ));
    assert!(halter.killed(), "{}", halter.describe());
    db.wait_for_other_sessions();
    let (status, completed, error) = final_state(&db, &sync);
    assert_eq!(status, "BAD_INPUT");
    assert!(error.contains("threshold"), "{error}");
    assert!(!completed, "the final steps ran before the kill");
    assert_eq!(queued_chunks(&db), [-1], "only the finish row is left");
    assert_ne!(manifest_status(&ck, &sync), "failed");

    let next = finish(worker(&work, &db, "2s", &[]));
    assert_eq!(next.code(), Some(0), "{}", next.describe());
    let finished = next.summary()["syncs_finished"].to_string();
    assert!(finished.contains(&sync), "{finished}");
    let (status, completed, error) = final_state(&db, &sync);
    assert_eq!(status, "BAD_INPUT");
    assert!(completed, "the next worker did not finish the sync");
    assert!(error.contains("threshold"), "{error}");
    let m = db.metadata(&sync).unwrap();
    let ledger_rows: u64 = db.ledger(&sync).iter().map(|c| u(c, "rows")).sum();
    assert_eq!(u(&m, "records_loaded"), ledger_rows, "{m}");
    assert_eq!(manifest_status(&ck, &sync), "failed");
    assert!(queued_chunks(&db).is_empty(), "work left in the queue");
}

/// Review MEDIUM 3: a claim that fails transiently (here `lock_timeout`, 55P03, on a queue
/// the test holds locked) is rolled back before the pause; the worker goes on and loads the
/// next submit. Before the fix the next claim's BEGIN met the aborted transaction (25P02,
/// fatal) and the worker exited with an error.
#[test]
fn a_claim_that_times_out_is_rolled_back_and_the_worker_goes_on() {
    let work = Work::new(600, 13, MESSY);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let url = db.url();
    db.init();
    let log = work.path().join("worker.log");
    // The worker's sessions alone wait 200 ms for a lock: the test's own (the holder's
    // `LOCK TABLE`, the submit) wait as long as they need.
    let mut child = Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(["worker", "--database-url", &url, "--json"])
        .current_dir(work.path())
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("PGOPTIONS", "-c lock_timeout=200ms")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let claim_seen = || {
        db.query(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND query LIKE '%FOR UPDATE OF q SKIP LOCKED%'",
            &[],
        )[0]
        .get::<_, i64>(0)
            > 0
    };
    wait_for("the worker's first claim", claim_seen);
    let holder = db.session();
    holder.query("BEGIN", &[]);
    holder.query(
        "LOCK TABLE public.chunk_queue IN ACCESS EXCLUSIVE MODE",
        &[],
    );
    wait_for("a claim timed out on the lock", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("cannot read the work queue; trying again")
    });
    holder.query("COMMIT", &[]);
    let out = datsync(
        work.path(),
        &sync_args(&url, &ck, &["submit", work.file()]),
        &[],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let sync = out.summary()["sync_id"].as_str().unwrap().to_owned();
    wait_for("the worker to finish the sync", || {
        let exited = child.try_wait().unwrap();
        assert!(exited.is_none(), "the worker exited early: {exited:?}");
        final_state(&db, &sync).1 && queued_chunks(&db).is_empty()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = finish(child);
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(out.code(), Some(0), "{}\n{stderr}", out.describe());
    assert!(!stderr.contains("25P02"), "{stderr}");
    let finished = out.summary()["syncs_finished"].to_string();
    assert!(finished.contains(&sync), "{finished}\n{stderr}");
    assert!(queued_chunks(&db).is_empty(), "work left in the queue");
}

#[test]
fn an_idle_worker_exits_0_and_queue_counts_the_work() {
    let work = Work::new(600, 11, MESSY);
    let db = TestDb::new();
    let url = db.url();
    // Nothing submitted: the queue (made by the worker's migration) stays empty.
    let out = finish(worker(&work, &db, "200ms", &[]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.summary()["chunks_loaded"], 0);
    let queue = |db_url: &str| {
        let out = datsync(
            work.path(),
            &["queue", "--database-url", db_url, "--json"],
            &[],
        );
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        out.summary()
    };
    assert_eq!(queue(&url)["pending"], 0);
    let ck = work.checkpoints("ck");
    // Without checkpoints there is nothing the workers could read.
    let refused = datsync(
        work.path(),
        &sync_args(&url, &ck, &["submit", work.file(), "--no-checkpoint"]),
        &[],
    );
    assert_eq!(refused.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.contains("checkpointing is off"),
        "{}",
        refused.describe()
    );
    assert_eq!(refused.summary()["status"], Value::Null);
    let submitted = datsync(
        work.path(),
        &sync_args(&url, &ck, &["submit", work.file()]),
        &[],
    );
    assert_eq!(submitted.code(), Some(0), "{}", submitted.describe());
    let total = u(&submitted.summary(), "chunks_total");
    let q = queue(&url);
    assert_eq!(u(&q, "pending"), total + 1, "{q}");
    assert_eq!(u(&q, "chunks"), total, "{q}");
    assert_eq!(u(&q, "finishing"), 1, "{q}");
    // A worker of another profile's table in the same schema takes none of it.
    let other = finish(worker(
        &work,
        &db,
        "200ms",
        &[("DB_TABLE", "other_documents")],
    ));
    assert_eq!(other.code(), Some(0), "{}", other.describe());
    assert_eq!(u(&other.summary(), "chunks_loaded"), 0);
    assert_eq!(u(&queue(&url), "pending"), total + 1);
    let out = finish(worker(&work, &db, "200ms", &[]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(u(&out.summary(), "chunks_loaded"), total);
    assert_eq!(queue(&url)["pending"], 0);
}

#[test]
fn sigterm_finishes_the_chunk_in_flight_and_exits_0() {
    let work = Work::new(2_000, 13, crate::common::CLEAN);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let url = db.url();
    let submitted = datsync(
        work.path(),
        &sync_args(&url, &ck, &["submit", work.file()]),
        &[],
    );
    assert_eq!(submitted.code(), Some(0), "{}", submitted.describe());
    let s = submitted.summary();
    let sync = s["sync_id"].as_str().unwrap().to_owned();
    // SIGTERM while the second chunk is staged: it commits, no third one starts.
    let out = finish(worker(
        &work,
        &db,
        "30s",
        &[("DATSYNC_TERM_AT", "chunk_staged:2")],
    ));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(u(&out.summary(), "chunks_loaded"), 2, "{}", out.describe());
    assert_eq!(db.committed_chunks(&sync), 2);
    let total = u(&s, "chunks_total");
    assert_eq!(
        queue_len(&db),
        i64::try_from(total).unwrap() - 2 + 1,
        "the other chunks and the finish wait for the next worker"
    );
    assert_eq!(db.metadata(&sync).unwrap()["status"], "IN_PROGRESS");
}

#[test]
fn resume_of_a_submitted_sync_loads_beside_the_workers_and_nothing_twice() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let work = Work::with_options(&options(ROWS, 23, MESSY));
    let sync = sync_id(rng.random());
    let reference = reference(&work, &sync);
    let db = TestDb::new();
    let ck = work.checkpoints("ck_queue");
    let url = db.url();
    let submitted = datsync(
        work.path(),
        &sync_args(&url, &ck, &["submit", work.file(), "--sync-id", &sync]),
        &[LENIENT],
    );
    assert_eq!(submitted.code(), Some(0), "{}", submitted.describe());
    // Two workers and `resume SYNC` load the same sync side by side; the resume finishes it
    // (it holds the sync's writer lock, so no worker does meanwhile).
    let workers: Vec<Child> = (0..2)
        .map(|_| worker(&work, &db, "2s", &[LENIENT]))
        .collect();
    let resumed = datsync(
        work.path(),
        &sync_args(&url, &ck, &["resume", &sync]),
        &[LENIENT],
    );
    for out in workers.into_iter().map(finish) {
        assert_eq!(out.code(), Some(0), "{}", out.describe());
    }
    assert_eq!(resumed.code(), Some(2), "{}", resumed.describe());
    let s = resumed.summary();
    assert_eq!(
        crate::common::counts(&s),
        crate::common::counts(&reference.summary)
    );
    assert_same_out_of_order(
        &Snapshot::take(&db, &ck, &sync),
        &reference.snapshot,
        "resume beside workers",
    );
    assert_eq!(queue_len(&db), 0, "work left in the queue");
    assert!(!ck.join(&sync).exists(), "the checkpoint is still there");
}

#[test]
fn a_submit_killed_mid_conversion_continues_when_submitted_again() {
    let work = Work::with_options(&options(ROWS, 29, MESSY));
    let sync = sync_id(0x5b_0b17);
    let reference = reference(&work, &sync);
    let db = TestDb::new();
    let ck = work.checkpoints("ck_queue");
    let url = db.url();
    let args = sync_args(&url, &ck, &["submit", work.file(), "--sync-id", &sync]);
    // Killed after its 20th chunk is saved (and queued, or not yet), while a worker loads.
    let early = worker(&work, &db, "3s", &[LENIENT]);
    let killed = datsync(
        work.path(),
        &args,
        &[("DATSYNC_KILL_AT", "chunk_converted:20"), LENIENT],
    );
    assert!(killed.killed(), "{}", killed.describe());
    let early = finish(early);
    assert_eq!(early.code(), Some(0), "{}", early.describe());
    db.wait_for_other_sessions();
    assert!(db.committed_chunks(&sync) < 20);
    // The same source submitted again continues its sync: the rest is converted and queued.
    let again = datsync(
        work.path(),
        &sync_args(&url, &ck, &["submit", work.file()]),
        &[LENIENT],
    );
    assert_eq!(again.code(), Some(0), "{}", again.describe());
    let s = again.summary();
    assert_eq!(s["sync_id"], sync.as_str(), "{s}");
    assert_eq!(s["resumed"], true, "{s}");
    assert_eq!(
        u(&s, "chunks_total"),
        u(&reference.summary, "chunks_total"),
        "{s}"
    );
    let outs: Vec<Outcome> = (0..2)
        .map(|_| worker(&work, &db, "2s", &[LENIENT]))
        .collect::<Vec<_>>()
        .into_iter()
        .map(finish)
        .collect();
    for out in &outs {
        assert_eq!(out.code(), Some(0), "{}", out.describe());
    }
    assert_same_out_of_order(
        &Snapshot::take(&db, &ck, &sync),
        &reference.snapshot,
        "submitted again after a kill",
    );
    assert_eq!(queue_len(&db), 0);
    assert!(!ck.join(&sync).exists());
}

#[test]
fn a_worker_serves_its_metrics_and_stops_on_sigterm() {
    use crate::observe::{free_port, http_get, sample};
    let work = Work::new(1_000, 31, crate::common::CLEAN);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let url = db.url();
    let submitted = datsync(
        work.path(),
        &sync_args(&url, &ck, &["submit", work.file()]),
        &[],
    );
    assert_eq!(submitted.code(), Some(0), "{}", submitted.describe());
    let total = u(&submitted.summary(), "chunks_total");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let child = spawn(
        work.path(),
        &[
            "worker",
            "--database-url",
            &url,
            "--metrics-addr",
            &address,
            "--json",
        ],
        &[],
    );
    let committed = "datsync_chunks_total{outcome=\"committed\"}";
    // The counter is whole numbers: compared as the integer it prints.
    let mut scraped = 0u64;
    wait_for("the worker's metrics to count every chunk", || {
        if let Some((200, text)) = http_get(port, "/metrics") {
            scraped = sample(&text, committed).round() as u64;
        }
        scraped >= total
    });
    assert_eq!(scraped, total);
    let sync = submitted.summary()["sync_id"].as_str().unwrap().to_owned();
    wait_for("the sync to be finished", || {
        db.metadata(&sync).is_some_and(|m| m["status"] == "SUCCESS")
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = finish(child);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(u(&out.summary(), "chunks_loaded"), total);
}

/// A file with 30% invalid rows: its sync stops at the reject threshold.
pub(super) fn halting_work() -> Work {
    Work::new(
        3_000,
        7,
        crate::common::Rates {
            invalid: 0.3,
            dup: 0.0,
            ragged: 0.0,
        },
    )
}
