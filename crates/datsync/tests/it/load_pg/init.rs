//! `init_db`: idempotent, concurrent-safe, quoting, and existing tables checked.

use std::path::Path;

use datsync::{Loader, PgError, Profile, init_db};

use super::db::with_db;
use super::docs::{docs_profile, load, register};
use super::typed_gen::generate;

#[tokio::test]
async fn init_db_is_idempotent_and_concurrent_safe() {
    with_db(|db| async move {
        let profile = docs_profile();
        let (mut a, mut b) = (db.client().await, db.client().await);
        let (ra, rb) = tokio::join!(init_db(&mut a, &profile), init_db(&mut b, &profile));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        // Exactly one of the two applied the migrations and created the table.
        assert_eq!(ra.applied.len() + rb.applied.len(), datsync::MIGRATIONS.len());
        assert!(ra.target_created ^ rb.target_created);
        let again = init_db(&mut a, &profile).await.unwrap();
        assert!(again.applied.is_empty() && !again.target_created);
        let versions: Vec<i32> = a
            .query("SELECT version FROM datsync_migrations ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let all: Vec<i32> = datsync::MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(versions, all);
        let n: i64 = a
            .query_one(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'sync_metadata'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        // 24, migration 7's checkpoint_location, migration 8's source_fingerprint,
        // migration 10's chunks_total and converted_at, migration 11's four older_than_*,
        // migration 13's hooks_called_for and alerted_for.
        assert_eq!(n, 34);
    })
    .await;
}

#[tokio::test]
async fn the_ztdwr_profile_creates_and_loads_its_table() {
    with_db(|db| async move {
        let profile = Profile::ztdwr();
        let mut c = db.client().await;
        assert!(init_db(&mut c, &profile).await.unwrap().target_created);
        let sync = register(&c, 1, "ZTDWR_20250129.dat").await;
        let keys: Vec<String> = (0..500).map(|i| format!("{i:010}")).collect();
        let lines: Vec<u64> = (2..502).collect();
        let batch = generate(&profile, &lines, &keys, 7);
        let r = load(&Loader::new(&profile), &mut c, &sync, 0, &batch).await;
        assert_eq!((r.inserted, r.updated, r.skipped_older), (500, 0, 0));
        let row = c
            .query_one(
                "SELECT count(*), min(surat_pengantar_barang) FROM transport_documents",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 500);
        assert_eq!(row.get::<_, String>(1), "0000000000");
    })
    .await;
}

const HOSTILE: &str = r#"
name = "hostile"
schema = "s\"; drop table x; --"
table = "t\"; drop table x; --"
key = "a\"; drop table x; --"

[[columns]]
target = "a\"; drop table x; --"
source = "a"
type = "text"
required = true
not_empty = true
[[columns]]
target = "b'); drop table x; --"
source = "b"
type = "decimal"
"#;

#[tokio::test]
async fn hostile_identifiers_are_data_not_sql() {
    with_db(|db| async move {
        let profile = Profile::from_toml_str(HOSTILE, Path::new("hostile.toml")).unwrap();
        let mut c = db.client().await;
        c.batch_execute("CREATE TABLE x (v int); INSERT INTO x VALUES (1)")
            .await
            .unwrap();
        init_db(&mut c, &profile).await.unwrap();
        init_db(&mut c, &profile).await.unwrap();
        let sync = register_in(&c, &profile.schema).await;
        let keys = vec!["k1".to_owned(), "k2".to_owned()];
        let batch = generate(&profile, &[2, 3], &keys, 1);
        let r = datsync::Loader::new(&profile)
            .load_chunk(&mut c, &sync, datsync::ChunkId(0), "c", &batch)
            .await
            .unwrap();
        assert_eq!(r.inserted, 2);
        let n: i64 = c
            .query_one(
                r#"SELECT count("a""; drop table x; --") FROM "s""; drop table x; --"."t""; drop table x; --""#,
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2);
        let x: i64 = c.query_one("SELECT count(*) FROM x", &[]).await.unwrap().get(0);
        assert_eq!(x, 1, "table x must survive");
    })
    .await;
}

async fn register_in(c: &tokio_postgres::Client, schema: &str) -> datsync::SyncRef {
    let reg = datsync::SyncRegistration {
        sync_id: datsync::SyncId::parse("sync_20250129_143022_00000001").unwrap(),
        file_name: "f.dat".into(),
        file_path: "f.dat".into(),
        file_size_bytes: None,
        checkpoint_location: None,
    };
    datsync::register_sync(c, schema, &reg).await.unwrap()
}

#[tokio::test]
async fn an_existing_table_is_checked_and_what_is_missing_named() {
    with_db(|db| async move {
        let profile = docs_profile();
        let mut c = db.client().await;
        c.batch_execute(
            "CREATE TABLE docs (id text, amount double precision, qty bigint, flag boolean,
                                day date, at time, ts timestamp, note varchar(20),
                                created_at timestamptz, updated_at timestamptz, sync_id text)",
        )
        .await
        .unwrap();
        let err = init_db(&mut c, &profile).await.unwrap_err();
        let PgError::IncompatibleTable { problems, .. } = &err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(
            problems,
            &[
                "column `amount` is double precision, expected numeric",
                "column `source_file` (text) is missing",
                "column `sync_seq` (bigint) is missing",
                "column `source_line` (bigint) is missing",
            ]
        );
        let msg = err.to_string();
        assert!(msg.contains("ADD COLUMN IF NOT EXISTS \"sync_seq\" bigint"), "{msg}");
        assert!(msg.contains("does not convert column types"), "{msg}");
        // Fix the columns; the missing key index is named next.
        c.batch_execute(
            "ALTER TABLE docs ALTER COLUMN amount TYPE numeric,
               ADD COLUMN source_file text, ADD COLUMN sync_seq bigint, ADD COLUMN source_line bigint",
        )
        .await
        .unwrap();
        let err = init_db(&mut c, &profile).await.unwrap_err().to_string();
        assert!(err.contains("no primary key or unique index on `id`"), "{err}");
        c.batch_execute("ALTER TABLE docs ADD PRIMARY KEY (id)").await.unwrap();
        let ok = init_db(&mut c, &profile).await.unwrap();
        assert!(!ok.target_created);
    })
    .await;
}
