//! `datsync profile init`: a starting profile drafted from a file's first records — the
//! file's format (delimiter, header or not, quoting, COPY escapes), a name, a type and a
//! format per column, and a key — every guess written with a comment that says what it
//! rests on, for a person to review.
//!
//! Two passes over the first records (at most [`DEFAULT_DRAFT_ROWS`], or 16 MiB of text):
//! the format is sniffed from the text (for each candidate delimiter, how consistently it
//! cuts the records into the same number of fields, quotes followed); then the records are
//! read by the real decoder with that format and every column as text, so the values the
//! types are guessed from are exactly the values `datsync run` will read, and each type is
//! chosen only when every value of the column reads with the parser `run` will use
//! (`value`). The drafted profile is checked by the profile checker and read once more by
//! the decoder before it is returned.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

use arrow_array::Array as _;
use arrow_array::cast::AsArray as _;

use crate::model::{ERROR_COLUMN, LINE_COLUMN, RAW_COLUMN};
use crate::parse::{Decoder, Delimiter, ParseError, ParseOptions, decode_reader};
use crate::pg::BOOKKEEPING_COLUMNS;
use crate::profile::{
    DEFAULT_NULL_TOKENS, Profile, ProfileError, ROW_VERSION_COLUMN, canonical_name,
};
use crate::value;

/// Records read by default to draft a profile.
pub const DEFAULT_DRAFT_ROWS: usize = 1000;

/// The most text read to draft a profile.
const MAX_SAMPLE_BYTES: usize = 16 << 20;

/// Delimiters tried, in the order a tie is decided.
const CANDIDATES: [(&str, &str); 4] = [("\t", "tab"), ("|", "|"), (",", ","), (";", ";")];

/// A header name is at most this long.
const MAX_NAME_CHARS: usize = 64;

/// What to draft.
#[derive(Debug, Clone)]
pub struct DraftOptions {
    /// The file's name as given (for the comments and the default table name).
    pub file: String,
    /// The target table (default: the file's base name, canonicalized).
    pub table: Option<String>,
    /// The key column (a header name or a drafted column name; default: guessed).
    pub key: Option<String>,
    /// Records read.
    pub rows: usize,
}

/// A drafted profile.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The profile as TOML, every guess commented.
    pub toml: String,
    /// The records the guesses rest on.
    pub records: usize,
    /// Records of the sample the drafted profile could not read (a field count that differs
    /// from the others'); they are named in the profile's comments.
    pub ragged: usize,
    /// The drafted columns: (source name, type name).
    pub columns: Vec<(String, String)>,
    /// Whether the first record was taken for a header.
    pub header: bool,
    /// The delimiter, as written in the profile.
    pub delimiter: String,
}

/// Why no profile could be drafted.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No record to draft from.
    #[error("{file}: no record to draft a profile from (the file is empty or blank)")]
    Empty {
        /// The file.
        file: String,
    },
    /// `--key` names no column.
    #[error("{file}: --key `{key}` is not a column of the file; its columns are: {columns}")]
    UnknownKey {
        /// The file.
        file: String,
        /// The key asked for.
        key: String,
        /// The drafted column names.
        columns: String,
    },
    /// The decoder refused the sample with the sniffed format.
    #[error("{file}: {source}")]
    Parse {
        /// The file.
        file: String,
        /// The decoder's error (it names the line).
        source: ParseError,
    },
    /// The drafted profile did not pass the checker (a bug of the drafting).
    #[error("{file}: the drafted profile is not valid ({source}); please report it")]
    Invalid {
        /// The file.
        file: String,
        /// The checker's error.
        source: ProfileError,
    },
}

/// Drafts a profile from the first records of `reader` (gzip or not).
pub fn draft_profile<R: Read>(reader: R, options: &DraftOptions) -> Result<Draft, DraftError> {
    let file = options.file.clone();
    let rows = options.rows.max(1);
    let sample = read_sample(reader, rows).map_err(|source| DraftError::Read {
        file: file.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&sample.bytes);
    let (lines, comment) = sample_lines(&text);
    let Some(first) = lines.first() else {
        return Err(DraftError::Empty { file });
    };
    let format = sniff(&lines, first);
    // Pass 2: the decoder reads every column as text.
    let width = format.width;
    let names: Vec<String> = (1..=width).map(|i| format!("column_{i}")).collect();
    let probe = format.toml(&names, comment, false);
    let profile = Profile::from_toml_str(&probe, Path::new(&file)).map_err(invalid(&file))?;
    let read = read_values(&sample.bytes, &profile, width).map_err(unreadable(&file))?;
    if read.values.is_empty() {
        return Err(DraftError::Empty { file });
    }
    let header = looks_like_header(&read.values);
    let (names, body) = if header {
        let names = read.values[0]
            .iter()
            .map(|v| canonical_name(v.as_deref().unwrap_or_default()))
            .collect();
        (names, &read.values[1..])
    } else {
        (names, &read.values[..])
    };
    let guesses: Vec<Guess> = (0..width).map(|j| guess_type(&present(body, j))).collect();
    let key =
        choose_key(options.key.as_deref(), &names, body).map_err(|key| DraftError::UnknownKey {
            file: file.clone(),
            key,
            columns: names.join(", "),
        })?;
    let table = options
        .table
        .clone()
        .unwrap_or_else(|| table_name(&options.file));
    let records = body.len();
    let toml = write_profile(&Written {
        file: &options.file,
        table: &table,
        format: &format,
        comment,
        header,
        names: &names,
        guesses: &guesses,
        key: &key,
        records,
        ragged: read.ragged,
        utf8: std::str::from_utf8(&sample.bytes).is_ok(),
        whole_file: sample.whole,
    });
    // The draft must pass the checker and read the sample with every column known.
    let drafted = Profile::from_toml_str(&toml, Path::new(&file)).map_err(invalid(&file))?;
    read_values(&sample.bytes, &drafted, width).map_err(unreadable(&file))?;
    Ok(Draft {
        toml,
        records,
        ragged: read.ragged,
        columns: names
            .iter()
            .zip(&guesses)
            .map(|(n, g)| (n.clone(), g.kind.to_owned()))
            .collect(),
        header,
        delimiter: format.delimiter_name.clone(),
    })
}

fn invalid(file: &str) -> impl Fn(ProfileError) -> DraftError + '_ {
    move |source| DraftError::Invalid {
        file: file.to_owned(),
        source,
    }
}

