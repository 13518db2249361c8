//! Values of the types and formats beyond ZTDWR's (issue 18 item 2): a column's own
//! strftime `format` for dates, times and timestamps; single-column timestamps (ISO 8601 by
//! default); `timestamptz` (ISO 8601 with an offset or `Z` by default, stored in UTC);
//! `float` (`double precision`) and `numeric` (a decimal without a fixed scale, kept as its
//! exact digits).
//!
//! Like the rest of [`super`], every function reads one value on its own and never panics.
//! Times are microseconds, rounded half up from the text's nanoseconds as PostgreSQL rounds.

use chrono::format::{Item, ParseErrorKind, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use super::ValueError;
use super::datetime::{date32_days, parse_date, parse_time};
use super::number::{Parts, split};

/// Most digits of a `numeric` value (PostgreSQL's own limit is far higher; a longer value
/// in an extract is a mistake).
pub const NUMERIC_MAX_DIGITS: u16 = 1000;

/// The default forms of a single-column `timestamp` (`T` or a space between date and time).
const TIMESTAMP_FORMS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];

/// The default forms of a `timestamptz` (the offset `+hh`, `+hhmm` or `+hh:mm`; `Z` is read
/// as `+00:00`).
const TIMESTAMPTZ_FORMS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%d %H:%M%#z",
];

/// Checks a strftime format for a profile: `Err` names what chrono cannot use.
pub fn check_format(format: &str) -> Result<(), String> {
    if format.trim().is_empty() {
        return Err("the format is empty".into());
    }
    if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        return Err(format!(
            "`{format}` is not a strftime format chrono can read (see \
             https://docs.rs/chrono/latest/chrono/format/strftime/)"
        ));
    }
    Ok(())
}

/// A date in the column's `format`, or in ZTDWR's forms without one ([`parse_date`]).
/// Blank is `Ok(None)`.
pub fn parse_date_in(text: &str, format: Option<&str>) -> Result<Option<NaiveDate>, ValueError> {
    let t = super::trim(text);
    match format {
        None => parse_date(t),
        Some(_) if t.is_empty() => Ok(None),
        Some(f) => NaiveDate::parse_from_str(t, f)
            .map(Some)
            .map_err(|_| ValueError::NotInFormat),
    }
}

/// A time of day in the column's `format`, or in ZTDWR's forms without one
/// ([`parse_time`]). Blank is midnight.
pub fn parse_time_in(text: &str, format: Option<&str>) -> Result<NaiveTime, ValueError> {
    let t = super::trim(text);
    match format {
        None => parse_time(t),
        Some(_) if t.is_empty() => Ok(NaiveTime::MIN),
        Some(f) => NaiveTime::parse_from_str(t, f).map_err(|_| ValueError::NotInFormat),
    }
}

/// Microseconds since 1970-01-01 00:00 of a naive date and time, the nanoseconds rounded
/// half up (a leap second rolls into the next minute, as in PostgreSQL).
pub fn naive_micros(stamp: NaiveDateTime) -> i64 {
    let day = i64::from(date32_days(stamp.date())) * 86_400_000_000;
    let time = stamp.time();
    day + i64::from(time.num_seconds_from_midnight()) * 1_000_000
        + (i64::from(time.nanosecond()) + 500) / 1_000
}

/// A single-column `timestamp`: in the column's `format`, or ISO 8601 without one
/// (`2025-01-29T14:30:22.5`, `2025-01-29 14:30`, or a date alone at midnight). Blank is
/// `Ok(None)`; the result is microseconds since 1970-01-01 (naive local time).
pub fn parse_timestamp(text: &str, format: Option<&str>) -> Result<Option<i64>, ValueError> {
    let t = super::trim(text);
    if t.is_empty() {
        return Ok(None);
    }
    if let Some(f) = format {
        return match NaiveDateTime::parse_from_str(t, f) {
            Ok(stamp) => Ok(Some(naive_micros(stamp))),
            // A format of a date alone: midnight.
            Err(e) if e.kind() == ParseErrorKind::NotEnough => NaiveDate::parse_from_str(t, f)
                .map(|d| Some(naive_micros(d.and_time(NaiveTime::MIN))))
                .map_err(|_| ValueError::NotInFormat),
            Err(_) => Err(ValueError::NotInFormat),
        };
    }
    if let Some(stamp) = TIMESTAMP_FORMS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    {
        return Ok(Some(naive_micros(stamp)));
    }
    match parse_date(t) {
        Ok(date) => Ok(date.map(|d| naive_micros(d.and_time(NaiveTime::MIN)))),
        Err(ValueError::ImpossibleDate) => Err(ValueError::ImpossibleDate),
        Err(_) => Err(ValueError::TimestampFormat),
    }
}

