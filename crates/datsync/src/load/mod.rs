//! Loading one chunk into PostgreSQL in **one** transaction: binary `COPY` of the typed
//! batch into a temporary staging table, a newest-wins upsert into the target, and the
//! chunk's ledger row in `sync_chunks`. A chunk whose ledger row exists is a no-op that
//! returns the recorded counts, so a retry never loads twice.
//!
//! Newest wins: a target row is only replaced by a row with a greater
//! `(sync_seq, source_line)`, so retrying chunk 5 after chunk 120, or loading an older
//! sync's chunk after a newer sync, never regresses a key. Duplicate keys inside a chunk are
//! reduced to the last source line before the upsert (no SQLSTATE 21000). A composite key
//! (`key = ["a", "b"]`) is one key: every part is compared, conflicted on and counted together.
//!
//! A chunk none of whose keys the table holds (a first load; new documents) skips the
//! staging table and the upsert: it is COPYed straight into the table (`direct.rs`,
//! `ChunkLoad::direct_copy`). Where the table cannot take that COPY as it is (an adopted
//! column type, a rule) or the key is not one `text`/`integer` column, it is staged and, under
//! the sync's upsert lock, inserted with a plain `INSERT … SELECT` in key order inside a
//! savepoint — no conflict handling, no counting CTEs, `inserted = distinct keys`
//! (`ChunkLoad::new_keys`); a key column the look-up does not ask about (an adopted
//! `char(n)`, `direct.rs`) is upserted instead. Either way another sync may insert one of
//! the keys after the look-up: the COPY or insert then fails on the key's unique index
//! (23505, after waiting for that sync's commit), is rolled back to its savepoint and the
//! chunk is staged and upserted, so newest wins and the counts stay exact.
//!
//! Append mode (`mode = "append"`) has no key: every staged row is inserted `ON CONFLICT
//! (sync_id, source_line) DO NOTHING` (the table's own key), in the same transaction as the
//! ledger row, so `inserted = rows`.
//!
//! # Counts
//!
//! Each staged row is exactly one of (see [`ChunkLoad`]):
//!
//! | the stored row before the upsert | incoming row | counted as |
//! |---|---|---|
//! | none | — | inserted |
//! | another sync's, older | applied | updated |
//! | another sync's, newer | not applied | skipped_older |
//! | this sync's (another chunk), older line | applied | superseded (the stored row lost) |
//! | this sync's (another chunk), newer line | not applied | superseded (the incoming row lost) |
//! | — (a later line of this chunk has the key) | dropped | superseded |
//!
//! The stored row's `sync_seq` is read in the upsert's own statement (CTEs over the keys that
//! conflicted, which see the table as it was before the insert), since `RETURNING` in
//! PostgreSQL 15 cannot see the old row; a chunk that only inserts looks nothing up, and a
//! chunk that shares no key with a committed chunk of its sync (`apart.rs`) does not look up
//! who stored the rows it updates (none is its sync's). So a key
//! that occurs in two chunks of one file counts once as inserted (or updated) and once as
//! superseded, whichever chunk commits first: the counts of a sync do not depend on the
//! order its chunks commit in, and `rows_loaded = inserted + updated + skipped_older`.
//!
//! Across syncs the split can move: a row is classified against the stored row it meets, and
//! another sync's row of the key may commit between two chunks of this sync that both have
//! it. Chunk 1 (changed 10:00) then chunk 2 (08:00) of sync A, sync B's row (the next day)
//! after both: A's 08:00 row meets A's own newer row, superseded. B's row between A's two
//! chunks: A's 08:00 row meets B's newer row, skipped_older. The rows of each sync, the table and the inserts over all syncs are the same in
//! every order; only the classes of the rows that lost differ. Keeping the split order-free
//! would need the sync's rows of other chunks at upsert time, which one chunk does not have.
//! (Tested by `datsync-cli/tests/pipeline/versions.rs`.)
//!
//! For the staged keys left alone because another sync's stored row is newer (the chunk's
//! `skipped_older`), the same statement returns the newest of those stored rows by
//! `(row_version, sync_seq)`, with its `sync_id` and `source_file`: recorded in the chunk's
//! ledger row (`older_than_*`), so that `status` can name the version that won.

mod apart;
mod baseline;
mod copy;
mod derived;
mod derived_pick;
mod direct;
mod numeric;
mod sql;

use arrow_array::{Array, RecordBatch, UInt64Array};
use arrow_schema::DataType;
use bytes::BytesMut;
use futures::SinkExt;
use tokio_postgres::Client;

use crate::model::{ChunkId, LINE_COLUMN, LineNo, SyncId, SyncRef, VERSION_COLUMN};
use crate::pg::{ErrorClass, PgError};
use crate::profile::{ColumnType, Profile};
use copy::{COPY_HEADER, COPY_TRAILER, ColumnEncoder, MAX_SCALE};
use direct::Offered;
use sql::LoadSql;

pub use baseline::{
    BaselineError, CopyBaselines, copy_baseline, copy_baselines, derived_copy_baseline,
    encode_baseline, upsert_baseline,
};

/// The binary `numeric` encoder, for the tests that compare it with PostgreSQL's.
#[cfg(feature = "test-support")]
pub use numeric::put_numeric;

/// Rows encoded per COPY message at most.
pub const COPY_ROWS_PER_MESSAGE: usize = 2048;
/// A COPY message ends once it holds this many bytes (64 KiB) or
/// [`COPY_ROWS_PER_MESSAGE`] rows, whichever comes first: a chunk of wide rows is sent in
/// small messages, never encoded whole. Small enough for the allocator to serve each
/// message's buffer from memory a sent message freed (the connection copies a message into
/// its own buffer, then drops it) rather than from new pages: against 1 MiB messages, a 100
/// MB first run touched ~13% fewer new pages and peaked ~10 MiB lower (its time did not move
/// measurably).
pub const COPY_BYTES_PER_MESSAGE: usize = 64 << 10;
/// `work_mem` for the chunk transaction, so the in-chunk dedup hash stays in memory. (The
/// transaction also turns JIT off: compiling a 90-column upsert costs more than running it
/// over one chunk.)
pub const LOAD_WORK_MEM: &str = "128MB";

