//! Profile rules over a text batch: accepted rows, rejects with reasons, superseded
//! duplicates (`ztdwr.md` §4).
//!
//! [`validate`] runs in this order:
//!
//! 1. a global check of the batch's columns ([`check_columns`]): a missing required source
//!    column is fatal ([`ValidateError::MissingColumns`], `BAD_INPUT` for the sync);
//! 2. row rules: a row the decoder flagged (`_error`: ragged, NUL byte) is rejected with
//!    the decoder's reason; then `not_empty`, `valid` and `range` of every profile column;
//!    every broken rule is a [`RowError`] (line, column, value, reason);
//! 3. duplicate keys among the rows that passed: the row with the newest version wins (when
//!    the profile has `version` columns: see `profile/version.rs`; a row without one is the
//!    oldest), then the last occurrence in file order (highest `_line`); the others are
//!    counted as superseded, not rejected. A rejected row never supersedes an accepted one.
//!
//! Every row read ends in exactly one of: accepted, superseded, rejected.
//! Warnings (values loaded as NULL or midnight) are found where values are converted, in
//! [`crate::transform`].

mod rules;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use arrow_select::filter::filter_record_batch;

use crate::model::{ERROR_COLUMN, LINE_COLUMN, RAW_COLUMN, RowError};
use crate::profile::Profile;

/// Rejected rows / rows read above which a sync fails (`ztdwr.md` §4); the configuration
/// layer may override it (`VALIDATION_ERROR_THRESHOLD`).
pub const DEFAULT_ERROR_THRESHOLD: f64 = 0.10;
/// How many row errors are kept: in each chunk's ledger row, in `sync_metadata.validation_errors`
/// and in the alert's report (the one owner of that sample size).
pub const VALIDATION_ERRORS_SAMPLE: usize = 100;
/// The column of the rejects batch holding each row's reasons, joined by `; ` (a reason about
/// another column than the first reason's starts with that column's name).
pub const REASONS_COLUMN: &str = "_reasons";
/// The column of the rejects batch naming the source column of each row's first broken rule
/// (null for a whole-row reason such as a ragged row).
pub const REJECT_COLUMN_COLUMN: &str = "_column";
/// A fatal problem with a batch as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// Required source columns are absent (the sync ends as `BAD_INPUT`).
    #[error(
        "missing required column(s) {}: the file's header lacks them; check that the file \
         matches profile `{profile}` (or add an alias)",
        .columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
    )]
    MissingColumns {
        /// The profile's name.
        profile: String,
        /// Canonical source names of the missing columns.
        columns: Vec<String>,
    },
    /// A column has the wrong Arrow type (not a text batch from the decoder).
    #[error("column `{column}` is {found}, expected {expected}: not a text batch from the decoder")]
    ColumnType {
        /// The column.
        column: String,
        /// Its type.
        found: DataType,
        /// The type expected.
        expected: DataType,
    },
    /// Arrow refused a batch (an internal invariant; reported rather than panicking).
    #[error("building a batch failed: {0}")]
    Arrow(#[from] ArrowError),
}

/// The outcome of [`validate`] for one batch.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Rows in the input batch.
    pub rows_read: usize,
    /// Rows to load, in file order: the input's schema, duplicates reduced to the last.
    pub accepted: RecordBatch,
    /// Rows that passed the rules but whose key occurs again later in the batch.
    pub superseded: usize,
    /// Those rows, in file order, with the input's schema (their values are checked like the
    /// accepted rows', so that the value warnings of a file do not depend on its chunking).
    pub superseded_rows: RecordBatch,
    /// Rejected rows in full: `_line`, the text columns, `_raw`, and [`REASONS_COLUMN`].
    pub rejects: RecordBatch,
    /// Every broken rule, in row order (a row may break several).
    pub errors: Vec<RowError>,
}

impl Validated {
    /// Rows rejected.
    pub fn rejected(&self) -> usize {
        self.rejects.num_rows()
    }

    /// Rows to load.
    pub fn loaded(&self) -> usize {
        self.accepted.num_rows()
    }
}

/// Rejected rows / rows read (0 when nothing was read).
pub fn error_rate(rejected: u64, rows_read: u64) -> f64 {
    if rows_read == 0 {
        0.0
    } else {
        rejected as f64 / rows_read as f64
    }
}

/// Whether the error rate is above `threshold` (equal passes).
pub fn exceeds_threshold(rejected: u64, rows_read: u64, threshold: f64) -> bool {
    error_rate(rejected, rows_read) > threshold
}

