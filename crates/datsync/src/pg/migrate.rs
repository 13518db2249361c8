//! Versioned migrations for datsync's own tables (`sync_metadata`, the chunk ledger
//! `sync_chunks`, the `datsync_sync_seq` sequence, the watch receipts `datsync_receipts`),
//! and the profile's target table — all applied in one transaction under an advisory lock,
//! so concurrent `init_db` calls are safe and a second call changes nothing.

use std::time::Duration;

use tokio_postgres::Client;

use super::adopt::{AdoptOptions, TargetPlan, TypeNote, lock_holders, plan_target};
use super::{PgError, quote_ident, quote_qualified, sql_type};
use crate::profile::{Profile, ROW_VERSION_COLUMN, StoredType};

/// Advisory lock key taken (transaction-scoped) while migrating: "datsync" + 1.
pub const INIT_LOCK_KEY: i64 = 0x6461_7473_796e_6301;

/// The sequence `sync_seq` is drawn from when a sync is first registered.
pub const SYNC_SEQUENCE: &str = "datsync_sync_seq";

/// Bookkeeping columns of every target row, with the type datsync creates.
pub const BOOKKEEPING_COLUMNS: &[(&str, &str)] = &[
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("sync_id", "text"),
    ("source_file", "text"),
    ("sync_seq", "bigint"),
    ("source_line", "bigint"),
];

/// One versioned migration of datsync's own tables; `sql` gets the quoted schema.
pub struct Migration {
    /// Version recorded in `datsync_migrations`.
    pub version: i32,
    /// Short name.
    pub name: &'static str,
    /// Builds the SQL for a quoted schema.
    pub sql: fn(&str) -> String,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "sync_metadata and datsync_sync_seq",
        sql: sync_metadata_sql,
    },
    Migration {
        version: 2,
        name: "sync_chunks ledger",
        sql: sync_chunks_sql,
    },
    Migration {
        version: 3,
        name: "sync_chunks validation facts",
        sql: sync_chunks_facts_sql,
    },
    Migration {
        version: 4,
        name: "datsync_receipts of watched sources",
        sql: receipts_sql,
    },
    Migration {
        version: 5,
        name: "sync_chunks cut",
        sql: sync_chunks_cut_sql,
    },
    Migration {
        version: 6,
        name: "value warnings, supersession across chunks, schema drift",
        sql: values_sql,
    },
    Migration {
        version: 7,
        name: "where each sync's checkpoint and rejects are kept",
        sql: location_sql,
    },
    Migration {
        version: 8,
        name: "the fingerprint of each sync's source",
        sql: fingerprint_sql,
    },
    Migration {
        version: 9,
        name: "derived tables' failures per chunk",
        sql: derived_failed_sql,
    },
    Migration {
        version: 10,
        name: "the work queue of submitted syncs",
        sql: queue_sql,
    },
    Migration {
        version: 11,
        name: "the newer row that kept each chunk's older rows out",
        sql: older_than_sql,
    },
    Migration {
        version: 12,
        name: "the target table of each piece of queued work",
        sql: queue_target_sql,
    },
    Migration {
        version: 13,
        name: "queue attempts and backoff, final steps done once per outcome",
        sql: queue_attempts_sql,
    },
];

/// Work that keeps failing, and final steps done once (`pipeline/queue.rs`, `finish.rs`):
/// `chunk_queue.attempts` counts the claims of a row that ended without its work done (the
/// chunk failed past its retries, its storage could not be read, the sync's finish was held
/// by another process), `not_before` holds the row back until its backoff has passed,
/// `last_error` says why, and `failed_at` marks a chunk given up after its attempts (never
/// claimed again, not counted by the scale query; the sync finishes without it and keeps its
/// checkpoint for `resume`). `sync_metadata.hooks_called_for` and `alerted_for` hold the
/// outcome (status and counts) whose hooks were called and whose alert was sent, so that a
/// second finish of the same outcome (a finish cut short, two finishers one after the other)
/// does not call or send them again.
fn queue_attempts_sql(s: &str) -> String {
    format!(
        "ALTER TABLE {s}.chunk_queue
           ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS not_before timestamptz,
           ADD COLUMN IF NOT EXISTS last_error text,
           ADD COLUMN IF NOT EXISTS failed_at timestamptz;
         ALTER TABLE {s}.sync_metadata
           ADD COLUMN IF NOT EXISTS hooks_called_for text,
           ADD COLUMN IF NOT EXISTS alerted_for text;"
    )
}

