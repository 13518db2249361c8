//! A look at the target table: how many rows it holds, and its first rows by key (what
//! `datsync demo` shows at the end).

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
        quote_ident(&profile.key)
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
