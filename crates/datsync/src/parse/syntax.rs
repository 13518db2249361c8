//! Quotes and escapes (`[format] quote` / `escape`): where a record ends, where its fields
//! are cut, and what each field's text is.
//!
//! # Rules
//!
//! - **Quotes** (RFC 4180, read leniently as Python's `csv` and most tools do): a quote opens
//!   a quoted section only as the first character of a field (after blanks); inside it,
//!   delimiters and line breaks are data and a doubled quote is one quote; after the closing
//!   quote, anything up to the delimiter is kept as it is. A quote anywhere else is an
//!   ordinary character. A quoted field is never a null token (`""` is the empty string, as
//!   in PostgreSQL's CSV format); blanks outside the quotes are dropped with `trim`.
//! - **Escapes, without quotes** (PostgreSQL COPY's text format): `\b \f \n \r \t \v`, `\\`,
//!   octal `\N`…`\NNN`, hex `\xH`/`\xHH`, any other character after a backslash stands for
//!   itself (so `\<delimiter>` is a delimiter in the value, and a backslash before a line
//!   break continues the record with a line break in the value); a field that is exactly
//!   `\N` is NULL. Null tokens are compared with the field as written, before unescaping.
//! - **Escapes, with quotes** (COPY's CSV format with `ESCAPE '\'`): inside quotes, `\"` is a
//!   quote and `\\` a backslash; any other backslash is an ordinary character.
//!
//! # Two passes, one machine
//!
//! [`Scanner`] is fed the bytes of each line of a record as they arrive and says at each line
//! break whether the record ends there (no quote is open, no escape pending), so a record may
//! span lines without being held whole before its end is known. Once a record is complete,
//! [`split`] runs the same scanner over it to find its fields, and [`decode`] reads each one.
//! Both passes make the same decisions because they are the same code.

use super::Delimiter;
use crate::profile::Escape;

/// The most bytes of a field a delimiter match looks back over.
const WINDOW: usize = 16;

/// The syntax of a file with quotes or escapes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Syntax {
    pub delimiter: Delimiter,
    pub quote: Option<u8>,
    /// COPY text-format escapes (no quote).
    pub text_escapes: bool,
    /// `\"` and `\\` inside quotes.
    pub quoted_escapes: bool,
    pub trim: bool,
    /// The delimiter when it is one byte.
    single: Option<u8>,
    /// The byte every match of the delimiter ends with.
    last: Option<u8>,
}

impl Syntax {
    pub(super) fn new(delimiter: Delimiter, quote: Option<u8>, escape: Escape, trim: bool) -> Self {
        let bytes = delimiter.bytes();
        let single = (bytes.len() == 1 && !delimiter.has_markers()).then(|| bytes[0]);
        Self {
            delimiter,
            quote,
            text_escapes: escape == Escape::Backslash && quote.is_none(),
            quoted_escapes: escape == Escape::Backslash && quote.is_some(),
            trim,
            single,
            last: delimiter.last_byte(),
        }
    }

    /// A blank before an opening quote: a space or a tab that is not the delimiter.
    fn blank(&self, b: u8) -> bool {
        (b == b' ' || b == b'\t') && self.single != Some(b)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Only blanks so far in this field.
    FieldStart,
    /// In an unquoted field (or after a closing quote).
    Unquoted,
    /// After a backslash of the text format.
    Escaped,
    /// Inside quotes.
    Quoted,
    /// After a backslash inside quotes.
    QuotedEscaped,
    /// After a quote inside quotes: a doubled quote, or the closing one.
    QuoteInQuoted,
}

/// The last bytes of the current field, for delimiters longer than one byte.
#[derive(Debug, Clone, Copy)]
struct Window {
    bytes: [u8; WINDOW],
    len: usize,
}

impl Window {
    const EMPTY: Self = Self {
        bytes: [0; WINDOW],
        len: 0,
    };

    fn push(&mut self, data: &[u8]) {
        if data.len() >= WINDOW {
            self.bytes.copy_from_slice(&data[data.len() - WINDOW..]);
            self.len = WINDOW;
            return;
        }
        let keep = (WINDOW - data.len()).min(self.len);
        self.bytes.copy_within(self.len - keep..self.len, 0);
        self.bytes[keep..keep + data.len()].copy_from_slice(data);
        self.len = keep + data.len();
    }

