//! A chunk's derived rows COPYed straight into a derived table that holds none of their keys.
//!
//! A first load names drivers the `drivers` table does not hold yet. For them the upsert's
//! work — a narrow COPY into a staging table, the placeholder test per value, a sort, an
//! insert that looks for a conflict per row — comes down to inserting one row per key. So
//! when the client has decided every key of a chunk ([`derived::Picked::exact`]: the rows
//! each key's upsert would pick, and every value it would write, NULL for a placeholder), the
//! table takes those rows by one binary `COPY`, in key order, with the bookkeeping the upsert
//! writes (`row_version`, `sync_seq`, `source_line`, `updated_at` the transaction's `now()`).
//!
//! # What the client decides
//!
//! `btrim` and the comparison with the placeholders are the same everywhere; `upper` follows
//! the database's locale (`derived.rs`, `Judged::Unsure`). The values the client cannot
//! decide (not ASCII, or holding an `i`) are asked of the database itself, once per chunk and
//! table, by the upsert's own expression (`btrim(v) = '' OR upper(btrim(v)) = ANY($2)`) over
//! their distinct values; a row whose version is not plain ASCII leaves its chunk to the
//! upsert, as does a key column that is neither `text` nor `integer`.
//!
//! # When
//!
//! As the main table's direct path (`direct.rs`), one statement reads `now()` and checks that
//! the table takes the binary rows as they are (the written columns of exactly the types
//! sent, no rules, no row-level security, a unique immediate valid index on the key alone).
//! The unique index decides whether a key is stored: the COPY runs under a savepoint, and a
//! stored key — or one another transaction inserted, after waiting for it — fails it (23505)
//! and rolls it back, and the table takes the upsert, its staged rows being the decided ones
//! (one per key). Any other failure that retrying cannot fix (a constraint the table's owner
//! added) is rolled back the same way, and the upsert decides as before (newest wins, or the
//! failure is counted); a transient failure fails the attempt. Newest wins all the same: a key
//! the table does not hold takes its newest row either way.
//!
//! A look-up of every key would cost about what the COPY's own index inserts cost (~3 µs a
//! key). So the statement above looks up only [`SAMPLED_KEYS`] keys spread over the chunk's
//! key order, and a chunk with one of them stored is upserted at once: a file delivered
//! again, or drivers of earlier files, are caught there. A chunk whose stored keys the sample
//! misses holds few of them; its rows go in in key order, so its COPY fails at the first
//! stored key and the rows it wrote before are rolled back (dead rows left for `VACUUM`):
//! about `1/p` rows for a share `p` of stored keys, at most the chunk's.

use bytes::{BufMut, BytesMut};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::copy::ColumnEncoder;
use super::derived::{self, Asked, DerivedSql, PickColumns, Picked};
use super::direct::{Direct, DirectSql, KeyKind, PgMicros};
use crate::pg::{ErrorClass, PgError, quote_ident, sql_type};
use crate::profile::Profile;

/// The savepoint the COPY runs under.
const SAVEPOINT: &str = "datsync_derived_copy";

/// The bookkeeping columns the COPY writes after the table's own, with the types it sends
/// (`DERIVED_BOOKKEEPING`'s, without the collation), in the order `put_row` writes them.
const BOOKKEEPING: [(&str, &str); 4] = [
    ("row_version", "text"),
    ("sync_seq", "bigint"),
    ("source_line", "bigint"),
    ("updated_at", "timestamptz"),
];

/// The placeholder test, as the upsert computes it, of the values `$1`, in their order.
const ASK: &str = "SELECT COALESCE(array_agg(
                     (btrim(u.v) = '' OR upper(btrim(u.v)) = ANY($2::text[])) ORDER BY u.n), '{}')
                   FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n)";

/// The statements of the COPY into one derived table.
#[derive(Debug, Clone)]
pub(crate) struct CopySql {
    key: KeyKind,
    /// `now()`, whether the table takes the COPY, whether it holds one of `$1`'s keys
    /// (`direct::probe_sql`).
    probe: String,
    copy: String,
}