/// `chunk_queue.target`: the table (of the queue's schema) the queued sync loads into, so
/// that a worker takes only the work of its own profile when several profiles share a
/// schema (NULL in rows queued before this migration: any worker takes those).
fn queue_target_sql(s: &str) -> String {
    format!("ALTER TABLE {s}.chunk_queue ADD COLUMN IF NOT EXISTS target text;")
}

/// The work queue (`datsync submit`, `datsync worker`; see `pipeline/queue.rs`):
/// `chunk_queue` holds one row per chunk whose Parquet file is written and whose ledger row
/// does not exist yet, and one row per sync whose conversion is complete and that a worker
/// is to finish (`chunk_id` = -1); `sync_chunks.worker` is the `host:pid` of the process that
/// committed the chunk; `sync_metadata.chunks_total` and `converted_at` say that a
/// submitted sync's conversion is complete.
fn queue_sql(s: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {s}.chunk_queue (
           sync_id text NOT NULL,
           chunk_id integer NOT NULL,
           checksum text NOT NULL DEFAULT '',
           cut_rows bigint,
           cut_bytes bigint,
           cut_max_line_bytes bigint,
           enqueued_at timestamptz NOT NULL DEFAULT now(),
           PRIMARY KEY (sync_id, chunk_id));
         ALTER TABLE {s}.sync_chunks ADD COLUMN IF NOT EXISTS worker text;
         ALTER TABLE {s}.sync_metadata
           ADD COLUMN IF NOT EXISTS chunks_total integer,
           ADD COLUMN IF NOT EXISTS converted_at timestamptz;"
    )
}

/// The stored row that won over the rows a chunk (a sync) did not apply because the table
/// held a newer version (`skipped_older`): the newest by `(row_version, sync_seq)` of those
/// stored rows, with the sync and file it came from. `sync_chunks` records it per chunk, in
/// the chunk's transaction; `sync_metadata` holds the newest of its chunks', for `status`.
/// NULL where nothing was skipped as older (and in rows committed before this migration).
fn older_than_sql(s: &str) -> String {
    let columns = "ADD COLUMN IF NOT EXISTS older_than_version text COLLATE \"C\",
           ADD COLUMN IF NOT EXISTS older_than_sync_seq bigint,
           ADD COLUMN IF NOT EXISTS older_than_sync_id text,
           ADD COLUMN IF NOT EXISTS older_than_file text";
    format!(
        "ALTER TABLE {s}.sync_chunks
           {columns};
         ALTER TABLE {s}.sync_metadata
           {columns};"
    )
}

/// `sync_chunks.derived_failed`: the derived tables (`[[derived]]`) whose upsert failed for
/// the chunk and was rolled back to its savepoint, committed with the chunk and summed in the
/// sync's summary.
fn derived_failed_sql(s: &str) -> String {
    format!(
        "ALTER TABLE {s}.sync_chunks
           ADD COLUMN IF NOT EXISTS derived_failed bigint NOT NULL DEFAULT 0;"
    )
}

