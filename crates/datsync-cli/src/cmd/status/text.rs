//! The text form of `datsync status`.

use std::fmt::Write as _;
use std::io::Write;

use datsync::{ChunkRow, OlderThan, StatusReport, SyncDetail};

use crate::cmd::list::duration;

/// Chunks listed one by one at most; a longer table shows the first and last ones and every
/// chunk that is not completed.
const MAX_CHUNK_ROWS: usize = 40;

pub fn print(out: &mut impl Write, r: &StatusReport) -> std::io::Result<()> {
    writeln!(out, "sync          {}", r.sync_id)?;
    match &r.metadata {
        Some(d) => print_metadata(out, d, r)?,
        None => writeln!(out, "status        (not in sync_metadata)")?,
    }
    let l = &r.ledger;
    writeln!(
        out,
        "ledger        {} chunks committed: {} rows, {} inserted, {} updated, {} skipped (older)",
        l.chunks_committed, l.rows, l.inserted, l.updated, l.skipped_older
    )?;
    match &r.checkpoint {
        Some(c) => writeln!(
            out,
            "checkpoint    {}: {} (phase {}), {} rows in chunks of {}, updated {}",
            r.checkpoint_dir, c.status, c.phase, c.rows, c.chunk_size, c.updated_at
        )?,
        None => writeln!(
            out,
            "checkpoint    {}",
            r.checkpoint_note.as_deref().unwrap_or("none")
        )?,
    }
    if let Some(e) = r.checkpoint.as_ref().and_then(|c| c.error.as_deref()) {
        writeln!(out, "              error: {e}")?;
    }
    let p = &r.progress;
    writeln!(
        out,
        "progress      {}; {} failed, {} pending, {} skipped",
        p.text, p.chunks_failed, p.chunks_pending, p.chunks_skipped
    )?;
    print_chunks(out, &r.chunks)?;
    for c in &r.failed_chunks {
        writeln!(
            out,
            "failed chunk  {} (attempts {}): {}",
            c.chunk_id,
            c.attempts,
            c.error.as_deref().unwrap_or("no error recorded")
        )?;
    }
    match (&r.time_saved, &r.time_saved_note) {
        (Some(t), _) => writeln!(
            out,
            "time saved    about {} (estimate: {} chunks skipped on resume x {:.2}s per chunk)",
            duration(Some(t.seconds)),
            t.chunks_skipped,
            t.seconds_per_chunk
        )?,
        (None, Some(note)) => writeln!(out, "time saved    {note}")?,
        (None, None) => {}
    }
    Ok(())
}

fn print_metadata(out: &mut impl Write, d: &SyncDetail, r: &StatusReport) -> std::io::Result<()> {
    let m = &d.record;
    writeln!(out, "status        {}", m.status)?;
    let file = m.file_name.as_deref().unwrap_or("-");
    match m.file_path.as_deref() {
        Some(path) if path != file => writeln!(out, "file          {file} ({path})")?,
        _ => writeln!(out, "file          {file}")?,
    }
    let completed = m.completed_at.as_deref().unwrap_or("-");
    writeln!(
        out,
        "started       {}, completed {completed}, duration {}",
        m.started_at,
        duration(m.duration_seconds)
    )?;
    writeln!(
        out,
        "rows          {} read = {} loaded + {} rejected + {} superseded + {} pending",
        m.records_total,
        m.records_loaded,
        m.records_failed,
        m.records_superseded,
        m.records_pending
    )?;
    writeln!(
        out,
        "loaded        {} inserted, {} updated, {} skipped (older than the stored row)",
        m.records_inserted, m.records_updated, m.records_skipped_older
    )?;
    if let Some(o) = &r.older_than {
        writeln!(out, "older         {}", older_line(o))?;
    }
    if r.all_older {
        writeln!(
            out,
            "              every row of this file is older than the table's: it changed nothing"
        )?;
    }
    if let Some(e) = &m.error_message {
        writeln!(out, "error         {e}")?;
    }
    if !m.unknown_columns.is_empty() {
        writeln!(
            out,
            "unknown       columns not in the profile, not loaded: {}",
            m.unknown_columns.join(", ")
        )?;
    }
    writeln!(
        out,
        "validation    {} errors (rows rejected), {} value warnings (NULL, midnight or rounded)",
        m.validation_errors_count, m.value_warnings
    )?;
    for e in &d.validation_errors_sample {
        writeln!(out, "              {}", validation_line(e))?;
    }
    if m.records_failed + m.value_warnings > 0 {
        writeln!(
            out,
            "              every one: datsync rejects {} [--kind rejected|warning]",
            m.sync_id
        )?;
    }
    Ok(())
}