/// `Z`/`z` at the end written as `+00:00`, which chrono's offset specifiers read.
fn zulu(t: &str) -> std::borrow::Cow<'_, str> {
    match t.strip_suffix(['Z', 'z']) {
        Some(rest) => format!("{rest}+00:00").into(),
        None => t.into(),
    }
}

/// A `timestamptz`: in the column's `format`, or ISO 8601 with an offset or `Z` without one
/// (`2020-10-12T02:39:52Z`, `2020-10-12 02:39:52.25+05:30`, `… +0530`, `… +05`). Without a
/// format, a value without an offset is read as UTC; so is every value of a format without
/// an offset. Blank is `Ok(None)`; the
/// result is microseconds since 1970-01-01 UTC.
pub fn parse_timestamptz(text: &str, format: Option<&str>) -> Result<Option<i64>, ValueError> {
    let t = super::trim(text);
    if t.is_empty() {
        return Ok(None);
    }
    let z = zulu(t);
    let utc = |d: DateTime<chrono::FixedOffset>| naive_micros(d.naive_utc());
    if let Some(f) = format {
        return match DateTime::parse_from_str(&z, f) {
            Ok(d) => Ok(Some(utc(d))),
            Err(e)
                if matches!(
                    e.kind(),
                    ParseErrorKind::NotEnough | ParseErrorKind::TooShort
                ) =>
            {
                // No offset in the format (or the value): UTC.
                parse_timestamp(t, Some(f))
            }
            Err(_) => Err(ValueError::NotInFormat),
        };
    }
    if let Some(d) = TIMESTAMPTZ_FORMS
        .iter()
        .find_map(|f| DateTime::parse_from_str(&z, f).ok())
    {
        return Ok(Some(utc(d)));
    }
    // No offset: UTC.
    parse_timestamp(t, None).map_err(|e| match e {
        ValueError::ImpossibleDate => e,
        _ => ValueError::TimestampTzFormat,
    })
}

/// A `double precision`: Rust's (and PostgreSQL's) float syntax (`1.5`, `-2e-3`, `.5`,
/// `NaN`, `Infinity`), or ZTDWR's decimal forms (`45,5`, `1.234,56`, `12,50-`). Blank is
/// `Ok(None)`.
pub fn parse_float(text: &str) -> Result<Option<f64>, ValueError> {
    let t = super::trim(text);
    if t.is_empty() {
        return Ok(None);
    }
    if let Ok(v) = t.parse::<f64>() {
        return Ok(Some(v));
    }
    let Some(parts) = split(t)? else {
        return Ok(None);
    };
    let plain = numeric_text(&parts)?;
    plain
        .parse::<f64>()
        .map(Some)
        .map_err(|_| ValueError::NotANumber)
}

/// A `numeric` without a fixed scale: the exact value as PostgreSQL's canonical text (sign,
/// integer digits without leading zeros, every fraction digit as written), from the same
/// forms as a decimal (`12.50`, `45,5`, `1.234,56`, `12,50-`). Blank is `Ok(None)`.
pub fn parse_numeric(text: &str) -> Result<Option<String>, ValueError> {
    let Some(parts) = split(text)? else {
        return Ok(None);
    };
    numeric_text(&parts).map(Some)
}

fn numeric_text(parts: &Parts<'_>) -> Result<String, ValueError> {
    let int: String = parts
        .int
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|&d| d == b'0')
        .map(char::from)
        .collect();
    if int.len() + parts.frac.len() > usize::from(NUMERIC_MAX_DIGITS) {
        return Err(ValueError::TooLarge {
            digits: NUMERIC_MAX_DIGITS,
        });
    }
    let zero = int.is_empty() && parts.frac.bytes().all(|d| d == b'0');
    let mut out = String::with_capacity(int.len() + parts.frac.len() + 3);
    if parts.negative && !zero {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { &int });
    if !parts.frac.is_empty() {
        out.push('.');
        out.push_str(parts.frac);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "tests fail loudly on any unexpected value"
)]
mod tests {
    use super::*;
    use ValueError::{ImpossibleDate, NotANumber, NotInFormat, TimestampFormat, TimestampTzFormat};

