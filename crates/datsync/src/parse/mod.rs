//! The push decoder: raw source bytes in, Arrow batches of text columns out.
//!
//! Feed any slices with [`Decoder::decode`], take finished batches with
//! [`Decoder::next_batch`], and at end of input call [`Decoder::flush`] until it returns
//! `None`. The output does not depend on how the input was sliced. Every batch has the columns
//! `_line` (source line number), one nullable `Utf8` column per kept header column (named by
//! the profile), `_error` and `_raw` (set only for a row the decoder could not cut into
//! fields: a ragged row or a line over the maximum length keeps its raw text — its start, for
//! a long one — and a reason, never padded or truncated into fields).
//!
//! Handled here (`ztdwr.md` §1–§2): gzip by magic bytes (multi-member too), a BOM, CRLF,
//! UTF-8 with a per-field Latin-1 fallback, delimiter detection (every form of `~|^`, see
//! [`Delimiter`]), `^`/`~` marker stripping, whitespace trimming, null tokens, header
//! canonicalization and aliases. The profile's `[format]` ([`crate::Format`]) changes what a
//! file looks like: a fixed delimiter of any string, no header (the columns named by the
//! profile), RFC 4180 quotes and COPY text-format escapes (a record may then span lines; see
//! `syntax`), an encoding, lines to skip before the header, comment lines, no trimming.
//!
//! A *record* is one line, or several when a quoted field holds line breaks (or a backslash
//! escapes one); `_line` is the number of its first physical line, and line numbers count
//! physical lines (the header, blank, skipped and comment lines included).
//!
//! # Bounded memory on any input
//!
//! - A batch is cut at [`ParseOptions::batch_rows`] rows or once its rows cost
//!   [`ParseOptions::batch_bytes`], whichever comes first ([`BatchCut`] says which).
//! - A line (a record, with quotes) longer than [`ParseOptions::max_line_bytes`] is never
//!   buffered whole: its first [`ParseOptions::max_raw_bytes`] are kept, the rest is skipped
//!   up to its end (a quoted field's bytes are still followed, so the record ends where it
//!   does), and it becomes one error row (`line too long`, `record too long`); decoding goes
//!   on with the next record. Only the header must fit (it is needed to read anything else).
//!   A quote still open at the end of the input is one error row (`unterminated quote`).
//! - At most [`ParseOptions::max_header_columns`] header fields; header columns the profile
//!   does not know are named ([`ParseStats::unknown_columns`]) and then not kept.
//! - At most one batch is ready at a time: `decode` stops consuming once a batch is ready,
//!   and gzip is inflated 16 KiB of compressed input at a time, the text of a step consumed
//!   before the next step is inflated (a gzip bomb costs one step's text, ≤ 17 MiB).
//!
//! # Resuming after a recorded batch
//!
//! [`Decoder::resume_point`], taken just after a batch cut by rows or bytes, says where the
//! next record starts (its text offset) with the line and row counts there. A decoder told
//! [`Decoder::resume_at`] that point reads the header (or, without one, the first record,
//! which decides the delimiter and is then dropped), skips the text up to the point without
//! cutting it into lines or fields, and goes on as the first decoder did: the batches after
//! the point are the same, line numbers included. Gzip is still inflated up to the point.

mod delim;
mod header;
mod records;
mod rows;
mod syntax;

use std::collections::VecDeque;
use std::io::{Read, Write};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use flate2::write::MultiGzDecoder;
use serde::Serialize;

pub use delim::{Delimiter, OtherDelimiter};
pub use header::{Header, HeaderColumn};

use crate::model::{LineNo, ResumePoint};
use crate::profile::{DelimiterSetting, Profile};

