//! Finding field delimiters in a line: the `~|^` family in every written form, tab and `|`.
//!
//! # The `~|^` family (`ztdwr.md` §1)
//!
//! SAP writes fields wrapped as `^value~` and joined by `|`, so the delimiter reads `~|^`.
//! Files and design notes also spell it escaped, as a regular expression would (`~\|\^`,
//! `~\|^`, `~|\^`, and `\~\|\^` from older `re.escape`), or without the pipe (`~^`). A header
//! in any of these forms puts the file in the family, and then **every line** — header and
//! data — is cut at every occurrence of:
//!
//! ```text
//! ~  [\]  [ |  [\] ]  ^        i.e.  ~^  ~\^  ~|^  ~\|^  ~|\^  ~\|\^
//! ```
//!
//! one `~`, then at most one backslash before each of the optional `|` and the `^`. Lines of
//! one file may mix the forms. What this deliberately does **not** accept on a data line: a
//! backslash before the `~` (`\~|^`) — that backslash belongs to the value before it (a value
//! `C:\` is written `^C:\~|^…`, and must keep its backslash) — and two backslashes in a row.
//! A backslash anywhere else in a value is an ordinary character. In a header a `\~` is
//! harmless: the backslash stays in the name before it and canonicalization drops it.
//!
//! Matching runs backwards from each `^`, the one byte every form ends with: a greedy walk
//! over the optional parts is exact, because each optional byte (`\`, `|`) differs from the
//! byte it could be confused with (`~`).

use serde::Serialize;

use crate::profile::MAX_DELIMITER_BYTES;

/// A field delimiter, decided from the header line (`ztdwr.md` §1) or set by the profile's
/// `[format] delimiter`, and applied to every line. The three `~|^` forms name how the header
/// wrote it; they cut lines identically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Delimiter {
    /// The `~|^` family, header written `~|^`.
    TildePipeCaret,
    /// The `~|^` family, header written with backslashes (`~\|\^`, `~\|^`, `~|\^`).
    EscapedTildePipeCaret,
    /// The `~|^` family, header written `~^` (or `~\^`), the form the design notes use.
    TildeCaret,
    /// A tab.
    Tab,
    /// `|`.
    Pipe,
    /// `,`.
    Comma,
    /// `;`.
    Semicolon,
    /// Any other string of up to [`MAX_DELIMITER_BYTES`] bytes, set by a profile.
    Other(#[serde(serialize_with = "serialize_other")] OtherDelimiter),
    /// No known delimiter on the header line: one column per line.
    None,
}

/// The bytes of a [`Delimiter::Other`], kept inline so that a delimiter stays `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherDelimiter {
    bytes: [u8; MAX_DELIMITER_BYTES],
    len: u8,
}

impl OtherDelimiter {
    /// The delimiter's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

fn serialize_other<S: serde::Serializer>(d: &OtherDelimiter, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(d.bytes()))
}

impl Delimiter {
    /// The delimiter a profile names: the `~|^` family for any of its written forms, a named
    /// variant for tab, `|`, `,` and `;`, else [`Delimiter::Other`]. `None` for an empty
    /// string or one longer than [`MAX_DELIMITER_BYTES`].
    pub fn from_bytes(text: &[u8]) -> Option<Self> {
        Some(match text {
            b"" => return None,
            b"\t" => Self::Tab,
            b"|" => Self::Pipe,
            b"," => Self::Comma,
            b";" => Self::Semicolon,
            t if t.len() > MAX_DELIMITER_BYTES => return None,
            t if Self::family_form(t) => match Self::detect(t) {
                d @ (Self::TildePipeCaret | Self::EscapedTildePipeCaret | Self::TildeCaret) => d,
                _ => Self::TildePipeCaret,
            },
            t => {
                let mut bytes = [0u8; MAX_DELIMITER_BYTES];
                bytes[..t.len()].copy_from_slice(t);
                Self::Other(OtherDelimiter {
                    bytes,
                    // At most MAX_DELIMITER_BYTES, checked above.
                    len: t.len() as u8,
                })
            }
        })
    }

    /// Whether `text` is exactly one written form of the `~|^` family.
    fn family_form(text: &[u8]) -> bool {
        text.last() == Some(&b'^') && tilde_before(text, text.len() - 1) == Some(0)
    }

