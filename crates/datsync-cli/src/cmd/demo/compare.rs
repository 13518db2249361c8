//! The comparison of two loads: a checksum over every column of every row of a target table,
//! the audit timestamps and the columns naming the sync aside.

use datsync::pg::{PgSettings, quote_ident, quote_qualified};
use datsync::profile::Profile;

/// The columns left out of the comparison: when and by which sync a row was written differ
/// between two loads of the same file by construction.
pub const IGNORED_COLUMNS: &[&str] = &["created_at", "updated_at", "sync_id", "sync_seq"];

/// What two equal tables have in common.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableChecksum {
    /// Rows.
    pub rows: i64,
    /// MD5 over the rows in key order, each row as JSON (every column but
    /// [`IGNORED_COLUMNS`], as PostgreSQL renders them).
    pub md5: String,
}

/// The checksum of the profile's target table.
pub async fn checksum(settings: &PgSettings, profile: &Profile) -> anyhow::Result<TableChecksum> {
    let client = datsync::pg::connect(settings).await?;
    let table = quote_qualified(&profile.schema, &profile.table);
    let minus = IGNORED_COLUMNS.iter().fold(String::new(), |mut s, c| {
        s.push_str(" - '");
        s.push_str(c);
        s.push('\'');
        s
    });
    let sql = format!(
        "SELECT count(*), COALESCE(md5(string_agg(md5((to_jsonb(t){minus})::text), '' \
         ORDER BY t.{key})), '') FROM {table} t",
        key = quote_ident(&profile.key)
    );
    let row = client.query_one(&sql, &[]).await?;
    Ok(TableChecksum {
        rows: row.get(0),
        md5: row.get(1),
    })
}
