//! The profile's `[format]`: delimiters, no header, quotes (records over several lines),
//! COPY escapes, encodings, skipped and comment lines, trimming, and the errors of a file
//! that does not match its profile. Every case runs over every buffer size and several
//! batch sizes, plain and gzip.

use std::fmt::Write as _;
use std::path::Path;

use super::*;

/// A profile of three text columns `id` (the key), `name`, `note` with this `[format]`.
pub(super) fn profile(format: &str) -> Profile {
    profile_with(format, "")
}

fn profile_with(format: &str, top: &str) -> Profile {
    let text = format!(
        "name = \"t\"\ntable = \"t\"\nkey = \"id\"\n{top}\n[format]\n{format}\n\
         [[columns]]\nsource = \"id\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
         [[columns]]\nsource = \"name\"\ntype = \"text\"\n\
         [[columns]]\nsource = \"note\"\ntype = \"text\"\n"
    );
    Profile::from_toml_str(&text, Path::new("t.toml")).unwrap()
}

/// Decodes `input` with `profile` over every buffer size, batch size and plain/gzip; checks
/// they agree (rows, cuts, stats) and returns the rows and stats.
fn everywhere(profile: &Profile, input: &[u8]) -> (Vec<Row>, ParseStats) {
    let options = |batch_rows| ParseOptions {
        batch_rows,
        ..ParseOptions::default()
    };
    let (batches, _, stats) = decode_profile(profile, input, usize::MAX, options(10_000))
        .unwrap_or_else(|e| panic!("{e}"));
    let want = rows(&batches);
    for data in [input.to_vec(), gzip(input)] {
        for &step in BUFFER_SIZES {
            for batch_rows in [1, 2, 3, 5, 10_000] {
                let (b, cuts, s) =
                    decode_profile(profile, &data, step, options(batch_rows)).unwrap();
                assert_eq!(rows(&b), want, "step {step}, batch_rows {batch_rows}");
                assert_eq!(b.len(), want.len().div_ceil(batch_rows));
                assert!(cuts.iter().all(|c| *c != BatchCut::Bytes));
                let plain = ParseStats {
                    gzip: stats.gzip,
                    bytes_in: stats.bytes_in,
                    ..s.clone()
                };
                assert_eq!(plain, stats, "step {step}, batch_rows {batch_rows}");
            }
        }
    }
    (want, stats)
}

fn values(row: &Row) -> Vec<Option<&str>> {
    ["id", "name", "note"].iter().map(|c| get(row, c)).collect()
}

