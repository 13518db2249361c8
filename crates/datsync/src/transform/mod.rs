//! Accepted text batch → typed batch for the target table (`ztdwr.md` §3).
//!
//! The typed batch has `_line` (`UInt64`, the source line) first, then one column per profile
//! column, named by its target, in profile order: text `Utf8` (unchanged: keys, NIKs and
//! times keep their leading zeros), decimal `Decimal128(38, scale)` (exact, never through a
//! float), integer `Int64`, boolean `Boolean`, date `Date32`, time `Time64(µs)`, and the
//! date + time pairs, single-column timestamps and date-only columns `Timestamp(µs, None)`
//! (naive local time; a date alone is midnight), timestamptz `Timestamp(µs, "UTC")`, float
//! `Float64`, numeric (a decimal without a fixed scale) `Utf8` holding PostgreSQL's canonical
//! text of the exact value (cast to `numeric` by the load). Dates, times and timestamps are
//! read in the column's `format` when it has one. Every value is parsed on its own. A source column absent from the
//! batch loads as NULL.
//!
//! Values that cannot be converted do not fail the batch (the rules that reject rows are
//! [`crate::validate`]'s): they load as NULL (or, for the time half of a pair, as midnight)
//! and add a warning; an integer that was not whole is rounded and warned about.
//! When the profile has `version` columns, a last column `_version` (`Utf8`) holds each
//! row's own version (`version.rs`), which the loader stores in `row_version`.
//! The audit columns (`created_at`, `sync_id`, …) are added by `load`.

mod convert;
mod problems;
mod version;

pub(crate) use problems::problems;
pub(crate) use version::row_versions;

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::model::RowError;
use crate::model::{LINE_COLUMN, VERSION_COLUMN};
use crate::profile::{ColumnType, Profile};
use crate::value::DECIMAL_PRECISION;

/// A fatal problem with a batch as a whole.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The batch has no `_line` column of type `UInt64`.
    #[error("the batch has no `_line` UInt64 column: not a text batch from the decoder")]
    NoLineColumn,
    /// A source column is not text.
    #[error("column `{column}` is {found}, expected Utf8: not a text batch from the decoder")]
    NotText {
        /// The column.
        column: String,
        /// Its type.
        found: DataType,
    },
    /// Arrow refused a batch (an internal invariant; reported rather than panicking).
    #[error("building a batch failed: {0}")]
    Arrow(#[from] ArrowError),
}

/// The outcome of [`transform`] for one batch.
#[derive(Debug, Clone)]
pub struct Transformed {
    /// The typed batch, with the schema of [`typed_schema`].
    pub batch: RecordBatch,
    /// Values loaded as NULL or midnight, and integers rounded, in row order (each a
    /// [`RowError`] of kind warning, naming its source and target columns).
    pub warnings: Vec<RowError>,
}

/// The time zone of a `timestamptz` column's Arrow type (values are UTC instants).
pub const UTC: &str = "UTC";

/// The Arrow type a column of this kind loads as.
pub fn arrow_type(kind: ColumnType) -> DataType {
    match kind {
        // A numeric's exact digits of any scale: PostgreSQL's canonical text, encoded as
        // `numeric` by the load.
        ColumnType::Text | ColumnType::Numeric => DataType::Utf8,
        ColumnType::Decimal { scale } => {
            DataType::Decimal128(DECIMAL_PRECISION, scale.cast_signed())
        }
        ColumnType::Integer => DataType::Int64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
        ColumnType::Timestamp | ColumnType::DateTimestamp => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        ColumnType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        ColumnType::Float => DataType::Float64,
    }
}

/// The schema of typed batches: `_line`, then each profile column by target, in order, then
/// `_version` when the profile has `version` columns.
pub fn typed_schema(profile: &Profile) -> SchemaRef {
    let mut fields = Vec::with_capacity(profile.columns.len() + 2);
    fields.push(Field::new(LINE_COLUMN, DataType::UInt64, false));
    fields.extend(
        profile
            .columns
            .iter()
            .map(|c| Field::new(&c.target, arrow_type(c.kind), true)),
    );
    if has_row_version(profile) {
        fields.push(Field::new(VERSION_COLUMN, DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

/// Whether typed batches of `profile` carry `_version`.
pub fn has_row_version(profile: &Profile) -> bool {
    profile
        .version
        .as_ref()
        .is_some_and(|v| v.columns.is_some())
}

/// A source column of `batch` as text, `None` when absent.
fn source<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<Option<&'a StringArray>, TransformError> {
    let Some(array) = batch.column_by_name(name) else {
        return Ok(None);
    };
    array
        .as_any()
        .downcast_ref::<StringArray>()
        .map(Some)
        .ok_or_else(|| TransformError::NotText {
            column: name.to_owned(),
            found: array.data_type().clone(),
        })
}

/// Converts an accepted text batch into the typed batch. See the module docs.
pub fn transform(profile: &Profile, batch: &RecordBatch) -> Result<Transformed, TransformError> {
    let lines = batch
        .column_by_name(LINE_COLUMN)
        .and_then(|a| a.as_any().downcast_ref::<UInt64Array>())
        .ok_or(TransformError::NoLineColumn)?;
    let mut warnings = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(profile.columns.len() + 1);
    columns.push(Arc::new(lines.clone()));
    for column in &profile.columns {
        let input = convert::Input {
            column,
            lines,
            values: source(batch, &column.source)?,
            times: match &column.time_source {
                Some(t) => source(batch, t)?,
                None => None,
            },
            rows: batch.num_rows(),
        };
        columns.push(input.convert(&mut warnings)?);
    }
    if let Some(versions) = row_versions(profile, batch, lines, &mut warnings)? {
        columns.push(Arc::new(StringArray::from(versions)));
    }
    let batch = RecordBatch::try_new(typed_schema(profile), columns)?;
    // Warnings come per column; report them in row order, columns in profile order.
    warnings.sort_by_key(|w| w.line);
    Ok(Transformed { batch, warnings })
}

#[cfg(test)]
mod tests;
