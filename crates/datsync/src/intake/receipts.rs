//! The `datsync_receipts` table (migration 4): one row per (source, version), what intake
//! did with it. Every time is the database's, so two hosts with skewed clocks agree on
//! backoffs.

use std::time::Duration;

use tokio_postgres::Client;

use super::{Found, IntakeError};
use crate::model::{SyncId, SyncStatus};
use crate::pg::{PgError, quote_ident};

/// One receipt as read back.
#[derive(Debug, Clone)]
pub(super) struct Receipt {
    pub(super) sync_id: String,
    pub(super) status: SyncStatus,
    pub(super) attempts: u32,
    /// `now() >= next_attempt_at`.
    pub(super) due: bool,
    pub(super) next_attempt_at: String,
    pub(super) last_error: Option<String>,
    pub(super) finished: bool,
    pub(super) poisoned: bool,
}

fn table(schema: &str) -> String {
    format!("{}.datsync_receipts", quote_ident(schema))
}

fn failed(context: &str, found: &Found, e: tokio_postgres::Error) -> IntakeError {
    IntakeError::Pg(PgError::query(
        format!("{context} of {} (version {})", found.source, found.version),
        e,
    ))
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The text form of `next_attempt_at` in receipts and summaries.
const AT: &str = "to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";

/// Takes the intake lock of a (source, version) on `client`'s session, if it is free: held
/// while one process decides about it and runs its sync, released when the session ends.
pub(super) async fn try_lock(client: &Client, found: &Found) -> Result<bool, IntakeError> {
    let key = lock_key(found);
    let row = client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .map_err(|e| failed("cannot take the intake lock", found, e))?;
    Ok(row.get(0))
}

/// Releases the intake lock taken by [`try_lock`] now, rather than when the session's end
/// reaches the server: a delivery that follows at once must find it free. A failure only
/// leaves the lock to the session's end.
pub(super) async fn unlock(client: &Client, found: &Found) {
    let key = lock_key(found);
    if let Err(e) = client
        .query_one(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
    {
        tracing::debug!(source = %found.source, error = %e, "the intake lock goes with the session");
    }
}

fn lock_key(found: &Found) -> String {
    format!("datsync intake {}\n{}", found.source, found.version)
}

/// The receipt of `found`, if there is one.
pub(super) async fn read(
    client: &Client,
    schema: &str,
    found: &Found,
) -> Result<Option<Receipt>, IntakeError> {
    let sql = format!(
        "SELECT sync_id, status, attempts, now() >= next_attempt_at, {AT}, last_error,
                finished_at IS NOT NULL, poisoned_at IS NOT NULL
           FROM {} WHERE source = $1 AND version = $2",
        table(schema)
    );
    let row = client
        .query_opt(&sql, &[&found.source, &found.version])
        .await
        .map_err(|e| failed("cannot read the receipt", found, e))?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(Receipt {
        sync_id: r.get(0),
        status: stored_status(found, &r.get::<_, String>(1))?,
        attempts: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
        due: r.get(3),
        next_attempt_at: r.get(4),
        last_error: r.get(5),
        finished: r.get(6),
        poisoned: r.get(7),
    }))
}

/// Claims `found` for a new sync: `false` when a receipt exists already (another process was
/// first). The attempt (`attempts`: the first, or the host's count of a queue delivery) is
/// counted now, so a process that dies during it has used it.
pub(super) async fn claim(
    client: &Client,
    schema: &str,
    found: &Found,
    sync_id: &SyncId,
    attempts: u32,
    delay: Duration,
) -> Result<bool, IntakeError> {
    let sql = format!(
        "INSERT INTO {} (source, version, name, sync_id, status, attempts, next_attempt_at)
         VALUES ($1, $2, $3, $4, 'IN_PROGRESS', $6, now() + make_interval(secs => $5))
         ON CONFLICT (source, version) DO NOTHING
         RETURNING sync_id",
        table(schema)
    );
    let row = client
        .query_opt(
            &sql,
            &[
                &found.source,
                &found.version,
                &found.name,
                &sync_id.as_str(),
                &seconds(delay),
                &i32::try_from(attempts).unwrap_or(i32::MAX),
            ],
        )
        .await
        .map_err(|e| failed("cannot claim the receipt", found, e))?;
    Ok(row.is_some())
}

/// Counts the start of attempt `attempts` on the receipt's sync; `unpark` takes a parked
/// receipt out of the poison state (a manual re-run).
pub(super) async fn begin_attempt(
    client: &Client,
    schema: &str,
    found: &Found,
    attempts: u32,
    delay: Duration,
    unpark: bool,
) -> Result<(), IntakeError> {
    let sql = format!(
        "UPDATE {} SET attempts = $3, next_attempt_at = now() + make_interval(secs => $4),
                       poisoned_at = CASE WHEN $5 THEN NULL ELSE poisoned_at END,
                       updated_at = now()
          WHERE source = $1 AND version = $2",
        table(schema)
    );
    client
        .execute(
            &sql,
            &[
                &found.source,
                &found.version,
                &i32::try_from(attempts).unwrap_or(i32::MAX),
                &seconds(delay),
                &unpark,
            ],
        )
        .await
        .map_err(|e| failed("cannot count the attempt in the receipt", found, e))?;
    Ok(())
}

/// Points the receipt at a new sync (a forced re-run of a finished one, or a manual run of a
/// parked one): attempts start again at 1, and nothing is finished or parked.
pub(super) async fn restart(
    client: &Client,
    schema: &str,
    found: &Found,
    sync_id: &SyncId,
    delay: Duration,
) -> Result<(), IntakeError> {
    let sql = format!(
        "UPDATE {} SET sync_id = $3, status = 'IN_PROGRESS', attempts = 1,
                       next_attempt_at = now() + make_interval(secs => $4), last_error = NULL,
                       finished_at = NULL, poisoned_at = NULL, updated_at = now()
          WHERE source = $1 AND version = $2",
        table(schema)
    );
    client
        .execute(
            &sql,
            &[
                &found.source,
                &found.version,
                &sync_id.as_str(),
                &seconds(delay),
            ],
        )
        .await
        .map_err(|e| failed("cannot point the receipt at a new sync", found, e))?;
    Ok(())
}

/// What an attempt ended with, to record.
pub(super) struct Outcome<'a> {
    /// The status to keep (`None`: keep the stored one — the attempt had none).
    pub(super) status: Option<SyncStatus>,
    /// The attempts counted so far.
    pub(super) attempts: u32,
    /// Wait before the next attempt (from now).
    pub(super) delay: Duration,
    /// The error, `None` for none.
    pub(super) error: Option<&'a str>,
    /// Nothing is left to do.
    pub(super) finished: bool,
}

