//! What a file holds, as the decoder sees it: compression, encoding fallbacks, delimiter,
//! header mapping, row counts and the first rows.

use std::io::Read;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, RecordBatch};
use serde::Serialize;

use crate::model::{ERROR_COLUMN, LINE_COLUMN, LineNo, RAW_COLUMN};
use crate::parse::{Decoder, HeaderColumn, ParseError, ParseOptions, decode_reader};
use crate::profile::Profile;

/// Rows shown by default.
pub const DEFAULT_INSPECT_ROWS: usize = 5;

/// The report of [`inspect`]; `--json` prints it as it is.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// The input was gzip.
    pub gzip: bool,
    /// The text started with a BOM.
    pub bom: bool,
    /// Lines ending in CRLF.
    pub crlf_lines: u64,
    /// The delimiter name (`~|^`, `~\|\^`, `~^`, `tab`, `|`, `,`, `;`, or the profile's).
    pub delimiter: String,
    /// Whether the file has a header line (the profile's `[format] header`).
    pub header_line: bool,
    /// The quote character, if the profile sets one.
    pub quote: Option<String>,
    /// Escapes (`none`, `backslash`).
    pub escape: String,
    /// The text encoding the profile reads.
    pub encoding: String,
    /// Canonical column names in file order.
    pub columns: Vec<String>,
    /// Each header column: as written, canonical, output name, known or not.
    pub header: Vec<HeaderColumn>,
    /// Data rows read (ragged rows included).
    pub rows: u64,
    /// Rows with a wrong field count.
    pub ragged_rows: u64,
    /// Rows holding a NUL byte.
    pub nul_rows: u64,
    /// Lines longer than the maximum line length (each one rejected row).
    pub long_lines: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Lines skipped before the header (`skip_lines`).
    pub skipped_lines: u64,
    /// Comment lines skipped.
    pub comment_lines: u64,
    /// Records over more than one line (quoted line breaks).
    pub multiline_records: u64,
    /// Records whose quote is still open at the end of the file.
    pub unterminated_quotes: u64,
    /// Fields decoded as Latin-1 because they were not valid UTF-8.
    pub latin1_fields: u64,
    /// Rows with at least one Latin-1 field.
    pub latin1_rows: u64,
    /// Required profile columns missing from the header.
    pub missing_required: Vec<String>,
    /// Optional profile columns missing from the header (they load as NULL).
    pub missing_optional: Vec<String>,
    /// Header columns the profile does not know.
    pub unknown_columns: Vec<String>,
    /// Bytes read (compressed if gzip) and bytes of text.
    pub bytes_in: u64,
    /// Bytes of text after decompression.
    pub text_bytes: u64,
    /// The first rows.
    pub first_rows: Vec<SampleRow>,
    /// The first ragged rows.
    pub first_ragged: Vec<SampleRow>,
}

/// One row shown in a report.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRow {
    /// Source line number.
    pub line: LineNo,
    /// Values in column order (`None` for null), or the raw text of an error row.
    pub values: Vec<Option<String>>,
    /// The row error, if any.
    pub error: Option<String>,
}

/// Reads `reader` to the end and reports what it holds. Unknown header columns are kept, so
/// that the rows shown have a value for every header column.
pub fn inspect<R: Read>(
    reader: R,
    profile: &Profile,
    options: ParseOptions,
    sample_rows: usize,
) -> Result<InspectReport, ParseError> {
    let options = ParseOptions {
        keep_unknown_columns: true,
        ..options
    };
    let mut decoder = Decoder::new(profile, options);
    let mut first_rows = Vec::new();
    let mut first_ragged = Vec::new();
    decode_reader(reader, &mut decoder, |batch| {
        collect(
            profile,
            &batch,
            sample_rows,
            &mut first_rows,
            &mut first_ragged,
        );
        Ok::<(), ParseError>(())
    })?;
    let stats = decoder.stats();
    let Some(header) = decoder.header() else {
        return Err(ParseError::Empty);
    };
    Ok(InspectReport {
        gzip: stats.gzip,
        bom: stats.bom,
        crlf_lines: stats.crlf_lines,
        delimiter: header.delimiter.name(),
        header_line: profile.format.header,
        quote: profile.format.quote.map(|q| char::from(q).to_string()),
        escape: match profile.format.escape {
            crate::profile::Escape::None => "none",
            crate::profile::Escape::Backslash => "backslash",
        }
        .to_owned(),
        encoding: profile.format.encoding.name().to_owned(),
        columns: header.columns.iter().map(|c| c.name.clone()).collect(),
        header: header.columns.clone(),
        rows: stats.rows,
        ragged_rows: stats.ragged_rows,
        nul_rows: stats.nul_rows,
        long_lines: stats.long_lines,
        blank_lines: stats.blank_lines,
        skipped_lines: stats.skipped_lines,
        comment_lines: stats.comment_lines,
        multiline_records: stats.multiline_records,
        unterminated_quotes: stats.unterminated_quotes,
        latin1_fields: stats.latin1_fields,
        latin1_rows: stats.latin1_rows,
        missing_required: header.missing_required(profile),
        missing_optional: header.missing_optional(profile),
        unknown_columns: header.unknown_columns(),
        bytes_in: stats.bytes_in,
        text_bytes: stats.text_bytes,
        first_rows,
        first_ragged,
    })
}

/// Keeps the first rows and the first error rows of `batch`, personal values masked (the
/// profile's `pii` columns; an error row's raw line whole when the profile has one).
fn collect(
    profile: &Profile,
    batch: &RecordBatch,
    limit: usize,
    rows: &mut Vec<SampleRow>,
    ragged: &mut Vec<SampleRow>,
) {
    if rows.len() >= limit && ragged.len() >= limit {
        return;
    }
    let schema = batch.schema();
    let (Some(lines), Some(errors), Some(raw_lines)) = (
        batch
            .column_by_name(LINE_COLUMN)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>()),
        batch
            .column_by_name(ERROR_COLUMN)
            .and_then(|c| c.as_string_opt::<i32>()),
        batch
            .column_by_name(RAW_COLUMN)
            .and_then(|c| c.as_string_opt::<i32>()),
    ) else {
        return;
    };
    for r in 0..batch.num_rows() {
        let line = lines.value(r);
        if errors.is_valid(r) {
            if ragged.len() < limit {
                ragged.push(SampleRow {
                    line,
                    values: vec![Some(profile.masked_raw(raw_lines.value(r)).into_owned())],
                    error: Some(errors.value(r).to_owned()),
                });
            }
        } else if rows.len() < limit {
            let values = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    ![LINE_COLUMN, ERROR_COLUMN, RAW_COLUMN].contains(&f.name().as_str())
                })
                .map(|(i, f)| {
                    let col = batch.column(i).as_string_opt::<i32>()?;
                    let value = col.value(r);
                    col.is_valid(r)
                        .then(|| profile.masked_value(f.name(), value).into_owned())
                })
                .collect();
            rows.push(SampleRow {
                line,
                values,
                error: None,
            });
        }
    }
}
