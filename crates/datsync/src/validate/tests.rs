#![allow(
    clippy::unwrap_used,
    clippy::unwrap_in_result,
    reason = "tests fail loudly on any unexpected value"
)]

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};

use super::*;
use crate::model::MAX_ERROR_VALUE_CHARS;

pub(crate) const TEST_PROFILE: &str = r#"
name = "t"
table = "t"
key = "k"
[[columns]]
target = "k"
source = "spb"
type = "text"
required = true
not_empty = true
[[columns]]
source = "nik"
type = "text"
required = true
not_empty = true
[[columns]]
source = "bbm"
type = "decimal"
scale = 2
required = true
not_empty = true
valid = true
range = { gt = 0, le = 500 }
[[columns]]
target = "ts"
source = "tgl"
time_source = "jam"
type = "timestamp"
required = true
not_empty = true
valid = true
[[columns]]
target = "other_ts"
source = "tgl2"
time_source = "jam2"
type = "timestamp"
[[columns]]
source = "cnt"
type = "integer"
range = { ge = 0 }
[[columns]]
source = "flag"
type = "boolean"
[[columns]]
source = "note"
type = "text"
"#;

fn profile() -> Profile {
    Profile::from_toml_str(TEST_PROFILE, Path::new("t.toml")).unwrap()
}

const NAMES: [&str; 9] = [
    "spb", "nik", "bbm", "tgl", "jam", "tgl2", "jam2", "cnt", "flag",
];
const GOOD: [&str; 9] = [
    "0001", "0042", "12,5", "20250129", "143022", "", "", "3", "X",
];

/// A text batch as the decoder makes it: `_line`, the columns, `_error`, `_raw`. A row
/// whose first field starts with `!` is a decoder-flagged row with that reason.
fn batch(names: &[&str], rows: &[(u64, Vec<&str>)]) -> RecordBatch {
    let mut fields = vec![Field::new(LINE_COLUMN, DataType::UInt64, false)];
    fields.extend(names.iter().map(|n| Field::new(*n, DataType::Utf8, true)));
    fields.push(Field::new(ERROR_COLUMN, DataType::Utf8, true));
    fields.push(Field::new(RAW_COLUMN, DataType::Utf8, true));
    let flagged = |r: &Vec<&str>| r[0].starts_with('!');
    let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(
        rows.iter().map(|r| r.0),
    ))];
    for i in 0..names.len() {
        let values: StringArray = rows
            .iter()
            .map(|(_, r)| (!flagged(r) && !r[i].is_empty()).then_some(r[i]))
            .collect();
        columns.push(Arc::new(values));
    }
    let errors: StringArray = rows
        .iter()
        .map(|(_, r)| flagged(r).then(|| &r[0][1..]))
        .collect();
    let raw_lines: StringArray = rows
        .iter()
        .map(|(_, r)| flagged(r).then_some("a~|^b"))
        .collect();
    columns.push(Arc::new(errors));
    columns.push(Arc::new(raw_lines));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn row(line: u64, changes: &[(usize, &'static str)]) -> (u64, Vec<&'static str>) {
    let mut r = GOOD.to_vec();
    for &(i, v) in changes {
        r[i] = v;
    }
    (line, r)
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let a = batch.column_by_name(name).unwrap();
    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_owned()))
        .collect()
}

fn lines(batch: &RecordBatch) -> Vec<u64> {
    let a = batch.column_by_name(LINE_COLUMN).unwrap();
    a.as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap()
        .values()
        .to_vec()
}

