//! Running the `datsync` executable itself as a child process (the demo and the benchmark
//! kill it part way), timed, with its peak resident memory.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// How often the child's memory is sampled.
const POLL: Duration = Duration::from_millis(5);
/// How far above this process's own high-water mark a child's `ru_maxrss` must be to be
/// taken as the child's own ([`run_datsync`]).
const OWN_MARK_SLACK_KIB: u64 = 4 << 10;

/// One finished child.
#[derive(Debug)]
pub struct ChildRun {
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// Peak resident set size in KiB: the larger of the last `VmHWM` seen in
    /// `/proc/<pid>/status` (sampled every 5 ms) and, when it grew past this process's own
    /// high-water mark, `getrusage(RUSAGE_CHILDREN)`'s `ru_maxrss` (exact, once the child is
    /// reaped, for children run one after another; below our own mark it may be ours).
    pub peak_rss_kib: u64,
}

impl ChildRun {
    /// Killed by SIGKILL.
    pub fn killed(&self) -> bool {
        use std::os::unix::process::ExitStatusExt as _;
        self.status.signal() == Some(9)
    }

    /// What went wrong, for an error message: status and the end of stderr.
    pub fn describe_failure(&self) -> String {
        let tail: Vec<&str> = self.stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("{}; its last output: {}", self.status, tail.join(" | "))
    }
}

/// This executable.
pub fn datsync_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding the datsync executable to run as a child")
}

/// Starts `datsync ARGS` in the background (`DATSYNC_KILL_AT` not inherited), its output
/// discarded but its standard error kept for [`std::process::Child::wait_with_output`].
pub fn spawn_datsync(args: &[String]) -> anyhow::Result<std::process::Child> {
    let exe = datsync_exe()?;
    Command::new(&exe)
        .args(args)
        .env_remove(datsync::KILL_AT_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))
}

/// Runs `datsync ARGS` with extra environment variables (`DATSYNC_KILL_AT` never inherited
/// unless given), capturing its output.
pub fn run_datsync(args: &[String], env: &[(&str, String)]) -> anyhow::Result<ChildRun> {
    let exe = datsync_exe()?;
    let mut cmd = Command::new(&exe);
    cmd.args(args)
        .env_remove(datsync::KILL_AT_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let rusage_before = children_maxrss_kib();
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let out = child.stdout.take().map(reader);
    let err = child.stderr.take().map(reader);
    let status_path = format!("/proc/{}/status", child.id());
    let mut hwm = 0;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the child")? {
            break status;
        }
        hwm = hwm.max(vm_hwm_kib(&status_path).unwrap_or(0));
        std::thread::sleep(POLL);
    };
    let elapsed = started.elapsed();
    let rusage_after = children_maxrss_kib();
    // A child started by `posix_spawn` (a vfork, as the standard library spawns) takes this
    // process's own high-water mark as its `ru_maxrss` when it execs (give or take the
    // kernel's per-thread RSS counts, seen 68 KiB apart): only a figure clearly above ours
    // is the child's. (Taken as it was, `datsync bench`'s peak RSS of its plain runs was its
    // own: 127 MiB at 100 MB, 159 MiB at 1 GB, for runs that peak at 74–81 MB.)
    let own = vm_hwm_kib("/proc/self/status").unwrap_or(u64::MAX);
    if rusage_after > rusage_before && rusage_after > own.saturating_add(OWN_MARK_SLACK_KIB) {
        hwm = hwm.max(rusage_after);
    }
    Ok(ChildRun {
        status,
        stdout: out.map(join).unwrap_or_default(),
        stderr: err.map(join).unwrap_or_default(),
        elapsed,
        peak_rss_kib: hwm,
    })
}

fn reader(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn join(h: std::thread::JoinHandle<String>) -> String {
    h.join().unwrap_or_default()
}

/// `VmHWM` of a running process, in KiB.
fn vm_hwm_kib(status_path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status_path).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The largest `ru_maxrss` (KiB on Linux) of the children reaped so far.
fn children_maxrss_kib() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::{run_datsync, vm_hwm_kib};

    /// A child's peak is its own, however much memory this process took before it started:
    /// a spawned child's `ru_maxrss` starts at this process's high-water mark.
    #[test]
    fn a_childs_peak_rss_is_its_own_not_this_processs() {
        let big = vec![1u8; 256 << 20];
        let own = vm_hwm_kib("/proc/self/status").unwrap_or(0);
        assert!(
            own >= 256 << 10,
            "this process's high-water mark: {own} KiB"
        );
        // This test executable, asked for a test no test has the name of: a small process.
        let child = run_datsync(
            &["--exact".to_owned(), "no test has this name".to_owned()],
            &[],
        )
        .unwrap();
        assert!(child.status.success(), "{}", child.describe_failure());
        assert!(
            child.peak_rss_kib < 128 << 10,
            "the child's peak: {} KiB, this process's: {own} KiB",
            child.peak_rss_kib
        );
        std::hint::black_box(&big);
    }
}
