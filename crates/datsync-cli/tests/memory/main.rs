//! Peak memory of the real `datsync run` on hostile inputs (issue 21): the budget at the
//! default settings is 256 MB of peak RSS, whatever the input.
//!
//! The files are the ones that broke earlier builds: a ~750 KB gzip of 50 lines of 15 MiB
//! (1 GB of RAM then), 400 such lines (past 2 GiB), a header of 100,000 extra columns with
//! two rows (1.9 GiB), 40,000 repeats of one header name (64 s to inspect); and the widest
//! valid rows the defaults accept (lines of almost 1 MiB, so that chunks are cut by the
//! byte budget, not by rows).
//!
//! Peak RSS is read the way `datsync bench` does: `VmHWM` of `/proc/<pid>/status`, sampled
//! every 2 ms while the child runs, and `getrusage(RUSAGE_CHILDREN)`'s `ru_maxrss` once it
//! is reaped (exact; this test binary runs its children one at a time, and has no other
//! test). This is a bound on memory, not a timing assertion.

#![allow(clippy::unwrap_used, missing_docs, dead_code)]

#[path = "../pipeline/common.rs"]
mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TestDb, Work};

/// The documented budget at the default settings, for any input (README, "Security"): 256 MB
/// of peak RSS. The widest valid rows fill every chunk to the byte budget; the pipeline
/// holds one chunk in the processor and at most one more being decoded or encoded, and
/// sends COPY messages of at most 64 KiB and one row.
const BUDGET_KIB: u64 = 256 * 1000;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// The header line and two valid data lines of a generated ZTDWR file (`~|^`, every
/// column known).
fn sample() -> (String, [String; 2]) {
    let work = Work::new(2, 1, common::CLEAN);
    let text = String::from_utf8_lossy(&std::fs::read(&work.file).unwrap()).into_owned();
    let mut lines = text.lines().map(str::to_owned);
    let header = lines.next().unwrap();
    (header, [lines.next().unwrap(), lines.next().unwrap()])
}

fn header() -> String {
    sample().0
}

/// A gzip of `header`, then `lines` lines of 15 MiB: one gzip member per line (each member
/// compresses the same 15 MiB, so the file is built without compressing gigabytes).
fn long_lines_gzip(lines: usize) -> Vec<u8> {
    let mut out = gzip(format!("{}\n", header()).as_bytes());
    let mut line = vec![b'A'; 15 << 20];
    line.push(b'\n');
    let member = gzip(&line);
    for _ in 0..lines {
        out.extend_from_slice(&member);
    }
    out
}

/// A header of the real columns plus `extra` columns named by `name(i)`, and two valid rows
/// of the same width.
fn wide_header(extra: usize, name: impl Fn(usize) -> String) -> Vec<u8> {
    let (mut text, rows) = sample();
    for i in 0..extra {
        text.push_str("~|^");
        text.push_str(&name(i));
    }
    text.push('\n');
    for row in rows {
        text.push_str(&row);
        for i in 0..extra {
            text.push_str("~|^");
            text.push_str(&(i % 100).to_string());
        }
        text.push('\n');
    }
    text.into_bytes()
}

/// Valid rows of almost 1 MiB (a long name), 400 MB in all: every chunk is cut by bytes.
fn widest_valid_rows(dir: &Path) -> std::path::PathBuf {
    let work = Work::new(400, 3, common::CLEAN);
    let bytes = std::fs::read(&work.file).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let at = header
        .split("~|^")
        .position(|h| h.trim_matches(['^', '~']) == "nama_supir")
        .unwrap();
    let path = dir.join("widest.dat");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(out, "{header}").unwrap();
    let name = "N".repeat((1 << 20) - 4_096);
    for line in lines {
        let mut fields: Vec<&str> = line.split("~|^").collect();
        fields[at] = &name;
        writeln!(out, "{}", fields.join("~|^")).unwrap();
    }
    out.flush().unwrap();
    path
}