/// What loading a chunk did (or, when `already_committed`, what the ledger recorded). See the
/// module docs: `rows = inserted + updated + skipped_older + superseded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkLoad {
    /// Rows in the typed batch.
    pub rows: u64,
    /// Keys inserted.
    pub inserted: u64,
    /// Keys whose stored row, from an earlier sync, was replaced.
    pub updated: u64,
    /// Keys left alone because the stored row, from another sync, is newer.
    pub skipped_older: u64,
    /// Rows of this sync that lost to another row of this sync with the same key: a later
    /// line of the same chunk, a stored row of an earlier-committed chunk that is newer, or
    /// the stored row of an earlier-committed chunk that this chunk's row replaced.
    pub superseded: u64,
    /// The ledger already had this chunk: nothing was written.
    pub already_committed: bool,
    /// The table held none of the chunk's keys: its rows were inserted without the upsert.
    pub new_keys: bool,
    /// Of those, the rows were COPYed straight into the table, not staged (`load/direct.rs`).
    pub direct_copy: bool,
    /// The chunk shared no key with a committed chunk of its sync (`load/apart.rs`): its
    /// upsert did not look up who stored the rows it updated.
    pub apart: bool,
    /// Derived tables whose upsert failed for this chunk and was rolled back (the chunk is
    /// loaded; see `load/derived.rs`).
    pub derived_failed: u64,
}

/// A chunk that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A profile column is missing from the batch or has the wrong Arrow type.
    #[error(
        "chunk {chunk}: column `{column}` {message}; the typed batch does not match the profile"
    )]
    Schema {
        /// The chunk.
        chunk: ChunkId,
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// Rows with a NULL key reached the loader (validation should have rejected them).
    #[error(
        "chunk {chunk}: {count} row(s) have a null key `{column}` (first lines: {lines:?}); \
         they must be rejected before loading"
    )]
    NullKey {
        /// The chunk.
        chunk: ChunkId,
        /// The key column.
        column: String,
        /// How many rows.
        count: usize,
        /// The first few source lines.
        lines: Vec<LineNo>,
    },
    /// The database failed.
    #[error("sync {sync_id}, chunk {chunk}: {source}")]
    Database {
        /// The sync.
        sync_id: SyncId,
        /// The chunk.
        chunk: ChunkId,
        /// The failure.
        source: PgError,
    },
}

impl LoadError {
    /// Whether retrying the chunk later can succeed.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Database { source, .. } => source.class(),
            _ => ErrorClass::Fatal,
        }
    }

    /// Whether the database is away or short of resources ([`PgError::is_outage`]).
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Database { source, .. } if source.is_outage())
    }
}

/// Row counts of a chunk known before it reaches the database.
#[derive(Debug, Clone, Copy)]
struct Rows {
    /// Rows staged.
    staged: usize,
    /// Distinct keys among them.
    distinct: usize,
}

/// Loads chunks for one profile; build once, use for every chunk.
#[derive(Clone)]
pub struct Loader {
    profile: Profile,
    sql: LoadSql,
    hook: Option<LoadHook>,
    /// The key ranges of the chunks this process looked up, shared by the loader's clones
    /// (`apart.rs`).
    notes: apart::Notes,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("profile", &self.profile.name)
            .field("hook", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

/// Called at the points of a chunk's load that the crash tests stop a sync at.
pub type LoadHook = std::sync::Arc<dyn Fn(LoadPoint, ChunkId) + Send + Sync>;

/// A point of a chunk's load, before its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadPoint {
    /// The chunk's rows are written by its COPY — into the staging table, or straight into
    /// the target table (`direct.rs`) — before the upsert ("mid-COPY").
    Staged,
    /// Its derived tables are committed on the loader's second connection
    /// ([`Loader::load_chunk_beside`]) and its own rows written: the derived tables hold the
    /// chunk, the table does not.
    DerivedCommitted,
}

/// What validation decided about a chunk, recorded in its ledger row in the same
/// transaction as its rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkFacts {
    /// Rows of the chunk read from the source (ragged rows included).
    pub rows_read: u64,
    /// Rows rejected by validation.
    pub rejected: u64,
    /// Rows dropped by validation because a later line of the chunk has the same key.
    pub superseded: u64,
    /// Rule violations found (a row may break several).
    pub validation_errors_count: u64,
    /// The first violations, as JSON (`[{kind, line, column, value, reason}]`).
    pub validation_errors: Option<serde_json::Value>,
    /// How the chunk was cut from its source (recorded so that a resume cuts it again there).
    pub cut: Option<crate::model::ChunkCut>,
    /// Values of the chunk not loaded as written (read as NULL, midnight, rounded).
    pub value_warnings: u64,
    /// The first of them, as JSON (`[{kind, line, column, target, value, reason}]`).
    pub value_warnings_sample: Option<serde_json::Value>,
}

impl Loader {
    /// Prepares the SQL for a profile (whose tables `pg::init_db` created).
    pub fn new(profile: &Profile) -> Self {
        Self {
            profile: profile.clone(),
            sql: LoadSql::new(profile),
            hook: None,
            notes: apart::Notes::default(),
        }
    }