    /// The canonical bytes of the delimiter (what the sample generator writes).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::TildePipeCaret => b"~|^",
            Self::EscapedTildePipeCaret => b"~\\|\\^",
            Self::TildeCaret => b"~^",
            Self::Tab => b"\t",
            Self::Pipe => b"|",
            Self::Comma => b",",
            Self::Semicolon => b";",
            Self::Other(o) => o.bytes(),
            Self::None => b"",
        }
    }

    /// Whether this is the `~|^` family, whose fields carry `^`/`~` markers to strip.
    pub fn has_markers(self) -> bool {
        matches!(
            self,
            Self::TildePipeCaret | Self::EscapedTildePipeCaret | Self::TildeCaret
        )
    }

    /// The name shown to users and in `inspect --json`: the delimiter text, or `tab`/`none`.
    pub fn name(&self) -> String {
        match self {
            Self::Tab => "tab".to_owned(),
            Self::None => "none".to_owned(),
            Self::EscapedTildePipeCaret => "~\\|\\^".to_owned(),
            d => String::from_utf8_lossy(d.bytes()).into_owned(),
        }
    }

    /// In words, for messages: `comma-delimited`, `tab-delimited`, `"~|^"-delimited`.
    pub fn describe(&self) -> String {
        match self {
            Self::Tab => "tab-delimited".to_owned(),
            Self::Pipe => "pipe-delimited".to_owned(),
            Self::Comma => "comma-delimited".to_owned(),
            Self::Semicolon => "semicolon-delimited".to_owned(),
            Self::None => "not delimited (one field per line)".to_owned(),
            d => format!("{:?}-delimited", d.name()),
        }
    }

    /// The delimiter for messages that say what a profile expects: `tab`, `comma`, `"~|^"`.
    pub fn short_name(&self) -> String {
        match self {
            Self::Tab => "tab".to_owned(),
            Self::Pipe => "pipe".to_owned(),
            Self::Comma => "comma".to_owned(),
            Self::Semicolon => "semicolon".to_owned(),
            Self::None => "none".to_owned(),
            d => format!("{:?}", d.name()),
        }
    }

    /// Detects the delimiter of a header line: the `~|^` family in any form (named after
    /// its first occurrence), else tab, else `|`, else `,` or `;` (the more frequent; a tie
    /// is `,`).
    pub fn detect(header: &[u8]) -> Self {
        let mut first = None;
        for_each_byte(header, b'^', |caret| {
            if first.is_none() {
                first = tilde_before(header, caret).map(|tilde| (tilde, caret));
            }
        });
        if let Some((tilde, caret)) = first {
            let written = &header[tilde..=caret];
            return if written.contains(&b'\\') {
                if written.contains(&b'|') {
                    Self::EscapedTildePipeCaret
                } else {
                    Self::TildeCaret
                }
            } else if written.contains(&b'|') {
                Self::TildePipeCaret
            } else {
                Self::TildeCaret
            };
        }
        if memchr::memchr(b'\t', header).is_some() {
            return Self::Tab;
        }
        if memchr::memchr(b'|', header).is_some() {
            return Self::Pipe;
        }
        let commas = memchr::memchr_iter(b',', header).count();
        let semicolons = memchr::memchr_iter(b';', header).count();
        match (commas, semicolons) {
            (0, 0) => Self::None,
            (c, s) if s > c => Self::Semicolon,
            _ => Self::Comma,
        }
    }

    /// [`Self::detect`] on the parts of `line` outside `quote`d sections.
    pub fn detect_outside_quotes(line: &[u8], quote: Option<u8>) -> Self {
        let Some(q) = quote else {
            return Self::detect(line);
        };
        let mut outside = Vec::with_capacity(line.len());
        let mut quoted = false;
        for &b in line {
            if b == q {
                quoted = !quoted;
                // Keeps the field boundaries around a quoted section.
                outside.push(b'x');
            } else if !quoted {
                outside.push(b);
            }
        }
        Self::detect(&outside)
    }

    /// The last byte of the delimiter (every `~|^` form ends with `^`).
    pub(super) fn last_byte(&self) -> Option<u8> {
        match self {
            Self::None => None,
            d if d.has_markers() => Some(b'^'),
            d => d.bytes().last().copied(),
        }
    }

    /// When a delimiter ends with `line[at]`, where it starts (`at` + 1 − its length).
    #[inline]
    pub(super) fn starts_before(&self, line: &[u8], at: usize) -> Option<usize> {
        match self {
            Self::None => None,
            d if d.has_markers() => (line[at] == b'^').then(|| tilde_before(line, at)).flatten(),
            d => {
                let b = d.bytes();
                let start = (at + 1).checked_sub(b.len())?;
                (&line[start..=at] == b).then_some(start)
            }
        }
    }

    /// Calls `field(start, end)` for every field of `line` in order (the last one ends at
    /// the end of the line); returns the number of fields.
    #[inline]
    pub(crate) fn for_each_field(&self, line: &[u8], mut field: impl FnMut(usize, usize)) -> usize {
        let mut start = 0;
        let mut count = 1;
        match self {
            Self::None => {}
            Self::TildePipeCaret | Self::EscapedTildePipeCaret | Self::TildeCaret => {
                // Fields are short, so a word-at-a-time scan beats re-entering a vectorized
                // search per field.
                for_each_byte(line, b'^', |caret| {
                    // The common form, `~|^`, is one two-byte compare; the others take the
                    // walk, which gives the same answer for that form.
                    let tilde = match line.get(caret.wrapping_sub(2)..caret) {
                        Some(b"~|") => Some(caret - 2),
                        _ => tilde_before(line, caret),
                    };
                    if let Some(tilde) = tilde {
                        field(start, tilde);
                        start = caret + 1;
                        count += 1;
                    }
                });
            }
            Self::Other(o) if o.len > 1 => {
                for at in memchr::memmem::find_iter(line, o.bytes()) {
                    field(start, at);
                    start = at + o.bytes().len();
                    count += 1;
                }
            }
            d => {
                for at in memchr::memchr_iter(d.bytes()[0], line) {
                    field(start, at);
                    start = at + 1;
                    count += 1;
                }
            }
        }
        field(start, line.len());
        count
    }
}

