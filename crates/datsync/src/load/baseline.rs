//! The baseline of the end-to-end benchmark (`datsync bench`): PostgreSQL's own binary COPY
//! of the same typed rows datsync loads, into an empty table of the target's shape
//! (`LIKE … INCLUDING ALL`: same columns, defaults, primary key).
//!
//! The source is decoded, validated, transformed and encoded to one binary COPY stream on
//! disk before the clock starts ([`encode_baseline`]); [`copy_baseline`] times the COPY
//! alone (reading that stream included), so the baseline is PostgreSQL's work and nothing of
//! datsync's.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::SinkExt as _;
use tokio::io::AsyncReadExt as _;
use tokio_postgres::Client;

use super::copy::{COPY_HEADER, COPY_TRAILER};
use super::{LoadError, Loader};
use crate::model::ChunkId;
use crate::parse::{Decoder, ParseError, ParseOptions, decode_reader};
use crate::pg::{PgError, quote_ident, quote_qualified};
use crate::profile::Profile;
use crate::transform::TransformError;
use crate::validate::ValidateError;

/// The table the baseline COPY fills (created before, dropped after).
const BASELINE_TABLE: &str = "bench_copy_baseline";
/// Bytes sent per message to the server.
const SEND_BLOCK: usize = 1 << 20;

/// The baseline could not be prepared or measured.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The source cannot be decoded.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A batch failed validation as a whole.
    #[error(transparent)]
    Validate(#[from] ValidateError),
    /// Accepted rows could not be typed.
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// Rows could not be encoded.
    #[error(transparent)]
    Encode(#[from] LoadError),
    /// The database failed.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The source has no row to load.
    #[error("{path}: no rows to copy")]
    Empty {
        /// The source.
        path: PathBuf,
    },
    /// The COPY wrote another number of rows than the stream holds.
    #[error("COPY wrote {copied} rows, expected {expected}")]
    RowCount {
        /// Rows the server reported.
        copied: u64,
        /// Rows in the stream.
        expected: u64,
    },
}

/// Writes the rows of `source` (decoded in chunks of `chunk_size` rows, validated and typed
/// as a run would) as one binary COPY stream to `out`; returns the rows written.
pub fn encode_baseline(
    profile: &Profile,
    source: &Path,
    out: &Path,
    chunk_size: usize,
) -> Result<u64, BaselineError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| BaselineError::Io { path, error }
    };
    let loader = Loader::new(profile);
    let input = std::fs::File::open(source).map_err(io(source))?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(io(out))?);
    let options = ParseOptions {
        batch_rows: chunk_size,
        ..ParseOptions::default()
    };
    let mut decoder = Decoder::new(profile, options);
    let (mut rows, mut batches) = (0u64, 0u64);
    w.write_all(COPY_HEADER).map_err(io(out))?;
    decode_reader(std::io::BufReader::new(input), &mut decoder, |text| {
        let validated = crate::validate::validate(profile, &text)?;
        let typed = crate::transform::transform(profile, &validated.accepted)?;
        rows += typed.batch.num_rows() as u64;
        batches += 1;
        let mut buf = BytesMut::new();
        loader.encode_copy_rows(ChunkId(0), &typed.batch, &mut buf)?;
        w.write_all(&buf).map_err(io(out))
    })?;
    if batches == 0 {
        return Err(BaselineError::Empty {
            path: source.to_path_buf(),
        });
    }
    w.write_all(&COPY_TRAILER.to_be_bytes()).map_err(io(out))?;
    w.flush().map_err(io(out))?;
    Ok(rows)
}

/// A fresh baseline table shaped like the target, then one COPY of the stream in `data`
/// (`rows` rows, written by [`encode_baseline`]); returns the time the COPY took. The table
/// is dropped afterwards.
pub async fn copy_baseline(
    client: &Client,
    profile: &Profile,
    data: &Path,
    rows: u64,
) -> Result<Duration, BaselineError> {
    let failed = |context: &str| {
        let context = context.to_owned();
        move |e| PgError::query(context, e)
    };
    let target = quote_qualified(&profile.schema, &profile.table);
    let table = quote_ident(BASELINE_TABLE);
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (LIKE {target} INCLUDING ALL);
             CHECKPOINT"
        ))
        .await
        .map_err(failed("cannot create the baseline table"))?;
    let mut columns: Vec<String> = profile
        .columns
        .iter()
        .map(|c| quote_ident(&c.target))
        .collect();
    columns.push("source_line".to_owned());
    if crate::transform::has_row_version(profile) {
        columns.push(crate::profile::ROW_VERSION_COLUMN.to_owned());
    }
    let sql = format!(
        "COPY {table} ({}) FROM STDIN (FORMAT binary)",
        columns.join(", ")
    );
    let started = Instant::now();
    let copied = send(client, &sql, data).await?;
    let took = started.elapsed();
    if copied != rows {
        return Err(BaselineError::RowCount {
            copied,
            expected: rows,
        });
    }
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .map_err(failed("cannot drop the baseline table"))?;
    Ok(took)
}

/// Streams the file `data` into `COPY … FROM STDIN`; returns the rows copied.
async fn send(client: &Client, sql: &str, data: &Path) -> Result<u64, BaselineError> {
    let io = |error| BaselineError::Io {
        path: data.to_path_buf(),
        error,
    };
    let failed = |e| PgError::query("the baseline COPY failed", e);
    let mut file = tokio::fs::File::open(data).await.map_err(io)?;
    let sink = client
        .copy_in::<_, bytes::Bytes>(sql)
        .await
        .map_err(failed)?;
    futures::pin_mut!(sink);
    loop {
        let mut buf = Vec::with_capacity(SEND_BLOCK);
        let n = (&mut file)
            .take(SEND_BLOCK as u64)
            .read_to_end(&mut buf)
            .await
            .map_err(io)?;
        if n == 0 {
            break;
        }
        sink.feed(bytes::Bytes::from(buf)).await.map_err(failed)?;
    }
    Ok(sink.as_mut().finish().await.map_err(failed)?)
}