fn unreadable(file: &str) -> impl Fn(ParseError) -> DraftError + '_ {
    move |source| DraftError::Parse {
        file: file.to_owned(),
        source,
    }
}

/// The sample's lines without a BOM, line ends, blank lines and `#` lines (when the first
/// line is one: then the second value is true).
fn sample_lines(text: &str) -> (Vec<&str>, bool) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let comment = lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.starts_with('#'));
    let lines = lines
        .into_iter()
        .filter(|l| !(l.trim().is_empty() || comment && l.starts_with('#')))
        .collect();
    (lines, comment)
}

/// Column `j`'s present, non-empty values.
fn present(records: &[Vec<Option<String>>], j: usize) -> Vec<&str> {
    records
        .iter()
        .filter_map(|r| r.get(j).and_then(|v| v.as_deref()))
        .filter(|v| !v.is_empty())
        .collect()
}

/// The first records' bytes.
struct Sample {
    bytes: Vec<u8>,
    /// The sample is the whole file.
    whole: bool,
}

/// Reads the first `rows` + 1 lines (a header and `rows` records, when records are lines),
/// at most [`MAX_SAMPLE_BYTES`], inflating gzip.
fn read_sample<R: Read>(mut reader: R, rows: usize) -> std::io::Result<Sample> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = std::io::Cursor::new(magic[..got].to_vec());
    let mut text: Box<dyn Read> = if magic[..got] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(head.chain(reader)))
    } else {
        Box::new(head.chain(reader))
    };
    let mut bytes = Vec::new();
    let mut buffer = vec![0u8; 64 << 10];
    let mut newlines = 0;
    let wanted = rows.saturating_add(1);
    loop {
        let n = match text.read(&mut buffer) {
            Ok(0) => {
                return Ok(Sample { bytes, whole: true });
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for (i, &b) in buffer[..n].iter().enumerate() {
            if b == b'\n' {
                newlines += 1;
                if newlines == wanted {
                    bytes.extend_from_slice(&buffer[..=i]);
                    return Ok(Sample {
                        bytes,
                        whole: false,
                    });
                }
            }
        }
        bytes.extend_from_slice(&buffer[..n]);
        if bytes.len() >= MAX_SAMPLE_BYTES {
            // Ends on the last whole line.
            if let Some(end) = bytes.iter().rposition(|&b| b == b'\n') {
                bytes.truncate(end + 1);
            }
            return Ok(Sample {
                bytes,
                whole: false,
            });
        }
    }
}

/// The format sniffed from the text.
#[derive(Debug, Clone)]
struct Sniffed {
    /// The delimiter as the profile writes it (`"\t"`, `"~|^"`).
    delimiter: String,
    /// The delimiter's name for messages (`tab`, `,`).
    delimiter_name: String,
    /// Fields per record (the most frequent count).
    width: usize,
    /// Records with that many fields, and records sniffed.
    consistent: usize,
    records: usize,
    /// Quoted values seen (quote = `"` when there are some).
    quoted: usize,
    /// Values that are exactly `\N` (COPY text format: escape = "backslash").
    copy_nulls: usize,
    /// Whether the `~|^` family was found.
    family: bool,
}

impl Sniffed {
    fn quote(&self) -> bool {
        !self.family && self.quoted > 0 && self.copy_nulls == 0
    }

    fn escape(&self) -> bool {
        !self.family && self.copy_nulls > 0
    }

    /// The profile's top level and `[format]` for these `names` (a probe: key the first
    /// column, every column text).
    fn toml(&self, names: &[String], comment: bool, header: bool) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "name = \"probe\"\ntable = \"probe\"\nkey = {}",
            quoted(&names[0])
        );
        if self.escape() {
            t.push_str("null_tokens = []\n");
        }
        t.push_str("[format]\n");
        let _ = writeln!(t, "delimiter = {}", quoted(&self.delimiter));
        let _ = writeln!(t, "header = {header}");
        if self.quote() {
            t.push_str("quote = '\"'\n");
        }
        if self.escape() {
            t.push_str("escape = \"backslash\"\n");
        }
        if comment {
            t.push_str("comment = \"#\"\n");
        }
        for (i, n) in names.iter().enumerate() {
            let _ = writeln!(t, "[[columns]]\nsource = {}\ntype = \"text\"", quoted(n));
            if i == 0 {
                t.push_str("required = true\nnot_empty = true\n");
            }
        }
        t
    }
}

