//! The configuration file: every variable of [`KEYS`] written in the file gives the settings
//! the variable gives, unknown keys name the nearest known one, the environment wins over the
//! file, and secrets are masked.

// One sample per variable, some alike; files written line by line.
#![allow(clippy::match_same_arms, clippy::format_push_string)]

use std::collections::HashMap;
use std::path::Path;

use super::*;

/// A valid value for each variable (every key of the table must have one).
fn sample(env: &str) -> &'static str {
    match env {
        "DATABASE_URL" => "postgresql://u:pw@db.example:5433/d?sslmode=disable",
        "POSTGRES_CONNECTION_STRING" => "host=db2.example dbname=x password=pw sslmode=disable",
        "DB_HOST" | "PGHOST" | "PGHOSTADDR" => "10.0.0.7",
        "DB_PORT" | "PGPORT" => "6543",
        "DB_NAME" | "PGDATABASE" => "ztdwr",
        "DB_USER" | "PGUSER" => "loader",
        "DB_PASSWORD" | "PGPASSWORD" => "s3cret",
        "DB_SSL_MODE" | "PGSSLMODE" => "disable",
        "DB_AUTH" => "password",
        "DB_POOLER" => "session",
        "DB_SCHEMA" => "ops",
        "DB_TABLE" => "docs",
        "DATSYNC_DB_RETRY_FOR" => "90s",
        "DATSYNC_RETRY_BACKOFF_MS" => "250",
        "PGPASSFILE" => "/etc/datsync/pgpass",
        "PGSERVICE" => "",
        "PGSERVICEFILE" => "/etc/datsync/pg_service.conf",
        "PGSYSCONFDIR" => "/etc/datsync",
        "PGAPPNAME" => "datsync-test",
        "PGCONNECT_TIMEOUT" => "7",
        "PGOPTIONS" => "-c statement_timeout=0",
        "PGSSLROOTCERT" => "/etc/ssl/root.pem",
        "PGSSLCERT" => "/etc/ssl/client.pem",
        "PGSSLKEY" => "/etc/ssl/client.key",
        "PGSSLCRL" => "/etc/ssl/crl.pem",
        "PGSSLCRLDIR" => "/etc/ssl/crl",
        "PGSSLSNI" => "1",
        "PGSSLCERTMODE" => "allow",
        "PGSSLNEGOTIATION" => "postgres",
        "PGSSLMINPROTOCOLVERSION" => "TLSv1.2",
        "PGSSLMAXPROTOCOLVERSION" => "TLSv1.3",
        "PGCHANNELBINDING" => "prefer",
        "PGTARGETSESSIONATTRS" => "read-write",
        "PGLOADBALANCEHOSTS" => "disable",
        "PGREQUIREPEER" => "postgres",
        "PGGSSENCMODE" => "disable",
        "PGCLIENTENCODING" => "UTF8",
        "PGREQUIRESSL" => "0",
        "VALIDATION_ERROR_THRESHOLD" => "0.25",
        "CHUNK_SIZE" => "5000",
        "CHUNK_BYTES" => "16 MiB",
        "MAX_LINE_BYTES" => "262144",
        "MAX_HEADER_COLUMNS" => "300",
        "DATSYNC_JOBS" => "3",
        "ENABLE_MV_REFRESH" | "ENABLE_CHECKPOINTING" | "CHECKPOINT_CLEANUP_ON_SUCCESS" => "false",
        "MATERIALIZED_VIEWS" => "mv_a,mv_b",
        "DATSYNC_PROFILE" => "/etc/datsync/profile.toml",
        "CHECKPOINT_BASE_PATH" => "/var/lib/datsync/checkpoints",
        "CHECKPOINT_RETENTION_DAYS" => "3",
        "CHECKPOINT_COMPRESSION" => "zstd",
        "ALERT_EMAIL" => "ops@example.com,dba@example.com",
        "ALERT_FROM" => "datsync@example.com",
        "SMTP_URL" => "smtps://u:pw@mail.example.com",
        "ALERT_WEBHOOK_URL" => "https://hooks.example.com/x?token=t0k",
        "ALERT_WEBHOOK_ALLOW_HTTP" => "true",
        "ALERT_TIMEOUT_SECONDS" => "4",
        "DATSYNC_CA_FILE" => "/etc/datsync/ca.pem",
        "ENABLE_CACHE_PREPOPULATION" => "false",
        "TRANSPORT_INTELLIGENCE_SERVICE_URL" => "https://ti.example.com",
        "AzureWebJobsStorage" | "AZURE_STORAGE_CONNECTION_STRING" => {
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"
        }
        "AZURE_STORAGE_ACCOUNT_NAME" => "acct",
        "AZURE_STORAGE_ACCOUNT_KEY" => "a2V5",
        "AZURE_STORAGE_SAS_TOKEN" => "sv=2024&sig=abc",
        "AZURE_STORAGE_BLOB_ENDPOINT" => "http://127.0.0.1:10000/acct",
        "AZURE_CLIENT_ID" => "c1",
        "AZURE_TENANT_ID" => "t1",
        "AZURE_FEDERATED_TOKEN_FILE" => "/var/run/token",
        "AZURE_AUTHORITY_HOST" => "https://login.example.com",
        "IDENTITY_ENDPOINT" => "http://127.0.0.1:41000/msi/token",
        "IDENTITY_HEADER" => "h3ader",
        "DATSYNC_IMDS_ENDPOINT" => "http://127.0.0.1:41001",
        "AWS_ACCESS_KEY_ID" => "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY" => "s3kr1t",
        "AWS_SESSION_TOKEN" => "t0ken",
        "AWS_REGION" => "eu-central-1",
        "AWS_DEFAULT_REGION" => "eu-west-1",
        "AWS_ENDPOINT_URL" => "http://127.0.0.1:41002",
        "AWS_ALLOW_HTTP" => "true",
        "AWS_ROLE_ARN" => "arn:aws:iam::123456789012:role/datsync",
        "AWS_WEB_IDENTITY_TOKEN_FILE" => "/var/run/aws-token",
        "GOOGLE_APPLICATION_CREDENTIALS" => "/etc/datsync/adc.json",
        "GOOGLE_SERVICE_ACCOUNT" => "/etc/datsync/sa.json",
        "GOOGLE_SERVICE_ACCOUNT_KEY" => "{\"type\": \"service_account\"}",
        "DATSYNC_WATCH_BACKOFF" => "2m",
        "DATSYNC_METRICS_ADDR" => "127.0.0.1:9464",
        "FUNCTIONS_CUSTOMHANDLER_PORT" => "7071",
        "DATSYNC_SERVE_ALLOW_NON_LOOPBACK" => "true",
        "DATSYNC_BLOB_CONTAINER" => "incoming",
        "DATSYNC_BLOB_PREFIX" => "ztdwr/",
        "DATSYNC_SUBMIT_ABOVE" => "1GiB",
        "DATSYNC_QUEUE_MAX_ATTEMPTS" => "3",
        "DATSYNC_QUEUE_BACKOFF" => "30s",
        _ => panic!("no sample value for {env}: add one"),
    }
}

