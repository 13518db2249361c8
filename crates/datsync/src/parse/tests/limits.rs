//! Bounded memory on any input: long lines are one error row each and never buffered whole,
//! batches are cut by bytes as well as rows, at most one batch is ready at a time (a gzip
//! bomb included), and the header is bounded.

use super::*;

fn small(max_line_bytes: usize, max_raw_bytes: usize) -> ParseOptions {
    ParseOptions {
        batch_rows: 3,
        max_line_bytes,
        max_raw_bytes,
        ..ParseOptions::default()
    }
}

/// Decodes over every buffer size, checks they agree, and returns the rows and stats.
fn everywhere(input: &[u8], options: ParseOptions) -> (Vec<Row>, Vec<BatchCut>, ParseStats) {
    let (batches, cuts, stats) = decode_opts(input, usize::MAX, options).unwrap();
    let want = rows(&batches);
    for &step in BUFFER_SIZES {
        let (b, c, s) = decode_opts(input, step, options).unwrap();
        assert_eq!(rows(&b), want, "step {step}");
        assert_eq!((c.as_slice(), &s), (cuts.as_slice(), &stats), "step {step}");
    }
    (want, cuts, stats)
}

#[test]
fn a_long_line_is_one_error_row_and_the_rest_loads() {
    let long = format!("9~|^{}", "é".repeat(60));
    let crlf_long = "L".repeat(100);
    let input = format!(
        "{HEADER}\n1~|^2~|^3~|^4\n{long}\n5~|^6~|^7~|^8\n{crlf_long}\r\n9~|^9~|^9~|^9\n{long}"
    );
    let (rows, cuts, stats) = everywhere(input.as_bytes(), small(64, 21));
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        [2, 3, 4, 5, 6, 7]
    );
    assert_eq!(stats.long_lines, 3);
    assert_eq!(stats.rows, 6);
    assert_eq!(stats.crlf_lines, 1);
    assert_eq!(get(&rows[0], "nama_supir"), Some("4"));
    assert_eq!(
        get(&rows[1], ERROR_COLUMN),
        Some(
            "line too long: 124 bytes, more than the maximum of 64 (max_line_bytes); \
             only its start is kept"
        )
    );
    // The first 21 bytes, less the `é` cut in two.
    assert_eq!(get(&rows[1], RAW_COLUMN), Some("9~|^éééééééé"));
    assert_eq!(get(&rows[1], "surat_pengantar_brg"), None);
    assert_eq!(get(&rows[2], "nama_supir"), Some("8"));
    assert!(get(&rows[3], ERROR_COLUMN).unwrap().contains("101 bytes"));
    assert_eq!(get(&rows[4], "nama_supir"), Some("9"));
    // The last line has no line break, and is long too.
    assert!(
        get(&rows[5], ERROR_COLUMN)
            .unwrap()
            .starts_with("line too long")
    );
    assert_eq!(cuts, [BatchCut::Rows, BatchCut::Rows]);
}

#[test]
fn a_line_of_more_than_16_mib_in_many_slices_and_gzip() {
    let mut text = format!("{HEADER}\n1~|^2~|^3~|^4\n").into_bytes();
    text.extend(std::iter::repeat_n(b'x', (16 << 20) + 12_345));
    text.extend(b"\r\n5~|^6~|^7~|^8\n");
    for input in [text.clone(), gzip(&text)] {
        for step in [4 << 10, 1 << 20] {
            let (batches, cuts, stats) =
                decode_opts(&input, step, ParseOptions::default()).unwrap();
            let rows = rows(&batches);
            assert_eq!(rows.len(), 3);
            assert_eq!(stats.long_lines, 1);
            assert_eq!(cuts, [BatchCut::End]);
            let error = get(&rows[1], ERROR_COLUMN).unwrap();
            assert!(
                error.starts_with("line too long: 16789562 bytes"),
                "{error}"
            );
            assert_eq!(get(&rows[1], RAW_COLUMN).map(str::len), Some(64 << 10));
            assert_eq!((rows[2].0, get(&rows[2], "nama_supir")), (4, Some("8")));
        }
    }
}

#[test]
fn ragged_rows_keep_at_most_max_raw_bytes() {
    let input = format!("{HEADER}\n1~|^2~|^{}\n", "r".repeat(40));
    let (rows, _, stats) = everywhere(input.as_bytes(), small(64, 10));
    assert_eq!(stats.ragged_rows, 1);
    assert_eq!(get(&rows[0], RAW_COLUMN), Some("1~|^2~|^rr"));
    assert_eq!(
        get(&rows[0], ERROR_COLUMN),
        Some("ragged row: expected 4 fields, found 3 (raw text cut at 10 of its 48 bytes)")
    );
}

