//! `datsync init-db --adopt`: taking over the legacy loader's database (issue 20), as a new
//! user would: the legacy layout of `ztdwr.md` (text, numeric, an `integer`
//! `konfirmasi_counter`, naive timestamps, `sync_id varchar(50)`, `source_file varchar(255)`,
//! a `sync_metadata` with integer counts and its own status spellings) filled with legacy
//! rows; then files whose keys partly overlap them.

use std::fmt::Write as _;
use std::path::Path;

use datsync::{ColumnType, Profile, connect};
use serde_json::Value;

use crate::harness::{TestDb, datsync, json, rt};

/// `created_at` of every legacy row.
const LEGACY_CREATED: &str = "2024-03-01 08:00:00";

/// The legacy loader's tables, with rows `L001` … `L005` and two `sync_metadata` rows.
fn legacy_sql() -> String {
    let profile = Profile::ztdwr();
    let cols: Vec<String> = profile
        .columns
        .iter()
        .map(|c| {
            let ty = match c.kind {
                ColumnType::Text => "text",
                ColumnType::Decimal { .. } | ColumnType::Numeric => "numeric",
                ColumnType::Integer => "integer",
                ColumnType::Boolean => "boolean",
                ColumnType::Date => "date",
                ColumnType::Time => "time",
                ColumnType::Timestamp | ColumnType::DateTimestamp => "timestamp",
                ColumnType::TimestampTz => "timestamptz",
                ColumnType::Float => "double precision",
            };
            let pk = if profile.is_key(&c.target) {
                " PRIMARY KEY"
            } else {
                ""
            };
            format!("\"{}\" {ty}{pk}", c.target)
        })
        .collect();
    let mut sql = format!(
        "CREATE TABLE transport_documents ({},
           created_at timestamp, updated_at timestamp,
           sync_id varchar(50), source_file varchar(255));
         CREATE TABLE sync_metadata (
           sync_id varchar(50) PRIMARY KEY, file_name varchar(255), file_path varchar(500),
           file_size_bytes bigint, status varchar(20), records_total integer,
           records_inserted integer, records_updated integer, records_failed integer,
           error_message text, validation_errors_count integer, validation_errors jsonb,
           started_at timestamp, completed_at timestamp, duration_seconds numeric(10,2),
           updated_at timestamp);
         INSERT INTO sync_metadata VALUES
           ('ztdwr_20240301_080000', 'ZTDWR_20240301.dat', '/tmp/ZTDWR_20240301.dat', 1000,
            'success', 5, 5, 0, 0, NULL, 0, NULL, '2024-03-01 08:00:00',
            '2024-03-01 08:00:04', 4.25, '2024-03-01 08:00:04'),
           ('ztdwr_20240302_080000', 'ZTDWR_20240302.dat', '/tmp/ZTDWR_20240302.dat', 10,
            'Failed', 3, 0, 0, 3, 'boom', 3, NULL, '2024-03-02 08:00:00',
            '2024-03-02 08:00:01', 1.0, '2024-03-02 08:00:01');
         CREATE TABLE drivers (
           id_karyawan varchar(30), nik varchar(30) PRIMARY KEY, nama varchar(100),
           email varchar(100), transporter varchar(50));
         INSERT INTO drivers VALUES
           ('legacy-nik-1', 'legacy-nik-1', 'LEGACY ONE', 'one@example.com', 'T1');",
        cols.join(", ")
    );
    for i in 1..=5 {
        let _ = write!(
            sql,
            "INSERT INTO transport_documents (surat_pengantar_barang, nik_supir, no_polisi,
               bbm_actual, kilometer_actual, konfirmasi_counter, waktu_timbang_terima,
               created_at, updated_at, sync_id, source_file)
             VALUES ('L00{i}', 'legacy-nik-{i}', 'B {i}', {i}.5, 10{i}, {i},
                     '2024-03-01 07:00:00', '{LEGACY_CREATED}', '{LEGACY_CREATED}',
                     'ztdwr_20240301_080000', 'ZTDWR_20240301.dat');"
        );
    }
    sql
}

