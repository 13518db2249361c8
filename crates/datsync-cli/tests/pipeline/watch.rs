//! `datsync watch` over a real directory, against the real PostgreSQL: each file loaded
//! exactly once; a failed chunk resumed by a later cycle under the same sync id; a replaced
//! file loaded as a new sync; attempts used up → parked and alerted, never retried; SIGTERM
//! stopping the sync in flight after its chunk and a later cycle finishing it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    CHUNK_SIZE, CLEAN, MESSY, Outcome, Rates, Snapshot, TABLE, TestDb, datsync, fresh_sync_id,
    options, u, write_sample,
};
use crate::errors::{FAST_RETRY, failing_trigger, lone_key_of_chunk};

/// A watched directory `in/` and a checkpoint directory, in a temp dir.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        Self { dir }
    }

    fn inbox(&self) -> PathBuf {
        self.dir.path().join("in")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.inbox().join(name)
    }

    fn ck(&self) -> PathBuf {
        self.dir.path().join("ck")
    }

    /// `datsync watch in --once --json` with the shared flags, plus `extra` and `env`.
    fn watch(&self, db: &TestDb, extra: &[&str], env: &[(&str, &str)]) -> Outcome {
        let url = db.url();
        let inbox = self.inbox();
        let ck = self.ck();
        let mut args = vec!["watch", inbox.to_str().unwrap(), "--once"];
        args.extend(shared(&url, &ck));
        args.extend(extra);
        datsync(self.dir.path(), &args, env)
    }

    /// `datsync run FILE --sync-id ID` into `db` with checkpoints in `ck`: the reference.
    fn run(&self, db: &TestDb, ck: &Path, file: &str, sync_id: &str) -> Outcome {
        let url = db.url();
        let path = self.file(file);
        let mut args = vec!["run", path.to_str().unwrap(), "--sync-id", sync_id];
        args.extend(shared(&url, ck));
        let out = datsync(self.dir.path(), &args, &[]);
        assert!(matches!(out.code(), Some(0 | 2)), "{}", out.describe());
        out
    }
}

fn shared<'a>(url: &'a str, ck: &'a Path) -> [&'a str; 7] {
    [
        "--database-url",
        url,
        "--checkpoint-dir",
        ck.to_str().unwrap(),
        "--chunk-size",
        CHUNK_SIZE,
        "--json",
    ]
}

/// The JSON lines of a `--json` cycle.
fn lines(out: &Outcome) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", out.describe()))
        })
        .collect()
}

