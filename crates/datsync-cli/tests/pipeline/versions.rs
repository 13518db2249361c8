//! Newest by the data's own clock (issue 22), model-based: three generated files with
//! overlapping keys, in-file duplicates and change times drawn from a few values (ties,
//! blanks, one format of a date written two ways, an unreadable time), loaded with
//! `datsync run` in every order of the files, with SIGKILLs at random points and the killed
//! sync resumed right away or only after the next file — so syncs interleave and chunks of
//! an earlier sync commit after a later sync's. A model decides the row of every key: the
//! newest version (the row's change date and time, then the file name's date; a missing or
//! unreadable one the oldest), then the later sync, then the later line. The table always
//! holds exactly it, every key was inserted once, and every sync's counts add up.
//!
//! Replay a failure with `DATSYNC_VERSIONS_SEED=<seed printed by the test>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use crate::common::{Outcome, TestDb, assert_counts_add_up, datsync};

pub(crate) const PROFILE: &str = r#"
name = "versioned"
table = "vdocs"
key = "id"
version = ["changed_date", "changed_time"]
version_from_name = 'V_(?<date>\d{8})'

[[columns]]
source = "id"
type = "text"
required = true
not_empty = true
[[columns]]
source = "note"
type = "text"
[[columns]]
target = "changed_date"
source = "change_date"
type = "date_timestamp"
[[columns]]
target = "changed_time"
source = "change_time"
type = "text"
"#;

/// Change dates as written, and the date the model reads (`None`: no version).
pub(crate) const DATES: [(&str, Option<&str>); 5] = [
    ("", None),
    ("20250128", Some("2025-01-28")),
    ("28.01.2025", Some("2025-01-28")),
    ("20250129", Some("2025-01-29")),
    ("2025-01-30", Some("2025-01-30")),
];
/// Change times as written, and the time the model reads (`None`: unreadable).
pub(crate) const TIMES: [(&str, Option<&str>); 5] = [
    ("", Some("00:00:00")),
    ("0900", Some("09:00:00")),
    ("093000", Some("09:30:00")),
    ("09:30:00", Some("09:30:00")),
    ("2400", None),
];
const KEYS: u32 = 12;
const ROWS: u64 = 24;
/// Kill points of a run (the first `n` is drawn from 1..=3; an unreached one lets it finish).
const EVENTS: [&str; 5] = [
    "chunk_converted",
    "chunk_staged",
    "chunk_committed",
    "chunk_completed",
    "sync_finished",
];

/// One generated row.
#[derive(Debug, Clone)]
struct Row {
    line: u64,
    key: String,
    note: String,
    date: usize,
    time: usize,
}

/// One generated file.
#[derive(Debug, Clone)]
struct Gen {
    name: String,
    /// The name's date as the model reads it.
    file_version: String,
    rows: Vec<Row>,
}

impl Gen {
    fn new(rng: &mut ChaCha8Rng, day: u32) -> Self {
        let name = format!("V_202501{day:02}.dat");
        let rows = (0..ROWS)
            .map(|i| {
                let line = i + 2;
                Row {
                    line,
                    key: format!("k{:02}", rng.random_range(0..KEYS)),
                    note: format!("{name}:{line}"),
                    date: rng.random_range(0..DATES.len()),
                    time: rng.random_range(0..TIMES.len()),
                }
            })
            .collect();
        Self {
            file_version: format!("2025-01-{day:02} 00:00:00"),
            name,
            rows,
        }
    }