/// Sniffs the delimiter, quoting and escapes from the sample's lines.
fn sniff(lines: &[&str], first: &str) -> Sniffed {
    let family = Delimiter::detect(first.as_bytes());
    if family.has_markers() {
        let delimiter = family.name();
        let shape = shape(lines, &delimiter, false, true);
        return Sniffed {
            delimiter_name: delimiter.clone(),
            delimiter,
            width: shape.width,
            consistent: shape.consistent,
            records: shape.records,
            quoted: 0,
            copy_nulls: 0,
            family: true,
        };
    }
    let mut best: Option<(Shape, usize)> = None;
    for (i, (d, _)) in CANDIDATES.iter().enumerate() {
        let s = shape(lines, d, true, false);
        if s.width < 2 {
            continue;
        }
        let better = match &best {
            None => true,
            // More records cut alike, then more fields; a tie keeps the earlier candidate.
            Some((b, _)) => (s.consistent, s.width) > (b.consistent, b.width),
        };
        if better {
            best = Some((s, i));
        }
    }
    let (chosen, i) = best.unwrap_or_else(|| (shape(lines, ",", true, false), 2));
    let (d, name) = CANDIDATES[i];
    // `\N` values make it COPY's text format, which has no quotes.
    let copy_nulls = shape(lines, d, false, false).copy_nulls;
    Sniffed {
        delimiter: d.to_owned(),
        delimiter_name: name.to_owned(),
        width: chosen.width,
        consistent: chosen.consistent,
        records: chosen.records,
        quoted: chosen.quoted,
        copy_nulls,
        family: false,
    }
}

/// How a delimiter cuts the sample.
#[derive(Debug, Clone, Copy)]
struct Shape {
    records: usize,
    /// The most frequent number of fields (the fewer on a tie).
    width: usize,
    /// Records with that many fields.
    consistent: usize,
    quoted: usize,
    copy_nulls: usize,
}

/// Cuts `lines` into records and fields at `delim` (the `~|^` family's forms when `family`),
/// following `"` quotes when `quote` (a quote opens a value only as its first character,
/// after blanks; `""` inside is one quote; a quoted line break continues the record).
fn shape(lines: &[&str], delim: &str, quote: bool, family: bool) -> Shape {
    let family_delim = family.then(|| Delimiter::detect(delim.as_bytes()));
    let mut counts: Vec<usize> = Vec::new();
    let mut quoted = 0;
    let mut copy_nulls = 0;
    let mut fields = 1;
    let mut in_quotes = false;
    let d = delim.as_bytes();
    for line in lines {
        let b = line.as_bytes();
        if let Some(fd) = &family_delim {
            counts.push(count_family_fields(b, fd));
            continue;
        }
        let mut field_start = 0;
        let mut i = 0;
        while i < b.len() {
            if in_quotes {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    in_quotes = false;
                }
                i += 1;
                continue;
            }
            if b[i..].starts_with(d) {
                if &b[field_start..i] == b"\\N" {
                    copy_nulls += 1;
                }
                fields += 1;
                i += d.len();
                field_start = i;
                continue;
            }
            if quote && b[i] == b'"' && b[field_start..i].iter().all(|c| *c == b' ') {
                in_quotes = true;
                quoted += 1;
            }
            i += 1;
        }
        if in_quotes {
            // The record goes on over the next line.
            continue;
        }
        if &b[field_start..] == b"\\N" {
            copy_nulls += 1;
        }
        counts.push(fields);
        fields = 1;
    }
    if in_quotes {
        counts.push(fields);
    }
    let mut frequency: Vec<(usize, usize)> = Vec::new();
    for c in &counts {
        match frequency.iter_mut().find(|(w, _)| w == c) {
            Some(entry) => entry.1 += 1,
            None => frequency.push((*c, 1)),
        }
    }
    let (width, consistent) = frequency
        .iter()
        .copied()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .unwrap_or((1, 0));
    Shape {
        records: counts.len(),
        width,
        consistent,
        quoted,
        copy_nulls,
    }
}

fn count_family_fields(line: &[u8], delimiter: &Delimiter) -> usize {
    delimiter.for_each_field(line, |_, _| {})
}

/// The values the decoder reads with `profile` (header = false, `width` text columns), in
/// record order, and the records it could not cut into `width` fields.
struct Values {
    values: Vec<Vec<Option<String>>>,
    ragged: usize,
}