    /// The length of the delimiter the window ends with, if it ends with one.
    fn delimiter_len(&self, delimiter: &Delimiter) -> Option<usize> {
        let w = &self.bytes[..self.len];
        let last = w.len().checked_sub(1)?;
        delimiter
            .starts_before(w, last)
            .map(|start| w.len() - start)
    }
}

/// Follows quotes and escapes through the lines of one record. See the module docs.
#[derive(Debug, Clone)]
pub(super) struct Scanner {
    state: State,
    window: Window,
    /// Line breaks inside the record so far.
    newlines: u64,
    /// Line breaks inside the record before the quote that is open now.
    quote_newlines: u64,
}

impl Scanner {
    pub(super) fn new() -> Self {
        Self {
            state: State::FieldStart,
            window: Window::EMPTY,
            newlines: 0,
            quote_newlines: 0,
        }
    }

    /// Back to the start of a record.
    pub(super) fn reset(&mut self) {
        *self = Self::new();
    }

    /// Line breaks in the record before the quote that is open (for "unterminated quote").
    pub(super) fn open_quote_offset(&self) -> u64 {
        self.quote_newlines
    }

    /// Whether a quote is open.
    pub(super) fn in_quotes(&self) -> bool {
        matches!(self.state, State::Quoted | State::QuotedEscaped)
    }

    /// Feeds bytes of the current line (no line break among them). `field(end, next)` is
    /// called at every delimiter with the end of the field and the start of the next one,
    /// relative to `data` (`end` may be cut to 0 when the delimiter began in an earlier
    /// call).
    #[inline]
    pub(super) fn feed(
        &mut self,
        syntax: &Syntax,
        data: &[u8],
        mut field: impl FnMut(usize, usize),
    ) {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::FieldStart => {
                    let b = data[i];
                    if Some(b) == syntax.quote {
                        self.state = State::Quoted;
                        self.quote_newlines = self.newlines;
                        self.window.push(&data[i..=i]);
                        i += 1;
                    } else if syntax.blank(b) {
                        self.window.push(&data[i..=i]);
                        i += 1;
                    } else {
                        self.state = State::Unquoted;
                    }
                }
                State::Unquoted => {
                    let rest = &data[i..];
                    let hit = match (syntax.last, syntax.text_escapes) {
                        (Some(d), true) => memchr::memchr2(d, b'\\', rest),
                        (Some(d), false) => memchr::memchr(d, rest),
                        (None, true) => memchr::memchr(b'\\', rest),
                        (None, false) => None,
                    };
                    let Some(k) = hit else {
                        self.window.push(rest);
                        return;
                    };
                    let at = i + k;
                    i = at + 1;
                    if syntax.text_escapes && data[at] == b'\\' {
                        self.window.push(&data[at - k..=at]);
                        self.state = State::Escaped;
                    } else if syntax.single.is_some() {
                        field(at, at + 1);
                        self.window = Window::EMPTY;
                        self.state = State::FieldStart;
                    } else {
                        self.window.push(&data[at - k..=at]);
                        if let Some(len) = self.window.delimiter_len(&syntax.delimiter) {
                            field((at + 1).saturating_sub(len), at + 1);
                            self.window = Window::EMPTY;
                            self.state = State::FieldStart;
                        }
                    }
                }
                State::Escaped => {
                    self.window.push(&data[i..=i]);
                    self.state = State::Unquoted;
                    i += 1;
                }
                State::Quoted => {
                    let rest = &data[i..];
                    let q = syntax.quote.unwrap_or(b'"');
                    let hit = if syntax.quoted_escapes {
                        memchr::memchr2(q, b'\\', rest)
                    } else {
                        memchr::memchr(q, rest)
                    };
                    let Some(k) = hit else {
                        self.window.push(rest);
                        return;
                    };
                    let at = i + k;
                    self.window.push(&data[i..=at]);
                    self.state = if data[at] == q {
                        State::QuoteInQuoted
                    } else {
                        State::QuotedEscaped
                    };
                    i = at + 1;
                }
                State::QuotedEscaped => {
                    let b = data[i];
                    if Some(b) == syntax.quote || b == b'\\' {
                        self.window.push(&data[i..=i]);
                        i += 1;
                    }
                    self.state = State::Quoted;
                }
                State::QuoteInQuoted => {
                    if Some(data[i]) == syntax.quote {
                        self.window.push(&data[i..=i]);
                        self.state = State::Quoted;
                        i += 1;
                    } else {
                        self.state = State::Unquoted;
                    }
                }
            }
        }
    }

    /// A line break after the bytes fed: whether it ends the record (then the scanner is
    /// ready for the next one), or is data inside it (a quote is open, or a backslash
    /// escapes it).
    pub(super) fn line_end(&mut self) -> bool {
        self.window = Window::EMPTY;
        match self.state {
            State::FieldStart | State::Unquoted | State::QuoteInQuoted => {
                self.reset();
                true
            }
            State::Escaped => {
                self.newlines += 1;
                self.state = State::Unquoted;
                false
            }
            State::Quoted | State::QuotedEscaped => {
                self.newlines += 1;
                self.state = State::Quoted;
                false
            }
        }
    }
}

