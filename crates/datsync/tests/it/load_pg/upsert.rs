//! The chunk upsert: exact counts, exactly-once, newest wins, in-chunk duplicates, null keys.

use datsync::{ChunkId, ChunkLoad, LoadError, Loader, init_db};
use tokio_postgres::Client;

use super::db::with_db;
use super::docs::{Doc, batch, doc, docs_profile, load, notes, register};

async fn setup(client: &mut Client) -> Loader {
    let profile = docs_profile();
    init_db(client, &profile).await.unwrap();
    Loader::new(&profile)
}

fn counts(r: &ChunkLoad) -> (u64, u64, u64, u64) {
    (r.inserted, r.updated, r.skipped_older, r.superseded)
}

#[tokio::test]
async fn counts_inserts_and_updates_exactly() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let p = docs_profile();
        let sync = register(&c, 1, "a.dat").await;
        let first = batch(
            &p,
            &[doc(2, "k1", "a"), doc(3, "k2", "a"), doc(4, "k3", "a")],
        );
        let r = load(&loader, &mut c, &sync, 0, &first).await;
        assert_eq!(counts(&r), (3, 0, 0, 0));
        assert_eq!(r.rows, 3);
        assert!(!r.already_committed);
        assert!(r.new_keys, "an empty table: inserted without the upsert");
        // k2 again, in a later chunk of the same sync: superseded, not updated.
        let second = batch(&p, &[doc(5, "k2", "b"), doc(6, "k4", "b")]);
        let r = load(&loader, &mut c, &sync, 1, &second).await;
        assert_eq!(counts(&r), (1, 0, 0, 1));
        assert!(!r.new_keys, "k2 is in the table");
        let expect = [("k1", "a"), ("k2", "b"), ("k3", "a"), ("k4", "b")];
        let got = notes(&c).await;
        assert_eq!(got.len(), 4);
        for ((k, n), (gk, gn)) in expect.iter().zip(&got) {
            assert_eq!((*k, Some(*n)), (gk.as_str(), gn.as_deref()));
        }
        let totals = datsync::ledger_totals(&c, "public", &sync.sync_id)
            .await
            .unwrap();
        assert_eq!(
            (totals.chunks, totals.rows, totals.inserted, totals.updated),
            (2, 5, 4, 0)
        );
        assert_eq!((totals.superseded_on_load, totals.loaded()), (1, 4));
        let row = c
            .query_one(
                "SELECT sync_id, source_file, sync_seq, source_line FROM docs WHERE id = 'k2'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), sync.sync_id.as_str());
        assert_eq!(row.get::<_, String>(1), "a.dat");
        assert_eq!(row.get::<_, i64>(2), sync.sync_seq);
        assert_eq!(row.get::<_, i64>(3), 5);

        // A later sync: rows of an earlier sync replaced are updates; its own key twice is
        // one update and one superseded row.
        let later = register(&c, 2, "b.dat").await;
        let third = batch(&p, &[doc(2, "k1", "c"), doc(3, "k5", "c")]);
        let r = load(&loader, &mut c, &later, 0, &third).await;
        assert_eq!(counts(&r), (1, 1, 0, 0));
        let r = load(&loader, &mut c, &later, 1, &batch(&p, &[doc(9, "k1", "d")])).await;
        assert_eq!(counts(&r), (0, 0, 0, 1));
        assert_eq!(notes(&c).await[0].1.as_deref(), Some("d"));
    })
    .await;
}

async fn snapshot(c: &Client) -> Vec<String> {
    c.query("SELECT d::text FROM docs d ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_chunk_loaded_twice_changes_nothing_and_returns_the_recorded_counts() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let p = docs_profile();
        let sync = register(&c, 1, "a.dat").await;
        load(&loader, &mut c, &sync, 0, &batch(&p, &[doc(2, "k1", "a")])).await;
        let chunk = batch(
            &p,
            &[doc(3, "k1", "b"), doc(4, "k2", "b"), doc(5, "k2", "c")],
        );
        let first = load(&loader, &mut c, &sync, 1, &chunk).await;
        // k1 replaces chunk 0's row of this sync, k2's line 4 loses to line 5.
        assert_eq!(counts(&first), (1, 0, 0, 2));
        let before = snapshot(&c).await;
        let again = load(&loader, &mut c, &sync, 1, &chunk).await;
        assert!(again.already_committed);
        assert_eq!(
            ChunkLoad {
                already_committed: false,
                ..again
            },
            first
        );
        assert_eq!(snapshot(&c).await, before);
        let n: i64 = c
            .query_one("SELECT count(*) FROM sync_chunks", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2);
    })
    .await;
}

