//! The COPY straight into the target table (`load/direct.rs`): a chunk whose keys the table
//! does not hold is written exactly as the staging path writes it — every column, the
//! bookkeeping columns, the row version of each kind — and a table the binary rows do not
//! fit as they are (an adopted column type, a rule) takes the staging path.

use std::path::Path;

use arrow_array::RecordBatch;
use datsync::{
    ChunkFacts, ChunkId, ChunkLoad, Loader, Profile, SyncId, SyncRef, SyncRegistration, init_db,
    register_sync,
};
use tokio_postgres::Client;

use super::db::with_db;
use super::docs::{DOCS_PROFILE, Doc, batch};
use super::versions::VERSIONED_PROFILE;

/// A profile in schema `schema`.
pub(super) fn in_schema(toml: &str, schema: &str) -> Profile {
    let toml = toml.replace("schema = \"public\"\n", "").replacen(
        "name = ",
        &format!("schema = \"{schema}\"\nname = "),
        1,
    );
    Profile::from_toml_str(&toml, Path::new("p.toml")).unwrap()
}

/// Rows of the docs profile: every column type, NULLs, keys out of order.
fn docs_rows() -> Vec<Doc> {
    let full = |line: u64, id: &'static str, qty: i64| Doc {
        line,
        id: Some(id),
        amount: Some(-12_345_678),
        qty: Some(qty),
        flag: Some(line.is_multiple_of(2)),
        day: Some(19_000 + i32::try_from(line).unwrap()),
        at: Some(3_600_000_000 + i64::try_from(line).unwrap()),
        ts: Some(1_700_000_000_000_000 + i64::try_from(line).unwrap()),
        note: Some(format!("nöte {line} ~|^ \t\\")),
    };
    vec![
        full(4, "k3", 30),
        full(2, "k1", 10),
        Doc {
            line: 3,
            id: Some("k2"),
            qty: Some(20),
            ..Doc::default()
        },
        full(9, "a0", -5),
    ]
}

/// The versioned profile's text rows: line, key, note, change date, change time.
fn versioned_batch(profile: &Profile) -> RecordBatch {
    let text = super::versions::text(&[
        (2, "k2", "b", "20250130", "10:00:00"),
        (3, "k1", "a", "", ""),
        (5, "k0", "c", "20250101", ""),
    ]);
    let v = datsync::validate(profile, &text).unwrap();
    datsync::transform(profile, &v.accepted).unwrap().batch
}

/// The profiles of the table of forms, by name, and their typed batch.
pub(super) fn forms() -> Vec<(&'static str, String)> {
    let row_only = VERSIONED_PROFILE.replace("version_from_name = 'V_(?<date>\\d{8})'\n", "");
    let file_only =
        VERSIONED_PROFILE.replace("version = [\"changed_date\", \"changed_time\"]\n", "");
    assert_ne!(row_only, VERSIONED_PROFILE);
    assert_ne!(file_only, VERSIONED_PROFILE);
    vec![
        ("no version, every column type", DOCS_PROFILE.to_owned()),
        (
            "an integer key",
            DOCS_PROFILE
                .replace("key = \"id\"", "key = \"qty\"")
                .replace(
                    "source = \"qty\"\ntype = \"integer\"\n",
                    "source = \"qty\"\ntype = \"integer\"\nrequired = true\nnot_empty = true\n",
                ),
        ),
        ("row and file version", VERSIONED_PROFILE.to_owned()),
        ("row version only", row_only),
        ("file version only", file_only),
    ]
}

fn typed(toml: &str, profile: &Profile) -> RecordBatch {
    if toml.contains("table = \"docs\"") {
        batch(profile, &docs_rows())
    } else {
        versioned_batch(profile)
    }
}

/// Registers the same sync (same id, same file name) in `schema`.
async fn register(c: &Client, schema: &str, file: &str) -> SyncRef {
    let t = chrono::DateTime::parse_from_rfc3339("2025-02-01T08:00:00Z")
        .unwrap()
        .to_utc();
    let reg = SyncRegistration {
        sync_id: SyncId::new(t, 7),
        file_name: file.to_owned(),
        file_path: format!("in/{file}"),
        file_size_bytes: None,
        checkpoint_location: None,
    };
    register_sync(c, schema, &reg).await.unwrap()
}

