//! SQL identifier quoting and the PostgreSQL type of each profile column type.

use crate::profile::ColumnType;

/// Quotes an identifier: wraps it in `"` and doubles every `"` inside, so any text (even
/// `a"; drop table x; --`) is a name, never SQL.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quoted identifiers joined by `, ` (`"a", "b"`): a key's columns.
pub fn quote_list<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"schema"."name"`.
pub fn quote_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// A string literal: `'…'` with every `'` doubled (`standard_conforming_strings` is on by
/// default since PostgreSQL 9.1).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `text_expr` cut to the length of `schema.table.column` when that column is `varchar(n)`
/// or `char(n)` (a table another loader made, adopted by `init-db --adopt`), else as it
/// is. The length is read from the catalog once per statement, so a long source name or
/// error message never fails a statement on such a table.
pub fn fit_text_sql(text_expr: &str, schema: &str, table: &str, column: &str) -> String {
    format!(
        "left({text_expr}, COALESCE((
           SELECT NULLIF(a.atttypmod, -1) - 4
             FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = {} AND c.relname = {} AND a.attname = {}
              AND a.atttypid IN ('varchar'::regtype, 'bpchar'::regtype)), 2147483647))",
        quote_literal(schema),
        quote_literal(table),
        quote_literal(column)
    )
}

/// The PostgreSQL type datsync creates for a profile column type.
pub fn sql_type(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Text => "text",
        ColumnType::Decimal { .. } | ColumnType::Numeric => "numeric",
        ColumnType::Integer => "bigint",
        ColumnType::Boolean => "boolean",
        ColumnType::Date => "date",
        ColumnType::Time => "time",
        ColumnType::Timestamp | ColumnType::DateTimestamp => "timestamp",
        ColumnType::TimestampTz => "timestamptz",
        ColumnType::Float => "double precision",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_ident("a"), "\"a\"");
        assert_eq!(
            quote_ident("a\"; drop table x; --"),
            "\"a\"\"; drop table x; --\""
        );
        assert_eq!(quote_qualified("s", "t\""), "\"s\".\"t\"\"\"");
    }
}
