//! A chunk's derived rows picked on the client and upserted as they are.
//!
//! The upsert of `derived.rs` reads a chunk's staged rows, runs the placeholder test on each
//! value (`upper(btrim(v))` against the placeholders), keeps each key's newest row with a
//! value (`DISTINCT ON` over a sort) and inserts it with `ON CONFLICT`. On the 100 MB sample
//! (every driver new) that was ~85 ms a chunk of 9,354 rows, plus ~22 ms for the narrow COPY
//! that staged them. When the client has decided every key of a chunk
//! ([`derived::Picked::exact`]: the row each key's upsert would pick, and every value it would
//! write, NULL for a placeholder), it sends just those rows, one per key, with their
//! `row_version` and line, into a temporary table of the values as they are written, and one
//! `INSERT … SELECT … ON CONFLICT` — the same conflict clause, so newest wins and the same
//! columns are updated — takes them in key order: no test per value, no `DISTINCT ON` sort
//! of the chunk, no rows but the picked ones (which the server sorts by key again).
//!
//! The statement keeps the upsert's guarantees: no error on a stored key or on a key another
//! transaction inserts at the same time (it waits for it, then updates by the order), keys
//! locked in the same order as the other upsert (bytewise for a text key), no look-up of
//! keys sent as parameters, the table's columns cast as they are on any insert (an adopted
//! legacy `drivers` with `varchar` columns takes them as it did), a failure of the upsert
//! that retrying cannot fix rolled back to its savepoint and counted (the temporary tables
//! and their COPYs, like the narrow stage before them, are outside it: a failure there fails
//! the chunk's attempt). Used where the derived tables are written from the chunk's batch
//! (beside the chunk's transaction, or after a chunk COPYed straight into the target);
//! a chunk upserted in its own transaction feeds them from its full stage, as before.
//!
//! # Straight into the table
//!
//! When the derived table holds none of the picked keys (a first load, new drivers), the
//! picked rows go into it by one binary `COPY`, with the bookkeeping the upsert writes on an
//! insert (`row_version`, `sync_seq`, `source_line`, `updated_at` the transaction's `now()`):
//! no temporary table, no conflict handling (on the 100 MB sample, ~30 ms a chunk of server
//! time instead of ~12 ms for the temporary table's COPY and ~70 ms for the upsert). The
//! look-up is the target's (`direct.rs`): one statement reads `now()`, checks that the table
//! takes the rows as they are (each column of exactly the type sent: an adopted `varchar`
//! column is cast by the upsert, not here; no rules, no row-level security, a unique index on
//! the key alone) and probes the key's index for each key. The COPY runs under a savepoint
//! of its own: a key another transaction inserted since the look-up makes it wait for that
//! transaction and fail on the unique index (rows go in key order, as the upsert takes them,
//! so two writers lock keys in the same order); it is rolled back and the rows upserted,
//! newest wins. A COPY that fails for another reason retrying cannot fix is rolled back too,
//! and the upsert decides and counts the failure as before; a transient one fails the
//! chunk's attempt.
//!
//! # What the client decides
//!
//! `btrim` and the comparison with the placeholders are the same everywhere; `upper` follows
//! the database's locale (`derived.rs`, `Judged::Unsure`). The values the client cannot
//! decide (not ASCII, or holding an `i`) are asked of the database itself, once per chunk and
//! table, by the upsert's own expression over their distinct values, sent by COPY into a
//! temporary table (never as a statement's parameters, which a server's statement log would
//! show) and answered as rows. A row whose version is not plain ASCII, or a key column that is
//! neither `text` nor `integer`, leaves its chunk to the upsert of `derived.rs`, its rows
//! staged as before.

use bytes::{BufMut, BytesMut};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::copy::ColumnEncoder;
use super::derived::{self, Asked, DerivedSql, PickColumns, Picked};
use super::direct::{self, Direct, DirectSql, KeyKind, PgMicros};
use crate::pg::{ErrorClass, PgError, quote_ident, sql_type};
use crate::profile::Profile;

