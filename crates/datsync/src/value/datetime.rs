//! Dates (`YYYYMMDD`, `DD.MM.YYYY`, `YYYY-MM-DD`) and times (`HHMMSS`, `HHMM`, `HH`,
//! `HH:MM:SS`, `HH:MM`), each value read on its own.

use chrono::{NaiveDate, NaiveTime, Timelike};

use super::ValueError;

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// The value of an ASCII digit string, or `None` if it has another character, is empty or
/// has more than nine digits.
#[inline]
fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Reads a date: `YYYYMMDD`, `DD.MM.YYYY` (day first, always; `D.M.YYYY` too) or ISO
/// `YYYY-MM-DD`. Blank and an all-zero date (`00000000`, `00.00.0000`, `0000-00-00`) are
/// `Ok(None)`. A date in one of these formats that does not exist (`20250230`, year 0) is
/// [`ValueError::ImpossibleDate`]; anything else is [`ValueError::DateFormat`].
///
/// Read on the bytes, with no allocation: it runs for every date of every row.
pub fn parse_date(text: &str) -> Result<Option<NaiveDate>, ValueError> {
    let t = super::trim(text).as_bytes();
    if t.is_empty() {
        return Ok(None);
    }
    // The text cut at every `.` and `-`: one part, or three.
    let mut parts: [&[u8]; 3] = [&[]; 3];
    let mut count = 0;
    for part in t.split(|&b| b == b'.' || b == b'-') {
        *parts.get_mut(count).ok_or(ValueError::DateFormat)? = part;
        count += 1;
    }
    let (y, m, d) = match (count, parts) {
        (1, [ymd, ..]) if ymd.len() == 8 => (&ymd[..4], &ymd[4..6], &ymd[6..]),
        (3, [d, m, y]) if t.contains(&b'.') && d.len() <= 2 && m.len() <= 2 && y.len() == 4 => {
            (y, m, d)
        }
        (3, [y, m, d]) if t.contains(&b'-') && y.len() == 4 && m.len() <= 2 && d.len() <= 2 => {
            (y, m, d)
        }
        _ => return Err(ValueError::DateFormat),
    };
    let (Some(y), Some(m), Some(d)) = (digits(y), digits(m), digits(d)) else {
        return Err(ValueError::DateFormat);
    };
    if (y, m, d) == (0, 0, 0) {
        return Ok(None);
    }
    let year = i32::try_from(y).map_err(|_| ValueError::ImpossibleDate)?;
    if year == 0 {
        return Err(ValueError::ImpossibleDate);
    }
    NaiveDate::from_ymd_opt(year, m, d)
        .map(Some)
        .ok_or(ValueError::ImpossibleDate)
}

/// Reads a time of day: `HHMMSS`, `HHMM`, `HH`, `HH:MM:SS` or `HH:MM` (`H:MM` too). Blank
/// and `000000` are midnight. A time in one of these formats that does not exist (`2400`,
/// `996100`) is [`ValueError::ImpossibleTime`]; anything else is [`ValueError::TimeFormat`].
/// Leading zeros are significant: a five-digit `93000` is not guessed to be `093000`.
pub fn parse_time(text: &str) -> Result<NaiveTime, ValueError> {
    let t = super::trim(text).as_bytes();
    if t.is_empty() {
        return Ok(NaiveTime::MIN);
    }
    let mut hms = [0u32; 3];
    if t.contains(&b':') {
        // At least two parts, then: a `:` has one on each side.
        for (index, part) in t.split(|&b| b == b':').enumerate() {
            let size_ok = if index == 0 {
                (1..=2).contains(&part.len())
            } else {
                part.len() == 2
            };
            let slot = hms.get_mut(index).filter(|_| size_ok);
            *slot.ok_or(ValueError::TimeFormat)? = digits(part).ok_or(ValueError::TimeFormat)?;
        }
    } else {
        if !matches!(t.len(), 2 | 4 | 6) {
            return Err(ValueError::TimeFormat);
        }
        for (slot, pair) in hms.iter_mut().zip(t.chunks(2)) {
            *slot = digits(pair).ok_or(ValueError::TimeFormat)?;
        }
    }
    NaiveTime::from_hms_opt(hms[0], hms[1], hms[2]).ok_or(ValueError::ImpossibleTime)
}

/// Days since 1970-01-01, as in an Arrow `Date32`.
pub fn date32_days(date: NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_DAYS_FROM_CE
}

/// Microseconds since midnight, as in an Arrow `Time64(Microsecond)` (nanoseconds rounded
/// half up, as PostgreSQL rounds).
pub fn time64_micros(time: NaiveTime) -> i64 {
    i64::from(time.num_seconds_from_midnight()) * 1_000_000
        + (i64::from(time.nanosecond()) + 500) / 1_000
}

