//! Issue 18 item 3 through the real `datsync run`: a composite `key = ["a", "b"]` (newest
//! line per pair wins across chunks and files, a row with an empty key part rejected naming
//! the column, counts that add up), `mode = "append"` (every line of a file of identical
//! lines inserted exactly once, across SIGKILLs and the runs that continue the sync), and
//! `valid` that lets an empty optional value through.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::common::{Outcome, TestDb, assert_counts_add_up, datsync, u};

/// A comma file keyed by a text and an integer column; `qty` may be empty but must read when
/// present (`valid` alone), `note` is anything.
const COMPOSITE: &str = r#"
name = "pairs"
table = "pairs"
key = ["a", "b"]

[format]
delimiter = ","

[[columns]]
source = "a"
type = "text"
required = true
not_empty = true
[[columns]]
source = "b"
type = "integer"
required = true
not_empty = true
[[columns]]
source = "qty"
type = "float"
valid = true
[[columns]]
source = "note"
type = "text"
"#;

/// One data row of the composite file.
#[derive(Debug, Clone)]
struct Pair {
    a: String,
    b: String,
    qty: String,
    note: String,
}

/// `rows` rows over 13 × 17 pairs, so every pair repeats in every chunk of 500; a tenth of
/// them with an empty `qty`; row 100 with an empty `b`, row 200 with `qty = "abc"` (both
/// rejected); `tag` tells two files apart.
fn pairs(rows: usize, tag: &str, stride: usize) -> Vec<Pair> {
    (0..rows)
        .map(|i| Pair {
            a: format!("r{}", (i * 7) % 13),
            b: if i == 100 {
                String::new()
            } else {
                ((i * stride) % 17).to_string()
            },
            qty: match i {
                200 => "abc".into(),
                _ if i % 10 == 3 => String::new(),
                _ => format!("{}.5", i % 100),
            },
            note: format!("{tag}{i}"),
        })
        .collect()
}

fn write(path: &Path, delimiter: &str, rows: &[Pair]) {
    let mut text = ["a", "b", "qty", "note"].join(delimiter) + "\n";
    for r in rows {
        text.push_str(
            &[&r.a, &r.b, &r.qty, &r.note]
                .map(String::as_str)
                .join(delimiter),
        );
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// The model: the accepted rows' last line per `(a, b)` → (qty, note).
fn newest(rows: &[Pair]) -> BTreeMap<(String, i64), (Option<f64>, String)> {
    let mut out = BTreeMap::new();
    for r in rows {
        if r.b.is_empty() || r.qty == "abc" {
            continue;
        }
        out.insert(
            (r.a.clone(), r.b.parse().unwrap()),
            (r.qty.parse().ok(), r.note.clone()),
        );
    }
    out
}

fn table(db: &TestDb) -> BTreeMap<(String, i64), (Option<f64>, String)> {
    db.query("SELECT a, b, qty, note FROM pairs", &[])
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect()
}

fn run(dir: &Path, db: &TestDb, profile: &str, file: &Path, env: &[(&str, &str)]) -> Outcome {
    let profile_path = dir.join("profile.toml");
    std::fs::write(&profile_path, profile).unwrap();
    let url = db.url();
    let ck = dir.join("ck");
    datsync(
        dir,
        &[
            "--profile",
            profile_path.to_str().unwrap(),
            "run",
            file.to_str().unwrap(),
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--chunk-size",
            "500",
            "--json",
        ],
        env,
    )
}

#[test]
fn a_composite_key_keeps_the_newest_line_per_pair_across_chunks_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new();
    let first = pairs(2400, "one-", 11);
    let file = dir.path().join("pairs_1.csv");
    write(&file, ",", &first);
    let out = run(dir.path(), &db, COMPOSITE, &file, &[]);
    // Two rows rejected: a partial success.
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let s = out.summary();
    assert_counts_add_up(&s);
    let want = newest(&first);
    assert_eq!(u(&s, "chunks_total"), 5, "{s}");
    assert_eq!(u(&s, "rows_read"), 2400, "{s}");
    assert_eq!(u(&s, "rows_rejected"), 2, "{s}");
    assert_eq!(u(&s, "records_inserted"), want.len() as u64, "{s}");
    assert_eq!(u(&s, "records_updated"), 0, "{s}");
    assert_eq!(u(&s, "rows_superseded"), 2398 - want.len() as u64, "{s}");
    assert_eq!(table(&db), want);
    // An empty `qty` passed `valid` and loaded NULL; the row with an empty key part was
    // rejected naming `b`.
    assert!(want.values().any(|(qty, _)| qty.is_none()));
    let errors = db.query(
        "SELECT e->>'column', e->>'reason', (e->>'line')::bigint
           FROM sync_metadata, jsonb_array_elements(validation_errors) e
          WHERE e->>'kind' IS DISTINCT FROM 'warning' ORDER BY 3",
        &[],
    );
    let errors: Vec<(String, String, i64)> = errors
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].0, "b", "{errors:?}");
    assert!(errors[0].1.contains("empty"), "{errors:?}");
    assert_eq!(errors[0].2, 102, "{errors:?}");
    assert_eq!(errors[1].0, "qty", "{errors:?}");
    assert_eq!(errors[1].2, 202, "{errors:?}");
    // The table's primary key is the pair.
    let pk: Vec<String> = db
        .query(
            "SELECT a.attname::text FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
              WHERE i.indrelid = 'pairs'::regclass AND i.indisprimary ORDER BY a.attnum",
            &[],
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(pk, ["a", "b"]);

    // A tab file over other pairs of the same space: the pairs it shares are updated, the
    // others inserted, and per pair its last line wins.
    let second = pairs(1500, "two-", 5);
    let file2 = dir.path().join("pairs_2.tsv");
    write(&file2, "\t", &second);
    let out = run(
        dir.path(),
        &db,
        &COMPOSITE.replace("delimiter = \",\"", "delimiter = \"\\t\""),
        &file2,
        &[],
    );
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let s = out.summary();
    assert_counts_add_up(&s);
    let newer = newest(&second);
    let shared = newer.keys().filter(|k| want.contains_key(*k)).count() as u64;
    assert_eq!(u(&s, "records_updated"), shared, "{s}");
    assert_eq!(
        u(&s, "records_inserted"),
        newer.len() as u64 - shared,
        "{s}"
    );
    assert_eq!(u(&s, "records_skipped_older"), 0, "{s}");
    let mut model = want;
    model.extend(newer);
    assert_eq!(table(&db), model);
}