/// Rows per batch (and so per chunk) unless told otherwise; the seed design's 10,000.
pub const DEFAULT_BATCH_ROWS: usize = 10_000;
/// The byte budget of a batch (and so of a chunk) unless told otherwise: 64 MiB.
pub const DEFAULT_BATCH_BYTES: usize = 64 << 20;
/// The longest line decoded into fields: 1 MiB, hundreds of times a real ZTDWR line.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
/// The most bytes of a line kept in `_raw` (an error row's raw text): 64 KiB.
pub const DEFAULT_MAX_RAW_BYTES: usize = 64 << 10;
/// The most fields a header line may have.
pub const DEFAULT_MAX_HEADER_COLUMNS: usize = 2_000;
/// Compressed bytes inflated per step, so that one step's output stays small.
const GZIP_STEP_BYTES: usize = 16 << 10;
/// Read size used by [`decode_reader`].
pub const READ_BUFFER_BYTES: usize = 256 << 10;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Rows per output batch at most (the chunk size).
    pub batch_rows: usize,
    /// A batch is cut once its rows cost this many bytes (each row: its line's bytes, at
    /// most `max_line_bytes`, plus 8 bytes and 4 per kept column).
    pub batch_bytes: usize,
    /// The longest line decoded into fields; a longer data line is one error row.
    pub max_line_bytes: usize,
    /// The most bytes of a line kept in `_raw` (at most `max_line_bytes`).
    pub max_raw_bytes: usize,
    /// The most fields a header line may have.
    pub max_header_columns: usize,
    /// Keep header columns the profile does not know in the batches (`inspect` shows them);
    /// the pipeline drops them.
    pub keep_unknown_columns: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            batch_rows: DEFAULT_BATCH_ROWS,
            batch_bytes: DEFAULT_BATCH_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_raw_bytes: DEFAULT_MAX_RAW_BYTES,
            max_header_columns: DEFAULT_MAX_HEADER_COLUMNS,
            keep_unknown_columns: false,
        }
    }
}

/// Why a batch ended where it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchCut {
    /// It holds [`ParseOptions::batch_rows`] rows.
    Rows,
    /// Its rows reached [`ParseOptions::batch_bytes`].
    Bytes,
    /// The input ended: this is the source's last batch.
    End,
}

