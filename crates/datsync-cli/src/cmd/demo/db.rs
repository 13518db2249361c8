//! Which database the demo loads into: a configured one, the server on localhost (in a
//! database of its own), or a private throwaway server.

use std::collections::HashMap;

use anyhow::Context as _;
use datsync::{PgSettings, SearchPaths, TempPostgres, TempPostgresOptions, local_server_answers};

use crate::cli::DemoArgs;

/// The database created (dropped first) on a local server.
pub const DEMO_DATABASE: &str = "datsync_demo";

/// The chosen database.
pub struct Target {
    /// Settings for this process.
    pub settings: PgSettings,
    /// `--database-url` for the children (`None`: they read the same environment).
    pub url: Option<String>,
    /// What was chosen, in a sentence.
    pub description: String,
    /// Whether the children run against a throwaway server (kept alive by this guard).
    pub server: Option<TempPostgres>,
}

/// Picks the database as `datsync demo --help` says; `rt` runs the setup queries.
pub fn choose(
    args: &DemoArgs,
    env: &HashMap<String, String>,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Target> {
    if let Some(url) = &args.database_url {
        return Ok(Target {
            settings: PgSettings::resolve(Some(url), env)?,
            url: Some(url.clone()),
            description: "the database given by --database-url (in the schemas datsync_demo and \
                          datsync_demo_reference, dropped and recreated)"
                .to_owned(),
            server: None,
        });
    }
    if datsync::configured_in_env(env) {
        return Ok(Target {
            settings: PgSettings::from_env(env)?,
            url: None,
            description: "the database configured in the environment (DATABASE_URL, DB_* or PG*; \
                          in the schemas datsync_demo and datsync_demo_reference, dropped and \
                          recreated)"
                .to_owned(),
            server: None,
        });
    }
    if local_server_answers("127.0.0.1", args.local_port) {
        return rt.block_on(local(env, args.local_port));
    }
    throwaway(args)
}

/// `datsync_demo` on the local server, dropped and recreated.
async fn local(env: &HashMap<String, String>, port: u16) -> anyhow::Result<Target> {
    let user = ["PGUSER", "USER"]
        .iter()
        .find_map(|k| env.get(*k).filter(|v| !v.is_empty()))
        .map_or("postgres", String::as_str);
    let admin_url = format!("host=127.0.0.1 port={port} user={user} dbname=postgres");
    let admin = PgSettings::from_connection_string(&admin_url)?;
    let client = datsync::connect(&admin).await.with_context(|| {
        format!(
            "PostgreSQL answers on 127.0.0.1:{port} but does not let user `{user}` in; \
             pass --database-url (or set DATABASE_URL)"
        )
    })?;
    datsync::recreate_database(&client, DEMO_DATABASE)
        .await
        .with_context(|| format!("preparing the database {DEMO_DATABASE}"))?;
    let url = format!("host=127.0.0.1 port={port} user={user} dbname={DEMO_DATABASE}");
    Ok(Target {
        settings: PgSettings::from_connection_string(&url)?,
        url: Some(url),
        description: format!(
            "the PostgreSQL server on 127.0.0.1:{port}, in a fresh database `{DEMO_DATABASE}` \
             (dropped and recreated on each demo, kept afterwards)"
        ),
        server: None,
    })
}

/// Drops and recreates the demo's schemas (their tables are made by the first load).
pub async fn fresh_schemas(settings: &PgSettings, schemas: &[&str]) -> anyhow::Result<()> {
    let client = datsync::connect(settings).await?;
    for schema in schemas {
        datsync::recreate_schema(&client, schema)
            .await
            .with_context(|| format!("preparing the demo's schema {schema}"))?;
    }
    Ok(())
}

/// A private server from the installed binaries; removed when the target is dropped.
fn throwaway(args: &DemoArgs) -> anyhow::Result<Target> {
    let mut options = TempPostgresOptions::default();
    if let Some(path) = &args.pg_bin_path {
        options.search = SearchPaths {
            pg_config: None,
            versioned: Vec::new(),
            fixed: Vec::new(),
            path: Some(path.clone()),
        };
    }
    let context = || {
        format!(
            "no database configured (--database-url, DATABASE_URL) and none answers on \
             127.0.0.1:{}, so the demo wanted a throwaway PostgreSQL",
            args.local_port
        )
    };
    datsync::find_binaries(&options.search).with_context(context)?;
    eprintln!(
        "no database configured and none on 127.0.0.1:{}: starting a private throwaway PostgreSQL …",
        args.local_port
    );
    let server = TempPostgres::start_with(&options).with_context(context)?;
    let url = server.connection_string();
    Ok(Target {
        settings: PgSettings::from_connection_string(&url)?,
        url: Some(url),
        description: format!(
            "a private throwaway PostgreSQL in {} (no database configured and none on \
             127.0.0.1:{}); it is removed when the demo ends",
            server.dir().display(),
            args.local_port
        ),
        server: Some(server),
    })
}
