//! Taking over a target table that another loader made (`datsync init-db --adopt`), and what
//! `init-db` says about an existing table.
//!
//! An existing table is compared with what datsync would create, column by column
//! ([`TargetPlan`]):
//!
//! | the column | `init-db` | `init-db --adopt` |
//! |---|---|---|
//! | missing (a profile column, or `sync_seq`, `source_line` …) | refuses, printing the SQL of `--adopt` | `ADD COLUMN IF NOT EXISTS`, nullable, no default: no rewrite |
//! | narrower (`integer`, `smallint`, `varchar(n)`, `numeric(p,s)`) | accepted, named with what datsync does | the same: never widened |
//! | `timestamptz` for a naive timestamp, `timestamp` for `created_at` … | accepted, named | the same |
//! | another type (`double precision` for a decimal …) | refuses | refuses: a conversion rewrites the table, a DBA's call |
//! | no unique index on the key alone | refuses | `ADD PRIMARY KEY` (builds an index) |
//!
//! A narrower column is carried into the profile as [`StoredType`], so that a value that
//! does not fit is a value warning, never a failed chunk. `--adopt` runs in one transaction
//! under a `lock_timeout`: a busy table makes it give up the attempt, wait and try again, and
//! after the last attempt it names the sessions that hold locks on the tables it alters.

use std::fmt::Write as _;
use std::time::Duration;

use tokio_postgres::GenericClient;

use super::migrate::{BOOKKEEPING_COLUMNS, INIT_LOCK_KEY, MIGRATIONS, SYNC_SEQUENCE};
use super::{PgError, quote_ident, quote_qualified, sql_type};
use crate::profile::{ColumnType, Profile, StoredType};

/// How long one attempt of `init-db --adopt` waits for a lock (`lock_timeout`).
pub const DEFAULT_ADOPT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times `init-db --adopt` tries before naming who holds the lock.
pub const DEFAULT_ADOPT_ATTEMPTS: u32 = 5;

/// How `init-db --adopt` waits for locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdoptOptions {
    /// `lock_timeout` of each attempt; also the first wait between attempts (then doubled).
    pub lock_timeout: Duration,
    /// Attempts at most (at least one is made).
    pub attempts: u32,
}

impl Default for AdoptOptions {
    fn default() -> Self {
        Self {
            lock_timeout: DEFAULT_ADOPT_LOCK_TIMEOUT,
            attempts: DEFAULT_ADOPT_ATTEMPTS,
        }
    }
}

/// A column of the existing table whose type differs from the one datsync would create,
/// and what datsync does with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TypeNote {
    /// The column.
    pub column: String,
    /// Its type in the table (`format_type`).
    pub found: String,
    /// The type datsync would create.
    pub datsync_type: String,
    /// What datsync does with it.
    pub action: String,
}

/// A session holding a lock on a table that `init-db --adopt` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct LockHolder {
    /// The table.
    pub table: String,
    /// The lock mode held (`AccessShareLock` …).
    pub mode: String,
    /// The server process id.
    pub pid: i32,
    /// Its user.
    pub user: Option<String>,
    /// Its `application_name`.
    pub application: Option<String>,
    /// Its client address.
    pub client: Option<String>,
    /// `active`, `idle in transaction` …
    pub state: Option<String>,
    /// Seconds since its transaction began.
    pub for_seconds: Option<f64>,
    /// Its current or last statement (cut to 200 characters).
    pub query: Option<String>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        write!(
            f,
            "pid {} (user {}, application \"{}\", client {}) holds {} on {}, {}",
            self.pid,
            opt(&self.user),
            opt(&self.application),
            self.client.clone().unwrap_or_else(|| "local".into()),
            self.mode,
            self.table,
            opt(&self.state),
        )?;
        if let Some(s) = self.for_seconds {
            write!(f, " for {s:.0}s")?;
        }
        if let Some(q) = self.query.as_deref().filter(|q| !q.is_empty()) {
            write!(
                f,
                ", last statement: {}",
                q.split_whitespace().collect::<Vec<_>>().join(" ")
            )?;
        }
        write!(
            f,
            " (end it with SELECT pg_terminate_backend({}) if it may be stopped)",
            self.pid
        )
    }
}