/// Runs `datsync run FILE` (defaults, plus `env`) and returns its exit code, its summary and
/// its peak RSS in KiB.
fn run(db: &TestDb, dir: &Path, file: &Path, env: &[(&str, &str)]) -> (Option<i32>, String, u64) {
    let ck = dir.join("ck");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datsync"));
    cmd.args([
        "run",
        file.to_str().unwrap(),
        "--fresh",
        "--database-url",
        &db.url(),
        "--checkpoint-dir",
        ck.to_str().unwrap(),
        "--json",
    ])
    .current_dir(dir)
    .env_clear()
    .env("RUST_LOG", "warn")
    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let before = children_maxrss_kib();
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let status_path = format!("/proc/{}/status", child.id());
    let mut hwm = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        hwm = hwm.max(vm_hwm_kib(&status_path).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(2));
    };
    let after = children_maxrss_kib();
    if after > before {
        hwm = hwm.max(after);
    }
    (status.code(), reader.join().unwrap(), hwm)
}

fn vm_hwm_kib(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn children_maxrss_kib() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0))
}

/// A file, its settings, the exit code expected, and what its summary says.
type Case<'a> = (std::path::PathBuf, &'a [(&'a str, &'a str)], i32, &'a str);

#[test]
fn hostile_inputs_stay_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let repeated = |_| "^NAMA_SUPIR~".to_owned();
    let extra = |i| format!("extra_column_{i:06}");
    let raised = [("MAX_HEADER_COLUMNS", "200000"), ("MAX_LINE_BYTES", "8MiB")];
    // (file, settings, expected exit code, what the summary says)
    let cases: Vec<Case> = vec![
        (
            write("50x15MiB.dat.gz", long_lines_gzip(50)),
            &[],
            1,
            "BAD_INPUT",
        ),
        (
            write("400x15MiB.dat.gz", long_lines_gzip(400)),
            &[],
            1,
            "BAD_INPUT",
        ),
        (
            write("wide.dat", wide_header(100_000, extra)),
            &[],
            1,
            "header line is longer",
        ),
        (
            write("wide.dat", wide_header(100_000, extra)),
            &raised,
            0,
            "SUCCESS",
        ),
        (
            write("repeated.dat", wide_header(40_000, repeated)),
            &[],
            1,
            "more than the maximum",
        ),
        (
            write("repeated.dat", wide_header(40_000, repeated)),
            &raised,
            0,
            "SUCCESS",
        ),
        (widest_valid_rows(dir.path()), &[], 0, "SUCCESS"),
    ];
    let mut report = Vec::new();
    for (file, env, code, says) in &cases[..cases.len() - 1] {
        let db = TestDb::new();
        let (got, summary, peak) = run(&db, dir.path(), file, env);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        println!("{name} {env:?}: exit {got:?}, peak RSS {} MB", peak / 1000);
        assert_eq!(got, Some(*code), "{name} {env:?}: {summary}");
        assert!(summary.contains(says), "{name} {env:?}: {summary}");
        report.push((name, peak));
    }
    for (name, peak) in &report {
        assert!(
            *peak > 0 && *peak <= BUDGET_KIB,
            "{name}: peak RSS {peak} KiB, above the budget of {BUDGET_KIB} KiB: {report:?}"
        );
    }
    assert!(children_maxrss_kib() <= BUDGET_KIB, "{report:?}");
    // Last, so that `ru_maxrss` above is the hostile files' alone.
    let (file, _, _, _) = &cases[cases.len() - 1];
    let db = TestDb::new();
    let (got, summary, peak) = run(&db, dir.path(), file, &[]);
    println!(
        "widest valid rows: exit {got:?}, peak RSS {} MB",
        peak / 1000
    );
    assert_eq!(got, Some(0), "{summary}");
    let s: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(s["rows_loaded"], 400, "{summary}");
    assert!(
        s["chunks_total"].as_u64() >= Some(6),
        "cut by bytes: {summary}"
    );
    assert!(
        peak <= BUDGET_KIB,
        "widest valid rows: peak RSS {peak} KiB, above the budget of {BUDGET_KIB} KiB"
    );
}
