//! The SQL text of a chunk load, built once per profile with every identifier quoted.

use crate::pg::{fit_text_sql, quote_ident, quote_qualified, sql_type};
use crate::profile::{Profile, ROW_VERSION_COLUMN};

/// The staging table (temporary, dropped at commit).
pub(super) const STAGE: &str = "pg_temp.datsync_stage";

/// Statements of one chunk load for one profile.
#[derive(Debug, Clone)]
pub(super) struct LoadSql {
    pub create_stage: String,
    pub copy: String,
    /// The upsert when every staged key is distinct (in append mode, the insert).
    pub upsert_unique: String,
    /// [`Self::upsert_unique`] of rows staged in key order (`direct::KeyOrder`): no `ORDER
    /// BY`, the staging table read in the order it was written (see [`Upserts`]).
    pub upsert_unique_in_order: String,
    /// [`Self::upsert_unique_in_order`] of a chunk *apart*: no committed chunk of its sync
    /// holds one of its keys (`load/apart.rs`), so no stored row it meets is its sync's and
    /// `replaced` is 0 without its look-up of every updated key (`None` in append mode).
    pub upsert_unique_in_order_apart: Option<String>,
    /// The upsert that first reduces duplicate keys to the latest line (in append mode, the
    /// insert).
    pub upsert_dedup: String,
    /// Whether the upserts take the file's version as `$4`.
    pub file_version_param: bool,
    /// The path of a chunk whose keys the table does not hold (none in append mode).
    pub new_keys: Option<NewKeysSql>,
    pub ledger_get: String,
    pub ledger_put: String,
    /// Whether the ledger holds a chunk of sync `$1` other than those of ids `$2` with
    /// checksums `$3` (`apart.rs`).
    pub ledger_others: String,
    /// Deletes the chunk's row of the work queue (`chunk_queue`) unless another session
    /// holds it (a worker loading it: that worker deletes it), in the chunk's transaction.
    pub queue_done: String,
    /// The upserts of the profile's derived tables, in profile order.
    pub derived: Vec<super::derived::DerivedSql>,
    /// The COPY straight into the target of a chunk whose keys it does not hold (a keyed
    /// profile whose key is one `text` or `integer` column).
    pub direct: Option<super::direct::DirectSql>,
}

/// A chunk whose staged keys the target table does not hold (a first load, new documents):
/// a plain insert instead of the upsert, whose conflict handling and counting queries find
/// nothing to do for it. The upsert lock is held, so no chunk of the sync adds a key in
/// between; another sync can, and then the insert fails on the key's unique index (23505)
/// and the chunk is upserted after all (`load/mod.rs`).
#[derive(Debug, Clone)]
pub(super) struct NewKeysSql {
    /// `true` when no staged key is in the target table.
    pub probe: String,
    /// The insert when every staged key is distinct.
    pub insert_unique: String,
    /// [`Self::insert_unique`] of rows staged in key order: no `ORDER BY`.
    pub insert_unique_in_order: String,
    /// The insert of the latest line of each key.
    pub insert_dedup: String,
}

