use std::io::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, RecordBatch};
use proptest::prelude::*;

use super::*;
use crate::model::{ERROR_COLUMN, LINE_COLUMN, RAW_COLUMN};

mod format;
mod forms;
mod limits;
mod resume;

const BUFFER_SIZES: &[usize] = &[1, 2, 3, 7, 64, 4096, usize::MAX];

/// Decodes `input` fed `step` bytes at a time.
fn decode_with(
    input: &[u8],
    step: usize,
    batch_rows: usize,
) -> Result<(Vec<RecordBatch>, ParseStats), ParseError> {
    let options = ParseOptions {
        batch_rows,
        ..ParseOptions::default()
    };
    decode_opts(input, step, options).map(|(b, _, s)| (b, s))
}

/// Decodes `input` fed `step` bytes at a time with `options`; returns the batches, how each
/// was cut, and the stats. Checks on the way that at most one batch is ever ready.
fn decode_opts(
    input: &[u8],
    step: usize,
    options: ParseOptions,
) -> Result<(Vec<RecordBatch>, Vec<BatchCut>, ParseStats), ParseError> {
    decode_profile(&Profile::ztdwr(), input, step, options)
}

/// [`decode_opts`] for another profile.
fn decode_profile(
    profile: &Profile,
    input: &[u8],
    step: usize,
    options: ParseOptions,
) -> Result<(Vec<RecordBatch>, Vec<BatchCut>, ParseStats), ParseError> {
    let mut decoder = Decoder::new(profile, options);
    let mut batches = Vec::new();
    let mut cuts = Vec::new();
    for piece in input.chunks(step.min(input.len()).max(1)) {
        let mut pos = 0;
        while pos < piece.len() {
            pos += decoder.decode(&piece[pos..])?;
            assert!(decoder.ready.len() <= 1, "more than one batch ready");
            while let Some(batch) = decoder.next_batch() {
                batches.push(batch);
                cuts.extend(decoder.last_cut());
            }
        }
        assert!(decoder.pending.len() <= decoder.options.max_line_bytes);
    }
    while let Some(batch) = decoder.flush()? {
        assert!(decoder.ready.len() <= 1, "more than one batch ready");
        batches.push(batch);
        cuts.extend(decoder.last_cut());
    }
    Ok((batches, cuts, decoder.stats()))
}

/// Every row as (line, column name → value) with nulls as `None`, data columns only.
type Row = (u64, Vec<(String, Option<String>)>);

fn rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for batch in batches {
        let lines = batch
            .column_by_name(LINE_COLUMN)
            .unwrap()
            .as_primitive::<UInt64Type>();
        for r in 0..batch.num_rows() {
            let fields = batch
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| f.name() != LINE_COLUMN)
                .map(|(i, f)| {
                    let col = batch.column(i).as_string::<i32>();
                    (
                        f.name().clone(),
                        col.is_valid(r).then(|| col.value(r).to_owned()),
                    )
                })
                .collect();
            out.push((lines.value(r), fields));
        }
    }
    out
}

fn get<'a>(row: &'a Row, name: &str) -> Option<&'a str> {
    row.1
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
}

/// Decodes with every buffer size and several batch sizes, checks they all agree and that
/// batches respect their size, and returns the rows.
fn decode_everywhere(input: &[u8]) -> (Vec<Row>, ParseStats) {
    let (reference, stats) = decode_with(input, usize::MAX, DEFAULT_BATCH_ROWS).unwrap();
    let want = rows(&reference);
    for &step in BUFFER_SIZES {
        for batch_rows in [1, 2, 3, 5, 10_000] {
            let (batches, s) = decode_with(input, step, batch_rows).unwrap();
            assert_eq!(rows(&batches), want, "step {step}, batch_rows {batch_rows}");
            assert_eq!(s.rows, stats.rows);
            assert_eq!(s.ragged_rows, stats.ragged_rows);
            let total = want.len();
            assert_eq!(
                batches.len(),
                total.div_ceil(batch_rows),
                "step {step}, batch_rows {batch_rows}"
            );
            for (i, b) in batches.iter().enumerate() {
                let expect = if i + 1 < batches.len() {
                    batch_rows
                } else {
                    total - i * batch_rows
                };
                assert_eq!(b.num_rows(), expect);
            }
        }
    }
    (want, stats)
}

const HEADER: &str = "^surat_pengantar_brg~|^nik_supir~|^no_polisi~|^nama_supir~";

