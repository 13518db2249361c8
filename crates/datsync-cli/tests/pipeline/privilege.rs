//! Least privilege (issue 12 item 7, fault-tests row 35's "permission" half): after
//! `init-db` by the owner, a role that has only the grants `init-db --print-sql --role R`
//! prints (USAGE on the schema; SELECT/INSERT/UPDATE/DELETE on datsync's tables, SELECT,
//! INSERT and UPDATE on the target table, the sequence) — and no CREATE anywhere — runs
//! syncs: a run's start checks datsync's tables with SELECTs and changes nothing when they
//! are up to date. When they are not, the run stops at once with a message naming what is
//! missing and `init-db`.

use crate::common::{MESSY, SERVER, TestDb, Work, counts, datsync};

/// A login role of its own, dropped (after the test's database) when the test ends.
struct Role {
    name: String,
}

impl Role {
    fn new(db: &TestDb) -> Self {
        let name = format!("{}_runner", db.name);
        db.batch(&format!("CREATE ROLE {name} LOGIN"));
        Self { name }
    }

    /// The URL of the test's database as this role (trust authentication).
    fn url(&self, db: &TestDb) -> String {
        let rest = SERVER.trim_start_matches("postgresql://root@");
        format!("postgresql://{}@{rest}/{}", self.name, db.name)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let name = self.name.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            if let Ok((client, connection)) =
                tokio_postgres::connect(&format!("{SERVER}/postgres"), tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP ROLE IF EXISTS {name}"))
                    .await;
            }
        });
    }
}

/// `datsync ARGS --database-url URL --checkpoint-dir CK --chunk-size 500 --json`.
fn run_as(work: &Work, url: &str, ck: &std::path::Path, args: &[&str]) -> crate::common::Outcome {
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
    datsync(work.path(), &all, &[])
}

/// The owner prints the SQL for the role and applies it.
fn grant(db: &TestDb, role: &Role) -> String {
    let url = db.url();
    let out = datsync(
        std::env::temp_dir().as_path(),
        &[
            "init-db",
            "--print-sql",
            "--role",
            &role.name,
            "--database-url",
            &url,
        ],
        &[],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("GRANT"), "{}", out.stdout);
    db.batch(&out.stdout);
    out.stdout
}

#[test]
fn row35_a_role_with_the_printed_grants_runs_syncs_without_create() {
    let work = Work::new(3_000, 71, MESSY);
    let (reference_db, expected, _) =
        crate::errors::reference(&work, &crate::common::fresh_sync_id());

    let db = TestDb::new();
    let role = Role::new(&db);
    db.init();
    grant(&db, &role);
    let checks = db.query(
        "SELECT has_database_privilege($1, current_database(), 'CREATE'),
                has_schema_privilege($1, 'public', 'CREATE')",
        &[&role.name],
    );
    assert!(
        !checks[0].get::<_, bool>(0),
        "the role may not create schemas"
    );
    assert!(
        !checks[0].get::<_, bool>(1),
        "the role may not create tables"
    );

    let url = role.url(&db);
    let ck = work.checkpoints("ck");
    // Killed mid-run, then continued, as the role: the checkpoint, the ledger and the locks
    // need no more than the grants.
    let killed = datsync(
        work.path(),
        &[
            "run",
            work.file(),
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--chunk-size",
            crate::common::CHUNK_SIZE,
            "--json",
        ],
        &[("DATSYNC_KILL_AT", "chunk_completed:2")],
    );
    assert!(killed.killed(), "{}", killed.describe());
    let out = run_as(&work, &url, &ck, &["run", work.file()]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["resumed"], true);
    assert_eq!(
        db.table_without(&["sync_id"]),
        reference_db.table_without(&["sync_id"]),
        "the exact table of a clean run"
    );
    let mut got = counts(&s);
    let mut want = counts(&expected);
    got.remove("sync_id");
    want.remove("sync_id");
    assert_eq!(got, want);

    // Run again: already loaded (reads only); status and list as the role.
    let again = run_as(&work, &url, &ck, &["run", work.file()]);
    assert_eq!(again.code(), Some(0), "{}", again.describe());
    assert_eq!(again.summary()["already_loaded"], true);
    let status = datsync(
        work.path(),
        &[
            "status",
            s["sync_id"].as_str().unwrap(),
            "--database-url",
            &url,
        ],
        &[],
    );
    assert_eq!(status.code(), Some(0), "{}", status.describe());
    let owner: String = db.query(
        "SELECT tableowner::text FROM pg_tables WHERE tablename = 'sync_metadata'",
        &[],
    )[0]
    .get(0);
    assert_ne!(owner, role.name, "nothing was created by the role");
}

