//! Derived tables (`[[derived]]`): side tables upserted from the rows of each loaded chunk,
//! beside the chunk's transaction (see `load/derived.rs` for when, the SQL and the rule).
//!
//! ```toml
//! [[derived]]
//! table = "drivers"                 # in the profile's schema
//! key = "nik"                       # a target column below: the conflict key
//! drop_values = ["-", "0", "N/A"]   # placeholders read as NULL (trimmed, any case)
//! columns = [
//!   { target = "nik", from = "nik_supir", required = true },
//!   { target = "nama", from = "nama_supir", required = true },
//!   { target = "transporter", from = "transporter" },          # update = "coalesce"
//!   { target = "email" },           # not from the rows: created, never written
//! ]
//! ```
//!
//! `from` names a target column of the main table (a column of the staged chunk). `update`
//! says what an update does to a column: `coalesce` (the default: a NULL never replaces a
//! stored value), `replace` (the newest row's value, NULL included) or `never` (written on
//! insert only). A column without `from` is created by `init-db` and never written.

use serde::Deserialize;

use super::ColumnType;

/// Bookkeeping columns of every derived table: the order of the row it was last written from
/// (`row_version`, `sync_seq`, `source_line`, as in the main table) and when.
pub const DERIVED_BOOKKEEPING: &[(&str, &str)] = &[
    ("row_version", "text COLLATE \"C\""),
    ("sync_seq", "bigint"),
    ("source_line", "bigint"),
    ("updated_at", "timestamptz"),
];

/// One checked `[[derived]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The table, in the profile's schema.
    pub table: String,
    /// The target column of its conflict key.
    pub key: String,
    /// Placeholder values read as NULL in every text column taken from the rows, compared
    /// trimmed and in upper case (stored upper-cased).
    pub drop_values: Vec<String>,
    /// Its columns, in order.
    pub columns: Vec<DerivedColumn>,
}

/// One column of a derived table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedColumn {
    /// The column.
    pub target: String,
    /// The main table's target column it is taken from; `None`: never written by datsync.
    pub from: Option<String>,
    /// Its type: the main column's, or the declared one (`text` by default).
    pub kind: ColumnType,
    /// A row whose value here is NULL (or a placeholder) is not used.
    pub required: bool,
    /// What an update does with it.
    pub update: DerivedUpdate,
}

/// What the upsert's `DO UPDATE` does with a derived column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DerivedUpdate {
    /// `COALESCE(EXCLUDED.c, t.c)`: a NULL never replaces a stored value.
    #[default]
    Coalesce,
    /// The newest row's value, NULL included.
    Replace,
    /// Written on insert only.
    Never,
}

/// A `[[derived]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDerived {
    pub(super) table: String,
    pub(super) key: String,
    #[serde(default)]
    pub(super) drop_values: Vec<String>,
    pub(super) columns: Vec<RawDerivedColumn>,
}

/// One entry of a derived table's `columns`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDerivedColumn {
    pub(super) target: String,
    pub(super) from: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) required: bool,
    pub(super) update: Option<DerivedUpdate>,
}

impl RawDerived {
    /// Checks the entry against the main table's columns (`main`: target → type) and its
    /// name; `reserved` are the names no derived table may take. Errors say what to write.
    pub(super) fn check(
        self,
        main: &[(String, ColumnType)],
        reserved: &[&str],
    ) -> Result<Derived, (&'static str, String)> {
        let table = self.table.trim().to_owned();
        if table.is_empty() {
            return Err(("table", "the derived table's name is empty".into()));
        }
        if reserved.contains(&table.as_str()) {
            return Err((
                "table",
                format!("`{table}` is the main table or one of datsync's; name another table"),
            ));
        }
        let mut columns: Vec<DerivedColumn> = Vec::with_capacity(self.columns.len());
        for c in self.columns {
            if columns.iter().any(|d| d.target == c.target) || c.target.trim().is_empty() {
                return Err((
                    "columns",
                    format!(
                        "derived table `{table}`: column `{}` is empty or twice",
                        c.target
                    ),
                ));
            }
            columns.push(c.check(&table, main)?);
        }
        match columns.iter().find(|c| c.target == self.key) {
            Some(k) if k.from.is_some() => {}
            _ => {
                return Err((
                    "key",
                    format!(
                        "derived table `{table}`: the key `{}` must be one of its columns taken \
                         `from` the rows",
                        self.key
                    ),
                ));
            }
        }
        Ok(Derived {
            table,
            key: self.key,
            drop_values: self
                .drop_values
                .iter()
                .map(|v| v.trim().to_uppercase())
                .collect(),
            columns,
        })
    }
}

