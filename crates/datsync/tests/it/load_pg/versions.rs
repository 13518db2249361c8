//! Newest by the data's own clock (issue 22): a profile with `version` and
//! `version_from_name` — text batches validated, transformed and loaded as the pipeline does;
//! an older version never replaces a newer one, whatever order files or chunks commit in.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use datsync::{ChunkFacts, ChunkId, ChunkLoad, Loader, Profile, SyncRef, init_db, ledger_totals};
use tokio_postgres::Client;

use super::db::with_db;
use super::docs::register;

pub const VERSIONED_PROFILE: &str = r#"
name = "versioned"
table = "vdocs"
key = "id"
version = ["changed_date", "changed_time"]
version_from_name = 'V_(?<date>\d{8})'

[[columns]]
source = "id"
type = "text"
required = true
not_empty = true
[[columns]]
source = "note"
type = "text"
[[columns]]
target = "changed_date"
source = "change_date"
type = "date_timestamp"
[[columns]]
target = "changed_time"
source = "change_time"
type = "text"
"#;

fn profile() -> Profile {
    Profile::from_toml_str(VERSIONED_PROFILE, Path::new("versioned.toml")).unwrap()
}

/// A source row: line, key, note, change date, change time.
pub(super) type Row = (u64, &'static str, &'static str, &'static str, &'static str);

/// The text batch the decoder would give for `rows`.
pub(super) fn text(rows: &[Row]) -> RecordBatch {
    let col = |f: fn(&Row) -> &'static str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let schema = Schema::new(vec![
        Field::new("_line", DataType::UInt64, false),
        Field::new("id", DataType::Utf8, true),
        Field::new("note", DataType::Utf8, true),
        Field::new("change_date", DataType::Utf8, true),
        Field::new("change_time", DataType::Utf8, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
            col(|r| r.1),
            col(|r| r.2),
            col(|r| r.3),
            col(|r| r.4),
        ],
    )
    .unwrap()
}

/// Validates, transforms and loads `rows` as chunk `chunk` of `sync`; the counts with the
/// rows validation superseded added, as the pipeline's sync totals add them.
async fn load(
    c: &mut Client,
    loader: &Loader,
    sync: &SyncRef,
    chunk: u32,
    rows: &[Row],
) -> ChunkLoad {
    let p = profile();
    let v = datsync::validate(&p, &text(rows)).unwrap();
    let t = datsync::transform(&p, &v.accepted).unwrap();
    let facts = ChunkFacts {
        rows_read: v.rows_read as u64,
        superseded: v.superseded as u64,
        ..ChunkFacts::default()
    };
    let mut load = loader
        .load_chunk_with_facts(c, sync, ChunkId(chunk), "sha", &t.batch, &facts)
        .await
        .unwrap();
    load.superseded += v.superseded as u64;
    load
}

async fn setup(c: &mut Client) -> Loader {
    init_db(c, &profile()).await.unwrap();
    Loader::new(&profile())
}

/// `id → (note, row_version)`, in key order.
async fn table(c: &Client) -> Vec<(String, String, Option<String>)> {
    c.query("SELECT id, note, row_version FROM vdocs ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn counts(l: &ChunkLoad) -> [u64; 4] {
    [l.inserted, l.updated, l.skipped_older, l.superseded]
}

const NEW: &[Row] = &[
    (2, "k1", "new", "20250130", "101500"),
    (3, "k2", "new", "20250130", "090000"),
];
const OLD: &[Row] = &[
    (2, "k1", "old", "20250129", "235959"),
    (3, "k2", "old", "29.01.2025", "10:00:00"),
    (4, "k3", "old", "20250129", ""),
];

#[tokio::test]
async fn new_then_old_keeps_the_new_rows_and_counts_the_old_as_older() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let new = register(&c, 1, "V_20250130.dat").await;
        assert_eq!(
            counts(&load(&mut c, &loader, &new, 0, NEW).await),
            [2, 0, 0, 0]
        );
        // The old file arrives late: a later sync, older rows.
        let old = register(&c, 2, "V_20250129.dat").await;
        assert_eq!(
            counts(&load(&mut c, &loader, &old, 0, OLD).await),
            [1, 0, 2, 0]
        );
        let stamp = |s: &str| Some(s.to_owned());
        assert_eq!(
            table(&c).await,
            [
                (
                    "k1".into(),
                    "new".into(),
                    stamp("2025-01-30 10:15:00 | 2025-01-30 00:00:00")
                ),
                (
                    "k2".into(),
                    "new".into(),
                    stamp("2025-01-30 09:00:00 | 2025-01-30 00:00:00")
                ),
                (
                    "k3".into(),
                    "old".into(),
                    stamp("2025-01-29 00:00:00 | 2025-01-29 00:00:00")
                ),
            ]
        );
        let totals = ledger_totals(&c, "public", &old.sync_id).await.unwrap();
        assert_eq!(totals.skipped_older, 2);
        // Old then new in another table state: the new rows are updates.
        c.batch_execute("TRUNCATE vdocs").await.unwrap();
        let old = register(&c, 3, "V_20250129.dat").await;
        assert_eq!(
            counts(&load(&mut c, &loader, &old, 0, OLD).await),
            [3, 0, 0, 0]
        );
        let new = register(&c, 4, "V_20250130.dat").await;
        assert_eq!(
            counts(&load(&mut c, &loader, &new, 0, NEW).await),
            [0, 2, 0, 0]
        );
        let notes: Vec<String> = table(&c).await.into_iter().map(|r| r.1).collect();
        assert_eq!(notes, ["new", "new", "old"]);
    })
    .await;
}

