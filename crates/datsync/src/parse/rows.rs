//! Cutting data lines into fields and collecting them into Arrow batches.
//!
//! Two passes per line: the delimiters are found first (the bounds of its fields), then,
//! when the number of fields is the header's, each field is cleaned and appended to its
//! column (or skipped, for a header column that is not kept). A ragged line leaves the
//! columns untouched and is kept as an error row instead.
//!
//! A batch is cut when it holds `batch_rows` rows or its rows cost `batch_bytes`
//! ([`RowBuilder::row_cost`]), whichever comes first.

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

use super::header::Header;
use super::syntax::{self, Syntax};
use super::{BatchCut, Delimiter, ParseOptions};
use crate::model::{ERROR_COLUMN, LINE_COLUMN, LineNo, RAW_COLUMN, short_block};
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
    /// Field bounds of a plain record, one slot per header column ([`field_bounds`]).
    cuts: Vec<(usize, usize)>,
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
            cuts: vec![(0, 0); header.columns.len()],
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
                .map(|_| {
                    TextColumn::new(Reserve {
                        rows,
                        bytes: rows * FIELD_BYTES_GUESS,
                        nulls: 0,
                    })
                })
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
        self.begin_row();
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
        self.begin_row();
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
        self.begin_row();
        self.unterminated_quotes += 1;
        let message = self.note_cut(raw, message);
        self.push_error_row(raw, line_no, message);
        self.end_row(usize::try_from(len).unwrap_or(usize::MAX))
    }

    /// Reserves each column's buffers before the first row of a batch.
    #[inline]
    fn begin_row(&mut self) {
        if self.rows == 0 {
            for column in &mut self.columns {
                column.reserve();
            }
        }
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

    /// Cuts `line` into fields and, when their number is right, appends those of kept
    /// columns; returns the number of fields found.
    ///
    /// The fields are found first (their bounds only) and appended after: a ragged line
    /// leaves the columns untouched, and the append loop is one tight loop over the fields.
    fn push_fields(&mut self, line: &[u8]) -> usize {
        let count = field_bounds(self.delimiter, line, &mut self.cuts);
        debug_assert_eq!(self.cuts.len(), self.width, "one slot per header column");
        if count != self.width {
            return count;
        }
        let utf8 = match self.reading.encoding {
            TextEncoding::Utf8 => simdutf8::basic::from_utf8(line).is_ok(),
            _ => line.is_ascii(),
        };
        let latin1 = self.append_fields(line, utf8);
        if latin1 > 0 {
            self.latin1_fields += latin1;
            self.latin1_rows += 1;
        }
        count
    }

    /// Appends the fields of `line` (their bounds in `cuts`, one per header column) to
    /// the kept columns; `utf8`: the whole line is text as it is. Returns the number of
    /// fields read as Latin-1.
    #[inline(never)]
    fn append_fields(&mut self, line: &[u8], utf8: bool) -> u64 {
        let Reading { encoding, trim, .. } = self.reading;
        let markers = self.delimiter.has_markers();
        let mut latin1 = 0;
        for (&(start, end), &slot) in self.cuts.iter().zip(&self.slots) {
            let Some(column) = self.columns.get_mut(slot as usize) else {
                continue;
            };
            let field = clean_field(&line[start..end], markers, trim);
            let start = start + field.lead;
            let field = field.text;
            if self.nulls.matches(field) {
                column.push_null();
            } else if utf8 {
                // Fields of a valid UTF-8 line are cut and trimmed at ASCII bytes, so each
                // is UTF-8 (and `finish` validates the column again when it builds the
                // array).
                column.push_from_line(line, start, field.len());
            } else {
                column.push(decoded(field, encoding, &mut self.scratch, &mut latin1));
            }
        }
        latin1
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

/// A field of a line that is not text as it is, decoded into `scratch` (and counted in
/// `latin1` when it is read as Latin-1); kept out of line, off the path of a valid line's
/// fields.
#[inline(never)]
fn decoded<'s>(
    field: &[u8],
    encoding: TextEncoding,
    scratch: &'s mut String,
    latin1: &mut u64,
) -> &'s str {
    if !decode_text(field, encoding, scratch) {
        *latin1 += 1;
    }
    scratch
}