fn sync_metadata_sql(s: &str) -> String {
    // `IF NOT EXISTS` + `ADD COLUMN IF NOT EXISTS`: a legacy `sync_metadata` is extended,
    // not replaced.
    format!(
        "CREATE SEQUENCE IF NOT EXISTS {s}.{SYNC_SEQUENCE};
         CREATE TABLE IF NOT EXISTS {s}.sync_metadata (sync_id text PRIMARY KEY);
         ALTER TABLE {s}.sync_metadata
           ADD COLUMN IF NOT EXISTS file_name text,
           ADD COLUMN IF NOT EXISTS file_path text,
           ADD COLUMN IF NOT EXISTS file_size_bytes bigint,
           ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'IN_PROGRESS',
           ADD COLUMN IF NOT EXISTS records_total bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS records_inserted bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS records_updated bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS records_failed bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS error_message text,
           ADD COLUMN IF NOT EXISTS validation_errors_count bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS validation_errors jsonb,
           ADD COLUMN IF NOT EXISTS started_at timestamptz NOT NULL DEFAULT now(),
           ADD COLUMN IF NOT EXISTS completed_at timestamptz,
           ADD COLUMN IF NOT EXISTS duration_seconds double precision,
           ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now(),
           ADD COLUMN IF NOT EXISTS sync_seq bigint,
           ADD COLUMN IF NOT EXISTS records_skipped_older bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS records_superseded bigint NOT NULL DEFAULT 0;
         CREATE UNIQUE INDEX IF NOT EXISTS sync_metadata_sync_seq_key
           ON {s}.sync_metadata (sync_seq);"
    )
}

fn sync_chunks_sql(s: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {s}.sync_chunks (
           sync_id text NOT NULL,
           chunk_id integer NOT NULL,
           \"rows\" bigint NOT NULL,
           inserted bigint NOT NULL,
           updated bigint NOT NULL,
           skipped_older bigint NOT NULL,
           checksum text NOT NULL,
           committed_at timestamptz NOT NULL DEFAULT now(),
           PRIMARY KEY (sync_id, chunk_id));"
    )
}

/// What validation decided about each committed chunk, committed with it: rows read,
/// rejected and superseded, and the first validation errors (JSON), so that the final counts
/// and the `sync_metadata.validation_errors` sample come from the ledger alone and are the
/// same after any crash and resume.
fn sync_chunks_facts_sql(s: &str) -> String {
    format!(
        "ALTER TABLE {s}.sync_chunks
           ADD COLUMN IF NOT EXISTS rows_read bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS rejected bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS superseded bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS validation_errors_count bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS validation_errors jsonb;"
    )
}

/// How each committed chunk was cut from its source ([`crate::model::ChunkCut`]): rows at
/// most, byte budget, line limit. A resume without the checkpoint (cleaned up, or
/// `--no-checkpoint`) cuts the source again with these, so that chunk ids name the same lines;
/// NULL in rows committed before (cut by rows only, inferred from the largest chunk).
fn sync_chunks_cut_sql(s: &str) -> String {
    format!(
        "ALTER TABLE {s}.sync_chunks
           ADD COLUMN IF NOT EXISTS cut_rows bigint,
           ADD COLUMN IF NOT EXISTS cut_bytes bigint,
           ADD COLUMN IF NOT EXISTS cut_max_line_bytes bigint;"
    )
}

/// What issue 10 adds, committed with each chunk and summed per sync:
///
/// - `sync_chunks.superseded_on_load`: rows of the sync that lost to another row of the same
///   sync with the same key when the chunk was upserted (the chunk's own row, or the row an
///   earlier-committed chunk had stored), whatever order the chunks commit in;
/// - `sync_chunks.value_warnings` and `value_warnings_sample`: the values not loaded as written
///   (read as NULL, a time as midnight, an integer rounded), counted and sampled;
/// - `sync_metadata.records_loaded`, `records_pending`: the two terms of
///   `records_total = records_loaded + records_failed + records_superseded + records_pending`
///   that were not stored yet;
/// - `sync_metadata.value_warnings`, `unknown_columns` (a JSON array of canonical header names
///   the profile does not know) and `source_delimiter` (the delimiter the header used, so that
///   `datsync rejects` can show a rejected row as a line).
fn values_sql(s: &str) -> String {
    format!(
        "ALTER TABLE {s}.sync_chunks
           ADD COLUMN IF NOT EXISTS superseded_on_load bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS value_warnings bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS value_warnings_sample jsonb;
         ALTER TABLE {s}.sync_metadata
           ADD COLUMN IF NOT EXISTS records_loaded bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS records_pending bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS value_warnings bigint NOT NULL DEFAULT 0,
           ADD COLUMN IF NOT EXISTS unknown_columns jsonb,
           ADD COLUMN IF NOT EXISTS source_delimiter text;"
    )
}

