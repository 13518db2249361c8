//! One configuration file (issue 16 item 4): the settings of a sync moved from the
//! environment into `datsync.toml` give the same sync; `datsync config` shows each setting's
//! origin with secrets masked; every variable the README documents is a key of the file.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::common::{CLEAN, TestDb, Work, datsync, u};

/// The settings of one sync, as (section, key, variable, value).
fn settings<'a>(
    url: &'a str,
    ck: &'a str,
) -> Vec<(&'static str, &'static str, &'static str, &'a str)> {
    vec![
        ("database", "url", "DATABASE_URL", url),
        ("database", "table", "DB_TABLE", "docs_configured"),
        ("database", "retry_for", "DATSYNC_DB_RETRY_FOR", "30s"),
        ("pipeline", "chunk_size", "CHUNK_SIZE", "300"),
        ("pipeline", "chunk_bytes", "CHUNK_BYTES", "8 MiB"),
        (
            "pipeline",
            "validation_error_threshold",
            "VALIDATION_ERROR_THRESHOLD",
            "0.5",
        ),
        ("checkpoint", "base_path", "CHECKPOINT_BASE_PATH", ck),
        (
            "checkpoint",
            "cleanup_on_success",
            "CHECKPOINT_CLEANUP_ON_SUCCESS",
            "false",
        ),
        (
            "checkpoint",
            "compression",
            "CHECKPOINT_COMPRESSION",
            "zstd",
        ),
    ]
}

fn toml(settings: &[(&str, &str, &str, &str)]) -> String {
    let mut text = String::new();
    let mut section = "";
    for (s, k, _, v) in settings {
        if *s != section {
            section = s;
            writeln!(text, "[{s}]").unwrap();
        }
        let v = if v.parse::<f64>().is_ok() || *v == "false" {
            (*v).to_owned()
        } else {
            format!("{v:?}")
        };
        writeln!(text, "{k} = {v}").unwrap();
    }
    text
}

/// init-db then run in `dir`, with only `env` (and what `dir/datsync.toml` says).
fn sync(work: &Work, dir: &Path, env: &[(&str, &str)]) -> Value {
    let out = datsync(dir, &["init-db"], env);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let out = datsync(dir, &["run", work.file(), "--json"], env);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    out.summary()
}

