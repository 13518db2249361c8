//! Chunks *apart*: a chunk that shares no key with any committed chunk of its sync, whose
//! upsert therefore needs no look-up of who stored the rows it updates.
//!
//! The upsert counts a row that replaces a stored row of its own sync (another chunk of the
//! file had the key) as superseded, not updated (`load/mod.rs`, "Counts"). It finds those
//! rows with its `replaced` sub-statement: one probe of the key's index per updated row —
//! 10,000 a chunk when a file is loaded again, ~10% of the upsert's time (`auto_explain`), on
//! the backend that is such a run's critical path. A chunk apart meets no stored row of its
//! sync, so its `replaced` is 0 without looking (`sql.rs`, `upsert_unique_in_order_apart`).
//!
//! How a loader knows, in memory that grows by two keys a chunk rather than with the keys
//! (and stops growing at [`MAX_NOTES`] chunks or [`MAX_NOTED_BYTES`]):
//!
//! - Each chunk's key range (its least and greatest key) is noted in this process when its
//!   transaction has looked its keys up (`direct.rs`), where the look-up also says whether the
//!   table's key compares as the keys sent do ([`KeyRange`]).
//! - A chunk is a candidate when its range overlaps none of the ranges noted before it; the
//!   chunks noted before are kept with the verdict.
//! - It is apart when, read in its transaction under the sync's upsert lock (no chunk of the
//!   sync commits in between; the upsert's snapshot is taken after), the ledger holds no chunk
//!   of the sync but those, each with the checksum noted (a chunk of the same id committed by
//!   another process from other rows is not the one noted).
//!
//! Why that is enough: every row of the table with the sync's `sync_seq` was written by a
//! committed chunk of the sync, under the sync's upsert lock, with its ledger row in the same
//! transaction; so, when the chunk is apart, by one of the chunks noted before it. A key in
//! both chunks would lie in both ranges, which do not overlap. A chunk noted after it, or
//! loaded by another process (the run a resume continues, a worker), is in no list of this
//! one's: once it has committed, the chunk is not apart (and since another process's chunks
//! are in no list here, none of the sync's is apart in this process from then on). A note is
//! never taken back: a chunk rolled back and retried overlaps its own first note and is
//! upserted with the look-up.
//!
//! Keys ascend through an SAP extract, so the ranges of its chunks do not overlap, and a file
//! loaded again (`run --fresh`, a corrected extract) upserts every chunk apart: in `datsync
//! bench`, its `--fresh` ratio 0.83–0.96 × the build before's, alternating (README, stop 40). A
//! file in another order is upserted with the look-up, as before. Only the process that loads
//! a sync's chunks one after another gains (`run`, and a resume from its first chunk on):
//! chunks another process committed (the run a resume continues, the other workers of the
//! work queue, which also build a loader per chunk) keep every later chunk from being apart.
//! So does a committed chunk that was never noted: one of no rows, or with a key twice (not
//! looked up).

use std::sync::{Arc, Mutex};

/// The most chunks noted per sync (a 40 GB file of 10,000-row chunks), and the most bytes
/// their notes may hold (keys are as long as a hostile file makes them): a chunk past either
/// is not noted, so that once it commits no later chunk is apart. Each candidate sends the
/// chunks noted before it to the ledger query, so the count also bounds that query.
const MAX_NOTES: usize = 4096;
const MAX_NOTED_BYTES: usize = 4 << 20;

/// A chunk's least and greatest key as bytes that order as the keys do: a text key's own
/// bytes, an integer key's value as a big-endian number with its sign bit flipped.
///
/// Only built where the table's key is one key exactly when these bytes are the same:
/// `direct.rs` (the look-up's last answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyRange {
    least: Vec<u8>,
    greatest: Vec<u8>,
}

impl KeyRange {
    /// The range of keys sorted by their bytes; `None` for no key.
    pub(super) fn texts(sorted: &[&str]) -> Option<Self> {
        Some(Self {
            least: sorted.first()?.as_bytes().to_vec(),
            greatest: sorted.last()?.as_bytes().to_vec(),
        })
    }

    /// The range of keys sorted by value; `None` for no key.
    pub(super) fn integers(sorted: &[i64]) -> Option<Self> {
        // Flipping the sign bit maps i64's order onto u64's, and big-endian bytes keep it.
        let bytes = |v: i64| (v.cast_unsigned() ^ (1 << 63)).to_be_bytes().to_vec();
        Some(Self {
            least: bytes(*sorted.first()?),
            greatest: bytes(*sorted.last()?),
        })
    }

    fn overlaps(&self, other: &Self) -> bool {
        self.least <= other.greatest && other.least <= self.greatest
    }
}

/// The key ranges this process noted for one sync (shared by the clones of a loader, so by
/// every job of a run).
#[derive(Debug, Clone, Default)]
pub(super) struct Notes(Arc<Mutex<Noted>>);

#[derive(Debug, Default)]
struct Noted {
    sync_id: String,
    ranges: Vec<(Chunk, KeyRange)>,
    /// The bytes of `ranges`' keys and checksums.
    bytes: usize,
}

/// A chunk as the ledger records it: its id and its checksum (a chunk of the same id loaded
/// by another process from other rows — another profile — is another chunk).
type Chunk = (i32, String);

