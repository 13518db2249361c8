//! Faithful to every value (issue 10), checked as the team checks it: files written by a
//! generator of this test's own (not `datsync sample`), in several header and line forms,
//! gzip and not, with unreadable values in optional columns (numbers, integers, booleans,
//! dates, times), a column the profile does not know, keys repeated across chunks, rejected
//! rows and a line of more than 16 MiB. The expectation is computed here from what was
//! written, never from a report of the generator:
//!
//! - the table equals the truth (per key, the last row that was not rejected);
//! - every bad value is in `datsync rejects --kind warning --format jsonl` with its line and
//!   column (and its row, if it is the last of its key, has NULL — or midnight, or the
//!   rounded integer — in the table);
//! - `unknown_columns` names the extra column; on an empty table `records_updated` is 0 and
//!   `records_inserted` is the number of distinct keys loaded; the counts add up;
//! - the long line is one rejected row, and the rest loads;
//! - the profile's policies: `on_invalid = "reject"` rejects those rows instead (an earlier
//!   row of the key then stands), `unknown_columns = "fail"` and `missing_optional = "fail"`
//!   stop the sync with BAD_INPUT before any chunk is loaded.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::common::{TestDb, assert_counts_add_up, assert_metadata_matches, datsync, u};

/// The header names as a file writes them (canonicalized and aliased by the decoder), with
/// the extra column `TONASE` in the middle.
const HEADER: [&str; 16] = [
    "Surat Pengantar",
    "NIK Supir",
    "No Polisi",
    "Tanggal Timbang",
    "Jam Timbang",
    "BBM Actual",
    "TONASE",
    "Kilometer Actual",
    "No Tiket",
    "Qty Dikirim",
    "Konfirmasi Counter",
    "Kontanan",
    "Konfirmasi Posting Date",
    "Tanggal Surat Jalan",
    "Jam Surat Jalan",
    "Nama Supir",
];

/// Data rows per file, and per chunk.
const ROWS: usize = 1_500;
const CHUNK: &str = "200";

/// An optional typed column that a row may carry a bad value in: its field index, its
/// source column, and the bad values written.
const BAD: [(usize, &str, &[&str]); 6] = [
    (9, "qty_dikirim", &["abc", "12x", "1,2,3,4"]),
    (10, "konfirmasi_counter", &["dua", "2,5"]),
    (11, "kontanan", &["MAYBE", "ya"]),
    (12, "konfirmasi_posting_date", &["20251399", "31.02.2025"]),
    (13, "tanggal_surat_jalan", &["2025-13-01", "20250230"]),
    (14, "jam_surat_jalan", &["2400", "996100"]),
];

/// What one data row should load as (the typed columns as PostgreSQL prints them).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    line: u64,
    nik: String,
    no_tiket: Option<String>,
    qty: Option<String>,
    counter: Option<i64>,
    kontanan: Option<bool>,
    posting: Option<String>,
    surat_jalan: Option<String>,
}