async fn load_into(c: &mut Client, profile: &Profile, file: &str, rows: &RecordBatch) -> ChunkLoad {
    let sync = register(c, &profile.schema, file).await;
    let facts = ChunkFacts {
        rows_read: rows.num_rows() as u64,
        ..ChunkFacts::default()
    };
    Loader::new(profile)
        .load_chunk_with_facts(c, &sync, ChunkId(0), "sha", rows, &facts)
        .await
        .unwrap()
}

/// Every row of the table as JSON but its timestamps, in key order; and whether every row's
/// `created_at` and `updated_at` are the chunk transaction's time (its ledger row's).
async fn table(c: &Client, profile: &Profile) -> (Vec<serde_json::Value>, bool) {
    let t = format!("\"{}\".\"{}\"", profile.schema, profile.table);
    let key = &profile.key[0];
    let rows = c
        .query(
            &format!(
                "SELECT to_jsonb(t) - 'created_at' - 'updated_at' FROM {t} t ORDER BY \"{key}\""
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let stamped: bool = c
        .query_one(
            &format!(
                "SELECT bool_and(t.created_at = l.committed_at AND t.updated_at = l.committed_at)
                   FROM {t} t, \"{}\".sync_chunks l",
                profile.schema
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (rows, stamped)
}

/// For every form: a chunk COPYed into the table, and the same chunk into a table with a
/// rule (which `COPY` would not honour, so it takes the staging path): the same rows, the
/// same bookkeeping, the same counts.
#[tokio::test]
async fn a_chunk_of_new_keys_is_copied_as_the_staging_path_writes_it() {
    with_db(|db| async move {
        let mut c = db.client().await;
        // A file name with a version and one without: a row version joined to the file's, or
        // to `-`, or NULL.
        let files = ["V_20250120_ZTDWR.dat", "ZTDWR.dat"];
        for (i, (form, toml)) in forms().into_iter().enumerate() {
            for (f, file) in files.iter().enumerate() {
                let form = format!("{form}, {file}");
                let direct = in_schema(&toml, &format!("direct_{i}_{f}"));
                let staged = in_schema(&toml, &format!("staged_{i}_{f}"));
                for p in [&direct, &staged] {
                    init_db(&mut c, p).await.unwrap();
                }
                c.batch_execute(&format!(
                    "CREATE RULE no_op AS ON UPDATE TO \"{}\".\"{}\" DO ALSO NOTHING",
                    staged.schema, staged.table
                ))
                .await
                .unwrap();
                let rows = typed(&toml, &direct);
                let d = load_into(&mut c, &direct, file, &rows).await;
                let s = load_into(&mut c, &staged, file, &rows).await;
                assert!(d.direct_copy && d.new_keys, "{form}: {d:?}");
                assert!(!s.direct_copy && s.new_keys, "{form}: {s:?}");
                assert_eq!(
                    (d.rows, d.inserted, d.updated, d.skipped_older, d.superseded),
                    (s.rows, s.inserted, s.updated, s.skipped_older, s.superseded),
                    "{form}"
                );
                assert_eq!(d.inserted, rows.num_rows() as u64, "{form}");
                let (ours, stamped) = table(&c, &direct).await;
                assert!(
                    stamped,
                    "{form}: created_at/updated_at are not the transaction's time"
                );
                let (theirs, stamped) = table(&c, &staged).await;
                assert!(stamped, "{form}");
                assert_eq!(ours.len(), rows.num_rows(), "{form}");
                assert_eq!(ours, theirs, "{form}");
            }
        }
    })
    .await;
}

/// A table whose columns the binary rows do not fit as they are (an adopted `varchar(n)`,
/// `integer` or `numeric(p,s)` column, which the staging path's `INSERT … SELECT` casts), with
/// row-level security, or without a unique index on the key, takes the staging path, and
/// loads the same rows.
#[tokio::test]
async fn a_table_the_copy_cannot_write_as_it_is_takes_the_staging_path() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let alters = [
            "ALTER COLUMN note TYPE varchar(40)",
            "ALTER COLUMN qty TYPE integer",
            "ALTER COLUMN amount TYPE numeric(20, 6)",
            "ALTER COLUMN source_file TYPE varchar(200)",
            // `COPY FROM` refuses a table with row-level security for a role it applies to.
            "ENABLE ROW LEVEL SECURITY",
            // No unique index to catch a key another sync inserts after the look-up.
            "DROP CONSTRAINT docs_pkey",
        ];
        let reference = in_schema(DOCS_PROFILE, "reference");
        init_db(&mut c, &reference).await.unwrap();
        let rows = batch(&reference, &docs_rows());
        assert!(
            load_into(&mut c, &reference, "a.dat", &rows)
                .await
                .direct_copy
        );
        let (want, _) = table(&c, &reference).await;
        for (i, alter) in alters.iter().enumerate() {
            let p = in_schema(DOCS_PROFILE, &format!("adopted_{i}"));
            init_db(&mut c, &p).await.unwrap();
            c.batch_execute(&format!("ALTER TABLE \"{}\".docs {alter}", p.schema))
                .await
                .unwrap();
            let r = load_into(&mut c, &p, "a.dat", &rows).await;
            assert!(!r.direct_copy && r.new_keys, "{alter}: {r:?}");
            assert_eq!(r.inserted, 4, "{alter}");
            let (got, stamped) = table(&c, &p).await;
            assert!(stamped, "{alter}");
            assert_eq!(got, want, "{alter}");
        }
    })
    .await;
}

/// A chunk with a key the table holds, or with a key twice (a batch validation did not
/// reduce), is not COPYed: it is upserted with its exact counts.
#[tokio::test]
async fn a_stored_or_repeated_key_keeps_the_chunk_off_the_copy() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let p = in_schema(DOCS_PROFILE, "public");
        init_db(&mut c, &p).await.unwrap();
        let loader = Loader::new(&p);
        let sync = register(&c, "public", "a.dat").await;
        let doc = |line, id| super::docs::doc(line, id, "n");
        let chunks = [
            vec![doc(2, "k1"), doc(3, "k2")],
            vec![doc(4, "k3"), doc(5, "k2")],
            vec![doc(6, "k4"), doc(7, "k4")],
        ];
        let mut loads = Vec::new();
        for (i, rows) in chunks.iter().enumerate() {
            let b = batch(&p, rows);
            let chunk = ChunkId(u32::try_from(i).unwrap());
            loads.push(
                loader
                    .load_chunk(&mut c, &sync, chunk, "sha", &b)
                    .await
                    .unwrap(),
            );
        }
        assert!(loads[0].direct_copy);
        let r = &loads[1];
        assert!(!r.direct_copy && !r.new_keys, "k2 is stored: {r:?}");
        assert_eq!((r.inserted, r.superseded), (1, 1));
        let r = &loads[2];
        assert!(!r.direct_copy, "k4 twice: {r:?}");
        assert_eq!((r.inserted, r.superseded), (1, 1));
        let n: i64 = c
            .query_one("SELECT count(*) FROM docs", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 4);
    })
    .await;
}

