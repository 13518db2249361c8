//! What the decoder promises, through the real `datsync run`: every written form of the
//! `~|^` delimiter loads every field into its column; a line over the maximum length is one
//! rejected row and the rest of the file loads; chunks cut by the byte budget are cut again
//! at the same lines after a crash, whatever the settings say then; and what datsync keeps
//! on disk is private (0700 directories, 0600 files) under umask 022.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::common::{CLEAN, MESSY, Snapshot, TestDb, Work, counts, datsync, options, sync_id, u};

/// Header names (some aliases) and the columns they load.
const HEADER: [&str; 8] = [
    "SPB ID",
    "Driver NIK",
    "nopol",
    "Tanggal Timbang",
    "Jam Timbang",
    "BBM Actual",
    "Kilometer Actual",
    "Nama Supir",
];

/// Rows as written: leading zeros, a backslash at the end, start and inside of values, a
/// `|`, quotes, Latin-1-free UTF-8.
const ROWS: [[&str; 8]; 4] = [
    [
        "0001",
        "0012345678901234",
        "B 1 X",
        "20250129",
        "0830",
        "45,5",
        "12.5",
        "JOSÉ",
    ],
    [
        "0002",
        "0098765432109876",
        "D 2 Y",
        "29.01.2025",
        "1405",
        "123,45",
        "7",
        "C:\\",
    ],
    [
        "0003",
        "0011111111111111",
        "F 3 Z",
        "2025-01-30",
        "000000",
        "3",
        "400",
        "\\x|\"y\"",
    ],
    [
        "0004",
        "0022222222222222",
        "B 4 W",
        "20250131",
        "23:59",
        "0.5",
        "1",
        "a\\b",
    ],
];