const HEADER: &str = "SURAT_PENGANTAR_BRG|NIK_SUPIR|NO_POLISI|TANGGAL_TIMBANG|JAM_TIMBANG|\
                      BBM_ACTUAL|KILOMETER_ACTUAL|KONFIRMASI_COUNTER";

/// A file of `(key, nik, counter)` rows, written in `dir`.
fn file(dir: &Path, name: &str, rows: &[(&str, &str, &str)]) -> String {
    let mut text = format!("{HEADER}\n");
    for (key, nik, counter) in rows {
        let _ = writeln!(text, "{key}|{nik}|B 1 XY|20251016|101500|12,5|40|{counter}");
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn query(db: &TestDb, sql: &str) -> Vec<tokio_postgres::Row> {
    rt().block_on(async {
        let c = connect(&db.settings()).await.unwrap();
        c.query(sql, &[]).await.unwrap()
    })
}

#[test]
fn the_legacy_database_is_adopted_and_files_replace_legacy_rows() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    adopt_legacy(&db, cwd.path(), &url);
    // File A overlaps L002 and L003; N002's counter does not fit in integer.
    let a = file(
        cwd.path(),
        "ZTDWR_20251016.dat",
        &[
            ("L002", "a-nik-2", "7"),
            ("L003", "a-nik-3", "8"),
            ("N001", "a-nik-n1", "1"),
            ("N002", "a-nik-n2", "99999999999"),
            ("N003", "a-nik-n3", "3"),
        ],
    );
    let ck = cwd.path().join("ck");
    let ck = ck.to_str().unwrap();
    let run = |path: &str| {
        json(&datsync(
            cwd.path(),
            &[
                "run",
                path,
                "--database-url",
                &url,
                "--checkpoint-dir",
                ck,
                "--json",
            ],
            &[],
        ))
    };
    let ra = run(&a);
    assert_eq!(ra["status"], "SUCCESS", "{ra}");
    assert_eq!(ra["value_warnings"], 1, "{ra}");
    // File B overlaps L003 again (and file A's N003).
    let b = file(
        cwd.path(),
        "ZTDWR_20251017.dat",
        &[
            ("L003", "b-nik-3", "9"),
            ("N003", "b-nik-n3", "33"),
            ("N004", "b-nik-n4", "4"),
        ],
    );
    let rb = run(&b);
    assert_eq!(rb["status"], "SUCCESS", "{rb}");

    // The table: the files' truth, plus the untouched legacy rows.
    let rows = query(
        &db,
        "SELECT surat_pengantar_barang, nik_supir, konfirmasi_counter,
                to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'), sync_id, source_file
           FROM transport_documents ORDER BY 1",
    );
    let got: Vec<(String, String, Option<i32>, String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    let (sa, sb) = (
        ra["sync_id"].as_str().unwrap(),
        rb["sync_id"].as_str().unwrap(),
    );
    let legacy = |i: i32| {
        (
            format!("L00{i}"),
            format!("legacy-nik-{i}"),
            Some(i),
            LEGACY_CREATED.to_owned(),
            "ztdwr_20240301_080000".to_owned(),
            "ZTDWR_20240301.dat".to_owned(),
        )
    };
    let keys: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        keys,
        [
            "L001", "L002", "L003", "L004", "L005", "N001", "N002", "N003", "N004"
        ]
    );
    assert_eq!(got[0], legacy(1));
    assert_eq!(got[3], legacy(4));
    assert_eq!(got[4], legacy(5));
    // Replaced legacy rows: the file's values, the legacy created_at kept.
    assert_eq!(
        (&got[1].1, got[1].2, got[1].3.as_str(), got[1].4.as_str()),
        (&"a-nik-2".to_owned(), Some(7), LEGACY_CREATED, sa)
    );
    assert_eq!(
        (&got[2].1, got[2].2, got[2].3.as_str(), got[2].4.as_str()),
        (&"b-nik-3".to_owned(), Some(9), LEGACY_CREATED, sb)
    );
    assert_eq!((got[6].1.as_str(), got[6].2), ("a-nik-n2", None));
    assert_eq!(
        (got[7].1.as_str(), got[7].2, got[7].4.as_str()),
        ("b-nik-n3", Some(33), sb)
    );
    assert_eq!(got[7].5, "ZTDWR_20251017.dat");

    legacy_syncs_are_listed(cwd.path(), &url, sa);
}

/// The legacy tables made; `init-db` refuses them, `--print-sql` shows the SQL, `--adopt`
/// takes them over without rewriting or widening anything.
fn adopt_legacy(db: &TestDb, cwd: &Path, url: &str) {
    let url = url.to_owned();
    rt().block_on(async {
        let c = connect(&db.settings()).await.unwrap();
        c.batch_execute(&legacy_sql()).await.unwrap();
    });
    let file_node = |db: &TestDb| -> u32 {
        query(
            db,
            "SELECT relfilenode FROM pg_class WHERE relname = 'transport_documents'",
        )[0]
        .get::<_, u32>(0)
    };
    let before = file_node(db);

    // Without --adopt: refused, with the exact SQL --adopt would run.
    let refused = datsync(cwd, &["init-db", "--database-url", &url], &[]);
    assert_ne!(refused.0, 0, "{}", refused.1);
    for needle in [
        "init-db --adopt",
        "column `sync_seq` (bigint) is missing",
        "ADD COLUMN IF NOT EXISTS \"sync_seq\" bigint",
        "ADD COLUMN IF NOT EXISTS \"source_line\" bigint",
    ] {
        assert!(refused.2.contains(needle), "{needle} not in {}", refused.2);
    }
    // --print-sql changes nothing and names every column whose type differs.
    let printed = datsync(
        cwd,
        &[
            "init-db",
            "--database-url",
            &url,
            "--print-sql",
            "--role",
            "loader",
        ],
        &[],
    );
    assert_eq!(printed.0, 0, "{}", printed.2);
    for needle in [
        "-- column konfirmasi_counter is integer (datsync creates bigint)",
        "-- column sync_id is character varying(50)",
        "-- column created_at is timestamp without time zone",
        "ADD COLUMN IF NOT EXISTS \"source_line\" bigint",
        "SET LOCAL lock_timeout",
        "GRANT SELECT, INSERT, UPDATE ON \"public\".\"transport_documents\" TO \"loader\";",
        "GRANT USAGE, SELECT ON SEQUENCE \"public\".datsync_sync_seq TO \"loader\";",
        "-- derived table \"public\".\"drivers\"",
        "ADD COLUMN IF NOT EXISTS \"row_version\" text COLLATE \"C\"",
        "GRANT SELECT, INSERT, UPDATE ON \"public\".\"drivers\" TO \"loader\";",
    ] {
        assert!(printed.1.contains(needle), "{needle} not in {}", printed.1);
    }
    let has_seq = |db: &TestDb| -> bool {
        query(
            db,
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_name = 'transport_documents' AND column_name = 'sync_seq')",
        )[0]
        .get(0)
    };
    assert!(!has_seq(db), "--print-sql changed the table");

    let adopted = json(&datsync(
        cwd,
        &["init-db", "--database-url", &url, "--adopt", "--json"],
        &[],
    ));
    assert_eq!(adopted["target_table"], "adopted");
    legacy_driver_adopted(db, &adopted);
    let notes = adopted["column_notes"].as_array().unwrap();
    let note = |c: &str| notes.iter().find(|n| n["column"] == c).cloned();
    assert_eq!(note("konfirmasi_counter").unwrap()["found"], "integer");
    assert!(
        note("konfirmasi_counter").unwrap()["action"]
            .as_str()
            .unwrap()
            .contains("value warning")
    );
    for c in ["created_at", "updated_at", "sync_id", "source_file"] {
        assert!(note(c).is_some(), "{c} not named: {notes:?}");
    }
    assert!(has_seq(db));
    assert_eq!(file_node(db), before, "the table was rewritten");
    // Nothing widened.
    let ty = query(
        db,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
          WHERE attrelid = 'transport_documents'::regclass
            AND attname IN ('konfirmasi_counter', 'sync_id') ORDER BY attname",
    );
    let types: Vec<String> = ty.iter().map(|r| r.get(0)).collect();
    assert_eq!(types, ["integer", "character varying(50)"]);
    // A second --adopt, and a plain init-db, find nothing to do.
    let again = json(&datsync(
        cwd,
        &["init-db", "--database-url", &url, "--adopt", "--json"],
        &[],
    ));
    assert_eq!(again["target_table"], "checked");
    let plain = json(&datsync(
        cwd,
        &["init-db", "--database-url", &url, "--json"],
        &[],
    ));
    assert_eq!(plain["changed"], false);
}

