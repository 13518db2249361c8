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
/// The table the derived tables' baseline COPY fills (created before, dropped after).
const DERIVED_BASELINE_TABLE: &str = "bench_derived_baseline";
/// The upsert baseline's staging table (temporary, dropped at commit).
const BASELINE_STAGE: &str = "bench_upsert_stage";
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
    let created = std::fs::File::create(out).map_err(io(out))?;
    // The rows hold personal data (`nik_*`, `nama_*`): private, as every file datsync writes.
    crate::store::private_file(out).map_err(io(out))?;
    let mut w = std::io::BufWriter::new(created);
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
    let table = fresh_baseline_table(client, profile).await?;
    let columns = baseline_columns(profile).join(", ");
    let sql = format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)");
    let took = timed_copy_in(client, &sql, data, rows).await?;
    drop_baseline_table(client, &table).await?;
    Ok(took)
}

/// The baseline table, dropped if it was there and created again like the target (empty,
/// checkpointed); its quoted name.
async fn fresh_baseline_table(client: &Client, profile: &Profile) -> Result<String, BaselineError> {
    let target = quote_qualified(&profile.schema, &profile.table);
    let table = quote_ident(BASELINE_TABLE);
    table_like(client, &table, &target).await?;
    Ok(table)
}

/// `table` dropped if it was there and created again like `source` (empty, checkpointed).
async fn table_like(client: &Client, table: &str, source: &str) -> Result<(), BaselineError> {
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (LIKE {source} INCLUDING ALL);
             CHECKPOINT"
        ))
        .await
        .map_err(|e| PgError::query("cannot create a baseline table", e))?;
    Ok(())
}

/// `COPY … FROM STDIN` of `file`, timed; an error unless it copied `rows` rows.
async fn timed_copy_in(
    client: &Client,
    sql: &str,
    file: &Path,
    rows: u64,
) -> Result<Duration, BaselineError> {
    let started = Instant::now();
    let copied = send(client, sql, file).await?;
    let took = started.elapsed();
    if copied != rows {
        return Err(BaselineError::RowCount {
            copied,
            expected: rows,
        });
    }
    Ok(took)
}

async fn drop_baseline_table(client: &Client, table: &str) -> Result<(), BaselineError> {
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .map_err(|e| PgError::query("cannot drop the baseline table", e))?;
    Ok(())
}

/// What PostgreSQL's own COPYs of the same rows took (see [`copy_baselines`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyBaselines {
    /// The binary COPY of the typed rows.
    pub binary: Duration,
    /// The text COPY of the same rows (as PostgreSQL writes them: `COPY … TO STDOUT`).
    pub text: Duration,
}

/// The target's columns the baseline streams carry, quoted and in order: the profile's,
/// `source_line`, then `row_version` when the rows have their own.
fn baseline_columns(profile: &Profile) -> Vec<String> {
    let mut columns: Vec<String> = profile
        .columns
        .iter()
        .map(|c| quote_ident(&c.target))
        .collect();
    columns.push("source_line".to_owned());
    if crate::transform::has_row_version(profile) {
        columns.push(crate::profile::ROW_VERSION_COLUMN.to_owned());
    }
    columns
}

/// Both COPY baselines, one after the other, each into a fresh (emptied, checkpointed) table
/// shaped like the target: the binary stream in `data` (`rows` rows, written by
/// [`encode_baseline`]), then the same rows as PostgreSQL's text format (written, untimed,
/// with `COPY … TO STDOUT` from the table the binary COPY filled, to `<data>.txt`, removed
/// afterwards). The table is dropped afterwards.
pub async fn copy_baselines(
    client: &Client,
    profile: &Profile,
    data: &Path,
    rows: u64,
) -> Result<CopyBaselines, BaselineError> {
    let table = fresh_baseline_table(client, profile).await?;
    let columns = baseline_columns(profile).join(", ");
    let binary = timed_copy_in(
        client,
        &format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)"),
        data,
        rows,
    )
    .await?;
    let text_file = data.with_extension("txt");
    receive(
        client,
        &format!("COPY {table} ({columns}) TO STDOUT"),
        &text_file,
    )
    .await?;
    client
        .batch_execute(&format!("TRUNCATE {table}; CHECKPOINT"))
        .await
        .map_err(|e| PgError::query("cannot empty the baseline table", e))?;
    let text = timed_copy_in(
        client,
        &format!("COPY {table} ({columns}) FROM STDIN"),
        &text_file,
        rows,
    )
    .await;
    let _ = std::fs::remove_file(&text_file);
    let text = text?;
    drop_baseline_table(client, &table).await?;
    Ok(CopyBaselines { binary, text })
}