/// The profile's required source columns that are not among `names` (header or schema
/// column names), in profile order.
pub fn missing_required<'a>(
    profile: &Profile,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let names: Vec<&str> = names.into_iter().collect();
    profile
        .required_sources()
        .filter(|s| !names.contains(s))
        .map(str::to_owned)
        .collect()
}

/// Checks a text batch's schema: `_line` is `UInt64`, every profile source present is
/// `Utf8`, and no required source is missing.
pub fn check_columns(profile: &Profile, schema: &Schema) -> Result<(), ValidateError> {
    let type_error =
        |column: &str, found: &DataType, expected: DataType| ValidateError::ColumnType {
            column: column.to_owned(),
            found: found.clone(),
            expected,
        };
    match schema.field_with_name(LINE_COLUMN) {
        Ok(f) if f.data_type() == &DataType::UInt64 => {}
        Ok(f) => return Err(type_error(LINE_COLUMN, f.data_type(), DataType::UInt64)),
        Err(_) => {
            return Err(ValidateError::MissingColumns {
                profile: profile.name.clone(),
                columns: vec![LINE_COLUMN.to_owned()],
            });
        }
    }
    let missing = missing_required(profile, schema.fields().iter().map(|f| f.name().as_str()));
    if !missing.is_empty() {
        return Err(ValidateError::MissingColumns {
            profile: profile.name.clone(),
            columns: missing,
        });
    }
    let text_columns = profile
        .columns
        .iter()
        .flat_map(crate::profile::Column::sources)
        .chain([ERROR_COLUMN, RAW_COLUMN]);
    for name in text_columns {
        if let Ok(f) = schema.field_with_name(name)
            && f.data_type() != &DataType::Utf8
        {
            return Err(type_error(name, f.data_type(), DataType::Utf8));
        }
    }
    Ok(())
}

/// A `Utf8` column of `batch` by name (its type was checked by [`check_columns`]).
fn text_column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|a| a.as_any().downcast_ref::<StringArray>())
}

/// Applies the profile's rules to a text batch. See the module docs.
pub fn validate(profile: &Profile, batch: &RecordBatch) -> Result<Validated, ValidateError> {
    check_columns(profile, batch.schema_ref())?;
    let lines = batch
        .column_by_name(LINE_COLUMN)
        .and_then(|a| a.as_any().downcast_ref::<UInt64Array>())
        .ok_or_else(|| ValidateError::MissingColumns {
            profile: profile.name.clone(),
            columns: vec![LINE_COLUMN.to_owned()],
        })?;
    let rows = batch.num_rows();
    let checks = rules::RowChecks::new(profile, batch);
    let mut errors = Vec::new();
    let mut reasons: Vec<Option<Rejection>> = vec![None; rows];
    for (row, reason) in reasons.iter_mut().enumerate() {
        let first = errors.len();
        checks.check(row, lines.value(row), &mut errors);
        if errors.len() > first {
            *reason = Some(Rejection::of(&errors[first..]));
        }
    }
    // Every source column of every key part (a date + time pair has two); none in append
    // mode, where no row supersedes another.
    let keys: Option<Vec<&StringArray>> = profile
        .key_columns()
        .flat_map(crate::profile::Column::sources)
        .map(|source| text_column(batch, source))
        .collect();
    // The version's warnings are the transform's to report (of the rows it is given).
    let versions = crate::transform::row_versions(profile, batch, lines, &mut Vec::new())
        .ok()
        .flatten();
    let (keep, superseded) = dedup(&reasons, keys.as_deref(), lines, versions.as_deref());
    let lost: Vec<bool> = keep
        .iter()
        .zip(&reasons)
        .map(|(keep, reason)| !keep && reason.is_none())
        .collect();
    let accepted = filter_record_batch(batch, &BooleanArray::from(keep))?;
    let superseded_rows = filter_record_batch(batch, &BooleanArray::from(lost))?;
    let rejects = rejects(batch, &reasons)?;
    Ok(Validated {
        rows_read: rows,
        accepted,
        superseded,
        superseded_rows,
        rejects,
        errors,
    })
}

/// Why a row is rejected, as its rejects record says it.
#[derive(Debug, Clone)]
struct Rejection {
    /// The source column of the first broken rule (`None`: the whole row).
    column: Option<String>,
    /// Every broken rule, joined (see [`REASONS_COLUMN`]).
    reasons: String,
}