impl LoadSql {
    pub(super) fn new(profile: &Profile) -> Self {
        let s = quote_ident(&profile.schema);
        let version = Version::of(profile);
        let (upsert_unique, upsert_unique_in_order, upsert_dedup, apart, new_keys) =
            if profile.appends() {
                let append = append_sql(profile);
                (append.clone(), append.clone(), append, None, None)
            } else {
                let u = upsert_sql(profile, version);
                let apart = Some(u.unique_in_order_apart);
                (
                    u.unique,
                    u.unique_in_order,
                    u.dedup,
                    apart,
                    Some(u.new_keys),
                )
            };
        Self {
            create_stage: create_stage(profile, version),
            copy: format!("COPY {STAGE} FROM STDIN (FORMAT binary)"),
            upsert_unique,
            upsert_unique_in_order,
            upsert_unique_in_order_apart: apart,
            upsert_dedup,
            file_version_param: version.file,
            new_keys,
            direct: super::direct::DirectSql::new(profile, version),
            derived: profile
                .derived
                .iter()
                .enumerate()
                .map(|(i, d)| super::derived::DerivedSql::new(profile, d, version, i))
                .collect(),
            ledger_get: format!(
                "SELECT \"rows\", inserted, updated, skipped_older, checksum, superseded_on_load,
                        derived_failed
                   FROM {s}.sync_chunks WHERE sync_id = $1 AND chunk_id = $2"
            ),
            ledger_put: format!(
                "INSERT INTO {s}.sync_chunks
                   (sync_id, chunk_id, \"rows\", inserted, updated, skipped_older, checksum,
                    rows_read, rejected, superseded, validation_errors_count, validation_errors,
                    cut_rows, cut_bytes, cut_max_line_bytes,
                    superseded_on_load, value_warnings, value_warnings_sample, derived_failed,
                    worker, older_than_version, older_than_sync_seq, older_than_sync_id,
                    older_than_file)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                         $18, $19, $20, $21, $22, $23, $24)"
            ),
            ledger_others: format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.sync_chunks l
                                 WHERE l.sync_id = $1
                                   AND NOT EXISTS (
                                     SELECT 1 FROM unnest($2::int4[], $3::text[]) AS n(id, sum)
                                      WHERE n.id = l.chunk_id AND n.sum = l.checksum))"
            ),
            queue_done: format!(
                "DELETE FROM {s}.chunk_queue WHERE ctid = ANY(ARRAY(
                   SELECT ctid FROM {s}.chunk_queue WHERE sync_id = $1 AND chunk_id = $2
                      FOR UPDATE SKIP LOCKED))"
            ),
        }
    }
}

/// The quoted target columns and the staged values of every profile column, in order.
fn targets_and_selects(profile: &Profile) -> (String, String) {
    let targets: Vec<String> = profile
        .columns
        .iter()
        .map(|c| quote_ident(&c.target))
        .collect();
    let selects: Vec<String> = (0..profile.columns.len())
        .map(|i| format!("s.c{i}"))
        .collect();
    (targets.join(", "), selects.join(", "))
}

/// The `DO UPDATE SET` items: every non-key column, the bookkeeping columns and, with a
/// version, `row_version`, each from `EXCLUDED`.
fn update_sets(targets: &[String], key_is: &[usize], version: Version) -> Vec<String> {
    targets
        .iter()
        .enumerate()
        .filter(|(i, _)| !key_is.contains(i))
        .map(|(_, t)| format!("{t} = EXCLUDED.{t}"))
        .chain(
            [
                "updated_at",
                "sync_id",
                "source_file",
                "sync_seq",
                "source_line",
            ]
            .iter()
            .copied()
            .chain(version.any().then_some(ROW_VERSION_COLUMN))
            .map(|b| format!("{b} = EXCLUDED.{b}")),
        )
        .collect()
}

/// The statements of a keyed profile's staged chunk.
///
/// Rows staged in key order (`direct::KeyOrder`) go into the target in that order without an
/// `ORDER BY`, whose sort of the chunk's wide rows took ~40 ms of an upsert's ~300 ms per
/// 10,000 rows: the staging table is created and filled by one COPY in the chunk's
/// transaction, and a COPY into a table created in its own transaction skips the free space
/// map (`TABLE_INSERT_SKIP_FSM`, with a bulk-insert state): each row goes on the last page or
/// a new one, so the heap holds the rows in the order they were sent; a temporary table's
/// sequential scan reads its pages from the first (it is never scanned in parallel nor from
/// a synchronized start). The order only makes two syncs writing overlapping keys
/// lock them in the same order; were it ever not kept they could deadlock, which PostgreSQL
/// detects (40P01, transient: the chunk is retried). What is written is the same in any
/// order. A chunk with duplicate keys is never staged in key order (the look-up is not
/// tried), so the upsert that reduces them keeps its `ORDER BY`.
struct Upserts {
    /// The upsert of a chunk whose keys are all distinct.
    unique: String,
    /// The same, of rows staged in key order.
    unique_in_order: String,
    /// [`Self::unique_in_order`] of a chunk apart ([`LoadSql::upsert_unique_in_order_apart`]):
    /// `replaced` is 0, not counted.
    unique_in_order_apart: String,
    /// The upsert that first reduces duplicate keys to the newest row.
    dedup: String,
    /// The look-up and the plain inserts of a chunk whose keys the table does not hold.
    new_keys: NewKeysSql,
}

