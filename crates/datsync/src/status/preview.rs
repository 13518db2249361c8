//! A look at the target table: how many rows it holds, its first rows by key (by sync and
//! line in append mode: what `datsync demo` shows at the end), and a checksum of every row
//! (what the demo compares two loads of one file by).

use tokio_postgres::Client;

use crate::pg::{PgError, quote_ident, quote_qualified};
use crate::profile::Profile;

/// The target table at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePreview {
    /// Rows in the table.
    pub rows: i64,
    /// The columns shown.
    pub columns: Vec<String>,
    /// The first rows by key, each value as PostgreSQL prints it (`None` for NULL).
    pub first_rows: Vec<Vec<Option<String>>>,
}

/// The row count of the profile's target table and its first `limit` rows by key, with
/// the values of `columns` (target column names).
pub async fn preview_target(
    client: &Client,
    profile: &Profile,
    columns: &[String],
    limit: i64,
) -> Result<TablePreview, PgError> {
    let table = quote_qualified(&profile.schema, &profile.table);
    let failed = |e| {
        PgError::query(
            format!("cannot read {}.{}", profile.schema, profile.table),
            e,
        )
    };
    let rows: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .map_err(failed)?
        .get(0);
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("{}::text", quote_ident(c)))
        .collect();
    let sql = format!(
        "SELECT {} FROM {table} ORDER BY {} LIMIT $1",
        select.join(", "),
        row_order(profile, "")
    );
    let first_rows = client
        .query(&sql, &[&limit])
        .await
        .map_err(failed)?
        .iter()
        .map(|r| (0..columns.len()).map(|i| r.get(i)).collect())
        .collect();
    Ok(TablePreview {
        rows,
        columns: columns.to_vec(),
        first_rows,
    })
}

/// The order of the table's rows: by key (every part), or in append mode by sync and line.
fn row_order(profile: &Profile, prefix: &str) -> String {
    let columns: Vec<&str> = if profile.appends() {
        vec!["sync_seq", "source_line"]
    } else {
        profile.key.iter().map(String::as_str).collect()
    };
    columns
        .iter()
        .map(|c| format!("{prefix}{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns a [`TableChecksum`] leaves out: when and by which sync a row was written
/// differ between two loads of the same file by construction.
pub const CHECKSUM_IGNORED_COLUMNS: &[&str] = &["created_at", "updated_at", "sync_id", "sync_seq"];

/// What two tables holding the same rows have in common.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableChecksum {
    /// Rows.
    pub rows: i64,
    /// MD5 over the rows in key order, each row as JSON (every column but
    /// [`CHECKSUM_IGNORED_COLUMNS`], as PostgreSQL renders it).
    pub md5: String,
}

/// The checksum of the profile's target table: equal for two tables exactly when they hold
/// the same rows, column for column (audit timestamps and sync ids aside).
pub async fn table_checksum(client: &Client, profile: &Profile) -> Result<TableChecksum, PgError> {
    let table = quote_qualified(&profile.schema, &profile.table);
    let minus = CHECKSUM_IGNORED_COLUMNS
        .iter()
        .fold(String::new(), |mut s, c| {
            s.push_str(" - '");
            s.push_str(c);
            s.push('\'');
            s
        });
    // In append mode rows have no key: they are ordered by their own digest, so two tables
    // holding the same rows (as a multiset) have the same checksum.
    let order = if profile.appends() {
        format!("md5((to_jsonb(t){minus})::text)")
    } else {
        row_order(profile, "t.")
    };
    let sql = format!(
        "SELECT count(*), COALESCE(md5(string_agg(md5((to_jsonb(t){minus})::text), '' \
         ORDER BY {order})), '') FROM {table} t"
    );
    let row = client.query_one(&sql, &[]).await.map_err(|e| {
        PgError::query(
            format!("cannot read {}.{}", profile.schema, profile.table),
            e,
        )
    })?;
    Ok(TableChecksum {
        rows: row.get(0),
        md5: row.get(1),
    })
}
