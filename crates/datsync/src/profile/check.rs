//! Checking a raw profile (`raw.rs`) into a [`Profile`]: names canonical, types known,
//! rules that fit their type, the key required, aliases unambiguous.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use toml::Spanned;

use super::raw::{RawColumn, RawKey, RawNumber, RawProfile, RawRange};
use super::version::{self, NameVersion, ROW_VERSION_COLUMN, RowVersion};
use super::{
    Bound, Column, ColumnType, DEFAULT_DECIMAL_SCALE, DEFAULT_NULL_TOKENS, Format, LoadMode,
    MAX_DECIMAL_SCALE, OnInvalid, Profile, ProfileError, RangeRule, Rules, canonical_name,
};

/// Checks a raw profile into a [`Profile`]; every error names the file, the line and the
/// field.
pub(super) struct Checker<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a Path,
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        memchr::memchr_iter(b'\n', &self.text.as_bytes()[..end]).count() + 1
    }

    fn invalid(&self, offset: usize, field: &'static str, message: String) -> ProfileError {
        ProfileError::Invalid {
            path: self.path.to_path_buf(),
            line: self.line_of(offset),
            field,
            message,
        }
    }

    pub(super) fn check(&self, raw: RawProfile) -> Result<Profile, ProfileError> {
        if raw.columns.is_empty() {
            return Err(self.invalid(0, "columns", "the profile has no [[columns]]".into()));
        }
        let mut columns = Vec::with_capacity(raw.columns.len());
        let mut targets = HashSet::new();
        let mut sources: Vec<(String, bool)> = Vec::new();
        for spanned in &raw.columns {
            let at = spanned.span().start;
            let column = self.check_column(spanned.get_ref(), at, raw.on_invalid)?;
            if !targets.insert(column.target.clone()) {
                return Err(self.invalid(
                    at,
                    "target",
                    format!("target column `{}` is defined twice", column.target),
                ));
            }
            for s in column.sources() {
                match sources.iter_mut().find(|(n, _)| n == s) {
                    Some(entry) => entry.1 |= column.required,
                    None => sources.push((s.to_owned(), column.required)),
                }
            }
            columns.push(column);
        }
        let mode = raw.mode.as_ref().map(|m| *m.get_ref()).unwrap_or_default();
        let key = self.check_key(raw.key.as_ref(), raw.mode.as_ref(), &columns)?;
        if mode == LoadMode::Append {
            for (field, at) in [
                ("version", raw.version.as_ref().map(|v| v.span().start)),
                (
                    "version_from_name",
                    raw.version_from_name.as_ref().map(|v| v.span().start),
                ),
            ] {
                if let Some(at) = at {
                    return Err(self.invalid(
                        at,
                        field,
                        format!(
                            "`{field}` orders the rows of a key, and `mode = \"append\"` has no \
                             key: every row is inserted; remove `{field}`, or upsert by a `key`"
                        ),
                    ));
                }
            }
        }
        if raw.table.get_ref().trim().is_empty() {
            return Err(self.invalid(
                raw.table.span().start,
                "table",
                "the table name is empty".into(),
            ));
        }
        let aliases = match &raw.aliases {
            Some(a) => self.check_aliases(a, &sources)?,
            None => HashMap::new(),
        };
        let format = match raw.format {
            None => Format::default(),
            Some(f) => {
                let at = f.span().start;
                f.into_inner()
                    .check(|name| {
                        let canonical = canonical_name(name);
                        if canonical.is_empty() || canonical != name {
                            Err(format!(
                                "`{name}` is not a canonical column name; write `{canonical}`"
                            ))
                        } else {
                            Ok(())
                        }
                    })
                    .map_err(|(field, message)| self.invalid(at, field, message))?
            }
        };
        let mut profile = Profile {
            name: raw.name,
            schema: raw.schema,
            table: raw.table.into_inner(),
            key,
            mode,
            materialized_views: raw.materialized_views,
            null_tokens: raw.null_tokens.unwrap_or_else(|| {
                DEFAULT_NULL_TOKENS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            }),
            columns,
            unknown_columns: raw.unknown_columns,
            missing_optional: raw.missing_optional,
            format,
            version: None,
            derived: Vec::new(),
            aliases,
            sources,
        };
        profile.version = self.check_version(raw.version, raw.version_from_name, &profile)?;
        profile.derived = self.check_derived(raw.derived, &profile)?;
        Ok(profile)
    }

    /// The conflict key: one or more distinct target columns, each required and not empty,
    /// in upsert mode; none in append mode.
    fn check_key(
        &self,
        key: Option<&Spanned<RawKey>>,
        mode: Option<&Spanned<LoadMode>>,
        columns: &[Column],
    ) -> Result<Vec<String>, ProfileError> {
        let appends = mode.is_some_and(|m| *m.get_ref() == LoadMode::Append);
        let Some(key) = key else {
            if appends {
                return Ok(Vec::new());
            }
            return Err(self.invalid(
                0,
                "key",
                "the profile has no `key`: name the target column(s) that identify a row \
                 (`key = \"id\"` or `key = [\"a\", \"b\"]`), or set `mode = \"append\"` for a \
                 table without a natural key"
                    .into(),
            ));
        };
        let at = key.span().start;
        if appends {
            return Err(self.invalid(
                at,
                "key",
                "`mode = \"append\"` inserts every row and has no key; remove `key`, or leave \
                 out `mode` to upsert by it"
                    .into(),
            ));
        }
        let names = &key.get_ref().0;
        if names.is_empty() {
            return Err(self.invalid(
                at,
                "key",
                "the key lists no column; name at least one target column".into(),
            ));
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(self.invalid(at, "key", format!("`{name}` is named twice in the key")));
            }
            match columns.iter().find(|c| &c.target == name) {
                None => {
                    return Err(self.invalid(
                        at,
                        "key",
                        format!("the key `{name}` is not the target of any column"),
                    ));
                }
                Some(c) if !c.required || !c.rules.not_empty => {
                    return Err(self.invalid(
                        at,
                        "key",
                        format!(
                            "the key column `{name}` must have `required = true` and \
                             `not_empty = true`"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(names.clone())
    }

    /// The `[[derived]]` tables: columns taken from the main table's targets, names unique
    /// and not the main table's or datsync's.
    fn check_derived(
        &self,
        raw: Vec<Spanned<super::derived::RawDerived>>,
        profile: &Profile,
    ) -> Result<Vec<super::Derived>, ProfileError> {
        let main: Vec<(String, ColumnType)> = profile
            .columns
            .iter()
            .map(|c| (c.target.clone(), c.kind))
            .collect();
        let reserved = [
            profile.table.as_str(),
            "sync_metadata",
            "sync_chunks",
            "chunk_queue",
            "datsync_receipts",
            "datsync_migrations",
        ];
        let mut out: Vec<super::Derived> = Vec::with_capacity(raw.len());
        for d in raw {
            let at = d.span().start;
            let checked = d
                .into_inner()
                .check(&main, &reserved)
                .map_err(|(field, m)| self.invalid(at, field, m))?;
            if out.iter().any(|o| o.table == checked.table) {
                return Err(self.invalid(
                    at,
                    "table",
                    format!("derived table `{}` is declared twice", checked.table),
                ));
            }
            out.push(checked);
        }
        Ok(out)
    }

    /// `version` and `version_from_name` (see `version.rs`); `None` when neither is set.
    fn check_version(
        &self,
        columns: Option<Spanned<Vec<String>>>,
        from_name: Option<Spanned<String>>,
        profile: &Profile,
    ) -> Result<Option<RowVersion>, ProfileError> {
        let columns = match columns {
            None => None,
            Some(c) => Some(
                version::check_columns(c.get_ref(), profile)
                    .map_err(|m| self.invalid(c.span().start, "version", m))?,
            ),
        };
        let from_name = match from_name {
            None => None,
            Some(p) => Some(
                NameVersion::new(p.get_ref())
                    .map_err(|m| self.invalid(p.span().start, "version_from_name", m))?,
            ),
        };
        if columns.is_none() && from_name.is_none() {
            return Ok(None);
        }
        if profile
            .columns
            .iter()
            .any(|c| c.target == ROW_VERSION_COLUMN)
        {
            return Err(self.invalid(
                0,
                "target",
                format!("`{ROW_VERSION_COLUMN}` is datsync's own column; rename the target"),
            ));
        }
        Ok(Some(RowVersion { columns, from_name }))
    }

    fn check_source_name(
        &self,
        name: &str,
        at: usize,
        field: &'static str,
    ) -> Result<(), ProfileError> {
        let canonical = canonical_name(name);
        if canonical.is_empty() || canonical != name {
            return Err(self.invalid(
                at,
                field,
                format!("`{name}` is not a canonical header name; write `{canonical}`"),
            ));
        }
        Ok(())
    }

    /// The column's type (and its `format`, which must fit the type).
    fn check_kind(&self, raw: &RawColumn, at: usize) -> Result<ColumnType, ProfileError> {
        let kind = match raw.kind.as_str() {
            "text" => ColumnType::Text,
            "decimal" => {
                let scale = raw.scale.unwrap_or(DEFAULT_DECIMAL_SCALE);
                if scale > MAX_DECIMAL_SCALE {
                    return Err(self.invalid(
                        at,
                        "scale",
                        format!("scale {scale} is above the maximum {MAX_DECIMAL_SCALE}"),
                    ));
                }
                ColumnType::Decimal { scale }
            }
            "integer" => ColumnType::Integer,
            "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            "time" => ColumnType::Time,
            "timestamp" => ColumnType::Timestamp,
            "date_timestamp" => ColumnType::DateTimestamp,
            "timestamptz" => ColumnType::TimestampTz,
            "float" => ColumnType::Float,
            "numeric" => ColumnType::Numeric,
            other => {
                return Err(self.invalid(
                    at,
                    "type",
                    format!(
                        "unknown type `{other}`; use text, decimal, numeric, float, integer, \
                         boolean, date, time, timestamp, date_timestamp or timestamptz"
                    ),
                ));
            }
        };
        if let Some(f) = &raw.format {
            if !kind.takes_format() {
                return Err(self.invalid(
                    at,
                    "format",
                    format!(
                        "`format` applies to date, time, timestamp, date_timestamp and \
                         timestamptz columns, not {kind}"
                    ),
                ));
            }
            crate::value::check_format(f).map_err(|m| self.invalid(at, "format", m))?;
        }
        Ok(kind)
    }

    fn check_column(
        &self,
        raw: &RawColumn,
        at: usize,
        default_on_invalid: OnInvalid,
    ) -> Result<Column, ProfileError> {
        self.check_source_name(&raw.source, at, "source")?;
        let kind = self.check_kind(raw, at)?;
        if raw.scale.is_some() && !matches!(kind, ColumnType::Decimal { .. }) {
            return Err(self.invalid(
                at,
                "scale",
                format!("`scale` applies to decimal columns, not {kind}"),
            ));
        }
        match (&raw.time_source, kind) {
            (Some(_), k) if k != ColumnType::Timestamp => {
                return Err(self.invalid(
                    at,
                    "time_source",
                    format!("`time_source` applies to timestamp columns, not {k}"),
                ));
            }
            (Some(t), _) => self.check_source_name(t, at, "time_source")?,
            (None, _) => {}
        }
        let range = match &raw.range {
            None => None,
            Some(_) if !kind.is_numeric() => {
                return Err(self.invalid(
                    at,
                    "range",
                    format!("`range` applies to decimal or integer columns, not {kind}"),
                ));
            }
            Some(r) => Some(self.check_range(r, at)?),
        };
        if raw.valid && kind == ColumnType::Text {
            return Err(self.invalid(
                at,
                "valid",
                "`valid` has no meaning for a text column".into(),
            ));
        }
        if raw.on_invalid.is_some() && kind == ColumnType::Text {
            return Err(self.invalid(
                at,
                "on_invalid",
                "`on_invalid` has no meaning for a text column: text is always loaded as read"
                    .into(),
            ));
        }
        let target = raw.target.clone().unwrap_or_else(|| raw.source.clone());
        if target.trim().is_empty() {
            return Err(self.invalid(at, "target", "the target column name is empty".into()));
        }
        Ok(Column {
            target,
            source: raw.source.clone(),
            time_source: raw.time_source.clone(),
            kind,
            format: raw.format.clone(),
            required: raw.required,
            rules: Rules {
                not_empty: raw.not_empty,
                valid: raw.valid,
                range,
            },
            on_invalid: raw.on_invalid.unwrap_or(default_on_invalid),
            stored: None,
            pii: raw.pii,
        })
    }

    fn check_range(&self, raw: &RawRange, at: usize) -> Result<RangeRule, ProfileError> {
        let bound =
            |exclusive: &Option<RawNumber>, inclusive: &Option<RawNumber>, names: &str| match (
                exclusive, inclusive,
            ) {
                (Some(_), Some(_)) => {
                    Err(self.invalid(at, "range", format!("give only one of {names}")))
                }
                (None, None) => Ok(None),
                (Some(n), None) | (None, Some(n)) => n
                    .to_decimal_text()
                    .map(|value| {
                        Some(Bound {
                            value,
                            inclusive: inclusive.is_some(),
                        })
                    })
                    .ok_or_else(|| {
                        self.invalid(
                            at,
                            "range",
                            "a range bound must be a finite decimal number".into(),
                        )
                    }),
            };
        let lower = bound(&raw.gt, &raw.ge, "`gt` and `ge`")?;
        let upper = bound(&raw.lt, &raw.le, "`lt` and `le`")?;
        if lower.is_none() && upper.is_none() {
            return Err(self.invalid(at, "range", "a range needs `gt`/`ge` or `lt`/`le`".into()));
        }
        Ok(RangeRule { lower, upper })
    }

    fn check_aliases(
        &self,
        raw: &Spanned<HashMap<String, Vec<String>>>,
        sources: &[(String, bool)],
    ) -> Result<HashMap<String, String>, ProfileError> {
        let at = raw.span().start;
        let mut aliases = HashMap::new();
        let mut canon: Vec<_> = raw.get_ref().iter().collect();
        canon.sort();
        for (canonical, variants) in canon {
            if !sources.iter().any(|(n, _)| n == canonical) {
                return Err(self.invalid(
                    at,
                    "aliases",
                    format!("alias target `{canonical}` is not the source of any column"),
                ));
            }
            for variant in variants {
                self.check_source_name(variant, at, "aliases")?;
                if sources.iter().any(|(n, _)| n == variant) && variant != canonical {
                    // A variant may also be a source in its own right (`waktu_timbang_terima`
                    // is a target name, not a source); a real collision is ambiguous.
                    return Err(self.invalid(
                        at,
                        "aliases",
                        format!(
                            "`{variant}` is both a source column and an alias of `{canonical}`"
                        ),
                    ));
                }
                if let Some(previous) = aliases.insert(variant.clone(), canonical.clone()) {
                    return Err(self.invalid(
                        at,
                        "aliases",
                        format!("`{variant}` is an alias of both `{previous}` and `{canonical}`"),
                    ));
                }
            }
        }
        Ok(aliases)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::profile::{Bound, ColumnType, Profile};

    fn err(text: &str) -> String {
        Profile::from_toml_str(text, Path::new("p.toml"))
            .unwrap_err()
            .to_string()
    }

    const HEAD: &str = "name = \"t\"\ntable = \"t\"\nkey = \"k\"\n";

    #[test]
    fn errors_name_line_and_field() {
        let e = err(&format!(
            "{HEAD}[[columns]]\ntarget = \"k\"\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
             [[columns]]\nsource = \"d\"\ntype = \"money\"\n"
        ));
        assert!(
            e.contains("line 10") && e.contains("`type`") && e.contains("money"),
            "{e}"
        );

        let e = err(&format!(
            "{HEAD}[[columns]]\nsource = \"k\"\ntype = \"text\"\ncolour = 1\n"
        ));
        assert!(
            e.contains("p.toml") && e.contains("colour") && e.contains("line 7"),
            "{e}"
        );

        let e = err(&format!(
            "{HEAD}[[columns]]\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
             [[columns]]\nsource = \"t\"\ntype = \"decimal\"\nformat = \"%Y\"\n"
        ));
        assert!(e.contains("`format`") && e.contains("line 9"), "{e}");

        let e = err(&format!(
            "{HEAD}[[columns]]\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
             [[columns]]\nsource = \"Bad Name\"\ntype = \"text\"\n"
        ));
        assert!(e.contains("bad_name") && e.contains("`source`"), "{e}");

        let e = err(
            "name = \"t\"\ntable = \"t\"\nkey = \"nope\"\n[[columns]]\nsource = \"k\"\ntype = \"text\"\n",
        );
        assert!(e.contains("line 3") && e.contains("`key`"), "{e}");

        let e = err(&format!(
            "{HEAD}[[columns]]\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\nrange = {{ gt = 1 }}\n"
        ));
        assert!(e.contains("`range`"), "{e}");
    }

    #[test]
    fn policies_default_and_are_checked() {
        use crate::profile::{MissingOptional, OnInvalid, UnknownColumns};
        let key =
            "[[columns]]\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n";
        let p = Profile::from_toml_str(
            &format!("{HEAD}{key}[[columns]]\nsource = \"n\"\ntype = \"decimal\"\n"),
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(p.columns[1].on_invalid, OnInvalid::Null);
        assert_eq!(p.unknown_columns, UnknownColumns::Warn);
        assert_eq!(p.missing_optional, MissingOptional::Null);
        assert_eq!(p.missing_optional(["k"]), ["n"]);
        assert!(p.missing_optional(["k", "n"]).is_empty());
        // A top-level default, overridden per column.
        let p = Profile::from_toml_str(
            &format!(
                "{HEAD}on_invalid = \"reject\"\nunknown_columns = \"fail\"\nmissing_optional = \"fail\"\n\
                 {key}[[columns]]\nsource = \"n\"\ntype = \"decimal\"\n\
                 [[columns]]\nsource = \"b\"\ntype = \"boolean\"\non_invalid = \"null\"\n"
            ),
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(p.columns[1].on_invalid, OnInvalid::Reject);
        assert_eq!(p.columns[2].on_invalid, OnInvalid::Null);
        assert_eq!(p.unknown_columns, UnknownColumns::Fail);
        assert_eq!(p.missing_optional, MissingOptional::Fail);
        let e = err(&format!("{HEAD}unknown_columns = \"shout\"\n{key}"));
        assert!(
            e.contains("shout") && e.contains("warn") && e.contains("line 4"),
            "{e}"
        );
        let e = err(&format!(
            "{HEAD}{key}[[columns]]\nsource = \"t\"\ntype = \"text\"\non_invalid = \"reject\"\n"
        ));
        assert!(e.contains("`on_invalid`") && e.contains("text"), "{e}");
        let e = err(&format!(
            "{HEAD}{key}[[columns]]\nsource = \"n\"\ntype = \"decimal\"\non_invalid = \"zero\"\n"
        ));
        assert!(e.contains("zero") && e.contains("reject"), "{e}");
    }

    /// `key` is a string or a list (issue 18 item 3); `mode = "append"` has none, and no
    /// version; every mistake names the file, the line and the field.
    #[test]
    fn keys_are_one_column_or_several_and_append_has_none() {
        use crate::profile::LoadMode;
        let cols = "[[columns]]\nsource = \"a\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
                    [[columns]]\nsource = \"b\"\ntype = \"date\"\nrequired = true\nnot_empty = true\n\
                    [[columns]]\nsource = \"c\"\ntype = \"text\"\n";
        let head = "name = \"t\"\ntable = \"t\"\n";
        let ok = |top: &str| {
            Profile::from_toml_str(&format!("{head}{top}{cols}"), Path::new("p.toml")).unwrap()
        };
        let bad = |top: &str| err(&format!("{head}{top}{cols}"));
        let p = ok("key = \"a\"\n");
        assert_eq!(
            (p.key.as_slice(), p.mode),
            (&["a".to_owned()][..], LoadMode::Upsert)
        );
        let p = ok("key = [\"b\", \"a\"]\n");
        assert_eq!(p.key, ["b", "a"]);
        assert_eq!(p.key_positions(), [1, 0]);
        assert!(p.is_key("a") && p.is_key("b") && !p.is_key("c"));
        let p = ok("mode = \"append\"\n");
        assert!(p.key.is_empty() && p.appends());
        assert_eq!(p.key_columns().count(), 0);
        let p = ok("mode = \"upsert\"\nkey = [\"a\"]\n");
        assert_eq!(p.key, ["a"]);

        for (top, want) in [
            ("", vec!["p.toml", "line 1", "`key`", "mode = \"append\""]),
            ("key = []\n", vec!["line 3", "`key`", "no column"]),
            ("key = [\"a\", \"a\"]\n", vec!["line 3", "named twice"]),
            (
                "key = [\"a\", \"z\"]\n",
                vec!["line 3", "`z` is not the target"],
            ),
            (
                "key = [\"a\", \"c\"]\n",
                vec![
                    "line 3",
                    "`c` must have `required = true` and `not_empty = true`",
                ],
            ),
            (
                "mode = \"append\"\nkey = \"a\"\n",
                vec!["p.toml", "line 4", "`key`", "append"],
            ),
            (
                "mode = \"append\"\nversion = [\"b\"]\n",
                vec!["p.toml", "line 4", "`version`", "append", "no key"],
            ),
            (
                "mode = \"append\"\nversion_from_name = '(?<date>\\d{8})'\n",
                vec!["p.toml", "line 4", "`version_from_name`", "append"],
            ),
            (
                "mode = \"merge\"\nkey = \"a\"\n",
                vec!["p.toml", "merge", "upsert", "append"],
            ),
            ("key = 5\n", vec!["p.toml", "line 3", "a list of them"]),
        ] {
            let e = bad(top);
            for w in want {
                assert!(e.contains(w), "{top:?}: {w:?} not in {e}");
            }
        }
    }

    #[test]
    fn range_bounds_keep_decimal_text() {
        let p = Profile::from_toml_str(
            &format!(
                "{HEAD}[[columns]]\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
                 [[columns]]\nsource = \"x\"\ntype = \"decimal\"\nscale = 3\nrange = {{ ge = \"0.5\", lt = 10 }}\n"
            ),
            Path::new("p.toml"),
        )
        .unwrap();
        let x = &p.columns[1];
        assert_eq!(x.kind, ColumnType::Decimal { scale: 3 });
        let r = x.rules.range.as_ref().unwrap();
        assert_eq!(
            r.lower,
            Some(Bound {
                value: "0.5".into(),
                inclusive: true
            })
        );
        assert_eq!(
            r.upper,
            Some(Bound {
                value: "10".into(),
                inclusive: false
            })
        );
    }
}