/// The statements that write one derived table from the rows the client picked.
#[derive(Debug, Clone)]
pub(crate) struct PickSql {
    /// The temporary table of the picked rows (dropped at commit).
    create: String,
    /// The temporary table of the values asked about (dropped at commit).
    ask_create: String,
    /// The COPY of the picked rows.
    copy: String,
    /// `$1` the sync's `sync_seq`.
    upsert: String,
    /// The COPY of the values asked about, and the statement answering which are
    /// placeholders (`$1` the placeholders).
    ask_copy: String,
    ask: String,
    /// The COPY straight into the table, for a chunk whose picked keys it holds none of;
    /// `None` for a key the look-up cannot send.
    straight: Option<Straight>,
}

/// A derived table's picked rows COPYed straight into it (see the module docs).
#[derive(Debug, Clone)]
struct Straight {
    /// `now()`, whether the table takes the rows as they are, and whether it holds one of
    /// `$1`'s keys ([`direct::probe_sql`]).
    probe: String,
    /// The COPY: the columns taken from rows, then [`STRAIGHT_BOOKKEEPING`].
    copy: String,
    kind: KeyKind,
}

/// The bookkeeping columns a straight COPY writes after the columns taken from rows, with
/// the types it sends them as: what the upsert writes on an insert.
const STRAIGHT_BOOKKEEPING: [(&str, &str); 4] = [
    ("row_version", "text"),
    ("sync_seq", "bigint"),
    ("source_line", "bigint"),
    ("updated_at", "timestamptz"),
];

/// The savepoint a straight COPY runs under.
const STRAIGHT_SAVEPOINT: &str = "datsync_derived_straight";

impl PickSql {
    /// The statements of derived table `table` (quoted and qualified), the `index`-th of the
    /// profile, keyed by its column `key`, whose columns taken from rows are `names`, from the
    /// main columns `pick.written`; `on_conflict` is its upsert's conflict clause and the
    /// key's order (` COLLATE "C"` for a text key), both as the other upsert has them.
    pub(super) fn new(
        profile: &Profile,
        table: &str,
        names: &[&str],
        key: &str,
        pick: &PickColumns,
        (on_conflict, collate): (&str, &str),
        index: usize,
    ) -> Self {
        let name = format!("pg_temp.datsync_pick_{index}");
        let asked = format!("pg_temp.datsync_ask_{index}");
        let kind = |at: usize| profile.columns.get(at).map(|c| c.kind);
        let types: Vec<&str> = pick
            .written
            .iter()
            .map(|(at, _)| kind(*at).map_or("text", sql_type))
            .collect();
        let columns: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(i, ty)| format!("w{i} {ty}"))
            .collect();
        let key_at = pick
            .written
            .iter()
            .position(|(at, _)| *at == pick.key)
            .unwrap_or(0);
        let values: Vec<String> = (0..pick.written.len()).map(|i| format!("w{i}")).collect();
        let targets: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
        let straight = kind(pick.key).and_then(KeyKind::of).map(|key_kind| {
            let written: Vec<(&str, &str)> = names
                .iter()
                .copied()
                .zip(types.iter().copied())
                .chain(STRAIGHT_BOOKKEEPING)
                .collect();
            let columns: Vec<String> = written.iter().map(|(n, _)| quote_ident(n)).collect();
            Straight {
                probe: direct::probe_sql(table, &written, key, key_kind),
                copy: format!(
                    "COPY {table} ({}) FROM STDIN (FORMAT binary)",
                    columns.join(", ")
                ),
                kind: key_kind,
            }
        });
        Self {
            create: format!(
                "CREATE TEMP TABLE {name} ({}, v text COLLATE \"C\", l bigint) ON COMMIT DROP",
                columns.join(", ")
            ),
            ask_create: format!("CREATE TEMP TABLE {asked} (n integer, v text) ON COMMIT DROP"),
            copy: format!("COPY {name} FROM STDIN (FORMAT binary)"),
            upsert: format!(
                "INSERT INTO {table} AS t ({}, row_version, sync_seq, source_line, updated_at)
                 SELECT {}, v, $1::bigint, l, now() FROM {name} ORDER BY w{key_at}{collate}
                 {on_conflict}",
                targets.join(", "),
                values.join(", "),
            ),
            ask_copy: format!("COPY {asked} (n, v) FROM STDIN (FORMAT binary)"),
            ask: format!(
                "SELECT n FROM {asked} WHERE {}",
                derived::placeholder_test("v", "$1")
            ),
            straight,
        }
    }
}

