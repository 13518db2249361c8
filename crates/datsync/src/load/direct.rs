//! A chunk whose keys the target table does not hold, COPYed straight into it.
//!
//! A first load, or a file of new documents, needs none of the upsert's work: no staging
//! table, no conflict handling, no counting. For such a chunk the rows are sent once, by a
//! binary `COPY` into the target table itself, with the bookkeeping columns the upsert would
//! have written (`created_at` and `updated_at` the transaction's `now()`, `sync_id`,
//! `source_file`, `sync_seq`, `source_line`, `row_version`), in key order.
//!
//! # When
//!
//! One statement reads the transaction's `now()`, checks that the table
//! takes the binary rows as they are — every written column of exactly the type the encoder
//! sends (`text`, `bigint`, `numeric` without a typmod, …: an adopted `varchar(40)` or
//! `integer` column is cast by the upsert's `INSERT … SELECT`, not here), an ordinary or
//! partitioned table without rules (a rule applies to `INSERT`, never to `COPY`), without
//! row-level security (which `COPY FROM` refuses), with a unique index on the key alone
//! (immediate, valid: the arbiter of the races below) — and looks for any of the chunk's keys in
//! the table, by the key's index: first any stored key between the chunk's least and
//! greatest (one probe, where that index orders as `min`/`max` over the keys sent do), then,
//! only when there is one, each key ([`DirectSql`]'s `probe`). Only a chunk with distinct
//! keys (validation keeps the newest line of a key) and none stored is COPYed, under the
//! sync's upsert lock (taken after the look-up, so a chunk that is staged instead stages
//! outside it, as before), so that another chunk's upsert of this sync never meets its rows
//! half-way.
//!
//! # Races
//!
//! Another sync may insert one of the keys after the look-up. The unique index is the
//! arbiter: the COPY then fails with 23505 (after waiting for that sync's commit) and is
//! rolled back to its savepoint, and the chunk takes the staging path and the upsert — newest
//! wins, the counts are exact. A chunk of this sync that committed one of the keys between
//! the look-up and the lock is caught the same way. Rows go in in key order (bytes, or
//! numbers, as the staging path's `ORDER BY … COLLATE "C"`), so two syncs writing overlapping
//! keys lock them in the same order.
//!
//! # Derived tables
//!
//! The derived upserts read the staging table. For a chunk COPYed into the target, the
//! derived tables take the rows the client picked (`derived_pick.rs`), or, where the client
//! cannot decide, the columns they read (and the line and version) staged by a second,
//! narrow COPY.

use std::error::Error;

use arrow_array::Array;
use bytes::{BufMut, BytesMut};
use tokio_postgres::Client;
use tokio_postgres::types::{FromSql, ToSql, Type};

use super::apart::KeyRange;
use super::copy::{self, ColumnEncoder};
use super::sql::{STAGE, Version};
use crate::pg::{
    BOOKKEEPING_COLUMNS, PgError, quote_ident, quote_literal, quote_qualified, sql_type,
};
use crate::profile::{ColumnType, Profile, ROW_VERSION_COLUMN};

/// The savepoint the COPY runs under.
const SAVEPOINT: &str = "datsync_direct";

/// The key's type, as the look-up sends the chunk's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// `text[]`.
    Text,
    /// `bigint[]`.
    Integer,
}

