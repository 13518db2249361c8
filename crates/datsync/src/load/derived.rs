//! Derived tables (`[[derived]]` in the profile): each derived table is upserted from a
//! chunk's staged rows — beside the chunk's transaction, on the loader's second connection,
//! while the chunk's rows are written (below), or in the chunk's transaction after its upsert.
//!
//! # The rule
//!
//! A derived row per key (the `drivers` of the built-in profile: one per `nik_supir`) takes
//! its values from the **newest source row** that has the key and a value in every `required`
//! column (placeholders — `drop_values`, blanks, null tokens — count as no value), where
//! newest is the main table's order: `(row_version, sync_seq, source_line)`, a missing
//! version the oldest. The rows considered are those that reach the load (accepted by
//! validation; a row superseded by a later line with the same document key *inside its
//! chunk* is not staged). In SQL: `DISTINCT ON (key)` over the staged rows by that order,
//! then `ON CONFLICT DO UPDATE … WHERE (stored order) < (incoming order)`, the order kept in
//! the derived table's `row_version`, `sync_seq`, `source_line`. A maximum does not depend on
//! the order chunks and files commit in, so two overlapping files in either order, or a
//! resumed sync, give the same table, and applying a chunk twice changes nothing (its rows
//! are then no newer than the stored ones).
//!
//! # Beside the chunk's transaction
//!
//! A run's loader (`Loader::load_chunk_beside`) upserts a chunk's derived tables on a second
//! connection of its own, in a transaction of their own (the rows they can pick, one per key,
//! upserted as the client picked them, `derived_pick.rs`; else the columns they read staged
//! there by a narrow COPY), while the chunk's transaction COPYs or upserts its rows: the two
//! backends work side by side (issue 14: on one backend the derived upsert was a third of a
//! first run). The derived transaction commits first, whatever becomes of the chunk's; the
//! chunk's ledger row then records its failures (`derived_failed`) and commits. So:
//!
//! - **Exactly once in effect**: a crash or a failure between the two commits leaves the
//!   derived tables holding the chunk and the ledger not; the chunk is loaded again (resume,
//!   retry) and its derived rows applied again, which changes nothing (above). A `kill -9`
//!   there and a resume give the table of one uninterrupted run (`derived_committed` is the
//!   crash tests' kill point).
//! - **No deadlock across the two**: the derived transaction never waits for the chunk's (it
//!   commits as soon as its upserts are done), so a chunk's transaction waiting on another
//!   sync's row locks while its own derived transaction waits on that sync's derived rows
//!   cannot close a circle PostgreSQL would not see. Derived transactions lock their keys in
//!   key order (bytewise for a text key, in both upserts), each table's writes after its
//!   writers' lock ([`lock_writers`], `derived_pick.rs`, "Inserted as they are"): a chunk's
//!   transaction takes it only after its own rows, so the order is always main rows, then
//!   the writers' lock, then derived rows. Two profiles naming the same derived tables in
//!   opposite orders can deadlock on those locks; PostgreSQL sees it (a transient failure:
//!   the chunk is retried).
//! - **The price: a chunk that then fails for good** (its rows break a constraint the
//!   table's owner added, a trigger raises) **leaves its drivers written**, and they stay if
//!   the chunk is never loaded (the sync abandoned, the file corrected and loaded as a new
//!   sync without those rows): the derived tables then hold values of rows the main table
//!   does not. Waiting for the chunk's rows before committing would close that window but
//!   opens a circle of waits PostgreSQL cannot see (a derived transaction holding drivers
//!   while its chunk waits for another chunk's upsert lock or rows, whose own derived
//!   transaction waits for those drivers) — likely with `--jobs` or overlapping files, since
//!   every chunk names the same drivers. The in-transaction mode below has no such window.
//! - The second connection holds no lock of the sync's writer: after a lost lock it may
//!   still commit a chunk's derived rows, which changes nothing a later load of the chunk
//!   would not. Its `application_name` is the loader's with ` (derived tables)` after it.
//! - While the derived upserts run longer than the chunk's rows take — or wait for the
//!   writers' lock while other loaders' derived writes take their turns — the chunk's
//!   transaction waits idle (a server's `idle_in_transaction_session_timeout` shorter than
//!   that would end it: the chunk is retried).
//!
//! The work queue's workers (`Loader::load_chunk_in_transaction`), a profile without a
//! one-column key, and a loader whose second connection cannot be made (a connection limit,
//! a standby; said once, then not tried again in the run) upsert the derived tables in the
//! chunk's transaction, after its upsert and before its ledger row: atomic with the chunk.
//!
//! An update writes the columns as their `update` says: `coalesce` keeps a stored value
//! where the newest row has none (so `transporter` is never nulled; in the rare case that
//! rows arrive out of order *and* the newest has no value, the value kept is the one stored
//! first rather than the newest non-null one), `never` only on insert, and columns not
//! taken from the rows (`email`) are never written.
//!
//! # Failures
//!
//! Each derived upsert runs under a `SAVEPOINT`: a failure that retrying cannot fix (a
//! constraint, a missing or changed table) is rolled back to it, logged, counted in the
//! chunk's ledger row (`derived_failed`), the summary and `datsync_derived_failures_total`,
//! and the chunk commits (the legacy loader treated it as non-fatal). A transient failure
//! (a serialization failure, a deadlock, a lost connection) fails the chunk's attempt as any
//! other statement does (beside it: the derived transaction is rolled back, its connection
//! made again), so the chunk is retried whole and the derived table never misses it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use arrow_array::Array as _;
use bytes::BytesMut;
use tokio_postgres::types::ToSql;

