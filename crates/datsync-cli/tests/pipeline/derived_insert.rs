//! A chunk's derived rows inserted as they are (issue 14): when the client picked them
//! (`derived_pick.rs`) and the derived table holds none of their keys, a plain `INSERT`
//! writes them instead of the upsert. What must hold is that the table ends as the upsert
//! would leave it, and that no datsync writer fails an insert on a key (PostgreSQL would log
//! the key in the error's DETAIL): the derived writers take turns under a lock of their own,
//! so a new driver named by two chunks in flight is inserted by one and upserted by the
//! other; a writer outside datsync inserting a key after the look-up makes the insert fail,
//! roll back and upsert instead, newest wins; and a table whose columns are not datsync's
//! types (an adopted `varchar`, a `timestamp` without time zone, an `integer` line) takes
//! the insert, which casts them as the upsert does.
//!
//! Replay with `DATSYNC_DERIVED_SEED=<seed printed by the test>`.

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use crate::common::{Outcome, TestDb};
use crate::derived::{
    DerivedLog, LOADER_DEBUG, chunks_of_new_drivers, full_drivers, rule_with_stored, run_args,
    run_logging_derived, seed,
};

/// The drivers as stored, values and bookkeeping, bytewise by NIK.
const DRIVERS: &str = "SELECT nik::text, nama::text, transporter, row_version, sync_seq,
                              source_line::bigint
                         FROM drivers ORDER BY nik::text COLLATE \"C\"";

/// The loader's message when an insert met a key inserted since its look-up.
const KEY_TAKEN: &str = "a unique key of the derived rows was taken since the look-up";