fn error(profile: &Profile, input: &str) -> String {
    decode_profile(profile, input.as_bytes(), 3, ParseOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn auto_detects_comma_and_semicolon() {
    let p = profile("");
    for (input, delimiter) in [
        ("id,name,note\n1,a,b\n2,,c\n", Delimiter::Comma),
        ("id;name;note\n1;a;b\n2;;c\n", Delimiter::Semicolon),
        // Commas inside values of a semicolon file: the more frequent wins.
        ("id;name;note\n1;a,x;b\n2;;c,d\n", Delimiter::Semicolon),
    ] {
        let (rows, _) = everywhere(&p, input.as_bytes());
        assert_eq!(rows.len(), 2, "{input}");
        assert_eq!(values(&rows[1])[0], Some("2"));
        assert_eq!(values(&rows[1])[1], None, "an empty value is a null token");
        let mut d = Decoder::new(&p, ParseOptions::default());
        d.decode(input.as_bytes()).unwrap();
        assert_eq!(d.header().unwrap().delimiter, delimiter, "{input}");
    }
}

#[test]
fn a_fixed_delimiter_of_any_string() {
    for (format, input) in [
        ("delimiter = \",\"", "id,name,note\n1,a|b,c\n"),
        ("delimiter = \"tab\"", "id\tname\tnote\n1\ta|b\tc\n"),
        ("delimiter = \"::\"", "id::name::note\n1::a|b::c\n"),
        ("delimiter = \"~|^\"", "id~|^name~|^note\n^1~|^a|b~|^c~\n"),
        ("delimiter = \"|\"", "id|name|note\n1|a,b|c\n"),
    ] {
        let (rows, _) = everywhere(&profile(format), input.as_bytes());
        let want = if format.contains('|') && !format.contains('^') {
            vec![Some("1"), Some("a,b"), Some("c")]
        } else {
            vec![Some("1"), Some("a|b"), Some("c")]
        };
        assert_eq!(values(&rows[0]), want, "{format}");
    }
}

#[test]
fn without_a_header_the_profile_names_the_columns() {
    // The profile's columns in order.
    let (rows, stats) = everywhere(&profile("header = false"), b"1\ta\tb\n2\tc\td\n");
    assert_eq!(stats.rows, 2);
    assert_eq!(
        (rows[0].0, values(&rows[0])),
        (1, vec![Some("1"), Some("a"), Some("b")])
    );
    assert_eq!(rows[1].0, 2);
    // `columns` in file order, an unknown one included (not kept).
    let p = profile(
        "header = false\ndelimiter = \",\"\ncolumns = [\"note\", \"extra\", \"id\", \"name\"]",
    );
    let (rows, stats) = everywhere(&p, b"n1,x,1,a\nn2,y,2,b\n");
    assert_eq!(values(&rows[1]), [Some("2"), Some("b"), Some("n2")]);
    assert_eq!(stats.unknown_columns, ["extra"]);
    // A record with another number of fields is ragged.
    let (rows, stats) = everywhere(&profile("header = false"), b"1\ta\tb\n2\tc\n");
    assert_eq!(stats.ragged_rows, 1);
    assert!(
        get(&rows[1], ERROR_COLUMN)
            .unwrap()
            .contains("expected 3 fields, found 2")
    );
}

#[test]
fn quoted_fields_hold_delimiters_quotes_and_line_breaks() {
    let p = profile("quote = '\"'");
    let input = "id,name,note\r\n\
                 1,\"a, b\",\"say \"\"hi\"\"\"\r\n\
                 2,\"two\r\nlines\",x\r\n\
                 3,\"three\n\nlines, with a blank one\",\"\"\n\
                 \"4\", plain ,\n";
    let (rows, stats) = everywhere(&p, input.as_bytes());
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 3, 5, 8]);
    assert_eq!(
        values(&rows[0]),
        [Some("1"), Some("a, b"), Some("say \"hi\"")]
    );
    assert_eq!(
        values(&rows[1]),
        [Some("2"), Some("two\r\nlines"), Some("x")]
    );
    assert_eq!(
        values(&rows[2]),
        [
            Some("3"),
            Some("three\n\nlines, with a blank one"),
            Some("")
        ],
        "a quoted empty value is the empty string, not NULL"
    );
    assert_eq!(values(&rows[3]), [Some("4"), Some("plain"), None]);
    assert_eq!(
        (stats.lines, stats.multiline_records, stats.crlf_lines),
        (8, 2, 4)
    );
}

#[test]
fn quotes_keep_their_content_untrimmed_and_trim_can_be_off() {
    let input = "id,name,note\n1, \" a \" ,  b  \n";
    let (rows, _) = everywhere(&profile("quote = '\"'"), input.as_bytes());
    assert_eq!(values(&rows[0]), [Some("1"), Some(" a "), Some("b")]);
    let (rows, _) = everywhere(&profile("quote = '\"'\ntrim = false"), input.as_bytes());
    assert_eq!(values(&rows[0]), [Some("1"), Some("  a  "), Some("  b  ")]);
    let (rows, _) = everywhere(&profile("trim = false"), b"id|name|note\n1| a |\n");
    assert_eq!(values(&rows[0]), [Some("1"), Some(" a "), None]);
}

#[test]
fn an_unterminated_quote_is_one_error_row_naming_its_line() {
    let p = profile("quote = '\"'");
    let input = "id,name,note\n1,a,b\n2,b,c\n3,c,d\n4,d,e\n5,e,f\n6,\"open,g\nmore\n7,h,i\n";
    let (rows, stats) = everywhere(&p, input.as_bytes());
    assert_eq!(stats.unterminated_quotes, 1);
    let last = rows.last().unwrap();
    assert_eq!(last.0, 7);
    let e = get(last, ERROR_COLUMN).unwrap();
    assert!(
        e.starts_with("unterminated quote: the quoted field opened on line 7 is still open at the end of the file (line 9)"),
        "{e}"
    );
    assert_eq!(get(last, RAW_COLUMN), Some("6,\"open,g\nmore\n7,h,i\n"));
    // In the header, the file cannot be read.
    let e = error(&p, "id,\"name\nnote\n1,2,3\n");
    assert!(e.starts_with("line 1: unterminated quote"), "{e}");
}