impl std::fmt::Display for Delimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// When the `^` at `caret` ends a `~|^`-family delimiter, the position of its `~`.
///
/// The walk never reaches the previous delimiter: the bytes it steps over (`\`, `|`, `~`)
/// are never the `^` that ended it.
#[inline]
fn tilde_before(line: &[u8], caret: usize) -> Option<usize> {
    // The same walk on the bytes before the `^`, as slice patterns (no index to check).
    let mut before = line.get(..caret)?;
    if let [rest @ .., b'\\'] = before {
        before = rest;
    }
    if let [rest @ .., b'|'] = before {
        before = rest;
        if let [rest @ .., b'\\'] = before {
            before = rest;
        }
    }
    match before {
        [rest @ .., b'~'] => Some(rest.len()),
        _ => None,
    }
}

/// Calls `f` with the position of every `byte` in `haystack`, in order, scanning eight bytes
/// at a time (SWAR): dense matches cost a bit scan each instead of a search call each.
///
/// The matches of 64 bytes are gathered into one mask before any is handed on, so the loop
/// over them ends once per 64 bytes, not once per word: with a `^` every ~11 bytes, a word
/// holds none, one or two, so a loop per word likely mispredicted its end about once a word
/// (issue 14: the cut of a ZTDWR line was ~11% of the parse benchmark's samples in `perf`,
/// ~39% of the decoder's, for a smaller share of its instructions in callgrind; this machine
/// counts no branch misses).
#[inline]
pub(super) fn for_each_byte(haystack: &[u8], byte: u8, mut f: impl FnMut(usize)) {
    let pattern = u64::from_ne_bytes([byte; 8]);
    let (blocks, rest) = haystack.as_chunks::<64>();
    for (b, block) in blocks.iter().enumerate() {
        let mut mask = 0u64;
        for (w, word) in block.as_chunks::<8>().0.iter().enumerate() {
            mask |= gather(byte_hits(*word, pattern)) << (8 * w);
        }
        while mask != 0 {
            f(b * 64 + mask.trailing_zeros() as usize);
            mask &= mask - 1;
        }
    }
    let base = blocks.len() * 64;
    let (words, tail) = rest.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let mut hits = byte_hits(*word, pattern);
        while hits != 0 {
            f(base + i * 8 + (hits.trailing_zeros() / 8) as usize);
            hits &= hits - 1;
        }
    }
    let base = base + words.len() * 8;
    for (i, &b) in tail.iter().enumerate() {
        if b == byte {
            f(base + i);
        }
    }
}

