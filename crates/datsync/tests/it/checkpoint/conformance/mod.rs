//! One set of checkpoint scenarios, run against every store backend. A new backend (the
//! Azure emulator, the S3 emulator) joins by adding one test that calls [`run_all`].

mod integrity;
mod lifecycle;
mod rules;

use datsync::Store;

/// Every scenario, each on its own sync in `store`.
pub async fn run_all(store: Store) {
    lifecycle::full_run_then_cleanup(&store).await;
    lifecycle::resume_after_failed_chunks(&store).await;
    lifecycle::journal_is_replayed_and_compacted(&store).await;
    lifecycle::done_chunk_files_go_as_their_chunks_are_done(&store).await;
    integrity::unreadable_manifests_are_errors_with_a_way_out(&store).await;
    integrity::missing_and_corrupt_chunks_are_named(&store).await;
    integrity::an_unrecorded_chunk_file_is_reused_or_rewritten(&store).await;
    integrity::source_changes_are_detected(&store).await;
    rules::wrong_transitions_and_states_are_refused(&store).await;
    rules::a_failed_sync_resumes_in_its_phase(&store).await;
    rules::chunk_names_grow_past_four_digits(&store).await;
    rules::retention_removes_old_checkpoints_but_not_running_ones(&store).await;
}

#[tokio::test]
async fn memory() {
    run_all(Store::open("memory://").unwrap()).await;
}

#[tokio::test]
async fn local_directory() {
    let dir = tempfile::tempdir().unwrap();
    run_all(Store::open(dir.path().to_str().unwrap()).unwrap()).await;
    // Every scenario cleaned up after itself, leftover temp files included.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The same scenarios on Azure Blob Storage (the Azurite emulator, on loopback), under a
/// prefix of a container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_blob_storage() {
    let azurite = datsync::Azurite::start().unwrap();
    let account = azurite.account();
    account.create_container("checkpoints").await.unwrap();
    // Creating it again is fine.
    account.create_container("checkpoints").await.unwrap();
    let store = Store::open_with("az://checkpoints/datsync", &account).unwrap();
    run_all(store).await;
    // Every scenario cleaned up after itself.
    let left = datsync::list_blobs("az://checkpoints/", &account)
        .await
        .unwrap();
    let names: Vec<_> = left.iter().map(|(b, _)| b.url()).collect();
    assert!(names.is_empty(), "{names:?}");
}

/// The same scenarios on S3 (moto's server, on loopback), under a prefix of a bucket. The
/// store needs whole-object PUT, GET, HEAD, DELETE and listings (with and without a
/// delimiter) — no conditional writes — and moto has them all: a missing one fails a
/// scenario here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_s3() {
    let moto = datsync::Moto::start().unwrap();
    moto.create_bucket("checkpoints").await.unwrap();
    let settings = moto.s3_settings();
    let store = Store::open_in("s3://checkpoints/datsync", &settings).unwrap();
    assert_eq!(store.location().to_string(), "s3://checkpoints/datsync/");
    run_all(store).await;
    // Every scenario cleaned up after itself.
    let left = datsync::list_objects("s3://checkpoints/", &settings)
        .await
        .unwrap();
    let names: Vec<_> = left.iter().map(|(b, _)| b.url()).collect();
    assert!(names.is_empty(), "{names:?}");
}