/// Microseconds since 1970-01-01 00:00 of a naive local date and time, as in an Arrow
/// `Timestamp(Microsecond, None)`.
pub fn timestamp_micros(date: NaiveDate, time: NaiveTime) -> i64 {
    i64::from(date32_days(date)) * 86_400_000_000 + time64_micros(time)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "tests fail loudly on any unexpected value"
)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    #[test]
    fn dates_each_value_on_its_own() {
        use ValueError::{DateFormat, ImpossibleDate};
        let cases = [
            ("20250129", Ok(ymd(2025, 1, 29))),
            ("29.01.2025", Ok(ymd(2025, 1, 29))),
            ("2025-01-29", Ok(ymd(2025, 1, 29))),
            // Day first, always: 5 January, not 1 May (do not copy the legacy loader).
            ("05.01.2025", Ok(ymd(2025, 1, 5))),
            ("5.1.2025", Ok(ymd(2025, 1, 5))),
            ("13.01.2025", Ok(ymd(2025, 1, 13))),
            ("2025-1-5", Ok(ymd(2025, 1, 5))),
            ("20240229", Ok(ymd(2024, 2, 29))),
            (" 20250129 ", Ok(ymd(2025, 1, 29))),
            ("00010101", Ok(ymd(1, 1, 1))),
            ("99991231", Ok(ymd(9999, 12, 31))),
            ("00000000", Ok(None)),
            ("00.00.0000", Ok(None)),
            ("0000-00-00", Ok(None)),
            ("", Ok(None)),
            ("20250230", Err(ImpossibleDate)),
            ("20250229", Err(ImpossibleDate)),
            ("30.02.2025", Err(ImpossibleDate)),
            ("01.13.2025", Err(ImpossibleDate)),
            ("2025-13-01", Err(ImpossibleDate)),
            ("20250001", Err(ImpossibleDate)),
            ("20250100", Err(ImpossibleDate)),
            ("00001231", Err(ImpossibleDate)),
            ("2025012", Err(DateFormat)),
            ("202501290", Err(DateFormat)),
            ("29/01/2025", Err(DateFormat)),
            ("01.29", Err(DateFormat)),
            ("29.01.25", Err(DateFormat)),
            ("2025.01.29", Err(DateFormat)),
            ("29-01-2025", Err(DateFormat)),
            ("2025-01-29T00:00", Err(DateFormat)),
            ("2025+129", Err(DateFormat)),
            ("abcdefgh", Err(DateFormat)),
            ("-2025-01", Err(DateFormat)),
            ("+2025012", Err(DateFormat)),
            // Eight bytes that are not eight characters: never cut inside a character.
            ("€€ab", Err(DateFormat)),
            ("ab€€", Err(DateFormat)),
            ("2025-01-29-", Err(DateFormat)),
            ("29..2025", Err(DateFormat)),
            ("29.01-2025", Ok(ymd(2025, 1, 29))),
            ("\u{a0}20250129\u{3000}", Ok(ymd(2025, 1, 29))),
            ("2025012\u{0}", Err(DateFormat)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_date(text), want, "{text:?}");
        }
    }

    #[test]
    fn one_format_per_value_not_per_batch() {
        // The same batch mixing every format: each value keeps its own reading.
        let batch = [
            "05.01.2025",
            "20250105",
            "2025-01-05",
            "12.01.2025",
            "20250112",
        ];
        let got: Vec<_> = batch
            .iter()
            .map(|t| parse_date(t).unwrap().unwrap())
            .collect();
        assert_eq!(got[0], got[1]);
        assert_eq!(got[1], got[2]);
        assert_eq!(got[3], got[4]);
    }

    fn hms(h: u32, m: u32, s: u32) -> Result<NaiveTime, ValueError> {
        NaiveTime::from_hms_opt(h, m, s).ok_or(ValueError::ImpossibleTime)
    }

    #[test]
    fn times_keep_leading_zeros() {
        use ValueError::{ImpossibleTime, TimeFormat};
        let cases = [
            ("143022", hms(14, 30, 22)),
            ("070502", hms(7, 5, 2)),
            ("000001", hms(0, 0, 1)),
            ("1430", hms(14, 30, 0)),
            ("0705", hms(7, 5, 0)),
            ("14", hms(14, 0, 0)),
            ("07", hms(7, 0, 0)),
            ("14:30:22", hms(14, 30, 22)),
            ("07:05", hms(7, 5, 0)),
            ("7:05", hms(7, 5, 0)),
            ("235959", hms(23, 59, 59)),
            ("000000", hms(0, 0, 0)),
            ("", hms(0, 0, 0)),
            ("  ", hms(0, 0, 0)),
            ("2400", Err(ImpossibleTime)),
            ("240000", Err(ImpossibleTime)),
            ("996100", Err(ImpossibleTime)),
            ("126000", Err(ImpossibleTime)),
            ("125960", Err(ImpossibleTime)),
            ("24:00", Err(ImpossibleTime)),
            ("25", Err(ImpossibleTime)),
            ("93000", Err(TimeFormat)),
            ("9", Err(TimeFormat)),
            ("1430221", Err(TimeFormat)),
            ("14:3", Err(TimeFormat)),
            ("14:30:22:00", Err(TimeFormat)),
            ("14", hms(14, 0, 0)),
            ("14:", Err(TimeFormat)),
            (":30", Err(TimeFormat)),
            ("1a30", Err(TimeFormat)),
            ("+1430", Err(TimeFormat)),
            ("14.30", Err(TimeFormat)),
            ("é1", Err(TimeFormat)),
            ("€€", Err(TimeFormat)),
            ("14:30:", Err(TimeFormat)),
            ("14::30", Err(TimeFormat)),
            ("1:2", Err(TimeFormat)),
            ("\u{a0}1430\u{a0}", hms(14, 30, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_time(text), want, "{text:?}");
        }
    }

    #[test]
    fn arrow_units() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        assert_eq!(date32_days(epoch), 0);
        let d = NaiveDate::from_ymd_opt(2025, 1, 29).unwrap();
        assert_eq!(date32_days(d), 20_117);
        assert_eq!(
            date32_days(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()),
            -1
        );
        let t = NaiveTime::from_hms_opt(14, 30, 22).unwrap();
        assert_eq!(time64_micros(t), 52_222_000_000);
        assert_eq!(
            timestamp_micros(d, t),
            d.and_time(t).and_utc().timestamp_micros()
        );
    }
}
