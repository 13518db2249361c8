//! Reading a source blob from the Azure Storage emulator, and a source object from the S3
//! emulator (moto): by ranges, hashed on the way, from an offset, and refused when the blob
//! or object is replaced in the middle of the read.

use std::io::Read;

use datsync::{Azurite, Blob, BlobMeta, Moto, SourceRef};
use sha2::{Digest, Sha256};

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_is_read_in_ranges_and_fingerprinted_by_its_etag() {
    let azurite = Azurite::start().unwrap();
    let account = azurite.account();
    account.create_container("data").await.unwrap();
    let url = "az://data/in/ZTDWR_20250129.dat";
    let blob = Blob::open_with(url, &account).unwrap();
    let content = bytes(1_000_003, 7);
    blob.put(content.clone().into()).await.unwrap();
    let listed = datsync::list_blobs("az://data/in/", &account)
        .await
        .unwrap();
    reads_in_ranges_and_refuses_a_replaced_source(blob, url, &content, listed, "blob").await;
}

/// The same reads of an S3 object, on moto: ranged GETs with `If-Match`, which moto checks
/// (if it did not, the replaced object would be read without an error and this would fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_object_is_read_in_ranges_and_fingerprinted_by_its_etag() {
    let moto = Moto::start().unwrap();
    moto.create_bucket("data").await.unwrap();
    let settings = moto.s3_settings();
    let url = "s3://data/in/ZTDWR_20250129.dat";
    let blob = Blob::open_in(url, &settings).unwrap();
    let content = bytes(1_000_003, 7);
    blob.put(content.clone().into()).await.unwrap();
    let listed = datsync::list_objects("s3://data/in/", &settings)
        .await
        .unwrap();
    reads_in_ranges_and_refuses_a_replaced_source(blob, url, &content, listed, "object").await;
}

/// `blob` (named `url`) holds `content`; `listed` is the listing of its prefix.
async fn reads_in_ranges_and_refuses_a_replaced_source(
    blob: Blob,
    url: &str,
    content: &[u8],
    listed: Vec<(Blob, BlobMeta)>,
    word: &str,
) {
    let content = content.to_vec();
    let source = SourceRef::open_blob(blob.clone()).await.unwrap();
    assert_eq!(source.name(), url);
    assert_eq!(source.file_name(), "ZTDWR_20250129.dat");
    let fp = source.fingerprint();
    assert_eq!(fp.size_bytes, 1_000_003);
    assert!(fp.etag.is_some(), "{fp:?}");
    // A listing gives the same ETag as a HEAD (receipts and fingerprints compare them).
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0.url(), url);
    assert_eq!(listed[0].1.etag, fp.etag);
    assert!(!fp.etag.as_deref().unwrap().contains('"'), "{fp:?}");

    // Ranges that do not divide the size, read through buffers of odd sizes.
    for range in [1_000_003, 65_536, 99_991] {
        let s = source.clone();
        let (read, hash, bytes_read) = tokio::task::spawn_blocking(move || {
            let mut reader = s.reader_in_ranges(range).unwrap();
            let mut out = Vec::new();
            let mut buf = vec![0u8; 7_777];
            loop {
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            (out, reader.sha256_hex(), reader.bytes_read())
        })
        .await
        .unwrap();
        assert_eq!(read.len(), content.len(), "range {range}");
        assert!(read == content, "range {range}: different bytes");
        assert_eq!(bytes_read, 1_000_003);
        let expected = Sha256::digest(&content)
            .iter()
            .fold(String::new(), |mut s, b| {
                use std::fmt::Write as _;
                let _ = write!(s, "{b:02x}");
                s
            });
        assert_eq!(hash, expected);
    }

    // From an offset (a resume reading on from its point): the bytes from there, whether it
    // falls at the start, inside or at the end of a range, or at the end of the blob.
    for (range, offset) in [
        (65_536u64, 0u64),
        (65_536, 65_536),
        (65_536, 100_000),
        (99_991, 999_990),
        (1_000_003, 1_000_003),
    ] {
        let s = source.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            s.reader_at_in_ranges(offset, range)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            out
        })
        .await
        .unwrap();
        let from = usize::try_from(offset).unwrap();
        assert!(read == content[from..], "range {range}, offset {offset}");
    }

    // Replaced after the source was opened: the read fails instead of mixing versions.
    blob.put(bytes(1_000_003, 8).into()).await.unwrap();
    let s = source.clone();
    let err = tokio::task::spawn_blocking(move || {
        let mut reader = s.reader_in_ranges(65_536).unwrap();
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap_err()
    })
    .await
    .unwrap();
    assert!(
        err.to_string()
            .contains(&format!("the {word} changed while it was being read")),
        "{err}"
    );
    // Opened again, it is a new version with another ETag.
    let again = SourceRef::open_blob(blob).await.unwrap();
    assert_ne!(again.fingerprint().etag, fp.etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_blob_is_named() {
    let azurite = Azurite::start().unwrap();
    let account = azurite.account();
    account.create_container("data").await.unwrap();
    let blob = Blob::open_with("az://data/none.dat", &account).unwrap();
    let err = SourceRef::open_blob(blob).await.unwrap_err().to_string();
    assert!(
        err.contains("az://data/none.dat") && err.contains("no such blob"),
        "{err}"
    );
    // A container URL without a path is not a blob.
    assert!(Blob::open_with("az://data/", &account).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_s3_object_or_bucket_is_named() {
    let moto = Moto::start().unwrap();
    moto.create_bucket("data").await.unwrap();
    let settings = moto.s3_settings();
    let blob = Blob::open_in("s3://data/none.dat", &settings).unwrap();
    let err = SourceRef::open_blob(blob).await.unwrap_err().to_string();
    assert!(
        err.contains("s3://data/none.dat") && err.contains("no such object"),
        "{err}"
    );
    let blob = Blob::open_in("s3://nobucket/a.dat", &settings).unwrap();
    let err = SourceRef::open_blob(blob).await.unwrap_err().to_string();
    assert!(err.starts_with("s3://nobucket/a.dat"), "{err}");
    assert!(Blob::open_in("s3://data/", &settings).is_err());
    // An Azure URL is not opened with S3 settings.
    assert!(Blob::open_in("az://data/a.dat", &settings).is_err());
}