/// The upserts of a keyed profile ([`Upserts`]).
fn upsert_sql(profile: &Profile, version: Version) -> Upserts {
    let table = quote_qualified(&profile.schema, &profile.table);
    // The key's columns: their staged positions and quoted names.
    let key_is = profile.key_positions();
    let keys: Vec<String> = profile.key.iter().map(|k| quote_ident(k)).collect();
    let targets: Vec<String> = profile
        .columns
        .iter()
        .map(|c| quote_ident(&c.target))
        .collect();
    let sets = update_sets(&targets, &key_is, version);
    let dedup = version.dedup(&key_is);
    let (_, _, guard) = version.insert_parts();
    // `a.k0 = b.k0 AND a.k1 = b.k1 …` over the key's parts, each side's name by part.
    let same_key = |left: &dyn Fn(usize) -> String, right: &dyn Fn(usize) -> String| {
        (0..keys.len())
            .map(|p| format!("{} = {}", left(p), right(p)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let returned: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(p, k)| format!("t.{k} AS k{p}"))
        .collect();
    let stored_key = |p: usize| format!("o.{}", keys[p]);
    let returned_key = |p: usize| format!("i.k{p}");
    let staged_key = |p: usize| format!("s.c{}", key_is[p]);
    let stored_keys = (0..keys.len()).map(stored_key).collect::<Vec<_>>();
    let distinct_stored = match stored_keys.as_slice() {
        [k] => k.clone(),
        all => format!("ROW({})", all.join(", ")),
    };
    // Who the stored rows were, read in the statement's own snapshot (the sub-statements
    // of one WITH see the table as it was before the INSERT): a stored row of this very
    // sync (`sync_seq = $3`) that the upsert replaced, or that was newer and so stayed,
    // makes one of the two rows superseded (not updated, not older); any other stored
    // row is another sync's (a chunk apart from its sync, `apart.rs`, meets no row of its
    // sync: its `replaced` is 0, not looked up). Only conflicting keys are looked up: the
    // rows the upsert applied over a stored row, and the staged keys it left alone (none of
    // either when a chunk only inserts). A composite key matches on every part. Of the stored rows
    // that another sync left newer (`alone`, not this sync's: the chunk's skipped_older),
    // the newest by `(row_version, sync_seq)` is returned with its sync and file, so the
    // ledger can say which version won — in the same statement, no round trip per row.
    // The rows go in in key order, as the derived tables' do: two syncs upserting the same
    // keys at once lock them in the same order and wait for each other instead of
    // deadlocking (40P01, which was retried).
    let order_by = format!("ORDER BY {}", ordered_keys(profile, &key_is).join(", "));
    // Sorted unless the rows were staged in key order.
    let insert = |filter: &str, staged_in_order: bool| {
        staged_insert(
            profile,
            version,
            filter,
            if staged_in_order { "" } else { &order_by },
        )
    };
    let upsert = |filter: &str, staged_in_order: bool, apart: bool| {
        format!(
            "WITH ins AS (
               {insert}
               ON CONFLICT ({key}) DO UPDATE SET {sets}
               WHERE {guard}
               RETURNING {returned}, (t.xmax = 0) AS inserted
             ),
             replaced AS (
               {replaced}
             ),
             alone AS (
               SELECT {distinct_stored} AS k, o.sync_seq, {stored_version} AS v,
                      o.sync_id::text AS sync_id, o.source_file::text AS file
                 FROM {STAGE} s JOIN {table} o ON {kept_on}
                WHERE {beaten} AND NOT EXISTS (SELECT 1 FROM ins i WHERE {kept_not})
             ),
             kept AS (
               SELECT count(DISTINCT k) AS n FROM alone WHERE sync_seq = $3::bigint
             ),
             newer AS (
               SELECT v, sync_seq, sync_id, file FROM alone
                WHERE sync_seq IS DISTINCT FROM $3::bigint
                ORDER BY COALESCE(v, '') COLLATE \"C\" DESC, sync_seq DESC NULLS LAST
                LIMIT 1
             )
             SELECT count(*) FILTER (WHERE i.inserted), count(*) FILTER (WHERE NOT i.inserted),
                    (SELECT n FROM replaced), (SELECT n FROM kept),
                    (SELECT v FROM newer), (SELECT sync_seq FROM newer),
                    (SELECT sync_id FROM newer), (SELECT file FROM newer)
               FROM ins i",
            insert = insert(filter, staged_in_order),
            key = keys.join(", "),
            returned = returned.join(", "),
            replaced = replaced_sql(&table, &same_key(&stored_key, &returned_key), apart),
            kept_on = same_key(&stored_key, &staged_key),
            kept_not = same_key(&returned_key, &staged_key),
            sets = sets.join(", "),
            stored_version = version.stored(),
            beaten = version.beaten(),
        )
    };
    let new_keys = NewKeysSql {
        probe: format!(
            "SELECT NOT EXISTS (SELECT 1 FROM {STAGE} s JOIN {table} o ON {stored_staged})",
            stored_staged = same_key(&stored_key, &staged_key),
        ),
        insert_unique: insert("", false),
        insert_unique_in_order: insert("", true),
        insert_dedup: insert(&dedup, false),
    };
    Upserts {
        unique: upsert("", false, false),
        unique_in_order: upsert("", true, false),
        unique_in_order_apart: upsert("", true, true),
        dedup: upsert(&dedup, false, false),
        new_keys,
    }
}

/// The `replaced` sub-statement of the upsert: the rows `ins` applied over a stored row of
/// this sync (`sync_seq = $3`), matched on `returned_on`; none looked up for a chunk apart,
/// which meets no stored row of its sync (`apart.rs`).
fn replaced_sql(table: &str, returned_on: &str, apart: bool) -> String {
    if apart {
        return "SELECT 0::bigint AS n".to_owned();
    }
    format!(
        "SELECT count(*) AS n FROM ins i JOIN {table} o ON {returned_on}
          WHERE NOT i.inserted AND o.sync_seq = $3::bigint"
    )
}

/// The insert of the staged rows into the target (the latest line of each key, with
/// `filter`), then `order_by`.
fn staged_insert(profile: &Profile, version: Version, filter: &str, order_by: &str) -> String {
    let table = quote_qualified(&profile.schema, &profile.table);
    let (targets, selects) = targets_and_selects(profile);
    let (version_target, version_value, _) = version.insert_parts();
    format!(
        "INSERT INTO {table} AS t ({targets}, created_at, updated_at, sync_id,
                                  source_file, sync_seq, source_line{version_target})
         SELECT {selects}, now(), now(), $1::text, {source_file}, $3::bigint, s.src_line
                {version_value}
           FROM {STAGE} s {filter}
          {order_by}",
        source_file = source_file_sql(profile),
    )
}