use super::copy::ColumnEncoder;
use super::sql::{STAGE, Version};
use crate::pg::{ErrorClass, PgError, quote_ident, quote_qualified};
use crate::profile::{ColumnType, Derived, DerivedUpdate, Profile};

/// The savepoint each derived upsert runs under.
const SAVEPOINT: &str = "datsync_derived";

/// The upsert of one derived table. Parameters: `$1` the sync's `sync_seq`, `$2` the
/// placeholders (upper case, `text[]`), `$3` the file's version when the profile reads one.
#[derive(Debug, Clone)]
pub(super) struct DerivedSql {
    /// The table, quoted and qualified.
    pub table: String,
    /// The placeholders, upper case.
    pub drop_values: Vec<String>,
    /// The statement.
    pub upsert: String,
    /// The main columns its pick reads, for [`pick`]; `None` when one is not among the
    /// profile's columns (then every row is staged).
    pub pick: Option<PickColumns>,
    /// The upsert of the rows the client picked, one per key (`derived_pick.rs`); `None`
    /// with `pick`.
    pub picked: Option<super::derived_pick::PickSql>,
    /// The statement taking its writers' lock ([`lock_writers`]).
    lock: String,
}

/// The main columns a derived table's pick reads: its key's, then every column that must
/// hold a value (`required`, and the key), then every column it writes, each as its position
/// among the profile's columns and whether the upsert reads it through the placeholder test
/// (a `text` column).
#[derive(Debug, Clone)]
pub(super) struct PickColumns {
    pub key: usize,
    pub wanted: Vec<(usize, bool)>,
    pub written: Vec<(usize, bool)>,
}

impl DerivedSql {
    pub(super) fn new(profile: &Profile, d: &Derived, version: Version, index: usize) -> Self {
        let written: Vec<(usize, &crate::profile::DerivedColumn)> = d
            .columns
            .iter()
            .filter(|c| c.from.is_some())
            .enumerate()
            .collect();
        let (picks, exprs) = source_values(profile, &written);
        let key_e = written
            .iter()
            .find(|(_, c)| c.target == d.key)
            .map_or_else(|| "e0".to_owned(), |(i, _)| picks[*i].clone());
        let mut wanted: Vec<String> = written
            .iter()
            .filter(|(_, c)| c.required || c.target == d.key)
            .map(|(i, _)| format!("{} IS NOT NULL", picks[*i]))
            .collect();
        wanted.sort();
        wanted.dedup();
        let targets: Vec<String> = written
            .iter()
            .map(|(_, c)| quote_ident(&c.target))
            .collect();
        let position = |c: &crate::profile::DerivedColumn| {
            let from = c.from.as_ref()?;
            let at = profile.columns.iter().position(|m| &m.target == from)?;
            Some((at, c.kind == ColumnType::Text))
        };
        let pick = written
            .iter()
            .find(|(_, c)| c.target == d.key)
            .and_then(|(_, c)| position(c))
            .and_then(|(key, _)| {
                let wanted = written
                    .iter()
                    .filter(|(_, c)| c.required || c.target == d.key)
                    .map(|(_, c)| position(c))
                    .collect::<Option<Vec<_>>>()?;
                let written = written
                    .iter()
                    .map(|(_, c)| position(c))
                    .collect::<Option<Vec<_>>>()?;
                Some(PickColumns {
                    key,
                    wanted,
                    written,
                })
            });
        let table = quote_qualified(&profile.schema, &d.table);
        let key_text = written
            .iter()
            .find(|(_, c)| c.target == d.key)
            .is_some_and(|(_, c)| c.kind == ColumnType::Text);
        // Keys locked in one order whichever statement writes them: bytewise for text.
        let collate = if key_text { " COLLATE \"C\"" } else { "" };
        let on_conflict = conflict_clause(d, &written);
        let picked = pick.as_ref().map(|p| {
            let on_conflict = (on_conflict.as_str(), collate);
            super::derived_pick::PickSql::new(
                profile,
                &table,
                &targets,
                &d.key,
                p,
                on_conflict,
                index,
            )
        });
        let upsert = format!(
            "WITH src AS (
               SELECT {exprs}, ({version})::text AS v, s.src_line AS l FROM {STAGE} s
             ),
             pick AS (
               SELECT DISTINCT ON ({key_e}) * FROM src WHERE {wanted}
                ORDER BY {key_e}, COALESCE(v, '') COLLATE \"C\" DESC, l DESC
             )
             INSERT INTO {table} AS t ({targets}, row_version, sync_seq, source_line, updated_at)
             SELECT {picks}, v, $1::bigint, l, now() FROM pick ORDER BY {key_e}{collate}
             {on_conflict}",
            exprs = exprs.join(", "),
            version = version.value_with("$3"),
            wanted = wanted.join(" AND "),
            targets = targets.join(", "),
            picks = picks.join(", "),
        );
        Self {
            lock: format!(
                "SELECT pg_advisory_xact_lock(hashtext({}), -2)",
                crate::pg::quote_literal(&table)
            ),
            table,
            drop_values: d.drop_values.clone(),
            upsert,
            pick,
            picked,
        }
    }
}

