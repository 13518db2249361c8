//! `datsync status`.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use datsync::{
    CheckpointState, RawSettings, StatusReport, Store, SyncId, build_status_report, latest_sync_id,
    ledger_chunks, read_checkpoint, sync_detail,
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
    let dir = settings.checkpoint_base.clone();
    let requested = args
        .sync_id
        .as_deref()
        .map(|s| SyncId::parse(s.trim()))
        .transpose()?;
    let pg_settings = db::pg_settings(&args.db)?;
    let report = db::block_on(async {
        let client = datsync::connect(&pg_settings).await?;
        let sync_id = if let Some(id) = requested {
            id
        } else {
            let Some(latest) = latest_sync_id(&client, &schema).await? else {
                bail!(
                    "no syncs recorded in {schema}.sync_metadata yet; \
                     start one with `datsync run FILE`"
                );
            };
            SyncId::parse(&latest)
                .with_context(|| format!("the most recent sync in {schema}.sync_metadata"))?
        };
        let id = sync_id.as_str();
        let detail = sync_detail(&client, &schema, id).await?;
        let ledger = ledger_chunks(&client, &schema, id).await?;
        let store = Store::open_existing(&dir)?;
        let checkpoint = read_checkpoint(store.as_ref(), &sync_id).await;
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
    })??;
    print(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
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