/// The statements of the direct path for one profile (a keyed profile whose key is one
/// `text` or `integer` column; none otherwise).
#[derive(Debug, Clone)]
pub(super) struct DirectSql {
    key: KeyKind,
    /// The key's position among the profile's columns.
    key_at: usize,
    /// `now()`, whether the table takes the COPY, and whether it holds one of `$1`'s keys.
    /// - A key column of a type other than `text`/`varchar` (a text key) or
    ///   `bigint`/`integer`/`smallint`/`numeric` (an integer key) is not looked up: it is
    ///   answered "stored", and the upsert decides. An adopted `char(n)` compares with the
    ///   `text` keys sent only as `text`, after its blanks are cut, which its index cannot
    ///   serve: looked up, each key was a sequential scan of the table (`citext` and domains
    ///   are answered "stored" as well, rather than trusted to use their index).
    /// - Else, where the key has an index in its column's collation with its type's default
    ///   operator class and that collation is the database's default (or the key an
    ///   integer), first one probe of that index for any key between the chunk's least and
    ///   greatest: `min`/`max` over the keys sent are taken in the database's default
    ///   collation, so they bound the keys as the index orders them. None there, none of the
    ///   chunk's. A first load, or a file of new documents numbered past the stored ones (SAP
    ///   numbers ascend), is answered by that one probe (in `psql`, 10,000 new keys against a
    ///   table of 93,536: ~2 ms, against ~11 ms for the probes per key).
    /// - Else, or when a stored key is in that range, one probe per key (a `LIMIT 1` subquery
    ///   per key, which the planner cannot turn into a scan of the whole table), stopping at
    ///   the first stored key. (A `count(*) … = ANY($1)` was planned as a sequential scan,
    ///   40 ms a chunk at 89,000 rows; an `EXISTS … = ANY($1)` can be planned as one too,
    ///   expecting an early match that a chunk of new keys never has.)
    /// - And whether two keys are one in the table exactly when the chunks send the same
    ///   bytes (text) or value (integers), so that chunks whose key ranges do not overlap
    ///   share no key (`apart.rs`; [`compares_as_sent`]: the key's type, typmod and
    ///   collations, and no row-level `BEFORE` trigger that could rewrite it).
    probe: String,
    /// The COPY into the target.
    copy: String,
    /// Whether rows carry a `row_version`, and which halves it is made of.
    version: Version,
    /// The narrow COPY of the derived tables' columns into the stage, and the positions
    /// (among the profile's columns) it sends; `None` without derived tables.
    derived_copy: Option<(String, Vec<usize>)>,
}

/// What the COPY of one chunk needs besides the batch.
pub(super) struct Direct<'a, 'b> {
    /// The profile's columns' encoders, then `_line`, then `_version` when rows have one.
    pub encoders: &'a [ColumnEncoder<'b>],
    /// Rows of the chunk.
    pub rows: usize,
    /// `sync_id`, `source_file`, `sync_seq`.
    pub sync: &'a crate::model::SyncRef,
    /// The file's version (`version_from_name`), when the profile reads one.
    pub file_version: Option<&'a str>,
}

/// What became of a chunk offered to the COPY straight into the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Offered {
    /// COPYed: the rows the server wrote.
    Copied(u64),
    /// The table holds one of its keys (it still will when the chunk is upserted: datsync
    /// deletes none), or its key column is of a type the look-up does not ask about
    /// ([`DirectSql`]'s `probe`): the upsert decides, with no look-up of its own. With the
    /// chunk's rows in key order ([`KeyOrder`]): the rows are staged in it.
    KeysStored(KeyOrder),
    /// The table held none of its keys, but cannot take the COPY as it is (an adopted column
    /// type, a rule): the staged rows can be inserted without a look-up of their own (the
    /// insert's savepoint catches a key inserted since). With the rows in key order, as
    /// [`Self::KeysStored`].
    KeysNew(KeyOrder),
    /// Not looked up (duplicate keys, a key column the look-up cannot send), or rolled back
    /// after a key another sync inserted: the staging path decides.
    NotTried,
}

impl Offered {
    /// The order a chunk of `staged` rows is staged in: its rows in key order when it was
    /// looked up ([`Self::KeysStored`], [`Self::KeysNew`]), else `None` (staged as they come,
    /// and sorted by the statement reading them). An order of another length than the chunk
    /// (never built) is not used.
    pub(super) fn staging_order(&self, staged: usize) -> Option<&[usize]> {
        match self {
            Self::KeysStored(o) | Self::KeysNew(o) => Some(o.0.as_slice()),
            Self::NotTried | Self::Copied(_) => None,
        }
        .filter(|o| o.len() == staged)
    }
}

/// A chunk's rows (indices into its batch) in key order — a text key by its bytes, an
/// integer key by its value, as the upsert's `ORDER BY … COLLATE "C"` orders them (in a
/// UTF-8 database; in another encoding non-ASCII keys may compare otherwise, which only
/// affects the lock order) — sorted once, for the look-up. A chunk that is staged is staged in this order, so that the insert
/// or upsert reading the staging table needs no sort of its own (`sql::LoadSql`'s
/// `*_in_order` statements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyOrder(pub(super) Vec<usize>);

/// The transaction's `now()` as PostgreSQL's binary `timestamptz`: microseconds since
/// 2000-01-01 UTC, written into `created_at` and `updated_at` as they are.
struct PgMicros(i64);