fn read_values(sample: &[u8], profile: &Profile, width: usize) -> Result<Values, ParseError> {
    let options = ParseOptions {
        keep_unknown_columns: true,
        ..ParseOptions::default()
    };
    let mut decoder = Decoder::new(profile, options);
    let mut out = Values {
        values: Vec::new(),
        ragged: 0,
    };
    decode_reader(sample, &mut decoder, |batch| {
        let schema = batch.schema();
        let errors = batch
            .column_by_name(ERROR_COLUMN)
            .and_then(|c| c.as_string_opt::<i32>());
        let data: Vec<usize> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| ![LINE_COLUMN, ERROR_COLUMN, RAW_COLUMN].contains(&f.name().as_str()))
            .map(|(i, _)| i)
            .collect();
        for r in 0..batch.num_rows() {
            if errors.is_some_and(|e| e.is_valid(r)) {
                out.ragged += 1;
                continue;
            }
            let row = data
                .iter()
                .take(width)
                .map(|&i| {
                    let col = batch.column(i).as_string_opt::<i32>()?;
                    col.is_valid(r).then(|| col.value(r).to_owned())
                })
                .collect();
            out.values.push(row);
        }
        Ok::<(), ParseError>(())
    })?;
    Ok(out)
}

/// Whether the first record names the columns: every value present, a distinct name of at
/// most [`MAX_NAME_CHARS`] characters, none a number or a date; and either a column whose
/// other values are typed (numbers, dates) has a first value that is not, or every value is
/// name-like and none of them appears again below it.
fn looks_like_header(records: &[Vec<Option<String>>]) -> bool {
    let [first, rest @ ..] = records else {
        return false;
    };
    if rest.is_empty() {
        return false;
    }
    let mut seen = HashSet::new();
    for v in first {
        let Some(v) = v.as_deref() else {
            return false;
        };
        let name = canonical_name(v);
        if name.is_empty() || v.chars().count() > MAX_NAME_CHARS || !seen.insert(name) {
            return false;
        }
        if guess_type(&[v]).kind != "text" {
            return false;
        }
    }
    let mut typed_mismatch = false;
    let mut all_text = true;
    let mut repeated = false;
    for (j, v) in first.iter().enumerate() {
        let v = v.as_deref().unwrap_or_default();
        let below: Vec<&str> = rest
            .iter()
            .filter_map(|r| r.get(j).and_then(|x| x.as_deref()))
            .filter(|x| !x.is_empty())
            .collect();
        let g = guess_type(&below);
        if g.kind != "text" {
            all_text = false;
            if !g.reads(v) {
                typed_mismatch = true;
            }
        }
        if below.contains(&v) {
            repeated = true;
        }
    }
    let name_like = first.iter().flatten().all(|v| {
        v.chars().next().is_some_and(char::is_alphabetic)
            && v.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | ' ' | '-' | '.'))
    });
    typed_mismatch || (all_text && name_like && !repeated)
}

/// A guessed type.
#[derive(Debug, Clone)]
struct Guess {
    /// The profile's type name.
    kind: &'static str,
    /// The strftime format, for a date not in a default form.
    format: Option<&'static str>,
    /// What the guess rests on.
    why: String,
}

impl Guess {
    fn new(kind: &'static str, format: Option<&'static str>, why: String) -> Self {
        Self { kind, format, why }
    }

    fn text(why: String) -> Self {
        Self::new("text", None, why)
    }

    /// Whether `value` reads as this guess's type.
    fn reads(&self, value: &str) -> bool {
        reads(self.kind, self.format, value)
    }
}

/// Whether `v` reads as `kind` (with `format`) with the parser `run` uses.
fn reads(kind: &str, format: Option<&str>, v: &str) -> bool {
    match kind {
        "integer" => is_plain_integer(v) && value::parse_integer(v).is_ok_and(|x| x.is_some()),
        "numeric" => is_plain_decimal(v) && value::parse_numeric(v).is_ok_and(|x| x.is_some()),
        "float" => value::parse_float(v).is_ok_and(|x| x.is_some()),
        "boolean" => is_boolean_word(v),
        // An all-zero date (`00000000`) is NULL, as `run` reads it.
        "date" => value::parse_date_in(v, format).is_ok(),
        "time" => value::parse_time_in(v, format).is_ok(),
        "timestamp" => value::parse_timestamp(v, format).is_ok_and(|x| x.is_some()),
        "timestamptz" => value::parse_timestamptz(v, format).is_ok_and(|x| x.is_some()),
        _ => true,
    }
}

/// Digits with an optional sign, no leading zero (a leading zero makes an identifier).
fn is_plain_integer(v: &str) -> bool {
    let d = v.strip_prefix(['-', '+']).unwrap_or(v);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && (d.len() == 1 || !d.starts_with('0'))
}