/// datsync's tables one migration behind: the role's run stops before it starts a sync,
/// naming the migration and `init-db`; once the owner runs `init-db`, the role's run loads.
#[test]
fn row35_a_role_without_create_is_told_what_init_db_must_add() {
    let work = Work::new(500, 72, MESSY);
    let db = TestDb::new();
    let role = Role::new(&db);
    db.init();
    grant(&db, &role);
    let last = datsync::MIGRATIONS.last().unwrap();
    db.batch(&format!(
        "DELETE FROM public.datsync_migrations WHERE version = {}",
        last.version
    ));

    let url = role.url(&db);
    let ck = work.checkpoints("ck");
    let out = run_as(&work, &url, &ck, &["run", work.file()]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let error = out.summary()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("init-db"), "{error}");
    assert!(
        error.contains(&format!("migration {}", last.version)),
        "names the missing migration: {error}"
    );
    assert!(error.contains(&role.name), "names the role: {error}");
    assert!(error.contains("42501"), "{error}");
    let n: i64 = db.query("SELECT count(*) FROM public.sync_metadata", &[])[0].get(0);
    assert_eq!(n, 0, "no sync was started");

    let owner = datsync(work.path(), &["init-db", "--database-url", &db.url()], &[]);
    assert_eq!(owner.code(), Some(0), "{}", owner.describe());
    let out = run_as(&work, &url, &ck, &["run", work.file()]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert_eq!(out.summary()["status"], "PARTIAL_SUCCESS");
}

/// The drivers of a test database: key, name, transporter and the order they were written by.
fn drivers(db: &TestDb) -> Vec<String> {
    db.query(
        "SELECT concat_ws('|', nik, nama, transporter, row_version, source_line)
           FROM public.drivers ORDER BY nik",
        &[],
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// A role allowed one connection: a run's loader cannot open its second connection, where a
/// chunk's derived tables are upserted beside its transaction; it says so once and upserts
/// them in each chunk's transaction instead — the target table and `drivers` are those of the
/// owner's run, which had both connections.
#[test]
fn with_one_connection_allowed_the_derived_tables_load_in_each_chunks_transaction() {
    let work = Work::new(3_000, 73, MESSY);
    let reference = TestDb::new();
    reference.init();
    let ck = work.checkpoints("ck_owner");
    let owner = run_as(&work, &reference.url(), &ck, &["run", work.file()]);
    assert!(
        !owner.stderr.contains("no second connection"),
        "{}",
        owner.describe()
    );

    let db = TestDb::new();
    let role = Role::new(&db);
    db.batch(&format!("ALTER ROLE {} CONNECTION LIMIT 1", role.name));
    db.init();
    grant(&db, &role);
    let ck = work.checkpoints("ck_role");
    let out = run_as(&work, &role.url(&db), &ck, &["run", work.file()]);
    assert_eq!(out.code(), owner.code(), "{}", out.describe());
    assert_eq!(
        out.stderr
            .matches("no second connection for the derived tables")
            .count(),
        1,
        "said once: {}",
        out.describe()
    );
    assert_eq!(
        db.table_without(&["sync_id"]),
        reference.table_without(&["sync_id"])
    );
    let want = drivers(&reference);
    assert!(!want.is_empty());
    assert_eq!(drivers(&db), want);
}
