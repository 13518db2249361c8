//! Chunks apart (`load/apart.rs`): a chunk that shares no key with a committed chunk of its
//! sync is upserted without looking up who stored the rows it updates, and is counted as the
//! upsert that looks would count it — in every form where its key range and the table could
//! disagree.

use std::collections::BTreeMap;

use datsync::{ChunkId, ChunkLoad, Loader, SyncId, SyncRef, SyncRegistration, register_sync};
use tokio_postgres::Client;

use super::db::with_db;
use super::direct::{forms, in_schema, keyed_rows};
use super::docs::{DOCS_PROFILE, batch};

/// Registers sync number `n` of file `a.dat` in `schema` (a greater `n`, a later sync).
async fn register(c: &Client, schema: &str, n: u32) -> SyncRef {
    let t = chrono::DateTime::parse_from_rfc3339("2025-02-01T08:00:00Z")
        .unwrap()
        .to_utc();
    let reg = SyncRegistration {
        sync_id: SyncId::new(t, n),
        file_name: "a.dat".to_owned(),
        file_path: "in/a.dat".to_owned(),
        file_size_bytes: None,
        checkpoint_location: None,
    };
    register_sync(c, schema, &reg).await.unwrap()
}

/// One chunk of the later sync: the loader that loads it (a loader is one process's), its
/// id and its keys.
type Step = (usize, u32, &'static [&'static str]);

/// A form: its name, SQL that changes the table `init-db` made (`{s}` its schema), the keys
/// an earlier sync stored, the later sync's chunks in the order they load, and for each
/// whether it is apart and its (inserted, updated, superseded).
struct Form {
    name: &'static str,
    integer: bool,
    setup: &'static str,
    stored: &'static [&'static str],
    steps: &'static [Step],
    expected: &'static [(bool, (u64, u64, u64))],
    /// The table's key of a key as sent (the same, but under the forms' collation and type).
    one_key: fn(&str) -> String,
}

fn same(k: &str) -> String {
    k.to_owned()
}

const K0_4: &[&str] = &["k00", "k01", "k02", "k03", "k04"];
const K5_9: &[&str] = &["k05", "k06", "k07", "k08", "k09"];
const K4_8: &[&str] = &["k04", "k05", "k06", "k07", "k08"];
const STORED: &[&str] = &[
    "k00", "k01", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09",
];

type Expected = &'static [(bool, (u64, u64, u64))];

/// A form of the docs profile's text key, on the table as `init-db` made it.
fn text(
    name: &'static str,
    stored: &'static [&'static str],
    steps: &'static [Step],
    expected: Expected,
) -> Form {
    Form {
        name,
        integer: false,
        setup: "",
        stored,
        steps,
        expected,
        one_key: same,
    }
}

/// The forms of ranges: text and integer keys, one process or two.
fn range_forms() -> Vec<Form> {
    let integer = |name, steps, expected: Expected| Form {
        integer: true,
        ..text(name, &["-3", "5", "9", "10", "12"], steps, expected)
    };
    vec![
        text(
            "key ranges apart",
            STORED,
            &[(0, 0, K0_4), (0, 1, K5_9)],
            &[(true, (0, 5, 0)), (true, (0, 5, 0))],
        ),
        text(
            "apart, the later chunk first",
            STORED,
            &[(0, 1, K5_9), (0, 0, K0_4)],
            &[(true, (0, 5, 0)), (true, (0, 5, 0))],
        ),
        text(
            "a key in both chunks",
            STORED,
            &[(0, 0, K0_4), (0, 1, K4_8)],
            &[(true, (0, 5, 0)), (false, (0, 4, 1))],
        ),
        text(
            "ranges overlapping, no key in both",
            STORED,
            &[(0, 0, &["k00", "k04"]), (0, 1, &["k02", "k06"])],
            &[(true, (0, 2, 0)), (false, (0, 2, 0))],
        ),
        text(
            "a key in both, the first chunk loaded by another process",
            STORED,
            &[(0, 0, K0_4), (1, 1, K4_8)],
            &[(true, (0, 5, 0)), (false, (0, 4, 1))],
        ),
        text(
            "apart, the first chunk loaded by another process",
            STORED,
            &[(0, 0, K0_4), (1, 1, K5_9)],
            &[(true, (0, 5, 0)), (false, (0, 5, 0))],
        ),
        text(
            "a key in both, new keys besides",
            &["k04"],
            &[(0, 0, K0_4), (0, 1, K4_8)],
            &[(true, (4, 1, 0)), (false, (4, 0, 1))],
        ),
        integer(
            "integer keys apart by value (9 < 10), not by their text",
            &[(0, 0, &["-3", "5", "9"]), (0, 1, &["10", "12"])],
            &[(true, (0, 3, 0)), (true, (0, 2, 0))],
        ),
        integer(
            "integer keys: one in both",
            &[(0, 0, &["-3", "5", "9"]), (0, 1, &["9", "12"])],
            &[(true, (0, 3, 0)), (false, (0, 1, 1))],
        ),
    ]
}