/// The high bit of each byte is set exactly where `word` holds the byte `pattern` repeats.
#[inline]
fn byte_hits(word: [u8; 8], pattern: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = u64::from_le_bytes(word) ^ pattern;
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// The high bits of the eight bytes of `hits` ([`byte_hits`]) as the low eight bits, byte `i`'s
/// as bit `i`: the multiplication moves byte `i`'s bit to bit 56 + `i`, and no two of its
/// partial products share a bit, so nothing carries.
#[inline]
fn gather(hits: u64) -> u64 {
    (hits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(d: Delimiter, line: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let n = d.for_each_field(line.as_bytes(), |s, e| out.push(&line[s..e]));
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn detects_each_delimiter_and_form() {
        for (line, want) in [
            ("^a~|^b~|^c~", Delimiter::TildePipeCaret),
            ("a~|^b", Delimiter::TildePipeCaret),
            ("a~\\|\\^b", Delimiter::EscapedTildePipeCaret),
            ("a~\\|^b", Delimiter::EscapedTildePipeCaret),
            ("a~|\\^b", Delimiter::EscapedTildePipeCaret),
            ("a\\~\\|\\^b", Delimiter::EscapedTildePipeCaret),
            ("a~^b~^c", Delimiter::TildeCaret),
            ("^a~^^b~", Delimiter::TildeCaret),
            ("a~\\^b", Delimiter::TildeCaret),
            ("a\tb|c", Delimiter::Tab),
            ("a|b", Delimiter::Pipe),
            ("a^b|c", Delimiter::Pipe),
            ("abc", Delimiter::None),
        ] {
            assert_eq!(Delimiter::detect(line.as_bytes()), want, "{line}");
        }
    }

    #[test]
    fn every_form_cuts_alike_and_mixes() {
        let d = Delimiter::TildePipeCaret;
        for line in [
            "A~|^B~|^C",
            "A~\\|\\^B~\\|\\^C",
            "A~\\|^B~|\\^C",
            "A~^B~\\^C",
            "A~|^B~\\|\\^C",
        ] {
            assert_eq!(fields(d, line), ["A", "B", "C"], "{line}");
        }
        // Fully wrapped: markers stay for the row builder to strip.
        assert_eq!(fields(d, "^A~|^B~|^C~"), ["^A", "B", "C~"]);
        assert_eq!(fields(d, "^A~\\|\\^B~"), ["^A", "B~"]);
        assert_eq!(fields(d, "^A~^^B~"), ["^A", "^B~"]);
        // Empty fields, and a delimiter right at the start or end.
        assert_eq!(fields(d, "~|^~|^"), ["", "", ""]);
        assert_eq!(fields(d, "^~|^~|^x~"), ["^", "", "x~"]);
    }

    /// The cut of the `~|^` family by the walk alone (`tilde_before` at every `^`), which
    /// `for_each_field` shortcuts for the `~|^` form.
    fn walked(line: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = 0;
        for caret in (0..line.len()).filter(|&i| line[i] == b'^') {
            if let Some(tilde) = tilde_before(line, caret) {
                out.push((start, tilde));
                start = caret + 1;
            }
        }
        out.push((start, line.len()));
        out
    }

    #[test]
    fn the_family_cuts_every_line_as_the_walk_does() {
        // Every line of up to seven bytes over the family's bytes and one other: each form of
        // the delimiter, at the start, the end, doubled, overlapping and escaped; alone and
        // after padding that puts it across the first 64-byte block's end (58, 61) and in the
        // words after a block (120), as `for_each_byte` scans them.
        let alphabet = b"~|^\\a";
        let mut line = Vec::new();
        for (len, pad) in (0..=7u32).flat_map(|len| [0, 58, 61, 120].map(|pad| (len, pad))) {
            for mut n in 0..alphabet.len().pow(len) {
                line.clear();
                line.resize(pad, b'a');
                for _ in 0..len {
                    line.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                for d in [
                    Delimiter::TildePipeCaret,
                    Delimiter::EscapedTildePipeCaret,
                    Delimiter::TildeCaret,
                ] {
                    let mut got = Vec::new();
                    let count = d.for_each_field(&line, |s, e| got.push((s, e)));
                    assert_eq!(got, walked(&line), "{d:?} {:?}", line.escape_ascii());
                    assert_eq!(count, got.len());
                }
            }
        }
    }

    #[test]
    fn backslashes_of_values_are_kept() {
        let d = Delimiter::EscapedTildePipeCaret;
        // A value ending in a backslash, wrapped and joined-only.
        assert_eq!(fields(d, "^C:\\~|^B~"), ["^C:\\", "B~"]);
        assert_eq!(fields(d, "C:\\~|^B"), ["C:\\", "B"]);
        assert_eq!(fields(d, "C:\\~\\|\\^B"), ["C:\\", "B"]);
        // A value starting with a backslash.
        assert_eq!(fields(d, "A~|^\\B"), ["A", "\\B"]);
        assert_eq!(fields(d, "A~\\|\\^\\B"), ["A", "\\B"]);
        // Backslashes inside values, and lone markers, are ordinary characters.
        assert_eq!(fields(d, "a\\|b~|^c\\^d"), ["a\\|b", "c\\^d"]);
        assert_eq!(fields(d, "a|^b~|c"), ["a|^b~|c"]);
        // Two backslashes are not an escape.
        assert_eq!(fields(d, "a~\\\\|^b"), ["a~\\\\|^b"]);
    }

    #[test]
    fn tab_pipe_and_none() {
        assert_eq!(fields(Delimiter::Tab, "a\tb\t"), ["a", "b", ""]);
        assert_eq!(fields(Delimiter::Pipe, "a|b~|^c"), ["a", "b~", "^c"]);
        assert_eq!(fields(Delimiter::None, "a|b"), ["a|b"]);
    }

    #[test]
    fn finds_every_byte_like_memchr() {
        let hay = b"a|b||c~|^d|||||||||x|y0123456789|";
        for n in 0..=hay.len() {
            let mut got = Vec::new();
            for_each_byte(&hay[..n], b'|', |i| got.push(i));
            let want: Vec<usize> = memchr::memchr_iter(b'|', &hay[..n]).collect();
            assert_eq!(got, want, "prefix {n}");
        }
        let mut got = Vec::new();
        for_each_byte(
            &[0xfc, 0x7c, 0x7d, 0xff, 0x00, 0x7c, 0x7c, 0x7c, 0x7c],
            b'|',
            |i| got.push(i),
        );
        assert_eq!(got, [1, 5, 6, 7, 8]);
    }

    #[test]
    fn finds_every_byte_like_memchr_across_blocks_and_densities() {
        // Haystacks of several 64-byte blocks and a rest, from no match to every byte one,
        // with bytes that differ from the one sought in one bit or only in the high bit.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for len in [0, 7, 8, 63, 64, 65, 127, 128, 200, 1000] {
            for every in [0, 1, 2, 3, 11, 64] {
                let hay: Vec<u8> = (0..len)
                    .map(|_| {
                        let r = next();
                        if every > 0 && r % every == 0 {
                            b'^'
                        } else {
                            [b'~', b'|', b'^' ^ 1, b'^' | 0x80, 0, 0xff, b'a']
                                [(r >> 8) as usize % 7]
                        }
                    })
                    .collect();
                let mut got = Vec::new();
                for_each_byte(&hay, b'^', |i| got.push(i));
                let want: Vec<usize> = memchr::memchr_iter(b'^', &hay).collect();
                assert_eq!(got, want, "{len} bytes, one in {every}");
            }
        }
        for (hits, want) in [
            (0, 0),
            (0x80, 1),
            (0x8000_0000_0000_0000, 0x80),
            (0x8080_8080_8080_8080, 0xff),
        ] {
            assert_eq!(gather(hits), want, "{hits:#x}");
        }
    }
}