/// Cuts a complete record (trailing line break and CR removed) into fields: pushes each
/// field's `(start, end)` in `record` to `out`; returns the number of fields.
pub(super) fn split(syntax: &Syntax, record: &[u8], out: &mut Vec<(usize, usize)>) -> usize {
    out.clear();
    let mut scanner = Scanner::new();
    let mut start = 0;
    let mut line_start = 0;
    let mut feed = |scanner: &mut Scanner, from: usize, to: usize, start: &mut usize| {
        scanner.feed(syntax, &record[from..to], |end, next| {
            out.push((*start, from + end));
            *start = from + next;
        });
    };
    for nl in memchr::memchr_iter(b'\n', record) {
        feed(&mut scanner, line_start, nl, &mut start);
        scanner.line_end();
        line_start = nl + 1;
    }
    feed(&mut scanner, line_start, record.len(), &mut start);
    out.push((start, record.len()));
    out.len()
}

/// One field's value, read from its raw bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Value<'a> {
    /// NULL: `\N` in the text format.
    Null,
    /// These bytes of the field, as they are.
    Slice(&'a [u8]),
    /// The bytes decoded into the caller's buffer.
    Decoded,
}

/// A field read by [`decode`]: its value, and the text to compare with the null tokens
/// (`None` for a quoted field, which is never NULL).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Field<'a> {
    pub value: Value<'a>,
    pub null_check: Option<&'a [u8]>,
}

/// Reads one raw field: strips `^`/`~` markers (the `~|^` family), then quotes or escapes,
/// then blanks (`trim`). Decoded bytes go to `out` (cleared first).
pub(super) fn decode<'a>(syntax: &Syntax, raw: &'a [u8], out: &mut Vec<u8>) -> Field<'a> {
    let raw = strip_markers(raw, syntax.delimiter.has_markers());
    if let Some(q) = syntax.quote {
        let lead = raw.iter().take_while(|&&b| syntax.blank(b)).count();
        if raw.get(lead) == Some(&q) {
            out.clear();
            if !syntax.trim {
                out.extend_from_slice(&raw[..lead]);
            }
            let end = unquote(syntax, q, &raw[lead + 1..], out);
            let mut tail = &raw[lead + 1 + end..];
            if syntax.trim {
                tail = tail.trim_ascii_end();
            }
            out.extend_from_slice(tail);
            return Field {
                value: Value::Decoded,
                null_check: None,
            };
        }
    }
    let text = if syntax.trim { raw.trim_ascii() } else { raw };
    if !syntax.text_escapes || memchr::memchr(b'\\', text).is_none() {
        return Field {
            value: Value::Slice(text),
            null_check: Some(text),
        };
    }
    if text == b"\\N" {
        return Field {
            value: Value::Null,
            null_check: None,
        };
    }
    unescape(text, out);
    Field {
        value: Value::Decoded,
        null_check: Some(text),
    }
}