#[test]
fn batches_are_cut_by_bytes_at_the_same_lines_however_sliced() {
    // Lines of varied lengths; 4 kept columns: each row costs its bytes + 8 + 4 × 6.
    let lines: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "{i}~|^{}~|^x~|^{}",
                "n".repeat(i * 7 % 50),
                "v".repeat(i % 9)
            )
        })
        .collect();
    let input = format!("{HEADER}\n{}\n{}\n", lines.join("\n"), "z".repeat(300));
    let options = ParseOptions {
        batch_rows: 6,
        batch_bytes: 300,
        max_line_bytes: 200,
        ..ParseOptions::default()
    };
    let (rows, cuts, stats) = everywhere(input.as_bytes(), options);
    // The expected cut, from line lengths alone.
    let mut want = Vec::new();
    let (mut n, mut bytes) = (0, 0);
    for len in lines.iter().map(String::len).chain([300]) {
        n += 1;
        bytes += len.min(200) + 32;
        if n == 6 {
            want.push((n, BatchCut::Rows));
        } else if bytes >= 300 {
            want.push((n, BatchCut::Bytes));
        } else {
            continue;
        }
        (n, bytes) = (0, 0);
    }
    if n > 0 {
        want.push((n, BatchCut::End));
    }
    let (batches, got_cuts, _) = decode_opts(input.as_bytes(), 5, options).unwrap();
    let got: Vec<_> = batches
        .iter()
        .map(RecordBatch::num_rows)
        .zip(got_cuts)
        .collect();
    assert_eq!(got, want);
    assert_eq!(cuts, want.iter().map(|w| w.1).collect::<Vec<_>>());
    assert!(want.iter().any(|w| w.1 == BatchCut::Bytes));
    assert!(want.iter().any(|w| w.1 == BatchCut::Rows));
    assert_eq!(
        stats.byte_cut_batches,
        want.iter().filter(|w| w.1 == BatchCut::Bytes).count() as u64
    );
    assert_eq!(rows.len(), 41);
}

#[test]
fn a_gzip_bomb_of_tiny_rows_readies_one_batch_at_a_time() {
    // 4 MiB of text in a few KiB: each inflate step yields thousands of rows, more than a
    // batch; `decode_opts` asserts that never more than one batch is ready.
    let mut text = format!("{HEADER}\n").into_bytes();
    for _ in 0..300_000 {
        text.extend(b"1~|^2~|^3~|^4\n");
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&text).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() * 200 < text.len(), "{} bytes", bomb.len());
    for step in [1 << 10, usize::MAX] {
        let options = ParseOptions {
            batch_rows: 1_000,
            ..ParseOptions::default()
        };
        let (batches, _, stats) = decode_opts(&bomb, step, options).unwrap();
        assert_eq!(batches.len(), 300);
        assert_eq!(stats.rows, 300_000);
    }
}

#[test]
fn the_header_is_bounded() {
    let options = ParseOptions {
        max_header_columns: 50,
        ..ParseOptions::default()
    };
    let ok = format!("{}\n1\n", vec!["nopol"; 50].join("|"));
    assert!(decode_opts(ok.as_bytes(), 7, options).is_ok());
    let wide = format!("{}\n1\n", vec!["nopol"; 51].join("|"));
    let e = decode_opts(wide.as_bytes(), 7, options).unwrap_err();
    assert!(
        matches!(
            e,
            ParseError::TooManyColumns {
                line: 1,
                found: 51,
                max: 50
            }
        ),
        "{e}"
    );
    // A header longer than the line limit is fatal: nothing can be read without it.
    let long = format!("nopol|{}\n1\n", "x".repeat(100));
    for step in [1, 7, usize::MAX] {
        let e = decode_opts(long.as_bytes(), step, small(64, 16)).unwrap_err();
        assert!(
            matches!(e, ParseError::HeaderTooLong { line: 1, max: 64 }),
            "{e}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Hostile shapes — long lines, wide and repetitive headers, tiny rows, gzip — in random
    /// slices: the decoder's buffers stay within their bounds (asserted by `decode_opts`
    /// after every call: at most one batch ready, the carried line within `max_line_bytes`)
    /// and the output does not depend on the slicing.
    #[test]
    fn hostile_shapes_stay_bounded(
        header_repeats in 1usize..300,
        lines in proptest::collection::vec((0usize..3_000, 0u8..4), 1..40),
        step in 1usize..5_000,
        gz in any::<bool>(),
    ) {
        let mut text = vec!["^NOPOL~"; header_repeats].join("|").into_bytes();
        text.extend(b"~|^surat_pengantar_brg\n");
        for (len, shape) in &lines {
            match shape {
                0 => text.extend(std::iter::repeat_n(b'x', *len)),
                1 => text.extend(b"~|^".repeat(len / 3)),
                2 => text.extend(b"\\".repeat(*len)),
                _ => text.extend(b"a\r"),
            }
            text.push(b'\n');
        }
        let input = if gz { gzip(&text) } else { text };
        let options = ParseOptions {
            batch_rows: 7,
            batch_bytes: 4_096,
            max_line_bytes: 1_000,
            max_raw_bytes: 100,
            max_header_columns: 250,
            ..ParseOptions::default()
        };
        let whole = decode_opts(&input, usize::MAX, options)
            .map(|(b, c, s)| (rows(&b), c, s)).map_err(|e| e.to_string());
        let sliced = decode_opts(&input, step, options)
            .map(|(b, c, s)| (rows(&b), c, s)).map_err(|e| e.to_string());
        if header_repeats + 1 > 250 {
            let refused = |e: &String| e.contains("more than the maximum") || e.contains("header line is longer");
            prop_assert!(whole.as_ref().is_err_and(refused), "{:?}", whole);
        }
        if let Ok((rows, _, _)) = &whole {
            for row in rows {
                if let Some(raw) = get(row, RAW_COLUMN) {
                    prop_assert!(raw.len() <= 100);
                }
            }
        }
        prop_assert_eq!(whole, sliced);
    }
}