    /// Calls `hook` at each [`LoadPoint`] of each chunk's load.
    #[must_use]
    pub fn with_hook(mut self, hook: LoadHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// A chunk's load reached `point`.
    fn reached(&self, point: LoadPoint, chunk: ChunkId) {
        if let Some(hook) = &self.hook {
            hook(point, chunk);
        }
    }

    /// Whether the derived tables can be upserted on a second connection beside the chunk's
    /// transaction ([`Self::load_chunk_beside`]): the profile has derived tables and a
    /// one-column key (the rows they read are sent on that connection: `derived_pick.rs`).
    pub fn derives_beside(&self) -> bool {
        self.sql
            .direct
            .as_ref()
            .is_some_and(direct::DirectSql::stages_derived)
    }

    /// Loads one typed batch as chunk `chunk` of `sync`, in one transaction with its
    /// ledger row; `checksum` is recorded in the ledger.
    pub async fn load_chunk(
        &self,
        client: &mut Client,
        sync: &SyncRef,
        chunk: ChunkId,
        checksum: &str,
        batch: &RecordBatch,
    ) -> Result<ChunkLoad, LoadError> {
        let facts = ChunkFacts {
            rows_read: batch.num_rows() as u64,
            ..ChunkFacts::default()
        };
        self.load_chunk_with_facts(client, sync, chunk, checksum, batch, &facts)
            .await
    }

    /// [`Self::load_chunk`], recording what validation decided about the chunk in its ledger
    /// row.
    pub async fn load_chunk_with_facts(
        &self,
        client: &mut Client,
        sync: &SyncRef,
        chunk: ChunkId,
        checksum: &str,
        batch: &RecordBatch,
        facts: &ChunkFacts,
    ) -> Result<ChunkLoad, LoadError> {
        self.load_chunk_beside(client, None, sync, chunk, checksum, batch, facts)
            .await
    }

    /// [`Self::load_chunk_with_facts`], the derived tables upserted on `side` (another
    /// connection) while `client` writes the chunk's rows, when [`Self::derives_beside`]:
    /// see `derived.rs`, "Beside the chunk's transaction". Without `side`, in the chunk's
    /// transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn load_chunk_beside(
        &self,
        client: &mut Client,
        side: Option<&Client>,
        sync: &SyncRef,
        chunk: ChunkId,
        checksum: &str,
        batch: &RecordBatch,
        facts: &ChunkFacts,
    ) -> Result<ChunkLoad, LoadError> {
        let encoders = self.encoders(chunk, batch)?;
        let write = self.chunk_write(sync, chunk, checksum, batch, &encoders, facts)?;
        let q = |what: &'static str| move |e| PgError::query(what, e);
        let committed = async {
            let tx = client.transaction().await.map_err(q("cannot begin"))?;
            let load = self.write(tx.client(), side, &write).await?;
            tx.commit().await.map_err(q("cannot commit the chunk"))?;
            Ok(load)
        };
        committed.await.map_err(|source| write.failed(source))
    }

