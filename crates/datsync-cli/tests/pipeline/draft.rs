//! Issue 18 item 5: `datsync profile init FILE` drafts a profile that loads the file. On
//! every corpus file (`corpus.rs`) the drafted profile, unedited, loads the file with no
//! rejected row and no value warning, and every value equals PostgreSQL's own `COPY` of the
//! file (`postgres.sql`) read into the drafted column's type; on a generated ZTDWR file (gzip,
//! quirky header) the draft loads every row.

use std::path::Path;

use crate::common::{TestDb, datsync, u};
use crate::corpus::{Entry, columns, run_datsync};

/// `profile init FILE -o OUT [extra]`; returns stderr (the summary).
fn draft(dir: &Path, file: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "profile",
        "init",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = datsync(dir, &args, &[]);
    assert_eq!(o.code(), Some(0), "{}", o.describe());
    o.stderr
}

/// The drafted table's data columns (datsync's own left out) with their SQL types, in order.
fn drafted_columns(db: &TestDb, table: &str) -> Vec<(String, String)> {
    columns(db, "public", table)
        .into_iter()
        .filter(|(n, _)| {
            n != datsync::ROW_VERSION_COLUMN
                && !datsync::BOOKKEEPING_COLUMNS.iter().any(|(c, _)| c == n)
        })
        .collect()
}

/// Drafts a profile for a corpus entry, loads the file with it, and compares every column
/// with COPY's reading, the reference value cast into the drafted type (`''` as NULL for a
/// typed column: a quoted empty value is text to COPY, blank to a number). Returns the
/// drafted columns' types, in order, for the caller's expectations.
fn draft_loads_as_copy_reads_it(name: &'static str, extra: &[&str]) -> Vec<String> {
    let entry = Entry::new(name);
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new();
    let copied = entry.copy_reference(&db);
    let profile = dir.path().join("drafted.toml");
    let mut args = vec!["--table", "drafted"];
    args.extend_from_slice(extra);
    let summary = draft(dir.path(), &entry.data, &profile, &args);
    assert!(summary.contains("review every guess"), "{summary}");
    let s = run_datsync(dir.path(), &db, &profile, &entry.data);
    assert_eq!(s["status"], "SUCCESS", "{name}: {s}");
    assert_eq!(u(&s, "rows_loaded"), copied, "{name}: {s}");
    assert_eq!(u(&s, "rows_rejected"), 0, "{name}: {s}");
    assert_eq!(u(&s, "value_warnings"), 0, "{name}: {s}");
    let reference = columns(&db, "reference", &entry.table);
    let drafted = drafted_columns(&db, "drafted");
    assert_eq!(reference.len(), drafted.len(), "{name}: {drafted:?}");
    let cast: Vec<String> = reference
        .iter()
        .zip(&drafted)
        .map(|((r, _), (_, ty))| {
            if ty == "text" {
                format!("r.\"{r}\"::text")
            } else {
                format!("NULLIF(r.\"{r}\"::text, '')::{ty}")
            }
        })
        .collect();
    let loaded: Vec<String> = drafted.iter().map(|(d, _)| format!("d.\"{d}\"")).collect();
    let (cast, loaded) = (cast.join(", "), loaded.join(", "));
    let table = &entry.table;
    for (a, b, what) in [
        (
            format!("SELECT {cast} FROM reference.{table} r"),
            format!("SELECT {loaded} FROM public.drafted d"),
            "read by COPY, not loaded so by the draft",
        ),
        (
            format!("SELECT {loaded} FROM public.drafted d"),
            format!("SELECT {cast} FROM reference.{table} r"),
            "loaded by the draft, not read so by COPY",
        ),
    ] {
        let diff: Vec<String> = db
            .query(
                &format!("SELECT row_to_json(x)::text FROM ({a} EXCEPT ALL {b}) x LIMIT 20"),
                &[],
            )
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(diff, Vec::<String>::new(), "{name}: rows {what}");
    }
    drafted.into_iter().map(|(_, t)| t).collect()
}

fn types(list: &str) -> Vec<String> {
    list.split(',').map(|t| t.trim().to_owned()).collect()
}

#[test]
fn draft_of_postgres_tenk_with_a_given_key() {
    // unique2 is unique too: the key given wins over the guess (column_1).
    let got = draft_loads_as_copy_reads_it("pg-tenk", &["--key", "column_2"]);
    let mut want = vec!["bigint"; 13];
    want.extend(["text"; 3]);
    assert_eq!(got, want);
}

#[test]
fn draft_of_census_gazetteer() {
    let got = draft_loads_as_copy_reads_it("census-gazetteer", &[]);
    assert_eq!(
        got,
        types("text, text, bigint, bigint, numeric, numeric, numeric, numeric")
    );
}

#[test]
fn draft_of_timescale_trades() {
    let got = draft_loads_as_copy_reads_it("timescale-trades", &[]);
    assert_eq!(
        got,
        types(
            "timestamp with time zone, timestamp with time zone, bigint, bigint, text, text, \
             bigint, numeric, numeric, bigint, bigint, text"
        )
    );
}

