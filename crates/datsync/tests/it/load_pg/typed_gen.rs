//! A generator of typed batches for any profile: deterministic values of realistic shape for every column type, keys chosen by
//! the caller.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::SchemaRef;
use datsync::{ColumnType, Profile};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The typed-batch schema of a profile (the transform's).
pub fn schema(profile: &Profile) -> SchemaRef {
    datsync::typed_schema(profile)
}

/// `rows` generated rows: row `i` has source line `lines[i]` and key `keys[i]`; the other
/// values come from `seed` (about one value in ten is null).
pub fn generate(profile: &Profile, lines: &[u64], keys: &[String], seed: u64) -> RecordBatch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = lines.len();
    let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(lines.to_vec()))];
    for c in &profile.columns {
        let array: ArrayRef = if profile.is_key(&c.target) {
            let mut b = StringBuilder::with_capacity(n, n * 12);
            for k in keys {
                b.append_value(k);
            }
            Arc::new(b.finish())
        } else {
            column(c.kind, n, &mut rng)
        };
        columns.push(array);
    }
    if datsync::has_row_version(profile) {
        // A row version (`YYYY-MM-DD HH:MM:SS`), or none for about one row in ten.
        let mut versions = StringBuilder::with_capacity(n, n * 19);
        for _ in 0..n {
            if rng.random_range(0..10) == 0 {
                versions.append_null();
            } else {
                let day = rng.random_range(1..=28);
                let second = rng.random_range(0..86_400);
                let (hh, mm, ss) = (second / 3600, second / 60 % 60, second % 60);
                versions.append_value(format!("2025-01-{day:02} {hh:02}:{mm:02}:{ss:02}"));
            }
        }
        columns.push(Arc::new(versions.finish()));
    }
    RecordBatch::try_new(schema(profile), columns).expect("generated batch matches its schema")
}

const WORDS: &[&str] = &[
    "PT SAWIT MAKMUR",
    "KEBUN TIMUR",
    "DUMP TRUCK",
    "BK 1234 XY",
    "NATANAEL",
    "RENATA",
    "PKS SEI MANGKEI",
    "AFD-03",
    "TBS",
    "ZK01",
    "0000123456",
    "Jl. Merdeka No. 5",
];

fn column(kind: ColumnType, n: usize, rng: &mut ChaCha8Rng) -> ArrayRef {
    let null = |rng: &mut ChaCha8Rng| rng.random_range(0..10) == 0;
    match kind {
        ColumnType::Text => {
            let mut b = StringBuilder::with_capacity(n, n * 12);
            for _ in 0..n {
                if null(rng) {
                    b.append_null();
                } else {
                    b.append_value(WORDS[rng.random_range(0..WORDS.len())]);
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Decimal { scale } => {
            let mut b = Decimal128Builder::with_capacity(n);
            for _ in 0..n {
                if null(rng) {
                    b.append_null();
                } else {
                    b.append_value(rng.random_range(-10_000_000_000i128..100_000_000_000));
                }
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(38, scale.cast_signed())
                    .expect("valid decimal type"),
            )
        }
        ColumnType::Integer => {
            let mut b = Int64Builder::with_capacity(n);
            (0..n).for_each(|_| b.append_option((!null(rng)).then(|| rng.random_range(0..1000))));
            Arc::new(b.finish())
        }
        ColumnType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            (0..n).for_each(|_| b.append_option((!null(rng)).then(|| rng.random_bool(0.5))));
            Arc::new(b.finish())
        }
        ColumnType::Date => {
            let mut b = Date32Builder::with_capacity(n);
            (0..n).for_each(|_| {
                b.append_option((!null(rng)).then(|| rng.random_range(19_000..21_000)));
            });
            Arc::new(b.finish())
        }
        ColumnType::Time => {
            let mut b = Time64MicrosecondBuilder::with_capacity(n);
            (0..n).for_each(|_| {
                b.append_option((!null(rng)).then(|| rng.random_range(0..86_400i64) * 1_000_000));
            });
            Arc::new(b.finish())
        }
        ColumnType::Timestamp | ColumnType::DateTimestamp | ColumnType::TimestampTz => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n);
            (0..n).for_each(|_| {
                b.append_option(
                    (!null(rng))
                        .then(|| rng.random_range(1_640_995_200i64..1_767_225_600) * 1_000_000),
                );
            });
            let zone = (kind == ColumnType::TimestampTz).then_some("UTC");
            Arc::new(b.finish().with_timezone_opt(zone))
        }
        ColumnType::Float => {
            let mut b = Float64Builder::with_capacity(n);
            (0..n).for_each(|_| {
                b.append_option((!null(rng)).then(|| rng.random_range(-1e6..1e6)));
            });
            Arc::new(b.finish())
        }
        ColumnType::Numeric => {
            let mut b = StringBuilder::with_capacity(n, n * 12);
            for _ in 0..n {
                if null(rng) {
                    b.append_null();
                } else {
                    let v = rng.random_range(-10_000_000_000i64..100_000_000_000);
                    b.append_value(format!("{}.{:03}", v / 1000, (v % 1000).abs()));
                }
            }
            Arc::new(b.finish())
        }
    }
}
