//! Derived tables (issue 16, item 1): the built-in profile's `drivers`, upserted from each
//! chunk beside the chunk's transaction (issue 14). Two generated ZTDWR files whose documents
//! and drivers overlap are loaded in both orders, once straight and twice with a SIGKILL in
//! the middle of the second file (after a chunk's commit; between the commit of its derived
//! tables and its own) and a resume; the `drivers` table must equal what the rule gives, computed
//! here from the source rows: per driver NIK, the name and transporter of its newest row
//! (change date and time, then the later sync, then the later line) among the rows whose NIK
//! and name are not placeholders. A stored `email` survives, placeholders never become
//! drivers, a failing derived upsert is counted without failing the chunk, and a chunk whose
//! own rows fail for good after its derived rows committed keeps them (the documented price),
//! its resume ending as a clean load.
//!
//! Replay with `DATSYNC_DERIVED_SEED=<seed printed by the test>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use crate::common::{Outcome, TestDb, datsync};

pub(crate) const HEADER: &str = "surat_pengantar_brg|nik_supir|nama_supir|transporter|\
                                 no_polisi|tanggal_timbang|jam_timbang|bbm_actual|\
                                 kilometer_actual|change_date|change_time";
/// Driver NIKs as written; placeholders (`-`, `0`, `n/a`) are never drivers.
const NIKS: [&str; 7] = ["0012345", "0012346", "0099001", "7", "-", "0", "n/a"];
/// Names as written; `""` and `-` are no name.
const NAMES: [&str; 6] = ["BUDI", "SITI", "RENATA", "Ánh", "-", ""];
const TRANSPORTERS: [&str; 3] = ["T100", "T200", "T300"];
/// Change dates (`""`: no version, the oldest) and the version date the rule reads.
const DATES: [(&str, Option<&str>); 4] = [
    ("", None),
    ("20250128", Some("2025-01-28")),
    ("20250129", Some("2025-01-29")),
    ("20250130", Some("2025-01-30")),
];
const TIMES: [(&str, &str); 3] = [
    ("080000", "08:00:00"),
    ("093000", "09:30:00"),
    ("120000", "12:00:00"),
];
const PLACEHOLDERS: [&str; 4] = ["-", "0", "N/A", ""];
/// The driver whose `email` another system keeps (seeded before the first file).
const EMAIL_NIK: &str = "0012345";

#[derive(Debug, Clone)]
struct Row {
    line: u64,
    doc: String,
    nik: &'static str,
    name: &'static str,
    transporter: &'static str,
    date: usize,
    time: usize,
}

#[derive(Debug, Clone)]
struct Gen {
    name: String,
    rows: Vec<Row>,
}

impl Gen {
    /// `rows` rows with distinct document keys drawn from a pool shared with the other file.
    fn new(rng: &mut ChaCha8Rng, name: &str, rows: u64) -> Self {
        let mut docs: Vec<u32> = (0..60).collect();
        let rows = (0..rows)
            .map(|i| {
                let d = docs.swap_remove(rng.random_range(0..docs.len()));
                Row {
                    line: i + 2,
                    doc: format!("SPB{d:04}"),
                    nik: NIKS[rng.random_range(0..NIKS.len())],
                    name: NAMES[rng.random_range(0..NAMES.len())],
                    transporter: TRANSPORTERS[rng.random_range(0..TRANSPORTERS.len())],
                    date: rng.random_range(0..DATES.len()),
                    time: rng.random_range(0..TIMES.len()),
                }
            })
            .collect();
        Self {
            name: name.to_owned(),
            rows,
        }
    }