    fn write(&self, dir: &Path) -> PathBuf {
        let mut text = String::from("id|note|change_date|change_time\n");
        for r in &self.rows {
            let fields = [r.key.as_str(), &r.note, DATES[r.date].0, TIMES[r.time].0];
            text.push_str(&fields.join("|"));
            text.push('\n');
        }
        let path = dir.join(&self.name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The model's version of a row: `<row's> | <file's>`, `-` for a missing half.
    fn version(&self, r: &Row) -> String {
        let own = match (DATES[r.date].1, TIMES[r.time].1) {
            (Some(d), Some(t)) => format!("{d} {t}"),
            _ => "-".to_owned(),
        };
        format!("{own} | {}", self.file_version)
    }
}

/// The row each key must end with: newest `(version, sync_seq, line)`.
fn model(files: &[Gen], seq: &BTreeMap<String, i64>) -> Vec<(String, String, String)> {
    let mut best: BTreeMap<String, ((String, i64, u64), String)> = BTreeMap::new();
    for f in files {
        for r in &f.rows {
            let order = (f.version(r), seq[&f.name], r.line);
            let e = best
                .entry(r.key.clone())
                .or_insert_with(|| (order.clone(), r.note.clone()));
            if order > e.0 {
                *e = (order, r.note.clone());
            }
        }
    }
    best.into_iter()
        .map(|(k, ((v, _, _), note))| (k, note, v))
        .collect()
}

struct Bench {
    dir: tempfile::TempDir,
    profile: PathBuf,
    /// `--jobs` of every run: loaders side by side in one process.
    jobs: &'static str,
}

impl Bench {
    /// A directory of its own with `profile` written in it as `versioned.toml`.
    fn new(profile: &str, jobs: &'static str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("versioned.toml");
        std::fs::write(&path, profile).unwrap();
        Self {
            dir,
            profile: path,
            jobs,
        }
    }

    fn run(&self, db: &TestDb, file: &Path, env: &[(&str, &str)]) -> Outcome {
        let url = db.url();
        let ck = self.dir.path().join("ck");
        datsync(
            self.dir.path(),
            &[
                "run",
                file.to_str().unwrap(),
                "--profile",
                self.profile.to_str().unwrap(),
                "--database-url",
                &url,
                "--checkpoint-dir",
                ck.to_str().unwrap(),
                "--chunk-size",
                "5",
                "--jobs",
                self.jobs,
                "--json",
            ],
            env,
        )
    }

    /// Runs `file` to the end without a kill: the sync's summary.
    fn finish(&self, db: &TestDb, file: &Path, context: &str) -> serde_json::Value {
        let out = self.run(db, file, &[]);
        assert_eq!(out.code(), Some(0), "{context}: {}", out.describe());
        out.summary()
    }

    /// `datsync ARGS --database-url … --profile …` in the bench's directory.
    fn cli(&self, db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let url = db.url();
        let mut all = args.to_vec();
        all.extend([
            "--database-url",
            &url,
            "--profile",
            self.profile.to_str().unwrap(),
        ]);
        datsync(self.dir.path(), &all, env)
    }

    /// `datsync status SYNC` as text and as `--json`.
    fn status(&self, db: &TestDb, sync: &str) -> (String, serde_json::Value) {
        self.status_env(db, sync, &[])
    }

    /// [`Self::status`] with `env` (the storage account of a checkpoint in blob storage).
    fn status_env(
        &self,
        db: &TestDb,
        sync: &str,
        env: &[(&str, &str)],
    ) -> (String, serde_json::Value) {
        let text = self.cli(db, &["status", sync], env);
        assert_eq!(text.code(), Some(0), "{}", text.describe());
        let json = self.cli(db, &["status", sync, "--json"], env);
        assert_eq!(json.code(), Some(0), "{}", json.describe());
        (text.stdout, serde_json::from_str(&json.stdout).unwrap())
    }
}

/// Loads `order` of `files`, each run killed at a random point with probability one half;
/// a killed sync is finished right away or after the next file. Returns the summaries.
fn load(
    bench: &Bench,
    db: &TestDb,
    files: &[(Gen, PathBuf)],
    order: &[usize],
    rng: &mut ChaCha8Rng,
    context: &str,
) -> Vec<serde_json::Value> {
    let mut summaries = Vec::new();
    let mut pending: Option<usize> = None;
    for &i in order {
        let path = &files[i].1;
        let out = if rng.random_bool(0.5) {
            let kill = format!(
                "{}:{}",
                EVENTS[rng.random_range(0..EVENTS.len())],
                rng.random_range(1..=3)
            );
            bench.run(db, path, &[("DATSYNC_KILL_AT", kill.as_str())])
        } else {
            bench.run(db, path, &[])
        };
        db.wait_for_other_sessions();
        let killed = out.killed();
        if let Some(p) = pending.take() {
            summaries.push(bench.finish(db, &files[p].1, context));
        }
        if killed {
            if rng.random_bool(0.5) {
                pending = Some(i);
            } else {
                summaries.push(bench.finish(db, path, context));
            }
        } else {
            assert_eq!(out.code(), Some(0), "{context}: {}", out.describe());
            summaries.push(out.summary());
        }
    }
    if let Some(p) = pending {
        summaries.push(bench.finish(db, &files[p].1, context));
    }
    summaries
}

/// The table holds the model's row of every key (the newest version, then the later sync,
/// then the later line), every key was inserted once, every file ended SUCCESS, and every
/// sync's counts add up.
fn assert_newest_per_key(
    db: &TestDb,
    gens: &[Gen],
    summaries: &[serde_json::Value],
    context: &str,
) {
    // A sync killed before its checkpoint existed loaded nothing and is left behind; a
    // sync killed once finished is loaded again by a new sync (the later one counts).
    let seq: BTreeMap<String, i64> = db
        .query(
            "SELECT file_name, max(sync_seq) FROM sync_metadata
              WHERE status = 'SUCCESS' GROUP BY file_name",
            &[],
        )
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        seq.len(),
        gens.len(),
        "{context}: every file loaded: {seq:?}"
    );
    let table: Vec<(String, String, String)> = db
        .query("SELECT id, note, row_version FROM vdocs ORDER BY id", &[])
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(table, model(gens, &seq), "{context}");
    let counts = db.query(
        "SELECT records_total, records_loaded, records_failed, records_superseded,
                records_pending, records_inserted, records_updated, records_skipped_older
           FROM sync_metadata WHERE status = 'SUCCESS'",
        &[],
    );
    let mut inserted = 0;
    for r in &counts {
        let n: Vec<i64> = (0..8).map(|i| r.get(i)).collect();
        assert_eq!(n[0], i64::try_from(ROWS).unwrap(), "{context}: {n:?}");
        assert_eq!(n[0], n[1] + n[2] + n[3] + n[4], "{context}: {n:?}");
        assert_eq!(n[1], n[5] + n[6] + n[7], "{context}: {n:?}");
        inserted += n[5];
    }
    assert_eq!(
        inserted,
        i64::try_from(table.len()).unwrap(),
        "{context}: one insert per key"
    );
    for s in summaries {
        assert_counts_add_up(s);
    }
}

#[test]
fn every_order_with_crashes_ends_with_the_newest_version_of_every_key() {
    let seed = crate::common::seed("DATSYNC_VERSIONS_SEED");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bench = Bench::new(PROFILE, "1");
    let mut days = [27, 29, 30, 31];
    days.shuffle(&mut rng);
    let files: Vec<(Gen, PathBuf)> = days[..3]
        .iter()
        .map(|&d| {
            let g = Gen::new(&mut rng, d);
            let path = g.write(bench.dir.path());
            (g, path)
        })
        .collect();
    let gens: Vec<Gen> = files.iter().map(|f| f.0.clone()).collect();
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let context = format!("seed {seed}, order {order:?}");
        let db = TestDb::new();
        let summaries = load(&bench, &db, &files, &order, &mut rng, &context);
        assert_newest_per_key(&db, &gens, &summaries, &context);
    }
}

