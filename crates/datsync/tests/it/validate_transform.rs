#![allow(
    clippy::unwrap_used,
    clippy::unwrap_in_result,
    reason = "tests fail loudly on any unexpected value"
)]

//! A generated file with invalid, duplicate and ragged rows, decoded, validated and
//! transformed batch by batch: every line is loaded, superseded or rejected, and every
//! defect the generator wrote is caught. The expected outcome comes from an independent
//! reading of the raw file (below), not from the code under test.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, TimestampMicrosecondType, UInt64Type};
use arrow_array::{Array, RecordBatch};
use datsync::{
    Decoder, LINE_COLUMN, ParseError, ParseOptions, Profile, REASONS_COLUMN, SampleOptions,
    SampleSize, SampleSummary, decode_reader, validate, write_sample,
};

/// What an independent reader says about one data line of a generated file.
#[derive(Debug)]
struct Expected {
    line: u64,
    key: String,
    ragged: bool,
    invalid: bool,
}

/// Reads the raw file with nothing but string splitting and the defects `sample` writes
/// (`ztdwr.md` §4 rules as they apply to generated values).
fn read_expected(path: &std::path::Path) -> Vec<Expected> {
    let reader = BufReader::new(File::open(path).unwrap());
    let mut lines = reader.split(b'\n').map(Result::unwrap);
    let header = fields(&lines.next().unwrap());
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (key, nik, plate) = (at("surat_pengantar_brg"), at("nik_supir"), at("no_polisi"));
    let (date, time) = (at("tanggal_timbang"), at("jam_timbang"));
    let (bbm, km) = (at("bbm_actual"), at("kilometer_actual"));
    lines
        .enumerate()
        .map(|(i, raw)| {
            let f = fields(&raw);
            let get = |i: usize| f.get(i).map_or("", String::as_str);
            let invalid = get(key).is_empty()
                || get(nik).is_empty()
                || get(plate).is_empty()
                || get(bbm) == "612.5"
                || get(km) == "abc"
                || ["20250230", "00000000"].contains(&get(date))
                || get(time) == "2400";
            Expected {
                line: i as u64 + 2,
                key: get(key).to_owned(),
                ragged: f.len() != header.len(),
                invalid,
            }
        })
        .collect()
}

/// Splits a `~|^` line, strips one `^` / `~` marker per field, trims.
fn fields(line: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    text.split("~|^")
        .map(|f| {
            let f = f.strip_prefix('^').unwrap_or(f);
            let f = f.strip_suffix('~').unwrap_or(f);
            f.trim().to_owned()
        })
        .collect()
}

fn lines_of(batch: &RecordBatch) -> Vec<u64> {
    batch
        .column_by_name(LINE_COLUMN)
        .unwrap()
        .as_primitive::<UInt64Type>()
        .values()
        .to_vec()
}

#[derive(Debug, Default)]
struct Totals {
    read: usize,
    loaded: usize,
    superseded: usize,
    rejected: usize,
    ragged_rejects: usize,
    warnings: usize,
    rejected_lines: BTreeSet<u64>,
}