    fn write(&self, dir: &Path) -> PathBuf {
        let mut text = format!("{HEADER}\n");
        for r in &self.rows {
            let fields = [
                r.doc.as_str(),
                r.nik,
                r.name,
                r.transporter,
                "B 1234 XY",
                "20250128",
                "101500",
                "42,5",
                "120",
                DATES[r.date].0,
                TIMES[r.time].0,
            ];
            text.push_str(&fields.join("|"));
            text.push('\n');
        }
        let path = dir.join(&self.name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The row's version as the main table orders it (`""`: none, the oldest).
    fn version(r: &Row) -> String {
        DATES[r.date]
            .1
            .map(|d| format!("{d} {}", TIMES[r.time].1))
            .unwrap_or_default()
    }
}

fn placeholder(v: &str) -> bool {
    PLACEHOLDERS.contains(&v.trim().to_uppercase().as_str())
}

/// The rule: per NIK, (name, transporter) of the newest (version, sync order, line) row whose
/// NIK and name are not placeholders. `files` in load order.
fn expected(files: &[&Gen]) -> BTreeMap<String, (String, String)> {
    type Order = (String, usize, u64);
    let mut best: BTreeMap<String, (Order, (String, String))> = BTreeMap::new();
    for (seq, f) in files.iter().enumerate() {
        for r in &f.rows {
            if placeholder(r.nik) || placeholder(r.name) {
                continue;
            }
            let order = (Gen::version(r), seq, r.line);
            let value = (r.name.to_owned(), r.transporter.to_owned());
            match best.get(r.nik) {
                Some((o, _)) if *o >= order => {}
                _ => {
                    best.insert(r.nik.to_owned(), (order, value));
                }
            }
        }
    }
    best.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

fn drivers(db: &TestDb) -> BTreeMap<String, (String, String)> {
    db.query(
        "SELECT nik, nama, COALESCE(transporter, ''), id_karyawan FROM drivers ORDER BY nik",
        &[],
    )
    .iter()
    .map(|r| {
        let nik: String = r.get(0);
        assert_eq!(r.get::<_, Option<String>>(3).as_deref(), Some(nik.as_str()));
        (nik, (r.get(1), r.get(2)))
    })
    .collect()
}

struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn run(&self, db: &TestDb, file: &Path, env: &[(&str, &str)]) -> Outcome {
        let ck = self.dir.path().join("ck");
        datsync(
            self.dir.path(),
            &[
                "run",
                file.to_str().unwrap(),
                "--database-url",
                &db.url(),
                "--checkpoint-dir",
                ck.to_str().unwrap(),
                "--chunk-size",
                "4",
                "--json",
            ],
            env,
        )
    }
}

pub(crate) fn seed() -> u64 {
    crate::common::seed("DATSYNC_DERIVED_SEED")
}

/// Loads both files in each order, straight and with a SIGKILL during the second file
/// followed by a resume (`run` of the same file continues its sync): the drivers table is
/// the rule's, the seeded email survives, no placeholder is a driver.
#[test]
fn drivers_after_two_overlapping_files_in_both_orders_and_a_crash_follow_the_rule() {
    let seed = seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bench = Bench {
        dir: tempfile::tempdir().unwrap(),
    };
    let a = Gen::new(&mut rng, "ZTDWR_20250128.dat", 30);
    let b = Gen::new(&mut rng, "ZTDWR_20250129.dat", 30);
    let (pa, pb) = (a.write(bench.dir.path()), b.write(bench.dir.path()));
    for (first, second, p1, p2) in [(&a, &b, &pa, &pb), (&b, &a, &pb, &pa)] {
        // A kill after a chunk's commit, and one between the commit of its derived tables
        // (on the loader's second connection) and its own: the resume applies that chunk's
        // drivers again, which changes nothing. With three loaders, chunks (and their
        // derived transactions) commit side by side and out of order.
        for (kill, jobs) in [
            (None, "1"),
            (None, "3"),
            (Some("chunk_committed:3"), "1"),
            (Some("derived_committed:3"), "1"),
            (Some("derived_committed:3"), "3"),
        ] {
            let crash = kill.is_some();
            let jobs = ("DATSYNC_JOBS", jobs);
            let context = format!(
                "seed {seed}, {} then {}, kill {kill:?}, {jobs:?}",
                first.name, second.name
            );
            let db = TestDb::new();
            db.init();
            db.batch(&format!(
                "INSERT INTO drivers (id_karyawan, nik, nama, email) \
                 VALUES ('{EMAIL_NIK}', '{EMAIL_NIK}', 'OLD NAME', 'budi@example.com'),
                        ('5555', '5555', 'NOT IN ANY FILE', 'x@example.com')"
            ));
            let out = bench.run(&db, p1, &[jobs]);
            assert_eq!(out.code(), Some(0), "{context}: {}", out.describe());
            if let Some(kill) = kill {
                let out = bench.run(&db, p2, &[("DATSYNC_KILL_AT", kill), jobs]);
                assert!(out.killed(), "{context}: {}", out.describe());
                db.wait_for_other_sessions();
            }
            let out = bench.run(&db, p2, &[jobs]);
            assert_eq!(out.code(), Some(0), "{context}: {}", out.describe());
            let summary = out.summary();
            assert_eq!(summary["derived_failed"], 0, "{context}");
            assert_eq!(summary["resumed"], crash, "{context}");
            let mut want = expected(&[first, second]);
            want.insert("5555".into(), ("NOT IN ANY FILE".into(), String::new()));
            want.entry(EMAIL_NIK.into())
                .or_insert_with(|| ("OLD NAME".into(), String::new()));
            let got: BTreeMap<String, (String, String)> = db
                .query(
                    "SELECT nik, nama, COALESCE(transporter, '') FROM drivers",
                    &[],
                )
                .iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect();
            assert_eq!(got, want, "{context}");
            let emails: Vec<(String, Option<String>)> = db
                .query(
                    "SELECT nik, email FROM drivers WHERE email IS NOT NULL ORDER BY nik",
                    &[],
                )
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            assert_eq!(
                emails,
                vec![
                    (EMAIL_NIK.to_owned(), Some("budi@example.com".to_owned())),
                    ("5555".to_owned(), Some("x@example.com".to_owned())),
                ],
                "{context}: a stored email is never overwritten"
            );
            let bad: i64 = db.query(
                "SELECT count(*) FROM drivers WHERE upper(btrim(nik)) IN ('-', '0', 'N/A', '')
                    OR nama IS NULL OR upper(btrim(nama)) IN ('-', '')",
                &[],
            )[0]
            .get(0);
            assert_eq!(bad, 0, "{context}: placeholders are dropped");
            // Drivers the rule finds (not only the seeded ones) exist in both files' mix.
            assert!(drivers(&db).len() >= 3, "{context}");
        }
    }
}

/// A derived upsert that fails (here a constraint the table's owner added) is rolled back to
/// its savepoint: the chunk's rows are loaded, the status is SUCCESS, and the failure is
/// counted in the ledger and the summary.
#[test]
fn a_failing_derived_upsert_is_counted_and_the_chunk_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new();
    db.init();
    db.batch("ALTER TABLE drivers ADD CONSTRAINT no_bad CHECK (nama <> 'BAD')");
    let mut text = format!("{HEADER}\n");
    for (i, name) in ["GOOD", "BAD", "FINE", "OK"].iter().enumerate() {
        let _ = writeln!(
            text,
            "SPB{i}|00{i}|{name}|T1|B 1|20250128|101500|1|1|20250128|080000"
        );
    }
    let path = dir.path().join("ZTDWR_20250128.dat");
    std::fs::write(&path, text).unwrap();
    let bench = Bench {
        dir: tempfile::tempdir().unwrap(),
    };
    let out = bench.run(&db, &path, &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "SUCCESS", "{s}");
    // Chunks of 4 rows: one chunk, its derived upsert failed.
    assert_eq!(s["derived_failed"], 1, "{s}");
    let loaded: i64 = db.query("SELECT count(*) FROM transport_documents", &[])[0].get(0);
    assert_eq!(loaded, 4);
    let ledger: i64 =
        db.query("SELECT sum(derived_failed)::bigint FROM sync_chunks", &[])[0].get(0);
    assert_eq!(ledger, 1);
    let drivers: i64 = db.query("SELECT count(*) FROM drivers", &[])[0].get(0);
    assert_eq!(drivers, 0, "the failed upsert was rolled back whole");
    assert!(
        out.stderr.contains("derived table not updated"),
        "the failure is logged: {}",
        out.describe()
    );
}

/// The price of the derived upserts beside the chunk's transaction (`load/derived.rs`): a
/// chunk whose own rows then fail for good — here a CHECK the table's owner added — leaves
/// its drivers written. Once the owner drops the rule, the same command finishes the sync,
/// and the table and the drivers are those of a load that never failed.
#[test]
fn a_chunk_failing_after_its_derived_rows_keeps_them_and_its_resume_ends_as_a_clean_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("{HEADER}\n");
    for i in 0..8 {
        let plate = if i == 6 { "BAD 1" } else { "B 1" };
        let _ = writeln!(
            text,
            "SPB{i}|00{i}|NAME{i}|T1|{plate}|20250128|101500|1|1|20250128|080000"
        );
    }
    let path = dir.path().join("ZTDWR_20250128.dat");
    std::fs::write(&path, text).unwrap();
    let run = |db: &TestDb, bench: &Bench| bench.run(db, &path, &[("RUST_LOG", "warn")]);
    let count = |db: &TestDb, sql: &str| -> i64 { db.query(sql, &[])[0].get(0) };

