//! Row 36 of `../shared/design/fault-tests.md`, the randomised model-based test: random
//! sequences of appending rows to the source, overwriting it (in place or by a rename),
//! deleting it, running `datsync run` on it — killed (SIGKILL) at a random point, or with
//! the private server restarted (fast or immediate) while the run is held at a pause point
//! inside a chunk's transaction or just after its commit — and restarting the server between
//! runs. An in-memory model keeps every row of every chunk that was committed (for each
//! sync, the prefix of its chunks that the kill point says) and decides each key's row as
//! issue 22 does: the newest version (the profile's change date and time), then the later
//! sync, then the later line. After every run that ends successfully the table is exactly
//! the model; the ledger holds exactly the chunks the model says after every run; a run of
//! a source whose sync was cut short continues that sync; and every summary's counts add up.
//!
//! `CASES` sequences of `STEPS` steps in CI, on one private server (a database per case).
//! Replay a failure with `DATSYNC_MODEL_SEED=<seed printed by the test>`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use crate::common::{Outcome, assert_counts_add_up};
use crate::errors::FAST_RETRY;
use crate::private::{Server, finish, reached, spawn};
use crate::versions::{DATES, PROFILE, TIMES};

const CASES: u64 = 4;
const STEPS: usize = 16;
const KEYS: u32 = 16;
/// Rows per chunk.
const CHUNK: usize = 5;
/// The source's name: its date is every row's file half of the version.
const FILE: &str = "V_20250115.dat";
const FILE_VERSION: &str = "2025-01-15 00:00:00";

/// One generated row; `note` names its content generation and line.
#[derive(Debug, Clone)]
struct Row {
    key: String,
    note: String,
    date: usize,
    time: usize,
}

impl Row {
    /// The model's version of the row, as `row_version` stores it.
    fn version(&self) -> String {
        let own = match (DATES[self.date].1, TIMES[self.time].1) {
            (Some(d), Some(t)) => format!("{d} {t}"),
            _ => "-".to_owned(),
        };
        format!("{own} | {FILE_VERSION}")
    }

    fn line(&self) -> String {
        let fields = [
            self.key.as_str(),
            &self.note,
            DATES[self.date].0,
            TIMES[self.time].0,
        ];
        format!("{}\n", fields.join("|"))
    }
}

/// The source's current bytes, as rows.
#[derive(Debug, Clone)]
struct Content {
    generation: u32,
    rows: Vec<Row>,
}

impl Content {
    fn chunks(&self) -> usize {
        self.rows.len().div_ceil(CHUNK)
    }
}

/// What the model knows of the sync that loads a generation.
#[derive(Debug, Clone)]
struct Sync {
    id: String,
    seq: i64,
    /// Chunks committed: always a prefix, as chunks load in order.
    committed: usize,
}

/// A committed row: its order `(version, sync_seq, line)`, key and note.
type Loaded = ((String, i64, u64), String, String);

#[derive(Default)]
struct Model {
    file: Option<Content>,
    generations: u32,
    /// The newest sync of each generation.
    syncs: BTreeMap<u32, Sync>,
    /// Every row of every committed chunk.
    loaded: Vec<Loaded>,
}

impl Model {
    /// The table: per key, the note and version of its newest committed row.
    fn table(&self) -> Vec<(String, String, String)> {
        let mut best: BTreeMap<&str, &Loaded> = BTreeMap::new();
        for l in &self.loaded {
            let e = best.entry(&l.1).or_insert(l);
            if l.0 > e.0 {
                *e = l;
            }
        }
        best.into_iter()
            .map(|(k, l)| (k.to_owned(), l.2.clone(), l.0.0.clone()))
            .collect()
    }

    /// Chunks `from..to` of the current content, loaded by `sync`, join the model.
    fn commit(&mut self, sync: &Sync, from: usize, to: usize) {
        let content = self.file.as_ref().unwrap();
        for (i, r) in content.rows.iter().enumerate() {
            if (from * CHUNK..to * CHUNK).contains(&i) {
                let line = i as u64 + 2;
                self.loaded
                    .push(((r.version(), sync.seq, line), r.key.clone(), r.note.clone()));
            }
        }
    }
}

/// A kill point and what the model concludes from it.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Inside chunk n's transaction (after its COPY): n − 1 chunks of this run committed.
    Staged(usize),
    /// After chunk n's commit, before or after the checkpoint marks it: n committed.
    Committed(usize),
    Completed(usize),
    /// During conversion: how many chunks committed is not decided by the point.
    Converted(usize),
    /// After the final status: everything committed.
    Cleanup,
    Finished,
}

