//! Each row's own version (the profile's `version` columns) from a text batch: the same
//! reading validation uses to keep the newest of a key's rows and the loader stores in
//! `row_version` (see `profile/version.rs` for the format and the order).
//!
//! A blank or zero date gives no version; so does an unreadable date or time — the value
//! warning says so, once per value: the transform's own warning for a typed column (the
//! value loads as NULL, or a pair's time as midnight), or, for a text column read as a time
//! (which loads as written), a warning of its own naming [`ROW_VERSION_COLUMN`].

use arrow_array::{Array, RecordBatch, StringArray, UInt64Array};
use chrono::NaiveTime;

use super::{TransformError, source};
use crate::model::RowError;
use crate::profile::{Column, ColumnType, Profile, ROW_VERSION_COLUMN, stamp};
use crate::value;

/// The date and time of microseconds since 1970-01-01.
fn split_micros(micros: i64) -> Option<(chrono::NaiveDate, NaiveTime)> {
    let stamp = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
    Some((stamp.date(), stamp.time()))
}

/// The version columns of a profile, resolved against one text batch.
struct Reader<'a> {
    date: &'a Column,
    dates: Option<&'a StringArray>,
    /// The time half of a `timestamp` date column.
    pair_times: Option<&'a StringArray>,
    time: Option<(&'a Column, Option<&'a StringArray>)>,
}

fn text(array: Option<&StringArray>, row: usize) -> Option<&str> {
    array.and_then(|a| a.is_valid(row).then(|| value::trim(a.value(row))))
}

/// The row versions of `batch` (`None` when the profile has no `version` columns), with a
/// warning for each unreadable value of a text column read as a time.
pub(crate) fn row_versions(
    profile: &Profile,
    batch: &RecordBatch,
    lines: &UInt64Array,
    warnings: &mut Vec<RowError>,
) -> Result<Option<Vec<Option<String>>>, TransformError> {
    let Some(spec) = profile.version.as_ref().and_then(|v| v.columns.as_ref()) else {
        return Ok(None);
    };
    let column = |name: &str| profile.columns.iter().find(|c| c.target == name);
    let Some(date) = column(&spec.date) else {
        return Ok(None);
    };
    let time = match spec.time.as_deref().and_then(column) {
        Some(c) => Some((c, source(batch, &c.source)?)),
        None => None,
    };
    let reader = Reader {
        date,
        dates: source(batch, &date.source)?,
        pair_times: match &date.time_source {
            Some(t) => source(batch, t)?,
            None => None,
        },
        time,
    };
    Ok(Some(
        (0..batch.num_rows())
            .map(|row| reader.version(row, lines.value(row), warnings))
            .collect(),
    ))
}

impl Reader<'_> {
    fn version(&self, row: usize, line: u64, warnings: &mut Vec<RowError>) -> Option<String> {
        // The time is read first so that its warning does not depend on the date.
        let time = self.time(row, line, warnings);
        let dtext = text(self.dates, row)?;
        let format = self.date.format.as_deref();
        let (date, time) = match self.date.kind {
            // A single-column timestamp (naive, or in UTC): its own time.
            ColumnType::Timestamp if self.date.time_source.is_none() => {
                split_micros(value::parse_timestamp(dtext, format).ok().flatten()?)?
            }
            ColumnType::TimestampTz => {
                split_micros(value::parse_timestamptz(dtext, format).ok().flatten()?)?
            }
            ColumnType::Timestamp => (
                value::parse_date_in(dtext, format).ok().flatten()?,
                value::parse_time(text(self.pair_times, row).unwrap_or("")).ok()?,
            ),
            _ => (value::parse_date_in(dtext, format).ok().flatten()?, time?),
        };
        Some(stamp(date, time))
    }

    /// The version's time of day: midnight without a time column; `None` when unreadable.
    fn time(&self, row: usize, line: u64, warnings: &mut Vec<RowError>) -> Option<NaiveTime> {
        let Some((column, values)) = self.time else {
            return Some(NaiveTime::MIN);
        };
        let t = text(values, row).unwrap_or("");
        match value::parse_time_in(t, column.format.as_deref()) {
            Ok(time) => Some(time),
            Err(e) => {
                // A time column's own conversion has warned already.
                if column.kind == ColumnType::Text {
                    warnings.push(RowError::warning(
                        line,
                        &column.source,
                        ROW_VERSION_COLUMN,
                        t,
                        format!("{e}: the row has no version and counts as the oldest"),
                    ));
                }
                None
            }
        }
    }
}
