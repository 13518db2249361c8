//! The PostgreSQL `numeric` binary format, written exactly from a `Decimal128` mantissa and
//! scale (no float anywhere).
//!
//! Layout: `ndigits: i16`, `weight: i16` (power of 10000 of the first digit), `sign: u16`
//! (`0x0000` positive, `0x4000` negative), `dscale: u16` (decimal places shown), then
//! `ndigits` base-10000 digits, most significant first.

use bytes::BufMut;

const NBASE: u128 = 10_000;
const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;

/// Appends the binary `numeric` value `mantissa × 10^-scale` (a COPY field body, without the
/// length prefix) to `out`; returns the number of bytes written.
// Digit counts and weights are at most 20 (38 decimal digits in base 10 000).
#[allow(clippy::cast_possible_wrap)]
pub fn put_numeric(out: &mut impl BufMut, mantissa: i128, scale: u8) -> usize {
    let abs = mantissa.unsigned_abs();
    let scale_u = u32::from(scale);
    let (int_part, frac_part) = match u64::try_from(abs) {
        // The usual value: `u64` division, several times cheaper than `u128`'s.
        Ok(small) if scale_u <= 19 => {
            let pow = 10u64.pow(scale_u);
            (u128::from(small / pow), u128::from(small % pow))
        }
        _ if scale_u > 38 => (0, abs),
        _ => {
            let pow = 10u128.pow(scale_u);
            (abs / pow, abs % pow)
        }
    };
    // Integer groups, least significant first.
    let mut digits: [u16; 24] = [0; 24];
    let n_int = base_10000(int_part, &mut digits, None);
    digits[..n_int].reverse();
    // Fraction groups: pad the fraction to a multiple of four decimal places.
    let n_frac = scale_u.div_ceil(4) as usize;
    let pad = (n_frac as u32) * 4 - scale_u;
    let frac = frac_part * 10u128.pow(pad);
    base_10000(frac, &mut digits[n_int..n_int + n_frac], Some(n_frac));
    digits[n_int..n_int + n_frac].reverse();
    let all = &digits[..n_int + n_frac];
    let lead = all.iter().take_while(|&&d| d == 0).count();
    let trail = all[lead..].iter().rev().take_while(|&&d| d == 0).count();
    let used = &all[lead..all.len() - trail];
    let (weight, sign) = if used.is_empty() {
        (0i16, SIGN_POS)
    } else {
        let w = n_int as i16 - 1 - lead as i16;
        (w, if mantissa < 0 { SIGN_NEG } else { SIGN_POS })
    };
    out.put_i16(used.len() as i16);
    out.put_i16(weight);
    out.put_u16(sign);
    out.put_u16(u16::from(scale));
    for d in used {
        out.put_u16(*d);
    }
    8 + 2 * used.len()
}

/// Writes the base-10 000 digits of `v` into `out`, least significant first: all of them, or
/// exactly `count` (zeros above `v`'s own). Returns how many were written. Divides in `u128`
/// only while `v` does not fit `u64`.
// A base-10 000 digit is below 10 000, so it fits `u16`.
#[allow(clippy::cast_possible_truncation)]
fn base_10000(v: u128, out: &mut [u16], count: Option<usize>) -> usize {
    let want = count.unwrap_or(out.len());
    let mut n = 0;
    let mut wide = v;
    while n < want && u64::try_from(wide).is_err() {
        out[n] = (wide % NBASE) as u16;
        wide /= NBASE;
        n += 1;
    }
    let mut small = u64::try_from(wide).unwrap_or(0);
    while n < want && (small > 0 || count.is_some()) {
        out[n] = (small % 10_000) as u16;
        small /= 10_000;
        n += 1;
    }
    n
}

