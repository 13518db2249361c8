use super::*;
use crate::model::ChunkId;

fn sync() -> SyncId {
    SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap()
}

#[tokio::test]
async fn local_store_writes_reads_lists_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("ck").to_str().unwrap()).unwrap();
    let key = ObjectKey::manifest(&sync());
    assert_eq!(store.get(&key).await.unwrap(), None);
    store.put(&key, Bytes::from_static(b"{}")).await.unwrap();
    store
        .put(&key, Bytes::from_static(b"{\"a\":1}"))
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap().unwrap(), &b"{\"a\":1}"[..]);
    assert!(dir.path().join("ck").join(key.as_str()).is_file());
    let chunk = ObjectKey::chunk(&sync(), ChunkId(3));
    store.put(&chunk, Bytes::from_static(b"x")).await.unwrap();
    std::fs::create_dir_all(dir.path().join("ck/not_a_sync")).unwrap();
    assert_eq!(store.list_syncs().await.unwrap(), vec![sync()]);
    let kinds: Vec<_> = store
        .list_sync(&sync())
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![ObjectKind::Chunk(ChunkId(3)), ObjectKind::Manifest]
    );
    store.delete(&chunk).await.unwrap();
    store.delete(&chunk).await.unwrap();
    store.delete_sync(&sync()).await.unwrap();
    assert!(!dir.path().join("ck").join(sync().as_str()).exists());
    assert!(dir.path().join("ck").is_dir());
}

#[tokio::test]
async fn a_crash_before_a_write_leaves_only_an_invisible_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    let key = ObjectKey::manifest(&sync());
    store.put(&key, Bytes::from_static(b"old")).await.unwrap();
    let plan = Arc::new(FaultPlan::crash_at(1, CrashPoint::Before));
    let faulty = store.with_faults(plan.clone());
    let err = faulty
        .put(&key, Bytes::from_static(b"newnew"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Injected { .. }), "{err}");
    assert!(plan.crashed());
    assert!(
        faulty.get(&key).await.is_err(),
        "a dead process reads nothing"
    );
    assert_eq!(store.get(&key).await.unwrap().unwrap(), &b"old"[..]);
    let listed = store.list_sync(&sync()).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    store.delete_sync(&sync()).await.unwrap();
    assert!(!dir.path().join(sync().as_str()).exists());
}

#[tokio::test]
async fn a_crash_after_a_write_keeps_the_write() {
    let store = Store::memory();
    let key = ObjectKey::journal(&sync(), 1);
    let faulty = store.with_faults(Arc::new(FaultPlan::crash_at(2, CrashPoint::After)));
    faulty.put(&key, Bytes::from_static(b"1")).await.unwrap();
    assert!(faulty.put(&key, Bytes::from_static(b"2")).await.is_err());
    assert!(faulty.put(&key, Bytes::from_static(b"3")).await.is_err());
    assert_eq!(store.get(&key).await.unwrap().unwrap(), &b"2"[..]);
}

#[test]
fn cloud_locations_open_and_name_their_objects() {
    let account = super::AzureAccount::emulator("http://127.0.0.1:1/devstoreaccount1");
    let store = Store::open_with("az://checkpoints/datsync/", &account).unwrap();
    assert_eq!(store.location().to_string(), "az://checkpoints/datsync/");
    let key =
        ObjectKey::manifest(&crate::model::SyncId::parse("sync_20260101_000000_00000001").unwrap());
    assert_eq!(
        store.describe(&key),
        "az://checkpoints/datsync/sync_20260101_000000_00000001/manifest.json"
    );
    let vars = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    let s3 = CloudSettings::from_vars(
        Cloud::S3,
        vars(&[
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ]),
    );
    for (location, object) in [
        (
            "s3://bucket/ckpt",
            "s3://bucket/ckpt/sync_20260101_000000_00000001/manifest.json",
        ),
        (
            "s3://bucket",
            "s3://bucket/sync_20260101_000000_00000001/manifest.json",
        ),
    ] {
        let store = Store::open_in(location, &s3).unwrap();
        assert_eq!(store.describe(&key), object);
        // Reopened by another process from what it says it is.
        let again = store.reopenable_location().unwrap();
        assert_eq!(StoreLocation::parse(&again).unwrap(), *store.location());
    }
    // Settings that cannot work name the variable, and the location.
    let half = CloudSettings::from_vars(Cloud::S3, vars(&[("AWS_ACCESS_KEY_ID", "k")]));
    let err = Store::open_in("s3://bucket/ckpt", &half)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("s3://bucket/ckpt/") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    let gcs = CloudSettings::from_vars(
        Cloud::Gcs,
        vars(&[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/adc.json")]),
    );
    let err = Store::open_in("gs://bucket/ckpt", &gcs)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("gs://bucket/ckpt/")
            && err.contains("GOOGLE_APPLICATION_CREDENTIALS")
            && err.contains("/nonexistent/adc.json"),
        "{err}"
    );
    assert!(matches!(
        Store::open("memory://").unwrap().location(),
        StoreLocation::Memory
    ));
}

#[test]
fn open_existing_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(
        Store::open_existing(missing.to_str().unwrap())
            .unwrap()
            .is_none()
    );
    assert!(!missing.exists());
    assert!(
        Store::open_existing(dir.path().to_str().unwrap())
            .unwrap()
            .is_some()
    );
    assert!(Store::open_existing("memory://").unwrap().is_some());
    assert!(Store::open_existing("").is_err());
}