/// The field without one leading `^` and one trailing `~` (`ztdwr.md` §1), when `markers`.
fn strip_markers(mut raw: &[u8], markers: bool) -> &[u8] {
    if markers {
        if let Some(r) = raw.strip_prefix(b"^") {
            raw = r;
        }
        if let Some(r) = raw.strip_suffix(b"~") {
            raw = r;
        }
    }
    raw
}

/// Appends the content of a quoted section (`s` starts after the opening quote) to `out`;
/// returns the position in `s` after the closing quote (`s.len()` when it is missing).
fn unquote(syntax: &Syntax, q: u8, s: &[u8], out: &mut Vec<u8>) -> usize {
    let mut i = 0;
    loop {
        let rest = &s[i..];
        let hit = if syntax.quoted_escapes {
            memchr::memchr2(q, b'\\', rest)
        } else {
            memchr::memchr(q, rest)
        };
        let Some(k) = hit else {
            out.extend_from_slice(rest);
            return s.len();
        };
        out.extend_from_slice(&rest[..k]);
        let at = i + k;
        let next = s.get(at + 1).copied();
        if s[at] == q {
            if next == Some(q) {
                out.push(q);
                i = at + 2;
            } else {
                return at + 1;
            }
        } else if next == Some(q) || next == Some(b'\\') {
            out.push(s[at + 1]);
            i = at + 2;
        } else {
            out.push(b'\\');
            i = at + 1;
        }
    }
}