/// `checkpoint_location`: the store (absolute directory or URL) that holds the sync's
/// checkpoint (`<location>/<sync_id>/`) and rejects (`<location>/rejects/<sync_id>/`), as its
/// last run resolved it, so `status`, `resume` and `rejects` find them without
/// `--checkpoint-dir`.
fn location_sql(s: &str) -> String {
    format!(
        "ALTER TABLE {s}.sync_metadata
           ADD COLUMN IF NOT EXISTS checkpoint_location text;"
    )
}

/// `source_fingerprint`: what the sync's source was when the sync was first registered
/// (size, modification time or ETag, as JSON: [`crate::model::SourceFingerprint`]), so that
/// `run SOURCE` on a source a finished sync already loaded does not load it again.
fn fingerprint_sql(s: &str) -> String {
    format!(
        "ALTER TABLE {s}.sync_metadata
           ADD COLUMN IF NOT EXISTS source_fingerprint jsonb;"
    )
}

/// The receipts of `datsync watch` (and the Functions handler): one row per source object
/// and version (a blob's ETag; a local file's size and modification time), pointing at the
/// sync that loads it, with its retry state. Kept in PostgreSQL so that two watchers and the
/// HTTP handler agree; see [`crate::intake`].
fn receipts_sql(s: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {s}.datsync_receipts (
           source text NOT NULL,
           version text NOT NULL,
           name text NOT NULL,
           sync_id text NOT NULL,
           status text NOT NULL DEFAULT 'IN_PROGRESS',
           attempts integer NOT NULL DEFAULT 0,
           next_attempt_at timestamptz NOT NULL DEFAULT now(),
           last_error text,
           finished_at timestamptz,
           poisoned_at timestamptz,
           created_at timestamptz NOT NULL DEFAULT now(),
           updated_at timestamptz NOT NULL DEFAULT now(),
           PRIMARY KEY (source, version));
         CREATE INDEX IF NOT EXISTS datsync_receipts_sync_id
           ON {s}.datsync_receipts (sync_id);"
    )
}

/// What [`init_db`] (or [`adopt_db`]) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// Versions applied by this call (empty when the database was up to date).
    pub applied: Vec<i32>,
    /// Whether this call created the target table.
    pub target_created: bool,
    /// The DDL [`adopt_db`] ran on an existing target table (empty otherwise).
    pub adopted: Vec<String>,
    /// Columns of the existing target table whose type differs from datsync's, and what
    /// datsync does with each.
    pub notes: Vec<TypeNote>,
    /// The narrower columns of the target table, for [`Profile::with_stored`].
    pub stored: Vec<(String, StoredType)>,
    /// The profile's derived tables (`[[derived]]`) and what this call did with each:
    /// `created`, `checked` or `adopted`.
    pub derived: Vec<(String, &'static str)>,
}

/// Whether an existing target table that lacks datsync's columns is refused or adopted.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Refused, naming the DDL `--adopt` would run.
    Check,
    /// Adopted, under this `lock_timeout`.
    Adopt(Duration),
}

/// Creates or upgrades datsync's tables in the profile's schema and creates the target
/// table (or checks an existing one, refusing one that lacks datsync's columns with the SQL
/// that [`adopt_db`] would run), in one transaction under [`INIT_LOCK_KEY`].
pub async fn init_db(client: &mut Client, profile: &Profile) -> Result<InitReport, PgError> {
    init_tx(client, profile, Mode::Check).await
}

