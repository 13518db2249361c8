//! datsync: resumable, exactly-once loading of large delimited SAP extract files into
//! PostgreSQL.
//!
//! Modules, in the order data flows:
//!
//! - [`model`]: shared vocabulary (sync ids, chunk ids, fingerprints, statuses).
//! - [`profile`]: the column profile (names, aliases, types, rules, key) from TOML.
//! - [`source`]: opening a source and streaming its bytes, with a fingerprint.
//! - [`parse`]: the push decoder, bytes → Arrow batches of text columns with line numbers.
//! - [`store`]: the one wrapper around `object_store`: where checkpoints live, atomic writes.
//! - [`checkpoint`]: the checkpoint manager: Parquet chunks and `manifest.json`, crash-proof.
//! - [`sample`]: a generator of realistic ZTDWR files for demos, tests and benchmarks.
//! - [`inspect`]: a report of what a file holds, as the decoder sees it.
//!
//! ```text
//! source ──bytes──> parse ──RecordBatch(text, _line)──> checkpoint ──> validate ──> transform ──> load
//! ```

pub mod checkpoint;
pub mod inspect;
pub mod model;
pub mod parse;
pub mod profile;
pub mod sample;
pub mod source;
pub mod store;
