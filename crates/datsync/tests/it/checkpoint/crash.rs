//! Crash injection: a whole sync is run with the store dying at its Nth write, for every N
//! and both sides of the write; a restarted process must find the state before or after
//! the interrupted operation (never a torn one) and finish the sync to the same end.

use std::sync::Arc;

use datsync::{
    CheckpointError, CheckpointOptions, CheckpointStatus, ChunkCompression, ChunkId, CrashPoint,
    FaultPlan, Manifest, ManualClock, Store,
};

use super::{Backend, Source, clock, manager_with, outcome, sync_id};

const OPTIONS: CheckpointOptions = CheckpointOptions {
    compression: ChunkCompression::Snappy,
    // Small, so that compactions (and crashes inside them) happen during the scenario.
    compact_every: 2,
    // Off: a done chunk's file is removed by a task of its own, whose write would take the
    // injected crash at a point the scenario does not choose.
    remove_done_files: false,
};

/// The state a process can observe: the manifest after the journal, if any. The journal
/// position is left out: it depends on whether an interrupted compaction reached the disk.
type Snapshot = Option<Manifest>;

fn snapshot(m: Option<&Manifest>) -> Snapshot {
    m.cloned().map(|mut m| {
        m.journal_seq = 0;
        m
    })
}

/// Runs (or resumes) the sync, pushing the state after every operation that succeeded.
/// Chunk 1 fails on its first attempt, as a database timeout would.
async fn drive(
    store: &Store,
    source: &Source,
    clock: &Arc<ManualClock>,
    states: &mut Vec<Snapshot>,
) -> Result<(), CheckpointError> {
    let mut m = manager_with(store, &sync_id(1), clock, OPTIONS);
    if !m.checkpoint_exists().await? {
        m.create_checkpoint(source.new_checkpoint(100)).await?;
        states.push(snapshot(m.manifest()));
    }
    if m.manifest().map(|m| m.phase) == Some(CheckpointStatus::Converting) {
        for (i, batch) in source.batches.iter().enumerate() {
            m.save_chunk_parquet(ChunkId(i as u32), batch).await?;
            states.push(snapshot(m.manifest()));
        }
        m.finalize_conversion(source.final_fingerprint()).await?;
        states.push(snapshot(m.manifest()));
    }
    loop {
        let pending = m.get_pending_chunks().await?;
        if pending.is_empty() {
            return Ok(());
        }
        for id in pending {
            let attempts = m
                .manifest()
                .and_then(|m| m.chunk(id))
                .map_or(0, |c| c.attempts);
            m.mark_chunk_processing(id).await?;
            states.push(snapshot(m.manifest()));
            let batch = m.load_chunk(id).await?;
            assert_eq!(batch, source.batches[id.0 as usize]);
            if id == ChunkId(1) && attempts == 0 {
                m.mark_chunk_failed(id, "connection timeout").await?;
            } else {
                m.mark_chunk_complete(id, outcome(id.0, batch.num_rows() as u64))
                    .await?;
            }
            states.push(snapshot(m.manifest()));
        }
    }
}

/// The end state with what depends on the path taken (attempts, past errors) left out.
fn end_state(m: &Manifest) -> Manifest {
    let mut m = snapshot(Some(m)).unwrap();
    for c in &mut m.chunks {
        c.attempts = 0;
        c.error = None;
        c.failed_at = None;
    }
    m
}

async fn reopen(store: &Store, clock: &Arc<ManualClock>) -> Snapshot {
    let mut m = manager_with(store, &sync_id(1), clock, OPTIONS);
    let exists = m
        .checkpoint_exists()
        .await
        .unwrap_or_else(|e| panic!("a restarted process cannot read the checkpoint: {e}"));
    if exists { snapshot(m.manifest()) } else { None }
}