impl<'a> FromSql<'a> for PgMicros {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let raw: [u8; 8] = raw.try_into()?;
        Ok(Self(i64::from_be_bytes(raw)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

impl DirectSql {
    /// The direct path of `profile`, or `None` when its key is not one `text` or `integer`
    /// column (the look-up sends the keys as one array), or it appends.
    pub(super) fn new(profile: &Profile, version: Version) -> Option<Self> {
        if profile.appends() {
            return None;
        }
        let [key_at] = profile.key_positions()[..] else {
            return None;
        };
        let key_column = profile.columns.get(key_at)?;
        let key = match key_column.kind {
            ColumnType::Text => KeyKind::Text,
            ColumnType::Integer => KeyKind::Integer,
            _ => return None,
        };
        let table = quote_qualified(&profile.schema, &profile.table);
        let written = written_columns(profile, version);
        let expected: Vec<String> = written
            .iter()
            .map(|(name, ty)| format!("({}, {})", quote_literal(name), quote_literal(ty)))
            .collect();
        let relation = quote_literal(&table);
        // The key's column (`ka`) is read once, and every answer below looks at it.
        let probe = format!(
            "SELECT now(),
                    NOT EXISTS (
                      SELECT 1 FROM (VALUES {expected}) AS w(name, ty)
                        LEFT JOIN pg_catalog.pg_attribute a
                          ON a.attrelid = {relation}::regclass AND a.attname = w.name
                         AND a.attnum > 0 AND NOT a.attisdropped
                       WHERE a.attname IS NULL OR a.atttypid <> w.ty::regtype
                          OR a.atttypmod <> -1 OR a.attidentity = 'a' OR a.attgenerated <> '')
                    AND (SELECT NOT c.relhasrules AND NOT c.relrowsecurity
                                AND c.relkind IN ('r', 'p')
                           FROM pg_catalog.pg_class c WHERE c.oid = {relation}::regclass)
                    AND EXISTS (
                      SELECT 1 FROM pg_catalog.pg_index i
                       WHERE i.indrelid = ka.attrelid AND i.indkey[0] = ka.attnum
                         AND i.indisunique AND i.indimmediate AND i.indisvalid AND i.indisready
                         AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL),
                    CASE WHEN NOT COALESCE(ka.atttypid IN ({types}), false)
                         THEN true
                         WHEN EXISTS (
                                SELECT 1 FROM pg_catalog.pg_index i
                                  JOIN pg_catalog.pg_opclass oc ON oc.oid = i.indclass[0]
                                 WHERE i.indrelid = ka.attrelid AND i.indkey[0] = ka.attnum
                                   AND i.indisvalid AND i.indpred IS NULL
                                   AND i.indexprs IS NULL AND oc.opcdefault
                                   AND i.indcollation[0] = ka.attcollation
                                   AND ka.attcollation IN (0, 100))
                          AND NOT EXISTS (
                                SELECT 1 FROM (SELECT min(k.v) AS lo, max(k.v) AS hi
                                                 FROM unnest($1::{array}) AS k(v)) r
                                  CROSS JOIN LATERAL (
                                    SELECT 1 FROM {table} o
                                     WHERE o.{key_name} >= r.lo AND o.{key_name} <= r.hi
                                     ORDER BY o.{key_name} LIMIT 1) s)
                         THEN false
                         ELSE EXISTS (SELECT 1 FROM unnest($1::{array}) AS k(v)
                                CROSS JOIN LATERAL (
                                  SELECT 1 FROM {table} o WHERE o.{key_name} = k.v LIMIT 1) s)
                    END,
                    {compares_as_sent}
               FROM (SELECT 1) AS one
               LEFT JOIN pg_catalog.pg_attribute ka
                 ON ka.attrelid = {relation}::regclass AND ka.attname = {key_literal}
                AND ka.attnum > 0 AND NOT ka.attisdropped",
            expected = expected.join(", "),
            key_name = quote_ident(&key_column.target),
            key_literal = quote_literal(&key_column.target),
            array = match key {
                KeyKind::Text => "text[]",
                KeyKind::Integer => "bigint[]",
            },
            compares_as_sent = compares_as_sent(key),
            types = key_types(key),
        );
        let names: Vec<String> = written.iter().map(|(n, _)| quote_ident(n)).collect();
        let copy = format!(
            "COPY {table} ({}) FROM STDIN (FORMAT binary)",
            names.join(", ")
        );
        Some(Self {
            key,
            key_at,
            probe,
            copy,
            version,
            derived_copy: derived_copy(profile, version),
        })
    }
}

/// The key column types the look-up asks about, as a list of `regtype`s.
fn key_types(key: KeyKind) -> &'static str {
    match key {
        KeyKind::Text => "'text'::regtype, 'varchar'::regtype",
        KeyKind::Integer => "'int8'::regtype, 'int4'::regtype, 'int2'::regtype, 'numeric'::regtype",
    }
}

/// Whether two keys are one in the table exactly when the chunks send the same bytes (text)
/// or value (integers), as SQL over the key's column `ka` ([`DirectSql`]'s `probe`, last
/// answer): an integer key (a `numeric` one without a negative scale, which rounds 14 and 6
/// to one key, 10), or a `text` or unlimited `varchar` key whose collation, and its
/// indexes', are deterministic (a `varchar(n)` cuts a longer key's trailing blanks; a
/// nondeterministic collation makes `a` and `A` one key); and no row-level `BEFORE INSERT` or
/// `UPDATE` trigger on the table or its partitions, which may rewrite the key.
fn compares_as_sent(key: KeyKind) -> String {
    let types = key_types(key);
    let exact = match key {
        KeyKind::Text => "ka.atttypmod = -1",
        // A `numeric` typmod holds the scale in its low 11 bits, after the 4-byte header;
        // bit 10 is the sign of a negative scale (PostgreSQL 15 and later).
        KeyKind::Integer => {
            "(ka.atttypid <> 'numeric'::regtype OR ka.atttypmod = -1
              OR ((ka.atttypmod - 4) & 1024) = 0)"
        }
    };
    format!(
        "COALESCE(ka.atttypid IN ({types}) AND {exact}
                  AND NOT EXISTS (
                    SELECT 1 FROM pg_catalog.pg_collation k
                     WHERE NOT k.collisdeterministic
                       AND (k.oid = ka.attcollation OR k.oid IN (
                             SELECT i.indcollation[0] FROM pg_catalog.pg_index i
                              WHERE i.indrelid = ka.attrelid AND i.indkey[0] = ka.attnum)))
                  AND NOT EXISTS (
                    SELECT 1 FROM pg_catalog.pg_trigger t
                     WHERE (t.tgrelid = ka.attrelid OR t.tgrelid IN (
                             SELECT p.relid FROM pg_catalog.pg_partition_tree(ka.attrelid) p))
                       AND NOT t.tgisinternal AND (t.tgtype & 3) = 3
                       AND (t.tgtype & 20) <> 0), false)"
    )
}