/// The chunks noted before a candidate, as the ledger query's parameters: the chunk ids and
/// their checksums, in the same order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Before {
    pub chunks: Vec<i32>,
    pub checksums: Vec<String>,
}

impl Notes {
    /// Notes chunk `chunk` (recorded with `checksum`)'s key range for sync `sync_id`
    /// (forgetting another sync's notes). Returns the chunks noted before it when its range
    /// overlaps none of theirs: it is apart if the ledger holds no other chunk of the sync
    /// (the module docs).
    pub(super) fn note(&self, sync_id: &str, chunk: Chunk, range: KeyRange) -> Option<Before> {
        // A lock poisoned by a panicking job: no chunk is apart from then on.
        let mut noted = self.0.lock().ok()?;
        if noted.sync_id != sync_id {
            *noted = Noted {
                sync_id: sync_id.to_owned(),
                ..Noted::default()
            };
        }
        let candidate = !noted.ranges.iter().any(|(_, r)| r.overlaps(&range));
        let before = candidate.then(|| Before {
            chunks: noted.ranges.iter().map(|((c, _), _)| *c).collect(),
            checksums: noted.ranges.iter().map(|((_, s), _)| s.clone()).collect(),
        });
        let bytes = noted.bytes + chunk.1.len() + range.least.len() + range.greatest.len();
        if noted.ranges.len() < MAX_NOTES && bytes <= MAX_NOTED_BYTES {
            noted.ranges.push((chunk, range));
            noted.bytes = bytes;
        }
        before
    }
}

#[cfg(test)]
mod tests {
    use super::{Before, KeyRange, Notes};

    fn texts(keys: &[&str]) -> KeyRange {
        KeyRange::texts(keys).expect("keys")
    }

    /// Notes chunk `chunk` of sync `sync` (checksum `sha`) with the range of `keys`.
    fn note(notes: &Notes, sync: &str, chunk: i32, keys: &[&str]) -> Option<Before> {
        notes.note(sync, (chunk, "sha".to_owned()), texts(keys))
    }

    fn before(chunks: &[i32]) -> Before {
        Before {
            chunks: chunks.to_vec(),
            checksums: vec!["sha".to_owned(); chunks.len()],
        }
    }

    #[test]
    fn a_chunk_is_a_candidate_only_when_its_range_meets_no_range_noted_before() {
        let notes = Notes::default();
        assert_eq!(note(&notes, "s", 0, &["100", "199"]), Some(before(&[])));
        assert_eq!(note(&notes, "s", 1, &["200", "299"]), Some(before(&[0])));
        // Sharing a bound is overlapping.
        assert_eq!(note(&notes, "s", 2, &["299", "300"]), None);
        // Inside and around another chunk's range.
        assert_eq!(note(&notes, "s", 3, &["150", "160"]), None);
        assert_eq!(note(&notes, "s", 4, &["050", "500"]), None);
        // Chunk 4 was noted though it was not a candidate: its range counts.
        assert_eq!(note(&notes, "s", 5, &["400", "450"]), None);
        assert_eq!(
            note(&notes, "s", 6, &["600", "700"]),
            Some(before(&[0, 1, 2, 3, 4, 5]))
        );
        // A retried chunk meets its own first note.
        assert_eq!(note(&notes, "s", 6, &["600", "700"]), None);
    }

    #[test]
    fn a_range_past_the_byte_budget_is_not_noted() {
        let notes = Notes::default();
        let huge = "k".repeat(super::MAX_NOTED_BYTES);
        assert_eq!(note(&notes, "s", 0, &["a", "b"]), Some(before(&[])));
        // A candidate, but too large to keep: the next chunk's list does not have it.
        assert_eq!(note(&notes, "s", 1, &[&huge]), Some(before(&[0])));
        assert_eq!(note(&notes, "s", 2, &["x", "y"]), Some(before(&[0])));
    }

    #[test]
    fn another_sync_starts_from_no_notes() {
        let notes = Notes::default();
        assert_eq!(note(&notes, "a", 0, &["1", "2"]), Some(before(&[])));
        assert_eq!(note(&notes, "b", 7, &["1", "2"]), Some(before(&[])));
        assert_eq!(note(&notes, "a", 1, &["1", "2"]), Some(before(&[])));
        // Clones share the notes (the jobs of one run).
        assert_eq!(note(&notes.clone(), "a", 2, &["1", "2"]), None);
    }

    #[test]
    fn integer_ranges_order_by_value_across_zero() {
        let int = |a: i64, b: i64| KeyRange::integers(&[a, b]).expect("keys");
        assert!(int(-5, -1).overlaps(&int(-3, 10)));
        assert!(!int(-5, -1).overlaps(&int(0, 10)));
        assert!(!int(i64::MIN, -1).overlaps(&int(0, i64::MAX)));
        assert!(int(i64::MIN, i64::MAX).overlaps(&int(7, 7)));
        // By value, not by decimal text: 9 < 10.
        assert!(!int(1, 9).overlaps(&int(10, 99)));
        assert_eq!(KeyRange::integers(&[]), None);
        assert_eq!(KeyRange::texts(&[]), None);
    }
}
