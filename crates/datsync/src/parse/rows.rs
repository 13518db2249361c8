//! Cutting data lines into fields and collecting them into Arrow batches.
//!
//! One pass per line: each delimiter found ends a field, which is cleaned and appended to
//! its column at once (or skipped, for a header column that is not kept). A line that turns
//! out ragged is rolled back (the columns are truncated to the previous row) and kept as an
//! error row instead.
//!
//! A batch is cut when it holds `batch_rows` rows or its rows cost `batch_bytes`
//! ([`RowBuilder::row_cost`]), whichever comes first.

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_buffer::{Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

use super::header::Header;
use super::syntax::{self, Syntax};
use super::{BatchCut, Delimiter, ParseOptions};
use crate::model::{ERROR_COLUMN, LINE_COLUMN, LineNo, RAW_COLUMN};
use crate::profile::TextEncoding;

/// Average bytes per field used to size the first batch's buffers.
const FIELD_BYTES_GUESS: usize = 12;
/// The most bytes a column reserves up front for its next batch (it grows past that as
/// needed): one batch of huge values must not make every later batch reserve as much.
const MAX_RESERVE_BYTES: usize = 4 << 20;
/// A header column that is not kept in the batches.
const DROPPED: u32 = u32::MAX;

/// How the fields of a record are read, besides the delimiter (the profile's `[format]`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading {
    /// Quotes and escapes, when the profile sets either.
    pub syntax: Option<Syntax>,
    pub encoding: TextEncoding,
    pub trim: bool,
}

/// Splits lines into fields and appends them to column builders, a batch at a time.
pub(super) struct RowBuilder {
    schema: SchemaRef,
    delimiter: Delimiter,
    reading: Reading,
    /// Field bounds of a record with quotes or escapes.
    bounds: Vec<(usize, usize)>,
    /// A field's decoded bytes.
    decoded: Vec<u8>,
    nulls: NullTokens,
    batch_rows: usize,
    batch_bytes: usize,
    max_line_bytes: usize,
    max_raw_bytes: usize,
    /// Header field index → kept column index, or [`DROPPED`].
    slots: Vec<u32>,
    /// Fields per line (the header's).
    width: usize,
    /// Bytes a row costs besides its text: its line number and one offset per column.
    row_overhead: usize,
    rows: usize,
    bytes: usize,
    lines: UInt64Builder,
    columns: Vec<TextColumn>,
    errors: StringBuilder,
    raws: StringBuilder,
    /// Scratch for Latin-1 decoding.
    scratch: String,
    /// Counters reported in [`super::ParseStats`].
    pub latin1_fields: u64,
    pub latin1_rows: u64,
    pub ragged_rows: u64,
    pub nul_rows: u64,
    pub long_lines: u64,
    pub unterminated_quotes: u64,
    pub byte_cut_batches: u64,
}

impl RowBuilder {
    /// Keeps the header columns the profile knows (every column with
    /// `keep_unknown_columns`).
    pub(super) fn new(
        header: &Header,
        null_tokens: &[String],
        options: &ParseOptions,
        reading: Reading,
    ) -> Self {
        let mut fields = vec![Field::new(LINE_COLUMN, DataType::UInt64, false)];
        let mut slots = Vec::with_capacity(header.columns.len());
        for column in &header.columns {
            if column.known || options.keep_unknown_columns {
                slots.push(u32::try_from(fields.len() - 1).unwrap_or(DROPPED));
                fields.push(Field::new(&column.name, DataType::Utf8, true));
            } else {
                slots.push(DROPPED);
            }
        }
        let kept = fields.len() - 1;
        fields.push(Field::new(ERROR_COLUMN, DataType::Utf8, true));
        fields.push(Field::new(RAW_COLUMN, DataType::Utf8, true));
        let rows = options.batch_rows.min(1 << 16);
        Self {
            schema: Arc::new(Schema::new(fields)),
            delimiter: header.delimiter,
            reading,
            bounds: Vec::new(),
            decoded: Vec::new(),
            nulls: NullTokens::new(null_tokens),
            batch_rows: options.batch_rows,
            batch_bytes: options.batch_bytes,
            max_line_bytes: options.max_line_bytes,
            max_raw_bytes: options.max_raw_bytes,
            slots,
            width: header.columns.len(),
            row_overhead: 8 + 4 * (kept + 2),
            rows: 0,
            bytes: 0,
            lines: UInt64Builder::with_capacity(rows),
            columns: (0..kept)
                .map(|_| TextColumn::with_capacity(rows, rows * FIELD_BYTES_GUESS))
                .collect(),
            errors: StringBuilder::new(),
            raws: StringBuilder::new(),
            scratch: String::new(),
            latin1_fields: 0,
            latin1_rows: 0,
            ragged_rows: 0,
            nul_rows: 0,
            long_lines: 0,
            unterminated_quotes: 0,
            byte_cut_batches: 0,
        }
    }