/// A newer file, then an older one: the older changes nothing, its rows are counted as
/// older, and the summary and `status` say the file changed nothing.
#[test]
fn an_old_file_after_a_new_one_changes_nothing_and_says_so() {
    let bench = Bench::new(PROFILE, "1");
    let write = |name: &str, note: &str, date: &str| {
        let mut text = String::from("id|note|change_date|change_time\n");
        for k in 0..12 {
            text.push_str(&[format!("k{k:02}").as_str(), note, date, "0800"].join("|"));
            text.push('\n');
        }
        let path = bench.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let new = write("V_20250131.dat", "new", "20250131");
    let old = write("V_20250130.dat", "old", "20250130");
    for order in [[&old, &new], [&new, &old]] {
        let db = TestDb::new();
        let first = bench.finish(&db, order[0], "first");
        assert_eq!(first["all_older"], false, "{first}");
        let second = bench.finish(&db, order[1], "second");
        let notes: Vec<String> = db
            .query("SELECT note FROM vdocs ORDER BY id", &[])
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(notes, vec!["new"; 12], "{order:?}");
        let late = order[1] == &old;
        assert_eq!(second["all_older"], late, "{second}");
        let (older, updated) = if late { (12, 0) } else { (0, 12) };
        assert_eq!(second["records_skipped_older"], older, "{second}");
        assert_eq!(second["records_updated"], updated, "{second}");
        let sync = second["sync_id"].as_str().unwrap();
        let url = db.url();
        let status = datsync(
            bench.dir.path(),
            &[
                "status",
                sync,
                "--database-url",
                &url,
                "--profile",
                bench.profile.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(status.code(), Some(0), "{}", status.describe());
        assert_eq!(
            status
                .stdout
                .contains("every row of this file is older than the table's: it changed nothing"),
            late,
            "{}",
            status.stdout
        );
        let (_, json) = bench.status(&db, sync);
        assert_eq!(json["all_older"], late, "{json}");
        assert_eq!(json["metadata"]["status"], "SUCCESS", "{json}");
        if late {
            let first = first["sync_id"].as_str().unwrap();
            assert_eq!(json["older_than"]["rows"], 12, "{json}");
            assert_eq!(json["older_than"]["sync_id"], first, "{json}");
            assert_eq!(json["older_than"]["file"], "V_20250131.dat", "{json}");
            assert_eq!(
                json["older_than"]["version_readable"], "20250131 08:00:00 (file 20250131)",
                "{json}"
            );
            // The run's own words, in text.
            let again = bench.cli(&db, &["run", old.to_str().unwrap(), "--fresh"], &[]);
            assert_eq!(again.code(), Some(0), "{}", again.describe());
            assert!(
                again
                    .stdout
                    .contains("every row of this file is older than the table's"),
                "{}",
                again.stdout
            );
        } else {
            assert!(json["older_than"].is_null(), "{json}");
        }
    }
}

/// Writes `rows` (`key`, change date, change time) as `name` in `dir`, each row's note
/// `name:line`.
fn write_rows(dir: &Path, name: &str, rows: &[(String, String, String)]) -> PathBuf {
    let mut text = String::from("id|note|change_date|change_time\n");
    for (i, (key, date, time)) in rows.iter().enumerate() {
        let note = format!("{name}:{}", i + 2);
        text.push_str(&[key.as_str(), &note, date, time].join("|"));
        text.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Times of day a generated row is changed at, as written and as stored.
const CHANGE_TIMES: [(&str, &str); 5] = [
    ("", "00:00:00"),
    ("0800", "08:00:00"),
    ("091500", "09:15:00"),
    ("10:30:00", "10:30:00"),
    ("1745", "17:45:00"),
];

/// Two generated files with overlapping keys, every row of the second changed on a later
/// day: `V_20250130.dat` (keys k00–k29) and `V_20250131.dat` (k15–k44), change times drawn
/// at random. Returns the paths and each file's stored version per key.
fn old_and_new(dir: &Path, seed: u64) -> [(PathBuf, BTreeMap<String, String>); 2] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut make = |name: &str, day: &str, keys: std::ops::Range<u32>| {
        let mut versions = BTreeMap::new();
        let mut rows: Vec<(String, String, String)> = keys
            .map(|k| {
                let key = format!("k{k:02}");
                let (written, stored) = CHANGE_TIMES[rng.random_range(0..CHANGE_TIMES.len())];
                let iso = format!("{}-{}-{}", &day[..4], &day[4..6], &day[6..]);
                versions.insert(key.clone(), format!("{iso} {stored} | {iso} 00:00:00"));
                (key, day.to_owned(), written.to_owned())
            })
            .collect();
        rows.shuffle(&mut rng);
        (write_rows(dir, name, &rows), versions)
    };
    [
        make("V_20250130.dat", "20250130", 0..30),
        make("V_20250131.dat", "20250131", 15..45),
    ]
}

/// What the model says of a file loaded after `earlier`: how many of its keys the table
/// holds in a newer version, and the newest of those versions.
fn model_older(
    late: &BTreeMap<String, String>,
    earlier: &BTreeMap<String, String>,
) -> (i64, Option<String>) {
    let newer: Vec<&String> = late
        .iter()
        .filter_map(|(k, v)| earlier.get(k).filter(|e| *e > v))
        .collect();
    (
        i64::try_from(newer.len()).unwrap(),
        newer.into_iter().max().cloned(),
    )
}

/// `2025-01-31 09:15:00 | 2025-01-31 00:00:00` as status shows it.
fn readable(stored: &str) -> String {
    let (row, file) = stored.split_once(" | ").unwrap();
    let day = |s: &str| s[..10].replace('-', "");
    format!("{} {} (file {})", day(row), &row[11..], day(file))
}

/// The ledger of `late_id` names `winner`'s sync and file on exactly the chunks that skipped
/// rows as older, and the newest of their versions is `won`.
fn assert_ledger_names(db: &TestDb, late_id: &str, winner: &str, won: &str) {
    // The ledger names a winner on exactly the chunks that skipped rows, and the sync's is
    // the newest of theirs.
    let chunks = db.query(
        "SELECT skipped_older, older_than_version, older_than_sync_id, older_than_file
           FROM sync_chunks WHERE sync_id = $1 ORDER BY chunk_id",
        &[&late_id],
    );
    assert!(chunks.len() >= 6, "{late_id}: 30 rows in chunks of 5");
    let mut newest_chunk: Option<String> = None;
    for c in &chunks {
        let (skipped, version): (i64, Option<String>) = (c.get(0), c.get(1));
        assert_eq!(skipped > 0, version.is_some(), "{late_id}");
        if let Some(v) = version {
            assert_eq!(c.get::<_, Option<String>>(2).as_deref(), Some(winner));
            assert_eq!(
                c.get::<_, Option<String>>(3).as_deref(),
                Some("V_20250131.dat")
            );
            newest_chunk = newest_chunk.max(Some(v));
        }
    }
    assert_eq!(newest_chunk.as_deref(), Some(won), "{late_id}");
}

/// Issue 22 item 2 as a new user would check it: two generated files with overlapping keys,
/// the second changed later. New then old: the old file's rows the table holds newer are
/// counted as the model says, and `status` (text and `--json`), `sync_metadata` and the
/// ledger name the newest version that won, its file and sync. Old then new: nothing
/// skipped, nothing named. Then the old file again through the manual re-run (`run --fresh`,
/// a new sync of a finished source): the table keeps every newer row, the re-run's skipped
/// rows are the model's and name the same winner.
#[test]
fn a_late_file_counts_its_older_rows_and_status_names_the_version_that_won() {
    let seed = crate::common::seed("DATSYNC_VERSIONS_SEED");
    let bench = Bench::new(PROFILE, "1");
    let [(old, old_v), (new, new_v)] = old_and_new(bench.dir.path(), seed);
    let table = |db: &TestDb| -> BTreeMap<String, String> {
        db.query("SELECT id, row_version FROM vdocs", &[])
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let mut newest = old_v.clone();
    for (k, v) in &new_v {
        newest.insert(k.clone(), v.clone());
    }

    // New, then old: the old file's overlapping rows are all older.
    let db = TestDb::new();
    let first = bench.finish(&db, &new, "new");
    let late = bench.finish(&db, &old, "old after new");
    assert_eq!(table(&db), newest, "seed {seed}");
    let (older, won) = model_older(&old_v, &new_v);
    assert_eq!(older, 15, "seed {seed}: every shared key");
    assert_eq!(late["records_skipped_older"], older, "seed {seed}: {late}");
    assert_eq!(late["records_inserted"], 15, "seed {seed}: {late}");
    assert_eq!(late["all_older"], false, "seed {seed}: {late}");
    assert_counts_add_up(&late);
    let won = won.unwrap();
    let winner = first["sync_id"].as_str().unwrap();
    let late_id = late["sync_id"].as_str().unwrap();
    let seq: i64 = db.query(
        "SELECT sync_seq FROM sync_metadata WHERE sync_id = $1",
        &[&winner],
    )[0]
    .get(0);
    let (text, json) = bench.status(&db, late_id);
    let line = format!(
        "older         {older} rows not applied: the table holds newer versions (newest: {} \
         from V_20250131.dat, sync {winner})",
        readable(&won)
    );
    assert!(text.contains(&line), "seed {seed}: {line}\n{text}");
    assert!(!text.contains("every row of this file"), "{text}");
    assert_eq!(
        json["older_than"],
        serde_json::json!({
            "rows": older, "version": won, "version_readable": readable(&won),
            "sync_seq": seq, "sync_id": winner, "file": "V_20250131.dat",
        }),
        "seed {seed}"
    );
    assert_eq!(json["all_older"], false);
    assert_ledger_names(&db, late_id, winner, &won);

    // The old file again, through the manual re-run: a new sync, later than both.
    let rerun = bench.cli(
        &db,
        &["run", old.to_str().unwrap(), "--fresh", "--json"],
        &[],
    );
    assert_eq!(rerun.code(), Some(0), "{}", rerun.describe());
    let rerun = rerun.summary();
    assert_ne!(rerun["sync_id"], late["sync_id"]);
    assert_eq!(
        table(&db),
        newest,
        "seed {seed}: the re-run rolled nothing back"
    );
    assert_eq!(
        rerun["records_skipped_older"], older,
        "seed {seed}: {rerun}"
    );
    // Its other rows equal the stored ones' versions: the later sync wins, as before.
    assert_eq!(rerun["records_updated"], 15, "seed {seed}: {rerun}");
    let (text, json) = bench.status(&db, rerun["sync_id"].as_str().unwrap());
    assert!(text.contains(&line), "seed {seed}: {line}\n{text}");
    assert_eq!(json["older_than"]["version"], won.as_str());

    // Old, then new: nothing skipped, nothing named.
    let db = TestDb::new();
    let early = bench.finish(&db, &old, "old");
    let later = bench.finish(&db, &new, "new after old");
    assert_eq!(table(&db), newest, "seed {seed}");
    for s in [&early, &later] {
        assert_eq!(s["records_skipped_older"], 0, "seed {seed}: {s}");
        let (text, json) = bench.status(&db, s["sync_id"].as_str().unwrap());
        assert!(!text.contains("not applied"), "{text}");
        assert!(json["older_than"].is_null(), "{json}");
    }
    assert_eq!(later["records_updated"], 15, "seed {seed}: {later}");
}

/// A profile without `version`: the newer row is the later sync's. A sync killed after its
/// first chunk, another file loaded, then the first continued: its later chunks' rows whose
/// key the other sync stored are skipped as older, as many as the model says, and `status`
/// names the later sync that won (its seq and file) with no version.
#[test]
fn without_a_version_status_names_the_later_sync_that_won() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("plain.toml");
    let plain: String = PROFILE
        .lines()
        .filter(|l| !l.starts_with("version"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&profile, plain).unwrap();
    let bench = Bench {
        dir,
        profile,
        jobs: "1",
    };
    let rows = |keys: std::ops::Range<u32>| -> Vec<(String, String, String)> {
        keys.map(|k| (format!("k{k:02}"), "20250130".into(), "0800".into()))
            .collect()
    };
    let a = write_rows(bench.dir.path(), "A.dat", &rows(0..20));
    let b = write_rows(bench.dir.path(), "B.dat", &rows(8..28));
    let db = TestDb::new();
    let killed = bench.run(&db, &a, &[("DATSYNC_KILL_AT", "chunk_committed:1")]);
    assert!(killed.killed(), "{}", killed.describe());
    db.wait_for_other_sessions();
    let a_id: String = db.query("SELECT sync_id FROM sync_metadata", &[])[0].get(0);
    let committed: Vec<i32> = db
        .query(
            "SELECT chunk_id FROM sync_chunks WHERE sync_id = $1",
            &[&a_id],
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    let other = bench.finish(&db, &b, "B");
    let a_done = bench.finish(&db, &a, "A continued");
    assert_eq!(a_done["sync_id"], a_id.as_str());
    // Model: A's rows in chunks committed after B whose key B has.
    let older = (0..20u32)
        .filter(|k| !committed.contains(&i32::try_from(k / 5).unwrap()) && *k >= 8)
        .count();
    assert!(older > 0, "{committed:?}");
    assert_eq!(a_done["records_skipped_older"], older, "{a_done}");
    assert_counts_add_up(&a_done);
    let b_id = other["sync_id"].as_str().unwrap();
    let seq: i64 = db.query(
        "SELECT sync_seq FROM sync_metadata WHERE sync_id = $1",
        &[&b_id],
    )[0]
    .get(0);
    let (text, json) = bench.status(&db, &a_id);
    let line = format!(
        "older         {older} rows not applied: the table holds rows of a later sync (newest: \
         sync {b_id}, seq {seq}, from B.dat)"
    );
    assert!(text.contains(&line), "{line}\n{text}");
    assert_eq!(
        json["older_than"],
        serde_json::json!({
            "rows": older, "version": null, "version_readable": null,
            "sync_seq": seq, "sync_id": b_id, "file": "B.dat",
        })
    );
}

/// Why the split of a sync's rows between superseded and skipped-as-older can depend on how
/// its chunks and another sync's commit, while the totals do not (load/mod.rs, "Counts"):
/// `A` has key k00 in chunk 0 (changed 10:00) and chunk 1 (changed 08:00), `B` has it changed
/// the next day. A then B: A's second row loses to A's own stored row (superseded). A's
/// chunk 0, then B, then A's chunk 1 (a kill and a resume): A's second row meets B's newer
/// row (skipped as older). Both orders end with the same table, each sync read the same
/// rows, and the keys were inserted once in all.
#[test]
fn commit_order_moves_rows_between_superseded_and_older_but_not_the_totals() {
    let bench = Bench::new(PROFILE, "1");
    let row = |k: &str, date: &str, time: &str| (k.to_owned(), date.to_owned(), time.to_owned());
    let mut a_rows = vec![row("k00", "20250130", "1000")];
    a_rows.extend((1..5).map(|k| row(&format!("a{k}"), "20250130", "0800")));
    a_rows.push(row("k00", "20250130", "0800"));
    a_rows.extend((6..10).map(|k| row(&format!("a{k}"), "20250130", "0800")));
    let a = write_rows(bench.dir.path(), "V_20250130.dat", &a_rows);
    let b = write_rows(
        bench.dir.path(),
        "V_20250131.dat",
        &[
            row("k00", "20250131", "0800"),
            row("b1", "20250131", "0800"),
        ],
    );
    let totals = |db: &TestDb, a_id: &str| {
        let r = &db.query(
            "SELECT records_total, records_superseded, records_skipped_older,
                    (SELECT sum(records_inserted) FROM sync_metadata)::bigint
               FROM sync_metadata WHERE sync_id = $1",
            &[&a_id],
        )[0];
        let n: Vec<i64> = (0..4).map(|i| r.get(i)).collect();
        let table: Vec<(String, String)> = db
            .query("SELECT id, note FROM vdocs ORDER BY id", &[])
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        (n, table)
    };

    let db = TestDb::new();
    let a_sum = bench.finish(&db, &a, "A");
    bench.finish(&db, &b, "B");
    let (in_order, table) = totals(&db, a_sum["sync_id"].as_str().unwrap());
    // A: 10 rows, one superseded by its own newer row, none older.
    assert_eq!(in_order[..3], [10, 1, 0], "{in_order:?}");

    let db = TestDb::new();
    let killed = bench.run(&db, &a, &[("DATSYNC_KILL_AT", "chunk_committed:1")]);
    assert!(killed.killed(), "{}", killed.describe());
    db.wait_for_other_sessions();
    let b_sum = bench.finish(&db, &b, "B between A's chunks");
    let a_sum = bench.finish(&db, &a, "A continued");
    let (between, table_between) = totals(&db, a_sum["sync_id"].as_str().unwrap());
    // A: the same 10 rows, the second k00 now older than B's, not superseded.
    assert_eq!(between[..3], [10, 0, 1], "{between:?}");
    assert_eq!(
        a_sum["rows_superseded"].as_i64().unwrap()
            + a_sum["records_skipped_older"].as_i64().unwrap(),
        1
    );
    assert_eq!(in_order[0], between[0], "rows read");
    assert_eq!(in_order[3], between[3], "keys inserted once in all");
    assert_eq!(table, table_between, "the same table");
    assert_eq!(b_sum["records_updated"], 1, "{b_sum}");
}

/// Issue 22 item 6's "several workers": four generated files with overlapping keys (and keys
/// repeated across the chunks of each file) in random orders, every run with `--jobs 3` (three
/// loaders, so the chunks of a sync commit out of order), killed at random points and
/// continued (with `--jobs 3`) right away or after the next file, so syncs interleave too. The
/// table always ends with the model's newest version of every key.
#[test]
fn random_interleavings_with_three_loaders_and_kills_end_with_the_newest_version_of_every_key() {
    let seed = crate::common::seed("DATSYNC_VERSIONS_SEED");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bench = Bench::new(PROFILE, "3");
    let files: Vec<(Gen, PathBuf)> = [27, 29, 30, 31]
        .iter()
        .map(|&d| {
            let g = Gen::new(&mut rng, d);
            let path = g.write(bench.dir.path());
            (g, path)
        })
        .collect();
    let gens: Vec<Gen> = files.iter().map(|f| f.0.clone()).collect();
    for round in 0..3 {
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.shuffle(&mut rng);
        let context = format!("seed {seed}, round {round}, order {order:?}, --jobs 3");
        let db = TestDb::new();
        let summaries = load(&bench, &db, &files, &order, &mut rng, &context);
        assert_newest_per_key(&db, &gens, &summaries, &context);
    }
}

/// The manual re-run route of the Functions handler (`POST /api/sync-ztdwr`, issue 22's "as a
/// new user would"): the old file, the new one, then the old one again by hand, each through
/// `datsync serve` from blob storage. The re-run is a new sync, later than both; it rolls
/// nothing back, its rows the table holds newer are skipped as the model says, and `status`
/// names the new file's newest version that won.
#[test]
fn the_manual_rerun_of_an_old_file_rolls_nothing_back_and_names_the_winner() {
    use crate::serve::Handler;
    let emulator = crate::azure::Emulator::start();
    let (key, value) = emulator.env();
    let bench = Bench::new(PROFILE, "1");
    let [(old, old_v), (new, new_v)] = old_and_new(bench.dir.path(), 22);
    for path in [&old, &new] {
        let name = path.file_name().unwrap().to_str().unwrap();
        emulator.upload(path, &format!("az://data/hex-ztdwr/{name}"));
    }
    let db = TestDb::new();
    let handler = Handler::start(
        bench.dir.path(),
        &db.url(),
        &[(key, &value)],
        &["--profile", bench.profile.to_str().unwrap()],
    );
    // One manual run of `name`, followed until it ends: its sync id.
    let rerun = |name: &str| -> String {
        let (status, body) = handler.send(
            "POST",
            "/api/sync-ztdwr",
            Some(&serde_json::json!({ "blob_name": name })),
            &[],
        );
        assert_eq!(status, 202, "{body}");
        let sync = body["sync_id"].as_str().unwrap().to_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let (status, state) =
                handler.send("GET", &format!("/api/sync-ztdwr/{sync}"), None, &[]);
            assert_eq!(status, 200, "{state}");
            if state["running"] == false && state["status"] != "IN_PROGRESS" {
                assert_eq!(state["status"], "SUCCESS", "{state}");
                return sync;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running: {state}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let first = rerun("V_20250130.dat");
    let winner = rerun("V_20250131.dat");
    let again = rerun("V_20250130.dat");
    assert!(
        first != again && winner != again,
        "the re-run is a new sync"
    );
    let mut newest = old_v.clone();
    newest.extend(new_v.iter().map(|(k, v)| (k.clone(), v.clone())));
    let table: BTreeMap<String, String> = db
        .query("SELECT id, row_version FROM vdocs", &[])
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(table, newest, "the re-run rolled nothing back");
    let (older, won) = model_older(&old_v, &new_v);
    let won = won.unwrap();
    let (text, json) = bench.status_env(&db, &again, &[(key, &value)]);
    assert_eq!(json["older_than"]["rows"], older, "{json}");
    assert_eq!(json["older_than"]["version"], won.as_str(), "{json}");
    assert_eq!(json["older_than"]["sync_id"], winner.as_str(), "{json}");
    assert_eq!(json["older_than"]["file"], "V_20250131.dat", "{json}");
    let line = format!(
        "older         {older} rows not applied: the table holds newer versions (newest: {} \
         from V_20250131.dat, sync {winner})",
        readable(&won)
    );
    assert!(text.contains(&line), "{line}\n{text}");
    assert_eq!(json["metadata"]["records_updated"], 15, "{json}");
}