    /// What a chunk's transaction writes: the batch's encoders and its count of distinct
    /// keys (a NULL key part is an error here, before any statement).
    fn chunk_write<'a, 'b>(
        &self,
        sync: &'a SyncRef,
        chunk: ChunkId,
        checksum: &'a str,
        batch: &RecordBatch,
        encoders: &'a [ColumnEncoder<'b>],
        facts: &'a ChunkFacts,
    ) -> Result<ChunkWrite<'a, 'b>, LoadError> {
        Ok(ChunkWrite {
            sync,
            chunk,
            checksum,
            rows: Rows {
                staged: batch.num_rows(),
                distinct: self.distinct_keys(chunk, batch)?,
            },
            encoders,
            facts,
            file_version: self
                .sql
                .file_version_param
                .then(|| self.file_version(&sync.source_file))
                .flatten(),
        })
    }

    /// The batch as one binary COPY stream (header, rows, trailer) of the profile's columns
    /// then `_line` (then `_version` when the profile has a row version) — what the staging COPY sends, for tools and benchmarks that COPY the
    /// same rows elsewhere.
    pub fn encode_copy(&self, chunk: ChunkId, batch: &RecordBatch) -> Result<BytesMut, LoadError> {
        let mut buf = BytesMut::with_capacity(batch.get_array_memory_size());
        buf.extend_from_slice(COPY_HEADER);
        self.encode_copy_rows(chunk, batch, &mut buf)?;
        buf.extend_from_slice(&COPY_TRAILER.to_be_bytes());
        Ok(buf)
    }

    /// The batch's rows as binary COPY tuples (no header, no trailer), appended to `buf`.
    fn encode_copy_rows(
        &self,
        chunk: ChunkId,
        batch: &RecordBatch,
        buf: &mut BytesMut,
    ) -> Result<(), LoadError> {
        let encoders = self.encoders(chunk, batch)?;
        copy::put_rows(&encoders, 0..batch.num_rows(), buf);
        Ok(())
    }

    /// The encoders of the profile's columns then `_line`, checking names and types.
    fn encoders<'b>(
        &self,
        chunk: ChunkId,
        batch: &'b RecordBatch,
    ) -> Result<Vec<ColumnEncoder<'b>>, LoadError> {
        let wrong = |column: &str, message: String| LoadError::Schema {
            chunk,
            column: column.to_owned(),
            message,
        };
        let mut out = Vec::with_capacity(self.profile.columns.len() + 1);
        for c in &self.profile.columns {
            let array = batch
                .column_by_name(&c.target)
                .ok_or_else(|| wrong(&c.target, "is missing".into()))?;
            if !type_fits(c.kind, array.data_type()) {
                return Err(wrong(
                    &c.target,
                    format!(
                        "has type {} but the profile says {}",
                        array.data_type(),
                        c.kind
                    ),
                ));
            }
            let encoder = match ColumnEncoder::new(array.as_ref()) {
                // A numeric without a fixed scale is typed as its canonical text.
                Some(ColumnEncoder::Text(a)) if c.kind == ColumnType::Numeric => {
                    ColumnEncoder::NumericText(a)
                }
                Some(e) => e,
                None => return Err(wrong(&c.target, "has an unsupported type".into())),
            };
            out.push(encoder);
        }
        let line = batch
            .column_by_name(LINE_COLUMN)
            .filter(|a| a.data_type() == &DataType::UInt64)
            .ok_or_else(|| wrong(LINE_COLUMN, "is missing or not UInt64".into()))?;
        out.extend(ColumnEncoder::new(line.as_ref()));
        if crate::transform::has_row_version(&self.profile) {
            let version = batch
                .column_by_name(VERSION_COLUMN)
                .filter(|a| a.data_type() == &DataType::Utf8)
                .ok_or_else(|| wrong(VERSION_COLUMN, "is missing or not Utf8".into()))?;
            out.extend(ColumnEncoder::new(version.as_ref()));
        }
        Ok(out)
    }

    /// The number of distinct keys (of every part of a composite key together; in append
    /// mode every row is its own); rejects NULL key parts (and NULL lines, which would make
    /// the newest-wins order undefined).
    fn distinct_keys(&self, chunk: ChunkId, batch: &RecordBatch) -> Result<usize, LoadError> {
        let missing = |column: &str| LoadError::Schema {
            chunk,
            column: column.to_owned(),
            message: "is missing".into(),
        };
        let lines = batch
            .column_by_name(LINE_COLUMN)
            .and_then(|a| a.as_any().downcast_ref::<UInt64Array>())
            .ok_or_else(|| missing(LINE_COLUMN))?;
        if lines.null_count() > 0 {
            return Err(LoadError::Schema {
                chunk,
                column: LINE_COLUMN.to_owned(),
                message: "has null line numbers".into(),
            });
        }
        let mut parts = Vec::with_capacity(self.profile.key.len());
        for name in &self.profile.key {
            let keys = batch.column_by_name(name).ok_or_else(|| missing(name))?;
            if keys.null_count() > 0 {
                let null_rows: Vec<usize> = (0..keys.len()).filter(|&i| keys.is_null(i)).collect();
                return Err(LoadError::NullKey {
                    chunk,
                    column: name.clone(),
                    count: null_rows.len(),
                    lines: null_rows.iter().take(10).map(|&i| lines.value(i)).collect(),
                });
            }
            parts.push(keys.as_ref());
        }
        Ok(match parts.as_slice() {
            [] => batch.num_rows(),
            [one] => copy::distinct_values(*one),
            _ => copy::distinct_tuples(&parts),
        })
    }

    /// [`Self::load_chunk_with_facts`] inside a transaction that the caller opened on
    /// `client` and commits (or rolls back): the work queue's, whose first statement claimed
    /// the chunk's `chunk_queue` row (`pipeline/queue.rs`). Everything else is the same
    /// statements in the same order: the chunk's lock, the ledger check, the COPY (straight
    /// into the table, or staging and upsert), the derived tables, the ledger row and the
    /// queue row's deletion.
    pub async fn load_chunk_in_transaction(
        &self,
        client: &Client,
        sync: &SyncRef,
        chunk: ChunkId,
        checksum: &str,
        batch: &RecordBatch,
        facts: &ChunkFacts,
    ) -> Result<ChunkLoad, LoadError> {
        let encoders = self.encoders(chunk, batch)?;
        let write = self.chunk_write(sync, chunk, checksum, batch, &encoders, facts)?;
        self.write(client, None, &write)
            .await
            .map_err(|source| write.failed(source))
    }

    /// The statements of a chunk's transaction, on `c` where it is open: the chunk's lock,
    /// the ledger check (a committed chunk returns its recorded counts), the look-up of its
    /// keys and, when the table holds none, the COPY straight into it under the sync's upsert
    /// lock; else the staging COPY and the upsert under that lock; the derived tables (on
    /// `side`, in a transaction of their own, while `c` writes the rows, when given and
    /// [`Self::derives_beside`]), the ledger row (with this process as its `worker`), and
    /// the chunk's work-queue row deleted.
    async fn write(
        &self,
        c: &Client,
        side: Option<&Client>,
        w: &ChunkWrite<'_, '_>,
    ) -> Result<ChunkLoad, PgError> {
        let q = |what: &'static str| move |e| PgError::query(what, e);
        let chunk = w.chunk;
        let chunk_i = i32::try_from(chunk.0).map_err(|_| PgError::Config {
            message: format!("chunk id {chunk} does not fit the ledger's integer column"),
        })?;
        let sync_id = w.sync.sync_id.as_str();
        c.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1), $2)",
            &[&sync_id, &chunk_i],
        )
        .await
        .map_err(q("cannot lock the chunk"))?;
        if let Some(row) = c
            .query_opt(&self.sql.ledger_get, &[&sync_id, &chunk_i])
            .await
            .map_err(q("cannot read the chunk ledger"))?
        {
            let recorded: String = row.get(4);
            if recorded != w.checksum {
                tracing::warn!(%sync_id, %chunk, recorded, checksum = w.checksum,
                    "chunk already committed with another checksum; the ledger wins");
            }
            c.execute(&self.sql.queue_done, &[&sync_id, &chunk_i])
                .await
                .map_err(q("cannot delete the chunk from the work queue"))?;
            return Ok(recorded_counts(&row));
        }
        c.batch_execute(&format!(
            "SET LOCAL work_mem = '{LOAD_WORK_MEM}'; SET LOCAL jit = off"
        ))
        .await
        .map_err(q("cannot set the chunk's work_mem"))?;
        let ((mut load, newer), derived_failed) = self.write_rows_and_derived(c, side, w).await?;
        load.derived_failed = derived_failed;
        let facts = w.facts;
        c.execute(
            &self.sql.ledger_put,
            &[
                &sync_id,
                &chunk_i,
                &to_i64(load.rows),
                &to_i64(load.inserted),
                &to_i64(load.updated),
                &to_i64(load.skipped_older),
                &w.checksum,
                &to_i64(facts.rows_read),
                &to_i64(facts.rejected),
                &to_i64(facts.superseded),
                &to_i64(facts.validation_errors_count),
                &facts.validation_errors,
                &facts.cut.map(|c| to_i64(c.rows)),
                &facts.cut.and_then(|c| c.bytes).map(to_i64),
                &facts.cut.and_then(|c| c.max_line_bytes).map(to_i64),
                &to_i64(load.superseded),
                &to_i64(facts.value_warnings),
                &facts.value_warnings_sample,
                &to_i64(load.derived_failed),
                &worker_name(),
                &newer.as_ref().and_then(|n| n.version.as_deref()),
                &newer.as_ref().map(|n| n.sync_seq),
                &newer.as_ref().and_then(|n| n.sync_id.as_deref()),
                &newer.as_ref().and_then(|n| n.file.as_deref()),
            ],
        )
        .await
        .map_err(q("cannot write the chunk ledger"))?;
        c.execute(&self.sql.queue_done, &[&sync_id, &chunk_i])
            .await
            .map_err(q("cannot delete the chunk from the work queue"))?;
        Ok(load)
    }

    /// The staged rows upserted into the target table, one chunk of the sync at a time, and
    /// what came of each; with the newest stored row of another sync that kept rows out as
    /// older, when one did. Rows staged in key order ([`Offered::staging_order`]) are written
    /// by the statements without a sort of their own (`sql.rs`, `Upserts`); a chunk apart
    /// from the rest of its sync (`before`: the chunks it may be apart from, `apart.rs`) by
    /// the one that does not look up who stored the rows it updates.
    async fn upsert(
        &self,
        c: &Client,
        w: &ChunkWrite<'_, '_>,
        offered: Offered,
        before: Option<apart::Before>,
    ) -> Result<(ChunkLoad, Option<NewerStored>), PgError> {
        let q = |what: &'static str| move |e| PgError::query(what, e);
        let in_order = offered.staging_order(w.rows.staged).is_some();
        let (sync, rows) = (w.sync, w.rows);
        let sync_id = sync.sync_id.as_str();
        lock_sync_upsert(c, sync_id).await?;
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vec![&sync_id, &sync.source_file, &sync.sync_seq];
        if self.sql.file_version_param {
            params.push(&w.file_version);
        }
        let inserted = match offered {
            Offered::KeysStored(_) => None,
            Offered::KeysNew(_) => {
                self.insert_new_keys(c, &params, rows, false, in_order)
                    .await?
            }
            Offered::NotTried | Offered::Copied(_) => {
                self.insert_new_keys(c, &params, rows, true, false).await?
            }
        };
        if let Some(inserted) = inserted {
            return Ok((UpsertCounts::new_keys(inserted).classify(rows), None));
        }
        let apart_sql = match (&self.sql.upsert_unique_in_order_apart, before) {
            (Some(apart_sql), Some(before)) if in_order && rows.distinct == rows.staged => {
                let others: bool = c
                    .query_one(
                        &self.sql.ledger_others,
                        &[&sync_id, &before.chunks, &before.checksums],
                    )
                    .await
                    .map_err(q("cannot read the chunk ledger"))?
                    .get(0);
                (!others).then_some(apart_sql)
            }
            _ => None,
        };
        let counts = c
            .query_one(
                if rows.distinct != rows.staged {
                    &self.sql.upsert_dedup
                } else if let Some(apart_sql) = apart_sql {
                    apart_sql
                } else if in_order {
                    &self.sql.upsert_unique_in_order
                } else {
                    &self.sql.upsert_unique
                },
                &params,
            )
            .await
            .map_err(q("cannot upsert the chunk into the target table"))?;
        let newer = NewerStored::from_row(&counts);
        let counts = UpsertCounts {
            new_keys: false,
            inserted: counts.get(0),
            applied_over: counts.get(1),
            replaced_same_sync: counts.get(2),
            kept_same_sync: counts.get(3),
        };
        let load = ChunkLoad {
            apart: apart_sql.is_some(),
            ..counts.classify(rows)
        };
        // Only rows skipped as older have a newer stored row to name.
        Ok((load, newer.filter(|_| load.skipped_older > 0)))
    }
}