    /// The schema of the batches: `_line`, the kept header columns, `_error`, `_raw`.
    pub(super) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows collected and not yet cut into a batch.
    pub(super) fn buffered_rows(&self) -> usize {
        self.rows
    }

    /// What a line of `len` bytes costs against the byte budget: its bytes (at most
    /// `max_line_bytes`: a longer line keeps less) and the row's fixed overhead. It depends
    /// only on the line and the settings, never on how the input was sliced, so chunks are
    /// cut at the same lines on every run.
    fn row_cost(&self, len: usize) -> usize {
        len.min(self.max_line_bytes) + self.row_overhead
    }

    /// Appends one data record (line ending removed). Returns a batch when it completes one.
    /// `may_hold_nul` is false when the caller knows the record holds no NUL byte.
    pub(super) fn push_record(
        &mut self,
        line: &[u8],
        line_no: LineNo,
        may_hold_nul: bool,
    ) -> Result<Option<(RecordBatch, BatchCut)>, ArrowError> {
        if may_hold_nul && memchr::memchr(0, line).is_some() {
            self.nul_rows += 1;
            let message = self.note_cut(line, "NUL byte in the line: not text".to_owned());
            self.push_error_row(line, line_no, message);
        } else {
            let fields = match self.reading.syntax {
                Some(syntax) => self.push_syntax_fields(&syntax, line),
                None => self.push_fields(line),
            };
            if fields == self.width {
                self.lines.append_value(line_no);
                self.errors.append_null();
                self.raws.append_null();
            } else {
                for column in &mut self.columns {
                    column.truncate(self.rows);
                }
                self.ragged_rows += 1;
                let message = format!("ragged row: expected {} fields, found {fields}", self.width);
                let message = self.note_cut(line, message);
                self.push_error_row(line, line_no, message);
            }
        }
        self.end_row(line.len())
    }

    /// Appends a line (a record of `lines` lines) longer than `max_line_bytes` as an error
    /// row: `prefix` is its start (what was kept of it), `len` its length.
    pub(super) fn push_long_line(
        &mut self,
        prefix: &[u8],
        len: u64,
        line_no: LineNo,
        lines: u64,
    ) -> Result<Option<(RecordBatch, BatchCut)>, ArrowError> {
        self.long_lines += 1;
        let message = if lines > 1 {
            format!(
                "record too long: {len} bytes over {lines} lines, more than the maximum of {} \
                 (max_line_bytes); only its start is kept (is a quote missing its closing \
                 quote?)",
                self.max_line_bytes
            )
        } else {
            format!(
                "line too long: {len} bytes, more than the maximum of {} (max_line_bytes); \
                 only its start is kept",
                self.max_line_bytes
            )
        };
        self.push_error_row(prefix, line_no, message);
        self.end_row(usize::try_from(len).unwrap_or(usize::MAX))
    }

    /// Appends a record whose quote is still open at the end of the input as an error row.
    pub(super) fn push_unterminated(
        &mut self,
        raw: &[u8],
        len: u64,
        line_no: LineNo,
        message: String,
    ) -> Result<Option<(RecordBatch, BatchCut)>, ArrowError> {
        self.unterminated_quotes += 1;
        let message = self.note_cut(raw, message);
        self.push_error_row(raw, line_no, message);
        self.end_row(usize::try_from(len).unwrap_or(usize::MAX))
    }

