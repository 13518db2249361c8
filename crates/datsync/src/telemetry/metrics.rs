//! The process's Prometheus metrics (`prometheus-client`): every family registered when the
//! [`Metrics`] is made, so each is exported from the start, at zero — absent and zero differ.
//!
//! Names follow the Prometheus naming guide: the `datsync_` prefix, base units (seconds,
//! bytes), `_total` on counters, and labels with bounded values only (never a sync id or a
//! file name). The events of [`super`] count into them as they are emitted, so the counters
//! of one process add up to the `--json` summaries of the syncs it ran from their start.
//!
//! | family | type | what |
//! |---|---|---|
//! | `datsync_rows_total{outcome}` | counter | rows of committed chunks by outcome: `inserted`, `updated`, `skipped_older`, `superseded`, `rejected` (rows rejected in a chunk that stopped the sync included) |
//! | `datsync_value_warnings_total` | counter | values not loaded as written |
//! | `datsync_chunks_total{outcome}` | counter | chunks `committed`, `failed` (kept for a retry), `skipped_on_resume` (found committed when a run started) |
//! | `datsync_source_bytes_total` | counter | bytes of sources read, as stored (compressed for gzip) |
//! | `datsync_syncs_total{status}` | counter | syncs that reached a final status: `SUCCESS`, `PARTIAL_SUCCESS`, `FAILED`, `BAD_INPUT` |
//! | `datsync_syncs_in_progress` | gauge | syncs running in this process |
//! | `datsync_chunk_load_seconds` | histogram | time of each committed chunk, validation to commit |
//! | `datsync_db_retries_total` | counter | chunk loads tried again after a transient database error |
//! | `datsync_derived_failures_total` | counter | upserts of derived tables (`[[derived]]`) that failed for a chunk and were rolled back (the chunk loaded) |
//! | `datsync_hook_failures_total{hook}` | counter | post-sync hooks that failed after their retries, by hook name (each configured hook at zero from the start; no series without hooks) |
//! | `datsync_last_success_timestamp_seconds` | gauge | Unix time of the last sync that ended SUCCESS, or PARTIAL_SUCCESS with nothing left to retry (0: none yet) |
//! | `datsync_files_parked` | gauge | (`watch`, `serve`) sources parked as poison |
//! | `datsync_receipts{state}` | gauge | (`watch`, `serve`) receipts by state: `pending`, `finished`, `parked` |

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::live::Live;
use crate::model::{ChunkCounts, SyncId, SyncStatus};