/// One written row and what it should do.
#[derive(Debug, Clone)]
struct Written {
    key: String,
    fields: Vec<String>,
    expected: Expected,
    /// Rejected by a rule (empty NIK).
    rejected: bool,
    /// The bad value it carries: (source column, value).
    bad: Option<(&'static str, String)>,
}

/// The generator: rows with values drawn from `rng`, their truth alongside.
#[allow(clippy::too_many_lines)] // one row's fields and their truth, side by side
fn generate(rng: &mut ChaCha8Rng) -> Vec<Written> {
    let mut rows: Vec<Written> = Vec::with_capacity(ROWS);
    for i in 0..ROWS {
        let line = i as u64 + 2;
        // One in ten repeats a key of up to 600 rows before: across chunks of 200.
        let key = if i > 0 && rng.random_bool(0.1) {
            rows[i.saturating_sub(rng.random_range(1..=600.min(i)))]
                .key
                .clone()
        } else {
            format!("{:010}", 9_000_000 + i)
        };
        let rejected = rng.random_bool(0.01);
        let nik = if rejected {
            String::new()
        } else {
            format!("{:016}", rng.random_range(0..10_000_000_000_000_000u64))
        };
        let cents: i64 = rng.random_range(0..500_000_000);
        let qty_text = match rng.random_range(0..3) {
            0 if cents >= 100_000 => format!("{},{:02}", group(cents / 100), cents % 100),
            1 => format!("{},{:02}", cents / 100, cents % 100),
            _ => format!("{}.{:02}", cents / 100, cents % 100),
        };
        let counter: i64 = rng.random_range(0..9);
        let (kontanan_text, kontanan) =
            [("X", Some(true)), ("N", Some(false)), ("", None)][rng.random_range(0..3)];
        let (m, d) = (rng.random_range(1..=12u32), rng.random_range(1..=28u32));
        let (posting_text, posting) = match rng.random_range(0..5) {
            0 => (
                format!("{d:02}.{m:02}.2025"),
                Some(format!("2025-{m:02}-{d:02} 00:00:00")),
            ),
            1 => ("00000000".to_owned(), None),
            2 => (String::new(), None),
            _ => (
                format!("2025{m:02}{d:02}"),
                Some(format!("2025-{m:02}-{d:02} 00:00:00")),
            ),
        };
        let (h, mi, s) = (
            rng.random_range(0..24u32),
            rng.random_range(0..60u32),
            rng.random_range(0..60u32),
        );
        let (jam_text, time) = match rng.random_range(0..4) {
            0 => (
                format!("{h:02}:{mi:02}:{s:02}"),
                format!("{h:02}:{mi:02}:{s:02}"),
            ),
            1 => ("000000".to_owned(), "00:00:00".to_owned()),
            _ => (
                format!("{h:02}{mi:02}{s:02}"),
                format!("{h:02}:{mi:02}:{s:02}"),
            ),
        };
        let no_tiket =
            (rng.random_bool(0.8)).then(|| format!("T{:08}", rng.random_range(0..100_000_000u32)));
        let mut fields = vec![
            key.clone(),
            nik.clone(),
            format!("B {} XY", rng.random_range(1..9999)),
            format!("2025{m:02}{d:02}"),
            format!("{h:02}{mi:02}{s:02}"),
            format!("{},{}", rng.random_range(1..500), rng.random_range(0..10)),
            format!(
                "{}.{:03}",
                rng.random_range(0..100),
                rng.random_range(0..1000)
            ),
            format!("{}.{}", rng.random_range(1..500), rng.random_range(0..10)),
            no_tiket.clone().unwrap_or_default(),
            qty_text,
            counter.to_string(),
            kontanan_text.to_owned(),
            posting_text,
            format!("2025{m:02}{d:02}"),
            jam_text,
            // Quotes and a backslash are ordinary characters.
            "JOS\u{e9} \"BUDI\" \\ SANTOSO".to_owned(),
        ];
        let mut expected = Expected {
            line,
            nik,
            no_tiket,
            qty: Some(format!("{}.{:02}0000", cents / 100, cents % 100)),
            counter: Some(counter),
            kontanan,
            posting,
            surat_jalan: Some(format!("2025-{m:02}-{d:02} {time}")),
        };
        let bad = rng.random_bool(0.05).then(|| {
            let (at, column, values) = BAD[rng.random_range(0..BAD.len())];
            let value = values[rng.random_range(0..values.len())].to_owned();
            fields[at].clone_from(&value);
            match column {
                "qty_dikirim" => expected.qty = None,
                // Not a whole number: rounded half away from zero, and warned about.
                "konfirmasi_counter" if value == "2,5" => expected.counter = Some(3),
                "konfirmasi_counter" => expected.counter = None,
                "kontanan" => expected.kontanan = None,
                "konfirmasi_posting_date" => expected.posting = None,
                "tanggal_surat_jalan" => expected.surat_jalan = None,
                // An impossible time keeps the date, at midnight.
                _ => expected.surat_jalan = Some(format!("2025-{m:02}-{d:02} 00:00:00")),
            }
            (column, value)
        });
        rows.push(Written {
            key,
            fields,
            expected,
            rejected,
            bad,
        });
    }
    rows
}

fn group(mut n: i64) -> String {
    let mut parts = Vec::new();
    while n >= 1000 {
        parts.push(format!("{:03}", n % 1000));
        n /= 1000;
    }
    parts.push(n.to_string());
    parts.reverse();
    parts.join(".")
}

/// How a file is written.
#[derive(Debug, Clone, Copy)]
struct Form {
    /// The header's delimiter as written.
    header: &'static str,
    /// Data lines' delimiters, chosen per line.
    data: &'static [&'static str],
    /// Fields wrapped `^value~`.
    wrapped: bool,
    crlf: bool,
    gzip: bool,
    /// A line of more than 16 MiB after this many data rows.
    long_line_at: Option<usize>,
}