    fn end_row(&mut self, len: usize) -> Result<Option<(RecordBatch, BatchCut)>, ArrowError> {
        self.rows += 1;
        self.bytes = self.bytes.saturating_add(self.row_cost(len));
        let cut = if self.rows >= self.batch_rows {
            BatchCut::Rows
        } else if self.bytes >= self.batch_bytes {
            self.byte_cut_batches += 1;
            BatchCut::Bytes
        } else {
            return Ok(None);
        };
        self.finish_batch().map(|b| Some((b, cut)))
    }

    /// Cuts a record with quotes or escapes into fields and reads each; appends them only
    /// when their number is right. Returns the number of fields found.
    fn push_syntax_fields(&mut self, syntax: &Syntax, record: &[u8]) -> usize {
        let count = syntax::split(syntax, record, &mut self.bounds);
        if count != self.width {
            return count;
        }
        let mut latin1 = 0;
        for (index, &(start, end)) in self.bounds.iter().enumerate() {
            let Some(column) = self
                .slots
                .get(index)
                .and_then(|&slot| self.columns.get_mut(slot as usize))
            else {
                continue;
            };
            let field = syntax::decode(syntax, &record[start..end], &mut self.decoded);
            if field.null_check.is_some_and(|t| self.nulls.matches(t)) {
                column.push_null();
                continue;
            }
            let bytes = match field.value {
                syntax::Value::Null => {
                    column.push_null();
                    continue;
                }
                syntax::Value::Slice(b) => b,
                syntax::Value::Decoded => &self.decoded[..],
            };
            if !decode_text(bytes, self.reading.encoding, &mut self.scratch) {
                latin1 += 1;
            }
            column.push(&self.scratch);
        }
        if latin1 > 0 {
            self.latin1_fields += latin1;
            self.latin1_rows += 1;
        }
        count
    }

    /// Cuts `line` into fields and appends those of kept columns; returns the number of
    /// fields found.
    fn push_fields(&mut self, line: &[u8]) -> usize {
        let utf8 = match self.reading.encoding {
            TextEncoding::Utf8 => simdutf8::basic::from_utf8(line).is_ok(),
            _ => line.is_ascii(),
        };
        let mut sink = FieldSink {
            line,
            utf8,
            encoding: self.reading.encoding,
            trim: self.reading.trim,
            markers: self.delimiter.has_markers(),
            nulls: &self.nulls,
            slots: &self.slots,
            columns: &mut self.columns,
            scratch: &mut self.scratch,
            count: 0,
            latin1: 0,
        };
        let count = self.delimiter.for_each_field(line, |s, e| sink.field(s, e));
        let latin1 = sink.latin1;
        if latin1 > 0 && count == self.width {
            self.latin1_fields += latin1;
            self.latin1_rows += 1;
        }
        count
    }

    /// `message`, saying so when `_raw` keeps only the start of `line`.
    fn note_cut(&self, line: &[u8], mut message: String) -> String {
        if line.len() > self.max_raw_bytes {
            use std::fmt::Write as _;
            let _ = write!(
                message,
                " (raw text cut at {} of its {} bytes)",
                self.max_raw_bytes,
                line.len()
            );
        }
        message
    }

    fn push_error_row(&mut self, line: &[u8], line_no: LineNo, message: String) {
        for column in &mut self.columns {
            column.push_null();
        }
        self.lines.append_value(line_no);
        self.errors.append_value(message);
        let kept = &line[..line.len().min(self.max_raw_bytes)];
        raw_text(kept, &mut self.scratch);
        self.raws.append_value(&self.scratch);
    }

    /// Drops the buffered rows (a batch that is not wanted).
    pub(super) fn discard_buffered(&mut self) {
        if self.rows > 0 {
            let _ = self.finish_batch();
        }
    }

