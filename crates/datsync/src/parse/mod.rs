//! The push decoder: raw source bytes in, Arrow batches of text columns out.
//!
//! Feed any slices with [`Decoder::decode`], take finished batches with
//! [`Decoder::next_batch`], and call [`Decoder::finish`] at end of input. The output does not
//! depend on how the input was sliced. Every batch has the columns `_line` (source line
//! number), one nullable `Utf8` column per header column (named by the profile), `_error`
//! and `_raw` (set only for a row the decoder could not cut into fields: a ragged row keeps
//! its raw text and a reason, never padded or truncated). Batches hold at most
//! [`ParseOptions::batch_rows`] rows; memory depends on that, not on the file size.
//!
//! Handled here (`ztdwr.md` §1–§2): gzip by magic bytes (multi-member too), a BOM, CRLF,
//! UTF-8 with a per-field Latin-1 fallback, delimiter detection, `^`/`~` marker stripping,
//! whitespace trimming, null tokens, no quote semantics, header canonicalization and aliases.

mod header;
mod rows;

use std::collections::VecDeque;
use std::io::{Read, Write};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use flate2::write::MultiGzDecoder;
use serde::Serialize;

pub use header::{Delimiter, Header, HeaderColumn};
pub(crate) use rows::latin1_into;

use crate::model::LineNo;
use crate::profile::Profile;

/// Rows per batch (and so per chunk) unless told otherwise; the seed design's 10,000.
pub const DEFAULT_BATCH_ROWS: usize = 10_000;
/// The longest line accepted; a longer one is a fatal error, which keeps memory bounded.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 << 20;
/// Compressed bytes inflated per step, so that one step's output stays small.
const GZIP_STEP_BYTES: usize = 16 << 10;
/// Read size used by [`decode_reader`].
pub const READ_BUFFER_BYTES: usize = 256 << 10;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Rows per output batch (the chunk size).
    pub batch_rows: usize,
    /// The longest line accepted.
    pub max_line_bytes: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            batch_rows: DEFAULT_BATCH_ROWS,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// A fatal decoding error. Row-level problems (ragged rows) are not errors: they are rows
/// with `_error` set.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// No bytes, or only blank lines.
    #[error("empty file: no header line")]
    Empty,
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
    /// A line longer than [`ParseOptions::max_line_bytes`].
    #[error(
        "line {line} is longer than {max} bytes: not a line-oriented text file, or a missing line break"
    )]
    LineTooLong {
        /// The line number.
        line: LineNo,
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
    /// Reading the input failed (only from [`decode_reader`]).
    #[error("read error at byte offset {offset}: {source}")]
    Io {
        /// Offset in the input.
        offset: u64,
        /// The I/O error.
        source: std::io::Error,
    },
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
    /// Data rows emitted (ragged rows included).
    pub rows: u64,
    /// Rows whose field count differs from the header's.
    pub ragged_rows: u64,
    /// Rows holding a NUL byte.
    pub nul_rows: u64,
    /// Fields decoded as Latin-1 because they were not valid UTF-8.
    pub latin1_fields: u64,
    /// Rows with at least one Latin-1 field.
    pub latin1_rows: u64,
}

enum Compression {
    /// Fewer than two bytes seen: not decided yet.
    Undecided(Vec<u8>),
    Plain,
    Gzip(Box<MultiGzDecoder<Vec<u8>>>),
}

/// The push decoder. See the module docs.
pub struct Decoder {
    profile: Profile,
    options: ParseOptions,
    compression: Compression,
    /// A partial line carried between inputs.
    pending: Vec<u8>,
    line_no: LineNo,
    header: Option<Header>,
    rows: Option<rows::RowBuilder>,
    ready: VecDeque<RecordBatch>,
    stats: ParseStats,
    finished: bool,
}