/// The columns the COPY writes, with the types it sends them as: the profile's, then the
/// bookkeeping columns.
fn written_columns(profile: &Profile, version: Version) -> Vec<(String, &'static str)> {
    profile
        .columns
        .iter()
        .map(|c| (c.target.clone(), sql_type(c.kind)))
        .chain(
            BOOKKEEPING_COLUMNS
                .iter()
                .copied()
                .chain(version.any().then_some((ROW_VERSION_COLUMN, "text")))
                .map(|(n, t)| (n.to_owned(), t)),
        )
        .collect()
}

/// The narrow COPY feeding the derived upserts: the staged columns they read, `src_line`,
/// and `src_version` when rows have a version.
fn derived_copy(profile: &Profile, version: Version) -> Option<(String, Vec<usize>)> {
    if profile.derived.is_empty() {
        return None;
    }
    let mut at: Vec<usize> = profile
        .derived
        .iter()
        .flat_map(|d| d.columns.iter().filter_map(|c| c.from.as_ref()))
        .filter_map(|from| profile.columns.iter().position(|m| &m.target == from))
        .collect();
    at.sort_unstable();
    at.dedup();
    let columns: Vec<String> = at
        .iter()
        .map(|i| format!("c{i}"))
        .chain(std::iter::once("src_line".to_owned()))
        .chain(version.row.then(|| "src_version".to_owned()))
        .collect();
    Some((
        format!(
            "COPY {STAGE} ({}) FROM STDIN (FORMAT binary)",
            columns.join(", ")
        ),
        at,
    ))
}