/// What `init-db` finds in the database for the profile's target table, and the DDL it
/// would run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetPlan {
    /// The table exists.
    pub exists: bool,
    /// DDL that creates it, or (for an existing table) adds what is missing.
    pub statements: Vec<String>,
    /// What is missing (the statements add it): columns, the key's unique index.
    pub missing: Vec<String>,
    /// What `--adopt` cannot fix: columns of an incompatible type.
    pub problems: Vec<String>,
    /// Columns whose type differs from datsync's, and what datsync does with each.
    pub notes: Vec<TypeNote>,
    /// The narrower columns, for [`Profile::with_stored`].
    pub stored: Vec<(String, StoredType)>,
}

impl TargetPlan {
    /// Whether the table can be used as it is.
    pub fn ready(&self) -> bool {
        self.exists && self.missing.is_empty() && self.problems.is_empty()
    }
}

/// A column as the catalog has it.
struct Found {
    name: String,
    /// `regtype` text without modifiers (`character varying`).
    base: String,
    /// `format_type` with modifiers (`character varying(50)`).
    full: String,
}

/// What datsync needs of one column.
struct Need<'a> {
    name: &'a str,
    create_as: &'static str,
    kind: Need2,
}

/// A profile column (its type) or a bookkeeping column.
#[derive(Clone, Copy)]
enum Need2 {
    Profile(ColumnType),
    Bookkeeping,
}

/// Reads the target table and plans what `init-db` would do with it.
pub async fn plan_target(
    client: &impl GenericClient,
    profile: &Profile,
) -> Result<TargetPlan, PgError> {
    let table = quote_qualified(&profile.schema, &profile.table);
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid::regtype::text,
                    format_type(a.atttypid, a.atttypmod)
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&profile.schema, &profile.table],
        )
        .await
        .map_err(|e| PgError::query(format!("cannot read the columns of {table}"), e))?;
    if rows.is_empty() {
        return Ok(TargetPlan {
            statements: vec![super::create_target_sql(profile)],
            ..TargetPlan::default()
        });
    }
    let found: Vec<Found> = rows
        .iter()
        .map(|r| Found {
            name: r.get(0),
            base: r.get(1),
            full: r.get(2),
        })
        .collect();
    let mut plan = compare(profile, &found);
    let unique = super::unique_columns(profile);
    // The unique key is looked for once the key's own columns are there (in append mode,
    // `sync_id` and `source_line` may be among the columns being added: the index follows
    // them).
    let key_found = profile
        .key
        .iter()
        .all(|k| found.iter().any(|f| &f.name == k));
    if key_found && plan.problems.is_empty() && !has_unique_key(client, profile, &unique).await? {
        let names: Vec<String> = unique.iter().map(|k| format!("`{k}`")).collect();
        let (what, statement) = if profile.appends() {
            // Rows adopted from another loader have no sync_id: a unique index lets them be
            // (NULLs are distinct), a primary key would not.
            (
                "no unique index on",
                format!(
                    "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {table} ({});",
                    quote_ident(&format!("{}_datsync_append_key", profile.table)),
                    super::quote_list(&unique)
                ),
            )
        } else {
            (
                "no primary key or unique index on",
                format!(
                    "ALTER TABLE {table} ADD PRIMARY KEY ({});",
                    super::quote_list(&unique)
                ),
            )
        };
        plan.missing
            .push(format!("{what} {} alone", names.join(", ")));
        plan.statements.push(statement);
    }
    Ok(plan)
}

