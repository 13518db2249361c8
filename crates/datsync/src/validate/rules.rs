//! The row rules of the profile's columns, applied to one row at a time.

use arrow_array::{Array, RecordBatch, StringArray};

use super::{RowError, text_column};
use crate::model::{ERROR_COLUMN, LineNo, RAW_COLUMN};
use crate::profile::{Column, ColumnType, OnInvalid, Profile, RangeRule};
use crate::value::{self, ValueError};

/// The trimmed value of `row`, or `None` when null or blank.
fn text(column: Option<&StringArray>, row: usize) -> Option<&str> {
    let column = column?;
    if column.is_null(row) {
        return None;
    }
    Some(crate::value::trim(column.value(row))).filter(|v| !v.is_empty())
}

/// One profile column's rules, bound to the batch's arrays.
struct ColumnCheck<'a> {
    column: &'a Column,
    not_empty: bool,
    /// A value the type cannot read rejects the row (`on_invalid = "reject"`, or a key part).
    reject: bool,
    values: Option<&'a StringArray>,
    times: Option<&'a StringArray>,
    /// The range rule in words, for reasons.
    range_text: String,
}

/// The rules of every profile column that has one, bound to a batch.
pub(super) struct RowChecks<'a> {
    errors: Option<&'a StringArray>,
    raws: Option<&'a StringArray>,
    columns: Vec<ColumnCheck<'a>>,
}

impl<'a> RowChecks<'a> {
    pub(super) fn new(profile: &'a Profile, batch: &'a RecordBatch) -> Self {
        let columns = profile
            .columns
            .iter()
            .filter_map(|column| {
                // No part of the key is ever empty, whatever the profile says (it is checked
                // to say so), nor unreadable: a key part loaded as NULL would fail the chunk.
                let is_key = profile.is_key(&column.target);
                let not_empty = column.rules.not_empty || is_key;
                let r = &column.rules;
                let reject = column.on_invalid == OnInvalid::Reject || is_key;
                (not_empty || r.valid || r.range.is_some() || reject).then(|| ColumnCheck {
                    column,
                    not_empty,
                    reject,
                    values: text_column(batch, &column.source),
                    times: column
                        .time_source
                        .as_deref()
                        .and_then(|t| text_column(batch, t)),
                    range_text: r.range.as_ref().map(describe_range).unwrap_or_default(),
                })
            })
            .collect();
        Self {
            errors: text_column(batch, ERROR_COLUMN),
            raws: text_column(batch, RAW_COLUMN),
            columns,
        }
    }

    /// Appends the errors of `row` (source line `line`) to `out`.
    pub(super) fn check(&self, row: usize, line: LineNo, out: &mut Vec<RowError>) {
        if let Some(reason) = self
            .errors
            .filter(|e| e.is_valid(row))
            .map(|e| e.value(row))
        {
            let raw = self.raws.filter(|r| r.is_valid(row)).map(|r| r.value(row));
            out.push(RowError::new(line, None, raw, reason.to_owned()));
            return;
        }
        for check in &self.columns {
            check.check(row, line, out);
        }
    }
}

