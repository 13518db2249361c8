//! `datsync bench` (hidden): the end-to-end benchmark of issues 5 and 14, in one run.
//!
//! On a generated file of `--mb` MB (`DATSYNC_BENCH_MB`, default 100), in a database of its
//! own (`datsync_bench_e2e_<pid>`, created and dropped on the server of `--database-url`),
//! every figure against a baseline measured in the same run:
//!
//! - (a) PostgreSQL's own COPY of the same typed rows into an empty table of the target's
//!   shape and key, binary, then text (the rows as PostgreSQL writes them;
//!   `datsync::copy_baselines`: the SQL of every step is the library's);
//! - (b) a first `datsync run` (this executable as a child process), into an empty table;
//! - (g) then PostgreSQL's own binary COPY of the rows those runs left in the derived tables
//!   (`drivers`), into empty tables of their shape (`datsync::derived_copy_baseline`): with
//!   (a), PostgreSQL's COPYs of the rows a run writes into the tables it writes them to, one
//!   after the other (not with `--quick`);
//! - (f) into the table the last of (b), (d) and (e) loaded (the same rows): those rows
//!   COPYed into a staging table and upserted by hand in SQL (`datsync::upsert_baseline`),
//!   then a `datsync run --fresh` of the file (every row an update);
//! - (c) a `datsync run` killed with SIGKILL after 80% of its chunks are committed, then
//!   `datsync resume`: the resume alone is timed; and the same again with the resume points
//!   removed from the checkpoint (as a build before them wrote it: the resume decodes the
//!   recorded chunks again), the baseline of the resume's skip in the same run;
//! - (d) a `datsync run --no-checkpoint`, into an empty table, each run right after one of
//!   (b);
//! - (e) a first run of the same rows gzipped, into an empty table, each run right after one
//!   of (d);
//! - (j) first runs with `--jobs 1`, `2` and `4` (N loaders on N connections), each into an
//!   empty table, against `--jobs 1` and the COPYs of (a);
//! - (w) `datsync submit` with 1, 2 and 4 `datsync worker --exit-when-idle` processes started
//!   beside it (the work queue), each into an empty table: the sync's own duration
//!   (`sync_metadata`, registration to final status) against the `--jobs 1` run's (its summary's
//!   `duration_s`, measured the same way inside the process) and the COPYs of (a);
//! - (p) the decoder over the file's first 128 MiB in memory against a `memchr` scan of the
//!   same bytes (as `cargo bench --bench parse`), in this process.
//!
//! `--quick` measures (a) and (b) only, `--resume-only` (a), (b), (g) and (c); `--repeat N`
//! keeps the best of N for (a), (b), (d), (e) and (g); (b), (d) and (e) run in turn.
//! `--json` prints the figures as one object; `--guard FILE` compares the first-run ratios
//! with a committed `--json` output of the same size (CI: `.ci/run`), ratios and not times,
//! since the machine is shared. Each child's peak RSS is measured as
//! [`super::child::ChildRun::peak_rss_kib`] says.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use datsync::{
    CopyBaselines, Decoder, ParseOptions, PgSettings, Profile, RunSummary, SampleOptions,
    SampleSize, SyncStatus, write_sample,
};
use serde::{Deserialize, Serialize};

use super::child::{ChildRun, run_datsync, spawn_datsync};
use crate::cli::BenchArgs;

/// The share of chunks committed before the kill of (c), in fifths: 4/5, 80%.
const KILL_SHARE_FIFTHS: u64 = 4;
/// The loaders of the first runs of (j).
const JOBS: [u32; 3] = [1, 2, 4];
/// The worker processes of (w).
const WORKERS: [u32; 3] = [1, 2, 4];
/// How long a worker of (w) waits with nothing to do before it exits.
const WORKER_MAX_IDLE: &str = "2s";
/// How much worse than the committed figure a first-run ratio may be before `--guard` fails.
const GUARD_TOLERANCE: f64 = 1.25;
/// The most bytes of the file (p) decodes in memory.
const PARSE_BYTES: u64 = 128 << 20;
/// Bytes fed to the decoder at a time in (p).
const PARSE_FEED: usize = 256 << 10;
/// Runs of (p), the best kept.
const PARSE_RUNS: usize = 3;

/// Everything one benchmark measured (the `--json` output and the committed figure file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Size asked for, in MB.
    pub mb: u64,
    /// Data rows of the file (every one valid and loaded).
    pub rows: u64,
    /// Chunks of the file.
    pub chunks: u64,
    /// Rows per chunk.
    pub chunk_size: usize,
    /// Times (a), (b), (d), (e) and (g) were measured (the best of each kept).
    pub repeat: u32,
    /// `/proc/loadavg` (1, 5, 15 minutes) when the measurements started and ended: other
    /// work on the machine makes every figure worse.
    pub load_average: [[f64; 3]; 2],
    /// Wall times in seconds.
    pub seconds: Seconds,
    /// The figures of issue 14, each against its baseline of the same run.
    pub ratios: Ratios,
    /// Peak RSS of the runs, MiB.
    pub peak_rss_mib: PeakRss,
    /// (j) first runs with 1, 2 and 4 loaders (none with `--quick`).
    #[serde(default)]
    pub jobs: Vec<JobsRun>,
    /// (w) submit with 1, 2 and 4 worker processes (none with `--quick`).
    #[serde(default)]
    pub workers: Vec<WorkersRun>,
}