/// A derived table's `ON CONFLICT` clause: each written column as its `update` says, the
/// bookkeeping taken, only when the incoming row is newer by the order.
fn conflict_clause(d: &Derived, written: &[(usize, &crate::profile::DerivedColumn)]) -> String {
    let sets: Vec<String> = written
        .iter()
        .filter(|(_, c)| c.target != d.key)
        .filter_map(|(_, c)| {
            let t = quote_ident(&c.target);
            match c.update {
                DerivedUpdate::Coalesce => Some(format!("{t} = COALESCE(EXCLUDED.{t}, t.{t})")),
                DerivedUpdate::Replace => Some(format!("{t} = EXCLUDED.{t}")),
                DerivedUpdate::Never => None,
            }
        })
        .chain(
            ["row_version", "sync_seq", "source_line", "updated_at"]
                .iter()
                .map(|b| format!("{b} = EXCLUDED.{b}")),
        )
        .collect();
    format!(
        "ON CONFLICT ({key}) DO UPDATE SET {sets}
             WHERE (COALESCE(t.row_version, '') COLLATE \"C\", COALESCE(t.sync_seq, -1),
                    COALESCE(t.source_line, -1))
                 < (COALESCE(EXCLUDED.row_version, '') COLLATE \"C\", EXCLUDED.sync_seq,
                    EXCLUDED.source_line)",
        key = quote_ident(&d.key),
        sets = sets.join(", "),
    )
}

/// A row's place in the derived upserts' order: its `row_version` as they compute it (NULL
/// as `''`), the concatenation of `version`'s parts (no string is built per row), compared
/// bytewise as their `COLLATE "C"` does; then its line.
#[derive(Debug, Clone, Copy)]
pub(super) struct PickOrder<'a> {
    pub version: [&'a str; 3],
    pub line: u64,
}

impl PickOrder<'_> {
    fn is_ascii(&self) -> bool {
        self.version.iter().all(|p| p.is_ascii())
    }
}

impl Ord for PickOrder<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let bytes = |o: &Self| o.version.into_iter().flat_map(str::bytes);
        bytes(self)
            .cmp(bytes(other))
            .then(self.line.cmp(&other.line))
    }
}

impl PartialEq for PickOrder<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for PickOrder<'_> {}

impl PartialOrd for PickOrder<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// How the upsert's placeholder test (`btrim`, then `upper` against the placeholders) judges
/// a value, as far as the client can tell without the database's locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judged {
    Value,
    NoValue,
    /// `upper` depends on the database's locale: a value that is not ASCII (`ı` is `I` in
    /// most locales, `ß` is `SS` under ICU), or holds an `i` (`İ` in a Turkish locale).
    Unsure,
}

/// The database's own placeholder test of the values the client cannot decide
/// ([`Judged::Unsure`]): each value asked, and whether it is a placeholder (blank after
/// `btrim`, or `upper(btrim(v))` one of the placeholders), as the upsert would compute it.
pub(super) type Asked = HashMap<String, bool>;

/// Field `row` of `e` as the upsert's `wanted` test reads it: NULL is no value; a text
/// column read through the placeholder test (`text`) has none when it is blank after its
/// spaces are trimmed or is a placeholder in upper case. A value the client cannot decide is
/// decided by `asked` when it holds it.
fn judge(
    e: &ColumnEncoder<'_>,
    text: bool,
    row: usize,
    drop_values: &[String],
    asked: &Asked,
    scratch: &mut BytesMut,
) -> Judged {
    match judge_here(e, text, row, drop_values, scratch) {
        Judged::Unsure => match (e, asked.is_empty()) {
            (ColumnEncoder::Text(a), false) => match asked.get(a.value(row)) {
                Some(true) => Judged::NoValue,
                Some(false) => Judged::Value,
                None => Judged::Unsure,
            },
            _ => Judged::Unsure,
        },
        judged => judged,
    }
}