/// A fatal decoding error. Row-level problems (ragged rows, long lines) are not errors: they
/// are rows with `_error` set.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// No bytes, or only blank lines.
    #[error("empty file: no header line")]
    Empty,
    /// A file without a header line (`header = false`) that holds no record.
    #[error("empty file: no data rows")]
    NoRecords,
    /// A header and no data rows.
    #[error("header-only file: no data rows after the header on line {header_line}")]
    HeaderOnly {
        /// Line of the header.
        header_line: LineNo,
    },
    /// The header line is not text.
    #[error("line {line}: binary data, not a delimited text file (NUL byte in the header line)")]
    Binary {
        /// Line of the header.
        line: LineNo,
    },
    /// No header column is known to the profile.
    #[error(
        "line {line}: no header column is known to profile `{profile}` (header starts {start:?}); \
         is this the right file and profile?"
    )]
    NoKnownColumn {
        /// Line of the header.
        line: LineNo,
        /// The profile's name.
        profile: String,
        /// The start of the header line.
        start: String,
    },
    /// The file is not cut by the delimiter the profile names, and another one cuts it.
    #[error(
        "line {line}: the file looks {found}, the profile expects {expected}: set \
         `delimiter` in the profile's [format] (or \"auto\")"
    )]
    DelimiterMismatch {
        /// The line looked at (the header, or the first record).
        line: LineNo,
        /// What the line looks like (`comma-delimited`).
        found: String,
        /// The profile's delimiter (`tab`).
        expected: String,
    },
    /// The header line holds values rather than names.
    #[error(
        "line {line}: the first line looks like data ({start:?}), not a header of profile \
         `{profile}`: set `header = false` in the profile's [format] (and `columns`, unless the \
         profile's columns are the file's fields in order)"
    )]
    LooksLikeData {
        /// The line.
        line: LineNo,
        /// The profile's name.
        profile: String,
        /// The start of the line.
        start: String,
    },
    /// `header = false`, and the first line names the columns.
    #[error(
        "line {line}: the first line looks like a header ({start:?}) but the profile says \
         `header = false`: set `header = true` (or `skip_lines = 1`) in its [format]"
    )]
    LooksLikeHeader {
        /// The line.
        line: LineNo,
        /// The start of the line.
        start: String,
    },
    /// The header record opens a quote that is never closed.
    #[error(
        "line {line}: unterminated quote: the header's quoted field opened on this line is \
         still open at the end of the file"
    )]
    UnterminatedQuote {
        /// The line where the quote opened.
        line: LineNo,
    },
    /// A header line longer than [`ParseOptions::max_line_bytes`].
    #[error(
        "line {line}: the header line is longer than {max} bytes (max_line_bytes): not a \
         line-oriented text file, or a missing line break"
    )]
    HeaderTooLong {
        /// The line number.
        line: LineNo,
        /// The limit.
        max: usize,
    },
    /// A header line with more than [`ParseOptions::max_header_columns`] fields.
    #[error(
        "line {line}: the header has {found} fields, more than the maximum of {max} \
         (max_header_columns): not a header of this profile, or the wrong delimiter; raise \
         the limit only if the file is right"
    )]
    TooManyColumns {
        /// The line number.
        line: LineNo,
        /// Fields found.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// The gzip stream is corrupt or ends early.
    #[error("gzip stream {problem} at compressed byte offset {offset}")]
    Gzip {
        /// What is wrong.
        problem: &'static str,
        /// Offset in the compressed input.
        offset: u64,
    },
    /// Arrow refused a batch (an internal invariant; reported rather than panicking).
    #[error("building a batch failed: {0}")]
    Arrow(#[from] ArrowError),
    /// The point given to [`Decoder::resume_at`] is not the end of a record of this input.
    #[error(
        "the recorded resume point (text byte {offset}, after line {lines}) is not the end of \
         a record of this source: the checkpoint does not match the file"
    )]
    ResumePoint {
        /// The point's text offset.
        offset: u64,
        /// The point's line count.
        lines: LineNo,
    },
    /// Reading the input failed (only from [`decode_reader`]).
    #[error("read error at byte offset {offset}: {source}")]
    Io {
        /// Offset in the input.
        offset: u64,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ParseError {
    /// The line the error is about, when it is about one.
    pub fn line(&self) -> Option<LineNo> {
        match self {
            Self::HeaderOnly { header_line } => Some(*header_line),
            Self::Binary { line }
            | Self::NoKnownColumn { line, .. }
            | Self::DelimiterMismatch { line, .. }
            | Self::LooksLikeData { line, .. }
            | Self::LooksLikeHeader { line, .. }
            | Self::UnterminatedQuote { line }
            | Self::HeaderTooLong { line, .. }
            | Self::TooManyColumns { line, .. } => Some(*line),
            Self::Empty
            | Self::NoRecords
            | Self::Gzip { .. }
            | Self::Arrow(_)
            | Self::ResumePoint { .. }
            | Self::Io { .. } => None,
        }
    }
}

/// What the decoder saw, for reports and the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ParseStats {
    /// The input was gzip.
    pub gzip: bool,
    /// The text started with a UTF-8 BOM.
    pub bom: bool,
    /// Bytes of input fed (compressed, if gzip).
    pub bytes_in: u64,
    /// Bytes of text after decompression.
    pub text_bytes: u64,
    /// Lines seen, the header and blank lines included.
    pub lines: u64,
    /// Lines that ended with CRLF.
    pub crlf_lines: u64,
    /// Blank lines (skipped; they hold no record).
    pub blank_lines: u64,
    /// Lines skipped before the header (`[format] skip_lines`).
    pub skipped_lines: u64,
    /// Comment lines skipped (`[format] comment`).
    pub comment_lines: u64,
    /// Records that span more than one line (a quoted field holds a line break).
    pub multiline_records: u64,
    /// Data rows emitted (error rows included).
    pub rows: u64,
    /// Rows whose field count differs from the header's.
    pub ragged_rows: u64,
    /// Rows holding a NUL byte.
    pub nul_rows: u64,
    /// Lines (records) longer than the maximum, each one error row (`line too long`).
    pub long_lines: u64,
    /// Records whose quote is still open at the end of the input (one error row).
    pub unterminated_quotes: u64,
    /// Fields decoded as Latin-1 because they were not valid UTF-8.
    pub latin1_fields: u64,
    /// Rows with at least one Latin-1 field.
    pub latin1_rows: u64,
    /// Batches cut by the byte budget rather than the row count.
    pub byte_cut_batches: u64,
    /// Header columns the profile does not know (output names: canonical, made unique),
    /// in file order; they are not kept in the batches unless asked.
    pub unknown_columns: Vec<String>,
}

enum Compression {
    /// Fewer than two bytes seen: not decided yet.
    Undecided(Vec<u8>),
    Plain,
    Gzip(Box<MultiGzDecoder<Vec<u8>>>),
}