    /// Cuts the buffered rows into a batch (possibly empty).
    pub(super) fn finish_batch(&mut self) -> Result<RecordBatch, ArrowError> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 3);
        arrays.push(Arc::new(self.lines.finish()));
        for column in &mut self.columns {
            arrays.push(Arc::new(column.finish(self.batch_rows)?));
        }
        arrays.push(Arc::new(self.errors.finish()));
        arrays.push(Arc::new(self.raws.finish()));
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

/// Receives the fields of one line in order and appends them to their columns.
struct FieldSink<'a> {
    line: &'a [u8],
    /// The whole line is text as it is (valid UTF-8; ASCII, in another encoding).
    utf8: bool,
    encoding: TextEncoding,
    trim: bool,
    markers: bool,
    nulls: &'a NullTokens,
    slots: &'a [u32],
    columns: &'a mut [TextColumn],
    scratch: &'a mut String,
    count: usize,
    latin1: u64,
}

impl FieldSink<'_> {
    #[inline]
    fn field(&mut self, start: usize, end: usize) {
        let index = self.count;
        self.count += 1;
        let Some(column) = self
            .slots
            .get(index)
            .and_then(|&slot| self.columns.get_mut(slot as usize))
        else {
            return;
        };
        let (start, end) = clean_bounds(self.line, start, end, self.markers, self.trim);
        let field = &self.line[start..end];
        if self.nulls.matches(field) {
            column.push_null();
        } else if self.utf8 {
            // Fields of a valid UTF-8 line are cut and trimmed at ASCII bytes, so each is
            // UTF-8 (and `finish` validates the column again when it builds the array).
            column.push_from_line(self.line, start, end);
        } else {
            if !decode_text(field, self.encoding, self.scratch) {
                self.latin1 += 1;
            }
            column.push(self.scratch);
        }
    }
}

/// A `Utf8` column under construction that, unlike Arrow's builder, can drop its last rows.
struct TextColumn {
    values: Vec<u8>,
    offsets: Vec<i32>,
    validity: NullBufferBuilder,
}

impl TextColumn {
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            values: Vec::with_capacity(bytes),
            offsets,
            validity: NullBufferBuilder::new(rows),
        }
    }

    /// Appends `line[start..end]`, which the caller knows to be UTF-8. A short field is
    /// copied as a fixed 16-byte block (an inline move, not a `memmove` call per field) and
    /// the excess cut off again.
    #[inline]
    fn push_from_line(&mut self, line: &[u8], start: usize, end: usize) {
        const BLOCK: usize = 16;
        if end - start <= BLOCK && start + BLOCK <= line.len() {
            let len = self.values.len() + (end - start);
            self.values.extend_from_slice(&line[start..start + BLOCK]);
            self.values.truncate(len);
        } else {
            self.values.extend_from_slice(&line[start..end]);
        }
        self.offsets.push(self.end_offset());
        self.validity.append_non_null();
    }

    #[inline]
    fn push(&mut self, value: &str) {
        self.values.extend_from_slice(value.as_bytes());
        self.offsets.push(self.end_offset());
        self.validity.append_non_null();
    }

    #[inline]
    fn push_null(&mut self) {
        self.offsets.push(self.end_offset());
        self.validity.append_null();
    }

    /// The offset after the last value. It wraps only past 2 GiB of text in one column of one
    /// batch, which `finish` refuses before the offsets are used.
    #[inline]
    #[allow(clippy::cast_possible_wrap)]
    fn end_offset(&self) -> i32 {
        self.values.len() as i32
    }

    /// Keeps the first `rows` rows.
    fn truncate(&mut self, rows: usize) {
        if let Some(&end) = self.offsets.get(rows) {
            self.values.truncate(end as usize);
            self.offsets.truncate(rows + 1);
            self.validity.truncate(rows);
        }
    }

    /// Takes the rows as an array and starts again with buffers about as large as these were.
    fn finish(&mut self, batch_rows: usize) -> Result<StringArray, ArrowError> {
        if i32::try_from(self.values.len()).is_err() {
            return Err(ArrowError::ComputeError(
                "more than 2 GiB of text in one column of one chunk; use a smaller chunk size"
                    .into(),
            ));
        }
        let rows = batch_rows.min(1 << 16);
        let bytes = self.values.len();
        let next = Self::with_capacity(rows, (bytes + bytes / 8 + 64).min(MAX_RESERVE_BYTES));
        let Self {
            values,
            offsets,
            mut validity,
        } = std::mem::replace(self, next);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        StringArray::try_new(offsets, Buffer::from_vec(values), validity.finish())
    }
}