/// `datsync run` of `path` in chunks of 500 with `extra` arguments and `env`, in the
/// background, the loader's debug log on.
fn spawn_run(
    db: &TestDb,
    dir: &std::path::Path,
    path: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(run_args(db, dir, path, "500", None))
        .args(extra)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(LOADER_DEBUG.0, LOADER_DEBUG.1)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A finished child's outcome.
fn finished(child: Child) -> Outcome {
    let out = child.wait_with_output().unwrap();
    Outcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits until `done(db)`, the run still going.
fn wait_until(db: &TestDb, child: &mut Child, what: &str, done: impl Fn(&TestDb) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(db) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {what}"
        );
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A finished child's outcome: it succeeded with no derived failure.
fn succeeded(child: Child, seed: u64) -> Outcome {
    let out = finished(child);
    assert_eq!(out.code(), Some(0), "seed {seed}: {}", out.describe());
    assert_eq!(out.summary()["derived_failed"], 0, "{}", out.describe());
    out
}

/// Another transaction — not datsync's, so not under its writers' lock — inserts one of the
/// first chunk's drivers, newer than the file, and commits only once the insert of that
/// chunk's drivers waits for it: the insert fails on the key, is rolled back to its
/// savepoint, and the chunk's drivers are upserted — the stored driver kept (newer), the
/// others inserted. The other chunks, naming new drivers only, are inserted. The table is
/// the rule over the loaded rows, but for the driver stored; the log never names the key.
#[test]
fn a_driver_inserted_by_another_writer_after_the_look_up_sends_its_chunk_to_the_upsert() {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let (text, picked) = chunks_of_new_drivers(seed);
    let taken = picked[0].iter().nth(1).unwrap().clone();
    let path = dir.path().join("ZTDWR_20250128.dat");
    std::fs::write(&path, text).unwrap();
    let db = TestDb::new();
    db.init();
    let other = db.session();
    other.query("BEGIN", &[]);
    other.query(
        "INSERT INTO drivers (id_karyawan, nik, nama, transporter, row_version, sync_seq,
                              source_line, updated_at)
         VALUES ($1, $1, 'NEWER', 'T9', '2099-01-01 00:00:00', 0, 1, now())",
        &[&taken],
    );
    let mut child = spawn_run(&db, dir.path(), &path, &[], &[]);
    wait_until(&db, &mut child, "the insert into drivers waited", |db| {
        let n: i64 = db.query(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'
                AND query LIKE 'INSERT INTO \"public\".\"drivers\"%'",
            &[],
        )[0]
        .get(0);
        n > 0
    });
    other.query("COMMIT", &[]);
    let out = succeeded(child, seed);
    let taken_lines = out.stderr.lines().filter(|l| l.contains(KEY_TAKEN)).count();
    assert_eq!(taken_lines, 1, "seed {seed}: {}", out.stderr);
    // The server's DETAIL names the key; the log says why without it.
    assert!(
        !out.stderr.contains(taken.as_str()),
        "seed {seed}: {}",
        out.stderr
    );
    assert_eq!(
        DerivedLog::of(&out.stderr),
        DerivedLog {
            picked: 3,
            inserted: 2,
            staged: 0
        },
        "seed {seed}"
    );
    let table = full_drivers(&db, DRIVERS);
    assert_eq!(table, rule_with_stored(&db, "", &taken), "seed {seed}");
}

/// Three chunks naming the same ~60 new drivers, loaded by three loaders (`--jobs 3`) whose
/// derived writes the test holds back with the writers' lock until all three wait for it:
/// released, one inserts the drivers, the two after it find them stored and upsert — no
/// insert ever meets a key another loader inserted. The table is the rule's.
#[test]
fn chunks_in_flight_naming_the_same_new_drivers_take_turns_and_never_fail_an_insert() {
    const NAMES: [&str; 4] = ["BUDI", "SITI", "RENATA", "-"];
    let seed = seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("{}\n", crate::derived::HEADER);
    for i in 0..1_500 {
        let _ = writeln!(
            text,
            "SPB{i:05}|33{:05}|{}|T{}|B 1234 XY|20250128|101500|42,5|120|2025012{}|0{}0000",
            rng.random_range(0..60),
            NAMES[rng.random_range(0..NAMES.len())],
            rng.random_range(100..103),
            rng.random_range(8..10),
            rng.random_range(7..10),
        );
    }
    let path = dir.path().join("ZTDWR_20250128.dat");
    std::fs::write(&path, text).unwrap();
    let db = TestDb::new();
    db.init();
    let lock = db.session();
    lock.query(
        "SELECT pg_advisory_lock(hashtext('\"public\".\"drivers\"'), -2)",
        &[],
    );
    let mut child = spawn_run(&db, dir.path(), &path, &["--jobs", "3"], &[]);
    wait_until(&db, &mut child, "three derived writers waited", |db| {
        // The writers' lock: (hashtext(table), -2), -2 read as an oid.
        let n: i64 = db.query(
            "SELECT count(*) FROM pg_locks
              WHERE locktype = 'advisory' AND NOT granted AND objsubid = 2
                AND objid = 4294967294
                AND database = (SELECT oid FROM pg_database
                                 WHERE datname = current_database())",
            &[],
        )[0]
        .get(0);
        n == 3
    });
    lock.query(
        "SELECT pg_advisory_unlock(hashtext('\"public\".\"drivers\"'), -2)",
        &[],
    );
    let out = succeeded(child, seed);
    assert!(
        !out.stderr.contains(KEY_TAKEN),
        "seed {seed}: {}",
        out.stderr
    );
    assert_eq!(
        DerivedLog::of(&out.stderr),
        DerivedLog {
            picked: 3,
            inserted: 1,
            staged: 0
        },
        "seed {seed}"
    );
    let table = full_drivers(&db, DRIVERS);
    assert_eq!(table, rule_with_stored(&db, "", ""), "seed {seed}");
}

/// A `drivers` table whose columns are not of the types datsync writes — an adopted
/// `varchar(100)` name or `varchar(30)` key, an `updated_at` without time zone, an `integer`
/// line — takes the insert of new drivers, which casts them as the upsert does. A key the
/// look-up cannot probe as the unique index compares it — in another collation, or
/// `char(20)`, whose trailing blanks compare otherwise — and a database whose transactions
/// read at `REPEATABLE READ` (the look-up could miss what the writer before it committed)
/// take the upsert, as before. Every table is the rule's.
#[test]
fn a_drivers_table_of_other_column_types_takes_the_insert_or_the_upsert_as_it_can() {
    const FORMS: [(&str, Option<&str>, usize); 8] = [
        ("as made", None, 3),
        (
            "varchar name",
            Some("ALTER TABLE drivers ALTER COLUMN nama TYPE varchar(100)"),
            3,
        ),
        (
            "varchar key",
            Some("ALTER TABLE drivers ALTER COLUMN nik TYPE varchar(30)"),
            3,
        ),
        (
            "timestamp without time zone",
            Some("ALTER TABLE drivers ALTER COLUMN updated_at TYPE timestamp"),
            3,
        ),
        (
            "integer line",
            Some("ALTER TABLE drivers ALTER COLUMN source_line TYPE integer"),
            3,
        ),
        (
            "key in the C collation",
            Some("ALTER TABLE drivers ALTER COLUMN nik TYPE text COLLATE \"C\""),
            0,
        ),
        (
            "char(20) key",
            Some("ALTER TABLE drivers ALTER COLUMN nik TYPE char(20)"),
            0,
        ),
        (
            "repeatable read",
            Some(
                "DO $$ BEGIN EXECUTE format(
                   'ALTER DATABASE %I SET default_transaction_isolation = %L',
                   current_database(), 'repeatable read'); END $$",
            ),
            0,
        ),
    ];
    let seed = seed();
    let (text, _) = chunks_of_new_drivers(seed);
    for (form, alter, inserted) in FORMS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ZTDWR_20250128.dat");
        std::fs::write(&path, &text).unwrap();
        let db = TestDb::new();
        db.init();
        if let Some(sql) = alter {
            db.batch(sql);
        }
        let log = run_logging_derived(&db, dir.path(), &path, "500", None);
        assert_eq!(
            log,
            DerivedLog {
                picked: 3,
                inserted,
                staged: 0
            },
            "seed {seed}: {form}"
        );
        let table = full_drivers(&db, DRIVERS);
        assert_eq!(table, rule_with_stored(&db, "", ""), "seed {seed}: {form}");
        // An hour's leeway above: a `timestamp` written in a repeated autumn hour of a
        // server's daylight-saving zone reads back an hour later.
        let bad: i64 = db.query(
            "SELECT count(*) FROM drivers WHERE id_karyawan IS DISTINCT FROM nik::text
                OR updated_at IS NULL
                OR updated_at NOT BETWEEN now() - interval '1 hour' AND now() + interval '1 hour'",
            &[],
        )[0]
        .get(0);
        assert_eq!(bad, 0, "seed {seed}: {form}");
    }
}