fn run_case(rows: u64, batch_rows: usize, seed: u64, crlf: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ZTDWR_20250129.dat");
    let options = SampleOptions {
        size: SampleSize::Rows(rows),
        seed,
        invalid_rate: 0.05,
        dup_rate: 0.10,
        ragged_rate: 0.02,
        crlf,
        ..SampleOptions::default()
    };
    let summary: SampleSummary = write_sample(File::create(&path).unwrap(), &options).unwrap();
    assert!(summary.invalid_rows > 0 && summary.duplicate_rows > 0 && summary.ragged_rows > 0);

    let expected = read_expected(&path);
    assert_eq!(expected.len() as u64, summary.rows);
    let by_line: HashMap<u64, &Expected> = expected.iter().map(|e| (e.line, e)).collect();
    // The independent reading finds exactly the defects the generator says it wrote.
    assert_eq!(
        expected.iter().filter(|e| e.ragged).count() as u64,
        summary.ragged_rows
    );
    assert_eq!(
        expected.iter().filter(|e| e.invalid).count() as u64,
        summary.invalid_rows
    );

    let profile = Profile::ztdwr();
    let mut decoder = Decoder::new(
        &profile,
        ParseOptions {
            batch_rows,
            ..ParseOptions::default()
        },
    );
    let mut totals = Totals::default();
    decode_reader(File::open(&path).unwrap(), &mut decoder, |batch| {
        check_batch(&profile, &batch, &by_line, &mut totals);
        Ok::<(), ParseError>(())
    })
    .unwrap();

    // Nothing lost: every line is loaded, superseded or rejected.
    assert_eq!(totals.read as u64, summary.rows);
    assert_eq!(
        totals.read,
        totals.loaded + totals.superseded + totals.rejected
    );
    // Every generated defect is caught, and nothing else is rejected.
    let defective: BTreeSet<u64> = expected
        .iter()
        .filter(|e| e.ragged || e.invalid)
        .map(|e| e.line)
        .collect();
    assert_eq!(totals.rejected_lines, defective);
    let both = expected.iter().filter(|e| e.ragged && e.invalid).count();
    assert_eq!(
        totals.rejected + both,
        (summary.invalid_rows + summary.ragged_rows) as usize,
        "rejected = invalid + ragged - rows that are both"
    );
    assert!(totals.rejected as u64 >= summary.invalid_rows.max(summary.ragged_rows));
    assert_eq!(totals.ragged_rejects as u64, summary.ragged_rows);
    // Generated values are all readable: nothing degrades to NULL or midnight.
    assert_eq!(totals.warnings, 0);
}

fn check_batch(
    profile: &Profile,
    batch: &RecordBatch,
    by_line: &HashMap<u64, &Expected>,
    totals: &mut Totals,
) {
    let v = validate(profile, batch).unwrap();
    assert_eq!(v.rows_read, v.loaded() + v.superseded + v.rejected());

    // Within the batch: the last valid occurrence of each key is loaded, the others are
    // superseded; a rejected row never supersedes.
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut valid = 0;
    for line in lines_of(batch) {
        let e = by_line[&line];
        if !(e.ragged || e.invalid) {
            valid += 1;
            last.insert(e.key.as_str(), line);
        }
    }
    let want: BTreeSet<u64> = last.values().copied().collect();
    let got: Vec<u64> = lines_of(&v.accepted);
    assert!(got.is_sorted(), "accepted rows stay in file order");
    assert_eq!(got.iter().copied().collect::<BTreeSet<_>>(), want);
    assert_eq!(v.superseded, valid - want.len());

    let reasons = v
        .rejects
        .column_by_name(REASONS_COLUMN)
        .unwrap()
        .as_string::<i32>();
    totals.ragged_rejects += reasons
        .iter()
        .flatten()
        .filter(|r| r.starts_with("ragged row"))
        .count();
    totals.rejected_lines.extend(lines_of(&v.rejects));
    let errors_lines: BTreeSet<u64> = v.errors.iter().map(|e| e.line).collect();
    assert_eq!(errors_lines, lines_of(&v.rejects).into_iter().collect());

    let t = datsync::transform(profile, &v.accepted).unwrap();
    assert_eq!(t.batch.num_rows(), v.loaded());
    assert_eq!(lines_of(&t.batch), got);
    let ts = t.batch.column_by_name("waktu_timbang_terima").unwrap();
    assert_eq!(
        ts.as_primitive::<TimestampMicrosecondType>().null_count(),
        0
    );
    for name in ["bbm_actual", "kilometer_actual"] {
        let d = t
            .batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Decimal128Type>();
        assert_eq!(d.null_count(), 0);
        assert!(
            d.values().iter().all(|&m| m > 0 && m <= 500_000_000),
            "{name}"
        );
    }
    totals.read += v.rows_read;
    totals.loaded += v.loaded();
    totals.superseded += v.superseded;
    totals.rejected += v.rejected();
    totals.warnings += t.warnings.len();
}

#[test]
fn every_line_is_loaded_superseded_or_rejected() {
    run_case(20_000, 3_000, 42, false);
}

#[test]
fn small_batches_and_crlf_keep_the_accounting() {
    run_case(2_000, 7, 7, true);
}