/// The forms of tables where keys the chunks send as different bytes (or values) are one key.
fn one_key_forms() -> Vec<Form> {
    vec![
        Form {
            setup: "ALTER TABLE {s}.docs ALTER COLUMN id TYPE text COLLATE public.apart_ci",
            one_key: str::to_lowercase,
            ..text(
                "a nondeterministic collation: K01 and k01 are one key",
                &["K01", "K02"],
                &[(0, 0, &["K01", "K02"]), (0, 1, &["k01"])],
                &[(false, (0, 2, 0)), (false, (0, 0, 1))],
            )
        },
        Form {
            // The upsert's arbiters are every unique index on the key, this one too.
            setup: "CREATE UNIQUE INDEX docs_ci ON {s}.docs (id COLLATE public.apart_ci)",
            one_key: str::to_lowercase,
            ..text(
                "a unique index in a nondeterministic collation: K01 and k01 are one key",
                &["K01", "k05"],
                &[(0, 0, &["K01"]), (0, 1, &["k01", "k05"])],
                &[(false, (0, 1, 0)), (false, (0, 1, 1))],
            )
        },
        Form {
            setup: "CREATE FUNCTION {s}.lower_id() RETURNS trigger LANGUAGE plpgsql
                      AS $f$ BEGIN NEW.id := lower(NEW.id); RETURN NEW; END $f$;
                    CREATE TRIGGER lower_id BEFORE INSERT OR UPDATE ON {s}.docs
                      FOR EACH ROW EXECUTE FUNCTION {s}.lower_id()",
            one_key: str::to_lowercase,
            ..text(
                "a trigger that rewrites the key: K01 is stored as k01",
                &["K01", "K02"],
                &[(0, 0, &["K01"]), (0, 1, &["k01"])],
                &[(false, (0, 1, 0)), (false, (0, 0, 1))],
            )
        },
        Form {
            setup: "ALTER TABLE {s}.docs ALTER COLUMN id TYPE varchar(3)",
            one_key: |k| k.trim_end().to_owned(),
            ..text(
                "varchar(3) cuts trailing blanks: 'k01 ' is k01",
                &["k01", "k02"],
                &[(0, 0, &["k01 ", "k02 "]), (0, 1, &["k01"])],
                &[(false, (0, 2, 0)), (false, (0, 0, 1))],
            )
        },
        Form {
            setup: "ALTER TABLE {s}.docs ALTER COLUMN qty TYPE numeric(4, -1)",
            one_key: |k| ((k.parse::<i64>().unwrap() + 5) / 10 * 10).to_string(),
            integer: true,
            ..text(
                "numeric(4, -1) rounds 14 and 6 to one key, 10",
                &["10", "20"],
                &[(0, 0, &["14"]), (0, 1, &["6"])],
                &[(false, (0, 1, 0)), (false, (0, 0, 1))],
            )
        },
    ]
}

fn forms_of_apart() -> Vec<Form> {
    range_forms().into_iter().chain(one_key_forms()).collect()
}