#[tokio::test]
async fn the_same_chunk_loaded_concurrently_commits_once() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let p = docs_profile();
        let sync = register(&c, 1, "a.dat").await;
        let chunk = batch(&p, &[doc(2, "k1", "a"), doc(3, "k2", "a")]);
        let mut other = db.client().await;
        let (one, two) = tokio::join!(
            load(&loader, &mut c, &sync, 0, &chunk),
            load(&loader, &mut other, &sync, 0, &chunk)
        );
        assert!(one.already_committed ^ two.already_committed);
        assert_eq!((one.inserted, two.inserted), (2, 2));
    })
    .await;
}

#[tokio::test]
async fn chunk_5_retried_after_chunk_120_does_not_regress() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let p = docs_profile();
        let sync = register(&c, 1, "a.dat").await;
        let late = batch(
            &p,
            &[
                doc(1_200_002, "k", "from chunk 120"),
                doc(1_200_003, "z", "z"),
            ],
        );
        assert_eq!(
            counts(&load(&loader, &mut c, &sync, 120, &late).await),
            (2, 0, 0, 0)
        );
        let early = batch(
            &p,
            &[doc(50_002, "k", "from chunk 5"), doc(50_003, "a", "a")],
        );
        // k's row of chunk 5 loses to chunk 120's, of the same sync: superseded, not older.
        let r = load(&loader, &mut c, &sync, 5, &early).await;
        assert_eq!(counts(&r), (1, 0, 0, 1));
        let got = notes(&c).await;
        assert_eq!(got[1], ("k".to_owned(), Some("from chunk 120".to_owned())));
    })
    .await;
}

#[tokio::test]
async fn an_older_sync_loaded_after_a_newer_one_does_not_regress() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let p = docs_profile();
        // Same second in the sync ids: only sync_seq orders them.
        let older = register(&c, 0xffff_fff0, "old.dat").await;
        let newer = register(&c, 0x0000_0001, "new.dat").await;
        assert!(newer.sync_seq > older.sync_seq);
        load(
            &loader,
            &mut c,
            &newer,
            0,
            &batch(&p, &[doc(2, "k", "newer")]),
        )
        .await;
        // A higher line number does not help an older sync.
        let r = load(
            &loader,
            &mut c,
            &older,
            0,
            &batch(&p, &[doc(99, "k", "older")]),
        )
        .await;
        assert_eq!(counts(&r), (0, 0, 1, 0));
        assert_eq!(notes(&c).await[0].1.as_deref(), Some("newer"));
        // And a resumed registration keeps its number.
        let again = register(&c, 0xffff_fff0, "old.dat").await;
        assert_eq!(again.sync_seq, older.sync_seq);
    })
    .await;
}

#[tokio::test]
async fn duplicate_keys_in_one_chunk_keep_the_last_line_without_21000() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let p = docs_profile();
        let sync = register(&c, 1, "a.dat").await;
        // Lines out of order on purpose: the highest line wins, not the last position.
        let rows = [
            doc(7, "k", "line 7"),
            doc(9, "k", "line 9"),
            doc(8, "k", "line 8"),
        ];
        let r = load(&loader, &mut c, &sync, 0, &batch(&p, &rows)).await;
        assert_eq!(counts(&r), (1, 0, 0, 2));
        assert_eq!(notes(&c).await[0].1.as_deref(), Some("line 9"));
        // Again in a later chunk against an existing row.
        let rows = [doc(20, "k", "line 20"), doc(21, "k", "line 21")];
        let r = load(&loader, &mut c, &sync, 1, &batch(&p, &rows)).await;
        assert_eq!(counts(&r), (0, 0, 0, 2));
        assert_eq!(notes(&c).await[0].1.as_deref(), Some("line 21"));
        // Even a malformed batch repeating a line number never hits 21000.
        let rows = [doc(30, "k", "same line"), doc(30, "k", "same line")];
        let r = load(&loader, &mut c, &sync, 2, &batch(&p, &rows)).await;
        assert_eq!(counts(&r), (0, 0, 0, 2));
    })
    .await;
}

