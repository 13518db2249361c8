#![allow(
    clippy::unwrap_used,
    clippy::unwrap_in_result,
    reason = "tests fail loudly on any unexpected value"
)]

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Int64Type, Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::NaiveDate;

use super::*;
use crate::profile::StoredType;
use crate::value::{date32_days, timestamp_micros};

const PROFILE: &str = r#"
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
source = "nama"
type = "text"
[[columns]]
source = "dec"
type = "decimal"
scale = 3
[[columns]]
source = "cnt"
type = "integer"
[[columns]]
source = "flag"
type = "boolean"
[[columns]]
source = "d"
type = "date"
[[columns]]
source = "t"
type = "time"
[[columns]]
target = "ts"
source = "tgl"
time_source = "jam"
type = "timestamp"
valid = true
[[columns]]
target = "ts2"
source = "tgl2"
time_source = "jam2"
type = "timestamp"
[[columns]]
target = "posting_ts"
source = "posting"
type = "date_timestamp"
"#;

fn profile() -> Profile {
    Profile::from_toml_str(PROFILE, Path::new("t.toml")).unwrap()
}

/// A text batch with lines 2, 3, … and the given source columns (others absent).
fn text_batch(columns: &[(&str, &[Option<&str>])]) -> RecordBatch {
    let rows = columns.first().map_or(0, |c| c.1.len());
    let mut fields = vec![Field::new(LINE_COLUMN, DataType::UInt64, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(
        (0..rows as u64).map(|i| i + 2),
    ))];
    for (name, values) in columns {
        fields.push(Field::new(*name, DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from(values.to_vec())));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

/// Transforms a batch of the given source columns; returns the target column and warnings.
fn run(columns: &[(&str, &[Option<&str>])], target: &str) -> (ArrayRef, Vec<RowError>) {
    let out = transform(&profile(), &text_batch(columns)).unwrap();
    (
        out.batch.column_by_name(target).unwrap().clone(),
        out.warnings,
    )
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn micros(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    timestamp_micros(
        ymd(y, mo, d),
        chrono::NaiveTime::from_hms_opt(h, mi, s).unwrap(),
    )
}

/// The warned-about lines and reasons, for compact assertions.
fn warned(warnings: &[RowError]) -> Vec<(u64, String, String)> {
    warnings
        .iter()
        .map(|w| {
            (
                w.line,
                w.column.clone().unwrap_or_default(),
                w.reason.clone(),
            )
        })
        .collect()
}

#[test]
fn schema_follows_the_profile() {
    let p = Profile::ztdwr();
    let schema = typed_schema(&p);
    // `_line`, the columns, then `_version` (the built-in profile has a row version).
    assert_eq!(schema.fields().len(), p.columns.len() + 2);
    assert_eq!(schema.field(0).name(), LINE_COLUMN);
    let last = schema.field(p.columns.len() + 1);
    assert_eq!(
        (last.name().as_str(), last.data_type()),
        (crate::model::VERSION_COLUMN, &DataType::Utf8)
    );
    assert_eq!(schema.field(0).data_type(), &DataType::UInt64);
    let field = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
    assert_eq!(field("surat_pengantar_barang"), DataType::Utf8);
    assert_eq!(field("bbm_actual"), DataType::Decimal128(38, 6));
    assert_eq!(field("konfirmasi_counter"), DataType::Int64);
    assert_eq!(field("flag_post_yes"), DataType::Boolean);
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    assert_eq!(field("waktu_timbang_terima"), ts);
    assert_eq!(field("changed_date"), ts);
    assert_eq!(field("changed_time"), DataType::Utf8);
    for (f, c) in schema.fields().iter().skip(1).zip(&p.columns) {
        assert_eq!(f.name(), &c.target);
    }
}

#[test]
fn text_is_unchanged_leading_zeros_and_real_words_included() {
    // Do not copy: names containing "nat" were nulled; keys and NIKs lost leading zeros.
    let values = [
        Some("0007000001"),
        Some("NATANAEL"),
        Some("RENATA"),
        Some("NATALIA"),
        Some("PT \"BERKAH\" ANGKUTAN"),
        Some("JOSÉ RAMOS"),
        Some("000000"),
        None,
    ];
    for (source, target) in [("spb", "k"), ("nama", "nama")] {
        let (array, warnings) = run(&[(source, &values)], target);
        let got: Vec<Option<&str>> = array.as_string::<i32>().iter().collect();
        assert_eq!(got, values);
        assert!(warnings.is_empty());
    }
}

#[test]
fn decimals_are_exact_and_per_value() {
    let cases: &[(Option<&str>, Option<i128>, Option<&str>)] = &[
        (Some("12.5"), Some(12_500), None),
        (Some("45,5"), Some(45_500), None),
        (Some("1.234,56"), Some(1_234_560), None),
        (Some("1.234.567,8"), Some(1_234_567_800), None),
        (Some("1.234"), Some(1_234), None),
        (Some("1,234"), Some(1_234), None),
        (Some("1.234.567"), Some(1_234_567_000), None),
        (Some("-0,5"), Some(-500), None),
        (Some("0.1"), Some(100), None),
        (Some("1.0005"), None, Some("more than 3 decimal places")),
        (Some("abc"), None, Some("not a number")),
        (None, None, None),
    ];
    let values: Vec<_> = cases.iter().map(|c| c.0).collect();
    let (array, warnings) = run(&[("dec", &values)], "dec");
    assert_eq!(array.data_type(), &DataType::Decimal128(38, 3));
    let array = array.as_primitive::<Decimal128Type>();
    for (i, (text, want, warning)) in cases.iter().enumerate() {
        assert_eq!(array.is_valid(i).then(|| array.value(i)), *want, "{text:?}");
        let w = warnings.iter().find(|w| w.line == i as u64 + 2);
        assert_eq!(w.is_some(), warning.is_some(), "{text:?}");
        if let (Some(w), Some(reason)) = (w, warning) {
            assert!(w.reason.contains(reason) && w.reason.ends_with("loaded as NULL"));
            assert_eq!(w.value.as_deref(), *text);
        }
    }
}

#[test]
fn integers_round_half_away_from_zero_and_warn() {
    let values = [
        Some("3"),
        Some("2,5"),
        Some("-2.5"),
        Some("2.4"),
        Some("4.000"),
        Some("x"),
        None,
    ];
    let (array, warnings) = run(&[("cnt", &values)], "cnt");
    let got: Vec<Option<i64>> = array.as_primitive::<Int64Type>().iter().collect();
    assert_eq!(
        got,
        [Some(3), Some(3), Some(-3), Some(2), Some(4), None, None]
    );
    let lines: Vec<u64> = warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, [3, 4, 5, 7]);
    assert!(
        warnings[0].reason.contains("rounded to 3"),
        "{:?}",
        warnings[0]
    );
}

#[test]
fn booleans() {
    let values = [
        Some("X"),
        Some("yes"),
        Some("t"),
        Some("0"),
        Some("n"),
        Some("False"),
        Some("maybe"),
        None,
    ];
    let (array, warnings) = run(&[("flag", &values)], "flag");
    let got: Vec<Option<bool>> = array.as_boolean().iter().collect();
    assert_eq!(
        got,
        [
            Some(true),
            Some(true),
            Some(true),
            Some(false),
            Some(false),
            Some(false),
            None,
            None
        ]
    );
    assert_eq!(warned(&warnings).len(), 1);
    assert_eq!(warnings[0].line, 8);
    assert_eq!(warnings[0].value.as_deref(), Some("maybe"));
}

#[test]
fn dates_are_day_first_and_read_one_by_one() {
    // Do not copy: one format inferred per batch read 05.01.2025 as 1 May.
    let values = [
        Some("05.01.2025"),
        Some("20250105"),
        Some("2025-01-05"),
        Some("13.01.2025"),
        Some("00000000"),
        Some("20250230"),
        None,
    ];
    let (array, warnings) = run(&[("d", &values)], "d");
    let got: Vec<Option<i32>> = array.as_primitive::<Date32Type>().iter().collect();
    let jan5 = Some(date32_days(ymd(2025, 1, 5)));
    assert_eq!(
        got,
        [
            jan5,
            jan5,
            jan5,
            Some(date32_days(ymd(2025, 1, 13))),
            None,
            None,
            None
        ]
    );
    assert_eq!(
        warned(&warnings),
        [(7, "d".into(), "impossible date: loaded as NULL".into())]
    );
}

#[test]
fn times_keep_leading_zeros() {
    let values = [
        Some("070502"),
        Some("0705"),
        Some("07"),
        Some("07:05:02"),
        Some("000000"),
        None,
        Some("2400"),
    ];
    let (array, warnings) = run(&[("t", &values)], "t");
    let got: Vec<Option<i64>> = array
        .as_primitive::<Time64MicrosecondType>()
        .iter()
        .collect();
    let us = |h: i64, m: i64, s: i64| Some(((h * 60 + m) * 60 + s) * 1_000_000);
    assert_eq!(
        got,
        [
            us(7, 5, 2),
            us(7, 5, 0),
            us(7, 0, 0),
            us(7, 5, 2),
            us(0, 0, 0),
            us(0, 0, 0),
            None
        ]
    );
    assert_eq!(
        warned(&warnings),
        [(8, "t".into(), "impossible time: loaded as NULL".into())]
    );
}

type Text = Option<&'static str>;

#[test]
fn date_and_time_pairs() {
    // (date, time, timestamp or None, warning column)
    let cases: &[(Text, Text, Option<i64>, Text)] = &[
        (
            Some("20250129"),
            Some("143022"),
            Some(micros(2025, 1, 29, 14, 30, 22)),
            None,
        ),
        (
            Some("29.01.2025"),
            Some("14:30"),
            Some(micros(2025, 1, 29, 14, 30, 0)),
            None,
        ),
        (
            Some("05.01.2025"),
            Some("070502"),
            Some(micros(2025, 1, 5, 7, 5, 2)),
            None,
        ),
        (
            Some("2025-01-29"),
            None,
            Some(micros(2025, 1, 29, 0, 0, 0)),
            None,
        ),
        (
            Some("20250129"),
            Some("000000"),
            Some(micros(2025, 1, 29, 0, 0, 0)),
            None,
        ),
        // An impossible time keeps the date at midnight, with a warning.
        (
            Some("20250129"),
            Some("2400"),
            Some(micros(2025, 1, 29, 0, 0, 0)),
            Some("jam2"),
        ),
        (
            Some("20250129"),
            Some("996100"),
            Some(micros(2025, 1, 29, 0, 0, 0)),
            Some("jam2"),
        ),
        (Some("00000000"), Some("143022"), None, None),
        (None, Some("143022"), None, None),
        (Some("20250230"), Some("143022"), None, Some("tgl2")),
    ];
    let dates: Vec<_> = cases.iter().map(|c| c.0).collect();
    let times: Vec<_> = cases.iter().map(|c| c.1).collect();
    let (array, warnings) = run(&[("tgl2", &dates), ("jam2", &times)], "ts2");
    assert_eq!(
        array.data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    let array = array.as_primitive::<TimestampMicrosecondType>();
    for (i, (d, t, want, warning)) in cases.iter().enumerate() {
        assert_eq!(
            array.is_valid(i).then(|| array.value(i)),
            *want,
            "{d:?} {t:?}"
        );
        let w = warnings.iter().find(|w| w.line == i as u64 + 2);
        assert_eq!(w.and_then(|w| w.column.as_deref()), *warning, "{d:?} {t:?}");
    }
    let midnight = warnings
        .iter()
        .find(|w| w.column.as_deref() == Some("jam2"))
        .unwrap();
    assert_eq!(midnight.reason, "impossible time: date kept at midnight");
}

#[test]
fn date_only_columns_are_midnight() {
    let values = [Some("29.01.2025"), Some("00000000"), None];
    let (array, warnings) = run(&[("posting", &values)], "posting_ts");
    let got: Vec<Option<i64>> = array
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect();
    assert_eq!(got, [Some(micros(2025, 1, 29, 0, 0, 0)), None, None]);
    assert!(warnings.is_empty());
}

#[test]
fn absent_optional_columns_load_as_null_and_line_comes_first() {
    let out = transform(&profile(), &text_batch(&[("spb", &[Some("1"), Some("2")])])).unwrap();
    assert_eq!(out.batch.schema(), typed_schema(&profile()));
    let lines: Vec<u64> = out
        .batch
        .column(0)
        .as_primitive::<arrow_array::types::UInt64Type>()
        .values()
        .to_vec();
    assert_eq!(lines, [2, 3]);
    for c in out.batch.columns().iter().skip(2) {
        assert_eq!(c.null_count(), 2);
    }
    // A pair whose time column is absent: the date at midnight.
    let (array, _) = run(&[("tgl", &[Some("20250129")])], "ts");
    assert_eq!(
        array.as_primitive::<TimestampMicrosecondType>().value(0),
        micros(2025, 1, 29, 0, 0, 0)
    );
}

#[test]
fn warnings_come_in_row_order() {
    let out = transform(
        &profile(),
        &text_batch(&[
            ("cnt", &[Some("x"), Some("y")]),
            ("flag", &[Some("?"), Some("!")]),
        ]),
    )
    .unwrap();
    let got: Vec<(u64, String)> = out
        .warnings
        .iter()
        .map(|w| (w.line, w.column.clone().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (2, "cnt".into()),
            (2, "flag".into()),
            (3, "cnt".into()),
            (3, "flag".into())
        ]
    );
}

#[test]
fn bad_batches_are_errors_not_panics() {
    let b = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("spb", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec![Some("1")]))],
    )
    .unwrap();
    assert!(matches!(
        transform(&profile(), &b),
        Err(TransformError::NoLineColumn)
    ));
    let b = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new(LINE_COLUMN, DataType::UInt64, false),
            Field::new("dec", DataType::Int64, true),
        ])),
        vec![
            Arc::new(UInt64Array::from(vec![2])),
            Arc::new(arrow_array::Int64Array::from(vec![1])),
        ],
    )
    .unwrap();
    let e = transform(&profile(), &b).unwrap_err().to_string();
    assert!(e.contains("`dec` is Int64"), "{e}");
}