/// `12 rows not applied: the table holds newer versions (newest: 20250130 14:02:11 from
/// ZTDWR_20250130.dat, sync …)`; without a version, the later sync that won.
fn older_line(o: &OlderThan) -> String {
    let file = o.file.as_deref().unwrap_or("an unnamed file");
    let sync = o.sync_id.as_deref().unwrap_or("-");
    match (&o.version, &o.version_readable) {
        (Some(stored), readable) => format!(
            "{} rows not applied: the table holds newer versions (newest: {} from {file}, \
             sync {sync})",
            o.rows,
            readable.as_deref().unwrap_or(stored)
        ),
        (None, _) => format!(
            "{} rows not applied: the table holds rows of a later sync (newest: sync {sync}, \
             seq {}, from {file})",
            o.rows, o.sync_seq
        ),
    }
}

/// `rejected line 12, column X = "v": reason`, or the JSON as stored when it has another
/// shape.
fn validation_line(e: &serde_json::Value) -> String {
    let field = |k: &str| e.get(k).filter(|v| !v.is_null());
    match (field("line"), field("reason")) {
        (Some(line), Some(reason)) => {
            let kind = field("kind").and_then(|k| k.as_str()).unwrap_or("rejected");
            let mut s = format!("{kind:<8} line {line}");
            if let Some(c) = field("column").and_then(|c| c.as_str()) {
                let _ = write!(s, ", column {c}");
            }
            if let Some(v) = field("value") {
                let _ = write!(s, " = {v}");
            }
            format!("{s}: {}", reason.as_str().unwrap_or_default())
        }
        _ => e.to_string(),
    }
}

fn print_chunks(out: &mut impl Write, chunks: &[ChunkRow]) -> std::io::Result<()> {
    if chunks.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "  {:>6}  {:<10}  {:>8}  {:<19}  {:>8}  {:>8}  {:>8}  {:>8}  ERROR",
        "CHUNK", "STATUS", "ROWS", "LINES", "INSERTED", "UPDATED", "REJECTED", "ATTEMPTS"
    )?;
    let long = chunks.len() > MAX_CHUNK_ROWS;
    let mut elided = 0usize;
    for (i, c) in chunks.iter().enumerate() {
        let edge = i < 5 || i + 5 >= chunks.len();
        if long && !edge && c.status == datsync::ChunkStatus::Completed {
            elided += 1;
            continue;
        }
        if elided > 0 {
            writeln!(out, "  ... {elided} completed chunks not shown")?;
            elided = 0;
        }
        let lines = match (c.first_line, c.last_line) {
            (Some(a), Some(b)) => format!("{a}-{b}"),
            _ => "-".to_owned(),
        };
        let status = match c.manifest_status {
            Some(m) if m != c.status => format!("{}*", c.status),
            _ => c.status.to_string(),
        };
        writeln!(
            out,
            "  {:>6}  {:<10}  {:>8}  {:<19}  {:>8}  {:>8}  {:>8}  {:>8}  {}",
            c.chunk_id,
            status,
            c.rows,
            lines,
            c.inserted,
            c.updated,
            c.rejected,
            c.attempts,
            c.error.as_deref().unwrap_or("")
        )?;
    }
    if chunks
        .iter()
        .any(|c| c.manifest_status.is_some_and(|m| m != c.status))
    {
        writeln!(
            out,
            "  * committed in the ledger; the checkpoint manifest had not recorded it yet"
        )?;
    }
    Ok(())
}
