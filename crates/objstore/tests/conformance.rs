//! The blob conformance suite (the one the filesystem store passes) against the S3 store on a
//! real SeaweedFS started on loopback by the test: puts, multipart puts, reads, seeks, listings,
//! deletes and usage through real S3 requests; and a store that is asked from every kind of
//! thread (a tokio worker, `spawn_blocking`, a plain thread).
#![allow(clippy::unwrap_used)]

// The blob conformance suite the filesystem store runs too (test code, not in a library).
#[path = "../../store/tests/blob_conformance/mod.rs"]
mod blob_conformance;
mod common;

use std::io::Read;
use std::sync::Arc;

use blob_conformance::{blob_bytes, run_all_blob};
use coredump_store::{BlobPath, BlobStore};

#[test]
fn the_s3_store_passes_the_blob_conformance_suite() {
    let server = common::shared().lock().unwrap_or_else(|p| p.into_inner());
    let scratch = tempfile::tempdir().unwrap();
    run_all_blob(
        || common::fresh_store(&server, "conformance"),
        scratch.path(),
    );
}

/// The same suite with 5 MiB parts (S3's smallest), so its multi-MiB blobs take the
/// multipart path: several parts, the last one short.
#[test]
fn the_suite_passes_with_multipart_uploads_too() {
    let server = common::shared().lock().unwrap_or_else(|p| p.into_inner());
    let scratch = tempfile::tempdir().unwrap();
    run_all_blob(
        || common::fresh_store(&server, "multipart").with_part_size(5 * 1024 * 1024),
        scratch.path(),
    );
    // And a blob of exactly two parts (no short last part).
    let store = common::fresh_store(&server, "two-parts").with_part_size(5 * 1024 * 1024);
    let bytes = blob_bytes(10 * 1024 * 1024, 42);
    let src = scratch.path().join("two");
    std::fs::write(&src, &bytes).unwrap();
    let path = BlobPath::new("ns", "pod", "c", "two.core.zst").unwrap();
    assert_eq!(store.put_file(&path, &src).unwrap(), bytes.len() as u64);
    let mut back = Vec::new();
    store.open(&path).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == bytes);
}

/// The trait is synchronous; callers are async code: a worker of the caller's runtime (a
/// current-thread one, where waiting on that runtime would deadlock), `spawn_blocking`, and
/// a plain thread all get answers, and dropping the store inside the runtime does not panic.
#[test]
fn any_thread_may_call_the_store() {
    let server = common::shared().lock().unwrap_or_else(|p| p.into_inner());
    let store: Arc<dyn BlobStore> = Arc::new(common::fresh_store(&server, "threads"));
    let path = BlobPath::new("ns", "pod", "c", "f").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // On the runtime's only worker.
        store.put_bytes(&path, b"from a worker").unwrap();
        assert_eq!(store.size(&path).unwrap(), Some(13));
        let mut text = String::new();
        store
            .open(&path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "from a worker");
        // From spawn_blocking.
        let (s, p) = (Arc::clone(&store), path.clone());
        let listed = tokio::task::spawn_blocking(move || s.list(&p.namespace, &p.pod_uid, None))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(listed.len(), 1);
    });
    // From a plain thread.
    let (s, p) = (Arc::clone(&store), path.clone());
    std::thread::spawn(move || s.delete(&p).unwrap())
        .join()
        .unwrap();
    assert_eq!(store.size(&path).unwrap(), None);
    // The last owner drops it inside an async context.
    runtime.block_on(async move { drop(store) });
}
