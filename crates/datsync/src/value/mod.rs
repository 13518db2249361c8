//! Parsers of single text values (`ztdwr.md` §3): exact decimals, integers, booleans, dates
//! and times.
//!
//! Every function reads **one** value on its own; nothing is inferred from the other values
//! of a batch (the legacy loader picked one date format per batch and read `05.01.2025` as
//! 1 May). Input is the text the decoder produced (already marker-stripped and trimmed; it is
//! trimmed again here). Blank text has a meaning per type: `None` for decimals, integers,
//! booleans and dates, midnight for times. These functions never panic and never go through
//! a binary float.

mod datetime;
mod formatted;
mod number;
mod range;

pub use datetime::{date32_days, parse_date, parse_time, time64_micros, timestamp_micros};
pub use formatted::{
    check_format, parse_date_in, parse_float, parse_numeric, parse_time_in, parse_timestamp,
    parse_timestamptz,
};
pub use number::{DECIMAL_PRECISION, parse_decimal, parse_integer};
pub use range::decimal_in_range;

/// Why one text value could not be read as its column's type. The row, column and value
/// are carried by the caller's row error; this says only what is wrong with the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Characters that do not make a number, or separators in impossible places.
    #[error(
        "not a number: expected digits with an optional sign and `.`/`,` separators \
         (12.5, 45,5, 1.234,56)"
    )]
    NotANumber,
    /// A decimal with more (non-zero) fraction digits than the column keeps.
    #[error("more than {scale} decimal places: the column keeps {scale}, values are never rounded")]
    TooManyDecimals {
        /// The column's scale.
        scale: u8,
    },
    /// A number too large for its column.
    #[error("number too large for the column (at most {digits} digits)")]
    TooLarge {
        /// The most digits the column holds.
        digits: u16,
    },
    /// Not one of the boolean words.
    #[error("not a boolean: expected X, 1, Y, YES, TRUE, T or 0, N, NO, FALSE, F")]
    NotABoolean,
    /// Not in a date format.
    #[error("not a date: expected YYYYMMDD, DD.MM.YYYY or YYYY-MM-DD")]
    DateFormat,
    /// A date in a known format that does not exist (`20250230`).
    #[error("impossible date")]
    ImpossibleDate,
    /// Not in a time format.
    #[error("not a time: expected HHMMSS, HHMM, HH, HH:MM:SS or HH:MM")]
    TimeFormat,
    /// A time in a known format that does not exist (`2400`, `996100`).
    #[error("impossible time")]
    ImpossibleTime,
    /// Not in the column's own strftime `format`.
    #[error("does not match the column's `format`")]
    NotInFormat,
    /// Not a timestamp in the default forms.
    #[error(
        "not a timestamp: expected YYYY-MM-DD HH:MM[:SS[.ffffff]] (or with T), or give the \
         column a `format`"
    )]
    TimestampFormat,
    /// Not a timestamp with a time zone in the default forms.
    #[error(
        "not a timestamp with a time zone: expected ISO 8601 with an offset or Z \
         (2020-10-12T02:39:52Z, 2020-10-12 02:39:52+05:30), or give the column a `format`"
    )]
    TimestampTzFormat,
}

/// `text` without leading and trailing whitespace, exactly as [`str::trim`] leaves it: a value
/// that starts and ends with a visible ASCII character (as nearly every field does) is returned
/// as it is, without the character-by-character walk `str::trim` takes from both ends.
#[inline]
pub fn trim(text: &str) -> &str {
    match text.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => text,
        [only] if only.is_ascii_graphic() => text,
        _ => text.trim(),
    }
}

/// Reads a boolean: true `X 1 Y YES TRUE T`, false `0 N NO FALSE F` (any case), blank
/// `None`; anything else is an error (the caller loads NULL and warns).
pub fn parse_bool(text: &str) -> Result<Option<bool>, ValueError> {
    const TRUE: [&str; 6] = ["X", "1", "Y", "YES", "TRUE", "T"];
    const FALSE: [&str; 5] = ["0", "N", "NO", "FALSE", "F"];
    let t = trim(text);
    if t.is_empty() {
        Ok(None)
    } else if TRUE.iter().any(|w| w.eq_ignore_ascii_case(t)) {
        Ok(Some(true))
    } else if FALSE.iter().any(|w| w.eq_ignore_ascii_case(t)) {
        Ok(Some(false))
    } else {
        Err(ValueError::NotABoolean)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "tests fail loudly on any unexpected value"
)]
mod tests {
    use super::*;

    #[test]
    fn trim_leaves_what_str_trim_leaves() {
        // Every kind of end: visible ASCII, ASCII whitespace (vertical tab and form feed
        // too), Unicode whitespace (NBSP, NEL, ideographic space), other non-ASCII
        // characters, control characters that are not whitespace.
        let ends = [
            "", "a", "7", "~", " ", "\t", "\n", "\r", "\u{b}", "\u{c}", "\u{a0}", "\u{85}",
            "\u{3000}", "é", "€", "\u{1c}", "\u{0}", "\u{7f}",
        ];
        for head in ends {
            for tail in ends {
                for middle in ["", "x", " ", "a b", "\u{a0}"] {
                    let text = format!("{head}{middle}{tail}");
                    assert_eq!(trim(&text), text.trim(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn booleans() {
        for (text, want) in [
            ("X", Ok(Some(true))),
            ("x", Ok(Some(true))),
            ("1", Ok(Some(true))),
            ("Y", Ok(Some(true))),
            ("yes", Ok(Some(true))),
            ("Yes", Ok(Some(true))),
            ("TRUE", Ok(Some(true))),
            ("true", Ok(Some(true))),
            ("t", Ok(Some(true))),
            (" X ", Ok(Some(true))),
            ("0", Ok(Some(false))),
            ("N", Ok(Some(false))),
            ("no", Ok(Some(false))),
            ("False", Ok(Some(false))),
            ("f", Ok(Some(false))),
            ("", Ok(None)),
            ("   ", Ok(None)),
            ("2", Err(ValueError::NotABoolean)),
            ("XX", Err(ValueError::NotABoolean)),
            ("ON", Err(ValueError::NotABoolean)),
            ("00", Err(ValueError::NotABoolean)),
            ("-", Err(ValueError::NotABoolean)),
        ] {
            assert_eq!(parse_bool(text), want, "{text:?}");
        }
    }
}