#[tokio::test]
async fn null_keys_are_rejected_before_copy() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let p = docs_profile();
        let sync = register(&c, 1, "a.dat").await;
        let mut bad = doc(3, "x", "no key");
        bad.id = None;
        let err = loader
            .load_chunk(
                &mut c,
                &sync,
                ChunkId(0),
                "c",
                &batch(&p, &[doc(2, "k", "a"), bad]),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, LoadError::NullKey { count: 1, lines, .. } if lines == &[3]),
            "{err}"
        );
        assert!(err.to_string().contains("null key `id`"));
        assert!(notes(&c).await.is_empty());
        let n: i64 = c
            .query_one("SELECT count(*) FROM sync_chunks", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
    })
    .await;
}

#[tokio::test]
async fn created_at_survives_updates_and_updated_at_moves() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let p = docs_profile();
        let first = register(&c, 1, "a.dat").await;
        load(&loader, &mut c, &first, 0, &batch(&p, &[doc(2, "k", "a")])).await;
        let (created, updated) = stamps(&c).await;
        assert_eq!(created, updated);
        let second = register(&c, 2, "b.dat").await;
        let r = load(&loader, &mut c, &second, 0, &batch(&p, &[doc(2, "k", "b")])).await;
        assert_eq!(r.updated, 1);
        let (created2, updated2) = stamps(&c).await;
        assert_eq!(created2, created);
        assert!(updated2 > updated);
    })
    .await;
}

async fn stamps(c: &Client) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let r = c
        .query_one(
            "SELECT created_at, updated_at FROM docs WHERE id = 'k'",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

const INT_KEY_PROFILE: &str = r#"
name = "numbers"
table = "numbers"
key = "n"
[[columns]]
source = "n"
type = "integer"
required = true
not_empty = true
[[columns]]
source = "label"
type = "text"
"#;

#[tokio::test]
async fn integer_keys_with_duplicates_are_reduced_too() {
    use std::sync::Arc;

    use arrow_array::{Int64Array, RecordBatch, StringArray, UInt64Array};

    with_db(|db| async move {
        let p =
            datsync::Profile::from_toml_str(INT_KEY_PROFILE, std::path::Path::new("numbers.toml"))
                .unwrap();
        let mut c = db.client().await;
        init_db(&mut c, &p).await.unwrap();
        let sync = register(&c, 1, "n.dat").await;
        let b = RecordBatch::try_new(
            super::typed_gen::schema(&p),
            vec![
                Arc::new(UInt64Array::from(vec![2, 3, 4])),
                Arc::new(Int64Array::from(vec![7, 7, 8])),
                Arc::new(StringArray::from(vec!["old", "new", "x"])),
            ],
        )
        .unwrap();
        let r = load(&Loader::new(&p), &mut c, &sync, 0, &b).await;
        assert_eq!(counts(&r), (2, 0, 0, 1));
        let label: String = c
            .query_one("SELECT label FROM numbers WHERE n = 7", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(label, "new");
    })
    .await;
}

#[tokio::test]
async fn an_empty_chunk_is_committed_in_the_ledger() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let p = docs_profile();
        let sync = register(&c, 1, "a.dat").await;
        let r = load(&loader, &mut c, &sync, 4, &batch(&p, &[])).await;
        assert_eq!((r.rows, counts(&r)), (0, (0, 0, 0, 0)));
        let again = load(&loader, &mut c, &sync, 4, &batch(&p, &[])).await;
        assert!(again.already_committed);
        let chunks = datsync::committed_chunks(&c, "public", &sync.sync_id)
            .await
            .unwrap();
        assert_eq!(chunks, vec![ChunkId(4)]);
    })
    .await;
}