#[test]
fn strips_markers_in_both_forms_and_trims() {
    let input = format!("{HEADER}\n^001~|^0012~|^B 1 X~|^ ANA ~\n002~|^0034~|^D 2 Y~|^BUDI\n");
    let (rows, stats) = decode_everywhere(input.as_bytes());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, 2);
    assert_eq!(get(&rows[0], "surat_pengantar_brg"), Some("001"));
    assert_eq!(get(&rows[0], "nama_supir"), Some("ANA"));
    assert_eq!(get(&rows[1], "nik_supir"), Some("0034"));
    assert_eq!(get(&rows[1], "nama_supir"), Some("BUDI"));
    assert_eq!(stats.rows, 2);
    assert!(!stats.gzip);
}

#[test]
fn null_tokens_are_whole_values_only() {
    let input = format!(
        "{HEADER}\n1~|^~~|^NULL~|^NATANAEL\n2~|^ nan ~|^<NA>~|^RENATA\n3~|^None~|^~|^NaT\n4~|^~|^ ~|^\"a~|^b\"\n"
    );
    let (rows, _) = decode_everywhere(input.as_bytes());
    assert_eq!(get(&rows[0], "nik_supir"), None);
    assert_eq!(get(&rows[0], "no_polisi"), None);
    assert_eq!(get(&rows[0], "nama_supir"), Some("NATANAEL"));
    assert_eq!(get(&rows[1], "nik_supir"), None);
    assert_eq!(get(&rows[1], "no_polisi"), None);
    assert_eq!(get(&rows[1], "nama_supir"), Some("RENATA"));
    assert_eq!(get(&rows[2], "nik_supir"), None);
    assert_eq!(get(&rows[2], "nama_supir"), Some("NaT"));
    // A quote is an ordinary character: it swallows neither delimiters nor lines.
    assert_eq!(
        rows[3]
            .1
            .iter()
            .find(|(n, _)| n == ERROR_COLUMN)
            .unwrap()
            .1
            .as_deref()
            .map(|e| e.starts_with("ragged")),
        Some(true)
    );
}

#[test]
fn ragged_rows_keep_their_line_and_raw_text() {
    let input = format!("{HEADER}\n1~|^2~|^3~|^4\n1~|^2~|^3\n\n1~|^2~|^3~|^4~|^5\n9~|^9~|^9~|^9\n");
    let (rows, stats) = decode_everywhere(input.as_bytes());
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 3, 5, 6]);
    assert_eq!(stats.ragged_rows, 2);
    assert_eq!(stats.blank_lines, 1);
    assert_eq!(
        get(&rows[1], ERROR_COLUMN),
        Some("ragged row: expected 4 fields, found 3")
    );
    assert_eq!(get(&rows[1], RAW_COLUMN), Some("1~|^2~|^3"));
    assert_eq!(get(&rows[1], "surat_pengantar_brg"), None);
    assert_eq!(
        get(&rows[2], ERROR_COLUMN),
        Some("ragged row: expected 4 fields, found 5")
    );
    assert_eq!(get(&rows[3], "nama_supir"), Some("9"));
    assert_eq!(get(&rows[3], ERROR_COLUMN), None);
}

/// A ragged line leaves the columns as they were: the rows around it keep exactly their
/// values and nulls, whether the ragged line comes first, between or last, holds null tokens
/// or Latin-1 bytes, or has more fields than the header; its Latin-1 fields are not counted.
#[test]
fn a_ragged_line_leaves_the_rows_around_it_as_they_are() {
    let mut input = format!("{HEADER}\n").into_bytes();
    for line in [
        &b"NULL~|^\xC9T~|^x"[..],
        b"1~|^A~|^NULL~|^D",
        b"~|^\xC9~|^b~|^c~|^d~|^e",
        b"2~|^~|^C~|^\xC9",
        b"NULL~|^NULL",
    ] {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    let (rows, stats) = decode_everywhere(&input);
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        [2, 3, 4, 5, 6]
    );
    assert_eq!(stats.ragged_rows, 3);
    assert_eq!(stats.latin1_fields, 1);
    assert_eq!(stats.latin1_rows, 1);
    for ragged in [0, 2, 4] {
        assert!(get(&rows[ragged], ERROR_COLUMN).is_some_and(|e| e.starts_with("ragged")));
        assert!(get(&rows[ragged], RAW_COLUMN).is_some());
        for column in [
            "surat_pengantar_brg",
            "nik_supir",
            "no_polisi",
            "nama_supir",
        ] {
            assert_eq!(get(&rows[ragged], column), None, "{column} of row {ragged}");
        }
    }
    for good in [1, 3] {
        assert_eq!(get(&rows[good], ERROR_COLUMN), None);
        assert_eq!(get(&rows[good], RAW_COLUMN), None);
    }
    assert_eq!(get(&rows[1], "surat_pengantar_brg"), Some("1"));
    assert_eq!(get(&rows[1], "nik_supir"), Some("A"));
    assert_eq!(get(&rows[1], "no_polisi"), None);
    assert_eq!(get(&rows[1], "nama_supir"), Some("D"));
    assert_eq!(get(&rows[3], "surat_pengantar_brg"), Some("2"));
    assert_eq!(get(&rows[3], "nik_supir"), None);
    assert_eq!(get(&rows[3], "no_polisi"), Some("C"));
    assert_eq!(get(&rows[3], "nama_supir"), Some("É"));
}