/// Appends the binary `numeric` of a numeric's canonical text (`-123.4500`: a sign, digits,
/// optionally `.` and digits, as [`crate::value::parse_numeric`] writes it; any other
/// character is skipped) to `out`; returns the number of bytes written. The scale shown is
/// the number of fraction digits, as PostgreSQL's own input keeps it.
// Digit counts are bounded by `value::NUMERIC_MAX_DIGITS` (1000), far inside `i16`.
#[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
pub fn put_numeric_text(out: &mut impl BufMut, text: &str) -> usize {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int: Vec<u16> = int
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|d| u16::from(d - b'0'))
        .skip_while(|&d| d == 0)
        .collect();
    let frac: Vec<u16> = frac
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|d| u16::from(d - b'0'))
        .collect();
    let n_int = int.len().div_ceil(4);
    let mut groups: Vec<u16> = Vec::with_capacity(n_int + frac.len().div_ceil(4));
    let lead = n_int * 4 - int.len();
    let padded_int = std::iter::repeat_n(0, lead).chain(int.iter().copied());
    let padded_frac = frac.iter().copied().chain(std::iter::repeat_n(
        0,
        frac.len().div_ceil(4) * 4 - frac.len(),
    ));
    let all: Vec<u16> = padded_int.chain(padded_frac).collect();
    for g in all.chunks(4) {
        groups.push(g.iter().fold(0u16, |acc, d| acc * 10 + d));
    }
    let lead_zero = groups.iter().take_while(|&&g| g == 0).count();
    let trail_zero = groups[lead_zero..]
        .iter()
        .rev()
        .take_while(|&&g| g == 0)
        .count();
    let used = &groups[lead_zero..groups.len() - trail_zero];
    let (weight, sign) = if used.is_empty() {
        (0i16, SIGN_POS)
    } else {
        (
            n_int as i16 - 1 - lead_zero as i16,
            if negative { SIGN_NEG } else { SIGN_POS },
        )
    };
    out.put_i16(used.len() as i16);
    out.put_i16(weight);
    out.put_u16(sign);
    out.put_u16(frac.len().min(16_383) as u16);
    for d in used {
        out.put_u16(*d);
    }
    8 + 2 * used.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(m: i128, s: u8) -> Vec<u8> {
        let mut v = Vec::new();
        let n = put_numeric(&mut v, m, s);
        assert_eq!(n, v.len());
        v
    }

    fn words(v: &[u8]) -> Vec<i32> {
        v.chunks(2)
            .map(|c| i32::from(i16::from_be_bytes([c[0], c[1]])))
            .collect()
    }

    #[test]
    fn encodes_like_postgres() {
        // 1234567.891234 = 123 4567 . 8912 3400 → digits [123, 4567, 8912, 3400], weight 1.
        assert_eq!(
            words(&enc(1_234_567_891_234, 6)),
            vec![4, 1, 0, 6, 123, 4567, 8912, 3400]
        );
        // 0 with scale 6.
        assert_eq!(words(&enc(0, 6)), vec![0, 0, 0, 6]);
        // -0.000001 → digit 100 at weight -2.
        assert_eq!(words(&enc(-1, 6)), vec![1, -2, 0x4000, 6, 100]);
        // 10000 → [1] weight 1 (trailing zero group stripped).
        assert_eq!(words(&enc(10_000, 0)), vec![1, 1, 0, 0, 1]);
        // 12.5 with scale 1.
        assert_eq!(words(&enc(125, 1)), vec![2, 0, 0, 1, 12, 5000]);
    }

    fn enc_text(t: &str) -> Vec<u8> {
        let mut v = Vec::new();
        let n = put_numeric_text(&mut v, t);
        assert_eq!(n, v.len());
        v
    }

    #[test]
    fn text_encodes_like_the_mantissa() {
        for (t, m, s) in [
            ("1234567.891234", 1_234_567_891_234, 6),
            ("0.000000", 0, 6),
            ("-0.000001", -1, 6),
            ("10000", 10_000, 0),
            ("12.5", 125, 1),
            ("0", 0, 0),
            ("-12.50", -1250, 2),
            ("0.00012345678", 12_345_678, 11),
        ] {
            assert_eq!(enc_text(t), enc(m, s), "{t}");
        }
        // Beyond 38 digits: 10^50 is one group at weight 12.
        let big = format!("1{}", "0".repeat(50));
        assert_eq!(words(&enc_text(&big)), vec![1, 12, 0, 0, 100]);
    }

    /// The mantissa's encoding (`u64` or `u128` arithmetic) agrees with the text's (digit by
    /// digit) for values around every power of ten and of `u64::MAX`, at every scale.
    #[test]
    fn mantissas_encode_like_their_text_at_every_size() {
        let mut mantissas: Vec<i128> = vec![0, 1, 9, 10_000, i128::from(u64::MAX)];
        for p in 0..38 {
            let t = 10i128.pow(p);
            mantissas.extend([t - 1, t, t + 1, t * 7 + 3]);
        }
        mantissas.extend([i128::from(u64::MAX) + 1, i128::from(u64::MAX) - 1]);
        mantissas.retain(|m| *m < 10i128.pow(38));
        for m in mantissas {
            // Up to the encoder's `MAX_SCALE`.
            for scale in [0u8, 1, 3, 4, 5, 6, 8, 18, 19, 20, 29, 30] {
                for m in [m, -m] {
                    let digits = m.unsigned_abs().to_string();
                    let width = usize::from(scale) + 1;
                    let digits = format!("{digits:0>width$}");
                    let (int, frac) = digits.split_at(digits.len() - usize::from(scale));
                    let sign = if m < 0 { "-" } else { "" };
                    let text = if scale == 0 {
                        format!("{sign}{int}")
                    } else {
                        format!("{sign}{int}.{frac}")
                    };
                    assert_eq!(enc(m, scale), enc_text(&text), "{m}e-{scale} ({text})");
                }
            }
        }
    }

    #[test]
    fn handles_the_extremes() {
        let max = 10i128.pow(38) - 1;
        assert_eq!(words(&enc(max, 0)).len(), 4 + 10);
        assert_eq!(words(&enc(-max, 18))[2], 0x4000);
    }
}