/// PostgreSQL's own binary COPY of the rows a first run left in each derived table
/// (`[[derived]]`: `drivers` in the built-in profile), the columns datsync writes (those
/// taken from the rows, then the bookkeeping), into an empty table of that table's shape
/// (`LIKE … INCLUDING ALL`, in the profile's schema); the sum over the derived tables, `None`
/// when the profile has none. Called after a first run, whose rows are still in the derived
/// tables: added to the COPY of the main rows ([`copy_baselines`]), it is what PostgreSQL's
/// own COPYs of the rows a run writes, into the tables it writes them to, take one after the
/// other. The rows are read out (into a file in `dir`, removed afterwards) before the clock
/// starts, counted in the same snapshot.
pub async fn derived_copy_baseline(
    client: &Client,
    profile: &Profile,
    dir: &Path,
) -> Result<Option<Duration>, BaselineError> {
    if profile.derived.is_empty() {
        return Ok(None);
    }
    let mut total = Duration::ZERO;
    let table = quote_qualified(&profile.schema, DERIVED_BASELINE_TABLE);
    let file = dir.join("derived_baseline.bin");
    for d in &profile.derived {
        let took = derived_copy_once(client, profile, d, &table, &file).await;
        let _ = std::fs::remove_file(&file);
        let dropped = client
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await
            .map_err(|e| PgError::query("cannot drop the derived baseline table", e));
        total += took?;
        dropped?;
    }
    Ok(Some(total))
}

/// One derived table's part of [`derived_copy_baseline`]: its rows out to `file`, then the
/// timed COPY of them into a new `table` shaped like it.
async fn derived_copy_once(
    client: &Client,
    profile: &Profile,
    d: &crate::profile::Derived,
    table: &str,
    file: &Path,
) -> Result<Duration, BaselineError> {
    let source = quote_qualified(&profile.schema, &d.table);
    let columns = d
        .columns
        .iter()
        .filter(|c| c.from.is_some())
        .map(|c| quote_ident(&c.target))
        .chain(
            crate::profile::DERIVED_BOOKKEEPING
                .iter()
                .map(|(b, _)| quote_ident(b)),
        )
        .collect::<Vec<_>>()
        .join(", ");
    let failed = |what: &'static str| move |e| PgError::query(what, e);
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(failed("cannot read a derived table's rows"))?;
    let read = async {
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {source}"), &[])
            .await
            .map_err(failed("cannot count a derived table's rows"))?
            .get(0);
        // A query, not the table: a partitioned table's rows are COPYed out this way too.
        receive(
            client,
            &format!("COPY (SELECT {columns} FROM {source}) TO STDOUT (FORMAT binary)"),
            file,
        )
        .await?;
        Ok::<_, BaselineError>(rows)
    }
    .await;
    let ended = client
        .batch_execute(if read.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .await
        .map_err(failed("cannot end the derived baseline's read"));
    let rows = read?;
    ended?;
    table_like(client, table, &source).await?;
    timed_copy_in(
        client,
        &format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)"),
        file,
        u64::try_from(rows).unwrap_or_default(),
    )
    .await
}