/// The file's date decides between rows whose own versions are equal (or both missing),
/// then the later sync.
#[tokio::test]
async fn equal_row_versions_fall_back_to_the_file_then_the_sync() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let first = register(&c, 1, "V_20250130.dat").await;
        load(&mut c, &loader, &first, 0, &[(2, "k1", "a", "", "")]).await;
        // Same (missing) row version, older file: not applied.
        let older = register(&c, 2, "V_20250129.dat").await;
        let r = load(&mut c, &loader, &older, 0, &[(2, "k1", "b", "", "")]).await;
        assert_eq!(counts(&r), [0, 0, 1, 0]);
        // Same row version, same file date: the later sync wins, as before.
        let again = register(&c, 3, "V_20250130.dat").await;
        let r = load(&mut c, &loader, &again, 0, &[(2, "k1", "d", "", "")]).await;
        assert_eq!(counts(&r), [0, 1, 0, 0]);
        // A name without a date: no file version, so older than any file's.
        let undated = register(&c, 4, "extract.dat").await;
        let r = load(&mut c, &loader, &undated, 0, &[(2, "k1", "e", "", "")]).await;
        assert_eq!(counts(&r), [0, 0, 1, 0]);
        // But a row version beats any file version.
        let r = load(
            &mut c,
            &loader,
            &undated,
            1,
            &[(3, "k1", "f", "20200101", "")],
        )
        .await;
        assert_eq!(counts(&r), [0, 1, 0, 0]);
        assert_eq!(
            table(&c).await[0].2.as_deref(),
            Some("2020-01-01 00:00:00 | -")
        );
    })
    .await;
}

/// Within one file the newest version wins, then the last line — in one chunk (validation)
/// and across chunks in either commit order, with the same counts.
#[tokio::test]
async fn within_a_file_the_newest_version_wins_in_any_chunk_order() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let sync = register(&c, 1, "V_20250130.dat").await;
        let one = [
            (2, "k1", "newest", "20250130", "120000"),
            (3, "k1", "older", "20250130", "110000"),
            (4, "k1", "no version", "", ""),
            (5, "k2", "first", "20250130", "110000"),
            (6, "k2", "same version, later line", "20250130", "11:00"),
        ];
        assert_eq!(
            counts(&load(&mut c, &loader, &sync, 0, &one).await),
            [2, 0, 0, 3]
        );
        let notes: Vec<String> = table(&c).await.into_iter().map(|r| r.1).collect();
        assert_eq!(notes, ["newest", "same version, later line"]);

        let chunk_a: &[Row] = &[
            (2, "k1", "a newer", "20250130", "120000"),
            (3, "k2", "a", "", ""),
        ];
        let chunk_b: &[Row] = &[
            (9, "k1", "b older", "20250129", ""),
            (10, "k2", "b", "", ""),
        ];
        let mut results = Vec::new();
        for order in [[0, 1], [1, 0]] {
            c.batch_execute("TRUNCATE vdocs").await.unwrap();
            let sync = register(&c, 2 + order[0], "V_20250130.dat").await;
            let mut total = [0; 4];
            for i in order {
                let rows = if i == 0 { chunk_a } else { chunk_b };
                let r = counts(&load(&mut c, &loader, &sync, i, rows).await);
                total.iter_mut().zip(r).for_each(|(t, n)| *t += n);
            }
            let notes: Vec<String> = table(&c).await.into_iter().map(|r| r.1).collect();
            assert_eq!(notes, ["a newer", "b"], "order {order:?}");
            results.push(total);
        }
        assert_eq!(results, [[2, 0, 0, 2], [2, 0, 0, 2]]);
    })
    .await;
}