/// Every order of four chunks sharing keys, over a table holding an earlier sync's rows and a
/// newer sync's row: the same table and the same counts whatever the order, and the counts a
/// person expects (each key once as inserted or updated, every other row of the sync
/// superseded, the newer sync's key older).
#[tokio::test]
async fn counts_do_not_depend_on_the_order_chunks_commit_in() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let p = docs_profile();
        // Chunk i holds lines 100*i + …; keys `a`…`f` recur across chunks, `n` is the newer
        // sync's, `e0` and `e1` are the earlier sync's.
        let chunks: Vec<Vec<Doc>> = vec![
            vec![doc(101, "a", "0"), doc(102, "b", "0"), doc(103, "e0", "0")],
            vec![doc(201, "a", "1"), doc(202, "c", "1"), doc(203, "n", "1")],
            vec![doc(301, "b", "2"), doc(302, "a", "2"), doc(303, "d", "2")],
            vec![
                doc(401, "c", "3"),
                doc(402, "e1", "3"),
                doc(403, "f", "3"),
                doc(404, "f", "3"),
            ],
        ];
        let mut reference: Option<(Notes, [u64; 5])> = None;
        for order in permutations(4) {
            c.batch_execute("TRUNCATE docs, sync_chunks; DELETE FROM sync_metadata")
                .await
                .unwrap();
            let earlier = register(&c, 1, "earlier.dat").await;
            let base = batch(&p, &[doc(2, "e0", "old"), doc(3, "e1", "old")]);
            load(&loader, &mut c, &earlier, 0, &base).await;
            let sync = register(&c, 2, "this.dat").await;
            let newer = register(&c, 3, "newer.dat").await;
            load(
                &loader,
                &mut c,
                &newer,
                0,
                &batch(&p, &[doc(2, "n", "newer")]),
            )
            .await;
            let mut sum = [0u64; 5];
            for &i in &order {
                let r = load(&loader, &mut c, &sync, i as u32, &batch(&p, &chunks[i])).await;
                assert_eq!(
                    r.rows,
                    r.inserted + r.updated + r.skipped_older + r.superseded
                );
                for (s, v) in sum.iter_mut().zip([
                    r.rows,
                    r.inserted,
                    r.updated,
                    r.skipped_older,
                    r.superseded,
                ]) {
                    *s += v;
                }
            }
            let table = notes(&c).await;
            // 13 rows: a b c d f inserted once each (5), e0 e1 updated (2), n older (1), and
            // 5 superseded (a twice, b, c, f once each).
            assert_eq!(sum, [13, 5, 2, 1, 5], "order {order:?}");
            let totals = datsync::ledger_totals(&c, "public", &sync.sync_id)
                .await
                .unwrap();
            assert_eq!((totals.loaded(), totals.superseded_all()), (8, 5));
            match &reference {
                None => reference = Some((table, sum)),
                Some((t, s)) => {
                    assert_eq!(&table, t, "order {order:?}");
                    assert_eq!(&sum, s, "order {order:?}");
                }
            }
        }
        let (table, _) = reference.unwrap();
        let note = |k: &str| table.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(note("a").as_deref(), Some("2"));
        assert_eq!(note("c").as_deref(), Some("3"));
        assert_eq!(note("n").as_deref(), Some("newer"));
        assert_eq!(note("e0").as_deref(), Some("0"));
    })
    .await;
}

/// `id → note` of the docs table.
type Notes = Vec<(String, Option<String>)>;

/// Every order of `0..n` (Heap's algorithm).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn heap(k: usize, items: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(items.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, items, out);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            items.swap(j, k - 1);
        }
    }
    let mut out = Vec::new();
    heap(n, &mut (0..n).collect(), &mut out);
    out
}

