//! The file side of a profile: the `[format]` table (delimiter, header, quoting, escapes,
//! encoding, lines to skip, comments, trimming). Every key is optional; the defaults are the
//! ZTDWR conventions (`ztdwr.md` §1), so a profile without `[format]` reads files as datsync
//! always has.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `delimiter` | `"auto"` | any string of 1–16 bytes (`","`, `";"`, `"\t"` or `"tab"`, `"\|"`, `"~\|^"`), or `"auto"`: detected on the header (or first) line — the `~\|^` family in any form, else tab, else `\|`, else `,` or `;` (the more frequent) |
//! | `header` | `true` | the first record names the columns; `false`: every record is data |
//! | `columns` | the profile's sources | with `header = false`: the fields' names in file order |
//! | `quote` | `""` (none) | `"\""` (or another ASCII character): RFC 4180 quoting |
//! | `escape` | `"none"` | `"backslash"`: PostgreSQL COPY text-format escapes (inside quotes with `quote`) |
//! | `encoding` | `"utf-8"` | `utf-8` (a field that is not UTF-8 falls back to Latin-1 on its own), `latin-1`, `windows-1252`, or another single-byte encoding `encoding_rs` knows |
//! | `skip_lines` | `0` | physical lines skipped before the header (or the first record) |
//! | `comment` | none | a line starting with this string, where a record would start, is skipped |
//! | `trim` | `true` | ASCII whitespace around unquoted values (and outside quotes) is dropped |

use serde::Deserialize;

/// The longest delimiter or comment string.
pub const MAX_DELIMITER_BYTES: usize = 16;

/// How fields are separated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DelimiterSetting {
    /// Detected on the header line (or the first line, without a header).
    #[default]
    Auto,
    /// Exactly these bytes (the `~|^` family: any of its written forms, see
    /// [`crate::Delimiter`]).
    Fixed(Vec<u8>),
}

/// Escapes inside fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Escape {
    /// A backslash is an ordinary character.
    #[default]
    None,
    /// PostgreSQL COPY's text format: `\\`, `\t`, `\n`, `\r`, `\b`, `\f`, `\v`, `\NNN`
    /// (octal), `\xHH` (hex), any other character after a backslash is itself, a backslash
    /// before a line break continues the record, and a field that is exactly `\N` is NULL.
    /// With `quote`, only inside quotes: `\"` and `\\` (COPY's CSV `ESCAPE '\'`).
    Backslash,
}

/// How the bytes of a field become text.
#[derive(Debug, Clone, Copy, Default)]
pub enum TextEncoding {
    /// UTF-8; a field that is not valid UTF-8 is read as Latin-1 on its own (never the whole
    /// file, `ztdwr.md` §1).
    #[default]
    Utf8,
    /// ISO-8859-1: each byte is the code point of the same value (PostgreSQL's `LATIN1`).
    Latin1,
    /// A single-byte encoding of `encoding_rs` (`windows-1252`, `iso-8859-15`, `koi8-r`, …).
    SingleByte(&'static encoding_rs::Encoding),
}

impl TextEncoding {
    /// The name shown to users.
    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Latin1 => "latin-1",
            Self::SingleByte(e) => e.name(),
        }
    }

    /// The encoding for a label, when datsync can cut its text at ASCII bytes: UTF-8, Latin-1
    /// or a single-byte encoding.
    pub fn for_label(label: &str) -> Option<Self> {
        let l = label.trim().to_ascii_lowercase();
        match l.as_str() {
            "utf-8" | "utf8" => return Some(Self::Utf8),
            // The WHATWG maps these labels to windows-1252; PostgreSQL and most tools mean
            // ISO-8859-1, byte for code point.
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" => return Some(Self::Latin1),
            _ => {}
        }
        let e = encoding_rs::Encoding::for_label(l.as_bytes())?;
        if e == encoding_rs::UTF_8 {
            Some(Self::Utf8)
        } else if e.is_single_byte() {
            Some(Self::SingleByte(e))
        } else {
            None
        }
    }
}

impl PartialEq for TextEncoding {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for TextEncoding {}

/// The checked `[format]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// How fields are separated.
    pub delimiter: DelimiterSetting,
    /// The first record is a header.
    pub header: bool,
    /// With `header = false`: the canonical names of the fields in file order (`None`: the
    /// profile's source columns in order).
    pub columns: Option<Vec<String>>,
    /// The quote character (RFC 4180), if any.
    pub quote: Option<u8>,
    /// Escapes.
    pub escape: Escape,
    /// The text encoding.
    pub encoding: TextEncoding,
    /// Physical lines skipped before the header (or the first record).
    pub skip_lines: u64,
    /// A line starting with these bytes, where a record would start, is a comment.
    pub comment: Option<Vec<u8>>,
    /// ASCII whitespace around unquoted values is dropped.
    pub trim: bool,
}

