//! Load benchmark: a generated 100 MB ZTDWR file (`sample`), decoded, validated and
//! transformed into typed batches of 10 000 rows (outside the timings), then loaded (a) by
//! PostgreSQL's own binary COPY into an empty table with the target's columns, (b) by datsync into an empty target (all inserts), (c) by datsync again under a
//! newer sync (all updates). Prints rows/s, MB/s (of the source file) and (b)/(a), (c)/(a),
//! best and median of `DATSYNC_BENCH_ROUNDS` rounds (default 3).
//!
//! Server: `DATSYNC_BENCH_DATABASE_URL`, else the local trust server at 127.0.0.1:5432 (user
//! root). A database `datsync_bench_<pid>` is created and dropped. Size: `DATSYNC_BENCH_MB`
//! (default 100).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use datsync::{
    ChunkId, Decoder, Loader, ParseError, ParseOptions, PgSettings, Profile, SampleOptions,
    SampleSize, SyncId, SyncRef, SyncRegistration, connect, decode_reader, init_db, quote_ident,
    register_sync, write_sample,
};
use futures::SinkExt;
use tokio_postgres::Client;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let mb: u64 = std::env::var("DATSYNC_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut file = Vec::new();
    let sample = write_sample(
        &mut file,
        &SampleOptions {
            size: SampleSize::Bytes(mb * 1_000_000),
            ..SampleOptions::default()
        },
    )
    .unwrap();
    let file_mb = sample.text_bytes as f64 / 1e6;
    let profile = Profile::ztdwr();
    let started = Instant::now();
    let batches = typed_batches(&profile, &file);
    drop(file);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    println!(
        "{rows} rows ({file_mb:.1} MB of .dat text, {} columns) in {} chunks, \
         decoded + validated + transformed in {:.1?}",
        profile.columns.len(),
        batches.len(),
        started.elapsed()
    );

    let url = std::env::var("DATSYNC_BENCH_DATABASE_URL").unwrap_or_else(|_| {
        "host=127.0.0.1 port=5432 user=root dbname=postgres sslmode=disable".into()
    });
    let admin_settings = PgSettings::from_connection_string(&url).unwrap();
    let admin = connect(&admin_settings).await.unwrap();
    let db = format!("datsync_bench_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let mut client = connect(&admin_settings.with_dbname(&db)).await.unwrap();
    init_db(&mut client, &profile).await.unwrap();
    let loader = Loader::new(&profile);

    // The client's encoding alone, best of 5: every chunk encoded into its COPY payload.
    let mut copy_bytes = 0;
    let mut encode = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        copy_bytes = batches
            .iter()
            .map(|b| loader.encode_copy(ChunkId(0), b).unwrap().len())
            .sum::<usize>();
        encode = encode.min(started.elapsed());
    }
    println!(
        "binary COPY payload: {:.1} MB, encoded in {:.1?} ({:.0} MB/s of payload, best of 5)",
        copy_bytes as f64 / 1e6,
        encode,
        copy_bytes as f64 / 1e6 / encode.as_secs_f64()
    );

    let rounds: u32 = std::env::var("DATSYNC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut times: [Vec<Duration>; 4] = Default::default();
    for round in 0..rounds {
        println!("round {}", round + 1);
        let a = plain_copy(&client, &profile, &loader, &batches, true).await;
        report("(a) plain binary COPY, empty table", a, rows, file_mb);
        let a_nokey = plain_copy(&client, &profile, &loader, &batches, false).await;
        report(
            "(a') plain binary COPY, no primary key",
            a_nokey,
            rows,
            file_mb,
        );
        client
            .batch_execute("TRUNCATE transport_documents, sync_chunks")
            .await
            .unwrap();
        let first = register(&client, round * 2 + 1).await;
        let b = load_all(&mut client, &loader, &first, &batches, (rows as u64, 0)).await;
        report("(b) datsync load, all inserts", b, rows, file_mb);
        let second = register(&client, round * 2 + 2).await;
        let c = load_all(&mut client, &loader, &second, &batches, (0, rows as u64)).await;
        report("(c) datsync load, all updates", c, rows, file_mb);
        for (t, d) in times.iter_mut().zip([a, a_nokey, b, c]) {
            t.push(d);
        }
    }
    summarize(&times, rows, file_mb);

    drop(client);
    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
}

/// The file through the real decoder, validation and transform: the typed chunks.
fn typed_batches(profile: &Profile, file: &[u8]) -> Vec<RecordBatch> {
    let mut decoder = Decoder::new(profile, ParseOptions::default());
    let mut out = Vec::new();
    decode_reader(file, &mut decoder, |text| {
        let validated = datsync::validate(profile, &text).unwrap();
        assert_eq!(validated.rejected(), 0);
        let typed = datsync::transform(profile, &validated.accepted).unwrap();
        out.push(typed.batch);
        Ok::<(), ParseError>(())
    })
    .unwrap();
    out
}

/// Prints best and median times and the ratios.
fn summarize(times: &[Vec<Duration>; 4], rows: usize, file_mb: f64) {
    let rounds = times[0].len();
    let mut times = times.clone();
    let best: Vec<f64> = times
        .iter()
        .map(|t| t.iter().min().unwrap().as_secs_f64())
        .collect();
    let median: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2].as_secs_f64()
        })
        .collect();
    println!("best of {rounds} (median in brackets):");
    for (i, name) in ["(a)", "(a')", "(b)", "(c)"].iter().enumerate() {
        println!(
            "  {name:<5} {:>6.2} s [{:>6.2} s]  {:>9.0} rows/s  {:>6.1} MB/s",
            best[i],
            median[i],
            rows as f64 / best[i],
            file_mb / best[i]
        );
    }
    let ratio =
        |x: usize, y: usize| format!("{:.2} [{:.2}]", best[x] / best[y], median[x] / median[y]);
    println!("ratio (b)/(a)  = {}", ratio(2, 0));
    println!("ratio (c)/(a)  = {}", ratio(3, 0));
    println!("ratio (b)/(a') = {}", ratio(2, 1));
}