/// A `Utf8` column under construction: its values and offsets, made into an array when the
/// batch is cut.
///
/// Its validity is kept as the list of its null rows rather than a bitmap appended to per
/// value: a value costs its bytes and its offset only, and the bitmap is built once, when
/// the batch is cut. As with Arrow's `NullBufferBuilder`, a column has a validity bitmap when
/// it holds a null, and none otherwise.
struct TextColumn {
    values: Vec<u8>,
    offsets: Vec<i32>,
    /// The rows that are null, in order (4 bytes each: a batch's rows are counted in `i32`
    /// offsets).
    null_rows: Vec<u32>,
    /// What the next batch reserves when its first row comes ([`Self::reserve`]).
    next: Reserve,
}

/// The room a column's next batch takes at its first row.
#[derive(Debug, Clone, Copy)]
struct Reserve {
    rows: usize,
    /// Bytes of text.
    bytes: usize,
    /// Null rows.
    nulls: usize,
}

impl TextColumn {
    /// An empty column that takes `next` when its first row comes.
    fn new(next: Reserve) -> Self {
        Self {
            values: Vec::new(),
            offsets: vec![0],
            null_rows: Vec::new(),
            next,
        }
    }

    /// Reserves the batch's buffers, before its first row. Not when the batch before is cut:
    /// a reader that drops each batch before it decodes on frees the buffers first, so the
    /// allocator hands the same memory back instead of pages the kernel must fault in and
    /// zero again.
    fn reserve(&mut self) {
        let Reserve { rows, bytes, nulls } = self.next;
        self.offsets.reserve(rows);
        self.values.reserve(bytes);
        self.null_rows.reserve(nulls);
    }

    /// Appends the `len` bytes of `line` from `start`, which the caller knows to be UTF-8.
    /// A short field is copied as a fixed block ([`short_block`]) and the excess cut off
    /// again.
    #[inline]
    fn push_from_line(&mut self, line: &[u8], start: usize, len: usize) {
        match short_block(line, start, len) {
            Some(block) => {
                let keep = self.values.len() + len;
                self.values.extend_from_slice(block);
                self.values.truncate(keep);
            }
            None => self.values.extend_from_slice(&line[start..start + len]),
        }
        self.offsets.push(self.end_offset());
    }

    #[inline]
    fn push(&mut self, value: &str) {
        self.values.extend_from_slice(value.as_bytes());
        self.offsets.push(self.end_offset());
    }

    #[inline]
    fn push_null(&mut self) {
        self.null_rows
            .push(u32::try_from(self.offsets.len() - 1).unwrap_or(u32::MAX));
        self.offsets.push(self.end_offset());
    }

    /// The offset after the last value. It wraps only past 2 GiB of text in one column of one
    /// batch, which `finish` refuses before the offsets are used.
    #[inline]
    #[allow(clippy::cast_possible_wrap)]
    fn end_offset(&self) -> i32 {
        self.values.len() as i32
    }

    /// Takes the rows as an array and starts again empty, to take buffers about as large as
    /// these were at the next batch's first row.
    fn finish(&mut self, batch_rows: usize) -> Result<StringArray, ArrowError> {
        if i32::try_from(self.values.len()).is_err() {
            return Err(ArrowError::ComputeError(
                "more than 2 GiB of text in one column of one chunk; use a smaller chunk size"
                    .into(),
            ));
        }
        let rows = batch_rows.min(1 << 16);
        let bytes = self.values.len();
        let nulls = self.null_rows.len();
        let next = Self::new(Reserve {
            rows,
            bytes: (bytes + bytes / 8 + 64).min(MAX_RESERVE_BYTES),
            nulls: (nulls + nulls / 8).min(rows),
        });
        let Self {
            values,
            offsets,
            null_rows,
            ..
        } = std::mem::replace(self, next);
        let len = offsets.len() - 1;
        let validity = (!null_rows.is_empty()).then(|| {
            let mut bits = BooleanBufferBuilder::new(len);
            bits.append_n(len, true);
            for row in null_rows {
                if let Some(row) = usize::try_from(row).ok().filter(|&r| r < len) {
                    bits.set_bit(row, false);
                }
            }
            NullBuffer::new(bits.finish())
        });
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        StringArray::try_new(offsets, Buffer::from_vec(values), validity)
    }
}