/// Digits with one `.` and an optional sign (`12.50`, `-0.5`, `.5`).
fn is_plain_decimal(v: &str) -> bool {
    let d = v.strip_prefix(['-', '+']).unwrap_or(v);
    let Some((int, frac)) = d.split_once('.') else {
        return false;
    };
    (!int.is_empty() || !frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && (int.len() <= 1 || !int.starts_with('0'))
}

/// A decimal with a decimal comma or point and thousands marks (`45,5`, `1.234,56`,
/// `12,50-`): digits, at most one sign (leading or trailing), `.` and `,`.
fn is_decimal_form(v: &str) -> bool {
    let d = v
        .strip_prefix('-')
        .or_else(|| v.strip_suffix('-'))
        .unwrap_or(v);
    d.bytes().any(|b| b.is_ascii_digit())
        && d.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
        && d.starts_with(|c: char| c.is_ascii_digit())
        && d.ends_with(|c: char| c.is_ascii_digit())
}

/// The date forms `run` reads without a `format`: `YYYY-MM-DD`, `DD.MM.YYYY`, and eight
/// digits `YYYYMMDD` from 1900 to 2100 (or `00000000`).
fn default_date_form(v: &str) -> bool {
    let b = v.as_bytes();
    match b.len() {
        10 => (b[4] == b'-' && b[7] == b'-') || (b[2] == b'.' && b[5] == b'.'),
        8 => {
            b.iter().all(u8::is_ascii_digit)
                && (v == "00000000"
                    || v[..4]
                        .parse::<u32>()
                        .is_ok_and(|y| (1900..=2100).contains(&y)))
        }
        _ => false,
    }
}

/// `1.5e3`, `Infinity`: what only a float reads.
fn is_float_form(v: &str) -> bool {
    let d = v.strip_prefix(['-', '+']).unwrap_or(v);
    d.eq_ignore_ascii_case("infinity")
        || d.eq_ignore_ascii_case("inf")
        || (d.bytes().any(|b| b == b'e' || b == b'E')
            && d.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+')))
}

/// The boolean words PostgreSQL and datsync both read (`X`, `1`, `0` are not guessed).
fn is_boolean_word(v: &str) -> bool {
    ["true", "false", "t", "f", "yes", "no", "y", "n"]
        .iter()
        .any(|w| w.eq_ignore_ascii_case(v))
}

/// `YYYY-MM-DD` and a time, with `T` or a space.
fn is_iso_stamp(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 16
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b' ')
        && b[13] == b':'
}

/// An ISO 8601 timestamp ending in `Z` or an offset (`+05:30`, `-0500`, `+01`).
fn has_offset(v: &str) -> bool {
    if !is_iso_stamp(v) {
        return false;
    }
    let time = &v[11..];
    if time.ends_with('Z') || time.ends_with('z') {
        return true;
    }
    time.rfind(['+', '-']).is_some_and(|at| {
        let off = &time[at + 1..];
        let digits = off.bytes().filter(u8::is_ascii_digit).count();
        matches!(digits, 2 | 4) && off.bytes().all(|b| b.is_ascii_digit() || b == b':')
    })
}

/// `D/M/YYYY` or `M/D/YYYY`: the first part's largest value.
fn slash_date_first_part(v: &str) -> Option<u32> {
    let mut parts = v.split('/');
    let (a, b, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !(1..=2).contains(&a.len())
        || !(1..=2).contains(&b.len())
        || y.len() != 4
        || !v.bytes().all(|c| c.is_ascii_digit() || c == b'/')
    {
        return None;
    }
    a.parse().ok()
}

/// The type of a column from its (present, non-empty) values: the first of boolean,
/// timestamptz, timestamp, date (its default forms, `YYYYMMDD` between 1900 and 2100, or
/// a `%m/%d/%Y` / `%d/%m/%Y` format), time, integer, numeric, float that every value
/// reads as; else text.
fn guess_type(values: &[&str]) -> Guess {
    let n = values.len();
    if n == 0 {
        return Guess::text("no value in the records read".to_owned());
    }
    let of = if n == 1 {
        "the one value".to_owned()
    } else {
        format!("all {n} values")
    };
    if all_read(values, "boolean", None, &is_boolean_word) {
        return Guess::new("boolean", None, format!("{of} are yes/no words"));
    }
    if let Some(g) = guess_temporal(values, &of).or_else(|| guess_number(values, &of)) {
        return g;
    }
    let zeros = values
        .iter()
        .filter(|v| v.len() > 1 && v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit()))
        .count();
    if zeros > 0 {
        return Guess::text(format!(
            "{n} values; {zeros} are digits with leading zeros (an identifier: kept as written)"
        ));
    }
    Guess::text(format!(
        "{n} values, not all of them numbers, dates, times or yes/no words"
    ))
}

/// Whether every value has `shape` and reads as `kind`.
fn all_read(
    values: &[&str],
    kind: &str,
    format: Option<&str>,
    shape: &dyn Fn(&str) -> bool,
) -> bool {
    values.iter().all(|v| shape(v) && reads(kind, format, v))
}

/// Timestamps, dates, times.
fn guess_temporal(values: &[&str], of: &str) -> Option<Guess> {
    if all_read(values, "timestamptz", None, &has_offset) {
        return Some(Guess::new(
            "timestamptz",
            None,
            format!("{of} are ISO 8601 timestamps with an offset or Z"),
        ));
    }
    if all_read(values, "timestamp", None, &|v| {
        is_iso_stamp(v) && !has_offset(v)
    }) {
        return Some(Guess::new(
            "timestamp",
            None,
            format!("{of} are ISO 8601 timestamps without an offset"),
        ));
    }
    if all_read(values, "date", None, &default_date_form)
        && values
            .iter()
            .any(|v| value::parse_date(v).is_ok_and(|d| d.is_some()))
    {
        return Some(Guess::new(
            "date",
            None,
            format!(
                "{of} are dates in the default forms (YYYY-MM-DD, DD.MM.YYYY, YYYYMMDD from \
                 1900 to 2100; 00000000 is NULL)"
            ),
        ));
    }
    if values.iter().all(|v| slash_date_first_part(v).is_some()) {
        let day_first = values
            .iter()
            .any(|v| slash_date_first_part(v).is_some_and(|a| a > 12));
        let format = if day_first { "%d/%m/%Y" } else { "%m/%d/%Y" };
        if all_read(values, "date", Some(format), &|_| true) {
            let why = if day_first {
                format!("{of} are dates D/M/YYYY (a first part above 12)")
            } else {
                format!(
                    "{of} are dates M/D/YYYY (no first part above 12 in the records read: \
                     if days come first, write \"%d/%m/%Y\")"
                )
            };
            return Some(Guess::new("date", Some(format), why));
        }
    }
    // HH:MM[:SS], or digits HHMMSS / HHMM as ZTDWR writes them; digits alone could be
    // years or counts, so some value must have a colon or a leading zero.
    let clock = |v: &str| {
        let b = v.as_bytes();
        let colon = (b.len() == 5 || b.len() == 8) && b[2] == b':';
        let digits = matches!(b.len(), 4 | 6) && b.iter().all(u8::is_ascii_digit);
        colon || digits
    };
    if all_read(values, "time", None, &clock)
        && values.iter().any(|v| v.contains(':') || v.starts_with('0'))
    {
        return Some(Guess::new(
            "time",
            None,
            format!("{of} are times (HH:MM[:SS], HHMMSS or HHMM; 000000 is midnight)"),
        ));
    }
    None
}

/// Integers, decimals (a point or a comma), floats.
fn guess_number(values: &[&str], of: &str) -> Option<Guess> {
    if all_read(values, "integer", None, &|_| true) {
        return Some(Guess::new(
            "integer",
            None,
            format!("{of} are whole numbers"),
        ));
    }
    let numeric = |shape: &dyn Fn(&str) -> bool| {
        values
            .iter()
            .all(|v| shape(v) && value::parse_numeric(v).is_ok())
    };
    if numeric(&|v| is_plain_integer(v) || is_plain_decimal(v)) {
        return Some(Guess::new(
            "numeric",
            None,
            format!("{of} are decimal numbers (kept exactly as written)"),
        ));
    }
    let commas = values.iter().filter(|v| v.contains(',')).count();
    if commas > 0 && numeric(&is_decimal_form) {
        return Some(Guess::new(
            "numeric",
            None,
            format!(
                "{of} are decimal numbers, {commas} with a decimal comma (45,5 or 1.234,56 as \
                 datsync reads them: check that no comma separates thousands)"
            ),
        ));
    }
    if all_read(values, "float", None, &|v| {
        is_plain_integer(v) || is_plain_decimal(v) || is_float_form(v)
    }) {
        return Some(Guess::new(
            "float",
            None,
            format!("{of} are numbers, some with an exponent or infinite"),
        ));
    }
    None
}

/// The key: `asked` (a column name or a header name), else the first column whose values
/// are all present and distinct in the records read. `Err(asked)` when no column has that
/// name.
fn choose_key(
    asked: Option<&str>,
    names: &[String],
    body: &[Vec<Option<String>>],
) -> Result<Key, String> {
    if let Some(asked) = asked {
        let want = canonical_name(asked);
        return names
            .iter()
            .position(|n| *n == want || n == asked)
            .map(|i| Key {
                column: Some(i),
                why: "given with --key".to_owned(),
            })
            .ok_or_else(|| asked.to_owned());
    }
    let present_and_distinct = |j: usize| {
        let mut seen = HashSet::new();
        body.iter().all(|r| {
            r.get(j)
                .and_then(|v| v.as_deref())
                .is_some_and(|v| !v.is_empty() && seen.insert(v))
        })
    };
    if let Some(j) = (0..names.len()).find(|&j| present_and_distinct(j)) {
        return Ok(Key {
            column: Some(j),
            why: format!(
                "guessed: the first column whose {} values are all present and distinct",
                body.len()
            ),
        });
    }
    Ok(Key {
        column: None,
        why: format!(
            "no column's values are all present and distinct in the {} records read: append \
             mode, every row inserted once and nothing merged. If rows do have a key (one \
             column or several), write `key = \"a\"` or `key = [\"a\", \"b\"]` (with \
             `required = true` and `not_empty = true` on them) instead",
            body.len()
        ),
    })
}

/// The chosen key column and why.
struct Key {
    /// `None`: append mode.
    column: Option<usize>,
    why: String,
}

/// The default table name: the file's base name without its extensions, canonicalized.
fn table_name(file: &str) -> String {
    let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let base = base.strip_suffix(".gz").unwrap_or(base);
    let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
    let name = canonical_name(stem);
    if name.is_empty() {
        "extract".to_owned()
    } else if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("t_{name}")
    } else {
        name
    }
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Everything the written profile says.
struct Written<'a> {
    file: &'a str,
    table: &'a str,
    format: &'a Sniffed,
    comment: bool,
    header: bool,
    names: &'a [String],
    guesses: &'a [Guess],
    key: &'a Key,
    records: usize,
    ragged: usize,
    utf8: bool,
    whole_file: bool,
}

