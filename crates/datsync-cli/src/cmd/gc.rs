//! `datsync gc`.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use datsync::{
    Clock, KeepReason, RawSettings, RetentionPolicy, RetentionReport, Store, SystemClock,
    remove_expired_checkpoints,
};

use super::db;
use crate::cli::GcArgs;

pub fn run(args: &GcArgs) -> anyhow::Result<ExitCode> {
    let settings = db::settings(RawSettings {
        checkpoint_base_path: args.checkpoint_dir.clone(),
        checkpoint_retention_days: args.days,
        ..RawSettings::default()
    })?;
    let dir = settings.checkpoint_base.clone();
    let days = settings.retention_days;
    let report = match Store::open_existing(&dir)? {
        None => RetentionReport::default(),
        Some(store) => {
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            db::block_on(async {
                remove_expired_checkpoints(&store, &RetentionPolicy::days(days), &clock).await
            })??
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let kept: Vec<serde_json::Value> = report
            .kept
            .iter()
            .map(
                |(id, reason)| serde_json::json!({ "sync_id": id, "reason": reason_name(*reason) }),
            )
            .collect();
        let rejects_kept: Vec<serde_json::Value> = report
            .rejects_kept
            .iter()
            .map(
                |(id, reason)| serde_json::json!({ "sync_id": id, "reason": reason_name(*reason) }),
            )
            .collect();
        let value = serde_json::json!({
            "checkpoint_dir": dir,
            "retention_days": days,
            "removed": report.removed,
            "kept": kept,
            "rejects_removed": report.rejects_removed,
            "rejects_kept": rejects_kept,
        });
        serde_json::to_writer(&mut out, &value)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &dir, days, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn reason_name(reason: KeepReason) -> &'static str {
    match reason {
        KeepReason::Recent => "recent",
        KeepReason::Active => "active",
    }
}

fn reason_text(reason: KeepReason, days: u32) -> String {
    match reason {
        KeepReason::Recent => format!("updated less than {days} day(s) ago"),
        KeepReason::Active => "its sync may still be running (updated within 24 hours)".to_owned(),
    }
}

fn print_text(
    out: &mut impl std::io::Write,
    dir: &str,
    days: u32,
    report: &RetentionReport,
) -> std::io::Result<()> {
    writeln!(out, "checkpoints  {dir} (retention {days} day(s))")?;
    if report.removed.is_empty()
        && report.kept.is_empty()
        && report.rejects_removed.is_empty()
        && report.rejects_kept.is_empty()
    {
        writeln!(out, "nothing there")?;
    }
    for id in &report.removed {
        writeln!(out, "removed      {id}")?;
    }
    for (id, reason) in &report.kept {
        writeln!(out, "kept         {id}: {}", reason_text(*reason, days))?;
    }
    for id in &report.rejects_removed {
        writeln!(out, "removed      rejects of {id}")?;
    }
    for (id, reason) in &report.rejects_kept {
        writeln!(
            out,
            "kept         rejects of {id}: {}",
            reason_text(*reason, days)
        )?;
    }
    writeln!(
        out,
        "{} removed, {} kept; rejects: {} removed, {} kept",
        report.removed.len(),
        report.kept.len(),
        report.rejects_removed.len(),
        report.rejects_kept.len()
    )?;
    Ok(())
}