/// The legacy `drivers` table was adopted: its driver, email and narrow columns are kept.
fn legacy_driver_adopted(db: &TestDb, adopted: &Value) {
    assert_eq!(
        adopted["derived_tables"],
        serde_json::json!([{ "table": "drivers", "action": "adopted" }])
    );
    let driver = query(
        db,
        "SELECT nama, email, format_type(a.atttypid, a.atttypmod) FROM drivers,
                pg_attribute a WHERE a.attrelid = 'drivers'::regclass AND a.attname = 'nama'",
    );
    assert_eq!(
        (
            driver[0].get::<_, String>(0),
            driver[0].get::<_, String>(1),
            driver[0].get::<_, String>(2)
        ),
        (
            "LEGACY ONE".to_owned(),
            "one@example.com".to_owned(),
            "character varying(100)".to_owned()
        )
    );
}

/// The legacy `sync_metadata` rows are listed as recorded, next to datsync's.
fn legacy_syncs_are_listed(cwd: &Path, url: &str, sa: &str) {
    // The legacy sync_metadata rows stay, listed as recorded.
    let list = json(&datsync(
        cwd,
        &["list", "--database-url", url, "--json"],
        &[],
    ));
    let syncs = list["syncs"].as_array().unwrap();
    let find = |id: &str| -> Value {
        syncs
            .iter()
            .find(|s| s["sync_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {list}"))
    };
    let old = find("ztdwr_20240301_080000");
    assert_eq!(
        (
            &old["status"],
            &old["records_total"],
            &old["records_inserted"]
        ),
        (&Value::from("success"), &Value::from(5), &Value::from(5))
    );
    let failed = find("ztdwr_20240302_080000");
    assert_eq!(
        (
            &failed["status"],
            &failed["records_failed"],
            &failed["error_message"]
        ),
        (
            &Value::from("Failed"),
            &Value::from(3),
            &Value::from("boom")
        )
    );
    assert_eq!(find(sa)["status"], "SUCCESS");
    let text = datsync(cwd, &["list", "--database-url", url], &[]);
    assert!(
        text.1.contains("ztdwr_20240301_080000") && text.1.contains("success"),
        "{}",
        text.1
    );
    let status = datsync(
        cwd,
        &[
            "status",
            "ztdwr_20240302_080000",
            "--database-url",
            url,
            "--json",
        ],
        &[],
    );
    let status = json(&status);
    assert_eq!(status["metadata"]["status"], "Failed", "{status}");
}

