//! What the emulator harnesses (Azurite, moto) share: waiting for a started program to say
//! where it listens.

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::time::{Duration, Instant};

/// How long an emulator may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads `output` until a line holds `marker` and returns what follows it, trimmed (the
/// address). The rest of the output is read and dropped by a thread, so the program never
/// blocks on a full pipe. When no such line comes in time, `child` is killed and the error
/// quotes its last lines.
pub(crate) fn listening_address(
    child: &mut Child,
    output: impl Read + Send + 'static,
    marker: &'static str,
) -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if let Some(address) = line.split(marker).nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(Ok(address.trim().to_owned()));
            } else if let Some(tx) = &tx {
                let _ = tx.send(Err(line));
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut said = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(address)) => return Ok(address),
            Ok(Err(line)) => said.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let last: Vec<_> = said.iter().rev().take(5).rev().cloned().collect();
                return Err(format!(
                    "it did not say where it listens; it said: {}",
                    last.join(" | ")
                ));
            }
        }
    }
}
