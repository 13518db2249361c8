//! Starting, watching and stopping the throwaway server.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User};

use super::{PgTempError, TempPostgresOptions, find_binaries};

/// The superuser `initdb` creates in the throwaway cluster.
pub const TEMP_USER: &str = "datsync";
/// The database to connect to.
pub const TEMP_DATABASE: &str = "postgres";
/// The port number that names the unix socket (`.s.PGSQL.5432`); no TCP port is opened.
pub const TEMP_PORT: u16 = crate::pg::DEFAULT_PORT;
/// Default for [`TempPostgresOptions::start_timeout`].
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`TempPostgresOptions::stop_timeout`].
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often start and stop look at the server.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The longest unix socket path (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A running throwaway PostgreSQL server; stopped and removed on drop.
#[derive(Debug)]
pub struct TempPostgres {
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    socket_dir: PathBuf,
    port: u16,
    tcp: bool,
    stop_timeout: Duration,
    /// What [`TempPostgres::start_again`] needs.
    postgres: PathBuf,
    options: TempPostgresOptions,
    run_as: Option<RunAs>,
}

/// How to stop the server ([`TempPostgres::stop_now`]): PostgreSQL's shutdown modes by
/// their signals, and a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// SIGTERM: new connections are refused (SQLSTATE 57P03), the server stops once its
    /// sessions have ended.
    Smart,
    /// SIGINT: sessions are ended (57P01), then a checkpoint.
    Fast,
    /// SIGQUIT: every process exits at once; the next start recovers from the WAL.
    Immediate,
    /// SIGKILL to the postmaster.
    Kill,
}

/// The uid and gid the server runs as, when this process is root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl TempPostgres {
    /// Starts a server with the default options (see [`TempPostgresOptions`]).
    pub fn start() -> Result<Self, PgTempError> {
        Self::start_with(&TempPostgresOptions::default())
    }

    /// Finds the binaries, runs `initdb` into a new temporary directory, starts
    /// `postgres` on a unix socket there and waits until it accepts connections.
    pub fn start_with(options: &TempPostgresOptions) -> Result<Self, PgTempError> {
        let bins = find_binaries(&options.search)?;
        let run_as = run_as(&options.run_as_when_root)?;
        let dir = make_dir(run_as)?;
        let socket_dir = dir.path().to_path_buf();
        let data = socket_dir.join("data");
        initdb(&bins.initdb, &data, run_as)?;
        write_data_files(&data, options, run_as)?;
        let mut server = Self {
            dir: Some(dir),
            child: None,
            socket_dir,
            port: TEMP_PORT,
            tcp: options.tcp,
            stop_timeout: options.stop_timeout,
            postgres: bins.postgres.clone(),
            options: options.clone(),
            run_as,
        };
        // A free port can be taken by someone else between the probe and the bind: retry.
        let mut tries = 0;
        loop {
            tries += 1;
            if options.tcp {
                server.port = free_port(&server.socket_dir)?;
            }
            let child = spawn_postgres(&bins.postgres, &data, &server, options, run_as)?;
            server.child = Some(child);
            match server.wait_ready(options.start_timeout) {
                Err(PgTempError::Exited { .. }) if options.tcp && tries < 3 => {}
                other => break other?,
            }
        }
        tracing::info!(dir = %server.socket_dir.display(), bindir = %bins.bindir.display(), "throwaway PostgreSQL started");
        Ok(server)
    }

    /// A libpq-style connection string for tokio-postgres: `host=<socket dir> port=5432
    /// user=datsync dbname=postgres` (trust authentication, no password).
    pub fn connection_string(&self) -> String {
        let host = self
            .socket_dir
            .to_string_lossy()
            .replace('\\', "\\\\")
            .replace('\'', "\\'");
        let port = self.port;
        format!("host='{host}' port={port} user={TEMP_USER} dbname={TEMP_DATABASE}")
    }

    /// The port: the TCP port on 127.0.0.1 with [`TempPostgresOptions::tcp`], else
    /// [`TEMP_PORT`] (which only names the socket).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The same as a tokio-postgres `Config`.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(self.port)
            .user(TEMP_USER)
            .dbname(TEMP_DATABASE);
        config
    }

    /// The temporary directory: holds the unix socket, `data/` and `postgres.log`.
    pub fn dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Signals the server to stop in `mode` and, unless `mode` is [`StopMode::Smart`]
    /// (which waits for the sessions to end), waits until it has exited. The data stay:
    /// [`Self::start_again`] starts the server on them.
    pub fn stop_now(&mut self, mode: StopMode) -> Result<(), PgTempError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let pid = child.id();
        let fail = |reason: String| PgTempError::Stop { pid, reason };
        let raw = i32::try_from(pid).map_err(|_| fail("pid out of range".into()))?;
        let signal = match mode {
            StopMode::Smart => Signal::SIGTERM,
            StopMode::Fast => Signal::SIGINT,
            StopMode::Immediate => Signal::SIGQUIT,
            StopMode::Kill => Signal::SIGKILL,
        };
        kill(Pid::from_raw(raw), signal).map_err(|e| fail(e.to_string()))?;
        if mode == StopMode::Smart {
            return Ok(());
        }
        self.wait_stopped()
    }

    /// Waits (at most the stop timeout) until the server has exited.
    pub fn wait_stopped(&mut self) -> Result<(), PgTempError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        let fail = |reason: String| PgTempError::Stop { pid, reason };
        let deadline = Instant::now() + self.stop_timeout;
        loop {
            if child.try_wait().map_err(|e| fail(e.to_string()))?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.child = Some(child);
                return Err(fail("it did not exit in time".into()));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts the server again on its data, at the same socket and port, after
    /// [`Self::stop_now`]; waits until it accepts connections.
    pub fn start_again(&mut self) -> Result<(), PgTempError> {
        if self.child.is_some() {
            return Ok(());
        }
        let data = self.socket_dir.join("data");
        // A postmaster that was stopped hard leaves its pid file saying `ready`; the new one
        // must not be taken as ready on the old one's word.
        let _ = std::fs::remove_file(data.join("postmaster.pid"));
        let child = spawn_postgres(&self.postgres, &data, self, &self.options, self.run_as)?;
        self.child = Some(child);
        self.wait_ready(self.options.start_timeout)
    }

    /// Stops the server and removes the directory, reporting what failed (dropping the
    /// guard does the same and only logs failures).
    pub fn shutdown(mut self) -> Result<(), PgTempError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), PgTempError> {
        let stopped = match self.child.take() {
            Some(child) => stop_child(child, self.stop_timeout),
            None => Ok(()),
        };
        let removed = match self.dir.take() {
            Some(dir) => dir.close().map_err(|source| PgTempError::Io {
                action: "remove",
                path: self.socket_dir.clone(),
                source,
            }),
            None => Ok(()),
        };
        stopped.and(removed)
    }

    /// Polls `postmaster.pid` until the server reports `ready`, or it exits, or time is up.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), PgTempError> {
        let started = Instant::now();
        let pid_file = self.socket_dir.join("data/postmaster.pid");
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(PgTempError::Exited {
                    status: status.to_string(),
                    log_tail: self.log_tail(),
                });
            }
            if postmaster_ready(&pid_file) {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(PgTempError::StartTimeout {
                    waited: timeout,
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.socket_dir.join("postgres.log")).unwrap_or_default();
        tail(&log)
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "throwaway PostgreSQL not cleaned up");
        }
    }
}

