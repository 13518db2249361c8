//! datsync: resumable, exactly-once loading of large delimited SAP extract files into
//! PostgreSQL.
//!
//! Modules, in the order data flows:
//!
//! - [`model`]: shared vocabulary (sync ids, chunk ids, fingerprints, statuses).
//! - [`config`]: pipeline settings from flags, environment (legacy names too), `datsync.toml`.
//! - [`profile`]: the column profile (names, aliases, types, rules, key) from TOML.
//! - [`azure`]: Azure Storage accounts and container clients, for sources and checkpoints.
//! - [`source`]: everything read from a source (files and blobs): opening, streaming with a
//!   fingerprint, listing, versions.
//! - [`parse`]: the push decoder, bytes → Arrow batches of text columns with line numbers.
//! - [`store`]: where checkpoint objects live (local, memory, Azure), atomic writes.
//! - [`checkpoint`]: the checkpoint manager: Parquet chunks and `manifest.json`, crash-proof.
//! - [`value`]: parsers of single text values (exact decimals, integers, booleans, dates, times).
//! - [`validate`]: profile rules over a text batch → accepted rows, rejects, superseded duplicates.
//! - [`transform`]: accepted text batch → typed batch for the target table.
//! - [`pg`]: PostgreSQL connection, SQLSTATE classification, migrations (`init-db`).
//! - [`load`]: one chunk per transaction: binary COPY to staging, newest-wins upsert, ledger row.
//! - [`status`]: `sync_metadata` rows, ledger totals, materialized view refresh.
//! - [`pipeline`]: run, resume, retries and the final status: the only module that knows every stage.
//! - [`intake`]: what `watch` does with the sources it lists: receipts, retries with the same
//!   sync id, poison parking.
//! - [`alert`]: email (SMTP) and webhook alerts when a sync ends FAILED, BAD_INPUT or
//!   PARTIAL_SUCCESS.
//! - [`telemetry`]: named events, logged and counted in one place; crash injection for tests.
//! - [`sample`]: a generator of realistic ZTDWR files for demos, tests and benchmarks.
//! - [`inspect`]: a report of what a file holds, as the decoder sees it.
//! - [`pgtemp`]: a private throwaway PostgreSQL server for `datsync demo`.
//!
//! ```text
//! source ──bytes──> parse ──RecordBatch(text, _line)──> checkpoint ──> validate ──> transform ──> load
//! ```
//!
//! Decoding a ZTDWR extract into text batches, however the bytes arrive:
//!
//! ```
//! use datsync::parse::{Decoder, ParseOptions};
//! use datsync::profile::Profile;
//!
//! let file = "^SPB ID~|^nopol~|^nik_supir~\n^0001~|^B 1234 XYZ~|^0012345678901234~\n";
//! let mut decoder = Decoder::new(&Profile::ztdwr(), ParseOptions::default());
//! for piece in file.as_bytes().chunks(7) {
//!     let mut pos = 0;
//!     while pos < piece.len() {
//!         pos += decoder.decode(&piece[pos..])?;
//!     }
//! }
//! let batch = decoder.flush()?.expect("one batch");
//! assert_eq!(batch.num_rows(), 1);
//! assert!(batch.schema().field_with_name("surat_pengantar_brg").is_ok());
//! # Ok::<(), datsync::parse::ParseError>(())
//! ```

pub mod alert;
pub mod azure;
pub mod azurite;
pub mod checkpoint;
pub mod config;
pub mod inspect;
pub mod intake;
pub mod load;
pub mod model;
pub mod parse;
pub mod pg;
pub mod pgtemp;
pub mod pipeline;
pub mod profile;
pub mod sample;
pub mod serve;
pub mod source;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod transform;
pub mod validate;
pub mod value;