/// An adopted table's narrower columns: a value that does not fit loads as NULL with a
/// warning; one that fits loads as written; the rest of the batch is untouched.
#[test]
fn values_that_do_not_fit_an_adopted_column_are_warnings() {
    let p = profile().with_stored(&[
        ("cnt".into(), StoredType::Integer { bits: 32 }),
        ("nama".into(), StoredType::Chars { max: 4 }),
        (
            "dec".into(),
            StoredType::Numeric {
                precision: 5,
                scale: 2,
            },
        ),
    ]);
    let batch = text_batch(&[
        ("spb", &[Some("a"), Some("b"), Some("c"), Some("d")]),
        (
            "cnt",
            &[Some("2147483647"), Some("2147483648"), Some("-5"), None],
        ),
        ("nama", &[Some("abcd"), Some("äöüß"), Some("abcde"), None]),
        (
            "dec",
            &[Some("999,99"), Some("1000"), Some("1,234"), Some("1,23")],
        ),
    ]);
    let out = transform(&p, &batch).unwrap();
    let cnt = out
        .batch
        .column_by_name("cnt")
        .unwrap()
        .as_primitive::<Int64Type>()
        .clone();
    assert_eq!(
        cnt.iter().collect::<Vec<_>>(),
        [Some(2_147_483_647), None, Some(-5), None]
    );
    let nama = out
        .batch
        .column_by_name("nama")
        .unwrap()
        .as_string::<i32>()
        .clone();
    assert_eq!(
        nama.iter().collect::<Vec<_>>(),
        [Some("abcd"), Some("äöüß"), None, None]
    );
    let dec = out
        .batch
        .column_by_name("dec")
        .unwrap()
        .as_primitive::<Decimal128Type>()
        .clone();
    assert_eq!(
        dec.iter().collect::<Vec<_>>(),
        [Some(999_990), None, None, Some(1_230)]
    );
    assert_eq!(
        warned(&out.warnings),
        [
            (
                3,
                "dec".into(),
                "more than 3 digits before the point for numeric(5,2): loaded as NULL".into()
            ),
            (
                3,
                "cnt".into(),
                "out of range for integer: loaded as NULL".into()
            ),
            (
                4,
                "nama".into(),
                "longer than 4 characters (varchar(4)): loaded as NULL".into()
            ),
            (
                4,
                "dec".into(),
                "more than 2 decimal places for numeric(5,2): loaded as NULL".into()
            ),
        ]
    );
    // The same values under on_invalid = "reject": the problems validation reports.
    let cnt_col = p.columns.iter().find(|c| c.target == "cnt").unwrap();
    let probs = problems(cnt_col, Some("2147483648"), None);
    assert_eq!(probs.len(), 1);
    assert_eq!(probs[0].reason, "out of range for integer");
    assert!(problems(cnt_col, Some("7"), None).is_empty());
}