/// The order staged rows go in: the key's parts, a text part by its bytes (`COLLATE "C"`), as
/// the direct COPY sorts them, whatever the column's collation.
fn ordered_keys(profile: &Profile, key_is: &[usize]) -> Vec<String> {
    key_is
        .iter()
        .map(|&i| {
            let text = profile
                .columns
                .get(i)
                .is_some_and(|c| c.kind == crate::profile::ColumnType::Text);
            format!("s.c{i}{}", if text { " COLLATE \"C\"" } else { "" })
        })
        .collect()
}

/// The insert of append mode.
fn append_sql(profile: &Profile) -> String {
    let table = quote_qualified(&profile.schema, &profile.table);
    let (targets, selects) = targets_and_selects(profile);
    // Append mode: every staged row inserted once. `(sync_id, source_line)` is the
    // table's own key, so a row already there (which the chunk ledger makes impossible)
    // is left alone and counted as superseded, never inserted twice.
    format!(
        "WITH ins AS (
           INSERT INTO {table} AS t ({targets}, created_at, updated_at, sync_id, source_file,
                                     sync_seq, source_line)
           SELECT {selects}, now(), now(), $1::text, {source_file}, $3::bigint, s.src_line
             FROM {STAGE} s
           ON CONFLICT ({append_key}) DO NOTHING
           RETURNING 1
         )
         SELECT count(*), 0::bigint, 0::bigint,
                (SELECT count(*) FROM {STAGE}) - count(*),
                NULL::text, NULL::bigint, NULL::text, NULL::text
           FROM ins",
        append_key = crate::pg::quote_list(&crate::pg::APPEND_KEY),
        source_file = source_file_sql(profile),
    )
}

