//! Encoding a typed batch as PostgreSQL binary COPY rows, column by column from the Arrow
//! buffers (no per-value `ToSql` boxing).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int64Type, Time64MicrosecondType,
    TimestampMicrosecondType, UInt64Type,
};
use arrow_array::{
    Array, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, PrimitiveArray,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray, UInt64Array,
};
use std::collections::HashSet;

use arrow_array::ArrowPrimitiveType;
use arrow_schema::{DataType, TimeUnit};
use bytes::{BufMut, BytesMut};

use super::numeric::{put_numeric, put_numeric_text};
use crate::model::short_block;

/// Binary COPY signature, flags and header extension length.
pub(super) const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Binary COPY trailer (field count -1).
pub(super) const COPY_TRAILER: i16 = -1;

/// Days from 1970-01-01 (Arrow) to 2000-01-01 (PostgreSQL).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Largest `Decimal128` scale the encoder accepts.
pub(super) const MAX_SCALE: i8 = 30;

/// One column of a batch, ready to encode.
pub(super) enum ColumnEncoder<'a> {
    Text(&'a StringArray),
    Decimal(&'a Decimal128Array, u8),
    Int(&'a Int64Array),
    Line(&'a UInt64Array),
    Bool(&'a BooleanArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
    /// `timestamp` and `timestamptz` alike (both microseconds from 2000-01-01, UTC for the
    /// latter).
    Timestamp(&'a TimestampMicrosecondArray),
    Float(&'a Float64Array),
    /// A numeric without a fixed scale, from its canonical text.
    NumericText(&'a StringArray),
}

impl<'a> ColumnEncoder<'a> {
    /// An encoder for `array`, or `None` when its Arrow type is not a typed-batch type.
    pub(super) fn new(array: &'a dyn Array) -> Option<Self> {
        Some(match array.data_type() {
            DataType::Utf8 => Self::Text(array.as_string::<i32>()),
            DataType::Decimal128(_, s) if (0..=MAX_SCALE).contains(s) => {
                Self::Decimal(array.as_primitive::<Decimal128Type>(), *s as u8)
            }
            DataType::Int64 => Self::Int(array.as_primitive::<Int64Type>()),
            DataType::UInt64 => Self::Line(array.as_primitive::<UInt64Type>()),
            DataType::Boolean => Self::Bool(array.as_boolean()),
            DataType::Date32 => Self::Date(array.as_primitive::<Date32Type>()),
            DataType::Time64(TimeUnit::Microsecond) => {
                Self::Time(array.as_primitive::<Time64MicrosecondType>())
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Self::Timestamp(array.as_primitive::<TimestampMicrosecondType>())
            }
            DataType::Float64 => Self::Float(array.as_primitive::<Float64Type>()),
            _ => return None,
        })
    }

    /// Reads the values of `rows` (the first byte of each text value, each number, date and
    /// time; not booleans, a block of which is a few bytes) and returns their wrapping sum,
    /// for [`warm`]. Rows past the array are skipped.
    fn warm(&self, rows: impl Iterator<Item = usize>) -> u64 {
        fn text(a: &StringArray, rows: impl Iterator<Item = usize>) -> u64 {
            let (offsets, data) = (a.value_offsets(), a.value_data());
            rows.fold(0u64, |acc, row| {
                let at = offsets
                    .get(row)
                    .map_or(0, |&o| usize::try_from(o).unwrap_or(0));
                acc.wrapping_add(u64::from(data.get(at).copied().unwrap_or(0)))
            })
        }
        // Only that the sum depends on every value matters (it keeps the reads): its bits
        // may be cut.
        fn fixed<T: ArrowPrimitiveType>(
            a: &PrimitiveArray<T>,
            rows: impl Iterator<Item = usize>,
        ) -> u64
        where
            T::Native: Into<i128>,
        {
            let values = a.values();
            rows.fold(0u64, |acc, row| {
                let v: i128 = values.get(row).copied().map_or(0, Into::into);
                acc.wrapping_add(v as u64)
            })
        }
        match self {
            Self::Text(a) | Self::NumericText(a) => text(a, rows),
            Self::Decimal(a, _) => fixed(*a, rows),
            Self::Int(a) => fixed(*a, rows),
            Self::Line(a) => fixed(*a, rows),
            Self::Date(a) => fixed(*a, rows),
            Self::Time(a) => fixed(*a, rows),
            Self::Timestamp(a) => fixed(*a, rows),
            Self::Float(a) => {
                let values = a.values();
                rows.fold(0u64, |acc, row| {
                    acc.wrapping_add(values.get(row).map_or(0, |v| v.to_bits()))
                })
            }
            Self::Bool(_) => 0,
        }
    }

    /// Appends field `row` (length prefix + body; -1 for NULL).
    // Lengths fit `i32`: an Arrow `Utf8` array has `i32` offsets, a numeric body is at most
    // 48 bytes.
    #[allow(clippy::cast_possible_wrap)]
    #[inline]
    pub(super) fn put(&self, row: usize, out: &mut BytesMut) {
        match self {
            Self::Text(a) => {
                if a.is_null(row) {
                    out.put_i32(-1);
                } else {
                    put_text(a, row, out);
                }
            }
            Self::Decimal(a, scale) => {
                if a.is_null(row) {
                    out.put_i32(-1);
                } else {
                    let at = out.len();
                    out.put_i32(0);
                    let n = put_numeric(out, a.value(row), *scale);
                    out[at..at + 4].copy_from_slice(&(n as i32).to_be_bytes());
                }
            }
            Self::Int(a) => put_fixed(a, row, out, i64::to_be_bytes),
            Self::Line(a) => put_fixed(a, row, out, |v| v.cast_signed().to_be_bytes()),
            Self::Bool(a) => {
                if a.is_null(row) {
                    out.put_i32(-1);
                } else {
                    out.put_i32(1);
                    out.put_u8(u8::from(a.value(row)));
                }
            }
            Self::Date(a) => put_fixed(a, row, out, |v| (v - PG_EPOCH_DAYS).to_be_bytes()),
            Self::Time(a) => put_fixed(a, row, out, i64::to_be_bytes),
            Self::Timestamp(a) => put_fixed(a, row, out, |v| (v - PG_EPOCH_MICROS).to_be_bytes()),
            Self::Float(a) => put_fixed(a, row, out, f64::to_be_bytes),
            Self::NumericText(a) => {
                if a.is_null(row) {
                    out.put_i32(-1);
                } else {
                    let at = out.len();
                    out.put_i32(0);
                    let n = put_numeric_text(out, a.value(row));
                    out[at..at + 4].copy_from_slice(&(n as i32).to_be_bytes());
                }
            }
        }
    }
}

/// Appends value `row` of `a` (not null) with its length. A short value is copied as a fixed
/// block from the array's data ([`short_block`]; most values are short) and the bytes past it
/// are cut off again.
// The length fits `i32`: an Arrow `Utf8` array has `i32` offsets.
#[allow(clippy::cast_possible_wrap)]
#[inline]
fn put_text(a: &StringArray, row: usize, out: &mut BytesMut) {
    let value = a.value(row).as_bytes();
    out.put_i32(value.len() as i32);
    let start = usize::try_from(a.value_offsets()[row]).unwrap_or(usize::MAX);
    match short_block(a.value_data(), start, value.len()) {
        Some(block) => {
            let keep = out.len() + value.len();
            out.extend_from_slice(block);
            out.truncate(keep);
        }
        None => out.extend_from_slice(value),
    }
}

// `N` is 4 or 8.
#[allow(clippy::cast_possible_wrap)]
#[inline]
fn put_fixed<T, const N: usize>(
    a: &PrimitiveArray<T>,
    row: usize,
    out: &mut BytesMut,
    f: impl Fn(T::Native) -> [u8; N],
) where
    T: arrow_array::ArrowPrimitiveType,
{
    if a.is_null(row) {
        out.put_i32(-1);
    } else {
        out.put_i32(N as i32);
        out.put_slice(&f(a.value(row)));
    }
}

/// Appends rows `rows` of the columns as binary COPY tuples, each block of [`WARM_ROWS`]
/// read ahead ([`warm`]) on the stream's schedule ([`warm_next`]).
pub(super) fn put_rows(
    encoders: &[ColumnEncoder<'_>],
    rows: std::ops::Range<usize>,
    out: &mut BytesMut,
) {
    let mut warmed = rows.start;
    for row in rows.clone() {
        if let Some(block) = warm_next(row, warmed, rows.end) {
            warmed = block.end;
            warm(encoders, &block);
        }
        put_fields(encoders, row, out);
    }
}

/// Rows read ahead, column by column, before they are encoded row by row.
///
/// A tuple takes one value of every column, and a ZTDWR batch has ~90 of them, each in
/// buffers of its own. Encoded row by row straight from memory, the encoder waited on it
/// (issue 14, `perf annotate` of the load benchmark's encoding: 35% of its samples on the
/// store after the load of a text value, 14% after the load of a decimal). Read column by
/// column first, each buffer is read as one sequential stream, which the hardware can
/// prefetch, and the block's rows are then expected in the cache when they are encoded.
/// Measured with blocks of 256 rows (16 and 64 gained less): `encode_copy` in the load
/// benchmark (30 MB of payload, each run's best of five) 86 → 61 ms, medians of five
/// alternating runs; in first runs (`copy_stream_warm`, messages of 64 KiB sent between a
/// block's rows), the encoder's share of the client's samples, `warm` included, 14.7–15.0%
/// → 12.6–12.8%.
pub(super) const WARM_ROWS: usize = 256;

/// Reads the values of `rows` of every column, column by column
/// ([`ColumnEncoder::warm`]), so that encoding those rows next finds them in the cache.
pub(super) fn warm<'a, E, I>(encoders: &[E], rows: &I)
where
    E: std::borrow::Borrow<ColumnEncoder<'a>>,
    I: Iterator<Item = usize> + Clone,
{
    let mut acc = 0u64;
    for e in encoders {
        acc = acc.wrapping_add(e.borrow().warm(rows.clone()));
    }
    // Kept, so that the reads are not optimized away.
    std::hint::black_box(acc);
}

/// The rows to read ahead before tuple `at` of tuples that end at `end`, when the rows read
/// so far end at `warmed`: the next [`WARM_ROWS`] from `at` (fewer at the end), or `None`
/// while `at` is still among them.
pub(super) fn warm_next(at: usize, warmed: usize, end: usize) -> Option<std::ops::Range<usize>> {
    (at >= warmed && at < end).then(|| at..at.saturating_add(WARM_ROWS).min(end))
}

/// Appends row `row` of the columns (owned or borrowed encoders) as one binary COPY tuple.
// A PostgreSQL table has at most 1600 columns, so the count fits `i16`.
#[allow(clippy::cast_possible_wrap)]
pub(super) fn put_fields<'a, E: std::borrow::Borrow<ColumnEncoder<'a>>>(
    encoders: &[E],
    row: usize,
    out: &mut BytesMut,
) {
    out.put_i16(encoders.len() as i16);
    for e in encoders {
        e.borrow().put(row, out);
    }
}

/// The number of distinct non-null values of a key column (any typed-batch type). A type
/// the encoder does not know gives 0; it cannot occur, the encoders are built (and the
/// types checked) first.
pub(super) fn distinct_values(array: &dyn Array) -> usize {
    fn prim<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>) -> usize
    where
        T::Native: std::hash::Hash + Eq,
    {
        a.iter().flatten().collect::<HashSet<_>>().len()
    }
    match ColumnEncoder::new(array) {
        Some(ColumnEncoder::Text(a) | ColumnEncoder::NumericText(a)) => {
            a.iter().flatten().collect::<HashSet<&str>>().len()
        }
        Some(ColumnEncoder::Decimal(a, _)) => prim(a),
        Some(ColumnEncoder::Int(a)) => prim(a),
        Some(ColumnEncoder::Line(a)) => prim(a),
        Some(ColumnEncoder::Date(a)) => prim(a),
        Some(ColumnEncoder::Time(a)) => prim(a),
        Some(ColumnEncoder::Timestamp(a)) => prim(a),
        Some(ColumnEncoder::Float(a)) => a
            .iter()
            .flatten()
            .map(f64::to_bits)
            .collect::<HashSet<_>>()
            .len(),
        Some(ColumnEncoder::Bool(a)) => {
            usize::from(a.true_count() > 0) + usize::from(a.false_count() > 0)
        }
        None => 0,
    }
}

/// The number of distinct rows of several key columns taken together (a composite key): each
/// row's fields encoded as binary COPY fields (length-prefixed, so the tuple's encoding is
/// one-to-one) and counted once. `[]` or an unknown type gives 0, as [`distinct_values`].
pub(super) fn distinct_tuples(arrays: &[&dyn Array]) -> usize {
    let Some(encoders) = arrays
        .iter()
        .map(|a| ColumnEncoder::new(*a))
        .collect::<Option<Vec<_>>>()
    else {
        return 0;
    };
    let rows = arrays.first().map_or(0, |a| a.len());
    let mut seen = HashSet::with_capacity(rows);
    let mut buf = BytesMut::new();
    for row in 0..rows {
        for e in &encoders {
            e.put(row, &mut buf);
        }
        seen.insert(buf.split().freeze());
    }
    seen.len()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "tests fail loudly on any unexpected value"
)]
mod tests {
    use super::*;

    /// Text fields are their length and their bytes, for every length around the block size,
    /// at the end of the array's data (no block to read) and in a sliced array.
    #[test]
    fn text_fields_are_length_and_bytes_whatever_their_size() {
        let mut values: Vec<Option<String>> = (0..40)
            .map(|n| {
                (n % 7 != 3).then(|| {
                    "é0123456789abcdefghijklmnopqrstuvwxyz"
                        .chars()
                        .take(n)
                        .collect()
                })
            })
            .collect();
        // Short values within 16 bytes of the end of the data: no whole block to read.
        values.extend([
            Some("ab".to_owned()),
            Some(String::new()),
            Some("x".to_owned()),
        ]);
        let array = StringArray::from(values.clone());
        for (offset, array) in [(0, array.clone()), (5, array.slice(5, 38))] {
            let encoder = ColumnEncoder::new(&array).unwrap();
            for row in 0..array.len() {
                let mut out = BytesMut::new();
                encoder.put(row, &mut out);
                let mut want = BytesMut::new();
                match &values[offset + row] {
                    None => want.put_i32(-1),
                    Some(v) => {
                        want.put_i32(i32::try_from(v.len()).unwrap());
                        want.put_slice(v.as_bytes());
                    }
                }
                assert_eq!(out, want, "row {row} of the array at {offset}");
            }
        }
    }

    /// A batch of every encoder kind, nulls included, `n` rows, sliced from a longer one
    /// (offset 3) so that the arrays' offsets and values do not start at 0.
    fn columns(n: usize) -> Vec<arrow_array::ArrayRef> {
        use std::sync::Arc;
        let len = n + 3;
        let some = |i: usize, m: usize| i % m != 1;
        let int = |i: usize| i64::try_from(i).unwrap();
        let text: StringArray = (0..len)
            .map(|i| some(i, 5).then(|| "v".repeat(i % 23)))
            .collect();
        let decimal = Decimal128Array::from(
            (0..len)
                .map(|i| some(i, 7).then_some(i128::from(int(i)) * 1_000_003 - 5_000))
                .collect::<Vec<_>>(),
        )
        .with_precision_and_scale(20, 3)
        .unwrap();
        let arrays: Vec<arrow_array::ArrayRef> = vec![
            Arc::new(text),
            Arc::new(decimal),
            Arc::new(
                (0..len)
                    .map(|i| some(i, 4).then(|| int(i)))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                (0..len)
                    .map(|i| some(i, 6).then(|| i32::try_from(i).unwrap()))
                    .collect::<Date32Array>(),
            ),
            Arc::new(
                (0..len)
                    .map(|i| some(i, 8).then(|| int(i) * 1_000_000))
                    .collect::<Time64MicrosecondArray>(),
            ),
            Arc::new(
                (0..len)
                    .map(|i| some(i, 9).then(|| int(i) << 20))
                    .collect::<TimestampMicrosecondArray>(),
            ),
            Arc::new(
                (0..len)
                    .map(|i| some(i, 3).then(|| int(i) as f64 / 8.0))
                    .collect::<Float64Array>(),
            ),
            Arc::new(UInt64Array::from_iter_values((0..len).map(|i| i as u64))),
            Arc::new(
                (0..len)
                    .map(|i| some(i, 3).then_some(i % 2 == 0))
                    .collect::<BooleanArray>(),
            ),
        ];
        arrays.iter().map(|a| a.slice(3, n)).collect()
    }

    /// `put_rows` reads rows ahead in blocks of [`WARM_ROWS`] (counted from its range's
    /// start) and still encodes every row of its range once, in order: the tuples of
    /// `put_fields` row by row, for ranges of several blocks and a part, one block, a part of
    /// one, one row and none.
    #[test]
    fn rows_read_ahead_in_blocks_are_each_encoded_once_in_order() {
        let n = 2 * WARM_ROWS + 3;
        let arrays = columns(n);
        let encoders: Vec<ColumnEncoder<'_>> = arrays
            .iter()
            .map(|a| ColumnEncoder::new(a.as_ref()).unwrap())
            .collect();
        for range in [
            0..n,
            5..WARM_ROWS + 7,
            WARM_ROWS..2 * WARM_ROWS,
            n - 1..n,
            7..7,
        ] {
            let mut got = BytesMut::new();
            put_rows(&encoders, range.clone(), &mut got);
            let mut want = BytesMut::new();
            for row in range.clone() {
                put_fields(&encoders, row, &mut want);
            }
            assert_eq!(got, want, "rows {range:?}");
        }
    }

    /// Reading ahead never reads past the arrays, whatever rows it is given: past the end,
    /// an order that names a row twice or one that does not exist, none, or arrays of no
    /// rows at all (an index out of bounds would panic).
    #[test]
    fn reading_ahead_reads_nothing_past_the_arrays() {
        for n in [0, 1, WARM_ROWS + 10] {
            let arrays = columns(n);
            let encoders: Vec<ColumnEncoder<'_>> = arrays
                .iter()
                .map(|a| ColumnEncoder::new(a.as_ref()).unwrap())
                .collect();
            warm(&encoders, &(n.saturating_sub(2)..n + 2 * WARM_ROWS));
            warm(&encoders, &[n, usize::MAX, 0, 0].into_iter());
            warm(&encoders, &std::iter::empty());
        }
    }

    /// The stream's schedule: before a block's first tuple the next [`WARM_ROWS`] rows (fewer
    /// at the end) are read ahead, and only then; the blocks cover every row once, in order,
    /// wherever the messages are cut.
    #[test]
    fn blocks_read_ahead_cover_every_row_once_in_order() {
        for rows in [
            0,
            1,
            WARM_ROWS - 1,
            WARM_ROWS,
            WARM_ROWS + 1,
            3 * WARM_ROWS + 17,
        ] {
            let mut warmed = 0;
            let mut blocks = Vec::new();
            for at in 0..rows {
                if let Some(block) = warm_next(at, warmed, rows) {
                    assert_eq!(block.start, at, "{rows} rows: a block starts at its tuple");
                    warmed = block.end;
                    blocks.push(block);
                }
                assert!(at < warmed, "{rows} rows: tuple {at} not read ahead");
            }
            let covered: Vec<usize> = blocks.iter().cloned().flatten().collect();
            assert_eq!(covered, (0..rows).collect::<Vec<_>>(), "{rows} rows");
            assert!(
                blocks.iter().all(|b| b.len() <= WARM_ROWS),
                "{rows} rows: {blocks:?}"
            );
        }
        assert_eq!(warm_next(5, 0, 5), None, "past the last row");
    }
}