#[test]
fn a_long_quoted_record_is_one_error_row_and_memory_stays_bounded() {
    let p = profile("quote = '\"'");
    let big = "x\n".repeat(400);
    let input = format!("id,name,note\n1,\"{big}\",b\n2,c,d\n");
    let options = ParseOptions {
        max_line_bytes: 100,
        max_raw_bytes: 20,
        batch_rows: 2,
        ..ParseOptions::default()
    };
    let mut reference = None;
    for data in [input.as_bytes().to_vec(), gzip(input.as_bytes())] {
        for step in [1, 3, 64, usize::MAX] {
            let (batches, _, stats) = decode_profile(&p, &data, step, options).unwrap();
            let rows = rows(&batches);
            assert_eq!(stats.long_lines, 1);
            match &reference {
                None => reference = Some(rows),
                Some(r) => assert_eq!(&rows, r, "step {step}"),
            }
        }
    }
    let rows = reference.unwrap();
    assert_eq!(rows.len(), 2);
    let e = get(&rows[0], ERROR_COLUMN).unwrap();
    assert!(
        e.starts_with("record too long: 806 bytes over 401 lines"),
        "{e}"
    );
    assert_eq!(get(&rows[0], RAW_COLUMN).map(str::len), Some(20));
    assert_eq!(
        (rows[1].0, values(&rows[1])),
        (403, vec![Some("2"), Some("c"), Some("d")])
    );
}

#[test]
fn copy_text_format_like_pg_dump() {
    let p = profile_with(
        "header = false\ndelimiter = \"\\t\"\nescape = \"backslash\"",
        "null_tokens = []",
    );
    let input = "1\tR\\\\B\t\\N\n2\ttab\\there\t\n3\tline\\\nbreak\t\\x41\\102\n";
    let (rows, stats) = everywhere(&p, input.as_bytes());
    assert_eq!(values(&rows[0]), [Some("1"), Some("R\\B"), None]);
    assert_eq!(
        values(&rows[1]),
        [Some("2"), Some("tab\there"), Some("")],
        "with no null tokens, only \\N is NULL"
    );
    assert_eq!(
        values(&rows[2]),
        [Some("3"), Some("line\nbreak"), Some("AB")]
    );
    assert_eq!((rows[2].0, stats.lines, stats.multiline_records), (3, 4, 1));
}

#[test]
fn encodings() {
    let input = b"id|name|note\n1|Jos\xe9|\x80\n";
    let cases = [
        ("", "José", "\u{80}", 2),
        ("encoding = \"latin-1\"", "José", "\u{80}", 0),
        ("encoding = \"windows-1252\"", "José", "€", 0),
        ("encoding = \"iso-8859-15\"", "José", "\u{80}", 0),
    ];
    for (format, name, note, latin1_fields) in cases {
        let (rows, stats) = everywhere(&profile(format), input);
        assert_eq!(
            values(&rows[0]),
            [Some("1"), Some(name), Some(note)],
            "{format}"
        );
        assert_eq!(stats.latin1_fields, latin1_fields, "{format}");
    }
    // Valid UTF-8 read as windows-1252 is read as windows-1252, whatever it looks like.
    let (rows, _) = everywhere(
        &profile("encoding = \"windows-1252\"\nquote = '\"'"),
        "id,name,note\n1,\"é\",x\n".as_bytes(),
    );
    assert_eq!(values(&rows[0])[1], Some("Ã©"));
}

#[test]
fn skipped_lines_and_comments() {
    let p = profile("skip_lines = 2\ncomment = \"#\"");
    let input = "title line, \"quote\n# also skipped\n# a comment\nid|name|note\n\n1|a|#not a comment\n#2|b|c\n3|c|d\n";
    let (rows, stats) = everywhere(&p, input.as_bytes());
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [6, 8]);
    assert_eq!(
        values(&rows[0]),
        [Some("1"), Some("a"), Some("#not a comment")]
    );
    assert_eq!(
        (
            stats.skipped_lines,
            stats.comment_lines,
            stats.blank_lines,
            stats.lines
        ),
        (2, 2, 1, 8)
    );
    // With quotes, a skipped line's quote opens nothing; a comment inside a quoted field is
    // data.
    let p = profile("skip_lines = 1\ncomment = \"#\"\nquote = '\"'");
    let input = "report \"of\n# comment\nid,name,note\n1,\"a\n# b\",c\n";
    let (rows, stats) = everywhere(&p, input.as_bytes());
    assert_eq!(values(&rows[0]), [Some("1"), Some("a\n# b"), Some("c")]);
    assert_eq!((rows[0].0, stats.comment_lines), (4, 1));
}

#[test]
fn a_bom_before_a_quoted_header() {
    let p = profile("quote = '\"'");
    let (rows, stats) = everywhere(
        &p,
        "\u{feff}\"id\",\"name\",\"note\"\r\n\"1\",\"a\",\"b\"\r\n".as_bytes(),
    );
    assert!(stats.bom);
    assert_eq!(values(&rows[0]), [Some("1"), Some("a"), Some("b")]);
}

