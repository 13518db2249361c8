//! Exact decimals and integers from text written with `.` or `,` as the decimal separator.

use super::ValueError;

/// Digits of an Arrow `Decimal128` (and of the `numeric(38, s)` it loads into).
pub const DECIMAL_PRECISION: u8 = 38;

/// 10^38: a decimal mantissa must stay below this in magnitude.
const DECIMAL_LIMIT: i128 = 10i128.pow(DECIMAL_PRECISION as u32);

/// A number as written: sign, integer digits (thousands separators removed) and fraction
/// digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Parts<'a> {
    pub(super) negative: bool,
    /// The integer part, separators included.
    pub(super) int: &'a str,
    /// The thousands separator used in `int`, if any.
    thousands: Option<u8>,
    /// The fraction digits (after the decimal separator).
    pub(super) frac: &'a str,
}

impl Parts<'_> {
    /// The integer digits, without thousands separators.
    fn int_digits(&self) -> impl Iterator<Item = u8> + '_ {
        self.int.bytes().filter(u8::is_ascii_digit)
    }

    /// The integer part's value, or `None` past `i128`.
    fn int_value(&self) -> Option<i128> {
        self.int_digits().try_fold(0i128, |acc, d| {
            acc.checked_mul(10)?.checked_add(i128::from(d - b'0'))
        })
    }
}

/// Splits number text into its parts (`ztdwr.md` §3): if both `.` and `,` occur, the last of
/// them is the decimal separator and the other groups thousands; a single `.` or `,` is the
/// decimal separator (`1.234` is 1.234); a separator occurring several times groups thousands
/// (`1.234.567`). Thousands groups must be of three digits. A sign may lead, or trail (SAP
/// writes `12,50-`). Returns `Ok(None)` for blank text.
pub(super) fn split(text: &str) -> Result<Option<Parts<'_>>, ValueError> {
    let t = super::trim(text);
    if t.is_empty() {
        return Ok(None);
    }
    let (negative, body) = if let Some(rest) = t.strip_prefix('-') {
        (true, rest)
    } else if let Some(rest) = t.strip_prefix('+') {
        (false, rest)
    } else if let Some(rest) = t.strip_suffix('-') {
        (true, rest)
    } else {
        (false, t)
    };
    let b = body.as_bytes();
    if b.is_empty()
        || !b
            .iter()
            .all(|c| c.is_ascii_digit() || *c == b'.' || *c == b',')
    {
        return Err(ValueError::NotANumber);
    }
    let count = |sep: u8| memchr::memchr_iter(sep, b).count();
    let (dots, commas) = (count(b'.'), count(b','));
    let (decimal, thousands) = match (dots, commas) {
        (0, 0) => (None, None),
        (_, 0) | (0, _) => {
            let sep = if dots > 0 { b'.' } else { b',' };
            if dots + commas == 1 {
                (Some(sep), None)
            } else {
                (None, Some(sep))
            }
        }
        _ => {
            let last = b.iter().rposition(|&c| c == b'.' || c == b',').unwrap_or(0);
            let sep = b[last];
            let other = if sep == b'.' { b',' } else { b'.' };
            if count(sep) != 1 {
                return Err(ValueError::NotANumber);
            }
            (Some(sep), Some(other))
        }
    };
    let (int, frac) = match decimal.and_then(|sep| b.iter().position(|&c| c == sep)) {
        Some(at) => (&body[..at], &body[at + 1..]),
        None => (body, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(ValueError::NotANumber);
    }
    if let Some(sep) = thousands {
        let mut groups = int.split(char::from(sep));
        let first_ok = groups.next().is_some_and(|g| (1..=3).contains(&g.len()));
        if !first_ok || !groups.all(|g| g.len() == 3) {
            return Err(ValueError::NotANumber);
        }
    }
    Ok(Some(Parts {
        negative,
        int,
        thousands,
        frac,
    }))
}

/// Reads a decimal exactly as a mantissa at `scale` (the value times 10^scale), fit for an
/// Arrow `Decimal128(38, scale)`. Blank text is `Ok(None)`. More non-zero fraction digits than
/// `scale` is an error: a value is never rounded. Trailing zeros past the scale are exact and
/// accepted.
pub fn parse_decimal(text: &str, scale: u8) -> Result<Option<i128>, ValueError> {
    if let Some(mantissa) = plain_decimal(text.as_bytes(), scale) {
        return Ok(Some(mantissa));
    }
    parse_decimal_parts(text, scale)
}

