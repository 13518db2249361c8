use serde_json::json;

use super::*;

/// `text` as a body arriving in parts of `size` bytes.
fn body_in_parts(text: &str, size: usize) -> axum::body::Body {
    let parts: Vec<Result<Bytes, std::io::Error>> = text
        .as_bytes()
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    axum::body::Body::from_stream(futures::stream::iter(parts))
}

fn limits() -> BodyLimits {
    BodyLimits {
        max_metadata_bytes: 4096,
        max_blob_invocation_bytes: 20_000_000,
        ..BodyLimits::default()
    }
}

#[tokio::test]
async fn the_metadata_is_found_past_a_large_data_member_whatever_the_parts() {
    let pool = ParsePool::new(2);
    // 8 MB of Base64-like content before the metadata, a nested member after it.
    let big = "QUJD".repeat(2_000_000);
    let inv = json!({"Data": {"myBlob": big}, "Metadata": {"name": "\"x.dat\"", "n": [1, {"a": null}]}, "Extra": {"k": [true]}})
        .to_string();
    for size in [1, 7, 64, 8192, 1 << 20, inv.len()] {
        if size == 1 && inv.len() > 100_000 {
            // One byte at a time over 8 MB is slow; the small sizes run on a small body.
            let small = json!({"Data": {"b": "QUJD"}, "metadata": {"name": "y.dat"}}).to_string();
            let m = streamed_metadata(body_in_parts(&small, 1), &pool, &limits())
                .await
                .unwrap();
            assert_eq!(m["name"], "y.dat");
            continue;
        }
        let m = streamed_metadata(body_in_parts(&inv, size), &pool, &limits())
            .await
            .unwrap();
        assert_eq!(m["name"], "\"x.dat\"", "parts of {size}");
    }
}

#[tokio::test]
async fn every_buffered_part_is_capped() {
    let pool = ParsePool::new(1);
    let big_metadata = json!({"Data": {}, "Metadata": {"v": "x".repeat(10_000)}}).to_string();
    assert_eq!(
        streamed_metadata(body_in_parts(&big_metadata, 512), &pool, &limits()).await,
        Err(BodyError::TooLarge { limit: 4096 })
    );
    let long_key = format!("{{\"{}\": 1, \"Metadata\": {{}}}}", "k".repeat(5_000));
    assert_eq!(
        streamed_metadata(body_in_parts(&long_key, 512), &pool, &limits()).await,
        Err(BodyError::TooLarge { limit: 1024 })
    );
    let huge = json!({"Data": {"b": "Q".repeat(21_000_000)}, "Metadata": {}}).to_string();
    assert_eq!(
        streamed_metadata(body_in_parts(&huge, 1 << 20), &pool, &limits()).await,
        Err(BodyError::TooLarge { limit: 20_000_000 })
    );
    // The pool still works after those.
    let ok = json!({"Data": {}, "Metadata": {"a": 1}}).to_string();
    let m = streamed_metadata(body_in_parts(&ok, 3), &pool, &limits())
        .await
        .unwrap();
    assert_eq!(m["a"], 1);
    let capped = read_capped(
        body_in_parts(&"x".repeat(2_000), 100),
        &BodyLimits {
            max_body_bytes: 1_000,
            ..limits()
        },
    )
    .await;
    assert_eq!(capped, Err(BodyError::TooLarge { limit: 1_000 }));
}

#[tokio::test]
async fn malformed_bodies_name_a_position_not_the_content() {
    let pool = ParsePool::new(1);
    for bad in [
        "{\"Data\": {\"secret\": \"hunter2\"} \"Metadata\": {}}",
        "[1, 2]",
        "{\"Data\": {}}",
        "{\"Metadata\": {}} trailing",
    ] {
        let e = streamed_metadata(body_in_parts(bad, 5), &pool, &limits())
            .await
            .unwrap_err();
        assert!(matches!(e, BodyError::Invalid(_)), "{bad}: {e:?}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}

#[tokio::test]
async fn a_stalled_body_is_given_up() {
    let pool = ParsePool::new(1);
    let quick = BodyLimits {
        idle_timeout: Duration::from_millis(50),
        ..limits()
    };
    let first: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from_static(b"{\"Data\": "))];
    let stalled = futures::stream::iter(first).chain(futures::stream::pending());
    let e = streamed_metadata(axum::body::Body::from_stream(stalled), &pool, &quick).await;
    assert_eq!(e, Err(BodyError::Stalled(Duration::from_millis(50))));
    let stalled = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    let e = read_capped(axum::body::Body::from_stream(stalled), &quick).await;
    assert_eq!(e, Err(BodyError::Stalled(Duration::from_millis(50))));
}

#[test]
fn a_full_pool_refuses_at_once() {
    let pool = ParsePool::new(1);
    let (release, wait) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    // One job holds the thread, one waits in the queue; the third is refused.
    pool.submit(Box::new(move || {
        let _ = started_tx.send(());
        let _ = wait.recv();
    }))
    .unwrap();
    started.recv().unwrap();
    pool.submit(Box::new(|| {})).unwrap();
    assert_eq!(pool.submit(Box::new(|| {})), Err(BodyError::Busy));
    release.send(()).unwrap();
}
