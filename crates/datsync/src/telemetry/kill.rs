//! Crash injection (the `crash-injection` feature): `DATSYNC_KILL_AT=<event>:<n>` kills the
//! process with SIGKILL at the n-th emission of an event; `DATSYNC_TERM_AT=<event>:<n>`
//! sends it SIGTERM and waits until its stop signal shows the handler saw it;
//! `DATSYNC_PAUSE_AT=<event>:<n>[,<event>:<n>…]` with `DATSYNC_PAUSE_DIR=<dir>` pauses it at
//! each of those points: it writes `<dir>/<event>-<n>` and waits until that file is gone —
//! the fault tests restart the database server while a run is held there;
//! `DATSYNC_SIGSTOP_AT=<event>:<n>` stops the whole process (SIGSTOP to itself) until it is
//! sent SIGCONT — the tests change a source file while no thread of the run can move.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{KILL_AT_ENV, PAUSE_AT_ENV, PAUSE_DIR_ENV, SIGSTOP_AT_ENV, TERM_AT_ENV};

/// The longest an armed SIGTERM waits for the process's handler to see it.
const TERM_WAIT: Duration = Duration::from_secs(10);
/// The longest a pause point holds the process.
const PAUSE_WAIT: Duration = Duration::from_secs(600);

/// The armed kill and stop points, if any.
#[derive(Debug, Default)]
pub(super) struct KillPoints {
    kill_at: Option<(String, u64)>,
    term_at: Option<(String, u64)>,
    sigstop_at: Option<(String, u64)>,
    /// The pause points and the directory of their marker files.
    pause_at: Vec<(String, u64)>,
    pause_dir: Option<std::path::PathBuf>,
    stop: OnceLock<tokio::sync::watch::Receiver<bool>>,
}

impl KillPoints {
    /// The points armed in `env`.
    pub(super) fn from_env(env: &HashMap<String, String>) -> Self {
        let parse = |spec: &str| {
            let (name, n) = spec.rsplit_once(':')?;
            Some((name.trim().to_owned(), n.trim().parse().ok()?))
        };
        let point = |var: &str| env.get(var).and_then(|spec| parse(spec));
        Self {
            kill_at: point(KILL_AT_ENV),
            term_at: point(TERM_AT_ENV),
            sigstop_at: point(SIGSTOP_AT_ENV),
            pause_at: env
                .get(PAUSE_AT_ENV)
                .map(|specs| specs.split(',').filter_map(parse).collect())
                .unwrap_or_default(),
            pause_dir: env.get(PAUSE_DIR_ENV).map(std::path::PathBuf::from),
            stop: OnceLock::new(),
        }
    }

    /// The stop signal an armed SIGTERM waits for (the first one given is kept).
    pub(super) fn observe_stop(&self, stop: tokio::sync::watch::Receiver<bool>) {
        let _ = self.stop.set(stop);
    }

    /// Event `name` was emitted for the `count`-th time.
    pub(super) fn emitted(&self, name: &str, count: u64) {
        let armed = |point: &Option<(String, u64)>| {
            point
                .as_ref()
                .is_some_and(|(at_name, at)| at_name == name && *at == count)
        };
        if armed(&self.kill_at) {
            kill_self();
        }
        if armed(&self.term_at) {
            self.term_self();
        }
        if armed(&self.sigstop_at) {
            use nix::sys::signal::{Signal, kill};
            use nix::unistd::Pid;
            // Returns once the process is continued.
            let _ = kill(Pid::this(), Signal::SIGSTOP);
        }
        if let Some(dir) = &self.pause_dir
            && self
                .pause_at
                .iter()
                .any(|(n, at)| n == name && *at == count)
        {
            pause(&dir.join(format!("{name}-{count}")));
        }
    }

    /// SIGTERM to this process, then a wait until the stop signal shows it was handled.
    fn term_self(&self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let _ = kill(Pid::this(), Signal::SIGTERM);
        let Some(stop) = self.stop.get() else {
            return;
        };
        let wait = || {
            let deadline = Instant::now() + TERM_WAIT;
            while !*stop.borrow() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        // On a runtime worker, hand the worker's queued tasks to another thread while this
        // one waits: the signal handler's task may sit in this worker's queue, where no
        // other worker would take it, and the wait would only end at its deadline.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait);
            }
            _ => wait(),
        }
    }
}

/// Writes `marker`, then waits until it is removed (or [`PAUSE_WAIT`] has passed).
fn pause(marker: &std::path::Path) {
    if std::fs::write(marker, b"paused\n").is_err() {
        return;
    }
    let wait = || {
        let deadline = Instant::now() + PAUSE_WAIT;
        while marker.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // As in `term_self`: a runtime worker hands its queued tasks over while it waits.
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait);
        }
        _ => wait(),
    }
}

/// SIGKILL to this process: no destructor, no flush, no unwinding — like `kill -9`.
fn kill_self() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _ = kill(Pid::this(), Signal::SIGKILL);
    // SIGKILL cannot be caught; should delivery lag, stop here anyway.
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_spec_is_parsed_and_unarmed_without_it() {
        let env: HashMap<String, String> =
            [(KILL_AT_ENV.to_owned(), "chunk_committed:3".to_owned())].into();
        assert_eq!(
            KillPoints::from_env(&env).kill_at,
            Some(("chunk_committed".to_owned(), 3))
        );
        assert_eq!(KillPoints::from_env(&HashMap::new()).kill_at, None);
        let env: HashMap<String, String> =
            [(TERM_AT_ENV.to_owned(), "chunk_completed:2".to_owned())].into();
        let t = KillPoints::from_env(&env);
        assert_eq!(t.term_at, Some(("chunk_completed".to_owned(), 2)));
        assert_eq!(t.kill_at, None);
        assert!(super::super::EVENT_NAMES.contains(&"chunk_committed"));
        let env: HashMap<String, String> = [
            (
                PAUSE_AT_ENV.to_owned(),
                "chunk_staged:3, chunk_staged:9".to_owned(),
            ),
            (PAUSE_DIR_ENV.to_owned(), "/tmp/p".to_owned()),
        ]
        .into();
        let p = KillPoints::from_env(&env);
        assert_eq!(
            p.pause_at,
            [
                ("chunk_staged".to_owned(), 3),
                ("chunk_staged".to_owned(), 9)
            ]
        );
        assert_eq!(p.pause_dir.as_deref(), Some(std::path::Path::new("/tmp/p")));
    }
}
