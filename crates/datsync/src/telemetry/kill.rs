//! Crash injection (the `crash-injection` feature): `DATSYNC_KILL_AT=<event>:<n>` kills the
//! process with SIGKILL at the n-th emission of an event; `DATSYNC_TERM_AT=<event>:<n>`
//! sends it SIGTERM and waits until its stop signal shows the handler saw it.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{KILL_AT_ENV, TERM_AT_ENV};

/// The longest an armed SIGTERM waits for the process's handler to see it.
const TERM_WAIT: Duration = Duration::from_secs(10);

/// The armed kill and stop points, if any.
#[derive(Debug, Default)]
pub(super) struct KillPoints {
    kill_at: Option<(String, u64)>,
    term_at: Option<(String, u64)>,
    stop: OnceLock<tokio::sync::watch::Receiver<bool>>,
}

impl KillPoints {
    /// The points armed in `env`.
    pub(super) fn from_env(env: &HashMap<String, String>) -> Self {
        let point = |var: &str| {
            env.get(var).and_then(|spec| {
                let (name, n) = spec.rsplit_once(':')?;
                Some((name.to_owned(), n.trim().parse().ok()?))
            })
        };
        Self {
            kill_at: point(KILL_AT_ENV),
            term_at: point(TERM_AT_ENV),
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
    }
}
