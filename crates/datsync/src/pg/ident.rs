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

/// `"schema"."name"`.
pub fn quote_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// The PostgreSQL type datsync creates for a profile column type.
pub fn sql_type(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Text => "text",
        ColumnType::Decimal { .. } => "numeric",
        ColumnType::Integer => "bigint",
        ColumnType::Boolean => "boolean",
        ColumnType::Date => "date",
        ColumnType::Time => "time",
        ColumnType::Timestamp | ColumnType::DateTimestamp => "timestamp",
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
