//! The demo's report: the resume summary, the comparison with the uninterrupted load,
//! timings, value warnings and unknown columns, and a few rows of the table.

use std::path::Path;

use datsync::{
    CHECKSUM_IGNORED_COLUMNS, DEFAULT_RAW_DELIMITER, PgSettings, Profile, RejectRecord,
    SampleSummary, Selection, Store, SyncId, SyncStatus, TablePreview, read_rejects,
};

use super::DemoOutcome;

/// The first `n` value warnings of a sync whose rejects are under `checkpoints`.
pub async fn first_warnings(
    checkpoints: &Path,
    sync_id: &SyncId,
    n: usize,
) -> anyhow::Result<Vec<RejectRecord>> {
    let Some(store) = Store::open_existing(&checkpoints.display().to_string())? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    read_rejects(
        &store,
        sync_id,
        Selection::Warning,
        DEFAULT_RAW_DELIMITER,
        |r| {
            if out.len() < n {
                out.push(r.clone());
            }
            Ok(())
        },
    )
    .await?;
    Ok(out)
}

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

/// The line about the sample file.
pub fn print_sample(file: &Path, sample: &SampleSummary, extra_column: &str) {
    println!(
        "sample     {} ({} rows: {} invalid, {} duplicate keys (across chunks too), {} ragged, \
         {} with an unreadable optional value; quirky header with an extra column {extra_column})",
        file.display(),
        sample.rows,
        sample.invalid_rows,
        sample.duplicate_rows,
        sample.ragged_rows,
        sample.bad_value_rows,
    );
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
        "rows       {} read = {} loaded ({} inserted, {} updated) + {} rejected + {} superseded \
         by a later row with the same key + {} pending",
        c.rows_read,
        c.rows_loaded,
        c.records_inserted,
        c.records_updated,
        c.rows_rejected,
        c.rows_superseded,
        c.rows_pending
    );
    println!(
        "reference  datsync run of the same file, uninterrupted, into an empty table of its own \
         ({}): {} in {:.1} s",
        o.reference_table, o.reference.status, o.full_run_s
    );
    if o.identical {
        println!(
            "identical: {} rows — {} after the kill and the resume equals {} loaded \
             uninterrupted (checksum {} over every column of every row but {})",
            o.resumed_checksum.rows,
            o.table,
            o.reference_table,
            o.resumed_checksum.md5,
            CHECKSUM_IGNORED_COLUMNS.join(", ")
        );
    } else {
        println!(
            "DIFFERENT: {} has {} rows (checksum {}), the uninterrupted {} has {} (checksum {})",
            o.table,
            o.resumed_checksum.rows,
            o.resumed_checksum.md5,
            o.reference_table,
            o.reference_checksum.rows,
            o.reference_checksum.md5
        );
    }
    let saved = (o.full_run_s - o.resume_s).max(0.0);
    println!(
        "time       the resume took {:.1} s; the uninterrupted load of the same file into an \
         empty table took {:.1} s ({saved:.1} s saved by not redoing {} committed chunks)",
        o.resume_s, o.full_run_s, o.killed_after_chunks
    );
    print_findings(o);
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

/// Unknown columns, value warnings and where the rejects are.
fn print_findings(o: &DemoOutcome) {
    let s = &o.resume;
    let c = &s.counts;
    if !s.unknown_columns.is_empty() {
        println!(
            "unknown    columns in the file that the profile does not know (reported, not \
             loaded): {}",
            s.unknown_columns.join(", ")
        );
    }
    if c.value_warnings > 0 {
        println!(
            "warnings   {} values not loaded as written (NULL, midnight or rounded; their rows \
             were loaded); the first:",
            c.value_warnings
        );
        for w in &o.first_warnings {
            println!(
                "           line {}, {} = {:?} → {}: {}",
                w.line,
                w.column.as_deref().unwrap_or("-"),
                w.value.as_deref().unwrap_or(""),
                w.target.as_deref().unwrap_or("-"),
                w.reason
            );
        }
        println!(
            "           every one: DB_SCHEMA={} datsync rejects {} --kind warning \
             --checkpoint-dir {}/checkpoints (and the demo's database)",
            super::DEMO_SCHEMA,
            s.sync_id,
            o.files_dir
        );
    }
    if let Some(dir) = &s.rejects_dir {
        println!(
            "rejects    rejected rows and warnings in {dir} (datsync rejects {} prints them)",
            s.sync_id
        );
    }
}