/// A table without a natural key: every line of a file of identical lines.
const APPEND: &str = r#"
name = "events"
table = "events"
mode = "append"

[format]
delimiter = ","

[[columns]]
source = "kind"
type = "text"
[[columns]]
source = "amount"
type = "numeric"
valid = true
"#;

/// `rows` lines, each one of three, so most lines are identical to many others.
fn events(rows: usize) -> (String, BTreeMap<(String, Option<String>), i64>) {
    let mut text = String::from("kind,amount\n");
    let mut want = BTreeMap::new();
    for i in 0..rows {
        let (kind, amount) = if i % 3 == 1 {
            ("view", "")
        } else {
            ("click", "1.50")
        };
        writeln!(text, "{kind},{amount}").unwrap();
        *want
            .entry((
                kind.to_owned(),
                (!amount.is_empty()).then(|| amount.to_owned()),
            ))
            .or_insert(0) += 1;
    }
    (text, want)
}

fn appended(db: &TestDb) -> BTreeMap<(String, Option<String>), i64> {
    db.query(
        "SELECT kind, amount::text, count(*) FROM events GROUP BY 1, 2",
        &[],
    )
    .iter()
    .map(|r| ((r.get(0), r.get(1)), r.get(2)))
    .collect()
}

#[test]
fn append_mode_inserts_every_line_exactly_once_across_kills() {
    let rows = 2600;
    let dir = tempfile::tempdir().unwrap();
    let (text, want) = events(rows);
    let file = dir.path().join("events.csv");
    std::fs::write(&file, &text).unwrap();

    // A reference: one uninterrupted run into a database of its own.
    let reference_db = TestDb::new();
    let reference = run(dir.path(), &reference_db, APPEND, &file, &[]);
    assert_eq!(reference.code(), Some(0), "{}", reference.describe());
    let r = reference.summary();
    assert_counts_add_up(&r);
    assert_eq!(u(&r, "chunks_total"), 6, "{r}");
    assert_eq!(u(&r, "records_inserted"), rows as u64, "{r}");
    assert_eq!(u(&r, "rows_superseded"), 0, "{r}");
    assert_eq!(u(&r, "records_updated"), 0, "{r}");
    assert_eq!(u(&r, "records_skipped_older"), 0, "{r}");
    assert_eq!(appended(&reference_db), want);

    // Killed with SIGKILL mid-COPY of the second chunk, then after the commit of the next
    // run's second chunk, then continued to the end by the same command.
    let db = TestDb::new();
    let ck_dir = tempfile::tempdir().unwrap();
    for kill_at in ["chunk_staged:2", "chunk_committed:2"] {
        let out = run(
            ck_dir.path(),
            &db,
            APPEND,
            &file,
            &[("DATSYNC_KILL_AT", kill_at)],
        );
        assert!(out.killed(), "{kill_at}: {}", out.describe());
    }
    let committed: i64 = db.query("SELECT count(*) FROM sync_chunks", &[])[0].get(0);
    assert!((2..6).contains(&committed), "{committed} chunks committed");
    let out = run(ck_dir.path(), &db, APPEND, &file, &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let s = out.summary();
    assert_counts_add_up(&s);
    assert_eq!(u(&s, "records_inserted"), rows as u64, "{s}");
    assert_eq!(u(&s, "rows_superseded"), 0, "{s}");
    assert_eq!(appended(&db), want);
    // Each source line exactly once, under one sync.
    let lines = db.query(
        "SELECT count(*), count(DISTINCT source_line), min(source_line), max(source_line),
                count(DISTINCT sync_id)
           FROM events",
        &[],
    );
    let got: (i64, i64, i64, i64, i64) = (
        lines[0].get(0),
        lines[0].get(1),
        lines[0].get(2),
        lines[0].get(3),
        lines[0].get(4),
    );
    let n = i64::try_from(rows).unwrap();
    assert_eq!(got, (n, n, 2, n + 1, 1));
    // The same file again is already loaded: nothing is appended twice.
    let again = run(ck_dir.path(), &db, APPEND, &file, &[]);
    assert_eq!(again.code(), Some(0), "{}", again.describe());
    assert_eq!(appended(&db), want);
}
