//! `datsync queue`: how much work the queue holds (what the scalers watch).

use std::path::Path;
use std::process::ExitCode;

use datsync::RawSettings;

use super::db;
use crate::cli::QueueArgs;

pub fn run(args: &QueueArgs, profile_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let settings = db::settings(RawSettings::default())?;
    let profile = db::profile(profile_path, &settings)?;
    let pg_settings = db::pg_settings(&args.db)?;
    let status = db::block_on(async {
        let client = datsync::connect(&pg_settings).await?;
        anyhow::Ok(datsync::pending_work(&client, &profile.schema).await?)
    })??;
    if args.json {
        // The counts, and the query the deployments' scalers run for `pending`.
        let mut shown = serde_json::to_value(status)?;
        if let Some(map) = shown.as_object_mut() {
            map.insert("query".into(), datsync::scale_query(&profile.schema).into());
        }
        println!("{shown}");
    } else {
        println!(
            "{} pending in {}.chunk_queue: {} chunk(s) to load, {} sync(s) to finish, over {} sync(s)",
            status.pending, profile.schema, status.chunks, status.finishing, status.syncs
        );
        if status.waiting > 0 {
            println!(
                "{} of them held back after a failed attempt (claimed again after their backoff)",
                status.waiting
            );
        }
        if status.failed > 0 {
            println!(
                "{} given up after their attempts, not pending: `datsync resume SYNC` loads them \
                 once what failed is mended (last_error in {}.chunk_queue says why)",
                status.failed, profile.schema
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