/// The demo's verdict: two loads of the same rows under different syncs and schemas have the
/// same checksum (audit timestamps and sync ids aside); one value apart, they do not.
#[tokio::test]
async fn table_checksums_tell_equal_tables_from_different_ones() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let p = docs_profile();
        let mut other = docs_profile();
        other.schema = "reference".into();
        datsync::init_db(&mut c, &p).await.unwrap();
        datsync::recreate_schema(&c, "reference").await.unwrap();
        datsync::init_db(&mut c, &other).await.unwrap();
        let rows = [doc(2, "a", "x"), doc(3, "b", "y"), doc(4, "c", "z")];
        let first = register(&c, 1, "a.dat").await;
        load(&Loader::new(&p), &mut c, &first, 0, &batch(&p, &rows)).await;
        let started = chrono::DateTime::parse_from_rfc3339("2025-01-29T14:30:22Z")
            .unwrap()
            .to_utc();
        let reg = datsync::SyncRegistration {
            sync_id: datsync::SyncId::new(started, 7),
            file_name: "a.dat".into(),
            file_path: "data/hex-ztdwr/a.dat".into(),
            file_size_bytes: None,
            checkpoint_location: None,
        };
        let second = datsync::register_sync(&c, "reference", &reg).await.unwrap();
        load(
            &Loader::new(&other),
            &mut c,
            &second,
            0,
            &batch(&other, &rows),
        )
        .await;
        let ours = datsync::table_checksum(&c, &p).await.unwrap();
        let theirs = datsync::table_checksum(&c, &other).await.unwrap();
        assert_eq!(ours.rows, 3);
        assert_eq!(ours, theirs);
        c.batch_execute("UPDATE reference.docs SET note = 'Y' WHERE id = 'b'")
            .await
            .unwrap();
        let theirs = datsync::table_checksum(&c, &other).await.unwrap();
        assert_eq!(ours.rows, theirs.rows);
        assert_ne!(ours.md5, theirs.md5);
        // An empty table has a checksum too.
        c.batch_execute("TRUNCATE reference.docs").await.unwrap();
        let empty = datsync::table_checksum(&c, &other).await.unwrap();
        assert_eq!((empty.rows, empty.md5.as_str()), (0, ""));
    })
    .await;
}

/// A chunk whose keys the table does not hold is COPYed into it without the upsert; when
/// another sync inserts one of them after the look-up (its transaction open then, committed
/// while this chunk's COPY waits on the key), the COPY is rolled back to its savepoint and the
/// chunk staged and upserted: newest wins and the counts are exact.
#[tokio::test]
async fn a_key_another_sync_inserts_after_the_look_up_sends_the_chunk_to_the_upsert() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let loader = setup(&mut c).await;
        let p = docs_profile();
        let older = register(&c, 1, "old.dat").await;
        let newer = register(&c, 2, "new.dat").await;
        // The newer sync's k1, written and not committed yet.
        let other = db.client().await;
        other.batch_execute("BEGIN").await.unwrap();
        let theirs = batch(&p, &[doc(7, "k1", "newer")]);
        let facts = datsync::ChunkFacts {
            rows_read: 1,
            ..datsync::ChunkFacts::default()
        };
        let r = loader
            .load_chunk_in_transaction(&other, &newer, ChunkId(0), "sha-n", &theirs, &facts)
            .await
            .unwrap();
        assert_eq!(counts(&r), (1, 0, 0, 0));
        assert!(r.new_keys && r.direct_copy);
        // The older sync's chunk: its look-up does not see k1, its COPY waits on it.
        let ours = batch(&p, &[doc(2, "k1", "older"), doc(3, "k2", "older")]);
        let waiting = tokio::spawn({
            let loader = loader.clone();
            let older = older.clone();
            async move {
                let r = load(&loader, &mut c, &older, 0, &ours).await;
                (r, c)
            }
        });
        let watcher = db.client().await;
        loop {
            let blocked: i64 = watcher
                // Sessions of this test's database waiting for a lock (the key's: a
                // transaction id's, which `pg_locks` ties to no database).
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if blocked > 0 {
                break;
            }
            assert!(!waiting.is_finished(), "the chunk did not wait on the key");
            tokio::task::yield_now().await;
        }
        other.batch_execute("COMMIT").await.unwrap();
        let (r, c) = waiting.await.unwrap();
        // k1 is the newer sync's: older here; k2 inserted, by the upsert.
        assert_eq!(counts(&r), (1, 0, 1, 0));
        assert!(
            !r.new_keys && !r.direct_copy,
            "the COPY was not rolled back"
        );
        assert_eq!(
            notes(&c).await,
            [
                ("k1".to_owned(), Some("newer".to_owned())),
                ("k2".to_owned(), Some("older".to_owned()))
            ]
        );
    })
    .await;
}
