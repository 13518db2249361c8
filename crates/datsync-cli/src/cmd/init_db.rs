//! `datsync init-db`.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use datsync::{InitReport, MIGRATIONS, Profile, RawSettings};

use super::db;
use crate::cli::InitDbArgs;

pub fn run(args: &InitDbArgs, profile_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let settings = db::settings(RawSettings::default())?;
    let profile = db::profile(profile_path, &settings)?;
    let pg_settings = db::pg_settings(&args.db)?;
    let report = db::block_on(async {
        let mut client = datsync::connect(&pg_settings).await?;
        datsync::init_db(&mut client, &profile).await
    })??;
    let database = pg_settings.to_string();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &to_json(&database, &profile, &report))?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &database, &profile, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn migration_name(version: i32) -> &'static str {
    MIGRATIONS
        .iter()
        .find(|m| m.version == version)
        .map_or("", |m| m.name)
}

fn to_json(database: &str, profile: &Profile, report: &InitReport) -> serde_json::Value {
    let applied: Vec<serde_json::Value> = report
        .applied
        .iter()
        .map(|&v| serde_json::json!({ "version": v, "name": migration_name(v) }))
        .collect();
    serde_json::json!({
        "database": database,
        "schema": profile.schema,
        "table": profile.table,
        "migrations_applied": applied,
        "migrations_total": MIGRATIONS.len(),
        "target_table": if report.target_created { "created" } else { "checked" },
        "changed": !report.applied.is_empty() || report.target_created,
    })
}

fn print_text(
    out: &mut impl std::io::Write,
    database: &str,
    profile: &Profile,
    report: &InitReport,
) -> std::io::Result<()> {
    writeln!(out, "database    {database}")?;
    writeln!(out, "schema      {}", profile.schema)?;
    if report.applied.is_empty() {
        writeln!(
            out,
            "migrations  none applied: all {} already in place",
            MIGRATIONS.len()
        )?;
    } else {
        for v in &report.applied {
            writeln!(out, "migrations  applied {v} ({})", migration_name(*v))?;
        }
    }
    let table = format!("{}.{}", profile.schema, profile.table);
    if report.target_created {
        writeln!(out, "table       {table} created")?;
    } else {
        writeln!(
            out,
            "table       {table} exists and has every column datsync needs"
        )?;
    }
    Ok(())
}