impl Loader {
    /// The chunk's rows written on `c` and its derived tables upserted: on `side`, beside the
    /// chunk's transaction and at the same time, when given and [`Self::derives_beside`];
    /// else on `c` after the rows. Returns the rows' outcome and the derived upserts that
    /// failed and were rolled back.
    async fn write_rows_and_derived(
        &self,
        c: &Client,
        side: Option<&Client>,
        w: &ChunkWrite<'_, '_>,
    ) -> Result<((ChunkLoad, Option<NewerStored>), u64), PgError> {
        let at = format!("sync {}, chunk {}", w.sync.sync_id, w.chunk);
        let file_version = self.sql.file_version_param.then_some(&w.file_version);
        if let Some(side) = side.filter(|_| self.derives_beside()) {
            let (rows, derived) = tokio::join!(
                self.write_rows(c, w),
                self.derive_beside(side, w, file_version, &at)
            );
            // The rows' error first: it names what failed in the chunk's transaction.
            let rows = rows?;
            let derived = derived?;
            self.reached(LoadPoint::DerivedCommitted, w.chunk);
            return Ok((rows, derived));
        }
        let rows = self.write_rows(c, w).await?;
        let derived = match &self.sql.direct {
            // COPYed into the table: no stage holds the rows the derived tables read.
            Some(direct) if rows.0.direct_copy => {
                self.write_derived(c, direct, w, file_version, &at).await?
            }
            _ => {
                let all: Vec<&derived::DerivedSql> = self.sql.derived.iter().collect();
                derived::apply(c, &all, w.sync.sync_seq, file_version, &at).await?
            }
        };
        Ok((rows, derived))
    }
}

impl Loader {
    /// The chunk's rows written on `c`: COPYed straight into the table when it holds none of
    /// their keys, else staged and upserted.
    async fn write_rows(
        &self,
        c: &Client,
        w: &ChunkWrite<'_, '_>,
    ) -> Result<(ChunkLoad, Option<NewerStored>), PgError> {
        let (offered, before) = self.copy_direct(c, w).await?;
        if let Offered::Copied(copied) = offered {
            return Ok(self.copied(w, copied));
        }
        c.batch_execute(&self.sql.create_stage)
            .await
            .map_err(|e| PgError::query("cannot create the staging table", e))?;
        let order = offered.staging_order(w.rows.staged);
        copy_rows(c, &self.sql.copy, w.rows.staged, w.encoders, order).await?;
        self.reached(LoadPoint::Staged, w.chunk);
        self.upsert(c, w, offered, before).await
    }