/// A TCP port on 127.0.0.1 nobody listens on now (the socket name must be free too).
fn free_port(dir: &Path) -> Result<u16, PgTempError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| PgTempError::Io {
            action: "find a free port for",
            path: dir.to_path_buf(),
            source,
        })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| PgTempError::Io {
            action: "find a free port for",
            path: dir.to_path_buf(),
            source,
        })
}

/// `pg_hba.conf` and the extra files, for the server's user alone.
fn write_data_files(
    data: &Path,
    options: &TempPostgresOptions,
    run_as: Option<RunAs>,
) -> Result<(), PgTempError> {
    use std::os::unix::fs::PermissionsExt as _;
    let hba = options
        .hba
        .as_ref()
        .map(|h| ("pg_hba.conf".to_owned(), h.as_bytes().to_vec()));
    for (name, bytes) in options.data_files.iter().cloned().chain(hba) {
        let path = data.join(&name);
        let io = |action: &'static str| {
            let path = path.clone();
            move |source| PgTempError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::write(&path, bytes).map_err(io("write"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io("set the mode of"))?;
        if let Some(r) = run_as {
            std::os::unix::fs::chown(&path, Some(r.uid), Some(r.gid)).map_err(io("hand over"))?;
        }
    }
    Ok(())
}

/// The user to run the server as: `None` unless this process is root.
fn run_as(user: &str) -> Result<Option<RunAs>, PgTempError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let missing = || PgTempError::NoUnprivilegedUser {
        user: user.to_owned(),
    };
    let u = User::from_name(user).ok().flatten().ok_or_else(missing)?;
    if u.uid.is_root() {
        return Err(missing());
    }
    Ok(Some(RunAs {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

/// A new private directory; under `/tmp` (reachable by the server's user) when root, or
/// when the temp dir's path would make the socket path too long.
fn make_dir(run_as: Option<RunAs>) -> Result<tempfile::TempDir, PgTempError> {
    let mut parent = std::env::temp_dir();
    let socket_len = parent.as_os_str().len() + "/datsync-pg-XXXXXX/.s.PGSQL.5432".len();
    if run_as.is_some() || socket_len > MAX_SOCKET_PATH {
        parent = PathBuf::from("/tmp");
    }
    let dir = tempfile::Builder::new()
        .prefix("datsync-pg-")
        .tempdir_in(&parent)
        .map_err(|source| PgTempError::Io {
            action: "create a directory in",
            path: parent,
            source,
        })?;
    if let Some(r) = run_as {
        std::os::unix::fs::chown(dir.path(), Some(r.uid), Some(r.gid)).map_err(|source| {
            PgTempError::Io {
                action: "hand over",
                path: dir.path().to_path_buf(),
                source,
            }
        })?;
    }
    Ok(dir)
}

/// A command for a server program, as the server's user when root, run inside `cwd`.
fn command(program: &Path, cwd: &Path, run_as: Option<RunAs>) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd).stdin(Stdio::null()).env("LC_ALL", "C");
    for var in [
        "PGDATA",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGOPTIONS",
    ] {
        cmd.env_remove(var);
    }
    if let Some(r) = run_as {
        cmd.uid(r.uid).gid(r.gid);
    }
    cmd
}

fn initdb(program: &Path, data: &Path, run_as: Option<RunAs>) -> Result<(), PgTempError> {
    let cwd = data.parent().unwrap_or(data);
    let out = command(program, cwd, run_as)
        .arg("-D")
        .arg(data)
        .args([
            "-A",
            "trust",
            "-U",
            TEMP_USER,
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ])
        .output()
        .map_err(|source| PgTempError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Err(PgTempError::Initdb {
        status: out.status.to_string(),
        output: tail(&text),
    })
}

fn spawn_postgres(
    program: &Path,
    data: &Path,
    server: &TempPostgres,
    options: &TempPostgresOptions,
    run_as: Option<RunAs>,
) -> Result<Child, PgTempError> {
    let socket_dir = server.socket_dir.as_path();
    let log_path = socket_dir.join("postgres.log");
    let io_err = |source| PgTempError::Io {
        action: "create",
        path: log_path.clone(),
        source,
    };
    // Appended: a restarted server's log follows the first one's.
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err)?;
    let log2 = log.try_clone().map_err(io_err)?;
    command(program, socket_dir, run_as)
        .arg("-D")
        .arg(data)
        .arg("-k")
        .arg(socket_dir)
        .args(["-p", &server.port.to_string()])
        .args([
            "-c",
            if server.tcp {
                "listen_addresses=127.0.0.1"
            } else {
                "listen_addresses="
            },
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ])
        .args([
            "-c",
            "synchronous_commit=off",
            "-c",
            "logging_collector=off",
        ])
        .args(
            options
                .settings
                .iter()
                .flat_map(|(k, v)| ["-c".to_owned(), format!("{k}={v}")]),
        )
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|source| PgTempError::Spawn {
            program: program.to_path_buf(),
            source,
        })
}

/// Line 8 of `postmaster.pid` is the postmaster's state (`starting`, `ready`, ...).
fn postmaster_ready(pid_file: &Path) -> bool {
    std::fs::read_to_string(pid_file)
        .is_ok_and(|s| s.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
}

/// Fast shutdown (SIGINT), bounded wait, then SIGKILL.
fn stop_child(mut child: Child, timeout: Duration) -> Result<(), PgTempError> {
    let pid = child.id();
    let fail = |reason: String| PgTempError::Stop { pid, reason };
    if child.try_wait().map_err(|e| fail(e.to_string()))?.is_some() {
        return Ok(());
    }
    let raw = i32::try_from(pid).map_err(|_| fail("pid out of range".into()))?;
    kill(Pid::from_raw(raw), Signal::SIGINT).map_err(|e| fail(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if child.try_wait().map_err(|e| fail(e.to_string()))?.is_some() {
            return Ok(());
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    tracing::warn!(
        pid,
        "throwaway PostgreSQL ignored a fast shutdown; killing it"
    );
    child.kill().map_err(|e| fail(e.to_string()))?;
    child.wait().map(drop).map_err(|e| fail(e.to_string()))
}

/// The last few lines of a program's output, on one line.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_needs_an_existing_unprivileged_user() {
        let result = run_as("datsync-no-such-user");
        if nix::unistd::geteuid().is_root() {
            let msg = result.unwrap_err().to_string();
            assert!(
                msg.contains("useradd --system --user-group datsync-no-such-user"),
                "{msg}"
            );
            assert!(run_as("root").is_err(), "root itself is no way out");
        } else {
            assert!(
                result.unwrap().is_none(),
                "ordinary users run the server themselves"
            );
        }
    }

    #[test]
    fn readiness_comes_from_line_eight_of_postmaster_pid() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("postmaster.pid");
        assert!(!postmaster_ready(&f));
        let head = "123\n/data\n1700000000\n5432\n/tmp\n\n  1 2\n";
        std::fs::write(&f, format!("{head}starting\n")).unwrap();
        assert!(!postmaster_ready(&f));
        std::fs::write(&f, format!("{head}ready   \n")).unwrap();
        assert!(postmaster_ready(&f));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\n\nb\nc\nd\ne\nf\n"), "b | c | d | e | f");
    }
}