/// A line (record) past the maximum length being skipped: its start is in `pending`.
#[derive(Debug, Clone, Copy)]
struct Overlong {
    /// Bytes of the record so far.
    len: u64,
    /// The last byte of its current line so far (a CR before the LF counts a CRLF line).
    last: u8,
}

/// Why the current line is neither kept nor scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discard {
    /// One of the `skip_lines` before the header.
    Skip,
    /// A comment line.
    Comment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Decoding,
    Flushing,
    Done,
}

/// The push decoder. See the module docs.
pub struct Decoder {
    profile: Profile,
    options: ParseOptions,
    compression: Compression,
    /// Text decoded but not consumed yet (the first bytes of plain input, or the output of
    /// one inflate step) from `text_pos` on.
    text: Vec<u8>,
    text_pos: usize,
    /// The record in progress: its complete lines (each with its `\n`) and the partial
    /// current line, at most `max_line_bytes` (past that, only the first `max_raw_bytes`).
    pending: Vec<u8>,
    /// Where the current line starts in `pending`.
    line_start: usize,
    /// Bytes of the current partial line so far (0: none carried).
    line_bytes: u64,
    overlong: Option<Overlong>,
    /// The current line is skipped or a comment.
    discard: Option<Discard>,
    /// The scanner has seen the current record's bytes as they came (a record past the
    /// maximum, whose bytes are not kept).
    fed: bool,
    /// A record spans lines and is not complete yet.
    record_open: bool,
    /// The first line of the record in progress.
    record_line: LineNo,
    /// `skip_lines` still to skip.
    skip_remaining: u64,
    /// The delimiter: the profile's, or detected on the first record.
    delimiter: Option<Delimiter>,
    /// Quotes and escapes, once the delimiter is known (`None` without either).
    syntax: Option<syntax::Syntax>,
    scanner: syntax::Scanner,
    line_no: LineNo,
    header: Option<Header>,
    rows: Option<rows::RowBuilder>,
    ready: VecDeque<(RecordBatch, BatchCut)>,
    last_cut: Option<BatchCut>,
    stats: ParseStats,
    phase: Phase,
    /// A resume point not reached yet ([`Self::resume_at`]).
    seek: Option<Seek>,
}

/// A resume point the decoder skips the text up to.
#[derive(Debug, Clone, Copy)]
struct Seek {
    point: ResumePoint,
    /// The last byte skipped (a line break at the point, or the point is wrong).
    last: u8,
}

impl Decoder {
    /// A decoder for sources described by `profile`.
    pub fn new(profile: &Profile, options: ParseOptions) -> Self {
        let max_line_bytes = options.max_line_bytes.max(1);
        let options = ParseOptions {
            batch_rows: options.batch_rows.max(1),
            batch_bytes: options.batch_bytes.max(1),
            max_line_bytes,
            max_raw_bytes: options.max_raw_bytes.min(max_line_bytes),
            max_header_columns: options.max_header_columns.max(1),
            ..options
        };
        let format = &profile.format;
        let delimiter = match &format.delimiter {
            DelimiterSetting::Auto => None,
            DelimiterSetting::Fixed(bytes) => Delimiter::from_bytes(bytes),
        };
        Self {
            profile: profile.clone(),
            options,
            compression: Compression::Undecided(Vec::with_capacity(2)),
            text: Vec::new(),
            text_pos: 0,
            pending: Vec::new(),
            line_start: 0,
            line_bytes: 0,
            overlong: None,
            discard: None,
            fed: false,
            record_open: false,
            record_line: 0,
            skip_remaining: format.skip_lines,
            delimiter,
            syntax: None,
            scanner: syntax::Scanner::new(),
            line_no: 0,
            header: None,
            rows: None,
            ready: VecDeque::new(),
            last_cut: None,
            stats: ParseStats::default(),
            phase: Phase::Decoding,
            seek: None,
        }
    }

    /// Resumes decoding at `point`, which [`Self::resume_point`] gave on an earlier decode of
    /// the same input with the same profile and options: the header is read, the text up to
    /// the point skipped, and the first batch returned is the one after the point (see the
    /// module docs). A point that is not where a record ends is
    /// [`ParseError::ResumePoint`].
    #[must_use]
    pub fn resume_at(mut self, point: ResumePoint) -> Self {
        self.seek = Some(Seek { point, last: b'\n' });
        self
    }