#[test]
fn adopt_retries_a_busy_table_then_names_the_session_holding_it() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    let runtime = rt();
    let holder = runtime.block_on(async {
        let c = connect(&db.settings()).await.unwrap();
        c.batch_execute(&legacy_sql()).await.unwrap();
        c.batch_execute(
            "SET application_name = 'legacy-report';
             BEGIN; SELECT count(*) FROM transport_documents;",
        )
        .await
        .unwrap();
        c
    });
    let pid: i32 = runtime
        .block_on(holder.query_one("SELECT pg_backend_pid()", &[]))
        .unwrap()
        .get(0);
    let busy = datsync(
        cwd.path(),
        &[
            "init-db",
            "--database-url",
            &url,
            "--adopt",
            "--lock-timeout",
            "50ms",
            "--lock-attempts",
            "3",
        ],
        &[],
    );
    assert_ne!(busy.0, 0, "{}", busy.1);
    for needle in [
        "gave up after 3 attempt(s)".to_owned(),
        format!("pid {pid}"),
        "legacy-report".to_owned(),
        "AccessShareLock".to_owned(),
        "idle in transaction".to_owned(),
        "nothing was changed".to_owned(),
    ] {
        assert!(busy.2.contains(&needle), "{needle} not in {}", busy.2);
    }
    // Nothing was changed: one transaction, rolled back.
    let seq: bool = query(
        &db,
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
           WHERE table_name = 'transport_documents' AND column_name = 'sync_seq')
            OR to_regclass('datsync_migrations') IS NOT NULL",
    )[0]
    .get(0);
    assert!(!seq);
    runtime.block_on(holder.batch_execute("COMMIT")).unwrap();
    let done = json(&datsync(
        cwd.path(),
        &[
            "init-db",
            "--database-url",
            &url,
            "--adopt",
            "--json",
            "--lock-timeout",
            "50ms",
        ],
        &[],
    ));
    assert_eq!(done["target_table"], "adopted");
}