/// The value as it is written in the file: numbers and booleans bare, text quoted.
fn toml_value(v: &str) -> String {
    if v.parse::<i64>().is_ok() || v.parse::<f64>().is_ok() || v == "true" || v == "false" {
        v.to_owned()
    } else {
        format!("{v:?}")
    }
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// What each reader makes of an environment, as text (settings or the error).
fn readers(e: &HashMap<String, String>) -> String {
    let raw = crate::RawSettings::from_env(e).map(crate::RawSettings::validate);
    let pg = crate::PgSettings::resolve(None, e);
    let alert = crate::AlertSettings::from_env(|k| e.get(k).cloned());
    let azure = crate::AzureAccount::from_vars(|k| e.get(k).cloned());
    let hooks = crate::HookSettings::from_env(&[], |k| e.get(k).cloned());
    let s3 = crate::CloudSettings::from_vars(crate::Cloud::S3, e.clone());
    let gcs = crate::CloudSettings::from_vars(crate::Cloud::Gcs, e.clone());
    format!("{raw:?}\n{pg:?}\n{alert:?}\n{azure:?}\n{hooks:?}\n{s3:?}\n{gcs:?}")
}

#[test]
fn every_variable_in_the_file_gives_the_same_settings() {
    let path = Path::new("/etc/datsync/datsync.toml");
    let empty = HashMap::new();
    for key in KEYS {
        let value = sample(key.env);
        if value.is_empty() {
            continue;
        }
        let from_env = env(&[(key.env, value)]);
        let text = format!("[{}]\n{} = {}\n", key.section, key.name, toml_value(value));
        let layers = Layers::from_text(path, &text, &empty).unwrap();
        let from_file = layers.environment(&empty);
        assert_eq!(from_file, from_env, "{}", key.display());
        assert_eq!(readers(&from_file), readers(&from_env), "{}", key.display());
        let shown = layers.effective(&[]);
        let line = shown.iter().find(|l| l.env == key.env).unwrap();
        assert_eq!(
            line.origin,
            "file:/etc/datsync/datsync.toml",
            "{}",
            key.display()
        );
        if key.secret {
            assert!(!line.value.as_deref().unwrap().contains(value), "{line:?}");
        } else {
            assert_eq!(line.value.as_deref(), Some(value), "{}", key.display());
        }
    }
}

#[test]
fn all_variables_at_once_and_the_flat_keys_of_earlier_versions() {
    // Every variable in one file (one per section header) equals every variable set.
    let mut text = String::new();
    let mut all = HashMap::new();
    let mut section = "";
    for key in KEYS {
        let value = sample(key.env);
        if value.is_empty() {
            continue;
        }
        if key.section != section {
            section = key.section;
            text.push_str(&format!("[{section}]\n"));
        }
        text.push_str(&format!("{} = {}\n", key.name, toml_value(value)));
        all.insert(key.env.to_owned(), value.to_owned());
    }
    let layers = Layers::from_text(Path::new("datsync.toml"), &text, &HashMap::new()).unwrap();
    assert_eq!(layers.environment(&HashMap::new()), all);

    // The flat keys of earlier versions: the variable's name in lower case, at the top.
    let flat =
        "chunk_size = 5\ncheckpoint_base_path = \"/ck\"\nmaterialized_views = [\"a\", \"b\"]\n";
    let layers = Layers::from_text(Path::new("datsync.toml"), flat, &HashMap::new()).unwrap();
    assert_eq!(
        layers.environment(&HashMap::new()),
        env(&[
            ("CHUNK_SIZE", "5"),
            ("CHECKPOINT_BASE_PATH", "/ck"),
            ("MATERIALIZED_VIEWS", "a,b")
        ])
    );
    // Both spellings of one setting are refused.
    let e = Layers::from_text(
        Path::new("datsync.toml"),
        "chunk_size = 5\n[pipeline]\nchunk_size = 6\n",
        &HashMap::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("set twice") && e.contains("line 3"), "{e}");
}

#[test]
fn unknown_keys_name_the_nearest_valid_one_and_the_line() {
    let cases = [
        (
            "[pipeline]\nchunk_sise = 5\n",
            "`[pipeline] chunk_sise`",
            "`[pipeline] chunk_size`",
            "line 2, column 1",
        ),
        (
            "[databse]\nurl = \"x\"\n",
            "`[databse]`",
            "`[database]`",
            "line 1, column 2",
        ),
        (
            "chunk_siz = 5\n",
            "`chunk_siz`",
            "`chunk_size`",
            "line 1, column 1",
        ),
        (
            "[alert]\nwebhook = \"https://x\"\n",
            "`[alert] webhook`",
            "`[alert] webhook_url`",
            "line 2",
        ),
    ];
    for (text, given, near, at) in cases {
        let e = Layers::from_text(Path::new("/x/datsync.toml"), text, &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/x/datsync.toml")
                && e.contains(given)
                && e.contains(near)
                && e.contains(at),
            "{text:?}: {e}"
        );
    }
    let e = Layers::from_text(Path::new("d.toml"), "zzzzqqq = 1\n", &HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown key `zzzzqqq`") && !e.contains("did you mean"),
        "{e}"
    );
    // A syntax error names its line and column.
    let e = Layers::from_text(
        Path::new("d.toml"),
        "[pipeline]\nchunk_size = = 5\n",
        &HashMap::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("d.toml") && e.contains("line 2"), "{e}");
    // A value of the wrong shape names the key.
    let e = Layers::from_text(
        Path::new("d.toml"),
        "[checkpoint]\nbase_path = 1979-05-27\n",
        &HashMap::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("[checkpoint] base_path") && e.contains("line 2"),
        "{e}"
    );
}

#[test]
fn hooks_are_declared_as_tables_by_status() {
    let text = r#"
[hooks]
enable_cache_prepopulation = false

[[hooks.on_success]]
name = "warm"
url = "https://a.example.com/x"
query = { b = 2, a = "${A}" }
headers = { Authorization = "Bearer ${TOKEN}" }
timeout_seconds = 2.5
retries = 3

[[hooks.on_success]]
url = "https://b.example.com/"
method = "GET"

[hooks.on_failure]
url = "http://pager.example.com/"
allow_http = true
"#;
    let layers = Layers::from_text(Path::new("/etc/d.toml"), text, &HashMap::new()).unwrap();
    assert_eq!(
        layers.file_values().get("ENABLE_CACHE_PREPOPULATION"),
        Some(&"false".to_owned())
    );
    let hooks = layers.hooks();
    let names: Vec<(&str, HookEvent)> = hooks.iter().map(|h| (h.name.as_str(), h.event)).collect();
    assert_eq!(
        names,
        [
            ("on_failure_1", HookEvent::OnFailure),
            ("warm", HookEvent::OnSuccess),
            ("on_success_2", HookEvent::OnSuccess),
        ]
    );
    let warm = &hooks[1];
    assert_eq!(warm.method, "POST");
    assert_eq!(
        warm.query,
        [("a".into(), "${A}".into()), ("b".into(), "2".into())]
    );
    assert_eq!(
        warm.headers,
        [("Authorization".into(), "Bearer ${TOKEN}".into())]
    );
    assert_eq!(warm.timeout, std::time::Duration::from_millis(2500));
    assert_eq!(warm.retries, 3);
    assert_eq!(warm.at, "/etc/d.toml line 5");
    assert!(hooks[0].allow_http);
    assert_eq!(hooks[2].timeout, crate::DEFAULT_HOOK_TIMEOUT);

    for (text, want, at) in [
        (
            "[[hooks.on_success]]\nurl = \"https://x/\"\nretry = 2\n",
            "did you mean `[[hooks.on_success]] retries`?",
            "line 3, column 1",
        ),
        (
            "[hooks]\non_sucess = []\n",
            "did you mean `[hooks] on_success`?",
            "line 2, column 1",
        ),
        (
            "[[hooks.on_partial]]\nname = \"p\"\n",
            "`p` has no url",
            "line 1",
        ),
        (
            "[[hooks.on_partial]]\nurl = \"https://x/\"\nretries = 11\n",
            "from 0 to 10",
            "line 3, column 11",
        ),
        (
            "[[hooks.on_partial]]\nurl = \"https://x/\"\ntimeout_seconds = 0\n",
            "between 0 and 3600",
            "line 3",
        ),
        (
            "[[hooks.on_partial]]\nurl = \"https://x/\"\nheaders = { \"a b\" = \"x\" }\n",
            "not a header name",
            "line 3",
        ),
        (
            "[[hooks.on_partial]]\nurl = \"https://x/\"\n[[hooks.on_failure]]\nname = \"on_partial_1\"\nurl = \"https://y/\"\n",
            "declared twice",
            "line",
        ),
    ] {
        let e = Layers::from_text(Path::new("/x/d.toml"), text, &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/x/d.toml") && e.contains(want) && e.contains(at),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn flags_over_environment_over_file_over_defaults() {
    let text = "[pipeline]\nchunk_size = 5\nchunk_bytes = \"8 MiB\"\n[checkpoint]\nbase_path = \"/file\"\n";
    let e = env(&[("CHUNK_SIZE", "7"), ("CHECKPOINT_BASE_PATH", "  ")]);
    let layers = Layers::from_text(Path::new("/etc/d.toml"), text, &e).unwrap();
    let merged = layers.environment(&e);
    // The environment wins; a blank variable counts as unset.
    assert_eq!(merged["CHUNK_SIZE"], "7");
    assert_eq!(merged["CHUNK_BYTES"], "8 MiB");
    assert_eq!(merged["CHECKPOINT_BASE_PATH"], "/file");
    let shown = layers.effective(&[("CHUNK_BYTES", "--chunk-bytes", "1 MiB".to_owned())]);
    let get = |env: &str| shown.iter().find(|l| l.env == env).unwrap().clone();
    assert_eq!(
        (
            get("CHUNK_SIZE").value.as_deref(),
            get("CHUNK_SIZE").origin.as_str()
        ),
        (Some("7"), "env")
    );
    assert_eq!(
        (
            get("CHUNK_BYTES").value.as_deref(),
            get("CHUNK_BYTES").origin.as_str()
        ),
        (Some("1 MiB"), "flag --chunk-bytes")
    );
    assert_eq!(get("CHECKPOINT_BASE_PATH").origin, "file:/etc/d.toml");
    assert_eq!(
        (
            get("CHECKPOINT_RETENTION_DAYS").value.as_deref(),
            get("CHECKPOINT_RETENTION_DAYS").origin.as_str()
        ),
        (Some("7"), "default")
    );
    // And the pipeline's settings read from the merged map follow the same order.
    let s = crate::RawSettings::from_env(&merged)
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(
        (s.chunk_size, s.chunk_bytes, s.checkpoint_base.as_str()),
        (7, 8 << 20, "/file")
    );
}

#[test]
fn secrets_are_masked() {
    let text = "[database]\nurl = \"postgresql://u:hunter2@db/x\"\npassword = \"hunter2\"\n\
                [alert]\nwebhook_url = \"https://h.example/x?token=hunter2\"\n\
                [azure]\naccount_key = \"hunter2\"\n";
    let layers = Layers::from_text(Path::new("d.toml"), text, &HashMap::new()).unwrap();
    let shown = layers.effective(&[(
        "DATABASE_URL",
        "--database-url",
        "postgresql://f:hunter2@h/y".into(),
    )]);
    let all = format!("{shown:?}");
    assert!(!all.contains("hunter2"), "{all}");
    let url = shown.iter().find(|l| l.env == "DATABASE_URL").unwrap();
    assert_eq!(url.value.as_deref(), Some("postgresql://f:********@h/y"));
    let hook = shown.iter().find(|l| l.env == "ALERT_WEBHOOK_URL").unwrap();
    assert_eq!(hook.value.as_deref(), Some("https://h.example/x?********"));
    let key = shown
        .iter()
        .find(|l| l.env == "AZURE_STORAGE_ACCOUNT_KEY")
        .unwrap();
    assert_eq!(key.value.as_deref(), Some("********"));
}

#[test]
fn every_key_is_unique() {
    let mut seen = std::collections::HashSet::new();
    for key in KEYS {
        assert!(seen.insert(key.env), "{} twice", key.env);
        assert!(
            seen.insert(Box::leak(key.display().into_boxed_str())),
            "{}",
            key.display()
        );
        assert!(
            key.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{}",
            key.name
        );
    }
}
