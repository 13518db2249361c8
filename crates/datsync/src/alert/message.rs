//! The text of an alert: subject and plain-text body, as in `ztdwr.md` §5.

use std::fmt::Write as _;

use super::report::AlertReport;
use crate::model::{RowError, SyncStatus};

/// The longest value an alert quotes from a rejected row; longer values are cut.
const MAX_QUOTED_VALUE_CHARS: usize = 60;

/// The alert subject: `Error: ZTDWR Sync <sync_id>` for FAILED and BAD_INPUT,
/// `Warning: ZTDWR Sync <sync_id>` otherwise (PARTIAL_SUCCESS).
pub fn subject(report: &AlertReport) -> String {
    let level = match alert_level(report.status) {
        "error" => "Error",
        _ => "Warning",
    };
    format!("{level}: ZTDWR Sync {}", report.sync_id)
}

/// `error` for FAILED and BAD_INPUT, `warning` for any other status (PARTIAL_SUCCESS).
pub fn alert_level(status: SyncStatus) -> &'static str {
    match status {
        SyncStatus::Failed | SyncStatus::BadInput => "error",
        _ => "warning",
    }
}

/// The plain-text alert body: what happened, the counts, the first validation errors and
/// where to look next. Secrets in free-text fields are masked.
pub fn body(report: &AlertReport) -> String {
    let r = report.redacted();
    let mut out = String::new();
    headline(&mut out, &r);
    counts(&mut out, &r);
    validation_errors(&mut out, &r);
    value_warnings(&mut out, &r);
    unknown_columns(&mut out, &r);
    where_to_look(&mut out, &r);
    out
}