/// The chunk's derived tables written on `c`, in the transaction the caller opened (beside
/// the chunk's, or the chunk's own), no stage holding the chunk's rows: in the profile's
/// order, each table whose rows the client decided by the upsert of the picked rows, the
/// others by the upsert of `derived.rs` from a narrow stage of the rows they can pick (made
/// once, for all of them). Returns how many upserts failed and were rolled back; a transient
/// failure is returned.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write(
    c: &Client,
    direct: &DirectSql,
    d: &Direct<'_, '_>,
    derived: &[DerivedSql],
    create_stage: &str,
    sync_seq: i64,
    file_version: Option<&Option<String>>,
    at: &str,
) -> Result<u64, PgError> {
    let q = |what: &'static str| move |e| PgError::query(what, e);
    let mut picks: Vec<(Picked, Asked)> = Vec::with_capacity(derived.len());
    for t in derived {
        let asked = ask(c, t, d).await?;
        let picked = derived::pick(t, d.encoders, d.rows, &asked, |row| {
            direct.pick_order(d, row)
        });
        picks.push((picked, asked));
    }
    // The rows the tables left to the staged upsert can pick, staged once.
    let staged = picks.iter().any(|(p, _)| !p.exact);
    if staged {
        let mut keep = vec![false; d.rows];
        let mut every = false;
        for (p, _) in picks.iter().filter(|(p, _)| !p.exact) {
            match &p.rows {
                None => every = true,
                Some(rows) => {
                    for &r in rows {
                        if let Some(k) = keep.get_mut(r) {
                            *k = true;
                        }
                    }
                }
            }
        }
        let kept: Option<Vec<usize>> = (!every).then(|| (0..d.rows).filter(|&r| keep[r]).collect());
        c.batch_execute(create_stage)
            .await
            .map_err(q("cannot create the staging table"))?;
        direct.stage_derived(c, d, kept.as_deref()).await?;
    }
    let mut failed = 0;
    for (t, (picked, asked)) in derived.iter().zip(&picks) {
        match (&t.picked, &picked.rows) {
            (Some(sql), Some(rows)) if picked.exact => {
                let written = Written {
                    t,
                    direct,
                    d,
                    rows,
                    asked,
                };
                failed += sql.upsert_picked(c, &written, sync_seq, at).await?;
            }
            _ => failed += derived::apply(c, &[t], sync_seq, file_version, at).await?,
        }
    }
    Ok(failed)
}