fn report(what: &str, took: Duration, rows: usize, file_mb: f64) {
    let s = took.as_secs_f64();
    println!(
        "{what:<42} {s:>7.2} s  {:>9.0} rows/s  {:>6.1} MB/s",
        rows as f64 / s,
        file_mb / s
    );
}

async fn register(client: &Client, n: u32) -> SyncRef {
    let reg = SyncRegistration {
        sync_id: SyncId::new(chrono::Utc::now(), n),
        file_name: "ZTDWR_BENCH.dat".into(),
        file_path: "bench/ZTDWR_BENCH.dat".into(),
        file_size_bytes: None,
        checkpoint_location: None,
    };
    register_sync(client, "public", &reg).await.unwrap()
}

/// The target's columns that the staging COPY fills, in COPY order.
fn copy_columns(profile: &Profile) -> String {
    let mut cols: Vec<String> = profile
        .columns
        .iter()
        .map(|c| quote_ident(&c.target))
        .collect();
    cols.push("source_line".into());
    if datsync::has_row_version(profile) {
        cols.push(datsync::ROW_VERSION_COLUMN.into());
    }
    cols.join(", ")
}

/// A fresh copy of the target's table (with or without its primary key), then one COPY.
async fn plain_copy(
    client: &Client,
    profile: &Profile,
    loader: &Loader,
    batches: &[RecordBatch],
    with_key: bool,
) -> Duration {
    let like = if with_key { " INCLUDING ALL" } else { "" };
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS baseline;
             CREATE TABLE baseline (LIKE transport_documents{like});
             CHECKPOINT"
        ))
        .await
        .unwrap();
    copy_into(client, "baseline", profile, loader, batches).await
}

/// One COPY of every row (encoding included, as in the datsync path).
async fn copy_into(
    client: &Client,
    table: &str,
    profile: &Profile,
    loader: &Loader,
    batches: &[RecordBatch],
) -> Duration {
    let started = Instant::now();
    let sql = format!(
        "COPY {table} ({}) FROM STDIN (FORMAT binary)",
        copy_columns(profile)
    );
    let sink = client.copy_in::<_, bytes::Bytes>(&sql).await.unwrap();
    futures::pin_mut!(sink);
    for (i, b) in batches.iter().enumerate() {
        let mut bytes = loader.encode_copy(ChunkId(0), b).unwrap();
        // One stream: the header on the first batch only, the trailer on the last only.
        if i > 0 {
            let _ = bytes.split_to(19);
        }
        if i + 1 < batches.len() {
            bytes.truncate(bytes.len() - 2);
        }
        sink.feed(bytes.freeze()).await.unwrap();
    }
    let n = sink.as_mut().finish().await.unwrap();
    assert_eq!(
        n as usize,
        batches.iter().map(RecordBatch::num_rows).sum::<usize>()
    );
    started.elapsed()
}

async fn load_all(
    client: &mut Client,
    loader: &Loader,
    sync: &SyncRef,
    batches: &[RecordBatch],
    expect: (u64, u64),
) -> Duration {
    client.batch_execute("CHECKPOINT").await.unwrap();
    let started = Instant::now();
    let (mut inserted, mut updated) = (0, 0);
    for (i, b) in batches.iter().enumerate() {
        let r = loader
            .load_chunk(client, sync, ChunkId(i as u32), "bench", b)
            .await
            .unwrap();
        inserted += r.inserted;
        updated += r.updated;
    }
    assert_eq!((inserted, updated), expect);
    started.elapsed()
}