/// The baseline of a run into a loaded table: the binary stream in `data` (`rows` rows,
/// written by [`encode_baseline`]) COPYed into a temporary staging table, then one upsert
/// into the target written by hand — `INSERT … SELECT … ON CONFLICT (key) DO UPDATE SET`
/// every column `WHERE` the stored `(row_version, sync_seq, source_line)` is smaller, as
/// datsync's guard — under a `sync_seq` drawn from datsync's sequence (so later syncs
/// still win over it), in one transaction; returns the time of both (the transaction's
/// begin and commit included). Needs a keyed profile; the rows' keys must be distinct (the
/// generated samples' are).
pub async fn upsert_baseline(
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
    let stage = quote_ident(BASELINE_STAGE);
    let columns = baseline_columns(profile);
    let values = columns.join(", ");
    let row_version = crate::transform::has_row_version(profile);
    let sync_seq: i64 = client
        .query_one(
            &format!(
                "SELECT nextval('{}')",
                quote_qualified(&profile.schema, crate::pg::SYNC_SEQUENCE).replace('\'', "''")
            ),
            &[],
        )
        .await
        .map_err(failed("cannot draw a sync_seq for the upsert baseline"))?
        .get(0);
    let keys: Vec<String> = profile.key.iter().map(|k| quote_ident(k)).collect();
    let sets: Vec<String> = columns
        .iter()
        .filter(|c| !keys.contains(c))
        .map(String::as_str)
        .chain(["updated_at", "sync_id", "source_file", "sync_seq"])
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let version = |side: &str| {
        if row_version {
            format!("COALESCE({side}.row_version, '') COLLATE \"C\", ")
        } else {
            String::new()
        }
    };
    let upsert = format!(
        "INSERT INTO {target} AS t ({values}, created_at, updated_at, sync_id, source_file,
                                    sync_seq)
         SELECT {values}, now(), now(), 'bench-upsert-baseline', 'bench', {sync_seq}::bigint
           FROM {stage}
         ON CONFLICT ({key}) DO UPDATE SET {sets}
         WHERE ({old}COALESCE(t.sync_seq, -1), COALESCE(t.source_line, -1))
             < ({new}EXCLUDED.sync_seq, EXCLUDED.source_line)",
        key = keys.join(", "),
        sets = sets.join(", "),
        old = version("t"),
        new = version("EXCLUDED"),
    );
    client
        .batch_execute("CHECKPOINT")
        .await
        .map_err(failed("cannot write a checkpoint"))?;
    let started = Instant::now();
    // One transaction, begun and committed by hand: the COPY runs on the same session.
    let staged_and_upserted = async {
        client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL work_mem = '{}'; SET LOCAL jit = off;
                 CREATE TEMP TABLE {stage} ON COMMIT DROP
                     AS SELECT {values} FROM {target} WITH NO DATA",
                super::LOAD_WORK_MEM
            ))
            .await
            .map_err(failed("cannot create the upsert baseline's staging table"))?;
        let copied = send(
            client,
            &format!("COPY {stage} ({values}) FROM STDIN (FORMAT binary)"),
            data,
        )
        .await?;
        let upserted = client
            .execute(&upsert, &[])
            .await
            .map_err(failed("the upsert baseline's upsert failed"))?;
        if copied != rows || upserted != rows {
            return Err(BaselineError::RowCount {
                copied: copied.min(upserted),
                expected: rows,
            });
        }
        client
            .batch_execute("COMMIT")
            .await
            .map_err(failed("cannot commit the upsert baseline"))?;
        Ok::<_, BaselineError>(())
    }
    .await;
    if let Err(e) = staged_and_upserted {
        // Rolled back: the session stays usable for the caller, the table as it was.
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(e);
    }
    let took = started.elapsed();
    Ok(took)
}

/// Writes `COPY … TO STDOUT`'s output to the file `out`.
async fn receive(client: &Client, sql: &str, out: &Path) -> Result<(), BaselineError> {
    use futures::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let io = |error| BaselineError::Io {
        path: out.to_path_buf(),
        error,
    };
    let failed = |e| PgError::query("the baseline's COPY TO failed", e);
    let file = tokio::fs::File::create(out).await.map_err(io)?;
    crate::store::private_file(out).map_err(io)?;
    let mut file = tokio::io::BufWriter::with_capacity(SEND_BLOCK, file);
    let stream = client.copy_out(sql).await.map_err(failed)?;
    futures::pin_mut!(stream);
    while let Some(piece) = stream.next().await {
        file.write_all(&piece.map_err(failed)?).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok(())
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