/// One label and its value.
type Label = [(&'static str, &'static str); 1];
/// One label with a value from the configuration (a hook's name).
type NamedLabel = [(&'static str, String); 1];

/// Row outcomes, the values of `datsync_rows_total`'s `outcome`.
const ROW_OUTCOMES: [&str; 5] = [
    "inserted",
    "updated",
    "skipped_older",
    "superseded",
    "rejected",
];
/// Chunk outcomes, the values of `datsync_chunks_total`'s `outcome`.
const CHUNK_OUTCOMES: [&str; 3] = ["committed", "failed", "skipped_on_resume"];
/// Final statuses, the values of `datsync_syncs_total`'s `status`.
const FINAL_STATUSES: [SyncStatus; 4] = [
    SyncStatus::Success,
    SyncStatus::PartialSuccess,
    SyncStatus::Failed,
    SyncStatus::BadInput,
];
/// Receipt states, the values of `datsync_receipts`'s `state`.
pub const RECEIPT_STATES: [&str; 3] = ["pending", "finished", "parked"];

/// The metrics of one process; cheap to share (`Arc`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rows: Family<Label, Counter>,
    value_warnings: Counter,
    chunks: Family<Label, Counter>,
    source_bytes: Counter,
    syncs: Family<Label, Counter>,
    in_progress: Gauge,
    chunk_load_seconds: Histogram,
    db_retries: Counter,
    derived_failures: Counter,
    hook_failures: Family<NamedLabel, Counter>,
    last_success: Gauge<f64, AtomicU64>,
    files_parked: Gauge,
    receipts: Family<Label, Gauge>,
    /// The syncs running now and the chunks that failed lately, for the status page.
    live: Live,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Metrics {
    /// Every family of a sync, at zero; with `intake`, the receipts' families of `watch` and
    /// `serve` too.
    pub fn new(intake: bool) -> Self {
        let mut registry = Registry::default();
        let rows = Family::<Label, Counter>::default();
        for outcome in ROW_OUTCOMES {
            let _ = rows.get_or_create(&[("outcome", outcome)]);
        }
        let chunks = Family::<Label, Counter>::default();
        for outcome in CHUNK_OUTCOMES {
            let _ = chunks.get_or_create(&[("outcome", outcome)]);
        }
        let syncs = Family::<Label, Counter>::default();
        for status in FINAL_STATUSES {
            let _ = syncs.get_or_create(&[("status", status.as_str())]);
        }
        let m = Self {
            rows,
            value_warnings: Counter::default(),
            chunks,
            source_bytes: Counter::default(),
            syncs,
            in_progress: Gauge::default(),
            chunk_load_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            db_retries: Counter::default(),
            derived_failures: Counter::default(),
            hook_failures: Family::default(),
            last_success: Gauge::default(),
            files_parked: Gauge::default(),
            receipts: Family::default(),
            registry: Registry::default(),
            live: Live::default(),
        };
        let r = &mut registry;
        r.register(
            "datsync_rows",
            "Rows of committed chunks, by outcome",
            m.rows.clone(),
        );
        r.register(
            "datsync_value_warnings",
            "Values not loaded as written (NULL, midnight, rounded)",
            m.value_warnings.clone(),
        );
        r.register("datsync_chunks", "Chunks, by outcome", m.chunks.clone());
        r.register(
            "datsync_source_bytes",
            "Bytes of sources read, as stored (compressed for gzip)",
            m.source_bytes.clone(),
        );
        r.register(
            "datsync_syncs",
            "Syncs that reached a final status",
            m.syncs.clone(),
        );
        r.register(
            "datsync_syncs_in_progress",
            "Syncs running in this process",
            m.in_progress.clone(),
        );
        r.register(
            "datsync_chunk_load_seconds",
            "Time of each committed chunk, from validation to commit",
            m.chunk_load_seconds.clone(),
        );
        r.register(
            "datsync_db_retries",
            "Chunk loads tried again after a transient database error",
            m.db_retries.clone(),
        );
        r.register(
            "datsync_derived_failures",
            "Upserts of derived tables that failed for a chunk and were rolled back",
            m.derived_failures.clone(),
        );
        r.register(
            "datsync_hook_failures",
            "Post-sync hooks that failed after their retries, by hook",
            m.hook_failures.clone(),
        );
        r.register(
            "datsync_last_success_timestamp_seconds",
            "Unix time of the last sync that ended with every row loaded or rejected (0: none yet)",
            m.last_success.clone(),
        );
        if intake {
            for state in RECEIPT_STATES {
                let _ = m.receipts.get_or_create(&[("state", state)]);
            }
            r.register(
                "datsync_files_parked",
                "Sources parked as poison (their attempts are used up)",
                m.files_parked.clone(),
            );
            r.register(
                "datsync_receipts",
                "Receipts of sources, by state",
                m.receipts.clone(),
            );
        }
        Self { registry, ..m }
    }

    /// A committed chunk.
    pub(crate) fn chunk_committed(&self, c: &ChunkCounts, seconds: f64) {
        for (outcome, n) in [
            ("inserted", c.inserted),
            ("updated", c.updated),
            ("skipped_older", c.skipped_older),
            ("superseded", c.superseded),
            ("rejected", c.rejected),
        ] {
            self.rows.get_or_create(&[("outcome", outcome)]).inc_by(n);
        }
        self.value_warnings.inc_by(c.warnings);
        self.derived_failures.inc_by(c.derived_failed);
        self.chunk(CHUNK_OUTCOMES[0], 1);
        self.chunk_load_seconds.observe(seconds);
    }

    /// A configured hook: its failures are exported from the start, at zero.
    pub(crate) fn hook_configured(&self, name: &str) {
        let _ = self
            .hook_failures
            .get_or_create(&[("hook", name.to_owned())]);
    }

    /// A hook that failed after its retries.
    pub(crate) fn hook_failed(&self, name: &str) {
        self.hook_failures
            .get_or_create(&[("hook", name.to_owned())])
            .inc();
    }

    /// A chunk given up on for this run.
    pub(crate) fn chunk_failed(&self) {
        self.chunk(CHUNK_OUTCOMES[1], 1);
    }

    fn chunk(&self, outcome: &'static str, n: u64) {
        self.chunks.get_or_create(&[("outcome", outcome)]).inc_by(n);
    }

    /// Bytes of a source read.
    pub(crate) fn source_read(&self, bytes: u64) {
        self.source_bytes.inc_by(bytes);
    }

    /// A load attempt that failed transiently and is tried again.
    pub(crate) fn db_retry(&self) {
        self.db_retries.inc();
    }

    /// A sync that reached a final status: `skipped_on_resume` chunks were committed before
    /// the run, `rejected_uncommitted` rows were rejected in the chunk that stopped it.
    pub(crate) fn sync_finished(
        &self,
        status: SyncStatus,
        loaded_all: bool,
        skipped_on_resume: u64,
        rejected_uncommitted: u64,
    ) {
        self.syncs
            .get_or_create(&[("status", status.as_str())])
            .inc();
        self.chunk(CHUNK_OUTCOMES[2], skipped_on_resume);
        self.rows
            .get_or_create(&[("outcome", "rejected")])
            .inc_by(rejected_uncommitted);
        if loaded_all {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.last_success.set(now);
        }
    }

    /// A run stopped on request: its skipped chunks count, it has no status.
    pub(crate) fn sync_interrupted(&self, skipped_on_resume: u64) {
        self.chunk(CHUNK_OUTCOMES[2], skipped_on_resume);
    }

    /// A sync starts running in this process; it stops counting when the guard drops.
    pub(crate) fn running(&self, sync_id: &SyncId) -> Running<'_> {
        self.in_progress.inc();
        self.live.started(sync_id);
        Running(self, sync_id.to_string())
    }

    /// The syncs running now and the chunks that failed lately.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// The receipts by state (`watch`, `serve`), read from the database.
    pub fn set_receipts(&self, pending: u64, finished: u64, parked: u64) {
        let set = |state, n: u64| {
            self.receipts
                .get_or_create(&[("state", state)])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set("pending", pending);
        set("finished", finished);
        set("parked", parked);
        self.files_parked
            .set(i64::try_from(parked).unwrap_or(i64::MAX));
    }

    /// Syncs running in this process now.
    pub fn syncs_in_progress(&self) -> i64 {
        self.in_progress.get()
    }

    /// Every family in the Prometheus text format (version 0.0.4, what Prometheus scrapes
    /// and node_exporter's textfile collector reads).
    pub fn encode(&self) -> String {
        let mut open = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut open, &self.registry);
        to_prometheus_text(&open)
    }
}

/// Counts a running sync until dropped.
pub(crate) struct Running<'a>(&'a Metrics, String);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.in_progress.dec();
        self.0.live.ended(&self.1);
    }
}

