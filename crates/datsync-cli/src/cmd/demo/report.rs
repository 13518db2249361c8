//! The demo's report: the resume summary, timings, and a few rows of the table.

use datsync::{PgSettings, Profile, SyncStatus, TablePreview};

use super::DemoOutcome;

/// Columns of the table shown at the end.
/// Columns shown: the profile's required ones (the key first), which exercise the typed
/// conversions — exact decimals, date + time pairs, leading zeros.
const SHOWN_COLUMNS: usize = 6;

/// Rows in the target table, the shown column names, and its first `limit` rows by key.
pub async fn table_rows(
    settings: &PgSettings,
    profile: &Profile,
    limit: i64,
) -> anyhow::Result<TablePreview> {
    let client = datsync::connect(settings).await?;
    let columns: Vec<String> = profile
        .columns
        .iter()
        .filter(|c| c.required)
        .take(SHOWN_COLUMNS)
        .map(|c| c.target.clone())
        .collect();
    Ok(datsync::preview_target(&client, profile, &columns, limit).await?)
}

/// The text report.
pub fn print(o: &DemoOutcome) {
    let s = &o.resume;
    let c = &s.counts;
    println!(
        "resume     datsync resume {}: {} chunks already committed were skipped, {} loaded, in {:.1} s",
        s.sync_id,
        s.chunks_skipped_on_resume,
        c.chunks_completed
            .saturating_sub(s.chunks_skipped_on_resume),
        o.resume_s
    );
    let status = s.status;
    let why = if status == SyncStatus::PartialSuccess && c.chunks_failed == 0 {
        "; partial because the sample's invalid and ragged rows were rejected, as intended"
    } else {
        ""
    };
    println!(
        "status     {status} ({} of {} chunks completed{why})",
        c.chunks_completed, c.chunks_total
    );
    println!(
        "rows       {} read, {} loaded ({} inserted, {} updated), {} rejected, {} superseded by a later duplicate",
        c.rows_read,
        c.rows_loaded,
        c.records_inserted,
        c.records_updated,
        c.rows_rejected,
        c.rows_superseded
    );
    let saved = (o.full_run_s - o.resume_s).max(0.0);
    println!(
        "time       the resume took {:.1} s; an uninterrupted run of the same file took {:.1} s \
         ({saved:.1} s saved by not redoing {} committed chunks)",
        o.resume_s, o.full_run_s, o.killed_after_chunks
    );
    if let Some(dir) = &s.rejects_dir {
        println!("rejects    rejected rows (Parquet, with the reason) in {dir}");
    }
    println!(
        "table      {} holds {} rows; the first {} by key:",
        o.table,
        o.table_rows,
        o.first_rows.len()
    );
    println!("           {}", o.columns.join(" | "));
    for row in &o.first_rows {
        let cells: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("NULL")).collect();
        println!("           {}", cells.join(" | "));
    }
}
