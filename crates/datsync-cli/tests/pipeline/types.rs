//! Issue 18 item 2 through the real `datsync run`: per-column `format`s, single-column
//! `timestamp`, `timestamptz`, `float` and `numeric` load exactly what PostgreSQL's own
//! `COPY` of the same file reads into the same column types; an unreadable value is NULL and
//! a value warning naming its column (or, under `on_invalid = "reject"`, a rejected row).

use std::path::Path;

use crate::common::{Outcome, TestDb, datsync, u, warnings};

/// A comma-separated, quoted file of every new type and format.
const PROFILE: &str = r#"
name = "types"
table = "typed"
key = "id"

[format]
delimiter = ","
quote = "\""

[[columns]]
source = "id"
type = "text"
required = true
not_empty = true
[[columns]]
source = "us_date"
type = "date"
format = "%m/%d/%Y"
[[columns]]
source = "clock"
type = "time"
format = "%I:%M %p"
[[columns]]
source = "local"
type = "timestamp"
[[columns]]
source = "instant"
type = "timestamptz"
[[columns]]
source = "measure"
type = "float"
[[columns]]
source = "amount"
type = "numeric"
[[columns]]
source = "iso_tz"
type = "timestamptz"
format = "%Y-%m-%dT%H:%M:%S%.f%:z"
"#;

const HEADER: &str = "id,us_date,clock,local,instant,measure,amount,iso_tz\n";

/// Good and edge values, each one PostgreSQL reads too (`DateStyle` MDY for the US dates,
/// `TimeZone` UTC for the timestamptz without an offset, as datsync reads it).
const GOOD: &str = "\
01,10/08/2008,02:39 PM,2020-10-12T02:39:52,2020-10-12T02:39:52Z,1.5,12.50,2020-10-12T02:39:52.123456+00:00
02,1/5/2008,12:00 AM,2020-10-12 02:39:52.25,2020-10-12 08:09:52.5+05:30,-2e-3,-0.000,2020-10-12T04:39:52+02:00
03,02/29/2024,11:59 PM,2020-10-12 02:39,2020-10-11T21:39:52-05,1E300,123456789012345678901234567890.123456789,1999-12-31T23:59:59.999999-08:00
04,12/31/1999,12:30 PM,2020-10-12,2020-10-12 02:39:52,.5,.5,2020-10-12T02:39:52Z
05,,,,,,,
06,01/01/0001,12:00 PM,1999-12-31T23:59:59.9999996,2020-10-12T02:39:52.1234567Z,Infinity,\"1000000\",2020-10-12T02:39:52.5+05:30
07,\"07/04/1976\",\"01:05 AM\",2000-02-29 00:00:00,2000-02-29T12:00:00+0100,-0.0,0012.3400,2000-01-01T00:00:00-00:00
";

/// Columns as text, by id.
fn rows(db: &TestDb, table: &str) -> Vec<String> {
    db.query(
        &format!(
            "SELECT concat_ws('|', id, us_date::text, clock::text, local::text,
                    instant AT TIME ZONE 'UTC', measure::text, amount::text,
                    iso_tz AT TIME ZONE 'UTC')
               FROM {table} ORDER BY id"
        ),
        &[],
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn run(dir: &Path, db: &TestDb, profile: &str, data: &str, env: &[(&str, &str)]) -> Outcome {
    let profile_path = dir.join("types.toml");
    std::fs::write(&profile_path, profile).unwrap();
    let file = dir.join("typed.csv");
    std::fs::write(&file, format!("{HEADER}{data}")).unwrap();
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
            "--json",
        ],
        env,
    )
}

