//! The profile's derived tables (`[[derived]]`) in `init-db`: created when absent; an
//! existing one (the legacy loader's `drivers`) is checked, and `--adopt` adds what datsync
//! needs — missing columns (nullable, no default) and a unique index on the key — and nothing
//! else.
//!
//! | the derived table | `init-db` | `init-db --adopt` |
//! |---|---|---|
//! | absent | `CREATE TABLE` | the same |
//! | lacks a column (`row_version`, `sync_seq` …, or a declared one) or a unique index on the key | refuses, naming the SQL of `--adopt` | `ADD COLUMN IF NOT EXISTS`; `CREATE UNIQUE INDEX` |
//! | a text column of another type than `text`/`varchar`/`char` | refuses | refuses |

use tokio_postgres::GenericClient;

use super::{PgError, quote_ident, quote_qualified, sql_type};
use crate::profile::{ColumnType, DERIVED_BOOKKEEPING, Derived, Profile};

/// What `init-db` finds for one derived table and the DDL it would run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DerivedPlan {
    /// The table, quoted and qualified.
    pub table: String,
    /// It exists.
    pub exists: bool,
    /// DDL that creates it or adds what is missing.
    pub statements: Vec<String>,
    /// What is missing (the statements add it).
    pub missing: Vec<String>,
    /// What `--adopt` cannot fix.
    pub problems: Vec<String>,
}

impl DerivedPlan {
    /// Whether the table can be used as it is.
    pub fn ready(&self) -> bool {
        self.exists && self.missing.is_empty() && self.problems.is_empty()
    }
}

/// The `CREATE TABLE` of a derived table: its columns, the key as primary key, the
/// bookkeeping columns.
pub fn create_derived_sql(profile: &Profile, d: &Derived) -> String {
    let cols: Vec<String> = d
        .columns
        .iter()
        .map(|c| {
            let pk = if c.target == d.key {
                " NOT NULL PRIMARY KEY"
            } else {
                ""
            };
            format!("{} {}{pk}", quote_ident(&c.target), sql_type(c.kind))
        })
        .chain(
            DERIVED_BOOKKEEPING
                .iter()
                .map(|(n, t)| format!("{} {t}", quote_ident(n))),
        )
        .collect();
    format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote_qualified(&profile.schema, &d.table),
        cols.join(",\n  ")
    )
}

/// Reads a derived table and plans what `init-db` would do with it.
pub async fn plan_derived(
    client: &impl GenericClient,
    profile: &Profile,
    d: &Derived,
) -> Result<DerivedPlan, PgError> {
    let table = quote_qualified(&profile.schema, &d.table);
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid::regtype::text
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&profile.schema, &d.table],
        )
        .await
        .map_err(|e| PgError::query(format!("cannot read the columns of {table}"), e))?;
    let mut plan = DerivedPlan {
        table: table.clone(),
        exists: !rows.is_empty(),
        ..DerivedPlan::default()
    };
    if !plan.exists {
        plan.statements.push(create_derived_sql(profile, d));
        return Ok(plan);
    }
    let found: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let needs = d
        .columns
        .iter()
        .map(|c| (c.target.as_str(), sql_type(c.kind), Some(c.kind)))
        .chain(DERIVED_BOOKKEEPING.iter().map(|(n, t)| (*n, *t, None)));
    let mut adds = Vec::new();
    for (name, create_as, kind) in needs {
        match found.iter().find(|(n, _)| n == name) {
            None => {
                plan.missing
                    .push(format!("column `{name}` ({create_as}) is missing"));
                adds.push(format!(
                    "ADD COLUMN IF NOT EXISTS {} {create_as}",
                    quote_ident(name)
                ));
            }
            Some((_, base))
                if kind == Some(ColumnType::Text)
                    && !matches!(base.as_str(), "text" | "character varying" | "character") =>
            {
                plan.problems.push(format!(
                    "column `{name}` is {base}, expected text or varchar"
                ));
            }
            Some(_) => {}
        }
    }
    if !adds.is_empty() {
        plan.statements
            .push(format!("ALTER TABLE {table}\n  {};", adds.join(",\n  ")));
    }
    if !has_unique(client, &profile.schema, &d.table, &d.key).await? {
        plan.missing.push(format!(
            "no primary key or unique index on `{}` alone",
            d.key
        ));
        plan.statements.push(format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {table} ({});",
            quote_ident(&format!("{}_{}_datsync_key", d.table, d.key)),
            quote_ident(&d.key)
        ));
    }
    Ok(plan)
}

async fn has_unique(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
    key: &str,
) -> Result<bool, PgError> {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
              WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3
                AND i.indisunique AND i.indnkeyatts = 1
                AND i.indpred IS NULL AND i.indexprs IS NULL)",
            &[&schema, &table, &key],
        )
        .await
        .map(|r| r.get(0))
        .map_err(|e| PgError::query("cannot read the indexes of a derived table", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drivers_table_is_created_with_its_key_and_bookkeeping() {
        let p = Profile::ztdwr();
        let d = &p.derived[0];
        let sql = create_derived_sql(&p, d);
        assert!(
            sql.starts_with("CREATE TABLE \"public\".\"drivers\""),
            "{sql}"
        );
        for col in [
            "\"nik\" text NOT NULL PRIMARY KEY",
            "\"id_karyawan\" text",
            "\"nama\" text",
            "\"email\" text",
            "\"transporter\" text",
            "\"row_version\" text COLLATE \"C\"",
            "\"sync_seq\" bigint",
        ] {
            assert!(sql.contains(col), "{col} in {sql}");
        }
    }
}
