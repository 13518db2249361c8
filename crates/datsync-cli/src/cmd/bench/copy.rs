//! The baseline: PostgreSQL's own binary COPY of the same typed rows into an empty table of
//! the target's shape (`LIKE … INCLUDING ALL`: same columns, defaults, primary key).
//!
//! The file is decoded, validated, transformed and encoded to one binary COPY stream on disk
//! before the clock starts; the timing is the COPY alone (reading that stream included), so
//! the baseline is PostgreSQL's work and nothing of datsync's.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use datsync::load::Loader;
use datsync::model::ChunkId;
use datsync::parse::{Decoder, ParseOptions, decode_reader};
use datsync::pg::quote_ident;
use datsync::profile::Profile;
use futures::SinkExt as _;
use tokio::io::AsyncReadExt as _;

/// Length of the binary COPY header (signature, flags, extension length).
const COPY_HEADER: usize = 19;
/// Length of the binary COPY trailer (a field count of -1).
const COPY_TRAILER: usize = 2;
/// Bytes sent per message to the server.
const SEND_BLOCK: usize = 1 << 20;

/// Writes the file's rows as one binary COPY stream to `out`; returns the rows written.
pub fn encode_file(
    profile: &Profile,
    source: &Path,
    out: &Path,
    chunk_size: usize,
) -> anyhow::Result<u64> {
    use std::io::Write as _;
    let loader = Loader::new(profile);
    let input = std::fs::File::open(source).with_context(|| source.display().to_string())?;
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(out).with_context(|| out.display().to_string())?,
    );
    let options = ParseOptions {
        batch_rows: chunk_size,
        ..ParseOptions::default()
    };
    let mut decoder = Decoder::new(profile, options);
    let mut rows = 0u64;
    let mut first = true;
    decode_reader(std::io::BufReader::new(input), &mut decoder, |text| {
        let validated = datsync::validate::validate(profile, &text)?;
        let typed = datsync::transform::transform(profile, &validated.accepted)?;
        rows += typed.batch.num_rows() as u64;
        let bytes = loader.encode_copy(ChunkId(0), &typed.batch)?;
        // One stream: the header of the first chunk only, no trailer until the end.
        let body = &bytes[..bytes.len() - COPY_TRAILER];
        w.write_all(if first { body } else { &body[COPY_HEADER..] })?;
        first = false;
        Ok::<(), anyhow::Error>(())
    })?;
    if first {
        bail!("{}: no rows to copy", source.display());
    }
    w.write_all(&(-1i16).to_be_bytes())?;
    w.flush()?;
    Ok(rows)
}

/// A fresh `baseline` table shaped like the target, then one COPY of the stream in `data`.
pub async fn copy(
    client: &tokio_postgres::Client,
    profile: &Profile,
    data: &Path,
    rows: u64,
) -> anyhow::Result<Duration> {
    let target = datsync::pg::quote_qualified(&profile.schema, &profile.table);
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS bench_copy_baseline;
             CREATE TABLE bench_copy_baseline (LIKE {target} INCLUDING ALL);
             CHECKPOINT"
        ))
        .await?;
    let mut columns: Vec<String> = profile
        .columns
        .iter()
        .map(|c| quote_ident(&c.target))
        .collect();
    columns.push("source_line".to_owned());
    let sql = format!(
        "COPY bench_copy_baseline ({}) FROM STDIN (FORMAT binary)",
        columns.join(", ")
    );
    let started = Instant::now();
    let mut file = tokio::fs::File::open(data).await?;
    let sink = client.copy_in::<_, bytes::Bytes>(&sql).await?;
    futures::pin_mut!(sink);
    loop {
        let mut buf = Vec::with_capacity(SEND_BLOCK);
        let n = (&mut file)
            .take(SEND_BLOCK as u64)
            .read_to_end(&mut buf)
            .await?;
        if n == 0 {
            break;
        }
        sink.feed(bytes::Bytes::from(buf)).await?;
    }
    let copied = sink.as_mut().finish().await?;
    let took = started.elapsed();
    if copied != rows {
        bail!("COPY wrote {copied} rows, expected {rows}");
    }
    client
        .batch_execute("DROP TABLE bench_copy_baseline")
        .await?;
    Ok(took)
}
