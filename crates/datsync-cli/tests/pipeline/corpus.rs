//! Issue 18 item 6: real files that other projects publish (`crates/datsync/tests/corpus/`,
//! each with its `SOURCE.md`), each loaded by the real `datsync run` with its profile and
//! compared value by value with PostgreSQL's own `COPY` of the same file into the same column
//! types (the entry's `postgres.sql`).

use std::path::{Path, PathBuf};

use crate::common::{TestDb, datsync, u};

/// The corpus entries, every one tested below.
const ENTRIES: &[&str] = &[
    "census-gazetteer",
    "nc-voters",
    "pg-tenk",
    "pgloader-track",
    "tickit-venue",
    "timescale-trades",
    "tpcds-web-page",
];

/// Files an entry holds besides its data file.
const ENTRY_FILES: &[&str] = &["SOURCE.md", "postgres.sql", "profile.toml"];

/// The largest data file the corpus keeps.
const MAX_DATA_BYTES: u64 = 200 * 1024;

pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../datsync/tests/corpus")
}

/// An entry's directory, data file and target table (the entry's name with `_`).
pub struct Entry {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub table: String,
}

impl Entry {
    pub fn new(name: &'static str) -> Self {
        let dir = corpus_dir().join(name);
        let mut data: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|f| f.unwrap().path())
            .filter(|p| {
                let file = p.file_name().unwrap().to_str().unwrap();
                !ENTRY_FILES.contains(&file)
            })
            .collect();
        assert_eq!(data.len(), 1, "{name}: one data file, found {data:?}");
        Self {
            dir,
            data: data.remove(0),
            table: name.replace('-', "_"),
        }
    }

    /// Loads the file with PostgreSQL's own COPY into `reference.<table>` as `postgres.sql`
    /// says (its statements, then its last one, the COPY, with the file as input); returns
    /// the rows copied.
    pub fn copy_reference(&self, db: &TestDb) -> u64 {
        let sql = std::fs::read_to_string(self.dir.join("postgres.sql")).unwrap();
        let at = sql.rfind("\nCOPY ").expect("postgres.sql ends with a COPY") + 1;
        let (setup, copy) = sql.split_at(at);
        db.batch("CREATE SCHEMA IF NOT EXISTS reference");
        let data = std::fs::read(&self.data).unwrap();
        db.copy_in(setup, copy.trim().trim_end_matches(';'), &data)
    }
}

