//! Parse benchmark: the full decoder against a plain `memchr` scan of the same bytes.
//!
//! `cargo bench -p datsync --bench parse` generates a ZTDWR file in memory (100 MiB, or
//! `DATSYNC_BENCH_MB`), then times, in the same run and on the same bytes:
//! - the baseline: a `memchr` scan counting `~|^` delimiters and newlines;
//! - the decoder: bytes → Arrow text batches of 10,000 rows (gzip off).
//!
//! Each is run three times and the best time is kept. It prints MB/s and the ratio; the
//! target is a ratio of at least 0.5.

use std::hint::black_box;
use std::time::{Duration, Instant};

use datsync::{Decoder, ParseOptions, Profile, SampleOptions, SampleSize, write_sample};

const RUNS: usize = 3;
const FEED_BYTES: usize = 256 << 10;

fn main() {
    let mb: u64 = std::env::var("DATSYNC_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut data = Vec::with_capacity((mb << 20) as usize + (1 << 20));
    let options = SampleOptions {
        size: SampleSize::Bytes(mb << 20),
        invalid_rate: 0.01,
        dup_rate: 0.01,
        ragged_rate: 0.001,
        ..SampleOptions::default()
    };
    let summary = match write_sample(&mut data, &options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("generating the sample failed: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "input: {:.1} MiB, {} rows, ~|^ delimited",
        data.len() as f64 / 1_048_576.0,
        summary.rows
    );

    let (baseline, counts) = best(|| scan(&data));
    let profile = Profile::ztdwr();
    let (decoder, rows) = best(|| decode(&data, &profile));
    assert_eq!(rows, summary.rows, "the decoder must see every row");

    let mbps = |d: Duration| data.len() as f64 / 1_048_576.0 / d.as_secs_f64();
    println!(
        "baseline memchr scan   {:>8.1} MB/s  ({} delimiters, {} newlines)",
        mbps(baseline),
        counts.0,
        counts.1
    );
    println!(
        "datsync decoder        {:>8.1} MB/s  ({rows} rows)",
        mbps(decoder)
    );
    println!(
        "ratio decoder/baseline {:>8.2}  (target >= 0.50)",
        baseline.as_secs_f64() / decoder.as_secs_f64()
    );
}

fn best<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = black_box(f());
        let took = start.elapsed();
        if best.as_ref().is_none_or(|(b, _)| took < *b) {
            best = Some((took, out));
        }
    }
    best.unwrap_or_else(|| (Duration::MAX, f()))
}

fn scan(data: &[u8]) -> (usize, usize) {
    let delimiters = memchr::memmem::find_iter(data, b"~|^").count();
    let newlines = memchr::memchr_iter(b'\n', data).count();
    (delimiters, newlines)
}

fn decode(data: &[u8], profile: &Profile) -> u64 {
    let mut decoder = Decoder::new(profile, ParseOptions::default());
    let mut rows = 0u64;
    for piece in data.chunks(FEED_BYTES) {
        let mut pos = 0;
        while pos < piece.len() {
            pos += decoder
                .decode(&piece[pos..])
                .unwrap_or_else(|e| panic!("decode failed: {e}"));
            while let Some(batch) = decoder.next_batch() {
                rows += black_box(batch).num_rows() as u64;
            }
        }
    }
    while let Some(batch) = decoder
        .flush()
        .unwrap_or_else(|e| panic!("flush failed: {e}"))
    {
        rows += batch.num_rows() as u64;
    }
    rows
}