impl RawDerivedColumn {
    /// Checks one column of derived table `table` against the main table's columns.
    fn check(
        self,
        table: &str,
        main: &[(String, ColumnType)],
    ) -> Result<DerivedColumn, (&'static str, String)> {
        let c = self;
        if DERIVED_BOOKKEEPING.iter().any(|(b, _)| *b == c.target) {
            return Err((
                "columns",
                format!(
                    "derived table `{table}`: `{}` is a datsync bookkeeping column; rename it",
                    c.target
                ),
            ));
        }
        let kind = match (&c.from, c.kind.as_deref()) {
            (Some(from), None) => match main.iter().find(|(t, _)| t == from) {
                Some((_, k)) => *k,
                None => {
                    return Err((
                        "from",
                        format!(
                            "derived table `{table}`: `{from}` is not a target column of the \
                             main table"
                        ),
                    ));
                }
            },
            (Some(_), Some(_)) => {
                return Err((
                    "type",
                    format!(
                        "derived table `{table}`, column `{}`: a column taken `from` the \
                         rows has the main column's type; drop `type`",
                        c.target
                    ),
                ));
            }
            (None, None | Some("text")) => ColumnType::Text,
            (None, Some(other)) => {
                return Err((
                    "type",
                    format!(
                        "derived table `{table}`, column `{}`: a column not taken from the \
                         rows is `text`, not `{other}`",
                        c.target
                    ),
                ));
            }
        };
        if c.from.is_none() && (c.required || c.update.is_some()) {
            return Err((
                "columns",
                format!(
                    "derived table `{table}`, column `{}`: `required` and `update` apply to \
                     columns taken `from` the rows",
                    c.target
                ),
            ));
        }
        Ok(DerivedColumn {
            target: c.target,
            from: c.from,
            kind,
            required: c.required,
            update: c.update.unwrap_or_default(),
        })
    }
}

impl Derived {
    /// The key column.
    pub fn key_column(&self) -> Option<&DerivedColumn> {
        self.columns.iter().find(|c| c.target == self.key)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::profile::Profile;

    const BASE: &str = r#"
name = "t"
table = "docs"
key = "id"
[[columns]]
source = "id"
type = "text"
required = true
not_empty = true
[[columns]]
source = "who"
type = "text"
"#;

    fn check(derived: &str) -> Result<Profile, String> {
        Profile::from_toml_str(&format!("{BASE}{derived}"), Path::new("t.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_builtin_profile_declares_drivers() {
        let p = Profile::ztdwr();
        let d = &p.derived[0];
        assert_eq!((d.table.as_str(), d.key.as_str()), ("drivers", "nik"));
        let names: Vec<&str> = d.columns.iter().map(|c| c.target.as_str()).collect();
        assert_eq!(
            names,
            ["id_karyawan", "nik", "nama", "email", "transporter"]
        );
        let email = d.columns.iter().find(|c| c.target == "email").unwrap();
        assert_eq!(email.from, None, "email is never written");
        assert!(d.drop_values.contains(&"N/A".to_owned()));
    }

    #[test]
    fn wrong_declarations_name_the_line_and_what_to_write() {
        let ok = check(
            "[[derived]]\ntable = \"people\"\nkey = \"k\"\ncolumns = [{ target = \"k\", from = \"who\" }, { target = \"note\" }]\n",
        )
        .unwrap();
        assert_eq!(ok.derived[0].columns[1].kind, ColumnType::Text);
        for (derived, needle) in [
            (
                "[[derived]]\ntable = \"p\"\nkey = \"k\"\ncolumns = [{ target = \"k\", from = \"nope\" }]\n",
                "line 13, field `from`: derived table `p`: `nope` is not a target column",
            ),
            (
                "[[derived]]\ntable = \"p\"\nkey = \"x\"\ncolumns = [{ target = \"k\", from = \"who\" }]\n",
                "field `key`",
            ),
            (
                "[[derived]]\ntable = \"docs\"\nkey = \"k\"\ncolumns = [{ target = \"k\", from = \"who\" }]\n",
                "is the main table",
            ),
            (
                "[[derived]]\ntable = \"p\"\nkey = \"k\"\ncolumns = [{ target = \"k\", from = \"who\" }, { target = \"sync_seq\", from = \"id\" }]\n",
                "bookkeeping column",
            ),
            (
                "[[derived]]\ntable = \"p\"\nkey = \"k\"\ncolumns = [{ target = \"k\", from = \"who\", update = \"sometimes\" }]\n",
                "unknown variant",
            ),
        ] {
            let e = check(derived).unwrap_err();
            assert!(e.contains(needle), "{needle} not in {e}");
        }
    }
}