#[test]
fn draft_of_tpcds_web_page() {
    let got = draft_loads_as_copy_reads_it("tpcds-web-page", &[]);
    assert_eq!(
        got,
        types(
            "bigint, text, date, date, bigint, bigint, boolean, bigint, text, text, bigint, \
             bigint, bigint, bigint"
        )
    );
}

#[test]
fn draft_of_tickit_venue() {
    let got = draft_loads_as_copy_reads_it("tickit-venue", &[]);
    assert_eq!(got, types("bigint, text, text, text, bigint"));
}

#[test]
fn draft_of_pgloader_track() {
    let got = draft_loads_as_copy_reads_it("pgloader-track", &[]);
    assert_eq!(
        got,
        types("bigint, text, text, text, text, text, bigint, bigint, numeric")
    );
}

#[test]
fn draft_of_nc_voters() {
    let got = draft_loads_as_copy_reads_it("nc-voters", &[]);
    assert_eq!(got.len(), 94);
    // county_id, voter_reg_num (leading zeros: text), birth_age, registr_dt (US date).
    assert_eq!(
        [&got[0], &got[2], &got[48], &got[50]],
        ["bigint", "text", "bigint", "date"]
    );
}

#[test]
fn draft_of_a_ztdwr_file_loads_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ZTDWR_20250129.dat.gz");
    let o = datsync(
        dir.path(),
        &[
            "sample",
            "--rows",
            "2000",
            "--quirky-header",
            "--gzip",
            "-o",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.code(), Some(0), "{}", o.describe());
    let profile = dir.path().join("drafted.toml");
    // From the first 1,000 records: the rest must read with the same guesses.
    let summary = draft(dir.path(), &file, &profile, &["--table", "drafted"]);
    assert!(
        summary.contains("delimiter ~|^, a header, 94 columns"),
        "{summary}"
    );
    let db = TestDb::new();
    let s = run_datsync(dir.path(), &db, &profile, &file);
    assert_eq!(s["status"], "SUCCESS", "{s}");
    assert_eq!(u(&s, "rows_loaded"), 2000, "{s}");
    assert_eq!(u(&s, "value_warnings"), 0, "{s}");
    let drafted = drafted_columns(&db, "drafted");
    for ty in ["date", "time without time zone", "numeric", "text"] {
        assert!(drafted.iter().any(|(_, t)| t == ty), "{ty}: {drafted:?}");
    }
    // ZTDWR's compact times (`082923`) loaded as times, dates in three forms as dates.
    let times: i64 = db.query(
        "SELECT count(*) FROM public.drafted WHERE change_time IS NOT NULL",
        &[],
    )[0]
    .get(0);
    assert!(times > 1000, "{times}");
}

#[test]
fn draft_without_a_unique_column_appends_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("readings.csv");
    // Two identical lines: no column (nor the row) is unique.
    std::fs::write(
        &file,
        "sensor,at,value\ns1,2020-10-12T02:39:52Z,1.5\ns1,2020-10-12T02:39:52Z,1.5\n\
         s2,2020-10-12T02:40:00Z,2.25\n",
    )
    .unwrap();
    let profile = dir.path().join("drafted.toml");
    draft(dir.path(), &file, &profile, &[]);
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains("\nmode = \"append\"\n"), "{text}");
    let db = TestDb::new();
    let s = run_datsync(dir.path(), &db, &profile, &file);
    assert_eq!(s["status"], "SUCCESS", "{s}");
    assert_eq!(u(&s, "records_inserted"), 3, "{s}");
    let rows: Vec<String> = db
        .query(
            "SELECT concat_ws('|', sensor, at AT TIME ZONE 'UTC', value) FROM public.readings
              ORDER BY source_line",
            &[],
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        rows,
        [
            "s1|2020-10-12 02:39:52|1.5",
            "s1|2020-10-12 02:39:52|1.5",
            "s2|2020-10-12 02:40:00|2.25"
        ]
    );
}

#[test]
fn draft_refuses_an_unknown_key_and_an_existing_output() {
    let entry = Entry::new("tickit-venue");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.toml");
    let o = datsync(
        dir.path(),
        &[
            "profile",
            "init",
            entry.data.to_str().unwrap(),
            "--key",
            "seats",
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.code(), Some(1), "{}", o.describe());
    assert!(
        o.stderr.contains("--key `seats`") && o.stderr.contains("venueseats"),
        "{}",
        o.stderr
    );
    assert!(!out.exists());
    std::fs::write(&out, "kept").unwrap();
    let o = datsync(
        dir.path(),
        &[
            "profile",
            "init",
            entry.data.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.code(), Some(1), "{}", o.describe());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept");
    // Without -o: the profile on stdout.
    let o = datsync(
        dir.path(),
        &["profile", "init", entry.data.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.code(), Some(0), "{}", o.describe());
    assert!(o.stdout.contains("key = \"venueid\""), "{}", o.stdout);
}
