//! `datsync demo` as a newcomer runs it: against a database of its own on the local server
//! (the run is really killed and resumed), and on a machine with no database and no
//! PostgreSQL binaries (it says what to install).

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use serde_json::Value;

const ADMIN: &str = "host=127.0.0.1 port=5432 user=root dbname=postgres";

/// A database of the test's own, dropped at the end.
struct TestDb {
    name: String,
    rt: tokio::runtime::Runtime,
}

impl TestDb {
    fn create(tag: &str) -> Self {
        let name = format!("datsync_demo_test_{tag}_{}", std::process::id());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = Self { name, rt };
        db.admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
        db.admin(&format!("CREATE DATABASE {}", db.name));
        db
    }

    fn admin(&self, sql: &str) {
        self.rt.block_on(async {
            let settings = datsync::PgSettings::from_connection_string(ADMIN).unwrap();
            let client = datsync::connect(&settings).await.unwrap();
            client.batch_execute(sql).await.unwrap();
        });
    }

    fn url(&self) -> String {
        format!("postgresql://root@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// `datsync demo ARGS` with its temporary files in `tmp` and no database in the environment.
fn demo(tmp: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_datsync"))
        .arg("demo")
        .args(args)
        .env("TMPDIR", tmp)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("POSTGRES_CONNECTION_STRING")
        .env_remove("DB_HOST")
        .env_remove("DATSYNC_KILL_AT")
        .output()
        .unwrap()
}

#[test]
fn demo_is_killed_resumes_and_reports() {
    let db = TestDb::create("text");
    let tmp = tempfile::tempdir().unwrap();
    let out = demo(tmp.path(), &["--rows", "3000", "--database-url", &db.url()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("interrupted after 12 of 20 chunks (SIGKILL)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("12 chunks already committed were skipped"),
        "{stdout}"
    );
    // 1% invalid and ragged rows are rejected: a partial success, every chunk completed.
    assert!(
        stdout.contains("status     PARTIAL_SUCCESS (20 of 20 chunks completed; partial because"),
        "{stdout}"
    );
    assert!(stdout.contains("rows       3000 read = "), "{stdout}");
    // The resumed table is compared with an uninterrupted load into an empty table.
    assert!(stdout.contains("\nidentical: "), "{stdout}");
    assert!(!stdout.contains("DIFFERENT"), "{stdout}");
    assert!(
        stdout.contains("the uninterrupted load of the same file into an empty table took"),
        "{stdout}"
    );
    // The quirky sample's value warnings are shown, with the command that lists them all.
    assert!(stdout.contains("values not loaded as written"), "{stdout}");
    assert!(stdout.contains("--kind warning"), "{stdout}");
}

#[test]
fn demo_json_counts_add_up() {
    let db = TestDb::create("json");
    let tmp = tempfile::tempdir().unwrap();
    let out = demo(
        tmp.path(),
        &["--rows", "1000", "--json", "--database-url", &db.url()],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["resume"];
    assert_eq!(v["chunks"], 20);
    assert_eq!(v["killed_after_chunks"], 12);
    assert_eq!(r["resumed"], true);
    assert_eq!(r["chunks_skipped_on_resume"], 12);
    assert_eq!(r["chunks_completed"], r["chunks_total"]);
    assert_eq!(r["rows_read"], 1000);
    let parts = [
        "rows_loaded",
        "rows_rejected",
        "rows_superseded",
        "rows_pending",
    ]
    .iter()
    .map(|k| r[k].as_u64().unwrap())
    .sum::<u64>();
    assert_eq!(parts, 1000);
    // An empty table: every key inserted once, none updated, though keys recur across chunks.
    assert_eq!(v["table_rows"], r["records_inserted"]);
    assert_eq!(r["records_updated"], 0);
    assert!(r["rows_superseded"].as_u64().unwrap() > 0, "{r}");
    // The resumed table is the uninterrupted one, row for row, and so are the counts.
    assert_eq!(v["identical"], true, "{v}");
    assert_eq!(v["resumed_checksum"], v["reference_checksum"]);
    assert_eq!(v["resumed_checksum"]["rows"], v["table_rows"]);
    let reference = &v["reference"];
    assert_eq!(reference["resumed"], false);
    for k in [
        "rows_read",
        "rows_loaded",
        "rows_rejected",
        "rows_superseded",
        "records_inserted",
        "records_updated",
        "value_warnings",
    ] {
        assert_eq!(r[k], reference[k], "{k}");
    }
    // The sample has unreadable optional values: warned about, the first ones shown.
    assert!(r["value_warnings"].as_u64().unwrap() > 0, "{r}");
    let warnings = v["first_warnings"].as_array().unwrap();
    assert!(!warnings.is_empty());
    assert!(
        warnings
            .iter()
            .all(|w| w["kind"] == "warning" && w["line"].as_u64().unwrap() > 1)
    );
    assert_eq!(v["first_rows"].as_array().unwrap().len(), 5);
    let files = std::path::Path::new(v["files_dir"].as_str().unwrap());
    assert!(files.starts_with(tmp.path()), "{}", files.display());
    assert!(files.join("ZTDWR_DEMO.dat").is_file());
}

#[test]
fn no_database_and_no_binaries_says_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    // Nothing listens on port 1; the search path holds no PostgreSQL binaries.
    let out = demo(
        tmp.path(),
        &[
            "--rows",
            "1000",
            "--local-port",
            "1",
            "--pg-bin-path",
            empty.path().to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no PostgreSQL server binaries found"),
        "{stderr}"
    );
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
    assert!(stderr.contains("--database-url"), "{stderr}");
    assert!(out.stdout.is_empty());
}