    // The same file into a database without the owner's rule.
    let reference = TestDb::new();
    let out = run(
        &reference,
        &Bench {
            dir: tempfile::tempdir().unwrap(),
        },
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());

    let db = TestDb::new();
    db.init();
    db.batch(
        "ALTER TABLE transport_documents ADD CONSTRAINT owner_rule CHECK (no_polisi <> 'BAD 1')",
    );
    let bench = Bench {
        dir: tempfile::tempdir().unwrap(),
    };
    let out = run(&db, &bench);
    assert_ne!(out.code(), Some(0), "{}", out.describe());
    // Chunks of 4 rows: the first committed, the second (line 8 breaks the rule) not.
    assert_eq!(count(&db, "SELECT count(*) FROM sync_chunks"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM transport_documents"), 4);
    // Its drivers were committed beside it before its rows failed: all eight are there.
    assert_eq!(drivers(&db), drivers(&reference), "the documented price");

    db.batch("ALTER TABLE transport_documents DROP CONSTRAINT owner_rule");
    let out = run(&db, &bench);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.summary()["resumed"], true, "{}", out.describe());
    assert_eq!(count(&db, "SELECT count(*) FROM sync_chunks"), 2);
    // The rows, but for the sync that loaded them and when.
    let rows = |db: &TestDb| -> Vec<String> {
        db.query(
            "SELECT (to_jsonb(t) - 'sync_id' - 'created_at' - 'updated_at')::text
               FROM transport_documents t ORDER BY 1",
            &[],
        )
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    assert_eq!(rows(&db).len(), 8);
    assert_eq!(rows(&db), rows(&reference));
    assert_eq!(drivers(&db), drivers(&reference));
}

/// The built-in profile's `drivers.drop_values`, as the profile stores them.
const DROP_VALUES: [&str; 9] = ["-", "--", ".", "0", "N/A", "NA", "#N/A", "NONE", "?"];

/// The rule computed by PostgreSQL over every loaded row (its own `btrim` and `upper`, in the
/// database's locale): per NIK, the name and transporter of the newest row by (version, sync,
/// line) whose NIK and name are not placeholders (`drop`). By NIK, bytewise.
fn drivers_by_the_rule(db: &TestDb, drop: &[&str]) -> Vec<(String, String, String)> {
    let drop: Vec<String> = drop.iter().map(|v| (*v).to_owned()).collect();
    let mut rule: Vec<(String, String, String)> = db
        .query(
            "WITH s AS (
               SELECT CASE WHEN btrim(nik_supir) = ''
                             OR upper(btrim(nik_supir)) = ANY($1::text[])
                           THEN NULL ELSE nik_supir END AS nik,
                      CASE WHEN btrim(nama_supir) = ''
                             OR upper(btrim(nama_supir)) = ANY($1::text[])
                           THEN NULL ELSE nama_supir END AS nama,
                      transporter, row_version, sync_seq, source_line
                 FROM transport_documents)
             SELECT DISTINCT ON (nik) nik, nama, transporter FROM s
              WHERE nik IS NOT NULL AND nama IS NOT NULL
              ORDER BY nik, COALESCE(row_version, '') COLLATE \"C\" DESC, sync_seq DESC,
                       source_line DESC",
            &[&drop],
        )
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    rule.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    rule
}

/// What [`load_chunks_of_drivers`] loaded, and staged for the drivers.
struct DriversLoad {
    /// The `drivers` table, by NIK bytewise.
    table: Vec<(String, String, String)>,
    loaded: u64,
    /// Rows sent for the drivers: staged by the narrow COPY, or picked on the client (from
    /// the loader's debug log).
    staged: u64,
}

/// Two files of 3,000 rows each, in chunks of 500, with NIKs and names drawn from the forms
/// given, loaded into `db` with the profile `profile` (the built-in one when `None`).
fn load_chunks_of_drivers(
    db: &TestDb,
    seed: u64,
    niks: &[&str],
    names: &[&str],
    profile: Option<&Path>,
) -> DriversLoad {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let (mut loaded, mut staged) = (0u64, 0u64);
    for (n, name) in ["ZTDWR_20250128.dat", "ZTDWR_20250129.dat"]
        .iter()
        .enumerate()
    {
        let mut text = format!("{HEADER}\n");
        for i in 0..3_000 {
            let date = DATES[rng.random_range(0..DATES.len())].0;
            let time = TIMES[rng.random_range(0..TIMES.len())].0;
            let _ = writeln!(
                text,
                "SPB{n}{i:05}|{}|{}|T{}|B 1234 XY|20250128|101500|42,5|120|{date}|{time}",
                niks[rng.random_range(0..niks.len())],
                names[rng.random_range(0..names.len())],
                rng.random_range(100..103),
            );
        }
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = run_debug(db, dir.path(), &path, "500", profile);
        assert!(
            matches!(out.code(), Some(0 | 2)),
            "seed {seed}: {}",
            out.describe()
        );
        assert_eq!(out.summary()["derived_failed"], 0, "{}", out.describe());
        loaded += out.summary()["rows_loaded"].as_u64().unwrap();
        for line in out.stderr.lines() {
            let field = |name: &str| -> u64 {
                let at = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
                line[at..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            if line.contains("derived rows staged") {
                assert!(field("staged") <= field("rows"), "{line}");
                staged += field("staged");
            } else if line.contains("derived rows picked on the client") {
                staged += field("rows");
            }
        }
    }
    let table = db
        .query(
            "SELECT nik, nama, transporter FROM drivers ORDER BY nik COLLATE \"C\"",
            &[],
        )
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    DriversLoad {
        table,
        loaded,
        staged,
    }
}

/// Only the rows the upsert can pick are sent for the drivers: each NIK's newest row with a
/// value, the placeholder test of values the client cannot decide without the database's
/// locale (not ASCII, or an `i`) asked of the database. Chunks of 500 rows naming a dozen
/// drivers in every form the test can take — padded, placeholders in any case, names with
/// `i`, `ı`, `ß`, accents, ties of version broken by line — loaded as two files: `drivers`
/// equals the rule computed by PostgreSQL over every loaded row, and fewer rows were sent
/// than loaded.
#[test]
fn the_drivers_staged_are_each_keys_newest_and_the_table_is_the_rules() {
    const NIKS: [&str; 22] = [
        "0012345", "0012346", "0099001", "7", " 0012345", "0012345 ", "00i23", "00I23", "٠٠١", "-",
        " - ", "0", "n/a", "N/A", "none", "NONE", "?", "--", ".", "#n/a", "na", "  ",
    ];
    const NAMES: [&str; 15] = [
        "BUDI", "SITI", "siti", "Siti", "RENATA", "Ánh", "ıSIK", "straße", "-", "", "none",
        " n/a ", "Nina", "BUDI ", "renata",
    ];
    let seed = seed();
    let db = TestDb::new();
    let s = load_chunks_of_drivers(&db, seed, &NIKS, &NAMES, None);
    let rule = drivers_by_the_rule(&db, &DROP_VALUES);
    // Seven NIKs once trimmed (the transform trims fields), none a placeholder.
    assert_eq!(rule.len(), 7, "seed {seed}: {rule:?}");
    assert_eq!(s.table, rule, "seed {seed}");
    assert!(
        s.staged > 0,
        "seed {seed}: the loader logs the rows it sent for the drivers"
    );
    assert!(
        s.staged < s.loaded / 2,
        "seed {seed}: {} of {} rows staged for the drivers",
        s.staged,
        s.loaded
    );
}

/// The same in a database whose `upper` is Turkish (ICU `tr-TR`: `i` is `İ`, `ı` is `I`, `ß`
/// is `SS`), with placeholders `NIL`, `I` and `STRASSE`: `nil` and `i` are names there, `ı`,
/// `NIL` and `straße` are not. The client, which cannot know the locale, asks the database
/// about such a value: `drivers` is the rule as this database computes it. The profile also takes the
/// file's date into each row's version (`own | file`). Needs a server built with ICU, as
/// PostgreSQL's packages are.
#[test]
fn in_a_turkish_database_the_drivers_are_the_rule_as_it_computes_it() {
    const NIKS: [&str; 6] = ["0012345", "0012346", "0099001", "7", "-", "nil"];
    const NAMES: [&str; 14] = [
        "BUDI", "nil", "NIL", "Nil", "i", "I", "ı", "straße", "STRASSE", "strasse", "SITI", "-",
        "nina", "NINA",
    ];
    const DROP: [&str; 5] = ["-", "NIL", "I", "STRASSE", "NONE"];
    let seed = seed();
    let db = TestDb::created_with(
        "LOCALE_PROVIDER icu ICU_LOCALE 'tr-TR' LOCALE 'C.UTF-8' TEMPLATE template0",
    );
    let turkish: String = db.query("SELECT upper('nil') || upper('ı')", &[])[0].get(0);
    assert_eq!(turkish, "NİLI", "an ICU tr-TR database");
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("tr.toml");
    let builtin = include_str!("../../../datsync/profiles/ztdwr.toml");
    let line =
        "drop_values = [\"-\", \"--\", \".\", \"0\", \"N/A\", \"NA\", \"#N/A\", \"NONE\", \"?\"]";
    assert!(builtin.contains(line), "the built-in profile's drop values");
    let drop: Vec<String> = DROP.iter().map(|v| format!("{v:?}")).collect();
    let ours = format!("drop_values = [{}]", drop.join(", "));
    // The file's date in every row's version too (`own | file`), as the upserts build it.
    let version = "version = [\"changed_date\", \"changed_time\"]";
    assert!(builtin.contains(version), "the built-in profile's version");
    let with_file = format!("{version}\nversion_from_name = 'ZTDWR_(?<date>\\d{{8}})'");
    let text = builtin.replace(line, &ours).replace(version, &with_file);
    std::fs::write(&profile, text).unwrap();
    let s = load_chunks_of_drivers(&db, seed, &NIKS, &NAMES, Some(&profile));
    let rule = drivers_by_the_rule(&db, &DROP);
    // `nil` is a driver here: `upper('nil')` is `NİL`.
    assert!(rule.iter().any(|r| r.0 == "nil"), "seed {seed}: {rule:?}");
    let versions: i64 = db.query(
        "SELECT count(*) FROM drivers WHERE row_version LIKE '% | 2025-01-2_%'",
        &[],
    )[0]
    .get(0);
    assert_eq!(
        versions,
        i64::try_from(rule.len()).unwrap(),
        "the file's date in each version"
    );
    assert_eq!(s.table, rule, "seed {seed}");
    assert!(s.staged < s.loaded, "seed {seed}");
}

/// The rule as [`drivers_by_the_rule`] computes it, with the pick's bookkeeping: per NIK,
/// `(nik, nama, transporter, row_version, sync_seq, source_line)` of its newest row.
pub(crate) type FullDriver = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn full_drivers(db: &TestDb, sql: &str) -> Vec<FullDriver> {
    db.query(sql, &[])
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

/// The arguments of `datsync run --json` of `path` into `db` in chunks of `chunk_size` (with
/// `profile`, else the built-in one), the checkpoints in `dir/ck`.
pub(crate) fn run_args(
    db: &TestDb,
    dir: &Path,
    path: &Path,
    chunk_size: &str,
    profile: Option<&Path>,
) -> Vec<String> {
    let ck = dir.join("ck");
    let mut args: Vec<String> = [
        "run",
        path.to_str().unwrap(),
        "--database-url",
        &db.url(),
        "--checkpoint-dir",
        ck.to_str().unwrap(),
        "--chunk-size",
        chunk_size,
        "--json",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(p) = profile {
        args.extend(["--profile".to_owned(), p.to_str().unwrap().to_owned()]);
    }
    args
}

/// The loader's debug log, which says how each chunk's derived rows were written.
pub(crate) const LOADER_DEBUG: (&str, &str) = ("RUST_LOG", "datsync::load=debug");

/// [`run_args`] run, the loader's debug log on.
fn run_debug(
    db: &TestDb,
    dir: &Path,
    path: &Path,
    chunk_size: &str,
    profile: Option<&Path>,
) -> Outcome {
    let args = run_args(db, dir, path, chunk_size, profile);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    datsync(dir, &args, &[LOADER_DEBUG])
}

/// How a run's chunks wrote their derived tables, from the loader's debug log: chunks whose
/// rows were picked on the client, of those the ones whose keys were all new, inserted as
/// they are (the others upserted), and chunks whose rows were staged for the upsert that
/// tests each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DerivedLog {
    pub picked: usize,
    pub inserted: usize,
    pub staged: usize,
}

impl DerivedLog {
    pub(crate) fn of(stderr: &str) -> Self {
        let count = |what: &str| stderr.lines().filter(|l| l.contains(what)).count();
        Self {
            picked: count("derived rows picked on the client, one per key"),
            inserted: count("derived rows of new keys inserted as they are"),
            staged: count("derived rows staged"),
        }
    }
}

/// A `run` of `path` into `db` in chunks of `chunk_size` (with `profile`, else the built-in
/// one), the loader's debug log on: it must succeed with no derived failure.
pub(crate) fn run_logging_derived(
    db: &TestDb,
    dir: &Path,
    path: &Path,
    chunk_size: &str,
    profile: Option<&Path>,
) -> DerivedLog {
    let out = run_debug(db, dir, path, chunk_size, profile);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.summary()["derived_failed"], 0, "{}", out.describe());
    assert!(
        !out.stderr.contains("derived table not updated"),
        "{}",
        out.stderr
    );
    DerivedLog::of(&out.stderr)
}

/// The drivers by the rule over the loaded rows (values and bookkeeping), with the stored
/// drivers of the test below: `older` updated (its transporter kept where the newest row has
/// none), `newer` as stored (`""`: none).
pub(crate) fn rule_with_stored(db: &TestDb, older: &str, newer: &str) -> Vec<FullDriver> {
    full_drivers(
        db,
        &format!(
            "WITH s AS (
               SELECT nik_supir AS nik,
                      CASE WHEN btrim(nama_supir) = ''
                             OR upper(btrim(nama_supir)) = ANY('{{{drop}}}')
                           THEN NULL ELSE nama_supir END AS nama,
                      CASE WHEN btrim(transporter) = ''
                             OR upper(btrim(transporter)) = ANY('{{{drop}}}')
                           THEN NULL ELSE transporter END AS transporter,
                      row_version, sync_seq, source_line
                 FROM transport_documents),
             r AS (
               SELECT DISTINCT ON (nik) nik, nama, transporter, row_version, sync_seq,
                      source_line FROM s WHERE nama IS NOT NULL
                ORDER BY nik, COALESCE(row_version, '') COLLATE \"C\" DESC, sync_seq DESC,
                         source_line DESC)
             SELECT * FROM (
               SELECT nik, nama,
                      -- An update keeps a stored transporter where the newest row has none.
                      CASE WHEN nik = '{older}' THEN COALESCE(transporter, 'T0')
                           ELSE transporter END,
                      row_version, sync_seq, source_line
                 FROM r WHERE nik <> '{newer}'
               UNION ALL
               SELECT '{newer}', 'NEWER', 'T9', '2099-01-01 00:00:00', 0::bigint, 1::bigint
                WHERE '{newer}' <> ''
             ) u ORDER BY nik COLLATE \"C\"",
            drop = DROP_VALUES.join(","),
        ),
    )
}

/// Three chunks of 500 rows for the test below, each naming ~250 drivers of its own, and per
/// chunk the NIKs its pick keeps (those with a name), bytewise.
pub(crate) fn chunks_of_new_drivers(
    seed: u64,
) -> (String, Vec<std::collections::BTreeSet<String>>) {
    const NAMES: [&str; 6] = ["BUDI", "SITI", "siti", "Ánh", "-", ""];
    const TRANSPORTERS: [&str; 5] = ["T100", "T101", "-", "n/a", "Tİ"];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut text = format!("{HEADER}\n");
    let mut picked = Vec::new();
    for chunk in 0..3 {
        let mut keys = std::collections::BTreeSet::new();
        for i in 0..500 {
            let nik = format!("32{chunk}{:05}", rng.random_range(0..300));
            let name = NAMES[rng.random_range(0..NAMES.len())];
            if !matches!(name, "-" | "") {
                keys.insert(nik.clone());
            }
            let date = DATES[rng.random_range(1..DATES.len())].0;
            let time = TIMES[rng.random_range(0..TIMES.len())].0;
            let _ = writeln!(
                text,
                "SPB{chunk}{i:05}|{nik}|{name}|{}|B 1234 XY|20250128|101500|42,5|120|{date}|{time}",
                TRANSPORTERS[rng.random_range(0..TRANSPORTERS.len())],
            );
        }
        picked.push(keys);
    }
    (text, picked)
}

/// Each chunk's drivers picked on the client — one row per NIK, names and transporters in
/// forms the client decides (placeholders among them) and forms it asks the database about
/// (`siti`, `Ánh`, `Tİ`) — and upserted as they are, no row staged for the upsert that tests
/// each value: three chunks of 500 rows, each naming its own ~250 drivers, into a table that
/// holds two of them already, one older than the file's rows (updated, its transporter kept
/// where the newest row has none) and one newer (kept). The table is the rule PostgreSQL
/// computes over the loaded rows — values and bookkeeping — but for the newer stored driver.
#[test]
fn drivers_picked_on_the_client_are_upserted_as_they_are_new_and_stored_alike() {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let (text, picked) = chunks_of_new_drivers(seed);
    let older = picked[0].iter().nth(1).unwrap().clone();
    let newer = picked[1].iter().next().unwrap().clone();
    let path = dir.path().join("ZTDWR_20250128.dat");
    std::fs::write(&path, text).unwrap();
    let db = TestDb::new();
    db.init();
    db.batch(&format!(
        "INSERT INTO drivers (id_karyawan, nik, nama, transporter, row_version, sync_seq,
                              source_line, updated_at)
         VALUES ('{older}', '{older}', 'OLDER', 'T0', '2025-01-01 00:00:00', 0, 1, now()),
                ('{newer}', '{newer}', 'NEWER', 'T9', '2099-01-01 00:00:00', 0, 1, now())"
    ));
    let log = run_logging_derived(&db, dir.path(), &path, "500", None);
    // Chunks 0 and 1 each name a stored driver: upserted; chunk 2 names new ones only.
    assert_eq!(
        log,
        DerivedLog {
            picked: 3,
            inserted: 1,
            staged: 0
        },
        "seed {seed}: every chunk decided on the client, one inserted as it is"
    );
    let rule = rule_with_stored(&db, &older, &newer);
    let table = full_drivers(
        &db,
        "SELECT nik, nama, transporter, row_version, sync_seq, source_line FROM drivers
          ORDER BY nik COLLATE \"C\"",
    );
    assert_eq!(
        table.len(),
        picked
            .iter()
            .map(std::collections::BTreeSet::len)
            .sum::<usize>()
    );
    assert_eq!(table, rule, "seed {seed}");
    let bad: i64 = db.query(
        "SELECT count(*) FROM drivers WHERE id_karyawan IS DISTINCT FROM nik
            OR updated_at IS NULL",
        &[],
    )[0]
    .get(0);
    assert_eq!(bad, 0, "seed {seed}");
}

/// A profile with two derived tables: `units` keyed by an integer column (picked on the
/// client), `days` keyed by a date (which the client does not pick: its rows are staged and
/// upserted by the rule in SQL). Both share the main column `who`, with placeholders of their
/// own; `days` takes the newest row's, none included.
const TWO_DERIVED: &str = r#"
name = "visits"
table = "visits"
key = "doc"

[format]
delimiter = ","

[[columns]]
source = "doc"
type = "text"
required = true
not_empty = true
[[columns]]
source = "unit"
type = "integer"
[[columns]]
source = "day"
type = "date"
[[columns]]
source = "who"
type = "text"

[[derived]]
table = "units"
key = "unit"
drop_values = ["-", "NIL"]
columns = [{ target = "unit", from = "unit", required = true }, { target = "who", from = "who", required = true }]

[[derived]]
table = "days"
key = "day"
drop_values = ["-", "NONE"]
columns = [{ target = "day", from = "day", required = true }, { target = "who", from = "who", update = "replace" }]
"#;

/// Two derived tables of one profile written from the same chunks by the two ways: the
/// integer-keyed one from the rows the client picked, the date-keyed one from its staged
/// rows; each equals the rule PostgreSQL computes over the loaded rows with its own
/// placeholders (`nil` is a placeholder of one table and a value of the other).
#[test]
fn two_derived_tables_one_picked_on_the_client_one_staged_follow_the_rule() {
    const WHOS: [&str; 7] = ["ann", "BOB", "nil", "none", "-", "", "Çem"];
    let seed = seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("visits.toml");
    std::fs::write(&profile, TWO_DERIVED).unwrap();
    let mut text = String::from("doc,unit,day,who\n");
    for i in 0..1_196 {
        let _ = writeln!(
            text,
            "D{i:05},{},2025-01-{:02},{}",
            rng.random_range(-40..40),
            rng.random_range(1..29),
            WHOS[rng.random_range(0..WHOS.len())],
        );
    }
    // Whatever the seed, one unit's newest `who` is `none` (a placeholder of days only) and
    // one day's newest is `nil` (a placeholder of units only), each after an older value.
    text.push_str("D01196,77,2025-01-30,BOB\nD01197,77,2025-01-30,none\n");
    text.push_str("D01198,78,2025-01-29,ann\nD01199,78,2025-01-29,nil\n");
    let path = dir.path().join("visits.csv");
    std::fs::write(&path, text).unwrap();
    let db = TestDb::new();
    let log = run_logging_derived(&db, dir.path(), &path, "300", Some(&profile));
    assert_eq!(
        (log.picked, log.staged),
        (4, 4),
        "seed {seed}: units picked, days staged"
    );
    // The first chunk's units are new (inserted); the later chunks name some of them again.
    assert!((1..4).contains(&log.inserted), "seed {seed}: {log:?}");
    let rule = |key: &str, drop: &str, required: bool| -> Vec<(String, Option<String>)> {
        db.query(
            &format!(
                "WITH s AS (
                   SELECT {key}::text AS k,
                          CASE WHEN btrim(who) = '' OR upper(btrim(who)) = ANY('{{{drop}}}')
                               THEN NULL ELSE who END AS who, sync_seq, source_line
                     FROM visits WHERE {key} IS NOT NULL)
                 SELECT DISTINCT ON (k) k, who FROM s {filter}
                  ORDER BY k, sync_seq DESC, source_line DESC",
                filter = if required {
                    "WHERE who IS NOT NULL"
                } else {
                    ""
                },
            ),
            &[],
        )
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    let table = |sql: &str| -> Vec<(String, Option<String>)> {
        db.query(sql, &[])
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let units = table("SELECT unit::text, who FROM units ORDER BY unit::text");
    assert_eq!(units, rule("unit", "-,NIL", true), "seed {seed}: units");
    let days = table("SELECT day::text, who FROM days ORDER BY day::text");
    assert_eq!(days, rule("day", "-,NONE", false), "seed {seed}: days");
    let has = |rows: &[(String, Option<String>)], key: &str, who: Option<&str>| {
        rows.contains(&(key.to_owned(), who.map(str::to_owned)))
    };
    assert!(has(&units, "77", Some("none")), "seed {seed}: {units:?}");
    assert!(has(&units, "78", Some("ann")), "seed {seed}: {units:?}");
    assert!(
        has(&days, "2025-01-29", Some("nil")),
        "seed {seed}: {days:?}"
    );
    assert!(has(&days, "2025-01-30", None), "seed {seed}: {days:?}");
}