/// A receipt as an outcome left it.
pub(super) struct Recorded {
    pub(super) status: SyncStatus,
    pub(super) next_attempt_at: String,
}

/// Records an attempt's outcome.
pub(super) async fn record(
    client: &Client,
    schema: &str,
    found: &Found,
    o: &Outcome<'_>,
) -> Result<Recorded, IntakeError> {
    let sql = format!(
        "UPDATE {} SET status = COALESCE($3, status), attempts = $4,
                       next_attempt_at = now() + make_interval(secs => $5), last_error = $6,
                       finished_at = CASE WHEN $7 THEN now() END, updated_at = now()
          WHERE source = $1 AND version = $2
          RETURNING status, {AT}",
        table(schema)
    );
    let row = client
        .query_one(
            &sql,
            &[
                &found.source,
                &found.version,
                &o.status.map(SyncStatus::as_str),
                &i32::try_from(o.attempts).unwrap_or(i32::MAX),
                &seconds(o.delay),
                &o.error,
                &o.finished,
            ],
        )
        .await
        .map_err(|e| failed("cannot record the outcome in the receipt", found, e))?;
    Ok(Recorded {
        status: stored_status(found, &row.get::<_, String>(0))?,
        next_attempt_at: row.get(1),
    })
}

/// A receipt's status, which datsync writes only as a [`SyncStatus`].
fn stored_status(found: &Found, text: &str) -> Result<SyncStatus, IntakeError> {
    text.parse()
        .map_err(|e: crate::model::UnknownSyncStatus| IntakeError::Corrupt {
            source_name: found.source.clone(),
            version: found.version.clone(),
            message: e.to_string(),
        })
}

/// Parks the receipt as poison: never retried automatically again.
pub(super) async fn park(client: &Client, schema: &str, found: &Found) -> Result<(), IntakeError> {
    let sql = format!(
        "UPDATE {} SET poisoned_at = now(), updated_at = now()
          WHERE source = $1 AND version = $2",
        table(schema)
    );
    client
        .execute(&sql, &[&found.source, &found.version])
        .await
        .map_err(|e| failed("cannot park the receipt", found, e))?;
    Ok(())
}

/// The receipt that points at a sync (the newest, should several), with its source's name.
pub(super) async fn for_sync(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<Option<(String, Receipt)>, IntakeError> {
    let sql = format!(
        "SELECT sync_id, status, attempts, now() >= next_attempt_at, {AT}, last_error,
                finished_at IS NOT NULL, poisoned_at IS NOT NULL, name
           FROM {} WHERE sync_id = $1 ORDER BY updated_at DESC LIMIT 1",
        table(schema)
    );
    let row = client
        .query_opt(&sql, &[&sync_id.as_str()])
        .await
        .map_err(|e| {
            IntakeError::Pg(PgError::query(
                format!("cannot read the receipt of sync {sync_id}"),
                e,
            ))
        })?;
    let Some(r) = row else {
        return Ok(None);
    };
    let name: String = r.get(8);
    let status = r
        .get::<_, String>(1)
        .parse()
        .map_err(|e: crate::model::UnknownSyncStatus| IntakeError::Corrupt {
            source_name: name.clone(),
            version: String::new(),
            message: e.to_string(),
        })?;
    Ok(Some({
        let receipt = Receipt {
            sync_id: r.get(0),
            status,
            attempts: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
            due: r.get(3),
            next_attempt_at: r.get(4),
            last_error: r.get(5),
            finished: r.get(6),
            poisoned: r.get(7),
        };
        (name, receipt)
    }))
}