/// [`init_db`] that also takes over an existing target table: adds the columns datsync
/// needs (nullable, no default, `ADD COLUMN IF NOT EXISTS`: no rewrite) and nothing else,
/// in the same transaction, under `options.lock_timeout`; a lock not granted in time ends
/// the attempt, and after `options.attempts` the error names the sessions holding locks
/// on the tables (see `adopt.rs`).
pub async fn adopt_db(
    client: &mut Client,
    profile: &Profile,
    options: AdoptOptions,
) -> Result<InitReport, PgError> {
    let attempts = options.attempts.max(1);
    let mut wait = options.lock_timeout;
    for attempt in 1..=attempts {
        match init_tx(client, profile, Mode::Adopt(options.lock_timeout)).await {
            Err(e) if e.sqlstate() == Some(super::LOCK_NOT_AVAILABLE) => {
                let holders = lock_holders(&*client, profile).await?;
                if attempt == attempts {
                    return Err(PgError::LockBusy {
                        table: quote_qualified(&profile.schema, &profile.table),
                        attempts,
                        lock_timeout: options.lock_timeout,
                        holders,
                    });
                }
                tracing::warn!(
                    attempt,
                    attempts,
                    holders = %holders.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                    "init-db --adopt: a lock was not granted within lock_timeout; trying again"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_ADOPT_WAIT);
            }
            other => return other,
        }
    }
    // The loop returns on its last attempt.
    Err(PgError::Config {
        message: "init-db --adopt made no attempt".into(),
    })
}

/// The longest wait between two attempts of [`adopt_db`].
const MAX_ADOPT_WAIT: Duration = Duration::from_secs(60);

/// `CREATE SCHEMA` and the migrations table, run before any migration.
pub(super) fn base_sql(s: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.datsync_migrations (
           version integer PRIMARY KEY,
           name text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now());"
    )
}

/// What [`init_db`] would have to add, found with reads only: the migrations not applied,
/// the target table's DDL, `row_version`. Empty when the database is up to date — then a
/// run needs no privilege beyond reading and writing the tables (no CREATE anywhere).
struct Readiness {
    /// Each piece missing, named for a person.
    missing: Vec<String>,
    /// The target table as found.
    plan: TargetPlan,
    /// The role connected (`current_user`).
    role: String,
}

async fn readiness(client: &Client, profile: &Profile) -> Result<Readiness, PgError> {
    let s = quote_ident(&profile.schema);
    let table = quote_qualified(&profile.schema, &profile.table);
    let row = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, current_user::text",
            &[&format!("{s}.datsync_migrations")],
        )
        .await
        .map_err(|e| PgError::query("cannot look up datsync_migrations", e))?;
    let (has_migrations, role): (bool, String) = (row.get(0), row.get(1));
    let mut missing = Vec::new();
    if has_migrations {
        let done: Vec<i32> = client
            .query(&format!("SELECT version FROM {s}.datsync_migrations"), &[])
            .await
            .map_err(|e| PgError::query("cannot read datsync_migrations", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        missing.extend(
            MIGRATIONS
                .iter()
                .filter(|m| !done.contains(&m.version))
                .map(|m| format!("migration {} ({})", m.version, m.name)),
        );
    } else {
        missing.push(format!(
            "datsync's tables in schema {s} (migrations 1 to {})",
            MIGRATIONS.len()
        ));
    }
    let plan = plan_target(client, profile).await?;
    if plan.exists {
        missing.extend(plan.missing.iter().cloned());
        if profile.version.is_some() && !has_column(client, profile, ROW_VERSION_COLUMN).await? {
            missing.push(format!("column `{ROW_VERSION_COLUMN}` of {table}"));
        }
    } else {
        missing.push(format!("the table {table}"));
    }
    Ok(Readiness {
        missing,
        plan,
        role,
    })
}

async fn has_column(client: &Client, profile: &Profile, column: &str) -> Result<bool, PgError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3
                AND a.attnum > 0 AND NOT a.attisdropped)",
            &[&profile.schema, &profile.table, &column],
        )
        .await
        .map_err(|e| PgError::query("cannot read the target table's columns", e))?;
    Ok(row.get(0))
}