/// (w): one sync submitted and loaded by N worker processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkersRun {
    /// Worker processes.
    pub workers: u32,
    /// The sync's duration in `sync_metadata` (registration to final status), seconds.
    pub seconds: f64,
    /// Against the `--jobs 1` run of (j), its duration as its summary gives it.
    pub vs_jobs_1: f64,
    /// Against (a) binary COPY.
    pub vs_binary_copy: f64,
    /// Against (a) text COPY.
    pub vs_text_copy: f64,
}

/// (j): one first run with `--jobs N`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobsRun {
    /// Loaders (`--jobs`).
    pub jobs: u32,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Against the `--jobs 1` run of (j).
    pub vs_jobs_1: f64,
    /// Against (a) binary COPY.
    pub vs_binary_copy: f64,
    /// Against (a) text COPY.
    pub vs_text_copy: f64,
    /// Peak RSS, MiB.
    pub peak_rss_mib: f64,
}

/// Wall times in seconds (`None`: not measured, with `--quick`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Seconds {
    /// (a) binary COPY.
    pub binary_copy: f64,
    /// (a) text COPY.
    pub text_copy: f64,
    /// (b) first run.
    pub first_run: f64,
    /// (g) binary COPY of the rows (b) left in the derived tables, into empty tables of
    /// their shape (`None`: a profile without derived tables).
    #[serde(default)]
    pub derived_copy: Option<f64>,
    /// (f) staging COPY + upsert by hand.
    pub staged_upsert: Option<f64>,
    /// (f) `run --fresh` into the loaded table.
    pub fresh_run: Option<f64>,
    /// (c) the run killed after 80% of its chunks.
    pub killed_run: Option<f64>,
    /// (c) the resume alone.
    pub resume: Option<f64>,
    /// (c) the resume of the same kill, the checkpoint's resume points removed (the chunks
    /// recorded decoded again, as before them).
    #[serde(default)]
    pub resume_decoding_all: Option<f64>,
    /// (d) `run --no-checkpoint`.
    pub no_checkpoint: Option<f64>,
    /// (e) first run of the gzipped file.
    pub gzip_first_run: Option<f64>,
    /// (p) the `memchr` scan.
    pub memchr: Option<f64>,
    /// (p) the decoder.
    pub parse: Option<f64>,
}

/// The ratios (lower is better, but `parse_vs_memchr`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ratios {
    /// (b) / (a) text.
    pub first_run_vs_text_copy: f64,
    /// (b) / (a) binary.
    pub first_run_vs_binary_copy: f64,
    /// (b) / ((a) text + (g)): against PostgreSQL's COPY of the same rows into the same
    /// tables, the derived ones included.
    #[serde(default)]
    pub first_run_vs_text_copy_and_derived: Option<f64>,
    /// (b) / ((a) binary + (g)).
    #[serde(default)]
    pub first_run_vs_binary_copy_and_derived: Option<f64>,
    /// (f): `run --fresh` / staging COPY + upsert by hand.
    pub fresh_run_vs_staged_upsert: Option<f64>,
    /// (b) / (d) - 1.
    pub checkpoint_overhead: Option<f64>,
    /// (c) resume / (b).
    pub resume_after_80_vs_first_run: Option<f64>,
    /// (c) the resume without resume points / (b).
    #[serde(default)]
    pub resume_decoding_all_vs_first_run: Option<f64>,
    /// (c) the share of the file's rows the resume loads (rows, not time: the chunks after
    /// the kill, which comes after the first chunk commit at or past 80% of the chunks), the
    /// ratio the resume would have at the first run's speed with nothing to start and finish.
    #[serde(default)]
    pub resume_rows_share: Option<f64>,
    /// (e) / (b).
    pub gzip_vs_plain: Option<f64>,
    /// (p) memchr time / decoder time (higher is better).
    pub parse_vs_memchr: Option<f64>,
}