/// The bounds of a field within its line once one leading `^` and one trailing `~` are
/// stripped (when the delimiter has markers, `ztdwr.md` §1) and then ASCII whitespace (when
/// `trim`).
#[inline]
fn clean_bounds(
    line: &[u8],
    mut start: usize,
    mut end: usize,
    markers: bool,
    trim: bool,
) -> (usize, usize) {
    if markers {
        if start < end && line[start] == b'^' {
            start += 1;
        }
        if start < end && line[end - 1] == b'~' {
            end -= 1;
        }
    }
    if !trim {
        return (start, end);
    }
    while start < end && line[start].is_ascii_whitespace() {
        start += 1;
    }
    while start < end && line[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    (start, end)
}

/// Decodes the bytes of a field in `encoding` into `out`; false when UTF-8 was asked for
/// and the bytes are not, so they were read as Latin-1 (`ztdwr.md` §1).
pub(super) fn decode_text(bytes: &[u8], encoding: TextEncoding, out: &mut String) -> bool {
    out.clear();
    match encoding {
        TextEncoding::Utf8 => {
            if let Ok(s) = std::str::from_utf8(bytes) {
                out.push_str(s);
            } else {
                latin1_into(bytes, out);
                return false;
            }
        }
        _ if bytes.is_ascii() => out.extend(bytes.iter().map(|&b| char::from(b))),
        TextEncoding::Latin1 => latin1_into(bytes, out),
        TextEncoding::SingleByte(e) => {
            let (text, _) = e.decode_without_bom_handling(bytes);
            out.push_str(&text);
        }
    }
    true
}

/// Decodes Latin-1 bytes (each byte is the code point of the same value) into `out`.
pub(crate) fn latin1_into(bytes: &[u8], out: &mut String) {
    out.clear();
    out.extend(bytes.iter().map(|&b| char::from(b)));
}

/// The text of a raw line (or of its start) into `out`: UTF-8 as it is — a character cut
/// in two at the end of a kept start is dropped — else Latin-1.
pub(super) fn raw_text(bytes: &[u8], out: &mut String) {
    out.clear();
    match std::str::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(e) if e.error_len().is_none() => {
            out.push_str(std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default());
        }
        Err(_) => latin1_into(bytes, out),
    }
}

/// The null tokens, with a cheap first-byte filter in front of the comparison.
struct NullTokens {
    tokens: Vec<Vec<u8>>,
    empty: bool,
    max_len: usize,
    first_bytes: [bool; 256],
}

impl NullTokens {
    fn new(tokens: &[String]) -> Self {
        let tokens: Vec<Vec<u8>> = tokens.iter().map(|t| t.as_bytes().to_vec()).collect();
        let mut first_bytes = [false; 256];
        for t in &tokens {
            if let Some(&b) = t.first() {
                first_bytes[usize::from(b)] = true;
            }
        }
        Self {
            empty: tokens.iter().any(Vec::is_empty),
            max_len: tokens.iter().map(Vec::len).max().unwrap_or(0),
            tokens,
            first_bytes,
        }
    }

    fn matches(&self, field: &[u8]) -> bool {
        match field.first() {
            None => self.empty,
            Some(&b) => {
                field.len() <= self.max_len
                    && self.first_bytes[usize::from(b)]
                    && self.tokens.iter().any(|t| t == field)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::raw_text;

    #[test]
    fn raw_text_drops_a_character_cut_in_two_only() {
        let mut out = String::new();
        raw_text("abé".as_bytes(), &mut out);
        assert_eq!(out, "abé");
        raw_text(&"abé".as_bytes()[..3], &mut out);
        assert_eq!(out, "ab");
        raw_text(b"ab\xe9cd", &mut out);
        assert_eq!(out, "abécd");
    }
}