/// The values of the chunk derived table `t` reads through the placeholder test that the
/// client cannot decide, decided by the database (none asked when there are none).
async fn ask(c: &Client, t: &DerivedSql, d: &Direct<'_, '_>) -> Result<Asked, PgError> {
    let q = |what: &'static str| move |e| PgError::query(what, e);
    let values = derived::unsure_values(t, d.encoders, d.rows);
    let Some(sql) = t.picked.as_ref().filter(|_| !values.is_empty()) else {
        return Ok(Asked::new());
    };
    c.batch_execute(&sql.ask_create)
        .await
        .map_err(q("cannot create the table of the values to ask about"))?;
    // A chunk's values are far fewer than `i32::MAX`; more would be left to the upsert.
    if i32::try_from(values.len()).is_err() {
        return Ok(Asked::new());
    }
    super::copy_stream(c, &sql.ask_copy, values.len(), |i, out| {
        out.put_i16(2);
        out.put_i32(4);
        out.put_i32(i32::try_from(i).unwrap_or(-1));
        super::direct::put_text(out, values.get(i).copied());
    })
    .await
    .map_err(q(
        "cannot send the values to ask the database's placeholder test",
    ))?;
    let placeholders = c
        .query(&sql.ask, &[&t.drop_values])
        .await
        .map_err(q("cannot ask the database's placeholder test"))?;
    let mut asked: Asked = values.iter().map(|v| ((*v).to_owned(), false)).collect();
    for row in placeholders {
        let at: i32 = row
            .try_get(0)
            .map_err(q("cannot read the database's placeholder test"))?;
        if let Some(v) = usize::try_from(at).ok().and_then(|at| values.get(at)) {
            asked.insert((*v).to_owned(), true);
        }
    }
    Ok(asked)
}

/// What the upsert of one derived table's picked rows writes.
struct Written<'w, 'a, 'b> {
    t: &'w DerivedSql,
    direct: &'w DirectSql,
    d: &'w Direct<'a, 'b>,
    /// Each key's row, in key order.
    rows: &'w [usize],
    asked: &'w Asked,
}

impl PickSql {
    /// COPYs `w`'s rows into the temporary table and upserts them (see the module docs): 0,
    /// or 1 when the upsert failed for a reason retrying cannot fix and was rolled back.
    async fn upsert_picked(
        &self,
        c: &Client,
        w: &Written<'_, '_, '_>,
        sync_seq: i64,
        at: &str,
    ) -> Result<u64, PgError> {
        if w.rows.is_empty() {
            return Ok(0);
        }
        let Some(pick) = &w.t.pick else {
            return Ok(0);
        };
        tracing::debug!(table = %w.t.table, rows = w.rows.len(),
            "derived rows picked on the client, one per key");
        if self.copy_straight(c, w, pick, sync_seq).await? {
            tracing::debug!(table = %w.t.table, rows = w.rows.len(),
                "derived rows copied straight into the table");
            return Ok(0);
        }
        c.batch_execute(&self.create)
            .await
            .map_err(|e| PgError::query("cannot create the table of the picked derived rows", e))?;
        let mut scratch = BytesMut::new();
        super::copy_stream(c, &self.copy, w.rows.len(), |i, out| {
            if let Some(&row) = w.rows.get(i) {
                put_row(w, pick, row, out, &mut scratch, None);
            }
        })
        .await
        .map_err(|e| PgError::query("cannot stage the picked derived rows", e))?;
        let params: [&(dyn ToSql + Sync); 1] = [&sync_seq];
        derived::upsert_one(c, w.t, &self.upsert, &params, at).await
    }
}

