//! One profile column, text in, typed Arrow array out.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{Array, ArrayRef, StringArray, UInt64Array, new_null_array};
use arrow_schema::ArrowError;
use chrono::NaiveTime;

use super::{UTC, arrow_type};
use crate::model::RowError;
use crate::profile::{Column, ColumnType, StoredType};
use crate::value::{self, DECIMAL_PRECISION};

/// The text of one profile column in a batch.
pub(super) struct Input<'a> {
    pub column: &'a Column,
    pub lines: &'a UInt64Array,
    /// The source column (the date half of a pair); `None` when absent from the batch.
    pub values: Option<&'a StringArray>,
    /// The time half of a pair.
    pub times: Option<&'a StringArray>,
    pub rows: usize,
}

/// The trimmed text of `row`, `None` when null.
fn text(array: &StringArray, row: usize) -> Option<&str> {
    array.is_valid(row).then(|| value::trim(array.value(row)))
}

impl Input<'_> {
    /// Converts the column, appending a warning for each value not loaded as written.
    pub(super) fn convert(&self, warnings: &mut Vec<RowError>) -> Result<ArrayRef, ArrowError> {
        let Some(values) = self.values else {
            return Ok(new_null_array(&arrow_type(self.column.kind), self.rows));
        };
        let target = self.column.target.as_str();
        let mut warn = |row: usize, column: &str, value: &str, reason: String| {
            warnings.push(RowError::warning(
                self.lines.value(row),
                column,
                target,
                value,
                reason,
            ));
        };
        let source = self.column.source.as_str();
        Ok(match self.column.kind {
            // Text is loaded exactly as the decoder left it, unless the stored column is
            // too short for it (an adopted `varchar(n)`).
            ColumnType::Text => self.text(values, &mut warn),
            ColumnType::Decimal { scale } => {
                let mut b = Decimal128Builder::with_capacity(self.rows);
                for row in 0..self.rows {
                    b.append_option(text(values, row).and_then(|t| {
                        let v = value::parse_decimal(t, scale)
                            .inspect_err(|e| warn(row, source, t, null_reason(*e)))
                            .ok()
                            .flatten()?;
                        match self
                            .column
                            .stored
                            .and_then(|st| st.decimal_misfit(v, scale))
                        {
                            Some(reason) => {
                                warn(row, source, t, null_reason(reason));
                                None
                            }
                            None => Some(v),
                        }
                    }));
                }
                Arc::new(
                    b.finish()
                        .with_precision_and_scale(DECIMAL_PRECISION, scale.cast_signed())?,
                )
            }
            ColumnType::Integer => self.integer(values, &mut warn),
            ColumnType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(self.rows);
                for row in 0..self.rows {
                    b.append_option(text(values, row).and_then(|t| {
                        value::parse_bool(t)
                            .inspect_err(|e| warn(row, source, t, null_reason(*e)))
                            .ok()
                            .flatten()
                    }));
                }
                Arc::new(b.finish())
            }
            ColumnType::Date => {
                let mut b = Date32Builder::with_capacity(self.rows);
                for row in 0..self.rows {
                    let date = self.date(values, row, &mut warn);
                    b.append_option(date.map(value::date32_days));
                }
                Arc::new(b.finish())
            }
            ColumnType::Time => {
                let mut b = Time64MicrosecondBuilder::with_capacity(self.rows);
                let format = self.column.format.as_deref();
                for row in 0..self.rows {
                    let t = text(values, row).unwrap_or("");
                    // Blank is midnight (ZTDWR's rule), NULL in a column with a `format`.
                    if t.is_empty() && format.is_some() {
                        b.append_null();
                        continue;
                    }
                    let time = value::parse_time_in(t, format)
                        .inspect_err(|e| warn(row, source, t, null_reason(*e)))
                        .ok();
                    b.append_option(time.map(value::time64_micros));
                }
                Arc::new(b.finish())
            }
            ColumnType::Timestamp if self.column.time_source.is_none() => {
                self.stamps(values, value::parse_timestamp, None, &mut warn)
            }
            ColumnType::TimestampTz => {
                self.stamps(values, value::parse_timestamptz, Some(UTC), &mut warn)
            }
            ColumnType::Timestamp | ColumnType::DateTimestamp => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(self.rows);
                for row in 0..self.rows {
                    let stamp = self.date(values, row, &mut warn).map(|date| {
                        let time = self.time(row, &mut warn);
                        value::timestamp_micros(date, time)
                    });
                    b.append_option(stamp);
                }
                Arc::new(b.finish())
            }
            ColumnType::Float | ColumnType::Numeric => self.numbers(values, &mut warn),
        })
    }

    /// Floats and numerics without a fixed scale: NULL and a warning when unreadable.
    fn numbers(
        &self,
        values: &StringArray,
        warn: &mut impl FnMut(usize, &str, &str, String),
    ) -> ArrayRef {
        let source = self.column.source.as_str();
        if self.column.kind == ColumnType::Float {
            let mut b = Float64Builder::with_capacity(self.rows);
            for row in 0..self.rows {
                b.append_option(text(values, row).and_then(|t| {
                    value::parse_float(t)
                        .inspect_err(|e| warn(row, source, t, null_reason(*e)))
                        .ok()
                        .flatten()
                }));
            }
            return Arc::new(b.finish());
        }
        let mut b = StringBuilder::with_capacity(self.rows, values.value_data().len());
        for row in 0..self.rows {
            b.append_option(text(values, row).and_then(|t| {
                value::parse_numeric(t)
                    .inspect_err(|e| warn(row, source, t, null_reason(*e)))
                    .ok()
                    .flatten()
            }));
        }
        Arc::new(b.finish())
    }

    /// Single-column timestamps read by `parse` (in the column's `format`, if any): NULL and
    /// a warning when unreadable.
    fn stamps(
        &self,
        values: &StringArray,
        parse: fn(&str, Option<&str>) -> Result<Option<i64>, value::ValueError>,
        zone: Option<&str>,
        warn: &mut impl FnMut(usize, &str, &str, String),
    ) -> ArrayRef {
        let source = self.column.source.as_str();
        let format = self.column.format.as_deref();
        let mut b = TimestampMicrosecondBuilder::with_capacity(self.rows);
        for row in 0..self.rows {
            b.append_option(text(values, row).and_then(|t| {
                parse(t, format)
                    .inspect_err(|e| warn(row, source, t, null_reason(*e)))
                    .ok()
                    .flatten()
            }));
        }
        Arc::new(b.finish().with_timezone_opt(zone))
    }

    /// Integers; a non-whole value is rounded and warned about, one that does not fit the
    /// stored column (an adopted `integer`) is NULL and warned about.
    fn integer(
        &self,
        values: &StringArray,
        warn: &mut impl FnMut(usize, &str, &str, String),
    ) -> ArrayRef {
        let source = self.column.source.as_str();
        let stored = self.column.stored;
        let mut b = Int64Builder::with_capacity(self.rows);
        for row in 0..self.rows {
            b.append_option(
                text(values, row).and_then(|t| match value::parse_integer(t) {
                    Ok(Some(i)) if stored.is_some_and(|st| !st.fits_integer(i.value)) => {
                        let reason = stored.map(StoredType::misfit_reason).unwrap_or_default();
                        warn(row, source, t, null_reason(reason));
                        None
                    }
                    Ok(Some(i)) if !i.whole => {
                        let reason = format!("not a whole number: rounded to {}", i.value);
                        warn(row, source, t, reason);
                        Some(i.value)
                    }
                    Ok(i) => i.map(|i| i.value),
                    Err(e) => {
                        warn(row, source, t, null_reason(e));
                        None
                    }
                }),
            );
        }
        Arc::new(b.finish())
    }

    /// Text as the decoder left it, unless the stored column is too short for it (an
    /// adopted `varchar(n)`): then NULL and a warning.
    fn text(
        &self,
        values: &StringArray,
        warn: &mut impl FnMut(usize, &str, &str, String),
    ) -> ArrayRef {
        let Some(stored) = self.column.stored else {
            return Arc::new(values.clone());
        };
        Arc::new(
            (0..self.rows)
                .map(|row| {
                    let v = values.is_valid(row).then(|| values.value(row))?;
                    if stored.fits_text(v) {
                        Some(v)
                    } else {
                        warn(
                            row,
                            &self.column.source,
                            v,
                            null_reason(stored.misfit_reason()),
                        );
                        None
                    }
                })
                .collect::<StringArray>(),
        )
    }

    /// The date of `row`; `None` for blank, zero or (with a warning) unreadable.
    fn date(
        &self,
        values: &StringArray,
        row: usize,
        warn: &mut impl FnMut(usize, &str, &str, String),
    ) -> Option<chrono::NaiveDate> {
        let t = text(values, row)?;
        value::parse_date_in(t, self.column.format.as_deref())
            .inspect_err(|e| warn(row, &self.column.source, t, null_reason(*e)))
            .ok()
            .flatten()
    }

    /// The time half of a pair for `row`: blank, absent or (with a warning) unreadable
    /// is midnight, and the date is kept.
    fn time(&self, row: usize, warn: &mut impl FnMut(usize, &str, &str, String)) -> NaiveTime {
        let (Some(times), Some(name)) = (self.times, self.column.time_source.as_deref()) else {
            return NaiveTime::MIN;
        };
        let t = text(times, row).unwrap_or("");
        value::parse_time(t).unwrap_or_else(|e| {
            warn(row, name, t, format!("{e}: date kept at midnight"));
            NaiveTime::MIN
        })
    }
}

/// The warning for a value loaded as NULL.
fn null_reason(e: impl std::fmt::Display) -> String {
    format!("{e}: loaded as NULL")
}