#[test]
fn bom_crlf_and_last_line_without_newline() {
    let input = format!("\u{feff}{HEADER}\r\n1~|^2~|^3~|^4\r\n5~|^6~|^7~|^8");
    let (rows, stats) = decode_everywhere(input.as_bytes());
    assert!(stats.bom);
    assert_eq!(stats.crlf_lines, 2);
    assert_eq!(get(&rows[0], "nama_supir"), Some("4"));
    assert_eq!(get(&rows[1], "nama_supir"), Some("8"));
    assert_eq!(rows[1].0, 3);
}

#[test]
fn latin1_falls_back_per_field() {
    let mut input = format!("{HEADER}\n1~|^JOSÉ~|^B~|^").into_bytes();
    input.extend_from_slice(b"REN\xC9\n");
    let (rows, stats) = decode_everywhere(&input);
    assert_eq!(
        get(&rows[0], "nik_supir"),
        Some("JOSÉ"),
        "valid UTF-8 stays as it is"
    );
    assert_eq!(
        get(&rows[0], "nama_supir"),
        Some("RENÉ"),
        "the Latin-1 field is decoded"
    );
    assert_eq!(stats.latin1_fields, 1);
    assert_eq!(stats.latin1_rows, 1);
}

#[test]
fn every_delimiter_form() {
    for (header, line) in [
        ("surat_pengantar_brg\tnik_supir", "1\t2"),
        ("surat_pengantar_brg|nik_supir", "1|2"),
        ("^surat_pengantar_brg~^nik_supir~", "^1~^2~"),
        ("surat_pengantar_brg~\\|\\^nik_supir", "1~\\|\\^2"),
    ] {
        let (rows, _) = decode_everywhere(format!("{header}\n{line}\n").as_bytes());
        assert_eq!(get(&rows[0], "surat_pengantar_brg"), Some("1"), "{header}");
        assert_eq!(get(&rows[0], "nik_supir"), Some("2"), "{header}");
    }
}

#[test]
fn aliases_and_quirky_headers() {
    let input =
        "\u{feff}^SPB ID~|^Driver\\ NIK~|^nopol~|^Tanggal.Tim~|^extra col~\nA~|^B~|^C~|^D~|^E\n";
    let (rows, stats) = decode_everywhere(input.as_bytes());
    let names: Vec<_> = rows[0].1.iter().map(|(n, _)| n.as_str()).collect();
    // The unknown column is named in the stats, then not kept.
    assert_eq!(
        names,
        [
            "surat_pengantar_brg",
            "nik_supir",
            "no_polisi",
            "tanggal_timbang",
            ERROR_COLUMN,
            RAW_COLUMN
        ]
    );
    assert_eq!(stats.unknown_columns, ["extra_col"]);
    assert_eq!(get(&rows[0], "tanggal_timbang"), Some("D"));
    assert_eq!(get(&rows[0], ERROR_COLUMN), None);
}