fn headline(out: &mut String, r: &AlertReport) {
    let _ = writeln!(
        out,
        "datsync sync {} ended with status {}.",
        r.sync_id, r.status
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Sync id:   {}", r.sync_id);
    let _ = writeln!(out, "File:      {}", r.file_name);
    let _ = writeln!(out, "Path:      {}", r.file_path);
    let _ = writeln!(out, "Status:    {}", r.status);
    let error = r.error_message.as_deref().unwrap_or("none");
    let _ = writeln!(out, "Error:     {error}");
    let _ = writeln!(out, "Duration:  {:.1} s", r.duration.as_secs_f64());
}

fn counts(out: &mut String, r: &AlertReport) {
    let c = &r.counts;
    let _ = writeln!(out);
    let _ = writeln!(out, "Counts");
    for (name, value) in [
        ("rows read", c.rows_read),
        ("rows loaded", c.rows_loaded),
        ("rows rejected", c.rows_rejected),
        ("rows superseded", c.rows_superseded),
        ("rows pending", c.rows_pending),
        ("records inserted", c.records_inserted),
        ("records updated", c.records_updated),
        ("value warnings", c.value_warnings),
    ] {
        let _ = writeln!(out, "  {name:<18}{value}");
    }
    let _ = writeln!(
        out,
        "  {:<18}{} total, {} completed, {} failed",
        "chunks", c.chunks_total, c.chunks_completed, c.chunks_failed
    );
}

fn validation_errors(out: &mut String, r: &AlertReport) {
    let _ = writeln!(out);
    let listed = r.listed_validation_errors();
    let _ = writeln!(out, "Validation errors: {}", r.validation_errors_count);
    if listed.is_empty() {
        return;
    }
    let _ = writeln!(out, "First {} (line: reason):", listed.len());
    for e in listed {
        let _ = writeln!(out, "  {}", validation_line(e));
    }
    let more = r
        .validation_errors_count
        .saturating_sub(listed.len() as u64);
    if more > 0 {
        let _ = writeln!(
            out,
            "  ... and {more} more (all of them: datsync rejects {} --kind rejected)",
            r.sync_id
        );
    }
}

fn value_warnings(out: &mut String, r: &AlertReport) {
    let count = r.counts.value_warnings;
    if count == 0 {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Value warnings: {count} (values not loaded as written: NULL, midnight or rounded; the rows were loaded)"
    );
    let listed = r.listed_value_warnings();
    if !listed.is_empty() {
        let _ = writeln!(out, "First {} (line: reason):", listed.len());
    }
    for e in listed {
        let _ = writeln!(out, "  {}", validation_line(e));
    }
    let more = count.saturating_sub(listed.len() as u64);
    if more > 0 {
        let _ = writeln!(out, "  ... and {more} more");
    }
    let _ = writeln!(
        out,
        "  all of them: datsync rejects {} --kind warning",
        r.sync_id
    );
}

fn unknown_columns(out: &mut String, r: &AlertReport) {
    if r.unknown_columns.is_empty() {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Unknown columns (in the file, not in the profile; not loaded): {}",
        r.unknown_columns.join(", ")
    );
}

/// `line 17: QUANTITY = 'abc': not a decimal number`.
fn validation_line(e: &RowError) -> String {
    let mut s = format!("line {}: ", e.line);
    if let Some(column) = &e.column {
        s.push_str(column);
        if let Some(value) = &e.value {
            let _ = write!(s, " = '{}'", quoted(value));
        }
        s.push_str(": ");
    }
    s.push_str(&e.reason);
    s
}

fn quoted(value: &str) -> String {
    let mut v: String = value
        .chars()
        .take(MAX_QUOTED_VALUE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if value.chars().count() > MAX_QUOTED_VALUE_CHARS {
        v.push_str("...");
    }
    v
}

fn where_to_look(out: &mut String, r: &AlertReport) {
    let _ = writeln!(out);
    let _ = writeln!(out, "Where to look");
    match &r.checkpoint_dir {
        Some(dir) => {
            let _ = writeln!(out, "  checkpoints (manifest, chunks, rejects): {dir}");
        }
        None => {
            let _ = writeln!(out, "  checkpoints: none kept");
        }
    }
    let _ = writeln!(out, "  progress and errors: datsync status {}", r.sync_id);
    let _ = writeln!(out, "  {}", next_step(r));
}

fn next_step(r: &AlertReport) -> String {
    match r.status {
        SyncStatus::BadInput => format!(
            "fix the source file, then run it again (or datsync resume {} if only the database was at fault)",
            r.sync_id
        ),
        SyncStatus::PartialSuccess if r.counts.chunks_failed == 0 => {
            "rejected rows are listed above; fix them at the source and load the file again"
                .to_owned()
        }
        _ => format!(
            "retry what is left: datsync resume {} (committed chunks are skipped)",
            r.sync_id
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{SyncCounts, SyncId};

    fn report(status: SyncStatus, errors: u64) -> AlertReport {
        AlertReport {
            sync_id: SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap(),
            file_name: "ztdwr.dat".into(),
            file_path: "/data/ztdwr.dat".into(),
            status,
            error_message: Some("connect to postgres://root:hunter2@db/x failed".into()),
            counts: SyncCounts {
                rows_read: 100,
                chunks_total: 3,
                chunks_completed: 2,
                chunks_failed: 1,
                ..SyncCounts::default()
            },
            validation_errors_count: errors,
            validation_errors: (0..errors)
                .map(|i| {
                    RowError::new(
                        i + 2,
                        Some("QUANTITY"),
                        Some(&"x".repeat(100)),
                        format!("reason {i}"),
                    )
                })
                .collect(),
            value_warnings: Vec::new(),
            unknown_columns: Vec::new(),
            checkpoint_dir: Some("./checkpoints/sync_20250129_143022_a3f4b2c1".into()),
            duration: Duration::from_millis(12_345),
        }
    }

    #[test]
    fn subject_says_error_or_warning() {
        let id = "sync_20250129_143022_a3f4b2c1";
        let s = |st| subject(&report(st, 0));
        assert_eq!(s(SyncStatus::Failed), format!("Error: ZTDWR Sync {id}"));
        assert_eq!(s(SyncStatus::BadInput), format!("Error: ZTDWR Sync {id}"));
        assert_eq!(
            s(SyncStatus::PartialSuccess),
            format!("Warning: ZTDWR Sync {id}")
        );
    }

    #[test]
    fn body_lists_at_most_twenty_errors_and_no_password() {
        let b = body(&report(SyncStatus::BadInput, 25));
        assert!(b.contains("Validation errors: 25"), "{b}");
        assert!(b.contains("line 2: QUANTITY = '"), "{b}");
        assert!(b.contains("line 21: QUANTITY"), "{b}");
        assert!(!b.contains("line 22:"), "{b}");
        assert!(b.contains("... and 5 more"), "{b}");
        assert!(!b.contains("hunter2"), "{b}");
        assert!(b.contains("postgres://root:***@db/x"), "{b}");
        assert!(
            b.contains("datsync status sync_20250129_143022_a3f4b2c1"),
            "{b}"
        );
        assert!(b.contains("Duration:  12.3 s"), "{b}");
    }

    #[test]
    fn value_warnings_and_unknown_columns_are_named() {
        let mut r = report(SyncStatus::PartialSuccess, 1);
        let b = body(&r);
        assert!(!b.contains("Value warnings"), "{b}");
        assert!(!b.contains("Unknown columns"), "{b}");
        r.counts.value_warnings = 23;
        r.value_warnings = (0..23)
            .map(|i| {
                RowError::warning(
                    i + 10,
                    "qty_dikirim",
                    "qty_dikirim",
                    "abc",
                    "not a number: loaded as NULL".into(),
                )
            })
            .collect();
        r.unknown_columns = vec!["tonase".into(), "catatan".into()];
        let b = body(&r);
        assert!(b.contains("Value warnings: 23"), "{b}");
        assert!(
            b.contains("line 10: qty_dikirim = 'abc': not a number: loaded as NULL"),
            "{b}"
        );
        assert!(b.contains("... and 3 more"), "{b}");
        assert!(
            b.contains("datsync rejects sync_20250129_143022_a3f4b2c1 --kind warning"),
            "{b}"
        );
        assert!(b.contains("Unknown columns"), "{b}");
        assert!(b.contains("tonase, catatan"), "{b}");
    }

    #[test]
    fn partial_success_with_failed_chunks_points_at_resume() {
        let b = body(&report(SyncStatus::PartialSuccess, 0));
        assert!(
            b.contains("datsync resume sync_20250129_143022_a3f4b2c1"),
            "{b}"
        );
        assert!(b.contains("1 failed"), "{b}");
    }
}
