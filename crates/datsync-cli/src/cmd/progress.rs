//! Progress bars on a terminal (indicatif): the source read, and the chunks loaded.

use datsync::{ChunkId, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Two bars: bytes of the source converted, chunks loaded.
pub struct Bars {
    convert: ProgressBar,
    load: ProgressBar,
}

impl Bars {
    pub fn new() -> Self {
        let multi = MultiProgress::new();
        let convert = multi.add(ProgressBar::new(0));
        convert.set_style(
            ProgressStyle::with_template("convert {bar:30} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let load = multi.add(ProgressBar::new(0));
        load.set_style(
            ProgressStyle::with_template("load    {bar:30} {pos}/{len} chunks {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { convert, load }
    }
}

impl Progress for Bars {
    fn source_size(&self, bytes: u64) {
        self.convert.set_length(bytes);
    }

    fn converted(&self, chunk: ChunkId, _rows: u64, source_bytes: u64) {
        self.convert.set_position(source_bytes);
        self.convert.set_message(format!("chunk {chunk}"));
        if self.load.length().unwrap_or(0) <= u64::from(chunk.0) {
            self.load.set_length(u64::from(chunk.0) + 1);
        }
    }

    fn chunk_done(&self, _chunk: ChunkId, done: u64) {
        self.load.set_position(done);
    }

    fn total_chunks(&self, chunks: u64) {
        self.load.set_length(chunks);
    }

    fn finish(&self) {
        self.convert.finish_and_clear();
        self.load.finish_and_clear();
    }
}