/// Compares the table's columns with what the profile needs.
fn compare(profile: &Profile, found: &[Found]) -> TargetPlan {
    let table = quote_qualified(&profile.schema, &profile.table);
    let needs = profile
        .columns
        .iter()
        .map(|c| Need {
            name: c.target.as_str(),
            create_as: sql_type(c.kind),
            kind: Need2::Profile(c.kind),
        })
        .chain(BOOKKEEPING_COLUMNS.iter().map(|(n, t)| Need {
            name: n,
            create_as: t,
            kind: Need2::Bookkeeping,
        }));
    let mut plan = TargetPlan {
        exists: true,
        ..TargetPlan::default()
    };
    let mut adds = Vec::new();
    for need in needs {
        let Some(f) = found.iter().find(|f| f.name == need.name) else {
            plan.missing.push(format!(
                "column `{}` ({}) is missing",
                need.name, need.create_as
            ));
            adds.push(format!(
                "ADD COLUMN IF NOT EXISTS {} {}",
                quote_ident(need.name),
                need.create_as
            ));
            continue;
        };
        match verdict(&need, f) {
            Verdict::Same => {}
            Verdict::Note(action) => plan.notes.push(TypeNote {
                column: need.name.to_owned(),
                found: f.full.clone(),
                datsync_type: need.create_as.to_owned(),
                action,
            }),
            Verdict::Narrower(stored) => {
                plan.notes.push(TypeNote {
                    column: need.name.to_owned(),
                    found: f.full.clone(),
                    datsync_type: need.create_as.to_owned(),
                    action: format!(
                        "kept as {stored}; a value that does not fit ({}) is a value warning: \
                         NULL, or the row rejected under on_invalid = \"reject\"",
                        stored.misfit_reason()
                    ),
                });
                plan.stored.push((need.name.to_owned(), stored));
            }
            Verdict::Incompatible(expected) => plan.problems.push(format!(
                "column `{}` is {}, expected {expected}",
                need.name, f.full
            )),
        }
    }
    if !adds.is_empty() {
        plan.statements
            .push(format!("ALTER TABLE {table}\n  {};", adds.join(",\n  ")));
    }
    plan
}