/// The file's bytes, and the line number of the long line when there is one (the rows after
/// it are one line further down).
fn write(rows: &mut [Written], form: Form) -> (Vec<u8>, Option<u64>) {
    let nl = if form.crlf { "\r\n" } else { "\n" };
    let join = |fields: &[String], delimiter: &str| -> String {
        fields
            .iter()
            .map(|f| {
                if form.wrapped {
                    format!("^{f}~")
                } else {
                    f.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(delimiter)
    };
    let mut text: Vec<u8> = Vec::new();
    let header: Vec<String> = HEADER.iter().map(|h| (*h).to_owned()).collect();
    text.extend(join(&header, form.header).as_bytes());
    text.extend(nl.as_bytes());
    let mut long_line = None;
    for (i, row) in rows.iter_mut().enumerate() {
        if form.long_line_at == Some(i) {
            long_line = Some(i as u64 + 2);
            text.extend(b"9999999999");
            text.extend(form.data[0].as_bytes());
            text.extend(std::iter::repeat_n(b'N', (16 << 20) + 4096));
            text.extend(nl.as_bytes());
        }
        if long_line.is_some() {
            row.expected.line += 1;
        }
        let delimiter = form.data[i % form.data.len()];
        // Latin-1 for the name: a byte that is not UTF-8, decoded on its own.
        let line = join(&row.fields, delimiter).replace('\u{e9}', "\u{0}");
        let bytes: Vec<u8> = line
            .bytes()
            .map(|b| if b == 0 { 0xE9 } else { b })
            .collect();
        text.extend(bytes);
        text.extend(nl.as_bytes());
    }
    if form.gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        (gz.finish().unwrap(), long_line)
    } else {
        (text, long_line)
    }
}

/// The truth of a load: per key, the last row that is neither rejected nor bad (under
/// `reject`); the value warnings expected (line, column, value); the rejected lines.
struct Truth {
    table: BTreeMap<String, Expected>,
    warnings: BTreeSet<(u64, String, String)>,
    rejected: BTreeSet<u64>,
}

fn truth(rows: &[Written], reject_bad: bool) -> Truth {
    let mut table = BTreeMap::new();
    let mut warnings = BTreeSet::new();
    let mut rejected = BTreeSet::new();
    for r in rows {
        if r.rejected || (reject_bad && r.bad.is_some()) {
            rejected.insert(r.expected.line);
            continue;
        }
        if let Some((column, value)) = &r.bad {
            warnings.insert((r.expected.line, (*column).to_owned(), value.clone()));
        }
        table.insert(r.key.clone(), r.expected.clone());
    }
    Truth {
        table,
        warnings,
        rejected,
    }
}

/// The target table as `key → Expected`.
fn table(db: &TestDb) -> BTreeMap<String, Expected> {
    db.query(
        "SELECT surat_pengantar_barang, source_line, nik_supir, no_tiket, qty_dikirim::text,
                konfirmasi_counter, kontanan, konfirmasi_posting_date::text,
                waktu_surat_jalan::text
           FROM public.transport_documents",
        &[],
    )
    .iter()
    .map(|r| {
        (
            r.get(0),
            Expected {
                line: r.get::<_, i64>(1) as u64,
                nik: r.get(2),
                no_tiket: r.get(3),
                qty: r.get(4),
                counter: r.get(5),
                kontanan: r.get(6),
                posting: r.get(7),
                surat_jalan: r.get(8),
            },
        )
    })
    .collect()
}

/// `datsync rejects SYNC --kind KIND --format jsonl` as records.
fn rejects(dir: &Path, db: &TestDb, ck: &Path, sync: &str, kind: &str) -> Vec<Value> {
    let out = datsync(
        dir,
        &[
            "rejects",
            sync,
            "--database-url",
            &db.url(),
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--kind",
            kind,
            "--format",
            "jsonl",
        ],
        &[],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Loads one file in a fresh database and checks it against the truth.
#[allow(clippy::too_many_lines)] // the team's checks, one after the other
fn check(form: Form, seed: u64, profile: Option<&str>) {
    let context = format!("{form:?}, seed {seed}, profile {profile:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = generate(&mut rng);
    let (bytes, long_line) = write(&mut rows, form);
    let dir = tempfile::tempdir().unwrap();
    let file = dir
        .path()
        .join("ft_mth_ussrv_trans_ztdwr_20251016150610.dat");
    std::fs::write(&file, &bytes).unwrap();
    let mut args = vec![];
    let profile_path = dir.path().join("profile.toml");
    if let Some(extra) = profile {
        std::fs::write(&profile_path, format!("{extra}\n{}", builtin_profile())).unwrap();
        args.extend(["--profile", profile_path.to_str().unwrap()]);
    }
    let db = TestDb::new();
    let ck = dir.path().join("ck");
    let url = db.url();
    args.extend([
        "run",
        file.to_str().unwrap(),
        "--database-url",
        &url,
        "--checkpoint-dir",
        ck.to_str().unwrap(),
        "--chunk-size",
        CHUNK,
        "--json",
    ]);
    let out = datsync(dir.path(), &args, &[]);
    assert_eq!(out.code(), Some(2), "{context}: {}", out.describe());
    let s = out.summary();
    let sync = s["sync_id"].as_str().unwrap().to_owned();
    let reject_bad = profile.is_some_and(|p| p.contains("on_invalid"));
    let t = truth(&rows, reject_bad);
    // The file is as messy as meant: bad values of every kind, rejected rows, keys repeated
    // across chunks.
    let bad_columns: BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r.bad.as_ref())
        .map(|b| b.0)
        .collect();
    assert_eq!(bad_columns.len(), BAD.len(), "{context}");
    assert!(
        rows.iter().filter(|r| r.bad.is_some()).count() > 40,
        "{context}"
    );
    assert!(t.rejected.len() > 5, "{context}");
    assert!(
        ROWS - t.table.len() > 100,
        "{context}: too few repeated keys"
    );

    // The table is the truth, value for value.
    let got = table(&db);
    assert_eq!(got.len(), t.table.len(), "{context}: keys");
    for (key, want) in &t.table {
        assert_eq!(got.get(key), Some(want), "{context}: key {key}");
    }

    // Counts a person can trust.
    let long = u64::from(long_line.is_some());
    assert_eq!(u(&s, "rows_read"), ROWS as u64 + long, "{context}: {s}");
    assert_eq!(
        u(&s, "records_inserted"),
        t.table.len() as u64,
        "{context}: {s}"
    );
    assert_eq!(u(&s, "records_updated"), 0, "{context}: {s}");
    assert_eq!(u(&s, "rows_loaded"), t.table.len() as u64, "{context}: {s}");
    assert_eq!(
        u(&s, "rows_rejected"),
        t.rejected.len() as u64 + long,
        "{context}: {s}"
    );
    assert_eq!(u(&s, "rows_pending"), 0, "{context}: {s}");
    assert_counts_add_up(&s);
    assert_eq!(
        s["unknown_columns"],
        serde_json::json!(["tonase"]),
        "{context}"
    );
    assert_eq!(
        u(&s, "value_warnings"),
        t.warnings.len() as u64,
        "{context}: {s}"
    );
    assert_metadata_matches(&db.metadata(&sync).unwrap(), &s);
    assert_eq!(
        db.metadata(&sync).unwrap()["unknown_columns"],
        serde_json::json!(["tonase"])
    );

    // Every bad value, with its line and column, and nothing else.
    let warned: BTreeSet<(u64, String, String)> = rejects(dir.path(), &db, &ck, &sync, "warning")
        .iter()
        .map(|w| {
            assert_eq!(w["kind"], "warning");
            (
                w["line"].as_u64().unwrap(),
                w["column"].as_str().unwrap().to_owned(),
                w["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(warned, t.warnings, "{context}: warnings");

    // Every rejected row, in line order, the long line among them with its reason.
    let rejected = rejects(dir.path(), &db, &ck, &sync, "rejected");
    let lines: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    let mut want: Vec<u64> = t.rejected.iter().copied().chain(long_line).collect();
    want.sort_unstable();
    assert_eq!(lines, want, "{context}: rejected lines");
    for r in &rejected {
        assert_eq!(r["kind"], "rejected");
        assert!(!r["reason"].as_str().unwrap().is_empty());
        assert!(r["raw"].as_str().is_some_and(|raw| !raw.is_empty()), "{r}");
        if Some(r["line"].as_u64().unwrap()) == long_line {
            assert!(
                r["reason"].as_str().unwrap().contains("line too long"),
                "{r}"
            );
            assert_eq!(r["column"], Value::Null);
        } else if !reject_bad || r["column"] == "nik_supir" {
            assert_eq!(r["column"], "nik_supir", "{r}");
        }
    }
}

/// The built-in profile's TOML, to add settings to.
fn builtin_profile() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datsync/profiles/ztdwr.toml");
    std::fs::read_to_string(path).unwrap()
}

const PLAIN: Form = Form {
    header: "~|^",
    data: &["~|^"],
    wrapped: true,
    crlf: false,
    gzip: false,
    long_line_at: None,
};

#[test]
fn wrapped_plain_lines_load_every_value_as_the_truth() {
    check(PLAIN, 101, None);
}

#[test]
fn an_escaped_header_over_mixed_data_lines_gzip_and_crlf() {
    let form = Form {
        header: "~\\|\\^",
        data: &["~|^", "~\\|\\^", "~|^"],
        wrapped: false,
        crlf: true,
        gzip: true,
        ..PLAIN
    };
    check(form, 202, None);
}

#[test]
fn a_tab_file_with_a_line_over_16_mib_loads_the_rest() {
    let form = Form {
        header: "\t",
        data: &["\t"],
        wrapped: false,
        gzip: true,
        long_line_at: Some(700),
        ..PLAIN
    };
    check(form, 303, None);
}

#[test]
fn on_invalid_reject_rejects_the_rows_with_bad_values_instead() {
    let form = Form {
        header: "~^",
        data: &["~|^", "~^"],
        ..PLAIN
    };
    check(form, 404, Some("on_invalid = \"reject\""));
}

/// `unknown_columns = "fail"` and `missing_optional = "fail"`: BAD_INPUT naming the columns,
/// before any chunk is loaded (the table stays empty, the ledger has nothing).
#[test]
fn drift_policies_fail_before_any_chunk_is_loaded() {
    for (setting, named) in [
        ("unknown_columns = \"fail\"", "tonase"),
        ("missing_optional = \"fail\"", "qty_diterima"),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(505);
        let mut rows = generate(&mut rng);
        let (bytes, _) = write(&mut rows, PLAIN);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ZTDWR_20250129.dat");
        std::fs::write(&file, &bytes).unwrap();
        let profile = dir.path().join("profile.toml");
        std::fs::write(&profile, format!("{setting}\n{}", builtin_profile())).unwrap();
        let db = TestDb::new();
        let url = db.url();
        let ck = dir.path().join("ck");
        let out = datsync(
            dir.path(),
            &[
                "--profile",
                profile.to_str().unwrap(),
                "run",
                file.to_str().unwrap(),
                "--database-url",
                &url,
                "--checkpoint-dir",
                ck.to_str().unwrap(),
                "--chunk-size",
                CHUNK,
                "--json",
            ],
            &[],
        );
        assert_eq!(out.code(), Some(1), "{setting}: {}", out.describe());
        let s = out.summary();
        assert_eq!(s["status"], "BAD_INPUT", "{s}");
        let error = s["error"].as_str().unwrap();
        assert!(error.contains(named) && error.contains(setting), "{error}");
        let sync = s["sync_id"].as_str().unwrap();
        assert!(
            db.ledger(sync).is_empty(),
            "{setting}: a chunk was committed"
        );
        assert_eq!(
            db.query("SELECT count(*) FROM public.transport_documents", &[])[0].get::<_, i64>(0),
            0
        );
        let m = db.metadata(sync).unwrap();
        assert_eq!(m["status"], "BAD_INPUT");
        assert_eq!(m["unknown_columns"], serde_json::json!(["tonase"]));
    }
}

/// The default `warn`: one warning line names the unknown column; `ignore` says nothing.
#[test]
fn unknown_columns_are_named_in_one_warning_unless_ignored() {
    for (setting, lines) in [("", 1), ("unknown_columns = \"ignore\"", 0)] {
        let mut rng = ChaCha8Rng::seed_from_u64(606);
        let mut rows = generate(&mut rng);
        rows.truncate(300);
        let (bytes, _) = write(&mut rows, PLAIN);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ZTDWR_20250129.dat");
        std::fs::write(&file, &bytes).unwrap();
        let profile = dir.path().join("profile.toml");
        std::fs::write(&profile, format!("{setting}\n{}", builtin_profile())).unwrap();
        let db = TestDb::new();
        let url = db.url();
        let ck = dir.path().join("ck");
        let out = datsync(
            dir.path(),
            &[
                "--profile",
                profile.to_str().unwrap(),
                "run",
                file.to_str().unwrap(),
                "--database-url",
                &url,
                "--checkpoint-dir",
                ck.to_str().unwrap(),
                "--chunk-size",
                "100",
                "--json",
            ],
            &[],
        );
        assert!(matches!(out.code(), Some(0 | 2)), "{}", out.describe());
        let warned = out
            .stderr
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("does not know") && l.contains("tonase"))
            .count();
        assert_eq!(warned, lines, "{setting:?}: {}", out.stderr);
        assert_eq!(
            out.summary()["unknown_columns"],
            serde_json::json!(["tonase"])
        );
    }
}