/// Peak RSS in MiB.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PeakRss {
    /// The largest of the runs of the plain file.
    pub plain: f64,
    /// The largest of the gzipped file's runs (e).
    pub gzip: Option<f64>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    // The committed figures are read first: a missing file fails before minutes of work.
    let committed = args.guard.as_deref().map(read_report).transpose()?;
    let report = measure_all(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    match committed {
        Some(committed) if !guard(&committed, &report)? => Ok(ExitCode::FAILURE),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn read_report(path: &Path) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the committed figures {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a `datsync bench --json` output", path.display()))
}

/// The regression guard: each first-run ratio at most [`GUARD_TOLERANCE`] times the
/// committed one. Prints the comparison; `false` when one is worse.
fn guard(committed: &Report, now: &Report) -> anyhow::Result<bool> {
    if committed.mb != now.mb || committed.chunk_size != now.chunk_size {
        bail!(
            "the committed figures are of {} MB in chunks of {} rows, this run of {} MB in \
             chunks of {}: ratios of other sizes do not compare",
            committed.mb,
            committed.chunk_size,
            now.mb,
            now.chunk_size
        );
    }
    let mut ok = true;
    for (name, was, is) in [
        (
            "first run / text COPY",
            committed.ratios.first_run_vs_text_copy,
            now.ratios.first_run_vs_text_copy,
        ),
        (
            "first run / binary COPY",
            committed.ratios.first_run_vs_binary_copy,
            now.ratios.first_run_vs_binary_copy,
        ),
    ] {
        let limit = was * GUARD_TOLERANCE;
        let verdict = if is <= limit { "ok" } else { "REGRESSED" };
        eprintln!(
            "guard: {name}: {is:.2} (committed {was:.2}, limit {limit:.2}, load average {:.1}): \
             {verdict}",
            now.load_average[0][0]
        );
        ok &= is <= limit;
    }
    Ok(ok)
}

/// Generates the files, measures everything, and drops the benchmark's database.
fn measure_all(args: &BenchArgs) -> anyhow::Result<Report> {
    let profile = Profile::ztdwr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let dir = tempfile::Builder::new()
        .prefix("datsync-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let file = dir.path().join("ZTDWR_BENCH.dat");
    let options = SampleOptions {
        size: SampleSize::Bytes(args.mb * 1_000_000),
        ..SampleOptions::default()
    };
    let sample = write_sample(std::fs::File::create(&file)?, &options)?;
    let gzip = if args.quick || args.resume_only {
        None
    } else {
        // The same seed: the same rows, gzipped.
        let gz = dir.path().join("ZTDWR_BENCH.dat.gz");
        write_sample(
            std::fs::File::create(&gz)?,
            &SampleOptions {
                gzip: true,
                ..options
            },
        )?;
        Some(gz)
    };
    let chunks = sample.rows.div_ceil(args.chunk_size as u64);
    if !args.json {
        println!(
            "file: {:.1} MB, {} rows, {chunks} chunks of {} rows",
            sample.text_bytes as f64 / 1e6,
            sample.rows,
            args.chunk_size
        );
    }
    let load_start = load_average();
    let parse = if args.quick || args.resume_only {
        None
    } else {
        Some(parse_vs_memchr(&profile, &file)?)
    };
    let payload = dir.path().join("copy.bin");
    let rows = datsync::encode_baseline(&profile, &file, &payload, args.chunk_size)?;

    let admin = PgSettings::from_connection_string(&args.database_url)?;
    let db = format!("datsync_bench_e2e_{}", std::process::id());
    let url = with_dbname(&args.database_url, &db);
    let settings = PgSettings::from_connection_string(&url)?;
    rt.block_on(async {
        let admin = datsync::connect(&admin).await?;
        datsync::recreate_database(&admin, &db).await?;
        anyhow::Ok(())
    })?;
    let files = Files {
        plain: &file,
        gzip: gzip.as_deref(),
        payload: &payload,
        dir: dir.path(),
    };
    let result = measure(args, &rt, &settings, &url, &profile, &files, rows, chunks);
    rt.block_on(async {
        let admin = datsync::connect(&admin).await?;
        datsync::drop_database(&admin, &db).await?;
        anyhow::Ok(())
    })?;
    let mut report = result?;
    report.load_average = [load_start, load_average()];
    if let Some((memchr, decoder)) = parse {
        report.seconds.memchr = Some(memchr.as_secs_f64());
        report.seconds.parse = Some(decoder.as_secs_f64());
        report.ratios.parse_vs_memchr = Some(memchr.as_secs_f64() / decoder.as_secs_f64());
    }
    Ok(report)
}

/// The files a benchmark works on.
struct Files<'a> {
    plain: &'a Path,
    gzip: Option<&'a Path>,
    /// The binary COPY stream of the typed rows.
    payload: &'a Path,
    dir: &'a Path,
}

/// Every measurement against the database.
#[allow(clippy::too_many_arguments)]
fn measure(
    args: &BenchArgs,
    rt: &tokio::runtime::Runtime,
    settings: &PgSettings,
    url: &str,
    profile: &Profile,
    files: &Files<'_>,
    rows: u64,
    chunks: u64,
) -> anyhow::Result<Report> {
    let mut client = rt.block_on(datsync::connect(settings))?;
    rt.block_on(datsync::init_db(&mut client, profile))?;
    let mut copies: Option<CopyBaselines> = None;
    for _ in 0..args.repeat {
        let c = rt.block_on(datsync::copy_baselines(
            &client,
            profile,
            files.payload,
            rows,
        ))?;
        copies = Some(copies.map_or(c, |b| CopyBaselines {
            binary: b.binary.min(c.binary),
            text: b.text.min(c.text),
        }));
    }
    let copies = copies.context("no COPY baseline measured")?;
    let runner = Runner {
        rt,
        client: &client,
        profile,
        url,
        dir: files.dir,
        chunk_size: args.chunk_size,
    };
    let more = !(args.quick || args.resume_only);
    let (first, plain, gzipped) = first_runs(&runner, files, args.repeat, more)?;
    let mut peak_plain = first.peak_rss_kib;
    let first_s = first.elapsed.as_secs_f64();
    let mut seconds = Seconds {
        binary_copy: copies.binary.as_secs_f64(),
        text_copy: copies.text.as_secs_f64(),
        first_run: first_s,
        ..Seconds::default()
    };
    let mut ratios = Ratios {
        first_run_vs_text_copy: first_s / copies.text.as_secs_f64(),
        first_run_vs_binary_copy: first_s / copies.binary.as_secs_f64(),
        ..Ratios::default()
    };
    let derived = if args.quick {
        None
    } else {
        derived_copy(rt, &client, profile, files.dir, args.repeat)?
    };
    if let Some(d) = derived {
        seconds.derived_copy = Some(d.as_secs_f64());
        ratios.first_run_vs_text_copy_and_derived = Some(first_s / (copies.text + d).as_secs_f64());
        ratios.first_run_vs_binary_copy_and_derived =
            Some(first_s / (copies.binary + d).as_secs_f64());
    }
    let mut peak = PeakRss::default();
    if let Some(plain) = plain {
        seconds.no_checkpoint = Some(plain.elapsed.as_secs_f64());
        ratios.checkpoint_overhead = Some(first_s / plain.elapsed.as_secs_f64() - 1.0);
        peak_plain = peak_plain.max(plain.peak_rss_kib);
    }
    if let Some(gzipped) = gzipped {
        seconds.gzip_first_run = Some(gzipped.elapsed.as_secs_f64());
        ratios.gzip_vs_plain = Some(gzipped.elapsed.as_secs_f64() / first_s);
        peak.gzip = Some(mib(gzipped.peak_rss_kib));
    }
    if args.resume_only {
        let more = Measured {
            first_s,
            seconds: &mut seconds,
            ratios: &mut ratios,
            peak_plain: &mut peak_plain,
        };
        measure_resume(&runner, files, (rows, chunks), more)?;
    } else if !args.quick {
        let more = Measured {
            first_s,
            seconds: &mut seconds,
            ratios: &mut ratios,
            peak_plain: &mut peak_plain,
        };
        measure_more(&runner, &client, files, rows, chunks, more)?;
    }
    let (jobs, workers) = if args.quick || args.resume_only {
        (Vec::new(), Vec::new())
    } else {
        let (jobs, jobs_1) = measure_jobs(&runner, files.plain, &copies)?;
        let workers = measure_workers(&runner, files.plain, &copies, jobs_1)?;
        (jobs, workers)
    };
    peak.plain = mib(peak_plain);
    Ok(Report {
        mb: args.mb,
        rows,
        chunks,
        chunk_size: args.chunk_size,
        repeat: args.repeat,
        load_average: [[0.0; 3]; 2],
        seconds,
        ratios,
        peak_rss_mib: peak,
        jobs,
        workers,
    })
}

/// (g): the best of `repeat` binary COPYs of the rows the last first run left in the
/// derived tables (`None`: the profile has none).
fn derived_copy(
    rt: &tokio::runtime::Runtime,
    client: &tokio_postgres::Client,
    profile: &Profile,
    dir: &Path,
    repeat: u32,
) -> anyhow::Result<Option<std::time::Duration>> {
    let mut best: Option<std::time::Duration> = None;
    for _ in 0..repeat {
        let d = rt.block_on(datsync::derived_copy_baseline(client, profile, dir))?;
        best = match (best, d) {
            (Some(b), Some(d)) => Some(b.min(d)),
            (_, d) => d,
        };
    }
    Ok(best)
}

/// (j): first runs with 1, 2 and 4 loaders, each into an emptied table, against the first
/// of them and the COPYs of (a); and the `--jobs 1` run's own duration (its summary's).
fn measure_jobs(
    runner: &Runner<'_>,
    file: &Path,
    copies: &CopyBaselines,
) -> anyhow::Result<(Vec<JobsRun>, f64)> {
    let mut runs: Vec<JobsRun> = Vec::with_capacity(JOBS.len());
    let mut jobs_1 = None;
    for jobs in JOBS {
        let n = jobs.to_string();
        let child = runner.run(&format!("j{jobs}"), file, &["--jobs", &n], None, true)?;
        if jobs_1.is_none() {
            jobs_1 = Some(summary_of(&child)?.duration_s);
        }
        let seconds = child.elapsed.as_secs_f64();
        let one = runs.first().map_or(seconds, |r| r.seconds);
        runs.push(JobsRun {
            jobs,
            seconds,
            vs_jobs_1: seconds / one,
            vs_binary_copy: seconds / copies.binary.as_secs_f64(),
            vs_text_copy: seconds / copies.text.as_secs_f64(),
            peak_rss_mib: mib(child.peak_rss_kib),
        });
    }
    Ok((runs, jobs_1.context("no --jobs 1 run measured")?))
}

/// (w): the file submitted with 1, 2 and 4 worker processes started beside `submit`, each
/// into an emptied table; the sync's duration read from `sync_metadata` once every process
/// ended, and its status checked.
fn measure_workers(
    runner: &Runner<'_>,
    file: &Path,
    copies: &CopyBaselines,
    jobs_1: f64,
) -> anyhow::Result<Vec<WorkersRun>> {
    let mut runs = Vec::with_capacity(WORKERS.len());
    for workers in WORKERS {
        runner
            .rt
            .block_on(datsync::empty_target(runner.client, runner.profile))?;
        let worker_args: Vec<String> = [
            "--quiet",
            "worker",
            "--database-url",
            runner.url,
            "--exit-when-idle",
            "--max-idle",
            WORKER_MAX_IDLE,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let spawned: Vec<_> = (0..workers)
            .map(|_| spawn_datsync(&worker_args))
            .collect::<anyhow::Result<_>>()?;
        let mut submit = vec![
            "submit".to_owned(),
            file.display().to_string(),
            "--fresh".to_owned(),
        ];
        submit.extend(runner.common(&format!("w{workers}")));
        let submitted = run_datsync(&submit, &[]);
        // Every worker is waited for, whatever submit did: none outlives the benchmark.
        let mut ended = Vec::with_capacity(spawned.len());
        for child in spawned {
            ended.push(child.wait_with_output().context("waiting for a worker")?);
        }
        let submitted = submitted?;
        let sync_id = serde_json::from_str::<serde_json::Value>(&submitted.stdout)
            .ok()
            .and_then(|v| Some(v.get("sync_id")?.as_str()?.to_owned()))
            .with_context(|| format!("no sync id from submit: {}", submitted.describe_failure()))?;
        if let Some(failed) = ended.iter().find(|o| !o.status.success()) {
            bail!(
                "a worker ended {}: {}",
                failed.status,
                String::from_utf8_lossy(&failed.stderr)
            );
        }
        let seconds = runner.rt.block_on(sync_duration(runner, &sync_id))?;
        runs.push(WorkersRun {
            workers,
            seconds,
            vs_jobs_1: seconds / jobs_1,
            vs_binary_copy: seconds / copies.binary.as_secs_f64(),
            vs_text_copy: seconds / copies.text.as_secs_f64(),
        });
    }
    Ok(runs)
}

/// A sync's duration in `sync_metadata`, once it ended SUCCESS (an error otherwise).
async fn sync_duration(runner: &Runner<'_>, sync_id: &str) -> anyhow::Result<f64> {
    let row = runner
        .client
        .query_one(
            &format!(
                "SELECT status, duration_seconds FROM {}.sync_metadata WHERE sync_id = $1",
                datsync::quote_ident(&runner.profile.schema)
            ),
            &[&sync_id],
        )
        .await?;
    let status: String = row.get(0);
    if status != "SUCCESS" {
        bail!("the submitted sync {sync_id} ended {status}, not SUCCESS");
    }
    row.get::<_, Option<f64>>(1)
        .with_context(|| format!("the submitted sync {sync_id} has no duration"))
}

/// Where [`measure_more`] writes its figures.
struct Measured<'a> {
    /// The first run's time, the base of the ratios.
    first_s: f64,
    seconds: &'a mut Seconds,
    ratios: &'a mut Ratios,
    peak_plain: &'a mut u64,
}

/// (f) and (c), once (b), (d) and (e) loaded the table.
fn measure_more(
    runner: &Runner<'_>,
    client: &tokio_postgres::Client,
    files: &Files<'_>,
    rows: u64,
    chunks: u64,
    m: Measured<'_>,
) -> anyhow::Result<()> {
    let Measured {
        first_s,
        seconds,
        ratios,
        peak_plain,
    } = m;
    let profile = runner.profile;
    // (f): the table holds the rows the last run of (b), (d) or (e) loaded (the same rows);
    // both sides update every one of them.
    let staged = runner.rt.block_on(datsync::upsert_baseline(
        client,
        profile,
        files.payload,
        rows,
    ))?;
    let fresh = runner.run("f", files.plain, &[], None, false)?;
    let summary = summary_of(&fresh)?;
    if summary.counts.records_updated != rows {
        bail!(
            "run --fresh into the loaded table updated {} rows of {rows}",
            summary.counts.records_updated
        );
    }
    seconds.staged_upsert = Some(staged.as_secs_f64());
    seconds.fresh_run = Some(fresh.elapsed.as_secs_f64());
    ratios.fresh_run_vs_staged_upsert = Some(fresh.elapsed.as_secs_f64() / staged.as_secs_f64());
    *peak_plain = (*peak_plain).max(fresh.peak_rss_kib);

    let resumes = Measured {
        first_s,
        seconds: &mut *seconds,
        ratios: &mut *ratios,
        peak_plain: &mut *peak_plain,
    };
    measure_resume(runner, files, (rows, chunks), resumes)
}

/// (c): a run killed after 80% of its chunks are committed and its resume, twice: first with
/// the resume points removed from the checkpoint (the recorded chunks decoded again, as a
/// checkpoint of a build before them resumes), then as it is.
fn measure_resume(
    runner: &Runner<'_>,
    files: &Files<'_>,
    (rows, chunks): (u64, u64),
    m: Measured<'_>,
) -> anyhow::Result<()> {
    let Measured {
        first_s,
        seconds,
        ratios,
        peak_plain,
        ..
    } = m;
    let kill_at = kill_after(chunks);
    let left = rows.saturating_sub(kill_at * runner.chunk_size as u64);
    ratios.resume_rows_share = Some(left as f64 / rows.max(1) as f64);
    let mut resumes = Vec::with_capacity(2);
    for (name, strip) in [("c0", true), ("c", false)] {
        let now = chrono::Utc::now();
        let sync_id = datsync::SyncId::new(now, now.timestamp_subsec_nanos()).to_string();
        let killed = runner.run(
            name,
            files.plain,
            &["--sync-id", &sync_id],
            Some(kill_at),
            true,
        )?;
        if strip {
            strip_resume_points(&runner.dir.join(name).join(&sync_id))?;
        }
        let resume = runner.resume(name, &sync_id)?;
        *peak_plain = (*peak_plain).max(killed.peak_rss_kib.max(resume.peak_rss_kib));
        seconds.killed_run = Some(killed.elapsed.as_secs_f64());
        resumes.push(resume.elapsed.as_secs_f64());
    }
    if let [all, skipping] = resumes[..] {
        seconds.resume_decoding_all = Some(all);
        ratios.resume_decoding_all_vs_first_run = Some(all / first_s);
        seconds.resume = Some(skipping);
        ratios.resume_after_80_vs_first_run = Some(skipping / first_s);
    }
    Ok(())
}

/// The chunk commits (c) kills its run after: the first count at or past 80% of `chunks`
/// (⌈0.8 × chunks⌉: after 8 of 9, 72 of 90; 7 of 9 would be 78%, short of 80%), leaving at
/// least one chunk to the resume (so fewer than 5 chunks are killed before 80%: 1 of 2).
fn kill_after(chunks: u64) -> u64 {
    chunks
        .saturating_mul(KILL_SHARE_FIFTHS)
        .div_ceil(5)
        .clamp(1, chunks.saturating_sub(1).max(1))
}

/// Removes the `resume_point` of every chunk entry in a sync's checkpoint directory (its
/// manifest and journal), as a build before resume points wrote them.
fn strip_resume_points(dir: &Path) -> anyhow::Result<()> {
    let mut files = vec![dir.join("manifest.json")];
    if let Ok(entries) = std::fs::read_dir(dir.join("journal")) {
        for entry in entries {
            files.push(entry?.path());
        }
    }
    for path in files {
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut doc: serde_json::Value = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not JSON", path.display()))?;
        if let Some(chunks) = doc.get_mut("chunks").and_then(|c| c.as_array_mut()) {
            for chunk in chunks {
                if let Some(entry) = chunk.as_object_mut() {
                    entry.remove("resume_point");
                }
            }
        }
        if let Some(entry) = doc.get_mut("chunk").and_then(|c| c.as_object_mut()) {
            entry.remove("resume_point");
        }
        std::fs::write(&path, serde_json::to_vec(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// The 1-, 5- and 15-minute load averages (zeros where `/proc/loadavg` cannot be read).
fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = [0.0; 3];
    for (slot, field) in out.iter_mut().zip(text.split_whitespace()) {
        *slot = field.parse().unwrap_or(0.0);
    }
    out
}

/// (p): the best of [`PARSE_RUNS`] of a `memchr` scan (the `~|^` delimiters and the line
/// ends) and of the decoder (bytes to Arrow text batches of the default size) over the same
/// bytes in memory: the file's first [`PARSE_BYTES`].
fn parse_vs_memchr(profile: &Profile, file: &Path) -> anyhow::Result<(Duration, Duration)> {
    let mut data = Vec::new();
    std::fs::File::open(file)?
        .take(PARSE_BYTES)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {}", file.display()))?;
    let best = |f: &mut dyn FnMut() -> anyhow::Result<u64>| -> anyhow::Result<(Duration, u64)> {
        let mut best = (Duration::MAX, 0);
        for _ in 0..PARSE_RUNS {
            let started = Instant::now();
            let out = std::hint::black_box(f()?);
            best = best.min((started.elapsed(), out));
        }
        Ok(best)
    };
    let (memchr, _) = best(&mut || {
        let delimiters = memchr::memmem::find_iter(&data, b"~|^").count();
        let lines = memchr::memchr_iter(b'\n', &data).count();
        Ok((delimiters + lines) as u64)
    })?;
    let (decoder, rows) = best(&mut || decode_all(profile, &data))?;
    if rows == 0 {
        bail!("the decoder found no rows in {}", file.display());
    }
    Ok((memchr, decoder))
}

/// Decodes `data` whole; returns the rows.
fn decode_all(profile: &Profile, data: &[u8]) -> anyhow::Result<u64> {
    let mut decoder = Decoder::new(profile, ParseOptions::default());
    let mut rows = 0u64;
    for piece in data.chunks(PARSE_FEED) {
        let mut pos = 0;
        while pos < piece.len() {
            pos += decoder.decode(&piece[pos..])?;
            while let Some(batch) = decoder.next_batch() {
                rows += std::hint::black_box(batch).num_rows() as u64;
            }
        }
    }
    while let Some(batch) = decoder.flush()? {
        rows += batch.num_rows() as u64;
    }
    Ok(rows)
}

/// What (c)'s ratio is read against: the share of the rows the resume loads, and the resume
/// that decodes the recorded chunks again.
fn print_resume_context(q: &Ratios, chunks: u64) {
    if let Some(v) = q.resume_rows_share {
        println!(
            "{:<38} {v:>7.2}  (rows left after {} of {} chunks: the ratio at a first run's speed)",
            "resume, its share of the rows",
            kill_after(chunks),
            chunks
        );
    }
    if let Some(v) = q.resume_decoding_all_vs_first_run {
        println!(
            "{:<38} {v:>7.2}  (baseline: decoding the recorded chunks again)",
            "resume, no resume points / first"
        );
    }
}

/// (j) and (w): the same file with more hands.
fn print_scaling(r: &Report) {
    for j in &r.jobs {
        println!(
            "{:<52} {:>8.2} s  {:.2} × --jobs 1, {:.2} × binary COPY, {:.2} × text COPY, \
             peak RSS {:.1} MiB",
            format!("(j) datsync run --jobs {}, first run", j.jobs),
            j.seconds,
            j.vs_jobs_1,
            j.vs_binary_copy,
            j.vs_text_copy,
            j.peak_rss_mib
        );
    }
    for w in &r.workers {
        println!(
            "{:<52} {:>8.2} s  {:.2} × --jobs 1, {:.2} × binary COPY, {:.2} × text COPY",
            format!("(w) datsync submit + {} worker processes", w.workers),
            w.seconds,
            w.vs_jobs_1,
            w.vs_binary_copy,
            w.vs_text_copy,
        );
    }
}

fn print_report(r: &Report) {
    let s = &r.seconds;
    let line = |what: &str, v: Option<f64>| {
        if let Some(v) = v {
            println!("{what:<52} {v:>8.2} s");
        }
    };
    line(
        "(a) PostgreSQL binary COPY, same typed rows",
        Some(s.binary_copy),
    );
    line("(a) PostgreSQL text COPY, same rows", Some(s.text_copy));
    line("(b) datsync run, first run", Some(s.first_run));
    line(
        "(g) PostgreSQL binary COPY, the derived tables' rows",
        s.derived_copy,
    );
    line(
        "(f) staging COPY + upsert by hand, loaded table",
        s.staged_upsert,
    );
    line("(f) datsync run --fresh, loaded table", s.fresh_run);
    line(
        "(c) datsync run killed after 80% of the chunks",
        s.killed_run,
    );
    line(
        "(c) datsync resume, no resume points (as before)",
        s.resume_decoding_all,
    );
    line("(c) datsync resume, alone", s.resume);
    line("(d) datsync run --no-checkpoint", s.no_checkpoint);
    line("(e) datsync run, gzipped file", s.gzip_first_run);
    line("(p) memchr scan, first 128 MiB in memory", s.memchr);
    line("(p) decoder, the same bytes", s.parse);
    print_scaling(r);
    println!(
        "throughput (b): {:.0} rows/s; load average {:.1} → {:.1}",
        r.rows as f64 / s.first_run,
        r.load_average[0][0],
        r.load_average[1][0]
    );
    let q = &r.ratios;
    first_run_targets(q);
    target(
        "--fresh / staged upsert    (f)",
        q.fresh_run_vs_staged_upsert,
        "≤ 1.50",
        |v| v <= 1.5,
    );
    target(
        "checkpoint overhead        (b)/(d)-1",
        q.checkpoint_overhead,
        "≤ 0.10",
        |v| v <= 0.1,
    );
    target(
        "resume after 80% / first   (c)/(b)",
        q.resume_after_80_vs_first_run,
        "≤ 0.20",
        |v| v <= 0.2,
    );
    print_resume_context(q, r.chunks);
    target(
        "gzip / plain               (e)/(b)",
        q.gzip_vs_plain,
        "≤ 1.20",
        |v| v <= 1.2,
    );
    target(
        "parse / memchr             (p)",
        q.parse_vs_memchr,
        "≥ 0.50",
        |v| v >= 0.5,
    );
    target(
        "peak RSS, plain (MiB)",
        Some(r.peak_rss_mib.plain),
        "≤ 150",
        |v| v <= 150.0,
    );
    target(
        "peak RSS, gzip (MiB)",
        r.peak_rss_mib.gzip,
        "≤ 150",
        |v| v <= 150.0,
    );
}

/// The first run against the COPYs of (a), and of (a) and (g).
fn first_run_targets(q: &Ratios) {
    target(
        "first run / text COPY      (b)/(a)",
        Some(q.first_run_vs_text_copy),
        "≤ 1.50",
        |v| v <= 1.5,
    );
    target(
        "first run / binary COPY    (b)/(a)",
        Some(q.first_run_vs_binary_copy),
        "≤ 1.50",
        |v| v <= 1.5,
    );
    target(
        "first run / text COPY+(g)  (b)/(a+g)",
        q.first_run_vs_text_copy_and_derived,
        "≤ 1.50",
        |v| v <= 1.5,
    );
    target(
        "first run / binary+(g)     (b)/(a+g)",
        q.first_run_vs_binary_copy_and_derived,
        "≤ 1.50",
        |v| v <= 1.5,
    );
}

fn target(what: &str, value: Option<f64>, goal: &str, met: impl Fn(f64) -> bool) {
    if let Some(value) = value {
        let verdict = if met(value) { "met" } else { "MISSED" };
        println!("{what:<38} {value:>7.2}  (target {goal}: {verdict})");
    }
}

/// Runs `datsync` children against the benchmark database.
struct Runner<'a> {
    rt: &'a tokio::runtime::Runtime,
    client: &'a tokio_postgres::Client,
    profile: &'a Profile,
    url: &'a str,
    dir: &'a Path,
    chunk_size: usize,
}

/// The fastest of `repeat` first runs (b) and, with `more`, of as many runs of (d) and (e),
/// each right after one of (b): a ratio of runs made at different moments leans (the later
/// runs load a database the earlier ones filled with WAL and dead rows).
fn first_runs(
    runner: &Runner<'_>,
    files: &Files<'_>,
    repeat: u32,
    more: bool,
) -> anyhow::Result<(ChildRun, Option<ChildRun>, Option<ChildRun>)> {
    let (mut first, mut plain, mut gzipped) = (None, None, None);
    for _ in 0..repeat.max(1) {
        keep_faster(&mut first, runner.run("b", files.plain, &[], None, true)?);
        if more {
            let run = runner.run("d", files.plain, &["--no-checkpoint"], None, true)?;
            keep_faster(&mut plain, run);
            if let Some(gz) = files.gzip {
                keep_faster(&mut gzipped, runner.run("e", gz, &[], None, true)?);
            }
        }
    }
    let first = first.context("no first run measured")?;
    Ok((first, plain, gzipped))
}

/// Keeps in `best` the faster of it and `run`, with the higher peak RSS of the two.
fn keep_faster(best: &mut Option<ChildRun>, mut run: ChildRun) {
    if let Some(b) = best {
        b.peak_rss_kib = b.peak_rss_kib.max(run.peak_rss_kib);
        if b.elapsed <= run.elapsed {
            return;
        }
        run.peak_rss_kib = b.peak_rss_kib;
    }
    *best = Some(run);
}

impl Runner<'_> {
    /// `datsync run --fresh FILE` (or with `--sync-id`, a new one), into the target table and
    /// its derived tables emptied first when `empty`, checkpoints in `<dir>/<name>`; killed
    /// after `kill_at` chunk commits when given.
    fn run(
        &self,
        name: &str,
        file: &Path,
        extra: &[&str],
        kill_at: Option<u64>,
        empty: bool,
    ) -> anyhow::Result<ChildRun> {
        if empty {
            self.rt
                .block_on(datsync::empty_target(self.client, self.profile))?;
        }
        let mut args = vec!["run".to_owned(), file.display().to_string()];
        if !extra.contains(&"--sync-id") {
            args.push("--fresh".to_owned());
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.extend(self.common(name));
        let env: Vec<_> = kill_at
            .map(|n| (datsync::KILL_AT_ENV, format!("chunk_committed:{n}")))
            .into_iter()
            .collect();
        let child = run_datsync(&args, &env)?;
        check(&child, kill_at.is_some())?;
        Ok(child)
    }

    fn resume(&self, name: &str, sync_id: &str) -> anyhow::Result<ChildRun> {
        let mut args = vec!["resume".to_owned(), sync_id.to_owned()];
        args.extend(self.common(name));
        let child = run_datsync(&args, &[])?;
        check(&child, false)?;
        Ok(child)
    }

    fn common(&self, name: &str) -> Vec<String> {
        [
            "--quiet",
            "--json",
            "--database-url",
            self.url,
            "--checkpoint-dir",
            &self.dir.join(name).display().to_string(),
            "--chunk-size",
            &self.chunk_size.to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }
}

/// The summary a child printed.
fn summary_of(child: &ChildRun) -> anyhow::Result<RunSummary> {
    serde_json::from_str(&child.stdout)
        .with_context(|| format!("no summary from datsync: {}", child.describe_failure()))
}

/// A child ended as expected: killed, or with a SUCCESS summary.
fn check(child: &ChildRun, killed: bool) -> anyhow::Result<()> {
    if killed {
        if !child.killed() {
            bail!(
                "the run was meant to be killed but ended: {}",
                child.describe_failure()
            );
        }
        return Ok(());
    }
    let summary = summary_of(child)?;
    if summary.status != SyncStatus::Success {
        bail!(
            "datsync ended {}: {}",
            serde_json::json!(summary.status),
            serde_json::json!(summary.error)
        );
    }
    Ok(())
}

/// The connection string `conn` with another database: a URL's path is replaced, a
/// key-value string gets `dbname=` appended (the last one wins).
fn with_dbname(conn: &str, db: &str) -> String {
    if let Some((scheme, rest)) = conn.split_once("://") {
        let (main, query) = rest
            .split_once('?')
            .map_or((rest, None), |(m, q)| (m, Some(q)));
        let host = main.split_once('/').map_or(main, |(h, _)| h);
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        format!("{scheme}://{host}/{db}{query}")
    } else {
        format!("{conn} dbname={db}")
    }
}

#[cfg(test)]
mod tests {
    use super::{GUARD_TOLERANCE, Ratios, Report, guard, kill_after, with_dbname};

    #[test]
    fn the_kill_comes_once_80_percent_of_the_chunks_are_committed() {
        for (chunks, after) in [
            (1, 1),
            (2, 1),
            (5, 4),
            (9, 8),
            (10, 8),
            (11, 9),
            (90, 72),
            (91, 73),
        ] {
            assert_eq!(kill_after(chunks), after, "{chunks} chunks");
            // At or past 80%, with a chunk left to the resume, from five chunks on (below
            // that, leaving one chunk comes first).
            if chunks >= 5 {
                assert!(after * 5 >= chunks * 4 && after < chunks, "{chunks} chunks");
            }
        }
    }

    #[test]
    fn dbname_is_replaced_in_urls_and_appended_to_key_values() {
        assert_eq!(
            with_dbname(
                "postgresql://root@127.0.0.1:5432/postgres?sslmode=disable",
                "x"
            ),
            "postgresql://root@127.0.0.1:5432/x?sslmode=disable"
        );
        assert_eq!(with_dbname("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_dbname("host=h dbname=postgres", "x"),
            "host=h dbname=postgres dbname=x"
        );
    }

    fn report(mb: u64, text: f64, binary: f64) -> Report {
        Report {
            mb,
            rows: 1,
            chunks: 1,
            chunk_size: 10_000,
            repeat: 1,
            load_average: [[0.0; 3]; 2],
            seconds: super::Seconds::default(),
            ratios: Ratios {
                first_run_vs_text_copy: text,
                first_run_vs_binary_copy: binary,
                ..Ratios::default()
            },
            peak_rss_mib: super::PeakRss::default(),
            jobs: Vec::new(),
            workers: Vec::new(),
        }
    }

    #[test]
    fn the_guard_fails_past_a_quarter_worse_and_refuses_other_sizes() {
        let committed = report(20, 2.0, 3.0);
        let edge = 2.0 * GUARD_TOLERANCE;
        assert!(guard(&committed, &report(20, edge, 3.0)).unwrap());
        assert!(guard(&committed, &report(20, 1.0, 1.0)).unwrap());
        assert!(!guard(&committed, &report(20, edge + 0.01, 3.0)).unwrap());
        assert!(!guard(&committed, &report(20, 2.0, 3.0 * GUARD_TOLERANCE + 0.01)).unwrap());
        assert!(guard(&committed, &report(100, 2.0, 3.0)).is_err());
        // The committed file is a `--json` output: it reads back.
        let json = serde_json::to_string(&committed).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert!((back.ratios.first_run_vs_text_copy - 2.0).abs() < 1e-12);
    }
}