#[test]
fn every_type_and_format_loads_what_postgres_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new();
    let out = run(dir.path(), &db, PROFILE, GOOD, &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let s = out.summary();
    assert_eq!(u(&s, "rows_loaded"), 7, "{s}");
    assert_eq!(u(&s, "value_warnings"), 0, "{s}");
    // The DDL of init-db: the types the profile names.
    let types: Vec<String> = db
        .query(
            "SELECT column_name || ' ' || data_type FROM information_schema.columns
              WHERE table_name = 'typed' AND column_name IN
                ('us_date', 'clock', 'local', 'instant', 'measure', 'amount', 'iso_tz')
              ORDER BY ordinal_position",
            &[],
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        types,
        [
            "us_date date",
            "clock time without time zone",
            "local timestamp without time zone",
            "instant timestamp with time zone",
            "measure double precision",
            "amount numeric",
            "iso_tz timestamp with time zone",
        ]
    );
    // PostgreSQL's own COPY of the same file into the same column types.
    db.batch(
        "CREATE TABLE reference (id text, us_date date, clock time, local timestamp,
                                 instant timestamptz, measure double precision, amount numeric,
                                 iso_tz timestamptz)",
    );
    let copied = db.copy_in(
        "SET DateStyle = 'ISO, MDY'; SET TimeZone = 'UTC'",
        "COPY reference FROM STDIN (FORMAT csv, HEADER true)",
        format!("{HEADER}{GOOD}").as_bytes(),
    );
    assert_eq!(copied, 7);
    let reference = rows(&db, "reference");
    assert_eq!(rows(&db, "public.typed"), reference);
    // A few by hand, so that the reference itself is what the issue means.
    assert!(
        reference[0].starts_with(
            "01|2008-10-08|14:39:00|2020-10-12 02:39:52|2020-10-12 02:39:52|1.5|12.50|"
        )
    );
    assert!(
        reference[5].contains("|2000-01-01 00:00:00|2020-10-12 02:39:52.123457|"),
        "{}",
        reference[5]
    );
}

#[test]
fn unreadable_values_are_null_and_warned_or_rejected() {
    let bad = "\
b1,2008-10-08,02:39 PM,2020-10-12,2020-10-12T02:39:52Z,1,1,2020-10-12T02:39:52Z
b2,10/08/2008,25:00,2020-10-12,2020-10-12T02:39:52Z,1,1,2020-10-12T02:39:52Z
b3,10/08/2008,02:39 PM,2020-10-12,yesterday,1,1,2020-10-12T02:39:52Z
b4,10/08/2008,02:39 PM,2020-10-12,2020-10-12T02:39:52Z,12 kg,1,2020-10-12T02:39:52Z
b5,10/08/2008,02:39 PM,2020-10-12,2020-10-12T02:39:52Z,1,1e5,2020-10-12T02:39:52Z
b6,10/08/2008,02:39 PM,2020-02-30 10:00,2020-10-12T02:39:52Z,1,1,2020-10-12T02:39:52Z
b7,10/08/2008,02:39 PM,2020-10-12,2020-10-12T02:39:52Z,1,1,2020-10-12 02:39:52
";
    // `measure` rejects its row; the others load NULL with a warning.
    let profile = PROFILE.replace(
        "source = \"measure\"\ntype = \"float\"",
        "source = \"measure\"\ntype = \"float\"\non_invalid = \"reject\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new();
    // One row in seven is rejected: above the default threshold of 10 %.
    let out = run(
        dir.path(),
        &db,
        &profile,
        bad,
        &[("VALIDATION_ERROR_THRESHOLD", "0.5")],
    );
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let s = out.summary();
    assert_eq!(u(&s, "rows_loaded"), 6, "{s}");
    assert_eq!(u(&s, "rows_rejected"), 1, "{s}");
    assert_eq!(u(&s, "value_warnings"), 6, "{s}");
    let sync = s["sync_id"].as_str().unwrap();
    let warned: Vec<(u64, String)> = warnings(&dir.path().join("ck"), sync)
        .into_iter()
        .map(|(line, column, _, _, reason)| {
            assert!(reason.contains("loaded as NULL"), "{reason}");
            (line, column)
        })
        .collect();
    assert_eq!(
        warned,
        [
            (2, "us_date".to_owned()),
            (3, "clock".to_owned()),
            (4, "instant".to_owned()),
            (6, "amount".to_owned()),
            (7, "local".to_owned()),
            (8, "iso_tz".to_owned()),
        ]
    );
    let nulls: Vec<String> = db
        .query(
            "SELECT id || ':' || concat_ws(',',
                    CASE WHEN us_date IS NULL THEN 'us_date' END,
                    CASE WHEN clock IS NULL THEN 'clock' END,
                    CASE WHEN local IS NULL THEN 'local' END,
                    CASE WHEN instant IS NULL THEN 'instant' END,
                    CASE WHEN amount IS NULL THEN 'amount' END,
                    CASE WHEN iso_tz IS NULL THEN 'iso_tz' END)
               FROM public.typed ORDER BY id",
            &[],
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        nulls,
        [
            "b1:us_date",
            "b2:clock",
            "b3:instant",
            "b5:amount",
            "b6:local",
            "b7:iso_tz"
        ]
    );
}