#[test]
fn settings_moved_from_the_environment_into_the_file_give_the_same_sync() {
    let work = Work::new(1_000, 16, CLEAN);
    let (by_env, by_file) = (TestDb::new(), TestDb::new());

    let env_dir = work.path().join("env");
    std::fs::create_dir(&env_dir).unwrap();
    let (url, ck) = (by_env.url(), work.checkpoints("ck_env"));
    let vars = settings(&url, ck.to_str().unwrap());
    let env: Vec<(&str, &str)> = vars.iter().map(|(_, _, var, v)| (*var, *v)).collect();
    let from_env = sync(&work, &env_dir, &env);

    let file_dir = work.path().join("file");
    std::fs::create_dir(&file_dir).unwrap();
    let (url, ck_file) = (by_file.url(), work.checkpoints("ck_file"));
    let vars = settings(&url, ck_file.to_str().unwrap());
    std::fs::write(file_dir.join("datsync.toml"), toml(&vars)).unwrap();
    let from_file = sync(&work, &file_dir, &[]);

    for s in [&from_env, &from_file] {
        assert_eq!(s["status"], "SUCCESS", "{s}");
        // 1,000 rows in chunks of 300.
        assert_eq!(u(s, "chunks_total"), 4, "{s}");
        assert_eq!(u(s, "rows_loaded"), 1_000, "{s}");
    }
    for (db, ck, s) in [(&by_env, &ck, &from_env), (&by_file, &ck_file, &from_file)] {
        let rows = db.query("SELECT count(*) FROM public.docs_configured", &[]);
        assert_eq!(rows[0].get::<_, i64>(0), 1_000);
        // cleanup_on_success = false: the checkpoint stays where the setting says.
        let sync_id = s["sync_id"].as_str().unwrap();
        assert!(
            ck.join(sync_id).join("manifest.json").exists(),
            "{}",
            ck.display()
        );
    }

    // `--config FILE` (and DATSYNC_CONFIG) name a file elsewhere; a flag beats it.
    let other = TestDb::new();
    let cfg = work.path().join("elsewhere.toml");
    let url = other.url();
    let ck_other = work.checkpoints("ck_other");
    std::fs::write(&cfg, toml(&settings(&url, ck_other.to_str().unwrap()))).unwrap();
    let cfg = cfg.to_str().unwrap();
    let out = datsync(work.path(), &["--config", cfg, "init-db"], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let out = datsync(
        work.path(),
        &["run", work.file(), "--chunk-size", "1000", "--json"],
        &[("DATSYNC_CONFIG", cfg)],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(
        u(&out.summary(), "chunks_total"),
        1,
        "the flag wins: {}",
        out.describe()
    );
}

#[test]
fn config_shows_where_each_setting_came_from_with_secrets_masked() {
    let work = Work::new(10, 1, CLEAN);
    std::fs::write(
        work.path().join("datsync.toml"),
        "[database]\nurl = \"postgresql://u:hunter2@db.example/x\"\n\
         [pipeline]\nchunk_size = 5\nchunk_bytes = \"8 MiB\"\n\
         [azure]\naccount_key = \"hunter2key\"\n",
    )
    .unwrap();
    let out = datsync(
        work.path(),
        &["config", "--json", "--chunk-size", "9"],
        &[
            ("CHUNK_BYTES", "1MiB"),
            ("SMTP_URL", "smtps://m:hunter2@mail.example"),
        ],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let get = |env: &str| {
        v["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["env"] == env)
            .unwrap()
            .clone()
    };
    assert_eq!(get("CHUNK_SIZE")["origin"], "flag --chunk-size");
    assert_eq!(get("CHUNK_SIZE")["value"], "9");
    assert_eq!(get("CHUNK_BYTES")["origin"], "env");
    assert_eq!(get("DATABASE_URL")["origin"], "file:datsync.toml");
    assert_eq!(
        get("DATABASE_URL")["value"],
        "postgresql://u:********@db.example/x"
    );
    assert_eq!(get("AZURE_STORAGE_ACCOUNT_KEY")["value"], "********");
    assert_eq!(get("SMTP_URL")["value"], "smtps://m:********@mail.example");
    assert_eq!(get("CHECKPOINT_RETENTION_DAYS")["origin"], "default");
    // The text form too.
    let out = datsync(work.path(), &["config"], &[]);
    assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
    assert!(
        out.stdout.contains("[pipeline] chunk_size")
            && out.stdout.contains("(CHUNK_SIZE, file:datsync.toml)"),
        "{}",
        out.stdout
    );

    // An unknown key: the file, the line and the nearest valid name; nothing is run.
    std::fs::write(
        work.path().join("datsync.toml"),
        "[checkpoint]\nbase_pth = \"/x\"\n",
    )
    .unwrap();
    let out = datsync(work.path(), &["list"], &[]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("datsync.toml: line 2, column 1: unknown key `[checkpoint] base_pth`; did you mean `[checkpoint] base_path`?"),
        "{}",
        out.stderr
    );
    // The flat keys of earlier versions still work.
    std::fs::write(work.path().join("datsync.toml"), "chunk_size = 7\n").unwrap();
    let out = datsync(work.path(), &["config", "--json"], &[]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let size = v["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["env"] == "CHUNK_SIZE")
        .unwrap();
    assert_eq!(size["value"], "7");
}

/// Every variable the README names is a key of the file, and every key is in the README:
/// the documented variables, not a list kept by hand.
#[test]
fn every_documented_variable_is_a_key_of_the_file() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    // Names in backticks that are environment variables (`NAME` or `NAME=value`).
    let mut documented = std::collections::BTreeSet::new();
    for piece in readme.split('`').skip(1).step_by(2) {
        let name = piece.split('=').next().unwrap();
        let is_var =
            (name.contains('_') || name.starts_with("PG") || name == "AzureWebJobsStorage")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && name.chars().next().is_some_and(|c| c.is_ascii_uppercase());
        if is_var {
            documented.insert(name.to_owned());
        }
    }
    // Not settings of datsync: statuses, the tests' and the benchmark's, the unit's own, the
    // Functions host's, and OpenSSL's trust variables (read by the system-roots loader from
    // the process environment itself).
    let not_settings = [
        "BAD_INPUT",
        "PARTIAL_SUCCESS",
        "IN_PROGRESS",
        "AZURITE_BIN",
        "MOTO_SERVER",
        "DATSYNC_BENCH_MB",
        "DATSYNC_BENCH_DATABASE_URL",
        "DATSYNC_WATCH_SOURCE",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "DATSYNC_KILL_AT",
        "DATSYNC_TERM_AT",
        "DATSYNC_PAUSE_AT",
        "DATSYNC_PAUSE_DIR",
        "DATSYNC_FAULT_SEED",
        "DATSYNC_CRASH_SEED",
        "DATSYNC_CONFIG",
        "DATSYNC_SERVE_MEMORY_MB",
        "FUNCTIONS_WORKER_RUNTIME",
    ];
    let keys: std::collections::BTreeSet<String> =
        datsync::KEYS.iter().map(|k| k.env.to_owned()).collect();
    let missing: Vec<&String> = documented
        .iter()
        .filter(|d| !keys.contains(*d) && !not_settings.contains(&d.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "documented but not keys of the file: {missing:?}"
    );
    let undocumented: Vec<&String> = keys.iter().filter(|k| !documented.contains(*k)).collect();
    assert!(
        undocumented.is_empty(),
        "keys the README does not name: {undocumented:?}"
    );
}