#[test]
fn missing_required_columns_are_fatal_and_named() {
    let p = profile();
    let b = batch(
        &["spb", "bbm", "tgl", "cnt"],
        &[(2, vec!["1", "1", "20250101", "1"])],
    );
    let e = validate(&p, &b).unwrap_err();
    match &e {
        ValidateError::MissingColumns { columns, .. } => assert_eq!(columns, &["nik", "jam"]),
        other => panic!("{other}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("`nik`, `jam`") && text.contains("profile `t`"),
        "{text}"
    );
    // Optional columns may be missing.
    let b = batch(&NAMES[..5], &[(2, GOOD[..5].to_vec())]);
    assert_eq!(validate(&p, &b).unwrap().loaded(), 1);
    assert_eq!(missing_required(&p, ["spb", "nik", "bbm", "tgl"]), ["jam"]);
}

#[test]
fn columns_of_the_wrong_type_are_fatal() {
    let p = profile();
    let schema = Schema::new(vec![
        Field::new(LINE_COLUMN, DataType::UInt64, false),
        Field::new("spb", DataType::Utf8, true),
        Field::new("nik", DataType::Utf8, true),
        Field::new("bbm", DataType::Float64, true),
        Field::new("tgl", DataType::Utf8, true),
        Field::new("jam", DataType::Utf8, true),
    ]);
    let e = check_columns(&p, &schema).unwrap_err().to_string();
    assert!(e.contains("`bbm` is Float64"), "{e}");
    let schema = Schema::new(vec![Field::new(LINE_COLUMN, DataType::Int32, false)]);
    assert!(
        check_columns(&p, &schema)
            .unwrap_err()
            .to_string()
            .contains("_line")
    );
}

/// The column and a fragment of the reason of a rejected row; `None` when accepted.
type Expect = Option<(&'static str, &'static str)>;

#[test]
fn row_rules() {
    // (changes to a good row, expected (column, reason fragment) or None when accepted)
    let cases: &[(&[(usize, &str)], Expect)] = &[
        (&[], None),
        (&[(0, "")], Some(("spb", "empty"))),
        (&[(1, "")], Some(("nik", "empty"))),
        (&[(2, "")], Some(("bbm", "empty: a number"))),
        (&[(2, "abc")], Some(("bbm", "not a number"))),
        (
            &[(2, "612.5")],
            Some(("bbm", "out of range: must be > 0 and <= 500")),
        ),
        (&[(2, "0")], Some(("bbm", "out of range"))),
        (&[(2, "-1")], Some(("bbm", "out of range"))),
        (&[(2, "500,01")], Some(("bbm", "out of range"))),
        (&[(2, "500")], None),
        (&[(2, "500,00000")], None),
        (&[(2, "0,01")], None),
        (&[(2, "0,001")], Some(("bbm", "more than 2 decimal places"))),
        (&[(2, "1.234,5")], Some(("bbm", "out of range"))),
        (&[(3, "")], Some(("tgl", "empty: a date"))),
        (&[(3, "00000000")], Some(("tgl", "empty date (zero)"))),
        (&[(3, "20250230")], Some(("tgl", "impossible date"))),
        (&[(3, "2025/01/29")], Some(("tgl", "not a date"))),
        (&[(3, "05.01.2025")], None),
        (&[(3, "2025-01-05")], None),
        (&[(4, "2400")], Some(("jam", "impossible time"))),
        (&[(4, "996100")], Some(("jam", "impossible time"))),
        (&[(4, "1a")], Some(("jam", "not a time"))),
        (&[(4, "")], None),
        (&[(4, "000000")], None),
        (&[(4, "07")], None),
        // Not validated: an impossible time on another pair only warns later.
        (&[(5, "20250101"), (6, "2400")], None),
        (&[(5, "20250230")], None),
        // A range on an optional integer: blank passes, garbage and out of range do not.
        (&[(7, "")], None),
        (&[(7, "2,5")], None),
        (&[(7, "-1")], Some(("cnt", "out of range: must be >= 0"))),
        (&[(7, "x")], Some(("cnt", "not a number"))),
        // Booleans are never rejected.
        (&[(8, "maybe")], None),
    ];
    let p = profile();
    for (changes, want) in cases {
        let b = batch(&NAMES, &[row(7, changes)]);
        let v = validate(&p, &b).unwrap();
        assert_eq!(v.rows_read, 1);
        match want {
            None => {
                assert_eq!(v.loaded(), 1, "{changes:?}: {:?}", v.errors);
                assert!(v.errors.is_empty());
            }
            Some((column, reason)) => {
                assert_eq!(v.rejected(), 1, "{changes:?}");
                assert_eq!(v.loaded(), 0);
                let e = &v.errors[0];
                assert_eq!(e.line, 7);
                assert_eq!(e.column.as_deref(), Some(*column), "{changes:?}");
                assert!(e.reason.contains(reason), "{changes:?}: {}", e.reason);
                let value = changes.iter().find(|c| NAMES[c.0] == *column).map(|c| c.1);
                assert_eq!(e.value.as_deref(), value.filter(|v| !v.is_empty()));
            }
        }
    }
}

/// `valid` checks a value only when there is one; an empty (or all-zero) value is
/// `not_empty`'s to reject (issue 18 item 3).
#[test]
fn valid_checks_present_values_and_not_empty_rejects_empties() {
    let p = Profile::from_toml_str(
        r#"
name = "v"
table = "v"
key = "k"
[[columns]]
source = "k"
type = "text"
required = true
not_empty = true
[[columns]]
source = "n"
type = "decimal"
valid = true
[[columns]]
source = "d"
type = "date"
valid = true
[[columns]]
source = "m"
type = "integer"
not_empty = true
valid = true
[[columns]]
source = "z"
type = "date"
not_empty = true
"#,
        Path::new("v.toml"),
    )
    .unwrap();
    let names = ["k", "n", "d", "m", "z"];
    // (n, d, m, z) → the rejected column and a reason fragment, or None when loaded.
    let cases: &[([&str; 4], Expect)] = &[
        (["1.5", "20250101", "7", "20250101"], None),
        // Empty optional values pass `valid`.
        (["", "", "7", "20250101"], None),
        (["", "00000000", "7", "20250101"], None),
        // A value that is there must parse.
        (["x", "", "7", "20250101"], Some(("n", "not a number"))),
        (
            ["", "20250230", "7", "20250101"],
            Some(("d", "impossible date")),
        ),
        // `not_empty` rejects an empty value, with the type's word.
        (
            ["", "", "", "20250101"],
            Some(("m", "empty: a number is required")),
        ),
        (["", "", "7", ""], Some(("z", "empty: a date is required"))),
        (["", "", "7", "00000000"], Some(("z", "empty date (zero)"))),
    ];
    for (values, want) in cases {
        let mut r = vec!["key"];
        r.extend(values);
        let v = validate(&p, &batch(&names, &[(2, r)])).unwrap();
        match want {
            None => assert_eq!(
                (v.loaded(), v.rejected()),
                (1, 0),
                "{values:?}: {:?}",
                v.errors
            ),
            Some((column, reason)) => {
                assert_eq!(v.rejected(), 1, "{values:?}");
                let e = &v.errors[0];
                assert_eq!(e.column.as_deref(), Some(*column), "{values:?}");
                assert!(e.reason.contains(reason), "{values:?}: {}", e.reason);
            }
        }
    }
}

/// A composite key is one key: a row supersedes another only when every part matches; a
/// row with an empty or unreadable part is rejected naming that part; append mode keeps
/// every row (issue 18 item 3).
#[test]
fn composite_keys_supersede_on_every_part_and_append_keeps_every_row() {
    let text = |top: &str| {
        format!(
            "name = \"c\"\ntable = \"c\"\n{top}\n\
             [[columns]]\nsource = \"a\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
             [[columns]]\nsource = \"b\"\ntype = \"integer\"\nrequired = true\nnot_empty = true\n\
             [[columns]]\nsource = \"v\"\ntype = \"text\"\n"
        )
    };
    let keyed = Profile::from_toml_str(&text("key = [\"a\", \"b\"]"), Path::new("c.toml")).unwrap();
    let names = ["a", "b", "v"];
    let rows: Vec<(u64, Vec<&str>)> = vec![
        (2, vec!["x", "1", "first x1"]),
        (3, vec!["x", "2", "x2"]),
        (4, vec!["y", "1", "y1"]),
        (5, vec![" x ", "1", "second x1"]), // same pair once trimmed: supersedes line 2
        (6, vec!["x", "", "no b"]),         // empty key part: rejected
        (7, vec!["x", "one", "bad b"]),     // unreadable key part: rejected, never NULL
        (8, vec!["y", "2", "y2"]),
    ];
    let v = validate(&keyed, &batch(&names, &rows)).unwrap();
    assert_eq!(lines(&v.accepted), [3, 4, 5, 8]);
    assert_eq!((v.superseded, v.rejected()), (1, 2));
    let rejected: Vec<(u64, Option<&str>)> = v
        .errors
        .iter()
        .map(|e| (e.line, e.column.as_deref()))
        .collect();
    assert_eq!(rejected, [(6, Some("b")), (7, Some("b"))]);
    assert!(v.errors[0].reason.contains("empty"), "{:?}", v.errors[0]);

    let append = Profile::from_toml_str(&text("mode = \"append\""), Path::new("c.toml")).unwrap();
    let v = validate(&append, &batch(&names, &rows)).unwrap();
    // Nothing supersedes in append mode; the rules still apply (`not_empty` on `b`), and
    // `b` is no key part: its unreadable value loads as NULL with a warning, as any other.
    assert_eq!(lines(&v.accepted), [2, 3, 4, 5, 7, 8]);
    assert_eq!((v.superseded, v.rejected()), (0, 1));
}

#[test]
fn every_broken_rule_is_reported_and_joined() {
    let p = profile();
    let b = batch(&NAMES, &[row(3, &[(1, ""), (2, "abc"), (4, "2400")])]);
    let v = validate(&p, &b).unwrap();
    let columns: Vec<_> = v.errors.iter().map(|e| e.column.clone().unwrap()).collect();
    assert_eq!(columns, ["nik", "bbm", "jam"]);
    let reasons = strings(&v.rejects, REASONS_COLUMN);
    let r = reasons[0].as_deref().unwrap();
    assert_eq!(r.matches("; ").count(), 2, "{r}");
    // The first rule's column is the record's; the others name theirs.
    assert_eq!(
        strings(&v.rejects, REJECT_COLUMN_COLUMN),
        [Some("nik".to_owned())]
    );
    assert!(r.starts_with("empty: a value is required; bbm: "), "{r}");
    assert!(r.contains("; jam: "), "{r}");
}

#[test]
fn decoder_flagged_rows_are_rejected_with_the_decoder_reason() {
    let p = profile();
    let mut ragged = GOOD.to_vec();
    ragged[0] = "!ragged row: expected 9 fields, found 8";
    let b = batch(&NAMES, &[row(2, &[]), (3, ragged), row(4, &[(0, "0002")])]);
    let v = validate(&p, &b).unwrap();
    assert_eq!((v.loaded(), v.rejected(), v.superseded), (2, 1, 0));
    assert_eq!(
        v.errors,
        [RowError::new(
            3,
            None,
            Some("a~|^b"),
            "ragged row: expected 9 fields, found 8".into()
        )]
    );
    assert_eq!(strings(&v.rejects, RAW_COLUMN), [Some("a~|^b".to_owned())]);
}

#[test]
fn last_occurrence_wins_and_rejects_never_supersede() {
    let p = profile();
    let rows = [
        row(2, &[(0, "A"), (2, "1")]),
        row(3, &[(0, "B"), (2, "2")]),
        row(4, &[(0, " A "), (2, "3")]), // same key once trimmed: supersedes line 2
        row(5, &[(0, "B"), (2, "612")]), // rejected: line 3 stays
        row(6, &[(0, "C")]),
        row(7, &[(0, "A"), (2, "4")]), // supersedes line 4
        row(8, &[(0, "")]),            // empty key: rejected, never a key
        row(9, &[(0, "a")]),           // keys are case-sensitive text
        row(10, &[(0, "00C")]),        // leading zeros matter: not "C"
    ];
    let v = validate(&p, &batch(&NAMES, &rows)).unwrap();
    assert_eq!(lines(&v.accepted), [3, 6, 7, 9, 10]);
    assert_eq!(strings(&v.accepted, "bbm")[2].as_deref(), Some("4"));
    assert_eq!(v.superseded, 2);
    assert_eq!(lines(&v.superseded_rows), [2, 4]);
    assert_eq!(lines(&v.rejects), [5, 8]);
    assert_eq!(v.rows_read, v.loaded() + v.superseded + v.rejected());
    assert_eq!(v.accepted.schema(), batch(&NAMES, &rows).schema());
}

#[test]
fn a_batch_out_of_file_order_still_keeps_the_highest_line() {
    let p = profile();
    let rows = [row(9, &[(2, "9")]), row(4, &[(2, "4")])];
    let v = validate(&p, &batch(&NAMES, &rows)).unwrap();
    assert_eq!(lines(&v.accepted), [9]);
    assert_eq!(v.superseded, 1);
}

#[test]
fn rejects_keep_every_text_column_and_the_reasons() {
    let p = profile();
    let rows = [row(2, &[(2, "abc")]), row(3, &[])];
    let v = validate(&p, &batch(&NAMES, &rows)).unwrap();
    let names: Vec<_> = v
        .rejects
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut want = vec![LINE_COLUMN.to_owned()];
    want.extend(NAMES.iter().map(|n| (*n).to_owned()));
    want.extend([
        RAW_COLUMN.to_owned(),
        REJECT_COLUMN_COLUMN.to_owned(),
        REASONS_COLUMN.to_owned(),
    ]);
    assert_eq!(names, want);
    assert_eq!(strings(&v.rejects, "bbm"), [Some("abc".to_owned())]);
    assert_eq!(strings(&v.rejects, "spb"), [Some("0001".to_owned())]);
    // An all-good batch has an empty rejects batch of the same shape.
    let v = validate(&p, &batch(&NAMES, &rows[1..])).unwrap();
    assert_eq!(v.rejects.num_rows(), 0);
    assert_eq!(v.rejects.num_columns(), want.len());
}

#[test]
fn the_builtin_profile_rejects_what_ztdwr_md_says() {
    let p = Profile::ztdwr();
    let names = [
        "surat_pengantar_brg",
        "nik_supir",
        "no_polisi",
        "tanggal_timbang",
        "jam_timbang",
        "bbm_actual",
        "kilometer_actual",
    ];
    let good = [
        "0007000001",
        "0012345678901234",
        "B 1234 XYZ",
        "20250129",
        "000000",
        "45,5",
        "120.5",
    ];
    let mut rows = vec![(2, good.to_vec())];
    for (i, (col, bad)) in [
        (0, ""),
        (1, ""),
        (2, ""),
        (3, "00000000"),
        (3, "20250230"),
        (4, "2400"),
        (5, "612.5"),
        (6, "abc"),
        (6, "0"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = good.to_vec();
        r[col] = bad;
        r[0] = if col == 0 { "" } else { "0007000002" };
        rows.push((3 + i as u64, r));
    }
    let v = validate(&p, &batch(&names, &rows)).unwrap();
    assert_eq!(v.loaded(), 1);
    assert_eq!(v.rejected(), 9, "{:?}", v.errors);
    assert_eq!(v.superseded, 0);
}

#[test]
fn error_rate_and_threshold() {
    assert!((error_rate(1, 10) - 0.1).abs() < f64::EPSILON);
    assert!(error_rate(0, 0).abs() < f64::EPSILON);
    assert!(!exceeds_threshold(10, 100, DEFAULT_ERROR_THRESHOLD));
    assert!(exceeds_threshold(11, 100, DEFAULT_ERROR_THRESHOLD));
    assert!(!exceeds_threshold(0, 0, 0.0));
    assert!(exceeds_threshold(1, 1_000_000, 0.0));
}

#[test]
fn row_errors_serialize_for_sync_metadata() {
    let e = RowError::new(12, Some("bbm_actual"), Some("612.5"), "out of range".into());
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind": "rejected", "line": 12, "column": "bbm_actual", "value": "612.5",
            "reason": "out of range"})
    );
    // A sample written before `kind` existed reads back as rejected rows.
    let old: RowError = serde_json::from_value(
        serde_json::json!({"line": 12, "column": "bbm_actual", "value": "612.5", "reason": "out of range"}),
    )
    .unwrap();
    assert_eq!(old, e);
    let w = RowError::warning(
        5,
        "tanggal_buat",
        "waktu_buat",
        "20251399",
        "impossible date".into(),
    );
    assert_eq!(
        serde_json::to_value(&w).unwrap(),
        serde_json::json!({"kind": "warning", "line": 5, "column": "tanggal_buat",
            "target": "waktu_buat", "value": "20251399", "reason": "impossible date"})
    );
    let long = "é".repeat(MAX_ERROR_VALUE_CHARS + 10);
    let e = RowError::new(1, None, Some(&long), String::new());
    let v = e.value.unwrap();
    assert_eq!(v.chars().count(), MAX_ERROR_VALUE_CHARS + 1);
    assert!(v.ends_with('…'));
    assert_eq!(RowError::new(1, None, Some(""), String::new()).value, None);
}