/// `v` without leading and trailing spaces (`btrim(v)`), byte by byte: `str::trim_matches`
/// with a `char` pattern decodes every character it looks at.
fn trim_spaces(v: &str) -> &str {
    let bytes = v.as_bytes();
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |last| last + 1);
    // Both ends sit next to a space (one byte, a whole character) or at an end of `v`.
    v.get(start..end).unwrap_or_default()
}

/// [`judge`] by the client alone.
fn judge_here(
    e: &ColumnEncoder<'_>,
    text: bool,
    row: usize,
    drop_values: &[String],
    scratch: &mut BytesMut,
) -> Judged {
    if !text {
        scratch.clear();
        e.put(row, scratch);
        return if scratch.starts_with(&(-1i32).to_be_bytes()) {
            Judged::NoValue
        } else {
            Judged::Value
        };
    }
    let ColumnEncoder::Text(a) = e else {
        return Judged::Unsure;
    };
    if a.is_null(row) {
        return Judged::NoValue;
    }
    // `btrim(v)` trims spaces only.
    let v = trim_spaces(a.value(row));
    if v.is_empty() {
        return Judged::NoValue;
    }
    if !v.is_ascii() || v.contains('i') {
        return Judged::Unsure;
    }
    // `upper(v)` is `v` with `a`–`z` made `A`–`Z`: compared without making it.
    let placeholder = drop_values.iter().any(|d| {
        d.len() == v.len()
            && v.bytes()
                .zip(d.bytes())
                .all(|(a, b)| a.to_ascii_uppercase() == b)
    });
    if placeholder {
        Judged::NoValue
    } else {
        Judged::Value
    }
}

/// The distinct values of a chunk's text columns that derived table `d` reads through the
/// placeholder test and the client cannot decide (to be asked of the database, [`Asked`]).
pub(super) fn unsure_values<'e>(
    d: &DerivedSql,
    encoders: &[ColumnEncoder<'e>],
    rows: usize,
) -> Vec<&'e str> {
    let Some(pick) = &d.pick else {
        return Vec::new();
    };
    let mut scratch = BytesMut::new();
    let mut seen: std::collections::HashSet<&'e str> = std::collections::HashSet::new();
    let mut columns: Vec<usize> = pick
        .written
        .iter()
        .chain(&pick.wanted)
        .filter(|(_, text)| *text)
        .map(|(at, _)| *at)
        .collect();
    columns.sort_unstable();
    columns.dedup();
    for at in columns {
        let Some(e @ ColumnEncoder::Text(a)) = encoders.get(at) else {
            continue;
        };
        for row in 0..rows {
            if judge_here(e, true, row, &d.drop_values, &mut scratch) == Judged::Unsure {
                seen.insert(a.value(row));
            }
        }
    }
    seen.into_iter().collect()
}

/// What the client decided of a chunk's rows for one derived table ([`pick`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Picked {
    /// The rows its upsert can pick (`None`: every row; never when `exact`).
    pub rows: Option<Vec<usize>>,
    /// Whether the client decided every key: `rows` are then each key's row, one per key, in
    /// key order (text keys by their bytes, integer keys by value), and every value the table
    /// takes from them is decided ([`is_no_value`]).
    pub exact: bool,
}

