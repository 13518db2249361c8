//! The `datsync` binary as a user runs it: `sample` files with every quirk, read back by
//! `inspect --json`, and clear errors on bad input.

// Test helpers outside `#[test]` functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn datsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Writes a sample with `flags`, returns its path and the generator's summary.
fn sample(dir: &Path, name: &str, flags: &[&str]) -> (PathBuf, Value) {
    let path = dir.join(name);
    let mut args = vec!["sample", "--json", "-o", path.to_str().unwrap()];
    args.extend(flags);
    let summary = json(&datsync(&args));
    (path, summary)
}

fn inspect(path: &Path) -> Value {
    json(&datsync(&["inspect", "--json", path.to_str().unwrap()]))
}

#[test]
fn inspect_reports_every_sample_variant() {
    let dir = tempfile::tempdir().unwrap();
    let variants: &[(&str, &[&str], &str, bool)] = &[
        ("plain.dat", &["--rows", "1200"], "~|^", false),
        ("gz.dat", &["--rows", "900", "--gzip"], "~|^", true),
        (
            "crlf.dat",
            &["--rows", "500", "--crlf", "--quirky-header"],
            "~|^",
            false,
        ),
        (
            "pipe.dat",
            &["--rows", "300", "--delimiter", "|"],
            "|",
            false,
        ),
        (
            "tab.dat.gz",
            &["--rows", "300", "--delimiter", "tab", "--gzip", "--crlf"],
            "tab",
            true,
        ),
        (
            "caret.dat",
            &["--rows", "300", "--delimiter", "~^"],
            "~^",
            false,
        ),
        (
            "escaped.dat",
            &["--rows", "300", "--delimiter", "~\\|\\^"],
            "~\\|\\^",
            false,
        ),
        (
            "messy.dat",
            &[
                "--rows",
                "3000",
                "--invalid-rate",
                "0.05",
                "--dup-rate",
                "0.1",
                "--ragged-rate",
                "0.02",
                "--quirky-header",
            ],
            "~|^",
            false,
        ),
    ];
    for (name, flags, delimiter, gzip) in variants {
        let (path, summary) = sample(dir.path(), name, flags);
        let report = inspect(&path);
        assert_eq!(report["gzip"], *gzip, "{name}");
        assert_eq!(report["delimiter"], *delimiter, "{name}");
        assert_eq!(report["rows"], summary["rows"], "{name}");
        assert_eq!(report["ragged_rows"], summary["ragged_rows"], "{name}");
        assert_eq!(report["missing_required"], serde_json::json!([]), "{name}");
        assert_eq!(report["unknown_columns"], serde_json::json!([]), "{name}");
        let columns = report["columns"].as_array().unwrap();
        assert_eq!(columns.len(), 94, "{name}");
        assert_eq!(columns[0], "surat_pengantar_brg", "{name}");
        assert!(columns.contains(&Value::from("jam_timbang")), "{name}");
        assert_eq!(
            report["latin1_rows"].as_u64().unwrap() > 0,
            summary["latin1_rows"].as_u64().unwrap() > 0,
            "{name}"
        );
    }
}

#[test]
fn same_seed_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = sample(
        dir.path(),
        "a.dat",
        &["--rows", "400", "--seed", "9", "--gzip"],
    );
    let (b, _) = sample(
        dir.path(),
        "b.dat",
        &["--rows", "400", "--seed", "9", "--gzip"],
    );
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

#[test]
fn inspect_reports_missing_and_unknown_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partial.dat");
    std::fs::write(
        &path,
        "^spb~|^nopol~|^mystery~\n^1~|^B 1 X~|^z~\n^2~|^B 2 X~\n",
    )
    .unwrap();
    let report = inspect(&path);
    assert_eq!(
        report["columns"],
        serde_json::json!(["surat_pengantar_brg", "no_polisi", "mystery"])
    );
    assert_eq!(report["unknown_columns"], serde_json::json!(["mystery"]));
    assert_eq!(report["rows"], 2);
    assert_eq!(report["ragged_rows"], 1);
    let missing: Vec<&str> = report["missing_required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        [
            "nik_supir",
            "kilometer_actual",
            "bbm_actual",
            "tanggal_timbang",
            "jam_timbang"
        ]
    );
}

fn fails_naming(path: &Path, expect: &str) {
    let out = datsync(&["inspect", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(path.to_str().unwrap()),
        "names the file: {stderr}"
    );
    assert!(stderr.contains(expect), "says {expect:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    };
    fails_naming(&write("empty.dat", b""), "empty file");
    fails_naming(
        &write("header.dat", b"^surat_pengantar_brg~|^nik_supir~\r\n"),
        "header-only file",
    );
    fails_naming(
        &write(
            "binary.dat",
            &[0x7f, b'E', b'L', b'F', 0, 1, 2, 0, b'\n', 0],
        ),
        "binary data",
    );
    fails_naming(
        &write("unknown.dat", b"a|b|c\n1|2|3\n"),
        "line 1: no header column is known",
    );
    let (gz, _) = sample(dir.path(), "full.dat.gz", &["--rows", "200", "--gzip"]);
    let bytes = std::fs::read(&gz).unwrap();
    fails_naming(
        &write("truncated.dat.gz", &bytes[..bytes.len() / 2]),
        "gzip stream ends early",
    );
    fails_naming(&dir.path().join("absent.dat"), "No such file");
}

#[test]
fn usage_errors_do_not_look_like_sync_outcomes() {
    let out = datsync(&["sample", "--invalid-rate", "2"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a fraction"));
}
