//! Text into records: lines are found with `memchr`; a record is one line, or several when
//! quotes or escapes say so (`syntax`); lines to skip, blank lines and comments are dropped
//! where a record would start; the first record is the header (or, without one, data whose
//! columns the profile names).
//!
//! A line that ends inside the input is handled in place ([`Decoder::line`]); a line or a
//! record that continues past the input is carried in `pending` ([`Decoder::piece`],
//! [`Decoder::end_line`]), at most `max_line_bytes` of it. Past that, only its start is
//! kept and the scanner is fed its bytes as they come, so that the record still ends where
//! its quotes say.

use super::header::Header;
use super::syntax::{self, Syntax};
use super::{
    BatchCut, Decoder, Delimiter, Discard, Overlong, ParseError, Phase, Seek, UTF8_BOM, rows,
};
use crate::model::LineNo;
use crate::profile::{DelimiterSetting, TextEncoding, canonical_name};

/// How many characters of a line an error message quotes.
const QUOTED_CHARS: usize = 80;

impl Decoder {
    /// Splits text into lines and handles each, stopping (at a line boundary) once a batch
    /// is ready; returns the bytes consumed.
    pub(super) fn consume_text(&mut self, data: &[u8]) -> Result<usize, ParseError> {
        let mut pos = self.skip_to_resume_point(data, 0)?;
        // One search of the whole input spares every line its own search for a NUL byte.
        let may_hold_nul = memchr::memchr(0, &data[pos..]).is_some();
        while pos < data.len() && self.ready.is_empty() {
            let rest = &data[pos..];
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                self.piece(rest)?;
                pos = data.len();
                break;
            };
            if self.carrying() {
                self.piece(&rest[..nl])?;
                self.end_line(true)?;
            } else {
                self.line(&rest[..nl], may_hold_nul)?;
            }
            pos += nl + 1;
            if self.seek.is_some() {
                pos = self.skip_to_resume_point(data, pos)?;
            }
        }
        self.stats.text_bytes += pos as u64;
        Ok(pos)
    }

    /// Skips `data` from `pos` on up to the resume point, once the columns are known (the
    /// header read, or the first record without one) and no record is open; returns where
    /// decoding goes on. What was decoded past the header (the first record, without one) is
    /// dropped; at the point, the line and row counts are the point's.
    fn skip_to_resume_point(&mut self, data: &[u8], pos: usize) -> Result<usize, ParseError> {
        let Some(seek) = self.seek else {
            return Ok(pos);
        };
        if self.rows.is_none() || self.carrying() {
            return Ok(pos);
        }
        let point = seek.point;
        let wrong = ParseError::ResumePoint {
            offset: point.text_offset,
            lines: point.lines,
        };
        let at = self.stats.text_bytes + pos as u64;
        if at > point.text_offset {
            return Err(wrong);
        }
        // Rows of a headerless source's first record, decoded to learn its delimiter.
        self.ready.clear();
        if let Some(rows) = &mut self.rows {
            rows.discard_buffered();
        }
        let rest = &data[pos..];
        let n = usize::try_from(point.text_offset - at).map_or(rest.len(), |n| n.min(rest.len()));
        let last = rest[..n].last().copied().unwrap_or(seek.last);
        if (n as u64) < point.text_offset - at {
            self.seek = Some(Seek { point, last });
            return Ok(pos + n);
        }
        if last != b'\n' {
            return Err(wrong);
        }
        self.seek = None;
        self.line_no = point.lines;
        self.stats.lines = point.lines;
        self.stats.rows = point.rows;
        Ok(pos + n)
    }

    /// Whether part of a line or of a record is carried.
    pub(super) fn carrying(&self) -> bool {
        self.line_bytes > 0 || self.record_open
    }

    /// The current line is the first of the text (where a BOM may be).
    fn first_line(&self) -> bool {
        self.line_no == 0
    }

    /// A line without its BOM (on the first line) — counted once, when the line ends.
    fn without_bom<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        if self.first_line() {
            line.strip_prefix(UTF8_BOM).unwrap_or(line)
        } else {
            line
        }
    }

    /// Whether a line at the start of a record is a comment.
    fn is_comment(&self, line: &[u8]) -> bool {
        self.profile
            .format
            .comment
            .as_deref()
            .is_some_and(|c| line.starts_with(c))
    }

    /// Counts a line that ended (its CR, and its BOM when it starts with `bytes`).
    fn count_line(&mut self, crlf: bool, bytes: &[u8]) {
        if self.line_no == 0 && bytes.starts_with(UTF8_BOM) {
            self.stats.bom = true;
        }
        self.line_no += 1;
        self.stats.lines += 1;
        if crlf {
            self.stats.crlf_lines += 1;
        }
    }

    /// Handles one whole line (without its `\n`) that starts a record, in place.
    fn line(&mut self, raw: &[u8], may_hold_nul: bool) -> Result<(), ParseError> {
        if self.skip_remaining > 0 {
            self.skip_remaining -= 1;
            self.stats.skipped_lines += 1;
            self.count_line(raw.last() == Some(&b'\r'), raw);
            return Ok(());
        }
        if raw.len() > self.options.max_line_bytes {
            return self.whole_long_line(raw);
        }
        self.count_line(raw.last() == Some(&b'\r'), raw);
        let body = if self.line_no == 1 {
            raw.strip_prefix(UTF8_BOM).unwrap_or(raw)
        } else {
            raw
        };
        let line = body.strip_suffix(b"\r").unwrap_or(body);
        if line.trim_ascii().is_empty() {
            self.stats.blank_lines += 1;
            return Ok(());
        }
        if self.is_comment(line) {
            self.stats.comment_lines += 1;
            return Ok(());
        }
        self.record_line = self.line_no;
        let Some(syntax) = self.ensure_syntax(line) else {
            return self.record(line, may_hold_nul);
        };
        self.scanner.feed(&syntax, body, |_, _| {});
        if self.scanner.line_end() {
            return self.record(line, may_hold_nul);
        }
        // A quote is open: the record goes on over the next lines.
        self.stats.multiline_records += 1;
        self.record_open = true;
        self.pending.extend_from_slice(body);
        self.pending.push(b'\n');
        self.line_start = self.pending.len();
        if self.pending.len() > self.options.max_line_bytes {
            self.keep_start_only(self.pending.len() as u64, b'\n');
        }
        Ok(())
    }

    /// A whole line longer than `max_line_bytes` that starts a record.
    fn whole_long_line(&mut self, raw: &[u8]) -> Result<(), ParseError> {
        let crlf = raw.last() == Some(&b'\r');
        let body = self.without_bom(raw);
        if self.is_comment(body) {
            self.count_line(crlf, raw);
            self.stats.comment_lines += 1;
            return Ok(());
        }
        if self.header_expected() {
            return Err(ParseError::HeaderTooLong {
                line: self.line_no + 1,
                max: self.options.max_line_bytes,
            });
        }
        let ended = match self.ensure_syntax(&body[..body.len().min(self.options.max_line_bytes)]) {
            None => true,
            Some(syntax) => {
                self.scanner.feed(&syntax, body, |_, _| {});
                self.scanner.line_end()
            }
        };
        self.count_line(crlf, raw);
        self.record_line = self.line_no;
        let prefix = &body[..self.options.max_raw_bytes.min(body.len())];
        if ended {
            return self.long_record(prefix, body.len() as u64, crlf);
        }
        self.stats.multiline_records += 1;
        self.record_open = true;
        self.fed = true;
        self.pending.extend_from_slice(prefix);
        self.overlong = Some(Overlong {
            len: body.len() as u64 + 1,
            last: b'\n',
        });
        Ok(())
    }

    /// Whether the next record is the header, which must be read whole.
    fn header_expected(&self) -> bool {
        self.rows.is_none() && self.profile.format.header
    }

    /// Carries part of a line to the next input.
    pub(super) fn piece(&mut self, data: &[u8]) -> Result<(), ParseError> {
        let Some(&last) = data.last() else {
            return Ok(());
        };
        if self.line_bytes == 0 && !self.record_open && self.skip_remaining > 0 {
            self.discard = Some(Discard::Skip);
        }
        self.line_bytes += data.len() as u64;
        if self.discard.is_some() {
            // Only its last byte matters (CRLF); keep it where the line would be.
            self.pending.truncate(self.line_start);
            self.pending.push(last);
            return Ok(());
        }
        if let Some(o) = &mut self.overlong {
            o.len += data.len() as u64;
            o.last = last;
            if self.fed
                && let Some(syntax) = self.syntax
            {
                self.scanner.feed(&syntax, data, |_, _| {});
            }
            return Ok(());
        }
        let len = self.pending.len() + data.len();
        if len <= self.options.max_line_bytes {
            self.pending.extend_from_slice(data);
            return Ok(());
        }
        self.pass_max(data, len as u64, last)
    }

    /// The carried line (record) passes `max_line_bytes` with `data`.
    fn pass_max(&mut self, data: &[u8], len: u64, last: u8) -> Result<(), ParseError> {
        if !self.record_open {
            let mut start = self.pending[self.line_start..].to_vec();
            start.extend_from_slice(&data[..data.len().min(64)]);
            if self.is_comment(self.without_bom(&start)) {
                self.discard = Some(Discard::Comment);
                self.pending.truncate(self.line_start);
                self.pending.push(last);
                return Ok(());
            }
            if self.header_expected() {
                return Err(ParseError::HeaderTooLong {
                    line: self.line_no + 1,
                    max: self.options.max_line_bytes,
                });
            }
        }
        let line = self.pending[self.line_start..].to_vec();
        let body = self.without_bom(&line);
        if let Some(syntax) = self.ensure_syntax(body) {
            self.scanner.feed(&syntax, body, |_, _| {});
            self.scanner.feed(&syntax, data, |_, _| {});
            self.fed = true;
        }
        let keep = self.options.max_raw_bytes;
        let more = keep.saturating_sub(self.pending.len()).min(data.len());
        self.pending.extend_from_slice(&data[..more]);
        self.keep_start_only(len, last);
        Ok(())
    }

    /// The record is past the maximum: keep its first `max_raw_bytes` and count the rest.
    fn keep_start_only(&mut self, len: u64, last: u8) {
        self.pending.truncate(self.options.max_raw_bytes);
        self.line_start = self.pending.len();
        self.fed = self.syntax.is_some();
        self.overlong = Some(Overlong { len, last });
    }

    /// Handles the carried line, which just ended (at a `\n`, or at the end of the input).
    pub(super) fn end_line(&mut self, terminated: bool) -> Result<(), ParseError> {
        self.line_bytes = 0;
        if let Some(discard) = self.discard.take() {
            let crlf = terminated && self.pending.last() == Some(&b'\r');
            self.pending.truncate(self.line_start);
            self.count_line(crlf, b"");
            match discard {
                Discard::Skip => {
                    self.skip_remaining -= 1;
                    self.stats.skipped_lines += 1;
                }
                Discard::Comment => self.stats.comment_lines += 1,
            }
            return Ok(());
        }
        if let Some(o) = self.overlong {
            return self.end_long_line(o, terminated);
        }
        let crlf = terminated
            && self.pending.len() > self.line_start
            && self.pending.last() == Some(&b'\r');
        let at_start = !self.record_open;
        let bom =
            usize::from(self.line_no == 0 && self.pending.starts_with(UTF8_BOM)) * UTF8_BOM.len();
        if self.line_no == 0 {
            let start = self.pending[..self.pending.len().min(UTF8_BOM.len())].to_vec();
            self.count_line(crlf, &start);
        } else {
            self.count_line(crlf, b"");
        }
        if at_start {
            let body = &self.pending[bom..];
            let line = body.strip_suffix(b"\r").unwrap_or(body);
            let blank = line.trim_ascii().is_empty();
            if blank || self.is_comment(line) {
                if blank {
                    self.stats.blank_lines += 1;
                } else {
                    self.stats.comment_lines += 1;
                }
                self.pending.clear();
                return Ok(());
            }
            self.record_line = self.line_no;
        }
        if !self.profile.format.has_syntax() {
            return self.emit_pending(bom);
        }
        let line_start = self.line_start.max(bom);
        let line = self.pending[line_start..].to_vec();
        let Some(syntax) = self.ensure_syntax(&line) else {
            return self.emit_pending(bom);
        };
        self.scanner.feed(&syntax, &line, |_, _| {});
        let ended = if terminated {
            self.scanner.line_end()
        } else {
            !self.scanner.in_quotes()
        };
        if ended {
            self.scanner.reset();
            return self.emit_pending(bom);
        }
        if !terminated {
            return self.unterminated();
        }
        if at_start {
            self.stats.multiline_records += 1;
        }
        self.record_open = true;
        self.pending.push(b'\n');
        self.line_start = self.pending.len();
        if self.pending.len() > self.options.max_line_bytes {
            self.keep_start_only(self.pending.len() as u64, b'\n');
        }
        Ok(())
    }

    /// The line of a record past the maximum ended.
    fn end_long_line(&mut self, o: Overlong, terminated: bool) -> Result<(), ParseError> {
        let crlf = terminated && o.last == b'\r';
        let at_start = !self.record_open;
        let start = self.pending[..self.pending.len().min(UTF8_BOM.len())].to_vec();
        self.count_line(crlf, &start);
        if at_start {
            self.record_line = self.line_no;
        }
        let ended = match (self.syntax, self.fed) {
            (Some(_), true) if terminated => self.scanner.line_end(),
            (Some(_), true) => !self.scanner.in_quotes(),
            _ => true,
        };
        if ended {
            self.overlong = None;
            self.fed = false;
            self.record_open = false;
            self.scanner.reset();
            let prefix = std::mem::take(&mut self.pending);
            let bom = if self.record_line == 1 && prefix.starts_with(UTF8_BOM) {
                UTF8_BOM.len()
            } else {
                0
            };
            let result = self.long_record(&prefix[bom..], o.len, crlf);
            self.pending = prefix;
            self.pending.clear();
            self.line_start = 0;
            return result;
        }
        if !terminated {
            return self.unterminated();
        }
        if at_start {
            self.stats.multiline_records += 1;
        }
        self.record_open = true;
        self.overlong = Some(Overlong {
            len: o.len + 1,
            last: b'\n',
        });
        Ok(())
    }

    /// Hands the complete record in `pending` (from `from`, its trailing CR removed) on,
    /// and starts afresh.
    fn emit_pending(&mut self, from: usize) -> Result<(), ParseError> {
        let buf = std::mem::take(&mut self.pending);
        let body = &buf[from.min(buf.len())..];
        let record = body.strip_suffix(b"\r").unwrap_or(body);
        self.record_open = false;
        let result = self.record(record, true);
        self.pending = buf;
        self.pending.clear();
        self.line_start = 0;
        result
    }

    /// The input ended inside quotes: the record is one error row (or, for the header, the
    /// file cannot be read).
    fn unterminated(&mut self) -> Result<(), ParseError> {
        let quote_line = self.record_line + self.scanner.open_quote_offset();
        self.scanner.reset();
        self.record_open = false;
        self.fed = false;
        let len = self
            .overlong
            .take()
            .map_or(self.pending.len() as u64, |o| o.len);
        if self.header_expected() {
            return Err(ParseError::UnterminatedQuote { line: quote_line });
        }
        let lines = self.line_no + 1 - self.record_line;
        let message = format!(
            "unterminated quote: the quoted field opened on line {quote_line} is still open \
             at the end of the file (line {}); the {lines} line(s) from line {} on ({len} \
             bytes) are this one rejected record",
            self.line_no, self.record_line
        );
        let buf = std::mem::take(&mut self.pending);
        let result = self.error_record(&buf, len, message);
        self.pending = buf;
        self.pending.clear();
        self.line_start = 0;
        result
    }

    /// The quotes-and-escapes syntax, deciding the delimiter from `sample` (the first line
    /// of the first record) when the profile leaves it to detection; `None` when the
    /// profile sets neither quotes nor escapes.
    fn ensure_syntax(&mut self, sample: &[u8]) -> Option<Syntax> {
        let format = &self.profile.format;
        if !format.has_syntax() {
            return None;
        }
        if self.syntax.is_none() {
            let delimiter = *self
                .delimiter
                .get_or_insert_with(|| Delimiter::detect_outside_quotes(sample, format.quote));
            self.syntax = Some(Syntax::new(
                delimiter,
                format.quote,
                format.escape,
                format.trim,
            ));
        }
        self.syntax
    }

    /// Handles one complete record (line ending, BOM and trailing CR removed).
    fn record(&mut self, record: &[u8], may_hold_nul: bool) -> Result<(), ParseError> {
        if self.rows.is_none() {
            if self.profile.format.header {
                return self.header_record(record);
            }
            self.start_headerless(Some(record))?;
        }
        let line = self.record_line;
        if let Some(rows) = &mut self.rows {
            if let Some(batch) = rows.push_record(record, line, may_hold_nul)? {
                self.ready.push_back(batch);
            }
            self.stats.rows += 1;
        }
        Ok(())
    }

    /// A record longer than `max_line_bytes`, of which `prefix` was kept: one error row.
    fn long_record(&mut self, prefix: &[u8], len: u64, crlf: bool) -> Result<(), ParseError> {
        let _ = crlf;
        if self.rows.is_none() {
            if self.header_expected() {
                return Err(ParseError::HeaderTooLong {
                    line: self.record_line,
                    max: self.options.max_line_bytes,
                });
            }
            self.start_headerless(None)?;
        }
        let lines = self.line_no + 1 - self.record_line;
        let line = self.record_line;
        if let Some(rows) = &mut self.rows {
            if let Some(batch) = rows.push_long_line(prefix, len, line, lines)? {
                self.ready.push_back(batch);
            }
            self.stats.rows += 1;
        }
        Ok(())
    }

    /// A record that is one error row with this message.
    fn error_record(&mut self, raw: &[u8], len: u64, message: String) -> Result<(), ParseError> {
        if self.rows.is_none() {
            self.start_headerless(None)?;
        }
        let line = self.record_line;
        if let Some(rows) = &mut self.rows {
            if let Some(batch) = rows.push_unterminated(raw, len, line, message)? {
                self.ready.push_back(batch);
            }
            self.stats.rows += 1;
        }
        Ok(())
    }

    /// The fields of a record, as text (quotes and escapes read, markers kept: header
    /// names are canonicalized later).
    fn record_fields(&mut self, record: &[u8], delimiter: Delimiter) -> Vec<String> {
        let encoding = self.profile.format.encoding;
        let mut out = Vec::new();
        match self.ensure_syntax(record) {
            Some(syntax) => {
                let mut bounds = Vec::new();
                let mut decoded = Vec::new();
                syntax::split(&syntax, record, &mut bounds);
                for (s, e) in bounds {
                    let f = syntax::decode(&syntax, &record[s..e], &mut decoded);
                    let bytes = match f.value {
                        syntax::Value::Null => &[][..],
                        syntax::Value::Slice(b) => b,
                        syntax::Value::Decoded => &decoded[..],
                    };
                    out.push(text_of(bytes, encoding));
                }
            }
            None => {
                delimiter.for_each_field(record, |s, e| {
                    out.push(text_of(&record[s..e], encoding));
                });
            }
        }
        out
    }

    /// How many fields `delimiter` cuts `record` into (quotes and escapes followed).
    fn count_fields(&self, record: &[u8], delimiter: Delimiter) -> usize {
        let format = &self.profile.format;
        if format.has_syntax() {
            let syntax = Syntax::new(delimiter, format.quote, format.escape, format.trim);
            syntax::split(&syntax, record, &mut Vec::new())
        } else {
            delimiter.for_each_field(record, |_, _| {})
        }
    }

    /// `DelimiterMismatch` when the profile fixes a delimiter that does not cut `record`
    /// and another one does.
    fn check_delimiter(
        &self,
        record: &[u8],
        delimiter: Delimiter,
        fields: usize,
    ) -> Result<(), ParseError> {
        if !matches!(self.profile.format.delimiter, DelimiterSetting::Fixed(_)) || fields > 1 {
            return Ok(());
        }
        let found = Delimiter::detect_outside_quotes(record, self.profile.format.quote);
        if found != delimiter && found != Delimiter::None && self.count_fields(record, found) > 1 {
            return Err(ParseError::DelimiterMismatch {
                line: self.record_line,
                found: found.describe(),
                expected: delimiter.short_name(),
            });
        }
        Ok(())
    }

    fn header_record(&mut self, record: &[u8]) -> Result<(), ParseError> {
        let line = self.record_line;
        if memchr::memchr(0, record).is_some() {
            return Err(ParseError::Binary { line });
        }
        let delimiter = match self.delimiter {
            Some(d) => d,
            None => Delimiter::detect_outside_quotes(record, self.profile.format.quote),
        };
        self.delimiter = Some(delimiter);
        let found = self.count_fields(record, delimiter);
        if found > self.options.max_header_columns {
            return Err(ParseError::TooManyColumns {
                line,
                found,
                max: self.options.max_header_columns,
            });
        }
        let fields = self.record_fields(record, delimiter);
        let fields: Vec<String> = fields
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                if i == 0 {
                    f.trim_start_matches('\u{feff}').to_owned()
                } else {
                    f
                }
            })
            .collect();
        let header = Header::from_fields(&fields, delimiter, line, &self.profile);
        if !header.columns.iter().any(|c| c.known) {
            self.check_delimiter(record, delimiter, found)?;
            let start: String = text_of(record, self.profile.format.encoding)
                .chars()
                .take(QUOTED_CHARS)
                .collect();
            if looks_like_data(&fields) {
                return Err(ParseError::LooksLikeData {
                    line,
                    profile: self.profile.name.clone(),
                    start,
                });
            }
            return Err(ParseError::NoKnownColumn {
                line,
                profile: self.profile.name.clone(),
                start,
            });
        }
        self.build_rows(header);
        Ok(())
    }

    /// Without a header: the columns are the profile's, and the first record (when it could
    /// be read) decides the delimiter and is checked for a header or the wrong delimiter.
    fn start_headerless(&mut self, first: Option<&[u8]>) -> Result<(), ParseError> {
        let names: Vec<String> = match &self.profile.format.columns {
            Some(c) => c.clone(),
            None => self.profile.sources().map(|(s, _)| s.to_owned()).collect(),
        };
        let sample = first.unwrap_or(&self.pending);
        let delimiter = match self.delimiter {
            Some(d) => d,
            None => Delimiter::detect_outside_quotes(sample, self.profile.format.quote),
        };
        self.delimiter = Some(delimiter);
        if let Some(record) = first {
            let found = self.count_fields(record, delimiter);
            if found != names.len() {
                self.check_delimiter(record, delimiter, found)?;
            }
            let fields = self.record_fields(record, delimiter);
            if names.len() >= 2
                && fields.len() == names.len()
                && fields.iter().zip(&names).all(|(f, n)| {
                    let c = canonical_name(f);
                    c == *n || self.profile.resolve(&c) == Some(n.as_str())
                })
            {
                return Err(ParseError::LooksLikeHeader {
                    line: self.record_line,
                    start: text_of(record, self.profile.format.encoding)
                        .chars()
                        .take(QUOTED_CHARS)
                        .collect(),
                });
            }
        }
        let header = Header::from_names(&names, delimiter, &self.profile);
        self.build_rows(header);
        Ok(())
    }

    fn build_rows(&mut self, header: Header) {
        let format = &self.profile.format;
        let syntax = format
            .has_syntax()
            .then(|| Syntax::new(header.delimiter, format.quote, format.escape, format.trim));
        self.rows = Some(rows::RowBuilder::new(
            &header,
            &self.profile.null_tokens,
            &self.options,
            rows::Reading {
                syntax,
                encoding: format.encoding,
                trim: format.trim,
            },
        ));
        self.stats.unknown_columns = header.unknown_columns();
        self.header = Some(header);
    }

    /// Consumes the remaining text until a batch is ready, then ends the last line (and
    /// record) and readies the last, partial batch.
    pub(super) fn flush_text(&mut self) -> Result<(), ParseError> {
        if !self.drain_text()? {
            return Ok(());
        }
        if let Some(seek) = self.seek
            && self.rows.is_some()
        {
            // The input ended before the resume point.
            return Err(ParseError::ResumePoint {
                offset: seek.point.text_offset,
                lines: seek.point.lines,
            });
        }
        if self.line_bytes > 0 {
            self.end_line(false)?;
            if !self.ready.is_empty() {
                return Ok(());
            }
        }
        if self.record_open {
            self.unterminated()?;
            if !self.ready.is_empty() {
                return Ok(());
            }
        }
        self.phase = Phase::Done;
        let Some(header) = &self.header else {
            return Err(if self.profile.format.header {
                ParseError::Empty
            } else {
                ParseError::NoRecords
            });
        };
        if self.stats.rows == 0 {
            return Err(ParseError::HeaderOnly {
                header_line: header.line,
            });
        }
        if let Some(rows) = &mut self.rows
            && rows.buffered_rows() > 0
        {
            let batch = rows.finish_batch()?;
            self.ready.push_back((batch, BatchCut::End));
        }
        Ok(())
    }
}