fn write_profile(w: &Written<'_>) -> String {
    let mut t = String::new();
    write_top(&mut t, w);
    write_format(&mut t, w);
    write_columns(&mut t, w);
    t
}

/// The opening comments, name, table, key and null tokens.
fn write_top(t: &mut String, w: &Written<'_>) {
    let f = w.format;
    let extent = if w.whole_file {
        "the whole file"
    } else {
        "the first records"
    };
    let _ = writeln!(
        t,
        "# A starting profile for {}, drafted by `datsync profile init` from {extent} ({} \
         records{}).",
        w.file,
        w.records,
        if w.header { " after the header" } else { "" }
    );
    t.push_str(
        "# Every value below is a guess: review each one (the comments say what it rests on),\n\
         # then load with `datsync --profile THIS_FILE run FILE`. The keys are described in\n\
         # the README (\"Other extracts\").\n",
    );
    let _ = writeln!(t, "name = {}", quoted(w.table));
    let _ = writeln!(t, "# The target table (--table, else the file's name).");
    let _ = writeln!(t, "table = {}", quoted(w.table));
    if let Some(j) = w.key.column {
        let _ = writeln!(t, "# The key ({}).", w.key.why);
        let _ = writeln!(t, "key = {}", quoted(&target_of(&w.names[j])));
    } else {
        let _ = writeln!(t, "# No key: {}.", w.key.why);
        t.push_str("mode = \"append\"\n");
    }
    if f.escape() {
        t.push_str(
            "# COPY text format: only `\\N` is NULL (an empty value is an empty string).\n\
             null_tokens = []\n",
        );
    } else {
        let _ = writeln!(
            t,
            "# Values read as NULL (the default): {}.",
            DEFAULT_NULL_TOKENS
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// The `[format]` table.
fn write_format(t: &mut String, w: &Written<'_>) {
    let f = w.format;
    t.push_str("\n[format]\n");
    let _ = writeln!(
        t,
        "# {} of the {} records read have {} fields cut at {}{}.",
        f.consistent,
        f.records,
        f.width,
        f.delimiter_name,
        if f.family {
            " (the ZTDWR `~|^` family, in any of its written forms)"
        } else {
            " (tried: tab, |, comma, semicolon)"
        }
    );
    let _ = writeln!(t, "delimiter = {}", quoted(&f.delimiter));
    if w.header {
        t.push_str(
            "# The first record names the columns (names, where the values below are not).\n",
        );
    } else {
        t.push_str(
            "# The first record holds values, not names: the columns are named column_1, … in\n\
             # file order (rename the `source`s: without a header they name the fields).\n",
        );
    }
    let _ = writeln!(t, "header = {}", w.header);
    if f.quote() {
        let _ = writeln!(
            t,
            "# {} quoted values (RFC 4180: delimiters and line breaks inside quotes are data).",
            f.quoted
        );
        t.push_str("quote = '\"'\n");
    } else if f.escape() {
        let _ = writeln!(
            t,
            "# {} values are exactly `\\N`: PostgreSQL COPY's text format (`\\\\`, `\\t`, `\\N`).",
            f.copy_nulls
        );
        t.push_str("escape = \"backslash\"\n");
    } else if !f.family {
        t.push_str("# No quoted values and no `\\N`: no quote and no escapes (the default).\n");
    }
    if w.comment {
        t.push_str("# The file starts with a `#` line: lines starting with `#` are comments.\n");
        t.push_str("comment = \"#\"\n");
    }
    if !w.utf8 {
        t.push_str(
            "# Some bytes are not UTF-8: each such value is read as Latin-1 (the default). If\n\
             # the whole file is in one single-byte encoding, name it:\n\
             # encoding = \"windows-1252\"\n",
        );
    }
    if w.ragged > 0 {
        let _ = writeln!(
            t,
            "# {} records of the sample do not have {} fields: they will be rejected rows.",
            w.ragged, f.width
        );
    }
}

/// One `[[columns]]` entry per field.
fn write_columns(t: &mut String, w: &Written<'_>) {
    for (j, (name, g)) in w.names.iter().zip(w.guesses).enumerate() {
        t.push_str("\n[[columns]]\n");
        let _ = writeln!(t, "source = {}", quoted(name));
        let target = target_of(name);
        if target != *name {
            let _ = writeln!(
                t,
                "# `{name}` is one of datsync's own columns in the table: loaded as `{target}`."
            );
            let _ = writeln!(t, "target = {}", quoted(&target));
        }
        let _ = writeln!(t, "# {}: {}.", g.kind, g.why);
        let _ = writeln!(t, "type = {}", quoted(g.kind));
        if let Some(format) = g.format {
            let _ = writeln!(t, "format = {}", quoted(format));
        }
        if Some(j) == w.key.column {
            t.push_str("# The key must be in the file and never empty.\n");
            t.push_str("required = true\nnot_empty = true\n");
        }
    }
}

/// The target column of a source: its name, unless datsync's own columns take it.
fn target_of(name: &str) -> String {
    let own = BOOKKEEPING_COLUMNS.iter().any(|(c, _)| *c == name) || name == ROW_VERSION_COLUMN;
    if own {
        format!("file_{name}")
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn draft(text: &str) -> Draft {
        draft_profile(
            text.as_bytes(),
            &DraftOptions {
                file: "x/sales.csv".to_owned(),
                table: None,
                key: None,
                rows: DEFAULT_DRAFT_ROWS,
            },
        )
        .unwrap()
    }

    fn kinds(d: &Draft) -> Vec<String> {
        d.columns.iter().map(|(n, k)| format!("{n}:{k}")).collect()
    }

    #[test]
    fn comma_file_with_header_and_types() {
        let d = draft(
            "id,when,price,flag,day,us_day,code,note\n\
             1,2020-10-12T02:39:52Z,1.50,Y,2024-01-31,10/08/2008,007,a\n\
             2,2020-10-12T02:40:00+05:30,2,N,2024-02-29,01/13/2009,010,\"b, c\"\n",
        );
        assert!(d.header);
        assert_eq!(d.delimiter, ",");
        assert_eq!(
            kinds(&d),
            [
                "id:integer",
                "when:timestamptz",
                "price:numeric",
                "flag:boolean",
                "day:date",
                "us_day:date",
                "code:text",
                "note:text"
            ]
        );
        assert!(d.toml.contains("format = \"%m/%d/%Y\""), "{}", d.toml);
        assert!(d.toml.contains("quote = '\"'"), "{}", d.toml);
        assert!(d.toml.contains("key = \"id\""), "{}", d.toml);
        assert!(d.toml.contains("table = \"sales\""), "{}", d.toml);
    }

    #[test]
    fn headerless_tab_copy_text_format() {
        let d = draft("1\tab\\\\c\t\\N\n2\tx\t3\n");
        assert!(!d.header);
        assert_eq!(d.delimiter, "tab");
        assert_eq!(
            kinds(&d),
            ["column_1:integer", "column_2:text", "column_3:integer"]
        );
        assert!(d.toml.contains("escape = \"backslash\""), "{}", d.toml);
        assert!(d.toml.contains("null_tokens = []"), "{}", d.toml);
        assert!(!d.toml.contains("quote ="), "{}", d.toml);
    }

    #[test]
    fn key_guess_skips_repeated_and_empty_columns() {
        let d = draft("a|b|c\nx|1|\nx|2|5\ny|3|6\n");
        assert!(d.toml.contains("key = \"b\""), "{}", d.toml);
        let d = draft("a;b\nx;1\nx;1\n");
        assert!(d.toml.contains("\nmode = \"append\"\n"), "{}", d.toml);
        assert!(!d.toml.contains("\nkey ="), "{}", d.toml);
        assert_eq!(d.delimiter, ";");
    }

    #[test]
    fn ztdwr_forms_are_dates_times_and_decimals() {
        let d = draft(
            "spb~|^tgl~|^jam~|^qty~|^bbm\n\
             A1~|^20251002~|^082923~|^12.550,87~|^5\n\
             A2~|^00000000~|^141200~|^24482.37~|^6,5\n\
             A3~|^2025-08-14~|^023054~|^17492,39~|^7\n",
        );
        assert_eq!(d.delimiter, "~|^");
        assert_eq!(
            kinds(&d),
            [
                "spb:text",
                "tgl:date",
                "jam:time",
                "qty:numeric",
                "bbm:numeric"
            ]
        );
        assert!(d.toml.contains("decimal comma"), "{}", d.toml);
    }

    #[test]
    fn own_column_names_get_another_target() {
        let d = draft("id,created_at\n1,x\n2,y\n");
        assert!(
            d.toml.contains("target = \"file_created_at\""),
            "{}",
            d.toml
        );
    }

    #[test]
    fn day_first_dates_and_all_text_headers() {
        let d = draft("name,city\nAnna,Oslo\nBen,Rome\n");
        assert!(d.header);
        let d = draft("13/01/2020,x\n01/02/2020,y\n");
        assert!(!d.header);
        assert!(d.toml.contains("format = \"%d/%m/%Y\""), "{}", d.toml);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = draft_profile(
            "a,b\n1,2\n".as_bytes(),
            &DraftOptions {
                file: "f.csv".to_owned(),
                table: Some("t".to_owned()),
                key: Some("zz".to_owned()),
                rows: 10,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--key `zz`") && e.contains("a, b"), "{e}");
    }
}