    /// Moves a resume ([`Self::resume_at`]) on to the text offset `offset` without being fed
    /// the text before it: the caller then feeds the input from that byte on (a plain source
    /// read again from there). Only for plain input, once the header (or a headerless
    /// source's first record) has been read and no line is carried, and only within the text
    /// the resume still skips: `offset` not before the text consumed, and before the point
    /// (the byte before the point is still fed and checked to be a line break). Returns
    /// whether it moved; when it did not, feed the input on as before.
    pub fn skip_to(&mut self, offset: u64) -> bool {
        let Some(seek) = self.seek else {
            return false;
        };
        let movable = self.phase == Phase::Decoding
            && !self.stats.gzip
            && matches!(self.compression, Compression::Plain)
            && self.text_pos >= self.text.len()
            && self.rows.is_some()
            && !self.carrying()
            && self.ready.is_empty()
            && self.overlong.is_none()
            && self.discard.is_none()
            && (self.stats.text_bytes..seek.point.text_offset).contains(&offset);
        if movable {
            self.stats.text_bytes = offset;
            self.stats.bytes_in = offset;
        }
        movable
    }

    /// Whether the input is gzip (decided from its first two bytes).
    pub fn is_gzip(&self) -> bool {
        self.stats.gzip
    }

    /// Where decoding can resume after the batch just taken with [`Self::next_batch`], when
    /// it was cut by rows or bytes (and so the next record starts afresh); `None` otherwise
    /// (the batch ended the input, or a seek is still under way).
    pub fn resume_point(&self) -> Option<ResumePoint> {
        let clean = self.phase == Phase::Decoding
            && self.seek.is_none()
            && self.ready.is_empty()
            && !self.carrying()
            && self.overlong.is_none()
            && self.discard.is_none()
            && self.rows.as_ref().is_some_and(|r| r.buffered_rows() == 0);
        clean.then_some(ResumePoint {
            text_offset: self.stats.text_bytes,
            lines: self.line_no,
            rows: self.stats.rows,
        })
    }