/// The rows of a chunk derived table `d`'s upsert can pick, when that is fewer than all: the
/// newest row of each key that surely holds a value in every `wanted` column, by the
/// upsert's order (`order(row)`: the row's `row_version` as the upsert computes it, and its
/// line; `None` when that is not plain ASCII), and every row the client cannot judge (see
/// [`Judged::Unsure`]; `asked` decides those the database was asked about). Rows that surely
/// lack a value are never picked. The upsert still picks from the rows staged, by the same
/// rules: each key's newest row is among them, so it picks the row it would pick from the
/// whole chunk, and the derived tables end exactly as they would
/// (`datsync-cli/tests/pipeline/derived.rs`: the rule as PostgreSQL computes it over every
/// row, in the default and a Turkish database). In a real file a driver drives many trips: a
/// chunk names far fewer drivers than it has rows. When no row is left undecided the pick is
/// [`Picked::exact`], and its rows can be written as they are (`derived_pick.rs`).
pub(super) fn pick<'a>(
    d: &DerivedSql,
    encoders: &[ColumnEncoder<'_>],
    rows: usize,
    asked: &Asked,
    order: impl Fn(usize) -> Option<PickOrder<'a>>,
) -> Picked {
    let all = Picked {
        rows: None,
        exact: false,
    };
    let Some(pick) = &d.pick else {
        return all;
    };
    let Some(key) = encoders.get(pick.key) else {
        return all;
    };
    let Some(wanted) = pick
        .wanted
        .iter()
        .map(|&(at, text)| Some((encoders.get(at)?, text)))
        .collect::<Option<Vec<_>>>()
    else {
        return all;
    };
    let mut scratch = BytesMut::new();
    let mut undecided: Vec<usize> = Vec::new();
    let mut newest: HashMap<Cow<'_, [u8]>, (usize, PickOrder<'a>)> = HashMap::new();
    for row in 0..rows {
        let mut judged = Judged::Value;
        for (e, text) in &wanted {
            match judge(e, *text, row, &d.drop_values, asked, &mut scratch) {
                Judged::NoValue => {
                    judged = Judged::NoValue;
                    break;
                }
                Judged::Unsure => judged = Judged::Unsure,
                Judged::Value => {}
            }
        }
        let by = match judged {
            Judged::NoValue => continue,
            Judged::Unsure => None,
            Judged::Value => order(row).filter(PickOrder::is_ascii),
        };
        let Some(by) = by else {
            undecided.push(row);
            continue;
        };
        // Equal bytes are equal values (the reverse need not hold: `1.0` and `1.00`
        // are kept apart, which keeps a row more, never one fewer).
        let bytes = if let ColumnEncoder::Text(a) = key {
            Cow::Borrowed(a.value(row).as_bytes())
        } else {
            scratch.clear();
            key.put(row, &mut scratch);
            Cow::Owned(scratch.to_vec())
        };
        match newest.entry(bytes) {
            Entry::Vacant(e) => {
                e.insert((row, by));
            }
            Entry::Occupied(mut e) if by > e.get().1 => {
                e.insert((row, by));
            }
            Entry::Occupied(_) => {}
        }
    }
    let mut kept: Vec<usize> = newest.into_values().map(|(row, _)| row).collect();
    let exact = undecided.is_empty()
        && matches!(key, ColumnEncoder::Text(_) | ColumnEncoder::Int(_))
        && kept.iter().all(|&row| {
            pick.written.iter().all(|&(at, text)| {
                encoders.get(at).is_some_and(|e| {
                    judge(e, text, row, &d.drop_values, asked, &mut scratch) != Judged::Unsure
                })
            })
        });
    if exact {
        match key {
            ColumnEncoder::Text(a) => kept.sort_unstable_by_key(|&r| a.value(r).as_bytes()),
            ColumnEncoder::Int(a) => kept.sort_unstable_by_key(|&r| a.value(r)),
            _ => {}
        }
    } else {
        kept.extend(undecided);
        kept.sort_unstable();
    }
    Picked {
        rows: (exact || kept.len() < rows).then_some(kept),
        exact,
    }
}

/// Whether the value derived table `d` takes from field `row` of `e` is NULL: a NULL, or in a
/// text column read through the placeholder test (`text`), a blank or a placeholder. For a
/// row of an exact [`Picked`] (its values decided).
pub(super) fn is_no_value(
    d: &DerivedSql,
    e: &ColumnEncoder<'_>,
    text: bool,
    row: usize,
    asked: &Asked,
    scratch: &mut BytesMut,
) -> bool {
    judge(e, text, row, &d.drop_values, asked, scratch) == Judged::NoValue
}

/// The upsert's placeholder test of the text `v` against the placeholders `param` (a
/// `text[]` parameter): blank once its spaces are trimmed, or a placeholder in upper case, in
/// the database's locale. The one expression both the upsert and the question about the
/// values the client cannot decide (`derived_pick.rs`) use.
pub(super) fn placeholder_test(v: &str, param: &str) -> String {
    format!("(btrim({v}) = '' OR upper(btrim({v})) = ANY({param}::text[]))")
}

/// Each main column a derived table takes, computed once (`e{i}`: NULL for a placeholder in
/// a text column), however many written columns take it (`id_karyawan` and `nik` both take
/// `nik_supir`): the `e{i}` of each written column in order, and the expressions.
fn source_values(
    profile: &Profile,
    written: &[(usize, &crate::profile::DerivedColumn)],
) -> (Vec<String>, Vec<String>) {
    let mut sources: Vec<(usize, bool)> = Vec::new();
    let picks: Vec<String> = written
        .iter()
        .map(|(_, c)| {
            let main_i = profile
                .columns
                .iter()
                .position(|m| Some(&m.target) == c.from.as_ref())
                .unwrap_or(0);
            let source = (main_i, c.kind == ColumnType::Text);
            let at = sources
                .iter()
                .position(|s| *s == source)
                .unwrap_or_else(|| {
                    sources.push(source);
                    sources.len() - 1
                });
            format!("e{at}")
        })
        .collect();
    let exprs: Vec<String> = sources
        .iter()
        .enumerate()
        .map(|(at, &(main_i, text))| {
            let v = format!("s.c{main_i}");
            let e = if text {
                format!(
                    "CASE WHEN {} THEN NULL ELSE {v} END",
                    placeholder_test(&v, "$2")
                )
            } else {
                v
            };
            format!("{e} AS e{at}")
        })
        .collect();
    (picks, exprs)
}