enum Verdict {
    Same,
    /// Accepted as it is, with what datsync does.
    Note(String),
    /// Accepted; values are checked against it.
    Narrower(StoredType),
    /// Not usable; what would be.
    Incompatible(&'static str),
}

const NAIVE_AS_ZONED: &str = "naive date-times are stored as times in the session's TimeZone \
                              (the server's default; SHOW TimeZone)";

fn verdict(need: &Need<'_>, f: &Found) -> Verdict {
    let base = f.base.as_str();
    let stored = StoredType::from_sql(&f.full);
    match need.kind {
        Need2::Profile(kind) => match (kind, base) {
            (ColumnType::Text, "text")
            | (ColumnType::Integer, "bigint")
            | (ColumnType::Boolean, "boolean")
            | (ColumnType::Date, "date")
            | (ColumnType::Time, "time without time zone")
            | (ColumnType::Timestamp | ColumnType::DateTimestamp, "timestamp without time zone")
            | (ColumnType::TimestampTz, "timestamp with time zone")
            | (ColumnType::Float, "double precision")
            | (ColumnType::Numeric, "numeric") => Verdict::Same,
            (ColumnType::Text, "character varying" | "character")
            | (ColumnType::Decimal { .. }, "numeric") => {
                stored.map_or(Verdict::Same, Verdict::Narrower)
            }
            (ColumnType::Integer, "integer" | "smallint" | "numeric") => {
                stored.map_or(Verdict::Note("kept as numeric".into()), Verdict::Narrower)
            }
            (ColumnType::Timestamp | ColumnType::DateTimestamp, "timestamp with time zone") => {
                Verdict::Note(NAIVE_AS_ZONED.into())
            }
            (ColumnType::Text, _) => Verdict::Incompatible("text or varchar"),
            (ColumnType::Decimal { .. }, _) => Verdict::Incompatible("numeric"),
            (ColumnType::Integer, _) => {
                Verdict::Incompatible("bigint, integer, smallint or numeric")
            }
            (ColumnType::Boolean, _) => Verdict::Incompatible("boolean"),
            (ColumnType::Date, _) => Verdict::Incompatible("date"),
            (ColumnType::Time, _) => Verdict::Incompatible("time"),
            (ColumnType::Timestamp | ColumnType::DateTimestamp, _) => {
                Verdict::Incompatible("timestamp or timestamptz")
            }
            (ColumnType::TimestampTz, _) => Verdict::Incompatible("timestamptz"),
            (ColumnType::Float, _) => Verdict::Incompatible("double precision"),
            (ColumnType::Numeric, _) => Verdict::Incompatible("numeric without a scale"),
        },
        Need2::Bookkeeping => match (need.create_as, base) {
            ("timestamptz", "timestamp with time zone")
            | ("bigint", "bigint")
            | ("text", "text") => Verdict::Same,
            ("timestamptz", "timestamp without time zone") => Verdict::Note(
                "written as the local time of the session's TimeZone (the server's default)".into(),
            ),
            ("timestamptz", _) => Verdict::Incompatible("timestamptz or timestamp"),
            ("bigint", "numeric") => Verdict::Note("kept as numeric".into()),
            ("bigint", _) => Verdict::Incompatible("bigint"),
            (_, "character varying" | "character") => match stored {
                Some(StoredType::Chars { max }) if need.name == "sync_id" => {
                    if max >= SYNC_ID_CHARS {
                        Verdict::Note(format!(
                            "kept: datsync's sync ids have {SYNC_ID_CHARS} characters"
                        ))
                    } else {
                        Verdict::Incompatible("text or varchar(29) at least")
                    }
                }
                Some(StoredType::Chars { max }) => Verdict::Note(format!(
                    "kept: a source name longer than {max} characters is cut to {max}"
                )),
                _ => Verdict::Same,
            },
            _ => Verdict::Incompatible("text or varchar"),
        },
    }
}

/// Characters of a datsync sync id (`sync_YYYYMMDD_HHMMSS_xxxxxxxx`).
const SYNC_ID_CHARS: u32 = 29;

/// Whether the table has a unique index (or primary key) on exactly `columns`, in any
/// order: not partial, no expressions, not deferred — one `ON CONFLICT (columns)` can use.
async fn has_unique_key(
    client: &impl GenericClient,
    profile: &Profile,
    columns: &[&str],
) -> Result<bool, PgError> {
    let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
    client
        .query_one(
            "SELECT EXISTS (SELECT 1
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2
                AND i.indisunique AND i.indimmediate
                AND i.indnkeyatts = cardinality($3::text[])
                AND i.indpred IS NULL AND i.indexprs IS NULL
                AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text)
                       FROM generate_series(0, i.indnkeyatts - 1) k
                       JOIN pg_catalog.pg_attribute a
                         ON a.attrelid = c.oid AND a.attnum = i.indkey[k])
                  = (SELECT array_agg(x ORDER BY x) FROM unnest($3::text[]) x))",
            &[&profile.schema, &profile.table, &columns],
        )
        .await
        .map(|r| r.get(0))
        .map_err(|e| PgError::query("cannot read the indexes of the target table", e))
}

/// The sessions holding locks on the tables `init-db` alters (the target table and
/// datsync's own), other than this one.
pub async fn lock_holders(
    client: &impl GenericClient,
    profile: &Profile,
) -> Result<Vec<LockHolder>, PgError> {
    let tables: Vec<String> = [
        profile.table.as_str(),
        "sync_metadata",
        "sync_chunks",
        "chunk_queue",
        "datsync_receipts",
        "datsync_migrations",
    ]
    .iter()
    .map(|t| (*t).to_owned())
    .collect();
    let rows = client
        .query(
            "SELECT l.relation::regclass::text, l.mode, a.pid, a.usename::text,
                    a.application_name, host(a.client_addr), a.state,
                    extract(epoch FROM now() - COALESCE(a.xact_start, a.query_start))::float8,
                    left(a.query, 200)
               FROM pg_catalog.pg_locks l
               JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
              WHERE l.granted AND l.pid <> pg_backend_pid() AND l.locktype = 'relation'
                AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                   WHERE datname = current_database())
                AND l.relation IN (SELECT c.oid FROM pg_catalog.pg_class c
                                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                                    WHERE n.nspname = $1 AND c.relname = ANY($2))
              ORDER BY a.xact_start NULLS LAST, a.pid",
            &[&profile.schema, &tables],
        )
        .await
        .map_err(|e| PgError::query("cannot read pg_locks", e))?;
    Ok(rows
        .iter()
        .map(|r| LockHolder {
            table: r.get(0),
            mode: r.get(1),
            pid: r.get(2),
            user: r.get(3),
            application: r.get(4),
            client: r.get(5),
            state: r.get(6),
            for_seconds: r.get(7),
            query: r.get(8),
        })
        .collect())
}