#[test]
fn a_file_that_does_not_match_its_profile_says_how() {
    let e = error(&profile("delimiter = \"tab\""), "id,name,note\n1,2,3\n");
    assert_eq!(
        e,
        "line 1: the file looks comma-delimited, the profile expects tab: set `delimiter` in \
         the profile's [format] (or \"auto\")"
    );
    let e = error(&profile("delimiter = \",\""), "id\tname\tnote\n1\t2\t3\n");
    assert!(
        e.contains("looks tab-delimited, the profile expects comma"),
        "{e}"
    );
    let e = error(
        &profile("header = false\ndelimiter = \"tab\""),
        "1,2,3\n4,5,6\n",
    );
    assert!(
        e.starts_with("line 1: the file looks comma-delimited, the profile expects tab"),
        "{e}"
    );
    let e = error(&profile(""), "1,2020-10-12T02:39:52Z,3.5\n2,x,y\n");
    assert!(
        e.starts_with("line 1: the first line looks like data (\"1,2020-10-12T02:39:52Z,3.5\")")
            && e.contains("set `header = false`"),
        "{e}"
    );
    let e = error(&profile("header = false"), "ID\tName\tNote\n1\t2\t3\n");
    assert!(
        e.starts_with("line 1: the first line looks like a header") && e.contains("header = true"),
        "{e}"
    );
    // Names that are not the profile's and not values: the old message.
    let e = error(&profile(""), "alpha,beta\n1,2\n");
    assert!(e.contains("no header column is known"), "{e}");
    let e = error(&profile("header = false"), "");
    assert_eq!(e, "empty file: no data rows");
}

#[test]
fn records_are_never_cut_across_batches() {
    let p = profile("quote = '\"'");
    let body = (0..30).fold(String::new(), |mut body, i| {
        let _ = writeln!(body, "{i},\"{}\",n{i}", "l\n".repeat(i % 4));
        body
    });
    let input = format!("id,name,note\n{body}");
    let options = ParseOptions {
        batch_rows: 4,
        batch_bytes: 40,
        ..ParseOptions::default()
    };
    let (batches, cuts, _) = decode_profile(&p, input.as_bytes(), usize::MAX, options).unwrap();
    for &step in BUFFER_SIZES {
        let (b, c, _) = decode_profile(&p, input.as_bytes(), step, options).unwrap();
        assert_eq!(rows(&b), rows(&batches), "step {step}");
        assert_eq!(c, cuts, "step {step}");
    }
    let all = rows(&batches);
    assert_eq!(all.len(), 30);
    for (i, row) in all.iter().enumerate() {
        assert_eq!(get(row, "note"), Some(format!("n{i}").as_str()));
    }
    assert!(cuts.contains(&BatchCut::Bytes));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.max(256), ..ProptestConfig::default() })]

    /// Quotes, escapes, delimiters and line breaks in any order: slicing never changes the
    /// outcome, and nothing panics.
    #[test]
    fn quotes_and_escapes_are_slice_invariant(
        body in proptest::collection::vec(prop::sample::select(vec![b'"', b',', b'\n', b'\r', b'\\', b'#', b' ', b'a', b'1', 0xE9]), 0..300),
        step in 1usize..20,
        batch_rows in 1usize..4,
        quote in any::<bool>(),
        escape in any::<bool>(),
        header in any::<bool>(),
        gz in any::<bool>(),
    ) {
        let mut format = String::from("delimiter = \",\"\ncomment = \"#\"\n");
        if quote { format.push_str("quote = '\"'\n"); }
        if escape { format.push_str("escape = \"backslash\"\n"); }
        if !header { format.push_str("header = false\n"); }
        let p = profile(&format);
        let mut input = if header { b"id,name,note\n".to_vec() } else { Vec::new() };
        input.extend(&body);
        let input = if gz { gzip(&input) } else { input };
        let options = ParseOptions { batch_rows, max_line_bytes: 64, max_raw_bytes: 16, ..ParseOptions::default() };
        let whole = decode_profile(&p, &input, usize::MAX, options).map(|(b, c, s)| (rows(&b), c, s.rows)).map_err(|e| e.to_string());
        let sliced = decode_profile(&p, &input, step, options).map(|(b, c, s)| (rows(&b), c, s.rows)).map_err(|e| e.to_string());
        prop_assert_eq!(whole, sliced);
    }
}