impl CopySql {
    /// The COPY into derived table `table` (quoted and qualified) keyed by `key`, whose
    /// columns taken from rows are `targets`, from the main columns `pick.written`; `None`
    /// when the key's main column is neither `text` nor `integer`.
    pub(super) fn new(
        profile: &Profile,
        table: &str,
        key: &str,
        targets: &[&str],
        pick: &PickColumns,
    ) -> Option<Self> {
        let kind = KeyKind::of(profile.columns.get(pick.key)?.kind)?;
        let written: Vec<(String, &str)> = targets
            .iter()
            .zip(&pick.written)
            .map(|(t, (at, _))| Some(((*t).to_owned(), sql_type(profile.columns.get(*at)?.kind))))
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .chain(BOOKKEEPING.iter().map(|(n, t)| ((*n).to_owned(), *t)))
            .collect();
        let names: Vec<String> = written.iter().map(|(n, _)| quote_ident(n)).collect();
        Some(Self {
            key: kind,
            probe: super::direct::probe_sql(table, &written, key, kind.array()),
            copy: format!(
                "COPY {table} ({}) FROM STDIN (FORMAT binary)",
                names.join(", ")
            ),
        })
    }
}

/// The chunk's derived tables written on `c`, in the transaction the caller opened (beside
/// the chunk's, or the chunk's own), its staging table not made yet: each table whose rows
/// the client decided and which holds none of their keys by a COPY straight into it; the
/// others upserted as before (`derived::apply`) from a narrow stage of the rows they can
/// pick. Returns how many upserts failed and were rolled back; a transient failure is
/// returned.
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
    let mut left: Vec<(&DerivedSql, Picked)> = Vec::new();
    for t in derived {
        let asked = ask(c, t, d).await?;
        let picked = derived::pick(t, d.encoders, d.rows, &asked, |row| {
            direct.pick_order(d, row)
        });
        if let (true, Some(copy), Some(rows)) = (picked.exact, &t.copy, &picked.rows) {
            let written = Written {
                t,
                direct,
                d,
                rows,
                asked: &asked,
                sync_seq,
            };
            if copy.copy_new_keys(c, &written).await? {
                continue;
            }
        }
        left.push((t, picked));
    }
    if left.is_empty() {
        return Ok(0);
    }
    let mut keep = vec![false; d.rows];
    let mut every = false;
    for (_, p) in &left {
        match &p.rows {
            None => every = true,
            Some(rows) => rows.iter().for_each(|&r| keep[r] = true),
        }
    }
    let kept: Option<Vec<usize>> = (!every).then(|| (0..d.rows).filter(|&r| keep[r]).collect());
    c.batch_execute(create_stage)
        .await
        .map_err(|e| PgError::query("cannot create the staging table", e))?;
    direct.stage_derived(c, d, kept.as_deref()).await?;
    let left: Vec<&DerivedSql> = left.into_iter().map(|(t, _)| t).collect();
    derived::apply(c, &left, sync_seq, file_version, at).await
}

/// The values of the chunk derived table `t` reads through the placeholder test that the
/// client cannot decide, decided by the database (none asked when there are none).
async fn ask(c: &Client, t: &DerivedSql, d: &Direct<'_, '_>) -> Result<Asked, PgError> {
    let values = derived::unsure_values(t, d.encoders, d.rows);
    if values.is_empty() {
        return Ok(Asked::new());
    }
    let answers: Vec<bool> = c
        .query_one(ASK, &[&values, &t.drop_values])
        .await
        .map_err(|e| PgError::query("cannot ask the database's placeholder test", e))?
        .get(0);
    Ok(values.into_iter().map(str::to_owned).zip(answers).collect())
}

/// What the COPY of one derived table writes.
struct Written<'w, 'a, 'b> {
    t: &'w DerivedSql,
    direct: &'w DirectSql,
    d: &'w Direct<'a, 'b>,
    /// Each key's row, in key order.
    rows: &'w [usize],
    asked: &'w Asked,
    sync_seq: i64,
}