/// Reads COPY text-format escapes (module docs) into `out`.
fn unescape(s: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'\\', &s[i..]) {
        out.extend_from_slice(&s[i..i + k]);
        let at = i + k;
        let Some(&c) = s.get(at + 1) else {
            // A backslash at the very end stands for itself.
            out.push(b'\\');
            return;
        };
        i = at + 2;
        match c {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match s.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                // PostgreSQL keeps the low byte of `\777` too.
                out.push((value & 0xff) as u8);
            }
            b'x' => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match s.get(i).and_then(|&d| char::from(d).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    out.push(b'x');
                } else {
                    out.push(value as u8);
                }
            }
            other => out.push(other),
        }
    }
    out.extend_from_slice(&s[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv() -> Syntax {
        Syntax::new(Delimiter::Comma, Some(b'"'), Escape::None, true)
    }

    fn fields(syntax: &Syntax, record: &str) -> Vec<Option<String>> {
        let mut bounds = Vec::new();
        split(syntax, record.as_bytes(), &mut bounds);
        let mut out = Vec::new();
        bounds
            .iter()
            .map(|&(s, e)| {
                let f = decode(syntax, &record.as_bytes()[s..e], &mut out);
                match f.value {
                    Value::Null => None,
                    Value::Slice(b) => Some(String::from_utf8(b.to_vec()).unwrap()),
                    Value::Decoded => Some(String::from_utf8(out.clone()).unwrap()),
                }
            })
            .collect()
    }

    fn s(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|x| Some((*x).to_owned())).collect()
    }

    /// Feeds `text` line by line in pieces of `step` bytes; returns the records found.
    fn records(syntax: &Syntax, text: &str, step: usize) -> Vec<String> {
        let mut scanner = Scanner::new();
        let mut out = Vec::new();
        let mut current = String::new();
        let lines: Vec<&str> = text.split('\n').collect();
        for (n, line) in lines.iter().enumerate() {
            for piece in line.as_bytes().chunks(step.max(1)) {
                scanner.feed(syntax, piece, |_, _| {});
            }
            current.push_str(line);
            if n + 1 == lines.len() {
                break;
            }
            if scanner.line_end() {
                out.push(std::mem::take(&mut current));
            } else {
                current.push('\n');
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }

    #[test]
    fn rfc4180_fields() {
        let c = csv();
        assert_eq!(fields(&c, "a,b,c"), s(&["a", "b", "c"]));
        assert_eq!(fields(&c, "\"a,b\",c"), s(&["a,b", "c"]));
        assert_eq!(fields(&c, "\"a \"\"q\"\" b\",\"\""), s(&["a \"q\" b", ""]));
        assert_eq!(fields(&c, " \"x\" , y "), s(&["x", "y"]));
        assert_eq!(fields(&c, "\"line\nbreak\",2"), s(&["line\nbreak", "2"]));
        // A quote that does not start a field is an ordinary character.
        assert_eq!(fields(&c, "5\" pipe,a\"b"), s(&["5\" pipe", "a\"b"]));
        // After the closing quote, the rest of the field is kept.
        assert_eq!(fields(&c, "\"ab\"cd,e"), s(&["abcd", "e"]));
        assert_eq!(fields(&c, ",,"), s(&["", "", ""]));
        let keep = Syntax::new(Delimiter::Comma, Some(b'"'), Escape::None, false);
        assert_eq!(fields(&keep, " \"x\" , y "), s(&[" x ", " y "]));
    }

    #[test]
    fn quoted_fields_are_never_null_tokens() {
        let c = csv();
        let mut out = Vec::new();
        let f = decode(&c, b"\"\"", &mut out);
        assert_eq!(f.null_check, None);
        let f = decode(&c, b"NULL", &mut out);
        assert_eq!(f.null_check, Some(&b"NULL"[..]));
    }

    #[test]
    fn records_end_outside_quotes_whatever_the_pieces() {
        let c = csv();
        let text = "a,\"b\nc\",d\n\"x\"\"\ny\",z\nlast";
        for step in [1, 2, 3, 7, 64] {
            assert_eq!(
                records(&c, text, step),
                ["a,\"b\nc\",d", "\"x\"\"\ny\",z", "last"],
                "step {step}"
            );
        }
    }

    #[test]
    fn copy_text_escapes() {
        let t = Syntax::new(Delimiter::Tab, None, Escape::Backslash, false);
        assert_eq!(
            fields(&t, "a\\tb\t\\N\t\\\\\t\\x41\\101\\x4g\t\\q\\\tz"),
            vec![
                Some("a\tb".to_owned()),
                None,
                Some("\\".to_owned()),
                Some("AA\x04g".to_owned()),
                Some("q\tz".to_owned()),
            ]
        );
        // A backslash before a line break continues the record.
        assert_eq!(records(&t, "a\\\nb\tc\nd", 2), ["a\\\nb\tc", "d"]);
        assert_eq!(fields(&t, "a\\\nb\tc"), s(&["a\nb", "c"]));
        let mut out = Vec::new();
        assert_eq!(decode(&t, b"\\N", &mut out).value, Value::Null);
        assert_eq!(decode(&t, b"\\\\N", &mut out).value, Value::Decoded);
        assert_eq!(out, b"\\N");
    }

    #[test]
    fn backslash_escapes_inside_quotes() {
        let c = Syntax::new(Delimiter::Comma, Some(b'"'), Escape::Backslash, true);
        assert_eq!(
            fields(&c, "\"a\\\"b,c\",\"d\\\\\",\"e\\n\""),
            s(&["a\"b,c", "d\\", "e\\n"])
        );
        assert_eq!(records(&c, "\"a\\\"\nb\",c\nx", 1), ["\"a\\\"\nb\",c", "x"]);
    }

    #[test]
    fn long_delimiters_and_markers() {
        let d = Delimiter::from_bytes(b"~|^").unwrap();
        let q = Syntax::new(d, Some(b'"'), Escape::None, true);
        assert_eq!(fields(&q, "^a~|^\"b~|^c\"~|^d~"), s(&["a", "b~|^c", "d"]));
        let other = Delimiter::from_bytes(b"::").unwrap();
        let q = Syntax::new(other, Some(b'"'), Escape::None, true);
        assert_eq!(
            fields(&q, "a::\"b::c\"::d:::e"),
            s(&["a", "b::c", "d", ":e"])
        );
        for step in [1, 2, 3] {
            assert_eq!(
                records(&q, "a::\"x\ny\"::z\nq", step),
                ["a::\"x\ny\"::z", "q"]
            );
        }
    }

    #[test]
    fn an_open_quote_is_known() {
        let c = csv();
        let mut scanner = Scanner::new();
        scanner.feed(&c, b"a,b", |_, _| {});
        assert!(scanner.line_end());
        scanner.feed(&c, b"x,\"y", |_, _| {});
        assert!(!scanner.line_end());
        scanner.feed(&c, b"more", |_, _| {});
        assert!(!scanner.line_end());
        assert!(scanner.in_quotes());
        assert_eq!(scanner.open_quote_offset(), 0);
    }
}
