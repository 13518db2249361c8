//! What `datsync demo` and `datsync bench` ask the database through the library: a database
//! of their own (names quoted, sessions closed on drop), the target emptied and previewed,
//! and the COPY baseline of the benchmark.

use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use datsync::{
    BaselineError, Pipeline, Profile, RawSettings, SampleOptions, SampleSize, copy_baseline,
    copy_baselines, derived_copy_baseline, drop_database, empty_target, encode_baseline, init_db,
    preview_target, recreate_database, upsert_baseline, write_sample,
};

use futures::FutureExt as _;

use super::db::{server, with_db};

#[tokio::test]
async fn a_database_of_its_own_is_recreated_and_dropped_whatever_its_name() {
    let admin = datsync::connect(&server()).await.unwrap();
    // Upper case, a space and a quote: only a quoted name survives this.
    let name = format!("Datsync it \"{}\"", std::process::id());
    let outcome = AssertUnwindSafe(recreate_and_drop(&admin, &name))
        .catch_unwind()
        .await;
    // Nothing left behind, whatever happened.
    drop_database(&admin, &name).await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn recreate_and_drop(admin: &tokio_postgres::Client, name: &str) {
    recreate_database(admin, name).await.unwrap();
    let inside = datsync::connect(&server().with_dbname(name)).await.unwrap();
    inside
        .batch_execute("CREATE TABLE t (k int)")
        .await
        .unwrap();
    // Again, with a session open on it: dropped (the session closed) and created empty.
    recreate_database(admin, name).await.unwrap();
    let fresh = datsync::connect(&server().with_dbname(name)).await.unwrap();
    let current: String = fresh
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(current, name);
    let tables: i64 = fresh
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
    drop(fresh);
    drop_database(admin, name).await.unwrap();
    // Dropping what is not there is fine.
    drop_database(admin, name).await.unwrap();
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baseline_copies_what_a_run_loads_and_the_preview_shows_it_by_key() {
    with_db(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ZTDWR_BASELINE.dat");
        let options = SampleOptions {
            size: SampleSize::Rows(450),
            seed: 5,
            // The baseline table keeps the target's primary key: keys must be unique, as
            // in the benchmark's files.
            invalid_rate: 0.05,
            ..SampleOptions::default()
        };
        write_sample(File::create(&file).unwrap(), &options).unwrap();
        let profile = Profile::ztdwr();
        let mut client = db.client().await;
        init_db(&mut client, &profile).await.unwrap();

        let stream = dir.path().join("copy.bin");
        let rows = encode_baseline(&profile, &file, &stream, 100).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&stream).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "the typed rows are private: {mode:o}");
        copy_baseline(&client, &profile, &stream, rows)
            .await
            .unwrap();
        let gone: bool = client
            .query_one("SELECT to_regclass('bench_copy_baseline') IS NULL", &[])
            .await
            .unwrap()
            .get(0);
        assert!(gone, "the baseline table is dropped after the COPY");
        let wrong = copy_baseline(&client, &profile, &stream, rows + 1).await;
        assert!(
            matches!(wrong, Err(BaselineError::RowCount { copied, expected })
                if copied == rows && expected == rows + 1),
            "{wrong:?}"
        );

        let settings = RawSettings {
            checkpoint_base_path: Some(dir.path().join("ck").display().to_string()),
            chunk_size: Some(100),
            ..RawSettings::default()
        }
        .validate()
        .unwrap();
        let pipeline = Pipeline::builder(profile.clone(), settings, db.settings.clone()).build();
        let summary = pipeline
            .run(&file.display().to_string(), None, true)
            .await
            .unwrap();
        // The baseline holds the rows a run loads: the valid ones.
        assert!(summary.counts.rows_rejected > 0, "{summary:?}");
        assert_eq!(rows, summary.counts.rows_loaded);

        baselines_over_the_loaded_table(&client, &profile, &stream, rows).await;

        derived_baseline_of_the_loaded_run(&client, &profile, dir.path()).await;

        let key = profile.key[0].clone();
        let columns = vec![key.clone(), "nik_supir".to_owned()];
        let preview = preview_target(&client, &profile, &columns, 3)
            .await
            .unwrap();
        assert_eq!(
            u64::try_from(preview.rows).unwrap(),
            summary.counts.records_inserted
        );
        assert_eq!(preview.columns, columns);
        let keys: Vec<String> = preview
            .first_rows
            .iter()
            .map(|r| r[0].clone().unwrap())
            .collect();
        let smallest: Vec<String> = client
            .query(
                &format!("SELECT {key}::text FROM transport_documents ORDER BY 1 LIMIT 3"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(keys, smallest);

        assert!(
            drivers(&client).await > 0,
            "the run filled the derived table"
        );
        empty_target(&client, &profile).await.unwrap();
        assert_eq!(
            drivers(&client).await,
            0,
            "its derived tables are emptied too"
        );
        let empty = preview_target(&client, &profile, &columns, 3)
            .await
            .unwrap();
        assert_eq!((empty.rows, empty.first_rows.len()), (0, 0));
    })
    .await;
}

/// The derived tables' baseline after a run: it COPYs the rows the run left in `drivers`
/// into a table of its shape in the profile's schema, then drops that table and its file;
/// `drivers` is left as it was.
async fn derived_baseline_of_the_loaded_run(
    client: &tokio_postgres::Client,
    profile: &Profile,
    dir: &std::path::Path,
) {
    let before = drivers(client).await;
    assert!(before > 0);
    let derived = derived_copy_baseline(client, profile, dir).await.unwrap();
    assert!(derived.is_some_and(|d| d > Duration::ZERO), "{derived:?}");
    assert_eq!(drivers(client).await, before);
    let gone: bool = client
        .query_one(
            "SELECT to_regclass(format('%I.bench_derived_baseline', $1::text)) IS NULL",
            &[&profile.schema],
        )
        .await
        .unwrap()
        .get(0);
    assert!(gone, "the derived baseline table is dropped after the COPY");
    assert!(!dir.join("derived_baseline.bin").exists());
    let mut without = profile.clone();
    without.derived.clear();
    let none = derived_copy_baseline(client, &without, dir).await.unwrap();
    assert_eq!(none, None, "a profile without derived tables");
}

/// Rows of the derived table `drivers`.
async fn drivers(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM drivers", &[])
        .await
        .unwrap()
        .get(0)
}

/// The key and one value of every target row, in key order.
async fn target_rows(client: &tokio_postgres::Client) -> Vec<(String, Option<String>)> {
    client
        .query(
            "SELECT surat_pengantar_barang::text, nik_supir::text FROM transport_documents
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Both COPY baselines land the same rows (each checks its count; the text file is removed),
/// and the upsert by hand over the table a run loaded updates every row under a newer
/// `sync_seq`, inserting nothing; a failed one is rolled back.
async fn baselines_over_the_loaded_table(
    client: &tokio_postgres::Client,
    profile: &Profile,
    stream: &std::path::Path,
    rows: u64,
) {
    // Both COPYs land the same rows (each checks its count), the text file is removed.
    let copies = copy_baselines(client, profile, stream, rows).await.unwrap();
    assert!(copies.binary > Duration::ZERO && copies.text > Duration::ZERO);
    assert!(!stream.with_extension("txt").exists());
    // The upsert by hand over the loaded table: every row updated, under a newer
    // sync_seq, with the staged values; nothing inserted.
    let before: Vec<(String, Option<String>)> = target_rows(client).await;
    let stored_seq: i64 = client
        .query_one("SELECT max(sync_seq) FROM transport_documents", &[])
        .await
        .unwrap()
        .get(0);
    upsert_baseline(client, profile, stream, rows)
        .await
        .unwrap();
    assert_eq!(target_rows(client).await, before);
    let (count, updated, seq): (i64, i64, i64) = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE sync_id = 'bench-upsert-baseline'),
                    min(sync_seq)
               FROM transport_documents",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!((count, updated), (i64::try_from(rows).unwrap(), count));
    assert!(seq > stored_seq, "{seq} > {stored_seq}");
    let wrong = upsert_baseline(client, profile, stream, rows + 1).await;
    assert!(
        matches!(wrong, Err(BaselineError::RowCount { .. })),
        "{wrong:?}"
    );
    // A failed baseline is rolled back: the session is usable, the rows as they were.
    client.batch_execute("SELECT 1").await.unwrap();
    let still: i64 = client
        .query_one(
            "SELECT count(*) FROM transport_documents WHERE sync_seq = $1",
            &[&seq],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(still, count);
}