/// The docs table in `public` and its loader, with the log [`arrivals`] reads.
async fn logging_arrivals(c: &mut Client) -> (Profile, Loader) {
    let p = in_schema(DOCS_PROFILE, "public");
    init_db(c, &p).await.unwrap();
    c.batch_execute(
        "CREATE TABLE arrivals (n bigserial PRIMARY KEY, id text NOT NULL);
         CREATE FUNCTION log_arrival() RETURNS trigger LANGUAGE plpgsql AS $f$
           BEGIN INSERT INTO arrivals (id) VALUES (NEW.id); RETURN NEW; END $f$;
         CREATE TRIGGER log_arrival BEFORE INSERT ON docs
           FOR EACH ROW EXECUTE FUNCTION log_arrival();",
    )
    .await
    .unwrap();
    let loader = Loader::new(&p);
    (p, loader)
}

/// The keys in the order their rows reached the target table, read from a log filled by a
/// `BEFORE INSERT` trigger, which fires for every row an insert, an upsert or a COPY
/// offers, in the order it offers them.
async fn arrivals(c: &Client) -> Vec<String> {
    let keys = c
        .query("DELETE FROM arrivals RETURNING n, id", &[])
        .await
        .unwrap();
    let mut keys: Vec<(i64, String)> = keys.iter().map(|r| (r.get(0), r.get(1))).collect();
    keys.sort_unstable();
    keys.into_iter().map(|(_, k)| k).collect()
}

