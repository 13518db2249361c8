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
}

impl Bench {
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

#[test]
fn every_order_with_crashes_ends_with_the_newest_version_of_every_key() {
    let seed: u64 = std::env::var("DATSYNC_VERSIONS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("DATSYNC_VERSIONS_SEED={seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("versioned.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    let bench = Bench { dir, profile };
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
        assert_eq!(seq.len(), 3, "{context}: every file loaded: {seq:?}");
        let table: Vec<(String, String, String)> = db
            .query("SELECT id, note, row_version FROM vdocs ORDER BY id", &[])
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(table, model(&gens, &seq), "{context}");
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
        for s in &summaries {
            assert_counts_add_up(s);
        }
    }
}

/// A newer file, then an older one: the older changes nothing, its rows are counted as
/// older, and the summary and `status` say the file changed nothing.
#[test]
fn an_old_file_after_a_new_one_changes_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("versioned.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    let bench = Bench { dir, profile };
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
            status.stdout.contains("this file changed nothing"),
            late,
            "{}",
            status.stdout
        );
    }
}