/// The whole SQL of `init-db` for this database, as a DBA would apply it by hand: the
/// migrations not applied yet, the target table's DDL (`CREATE TABLE`, or what `--adopt`
/// adds), in one transaction under a `lock_timeout`, then the grants a least-privileged
/// `role` needs to run syncs.
pub async fn init_sql(
    client: &impl GenericClient,
    profile: &Profile,
    role: &str,
    lock_timeout: Duration,
) -> Result<String, PgError> {
    let s = quote_ident(&profile.schema);
    let has_migrations: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{s}.datsync_migrations")],
        )
        .await
        .map_err(|e| PgError::query("cannot look up datsync_migrations", e))?
        .get(0);
    let done: Vec<i32> = if has_migrations {
        client
            .query(&format!("SELECT version FROM {s}.datsync_migrations"), &[])
            .await
            .map_err(|e| PgError::query("cannot read datsync_migrations", e))?
            .iter()
            .map(|r| r.get(0))
            .collect()
    } else {
        Vec::new()
    };
    let target = plan_target(client, profile).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- datsync init-db for {}, as the table owner.",
        quote_qualified(&profile.schema, &profile.table)
    );
    for p in &target.problems {
        let _ = writeln!(out, "-- NOT FIXED BY THIS SCRIPT: {p}");
    }
    for n in &target.notes {
        let _ = writeln!(
            out,
            "-- column {} is {} (datsync creates {}): {}",
            n.column, n.found, n.datsync_type, n.action
        );
    }
    let _ = writeln!(out, "BEGIN;");
    let _ = writeln!(
        out,
        "SET LOCAL lock_timeout = '{}ms';",
        lock_timeout.as_millis()
    );
    let _ = writeln!(out, "SELECT pg_advisory_xact_lock({INIT_LOCK_KEY});");
    let _ = writeln!(
        out,
        "{};",
        super::migrate::base_sql(&s)
            .trim_end()
            .trim_end_matches(';')
    );
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let _ = writeln!(out, "-- migration {}: {}", m.version, m.name);
        let _ = writeln!(out, "{}", unindent(&(m.sql)(&s)));
        let _ = writeln!(
            out,
            "INSERT INTO {s}.datsync_migrations (version, name) VALUES ({}, '{}');",
            m.version,
            m.name.replace('\'', "''")
        );
    }
    for st in &target.statements {
        let _ = writeln!(out, "{}", st.trim_end_matches(';').to_owned() + ";");
    }
    for d in &profile.derived {
        let plan = super::plan_derived(client, profile, d).await?;
        let _ = writeln!(out, "-- derived table {}", plan.table);
        for p in &plan.problems {
            let _ = writeln!(out, "-- NOT FIXED BY THIS SCRIPT: {p}");
        }
        for st in &plan.statements {
            let _ = writeln!(out, "{}", st.trim_end_matches(';').to_owned() + ";");
        }
    }
    let _ = writeln!(out, "COMMIT;");
    out.push_str(&grants_sql(profile, role));
    Ok(out)
}

