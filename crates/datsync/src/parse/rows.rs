//! Cutting data lines into fields and collecting them into Arrow batches.

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
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
    columns: Vec<StringBuilder>,
    errors: StringBuilder,
    raws: StringBuilder,
    /// Field ranges of the current line, reused between lines.
    ranges: Vec<(usize, usize)>,
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
        let mut builder = Self {
            schema: Arc::new(Schema::new(fields)),
            delimiter: header.delimiter,
            finder: Finder::new(header.delimiter.bytes()).into_owned(),
            nulls: NullTokens::new(null_tokens),
            batch_rows,
            rows: 0,
            lines: UInt64Builder::new(),
            columns: Vec::new(),
            errors: StringBuilder::new(),
            raws: StringBuilder::new(),
            ranges: Vec::with_capacity(header.columns.len() + 1),
            scratch: String::new(),
            latin1_fields: 0,
            latin1_rows: 0,
            ragged_rows: 0,
            nul_rows: 0,
        };
        builder.reset_builders(header.columns.len());
        builder
    }

    fn reset_builders(&mut self, ncols: usize) {
        let rows = self.batch_rows.min(1 << 16);
        self.lines = UInt64Builder::with_capacity(rows);
        self.columns = (0..ncols)
            .map(|_| StringBuilder::with_capacity(rows, rows * FIELD_BYTES_GUESS))
            .collect();
    }

    /// New builders sized like the batch just cut (plus an eighth), so that filling the
    /// next one does not reallocate.
    fn resize_builders_like(&mut self, value_bytes: &[usize]) {
        let rows = self.batch_rows.min(1 << 16);
        self.columns = value_bytes
            .iter()
            .map(|&bytes| StringBuilder::with_capacity(rows, bytes + bytes / 8 + 64))
            .collect();
        self.lines = UInt64Builder::with_capacity(rows);
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
    pub(super) fn push_line(
        &mut self,
        line: &[u8],
        line_no: LineNo,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        self.split(line);
        let ncols = self.columns.len();
        if self.ranges.len() != ncols {
            self.ragged_rows += 1;
            let message = format!(
                "ragged row: expected {ncols} fields, found {}",
                self.ranges.len()
            );
            self.push_error_row(line, line_no, &message);
        } else if memchr::memchr(0, line).is_some() {
            self.nul_rows += 1;
            self.push_error_row(line, line_no, "NUL byte in the line: not text");
        } else {
            self.push_fields(line, line_no);
        }
        self.rows += 1;
        if self.rows >= self.batch_rows {
            self.finish_batch().map(Some)
        } else {
            Ok(None)
        }
    }

    fn split(&mut self, line: &[u8]) {
        self.ranges.clear();
        let mut start = 0;
        let width = self.delimiter.bytes().len();
        match self.delimiter {
            Delimiter::None => {}
            Delimiter::TildePipeCaret => {
                // `~|^` is found by its `|` (one-byte search) and the bytes around it.
                for at in memchr::memchr_iter(b'|', line) {
                    if at > start && line[at - 1] == b'~' && line.get(at + 1) == Some(&b'^') {
                        self.ranges.push((start, at - 1));
                        start = at + 2;
                    }
                }
            }
            Delimiter::Tab | Delimiter::Pipe => {
                for at in memchr::memchr_iter(self.delimiter.bytes()[0], line) {
                    self.ranges.push((start, at));
                    start = at + width;
                }
            }
            _ => {
                for at in self.finder.find_iter(line) {
                    self.ranges.push((start, at));
                    start = at + width;
                }
            }
        }
        self.ranges.push((start, line.len()));
    }

    fn push_fields(&mut self, line: &[u8], line_no: LineNo) {
        let text = std::str::from_utf8(line).ok();
        let markers = self.delimiter.has_markers();
        let mut latin1 = false;
        for (i, &(start, end)) in self.ranges.iter().enumerate() {
            let (start, end) = clean_bounds(line, start, end, markers);
            let field = &line[start..end];
            let builder = &mut self.columns[i];
            if self.nulls.matches(field) {
                builder.append_null();
            } else if let Some(s) = text.and_then(|t| t.get(start..end)) {
                // Fields of a valid UTF-8 line are cut at ASCII bytes, so each is UTF-8.
                builder.append_value(s);
            } else if let Ok(s) = std::str::from_utf8(field) {
                builder.append_value(s);
            } else {
                latin1 = true;
                self.latin1_fields += 1;
                latin1_into(field, &mut self.scratch);
                builder.append_value(&self.scratch);
            }
        }
        if latin1 {
            self.latin1_rows += 1;
        }
        self.lines.append_value(line_no);
        self.errors.append_null();
        self.raws.append_null();
    }

    fn push_error_row(&mut self, line: &[u8], line_no: LineNo, message: &str) {
        for builder in &mut self.columns {
            builder.append_null();
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
        let value_bytes: Vec<usize> = self
            .columns
            .iter()
            .map(|b| b.values_slice().len())
            .collect();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 3);
        arrays.push(Arc::new(self.lines.finish()));
        arrays.extend(
            self.columns
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        arrays.push(Arc::new(self.errors.finish()));
        arrays.push(Arc::new(self.raws.finish()));
        self.rows = 0;
        self.resize_builders_like(&value_bytes);
        RecordBatch::try_new(self.schema.clone(), arrays)
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