/// Loads `form` in schema `schema`: an earlier sync stores its keys, then the later sync's
/// chunks load as its steps say. Returns each chunk's load and the table's notes by key.
async fn load_form(
    c: &mut Client,
    form: &Form,
    schema: &str,
) -> (Vec<ChunkLoad>, BTreeMap<String, String>) {
    let toml = if form.integer {
        forms()
            .into_iter()
            .find(|(name, _)| *name == "an integer key")
            .unwrap()
            .1
    } else {
        DOCS_PROFILE.to_owned()
    };
    let p = in_schema(&toml, schema);
    datsync::init_db(c, &p).await.unwrap();
    let key = if form.integer { "qty" } else { "id" };
    if !form.setup.is_empty() {
        let setup = form.setup.replace("{s}", &format!("\"{schema}\""));
        c.batch_execute(&setup).await.unwrap();
    }
    let earlier = register(c, schema, 1).await;
    let stored = batch(&p, &keyed_rows(form.stored, 2, form.integer, "earlier"));
    let first = Loader::new(&p)
        .load_chunk(c, &earlier, ChunkId(0), "sha", &stored)
        .await
        .unwrap();
    assert_eq!(first.inserted, form.stored.len() as u64, "{}", form.name);
    let sync = register(c, schema, 2).await;
    let loaders = [Loader::new(&p), Loader::new(&p)];
    let mut loads = Vec::new();
    for &(loader, chunk, keys) in form.steps {
        let line = 100 * u64::from(chunk + 1);
        let b = batch(&p, &keyed_rows(keys, line, form.integer, "later"));
        loads.push(
            loaders[loader]
                .load_chunk(c, &sync, ChunkId(chunk), "sha", &b)
                .await
                .unwrap(),
        );
    }
    let notes = c
        .query(
            &format!("SELECT {key}::text, note FROM \"{schema}\".docs"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| ((form.one_key)(r.get(0)), r.get(1)))
        .collect();
    (loads, notes)
}

/// In every form the chunks are counted as the upsert that looks up who stored each row
/// counts them — a key in two chunks of the sync is once updated (or inserted) and once
/// superseded — and a chunk is apart only where its key range meets none of the ranges this
/// process loaded before, no other chunk of the sync is in the ledger, and the table's key is
/// one key exactly when the bytes (or the values) are: not under a nondeterministic collation
/// nor in a `varchar(n)`. The table holds the later sync's newest row of each key.
#[tokio::test]
async fn a_chunk_apart_is_counted_as_the_upsert_that_looks_counts_it() {
    with_db(|db| async move {
        let mut c = db.client().await;
        c.batch_execute(
            "CREATE COLLATION public.apart_ci
               (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
        )
        .await
        .unwrap();
        for (i, form) in forms_of_apart().iter().enumerate() {
            let (loads, notes) = load_form(&mut c, form, &format!("apart_{i}")).await;
            let got: Vec<(bool, (u64, u64, u64))> = loads
                .iter()
                .map(|l| (l.apart, (l.inserted, l.updated, l.superseded)))
                .collect();
            assert_eq!(got, form.expected, "{}: {loads:?}", form.name);
            for l in &loads {
                assert_eq!(
                    l.rows,
                    l.inserted + l.updated + l.superseded,
                    "{}",
                    form.name
                );
            }
            // Each key's row is the later sync's newest line of it (a later chunk's lines
            // are greater), or the earlier sync's where the later one did not have it.
            let mut newest = BTreeMap::new();
            for (&k, line) in form.stored.iter().zip(2..) {
                newest.insert((form.one_key)(k), format!("earlier{line}"));
            }
            let mut steps = form.steps.to_vec();
            steps.sort_by_key(|&(_, chunk, _)| chunk);
            for (_, chunk, keys) in steps {
                for (&k, line) in keys.iter().zip(100 * u64::from(chunk + 1)..) {
                    newest.insert((form.one_key)(k), format!("later{line}"));
                }
            }
            assert_eq!(notes, newest, "{}", form.name);
        }
    })
    .await;
}