/// Bytes as text in `encoding` (UTF-8: Latin-1 when they are not UTF-8).
pub(super) fn text_of(bytes: &[u8], encoding: TextEncoding) -> String {
    let mut out = String::new();
    rows::decode_text(bytes, encoding, &mut out);
    out
}

/// Whether the fields of a first line look like values rather than names: half of them or
/// more are numbers or dates (a name never is one).
fn looks_like_data(fields: &[String]) -> bool {
    let values = fields
        .iter()
        .map(|f| f.trim())
        .filter(|f| {
            let digits = f.bytes().filter(u8::is_ascii_digit).count();
            !f.is_empty()
                && digits > 0
                && f.bytes().all(|b| {
                    b.is_ascii_digit()
                        || matches!(
                            b,
                            b'.' | b','
                                | b'-'
                                | b'+'
                                | b':'
                                | b'/'
                                | b' '
                                | b'T'
                                | b'Z'
                                | b'e'
                                | b'E'
                        )
                })
        })
        .count();
    values > 0 && 2 * values >= fields.len()
}

/// The line numbers of a record, for messages.
#[allow(dead_code)]
fn lines_of(first: LineNo, last: LineNo) -> String {
    if first == last {
        format!("line {first}")
    } else {
        format!("lines {first}–{last}")
    }
}