/// Another loader's tables without datsync's columns or key (issue 18 item 3): under a
/// composite key `init-db` names the missing primary key on both columns and `--adopt` adds
/// it; in append mode it names the unique index on `(sync_id, source_line)` and `--adopt`
/// creates one (a primary key would refuse the legacy rows, whose `sync_id` is NULL). Then
/// a file loads into each, its rows beside (or over) the legacy ones.
#[test]
fn a_legacy_table_is_adopted_under_a_composite_key_and_for_appending() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let url = db.url();
    let (pairs, events) = pairs_and_events(&db, cwd);
    for (profile, needles) in [
        (
            &pairs,
            [
                "no primary key or unique index on `a`, `b` alone",
                "ALTER TABLE \"public\".\"pairs\" ADD PRIMARY KEY (\"a\", \"b\");",
            ],
        ),
        (
            &events,
            [
                "no unique index on `sync_id`, `source_line` alone",
                "CREATE UNIQUE INDEX IF NOT EXISTS \"events_datsync_append_key\" ON \
                 \"public\".\"events\" (\"sync_id\", \"source_line\");",
            ],
        ),
    ] {
        refused_then_adopted(cwd, &url, profile, &needles);
    }
    let key_of = |table: &str| -> Vec<String> {
        query(
            &db,
            &format!(
                "SELECT a.attname::text FROM pg_index i
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                  WHERE i.indrelid = '{table}'::regclass AND i.indisunique ORDER BY a.attnum"
            ),
        )
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    assert_eq!(key_of("pairs"), ["a", "b"]);
    assert_eq!(key_of("events"), ["sync_id", "source_line"]);

    let run = |profile: &Path, name: &str, text: &str| run_file(cwd, &url, profile, name, text);
    let s = run(
        &pairs,
        "pairs.csv",
        "a,b,note\nx,2,new x2\ny,2,new y2\nx,3,new x3\n",
    );
    assert_eq!(
        (
            s["records_inserted"].as_u64(),
            s["records_updated"].as_u64()
        ),
        (Some(2), Some(1)),
        "{s}"
    );
    let rows: Vec<(String, i64, String)> = query(&db, "SELECT a, b, note FROM pairs ORDER BY 1, 2")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let want = [
        ("x", 1, "legacy x1"),
        ("x", 2, "new x2"),
        ("x", 3, "new x3"),
        ("y", 2, "new y2"),
    ]
    .map(|(a, b, n)| (a.to_owned(), b, n.to_owned()));
    assert_eq!(rows, want);

    let s = run(
        &events,
        "events.csv",
        "kind,amount\nlegacy,1\nnew,2\nnew,2\n",
    );
    assert_eq!(s["records_inserted"].as_u64(), Some(3), "{s}");
    let rows: Vec<(String, Option<String>, i64)> = query(
        &db,
        "SELECT kind, amount::text, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    let want = [
        ("legacy", Some("1"), 3),
        ("legacy", None, 1),
        ("new", Some("2"), 2),
    ]
    .map(|(k, a, n)| (k.to_owned(), a.map(str::to_owned), n));
    assert_eq!(rows, want);
}

