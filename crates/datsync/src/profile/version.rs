//! The row version (`version`, `version_from_name`): what orders two versions of a row by
//! the data's own clock, before `sync_seq` and the source line.
//!
//! A version is text that sorts bytewise (PostgreSQL's `"C"` collation) in time order:
//!
//! | profile sets | a row's version |
//! |---|---|
//! | `version` only | `YYYY-MM-DD HH:MM:SS` of its date (+ time) columns, or none |
//! | `version_from_name` only | `YYYY-MM-DD HH:MM:SS` of the file name's `date` (+ `time`) |
//! | both | `<row's> \| <file's>`, a missing half written `-` (sorts before any date) |
//!
//! A row whose version is missing (blank or unreadable values, a name that does not match)
//! has none, which sorts before every version: such rows, and rows stored without a version
//! (adopted from the legacy loader, or loaded before the profile had one), are older than
//! any versioned row. A profile with neither setting has no version: newest wins by
//! `(sync_seq, source_line)` alone, as before.

use chrono::{NaiveDate, NaiveTime};
use regex_automata::meta::Regex;

use super::{ColumnType, Profile};
use crate::value;

/// The target column holding each row's version (text, `COLLATE "C"`), added by `init-db`
/// when the profile has a version.
pub const ROW_VERSION_COLUMN: &str = "row_version";

/// The columns that give a row its version: a date, then optionally a time of day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionColumns {
    /// Target column of the date: a `date`, `date_timestamp` or `timestamp` column (a
    /// timestamp's own time half counts).
    pub date: String,
    /// Target column of the time of day: a `time` column, or a `text` column read as a time
    /// (`HHMMSS`, `HH:MM:SS`, …; blank is midnight).
    pub time: Option<String>,
}

/// A file name's version: a regular expression with a named group `date` (and optionally
/// `time`), searched in the file's base name.
#[derive(Debug, Clone)]
pub struct NameVersion {
    pattern: String,
    regex: Regex,
}

impl PartialEq for NameVersion {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for NameVersion {}

impl NameVersion {
    /// Compiles `pattern`; it must have a group named `date`.
    pub(super) fn new(pattern: &str) -> Result<Self, String> {
        let regex = Regex::new(pattern).map_err(|e| format!("not a regular expression: {e}"))?;
        let names: Vec<&str> = regex
            .group_info()
            .pattern_names(regex_automata::PatternID::ZERO)
            .flatten()
            .collect();
        if !names.contains(&"date") {
            return Err(format!(
                "`{pattern}` has no group named `date`; write it as `(?<date>\\d{{8}})`"
            ));
        }
        if let Some(other) = names.iter().find(|n| !matches!(**n, "date" | "time")) {
            return Err(format!(
                "group `{other}` is not known: only `date` and `time` are read"
            ));
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            regex,
        })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The version of the file named `name` (its base name is searched), or why it has none.
    pub fn version_of(&self, name: &str) -> Result<String, String> {
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let mut caps = self.regex.create_captures();
        self.regex.captures(base, &mut caps);
        if !caps.is_match() {
            return Err(format!(
                "the file name `{base}` does not match version_from_name `{}`",
                self.pattern
            ));
        }
        let group = |g: &str| caps.get_group_by_name(g).map(|s| &base[s.range()]);
        let date_text = group("date").unwrap_or("");
        let date = match value::parse_date(date_text) {
            Ok(Some(d)) => d,
            Ok(None) => return Err(format!("the file name `{base}` has a blank or zero date")),
            Err(e) => {
                return Err(format!(
                    "the file name `{base}` has an unreadable date `{date_text}`: {e}"
                ));
            }
        };
        let time_text = group("time").unwrap_or("");
        let time = value::parse_time(time_text).map_err(|e| {
            format!("the file name `{base}` has an unreadable time `{time_text}`: {e}")
        })?;
        Ok(stamp(date, time))
    }
}

/// What orders two versions of a row (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowVersion {
    /// The row's own clock (`version`).
    pub columns: Option<VersionColumns>,
    /// The file's clock (`version_from_name`).
    pub from_name: Option<NameVersion>,
}