    /// The header, once its line has been read.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// The schema of the output batches, once the header has been read.
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.rows.as_ref().map(rows::RowBuilder::schema)
    }

    /// Counters so far.
    pub fn stats(&self) -> ParseStats {
        let mut stats = self.stats.clone();
        if let Some(rows) = &self.rows {
            stats.ragged_rows = rows.ragged_rows;
            stats.nul_rows = rows.nul_rows;
            stats.long_lines = rows.long_lines;
            stats.unterminated_quotes = rows.unterminated_quotes;
            stats.latin1_fields = rows.latin1_fields;
            stats.latin1_rows = rows.latin1_rows;
            stats.byte_cut_batches = rows.byte_cut_batches;
        }
        stats
    }

    /// How the batch last returned by [`Self::next_batch`] or [`Self::flush`] was cut.
    pub fn last_cut(&self) -> Option<BatchCut> {
        self.last_cut
    }

    /// Takes the next finished batch, if any.
    pub fn next_batch(&mut self) -> Option<RecordBatch> {
        let (batch, cut) = self.ready.pop_front()?;
        self.last_cut = Some(cut);
        Some(batch)
    }

    /// Feeds input bytes and returns how many were consumed. Consumption stops early once a
    /// batch is ready (it may then be 0): take it with [`Self::next_batch`] and feed the
    /// rest. Never 0 for a non-empty input unless a batch is ready.
    pub fn decode(&mut self, input: &[u8]) -> Result<usize, ParseError> {
        if self.phase != Phase::Decoding || input.is_empty() {
            return Ok(0);
        }
        let consumed = self.decode_input(input);
        let n = *consumed.as_ref().unwrap_or(&0);
        self.stats.bytes_in += n as u64;
        consumed
    }

    fn decode_input(&mut self, input: &[u8]) -> Result<usize, ParseError> {
        if !self.drain_text()? {
            return Ok(0);
        }
        let mut consumed = 0;
        if let Compression::Undecided(head) = &mut self.compression {
            let take = (2 - head.len()).min(input.len());
            head.extend_from_slice(&input[..take]);
            consumed = take;
            if head.len() < 2 {
                return Ok(consumed);
            }
            let head = std::mem::take(head);
            self.decide(head)?;
            if !self.drain_text()? {
                return Ok(consumed);
            }
        }
        let rest = &input[consumed..];
        let n = if let Compression::Gzip(_) = self.compression {
            self.inflate(rest)?
        } else {
            self.consume_text(rest)?
        };
        Ok(consumed + n)
    }

    /// Chooses plain or gzip from the first two bytes, which become text or compressed input.
    fn decide(&mut self, head: Vec<u8>) -> Result<(), ParseError> {
        if head.starts_with(&GZIP_MAGIC) {
            self.stats.gzip = true;
            let mut gz = Box::new(MultiGzDecoder::new(Vec::new()));
            gz.write_all(&head).map_err(|_| ParseError::Gzip {
                problem: "is corrupt",
                offset: 0,
            })?;
            self.compression = Compression::Gzip(gz);
        } else {
            self.compression = Compression::Plain;
            self.text = head;
            self.text_pos = 0;
        }
        Ok(())
    }

    /// Inflates compressed input a step at a time and consumes each step's text; stops after
    /// a step whose text readied a batch (the rest of that text stays for the next call).
    fn inflate(&mut self, input: &[u8]) -> Result<usize, ParseError> {
        let mut consumed = 0;
        while consumed < input.len() && self.ready.is_empty() {
            let step = &input[consumed..input.len().min(consumed + GZIP_STEP_BYTES)];
            let offset = self.stats.bytes_in + consumed as u64;
            let Compression::Gzip(gz) = &mut self.compression else {
                break;
            };
            gz.write_all(step)
                .and_then(|()| gz.flush())
                .map_err(|_| ParseError::Gzip {
                    problem: "is corrupt",
                    offset,
                })?;
            // `text` is drained (hence empty): its buffer goes back to the inflater.
            std::mem::swap(&mut self.text, gz.get_mut());
            self.text_pos = 0;
            consumed += step.len();
            if !self.drain_text()? {
                break;
            }
        }
        Ok(consumed)
    }

    /// Consumes buffered text until a batch is ready; whether all of it was consumed.
    fn drain_text(&mut self) -> Result<bool, ParseError> {
        if self.text_pos < self.text.len() {
            let text = std::mem::take(&mut self.text);
            let n = self.consume_text(&text[self.text_pos..]);
            self.text = text;
            self.text_pos += n?;
        }
        if self.text_pos < self.text.len() {
            return Ok(false);
        }
        self.text.clear();
        self.text_pos = 0;
        Ok(true)
    }

    /// Ends the input and returns the next batch: call it until it returns `None`. The first
    /// call handles a last line without a line break and checks that a gzip stream ended
    /// properly; the last batch, cut by the end of input, is [`BatchCut::End`].
    pub fn flush(&mut self) -> Result<Option<RecordBatch>, ParseError> {
        if self.ready.is_empty() && self.phase != Phase::Done {
            if self.phase == Phase::Decoding {
                self.phase = Phase::Flushing;
                self.end_input()?;
            }
            self.flush_text()?;
        }
        Ok(self.next_batch())
    }

    /// Takes what the inflater still holds (or the undecided first byte) as text.
    fn end_input(&mut self) -> Result<(), ParseError> {
        match std::mem::replace(&mut self.compression, Compression::Plain) {
            Compression::Undecided(head) => self.text.extend_from_slice(&head),
            Compression::Plain => {}
            Compression::Gzip(mut gz) => {
                let offset = self.stats.bytes_in;
                gz.try_finish().map_err(|_| ParseError::Gzip {
                    problem: "ends early (truncated)",
                    offset,
                })?;
                self.text.extend_from_slice(gz.get_ref());
            }
        }
        Ok(())
    }
}

/// Reads `reader` to the end through `decoder`, handing each batch to `sink` as soon as it
/// is ready; the decoder is flushed at the end.
pub fn decode_reader<R, E>(
    mut reader: R,
    decoder: &mut Decoder,
    mut sink: impl FnMut(RecordBatch) -> Result<(), E>,
) -> Result<(), E>
where
    R: Read,
    E: From<ParseError>,
{
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ParseError::Io {
                    offset: decoder.stats.bytes_in,
                    source,
                }
                .into());
            }
        };
        let mut pos = 0;
        while pos < n {
            pos += decoder.decode(&buffer[pos..n])?;
            while let Some(batch) = decoder.next_batch() {
                sink(batch)?;
            }
        }
    }
    while let Some(batch) = decoder.flush()? {
        sink(batch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