impl Decoder {
    /// A decoder for sources described by `profile`.
    pub fn new(profile: &Profile, options: ParseOptions) -> Self {
        let options = ParseOptions {
            batch_rows: options.batch_rows.max(1),
            ..options
        };
        Self {
            profile: profile.clone(),
            options,
            compression: Compression::Undecided(Vec::with_capacity(2)),
            pending: Vec::new(),
            line_no: 0,
            header: None,
            rows: None,
            ready: VecDeque::new(),
            stats: ParseStats::default(),
            finished: false,
        }
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
            stats.latin1_fields = rows.latin1_fields;
            stats.latin1_rows = rows.latin1_rows;
        }
        stats
    }

    /// Takes the next finished batch, if any.
    pub fn next_batch(&mut self) -> Option<RecordBatch> {
        self.ready.pop_front()
    }

    /// Feeds input bytes and returns how many were consumed. Consumption stops early once a
    /// batch is ready: take it with [`Self::next_batch`] and feed the rest.
    pub fn decode(&mut self, input: &[u8]) -> Result<usize, ParseError> {
        if self.finished || input.is_empty() {
            return Ok(0);
        }
        let mut consumed = 0;
        if let Compression::Undecided(head) = &mut self.compression {
            let take = (2 - head.len()).min(input.len());
            head.extend_from_slice(&input[..take]);
            consumed = take;
            if head.len() < 2 {
                self.stats.bytes_in += take as u64;
                return Ok(consumed);
            }
            let head = std::mem::take(head);
            self.stats.bytes_in += take as u64;
            self.decide(&head)?;
        }
        let rest = &input[consumed..];
        let n = if let Compression::Gzip(_) = self.compression {
            self.inflate(rest)?
        } else {
            let n = self.consume_text(rest, true)?;
            self.stats.bytes_in += n as u64;
            n
        };
        Ok(consumed + n)
    }

    /// Chooses plain or gzip from the first two bytes, then feeds those bytes.
    fn decide(&mut self, head: &[u8]) -> Result<(), ParseError> {
        if head.starts_with(&GZIP_MAGIC) {
            self.stats.gzip = true;
            self.compression = Compression::Gzip(Box::new(MultiGzDecoder::new(Vec::new())));
            self.stats.bytes_in -= head.len() as u64;
            // Two bytes of gzip header cannot complete a batch, so `inflate` takes both.
            self.inflate(head)?;
        } else {
            self.compression = Compression::Plain;
            self.consume_text(head, false)?;
        }
        Ok(())
    }

    /// Inflates compressed input a step at a time; stops after a step that readied a batch.
    fn inflate(&mut self, input: &[u8]) -> Result<usize, ParseError> {
        let mut consumed = 0;
        while consumed < input.len() && self.ready.is_empty() {
            let step = &input[consumed..input.len().min(consumed + GZIP_STEP_BYTES)];
            let offset = self.stats.bytes_in;
            let Compression::Gzip(gz) = &mut self.compression else {
                break;
            };
            gz.write_all(step)
                .and_then(|()| gz.flush())
                .map_err(|_| ParseError::Gzip {
                    problem: "is corrupt",
                    offset,
                })?;
            let text = std::mem::take(gz.get_mut());
            self.stats.bytes_in += step.len() as u64;
            consumed += step.len();
            self.consume_text(&text, false)?;
            if let Compression::Gzip(gz) = &mut self.compression {
                let mut buffer = text;
                buffer.clear();
                *gz.get_mut() = buffer;
            }
        }
        Ok(consumed)
    }

    /// Splits text into lines and handles each. With `stop_when_ready`, returns early (at a
    /// line boundary) once a batch is ready.
    fn consume_text(&mut self, data: &[u8], stop_when_ready: bool) -> Result<usize, ParseError> {
        self.stats.text_bytes += data.len() as u64;
        let mut pos = 0;
        // One search of the whole input spares every line its own search for a NUL byte.
        let may_hold_nul = memchr::memchr(0, data).is_some();
        if !self.pending.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', data) else {
                self.extend_pending(data)?;
                return Ok(data.len());
            };
            self.extend_pending(&data[..nl])?;
            let line = std::mem::take(&mut self.pending);
            self.line(&line, true, true)?;
            self.pending = line;
            self.pending.clear();
            pos = nl + 1;
        }
        while pos < data.len() {
            if stop_when_ready && !self.ready.is_empty() {
                self.stats.text_bytes -= (data.len() - pos) as u64;
                return Ok(pos);
            }
            let Some(nl) = memchr::memchr(b'\n', &data[pos..]) else {
                self.extend_pending(&data[pos..])?;
                return Ok(data.len());
            };
            self.line(&data[pos..pos + nl], true, may_hold_nul)?;
            pos += nl + 1;
        }
        Ok(pos)
    }

    fn extend_pending(&mut self, data: &[u8]) -> Result<(), ParseError> {
        if self.pending.len() + data.len() > self.options.max_line_bytes {
            return Err(ParseError::LineTooLong {
                line: self.line_no + 1,
                max: self.options.max_line_bytes,
            });
        }
        self.pending.extend_from_slice(data);
        Ok(())
    }

    /// Handles one line (without its `\n`).
    fn line(
        &mut self,
        mut line: &[u8],
        terminated: bool,
        may_hold_nul: bool,
    ) -> Result<(), ParseError> {
        self.line_no += 1;
        self.stats.lines += 1;
        if line.len() > self.options.max_line_bytes {
            return Err(ParseError::LineTooLong {
                line: self.line_no,
                max: self.options.max_line_bytes,
            });
        }
        if let Some(stripped) = line.strip_suffix(b"\r") {
            if terminated {
                self.stats.crlf_lines += 1;
            }
            line = stripped;
        }
        if self.line_no == 1
            && let Some(stripped) = line.strip_prefix(UTF8_BOM)
        {
            self.stats.bom = true;
            line = stripped;
        }
        if line.trim_ascii().is_empty() {
            self.stats.blank_lines += 1;
            return Ok(());
        }
        match &mut self.rows {
            Some(rows) => {
                if let Some(batch) = rows.push_line(line, self.line_no, may_hold_nul)? {
                    self.ready.push_back(batch);
                }
                self.stats.rows += 1;
                Ok(())
            }
            None => self.header_line(line),
        }
    }

    fn header_line(&mut self, line: &[u8]) -> Result<(), ParseError> {
        if memchr::memchr(0, line).is_some() {
            return Err(ParseError::Binary { line: self.line_no });
        }
        let text = if let Ok(s) = std::str::from_utf8(line) {
            s.to_owned()
        } else {
            let mut s = String::new();
            latin1_into(line, &mut s);
            s
        };
        let text = text.trim_start_matches('\u{feff}');
        let header = Header::parse(text, self.line_no, &self.profile);
        if !header.columns.iter().any(|c| c.known) {
            return Err(ParseError::NoKnownColumn {
                line: self.line_no,
                profile: self.profile.name.clone(),
                start: text.chars().take(80).collect(),
            });
        }
        self.rows = Some(rows::RowBuilder::new(
            &header,
            &self.profile.null_tokens,
            self.options.batch_rows,
        ));
        self.header = Some(header);
        Ok(())
    }

    /// Ends the input: handles a last line without a line break, checks that a gzip stream
    /// ended properly and readies the last, partial batch.
    pub fn finish(&mut self) -> Result<(), ParseError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        match std::mem::replace(&mut self.compression, Compression::Plain) {
            Compression::Undecided(head) => {
                self.consume_text(&head, false)?;
            }
            Compression::Plain => {}
            Compression::Gzip(mut gz) => {
                let offset = self.stats.bytes_in;
                gz.try_finish().map_err(|_| ParseError::Gzip {
                    problem: "ends early (truncated)",
                    offset,
                })?;
                let text = std::mem::take(gz.get_mut());
                self.consume_text(&text, false)?;
            }
        }
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.line(&line, false, true)?;
        }
        let Some(header) = &self.header else {
            return Err(ParseError::Empty);
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
            self.ready.push_back(batch);
        }
        Ok(())
    }
}

/// Reads `reader` to the end through `decoder`, handing each batch to `sink` as soon as it
/// is ready; the decoder is finished at the end.
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
    decoder.finish()?;
    while let Some(batch) = decoder.next_batch() {
        sink(batch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
