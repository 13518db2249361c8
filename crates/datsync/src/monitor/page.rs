//! The status page (`GET /`): plain server-rendered HTML, no script, refreshed by the
//! browser (`<meta http-equiv="refresh">`), readable on a phone (one column, tables that
//! scroll sideways). What it shows: the syncs running in this process with their progress,
//! the chunks that failed lately, the sources parked as poison, and the recent syncs from
//! `sync_metadata`.

use std::fmt::Write as _;

use tokio_postgres::Client;

use super::Monitor;
use crate::pg::quote_ident;
use crate::status::SyncRecord;
use crate::telemetry::{FailedChunkNote, RunningSync};

/// Seconds between two refreshes of the page.
pub const PAGE_REFRESH_SECONDS: u32 = 5;
/// Recent syncs shown.
const RECENT_SYNCS: u32 = 20;
/// Parked sources shown.
const PARKED_SHOWN: i64 = 20;

/// A parked source.
pub(super) struct Parked {
    name: String,
    attempts: i32,
    last_error: Option<String>,
    since: String,
}

/// What the database says, or why it could not be read.
pub(super) struct FromDb {
    recent: Result<Vec<SyncRecord>, String>,
    parked: Result<Vec<Parked>, String>,
}

pub(super) async fn read_db(m: &Monitor) -> FromDb {
    let client = match crate::pg::connect(&m.pg).await {
        Ok(c) => c,
        Err(e) => {
            let e = format!("the database cannot be reached: {e}");
            return FromDb {
                recent: Err(e.clone()),
                parked: Err(e),
            };
        }
    };
    let recent = crate::status::recent_syncs(&client, &m.schema, RECENT_SYNCS)
        .await
        .map_err(|e| e.to_string());
    let parked = parked(&client, &m.schema).await;
    FromDb { recent, parked }
}

async fn parked(client: &Client, schema: &str) -> Result<Vec<Parked>, String> {
    let table = format!("{}.datsync_receipts", quote_ident(schema));
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            &format!(
                "SELECT name, attempts, last_error,
                        to_char(poisoned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                   FROM {table} WHERE poisoned_at IS NOT NULL
                  ORDER BY poisoned_at DESC LIMIT $1"
            ),
            &[&PARKED_SHOWN],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .map(|r| Parked {
            name: r.get(0),
            attempts: r.get(1),
            last_error: r.get(2),
            since: r.get(3),
        })
        .collect())
}

/// The page.
pub(super) fn render(running: &[RunningSync], failures: &[FailedChunkNote], db: &FromDb) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{PAGE_REFRESH_SECONDS}\">\
         <title>datsync status</title><style>{STYLE}</style></head><body>\
         <h1>datsync</h1><p class=\"note\">Refreshed every {PAGE_REFRESH_SECONDS} s. \
         Metrics: <a href=\"/metrics\">/metrics</a>.</p>"
    );
    section_running(&mut h, running, db);
    section_failures(&mut h, failures);
    section_parked(&mut h, &db.parked);
    section_recent(&mut h, &db.recent);
    h.push_str("</body></html>");
    h
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1rem;max-width:70rem}\
    h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}\
    .scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.9rem}\
    th,td{padding:.25rem .5rem;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap}\
    td.num{text-align:right}td.err{white-space:normal;min-width:15rem}\
    .SUCCESS{color:#146c2e}.PARTIAL_SUCCESS{color:#8a5a00}.FAILED,.BAD_INPUT{color:#b3261e}\
    .IN_PROGRESS{color:#0b57d0}.note{color:#555;font-size:.85rem}\
    progress{width:10rem}";

fn section_running(h: &mut String, running: &[RunningSync], db: &FromDb) {
    h.push_str("<h2>Running</h2>");
    if running.is_empty() {
        h.push_str("<p id=\"running\" class=\"note\">No sync is running in this process.</p>");
        return;
    }
    h.push_str(
        "<div class=\"scroll\"><table id=\"running\"><tr><th>sync</th><th>file</th>\
         <th>chunks loaded</th><th>rows</th><th>rows/s</th><th>source read</th><th>ETA</th></tr>",
    );
    for r in running {
        let file = db
            .recent
            .as_ref()
            .ok()
            .and_then(|recent| recent.iter().find(|s| s.sync_id == r.sync_id))
            .and_then(|s| s.file_name.clone())
            .unwrap_or_default();
        let chunks = match r.source_read_pct.filter(|p| *p > 0.0) {
            Some(p) => format!(
                "{} of about {}",
                r.chunks_loaded,
                ((r.chunks_loaded as f64) * 100.0 / p).round() as u64
            ),
            None => r.chunks_loaded.to_string(),
        };
        let read = r.source_read_pct.map_or_else(
            || "–".to_owned(),
            |p| format!("<progress max=\"100\" value=\"{p}\"></progress> {p}%"),
        );
        let eta = r.eta_s.map_or_else(|| "–".to_owned(), duration);
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{chunks}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{read}</td><td>{eta}</td></tr>",
            esc(&r.sync_id),
            esc(&file),
            r.rows,
            r.rows_per_s
        );
    }
    h.push_str("</table></div>");
}

fn section_failures(h: &mut String, failures: &[FailedChunkNote]) {
    h.push_str("<h2>Failed chunks</h2>");
    if failures.is_empty() {
        h.push_str("<p id=\"failed\" class=\"note\">No chunk failed in this process.</p>");
        return;
    }
    h.push_str(
        "<div class=\"scroll\"><table id=\"failed\"><tr><th>when</th><th>sync</th>\
         <th>chunk</th><th>error</th></tr>",
    );
    for f in failures {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"err\">{}</td></tr>",
            esc(&f.at),
            esc(&f.sync_id),
            f.chunk,
            esc(&f.error)
        );
    }
    h.push_str("</table></div>");
}

