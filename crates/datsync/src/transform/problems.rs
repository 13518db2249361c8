//! Why one row's value of a column would not load as written: the same reading as
//! [`super::transform`]'s, one row at a time, for the columns whose profile says
//! `on_invalid = "reject"` ([`crate::validate`] rejects such rows before they reach the
//! transform).

use crate::profile::{Column, ColumnType, StoredType};
use crate::value;

/// One value that would not load as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem<'a> {
    /// The source column holding it (the time half of a pair for an impossible time).
    pub(crate) column: &'a str,
    /// The value as read.
    pub(crate) value: &'a str,
    /// What is wrong with it, without what loading would do about it.
    pub(crate) reason: String,
}

/// The problems of one row's value (`value`, and `time` for the time half of a pair): none
/// when it loads as written. Blank and null values load as NULL (a time as midnight)
/// without a problem, as in the transform.
pub(crate) fn problems<'a>(
    column: &'a Column,
    value: Option<&'a str>,
    time: Option<&'a str>,
) -> Vec<Problem<'a>> {
    let mut out = Vec::new();
    let source = column.source.as_str();
    let mut problem = |column: &'a str, value: &'a str, reason: String| {
        out.push(Problem {
            column,
            value,
            reason,
        });
    };
    let raw = value;
    let value = value.map(str::trim);
    let format = column.format.as_deref();
    match column.kind {
        ColumnType::Text => {
            // The text as read (not trimmed) is what would be stored.
            if let (Some(stored), Some(t)) = (column.stored, raw)
                && !stored.fits_text(t)
            {
                problem(source, t, stored.misfit_reason());
            }
        }
        ColumnType::Decimal { scale } => match value.map(|t| (t, value::parse_decimal(t, scale))) {
            Some((t, Err(e))) => problem(source, t, e.to_string()),
            Some((t, Ok(Some(v)))) => {
                if let Some(reason) = column.stored.and_then(|st| st.decimal_misfit(v, scale)) {
                    problem(source, t, reason);
                }
            }
            _ => {}
        },
        ColumnType::Integer => match value.map(|t| (t, value::parse_integer(t))) {
            Some((t, Ok(Some(i)))) if column.stored.is_some_and(|st| !st.fits_integer(i.value)) => {
                let reason = column
                    .stored
                    .map(StoredType::misfit_reason)
                    .unwrap_or_default();
                problem(source, t, reason);
            }
            Some((t, Ok(Some(i)))) if !i.whole => {
                problem(
                    source,
                    t,
                    format!("not a whole number (would be rounded to {})", i.value),
                );
            }
            Some((t, Err(e))) => problem(source, t, e.to_string()),
            _ => {}
        },
        ColumnType::Boolean => {
            if let Some(t) = value
                && let Err(e) = value::parse_bool(t)
            {
                problem(source, t, e.to_string());
            }
        }
        ColumnType::Date => {
            if let Some(t) = value
                && let Err(e) = value::parse_date_in(t, format)
            {
                problem(source, t, e.to_string());
            }
        }
        ColumnType::Time => {
            let t = value.unwrap_or("");
            if let Err(e) = value::parse_time_in(t, format) {
                problem(source, t, e.to_string());
            }
        }
        ColumnType::Timestamp if column.time_source.is_none() => {
            if let Some(t) = value
                && let Some(e) = single_value_error(column, t)
            {
                problem(source, t, e.to_string());
            }
        }
        ColumnType::TimestampTz | ColumnType::Float | ColumnType::Numeric => {
            if let Some(t) = value
                && let Some(e) = single_value_error(column, t)
            {
                problem(source, t, e.to_string());
            }
        }
        ColumnType::Timestamp | ColumnType::DateTimestamp => {
            let Some(t) = value else { return out };
            match value::parse_date_in(t, format) {
                Err(e) => problem(source, t, e.to_string()),
                Ok(Some(_)) => {
                    if let Some(time_source) = column.time_source.as_deref() {
                        let t = time.map_or("", str::trim);
                        if let Err(e) = value::parse_time(t) {
                            problem(time_source, t, e.to_string());
                        }
                    }
                }
                Ok(None) => {}
            }
        }
    }
    out
}

/// Why a value of a single-column timestamp, a timestamptz, a float or a numeric does not
/// read; `None` when it does (or for another type).
fn single_value_error(column: &Column, t: &str) -> Option<value::ValueError> {
    let format = column.format.as_deref();
    match column.kind {
        ColumnType::Timestamp => value::parse_timestamp(t, format).err(),
        ColumnType::TimestampTz => value::parse_timestamptz(t, format).err(),
        ColumnType::Float => value::parse_float(t).err(),
        ColumnType::Numeric => value::parse_numeric(t).err(),
        _ => None,
    }
}
