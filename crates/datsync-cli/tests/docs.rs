//! `datsync completions SHELL` and `datsync man`: generated from the clap definitions, they
//! name every command and every flag that `--help` shows.

// Test helpers outside `#[test]` functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn datsync(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "datsync {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(args: &[&str]) -> String {
    String::from_utf8(datsync(args).stdout).unwrap()
}

/// The commands as `datsync --help` lists them (not a list kept by hand), `help` left out.
fn commands() -> Vec<String> {
    let help = stdout(&["--help"]);
    let listed: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    assert!(listed.len() >= 14, "{help}");
    listed
}

/// The long flags `datsync COMMAND --help` shows, `--help` and `--version` left out.
fn flags(command: &str) -> Vec<String> {
    let help = stdout(&[command, "--help"]);
    let mut flags: Vec<String> = help
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            l.split([' ', ',', '='])
                .find(|w| w.starts_with("--"))
                .map(str::to_owned)
        })
        .filter(|f| f != "--help" && f != "--version")
        .collect();
    flags.dedup();
    flags
}

#[test]
fn completion_scripts_name_every_command() {
    let commands = commands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout(&["completions", shell]);
        for command in &commands {
            assert!(
                script.contains(command.as_str()),
                "{shell}'s script lacks `{command}`"
            );
        }
        // And the flags of `run`, as a sample of the per-command flags.
        for flag in flags("run") {
            let bare = flag.trim_start_matches('-');
            assert!(script.contains(bare), "{shell}'s script lacks `{flag}`");
        }
    }
    // bash can load it (syntax checked by bash itself).
    let script = stdout(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datsync.bash");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unknown = Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(64));
}

#[test]
fn man_pages_cover_every_command_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    datsync(&["man", "--out", out_dir.to_str().unwrap()]);
    let main = std::fs::read_to_string(out_dir.join("datsync.1")).unwrap();
    assert!(
        main.starts_with(".ie") || main.contains(".TH datsync 1"),
        "{main}"
    );
    assert_eq!(
        stdout(&["man"]),
        main,
        "stdout and --out give the same page"
    );
    for command in commands() {
        let page = out_dir.join(format!("datsync-{command}.1"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            main.contains(&command.replace('-', "\\-")),
            "datsync.1 lacks `{command}`"
        );
        for flag in flags(&command) {
            // roff escapes each '-' of a flag.
            let escaped = flag.replace('-', "\\-");
            assert!(text.contains(&escaped), "{} lacks `{flag}`", page.display());
        }
    }
    // Rendered as a user reads it, where man(1) is installed.
    let rendered = Command::new("man")
        .arg("-l")
        .arg(out_dir.join("datsync-run.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output();
    match rendered {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            for want in ["NAME", "SYNOPSIS", "OPTIONS", "--checkpoint-dir"] {
                // man may render '-' as a hyphen or a minus; compare without them.
                let plain = |s: &str| s.replace(['-', '\u{2010}', '\u{2212}'], "");
                assert!(plain(&text).contains(&plain(want)), "{want}: {text}");
            }
        }
        Ok(out) => panic!("man -l: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => eprintln!("man(1) not installed ({e}); the page was checked as roff only"),
    }
}

/// The repository's root (this crate is crates/datsync-cli).
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let unit_path = repo_root().join("deploy/systemd/datsync-watch.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let settings: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .collect();
    for want in [
        "ProtectSystem=strict",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "ReadWritePaths=-/var/lib/datsync/checkpoints",
        "EnvironmentFile=/etc/datsync/datsync.env",
    ] {
        assert!(settings.contains(&want), "the unit lacks {want}");
    }
    // Long enough for the chunk in flight to commit (watch finishes it on SIGTERM).
    let stop: u64 = settings
        .iter()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(stop >= 60, "TimeoutStopSec={stop}");
    // The environment file names only variables the README documents.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let example =
        std::fs::read_to_string(repo_root().join("deploy/systemd/datsync.env.example")).unwrap();
    for line in example.lines() {
        let line = line.trim_start_matches('#');
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        if name.is_empty() || name.contains(' ') {
            continue;
        }
        assert!(
            readme.contains(&format!("`{name}`")) || name == "RUST_LOG",
            "{name} of the environment file example is not in the README"
        );
    }

    // systemd's own check, where systemd-analyze is installed: the unit as installed, with
    // ExecStart pointing at this build and the man pages it names on MANPATH.
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man/man1");
    datsync(&["man", "--out", man.to_str().unwrap()]);
    let local = unit.replace("/usr/local/bin/datsync", env!("CARGO_BIN_EXE_datsync"));
    let local_path = dir.path().join("datsync-watch.service");
    std::fs::write(&local_path, local).unwrap();
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local_path)
        .env("MANPATH", dir.path().join("man"))
        .output()
    {
        Ok(out) => assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("systemd-analyze not installed ({e}); the unit was checked as text"),
    }
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_datsync_as_entrypoint() {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let froms = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "a builder and a runtime stage");
    assert!(text.contains("-slim AS runtime"), "a small runtime image");
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap();
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "USER {user}"
    );
    assert!(text.contains(r#"ENTRYPOINT ["datsync"]"#));
    // The builder's Rust is not older than the workspace's rust-version.
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        text.contains(&format!("ARG RUST_VERSION={msrv}")),
        "the builder's Rust should be {msrv}"
    );
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    for want in ["target", ".git"] {
        assert!(
            ignore.lines().any(|l| l == want),
            ".dockerignore lacks {want}"
        );
    }
}