impl ColumnCheck<'_> {
    fn check(&self, row: usize, line: LineNo, out: &mut Vec<RowError>) {
        let before = out.len();
        self.check_rules(row, line, out);
        // A value that would not load as written rejects the row when the profile says so
        // (unless a rule already did): the reasons are the transform's.
        if self.reject && out.len() == before {
            let value = self
                .values
                .filter(|v| v.is_valid(row))
                .map(|v| v.value(row));
            let time = self.times.filter(|t| t.is_valid(row)).map(|t| t.value(row));
            for p in crate::transform::problems(self.column, value, time) {
                out.push(RowError::new(
                    line,
                    Some(p.column),
                    Some(p.value),
                    format!(
                        "{}: the row is rejected (on_invalid = \"reject\")",
                        p.reason
                    ),
                ));
            }
        }
    }

    /// The `not_empty`, `valid` and `range` rules.
    fn check_rules(&self, row: usize, line: LineNo, out: &mut Vec<RowError>) {
        let source = self.column.source.as_str();
        let value = text(self.values, row);
        let mut fail = |column: &str, value: Option<&str>, reason: String| {
            out.push(RowError::new(line, Some(column), value, reason));
        };
        // Emptiness is `not_empty`'s business: `valid` and `range` check a value only when
        // there is one (an empty optional value passes them).
        let Some(value) = value else {
            if self.not_empty {
                fail(
                    source,
                    None,
                    format!("empty: a {} is required", what(self.column.kind)),
                );
            }
            return;
        };
        match self.parse(value) {
            Err(e) if self.column.rules.valid || self.column.rules.range.is_some() => {
                fail(source, Some(value), e.to_string());
            }
            // An all-zero date is SAP's empty date: `not_empty`'s, like a blank.
            Ok(Parsed::Zero) if self.not_empty => {
                fail(
                    source,
                    Some(value),
                    "empty date (zero): a date is required".into(),
                );
            }
            Ok(Parsed::Number(mantissa, scale))
                if self
                    .column
                    .rules
                    .range
                    .as_ref()
                    .is_some_and(|r| value::decimal_in_range(mantissa, scale, r).is_some()) =>
            {
                let reason = format!("out of range: must be {}", self.range_text);
                fail(source, Some(value), reason);
            }
            Ok(Parsed::Float(v))
                if self
                    .column
                    .rules
                    .range
                    .as_ref()
                    .is_some_and(|r| !float_in_range(v, r)) =>
            {
                let reason = format!("out of range: must be {}", self.range_text);
                fail(source, Some(value), reason);
            }
            Ok(Parsed::Exact(digits))
                if self
                    .column
                    .rules
                    .range
                    .as_ref()
                    .is_some_and(|r| !exact_in_range(&digits, r)) =>
            {
                let reason = format!("out of range: must be {}", self.range_text);
                fail(source, Some(value), reason);
            }
            // Parsed, or unreadable in a column whose rules do not ask (it warns later).
            Err(_) | Ok(_) => {}
        }
        if self.column.kind == ColumnType::Timestamp
            && self.column.rules.valid
            && let (Some(time_source), Some(time)) =
                (&self.column.time_source, text(self.times, row))
            && let Err(e) = value::parse_time(time)
        {
            fail(time_source, Some(time), e.to_string());
        }
    }

    /// Reads the (date, for a pair) value as the column's type.
    fn parse(&self, value: &str) -> Result<Parsed, ValueError> {
        let format = self.column.format.as_deref();
        Ok(match self.column.kind {
            ColumnType::Text => Parsed::Other,
            ColumnType::Decimal { scale } => value::parse_decimal(value, scale)?
                .map_or(Parsed::Other, |m| Parsed::Number(m, scale)),
            ColumnType::Integer => value::parse_integer(value)?
                .map_or(Parsed::Other, |i| Parsed::Number(i128::from(i.value), 0)),
            ColumnType::Boolean => {
                value::parse_bool(value)?;
                Parsed::Other
            }
            ColumnType::Timestamp if self.column.time_source.is_none() => {
                value::parse_timestamp(value, format)?.map_or(Parsed::Zero, |_| Parsed::Other)
            }
            ColumnType::TimestampTz => {
                value::parse_timestamptz(value, format)?.map_or(Parsed::Zero, |_| Parsed::Other)
            }
            ColumnType::Date | ColumnType::Timestamp | ColumnType::DateTimestamp => {
                value::parse_date_in(value, format)?.map_or(Parsed::Zero, |_| Parsed::Other)
            }
            ColumnType::Time => {
                value::parse_time_in(value, format)?;
                Parsed::Other
            }
            ColumnType::Float => value::parse_float(value)?.map_or(Parsed::Other, Parsed::Float),
            ColumnType::Numeric => {
                value::parse_numeric(value)?.map_or(Parsed::Other, Parsed::Exact)
            }
        })
    }
}

/// What a non-blank value parsed to, as far as the rules care.
enum Parsed {
    /// A number: mantissa and scale.
    Number(i128, u8),
    /// A float.
    Float(f64),
    /// A numeric without a fixed scale: its canonical text.
    Exact(String),
    /// An all-zero date (`00000000`), which loads as NULL.
    Zero,
    /// Anything else that parsed.
    Other,
}

/// What a column of this type holds, for "a … is required".
fn what(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Decimal { .. }
        | ColumnType::Integer
        | ColumnType::Float
        | ColumnType::Numeric => "number",
        ColumnType::Date | ColumnType::DateTimestamp | ColumnType::Timestamp => "date",
        ColumnType::TimestampTz => "timestamp",
        ColumnType::Time => "time",
        ColumnType::Boolean => "boolean",
        ColumnType::Text => "value",
    }
}

/// Whether a float is inside `range` (NaN is outside any range).
fn float_in_range(v: f64, range: &RangeRule) -> bool {
    let ok = |b: &Option<crate::profile::Bound>, below: bool| {
        b.as_ref().is_none_or(|b| {
            let Ok(x) = b.value.parse::<f64>() else {
                return false;
            };
            match (below, b.inclusive) {
                (true, true) => v >= x,
                (true, false) => v > x,
                (false, true) => v <= x,
                (false, false) => v < x,
            }
        })
    };
    ok(&range.lower, true) && ok(&range.upper, false)
}

/// Whether a numeric's canonical text is inside `range`: exactly when it fits a 38-digit
/// mantissa, else as a float.
fn exact_in_range(digits: &str, range: &RangeRule) -> bool {
    let scale = digits
        .split_once('.')
        .map_or(0, |(_, f)| u8::try_from(f.len()).unwrap_or(u8::MAX));
    match value::parse_decimal(digits, scale) {
        Ok(Some(m)) if scale <= 38 => value::decimal_in_range(m, scale, range).is_none(),
        _ => digits
            .parse::<f64>()
            .is_ok_and(|v| float_in_range(v, range)),
    }
}

/// A range in words: `> 0 and <= 500`.
fn describe_range(range: &RangeRule) -> String {
    let lower = range
        .lower
        .as_ref()
        .map(|b| format!("{} {}", if b.inclusive { ">=" } else { ">" }, b.value));
    let upper = range
        .upper
        .as_ref()
        .map(|b| format!("{} {}", if b.inclusive { "<=" } else { "<" }, b.value));
    [lower, upper]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and ")
}