fn section_parked(h: &mut String, parked: &Result<Vec<Parked>, String>) {
    h.push_str("<h2>Parked files</h2>");
    match parked {
        Err(e) => {
            let _ = write!(h, "<p id=\"parked\" class=\"note\">{}</p>", esc(e));
        }
        Ok(p) if p.is_empty() => {
            h.push_str("<p id=\"parked\" class=\"note\">No file is parked.</p>");
        }
        Ok(p) => {
            h.push_str(
                "<div class=\"scroll\"><table id=\"parked\"><tr><th>file</th><th>parked</th>\
                 <th>attempts</th><th>last error</th></tr>",
            );
            for f in p {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"err\">{}</td></tr>",
                    esc(&f.name),
                    esc(&f.since),
                    f.attempts,
                    esc(f.last_error.as_deref().unwrap_or(""))
                );
            }
            h.push_str("</table></div>");
        }
    }
}

fn section_recent(h: &mut String, recent: &Result<Vec<SyncRecord>, String>) {
    h.push_str("<h2>Recent syncs</h2>");
    let recent = match recent {
        Err(e) => {
            let _ = write!(h, "<p id=\"recent\" class=\"note\">{}</p>", esc(e));
            return;
        }
        Ok(r) if r.is_empty() => {
            h.push_str("<p id=\"recent\" class=\"note\">No sync recorded yet.</p>");
            return;
        }
        Ok(r) => r,
    };
    h.push_str(
        "<div class=\"scroll\"><table id=\"recent\"><tr><th>status</th><th>file</th>\
         <th>rows read</th><th>loaded</th><th>rejected</th><th>warnings</th><th>duration</th>\
         <th>started</th><th>sync</th></tr>",
    );
    for s in recent {
        let status = s.status.as_str();
        let took = s
            .duration_seconds
            .map_or_else(|| "–".to_owned(), |d| duration(d.round() as u64));
        let _ = write!(
            h,
            "<tr class=\"sync\" data-sync=\"{id}\"><td class=\"{status}\">{status}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{took}</td><td>{}</td><td>{id}</td></tr>",
            esc(s.file_name.as_deref().unwrap_or("")),
            s.records_total,
            s.records_loaded,
            s.records_failed,
            s.value_warnings,
            esc(&s.started_at),
            id = esc(&s.sync_id),
        );
    }
    h.push_str("</table></div>");
}

/// `75` → `1m 15s`.
fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<b a=\"1\">&'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
        let failures = [FailedChunkNote {
            sync_id: "s".into(),
            chunk: 3,
            error: "<script>alert(1)</script>".into(),
            at: "t".into(),
        }];
        let db = FromDb {
            recent: Ok(Vec::new()),
            parked: Err("down".into()),
        };
        let page = render(&[], &failures, &db);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert_eq!(duration(75), "1m 15s");
    }
}