impl DirectSql {
    /// COPYs the chunk into the target table when the table holds none of its keys and takes
    /// its rows as they are (see the module docs and [`Offered`]); the upsert lock is held
    /// when it tried. A chunk with duplicate keys is not tried.
    ///
    /// With the chunk's key range when the table's key compares as the keys sent do (the
    /// probe's last answer), for `apart.rs`.
    pub(super) async fn copy_new_keys(
        &self,
        c: &Client,
        d: &Direct<'_, '_>,
        distinct: bool,
    ) -> Result<(Offered, Option<KeyRange>), PgError> {
        let q = |what: &'static str| move |e| PgError::query(what, e);
        let rows = d.rows;
        if !distinct || rows == 0 {
            return Ok((Offered::NotTried, None));
        }
        let (texts, numbers, range);
        let (param, order): (&(dyn ToSql + Sync), Vec<usize>) =
            match (self.key, d.encoders.get(self.key_at)) {
                // The keys are looked up in the order the rows go in: the index's pages are
                // then visited in order.
                (KeyKind::Text, Some(ColumnEncoder::Text(a))) if a.null_count() == 0 => {
                    let mut order: Vec<usize> = (0..rows).collect();
                    order.sort_unstable_by_key(|&i| a.value(i).as_bytes());
                    texts = order.iter().map(|&i| a.value(i)).collect::<Vec<&str>>();
                    range = KeyRange::texts(&texts);
                    (&texts, order)
                }
                (KeyKind::Integer, Some(ColumnEncoder::Int(a))) if a.null_count() == 0 => {
                    let mut order: Vec<usize> = (0..rows).collect();
                    order.sort_unstable_by_key(|&i| a.value(i));
                    numbers = order.iter().map(|&i| a.value(i)).collect::<Vec<i64>>();
                    range = KeyRange::integers(&numbers);
                    (&numbers, order)
                }
                _ => return Ok((Offered::NotTried, None)),
            };
        let probe = c
            .query_one(&self.probe, &[param])
            .await
            .map_err(q("cannot look up the chunk's keys in the target table"))?;
        let now: PgMicros = probe.get(0);
        let (fits, stored): (Option<bool>, bool) = (probe.get(1), probe.get(2));
        let range = range.filter(|_| probe.get::<_, bool>(3));
        if stored {
            return Ok((Offered::KeysStored(KeyOrder(order)), range));
        }
        if fits != Some(true) {
            return Ok((Offered::KeysNew(KeyOrder(order)), range));
        }
        // Only now the sync's upsert lock: a chunk that is staged and upserted takes it after
        // its staging COPY, as before. A chunk of this sync that committed one of the keys
        // since the look-up makes the COPY fail on the unique index, as another sync's does.
        super::lock_sync_upsert(c, d.sync.sync_id.as_str()).await?;
        let copied = super::unless_a_key_is_taken(c, SAVEPOINT, || {
            super::copy_stream_warm(
                c,
                &self.copy,
                rows,
                |at| {
                    let block = order.get(at).unwrap_or_default();
                    copy::warm(d.encoders, &block.iter().copied());
                },
                |i, out| self.put_row(d, now.0, order[i], out),
            )
        })
        .await
        .map_err(q("cannot copy the chunk into the target table"))?;
        Ok((copied.map_or(Offered::NotTried, Offered::Copied), range))
    }

    /// One row of the COPY into the target: the profile's columns, then `created_at`,
    /// `updated_at`, `sync_id`, `source_file`, `sync_seq`, `source_line` and, with a
    /// version, `row_version` as the upsert computes it (`sql::Version::value`).
    // A table has at most 1600 columns, a text field fits `i32` (Arrow's offsets).
    #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
    fn put_row(&self, d: &Direct<'_, '_>, now: i64, row: usize, out: &mut BytesMut) {
        let columns = self.profile_columns(d.encoders);
        let fields = columns + 6 + usize::from(self.version.any());
        out.put_i16(fields as i16);
        for e in &d.encoders[..columns] {
            e.put(row, out);
        }
        for _ in 0..2 {
            out.put_i32(8);
            out.put_i64(now);
        }
        put_text(out, Some(d.sync.sync_id.as_str()));
        put_text(out, Some(d.sync.source_file.as_str()));
        out.put_i32(8);
        out.put_i64(d.sync.sync_seq);
        d.encoders[columns].put(row, out);
        if !self.version.any() {
            return;
        }
        put_version(out, self.row_version(d, row));
    }

