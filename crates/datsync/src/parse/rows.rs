//! Cutting data lines into fields and collecting them into Arrow batches.
//!
//! One pass per line: each delimiter found ends a field, which is cleaned and appended to
//! its column at once. A line that turns out ragged is rolled back (the columns are
//! truncated to the previous row) and kept whole as an error row instead.

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_buffer::{Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use memchr::memmem::Finder;

use super::header::{Delimiter, Header};
use crate::model::{ERROR_COLUMN, LINE_COLUMN, LineNo, RAW_COLUMN};

/// Average bytes per field used to size the first batch's buffers.
const FIELD_BYTES_GUESS: usize = 12;

/// Splits lines into fields and appends them to column builders, `batch_rows` at a time.
pub(super) struct RowBuilder {
    schema: SchemaRef,
    delimiter: Delimiter,
    finder: Finder<'static>,
    nulls: NullTokens,
    batch_rows: usize,
    rows: usize,
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
}

impl RowBuilder {
    pub(super) fn new(header: &Header, null_tokens: &[String], batch_rows: usize) -> Self {
        let mut fields = Vec::with_capacity(header.columns.len() + 3);
        fields.push(Field::new(LINE_COLUMN, DataType::UInt64, false));
        fields.extend(
            header
                .columns
                .iter()
                .map(|c| Field::new(&c.name, DataType::Utf8, true)),
        );
        fields.push(Field::new(ERROR_COLUMN, DataType::Utf8, true));
        fields.push(Field::new(RAW_COLUMN, DataType::Utf8, true));
        let rows = batch_rows.min(1 << 16);
        Self {
            schema: Arc::new(Schema::new(fields)),
            delimiter: header.delimiter,
            finder: Finder::new(header.delimiter.bytes()).into_owned(),
            nulls: NullTokens::new(null_tokens),
            batch_rows,
            rows: 0,
            lines: UInt64Builder::with_capacity(rows),
            columns: (0..header.columns.len())
                .map(|_| TextColumn::with_capacity(rows, rows * FIELD_BYTES_GUESS))
                .collect(),
            errors: StringBuilder::new(),
            raws: StringBuilder::new(),
            scratch: String::new(),
            latin1_fields: 0,
            latin1_rows: 0,
            ragged_rows: 0,
            nul_rows: 0,
        }
    }

    /// The schema of the batches: `_line`, the header columns, `_error`, `_raw`.
    pub(super) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows collected and not yet cut into a batch.
    pub(super) fn buffered_rows(&self) -> usize {
        self.rows
    }

    /// Appends one data line (line ending removed). Returns a batch when it completes one.
    /// `may_hold_nul` is false when the caller knows the line holds no NUL byte.
    pub(super) fn push_line(
        &mut self,
        line: &[u8],
        line_no: LineNo,
        may_hold_nul: bool,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        if may_hold_nul && memchr::memchr(0, line).is_some() {
            self.nul_rows += 1;
            self.push_error_row(line, line_no, "NUL byte in the line: not text");
        } else {
            let fields = self.push_fields(line);
            let ncols = self.columns.len();
            if fields == ncols {
                self.lines.append_value(line_no);
                self.errors.append_null();
                self.raws.append_null();
            } else {
                for column in &mut self.columns[..fields.min(ncols)] {
                    column.truncate(self.rows);
                }
                self.ragged_rows += 1;
                let message = format!("ragged row: expected {ncols} fields, found {fields}");
                self.push_error_row(line, line_no, &message);
            }
        }
        self.rows += 1;
        if self.rows >= self.batch_rows {
            self.finish_batch().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Cuts `line` into fields and appends the first `ncols` of them to the columns; returns
    /// the number of fields found.
    fn push_fields(&mut self, line: &[u8]) -> usize {
        let mut sink = FieldSink {
            line,
            utf8: simdutf8::basic::from_utf8(line).is_ok(),
            markers: self.delimiter.has_markers(),
            nulls: &self.nulls,
            columns: &mut self.columns,
            scratch: &mut self.scratch,
            count: 0,
            latin1: 0,
        };
        let mut start = 0;
        let width = self.delimiter.bytes().len();
        match self.delimiter {
            Delimiter::None => {}
            Delimiter::TildePipeCaret => {
                // `~|^` is found by its `|` and the bytes around it. Fields are short, so
                // a word-at-a-time scan beats re-entering a vectorized search per field.
                for_each_byte(line, b'|', |at| {
                    if at > start && line[at - 1] == b'~' && line.get(at + 1) == Some(&b'^') {
                        sink.field(start, at - 1);
                        start = at + 2;
                    }
                });
            }
            Delimiter::Tab | Delimiter::Pipe => {
                for at in memchr::memchr_iter(self.delimiter.bytes()[0], line) {
                    sink.field(start, at);
                    start = at + width;
                }
            }
            Delimiter::EscapedTildePipeCaret | Delimiter::TildeCaret => {
                for at in self.finder.find_iter(line) {
                    sink.field(start, at);
                    start = at + width;
                }
            }
        }
        sink.field(start, line.len());
        let (count, latin1) = (sink.count, sink.latin1);
        if latin1 > 0 && count == self.columns.len() {
            self.latin1_fields += latin1;
            self.latin1_rows += 1;
        }
        count
    }

    fn push_error_row(&mut self, line: &[u8], line_no: LineNo, message: &str) {
        for column in &mut self.columns {
            column.push_null();
        }
        self.lines.append_value(line_no);
        self.errors.append_value(message);
        if let Ok(s) = std::str::from_utf8(line) {
            self.raws.append_value(s);
        } else {
            latin1_into(line, &mut self.scratch);
            self.raws.append_value(&self.scratch);
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
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

/// Receives the fields of one line in order and appends them to their columns.
struct FieldSink<'a> {
    line: &'a [u8],
    /// The whole line is valid UTF-8.
    utf8: bool,
    markers: bool,
    nulls: &'a NullTokens,
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
        let Some(column) = self.columns.get_mut(index) else {
            return;
        };
        let (start, end) = clean_bounds(self.line, start, end, self.markers);
        let field = &self.line[start..end];
        if self.nulls.matches(field) {
            column.push_null();
        } else if self.utf8 {
            // Fields of a valid UTF-8 line are cut and trimmed at ASCII bytes, so each is
            // UTF-8 (and `finish` validates the column again when it builds the array).
            column.push_from_line(self.line, start, end);
        } else if let Ok(s) = std::str::from_utf8(field) {
            column.push(s);
        } else {
            self.latin1 += 1;
            latin1_into(field, self.scratch);
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

    /// Takes the rows as an array and starts again with buffers as large as these were.
    fn finish(&mut self, batch_rows: usize) -> Result<StringArray, ArrowError> {
        if i32::try_from(self.values.len()).is_err() {
            return Err(ArrowError::ComputeError(
                "more than 2 GiB of text in one column of one chunk; use a smaller chunk size"
                    .into(),
            ));
        }
        let rows = batch_rows.min(1 << 16);
        let bytes = self.values.len();
        let next = Self::with_capacity(rows, bytes + bytes / 8 + 64);
        let Self {
            values,
            offsets,
            mut validity,
        } = std::mem::replace(self, next);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        StringArray::try_new(offsets, Buffer::from_vec(values), validity.finish())
    }
}

/// Calls `f` with the position of every `byte` in `haystack`, in order, scanning eight bytes
/// at a time (SWAR): dense matches cost a bit scan each instead of a search call each.
#[inline]
fn for_each_byte(haystack: &[u8], byte: u8, mut f: impl FnMut(usize)) {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let pattern = u64::from_ne_bytes([byte; 8]);
    let mut words = haystack.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes) ^ pattern;
        // The high bit of each byte of `hits` is set exactly where `x` has a zero byte.
        let mut hits = !(((x & LOW7) + LOW7) | x | LOW7);
        while hits != 0 {
            f(base + (hits.trailing_zeros() / 8) as usize);
            hits &= hits - 1;
        }
        base += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == byte {
            f(base + i);
        }
    }
}

/// The bounds of a field within its line once one leading `^` and one trailing `~` are
/// stripped (when the delimiter has markers, `ztdwr.md` §1) and then ASCII whitespace.
fn clean_bounds(line: &[u8], mut start: usize, mut end: usize, markers: bool) -> (usize, usize) {
    if markers {
        if start < end && line[start] == b'^' {
            start += 1;
        }
        if start < end && line[end - 1] == b'~' {
            end -= 1;
        }
    }
    while start < end && line[start].is_ascii_whitespace() {
        start += 1;
    }
    while start < end && line[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    (start, end)
}

/// Decodes Latin-1 bytes (each byte is the code point of the same value) into `out`.
pub(crate) fn latin1_into(bytes: &[u8], out: &mut String) {
    out.clear();
    out.extend(bytes.iter().map(|&b| char::from(b)));
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
    use super::for_each_byte;

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
}
