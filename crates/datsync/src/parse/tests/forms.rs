//! Every written form of the `~|^` delimiter: (header form × data form × wrapping × line
//! ending × gzip), each decoded over several buffer and batch sizes, must put every field in
//! its column.

use super::*;

/// Header forms: the delimiter as the header writes it.
const HEADER_FORMS: &[&str] = &[
    "~|^",
    "~\\|\\^",
    "~\\|^",
    "~|\\^",
    "\\~\\|\\^",
    "~^",
    "~\\^",
];
/// Data forms: every accepted form of a data line's delimiter.
const DATA_FORMS: &[&str] = &["~|^", "~\\|\\^", "~\\|^", "~|\\^", "~^", "~\\^"];

/// How fields are wrapped around a delimiter `d`.
#[derive(Debug, Clone, Copy)]
enum Wrap {
    /// `A d B d C`.
    Joined,
    /// `^A d B d C~`: the delimiter's own `~` and `^` are the markers (SAP's usual form).
    Wrapped,
    /// `^A~ d ^B~ d ^C~`: markers and a whole delimiter (the issue's `~~\|\^^` header).
    Doubled,
}

const WRAPS: [Wrap; 3] = [Wrap::Joined, Wrap::Wrapped, Wrap::Doubled];

fn join(fields: &[&str], delimiters: &[&str], wrap: Wrap) -> String {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(delimiters[(i - 1) % delimiters.len()]);
        }
        match wrap {
            Wrap::Joined => out.push_str(f),
            Wrap::Wrapped => {
                if i == 0 {
                    out.push('^');
                }
                out.push_str(f);
                if i + 1 == fields.len() {
                    out.push('~');
                }
            }
            Wrap::Doubled => {
                out.push('^');
                out.push_str(f);
                out.push('~');
            }
        }
    }
    out
}

const HEADER: [&str; 4] = ["surat_pengantar", "Driver NIK", "nopol", "Nama Supir"];
const COLUMNS: [&str; 4] = [
    "surat_pengantar_brg",
    "nik_supir",
    "no_polisi",
    "nama_supir",
];

/// Values as written, and as they must load. A backslash that belongs to a value (at its
/// end, before a delimiter; at its start, after one; inside) is kept.
const ROWS: [[(&str, Option<&str>); 4]; 4] = [
    [
        ("0001", Some("0001")),
        ("0012345678901234", Some("0012345678901234")),
        ("B 1234 XYZ", Some("B 1234 XYZ")),
        ("JOSÉ", Some("JOSÉ")),
    ],
    [
        ("0002", Some("0002")),
        ("C:\\", Some("C:\\")),
        ("\\x|y", Some("\\x|y")),
        (" a \"q\" b ", Some("a \"q\" b")),
    ],
    [
        ("0003", Some("0003")),
        ("", None),
        ("NULL", None),
        ("x~y^z", Some("x~y^z")),
    ],
    [
        ("0004", Some("0004")),
        ("a\\b", Some("a\\b")),
        ("|", Some("|")),
        ("\\", Some("\\")),
    ],
];

/// Data lines: `form` picks the delimiters (`None`: every line and field mixes the forms),
/// `wrap` the wrapping (`None`: it changes from line to line).
fn data_lines(form: Option<&str>, wrap: Option<Wrap>) -> Vec<String> {
    ROWS.iter()
        .enumerate()
        .map(|(line, row)| {
            let values: Vec<&str> = row.iter().map(|(v, _)| *v).collect();
            let delimiters: Vec<&str> = match form {
                Some(f) => vec![f],
                None => (0..DATA_FORMS.len())
                    .map(|i| DATA_FORMS[(line + i) % DATA_FORMS.len()])
                    .collect(),
            };
            join(&values, &delimiters, wrap.unwrap_or(WRAPS[line % 3]))
        })
        .collect()
}

fn check(input: &[u8], context: &str) {
    let steps = [1, 7, 64, usize::MAX];
    let mut reference = None;
    for &step in &steps {
        for batch_rows in [1, 3, 10_000] {
            let (batches, stats) =
                decode_with(input, step, batch_rows).unwrap_or_else(|e| panic!("{context}: {e}"));
            let got = rows(&batches);
            match &reference {
                None => reference = Some(got.clone()),
                Some(r) => assert_eq!(&got, r, "{context}: step {step}, rows {batch_rows}"),
            }
            assert_eq!(stats.ragged_rows, 0, "{context}");
        }
    }
    let got = reference.unwrap_or_default();
    assert_eq!(got.len(), ROWS.len(), "{context}");
    for (row, want) in got.iter().zip(ROWS.iter()) {
        assert_eq!(get(row, ERROR_COLUMN), None, "{context}: line {}", row.0);
        for (column, (_, value)) in COLUMNS.iter().zip(want.iter()) {
            assert_eq!(
                get(row, column),
                *value,
                "{context}: line {}, {column}",
                row.0
            );
        }
    }
}

#[test]
fn every_header_form_with_every_data_form() {
    let mut cases = 0;
    for (h, header_form) in HEADER_FORMS.iter().enumerate() {
        for header_wrap in WRAPS {
            let header = join(&HEADER, &[header_form], header_wrap);
            let data_forms = DATA_FORMS.iter().map(|f| Some(*f)).chain([None]);
            for data_form in data_forms {
                for data_wrap in WRAPS.map(Some).into_iter().chain([None]) {
                    for crlf in [false, true] {
                        let gz = (h + cases) % 2 == 0;
                        let eol = if crlf { "\r\n" } else { "\n" };
                        let mut text = format!("{header}{eol}");
                        for line in data_lines(data_form, data_wrap) {
                            text.push_str(&line);
                            text.push_str(eol);
                        }
                        let input = if gz {
                            gzip(text.as_bytes())
                        } else {
                            text.into_bytes()
                        };
                        let context = format!(
                            "header {header:?}, data {data_form:?} {data_wrap:?}, crlf {crlf}, \
                             gzip {gz}"
                        );
                        check(&input, &context);
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 7 * 3 * 7 * 4 * 2);
}

#[test]
fn the_issue_header_with_plain_data_lines() {
    // `ztdwr.md` §1 and issue 10: a header written with the escaped delimiter, wrapped
    // fields, data lines in the plain form; and the same as gzip, CRLF.
    let header = "^Surat Pengantar~~\\|\\^^Driver NIK~~\\|\\^^nopol~~\\|\\^^Nama Supir~";
    let lines = data_lines(Some("~|^"), Some(Wrap::Wrapped));
    let text = format!("{header}\r\n{}\r\n", lines.join("\r\n"));
    check(text.as_bytes(), "plain");
    check(&gzip(text.as_bytes()), "gzip");
    let mut decoder = Decoder::new(&Profile::ztdwr(), ParseOptions::default());
    decoder.decode(text.as_bytes()).unwrap();
    assert_eq!(
        decoder.header().map(|h| h.delimiter),
        Some(Delimiter::EscapedTildePipeCaret)
    );
}
