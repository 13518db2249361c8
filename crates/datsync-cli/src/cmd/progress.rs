//! The progress bar on a terminal (indicatif): bytes of the source read (as stored, so
//! compressed bytes for gzip), rows loaded per second, chunks loaded, and the time left.
//!
//! Log lines never tear it: the log writer ([`suspend`]) hides the bar, writes its line, and
//! draws the bar again.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use datsync::{ChunkDone, ChunkId, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The bars on screen, for the log writer.
static ON_SCREEN: OnceLock<MultiProgress> = OnceLock::new();

/// Runs `write` with the bars hidden, when there are any.
pub fn suspend<R>(write: impl FnOnce() -> R) -> R {
    match ON_SCREEN.get() {
        Some(multi) => multi.suspend(write),
        None => write(),
    }
}

/// One bar: the source read, with rows/s, chunks and ETA in its message.
pub struct Bars {
    read: ProgressBar,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    rows: u64,
    done: u64,
    total: Option<u64>,
}

impl Bars {
    pub fn new() -> Self {
        let multi = ON_SCREEN.get_or_init(MultiProgress::new);
        let read = multi.add(ProgressBar::new(0));
        read.set_style(
            ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} read  {msg}  ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        read.enable_steady_tick(Duration::from_millis(500));
        Self {
            read,
            state: Mutex::new(State::default()),
        }
    }

    fn redraw(&self, state: &State, rows_per_s: u64) {
        let chunks = match state.total {
            Some(total) => format!("{}/{total} chunks", state.done),
            None => format!("{} chunks", state.done),
        };
        self.read
            .set_message(format!("{rows_per_s} rows/s  {chunks}"));
    }
}

impl Progress for Bars {
    fn source_size(&self, bytes: u64) {
        self.read.set_length(bytes);
    }

    fn converted(&self, _chunk: ChunkId, _rows: u64, source_bytes: u64) {
        if source_bytes > self.read.position() {
            self.read.set_position(source_bytes);
        }
    }

    fn chunk_done(&self, done: &ChunkDone) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.rows += done.counts.rows;
        state.done = done.done;
        let secs = done.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            (state.rows as f64 / secs).round() as u64
        } else {
            0
        };
        if let Some(bytes) = done.source_bytes.filter(|b| *b > self.read.position()) {
            self.read.set_position(bytes);
        }
        self.redraw(&state, rate);
    }

    fn total_chunks(&self, chunks: u64) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.total = Some(chunks);
    }

    fn finish(&self) {
        self.read.finish_and_clear();
    }
}
