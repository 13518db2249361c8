//! A throwaway S3 emulator (the server mode of the Python package `moto`) on loopback, for
//! tests and local trials: in memory, on a port the system picks, stopped when dropped.
//!
//! The program is `MOTO_SERVER` when set (e.g. `moto_server`), else `python3 -m moto.server`;
//! install it with `pip install 'moto[server]'`. moto does not check signatures: any key
//! works, and [`Moto::s3_settings`] / [`Moto::env`] give fixed test keys.

use std::process::{Child, Command, Stdio};

use crate::cloud::{Cloud, CloudSettings};

/// The keys and region every harness client uses (moto accepts any).
const TEST_KEY: &str = "testing";
const TEST_REGION: &str = "us-east-1";

/// moto could not be started or asked for something.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    /// The program did not start or never said where it listens.
    #[error(
        "cannot start the S3 emulator `{program}`: {problem}; install it with \
         `pip install 'moto[server]'`, or set MOTO_SERVER to a moto_server program"
    )]
    Start {
        /// The command.
        program: String,
        /// What went wrong (with its last output).
        problem: String,
    },
    /// A request to the emulator failed.
    #[error("S3 emulator at {endpoint}: {problem}")]
    Request {
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        problem: String,
    },
}

/// A running moto server; killed when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    /// Starts one on `127.0.0.1` and a free port.
    pub fn start() -> Result<Self, MotoError> {
        let (program, mut args) = match std::env::var("MOTO_SERVER") {
            Ok(p) if !p.trim().is_empty() => (p, Vec::new()),
            _ => (
                "python3".to_owned(),
                vec!["-m".to_owned(), "moto.server".to_owned()],
            ),
        };
        args.extend(["-H", "127.0.0.1", "-p", "0"].map(str::to_owned));
        let shown = std::iter::once(program.as_str())
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let start_error = |problem: String| MotoError::Start {
            program: shown.clone(),
            problem,
        };
        let mut child = Command::new(&program)
            .args(&args)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| start_error(e.to_string()))?;
        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            return Err(start_error("no standard error".into()));
        };
        let url = crate::emulator::listening_address(&mut child, stderr, "Running on ")
            .map_err(start_error)?;
        Ok(Self {
            child,
            endpoint: url.trim_end_matches('/').to_owned(),
        })
    }

    /// The endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The variables a process needs to use this emulator (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", TEST_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", TEST_KEY.to_owned()),
            ("AWS_REGION", TEST_REGION.to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }

    /// The settings of [`Self::env`], for `Store::open_in` and `Blob::open_in`.
    pub fn s3_settings(&self) -> CloudSettings {
        CloudSettings::from_vars(
            Cloud::S3,
            self.env().into_iter().map(|(k, v)| (k.to_owned(), v)),
        )
    }

    /// Creates a bucket (`object_store` writes objects but never creates buckets). moto
    /// needs no signature, so this is a plain `PUT /bucket`; an existing bucket is fine.
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), MotoError> {
        crate::azure::install_crypto_provider();
        let fail = |problem: String| MotoError::Request {
            endpoint: self.endpoint.clone(),
            problem,
        };
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        if status.is_success() || status.as_u16() == 409 {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(fail(format!(
            "creating bucket {bucket} answered {status}: {body}"
        )))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