impl Rejection {
    /// The rejection of a row that broke `errors` (at least one).
    fn of(errors: &[RowError]) -> Self {
        let column = errors.first().and_then(|e| e.column.clone());
        let reasons: Vec<String> = errors
            .iter()
            .map(|e| match &e.column {
                Some(c) if Some(c) != column.as_ref() => format!("{c}: {}", e.reason),
                _ => e.reason.clone(),
            })
            .collect();
        Self {
            column,
            reasons: reasons.join("; "),
        }
    }
}

/// Which rows to load: the accepted ones (`reasons[row]` is `None`) whose key (every part's
/// trimmed text) does not occur again with a newer `(version, line)`. Returns the mask and the
/// number of superseded rows. Without key columns (append mode, or a key source the batch
/// lacks) every accepted row is kept.
fn dedup<'a>(
    reasons: &[Option<Rejection>],
    keys: Option<&[&'a StringArray]>,
    lines: &UInt64Array,
    versions: Option<&[Option<String>]>,
) -> (Vec<bool>, usize) {
    // `None` sorts before any version, as NULL does in the upsert's guard.
    let order = |row: usize| {
        (
            versions.and_then(|v| v.get(row)).and_then(Option::as_deref),
            lines.value(row),
        )
    };
    let mut keep: Vec<bool> = reasons.iter().map(Option::is_none).collect();
    // A row with an empty key part is rejected (`keep` is false); an empty time half of a
    // date + time key part is midnight, the same as any other empty time.
    let part = |k: &'a StringArray, row: usize| -> &'a str {
        if k.is_null(row) {
            ""
        } else {
            crate::value::trim(k.value(row))
        }
    };
    let superseded = match keys {
        None | Some([]) => 0,
        // One source column (the usual key): no tuple to build per row.
        Some([k]) => newest_per_key(&mut keep, order, |row| part(k, row)),
        Some(keys) => newest_per_key(&mut keep, order, |row| {
            keys.iter().map(|k| part(k, row)).collect::<Vec<_>>()
        }),
    };
    (keep, superseded)
}

/// Clears `keep` for every kept row but the greatest by `order` among those with the same
/// `key`; returns how many were cleared.
fn newest_per_key<K: std::hash::Hash + Eq, O: Ord>(
    keep: &mut [bool],
    order: impl Fn(usize) -> O,
    key: impl Fn(usize) -> K,
) -> usize {
    let mut winners: HashMap<K, usize> = HashMap::with_capacity(keep.len());
    let mut superseded = 0;
    for row in 0..keep.len() {
        if !keep[row] {
            continue;
        }
        match winners.entry(key(row)) {
            Entry::Vacant(v) => {
                v.insert(row);
            }
            Entry::Occupied(mut o) => {
                superseded += 1;
                let (loser, winner) = if order(*o.get()) < order(row) {
                    (*o.get(), row)
                } else {
                    (row, *o.get())
                };
                keep[loser] = false;
                o.insert(winner);
            }
        }
    }
    superseded
}

/// The rejected rows in full: every input column but `_error`, then [`REJECT_COLUMN_COLUMN`]
/// and [`REASONS_COLUMN`].
fn rejects(batch: &RecordBatch, reasons: &[Option<Rejection>]) -> Result<RecordBatch, ArrowError> {
    let mask = BooleanArray::from(reasons.iter().map(Option::is_some).collect::<Vec<_>>());
    let rejected = filter_record_batch(batch, &mask)?;
    let schema = rejected.schema();
    let mut fields: Vec<Arc<Field>> = Vec::with_capacity(schema.fields().len() + 1);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.capacity());
    for (field, column) in schema.fields().iter().zip(rejected.columns()) {
        if field.name() != ERROR_COLUMN {
            fields.push(field.clone());
            columns.push(column.clone());
        }
    }
    fields.push(Arc::new(Field::new(
        REJECT_COLUMN_COLUMN,
        DataType::Utf8,
        true,
    )));
    columns.push(Arc::new(
        reasons
            .iter()
            .flatten()
            .map(|r| r.column.as_deref())
            .collect::<StringArray>(),
    ));
    fields.push(Arc::new(Field::new(REASONS_COLUMN, DataType::Utf8, false)));
    columns.push(Arc::new(StringArray::from_iter_values(
        reasons.iter().flatten().map(|r| r.reasons.as_str()),
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

#[cfg(test)]
mod tests;