/// A row whose version is missing or unreadable is the oldest; an unreadable time of a text
/// column is a value warning naming `row_version`.
#[tokio::test]
async fn missing_and_unreadable_versions_are_the_oldest_and_warned() {
    let profile = profile();
    let batch = text(&[
        (2, "k1", "x", "20250130", "2400"),
        (3, "k2", "x", "", "101500"),
        (4, "k3", "x", "20251399", ""),
        (5, "k4", "x", "20250130", "07:30"),
    ]);
    let typed = datsync::transform(&profile, &batch).unwrap();
    let versions: Vec<Option<&str>> = typed
        .batch
        .column_by_name(datsync::VERSION_COLUMN)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(versions, [None, None, None, Some("2025-01-30 07:30:00")]);
    let warned: Vec<(u64, Option<&str>, Option<&str>)> = typed
        .warnings
        .iter()
        .map(|w| (w.line, w.column.as_deref(), w.target.as_deref()))
        .collect();
    // The unreadable date is the transform's own warning (loaded as NULL); the unreadable
    // text time is the version's.
    assert_eq!(
        warned,
        [
            (2, Some("change_time"), Some("row_version")),
            (4, Some("change_date"), Some("changed_date")),
        ]
    );

    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let dated = register(&c, 1, "V_20250130.dat").await;
        load(
            &mut c,
            &loader,
            &dated,
            0,
            &[(2, "k1", "dated", "20240101", "")],
        )
        .await;
        // A later file whose row has an unreadable time: no row version, so older.
        let later = register(&c, 2, "V_20250131.dat").await;
        let r = load(
            &mut c,
            &loader,
            &later,
            0,
            &[(2, "k1", "bad time", "20250131", "2400")],
        )
        .await;
        assert_eq!(counts(&r), [0, 0, 1, 0]);
        assert_eq!(table(&c).await[0].1, "dated");
    })
    .await;
}

/// Rows stored without a version (adopted from the legacy loader: no `sync_seq`, no
/// `row_version`; or loaded before the profile had one) are older than any versioned row,
/// and `init-db` adds `row_version` to an existing table without rewriting it.
#[tokio::test]
async fn unversioned_stored_rows_are_the_oldest_and_the_column_is_added_in_place() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let plain = Profile::from_toml_str(
            &VERSIONED_PROFILE
                .replace("version = [\"changed_date\", \"changed_time\"]", "")
                .replace("version_from_name = 'V_(?<date>\\d{8})'", ""),
            Path::new("plain.toml"),
        )
        .unwrap();
        assert!(plain.version.is_none());
        init_db(&mut c, &plain).await.unwrap();
        assert_eq!(has_column(&c).await, 0, "no version, no column");
        c.batch_execute(
            "INSERT INTO vdocs (id, note, changed_date) VALUES ('k1', 'legacy', '2030-01-01')",
        )
        .await
        .unwrap();
        let before = file(&c).await;
        let loader = setup(&mut c).await;
        assert_eq!(has_column(&c).await, 1);
        assert_eq!(file(&c).await, before, "the table is not rewritten");
        // An old versioned row beats the adopted one, whatever its change date says.
        let a = register(&c, 1, "V_20200101.dat").await;
        let r = load(
            &mut c,
            &loader,
            &a,
            0,
            &[(2, "k1", "versioned", "20200101", "")],
        )
        .await;
        assert_eq!(counts(&r), [0, 1, 0, 0]);
        // And a later row without any version (no date, a name without one) does not
        // replace it.
        let b = register(&c, 2, "later.dat").await;
        let r = load(&mut c, &loader, &b, 0, &[(2, "k1", "no version", "", "")]).await;
        assert_eq!(counts(&r), [0, 0, 1, 0]);
        assert_eq!(table(&c).await[0].1, "versioned");
    })
    .await;
}

async fn has_column(c: &Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM information_schema.columns
          WHERE table_name = 'vdocs' AND column_name = 'row_version'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

async fn file(c: &Client) -> i64 {
    c.query_one("SELECT pg_relation_filenode('vdocs')::bigint", &[])
        .await
        .unwrap()
        .get(0)
}

#[test]
fn version_settings_are_checked_with_their_line() {
    let bad = [
        ("version = [\"nope\"]", "not the target of any column"),
        ("version = [\"note\"]", "must be a date"),
        (
            "version = [\"changed_date\", \"id\", \"note\"]",
            "one or two",
        ),
        ("version_from_name = 'V_(\\d{8})'", "no group named `date`"),
    ];
    for (setting, message) in bad {
        let text = VERSIONED_PROFILE
            .replace("version = [\"changed_date\", \"changed_time\"]", setting)
            .replace("version_from_name = 'V_(?<date>\\d{8})'", "");
        let e = Profile::from_toml_str(&text, Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(message) && e.contains("line 5"),
            "{setting}: {e}"
        );
    }
}