/// The source name for `source_file`, cut to the column's length when an adopted table keeps
/// it as `varchar(n)` (read once per statement from the catalog), so that a long name never
/// fails a chunk.
fn source_file_sql(profile: &Profile) -> String {
    fit_text_sql("$2::text", &profile.schema, &profile.table, "source_file")
}

/// The staging table: one column per profile column, the source line, the row's own version.
fn create_stage(profile: &Profile, version: Version) -> String {
    let stage_cols: Vec<String> = profile
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("c{i} {}", sql_type(c.kind)))
        .collect();
    format!(
        "CREATE TEMP TABLE datsync_stage ({}, src_line bigint{}) ON COMMIT DROP",
        stage_cols.join(", "),
        if version.row {
            ", src_version text COLLATE \"C\""
        } else {
            ""
        }
    )
}

/// Which halves of a row version a profile has (see `profile/version.rs`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Version {
    /// The row's own (`version` columns): staged as `src_version`.
    pub row: bool,
    /// The file's (`version_from_name`): the upsert's `$4`, NULL when the name has none.
    pub file: bool,
}

impl Version {
    pub(super) fn of(profile: &Profile) -> Self {
        let v = profile.version.as_ref();
        Self {
            row: v.is_some_and(|v| v.columns.is_some()),
            file: v.is_some_and(|v| v.from_name.is_some()),
        }
    }

    pub(super) fn any(self) -> bool {
        self.row || self.file
    }

    /// Whether the stored row `o` is at least as new as the staged row `s` by the guard's
    /// order (the guard of [`Self::insert_parts`] negated): true of every staged row of a key
    /// the upsert left alone, since the row it tried (the key's newest in the chunk, by the
    /// same order) lost to `o`. A cheap filter before the anti-join with the applied rows:
    /// when the chunk applies its rows, no joined row passes it.
    fn beaten(self) -> String {
        if self.any() {
            format!(
                "(COALESCE(o.{ROW_VERSION_COLUMN}, '') COLLATE \"C\",
                  COALESCE(o.sync_seq, -1), COALESCE(o.source_line, -1))
              >= (COALESCE({}, '') COLLATE \"C\", $3::bigint, s.src_line)",
                self.value()
            )
        } else {
            "(COALESCE(o.sync_seq, -1), COALESCE(o.source_line, -1)) >= ($3::bigint, s.src_line)"
                .to_owned()
        }
    }

    /// The stored row's version as text in the counting CTEs (`o` the stored row); NULL
    /// without a version (the table then has no `row_version`).
    fn stored(self) -> String {
        if self.any() {
            format!("o.{ROW_VERSION_COLUMN}::text")
        } else {
            "NULL::text".to_owned()
        }
    }

