//! What an existing (adopted) target column can hold when it is narrower than the type
//! datsync would create for its profile column: a 16- or 32-bit integer, `varchar(n)`,
//! `numeric(p,s)`. Read from the table by `pg` (`init-db`, and every run), carried on the
//! [`super::Column`], and checked value by value by the transform and by validation: a value
//! that does not fit is a value warning (NULL, or a rejected row under `on_invalid =
//! "reject"`), never a failed chunk.

use std::fmt;

/// A stored column type narrower than the profile type's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredType {
    /// `smallint` (16) or `integer` (32).
    Integer {
        /// Bits: 16 or 32.
        bits: u8,
    },
    /// `varchar(n)` or `char(n)`: at most `max` characters.
    Chars {
        /// The declared length.
        max: u32,
    },
    /// `numeric(p,s)`.
    Numeric {
        /// Total significant digits.
        precision: u16,
        /// Digits after the decimal point.
        scale: u16,
    },
}

impl StoredType {
    /// Reads PostgreSQL's `format_type()` text, `None` for any type without a limit datsync
    /// checks (`text`, `bigint`, unconstrained `numeric`, timestamps, …).
    pub fn from_sql(formatted: &str) -> Option<Self> {
        let (name, args) = match formatted.split_once('(') {
            Some((n, rest)) => (n.trim(), rest.trim_end_matches(')')),
            None => (formatted.trim(), ""),
        };
        let mut nums = args.split(',').map(|a| a.trim().parse::<u32>().ok());
        match name {
            "smallint" => Some(Self::Integer { bits: 16 }),
            "integer" => Some(Self::Integer { bits: 32 }),
            "character varying" | "character" => {
                nums.next().flatten().map(|max| Self::Chars { max })
            }
            "numeric" => {
                let precision = u16::try_from(nums.next().flatten()?).ok()?;
                let scale = nums.next().flatten().unwrap_or(0);
                Some(Self::Numeric {
                    precision,
                    scale: u16::try_from(scale).ok()?,
                })
            }
            _ => None,
        }
    }

    /// Whether an integer fits.
    pub fn fits_integer(self, v: i64) -> bool {
        match self {
            Self::Integer { bits: 16 } => i16::try_from(v).is_ok(),
            Self::Integer { .. } => i32::try_from(v).is_ok(),
            Self::Chars { .. } => true,
            Self::Numeric { precision, scale } => {
                digits(v.unsigned_abs().into()) <= u32::from(precision.saturating_sub(scale))
            }
        }
    }

    /// Whether a decimal (`unscaled` × 10^-`scale`) fits; the reason when it does not.
    pub fn decimal_misfit(self, unscaled: i128, scale: u8) -> Option<String> {
        let Self::Numeric {
            precision,
            scale: kept,
        } = self
        else {
            return None;
        };
        let scale = u32::from(scale);
        let kept = u32::from(kept);
        if scale > kept {
            let cut = 10u128.checked_pow(scale - kept).unwrap_or(u128::MAX);
            if !unscaled.unsigned_abs().is_multiple_of(cut) {
                return Some(format!("more than {kept} decimal places for {self}"));
            }
        }
        let whole = unscaled.unsigned_abs() / 10u128.checked_pow(scale).unwrap_or(u128::MAX);
        let room = u32::from(precision).saturating_sub(kept);
        (digits(whole) > room)
            .then(|| format!("more than {room} digits before the point for {self}"))
    }

    /// Whether a text fits.
    pub fn fits_text(self, text: &str) -> bool {
        match self {
            Self::Chars { max } => text.chars().count() <= max as usize,
            _ => true,
        }
    }

    /// The reason a value does not fit, for warnings.
    pub fn misfit_reason(self) -> String {
        match self {
            Self::Integer { .. } | Self::Numeric { .. } => format!("out of range for {self}"),
            Self::Chars { max } => format!("longer than {max} characters ({self})"),
        }
    }
}

/// Decimal digits of a whole number (0 has none).
fn digits(mut v: u128) -> u32 {
    let mut n = 0;
    while v > 0 {
        v /= 10;
        n += 1;
    }
    n
}

impl fmt::Display for StoredType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer { bits: 16 } => f.write_str("smallint"),
            Self::Integer { .. } => f.write_str("integer"),
            Self::Chars { max } => write!(f, "varchar({max})"),
            Self::Numeric { precision, scale } => write!(f, "numeric({precision},{scale})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_format_type() {
        assert_eq!(
            StoredType::from_sql("integer"),
            Some(StoredType::Integer { bits: 32 })
        );
        assert_eq!(
            StoredType::from_sql("smallint"),
            Some(StoredType::Integer { bits: 16 })
        );
        assert_eq!(
            StoredType::from_sql("character varying(50)"),
            Some(StoredType::Chars { max: 50 })
        );
        assert_eq!(StoredType::from_sql("character varying"), None);
        assert_eq!(
            StoredType::from_sql("numeric(10,2)"),
            Some(StoredType::Numeric {
                precision: 10,
                scale: 2
            })
        );
        assert_eq!(
            StoredType::from_sql("numeric(5)"),
            Some(StoredType::Numeric {
                precision: 5,
                scale: 0
            })
        );
        for none in ["numeric", "text", "bigint", "timestamp without time zone"] {
            assert_eq!(StoredType::from_sql(none), None, "{none}");
        }
    }

    #[test]
    fn integer_and_numeric_limits() {
        let int = StoredType::Integer { bits: 32 };
        assert!(int.fits_integer(2_147_483_647) && int.fits_integer(-2_147_483_648));
        assert!(!int.fits_integer(2_147_483_648));
        let small = StoredType::Integer { bits: 16 };
        assert!(small.fits_integer(-32768) && !small.fits_integer(32768));
        let n = StoredType::Numeric {
            precision: 5,
            scale: 2,
        };
        assert!(n.fits_integer(999) && !n.fits_integer(1000) && n.fits_integer(-999));
        // 999.99 fits, 1000.00 does not, 1.234 has one decimal too many (scale 3 given).
        assert_eq!(n.decimal_misfit(99_999, 2), None);
        assert!(
            n.decimal_misfit(100_000, 2)
                .unwrap()
                .contains("before the point")
        );
        assert!(
            n.decimal_misfit(1_234, 3)
                .unwrap()
                .contains("decimal places")
        );
        assert_eq!(n.decimal_misfit(1_230, 3), None);
        assert_eq!(int.decimal_misfit(i128::MAX, 6), None);
    }

    #[test]
    fn text_length_in_characters() {
        let v = StoredType::Chars { max: 3 };
        assert!(v.fits_text("abc") && v.fits_text("äöü") && !v.fits_text("abcd"));
    }
}
