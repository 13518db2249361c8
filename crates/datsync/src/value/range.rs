//! Exact comparison of decimals with the decimal text of profile range bounds.

use std::cmp::Ordering;

use crate::profile::{Bound, RangeRule};

/// Digits of a decimal in a comparable form: sign, integer digits without leading zeros,
/// fraction digits without trailing zeros. Zero is never negative.
#[derive(Debug, PartialEq, Eq)]
struct Normal {
    negative: bool,
    int: String,
    frac: String,
}

impl Normal {
    fn new(negative: bool, int: &str, frac: &str) -> Self {
        let int = int.trim_start_matches('0').to_owned();
        let frac = frac.trim_end_matches('0').to_owned();
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Self {
            negative,
            int,
            frac,
        }
    }

    fn from_mantissa(mantissa: i128, scale: u8) -> Self {
        let digits = format!(
            "{:0width$}",
            mantissa.unsigned_abs(),
            width = usize::from(scale) + 1
        );
        let (int, frac) = digits.split_at(digits.len() - usize::from(scale));
        Self::new(mantissa < 0, int, frac)
    }

    fn cmp(&self, other: &Self) -> Ordering {
        let magnitude = self
            .int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac));
        match (self.negative, other.negative) {
            (false, false) => magnitude,
            (true, true) => magnitude.reverse(),
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
        }
    }
}

/// Compares a decimal (`mantissa` at `scale`) with decimal text such as a profile bound
/// (`0`, `500`, `-0.5`; any number of digits), exactly. `None` when the text is not a plain
/// decimal.
pub fn compare_decimal_to_text(mantissa: i128, scale: u8, text: &str) -> Option<Ordering> {
    let t = super::trim(text);
    // A plain bound that fits the value's scale (`0`, `500`, `-0.5` at scale 6): the two
    // mantissas at the same scale compare as the numbers do. A bound written with `,` is not
    // decimal text here, so it takes the general reading (which refuses it).
    if !t.contains(',')
        && let Some(bound) = super::number::plain_decimal(t.as_bytes(), scale)
    {
        return Some(mantissa.cmp(&bound));
    }
    compare_digits(mantissa, scale, t)
}

/// [`compare_decimal_to_text`] digit by digit, for any bound (trimmed).
fn compare_digits(mantissa: i128, scale: u8, t: &str) -> Option<Ordering> {
    let (negative, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    Some(Normal::from_mantissa(mantissa, scale).cmp(&Normal::new(negative, int, frac)))
}

/// Whether a decimal (`mantissa` at `scale`) lies within `range`, compared exactly. Returns
/// the bound it breaks, or `None` when it is inside. A bound that is not decimal text counts
/// as broken, so a bad profile cannot let values through.
pub fn decimal_in_range(mantissa: i128, scale: u8, range: &RangeRule) -> Option<&Bound> {
    let breaks = |bound: &Bound, outside: Ordering| match compare_decimal_to_text(
        mantissa,
        scale,
        &bound.value,
    ) {
        None => true,
        Some(Ordering::Equal) => !bound.inclusive,
        Some(o) => o == outside,
    };
    if let Some(lower) = range.lower.as_ref().filter(|b| breaks(b, Ordering::Less)) {
        return Some(lower);
    }
    range
        .upper
        .as_ref()
        .filter(|b| breaks(b, Ordering::Greater))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "tests fail loudly on any unexpected value"
)]
mod tests {
    use super::*;
    use crate::value::parse_decimal;

    #[test]
    fn exact_comparison_with_bound_text() {
        use Ordering::{Equal, Greater, Less};
        for (mantissa, scale, text, want) in [
            (500_000_000, 6, "500", Some(Equal)),
            (500_000_001, 6, "500", Some(Greater)),
            (499_999_999, 6, "500", Some(Less)),
            (0, 6, "0", Some(Equal)),
            (0, 6, "-0", Some(Equal)),
            (1, 6, "0", Some(Greater)),
            (-1, 6, "0", Some(Less)),
            (-5, 1, "-0.5", Some(Equal)),
            (-6, 1, "-0.5", Some(Less)),
            (
                5,
                1,
                "0.50000000000000000000000000000000000000000001",
                Some(Less),
            ),
            (
                5,
                0,
                "10000000000000000000000000000000000000000000",
                Some(Less),
            ),
            (25, 2, "0.3", Some(Less)),
            (3, 1, "0.25", Some(Greater)),
            (1, 0, "abc", None),
            (1, 0, "", None),
            (1, 0, "1.2.3", None),
        ] {
            assert_eq!(
                compare_decimal_to_text(mantissa, scale, text),
                want,
                "{mantissa}e-{scale} vs {text}"
            );
        }
    }

    /// Plain bounds compared as mantissas agree with the digit-by-digit comparison.
    #[test]
    fn plain_bounds_compare_as_their_digits_do() {
        let bounds = [
            "0",
            "-0",
            "500",
            "-500",
            "0.5",
            "-0.5",
            ".5",
            "5.",
            "12.34",
            "-12.340",
            "999999999999999999",
            "0.000001",
            "0.0000001",
            "1,5",
            "+5",
            "007",
        ];
        let mantissas = [
            0,
            1,
            -1,
            5,
            -5,
            50,
            499_999_999,
            500_000_000,
            500_000_001,
            -500_000_000,
            12_340_000,
            i128::from(i64::MAX),
            -i128::from(i64::MAX),
        ];
        for bound in bounds {
            for scale in [0u8, 1, 2, 3, 6, 7, 20, 38] {
                for mantissa in mantissas {
                    assert_eq!(
                        compare_decimal_to_text(mantissa, scale, bound),
                        compare_digits(mantissa, scale, bound),
                        "{mantissa}e-{scale} vs {bound}"
                    );
                }
            }
        }
    }

    #[test]
    fn ranges_are_exact_at_the_bounds() {
        let range = RangeRule {
            lower: Some(Bound {
                value: "0".into(),
                inclusive: false,
            }),
            upper: Some(Bound {
                value: "500".into(),
                inclusive: true,
            }),
        };
        let check = |text: &str| {
            let m = parse_decimal(text, 6).unwrap().unwrap();
            decimal_in_range(m, 6, &range).map(|b| b.value.clone())
        };
        assert_eq!(check("500"), None);
        assert_eq!(check("500,000001"), Some("500".into()));
        assert_eq!(check("0,000001"), None);
        assert_eq!(check("0"), Some("0".into()));
        assert_eq!(check("-1"), Some("0".into()));
        assert_eq!(check("612.5"), Some("500".into()));
        let bad = RangeRule {
            lower: Some(Bound {
                value: "zero".into(),
                inclusive: true,
            }),
            upper: None,
        };
        assert!(decimal_in_range(1, 0, &bad).is_some());
    }
}