/// `init-db` refuses the table naming each of `needles`; `--adopt` takes it over; a plain
/// `init-db` then changes nothing.
fn refused_then_adopted(cwd: &Path, url: &str, profile: &Path, needles: &[&str]) {
    let p = profile.to_str().unwrap();
    let refused = datsync(
        cwd,
        &["--profile", p, "init-db", "--database-url", url],
        &[],
    );
    assert_ne!(refused.0, 0, "{}", refused.1);
    for needle in needles {
        assert!(refused.2.contains(needle), "{needle} not in {}", refused.2);
    }
    let adopted = json(&datsync(
        cwd,
        &[
            "--profile",
            p,
            "init-db",
            "--adopt",
            "--database-url",
            url,
            "--json",
        ],
        &[],
    ));
    assert_eq!(adopted["target_table"], "adopted", "{adopted}");
    // Adopted: a plain init-db now finds everything.
    let checked = json(&datsync(
        cwd,
        &["--profile", p, "init-db", "--database-url", url, "--json"],
        &[],
    ));
    assert_eq!(checked["changed"], false, "{checked}");
}

/// `datsync run` of `text` written to `name`, with `profile`; its `--json` summary.
fn run_file(cwd: &Path, url: &str, profile: &Path, name: &str, text: &str) -> Value {
    let file = cwd.join(name);
    std::fs::write(&file, text).unwrap();
    let ck = cwd.join("ck");
    json(&datsync(
        cwd,
        &[
            "--profile",
            profile.to_str().unwrap(),
            "run",
            file.to_str().unwrap(),
            "--database-url",
            url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--json",
        ],
        &[],
    ))
}

/// Another loader's `pairs` (no key) and `events` tables with rows, and the profiles that
/// load them: keyed by `(a, b)`, and in append mode.
fn pairs_and_events(db: &TestDb, cwd: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    rt().block_on(async {
        let c = connect(&db.settings()).await.unwrap();
        c.batch_execute(
            "CREATE TABLE pairs (a text, b bigint, note text);
             INSERT INTO pairs VALUES ('x', 1, 'legacy x1'), ('x', 2, 'legacy x2');
             CREATE TABLE events (kind text, amount numeric);
             INSERT INTO events VALUES ('legacy', 1), ('legacy', 1), ('legacy', NULL);",
        )
        .await
        .unwrap();
    });
    let pairs = cwd.join("pairs.toml");
    std::fs::write(
        &pairs,
        "name = \"pairs\"\ntable = \"pairs\"\nkey = [\"a\", \"b\"]\n[format]\ndelimiter = \",\"\n\
         [[columns]]\nsource = \"a\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
         [[columns]]\nsource = \"b\"\ntype = \"integer\"\nrequired = true\nnot_empty = true\n\
         [[columns]]\nsource = \"note\"\ntype = \"text\"\n",
    )
    .unwrap();
    let events = cwd.join("events.toml");
    std::fs::write(
        &events,
        "name = \"events\"\ntable = \"events\"\nmode = \"append\"\n[format]\ndelimiter = \",\"\n\
         [[columns]]\nsource = \"kind\"\ntype = \"text\"\n\
         [[columns]]\nsource = \"amount\"\ntype = \"numeric\"\n",
    )
    .unwrap();
    (pairs, events)
}