/// Upserts every derived table from the staged chunk, each under a savepoint; returns how
/// many failed and were rolled back (see the module docs). A transient failure is returned.
pub(super) async fn apply(
    tx: &tokio_postgres::Client,
    derived: &[&DerivedSql],
    sync_seq: i64,
    file_version: Option<&Option<String>>,
    at: &str,
) -> Result<u64, PgError> {
    let mut failed = 0;
    for d in derived {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&sync_seq, &d.drop_values];
        if let Some(v) = file_version {
            params.push(v);
        }
        failed += upsert_one(tx, d, &d.upsert, &params, at).await?;
    }
    Ok(failed)
}

/// Runs `sql`, one upsert of derived table `d`, under its writers' lock and a savepoint: 0
/// when it succeeded; 1 when it failed for a reason retrying cannot fix, rolled back to the
/// savepoint and logged (see the module docs). A transient failure is returned.
pub(super) async fn upsert_one(
    tx: &tokio_postgres::Client,
    d: &DerivedSql,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    at: &str,
) -> Result<u64, PgError> {
    lock_writers(tx, d).await?;
    upsert_locked(tx, d, sql, params, at).await
}

/// [`upsert_one`], the writers' lock already taken.
pub(super) async fn upsert_locked(
    tx: &tokio_postgres::Client,
    d: &DerivedSql,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    at: &str,
) -> Result<u64, PgError> {
    savepoint(tx, "SAVEPOINT").await?;
    match tx.execute(sql, params).await {
        Ok(_) => {
            savepoint(tx, "RELEASE SAVEPOINT").await?;
            Ok(0)
        }
        Err(e) => {
            let failed = settle(
                tx,
                e,
                format!("cannot upsert the derived table {}", d.table),
            )
            .await?;
            counted(d, at, &failed.error);
            Ok(1)
        }
    }
}

/// Takes the lock of derived table `d`'s writers for the rest of the transaction: every
/// derived write takes it first, so that no datsync writer inserts a key between another's
/// look-up and its insert (`derived_pick.rs`, "Inserted as they are"). Keyed by
/// `hashtext('"schema"."table"')` (the name quoted and qualified) and -2 (a sync's upsert lock
/// is its id and -1; its chunks' locks, their numbers).
pub(super) async fn lock_writers(
    tx: &tokio_postgres::Client,
    d: &DerivedSql,
) -> Result<(), PgError> {
    tx.batch_execute(&d.lock)
        .await
        .map_err(|e| PgError::query(format!("cannot lock the writers of {}", d.table), e))
}

/// What [`insert_new`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inserted {
    /// Inserted (0), or the insert failed for a reason retrying cannot fix, rolled back and
    /// counted as the upsert's failure would be (1).
    Done(u64),
    /// A key is stored, or the insert met a unique key taken since the look-up (rolled
    /// back): the caller upserts.
    Upsert,
    /// The look-up failed for a reason retrying cannot fix (rolled back): the caller upserts,
    /// and the upsert decides (and counts what it meets).
    LookupFailed,
}

/// Under derived table `d`'s writers' lock (the caller's) and a savepoint: `lookup`, whether
/// the table holds one of the rows' keys (or cannot be looked up as it should), then, when it
/// holds none, `insert`. A transient failure is returned.
pub(super) async fn insert_new(
    tx: &tokio_postgres::Client,
    d: &DerivedSql,
    (lookup, insert): (&str, &str),
    params: &[&(dyn ToSql + Sync)],
    at: &str,
) -> Result<Inserted, PgError> {
    savepoint(tx, "SAVEPOINT").await?;
    let stored = match tx.query_one(lookup, &[]).await {
        Ok(row) => row.try_get::<_, bool>(0).unwrap_or(true),
        Err(e) => {
            let failed = settle(tx, e, format!("cannot look up the keys of {}", d.table)).await?;
            tracing::debug!(table = %d.table, %at, error = %failed.said,
                "the derived rows' keys could not be looked up; upserting them (and the rows \
                 of the run's later chunks)");
            return Ok(Inserted::LookupFailed);
        }
    };
    if stored {
        savepoint(tx, "RELEASE SAVEPOINT").await?;
        return Ok(Inserted::Upsert);
    }
    match tx.execute(insert, params).await {
        Ok(_) => {
            savepoint(tx, "RELEASE SAVEPOINT").await?;
            Ok(Inserted::Done(0))
        }
        Err(e) => {
            let failed = settle(
                tx,
                e,
                format!("cannot insert into the derived table {}", d.table),
            )
            .await?;
            if failed.unique {
                tracing::debug!(table = %d.table, %at, error = %failed.said,
                    "a unique key of the derived rows was taken since the look-up; upserting them");
                return Ok(Inserted::Upsert);
            }
            counted(d, at, &failed.error);
            Ok(Inserted::Done(1))
        }
    }
}