    /// The derived tables upserted on `side` in a transaction of their own, committed
    /// whatever becomes of the chunk's (see `derived.rs`, "Beside the chunk's transaction"):
    /// the rows the client picked upserted as they are, or the columns they read staged by a
    /// narrow COPY and each table's upsert (`derived_pick::write`); returns how
    /// many failed and were rolled back. The transaction is rolled back on an error.
    async fn derive_beside(
        &self,
        side: &Client,
        w: &ChunkWrite<'_, '_>,
        file_version: Option<&Option<String>>,
        at: &str,
    ) -> Result<u64, PgError> {
        let q = |what: &'static str| move |e| PgError::query(what, e);
        let Some(direct) = &self.sql.direct else {
            return Ok(0);
        };
        let applied = async {
            side.batch_execute(&format!(
                "BEGIN; SET LOCAL work_mem = '{LOAD_WORK_MEM}'; SET LOCAL jit = off"
            ))
            .await
            .map_err(q("cannot begin the derived tables' transaction"))?;
            let failed = self
                .write_derived(side, direct, w, file_version, at)
                .await?;
            side.batch_execute("COMMIT")
                .await
                .map_err(q("cannot commit the derived tables"))?;
            Ok(failed)
        }
        .await;
        if applied.is_err() && !side.is_closed() {
            // Best effort: the error returned is the one that matters; a connection that
            // cannot roll back is replaced before the next chunk.
            let _ = side.batch_execute("ROLLBACK").await;
        }
        applied
    }
}

impl Loader {
    /// The chunk offered to the COPY straight into the target table (`load/direct.rs`), its
    /// key range noted: with the chunks noted before it when it may be apart (`apart.rs`).
    async fn copy_direct(
        &self,
        c: &Client,
        w: &ChunkWrite<'_, '_>,
    ) -> Result<(Offered, Option<apart::Before>), PgError> {
        let Some(direct) = &self.sql.direct else {
            return Ok((Offered::NotTried, None));
        };
        let d = w.direct();
        let distinct = w.rows.distinct == w.rows.staged;
        let (offered, range) = direct.copy_new_keys(c, &d, distinct).await?;
        let before = range
            .zip(i32::try_from(w.chunk.0).ok())
            .and_then(|(range, chunk)| {
                let chunk = (chunk, w.checksum.to_owned());
                self.notes.note(w.sync.sync_id.as_str(), chunk, range)
            });
        Ok((offered, before))
    }

    /// A chunk COPYed straight into the target: its counts (every row inserted).
    fn copied(&self, w: &ChunkWrite<'_, '_>, copied: u64) -> (ChunkLoad, Option<NewerStored>) {
        tracing::debug!(chunk = %w.chunk, rows = copied, "chunk copied straight into the target table");
        self.reached(LoadPoint::Staged, w.chunk);
        let load = ChunkLoad {
            direct_copy: true,
            ..UpsertCounts::new_keys(to_i64(copied)).classify(w.rows)
        };
        (load, None)
    }

    /// The chunk's derived tables written on `c` from its batch, no stage holding its rows
    /// (`derived_pick::write`: the rows the client picked upserted as they are, else the
    /// upsert from a narrow stage).
    async fn write_derived(
        &self,
        c: &Client,
        direct: &direct::DirectSql,
        w: &ChunkWrite<'_, '_>,
        file_version: Option<&Option<String>>,
        at: &str,
    ) -> Result<u64, PgError> {
        derived_pick::write(
            c,
            direct,
            &w.direct(),
            &self.sql.derived,
            &self.sql.create_stage,
            w.sync.sync_seq,
            file_version,
            at,
        )
        .await
    }
}

impl Loader {
    /// The staged rows inserted as they are when the target table holds none of their keys
    /// (`sql::NewKeysSql`): `Some(rows inserted)`; `None` when it holds one, or when another
    /// sync inserted one since the look-up (the insert is then rolled back to its savepoint),
    /// and the chunk needs the upsert. Under the sync's upsert lock.
    async fn insert_new_keys(
        &self,
        c: &Client,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        rows: Rows,
        look_up: bool,
        in_order: bool,
    ) -> Result<Option<i64>, PgError> {
        let q = |what: &'static str| move |e| PgError::query(what, e);
        let Some(new) = &self.sql.new_keys else {
            return Ok(None);
        };
        if look_up {
            let fresh: bool = c
                .query_one(&new.probe, &[])
                .await
                .map_err(q("cannot look up the chunk's keys in the target table"))?
                .get(0);
            if !fresh {
                return Ok(None);
            }
        }
        let insert = if rows.distinct != rows.staged {
            &new.insert_dedup
        } else if in_order {
            &new.insert_unique_in_order
        } else {
            &new.insert_unique
        };
        let inserted = unless_a_key_is_taken(c, "datsync_new_keys", || c.execute(insert, params))
            .await
            .map_err(q("cannot insert the chunk into the target table"))?;
        Ok(inserted.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
    }
}

/// Runs `write` (a COPY or an insert of a chunk whose keys a look-up found new) inside the
/// savepoint `name`: `Some(its result)`, the savepoint released; `None` when it failed on a
/// unique index (23505: a key another sync — or another chunk of this sync, for a look-up
/// made before the upsert lock — inserted since the look-up; the write waited for that
/// transaction's commit), rolled back to the savepoint and released, so that the chunk takes
/// the upsert and newest wins. Any other error is returned.
async fn unless_a_key_is_taken<T, F, Fut>(
    c: &Client,
    name: &str,
    write: F,
) -> Result<Option<T>, tokio_postgres::Error>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
{
    c.batch_execute(&format!("SAVEPOINT {name}")).await?;
    match write().await {
        Ok(v) => {
            c.batch_execute(&format!("RELEASE SAVEPOINT {name}"))
                .await?;
            Ok(Some(v))
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            // What the server said (the driver alone says "db error"), without the DETAIL that
            // names the key's value.
            tracing::debug!(error = %crate::pg::server_message(&e),
                "a key of the chunk was inserted since the look-up; staging and upserting it");
            c.batch_execute(&format!(
                "ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
            ))
            .await?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What one chunk's transaction writes.
struct ChunkWrite<'a, 'b> {
    sync: &'a SyncRef,
    chunk: ChunkId,
    checksum: &'a str,
    rows: Rows,
    encoders: &'a [ColumnEncoder<'b>],
    facts: &'a ChunkFacts,
    /// The version the file's name gives its rows, read once per chunk (`None` when the
    /// profile takes none from names, or the name has none).
    file_version: Option<String>,
}

impl<'b> ChunkWrite<'_, 'b> {
    /// What the direct path and the derived tables' narrow COPY need of the chunk.
    fn direct(&self) -> direct::Direct<'_, 'b> {
        direct::Direct {
            encoders: self.encoders,
            rows: self.rows.staged,
            sync: self.sync,
            file_version: self.file_version.as_deref(),
        }
    }

    /// A database error of this chunk's transaction, naming the sync and the chunk.
    fn failed(&self, source: PgError) -> LoadError {
        LoadError::Database {
            sync_id: self.sync.sync_id.clone(),
            chunk: self.chunk,
            source,
        }
    }
}

/// This process as the ledger's `worker` column records it: `host:pid` (the host from
/// `/proc/sys/kernel/hostname`, else `HOSTNAME`, else `localhost`).
pub fn worker_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{host}:{}", std::process::id())
    })
    .clone()
}