/// The bounds of the fields of `line` into `out`, the first field's first; returns their
/// number. Fields past `out`'s length are counted, not kept: `out` holds one slot per header
/// column, and only a line of as many fields is read. With fewer fields, the slots past
/// them keep an earlier line's bounds: read `out` only when the count is its length.
/// Filling slots that are there, rather than pushing onto a `Vec`, keeps the scan free of
/// growing (issue 14). Out of line, so that its scan keeps its state in registers.
#[inline(never)]
fn field_bounds(delimiter: Delimiter, line: &[u8], out: &mut [(usize, usize)]) -> usize {
    let mut next = out.iter_mut();
    delimiter.for_each_field(line, |start, end| {
        if let Some(slot) = next.next() {
            *slot = (start, end);
        }
    })
}

/// A field once cleaned: its text, and how many bytes were dropped before it.
struct Clean<'a> {
    text: &'a [u8],
    lead: usize,
}

/// `field` once one leading `^` and one trailing `~` are stripped (when the delimiter has
/// markers, `ztdwr.md` §1) and then ASCII whitespace (when `trim`).
#[inline]
fn clean_field(field: &[u8], markers: bool, trim: bool) -> Clean<'_> {
    let mut text = field;
    let mut lead = 0;
    if markers {
        if let [b'^', rest @ ..] = text {
            text = rest;
            lead = 1;
        }
        if let [rest @ .., b'~'] = text {
            text = rest;
        }
    }
    if trim {
        let trimmed = text.trim_ascii_start();
        lead += text.len() - trimmed.len();
        text = trimmed.trim_ascii_end();
    }
    Clean { text, lead }
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

    #[inline]
    fn matches(&self, field: &[u8]) -> bool {
        match field.first() {
            None => self.empty,
            Some(&b) => {
                field.len() <= self.max_len
                    && self.first_bytes[usize::from(b)]
                    && self.any_equal(field)
            }
        }
    }

    /// Whether a token is `field` (out of line: most fields never get this far).
    #[inline(never)]
    fn any_equal(&self, field: &[u8]) -> bool {
        self.tokens.iter().any(|t| t == field)
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Array as _;

    use super::super::header::{Header, HeaderColumn};
    use super::{
        Delimiter, FIELD_BYTES_GUESS, ParseOptions, Reading, Reserve, RowBuilder, TextColumn,
        raw_text,
    };
    use crate::profile::TextEncoding;

    #[test]
    fn a_column_takes_memory_for_a_batch_at_its_first_row_not_when_the_one_before_is_cut() {
        let mut column = TextColumn::new(Reserve {
            rows: 4,
            bytes: 64,
            nulls: 0,
        });
        assert_eq!(column.values.capacity(), 0, "nothing before the first row");
        column.reserve();
        column.push("0123456789abcdef");
        column.push_null();
        column.push("de");
        assert!(column.values.capacity() >= 64 && column.offsets.capacity() > 4);
        let array = column.finish(4).unwrap();
        assert_eq!(
            array.iter().collect::<Vec<_>>(),
            [Some("0123456789abcdef"), None, Some("de")]
        );
        // Cut: the batch's buffers went with the array; the next batch's come with its rows,
        // sized after this one (its text and its nulls, each with an eighth more).
        assert_eq!(column.values.capacity(), 0);
        assert_eq!(column.null_rows.capacity(), 0);
        column.reserve();
        let text = 18;
        assert!(column.values.capacity() >= text + text / 8 + 64);
        assert!(column.offsets.capacity() > 4 && column.null_rows.capacity() >= 1);
        column.push_null();
        let array = column.finish(4).unwrap();
        assert_eq!(array.iter().collect::<Vec<_>>(), [None]);
        // A batch cut before any row holds none.
        assert_eq!(column.finish(4).unwrap().len(), 0);
    }

    /// A header of known columns named `names`, cut by `delimiter`.
    fn header(delimiter: Delimiter, names: &[&str]) -> Header {
        let column = |name: &&str| HeaderColumn {
            raw: (*name).to_owned(),
            canonical: (*name).to_owned(),
            name: (*name).to_owned(),
            known: true,
            duplicate: false,
        };
        Header {
            delimiter,
            columns: names.iter().map(column).collect(),
            line: 1,
        }
    }

    /// One way a row enters a batch, and the batch it cut, if any.
    type Push = fn(&mut RowBuilder) -> Option<arrow_array::RecordBatch>;

    /// Each way a row enters a batch (a record, a ragged record, a long line, a record whose
    /// quote never closes) reserves every column's buffers when it is the batch's first.
    #[test]
    fn every_first_row_of_a_batch_reserves_the_columns() {
        let header = header(Delimiter::Pipe, &["a", "b"]);
        let options = ParseOptions {
            batch_rows: 2,
            ..ParseOptions::default()
        };
        let reading = Reading {
            syntax: None,
            encoding: TextEncoding::Utf8,
            trim: false,
        };
        let forms: [(&str, Push); 4] = [
            ("record", |r| {
                r.push_record(b"x|y", 2, false).unwrap().map(|b| b.0)
            }),
            ("ragged", |r| {
                r.push_record(b"x", 2, false).unwrap().map(|b| b.0)
            }),
            ("long line", |r| {
                r.push_long_line(b"x|y", 1 << 30, 2, 1)
                    .unwrap()
                    .map(|b| b.0)
            }),
            ("open quote", |r| {
                r.push_unterminated(b"x|\"y", 4, 2, "open".to_owned())
                    .unwrap()
                    .map(|b| b.0)
            }),
        ];
        for (name, push) in forms {
            let mut rows = RowBuilder::new(&header, &[String::new()], &options, reading);
            for first_of_batch in [true, false, true] {
                if first_of_batch {
                    assert!(
                        rows.columns.iter().all(|c| c.values.capacity() == 0),
                        "{name}: nothing taken before the batch's first row"
                    );
                }
                match push(&mut rows) {
                    Some(cut) => assert_eq!(cut.num_rows(), 2, "{name}"),
                    None => assert!(
                        rows.columns
                            .iter()
                            .all(|c| c.values.capacity() >= 2 * FIELD_BYTES_GUESS),
                        "{name}: the batch's first row reserved every column"
                    ),
                }
            }
        }
    }

    /// A line is read only when it has the header's number of fields: one with fewer or more
    /// is a ragged row, and the lines around it keep their own fields (the bounds of a line
    /// are kept in one slot per header column, and a longer line's are counted, not kept).
    #[test]
    fn only_lines_of_the_headers_width_are_read_whatever_came_before() {
        let header = header(Delimiter::TildePipeCaret, &["a", "b", "c"]);
        let reading = Reading {
            syntax: None,
            encoding: TextEncoding::Utf8,
            trim: true,
        };
        // `NULL` the only null token: an empty field is read as an empty value.
        let mut rows = RowBuilder::new(
            &header,
            &["NULL".to_owned()],
            &ParseOptions::default(),
            reading,
        );
        let lines: [&[u8]; 6] = [
            b"^a1~|^b1~|^c1~",
            b"^a2~|^b2~|^c2~|^d2~|^e2~",
            b"a3~|^b3~|^ c3 ",
            b"^a4~|^b4~",
            b"~|^~|^",
            b"^a6|^b6|^c6~",
        ];
        for (line, no) in lines.iter().zip(2..) {
            assert!(rows.push_record(line, no, true).unwrap().is_none());
        }
        assert_eq!(rows.ragged_rows, 3);
        let batch = rows.finish_batch().unwrap();
        let text = |name: &str| {
            let a = batch[name]
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap();
            a.iter().map(|v| v.map(str::to_owned)).collect::<Vec<_>>()
        };
        let some = |v: &str| Some(v.to_owned());
        assert_eq!(
            text("a"),
            [some("a1"), None, some("a3"), None, some(""), None]
        );
        assert_eq!(
            text("b"),
            [some("b1"), None, some("b3"), None, some(""), None]
        );
        assert_eq!(
            text("c"),
            [some("c1"), None, some("c3"), None, some(""), None]
        );
        let errors = text(crate::model::ERROR_COLUMN);
        for (row, found) in [(1, 5), (3, 2), (5, 1)] {
            let message = errors[row].clone().unwrap_or_default();
            assert!(
                message.contains(&format!("expected 3 fields, found {found}")),
                "{message}"
            );
        }
        assert_eq!(
            errors[4], None,
            "an empty line of three empty fields is a row"
        );
    }

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
