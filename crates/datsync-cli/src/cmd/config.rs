//! The configuration file at start (`--config`, `DATSYNC_CONFIG`, `./datsync.toml`) and
//! `datsync config`, which prints the effective settings and where each came from.
//!
//! The file's values are installed into the library's view of the environment, below the
//! real environment ([`datsync::install_file_settings`]); the few settings that clap reads
//! from the environment itself (`env = …` on a flag) take the file's value here when
//! neither the command line nor the environment gave one.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ArgMatches;
use clap::parser::ValueSource;
use datsync::Layers;

use crate::cli::{Cli, Command, ConfigArgs, GlobalArgs};

/// Reads the configuration file and installs its values for this process; then gives the
/// clap-read settings their file values. Commands that read no setting skip the file.
pub fn install(cli: &mut Cli, matches: &ArgMatches) -> anyhow::Result<()> {
    if matches!(
        cli.command,
        Command::Completions(_) | Command::Man(_) | Command::Sample(_)
    ) {
        return Ok(());
    }
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let layers = Layers::load(cli.global.config.as_deref(), &env)?;
    let file = layers.file_values().clone();
    datsync::install_file_settings(file.clone());
    datsync::install_file_hooks(layers.hooks().to_vec());
    cli.global.profile_from_flag =
        matches.value_source("profile") == Some(ValueSource::CommandLine);
    let Some((_, sub)) = matches.subcommand() else {
        return Ok(());
    };
    let from_file = |m: &ArgMatches, id: &str, var: &str| -> Option<(String, String)> {
        let unset = matches!(m.value_source(id), None | Some(ValueSource::DefaultValue));
        let shown = datsync::key_of(var).map_or_else(|| var.to_owned(), datsync::Key::display);
        unset
            .then(|| file.get(var).map(|v| (v.clone(), shown)))
            .flatten()
    };
    let bad = |key: &str, value: &str, e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "{}: {key} = {value:?}: {e}",
            layers
                .file()
                .map_or_else(|| "configuration file".into(), |p| p.display().to_string())
        )
    };
    if cli.global.profile.is_none()
        && let Some((v, _)) = from_file(sub, "profile", "DATSYNC_PROFILE")
    {
        cli.global.profile = Some(v.into());
    }
    match &mut cli.command {
        Command::Watch(args) => {
            if let Some((v, key)) = from_file(sub, "retry_backoff", "DATSYNC_WATCH_BACKOFF") {
                args.retry_backoff = crate::cli::duration(&v).map_err(|e| bad(&key, &v, &e))?;
            }
            if let Some((v, key)) = from_file(sub, "submit_above", "DATSYNC_SUBMIT_ABOVE") {
                args.submit_above = Some(v.parse().map_err(|e| bad(&key, &v, &e))?);
            }
            if let Some((v, key)) = from_file(sub, "metrics_addr", "DATSYNC_METRICS_ADDR") {
                args.metrics_addr = Some(v.trim().parse().map_err(|e| bad(&key, &v, &e))?);
            }
        }
        Command::Serve(args) => {
            if let Some((v, key)) = from_file(sub, "metrics_addr", "DATSYNC_METRICS_ADDR") {
                args.metrics_addr = Some(v.trim().parse().map_err(|e| bad(&key, &v, &e))?);
            }
            if let Some((v, key)) = from_file(
                sub,
                "allow_non_loopback",
                "DATSYNC_SERVE_ALLOW_NON_LOOPBACK",
            ) {
                args.allow_non_loopback =
                    datsync::parse_bool(&v).ok_or_else(|| bad(&key, &v, &"not true or false"))?;
            }
            if let Some((v, _)) = from_file(sub, "container", "DATSYNC_BLOB_CONTAINER") {
                args.container = v;
            }
            if let Some((v, _)) = from_file(sub, "prefix", "DATSYNC_BLOB_PREFIX") {
                args.prefix = v;
            }
            if let Some((v, key)) = from_file(sub, "submit_above", "DATSYNC_SUBMIT_ABOVE") {
                args.submit_above = Some(v.parse().map_err(|e| bad(&key, &v, &e))?);
            }
        }
        Command::Worker(args) => {
            if let Some((v, key)) = from_file(sub, "max_attempts", "DATSYNC_QUEUE_MAX_ATTEMPTS") {
                args.max_attempts = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| bad(&key, &v, &"not a whole number from 1 to 1000"))?;
            }
            if let Some((v, key)) = from_file(sub, "backoff", "DATSYNC_QUEUE_BACKOFF") {
                args.backoff = crate::cli::duration(&v).map_err(|e| bad(&key, &v, &e))?;
            }
            if let Some((v, key)) = from_file(sub, "metrics_addr", "DATSYNC_METRICS_ADDR") {
                args.metrics_addr = Some(v.trim().parse().map_err(|e| bad(&key, &v, &e))?);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `datsync config`: one line per setting, `[section] key = value  (VARIABLE, origin)`, or
/// a JSON array with `--json`.
pub fn run(args: &ConfigArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let layers = Layers::load(global.config.as_deref(), &env)?;
    let s = &args.sync;
    let mut flags: Vec<(&str, &str, String)> = Vec::new();
    if let Some(v) = &s.database_url {
        flags.push(("DATABASE_URL", "--database-url", v.clone()));
    }
    if let Some(v) = &s.checkpoint_dir {
        flags.push(("CHECKPOINT_BASE_PATH", "--checkpoint-dir", v.clone()));
    }
    if let Some(v) = s.chunk_size {
        flags.push(("CHUNK_SIZE", "--chunk-size", v.to_string()));
    }
    if let Some(v) = s.chunk_bytes {
        flags.push(("CHUNK_BYTES", "--chunk-bytes", v.0.to_string()));
    }
    if let Some(v) = s.max_line_bytes {
        flags.push(("MAX_LINE_BYTES", "--max-line-bytes", v.0.to_string()));
    }
    if s.no_checkpoint {
        flags.push(("ENABLE_CHECKPOINTING", "--no-checkpoint", "false".into()));
    }
    if let (Some(p), true) = (&global.profile, global.profile_from_flag) {
        flags.push(("DATSYNC_PROFILE", "--profile", p.display().to_string()));
    }
    let lines = layers.effective(&flags);
    let merged = layers.environment(&env);
    let hooks = datsync::describe_hooks(layers.hooks(), |k| merged.get(k).cloned());
    if s.json {
        let out = serde_json::json!({
            "file": layers.file().map(|p| p.display().to_string()),
            "settings": lines,
            "hooks": hooks,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("printing the settings")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    match layers.file() {
        Some(p) => println!("# configuration file: {}", p.display()),
        None => println!(
            "# no configuration file (--config, DATSYNC_CONFIG or ./{})",
            datsync::DEFAULT_CONFIG_FILE
        ),
    }
    let width = lines.iter().map(|l| l.key.len()).max().unwrap_or(0);
    for l in &lines {
        let value = l.value.as_deref().unwrap_or("(unset)");
        println!(
            "{:width$} = {value}  ({}, {})",
            l.key,
            l.env,
            l.origin,
            width = width
        );
    }
    if hooks.is_empty() {
        println!("# no post-sync hook");
    }
    for h in &hooks {
        print_hook(h);
    }
    Ok(ExitCode::SUCCESS)
}

/// `hook NAME (on_success) = POST URL?QUERY  headers …  (timeout, retries, origin)`.
fn print_hook(h: &datsync::HookLine) {
    let query = h
        .query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let target = if query.is_empty() {
        h.url.clone()
    } else {
        format!("{}?{query}", h.url)
    };
    let headers = h.headers.iter().fold(String::new(), |mut out, (k, v)| {
        let _ = write!(out, "  {k}: {v}");
        out
    });
    match &h.error {
        Some(e) => println!(
            "hook {} ({}) = invalid: {e}  ({})",
            h.name,
            h.events.join(", "),
            h.origin
        ),
        None => println!(
            "hook {} ({}) = {} {target}{headers}  (timeout {} s, {} retries, {})",
            h.name,
            h.events.join(", "),
            h.method,
            h.timeout_seconds,
            h.retries,
            h.origin
        ),
    }
}