impl Loader {
    /// The version a file's name gives its rows (`version_from_name`); `None` when the
    /// profile takes none from names or the name has none (the pipeline warns about that once
    /// per sync: [`file_version`]).
    fn file_version(&self, source_file: &str) -> Option<String> {
        file_version(&self.profile, source_file).ok().flatten()
    }
}

/// The version the profile reads from a file's name: `Ok(None)` when it reads none, `Err`
/// saying why the name has none (its rows then have no file version: the oldest).
pub fn file_version(profile: &Profile, source_file: &str) -> Result<Option<String>, String> {
    match profile.version.as_ref().and_then(|v| v.from_name.as_ref()) {
        None => Ok(None),
        Some(n) => n.version_of(source_file).map(Some),
    }
}

/// Waits until no other chunk of the sync is upserting, and holds that until commit. The
/// chunks of one sync upsert, or COPY straight into the table, one at a time (their look-ups
/// and staging COPYs, and other syncs, run side by side): the counting CTEs read the
/// statement's snapshot, so an upsert must start after every
/// earlier one of its sync committed for `replaced` and `kept` to see the rows of this sync
/// that it meets. The key is the chunk lock's with chunk -1, which no chunk has.
pub(super) async fn lock_sync_upsert(tx: &Client, sync_id: &str) -> Result<(), PgError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1), -1)",
        &[&sync_id],
    )
    .await
    .map_err(|e| PgError::query("cannot lock the sync's upsert", e))?;
    Ok(())
}

/// The newest stored row (by `(row_version, sync_seq)`) of another sync that kept staged
/// rows of the chunk out (the chunk's `skipped_older`), as the upsert returned it; recorded
/// in the chunk's ledger row (`older_than_*`) for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NewerStored {
    /// Its `row_version` (`None`: the profile has no version, or the row has none).
    version: Option<String>,
    /// Its `sync_seq`.
    sync_seq: i64,
    /// The sync that stored it.
    sync_id: Option<String>,
    /// The file it came from (`source_file`).
    file: Option<String>,
}

impl NewerStored {
    /// Columns 4 to 7 of the upsert's row; `None` when no staged row was left alone for
    /// another sync's row.
    fn from_row(row: &tokio_postgres::Row) -> Option<Self> {
        let sync_seq: Option<i64> = row.get(5);
        Some(Self {
            version: row.get(4),
            sync_seq: sync_seq?,
            sync_id: row.get(6),
            file: row.get(7),
        })
    }
}

/// What the upsert statement counted (see [`sql`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UpsertCounts {
    /// The chunk's keys were new: its rows inserted without the upsert (nothing else counted).
    new_keys: bool,
    /// Rows inserted (no stored row).
    inserted: i64,
    /// Rows applied over a stored row (of any sync).
    applied_over: i64,
    /// Of those, rows applied over a stored row of this sync.
    replaced_same_sync: i64,
    /// Staged keys left alone because the stored row, of this sync, is newer.
    kept_same_sync: i64,
}

impl UpsertCounts {
    /// A chunk whose keys the table did not hold, `inserted` rows written without the upsert.
    fn new_keys(inserted: i64) -> Self {
        Self {
            new_keys: true,
            inserted,
            applied_over: 0,
            replaced_same_sync: 0,
            kept_same_sync: 0,
        }
    }

    /// Every staged row in exactly one class (the module docs' table).
    fn classify(self, rows: Rows) -> ChunkLoad {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        let distinct = rows.distinct as u64;
        let (inserted, applied) = (n(self.inserted), n(self.applied_over));
        let replaced = n(self.replaced_same_sync).min(applied);
        // Kept because this sync's stored row is newer: superseded, not older.
        let kept_same = n(self.kept_same_sync);
        let skipped_older = distinct
            .saturating_sub(inserted)
            .saturating_sub(applied)
            .saturating_sub(kept_same);
        ChunkLoad {
            rows: rows.staged as u64,
            inserted,
            updated: applied - replaced,
            skipped_older,
            superseded: (rows.staged - rows.distinct) as u64 + replaced + kept_same,
            already_committed: false,
            new_keys: self.new_keys,
            direct_copy: false,
            apart: false,
            derived_failed: 0,
        }
    }
}

fn recorded_counts(row: &tokio_postgres::Row) -> ChunkLoad {
    let n = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    let (rows, inserted, updated, skipped_older) = (n(0), n(1), n(2), n(3));
    ChunkLoad {
        rows,
        inserted,
        updated,
        skipped_older,
        // Rows committed before `superseded_on_load` was recorded left it 0: the rest is it.
        superseded: n(5).max(rows.saturating_sub(inserted + updated + skipped_older)),
        already_committed: true,
        new_keys: false,
        direct_copy: false,
        apart: false,
        derived_failed: n(6),
    }
}