/// Every path writes a chunk's rows in its keys' byte order, whatever the file's order and
/// the database's collation: the COPY straight into the table; a chunk with a stored key,
/// staged in key order and upserted without a sort of its own; a chunk of new keys that the
/// COPY cannot write (an adopted `varchar` column), staged in key order and inserted; a
/// chunk with a key twice, staged as it comes and upserted with its `ORDER BY`. Two syncs
/// writing overlapping keys then lock them in the same order. The keys are chosen so that
/// the file's order, the byte order and a linguistic order all differ.
#[tokio::test]
async fn every_path_writes_a_chunks_rows_in_the_byte_order_of_their_keys() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let (p, loader) = logging_arrivals(&mut c).await;
        let doc = |line, id| super::docs::doc(line, id, "n");
        let load = async |c: &mut Client, sync: &SyncRef, chunk: u32, rows: &[Doc]| {
            loader
                .load_chunk(c, sync, ChunkId(chunk), "sha", &batch(&p, rows))
                .await
                .unwrap()
        };
        let first = register(&c, "public", "a.dat").await;
        // An empty table: COPYed straight in.
        let r = load(
            &mut c,
            &first,
            0,
            &[doc(2, "b"), doc(3, "B"), doc(4, "é"), doc(5, "a")],
        )
        .await;
        assert!(r.direct_copy, "{r:?}");
        assert_eq!(arrivals(&c).await, ["B", "a", "b", "é"]);
        // `a` is stored: staged and upserted.
        let r = load(
            &mut c,
            &first,
            1,
            &[doc(6, "Z"), doc(7, "a"), doc(8, "e"), doc(9, "A")],
        )
        .await;
        assert!(!r.direct_copy && !r.new_keys, "{r:?}");
        assert_eq!((r.inserted, r.superseded), (3, 1));
        assert_eq!(arrivals(&c).await, ["A", "Z", "a", "e"]);
        // A `varchar` column the COPY does not write as it is: new keys staged and inserted.
        c.batch_execute("ALTER TABLE docs ALTER COLUMN note TYPE varchar(40)")
            .await
            .unwrap();
        let r = load(
            &mut c,
            &first,
            2,
            &[doc(10, "n"), doc(11, "ñ"), doc(12, "M"), doc(13, "m")],
        )
        .await;
        assert!(!r.direct_copy && r.new_keys, "{r:?}");
        assert_eq!(r.inserted, 4);
        assert_eq!(arrivals(&c).await, ["M", "m", "n", "ñ"]);
        // A key twice: the upsert that reduces duplicates sorts.
        let r = load(
            &mut c,
            &first,
            3,
            &[doc(14, "y"), doc(15, "Y"), doc(16, "y"), doc(17, "b")],
        )
        .await;
        assert!(!r.direct_copy && !r.new_keys, "{r:?}");
        assert_eq!((r.inserted, r.superseded), (2, 2));
        assert_eq!(arrivals(&c).await, ["Y", "b", "y"]);
        let stored: Vec<(String, i64)> = c
            .query(
                "SELECT id, source_line FROM docs ORDER BY id COLLATE \"C\"",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let want = [
            ("A", 9),
            ("B", 3),
            ("M", 12),
            ("Y", 15),
            ("Z", 6),
            ("a", 7),
            ("b", 17),
            ("e", 8),
            ("m", 13),
            ("n", 10),
            ("y", 16),
            ("é", 4),
            ("ñ", 11),
        ];
        let want: Vec<(String, i64)> = want.iter().map(|(k, l)| ((*k).to_owned(), *l)).collect();
        assert_eq!(stored, want);
    })
    .await;
}

/// A chunk of many pages — rows of very different widths, keys in a shuffled order, one of
/// them stored — staged in key order reaches the table in it: the staging table's heap keeps
/// the order the COPY sent (a table created in its transaction: no row goes back to an
/// earlier page with room), and its scan reads it so.
#[tokio::test]
async fn a_chunk_of_many_pages_staged_in_key_order_reaches_the_table_in_it() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let (p, loader) = logging_arrivals(&mut c).await;
        let sync = register(&c, "public", "a.dat").await;
        let key = |i: u64| -> &'static str { Box::leak(format!("k{i:04}").into_boxed_str()) };
        let stored = [super::docs::doc(2, key(777), "stored")];
        let r = loader
            .load_chunk(&mut c, &sync, ChunkId(0), "sha", &batch(&p, &stored))
            .await
            .unwrap();
        assert!(r.direct_copy);
        arrivals(&c).await;
        let rows_n: u64 = 2000;
        let rows: Vec<Doc> = (0..rows_n)
            .map(|i| {
                // A permutation of the keys; widths from 0 to ~1,500 bytes, so that a short
                // row follows a page a long one could not fill.
                let k = (i * 1009) % rows_n;
                let width = usize::try_from((i * 7919) % 1500).unwrap();
                let note: String = (0..width)
                    .map(|j| char::from(b'a' + (j % 26) as u8))
                    .collect();
                super::docs::doc(10 + i, key(k), &note)
            })
            .collect();
        let r = loader
            .load_chunk(&mut c, &sync, ChunkId(1), "sha", &batch(&p, &rows))
            .await
            .unwrap();
        assert!(!r.direct_copy && !r.new_keys, "{r:?}");
        assert_eq!((r.inserted, r.superseded), (rows_n - 1, 1));
        let got = arrivals(&c).await;
        let want: Vec<String> = (0..rows_n).map(|k| format!("k{k:04}")).collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the rows reached the table out of key order");
    })
    .await;
}