/// [`parse_decimal`] of the plain form nearly every value takes, read in one pass with no
/// `i128` arithmetic per digit: an optional leading `-`, at most 18 digits with at most one
/// `.` or `,` among them (at least one digit), no more fraction digits than `scale`. `None`
/// for any other text, which [`parse_decimal_parts`] reads (with the same result for this
/// form: a single separator is the decimal separator).
#[inline]
pub(super) fn plain_decimal(text: &[u8], scale: u8) -> Option<i128> {
    const MAX_DIGITS: usize = 18;
    let (negative, body) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if body.is_empty() || body.len() > MAX_DIGITS + 1 {
        return None;
    }
    let mut value = 0u64;
    let mut separator = None;
    for (at, &b) in body.iter().enumerate() {
        match b {
            b'0'..=b'9' => value = value * 10 + u64::from(b - b'0'),
            b'.' | b',' if separator.is_none() => separator = Some(at),
            _ => return None,
        }
    }
    let (digits, frac) = match separator {
        Some(at) => (body.len() - 1, body.len() - 1 - at),
        None => (body.len(), 0),
    };
    if digits == 0 || digits > MAX_DIGITS || frac > usize::from(scale) {
        return None;
    }
    let exponent = u32::try_from(usize::from(scale) - frac).ok()?;
    let mantissa = i128::from(value).checked_mul(10i128.checked_pow(exponent)?)?;
    (mantissa < DECIMAL_LIMIT).then_some(if negative { -mantissa } else { mantissa })
}

/// [`parse_decimal`] of any form, through [`split`].
fn parse_decimal_parts(text: &str, scale: u8) -> Result<Option<i128>, ValueError> {
    let Some(parts) = split(text)? else {
        return Ok(None);
    };
    let scale_digits = usize::from(scale);
    let too_large = ValueError::TooLarge {
        digits: u16::from(DECIMAL_PRECISION),
    };
    let (kept, dropped) = parts.frac.split_at(parts.frac.len().min(scale_digits));
    if dropped.bytes().any(|d| d != b'0') {
        return Err(ValueError::TooManyDecimals { scale });
    }
    let mut mantissa = parts.int_value().ok_or(too_large)?;
    for d in kept
        .bytes()
        .chain(std::iter::repeat_n(b'0', scale_digits - kept.len()))
    {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(d - b'0')))
            .ok_or(too_large)?;
    }
    if mantissa >= DECIMAL_LIMIT {
        return Err(too_large);
    }
    Ok(Some(if parts.negative { -mantissa } else { mantissa }))
}

/// An integer read from text that may be written as a decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegerValue {
    /// The value, rounded half away from zero.
    pub value: i64,
    /// The text had no non-zero fraction digits (when false, the row gets a warning).
    pub whole: bool,
}

/// Reads an integer; a decimal-looking value (`2,5`, `3.0`) rounds half away from zero and
/// reports whether it was whole. Blank text is `Ok(None)`.
pub fn parse_integer(text: &str) -> Result<Option<IntegerValue>, ValueError> {
    let Some(parts) = split(text)? else {
        return Ok(None);
    };
    let too_large = ValueError::TooLarge { digits: 19 };
    let mut magnitude = parts.int_value().ok_or(too_large)?;
    let whole = parts.frac.bytes().all(|d| d == b'0');
    if parts.frac.as_bytes().first().is_some_and(|&d| d >= b'5') {
        magnitude += 1;
    }
    let value = if parts.negative {
        -magnitude
    } else {
        magnitude
    };
    let value = i64::try_from(value).map_err(|_| too_large)?;
    Ok(Some(IntegerValue { value, whole }))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "tests fail loudly on any unexpected value"
)]
mod tests {
    use super::*;

    const NAN: ValueError = ValueError::NotANumber;
    type Parsed = Result<Option<i128>, ValueError>;

