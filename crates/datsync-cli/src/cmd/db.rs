//! What the database commands share: settings from flags, environment and `datsync.toml`,
//! the profile with its `DB_SCHEMA` / `DB_TABLE` overrides, a connection, and a runtime.

use std::future::Future;
use std::path::Path;

use anyhow::Context as _;
use datsync::{PgSettings, Profile, RawSettings, Settings};

use crate::cli::DbArgs;

/// Runs a future to completion on a current-thread runtime (these commands do one thing at
/// a time).
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Pipeline settings: `flags` over the environment over the configuration file over
/// defaults (the file's settings are in `process_env`, below the environment's).
pub fn settings(flags: RawSettings) -> anyhow::Result<Settings> {
    let env = RawSettings::from_env(&datsync::process_env())?;
    Ok(flags.or(env).validate()?)
}

/// The profile with the schema and table overrides of `settings`.
pub fn profile(path: Option<&Path>, settings: &Settings) -> anyhow::Result<Profile> {
    let mut profile = super::load_profile(path)?;
    datsync::apply_overrides(&mut profile, settings);
    Ok(profile)
}

/// Connection settings: `--database-url`, else the environment, the way libpq fills them.
pub fn pg_settings(args: &DbArgs) -> anyhow::Result<PgSettings> {
    Ok(PgSettings::resolve(
        args.database_url.as_deref(),
        &datsync::process_env(),
    )?)
}

/// Where `sync_id`'s checkpoint and rejects are: `flag` (`--checkpoint-dir`) when given, else
/// where its last run recorded them in `sync_metadata`, else `configured` (the environment,
/// `datsync.toml`, the default).
pub async fn sync_location(
    client: &tokio_postgres::Client,
    schema: &str,
    sync_id: &datsync::SyncId,
    flag: Option<&str>,
    configured: &str,
) -> String {
    if let Some(dir) = flag {
        return dir.to_owned();
    }
    match datsync::recorded_checkpoint_location(client, schema, sync_id).await {
        Ok(Some(recorded)) => recorded,
        Ok(None) => configured.to_owned(),
        Err(e) => {
            tracing::debug!(%sync_id, error = %e, "no recorded checkpoint location");
            configured.to_owned()
        }
    }
}