/// Every receipt, by name and creation.
fn receipts(db: &TestDb) -> Vec<Value> {
    db.query(
        "SELECT jsonb_build_object('source', source, 'version', version, 'name', name,
                 'sync_id', sync_id, 'status', status, 'attempts', attempts,
                 'last_error', last_error, 'finished', finished_at IS NOT NULL,
                 'parked', poisoned_at IS NOT NULL)
           FROM datsync_receipts ORDER BY name, created_at",
        &[],
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn metadata_rows(db: &TestDb) -> i64 {
    db.query("SELECT count(*) FROM sync_metadata", &[])[0].get(0)
}

fn sample(path: &Path, rows: u64, seed: u64, rates: Rates, gzip: bool) {
    let options = datsync::SampleOptions {
        gzip,
        ..options(rows, seed, rates)
    };
    datsync::write_sample(File::create(path).unwrap(), &options).unwrap();
}

#[test]
fn a_cycle_loads_each_file_once_and_the_next_does_nothing() {
    let place = Place::new();
    sample(&place.file("a.dat"), 1_500, 41, CLEAN, false);
    sample(&place.file("b.dat.gz"), 1_200, 42, MESSY, true);
    // Not sources: hidden, still being written, another kind, a directory.
    for name in [".c.dat", "d.dat.partial", "e.dat.tmp", "notes.txt"] {
        std::fs::copy(place.file("a.dat"), place.file(name)).unwrap();
    }
    std::fs::create_dir(place.file("f.dat")).unwrap();
    let db = TestDb::new();

    let out = place.watch(&db, &[], &[]);
    // b.dat.gz has rejected rows: PARTIAL_SUCCESS, exit 2 as for `run`.
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let l = lines(&out);
    assert_eq!(l.len(), 2, "{}", out.stdout);
    assert_eq!(
        (l[0]["name"].as_str(), l[1]["name"].as_str()),
        (Some("a.dat"), Some("b.dat.gz"))
    );
    for (line, status) in l.iter().zip(["SUCCESS", "PARTIAL_SUCCESS"]) {
        assert_eq!(line["action"], "started", "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["summary"]["status"], status, "{line}");
        // Only rejected rows: nothing a retry could change.
        assert_eq!(line["finished"], true, "{line}");
        assert_eq!(line["attempts"], 1, "{line}");
    }
    assert!(u(&l[1]["summary"], "rows_rejected") > 0);
    let r = receipts(&db);
    assert_eq!(r.len(), 2);
    for (receipt, line) in r.iter().zip(&l) {
        assert_eq!(receipt["sync_id"], line["sync_id"]);
        assert_eq!(receipt["status"], line["status"]);
        assert_eq!(receipt["attempts"], 1);
        assert_eq!(receipt["finished"], true);
        assert_eq!(receipt["parked"], false);
        assert_eq!(
            receipt["source"].as_str().unwrap(),
            place.file(line["name"].as_str().unwrap()).to_str().unwrap()
        );
    }

    // The same files loaded by `datsync run`, in name order, under the same sync ids.
    let reference = TestDb::new();
    let ck_ref = place.dir.path().join("ck_reference");
    let ids: Vec<&str> = l.iter().map(|x| x["sync_id"].as_str().unwrap()).collect();
    place.run(&reference, &ck_ref, "a.dat", ids[0]);
    place.run(&reference, &ck_ref, "b.dat.gz", ids[1]);
    for id in &ids {
        Snapshot::take(&db, &place.ck(), id)
            .assert_same(&Snapshot::take(&reference, &ck_ref, id), "watch vs run");
    }

    let again = place.watch(&db, &[], &[]);
    assert_eq!(again.code(), Some(0), "{}", again.describe());
    let l2 = lines(&again);
    assert_eq!(l2.len(), 2);
    assert!(
        l2.iter().all(|x| x["action"] == "skipped_done"),
        "{}",
        again.stdout
    );
    assert!(l2.iter().all(|x| x["summary"].is_null()));
    assert_eq!(metadata_rows(&db), 2, "no new sync");
    assert_eq!(receipts(&db), r, "receipts unchanged");
}

#[test]
fn a_failed_chunk_is_resumed_by_a_later_cycle_under_the_same_sync_id() {
    let place = Place::new();
    let file = place.file("ztdwr_20250129.dat");
    write_sample(&file, 4_000, 31, MESSY);
    let reference = TestDb::new();
    let ref_id = fresh_sync_id();
    let expected = place
        .run(
            &reference,
            &place.dir.path().join("ck_reference"),
            "ztdwr_20250129.dat",
            &ref_id,
        )
        .summary();
    let key = lone_key_of_chunk(&reference, &file, 3);

    let db = TestDb::new();
    failing_trigger(&db, &key, "40001", Some("datsync_test_flag"));
    // A long pause after the first attempt.
    let out = place.watch(&db, &["--retry-backoff", "1h"], &[FAST_RETRY]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let first = &lines(&out)[0];
    assert_eq!(first["action"], "started", "{first}");
    assert_eq!(first["status"], "PARTIAL_SUCCESS");
    assert_eq!(first["finished"], false, "failed chunks are retried");
    assert_eq!(first["attempts"], 1);
    assert_eq!(u(&first["summary"], "chunks_failed"), 1);
    assert!(first["next_attempt_at"].is_string(), "{first}");
    let sync = first["sync_id"].as_str().unwrap().to_owned();
    let r = &receipts(&db)[0];
    assert_eq!(
        (r["status"].as_str(), r["attempts"].as_i64()),
        (Some("PARTIAL_SUCCESS"), Some(1))
    );
    assert!(r["last_error"].as_str().unwrap().contains("chunk 3"), "{r}");

    // Not due yet: nothing runs.
    let out = place.watch(&db, &[], &[FAST_RETRY]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(lines(&out)[0]["action"], "waiting_backoff");
    assert_eq!(
        db.committed_chunks(&sync) as u64,
        u(&expected, "chunks_total") - 1
    );

    // The pause is over (time moved by the test, not slept), and the database is well.
    db.batch("UPDATE datsync_receipts SET next_attempt_at = now(); DELETE FROM datsync_test_flag");
    let out = place.watch(&db, &["--retry-backoff", "0s"], &[FAST_RETRY]);
    let l = lines(&out);
    assert_eq!(l[0]["action"], "resumed", "{}", out.describe());
    assert_eq!(l[0]["sync_id"], sync.as_str(), "the same sync id");
    assert_eq!(l[0]["attempts"], 2);
    assert_eq!(l[0]["status"], expected["status"]);
    assert_eq!(l[0]["finished"], true);
    let s = &l[0]["summary"];
    assert_eq!(s["resumed"], true);
    assert_eq!(
        u(s, "chunks_skipped_on_resume"),
        u(&expected, "chunks_total") - 1
    );
    for k in [
        "rows_read",
        "rows_loaded",
        "rows_rejected",
        "rows_superseded",
        "rows_pending",
    ] {
        assert_eq!(s[k], expected[k], "{k}");
    }
    assert_eq!(
        db.table_without(&["sync_id"]),
        reference.table_without(&["sync_id"])
    );
    let (m, want) = (
        db.metadata(&sync).unwrap(),
        reference.metadata(&ref_id).unwrap(),
    );
    for k in [
        "status",
        "records_total",
        "records_failed",
        "records_superseded",
        "validation_errors",
    ] {
        assert_eq!(m[k], want[k], "sync_metadata.{k}");
    }
    assert_eq!(metadata_rows(&db), 1, "one sync for the file");
    let r = &receipts(&db)[0];
    assert_eq!(
        (r["attempts"].as_i64(), r["finished"].as_bool()),
        (Some(2), Some(true))
    );
}

#[test]
fn a_replaced_file_is_a_new_sync_and_the_old_receipt_stays() {
    let place = Place::new();
    let file = place.file("a.dat");
    write_sample(&file, 1_000, 51, CLEAN);
    let db = TestDb::new();
    let out = place.watch(&db, &[], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let old = lines(&out)[0].clone();
    assert_eq!(old["status"], "SUCCESS");

    // New content, another size: a new version.
    write_sample(&file, 1_300, 52, CLEAN);
    let out = place.watch(&db, &[], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let new = lines(&out)[0].clone();
    assert_eq!(new["action"], "started", "{new}");
    assert_eq!(new["status"], "SUCCESS");
    assert_ne!(new["sync_id"], old["sync_id"]);
    assert_ne!(new["version"], old["version"]);
    assert_eq!(new["source"], old["source"]);
    let r = receipts(&db);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(
        (&r[0]["sync_id"], &r[1]["sync_id"]),
        (&old["sync_id"], &new["sync_id"])
    );
    assert!(
        r.iter()
            .all(|x| x["status"] == "SUCCESS" && x["attempts"] == 1)
    );
    assert_eq!(metadata_rows(&db), 2);
    let loaded: i64 = db.query(
        &format!("SELECT count(*) FROM {TABLE} WHERE sync_id = $1"),
        &[&new["sync_id"].as_str().unwrap()],
    )[0]
    .get(0);
    let s = &new["summary"];
    assert_eq!(
        loaded as u64,
        u(s, "records_inserted") + u(s, "records_updated")
    );
    assert_eq!(u(s, "rows_read"), 1_300);

    let out = place.watch(&db, &[], &[]);
    let l = lines(&out);
    assert_eq!(
        (l.len(), l[0]["action"].as_str()),
        (1, Some("skipped_done"))
    );
}

fn received(rx: &mpsc::Receiver<(String, Value)>) -> Vec<Value> {
    rx.try_iter().map(|(_, body)| body).collect()
}

#[test]
fn used_up_attempts_park_the_file_with_an_alert_and_it_is_never_retried() {
    let place = Place::new();
    write_sample(&place.file("a.dat"), 1_200, 61, CLEAN);
    let db = TestDb::new();
    db.init();
    // Every insert fails with a fatal error: each attempt ends FAILED.
    db.batch(&format!(
        "CREATE FUNCTION datsync_test_fail() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN RAISE EXCEPTION 'injected failure 22012' USING ERRCODE = '22012'; END $f$;
         CREATE TRIGGER datsync_test_fail BEFORE INSERT ON {TABLE}
           FOR EACH ROW EXECUTE FUNCTION datsync_test_fail();"
    ));
    let (url, alerts) = crate::common::webhook_server();
    let env = [("ALERT_WEBHOOK_URL", url.as_str())];
    let flags = ["--max-attempts", "2", "--retry-backoff", "0s"];

    let out = place.watch(&db, &flags, &env);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let first = &lines(&out)[0];
    assert_eq!(
        (first["action"].as_str(), first["status"].as_str()),
        (Some("started"), Some("FAILED"))
    );
    let sync = first["sync_id"].as_str().unwrap().to_owned();
    // A retry follows: no alert yet.
    assert!(
        received(&alerts).is_empty(),
        "an attempt that will be retried does not alert"
    );

    let out = place.watch(&db, &flags, &env);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let second = &lines(&out)[0];
    assert_eq!(second["action"], "parked", "{second}");
    assert_eq!(second["sync_id"], sync.as_str());
    assert_eq!(second["attempts"], 2);
    assert_eq!(second["summary"]["status"], "FAILED");
    assert_eq!(second["summary"]["resumed"], true);
    let a = received(&alerts);
    assert_eq!(a.len(), 1, "one alert, when it is parked: {a:?}");
    let poison = a
        .iter()
        .find(|x| {
            x["error_message"]
                .as_str()
                .unwrap()
                .contains("parked as poison")
        })
        .unwrap_or_else(|| panic!("no poison alert in {a:?}"));
    assert_eq!(poison["sync_id"], sync.as_str());
    assert_eq!(poison["file_name"], "a.dat");
    assert_eq!(poison["status"], "FAILED");
    assert_eq!(poison["subject"], format!("Error: ZTDWR Sync {sync}"));
    let message = poison["error_message"].as_str().unwrap();
    for part in ["2 attempt(s)", "injected failure 22012", "will not retry"] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert!(out.stderr.contains("parked as poison"), "{}", out.stderr);
    let r = &receipts(&db)[0];
    assert_eq!(
        (r["parked"].as_bool(), r["attempts"].as_i64()),
        (Some(true), Some(2))
    );
    assert_eq!(r["status"], "FAILED", "the status is kept");

    let ledger = db.ledger(&sync);
    let meta = db.metadata(&sync);
    let out = place.watch(&db, &flags, &env);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(lines(&out)[0]["action"], "skipped_parked");
    assert!(received(&alerts).is_empty(), "no alert for a parked file");
    assert_eq!(
        (db.ledger(&sync), db.metadata(&sync)),
        (ledger, meta),
        "not run again"
    );
    assert_eq!(receipts(&db)[0]["attempts"], 2);
}

#[test]
fn sigterm_stops_after_the_chunk_in_flight_and_the_next_cycle_finishes_the_sync() {
    let place = Place::new();
    write_sample(&place.file("a.dat"), 4_000, 71, MESSY);
    let db = TestDb::new();
    // The process sends itself SIGTERM once chunk 3 is committed and marked completed.
    let out = place.watch(&db, &[], &[("DATSYNC_TERM_AT", "chunk_completed:3")]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stderr.contains("SIGTERM"),
        "the handler saw it: {}",
        out.stderr
    );
    let first = &lines(&out)[0];
    assert_eq!(first["action"], "started", "{first}");
    assert_eq!(first["interrupted"], true);
    assert_eq!(first["finished"], false);
    assert_eq!(first["attempts"], 0, "a stop is not an attempt");
    assert_eq!(first["status"], "IN_PROGRESS");
    assert_eq!(first["summary"]["interrupted"], true);
    let sync = first["sync_id"].as_str().unwrap().to_owned();
    assert_eq!(
        db.committed_chunks(&sync),
        3,
        "the chunk in flight committed, no further one"
    );
    assert_eq!(db.metadata(&sync).unwrap()["status"], "IN_PROGRESS");
    let r = &receipts(&db)[0];
    assert_eq!(
        (r["attempts"].as_i64(), r["status"].as_str()),
        (Some(0), Some("IN_PROGRESS"))
    );
    assert!(
        r["last_error"]
            .as_str()
            .unwrap()
            .contains("stopped on request"),
        "{r}"
    );
    assert!(
        place.ck().join(&sync).join("manifest.json").exists(),
        "checkpoint kept"
    );

    // The default pause does not apply: a stopped sync is due at once.
    let out = place.watch(&db, &[], &[]);
    let l = lines(&out);
    assert_eq!(l[0]["action"], "resumed", "{}", out.describe());
    assert_eq!(l[0]["sync_id"], sync.as_str());
    assert_eq!(l[0]["attempts"], 1);
    assert_eq!(l[0]["finished"], true);
    assert_eq!(u(&l[0]["summary"], "chunks_skipped_on_resume"), 3);
    assert_eq!(out.code(), Some(2), "rejected rows: PARTIAL_SUCCESS");

    let reference = TestDb::new();
    let ck_ref = place.dir.path().join("ck_reference");
    place.run(&reference, &ck_ref, "a.dat", &sync);
    Snapshot::take(&db, &place.ck(), &sync).assert_same(
        &Snapshot::take(&reference, &ck_ref, &sync),
        "stopped and resumed",
    );
}

#[test]
fn sigterm_between_cycles_exits_at_once_with_0() {
    let place = Place::new();
    write_sample(&place.file("a.dat"), 600, 81, CLEAN);
    let db = TestDb::new();
    let url = db.url();
    let ck = place.ck();
    let inbox = place.inbox();
    let mut args = vec!["watch", inbox.to_str().unwrap(), "--interval", "1h"];
    args.extend(shared(&url, &ck));
    let mut child = Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(&args)
        .current_dir(place.dir.path())
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let first: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (first["action"].as_str(), first["status"].as_str()),
        (Some("started"), Some("SUCCESS"))
    );
    // The first cycle is over; the process now sleeps for an hour.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        tx.send((status, err)).unwrap();
    });
    let (status, stderr) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("watch did not exit after SIGTERM");
    waiter.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.is_empty(), "no second cycle: {rest}");
}
