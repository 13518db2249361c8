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
//! # Inserted as they are
//!
//! When the derived table holds none of the picked keys (a first load, new drivers), the
//! rows in the temporary table are inserted by a plain `INSERT … SELECT` in key order instead
//! — what the upsert would insert, without its conflict handling (10,000 new drivers in
//! `psql`: 21–23 ms, against 35–60 ms with `ON CONFLICT`). The look-up ([`lookup`]) reads the
//! keys from the temporary table, one probe of the key's index per key stopping at the first
//! stored one: no key is sent as a statement's parameter. It answers "stored" without a probe
//! (the upsert decides) unless the key has a valid, immediate unique index of its own that
//! the probe can use and that compares as the probe does (not `char(n)`, not another
//! collation), the table has no row-level security, and the transaction reads at `READ
//! COMMITTED`. So that no datsync writer inserts one of the keys between the look-up
//! and the insert, every derived write takes the table's writers' lock first
//! (`derived::lock_writers`, held to its transaction's end): the derived writes of chunks
//! loaded side by side (`--jobs`, workers, two syncs) take turns, and a new driver named by
//! two chunks in flight is inserted by one and upserted by the other, never failing an
//! insert (whose error's DETAIL, naming the key, PostgreSQL would write to its log). The
//! look-up and the insert run under the derived savepoint (`derived::insert_new`): a look-up
//! that fails is rolled back and the rows upserted (the upsert then counts what it meets, as
//! before); an insert that fails for a reason retrying cannot fix is counted as the upsert's
//! failure is; an insert that fails on a unique key — a writer outside datsync, or a datsync
//! from before this lock, inserted one of the keys in between (its DETAIL then in the server's
//! log) — is rolled back and the rows upserted, newest wins. A look-up that fails is not
//! tried again in the run. The insert differs from the upsert where `ON CONFLICT` is refused:
//! a table with rules takes new rows by the insert instead of failing; and it fires `INSERT`
//! statement triggers only.
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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{BufMut, BytesMut};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::derived::{self, Asked, DerivedSql, Inserted, PickColumns, Picked};
use super::direct::{Direct, DirectSql};
use crate::pg::{PgError, quote_ident, quote_literal, sql_type};
use crate::profile::{ColumnType, Profile};

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
    /// Whether the table holds one of the picked keys, or cannot be looked up by its key's
    /// index (see [`lookup`]); `None` for a key column that is neither `text` nor `integer`.
    lookup: Option<String>,
    /// The picked rows inserted as they are, `$1` the sync's `sync_seq`.
    insert: String,
    /// Set once the look-up failed for a reason retrying cannot fix (a table that changed
    /// under the run, a key column of another type): not tried again, the upsert decides.
    lookup_failed: Arc<AtomicBool>,
}

impl PickSql {
    /// The statements of derived table `table` (quoted and qualified), the `index`-th of the
    /// profile, keyed by its column `key_target`, whose columns taken from rows are `targets`
    /// (quoted), from the main columns `pick.written`; `on_conflict` is its upsert's conflict
    /// clause and the key's order (` COLLATE "C"` for a text key), both as the other upsert
    /// has them.
    pub(super) fn new(
        profile: &Profile,
        table: &str,
        targets: &[String],
        key_target: &str,
        pick: &PickColumns,
        (on_conflict, collate): (&str, &str),
        index: usize,
    ) -> Self {
        let name = format!("pg_temp.datsync_pick_{index}");
        let asked = format!("pg_temp.datsync_ask_{index}");
        let columns: Vec<String> = pick
            .written
            .iter()
            .enumerate()
            .map(|(i, (at, _))| {
                let kind = profile
                    .columns
                    .get(*at)
                    .map_or("text", |c| sql_type(c.kind));
                format!("w{i} {kind}")
            })
            .collect();
        let key = pick
            .written
            .iter()
            .position(|(at, _)| *at == pick.key)
            .unwrap_or(0);
        let values: Vec<String> = (0..pick.written.len()).map(|i| format!("w{i}")).collect();
        let insert = format!(
            "INSERT INTO {table} AS t ({}, row_version, sync_seq, source_line, updated_at)
             SELECT {}, v, $1::bigint, l, now() FROM {name} ORDER BY w{key}{collate}",
            targets.join(", "),
            values.join(", "),
        );
        Self {
            create: format!(
                "CREATE TEMP TABLE {name} ({}, v text COLLATE \"C\", l bigint) ON COMMIT DROP",
                columns.join(", ")
            ),
            ask_create: format!("CREATE TEMP TABLE {asked} (n integer, v text) ON COMMIT DROP"),
            copy: format!("COPY {name} FROM STDIN (FORMAT binary)"),
            upsert: format!("{insert}\n             {on_conflict}"),
            lookup: profile
                .columns
                .get(pick.key)
                .and_then(|c| lookup(table, key_target, c.kind, &name, key)),
            insert,
            lookup_failed: Arc::default(),
            ask_copy: format!("COPY {asked} (n, v) FROM STDIN (FORMAT binary)"),
            ask: format!(
                "SELECT n FROM {asked} WHERE {}",
                derived::placeholder_test("v", "$1")
            ),
        }
    }
}