impl Kill {
    fn spec(self) -> String {
        match self {
            Self::Staged(n) => format!("chunk_staged:{n}"),
            Self::Committed(n) => format!("chunk_committed:{n}"),
            Self::Completed(n) => format!("chunk_completed:{n}"),
            Self::Converted(n) => format!("chunk_converted:{n}"),
            Self::Cleanup => "cleanup_started:1".to_owned(),
            Self::Finished => "sync_finished:1".to_owned(),
        }
    }
}

/// A server restart while the run is held at a pause point.
#[derive(Debug, Clone, Copy)]
struct Restart {
    /// `chunk_staged` (inside the transaction) or `chunk_committed` (just after it).
    event: &'static str,
    n: usize,
    mode: datsync::StopMode,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Append(usize),
    Overwrite {
        rows: usize,
        in_place: bool,
    },
    Delete,
    Run {
        kill: Option<Kill>,
        restart: Option<Restart>,
    },
    RestartServer(datsync::StopMode),
}

fn stop_mode(rng: &mut ChaCha8Rng) -> datsync::StopMode {
    if rng.random_bool(0.5) {
        datsync::StopMode::Fast
    } else {
        datsync::StopMode::Immediate
    }
}

fn draw(rng: &mut ChaCha8Rng) -> Step {
    match rng.random_range(0..20) {
        0..=3 => Step::Append(rng.random_range(1..=15)),
        4..=5 => Step::Overwrite {
            rows: rng.random_range(1..=30),
            in_place: rng.random_bool(0.5),
        },
        6 => Step::Delete,
        7 => Step::RestartServer(stop_mode(rng)),
        _ => {
            let restart = rng.random_bool(0.3).then(|| Restart {
                event: if rng.random_bool(0.5) {
                    "chunk_staged"
                } else {
                    "chunk_committed"
                },
                n: rng.random_range(1..=3),
                mode: stop_mode(rng),
            });
            let kill = rng.random_bool(0.6).then(|| {
                let n = rng.random_range(1..=4);
                // With a restart, a chunk staged again after it counts twice: kill only at
                // points a retry does not repeat.
                let kinds = if restart.is_some() { 2..6 } else { 0..6 };
                match rng.random_range(kinds) {
                    0 => Kill::Staged(n),
                    1 => Kill::Converted(n),
                    2 => Kill::Committed(n),
                    3 => Kill::Completed(n),
                    4 => Kill::Cleanup,
                    _ => Kill::Finished,
                }
            });
            Step::Run { kill, restart }
        }
    }
}

struct Case<'a> {
    server: &'a mut Server,
    db: String,
    dir: PathBuf,
    profile: PathBuf,
    rng: ChaCha8Rng,
    model: Model,
    history: Vec<String>,
    context: String,
}