/// `SAVEPOINT` or `RELEASE SAVEPOINT` (`what`) of the derived writes.
async fn savepoint(tx: &tokio_postgres::Client, what: &str) -> Result<(), PgError> {
    tx.batch_execute(&format!("{what} {SAVEPOINT}"))
        .await
        .map_err(|e| {
            PgError::query(
                format!("cannot {} (derived tables)", what.to_lowercase()),
                e,
            )
        })
}

/// A derived write's failure that retrying cannot fix, rolled back to its savepoint.
struct Failed {
    error: PgError,
    /// What the server said, without the DETAIL that names a key's value.
    said: String,
    /// A unique violation (23505).
    unique: bool,
}

/// Takes a derived write's error `e`: returned when it is transient or an outage (the
/// chunk's attempt fails, the transaction with it); else rolled back to the savepoint.
async fn settle(
    tx: &tokio_postgres::Client,
    e: tokio_postgres::Error,
    what: String,
) -> Result<Failed, PgError> {
    let unique = e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION);
    let said = crate::pg::server_message(&e);
    let error = PgError::query(what, e);
    if error.class() == ErrorClass::Transient || error.is_outage() {
        return Err(error);
    }
    tx.batch_execute(&format!(
        "ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"
    ))
    .await
    .map_err(|e| PgError::query("cannot roll back to the derived tables' savepoint", e))?;
    Ok(Failed {
        error,
        said,
        unique,
    })
}

/// Logs a derived write's failure that is counted, not fatal.
fn counted(d: &DerivedSql, at: &str, error: &PgError) {
    tracing::warn!(table = %d.table, %at, %error,
        "derived table not updated from this chunk; the chunk goes on (a failure \
         of a derived table is counted, not fatal)");
}

#[cfg(test)]
mod tests {
    use arrow_array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn spaces_are_trimmed_as_trim_matches_trims_them() {
        for v in [
            "", " ", "   ", "a", " a", "a ", "  a b  ", "\ta ", " \t", " é ", "é", " \u{a0} ", "€ ",
        ] {
            assert_eq!(trim_spaces(v), v.trim_matches(' '), "{v:?}");
        }
    }

    /// The client decides a value only where every database's `btrim` and `upper` agree
    /// with it; the rest is left to the database.
    #[test]
    fn the_placeholder_test_is_decided_only_where_every_locale_agrees() {
        let drop: Vec<String> = ["-", "N/A", "NONE", "NIL"].map(str::to_owned).to_vec();
        let forms: [(Option<&str>, Judged); 18] = [
            (None, Judged::NoValue),
            (Some(""), Judged::NoValue),
            (Some("   "), Judged::NoValue),
            (Some("-"), Judged::NoValue),
            (Some("  -  "), Judged::NoValue),
            (Some("n/a"), Judged::NoValue),
            (Some("None"), Judged::NoValue),
            (Some("BUDI"), Judged::Value),
            (Some(" BUDI "), Judged::Value),
            // `btrim` trims spaces only: a tab is a character like any other.
            (Some("\t-"), Judged::Value),
            (Some("--"), Judged::Value),
            (Some("NIL"), Judged::NoValue),
            // `upper('nil')` is `NİL` in a Turkish locale.
            (Some("nil"), Judged::Unsure),
            (Some("siti"), Judged::Unsure),
            (Some("SITI"), Judged::Value),
            // `ı` is `I` in most locales, `ß` is `SS` under ICU.
            (Some("ıSIK"), Judged::Unsure),
            (Some("straße"), Judged::Unsure),
            (Some("Ánh"), Judged::Unsure),
        ];
        let values = StringArray::from(forms.iter().map(|f| f.0).collect::<Vec<_>>());
        let e = ColumnEncoder::Text(&values);
        let mut scratch = BytesMut::new();
        for (row, (value, judged)) in forms.iter().enumerate() {
            assert_eq!(
                judge(&e, true, row, &drop, &Asked::new(), &mut scratch),
                *judged,
                "{value:?}"
            );
        }
        // A column not read through the placeholder test: NULL or not.
        let ints = Int64Array::from(vec![Some(0), None]);
        let e = ColumnEncoder::Int(&ints);
        assert_eq!(
            judge(&e, false, 0, &drop, &Asked::new(), &mut scratch),
            Judged::Value
        );
        assert_eq!(
            judge(&e, false, 1, &drop, &Asked::new(), &mut scratch),
            Judged::NoValue
        );
        // A text value read without the test (a column of another kind) is a value.
        let e = ColumnEncoder::Text(&values);
        assert_eq!(
            judge(&e, false, 3, &drop, &Asked::new(), &mut scratch),
            Judged::Value
        );
    }