/// The grants that let `role` run syncs without owning anything: reading and writing the
/// target table and datsync's tables, drawing `sync_seq`. (Refreshing materialized views
/// needs their ownership; temporary staging tables need TEMP on the database, which PUBLIC
/// has by default.)
pub fn grants_sql(profile: &Profile, role: &str) -> String {
    let s = quote_ident(&profile.schema);
    let r = quote_ident(role);
    let target = quote_qualified(&profile.schema, &profile.table);
    let mut derived = String::new();
    for d in &profile.derived {
        let _ = writeln!(
            derived,
            "GRANT SELECT, INSERT, UPDATE ON {} TO {r};",
            quote_qualified(&profile.schema, &d.table)
        );
    }
    format!(
        "-- grants for the role that runs datsync\n\
         GRANT USAGE ON SCHEMA {s} TO {r};\n\
         GRANT SELECT, INSERT, UPDATE ON {target} TO {r};\n\
         {derived}\
         GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.sync_metadata, {s}.sync_chunks, \
         {s}.chunk_queue, {s}.datsync_receipts TO {r};\n\
         GRANT SELECT ON {s}.datsync_migrations TO {r};\n\
         GRANT USAGE, SELECT ON SEQUENCE {s}.{SYNC_SEQUENCE} TO {r};\n"
    )
}

/// SQL text built with `format!` indentation, one statement per line start.
fn unindent(sql: &str) -> String {
    sql.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(name: &str, base: &str, full: &str) -> Found {
        Found {
            name: name.into(),
            base: base.into(),
            full: full.into(),
        }
    }

    #[test]
    fn a_legacy_layout_is_adoptable_and_its_narrow_columns_named() {
        let profile = Profile::ztdwr();
        let mut cols: Vec<Found> = profile
            .columns
            .iter()
            .map(|c| match c.kind {
                ColumnType::Integer => found(&c.target, "integer", "integer"),
                ColumnType::Text if c.target == "no_polisi" => {
                    found(&c.target, "character varying", "character varying(12)")
                }
                k => found(&c.target, sql_type(k), sql_type(k)),
            })
            .collect();
        cols[0].base = "text".into();
        cols.extend([
            found(
                "created_at",
                "timestamp without time zone",
                "timestamp without time zone",
            ),
            found(
                "updated_at",
                "timestamp without time zone",
                "timestamp without time zone",
            ),
            found("sync_id", "character varying", "character varying(50)"),
            found("source_file", "character varying", "character varying(255)"),
        ]);
        // sql_type names "timestamp", "time": as regtype they are longer.
        for c in &mut cols {
            match c.base.as_str() {
                "timestamp" => c.base = "timestamp without time zone".into(),
                "time" => c.base = "time without time zone".into(),
                _ => {}
            }
        }
        let plan = compare(&profile, &cols);
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        assert_eq!(
            plan.missing,
            [
                "column `sync_seq` (bigint) is missing",
                "column `source_line` (bigint) is missing"
            ]
        );
        assert_eq!(
            plan.statements,
            ["ALTER TABLE \"public\".\"transport_documents\"\n  \
              ADD COLUMN IF NOT EXISTS \"sync_seq\" bigint,\n  \
              ADD COLUMN IF NOT EXISTS \"source_line\" bigint;"]
        );
        assert_eq!(
            plan.stored,
            [
                ("no_polisi".to_owned(), StoredType::Chars { max: 12 }),
                (
                    "konfirmasi_counter".to_owned(),
                    StoredType::Integer { bits: 32 }
                )
            ]
        );
        let named: Vec<&str> = plan.notes.iter().map(|n| n.column.as_str()).collect();
        for c in [
            "konfirmasi_counter",
            "no_polisi",
            "created_at",
            "updated_at",
            "sync_id",
            "source_file",
        ] {
            assert!(named.contains(&c), "{c} not named in {named:?}");
        }
    }

    #[test]
    fn other_types_are_refused_not_converted() {
        let profile = Profile::ztdwr();
        let cols: Vec<Found> = profile
            .columns
            .iter()
            .map(|c| match c.kind {
                ColumnType::Decimal { .. } => {
                    found(&c.target, "double precision", "double precision")
                }
                _ => found(&c.target, "text", "text"),
            })
            .collect();
        let plan = compare(&profile, &cols);
        assert!(
            plan.problems
                .iter()
                .any(|p| p == "column `bbm_actual` is double precision, expected numeric")
        );
        assert!(
            plan.problems
                .iter()
                .any(|p| p == "column `kontanan` is text, expected boolean")
        );
    }
}
