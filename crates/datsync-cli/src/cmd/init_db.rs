//! `datsync init-db`: migrate datsync's tables and create the target table; `--adopt` takes
//! over another loader's table; `--print-sql` prints all of it for a DBA instead.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use datsync::{AdoptOptions, InitReport, MIGRATIONS, Profile, RawSettings};

use super::db;
use crate::cli::InitDbArgs;

pub fn run(args: &InitDbArgs, profile_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let settings = db::settings(RawSettings::default())?;
    let profile = db::profile(profile_path, &settings)?;
    let pg_settings = db::pg_settings(&args.db)?;
    if args.print_sql {
        let role = args
            .role
            .clone()
            .unwrap_or_else(|| pg_settings.user().to_owned());
        let sql = db::block_on(async {
            let client = datsync::connect(&pg_settings).await?;
            anyhow::Ok(datsync::init_sql(&client, &profile, &role, args.lock_timeout).await?)
        })??;
        print!("{sql}");
        return Ok(ExitCode::SUCCESS);
    }
    let report = db::block_on(async {
        let mut client = datsync::connect(&pg_settings).await?;
        if args.adopt {
            let options = AdoptOptions {
                lock_timeout: args.lock_timeout,
                attempts: args.lock_attempts,
            };
            anyhow::Ok(datsync::adopt_db(&mut client, &profile, options).await?)
        } else {
            anyhow::Ok(datsync::init_db(&mut client, &profile).await?)
        }
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
    let target = if report.target_created {
        "created"
    } else if report.adopted.is_empty() {
        "checked"
    } else {
        "adopted"
    };
    serde_json::json!({
        "database": database,
        "schema": profile.schema,
        "table": profile.table,
        "migrations_applied": applied,
        "migrations_total": MIGRATIONS.len(),
        "target_table": target,
        "adopted_sql": report.adopted,
        "column_notes": report.notes,
        "derived_tables": report.derived.iter()
            .map(|(t, what)| serde_json::json!({ "table": t, "action": what }))
            .collect::<Vec<_>>(),
        "changed": !report.applied.is_empty() || report.target_created || !report.adopted.is_empty()
            || report.derived.iter().any(|(_, what)| *what != "checked"),
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
    } else if report.adopted.is_empty() {
        writeln!(
            out,
            "table       {table} exists and has every column datsync needs"
        )?;
    } else {
        writeln!(out, "table       {table} adopted (no rewrite), ran:")?;
        for st in &report.adopted {
            writeln!(out, "            {}", st.replace('\n', "\n            "))?;
        }
    }
    for n in &report.notes {
        writeln!(
            out,
            "column      {} is {} (datsync creates {}): {}",
            n.column, n.found, n.datsync_type, n.action
        )?;
    }
    for (t, what) in &report.derived {
        writeln!(out, "derived     {}.{t} {what}", profile.schema)?;
    }
    Ok(())
}
