//! `datsync bench` (hidden): the end-to-end benchmark of issue 5 item 12, in one run.
//!
//! On a generated file of `--mb` MB (`DATSYNC_BENCH_MB`, default 100), in a database of its
//! own (`datsync_bench_e2e_<pid>`, created and dropped on the server of `--database-url`):
//!
//! - (a) PostgreSQL's own binary COPY of the same typed rows into an empty table of the
//!   target's shape (`datsync::copy_baseline`; the SQL of every step is the library's);
//! - (b) a first `datsync run` (this executable as a child process), into an empty table;
//! - (c) a `datsync run` killed with SIGKILL after 80% of its chunks are committed, then
//!   `datsync resume`: the resume alone is timed;
//! - (d) a `datsync run --no-checkpoint`, into an empty table.
//!
//! Each child's peak RSS is measured as [`super::child::ChildRun::peak_rss_kib`] says.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use datsync::{
    PgSettings, Profile, RunSummary, SampleOptions, SampleSize, SyncStatus, write_sample,
};

use super::child::{ChildRun, run_datsync};
use crate::cli::BenchArgs;

/// The share of chunks committed before the kill of (c).
const KILL_SHARE: f64 = 0.8;

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
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
    let sample = write_sample(
        std::fs::File::create(&file)?,
        &SampleOptions {
            size: SampleSize::Bytes(args.mb * 1_000_000),
            ..SampleOptions::default()
        },
    )?;
    let chunks = sample.rows.div_ceil(args.chunk_size as u64);
    println!(
        "file: {:.1} MB, {} rows, {chunks} chunks of {} rows",
        sample.text_bytes as f64 / 1e6,
        sample.rows,
        args.chunk_size
    );
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
    let result = measure(
        args,
        &rt,
        &settings,
        &url,
        &profile,
        &file,
        &payload,
        rows,
        chunks,
        dir.path(),
    );
    rt.block_on(async {
        let admin = datsync::connect(&admin).await?;
        datsync::drop_database(&admin, &db).await?;
        anyhow::Ok(())
    })?;
    result.map(|()| ExitCode::SUCCESS)
}

/// Every measurement, then the report.
#[allow(clippy::too_many_arguments)]
fn measure(
    args: &BenchArgs,
    rt: &tokio::runtime::Runtime,
    settings: &PgSettings,
    url: &str,
    profile: &Profile,
    file: &Path,
    payload: &Path,
    rows: u64,
    chunks: u64,
    dir: &Path,
) -> anyhow::Result<()> {
    let mut client = rt.block_on(datsync::connect(settings))?;
    rt.block_on(datsync::init_db(&mut client, profile))?;
    let copied = rt.block_on(datsync::copy_baseline(&client, profile, payload, rows))?;
    line("(a) PostgreSQL binary COPY, same typed rows", copied, None);
    std::fs::remove_file(payload)?;

    let runner = Runner {
        rt,
        client: &client,
        profile,
        url,
        file,
        dir,
        chunk_size: args.chunk_size,
    };
    let first = runner.run("b", &[], None)?;
    line("(b) datsync run, first run", first.elapsed, Some(&first));

    let kill_at =
        ((chunks as f64 * KILL_SHARE).round() as u64).clamp(1, chunks.saturating_sub(1).max(1));
    let now = chrono::Utc::now();
    let sync_id = datsync::SyncId::new(now, now.timestamp_subsec_nanos()).to_string();
    let killed = runner.run("c", &["--sync-id", &sync_id], Some(kill_at))?;
    line(
        &format!("(c) datsync run killed after {kill_at}/{chunks} chunks"),
        killed.elapsed,
        Some(&killed),
    );
    let resume = runner.resume("c", &sync_id)?;
    line("(c) datsync resume, alone", resume.elapsed, Some(&resume));
    let plain = runner.run("d", &["--no-checkpoint"], None)?;
    line(
        "(d) datsync run --no-checkpoint",
        plain.elapsed,
        Some(&plain),
    );

    let (copy_s, first_s) = (copied.as_secs_f64(), first.elapsed.as_secs_f64());
    let peak = [&first, &killed, &resume, &plain]
        .iter()
        .map(|c| c.peak_rss_kib)
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    println!("throughput (b): {:.0} rows/s", rows as f64 / first_s);
    let ratio = first_s / copy_s;
    target(
        "first run / COPY       (b)/(a)",
        ratio,
        "≤ 2.00",
        ratio <= 2.0,
    );
    let ratio = resume.elapsed.as_secs_f64() / first_s;
    target(
        "resume after 80% / first run",
        ratio,
        "≤ 0.30",
        ratio <= 0.3,
    );
    let overhead = first_s / plain.elapsed.as_secs_f64() - 1.0;
    target(
        "checkpoint overhead    (b)/(d)-1",
        overhead,
        "≤ 0.10",
        overhead <= 0.1,
    );
    target("peak RSS of any run (MiB)", peak, "≤ 200", peak <= 200.0);
    Ok(())
}

/// Runs `datsync` children against the benchmark database.
struct Runner<'a> {
    rt: &'a tokio::runtime::Runtime,
    client: &'a tokio_postgres::Client,
    profile: &'a Profile,
    url: &'a str,
    file: &'a Path,
    dir: &'a Path,
    chunk_size: usize,
}

impl Runner<'_> {
    /// `datsync run --fresh` (or with `--sync-id`, a new one) into an emptied target table, checkpoints in `<dir>/<name>`;
    /// killed after `kill_at` chunk commits when given.
    fn run(&self, name: &str, extra: &[&str], kill_at: Option<u64>) -> anyhow::Result<ChildRun> {
        self.rt.block_on(datsync::empty_table(
            self.client,
            &self.profile.schema,
            &self.profile.table,
        ))?;
        let mut args = vec!["run".to_owned(), self.file.display().to_string()];
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
    let summary: RunSummary = serde_json::from_str(&child.stdout)
        .with_context(|| format!("no summary from datsync: {}", child.describe_failure()))?;
    if summary.status != SyncStatus::Success {
        bail!(
            "datsync ended {}: {}",
            serde_json::json!(summary.status),
            serde_json::json!(summary.error)
        );
    }
    Ok(())
}

fn line(what: &str, took: Duration, child: Option<&ChildRun>) {
    let rss = child.map_or_else(String::new, |c| {
        format!("  peak RSS {:>6.1} MiB", c.peak_rss_kib as f64 / 1024.0)
    });
    println!("{what:<48} {:>8.2} s{rss}", took.as_secs_f64());
}

fn target(what: &str, value: f64, goal: &str, met: bool) {
    let verdict = if met { "met" } else { "MISSED" };
    println!("{what:<34} {value:>7.2}  (target {goal}: {verdict})");
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
    use super::with_dbname;

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
}