#[test]
fn unknown_columns_are_kept_only_when_asked() {
    let input = "surat_pengantar_brg|Mystery|nopol|nopol\n1|2|3|4\n";
    let keep = ParseOptions {
        keep_unknown_columns: true,
        ..ParseOptions::default()
    };
    for (options, want) in [
        (
            ParseOptions::default(),
            vec!["surat_pengantar_brg", "no_polisi"],
        ),
        (
            keep,
            vec!["surat_pengantar_brg", "mystery", "no_polisi", "no_polisi_2"],
        ),
    ] {
        for step in BUFFER_SIZES {
            let (batches, _, stats) = decode_opts(input.as_bytes(), *step, options).unwrap();
            let rows = rows(&batches);
            let names: Vec<_> = rows[0]
                .1
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| !n.starts_with('_'))
                .collect();
            assert_eq!(names, want);
            assert_eq!(stats.unknown_columns, ["mystery", "no_polisi_2"]);
            assert_eq!(get(&rows[0], "no_polisi"), Some("3"));
        }
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn gzip_single_and_multi_member() {
    let plain = format!("{HEADER}\n1~|^2~|^3~|^4\n5~|^6~|^7~|^8\n");
    let (want, _) = decode_everywhere(plain.as_bytes());
    let (got, stats) = decode_everywhere(&gzip(plain.as_bytes()));
    assert!(stats.gzip);
    assert_eq!(got, want);
    let (head, tail) = plain.split_at(plain.len() / 2);
    let mut multi = gzip(head.as_bytes());
    multi.extend(gzip(tail.as_bytes()));
    let (got, _) = decode_everywhere(&multi);
    assert_eq!(got, want);
}

#[test]
fn bad_input_gives_clear_errors() {
    let err = |input: &[u8]| decode_with(input, 5, 10).unwrap_err().to_string();
    assert_eq!(err(b""), "empty file: no header line");
    assert_eq!(err(b"\n \r\n"), "empty file: no header line");
    assert!(err(format!("{HEADER}\n").as_bytes()).contains("header-only file"));
    assert!(err(b"\x00\x01\x02binary\x00\n").contains("binary data"));
    let e = err(b"alpha|beta\n1|2\n");
    assert!(
        e.contains("line 1") && e.contains("no header column is known"),
        "{e}"
    );
    let full = gzip(format!("{HEADER}\n1~|^2~|^3~|^4\n").as_bytes());
    let e = err(&full[..full.len() - 6]);
    assert!(e.contains("gzip stream ends early"), "{e}");
    let mut corrupt = full.clone();
    corrupt[12] ^= 0xff;
    corrupt[13] ^= 0xff;
    assert!(err(&corrupt).contains("gzip stream"), "{}", err(&corrupt));
    let e = err(format!("{}\n1~|^2\n", "x".repeat(2 << 20)).as_bytes());
    assert!(
        e.contains("line 1") && e.contains("header line is longer than 1048576"),
        "{e}"
    );
    let wide = format!("{}\n1\n", vec!["nopol"; 2_001].join("|"));
    let e = err(wide.as_bytes());
    assert!(
        e.contains("2001 fields, more than the maximum of 2000"),
        "{e}"
    );
}

#[test]
fn nul_bytes_in_a_data_row_make_an_error_row() {
    let input = format!("{HEADER}\n1~|^2\u{0}~|^3~|^4\n");
    let (rows, stats) = decode_everywhere(input.as_bytes());
    assert_eq!(stats.nul_rows, 1);
    assert!(get(&rows[0], ERROR_COLUMN).unwrap().contains("NUL"));
}

proptest! {
    // `PROPTEST_CASES` raises the count (CI runs 2,000 cases per property).
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.max(256), ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic, and slicing never changes the outcome.
    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        step in 1usize..50,
        batch_rows in 1usize..5,
        with_header in any::<bool>(),
    ) {
        let mut input = if with_header { format!("{HEADER}\n").into_bytes() } else { Vec::new() };
        input.extend(&body);
        let whole = decode_with(&input, usize::MAX, batch_rows).map(|(b, _)| rows(&b)).map_err(|e| e.to_string());
        let sliced = decode_with(&input, step, batch_rows).map(|(b, _)| rows(&b)).map_err(|e| e.to_string());
        prop_assert_eq!(whole, sliced);
    }

    /// Structured rows built from a small alphabet of the tricky characters survive slicing.
    #[test]
    fn tricky_alphabet_is_slice_invariant(
        body in proptest::collection::vec(prop::sample::select(vec![b'~', b'|', b'^', b'\n', b'\r', b'"', b' ', b'a', b'0', 0xC3, 0xA9, 0xE9]), 0..300),
        step in 1usize..20,
        gz in any::<bool>(),
    ) {
        let mut input = format!("{HEADER}\n").into_bytes();
        input.extend(&body);
        input.extend(b"\n1~|^2~|^3~|^4\n");
        let input = if gz { gzip(&input) } else { input };
        let whole = decode_with(&input, usize::MAX, 3).map(|(b, _)| rows(&b)).map_err(|e| e.to_string());
        let sliced = decode_with(&input, step, 3).map(|(b, _)| rows(&b)).map_err(|e| e.to_string());
        prop_assert!(whole.is_ok());
        prop_assert_eq!(whole, sliced);
    }
}