    /// A profile with a derived table keyed by `id`, taking a required `who`.
    fn people() -> (Profile, DerivedSql) {
        let toml = r#"
name = "t"
table = "docs"
key = "doc"
[[columns]]
source = "doc"
type = "text"
required = true
not_empty = true
[[columns]]
source = "id"
type = "text"
[[columns]]
source = "who"
type = "text"
[[derived]]
table = "people"
key = "id"
drop_values = ["-", "NIL"]
columns = [{ target = "id", from = "id", required = true }, { target = "who", from = "who", required = true }]
"#;
        let profile = Profile::from_toml_str(toml, std::path::Path::new("t.toml")).unwrap();
        let version = super::super::sql::Version {
            row: false,
            file: false,
        };
        let d = DerivedSql::new(&profile, &profile.derived[0], version, 0);
        (profile, d)
    }

    /// The client's pick: each key's newest row with a value, in key order, when every row
    /// is decided (the database's answers deciding what the client cannot); else every row
    /// it cannot judge kept beside each key's newest, for the upsert to pick from.
    #[test]
    fn the_pick_is_exact_only_when_every_row_is_decided() {
        let (_, d) = people();
        let docs = StringArray::from(vec!["a", "b", "c", "d", "e", "f"]);
        let ids = StringArray::from(vec![
            Some("k2"),
            Some("k1"),
            Some("k2"),
            None,
            Some("k1"),
            Some("k3"),
        ]);
        let whos = StringArray::from(vec!["ANN", "BOB", "nil", "ANN", " - ", "CY"]);
        let encoders = [
            ColumnEncoder::Text(&docs),
            ColumnEncoder::Text(&ids),
            ColumnEncoder::Text(&whos),
        ];
        let order = |row: usize| {
            Some(PickOrder {
                version: ["", "", ""],
                line: row as u64 + 2,
            })
        };
        // `nil` (row 2) only the database can judge.
        let unsure = unsure_values(&d, &encoders, 6);
        assert_eq!(unsure, vec!["nil"]);
        let picked = pick(&d, &encoders, 6, &Asked::new(), order);
        assert!(!picked.exact);
        assert_eq!(picked.rows, Some(vec![0, 1, 2, 5]));
        // Asked: `nil` is a placeholder here; k2's newest with a value is row 0.
        let asked: Asked = [("nil".to_owned(), true)].into();
        let picked = pick(&d, &encoders, 6, &asked, order);
        assert!(picked.exact);
        assert_eq!(picked.rows, Some(vec![1, 0, 5]), "k1, k2, k3");
        // Not a placeholder: row 2, later, wins k2.
        let asked: Asked = [("nil".to_owned(), false)].into();
        let picked = pick(&d, &encoders, 6, &asked, order);
        assert_eq!(picked.rows, Some(vec![1, 2, 5]));
        // A version the client does not compare leaves the chunk to the upsert.
        let odd = |row: usize| {
            Some(PickOrder {
                version: ["é", "", ""],
                line: row as u64,
            })
        };
        assert!(!pick(&d, &encoders, 6, &asked, odd).exact);
    }

    /// Parts compared as the string they make: a part that is a prefix of another (`a`
    /// against `a\t` before ` | `) orders as the whole strings do, not as the parts.
    #[test]
    fn a_pick_order_compares_as_its_concatenated_version() {
        let owns = ["", "a", "ab", "a\t", "a ", "-", "2025-01-28 08:00:00"];
        let files = ["", "2025-01-15 00:00:00", "-"];
        let mut orders = Vec::new();
        for own in owns {
            for file in files {
                for version in [[own, "", ""], [own, " | ", file]] {
                    for line in [2, 3] {
                        orders.push(PickOrder { version, line });
                    }
                }
            }
        }
        for a in &orders {
            for b in &orders {
                let whole = |o: &PickOrder<'_>| (o.version.concat(), o.line);
                assert_eq!(a.cmp(b), whole(a).cmp(&whole(b)), "{a:?} {b:?}");
            }
        }
    }
}