/// One form of [`the_range_look_up_answers_as_the_look_up_of_each_key`]: its name, the key
/// column's type when it is not the one `init-db` creates (`ALTER … TYPE`), the stored keys
/// and the chunk's.
type RangeForm = (
    &'static str,
    Option<&'static str>,
    &'static [&'static str],
    &'static [&'static str],
);

/// Rows of `keys` from line `first`, each noted `note` and its line: the text key `id`, or,
/// with `integer`, the key `qty` (each key a number).
pub(super) fn keyed_rows(keys: &[&'static str], first: u64, integer: bool, note: &str) -> Vec<Doc> {
    keys.iter()
        .zip(first..)
        .map(|(&k, line)| Doc {
            line,
            id: Some(if integer { "same" } else { k }),
            qty: Some(if integer { k.parse().unwrap() } else { 1 }),
            note: Some(format!("{note}{line}")),
            ..Doc::default()
        })
        .collect()
}

/// The table of `toml` in `schema`, counting with a sequence every row an insert, an
/// upsert or a COPY offers it (a `BEFORE INSERT` trigger: aborted rows too), its key column
/// of type `key_type` when given, its note a `varchar` (which the COPY cannot write) with
/// `twin`. The form's stored keys are loaded as chunk 0, its chunk as chunk 1 of the same
/// sync: returns chunk 1's load, the table's rows and the rows offered in all.
async fn load_range_form(
    c: &mut Client,
    toml: &str,
    schema: &str,
    (key_type, twin): (Option<&str>, bool),
    (stored, chunk): (&[&'static str], &[&'static str]),
) -> (ChunkLoad, Vec<serde_json::Value>, i64) {
    use std::fmt::Write as _;
    let integer = toml.contains("key = \"qty\"");
    let key = if integer { "qty" } else { "id" };
    let p = in_schema(toml, schema);
    init_db(c, &p).await.unwrap();
    let s = &p.schema;
    let mut setup = format!(
        "CREATE SEQUENCE \"{s}\".offered;
         CREATE FUNCTION \"{s}\".offered() RETURNS trigger LANGUAGE plpgsql AS $f$
           BEGIN PERFORM nextval('\"{s}\".offered'); RETURN NEW; END $f$;
         CREATE TRIGGER offered BEFORE INSERT ON \"{s}\".docs
           FOR EACH ROW EXECUTE FUNCTION \"{s}\".offered();"
    );
    if let Some(ty) = key_type {
        let _ = write!(
            setup,
            "ALTER TABLE \"{s}\".docs ALTER COLUMN {key} TYPE {ty};"
        );
    }
    if twin {
        let _ = write!(
            setup,
            "ALTER TABLE \"{s}\".docs ALTER COLUMN note TYPE varchar(40);"
        );
    }
    c.batch_execute(&setup).await.unwrap();
    let sync = register(c, s, "a.dat").await;
    let loader = Loader::new(&p);
    let rows = batch(&p, &keyed_rows(stored, 2, integer, "n"));
    let first = loader
        .load_chunk(c, &sync, ChunkId(0), "sha", &rows)
        .await
        .unwrap();
    assert_eq!(first.inserted, stored.len() as u64);
    let rows = batch(&p, &keyed_rows(chunk, 10, integer, "n"));
    let load = loader
        .load_chunk(c, &sync, ChunkId(1), "sha", &rows)
        .await
        .unwrap();
    let offered: i64 = c
        .query_one(
            &format!("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM \"{s}\".offered"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (load, table(c, &p).await.0, offered)
}

/// The forms of [`the_range_look_up_answers_as_the_look_up_of_each_key`], each with its
/// profile: the docs profile (a text key) or the same with the integer key `qty`.
fn range_forms() -> Vec<(RangeForm, String)> {
    const ICU: Option<&str> = Some("text COLLATE \"und-x-icu\"");
    const VARCHAR: Option<&str> = Some("varchar(20)");
    let text_forms: [RangeForm; 10] = [
        ("stored below", None, &["a0"], &["k1", "k3"]),
        ("stored above", None, &["z9"], &["k1", "k3"]),
        (
            "stored between, not the chunk's",
            None,
            &["k2"],
            &["k1", "k3"],
        ),
        ("stored at the least", None, &["k1"], &["k1", "k3"]),
        ("stored at the greatest", None, &["k3"], &["k1", "k3"]),
        ("stored inside", None, &["k2"], &["k1", "k2", "k3"]),
        (
            "ICU: a stored key out of the database's order",
            ICU,
            &["a"],
            &["a", "B"],
        ),
        ("ICU: new keys", ICU, &["a"], &["b", "C"]),
        (
            "varchar: stored between, not the chunk's",
            VARCHAR,
            &["k2"],
            &["k1", "k3"],
        ),
        (
            "varchar: stored at the greatest",
            VARCHAR,
            &["k3"],
            &["k1", "k3"],
        ),
    ];
    let int_forms: [RangeForm; 8] = [
        (
            "integer: stored between, not the chunk's",
            None,
            &["5"],
            &["-3", "9"],
        ),
        ("integer: stored at the least", None, &["-3"], &["-3", "9"]),
        ("integer: stored above", None, &["12"], &["-3", "9"]),
        ("integer: stored inside", None, &["0"], &["-3", "0", "9"]),
        (
            "int4: stored between, not the chunk's",
            Some("integer"),
            &["5"],
            &["-3", "9"],
        ),
        (
            "int4: stored at the greatest",
            Some("integer"),
            &["9"],
            &["-3", "9"],
        ),
        (
            "numeric: stored between, not the chunk's",
            Some("numeric"),
            &["5"],
            &["-3", "9"],
        ),
        (
            "numeric: stored inside",
            Some("numeric"),
            &["0"],
            &["-3", "0", "9"],
        ),
    ];
    let int_toml = forms()
        .into_iter()
        .find(|(form, _)| *form == "an integer key")
        .unwrap()
        .1;
    text_forms
        .into_iter()
        .map(|f| (f, DOCS_PROFILE.to_owned()))
        .chain(int_forms.into_iter().map(|f| (f, int_toml.clone())))
        .collect()
}

/// The look-up before the COPY asks first whether the table holds any key between the
/// chunk's least and greatest, and asks key by key only when it does: it answers as the
/// per-key look-up would in every form — stored keys below, above or between the chunk's,
/// or among them at its least, its greatest or inside; a text key and an integer key, and
/// the adopted types the look-up still asks about (`varchar`, `integer`, `numeric`); a key
/// column whose collation orders otherwise than the database's (ICU's `und-x-icu`, where
/// `a` < `B`; bytes, and the test database's `C.UTF-8`, which the test checks, have `B` <
/// `a`), where the range is not used. Each table counts every row an insert, an upsert or a COPY offers it, aborted ones
/// too ([`load_range_form`]): a chunk whose stored key the range missed would be offered to
/// a COPY (or, where the COPY cannot write the table, to an insert) that fails on the unique
/// index, leaving the key in the server's log, before it is upserted. So every row must be
/// offered once; a chunk of new keys is COPYed; and the counts and the rows are those of a
/// twin table the COPY cannot write.
#[tokio::test]
async fn the_range_look_up_answers_as_the_look_up_of_each_key() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let icu: bool = c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            icu,
            "PostgreSQL is built without ICU: the ICU forms cannot run"
        );
        let bytes_order: bool = c.query_one("SELECT 'B' < 'a'", &[]).await.unwrap().get(0);
        assert!(
            bytes_order,
            "the test database's collation orders B after a: the ICU forms would not tell"
        );
        for (i, ((form, key_type, stored, chunk), toml)) in range_forms().into_iter().enumerate() {
            let keys = (stored, chunk);
            let toml = toml.as_str();
            let (real, real_rows, real_offered) =
                load_range_form(&mut c, toml, &format!("range_{i}"), (key_type, false), keys).await;
            let (twin, twin_rows, twin_offered) =
                load_range_form(&mut c, toml, &format!("twin_{i}"), (key_type, true), keys).await;
            let new = !chunk.iter().any(|k| stored.contains(k));
            // An adopted key type the COPY cannot write keeps every chunk off it.
            let copies = key_type.is_none_or(|t| t.starts_with("text"));
            assert_eq!(real.direct_copy, new && copies, "{form}: {real:?}");
            assert!(!twin.direct_copy, "{form}: {twin:?}");
            assert_eq!(real.new_keys, new, "{form}: {real:?}");
            assert_eq!(twin.new_keys, new, "{form}: {twin:?}");
            // The first chunk's rows, then the chunk's, each offered once.
            let once = i64::try_from(stored.len() + chunk.len()).unwrap();
            assert_eq!(
                (real_offered, twin_offered),
                (once, once),
                "{form}: rows offered (the table, its twin)"
            );
            assert_eq!(
                (real.inserted, real.updated, real.superseded),
                (twin.inserted, twin.updated, twin.superseded),
                "{form}"
            );
            assert_eq!(real_rows, twin_rows, "{form}");
        }
    })
    .await;
}

