//! A throwaway Azure Storage emulator (Azurite's blob service) on loopback, for tests and
//! local trials: in-memory, telemetry off, on a port the system picks, stopped when dropped.
//! It runs strict (no `--loose`, no `--skipApiVersionCheck`): what datsync sends must be
//! what the service accepts.
//!
//! The `azurite-blob` program is found through `AZURITE_BIN`, else in the repository's
//! `tools/azurite/node_modules/.bin` (installed there from `tools/azurite/package-lock.json`
//! with `npm ci` the first time it is needed), else on the `PATH`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use crate::azure::AzureAccount;

/// Azurite could not be found, installed or started.
#[derive(Debug, thiserror::Error)]
pub enum AzuriteError {
    /// `npm ci` failed or npm is missing.
    #[error(
        "cannot install Azurite with `npm ci` in {dir}: {problem}; install Node.js and npm, or \
         set AZURITE_BIN to an azurite-blob program"
    )]
    Install {
        /// The directory.
        dir: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// The program did not start or never said where it listens.
    #[error("cannot start {program}: {problem}")]
    Start {
        /// The program.
        program: PathBuf,
        /// What went wrong (with its last output).
        problem: String,
    },
}

/// A running Azurite blob service; killed when dropped.
#[derive(Debug)]
pub struct Azurite {
    child: Child,
    endpoint: String,
}

impl Azurite {
    /// Starts one (installing it first if needed).
    pub fn start() -> Result<Self, AzuriteError> {
        let program = program()?;
        let start_error = |problem: String| AzuriteError::Start {
            program: program.clone(),
            problem,
        };
        let mut child = Command::new(&program)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "0",
                "--inMemoryPersistence",
                "--extentMemoryLimit",
                "2048",
                "--disableTelemetry",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| start_error(e.to_string()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(start_error("no standard output".into()));
        };
        let url = crate::emulator::listening_address(&mut child, stdout, "listens on ")
            .map_err(start_error)?;
        Ok(Self {
            child,
            endpoint: format!("{url}/{}", crate::azure::EMULATOR_ACCOUNT),
        })
    }

    /// The blob endpoint, `http://127.0.0.1:PORT/devstoreaccount1`.
    pub fn blob_endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The account, for `Store::open_with` and `Blob::open_with`.
    pub fn account(&self) -> AzureAccount {
        AzureAccount::emulator(&self.endpoint)
    }

    /// The connection string a Functions app would have (`AzureWebJobsStorage`).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
            crate::azure::EMULATOR_ACCOUNT,
            crate::azure::EMULATOR_KEY,
            self.endpoint
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository's `tools/azurite` directory.
fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/azurite")
}

fn program() -> Result<PathBuf, AzuriteError> {
    if let Some(p) = std::env::var_os("AZURITE_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let dir = tools_dir();
    let local = dir.join("node_modules/.bin/azurite-blob");
    if dir.join("package-lock.json").exists() {
        // One install per process; test threads wait for it.
        static INSTALL: Mutex<()> = Mutex::new(());
        let _guard = INSTALL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !local.exists() {
            install(&dir)?;
        }
        return Ok(local);
    }
    Ok(PathBuf::from("azurite-blob"))
}

fn install(dir: &Path) -> Result<(), AzuriteError> {
    let fail = |problem: String| AzuriteError::Install {
        dir: dir.to_path_buf(),
        problem,
    };
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