async fn init_tx(
    client: &mut Client,
    profile: &Profile,
    mode: Mode,
) -> Result<InitReport, PgError> {
    check_profile_names(profile)?;
    // Up to date: nothing to change, so nothing that needs CREATE or ownership is run (a
    // least-privileged role can start its runs).
    let ready = readiness(client, profile).await?;
    let mut derived = Vec::new();
    for d in &profile.derived {
        if super::plan_derived(&*client, profile, d).await?.ready() {
            derived.push((d.table.clone(), "checked"));
        }
    }
    if ready.missing.is_empty()
        && ready.plan.problems.is_empty()
        && derived.len() == profile.derived.len()
    {
        return Ok(InitReport {
            applied: Vec::new(),
            target_created: false,
            adopted: Vec::new(),
            notes: ready.plan.notes,
            stored: ready.plan.stored,
            derived,
        });
    }
    match change_tx(client, profile, mode).await {
        Err(e) if e.sqlstate() == Some(INSUFFICIENT_PRIVILEGE) => {
            let PgError::Query { source, .. } = e else {
                return Err(e);
            };
            Err(PgError::query(
                format!(
                    "datsync's tables are not up to date ({}) and role {} may not change them;                      run `datsync init-db` as their owner, or have a DBA apply the SQL of                      `datsync init-db --print-sql --role {}`",
                    ready.missing.join("; "),
                    ready.role,
                    ready.role
                ),
                source,
            ))
        }
        other => other,
    }
}

/// SQLSTATE of a statement the role has no privilege for.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

async fn change_tx(
    client: &mut Client,
    profile: &Profile,
    mode: Mode,
) -> Result<InitReport, PgError> {
    let s = quote_ident(&profile.schema);
    let tx = client
        .transaction()
        .await
        .map_err(|e| PgError::query("cannot begin the init-db transaction", e))?;
    if let Mode::Adopt(timeout) = mode {
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{}ms'",
            timeout.as_millis().max(1)
        ))
        .await
        .map_err(|e| PgError::query("cannot set lock_timeout", e))?;
    }
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INIT_LOCK_KEY])
        .await
        .map_err(|e| PgError::query("cannot take the init-db lock", e))?;
    tx.batch_execute(&base_sql(&s))
        .await
        .map_err(|e| PgError::query("cannot create datsync_migrations", e))?;
    let done: Vec<i32> = tx
        .query(&format!("SELECT version FROM {s}.datsync_migrations"), &[])
        .await
        .map_err(|e| PgError::query("cannot read datsync_migrations", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let context = || format!("migration {} ({})", m.version, m.name);
        tx.batch_execute(&(m.sql)(&s))
            .await
            .map_err(|e| PgError::query(context(), e))?;
        tx.execute(
            &format!("INSERT INTO {s}.datsync_migrations (version, name) VALUES ($1, $2)"),
            &[&m.version, &m.name],
        )
        .await
        .map_err(|e| PgError::query(context(), e))?;
        applied.push(m.version);
    }
    add_row_version(&tx, profile).await?;
    let plan = plan_target(&tx, profile).await?;
    let table = quote_qualified(&profile.schema, &profile.table);
    let mut adopted = Vec::new();
    if !plan.ready() {
        match mode {
            _ if !plan.exists => {}
            Mode::Adopt(_) if plan.problems.is_empty() => adopted.clone_from(&plan.statements),
            _ => {
                return Err(PgError::IncompatibleTable {
                    adoptable: plan.problems.is_empty(),
                    table,
                    problems: plan.problems.into_iter().chain(plan.missing).collect(),
                    fixes: plan.statements,
                });
            }
        }
        for st in &plan.statements {
            tx.batch_execute(st)
                .await
                .map_err(|e| PgError::query(format!("cannot prepare {table}"), e))?;
        }
    }
    let derived = prepare_derived(&tx, profile, mode, &mut adopted).await?;
    tx.commit()
        .await
        .map_err(|e| PgError::query("cannot commit init-db", e))?;
    Ok(InitReport {
        applied,
        target_created: !plan.exists,
        adopted,
        notes: plan.notes,
        stored: plan.stored,
        derived,
    })
}