impl CopySql {
    /// COPYs `w`'s rows into the table when it holds none of their keys and takes them as they
    /// are: `true` when they are in (or there are none), `false` when the table is to be
    /// upserted instead (see the module docs).
    async fn copy_new_keys(&self, c: &Client, w: &Written<'_, '_, '_>) -> Result<bool, PgError> {
        let q = |what: &'static str| move |e| PgError::query(what, e);
        if w.rows.is_empty() {
            return Ok(true);
        }
        let Some(pick) = &w.t.pick else {
            return Ok(false);
        };
        let key = w.d.encoders.get(pick.key);
        let sample = sample(w.rows);
        let (texts, numbers);
        let param: &(dyn ToSql + Sync) = match (self.key, key) {
            (KeyKind::Text, Some(ColumnEncoder::Text(a))) => {
                texts = sample.map(|r| a.value(r)).collect::<Vec<&str>>();
                &texts
            }
            (KeyKind::Integer, Some(ColumnEncoder::Int(a))) => {
                numbers = sample.map(|r| a.value(r)).collect::<Vec<i64>>();
                &numbers
            }
            _ => return Ok(false),
        };
        let probe = c
            .query_one(&self.probe, &[param])
            .await
            .map_err(q("cannot look up the chunk's keys in a derived table"))?;
        let now: PgMicros = probe.get(0);
        let (fits, stored): (Option<bool>, bool) = (probe.get(1), probe.get(2));
        if stored || fits != Some(true) {
            return Ok(false);
        }
        c.batch_execute(&format!("SAVEPOINT {SAVEPOINT}"))
            .await
            .map_err(q("cannot set the derived COPY's savepoint"))?;
        let mut scratch = BytesMut::new();
        let copied = super::copy_stream(c, &self.copy, w.rows.len(), |i, out| {
            put_row(w, pick, now.0, w.rows[i], out, &mut scratch);
        })
        .await;
        match copied {
            Ok(n) => {
                c.batch_execute(&format!("RELEASE SAVEPOINT {SAVEPOINT}"))
                    .await
                    .map_err(q("cannot release the derived COPY's savepoint"))?;
                tracing::debug!(table = %w.t.table, rows = n,
                    "derived rows copied straight into the table");
                Ok(true)
            }
            Err(e) => {
                // What the server said, without the DETAIL that names the key's value.
                let said = crate::pg::server_message(&e);
                let e = PgError::query(
                    format!("cannot copy into the derived table {}", w.t.table),
                    e,
                );
                if e.class() == ErrorClass::Transient || e.is_outage() {
                    return Err(e);
                }
                c.batch_execute(&format!(
                    "ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"
                ))
                .await
                .map_err(q("cannot roll back to the derived COPY's savepoint"))?;
                tracing::debug!(table = %w.t.table, error = %said,
                    "the derived COPY was rolled back; upserting the rows instead");
                Ok(false)
            }
        }
    }
}

/// How many of a chunk's keys are looked up before its COPY, at most.
const SAMPLED_KEYS: usize = 64;

/// Up to [`SAMPLED_KEYS`] of `rows` (in key order), spread evenly over them, the first and
/// the last among them.
fn sample(rows: &[usize]) -> impl Iterator<Item = usize> + '_ {
    let n = rows.len().min(SAMPLED_KEYS);
    (0..n).map(move |i| {
        rows[if n > 1 {
            i * (rows.len() - 1) / (n - 1)
        } else {
            0
        }]
    })
}

/// One row of the COPY: the table's columns taken from rows (NULL for no value, as the
/// upsert writes it), then `row_version` as the upsert computes it, `sync_seq`,
/// `source_line` and `updated_at`.
// A table has at most 1600 columns.
#[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
fn put_row(
    w: &Written<'_, '_, '_>,
    pick: &PickColumns,
    now: i64,
    row: usize,
    out: &mut BytesMut,
    scratch: &mut BytesMut,
) {
    let encoders = w.d.encoders;
    out.put_i16((pick.written.len() + BOOKKEEPING.len()) as i16);
    for &(at, text) in &pick.written {
        match encoders.get(at) {
            Some(e) if !(text && derived::is_no_value(w.t, e, text, row, w.asked, scratch)) => {
                e.put(row, out);
            }
            _ => out.put_i32(-1),
        }
    }
    super::direct::put_version(out, w.direct.row_version(w.d, row));
    out.put_i32(8);
    out.put_i64(w.sync_seq);
    match encoders.get(w.direct.profile_columns(encoders)) {
        Some(line) => line.put(row, out),
        None => out.put_i32(-1),
    }
    out.put_i32(8);
    out.put_i64(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The COPY's bookkeeping columns are the derived tables' own, in `put_row`'s order.
    #[test]
    fn the_bookkeeping_columns_are_the_derived_tables_own() {
        let ours: Vec<&str> = BOOKKEEPING.iter().map(|(n, _)| *n).collect();
        let theirs: Vec<&str> = crate::profile::DERIVED_BOOKKEEPING
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(ours, theirs);
    }

    /// The keys looked up: all of a chunk with few, else 64 spread from the first to the last.
    #[test]
    fn the_sample_spans_the_key_order() {
        for n in [0, 1, 2, 63, 64, 65, 127, 500, 10_000] {
            let rows: Vec<usize> = (0..n).map(|i| i * 3).collect();
            let got: Vec<usize> = sample(&rows).collect();
            assert_eq!(got.len(), n.min(SAMPLED_KEYS), "{n}");
            assert_eq!(got.first(), rows.first(), "{n}");
            assert_eq!(got.last(), rows.last(), "{n}");
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "{n}: distinct, in order"
            );
            if n > 2 * SAMPLED_KEYS {
                // The second key in order is not looked up (the pipeline test's stored key).
                assert!(!got.contains(&rows[1]), "{n}");
            }
        }
    }
}