    #[test]
    fn decimals_each_value_on_its_own() {
        use ValueError::{TooLarge, TooManyDecimals};
        let cases: &[(&str, u8, Parsed)] = &[
            ("12.5", 6, Ok(Some(12_500_000))),
            ("45,5", 6, Ok(Some(45_500_000))),
            ("1.234,56", 2, Ok(Some(123_456))),
            ("1,234.56", 2, Ok(Some(123_456))),
            ("1.234.567,8", 1, Ok(Some(12_345_678))),
            ("1,234,567.8", 1, Ok(Some(12_345_678))),
            // A single separator is the decimal separator: 1.234, not 1234.
            ("1.234", 3, Ok(Some(1_234))),
            ("1,234", 3, Ok(Some(1_234))),
            // A separator occurring several times groups thousands.
            ("1.234.567", 0, Ok(Some(1_234_567))),
            ("1,234,567", 2, Ok(Some(123_456_700))),
            ("0", 6, Ok(Some(0))),
            ("-0", 2, Ok(Some(0))),
            ("007", 0, Ok(Some(7))),
            ("-12.5", 1, Ok(Some(-125))),
            ("+12.5", 1, Ok(Some(125))),
            ("12,50-", 2, Ok(Some(-1250))),
            (".5", 1, Ok(Some(5))),
            ("5.", 1, Ok(Some(50))),
            (" 3,25 ", 2, Ok(Some(325))),
            ("", 2, Ok(None)),
            ("  ", 2, Ok(None)),
            // Exact: extra zeros are fine, extra digits are never rounded away.
            ("1.50000000", 2, Ok(Some(150))),
            ("1.005", 2, Err(TooManyDecimals { scale: 2 })),
            ("0.1234567", 6, Err(TooManyDecimals { scale: 6 })),
            (
                "99999999999999999999999999999999.999999",
                6,
                Ok(Some(99_999_999_999_999_999_999_999_999_999_999_999_999)),
            ),
            (
                "100000000000000000000000000000000",
                6,
                Err(TooLarge { digits: 38 }),
            ),
            (
                "9999999999999999999999999999999999999999999",
                0,
                Err(TooLarge { digits: 38 }),
            ),
            ("abc", 2, Err(NAN)),
            ("1e5", 2, Err(NAN)),
            ("12 5", 2, Err(NAN)),
            ("-", 2, Err(NAN)),
            (".", 2, Err(NAN)),
            ("--1", 2, Err(NAN)),
            ("-1-", 2, Err(NAN)),
            ("1.2.3,4,5", 2, Err(NAN)),
            ("1,234.5,6", 2, Err(NAN)),
            ("12.34.56", 2, Err(NAN)),
            ("1234.567,8", 2, Err(NAN)),
            ("1.23,5", 2, Err(NAN)),
            ("NaN", 2, Err(NAN)),
            ("inf", 2, Err(NAN)),
        ];
        for (text, scale, want) in cases {
            assert_eq!(
                &parse_decimal(text, *scale),
                want,
                "{text:?} at scale {scale}"
            );
        }
    }

    /// The plain form's one-pass reading gives what the general reading gives, on a table of
    /// forms and on many generated texts (digits, separators, signs, spaces, letters).
    #[test]
    fn the_plain_reading_agrees_with_the_general_one() {
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "7",
            "-7",
            "12.5",
            "12,5",
            "-12,5",
            ".5",
            "5.",
            "-.5",
            "-5.",
            ".",
            "-",
            "",
            "00012",
            "1.005",
            "1.000",
            "123456789012345678",
            "1234567890123456789",
            "12345678901234567.8",
            "999999999999999999",
            "-999999999999999999,",
            "1.2.3",
            "1,2",
            "1,234",
            "+1",
            "1-",
            " 1",
            "1 ",
            "1e5",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let alphabet = b"0123456789012345678901234567890123456789.,-+ x";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 23) as usize;
            let text: String = (0..len)
                .map(|i| {
                    let pick = (seed.rotate_left(i as u32 * 5) % alphabet.len() as u64) as usize;
                    char::from(alphabet[pick])
                })
                .collect();
            texts.push(text);
        }
        let mut plain = 0;
        for text in &texts {
            for scale in [0u8, 1, 2, 3, 6, 18, 20, 37, 38] {
                if let Some(fast) = plain_decimal(text.as_bytes(), scale) {
                    plain += 1;
                    assert_eq!(
                        parse_decimal_parts(text, scale),
                        Ok(Some(fast)),
                        "{text:?} at scale {scale}"
                    );
                }
                assert_eq!(
                    parse_decimal(text, scale),
                    parse_decimal_parts(text, scale),
                    "{text:?} at scale {scale}"
                );
            }
        }
        // The generated texts reach the plain path often, not only its refusals.
        assert!(plain > 10_000, "{plain} plain readings");
    }

    #[test]
    fn decimals_never_touch_floats() {
        // 0.1 + 0.2 style: the mantissa is the written digits exactly.
        assert_eq!(parse_decimal("0,1", 18), Ok(Some(100_000_000_000_000_000)));
        assert_eq!(
            parse_decimal("1234567890123456.789012", 6),
            Ok(Some(1_234_567_890_123_456_789_012))
        );
    }

    #[test]
    fn integers_round_half_away_from_zero() {
        let int = |value, whole| Ok(Some(IntegerValue { value, whole }));
        let cases: &[(&str, Result<Option<IntegerValue>, ValueError>)] = &[
            ("3", int(3, true)),
            ("003", int(3, true)),
            ("3.0", int(3, true)),
            ("3,000", int(3, true)),
            ("2.5", int(3, false)),
            ("2,5", int(3, false)),
            ("2.4999", int(2, false)),
            ("-2.5", int(-3, false)),
            ("-2.4", int(-2, false)),
            ("0.5", int(1, false)),
            ("1.234.567", int(1_234_567, true)),
            ("9223372036854775807", int(i64::MAX, true)),
            ("-9223372036854775808", int(i64::MIN, true)),
            ("", Ok(None)),
            (
                "9223372036854775808",
                Err(ValueError::TooLarge { digits: 19 }),
            ),
            (
                "9223372036854775807.5",
                Err(ValueError::TooLarge { digits: 19 }),
            ),
            ("x", Err(NAN)),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_integer(text), want, "{text:?}");
        }
    }
}