impl Default for Format {
    fn default() -> Self {
        Self {
            delimiter: DelimiterSetting::Auto,
            header: true,
            columns: None,
            quote: None,
            escape: Escape::None,
            encoding: TextEncoding::Utf8,
            skip_lines: 0,
            comment: None,
            trim: true,
        }
    }
}

impl Format {
    /// Whether records may span lines or fields need more than cutting (quotes, escapes).
    pub fn has_syntax(&self) -> bool {
        self.quote.is_some() || self.escape != Escape::None
    }
}

/// `[format]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFormat {
    /// `"auto"`, or the delimiter string (`"tab"` for a tab).
    delimiter: Option<String>,
    /// Whether the first record is a header.
    header: Option<bool>,
    /// With `header = false`, the fields' names in file order.
    columns: Option<Vec<String>>,
    /// `""` (none) or one ASCII character.
    quote: Option<String>,
    /// `"none"` or `"backslash"`.
    escape: Option<String>,
    /// An encoding label.
    encoding: Option<String>,
    /// Lines skipped before the header.
    skip_lines: Option<u64>,
    /// The comment prefix.
    comment: Option<String>,
    /// Whether unquoted values are trimmed.
    trim: Option<bool>,
}

/// A problem with `[format]`: the field and what is wrong.
pub(super) type FormatProblem = (&'static str, String);

impl RawFormat {
    /// Checks the table; `canonical` checks a column name (the profile's rule for source
    /// names).
    pub(super) fn check(
        self,
        canonical: impl Fn(&str) -> Result<(), String>,
    ) -> Result<Format, FormatProblem> {
        let quote = check_quote(self.quote.as_deref())?;
        let escape = match self.escape.as_deref().map(str::trim) {
            None | Some("" | "none") => Escape::None,
            Some("backslash" | "\\") => Escape::Backslash,
            Some(e) => {
                return Err((
                    "escape",
                    format!("unknown escape {e:?}; use \"none\" or \"backslash\""),
                ));
            }
        };
        let delimiter = check_delimiter(self.delimiter.as_deref(), quote, escape)?;
        let header = self.header.unwrap_or(true);
        let columns = check_columns(self.columns, header, canonical)?;
        let encoding = match self.encoding.as_deref() {
            None => TextEncoding::Utf8,
            Some(label) => TextEncoding::for_label(label).ok_or_else(|| {
                (
                    "encoding",
                    format!(
                        "unknown or unsupported encoding {label:?}; use utf-8, latin-1, \
                         windows-1252 or another single-byte encoding"
                    ),
                )
            })?,
        };
        let comment = match self.comment {
            None => None,
            Some(c) if c.is_empty() => {
                return Err(("comment", "the comment prefix is empty".into()));
            }
            Some(c) if c.len() > MAX_DELIMITER_BYTES || c.contains(['\n', '\r']) => {
                return Err((
                    "comment",
                    format!(
                        "the comment prefix is one line of at most {MAX_DELIMITER_BYTES} bytes"
                    ),
                ));
            }
            Some(c) => Some(c.into_bytes()),
        };
        Ok(Format {
            delimiter,
            header,
            columns,
            quote,
            escape,
            encoding,
            skip_lines: self.skip_lines.unwrap_or(0),
            comment,
            trim: self.trim.unwrap_or(true),
        })
    }
}

fn check_quote(quote: Option<&str>) -> Result<Option<u8>, FormatProblem> {
    match quote {
        None | Some("") => Ok(None),
        Some(q) if q.len() == 1 && q.is_ascii() => {
            let b = q.as_bytes()[0];
            if matches!(b, b'\n' | b'\r' | b'\\' | b' ') || b.is_ascii_alphanumeric() {
                return Err(("quote", format!("{q:?} cannot be the quote character")));
            }
            Ok(Some(b))
        }
        Some(q) => Err((
            "quote",
            format!("the quote is one ASCII character (\"\\\"\" or \"'\") or \"\", not {q:?}"),
        )),
    }
}

fn check_delimiter(
    delimiter: Option<&str>,
    quote: Option<u8>,
    escape: Escape,
) -> Result<DelimiterSetting, FormatProblem> {
    let problem = |m: &str| Err(("delimiter", m.to_owned()));
    match delimiter {
        None | Some("auto") => Ok(DelimiterSetting::Auto),
        Some("tab") => Ok(DelimiterSetting::Fixed(b"\t".to_vec())),
        Some("") => problem("the delimiter is empty; use \"auto\" or a string"),
        Some(d) if d.len() > MAX_DELIMITER_BYTES => Err((
            "delimiter",
            format!("the delimiter is longer than {MAX_DELIMITER_BYTES} bytes"),
        )),
        Some(d) if d.contains(['\n', '\r']) => problem("the delimiter cannot hold a line break"),
        Some(d) if quote.is_some_and(|q| d.as_bytes().contains(&q)) => {
            problem("the delimiter cannot hold the quote character")
        }
        Some(d)
            if escape == Escape::Backslash && quote.is_none() && (d.len() != 1 || d == "\\") =>
        {
            problem(
                "with `escape = \"backslash\"` (COPY's text format) the delimiter is one \
                 character other than a backslash",
            )
        }
        Some(d) => Ok(DelimiterSetting::Fixed(d.as_bytes().to_vec())),
    }
}

fn check_columns(
    columns: Option<Vec<String>>,
    header: bool,
    canonical: impl Fn(&str) -> Result<(), String>,
) -> Result<Option<Vec<String>>, FormatProblem> {
    match columns {
        None => Ok(None),
        Some(_) if header => Err((
            "columns",
            "`columns` names the fields of a file without a header: set `header = false`".into(),
        )),
        Some(c) if c.is_empty() => Err(("columns", "`columns` is empty".into())),
        Some(c) => {
            let mut seen = std::collections::HashSet::new();
            for name in &c {
                canonical(name).map_err(|m| ("columns", m))?;
                if !seen.insert(name.as_str()) {
                    return Err(("columns", format!("`{name}` is named twice")));
                }
            }
            Ok(Some(c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> Result<Format, FormatProblem> {
        let raw: RawFormat = toml::from_str(toml_text).unwrap();
        raw.check(|n| {
            if n.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            {
                Ok(())
            } else {
                Err(format!("`{n}` is not canonical"))
            }
        })
    }

    #[test]
    fn defaults_are_ztdwr() {
        assert_eq!(check("").unwrap(), Format::default());
        assert!(!Format::default().has_syntax());
    }

    #[test]
    fn every_key() {
        let f = check(
            "delimiter = \",\"\nheader = false\ncolumns = [\"a\", \"b\"]\nquote = '\"'\n\
             escape = \"backslash\"\nencoding = \"windows-1252\"\nskip_lines = 2\ncomment = \"#\"\ntrim = false\n",
        )
        .unwrap();
        assert_eq!(f.delimiter, DelimiterSetting::Fixed(b",".to_vec()));
        assert!(!f.header);
        assert_eq!(
            f.columns.as_deref(),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
        assert_eq!(f.quote, Some(b'"'));
        assert_eq!(f.escape, Escape::Backslash);
        assert_eq!(f.encoding.name(), "windows-1252");
        assert_eq!(
            (f.skip_lines, f.comment.as_deref(), f.trim),
            (2, Some(&b"#"[..]), false)
        );
        assert_eq!(
            check("delimiter = \"tab\"").unwrap().delimiter,
            DelimiterSetting::Fixed(b"\t".to_vec())
        );
        assert_eq!(
            check("encoding = \"ISO-8859-1\"").unwrap().encoding,
            TextEncoding::Latin1
        );
        assert_eq!(
            check("encoding = \"UTF8\"").unwrap().encoding,
            TextEncoding::Utf8
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        for (text, field, words) in [
            ("delimiter = \"\"", "delimiter", "empty"),
            ("delimiter = \"a\\nb\"", "delimiter", "line break"),
            ("delimiter = \"01234567890123456\"", "delimiter", "16 bytes"),
            ("delimiter = '\"'\nquote = '\"'", "delimiter", "quote"),
            (
                "delimiter = \"~|^\"\nescape = \"backslash\"",
                "delimiter",
                "one character",
            ),
            ("quote = \"ab\"", "quote", "one ASCII"),
            ("quote = \"a\"", "quote", "cannot be"),
            ("escape = \"caret\"", "escape", "backslash"),
            ("columns = [\"a\"]", "columns", "header = false"),
            (
                "header = false\ncolumns = [\"a\", \"a\"]",
                "columns",
                "twice",
            ),
            (
                "header = false\ncolumns = [\"A b\"]",
                "columns",
                "canonical",
            ),
            ("encoding = \"utf-16le\"", "encoding", "unsupported"),
            ("encoding = \"shift_jis\"", "encoding", "unsupported"),
            ("comment = \"\"", "comment", "empty"),
        ] {
            let (f, message) = check(text).unwrap_err();
            assert_eq!(f, field, "{text}");
            assert!(message.contains(words), "{text}: {message}");
        }
    }
}