    /// Microseconds of a UTC date and time.
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micro: u32) -> i64 {
        naive_micros(
            NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_micro_opt(h, mi, s, micro)
                .unwrap(),
        )
    }

    #[test]
    fn dates_in_a_format() {
        let us = Some("%m/%d/%Y");
        let ymd = |y, m, d| Ok(NaiveDate::from_ymd_opt(y, m, d));
        for (text, format, want) in [
            ("10/08/2008", us, ymd(2008, 10, 8)),
            ("1/5/2008", us, ymd(2008, 1, 5)),
            (" 12/31/1999 ", us, ymd(1999, 12, 31)),
            ("02/29/2024", us, ymd(2024, 2, 29)),
            ("", us, Ok(None)),
            ("02/30/2024", us, Err(NotInFormat)),
            ("2008-10-08", us, Err(NotInFormat)),
            ("10/08/2008 12:00", us, Err(NotInFormat)),
            ("13/01/2008", us, Err(NotInFormat)),
            // No format: ZTDWR's forms, day first.
            ("05.01.2025", None, ymd(2025, 1, 5)),
            ("10/08/2008", None, Err(ValueError::DateFormat)),
            ("20250230", None, Err(ImpossibleDate)),
            ("08-Oct-2008", Some("%d-%b-%Y"), ymd(2008, 10, 8)),
        ] {
            assert_eq!(parse_date_in(text, format), want, "{text:?} {format:?}");
        }
    }

    #[test]
    fn times_in_a_format() {
        let hms = |h, m, s| Ok(NaiveTime::from_hms_opt(h, m, s).unwrap());
        for (text, format, want) in [
            ("02:39 PM", Some("%I:%M %p"), hms(14, 39, 0)),
            ("14h30", Some("%Hh%M"), hms(14, 30, 0)),
            ("", Some("%H:%M"), hms(0, 0, 0)),
            ("25:00", Some("%H:%M"), Err(NotInFormat)),
            ("143022", None, hms(14, 30, 22)),
        ] {
            assert_eq!(parse_time_in(text, format), want, "{text:?}");
        }
        let t = parse_time_in("14:30:22.1234567", Some("%H:%M:%S%.f")).unwrap();
        // Rounded half up to microseconds, as PostgreSQL does.
        assert_eq!(super::super::time64_micros(t), 52_222_123_457);
    }

    #[test]
    fn timestamps() {
        let iso = Some("%Y-%m-%dT%H:%M:%S%.f");
        for (text, format, want) in [
            (
                "2020-10-12T02:39:52",
                None,
                Ok(Some(at(2020, 10, 12, 2, 39, 52, 0))),
            ),
            (
                "2020-10-12 02:39:52.25",
                None,
                Ok(Some(at(2020, 10, 12, 2, 39, 52, 250_000))),
            ),
            (
                "2020-10-12 02:39",
                None,
                Ok(Some(at(2020, 10, 12, 2, 39, 0, 0))),
            ),
            ("2020-10-12", None, Ok(Some(at(2020, 10, 12, 0, 0, 0, 0)))),
            ("20201012", None, Ok(Some(at(2020, 10, 12, 0, 0, 0, 0)))),
            (
                "2020-10-12T23:59:60",
                None,
                Ok(Some(at(2020, 10, 13, 0, 0, 0, 0))),
            ),
            ("", None, Ok(None)),
            ("2020-02-30 10:00", None, Err(TimestampFormat)),
            ("2020-02-30", None, Err(ImpossibleDate)),
            ("10/12/2020 02:39", None, Err(TimestampFormat)),
            ("2020-10-12T02:39:52Z", None, Err(TimestampFormat)),
            (
                "2020-10-12T02:39:52.000001",
                iso,
                Ok(Some(at(2020, 10, 12, 2, 39, 52, 1))),
            ),
            (
                "10/12/2020 2:39 PM",
                Some("%m/%d/%Y %I:%M %p"),
                Ok(Some(at(2020, 10, 12, 14, 39, 0, 0))),
            ),
            (
                "10/12/2020",
                Some("%m/%d/%Y"),
                Ok(Some(at(2020, 10, 12, 0, 0, 0, 0))),
            ),
            ("2020-10-12", iso, Err(NotInFormat)),
        ] {
            assert_eq!(parse_timestamp(text, format), want, "{text:?} {format:?}");
        }
    }

    #[test]
    fn timestamps_with_time_zones() {
        let utc = |h, mi, s, micro| Ok(Some(at(2020, 10, 12, h, mi, s, micro)));
        let rfc = Some("%Y-%m-%dT%H:%M:%S%.f%:z");
        for (text, format, want) in [
            ("2020-10-12T02:39:52Z", None, utc(2, 39, 52, 0)),
            ("2020-10-12T02:39:52z", None, utc(2, 39, 52, 0)),
            ("2020-10-12 02:39:52+00", None, utc(2, 39, 52, 0)),
            ("2020-10-12T08:09:52.5+05:30", None, utc(2, 39, 52, 500_000)),
            ("2020-10-12T08:09:52+0530", None, utc(2, 39, 52, 0)),
            ("2020-10-11T21:39:52-05", None, utc(2, 39, 52, 0)),
            ("2020-10-12T02:39Z", None, utc(2, 39, 0, 0)),
            // No offset: UTC.
            ("2020-10-12 02:39:52", None, utc(2, 39, 52, 0)),
            ("2020-10-12", None, utc(0, 0, 0, 0)),
            ("", None, Ok(None)),
            ("2020-10-12T02:39:52+25:00", None, Err(TimestampTzFormat)),
            ("12/10/2020 02:39:52Z", None, Err(TimestampTzFormat)),
            ("2020-10-32T02:39:52Z", None, Err(TimestampTzFormat)),
            ("2020-10-12T02:39:52.123456Z", rfc, utc(2, 39, 52, 123_456)),
            ("2020-10-12T04:39:52+02:00", rfc, utc(2, 39, 52, 0)),
            // The format asks for an offset.
            ("2020-10-12T02:39:52", rfc, Err(NotInFormat)),
            ("2020-10-12", rfc, Err(NotInFormat)),
            ("12.10.2020 02:39", Some("%d.%m.%Y %H:%M"), utc(2, 39, 0, 0)),
        ] {
            assert_eq!(parse_timestamptz(text, format), want, "{text:?} {format:?}");
        }
    }

    #[test]
    fn floats() {
        for (text, want) in [
            ("1.5", Ok(Some(1.5))),
            ("-2e-3", Ok(Some(-0.002))),
            (".5", Ok(Some(0.5))),
            ("1.", Ok(Some(1.0))),
            ("+7", Ok(Some(7.0))),
            ("1E300", Ok(Some(1e300))),
            ("45,5", Ok(Some(45.5))),
            ("1.234,56", Ok(Some(1234.56))),
            ("12,50-", Ok(Some(-12.5))),
            ("Infinity", Ok(Some(f64::INFINITY))),
            ("-inf", Ok(Some(f64::NEG_INFINITY))),
            ("", Ok(None)),
            ("1.5.5.5", Err(NotANumber)),
            ("abc", Err(NotANumber)),
            ("1e", Err(NotANumber)),
        ] {
            assert_eq!(parse_float(text), want, "{text:?}");
        }
        assert!(parse_float("NaN").unwrap().unwrap().is_nan());
    }

    #[test]
    fn numerics_keep_every_digit() {
        let n = |s: &str| Ok(Some(s.to_owned()));
        for (text, want) in [
            ("12.50", n("12.50")),
            ("0012.5", n("12.5")),
            ("-0.000", n("0.000")),
            ("-.5", n("-0.5")),
            ("45,5", n("45.5")),
            ("1.234,56", n("1234.56")),
            ("12,50-", n("-12.50")),
            (
                "0.123456789012345678901234567890",
                n("0.123456789012345678901234567890"),
            ),
            (
                "123456789012345678901234567890123456789012",
                n("123456789012345678901234567890123456789012"),
            ),
            ("", Ok(None)),
            ("1e5", Err(NotANumber)),
            ("12 kg", Err(NotANumber)),
        ] {
            assert_eq!(parse_numeric(text), want, "{text:?}");
        }
        let long = "9".repeat(1001);
        assert!(parse_numeric(&long).is_err());
    }

    #[test]
    fn formats_are_checked() {
        assert!(check_format("%m/%d/%Y").is_ok());
        assert!(check_format("%Y-%m-%dT%H:%M:%S%.f%:z").is_ok());
        assert!(check_format("%Q").is_err());
        assert!(check_format("").is_err());
    }
}