/// A date and time as version text: `YYYY-MM-DD HH:MM:SS`, fixed width, so that bytewise
/// order is time order. Written digit by digit (one per row of a versioned file, twice: chrono's
/// `format` parses its pattern again on every call, and `write!` pads each field through the
/// formatter); a year outside 0–9999 or a leap second is left to chrono, which writes them as
/// `%Y` and `%S` do.
pub fn stamp(date: NaiveDate, time: NaiveTime) -> String {
    use chrono::{Datelike as _, Timelike as _};
    let year = date.year();
    if !(0..=9999).contains(&year) || time.nanosecond() >= 1_000_000_000 {
        return date.and_time(time).format("%Y-%m-%d %H:%M:%S").to_string();
    }
    let year = year.unsigned_abs();
    let mut out = [0u8; 19];
    let mut put = |at: usize, width: usize, mut value: u32| {
        for slot in out[at..at + width].iter_mut().rev() {
            // A digit: `value % 10` is below 10.
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, date.month());
    put(8, 2, date.day());
    put(11, 2, time.hour());
    put(14, 2, time.minute());
    put(17, 2, time.second());
    out[4] = b'-';
    out[7] = b'-';
    out[10] = b' ';
    out[13] = b':';
    out[16] = b':';
    out.iter().map(|&b| char::from(b)).collect()
}

/// The form a row version's date is shown in when its column has no `format` (SAP's
/// `YYYYMMDD`, as ZTDWR extracts write it).
const SHOWN_DATE: &str = "%Y%m%d";
/// The form of a version's time of day, and of a timestamp column's version.
const SHOWN_TIME: &str = "%H:%M:%S";
/// What the stored text of a version (see [`stamp`]) is parsed with.
const STORED: &str = "%Y-%m-%d %H:%M:%S";

/// A stored version (`row_version`: [`stamp`] text, or `<row's> | <file's>`) as a person
/// reads it, in the profile's own forms: the row's half as its date column is written (the
/// column's `format`, else `YYYYMMDD`), then its time column's time (`HH:MM:SS`, or the
/// column's `format`) — a `timestamp` column's version in its `format`, else
/// `YYYY-MM-DD HH:MM:SS` — and the file name's half as `file YYYYMMDD` (with `HH:MM:SS` when
/// the name has a time). Examples: `20250130 14:02:11`, `file 20250131`,
/// `20250130 14:02:11 (file 20250131)`, `no row version (file 20250131)`. A half that does
/// not read as a stamp is shown as stored; never fails.
pub fn readable_version(profile: &Profile, stored: &str) -> String {
    let version = profile.version.as_ref();
    let columns = version.and_then(|v| v.columns.as_ref());
    let (row, file) = match stored.split_once(" | ") {
        Some((row, file)) => (Some(row), Some(file)),
        // One half: the file's only when the profile reads no row version.
        None if columns.is_none() && version.is_some_and(|v| v.from_name.is_some()) => {
            (None, Some(stored))
        }
        None => (Some(stored), None),
    };
    let row = row.map(|r| match r {
        "-" => "no row version".to_owned(),
        r => readable_row_half(profile, columns, r),
    });
    let file = file.map(|f| match f {
        "-" => "file name without a date".to_owned(),
        f => match chrono::NaiveDateTime::parse_from_str(f, STORED) {
            Ok(at) if at.time() == NaiveTime::MIN => format!("file {}", at.format(SHOWN_DATE)),
            Ok(at) => format!("file {} {}", at.format(SHOWN_DATE), at.format(SHOWN_TIME)),
            Err(_) => format!("file {f}"),
        },
    });
    match (row, file) {
        (Some(row), Some(file)) => format!("{row} ({file})"),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => stored.to_owned(),
    }
}

/// The row's half of a version in the forms of its columns (see [`readable_version`]).
fn readable_row_half(profile: &Profile, columns: Option<&VersionColumns>, text: &str) -> String {
    let Ok(at) = chrono::NaiveDateTime::parse_from_str(text, STORED) else {
        return text.to_owned();
    };
    let column = |name: &str| profile.columns.iter().find(|c| c.target == name);
    let date_column = columns.and_then(|c| column(&c.date));
    let time_column = columns.and_then(|c| c.time.as_deref()).and_then(column);
    let date_format = date_column.and_then(|c| c.format.as_deref());
    if date_column
        .is_some_and(|c| matches!(c.kind, ColumnType::Timestamp | ColumnType::TimestampTz))
    {
        return shown(&at, date_format, &format!("{SHOWN_DATE_ISO} {SHOWN_TIME}"));
    }
    let date = shown(&at, date_format, SHOWN_DATE);
    match (columns.and_then(|c| c.time.as_ref()), time_column) {
        (None, _) if at.time() == NaiveTime::MIN => date,
        (_, Some(t)) if t.kind == ColumnType::Time => {
            format!("{date} {}", shown(&at, t.format.as_deref(), SHOWN_TIME))
        }
        _ => format!("{date} {}", at.format(SHOWN_TIME)),
    }
}

/// The ISO date form of a timestamp column's version shown without a `format`.
const SHOWN_DATE_ISO: &str = "%Y-%m-%d";

/// `at` in the strftime `format` when it has one that formats a local date and time (a
/// format that cannot, such as one with an offset, falls back), else in `fallback`.
fn shown(at: &chrono::NaiveDateTime, format: Option<&str>, fallback: &str) -> String {
    use std::fmt::Write as _;
    if let Some(format) = format {
        let mut out = String::new();
        if write!(out, "{}", at.format(format)).is_ok() {
            return out;
        }
    }
    at.format(fallback).to_string()
}

/// Checks `version = [date, time]` against the profile's columns.
pub(super) fn check_columns(names: &[String], profile: &Profile) -> Result<VersionColumns, String> {
    let kind = |name: &str| {
        profile
            .columns
            .iter()
            .find(|c| c.target == name)
            .map(|c| c.kind)
            .ok_or_else(|| format!("`{name}` is not the target of any column"))
    };
    let (date, time) = match names {
        [date] => (date, None),
        [date, time] => (date, Some(time)),
        _ => {
            return Err(
                "name one or two target columns: a date (or timestamp), then optionally a time"
                    .into(),
            );
        }
    };
    match kind(date)? {
        ColumnType::Date | ColumnType::DateTimestamp => {}
        ColumnType::Timestamp | ColumnType::TimestampTz if time.is_none() => {}
        ColumnType::Timestamp | ColumnType::TimestampTz => {
            return Err(format!(
                "`{date}` is a timestamp with its own time: name it alone"
            ));
        }
        other => {
            return Err(format!(
                "`{date}` is {other}: the first version column must be a date, date_timestamp, \
                 timestamp or timestamptz"
            ));
        }
    }
    if let Some(time) = time {
        match kind(time)? {
            ColumnType::Time | ColumnType::Text => {}
            other => {
                return Err(format!(
                    "`{time}` is {other}: the second version column must be a time, or text \
                     read as a time"
                ));
            }
        }
    }
    Ok(VersionColumns {
        date: date.clone(),
        time: time.cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_their_date_and_time() {
        let v = NameVersion::new(r"ZTDWR_(?<date>\d{8})(?:_(?<time>\d{6}))?").unwrap();
        assert_eq!(
            v.version_of("in/ZTDWR_20250130.dat").unwrap(),
            "2025-01-30 00:00:00"
        );
        assert_eq!(
            v.version_of("ZTDWR_20250130_101500.dat.gz").unwrap(),
            "2025-01-30 10:15:00"
        );
        assert!(
            v.version_of("other.dat")
                .unwrap_err()
                .contains("does not match")
        );
        assert!(
            v.version_of("ZTDWR_20251399.dat")
                .unwrap_err()
                .contains("unreadable date")
        );
        assert!(
            NameVersion::new(r"ZTDWR_(\d{8})")
                .unwrap_err()
                .contains("no group named")
        );
        assert!(NameVersion::new(r"(?<day>\d{8})(?<date>x)").is_err());
        assert!(NameVersion::new(r"(").is_err());
    }

    /// A profile with these version settings over a date, a time and a timestamp column.
    fn profile(version: &str, date_format: &str) -> Profile {
        let text = format!(
            "name = \"v\"\ntable = \"t\"\nkey = \"id\"\n{version}\n
             [[columns]]\nsource = \"id\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n
             [[columns]]\nsource = \"d\"\ntype = \"date_timestamp\"\n{date_format}\n
             [[columns]]\nsource = \"t\"\ntype = \"text\"\n
             [[columns]]\nsource = \"tm\"\ntype = \"time\"\nformat = \"%H.%M\"\n
             [[columns]]\nsource = \"ts\"\ntype = \"timestamp\"\n"
        );
        Profile::from_toml_str(&text, std::path::Path::new("v.toml")).unwrap()
    }

    /// Every form a stored version takes, shown in the profile's forms; never fails.
    #[test]
    fn readable_versions_in_the_profiles_forms() {
        let row = r#"version = ["d", "t"]"#;
        let name = r"version_from_name = 'V_(?<date>\d{8})'";
        let both = format!("{row}\n{name}");
        let cases: &[(&str, &str, &str, &str)] = &[
            // (version settings, date column format, stored, shown)
            (row, "", "2025-01-30 14:02:11", "20250130 14:02:11"),
            (row, "", "2025-01-30 00:00:00", "20250130 00:00:00"),
            (
                row,
                r#"format = "%d.%m.%Y""#,
                "2025-01-30 14:02:11",
                "30.01.2025 14:02:11",
            ),
            (r#"version = ["d"]"#, "", "2025-01-30 00:00:00", "20250130"),
            (
                r#"version = ["d"]"#,
                "",
                "2025-01-30 06:00:00",
                "20250130 06:00:00",
            ),
            (
                r#"version = ["d", "tm"]"#,
                "",
                "2025-01-30 14:02:11",
                "20250130 14.02",
            ),
            (
                r#"version = ["ts"]"#,
                "",
                "2025-01-30 14:02:11",
                "2025-01-30 14:02:11",
            ),
            (name, "", "2025-01-31 00:00:00", "file 20250131"),
            (name, "", "2025-01-31 10:15:00", "file 20250131 10:15:00"),
            (
                &both,
                "",
                "2025-01-30 14:02:11 | 2025-01-31 00:00:00",
                "20250130 14:02:11 (file 20250131)",
            ),
            (
                &both,
                "",
                "- | 2025-01-31 00:00:00",
                "no row version (file 20250131)",
            ),
            (
                &both,
                "",
                "2025-01-30 14:02:11 | -",
                "20250130 14:02:11 (file name without a date)",
            ),
            // Not a stamp (another loader's text, a profile changed since): as stored.
            (row, "", "yesterday", "yesterday"),
            (&both, "", "x | y", "x (file y)"),
            // A date format that cannot show a local date falls back to YYYYMMDD.
            (
                row,
                r#"format = "%Y%m%d%z""#,
                "2025-01-30 14:02:11",
                "20250130 14:02:11",
            ),
        ];
        for (version, date_format, stored, shown) in cases {
            let p = profile(version, date_format);
            assert_eq!(readable_version(&p, stored), *shown, "{version} {stored}");
        }
        // A profile without a version (status of an old sync): the row's form.
        let none = profile("", "");
        assert_eq!(
            readable_version(&none, "2025-01-30 14:02:11"),
            "20250130 14:02:11"
        );
    }

    #[test]
    fn a_stamp_is_what_chrono_writes_for_every_year_and_second() {
        let dates = [
            (0, 1, 1),
            (1, 2, 3),
            (999, 12, 31),
            (2025, 1, 30),
            (2024, 2, 29),
            (9999, 12, 31),
            (10_000, 1, 1),
            (-1, 6, 15),
            (-44, 3, 15),
        ];
        let times = [(0, 0, 0, 0), (9, 5, 7, 0), (23, 59, 59, 999_999_999)];
        for (y, m, d) in dates {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            for (h, mi, s, n) in times {
                let time = NaiveTime::from_hms_nano_opt(h, mi, s, n).unwrap();
                let want = date.and_time(time).format("%Y-%m-%d %H:%M:%S").to_string();
                assert_eq!(stamp(date, time), want, "{date} {time}");
            }
            // A leap second: `%S` writes 60.
            let leap = NaiveTime::from_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap();
            let want = date.and_time(leap).format("%Y-%m-%d %H:%M:%S").to_string();
            assert_eq!(stamp(date, leap), want, "{date} leap second");
        }
    }

    #[test]
    fn stamps_sort_as_time() {
        let at = |day: u32, h: u32, m: u32| {
            stamp(
                NaiveDate::from_ymd_opt(2025, 1, day).unwrap(),
                NaiveTime::from_hms_opt(h, m, 0).unwrap(),
            )
        };
        let (early, later, next_day) = (at(30, 9, 5), at(30, 10, 0), at(31, 0, 0));
        assert!(
            early < later && later < next_day,
            "{early} {later} {next_day}"
        );
        assert_eq!(early, "2025-01-30 09:05:00");
    }
}