    /// The filter of the upsert that reduces in-chunk duplicates: a staged row is kept only
    /// when no row with the same key is newer — a later line (ties broken by ctid), after a
    /// newer version when rows have one (none: the oldest) — so `ON CONFLICT` never sees a
    /// key twice (no 21000). A hash anti-join on the key: cheaper than sorting the wide
    /// rows. When the loader has counted as many distinct keys as rows, it is left out. A
    /// composite key is one key: every part equal.
    fn dedup(self, key_is: &[usize]) -> String {
        let same_key: Vec<String> = key_is.iter().map(|i| format!("d.c{i} = s.c{i}")).collect();
        let same_key = same_key.join(" AND ");
        if self.row {
            format!(
                "WHERE NOT EXISTS (
                   SELECT 1 FROM {STAGE} d
                    WHERE {same_key}
                      AND (COALESCE(d.src_version, '') COLLATE \"C\", d.src_line, d.ctid)
                        > (COALESCE(s.src_version, '') COLLATE \"C\", s.src_line, s.ctid))"
            )
        } else {
            format!(
                "WHERE NOT EXISTS (
                   SELECT 1 FROM {STAGE} d
                    WHERE {same_key}
                      AND (d.src_line > s.src_line
                           OR (d.src_line = s.src_line AND d.ctid > s.ctid)))"
            )
        }
    }

    /// The upsert's extra target column, its value, and the guard of `DO UPDATE`: the
    /// incoming row replaces the stored one only when its `(row_version, sync_seq,
    /// source_line)` is greater (a missing one is the oldest); without a version,
    /// `(sync_seq, source_line)` as before.
    fn insert_parts(self) -> (String, String, String) {
        if !self.any() {
            return (
                String::new(),
                String::new(),
                "(COALESCE(t.sync_seq, -1), COALESCE(t.source_line, -1))
                       < (EXCLUDED.sync_seq, EXCLUDED.source_line)"
                    .to_owned(),
            );
        }
        (
            format!(", {ROW_VERSION_COLUMN}"),
            format!(", {}", self.value()),
            format!(
                "(COALESCE(t.{ROW_VERSION_COLUMN}, '') COLLATE \"C\",
                  COALESCE(t.sync_seq, -1), COALESCE(t.source_line, -1))
               < (COALESCE(EXCLUDED.{ROW_VERSION_COLUMN}, '') COLLATE \"C\",
                  EXCLUDED.sync_seq, EXCLUDED.source_line)"
            ),
        )
    }

    /// The SQL of a staged row's `row_version`: the row's, the file's, or both joined with a
    /// missing half written `-` (which sorts before any date); NULL when it has neither.
    fn value(self) -> &'static str {
        match (self.row, self.file) {
            (false, false) => "NULL::text",
            (true, false) => "s.src_version",
            (false, true) => "$4::text",
            _ => {
                "CASE WHEN s.src_version IS NULL AND $4::text IS NULL THEN NULL
                      ELSE COALESCE(s.src_version, '-') || ' | ' || COALESCE($4::text, '-') END"
            }
        }
    }

    /// [`Self::value`] with the file's version as parameter `param` (`$3`) instead of `$4`.
    pub(super) fn value_with(self, param: &str) -> String {
        self.value().replace("$4", param)
    }
}

#[cfg(test)]
mod tests {
    use super::LoadSql;
    use crate::profile::Profile;

    /// The statements of rows staged in key order are the others without their sort, and
    /// only those: the upsert that reduces duplicate keys keeps it.
    #[test]
    fn only_the_statements_of_rows_staged_in_key_order_go_without_the_sort() {
        let p = Profile::ztdwr();
        let sql = LoadSql::new(&p);
        let [key] = p.key_positions()[..] else {
            panic!("the ztdwr profile has one key column");
        };
        let sort = format!("ORDER BY s.c{key} COLLATE \"C\"");
        let new = sql.new_keys.expect("a keyed profile");
        for (sorted, in_order) in [
            (&sql.upsert_unique, &sql.upsert_unique_in_order),
            (&new.insert_unique, &new.insert_unique_in_order),
        ] {
            assert!(sorted.contains(&sort), "{sorted}");
            assert!(!in_order.contains(&sort), "{in_order}");
            assert_eq!(&sorted.replacen(&sort, "", 1), in_order);
        }
        assert!(sql.upsert_dedup.contains(&sort));
        assert!(new.insert_dedup.contains(&sort));
    }
}