/// A look-up that fails — here because `drivers.nik` became `bigint` while the run was
/// stopped after its first chunk (`init-db` refuses such a table; an owner changed it under
/// the run) — is rolled back to its savepoint, and the upsert decides, as it did before there
/// was a look-up: it fails too (a text key does not go into a `bigint` column) and is
/// counted, and every chunk's own rows are loaded. The look-up is not tried again for the
/// run's last chunk.
#[test]
fn a_look_up_that_fails_is_rolled_back_and_the_upsert_decides() {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let (text, picked) = chunks_of_new_drivers(seed);
    let path = dir.path().join("ZTDWR_20250128.dat");
    std::fs::write(&path, text).unwrap();
    let db = TestDb::new();
    db.init();
    let stop = [("DATSYNC_SIGSTOP_AT", "chunk_committed:1")];
    let mut child = spawn_run(&db, dir.path(), &path, &[], &stop);
    let pid = child.id();
    crate::changing::wait_stopped(pid, &mut child);
    db.batch("ALTER TABLE drivers ALTER COLUMN nik TYPE bigint USING nik::bigint");
    let cont = Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(cont.success());
    let out = finished(child);
    assert_eq!(out.code(), Some(0), "seed {seed}: {}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "SUCCESS", "{s}");
    assert_eq!(
        s["derived_failed"], 2,
        "seed {seed}: the last two chunks' upserts counted: {s}"
    );
    let loaded: i64 = db.query("SELECT count(*) FROM transport_documents", &[])[0].get(0);
    assert_eq!(loaded, 1_500, "seed {seed}");
    let drivers: i64 = db.query("SELECT count(*) FROM drivers", &[])[0].get(0);
    assert_eq!(
        usize::try_from(drivers).unwrap(),
        picked[0].len(),
        "seed {seed}: the first chunk's drivers only"
    );
    let failed_lookups = out
        .stderr
        .lines()
        .filter(|l| l.contains("the derived rows' keys could not be looked up"))
        .count();
    assert_eq!(failed_lookups, 1, "seed {seed}: {}", out.stderr);
    assert_eq!(DerivedLog::of(&out.stderr).inserted, 1, "seed {seed}");
}
