//! `datsync list`.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use datsync::{RawSettings, SyncRecord, SyncStatus, recent_syncs};

use super::db;
use crate::cli::ListArgs;

pub fn run(args: &ListArgs, profile_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let settings = db::settings(RawSettings::default())?;
    let profile = db::profile(profile_path, &settings)?;
    let pg_settings = db::pg_settings(&args.db)?;
    let syncs = db::block_on(async {
        let client = datsync::connect(&pg_settings).await?;
        anyhow::Ok(recent_syncs(&client, &profile.schema, args.limit).await?)
    })??;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &serde_json::json!({ "syncs": syncs }))?;
        writeln!(out)?;
    } else if syncs.is_empty() {
        writeln!(
            out,
            "no syncs recorded in {}.sync_metadata yet",
            profile.schema
        )?;
    } else {
        print_table(&mut out, &syncs)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `12.3s`, `4m 05s`, `2h 03m`; `-` when unknown.
pub fn duration(seconds: Option<f64>) -> String {
    let Some(s) = seconds.filter(|s| s.is_finite() && *s >= 0.0) else {
        return "-".to_owned();
    };
    let whole = s as u64;
    match whole {
        0..60 => format!("{s:.1}s"),
        60..3600 => format!("{}m {:02}s", whole / 60, whole % 60),
        _ => format!("{}h {:02}m", whole / 3600, (whole % 3600) / 60),
    }
}

fn print_table(out: &mut impl std::io::Write, syncs: &[SyncRecord]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<29}  {:<15}  {:<24}  {:>10}  {:>10}  {:>10}  {:>8}  {:<20}  {:>8}",
        "SYNC ID", "STATUS", "FILE", "ROWS", "INSERTED", "UPDATED", "FAILED", "STARTED", "DURATION"
    )?;
    for s in syncs {
        let file = s.file_name.as_deref().unwrap_or("-");
        let dur = if s.status == SyncStatus::InProgress {
            "running".to_owned()
        } else {
            duration(s.duration_seconds)
        };
        writeln!(
            out,
            "{:<29}  {:<15}  {:<24}  {:>10}  {:>10}  {:>10}  {:>8}  {:<20}  {:>8}",
            s.sync_id,
            s.status,
            file,
            s.records_total,
            s.records_inserted,
            s.records_updated,
            s.records_failed,
            s.started_at,
            dur
        )?;
    }
    Ok(())
}