/// The loaded rows: key, NIK, plate, timestamp, bbm, km, name.
fn expected() -> Vec<String> {
    [
        "0001|0012345678901234|B 1 X|2025-01-29 08:30:00|45.5|12.5|JOSÉ",
        "0002|0098765432109876|D 2 Y|2025-01-29 14:05:00|123.45|7|C:\\",
        "0003|0011111111111111|F 3 Z|2025-01-30 00:00:00|3|400|\\x|\"y\"",
        "0004|0022222222222222|B 4 W|2025-01-31 23:59:00|0.5|1|a\\b",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn loaded(db: &TestDb) -> Vec<String> {
    db.query(
        "SELECT concat_ws('|', surat_pengantar_barang, nik_supir, no_polisi,
                waktu_timbang_terima::text, trim_scale(bbm_actual)::text,
                trim_scale(kilometer_actual)::text, nama_supir)
           FROM public.transport_documents ORDER BY 1",
        &[],
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// One line: `fields` joined by `delimiters` (in turn), wrapped `^…~` when `wrap`.
fn line(fields: &[&str], delimiters: &[&str], wrap: bool) -> String {
    let mut out = String::from(if wrap { "^" } else { "" });
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(delimiters[(i - 1) % delimiters.len()]);
        }
        out.push_str(f);
    }
    if wrap {
        out.push('~');
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn every_form_of_the_delimiter_loads_every_field_in_its_column() {
    // (header delimiter, header wrapped, data delimiters per line, data wrapped, CRLF, gzip)
    type Case<'a> = (&'a str, bool, &'a [&'a [&'a str]], bool, bool, bool);
    let cases: [Case; 5] = [
        // The file: escaped header, plain data lines.
        ("~~\\|\\^^", true, &[&["~|^"]], true, false, false),
        (
            "~\\|\\^",
            false,
            &[&["~|^"], &["~\\|\\^"]],
            false,
            true,
            true,
        ),
        (
            "~^",
            true,
            &[&["~|^", "~\\|^", "~^", "~|\\^"]],
            true,
            false,
            true,
        ),
        (
            "~|^",
            false,
            &[&["~\\|\\^"], &["~^"], &["~|^"], &["~\\^"]],
            false,
            true,
            false,
        ),
        (
            "\\~\\|\\^",
            true,
            &[&["~|\\^", "~\\|^"]],
            false,
            false,
            false,
        ),
    ];
    for (i, (header_delim, header_wrap, data, data_wrap, crlf, gz)) in cases.iter().enumerate() {
        let eol = if *crlf { "\r\n" } else { "\n" };
        let mut text = line(&HEADER, &[header_delim], *header_wrap) + eol;
        for (n, row) in ROWS.iter().enumerate() {
            text.push_str(&line(row, data[n % data.len()], *data_wrap));
            text.push_str(eol);
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("forms.dat");
        let bytes = if *gz {
            gzip(text.as_bytes())
        } else {
            text.into_bytes()
        };
        std::fs::write(&file, bytes).unwrap();
        let db = TestDb::new();
        let url = db.url();
        let ck = dir.path().join("ck");
        let out = datsync(
            dir.path(),
            &[
                "run",
                file.to_str().unwrap(),
                "--database-url",
                &url,
                "--checkpoint-dir",
                ck.to_str().unwrap(),
                "--json",
            ],
            &[],
        );
        let context = format!("case {i}: {}", out.describe());
        assert_eq!(out.code(), Some(0), "{context}");
        let s = out.summary();
        assert_eq!(
            (u(&s, "rows_read"), u(&s, "rows_loaded")),
            (4, 4),
            "{context}"
        );
        assert_eq!(loaded(&db), expected(), "{context}");
    }
}

/// The rejected rows of a sync: line → (reasons, raw).
fn rejected(ck: &Path, sync: &str) -> BTreeMap<u64, (String, String)> {
    use arrow_array::{Array, StringArray, UInt64Array};
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(ck.join("rejects").join(sync)) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if crate::common::is_temp_file(&path) {
            continue;
        }
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            File::open(&path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let col = |name| batch.column_by_name(name).unwrap().clone();
            let (lines, reasons, raws) = (col("_line"), col("_reasons"), col("_raw"));
            let lines = lines.as_any().downcast_ref::<UInt64Array>().unwrap();
            let reasons = reasons.as_any().downcast_ref::<StringArray>().unwrap();
            let raws = raws.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..batch.num_rows() {
                let raw = if raws.is_valid(i) { raws.value(i) } else { "" };
                out.insert(
                    lines.value(i),
                    (reasons.value(i).to_owned(), raw.to_owned()),
                );
            }
        }
    }
    out
}

#[test]
fn a_line_over_the_maximum_is_one_rejected_row_and_the_rest_loads() {
    // A clean sample; a line of 17 MiB goes in after its 300th data line (line 302).
    let reference = Work::new(900, 71, CLEAN);
    let text = std::fs::read(&reference.file).unwrap();
    let mut at = 0;
    for _ in 0..301 {
        at += text[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
    }
    let mut long = text[..at].to_vec();
    long.extend(b"^9999999999~|^");
    long.extend(std::iter::repeat_n(b'N', 17 << 20));
    long.extend(b"~\n");
    long.extend(&text[at..]);
    for gz in [false, true] {
        let work = Work::new(1, 1, CLEAN);
        let bytes = if gz { gzip(&long) } else { long.clone() };
        std::fs::write(&work.file, bytes).unwrap();
        let db = TestDb::new();
        let ck = work.checkpoints("ck");
        let sync = sync_id(0x10 + u32::from(gz));
        let out = work.run(&db, &ck, &["--sync-id", &sync], &[]);
        assert_eq!(out.code(), Some(2), "{}", out.describe());
        let s = out.summary();
        assert_eq!(s["status"], "PARTIAL_SUCCESS", "{s}");
        assert_eq!(u(&s, "rows_read"), 901, "{s}");
        assert_eq!(u(&s, "rows_rejected"), 1, "{s}");
        assert_eq!(
            u(&s, "rows_read"),
            u(&s, "rows_loaded")
                + u(&s, "rows_rejected")
                + u(&s, "rows_superseded")
                + u(&s, "rows_pending"),
            "{s}"
        );
        let rejects = rejected(&ck, &sync);
        assert_eq!(rejects.keys().copied().collect::<Vec<_>>(), [302]);
        let (reason, raw) = &rejects[&302];
        assert!(reason.contains("line too long: 17825807 bytes"), "{reason}");
        assert_eq!(raw.len(), 64 << 10);
        assert!(raw.starts_with("^9999999999~|^NNN"));
        // Every other line loaded: the table is the clean sample's.
        let ref_db = TestDb::new();
        let ref_ck = reference.checkpoints(&format!("ck_ref_{gz}"));
        let out = reference.run(&ref_db, &ref_ck, &["--sync-id", &sync], &[]);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        let skip = ["source_line", "source_file"];
        assert_eq!(db.table_without(&skip), ref_db.table_without(&skip));
    }
}

#[test]
fn max_line_bytes_is_a_setting() {
    // A line of 5,000 bytes after the 10th data line (line 12).
    let work = Work::new(40, 5, CLEAN);
    let text = std::fs::read_to_string(&work.file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let long = "x".repeat(5_000);
    lines.insert(11, &long);
    std::fs::write(&work.file, lines.join("\n") + "\n").unwrap();
    for (flags, env, reason) in [
        (
            vec!["--max-line-bytes", "4KiB"],
            vec![],
            "line too long: 5000 bytes",
        ),
        (
            vec![],
            vec![("MAX_LINE_BYTES", "4096")],
            "line too long: 5000 bytes",
        ),
        // A limit above it: the line is cut into fields, and has too few.
        (vec![], vec![("MAX_LINE_BYTES", "64 KiB")], "ragged row"),
    ] {
        let db = TestDb::new();
        let ck = work.checkpoints("ck");
        let mut args = vec!["--fresh"];
        args.extend(flags);
        let out = work.run(&db, &ck, &args, &env);
        assert_eq!(out.code(), Some(2), "{}", out.describe());
        let s = out.summary();
        assert_eq!((u(&s, "rows_read"), u(&s, "rows_rejected")), (41, 1), "{s}");
        let sync = s["sync_id"].as_str().unwrap().to_owned();
        let rejects = rejected(&ck, &sync);
        assert_eq!(rejects.keys().copied().collect::<Vec<_>>(), [12]);
        assert!(rejects[&12].0.contains(reason), "{rejects:?}");
    }
}

/// The ledger without what differs between two syncs of the same file.
fn cut_of(ledger: &[serde_json::Value]) -> Vec<(u64, u64, u64)> {
    ledger
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            (n("rows_read"), n("cut_rows"), n("cut_bytes"))
        })
        .collect()
}

#[test]
fn chunks_cut_by_bytes_are_cut_again_at_the_same_lines_after_a_crash() {
    let work = Work::with_options(&datsync::SampleOptions {
        gzip: true,
        ..options(1_500, 23, MESSY)
    });
    let sync = sync_id(0xb17e);
    let budget = ["--sync-id", &sync, "--chunk-bytes", "128KiB"];
    // The reference: uninterrupted.
    let ref_db = TestDb::new();
    let ref_ck = work.checkpoints("ck_ref");
    let out = work.run(&ref_db, &ref_ck, &budget, &[]);
    assert!(matches!(out.code(), Some(0 | 2)), "{}", out.describe());
    let reference = Snapshot::take(&ref_db, &ref_ck, &sync);
    let ref_summary = out.summary();
    let cuts = cut_of(&reference.ledger);
    assert!(cuts.len() >= 8, "{cuts:?}");
    // Every chunk but the last is cut by the budget, well before 500 rows.
    assert!(
        cuts[..cuts.len() - 1]
            .iter()
            .all(|&(rows, cut_rows, bytes)| rows < 200 && cut_rows == 500 && bytes == 128 << 10),
        "{cuts:?}"
    );
    // Killed after the third chunk is saved: the checkpoint has three short chunks and the
    // conversion is unfinished. A short chunk must not be taken for the end of the source;
    // and the resume, asked for other sizes, must cut the source as the checkpoint says.
    for (kill_at, no_checkpoint) in [("chunk_converted:3", false), ("chunk_committed:3", true)] {
        let db = TestDb::new();
        let ck = work.checkpoints(&format!("ck_{no_checkpoint}"));
        let mut args = budget.to_vec();
        if no_checkpoint {
            args.push("--no-checkpoint");
        }
        let out = work.run(&db, &ck, &args, &[("DATSYNC_KILL_AT", kill_at)]);
        assert!(out.killed(), "{}", out.describe());
        db.wait_for_other_sessions();
        let url = db.url();
        let mut resume = vec![
            "resume",
            &sync,
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--chunk-size",
            "77",
            "--chunk-bytes",
            "1MiB",
            "--json",
        ];
        if no_checkpoint {
            resume.push("--no-checkpoint");
        }
        let out = datsync(work.path(), &resume, &[]);
        let context = format!("killed at {kill_at}: {}", out.describe());
        assert!(matches!(out.code(), Some(0 | 2)), "{context}");
        assert_eq!(counts(&out.summary()), counts(&ref_summary), "{context}");
        let got = Snapshot::take(&db, &ck, &sync);
        assert_eq!(cut_of(&got.ledger), cuts, "{context}");
        if no_checkpoint {
            // Without checkpoints the ledger has no chunk checksums: compare the rest.
            assert_eq!(got.table, reference.table, "{context}");
            assert_eq!(got.rejects, reference.rejects, "{context}");
        } else {
            got.assert_same(&reference, &context);
        }
    }
}

/// The mode bits of `path`.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn what_is_kept_on_disk_is_private_under_umask_022() {
    let work = Work::new(600, 9, MESSY);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = sync_id(0x600d);
    // Killed mid-way: the checkpoint (chunks, manifest, journal) and rejects are on disk.
    let out = crate::common::datsync_umask(
        work.path(),
        0o022,
        &[
            "run",
            work.file(),
            "--sync-id",
            &sync,
            "--database-url",
            &db.url(),
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--chunk-size",
            "100",
        ],
        &[("DATSYNC_KILL_AT", "chunk_completed:3")],
    );
    assert!(out.killed(), "{}", out.describe());
    let mut dirs = 0;
    let mut files = 0;
    let mut stack = vec![ck.clone()];
    while let Some(dir) = stack.pop() {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        dirs += 1;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !crate::common::is_temp_file(&path) {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    // The base, the sync's directory, rejects/ and rejects/<sync>/; chunk files, the
    // manifest, journal entries and rejects files.
    assert!(dirs >= 4 && files >= 5, "{dirs} directories, {files} files");
    assert!(ck.join(&sync).join("manifest.json").exists());
    assert!(ck.join("rejects").join(&sync).is_dir());
}