/// An adopted `char(n)` key compares with the `text` keys the look-up sends only as `text`,
/// after its blanks are cut, which its index cannot serve: the look-up would scan the whole
/// table once per key of the chunk. It is not looked up (the chunk is upserted, which
/// decides), and the chunk loads with its exact counts. The table's sequential scans are
/// counted by the server's statistics, flushed by the loader's own session.
#[tokio::test]
async fn a_key_its_index_cannot_compare_with_the_keys_sent_is_not_looked_up() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let p = in_schema(DOCS_PROFILE, "bpchar");
        init_db(&mut c, &p).await.unwrap();
        c.batch_execute("ALTER TABLE bpchar.docs ALTER COLUMN id TYPE char(10)")
            .await
            .unwrap();
        let loader = Loader::new(&p);
        let sync = register(&c, "bpchar", "a.dat").await;
        let key = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let stored: Vec<Doc> = (0..5)
            .map(|i| super::docs::doc(2 + i, key(format!("s{i}")), "n"))
            .collect();
        // 200 new keys, then the last stored one, in key order.
        let chunk: Vec<Doc> = (0..200)
            .map(|i| super::docs::doc(10 + i, key(format!("n{i:03}")), "n"))
            .chain([super::docs::doc(300, "s4", "newer")])
            .collect();
        let scans = async |c: &Client| -> i64 {
            c.batch_execute("SELECT pg_stat_force_next_flush()")
                .await
                .unwrap();
            c.batch_execute("SELECT pg_stat_clear_snapshot()")
                .await
                .unwrap();
            c.query_one(
                "SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'bpchar.docs'::regclass",
                &[],
            )
            .await
            .unwrap()
            .get(0)
        };
        let first = loader
            .load_chunk(&mut c, &sync, ChunkId(0), "sha", &batch(&p, &stored))
            .await
            .unwrap();
        assert_eq!(first.inserted, 5);
        let before = scans(&c).await;
        let r = loader
            .load_chunk(&mut c, &sync, ChunkId(1), "sha", &batch(&p, &chunk))
            .await
            .unwrap();
        let during = scans(&c).await - before;
        assert!(!r.direct_copy && !r.new_keys, "{r:?}");
        assert_eq!((r.inserted, r.updated, r.superseded), (200, 0, 1), "{r:?}");
        assert!(
            during < 10,
            "{during} sequential scans of the table for one chunk: its keys were looked up \
             one by one"
        );
        // A chunk of new keys only: not looked up, so not known to be new.
        let fresh: Vec<Doc> = (0..5)
            .map(|i| super::docs::doc(400 + i, key(format!("x{i}")), "n"))
            .collect();
        let r = loader
            .load_chunk(&mut c, &sync, ChunkId(2), "sha", &batch(&p, &fresh))
            .await
            .unwrap();
        assert!(!r.direct_copy && !r.new_keys, "{r:?}");
        assert_eq!((r.inserted, r.updated, r.superseded), (5, 0, 0), "{r:?}");
        let note: String = c
            .query_one("SELECT note FROM bpchar.docs WHERE id = 's4'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(note, "newer");
    })
    .await;
}