/// The chunk's rows COPYed into the staging table, in `order` when given (indices into the
/// batch, one per row: the chunk's rows in key order).
async fn copy_rows(
    tx: &Client,
    copy_sql: &str,
    rows: usize,
    encoders: &[ColumnEncoder<'_>],
    order: Option<&[usize]>,
) -> Result<(), PgError> {
    let row = |i: usize| order.and_then(|o| o.get(i).copied()).unwrap_or(i);
    copy_stream_warm(
        tx,
        copy_sql,
        rows,
        |at| copy::warm(encoders, &at.map(row)),
        |i, out| copy::put_fields(encoders, row(i), out),
    )
    .await
    .map_err(|e| PgError::query("cannot copy the chunk into the staging table", e))?;
    Ok(())
}

/// One binary COPY of `rows` rows, `put_row(i, buf)` appending the `i`-th tuple: header,
/// messages of at most [`COPY_ROWS_PER_MESSAGE`] rows or about [`COPY_BYTES_PER_MESSAGE`]
/// bytes (a row is never split), trailer. Returns the rows the server wrote.
async fn copy_stream(
    tx: &Client,
    copy_sql: &str,
    rows: usize,
    put_row: impl FnMut(usize, &mut BytesMut),
) -> Result<u64, tokio_postgres::Error> {
    copy_stream_warm(tx, copy_sql, rows, |_| {}, put_row).await
}

/// [`copy_stream`], with `warm(i..j)` called before the `i`-th tuple of each block of
/// [`copy::WARM_ROWS`] tuples (fewer at the end; [`copy::warm_next`]), to read those rows
/// ahead ([`copy::warm`]).
async fn copy_stream_warm(
    tx: &Client,
    copy_sql: &str,
    rows: usize,
    mut warm: impl FnMut(std::ops::Range<usize>),
    mut put_row: impl FnMut(usize, &mut BytesMut),
) -> Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in::<_, bytes::Bytes>(copy_sql).await?;
    futures::pin_mut!(sink);
    // Room for a full message and the usual row that ends it (a wide row grows it), below
    // the 128 KiB from which glibc's allocator maps new pages. A later buffer (`split` hands
    // this one to the sink) is allocated at 64 KiB and grows once to 128 KiB.
    let mut buf = BytesMut::with_capacity(COPY_BYTES_PER_MESSAGE + (16 << 10));
    buf.extend_from_slice(COPY_HEADER);
    let mut start = 0;
    let mut warmed = 0;
    while start < rows {
        let last = (start + COPY_ROWS_PER_MESSAGE).min(rows);
        let mut end = start;
        while end < last && buf.len() < COPY_BYTES_PER_MESSAGE {
            if let Some(block) = copy::warm_next(end, warmed, rows) {
                warmed = block.end;
                warm(block);
            }
            put_row(end, &mut buf);
            end += 1;
        }
        sink.feed(buf.split().freeze()).await?;
        start = end;
    }
    buf.extend_from_slice(&COPY_TRAILER.to_be_bytes());
    sink.feed(buf.split().freeze()).await?;
    sink.as_mut().finish().await
}

fn type_fits(kind: ColumnType, dt: &DataType) -> bool {
    use arrow_schema::TimeUnit::Microsecond;
    match kind {
        ColumnType::Text | ColumnType::Numeric => dt == &DataType::Utf8,
        ColumnType::Decimal { .. } => {
            matches!(dt, DataType::Decimal128(_, s) if (0..=MAX_SCALE).contains(s))
        }
        ColumnType::Integer => dt == &DataType::Int64,
        ColumnType::Boolean => dt == &DataType::Boolean,
        ColumnType::Date => dt == &DataType::Date32,
        ColumnType::Time => dt == &DataType::Time64(Microsecond),
        ColumnType::Timestamp | ColumnType::DateTimestamp => {
            dt == &DataType::Timestamp(Microsecond, None)
        }
        ColumnType::TimestampTz => matches!(dt, DataType::Timestamp(Microsecond, Some(_))),
        ColumnType::Float => dt == &DataType::Float64,
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(staged: usize, distinct: usize, counts: [i64; 4]) -> [u64; 5] {
        let [inserted, applied_over, replaced_same_sync, kept_same_sync] = counts;
        let load = UpsertCounts {
            new_keys: false,
            inserted,
            applied_over,
            replaced_same_sync,
            kept_same_sync,
        }
        .classify(Rows { staged, distinct });
        assert_eq!(
            load.rows,
            load.inserted + load.updated + load.skipped_older + load.superseded
        );
        [
            load.inserted,
            load.updated,
            load.skipped_older,
            load.superseded,
            load.rows,
        ]
    }

    /// Each staged row lands in exactly one class (the module docs' table).
    #[test]
    fn every_staged_row_is_classified_once() {
        // (staged, distinct, [inserted, applied over, of them over this sync, kept because
        // this sync's is newer]) → [inserted, updated, older, superseded, rows]
        let cases = [
            ((3, 3, [3, 0, 0, 0]), [3, 0, 0, 0, 3]),
            // Two replace an earlier sync's rows, one replaces this sync's.
            ((3, 3, [0, 3, 1, 0]), [0, 2, 0, 1, 3]),
            // One kept because this sync's stored row is newer, one because another sync's is.
            ((3, 3, [1, 0, 0, 1]), [1, 0, 1, 1, 3]),
            // In-chunk duplicates are superseded too.
            ((5, 3, [2, 1, 0, 0]), [2, 1, 0, 2, 5]),
            ((0, 0, [0, 0, 0, 0]), [0, 0, 0, 0, 0]),
        ];
        for ((staged, distinct, counts), want) in cases {
            assert_eq!(classify(staged, distinct, counts), want, "{counts:?}");
        }
    }
}