async fn crash_every_write(backend_of: impl Fn() -> Backend) {
    let source = Source::generate(300, 100);
    let clock = clock();
    // The run without a crash: its states, its end, and how many writes it makes.
    let backend = backend_of();
    let counter = Arc::new(FaultPlan::counting());
    let mut expected = vec![None];
    drive(
        &backend.open().with_faults(counter.clone()),
        &source,
        &clock,
        &mut expected,
    )
    .await
    .unwrap();
    let writes = counter.writes();
    let end = end_state(expected.last().unwrap().as_ref().unwrap());
    assert_eq!(end.status, CheckpointStatus::Completed);
    assert!(writes > 20, "{writes}");
    for nth in 1..=writes {
        for point in [CrashPoint::Before, CrashPoint::After] {
            let backend = backend_of();
            let store = backend.open();
            let plan = Arc::new(FaultPlan::crash_at(nth, point));
            let mut seen = vec![None];
            // The run stops at the crash (or, when the crash hits a clean-up of old journal
            // objects after the last operation, just ends).
            let _ = drive(&store.with_faults(plan.clone()), &source, &clock, &mut seen).await;
            assert!(plan.crashed(), "write {nth} {point:?}: no crash");
            // Previous or next state, never anything else.
            let done = seen.len();
            let state = reopen(&store, &clock).await;
            assert!(
                state == expected[done - 1] || expected.get(done) == Some(&state),
                "write {nth} {point:?}: after {done} operations the state is neither the \
                 previous nor the next: {state:#?}"
            );
            // A resumed run ends where the uninterrupted one did.
            drive(&store, &source, &clock, &mut Vec::new())
                .await
                .unwrap_or_else(|e| panic!("write {nth} {point:?}: resume failed: {e}"));
            let mut m = manager_with(&store, &sync_id(1), &clock, OPTIONS);
            assert!(m.checkpoint_exists().await.unwrap());
            assert_eq!(
                end_state(m.manifest().unwrap()),
                end,
                "write {nth} {point:?}"
            );
            for id in 0..3 {
                assert_eq!(
                    m.load_chunk(ChunkId(id)).await.unwrap(),
                    source.batches[id as usize]
                );
            }
            // And the store is clean once it is cleaned up (temp files of the crash too).
            m.cleanup().await.unwrap();
            assert!(store.list_syncs().await.unwrap().is_empty());
            if let Backend::Local(dir) = &backend {
                assert_eq!(
                    std::fs::read_dir(dir.path()).unwrap().count(),
                    0,
                    "write {nth}"
                );
            }
        }
    }
}

#[tokio::test]
async fn memory_survives_a_crash_at_every_write() {
    crash_every_write(|| Backend::Memory).await;
}

#[tokio::test]
async fn local_directory_survives_a_crash_at_every_write() {
    crash_every_write(|| Backend::Local(tempfile::tempdir().unwrap())).await;
}

#[tokio::test]
async fn a_crash_during_cleanup_leaves_the_checkpoint_or_nothing() {
    let source = Source::generate(300, 100);
    let clock = clock();
    for local in [false, true] {
        for nth in 1.. {
            let backend = if local {
                Backend::Local(tempfile::tempdir().unwrap())
            } else {
                Backend::Memory
            };
            let store = backend.open();
            let mut states = vec![None];
            drive(&store, &source, &clock, &mut states).await.unwrap();
            let completed = states.last().cloned().unwrap();
            let plan = Arc::new(FaultPlan::crash_at(nth, CrashPoint::Before));
            let mut m = manager_with(
                &store.with_faults(plan.clone()),
                &sync_id(1),
                &clock,
                OPTIONS,
            );
            let result = m.cleanup().await;
            if !plan.crashed() {
                result.unwrap();
                assert!(nth > 3, "cleanup took {} writes", nth - 1);
                break;
            }
            let state = reopen(&store, &clock).await;
            assert!(
                state.is_none() || state == completed,
                "cleanup write {nth}: {state:#?}"
            );
            let mut m = manager_with(&store, &sync_id(1), &clock, OPTIONS);
            if state.is_some() {
                // Completed: nothing left to load, so no missing chunk is ever read.
                assert!(m.get_pending_chunks().await.unwrap().is_empty());
            }
            m.cleanup().await.unwrap();
            assert_eq!(reopen(&store, &clock).await, None);
            assert!(store.list_syncs().await.unwrap().is_empty());
        }
    }
}