impl Case<'_> {
    fn file(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    fn rows(&mut self, generation: u32, from_line: usize, n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                key: format!("k{:02}", self.rng.random_range(0..KEYS)),
                note: format!("g{generation}:{}", from_line + i),
                date: self.rng.random_range(0..DATES.len()),
                time: self.rng.random_range(0..TIMES.len()),
            })
            .collect()
    }

    fn write(&self, content: &Content, in_place: bool) {
        let mut text = String::from("id|note|change_date|change_time\n");
        for r in &content.rows {
            text.push_str(&r.line());
        }
        if in_place {
            std::fs::write(self.file(), text).unwrap();
        } else {
            let tmp = self.dir.join("incoming.tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, self.file()).unwrap();
        }
    }

    fn append(&mut self, n: usize) {
        let Some(mut content) = self.model.file.take() else {
            return self.overwrite(n, true);
        };
        self.model.generations += 1;
        content.generation = self.model.generations;
        let more = self.rows(content.generation, content.rows.len() + 2, n);
        let mut text = String::new();
        for r in &more {
            text.push_str(&r.line());
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(self.file())
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        content.rows.extend(more);
        self.model.file = Some(content);
    }

    fn overwrite(&mut self, n: usize, in_place: bool) {
        self.model.generations += 1;
        let generation = self.model.generations;
        let content = Content {
            generation,
            rows: self.rows(generation, 2, n),
        };
        self.write(&content, in_place);
        self.model.file = Some(content);
    }

    /// `sync_id → sync_seq` of every sync.
    fn syncs(&self) -> BTreeMap<String, i64> {
        let exists: bool = self.server.query(
            &self.db,
            "SELECT to_regclass('public.sync_metadata') IS NOT NULL",
        )[0]
        .get(0);
        if !exists {
            return BTreeMap::new();
        }
        self.server
            .query(&self.db, "SELECT sync_id, sync_seq FROM sync_metadata")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    fn ledger(&self, sync: &str) -> Vec<i32> {
        self.server
            .query(
                &self.db,
                &format!("SELECT chunk_id FROM sync_chunks WHERE sync_id = '{sync}' ORDER BY 1"),
            )
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    fn table(&self) -> Vec<(String, String, String)> {
        let exists: bool = self
            .server
            .query(&self.db, "SELECT to_regclass('public.vdocs') IS NOT NULL")[0]
            .get(0);
        if !exists {
            return Vec::new();
        }
        self.server
            .query(
                &self.db,
                "SELECT id, note, row_version FROM vdocs ORDER BY id",
            )
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    fn say(&self) -> String {
        format!("{}, steps {:#?}", self.context, self.history)
    }

    /// One `datsync run` of the source with its faults, checked against the model.
    fn run(&mut self, kill: Option<Kill>, restart: Option<Restart>) {
        let before = self.syncs();
        let out = self.launch(kill, restart);
        self.check_run(&before, kill, &out);
    }

    /// `datsync run` of the source, killed at `kill`, the server restarted at `restart`.
    fn launch(&mut self, kill: Option<Kill>, restart: Option<Restart>) -> Outcome {
        let url = self.server.url(&self.db);
        let ck = self.dir.join("ck");
        let pauses = tempfile::tempdir().unwrap();
        let file = self.file();
        let args = [
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
        ];
        let kill_spec = kill.map(Kill::spec);
        let pause_spec = restart.map(|r| format!("{}:{}", r.event, r.n));
        let mut env = vec![FAST_RETRY];
        if let Some(k) = &kill_spec {
            env.push(("DATSYNC_KILL_AT", k));
        }
        if let Some(p) = &pause_spec {
            env.push(("DATSYNC_PAUSE_AT", p));
            env.push(("DATSYNC_PAUSE_DIR", pauses.path().to_str().unwrap()));
        }
        let mut child = spawn(&self.dir, &args, &env);
        if let Some(r) = restart {
            let marker = pauses.path().join(format!("{}-{}", r.event, r.n));
            if reached(&marker, &mut child) {
                self.server.restart(r.mode);
                self.history
                    .push(format!("  (server restarted {:?})", r.mode));
                std::fs::remove_file(&marker).unwrap();
            }
        }
        let out = finish(child);
        if out.killed() {
            self.history.push("  (killed)".to_owned());
        }
        self.server.wait_for_other_sessions(&self.db);
        out
    }

    /// What the model says of a run that ended with `out`; `before`: the syncs before it.
    fn check_run(&mut self, before: &BTreeMap<String, i64>, kill: Option<Kill>, out: &Outcome) {
        let say = self.say();

        let Some(content) = self.model.file.clone() else {
            assert_eq!(out.code(), Some(1), "{say}\n{}", out.describe());
            assert!(out.stderr.contains(FILE), "{say}\n{}", out.describe());
            assert_eq!(&self.syncs(), before, "{say}: no sync for a missing source");
            return;
        };
        let after = self.syncs();
        let new: Vec<(&String, &i64)> = after
            .iter()
            .filter(|(id, _)| !before.contains_key(*id))
            .collect();
        assert!(new.len() <= 1, "{say}: syncs {new:?}");
        let chunks = content.chunks();
        let known = self.model.syncs.get(&content.generation).cloned();
        let finished = known.as_ref().is_some_and(|s| s.committed == chunks);
        if finished {
            // Every chunk committed: the run finishes that sync (killed before its final
            // status) or says it is loaded. A new sync would load the same rows again, and a
            // new sync cut short would let its earlier lines win over the later lines of the
            // same version that the sync before it loaded.
            assert!(
                new.is_empty(),
                "{say}: the run started sync {new:?} for a source whose chunks are all committed\n{}",
                out.describe()
            );
            if !out.killed() {
                assert_eq!(out.code(), Some(0), "{say}\n{}", out.describe());
                self.check_table(out);
            }
            return;
        }
        let sync = match (&known, new.first()) {
            (Some(s), None) => s.clone(),
            (known, Some((id, seq))) => {
                // A new sync only when the generation's sync committed nothing (it may have
                // been killed before its checkpoint existed).
                assert!(
                    known.as_ref().is_none_or(|s| s.committed == 0),
                    "{say}: the run started sync {id} instead of continuing {known:?}"
                );
                assert!(
                    before.values().all(|s| s < seq),
                    "{say}: a new sync draws a later sync_seq"
                );
                Sync {
                    id: (*id).clone(),
                    seq: **seq,
                    committed: 0,
                }
            }
            (None, None) => {
                // Killed before it registered a sync.
                assert!(out.killed(), "{say}: no sync\n{}", out.describe());
                return;
            }
        };
        let remaining = chunks - sync.committed;
        // How many chunks this run commits, by the model (None: the point does not say).
        let (expect_killed, committed) = match kill {
            Some(Kill::Staged(n)) if n <= remaining => (true, Some(sync.committed + n - 1)),
            Some(Kill::Committed(n) | Kill::Completed(n)) if n <= remaining => {
                (true, Some(sync.committed + n))
            }
            Some(Kill::Converted(_)) if out.killed() => (true, None),
            Some(Kill::Cleanup | Kill::Finished) => (true, Some(chunks)),
            _ => (false, Some(chunks)),
        };
        assert_eq!(
            out.killed(),
            expect_killed,
            "{say}: killed at {kill:?}\n{}",
            out.describe()
        );
        let ledger = self.ledger(&sync.id);
        let done = committed.unwrap_or(ledger.len());
        let prefix: Vec<i32> = (0..i32::try_from(done).unwrap()).collect();
        assert_eq!(ledger, prefix, "{say}: the ledger of {}", sync.id);
        assert!(done >= sync.committed, "{say}");
        self.model.commit(&sync, sync.committed, done);
        self.model.syncs.insert(
            content.generation,
            Sync {
                committed: done,
                ..sync
            },
        );
        if !out.killed() {
            assert_eq!(out.code(), Some(0), "{say}\n{}", out.describe());
            self.check_table(out);
        }
    }

    fn check_table(&self, out: &Outcome) {
        let say = self.say();
        let s = out.summary();
        if s["status"] == "SUCCESS" {
            assert_counts_add_up(&s);
        }
        assert_eq!(
            self.table(),
            self.model.table(),
            "{say}\n{}",
            out.describe()
        );
    }

    fn step(&mut self, step: Step) {
        self.history.push(format!("{step:?}"));
        match step {
            Step::Append(n) => self.append(n),
            Step::Overwrite { rows, in_place } => self.overwrite(rows, in_place),
            Step::Delete => {
                if self.model.file.take().is_some() {
                    std::fs::remove_file(self.file()).unwrap();
                }
            }
            Step::Run { kill, restart } => self.run(kill, restart),
            Step::RestartServer(mode) => self.server.restart(mode),
        }
    }
}

#[test]
fn row36_random_appends_overwrites_deletes_kills_and_restarts_end_as_the_model() {
    let seed = crate::common::seed("DATSYNC_MODEL_SEED");
    let mut server = Server::start();
    let mut kinds = BTreeSet::new();
    for case in 0..CASES {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("versioned.toml");
        std::fs::write(&profile, PROFILE).unwrap();
        let db = format!("model_{case}");
        server.create_db(&db);
        let mut c = Case {
            server: &mut server,
            db,
            dir: dir.path().to_path_buf(),
            profile,
            rng: ChaCha8Rng::seed_from_u64(seed.wrapping_add(case)),
            model: Model::default(),
            history: Vec::new(),
            context: format!("seed {seed}, case {case}"),
        };
        // A source to start with, then the random steps.
        c.step(Step::Overwrite {
            rows: 12,
            in_place: true,
        });
        for _ in 0..STEPS {
            let step = draw(&mut c.rng);
            kinds.insert(
                format!("{step:?}")
                    .split([' ', '('])
                    .next()
                    .unwrap()
                    .to_owned(),
            );
            c.step(step);
        }
        // The final successful run, of a source that exists.
        if c.model.file.is_none() {
            c.step(Step::Overwrite {
                rows: 7,
                in_place: false,
            });
        }
        c.step(Step::Run {
            kill: None,
            restart: None,
        });
        let count = |what: &str| c.history.iter().filter(|h| h.contains(what)).count();
        println!(
            "{}: {} steps ({} runs, {} killed, {} restarts mid-run), {} keys, same as the model",
            c.context,
            c.history.len(),
            count("Run {"),
            count("(killed)"),
            count("(server restarted"),
            c.model.table().len()
        );
        let db = c.db.clone();
        server.batch(
            datsync::TEMP_DATABASE,
            &format!("DROP DATABASE {db} WITH (FORCE)"),
        );
    }
    println!("step kinds: {kinds:?}");
}