/// The look-up before the picked rows of `temp` (their key in column `w{key}`, of type
/// `kind`) are inserted as they are into `table`, keyed by `key_target`: one row, whether
/// the table holds one of the keys — one `LIMIT 1` probe of the key's index per key,
/// stopping at the first stored one. True (the upsert decides) without a probe unless the
/// key has the index the probe and the insert count on — a valid, immediate unique index on
/// the key column alone, of a type that compares with the picked keys as that index does
/// (`text` or `varchar`, column and index in the database's default collation, for a text
/// key: not `char(n)`, whose trailing blanks compare otherwise; an integer type for an
/// integer key) — on a table without row-level security (rows it hides would be missed), and
/// unless the transaction reads at `READ COMMITTED`, where the look-up sees what the writer
/// before it committed. `None` for a key neither `text` nor `integer`.
fn lookup(
    table: &str,
    key_target: &str,
    kind: ColumnType,
    temp: &str,
    key: usize,
) -> Option<String> {
    // 100: the default collation's fixed oid; 0: none (an integer).
    let (types, collation, collate) = match kind {
        ColumnType::Text => (
            "'text'::regtype, 'varchar'::regtype",
            100,
            " COLLATE \"default\"",
        ),
        ColumnType::Integer => ("'int8'::regtype, 'int4'::regtype, 'int2'::regtype", 0, ""),
        _ => return None,
    };
    Some(format!(
        "SELECT CASE WHEN current_setting('transaction_isolation') = 'read committed'
                      AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_index i
                          JOIN pg_catalog.pg_attribute a
                            ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                          JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
                         WHERE i.indrelid = {relation}::regclass AND a.attname = {key_literal}
                           AND i.indisunique AND i.indimmediate AND i.indisvalid
                           AND i.indisready AND i.indnkeyatts = 1 AND i.indpred IS NULL
                           AND i.indexprs IS NULL AND i.indcollation[0] = {collation}
                           AND a.atttypid IN ({types}) AND a.attcollation = {collation}
                           AND NOT c.relrowsecurity)
                 THEN EXISTS (
                        SELECT 1 FROM {temp} k CROSS JOIN LATERAL (
                          SELECT 1 FROM {table} o WHERE o.{key_name} = k.w{key}{collate}
                           LIMIT 1) s)
                 ELSE true END",
        relation = quote_literal(table),
        key_literal = quote_literal(key_target),
        key_name = quote_ident(key_target),
    ))
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
        c.batch_execute(&self.create)
            .await
            .map_err(|e| PgError::query("cannot create the table of the picked derived rows", e))?;
        let mut scratch = BytesMut::new();
        super::copy_stream(c, &self.copy, w.rows.len(), |i, out| {
            if let Some(&row) = w.rows.get(i) {
                put_row(w, pick, row, out, &mut scratch);
            }
        })
        .await
        .map_err(|e| PgError::query("cannot stage the picked derived rows", e))?;
        tracing::debug!(table = %w.t.table, rows = w.rows.len(),
            "derived rows picked on the client, one per key");
        let params: [&(dyn ToSql + Sync); 1] = [&sync_seq];
        derived::lock_writers(c, w.t).await?;
        let lookup = self
            .lookup
            .as_deref()
            .filter(|_| !self.lookup_failed.load(Ordering::Relaxed));
        if let Some(lookup) = lookup {
            let sql = (lookup, self.insert.as_str());
            match derived::insert_new(c, w.t, sql, &params, at).await? {
                Inserted::Done(failed) => {
                    if failed == 0 {
                        tracing::debug!(table = %w.t.table, rows = w.rows.len(),
                            "derived rows of new keys inserted as they are");
                    }
                    return Ok(failed);
                }
                Inserted::LookupFailed => self.lookup_failed.store(true, Ordering::Relaxed),
                Inserted::Upsert => {}
            }
        }
        derived::upsert_locked(c, w.t, &self.upsert, &params, at).await
    }
}

/// One picked row: the table's columns taken from rows (NULL for no value, as the upsert
/// writes it), then `row_version` as the upsert computes it, and the line.
// A table has at most 1600 columns.
#[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
fn put_row(
    w: &Written<'_, '_, '_>,
    pick: &PickColumns,
    row: usize,
    out: &mut BytesMut,
    scratch: &mut BytesMut,
) {
    let encoders = w.d.encoders;
    out.put_i16((pick.written.len() + 2) as i16);
    for &(at, text) in &pick.written {
        match encoders.get(at) {
            Some(e) if !(text && derived::is_no_value(w.t, e, text, row, w.asked, scratch)) => {
                e.put(row, out);
            }
            _ => out.put_i32(-1),
        }
    }
    super::direct::put_version(out, w.direct.row_version(w.d, row));
    match encoders.get(w.direct.profile_columns(encoders)) {
        Some(line) => line.put(row, out),
        None => out.put_i32(-1),
    }
}