/// Creates the profile's derived tables that are absent; checks the others, refusing one
/// that lacks what datsync needs unless adopting (see `derived.rs`).
async fn prepare_derived(
    tx: &tokio_postgres::Transaction<'_>,
    profile: &Profile,
    mode: Mode,
    adopted: &mut Vec<String>,
) -> Result<Vec<(String, &'static str)>, PgError> {
    let mut out = Vec::new();
    for d in &profile.derived {
        let plan = super::plan_derived(tx, profile, d).await?;
        let what = if !plan.exists {
            "created"
        } else if plan.ready() {
            "checked"
        } else if matches!(mode, Mode::Adopt(_)) && plan.problems.is_empty() {
            adopted.extend(plan.statements.iter().cloned());
            "adopted"
        } else {
            return Err(PgError::IncompatibleTable {
                adoptable: plan.problems.is_empty(),
                table: plan.table,
                problems: plan.problems.into_iter().chain(plan.missing).collect(),
                fixes: plan.statements,
            });
        };
        for st in &plan.statements {
            tx.batch_execute(st)
                .await
                .map_err(|e| PgError::query(format!("cannot prepare {}", plan.table), e))?;
        }
        out.push((d.table.clone(), what));
    }
    Ok(out)
}

fn check_profile_names(profile: &Profile) -> Result<(), PgError> {
    let clash = profile
        .columns
        .iter()
        .find(|c| BOOKKEEPING_COLUMNS.iter().any(|(b, _)| *b == c.target));
    match clash {
        Some(c) => Err(PgError::Profile {
            table: quote_qualified(&profile.schema, &profile.table),
            message: format!(
                "column `{}` is also a datsync bookkeeping column; rename its target",
                c.target
            ),
        }),
        None => Ok(()),
    }
}

/// The type of [`ROW_VERSION_COLUMN`]: text compared bytewise, whatever the database's
/// collation (see `profile/version.rs`).
const ROW_VERSION_TYPE: &str = "text COLLATE \"C\"";

/// Adds [`ROW_VERSION_COLUMN`] to an existing target table when the profile has a version:
/// a nullable column without a default, so PostgreSQL changes the catalog only (no rewrite);
/// its rows have no version and count as the oldest. (A table created now gets it from
/// [`create_target_sql`].)
async fn add_row_version(
    tx: &tokio_postgres::Transaction<'_>,
    profile: &Profile,
) -> Result<(), PgError> {
    if profile.version.is_none() {
        return Ok(());
    }
    let table = quote_qualified(&profile.schema, &profile.table);
    let literal = table.replace('\'', "''");
    tx.batch_execute(&format!(
        "DO $$ BEGIN
           IF to_regclass('{literal}') IS NOT NULL THEN
             ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {ROW_VERSION_COLUMN} {ROW_VERSION_TYPE};
           END IF;
         END $$",
    ))
    .await
    .map_err(|e| PgError::query(format!("cannot add {ROW_VERSION_COLUMN} to {table}"), e))
}

/// The columns of a table in append mode (`mode = "append"`) that identify a row: a chunk's
/// rows are inserted `ON CONFLICT (sync_id, source_line) DO NOTHING`, so a row is never
/// inserted twice (a source line is one row of one sync).
pub const APPEND_KEY: [&str; 2] = ["sync_id", "source_line"];

/// The columns of the target table's unique key: the profile's key, or [`APPEND_KEY`] in
/// append mode.
pub fn unique_columns(profile: &Profile) -> Vec<&str> {
    if profile.appends() {
        APPEND_KEY.to_vec()
    } else {
        profile.key.iter().map(String::as_str).collect()
    }
}