impl PickSql {
    /// COPYs `w`'s rows straight into the table when it holds none of their keys and takes
    /// them as they are (the look-up of [`Straight::probe`]), under a savepoint of their own:
    /// whether it did. Not when the table holds a key or cannot take the COPY; nor when the
    /// COPY failed on a key another transaction inserted since the look-up (it waited for
    /// that one's commit), or for another reason retrying cannot fix (a constraint, a
    /// trigger): rolled back to the savepoint, the upsert then decides (and counts a failure
    /// it meets again). A transient failure or a lost connection is returned.
    async fn copy_straight(
        &self,
        c: &Client,
        w: &Written<'_, '_, '_>,
        pick: &PickColumns,
        sync_seq: i64,
    ) -> Result<bool, PgError> {
        let q = |what: &'static str| move |e| PgError::query(what, e);
        let Some(straight) = &self.straight else {
            return Ok(false);
        };
        let (texts, numbers);
        let keys: &(dyn ToSql + Sync) = match (straight.kind, w.d.encoders.get(pick.key)) {
            (KeyKind::Text, Some(ColumnEncoder::Text(a))) => {
                texts = w.rows.iter().map(|&r| a.value(r)).collect::<Vec<&str>>();
                &texts
            }
            (KeyKind::Integer, Some(ColumnEncoder::Int(a))) => {
                numbers = w.rows.iter().map(|&r| a.value(r)).collect::<Vec<i64>>();
                &numbers
            }
            _ => return Ok(false),
        };
        let probe = c
            .query_one(&straight.probe, &[keys])
            .await
            .map_err(q("cannot look up the picked derived rows' keys"))?;
        let now: PgMicros = probe.get(0);
        let (fits, stored): (Option<bool>, bool) = (probe.get(1), probe.get(2));
        if stored || fits != Some(true) {
            return Ok(false);
        }
        c.batch_execute(&format!("SAVEPOINT {STRAIGHT_SAVEPOINT}"))
            .await
            .map_err(q("cannot set the derived tables' savepoint"))?;
        let mut scratch = BytesMut::new();
        let copied = super::copy_stream(c, &straight.copy, w.rows.len(), |i, out| {
            if let Some(&row) = w.rows.get(i) {
                put_row(w, pick, row, out, &mut scratch, Some((sync_seq, now.0)));
            }
        })
        .await;
        if let Err(e) = copied {
            // What the server said, without the DETAIL that names the key's value.
            let said = crate::pg::server_message(&e);
            let e = PgError::query(
                format!(
                    "cannot copy the picked rows into the derived table {}",
                    w.t.table
                ),
                e,
            );
            if e.class() == ErrorClass::Transient || e.is_outage() {
                return Err(e);
            }
            tracing::debug!(table = %w.t.table, error = %said,
                "the straight COPY of the derived rows was rolled back; upserting them");
            c.batch_execute(&format!(
                "ROLLBACK TO SAVEPOINT {STRAIGHT_SAVEPOINT}; RELEASE SAVEPOINT {STRAIGHT_SAVEPOINT}"
            ))
            .await
            .map_err(q("cannot roll back to the derived tables' savepoint"))?;
            return Ok(false);
        }
        c.batch_execute(&format!("RELEASE SAVEPOINT {STRAIGHT_SAVEPOINT}"))
            .await
            .map_err(q("cannot release the derived tables' savepoint"))?;
        Ok(true)
    }
}

/// One picked row: the table's columns taken from rows (NULL for no value, as the upsert
/// writes it), then `row_version` as the upsert computes it, then — for the straight COPY,
/// `straight` the sync's `sync_seq` and the transaction's `now()` — `sync_seq`, then the line,
/// then `updated_at`.
// A table has at most 1600 columns.
#[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
fn put_row(
    w: &Written<'_, '_, '_>,
    pick: &PickColumns,
    row: usize,
    out: &mut BytesMut,
    scratch: &mut BytesMut,
    straight: Option<(i64, i64)>,
) {
    let encoders = w.d.encoders;
    let bookkeeping = if straight.is_some() { 4 } else { 2 };
    out.put_i16((pick.written.len() + bookkeeping) as i16);
    for &(at, text) in &pick.written {
        match encoders.get(at) {
            Some(e) if !(text && derived::is_no_value(w.t, e, text, row, w.asked, scratch)) => {
                e.put(row, out);
            }
            _ => out.put_i32(-1),
        }
    }
    super::direct::put_version(out, w.direct.row_version(w.d, row));
    if let Some((sync_seq, _)) = straight {
        out.put_i32(8);
        out.put_i64(sync_seq);
    }
    match encoders.get(w.direct.profile_columns(encoders)) {
        Some(line) => line.put(row, out),
        None => out.put_i32(-1),
    }
    if let Some((_, now)) = straight {
        out.put_i32(8);
        out.put_i64(now);
    }
}
