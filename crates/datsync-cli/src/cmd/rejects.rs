//! `datsync rejects`: a sync's rejected rows and value warnings, in line order, as JSON lines
//! or CSV.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use datsync::{
    DEFAULT_RAW_DELIMITER, RawSettings, RecordFormat, RecordWriter, RowErrorKind, Selection, Store,
    SyncId, SyncStatus, read_rejects, stored_sync,
};

use super::db;
use crate::cli::{RejectsArgs, RejectsFormat, RejectsKind};

/// Where the records go: the file of `-o`, else standard output.
fn output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

pub fn run(args: &RejectsArgs, profile_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let settings = db::settings(RawSettings {
        checkpoint_base_path: args.checkpoint_dir.clone(),
        ..RawSettings::default()
    })?;
    let profile = db::profile(profile_path, &settings)?;
    let sync_id = SyncId::parse(args.sync_id.trim())?;
    let dir = settings.checkpoint_base.clone();
    let pg_settings = db::pg_settings(&args.db)?;
    let selection = match args.kind {
        RejectsKind::Rejected => Selection::Rejected,
        RejectsKind::Warning => Selection::Warning,
        RejectsKind::All => Selection::All,
    };
    let format = match args.format {
        RejectsFormat::Jsonl => RecordFormat::Jsonl,
        RejectsFormat::Csv => RecordFormat::Csv,
    };
    let out = output(args.output.as_deref())?;
    let (counts, stored) = db::block_on(async {
        let client = datsync::connect(&pg_settings).await?;
        let stored = stored_sync(&client, &profile.schema, &sync_id).await?;
        let dir = db::sync_location(
            &client,
            &profile.schema,
            &sync_id,
            args.checkpoint_dir.as_deref(),
            &dir,
        )
        .await;
        let store = Store::open_existing(&dir)?;
        if stored.is_none() && store.is_none() {
            bail!(
                "sync {sync_id} not found: it is not in {}.sync_metadata and {dir} does not \
                 exist; `datsync list` shows recent syncs",
                profile.schema
            );
        }
        let delimiter = stored
            .as_ref()
            .and_then(|s| s.source_delimiter.clone())
            .unwrap_or_else(|| DEFAULT_RAW_DELIMITER.to_owned());
        let mut writer = RecordWriter::new(format, out)?;
        let mut counts = (0u64, 0u64);
        if let Some(store) = &store {
            read_rejects(store, &sync_id, selection, &delimiter, |r| {
                match r.kind {
                    RowErrorKind::Rejected => counts.0 += 1,
                    RowErrorKind::Warning => counts.1 += 1,
                }
                writer.write(r)
            })
            .await?;
        }
        writer.finish()?;
        Ok((counts, stored))
    })??;
    let note = |text: String| eprintln!("note: {text}");
    match &stored {
        None => note(format!(
            "sync {sync_id} is not in {}.sync_metadata; these are the files found in {dir}",
            profile.schema
        )),
        Some(s) if s.status == SyncStatus::InProgress => note(format!(
            "sync {sync_id} is IN_PROGRESS (running, or interrupted): the chunks it has not \
             committed yet may add records"
        )),
        Some(s) => {
            let expected = (
                u64::try_from(s.records_failed).unwrap_or(0),
                u64::try_from(s.value_warnings).unwrap_or(0),
            );
            let wanted = |kind| match args.kind {
                RejectsKind::All => true,
                RejectsKind::Rejected => kind == RowErrorKind::Rejected,
                RejectsKind::Warning => kind == RowErrorKind::Warning,
            };
            if (wanted(RowErrorKind::Rejected) && counts.0 < expected.0)
                || (wanted(RowErrorKind::Warning) && counts.1 < expected.1)
            {
                note(format!(
                    "sync {sync_id} recorded {} rejected rows and {} value warnings, {} and {} \
                     are in {dir}: the others' files are gone (gc, or another --checkpoint-dir)",
                    expected.0, expected.1, counts.0, counts.1
                ));
            }
        }
    }
    if let Some(path) = &args.output {
        eprintln!(
            "{} rejected rows and {} value warnings written to {}",
            counts.0,
            counts.1,
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