/// The `CREATE TABLE` of the profile's target table: the key's columns `NOT NULL`, the
/// primary key on them (on [`APPEND_KEY`] in append mode).
pub fn create_target_sql(profile: &Profile) -> String {
    let single = match profile.key.as_slice() {
        [k] => Some(k.as_str()),
        _ => None,
    };
    let mut cols: Vec<String> = profile
        .columns
        .iter()
        .map(|c| {
            let pk = if single == Some(c.target.as_str()) {
                " NOT NULL PRIMARY KEY"
            } else if profile.is_key(&c.target) {
                " NOT NULL"
            } else {
                ""
            };
            format!("{} {}{pk}", quote_ident(&c.target), sql_type(c.kind))
        })
        .collect();
    cols.extend(
        BOOKKEEPING_COLUMNS
            .iter()
            .map(|(name, ty)| format!("{} {ty}", quote_ident(name))),
    );
    if profile.version.is_some() {
        cols.push(format!("{ROW_VERSION_COLUMN} {ROW_VERSION_TYPE}"));
    }
    if single.is_none() {
        cols.push(format!(
            "PRIMARY KEY ({})",
            super::quote_list(&unique_columns(profile))
        ));
    }
    format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote_qualified(&profile.schema, &profile.table),
        cols.join(",\n  ")
    )
}

/// Checks that an existing target table has every column datsync writes, with a
/// compatible type, and a unique index on the key's columns alone; names everything missing and the
/// DDL that `init-db --adopt` would run. Returns the table's narrower columns.
pub async fn check_target(
    client: &impl tokio_postgres::GenericClient,
    profile: &Profile,
) -> Result<Vec<(String, StoredType)>, PgError> {
    let plan = plan_target(client, profile).await?;
    if plan.ready() {
        return Ok(plan.stored);
    }
    Err(PgError::IncompatibleTable {
        table: quote_qualified(&profile.schema, &profile.table),
        adoptable: plan.exists && plan.problems.is_empty(),
        problems: if plan.exists {
            plan.problems.into_iter().chain(plan.missing).collect()
        } else {
            vec!["the table does not exist".into()]
        },
        fixes: plan.statements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_order_and_unique() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted);
    }

    #[test]
    fn target_ddl_quotes_and_keys() {
        let sql = create_target_sql(&Profile::ztdwr());
        assert!(sql.starts_with("CREATE TABLE \"public\".\"transport_documents\""));
        assert!(sql.contains("\"surat_pengantar_barang\" text NOT NULL PRIMARY KEY"));
        assert!(sql.contains("\"bbm_actual\" numeric"));
        assert!(sql.contains("\"waktu_timbang_terima\" timestamp"));
        assert!(sql.contains("\"source_line\" bigint"));
        assert!(!sql.contains("PRIMARY KEY ("), "{sql}");
    }

    #[test]
    fn composite_and_append_keys_are_the_tables_primary_key() {
        let head = "name = \"t\"\ntable = \"t\"\n";
        let cols = "[[columns]]\nsource = \"a\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
                    [[columns]]\nsource = \"b\"\ntype = \"integer\"\nrequired = true\nnot_empty = true\n\
                    [[columns]]\nsource = \"c\"\ntype = \"text\"\n";
        let p = |top: &str| {
            Profile::from_toml_str(
                &format!("{head}{top}{cols}"),
                std::path::Path::new("t.toml"),
            )
            .unwrap()
        };
        let sql = create_target_sql(&p("key = [\"b\", \"a\"]\n"));
        assert!(sql.contains("\"a\" text NOT NULL,"), "{sql}");
        assert!(sql.contains("\"b\" bigint NOT NULL,"), "{sql}");
        assert!(sql.contains("\"c\" text,"), "{sql}");
        assert!(sql.ends_with("PRIMARY KEY (\"b\", \"a\")\n)"), "{sql}");
        let sql = create_target_sql(&p("mode = \"append\"\n"));
        assert!(!sql.contains("NOT NULL"), "{sql}");
        assert!(
            sql.ends_with("PRIMARY KEY (\"sync_id\", \"source_line\")\n)"),
            "{sql}"
        );
    }
}
