//! The bad-input rows of `../shared/design/fault-tests.md` that the decoder's and the
//! loader's own tests cover, done once more through the real binary and a real table: NULL
//! keys (row 19), every kind of broken line in one file (row 21), a quoted line break
//! across a chunk boundary (row 22), a truncated gzip stream (row 29).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{CLEAN, Snapshot, TestDb, Work, datsync, fresh_sync_id, options, u};
use crate::errors::reference;

/// A comma-separated profile with quotes: `id` (the key), `note`, `qty` (an integer whose
/// unreadable values reject the row).
const QUOTED: &str = r#"
name = "quoted"
table = "qdocs"
key = "id"
null_tokens = ["", "NULL"]

[format]
delimiter = ","
quote = "\""

[[columns]]
source = "id"
type = "text"
required = true
not_empty = true
[[columns]]
source = "note"
type = "text"
[[columns]]
source = "qty"
type = "integer"
on_invalid = "reject"
"#;

/// No error-rate threshold.
const THRESHOLD_OFF: (&str, &str) = ("VALIDATION_ERROR_THRESHOLD", "1");

struct Bench {
    dir: tempfile::TempDir,
    profile: PathBuf,
}

impl Bench {
    fn new(profile: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.toml");
        std::fs::write(&path, profile).unwrap();
        Self { dir, profile: path }
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn ck(&self) -> PathBuf {
        self.dir.path().join("ck")
    }

    fn cmd(&self, db: &TestDb, args: &[&str]) -> crate::common::Outcome {
        self.cmd_env(db, args, &[])
    }

    fn cmd_env(&self, db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> crate::common::Outcome {
        let url = db.url();
        let ck = self.ck();
        let mut all = args.to_vec();
        all.extend([
            "--profile",
            self.profile.to_str().unwrap(),
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
        ]);
        datsync(self.dir.path(), &all, env)
    }

    /// `datsync run FILE --chunk-size N --json`, whatever share of a chunk is rejected
    /// (these files are mostly bad on purpose).
    fn run(&self, db: &TestDb, file: &Path, chunk: &str) -> crate::common::Outcome {
        self.cmd_env(
            db,
            &[
                "run",
                file.to_str().unwrap(),
                "--chunk-size",
                chunk,
                "--json",
            ],
            &[THRESHOLD_OFF],
        )
    }

    /// `datsync rejects SYNC --format jsonl`: line → record.
    fn rejects(&self, db: &TestDb, sync: &str) -> BTreeMap<u64, Value> {
        let out = self.cmd(db, &["rejects", sync, "--format", "jsonl"]);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        out.stdout
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| (v["line"].as_u64().unwrap(), v))
            .collect()
    }
}

/// `(id, note, qty)` of every row of `qdocs`, by id.
fn qdocs(db: &TestDb) -> Vec<(String, Option<String>, Option<i64>)> {
    db.query(
        "SELECT id, note, qty::bigint FROM public.qdocs ORDER BY id",
        &[],
    )
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Row 19: a key that is empty, a null token, or only blanks is never loaded (a NULL key
/// would never conflict and would insert duplicates): each such line is rejected with the
/// key column named, and the rows with keys load.
#[test]
fn row19_null_keys_are_rejected_with_their_line_and_never_loaded() {
    let bench = Bench::new(QUOTED);
    let file = bench.file(
        "keys.csv",
        b"id,note,qty\na,one,1\n,empty,2\nNULL,token,3\n   ,blanks,4\n\"\",quoted empty,5\nb,two,6\n",
    );
    let db = TestDb::new();
    let out = bench.run(&db, &file, "3");
    assert_eq!(out.code(), Some(2), "rejected rows: {}", out.describe());
    let s = out.summary();
    assert_eq!(u(&s, "rows_rejected"), 4, "{s}");
    assert_eq!(u(&s, "rows_loaded"), 2, "{s}");
    assert_eq!(
        qdocs(&db),
        [
            ("a".to_owned(), Some("one".to_owned()), Some(1)),
            ("b".to_owned(), Some("two".to_owned()), Some(6)),
        ]
    );
    let nulls: i64 = db.query("SELECT count(*) FROM public.qdocs WHERE id IS NULL", &[])[0].get(0);
    assert_eq!(nulls, 0);
    let rejects = bench.rejects(&db, s["sync_id"].as_str().unwrap());
    assert_eq!(rejects.keys().copied().collect::<Vec<_>>(), [3, 4, 5, 6]);
    for r in rejects.values() {
        assert_eq!(r["kind"], "rejected", "{r}");
        assert_eq!(r["column"], "id", "{r}");
    }
}

/// Row 21: one file with a ragged line, a line with extra fields, blank lines, a NUL byte,
/// a line over `--max-line-bytes`, an unreadable and an overflowing integer, invalid UTF-8,
/// and a quote left open at the end. Each broken line is one rejected row with its line
/// number and a reason of its own kind; the good rows load (the invalid UTF-8 as Latin-1,
/// the documented fallback); blank lines are skipped; every data line is counted once.
#[test]
fn row21_every_kind_of_broken_line_is_rejected_with_its_own_reason_and_the_rest_loads() {
    let bench = Bench::new(QUOTED);
    let long = "x".repeat(4_000);
    let mut bytes = Vec::new();
    let lines: Vec<Vec<u8>> = vec![
        b"id,note,qty".to_vec(),                        // 1
        b"a,good,1".to_vec(),                           // 2
        b"b,ragged".to_vec(),                           // 3
        b"c,extra,3,4".to_vec(),                        // 4
        Vec::new(),                                     // 5 (blank)
        b"d,nul\0byte,5".to_vec(),                      // 6
        format!("e,{long},6").into_bytes(),             // 7
        b"f,letters,abc".to_vec(),                      // 8
        b"g,overflow,99999999999999999999999".to_vec(), // 9
        b"h,caf\xe9,9".to_vec(),                        // 10 (Latin-1)
        Vec::new(),                                     // 11 (blank)
        b"i,good,11".to_vec(),                          // 12
        b"j,\"open quote,13".to_vec(),                  // 13 (to the end of the file)
        b"k,swallowed,14".to_vec(),                     // 14
    ];
    for l in &lines {
        bytes.extend_from_slice(l);
        bytes.push(b'\n');
    }
    let file = bench.file("broken.csv", &bytes);
    let run = |db: &TestDb, env: &[(&str, &str)]| {
        let args = [
            "run",
            file.to_str().unwrap(),
            "--chunk-size",
            "4",
            "--max-line-bytes",
            "1024",
            "--json",
        ];
        bench.cmd_env(db, &args, env)
    };
    // With the default threshold the first chunk (3 of 4 rows broken, one with a NUL byte)
    // stops the sync: BAD_INPUT, written to sync_metadata with its error sample.
    let db = TestDb::new();
    let out = run(&db, &[]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "BAD_INPUT", "{s}");
    let sync = s["sync_id"].as_str().unwrap();
    assert_eq!(db.metadata(sync).unwrap()["status"], "BAD_INPUT");

    let db = TestDb::new();
    let out = run(&db, &[THRESHOLD_OFF]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let s = out.summary();
    let sync = s["sync_id"].as_str().unwrap().to_owned();
    assert_eq!(
        qdocs(&db),
        [
            ("a".to_owned(), Some("good".to_owned()), Some(1)),
            ("h".to_owned(), Some("café".to_owned()), Some(9)),
            ("i".to_owned(), Some("good".to_owned()), Some(11)),
        ]
    );
    let rejects = bench.rejects(&db, &sync);
    assert_eq!(
        rejects.keys().copied().collect::<Vec<_>>(),
        [3, 4, 6, 7, 8, 9, 13],
        "{rejects:#?}"
    );
    let reason = |line: u64| rejects[&line]["reason"].as_str().unwrap().to_owned();
    for (line, says) in [
        (3, "ragged row"),
        (4, "ragged row"),
        (6, "NUL byte"),
        (7, "line too long"),
        (13, "unterminated quote"),
    ] {
        assert!(reason(line).contains(says), "line {line}: {}", reason(line));
    }
    for line in [8, 9] {
        assert_eq!(rejects[&line]["column"], "qty", "{}", rejects[&line]);
    }
    assert_ne!(reason(3), reason(4), "fewer and more fields say which");
    assert_ne!(reason(8), reason(6));
    // Lines 13 and 14 are one record (the quote never closes): 11 data records, 2 blank
    // lines not counted.
    assert_eq!(u(&s, "rows_read"), 10, "{s}");
    assert_eq!(u(&s, "rows_rejected"), 7, "{s}");
    assert_eq!(u(&s, "rows_loaded"), 3, "{s}");
    crate::common::assert_counts_add_up(&s);
}

/// Row 22: a quoted field holding line breaks that starts in one chunk's last record and
/// ends on later lines: the record stays whole (the chunk boundary moves to its end), the
/// next chunk starts at the next record, and every row's `source_line` is the physical line
/// its record starts on.
#[test]
fn row22_a_quoted_line_break_across_a_chunk_boundary_keeps_the_record_whole() {
    let bench = Bench::new(QUOTED);
    let mut text = String::from("id,note,qty\n");
    let mut expected = Vec::new();
    let mut line = 2;
    for i in 0..12 {
        let id = format!("r{i:02}");
        // Records 4 and 9 (the last of chunks 0 and 1, chunks of 5) span three lines.
        let note = if i % 5 == 4 {
            format!("first {i}\nsecond, with a comma\nthird \"\"quoted\"\"")
        } else {
            format!("plain {i}")
        };
        writeln!(text, "{id},\"{note}\",{i}").unwrap();
        let unquoted = note.replace("\"\"", "\"");
        expected.push((id, unquoted, i64::from(i), line));
        line += 1 + i64::try_from(note.matches('\n').count()).unwrap();
    }
    let file = bench.file("quoted.csv", text.as_bytes());
    let db = TestDb::new();
    let out = bench.run(&db, &file, "5");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let s = out.summary();
    assert_eq!(u(&s, "rows_read"), 12, "{s}");
    assert_eq!(u(&s, "chunks_total"), 3, "{s}");
    let got: Vec<(String, String, i64, i64)> = db
        .query(
            "SELECT id, note, qty::bigint, source_line::bigint FROM public.qdocs ORDER BY id",
            &[],
        )
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(got, expected);
}

/// Row 29: a gzip file cut short. The sync ends BAD_INPUT (another attempt would read the
/// same bytes), exit 1, with a message naming the file, the truncated stream and its byte
/// offset; every chunk it committed is the complete file's chunk (its ledger row, checksum
/// and rows included: no partial chunk); the file delivered whole later is loaded in full
/// by a new sync.
#[test]
fn row29_a_truncated_gzip_fails_with_its_offset_and_commits_no_partial_chunk() {
    let mut o = options(3_000, 2901, CLEAN);
    o.gzip = true;
    let work = Work::with_options(&o);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let whole = Snapshot::take(&reference_db, &work.checkpoints("ck_reference"), &sync);
    let bytes = std::fs::read(&work.file).unwrap();
    std::fs::write(&work.file, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let out = work.run(&db, &ck, &["--sync-id", &sync], &[]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "BAD_INPUT", "{s}");
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains("gzip stream ends early") && error.contains("byte"),
        "{error}"
    );
    let ledger = db.ledger(&sync);
    assert!(!ledger.is_empty(), "the chunks before the cut were loaded");
    for row in &ledger {
        let chunk = usize::try_from(row["chunk_id"].as_u64().unwrap()).unwrap();
        assert_eq!(row, &whole.ledger[chunk], "a committed chunk differs");
    }
    let loaded: i64 = db.query(
        &format!("SELECT count(*) FROM {}", crate::common::TABLE),
        &[],
    )[0]
    .get(0);
    let in_ledger: u64 = ledger.iter().map(|r| r["inserted"].as_u64().unwrap()).sum();
    assert_eq!(
        u64::try_from(loaded).unwrap(),
        in_ledger,
        "no row outside a chunk"
    );
    println!("{} chunks committed before the cut: {error}", ledger.len());

    // The whole file, delivered again: a new sync loads all of it.
    std::fs::write(&work.file, &bytes).unwrap();
    let out = work.run(&db, &ck, &[], &[]);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    let s = out.summary();
    assert_ne!(s["sync_id"], sync.as_str(), "{s}");
    assert_eq!(u(&s, "rows_read"), u(&expected, "rows_read"), "{s}");
    assert_eq!(
        db.table_without(&["sync_id", "sync_seq"]),
        reference_db.table_without(&["sync_id", "sync_seq"]),
        "target rows differ"
    );
}