/// The OpenMetrics text `prometheus-client` writes, as the Prometheus text format: a
/// counter family is named with its `_total` (as its samples are), `# UNIT` and `# EOF` go.
fn to_prometheus_text(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    let mut help: Option<&str> = None;
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            help = Some(line);
            continue;
        }
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            let counter = typed.strip_suffix(" counter");
            if let Some(h) = help.take() {
                match counter {
                    Some(name) => {
                        let text = h.strip_prefix("# HELP ").and_then(|r| r.strip_prefix(name));
                        let _ = writeln!(out, "# HELP {name}_total{}", text.unwrap_or(""));
                    }
                    None => {
                        let _ = writeln!(out, "{h}");
                    }
                }
            }
            match counter {
                Some(name) => {
                    let _ = writeln!(out, "# TYPE {name}_total counter");
                }
                None => {
                    let _ = writeln!(out, "{line}");
                }
            }
            continue;
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name` (with its labels as written) in `text`.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_family_is_exported_at_zero_in_the_prometheus_format() {
        let text = Metrics::new(true).encode();
        for name in [
            "datsync_rows_total{outcome=\"inserted\"}",
            "datsync_rows_total{outcome=\"rejected\"}",
            "datsync_value_warnings_total",
            "datsync_chunks_total{outcome=\"skipped_on_resume\"}",
            "datsync_source_bytes_total",
            "datsync_syncs_total{status=\"BAD_INPUT\"}",
            "datsync_syncs_in_progress",
            "datsync_chunk_load_seconds_count",
            "datsync_db_retries_total",
            "datsync_derived_failures_total",
            "datsync_last_success_timestamp_seconds",
            "datsync_files_parked",
            "datsync_receipts{state=\"parked\"}",
        ] {
            assert_eq!(sample(&text, name), Some(0.0), "{name} in\n{text}");
        }
        assert!(
            text.contains("# TYPE datsync_rows_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP datsync_rows_total Rows"), "{text}");
        assert!(
            text.contains("# TYPE datsync_chunk_load_seconds histogram\n"),
            "{text}"
        );
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        assert!(!Metrics::new(false).encode().contains("datsync_receipts"));
        // No hook configured: no series (each configured hook gets one at zero).
        assert!(!text.contains("datsync_hook_failures_total{"), "{text}");
    }

    #[test]
    fn events_count_into_their_families() {
        let m = Metrics::new(false);
        let c = ChunkCounts {
            rows: 10,
            inserted: 6,
            updated: 1,
            skipped_older: 1,
            superseded: 1,
            rejected: 1,
            warnings: 3,
            derived_failed: 1,
        };
        m.chunk_committed(&c, 0.2);
        m.chunk_committed(&c, 0.3);
        m.chunk_failed();
        {
            let id = SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap();
            let _running = m.running(&id);
            assert_eq!(m.syncs_in_progress(), 1);
            assert_eq!(m.live().running().len(), 1);
        }
        assert!(m.live().running().is_empty());
        m.sync_finished(SyncStatus::PartialSuccess, true, 2, 5);
        m.hook_configured("warm");
        m.hook_configured("pager");
        m.hook_failed("pager");
        m.hook_failed("pager");
        let text = m.encode();
        assert_eq!(
            sample(&text, "datsync_hook_failures_total{hook=\"warm\"}"),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "datsync_hook_failures_total{hook=\"pager\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "datsync_rows_total{outcome=\"inserted\"}"),
            Some(12.0)
        );
        assert_eq!(
            sample(&text, "datsync_rows_total{outcome=\"rejected\"}"),
            Some(7.0)
        );
        assert_eq!(sample(&text, "datsync_value_warnings_total"), Some(6.0));
        assert_eq!(
            sample(&text, "datsync_chunks_total{outcome=\"committed\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "datsync_chunks_total{outcome=\"failed\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "datsync_chunks_total{outcome=\"skipped_on_resume\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "datsync_syncs_total{status=\"PARTIAL_SUCCESS\"}"),
            Some(1.0)
        );
        assert_eq!(sample(&text, "datsync_syncs_in_progress"), Some(0.0));
        assert_eq!(sample(&text, "datsync_chunk_load_seconds_count"), Some(2.0));
        assert!(sample(&text, "datsync_last_success_timestamp_seconds").unwrap() > 1e9);
    }
}