/// The test profile without the range rule of `cnt` (so that only `on_invalid` decides), and
/// with `on_invalid = "reject"` on every typed optional column when `reject`.
fn on_invalid_profile(reject: bool) -> Profile {
    let text = TEST_PROFILE.replace(
        "type = \"integer\"\nrange = { ge = 0 }",
        "type = \"integer\"",
    );
    if !reject {
        return Profile::from_toml_str(&text, Path::new("t.toml")).unwrap();
    }
    let text = text
        .replace(
            "time_source = \"jam2\"\ntype = \"timestamp\"",
            "time_source = \"jam2\"\ntype = \"timestamp\"\non_invalid = \"reject\"",
        )
        .replace(
            "type = \"integer\"",
            "type = \"integer\"\non_invalid = \"reject\"",
        )
        .replace(
            "type = \"boolean\"",
            "type = \"boolean\"\non_invalid = \"reject\"",
        );
    Profile::from_toml_str(&text, Path::new("t.toml")).unwrap()
}

/// A row of a table test: its line, the fields changed from [`GOOD`], and whether it breaks
/// something.
type Case = (u64, Vec<(usize, &'static str)>, bool);

/// Unreadable values in optional columns: the row is rejected under `on_invalid = "reject"`,
/// loaded with one warning per value under the default; the columns and values named are the
/// same either way.
#[test]
fn on_invalid_reject_rejects_what_null_would_warn_about() {
    // (line, changes, whether the row has a problem)
    let cases: Vec<Case> = vec![
        (2, vec![(7, "dua")], true),
        (3, vec![(7, "2,5")], true),  // not whole: rounded under null
        (4, vec![(7, "2,0")], false), // whole: fine
        (5, vec![(8, "MAYBE")], true),
        (6, vec![(8, "")], false),        // blank: NULL, not a problem
        (7, vec![(5, "20251399")], true), // impossible date
        (8, vec![(5, "20250101"), (6, "2400")], true), // impossible time: midnight under null
        (9, vec![(5, ""), (6, "2400")], false), // no date: the time is not read
        (10, vec![(5, "00000000")], false), // zero date: NULL
        (11, vec![], false),
    ];
    let rows: Vec<(u64, Vec<&str>)> = cases
        .iter()
        .map(|(line, changes, _)| row(*line, changes))
        .collect();
    // Distinct keys, so no row supersedes another.
    let rows: Vec<(u64, Vec<&str>)> = rows
        .into_iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])
        .map(|((line, mut r), k)| {
            r[0] = k;
            (line, r)
        })
        .collect();
    let b = batch(&NAMES, &rows);
    let bad: Vec<u64> = cases.iter().filter(|c| c.2).map(|c| c.0).collect();

    let v = validate(&on_invalid_profile(true), &b).unwrap();
    assert_eq!(lines(&v.rejects), bad);
    let rejected: Vec<(u64, String, Option<String>)> = v
        .errors
        .iter()
        .map(|e| (e.line, e.column.clone().unwrap(), e.value.clone()))
        .collect();
    assert!(
        v.errors
            .iter()
            .all(|e| e.reason.contains("on_invalid = \"reject\""))
    );

    let v = validate(&on_invalid_profile(false), &b).unwrap();
    assert_eq!(v.rejected(), 0);
    let warned = crate::transform::transform(&on_invalid_profile(false), &v.accepted)
        .unwrap()
        .warnings;
    let warned: Vec<(u64, String, Option<String>)> = warned
        .iter()
        .map(|w| (w.line, w.column.clone().unwrap(), w.value.clone()))
        .collect();
    assert_eq!(rejected, warned);
    assert_eq!(
        rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
        bad,
        "one problem per bad row"
    );
}