/// `datsync run FILE --profile PROFILE` in small chunks; returns the `--json` summary.
pub fn run_datsync(dir: &Path, db: &TestDb, profile: &Path, data: &Path) -> serde_json::Value {
    let url = db.url();
    let ck = dir.join("ck");
    let out = datsync(
        dir,
        &[
            "--profile",
            profile.to_str().unwrap(),
            "run",
            data.to_str().unwrap(),
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            // Several chunks even for the small files: rows and records cross their ends.
            "--chunk-size",
            "97",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    out.summary()
}

/// The columns of `schema.table` with their SQL types, in order.
pub fn columns(db: &TestDb, schema: &str, table: &str) -> Vec<(String, String)> {
    db.query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
           FROM pg_attribute a
          WHERE a.attrelid = format('%I.%I', $1::text, $2::text)::regclass
            AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum",
        &[&schema, &table],
    )
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Asserts that `public.<table>` (datsync's) has every column of `reference.<table>` with the
/// same type, and the same rows on those columns: `EXCEPT ALL` both ways is empty.
pub fn assert_same_values(db: &TestDb, table: &str, context: &str) {
    let reference = columns(db, "reference", table);
    let loaded = columns(db, "public", table);
    for (name, ty) in &reference {
        let got = loaded.iter().find(|(n, _)| n == name).map(|(_, t)| t);
        assert_eq!(got, Some(ty), "{context}: column {name} of {table}");
    }
    let list = reference
        .iter()
        .map(|(n, _)| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let only = |a: &str, b: &str| -> Vec<String> {
        db.query(
            &format!(
                "SELECT row_to_json(d)::text FROM
                   (SELECT {list} FROM {a}.{table} EXCEPT ALL SELECT {list} FROM {b}.{table}) d
                  LIMIT 20"
            ),
            &[],
        )
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    assert_eq!(
        only("reference", "public"),
        Vec::<String>::new(),
        "{context}: rows COPY read that datsync did not load as such"
    );
    assert_eq!(
        only("public", "reference"),
        Vec::<String>::new(),
        "{context}: rows datsync loaded that COPY did not read"
    );
}

/// One entry: COPY's reading, datsync's load, value by value; then `checks` (SQL over
/// `reference.<table>` returning one text, and the value read by hand from the file) so the
/// reference itself is what the file says.
fn corpus_entry_loads_as_copy_reads_it(name: &'static str, checks: &[(&str, &str)]) {
    let entry = Entry::new(name);
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new();
    let copied = entry.copy_reference(&db);
    let s = run_datsync(
        dir.path(),
        &db,
        &entry.dir.join("profile.toml"),
        &entry.data,
    );
    assert_eq!(s["status"], "SUCCESS", "{name}: {s}");
    assert_eq!(u(&s, "rows_read"), copied, "{name}: {s}");
    assert_eq!(u(&s, "rows_loaded"), copied, "{name}: {s}");
    assert_eq!(u(&s, "value_warnings"), 0, "{name}: {s}");
    assert!(u(&s, "chunks_total") > 1 || copied <= 97, "{name}: {s}");
    assert_same_values(&db, &entry.table, name);
    for (sql, expected) in checks {
        let sql = sql.replace("{t}", &format!("reference.{}", entry.table));
        let got: Vec<Option<String>> = db.query(&sql, &[]).iter().map(|r| r.get(0)).collect();
        assert_eq!(got, [Some((*expected).to_owned())], "{name}: {sql}");
    }
}

#[test]
fn every_corpus_entry_is_tested_and_documented() {
    let mut found: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, ENTRIES);
    for name in ENTRIES {
        let entry = Entry::new(name);
        let len = std::fs::metadata(&entry.data).unwrap().len();
        assert!(len <= MAX_DATA_BYTES, "{name}: {len} bytes");
        let source = std::fs::read_to_string(entry.dir.join("SOURCE.md")).unwrap();
        for needed in ["**Origin**", "**Licence**", "**Cut**", "commit `"] {
            assert!(source.contains(needed), "{name}: SOURCE.md lacks {needed}");
        }
    }
}

#[test]
fn corpus_postgres_tenk_headerless_tab() {
    corpus_entry_loads_as_copy_reads_it(
        "pg-tenk",
        &[
            ("SELECT count(*)::text FROM {t}", "2000"),
            (
                "SELECT concat_ws('|', unique2, stringu1, string4) FROM {t} WHERE unique1 = 8800",
                "0|MAAAAA|AAAAxx",
            ),
        ],
    );
}

#[test]
fn corpus_census_gazetteer_padded_crlf() {
    corpus_entry_loads_as_copy_reads_it(
        "census-gazetteer",
        &[
            ("SELECT count(*)::text FROM {t}", "440"),
            (
                "SELECT concat_ws('|', usps, aland, aland_sqmi, intptlong) FROM {t}
                  WHERE geoid = '0101'",
                "AL|15713029743|6066.835|-87.797812",
            ),
        ],
    );
}

#[test]
fn corpus_timescale_trades_iso_timestamps() {
    corpus_entry_loads_as_copy_reads_it(
        "timescale-trades",
        &[
            ("SELECT count(*)::text FROM {t}", "1000"),
            (
                "SELECT concat_ws('|', traded_at AT TIME ZONE 'UTC', price, size, pair)
                   FROM {t} WHERE trade_id = 140946118",
                "2020-10-12 02:39:52|50.52|1.19|AAVE-USD",
            ),
        ],
    );
}

#[test]
fn corpus_tpcds_web_page_pipe_empty_null() {
    corpus_entry_loads_as_copy_reads_it(
        "tpcds-web-page",
        &[
            ("SELECT count(*)::text FROM {t}", "60"),
            (
                "SELECT concat_ws('|', wp_rec_start_date, wp_rec_end_date IS NULL,
                                  wp_autogen_flag, wp_type IS NULL, wp_max_ad_count IS NULL)
                   FROM {t} WHERE wp_web_page_sk = 10",
                "1997-09-03|f|f|t|t",
            ),
        ],
    );
}

#[test]
fn corpus_tickit_venue_header_crlf_backslash_n() {
    corpus_entry_loads_as_copy_reads_it(
        "tickit-venue",
        &[
            (
                "SELECT count(*)::text FROM {t} WHERE venueseats IS NULL",
                "15",
            ),
            (
                "SELECT concat_ws('|', venuename, venuecity) FROM {t} WHERE venueid = 228",
                "Eugene O'Neill Theatre|New York City",
            ),
        ],
    );
}

#[test]
fn corpus_pgloader_track_copy_text_format() {
    corpus_entry_loads_as_copy_reads_it(
        "pgloader-track",
        &[
            ("SELECT count(*)::text FROM {t}", "1503"),
            (
                "SELECT track FROM {t} WHERE trackid = 3435",
                r"Cavalleria Rusticana \ Act \ Intermezzo Sinfonico",
            ),
            (
                "SELECT count(*)::text FROM {t} WHERE composer IS NULL",
                "476",
            ),
        ],
    );
}

#[test]
fn corpus_nc_voters_quoted_tsv_us_dates() {
    corpus_entry_loads_as_copy_reads_it(
        "nc-voters",
        &[
            (
                "SELECT concat_ws('|', county_id, registr_dt, name_prefx_cd = '', birth_age)
                   FROM {t} WHERE voter_reg_num = '000009113186'",
                "1|2008-10-08|t|22",
            ),
            ("SELECT min(registr_dt)::text FROM {t}", "1969-04-06"),
        ],
    );
}
