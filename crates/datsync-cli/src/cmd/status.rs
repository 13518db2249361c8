//! `datsync status`.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use datsync::{
    CheckpointState, RawSettings, StatusReport, Store, SyncId, SyncStatus, build_status_report,
    latest_sync_id, ledger_chunks, read_checkpoint, sync_detail,
};

use super::db;
use crate::cli::StatusArgs;

mod text;

pub fn run(args: &StatusArgs, profile_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let settings = db::settings(RawSettings {
        checkpoint_base_path: args.checkpoint_dir.clone(),
        ..RawSettings::default()
    })?;
    let profile = db::profile(profile_path, &settings)?;
    let schema = profile.schema.clone();
    let configured = settings.checkpoint_base.clone();
    let requested = args.sync_id.as_deref().map(|s| s.trim().to_owned());
    let pg_settings = db::pg_settings(&args.db)?;
    let redraw = args.watch && !args.json && std::io::stdout().is_terminal();
    db::block_on(async {
        let client = datsync::connect(&pg_settings).await?;
        let id = match requested {
            Some(id) => id,
            None => latest(&client, &schema).await?,
        };
        loop {
            let flag = args.checkpoint_dir.as_deref();
            let mut report = report(&client, &schema, &id, flag, &configured).await?;
            report.name_versions(&profile);
            if redraw {
                // Clear the screen and go home: the report is drawn again in place.
                print!("\x1b[2J\x1b[H");
            }
            print(&report, args.json)?;
            let running = report
                .metadata
                .as_ref()
                .is_some_and(|m| m.record.status == SyncStatus::InProgress);
            if !args.watch || !running {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(args.interval).await;
        }
    })?
}

/// The most recently started sync.
async fn latest(client: &tokio_postgres::Client, schema: &str) -> anyhow::Result<String> {
    let Some(latest) = latest_sync_id(client, schema).await? else {
        bail!(
            "no syncs recorded in {schema}.sync_metadata yet; \
             start one with `datsync run FILE`"
        );
    };
    Ok(latest)
}

/// The report of one sync; its checkpoint looked for in `flag` (`--checkpoint-dir`), else
/// where its run recorded it, else in `configured`.
async fn report(
    client: &tokio_postgres::Client,
    schema: &str,
    id: &str,
    flag: Option<&str>,
    configured: &str,
) -> anyhow::Result<StatusReport> {
    // A sync another loader recorded (an adopted database) has an id of its own form,
    // and no ledger or checkpoint: its sync_metadata row is all there is.
    let detail = sync_detail(client, schema, id).await?;
    let sync_id = match SyncId::parse(id) {
        Ok(sync_id) => Some(sync_id),
        Err(_) if detail.is_some() => None,
        Err(e) => {
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("sync {id} is not in {schema}.sync_metadata"));
        }
    };
    let ledger = ledger_chunks(client, schema, id).await?;
    let (dir, checkpoint) = match &sync_id {
        Some(sync_id) => {
            let dir = db::sync_location(client, schema, sync_id, flag, configured).await;
            let store = Store::open_existing(&dir)?;
            let checkpoint = read_checkpoint(store.as_ref(), sync_id).await;
            (dir, checkpoint)
        }
        None => (configured.to_owned(), CheckpointState::Absent),
    };
    if detail.is_none() && ledger.is_empty() && matches!(checkpoint, CheckpointState::Absent) {
        bail!(
            "sync {id} not found: it is not in {schema}.sync_metadata, has no chunk in the \
             ledger and no checkpoint in {dir}; `datsync list` shows recent syncs"
        );
    }
    // No resume time is recorded yet, so no time-saved estimate (see the report's note).
    Ok(build_status_report(
        id, detail, &ledger, checkpoint, &dir, None,
    ))
}

fn print(report: &StatusReport, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, report)?;
        writeln!(out)?;
    } else {
        text::print(&mut out, report)?;
    }
    Ok(())
}