    /// Row `row`'s `row_version` as the upsert computes it (`sql::Version::value`), as the
    /// parts it joins: the row's own version alone, the file's alone, or `own | file` with
    /// `-` for a missing half; `None` for NULL (neither half, or no version at all).
    pub(super) fn row_version<'a>(&self, d: &Direct<'a, '_>, row: usize) -> Option<[&'a str; 3]> {
        let columns = self.profile_columns(d.encoders);
        let own = match d.encoders.get(columns + 1) {
            Some(ColumnEncoder::Text(a)) if self.version.row && !a.is_null(row) => {
                Some(a.value(row))
            }
            _ => None,
        };
        match (self.version.row, self.version.file, own, d.file_version) {
            (true, true, None, None) | (false, false, ..) => None,
            (true, true, own, file) => Some([own.unwrap_or("-"), " | ", file.unwrap_or("-")]),
            (true, false, own, _) => own.map(|o| [o, "", ""]),
            (false, true, _, file) => file.map(|f| [f, "", ""]),
        }
    }

    /// Stages the columns the derived upserts read (no-op without derived tables), of the
    /// rows `kept` (`None`: every row; see `derived::pick`); the staging table must exist.
    pub(super) async fn stage_derived(
        &self,
        c: &Client,
        d: &Direct<'_, '_>,
        kept: Option<&[usize]>,
    ) -> Result<(), PgError> {
        let Some((sql, at)) = &self.derived_copy else {
            return Ok(());
        };
        let encoders = d.encoders;
        let columns = self.profile_columns(encoders);
        let sent: Vec<&ColumnEncoder<'_>> = at
            .iter()
            .filter_map(|&i| encoders.get(i))
            .chain(encoders[columns..].iter())
            .collect();
        let rows = kept.map_or(d.rows, <[usize]>::len);
        tracing::debug!(
            rows = d.rows,
            staged = rows,
            "derived rows staged: each key's newest, and those the client cannot judge"
        );
        let row = |i: usize| kept.and_then(|k| k.get(i).copied()).unwrap_or(i);
        super::copy_stream_warm(
            c,
            sql,
            rows,
            |at| copy::warm(&sent, &at.map(row)),
            |i, out| copy::put_fields(&sent, row(i), out),
        )
        .await
        .map_err(|e| PgError::query("cannot stage the chunk's derived columns", e))?;
        Ok(())
    }

    /// Row `row`'s place in the derived upserts' order: its `row_version` as the COPY into the
    /// target writes it ([`Self::row_version`]; NULL as `''`, as their `COALESCE` has it),
    /// and its line.
    pub(super) fn pick_order<'a>(
        &self,
        d: &Direct<'a, '_>,
        row: usize,
    ) -> Option<super::derived::PickOrder<'a>> {
        let columns = self.profile_columns(d.encoders);
        let ColumnEncoder::Line(lines) = d.encoders.get(columns)? else {
            return None;
        };
        Some(super::derived::PickOrder {
            version: self.row_version(d, row).unwrap_or(["", "", ""]),
            line: lines.value(row),
        })
    }

    /// How many of a chunk's encoders are the profile's columns (then `_line`, then
    /// `_version` when rows have one).
    pub(super) fn profile_columns(&self, encoders: &[ColumnEncoder<'_>]) -> usize {
        encoders
            .len()
            .saturating_sub(1 + usize::from(self.version.row))
    }

    /// Whether the profile has derived tables, whose rows are then sent on their own after a
    /// direct COPY (`derived_pick.rs`).
    pub(super) fn stages_derived(&self) -> bool {
        self.derived_copy.is_some()
    }
}

/// A `row_version` as [`DirectSql::row_version`] gives it, written in place (no string per
/// row): the parts joined, or NULL.
// A version is short.
#[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
pub(super) fn put_version(out: &mut BytesMut, parts: Option<[&str; 3]>) {
    match parts {
        None => out.put_i32(-1),
        Some(parts) => {
            out.put_i32(parts.iter().map(|p| p.len()).sum::<usize>() as i32);
            for p in parts {
                out.put_slice(p.as_bytes());
            }
        }
    }
}

// A text field fits `i32` (Arrow's offsets; a file name or a version is short).
#[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
pub(super) fn put_text(out: &mut BytesMut, v: Option<&str>) {
    match v {
        None => out.put_i32(-1),
        Some(v) => {
            out.put_i32(v.len() as i32);
            out.put_slice(v.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The COPY's column list comes from `BOOKKEEPING_COLUMNS`; `put_row` writes them in a
    /// fixed order: the two must agree.
    #[test]
    fn the_bookkeeping_columns_are_written_in_the_listed_order() {
        // The order of `DirectSql::put_row`.
        let written = [
            "created_at",
            "updated_at",
            "sync_id",
            "source_file",
            "sync_seq",
            "source_line",
        ];
        let listed: Vec<&str> = BOOKKEEPING_COLUMNS.iter().map(|(n, _)| *n).collect();
        assert_eq!(listed, written);
    }
}
