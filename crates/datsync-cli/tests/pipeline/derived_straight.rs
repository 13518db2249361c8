//! A chunk's derived rows COPYed straight into the derived table (issue 14): when the client
//! picked them (`derived_pick.rs`) and the table holds none of their keys, they go in by one
//! binary COPY instead of the temporary table and the upsert. What must hold is that the
//! table ends as the upsert would leave it, whatever meets the COPY: a key another
//! transaction inserts after the look-up (the COPY waits for it, fails on the key and the
//! chunk's drivers are upserted, newest wins), or a table that cannot take the binary rows
//! as they are (an adopted `varchar` column, a `timestamp` without time zone, an `integer`
//! where datsync writes `bigint`: the upsert casts them, as before).
//!
//! Replay with `DATSYNC_DERIVED_SEED=<seed printed by the test>`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Outcome, TestDb};
use crate::derived::{
    DerivedLog, LOADER_DEBUG, chunks_of_new_drivers, full_drivers, rule_with_stored, run_args,
    run_logging_derived, seed,
};

/// The drivers as stored, values and bookkeeping, bytewise by NIK.
const DRIVERS: &str =
    "SELECT nik, nama::text, transporter, row_version, sync_seq, source_line::bigint
                         FROM drivers ORDER BY nik COLLATE \"C\"";

/// Sessions of the test database waiting for a lock while they COPY into `drivers`.
fn copies_waiting(db: &TestDb) -> i64 {
    db.query(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'
            AND query LIKE 'COPY \"public\".\"drivers\"%'",
        &[],
    )[0]
    .get(0)
}

/// Another transaction inserts one of the first chunk's drivers, newer than the file, and
/// commits only once the straight COPY of that chunk's drivers waits for it: the COPY fails
/// on the key, is rolled back to its savepoint, and the chunk's drivers are upserted — the
/// stored driver kept (newer), the others inserted. The other chunks, naming new drivers
/// only, go straight. The table is the rule over the loaded rows, but for the driver stored.
#[test]
fn a_driver_inserted_after_the_look_up_sends_its_chunk_to_the_upsert() {
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(run_args(&db, dir.path(), &path, "500", None))
        .current_dir(dir.path())
        .env_clear()
        .env(LOADER_DEBUG.0, LOADER_DEBUG.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while copies_waiting(&db) == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "seed {seed}: the run ended before its COPY into drivers waited"
        );
        assert!(
            Instant::now() < deadline,
            "seed {seed}: no COPY into drivers waited for the other transaction"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    other.query("COMMIT", &[]);
    let out = child.wait_with_output().unwrap();
    let out = Outcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(out.code(), Some(0), "seed {seed}: {}", out.describe());
    assert_eq!(out.summary()["derived_failed"], 0, "{}", out.describe());
    let rolled_back = out
        .stderr
        .lines()
        .filter(|l| l.contains("the straight COPY of the derived rows was rolled back"))
        .count();
    assert_eq!(rolled_back, 1, "seed {seed}: {}", out.stderr);
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
            straight: 2,
            staged: 0
        },
        "seed {seed}"
    );
    let table = full_drivers(&db, DRIVERS);
    assert_eq!(table, rule_with_stored(&db, "", &taken), "seed {seed}");
}

/// A `drivers` table whose columns are not of the types the binary rows carry — an adopted
/// `varchar(100)` name, an `updated_at` without time zone, an `integer` line — cannot take
/// the straight COPY: every chunk's drivers are upserted (which casts them), and the table
/// is the rule's. The table as `init-db` makes it, for comparison, takes every chunk
/// straight.
#[test]
fn a_drivers_table_of_other_column_types_is_upserted_as_before() {
    const FORMS: [(&str, Option<&str>); 4] = [
        ("as made", None),
        (
            "varchar name",
            Some("ALTER TABLE drivers ALTER COLUMN nama TYPE varchar(100)"),
        ),
        (
            "timestamp without time zone",
            Some("ALTER TABLE drivers ALTER COLUMN updated_at TYPE timestamp"),
        ),
        (
            "integer line",
            Some("ALTER TABLE drivers ALTER COLUMN source_line TYPE integer"),
        ),
    ];
    let seed = seed();
    let (text, _) = chunks_of_new_drivers(seed);
    for (form, alter) in FORMS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ZTDWR_20250128.dat");
        std::fs::write(&path, &text).unwrap();
        let db = TestDb::new();
        db.init();
        if let Some(sql) = alter {
            db.batch(sql);
        }
        let log = run_logging_derived(&db, dir.path(), &path, "500", None);
        let straight = if alter.is_some() { 0 } else { 3 };
        assert_eq!(
            log,
            DerivedLog {
                picked: 3,
                straight,
                staged: 0
            },
            "seed {seed}: {form}"
        );
        let table = full_drivers(&db, DRIVERS);
        assert_eq!(table, rule_with_stored(&db, "", ""), "seed {seed}: {form}");
        let bad: i64 = db.query(
            "SELECT count(*) FROM drivers WHERE id_karyawan IS DISTINCT FROM nik
                OR updated_at IS NULL
                OR updated_at NOT BETWEEN now() - interval '1 hour' AND now()",
            &[],
        )[0]
        .get(0);
        assert_eq!(bad, 0, "seed {seed}: {form}");
    }
}
