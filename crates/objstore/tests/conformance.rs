//! The blob conformance suite (the one the filesystem store passes) against the object store on
//! a real server of each service started on loopback by the test (S3 on SeaweedFS, Azure Blob
//! on Azurite): puts, multipart puts, reads, seeks, listings, deletes and usage through real
//! requests; and a store that is asked from every kind of thread (a tokio worker,
//! `spawn_blocking`, a plain thread).
//!
//! GCS on fake-gcs-server (1.56.1) runs the read side only (`gcs_reads_...` below): the server
//! refuses the XML API's object PUT that `object_store` sends ("invalid uploadType") and has no
//! XML multipart upload at all, so no write of the GCS client can be tested on it; the objects
//! are planted through the server's own JSON upload API instead.
#![allow(clippy::unwrap_used)]

// The blob conformance suite the filesystem store runs too (test code, not in a library).
#[path = "../../store/tests/blob_conformance/mod.rs"]
mod blob_conformance;
mod common;

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use blob_conformance::{blob_bytes, run_all_blob};
use common::Service;
use coredump_objstore::etag::{self, Md5Check, Verdict};
use coredump_objstore::providers;
use coredump_store::{BlobPath, BlobStore};
use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutPayload};

fn passes_the_blob_conformance_suite(service: Service) {
    let server = common::shared(service);
    let scratch = tempfile::tempdir().unwrap();
    run_all_blob(
        || common::fresh_store(server.as_ref(), "conformance"),
        scratch.path(),
    );
}

#[test]
fn s3_passes_the_blob_conformance_suite() {
    passes_the_blob_conformance_suite(Service::S3);
}

#[test]
fn azure_passes_the_blob_conformance_suite() {
    passes_the_blob_conformance_suite(Service::Azure);
}

/// The same suite with 5 MiB parts (S3's smallest), so its multi-MiB blobs take the
/// multipart path: several parts, the last one short.
fn passes_with_multipart_uploads_too(service: Service) {
    let server = common::shared(service);
    let server = server.as_ref();
    let scratch = tempfile::tempdir().unwrap();
    run_all_blob(
        || common::fresh_store(server, "multipart").with_part_size(5 * 1024 * 1024),
        scratch.path(),
    );
    // And a blob of exactly two parts (no short last part).
    let store = common::fresh_store(server, "two-parts").with_part_size(5 * 1024 * 1024);
    let bytes = blob_bytes(10 * 1024 * 1024, 42);
    let src = scratch.path().join("two");
    std::fs::write(&src, &bytes).unwrap();
    let path = BlobPath::new("ns", "pod", "c", "two.core.zst").unwrap();
    assert_eq!(store.put_file(&path, &src).unwrap(), bytes.len() as u64);
    let mut back = Vec::new();
    store.open(&path).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == bytes);
}

#[test]
fn s3_passes_with_multipart_uploads_too() {
    passes_with_multipart_uploads_too(Service::S3);
}

#[test]
fn azure_passes_with_multipart_uploads_too() {
    passes_with_multipart_uploads_too(Service::Azure);
}

/// The trait is synchronous; callers are async code: a worker of the caller's runtime (a
/// current-thread one, where waiting on that runtime would deadlock), `spawn_blocking`, and
/// a plain thread all get answers, and dropping the store inside the runtime does not panic.
/// (The bridge is the same for every service: S3's server is enough.)
#[test]
fn any_thread_may_call_the_store() {
    let server = common::shared(Service::S3);
    let store: Arc<dyn BlobStore> = Arc::new(common::fresh_store(server.as_ref(), "threads"));
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

/// GCS, read side: objects planted through fake-gcs-server's own upload API are read, sought,
/// measured, listed, enumerated for the GC, counted and deleted through the GCS client with
/// the layout every store shares.
#[test]
fn gcs_reads_lists_and_deletes_what_the_bucket_holds() {
    let server = coredump_testplane::fake_gcs::start_fake_gcs().unwrap();
    server.create_bucket("cores").unwrap();
    let store = common::args(&server, "planted")
        .open_with_retry(common::short_retry())
        .unwrap()
        .unwrap();
    let big = blob_bytes(3 * 1024 * 1024 + 17, 9);
    let small = blob_bytes(1000, 10);
    let other = blob_bytes(10, 11);
    for (key, bytes) in [
        ("planted/ns/pod/app/big.core.zst", &big),
        ("planted/ns/pod/app/big.json", &small),
        ("planted/ns/pod2/app/x.core.zst", &other),
        ("elsewhere/ns/pod/app/y.core.zst", &other),
    ] {
        server.upload("cores", key, bytes).unwrap();
    }
    let path = BlobPath::new("ns", "pod", "app", "big.core.zst").unwrap();
    assert_eq!(store.size(&path).unwrap(), Some(big.len() as u64));
    let mut back = Vec::new();
    store.open(&path).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == big, "the streamed object differs");
    let mut seekable = store.open_seekable(&path).unwrap().unwrap();
    let middle = big.len() as u64 / 2 + 7;
    seekable.seek(SeekFrom::Start(middle)).unwrap();
    let mut piece = vec![0u8; 4096];
    seekable.read_exact(&mut piece).unwrap();
    assert!(piece[..] == big[middle as usize..middle as usize + 4096]);
    let listed: Vec<_> = store
        .list("ns", "pod", None)
        .unwrap()
        .into_iter()
        .map(|b| (b.path.file, b.size))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("big.core.zst".to_string(), big.len() as u64),
            ("big.json".to_string(), small.len() as u64)
        ]
    );
    assert_eq!(store.namespaces().unwrap(), Some(vec!["ns".to_string()]));
    assert_eq!(
        store.pods("ns").unwrap(),
        Some(vec!["pod".to_string(), "pod2".to_string()])
    );
    assert_eq!(
        store.namespace_usage("ns").unwrap(),
        (big.len() + small.len() + other.len()) as u64
    );
    assert_eq!(store.delete_pod("ns", "pod").unwrap(), 2);
    assert_eq!(store.size(&path).unwrap(), None);
    assert!(store.open(&path).err().unwrap().is_not_found());
    assert_eq!(store.pods("ns").unwrap(), Some(vec!["pod2".to_string()]));
    let x = BlobPath::new("ns", "pod2", "app", "x.core.zst").unwrap();
    store.delete(&x).unwrap();
    store.delete(&x).unwrap(); // absent: still fine
    assert_eq!(store.namespace_usage("ns").unwrap(), 0);
}

/// What the upload check of `etag` compares on each service: the `ETag` the server reports
/// for one PUT and for a multipart upload, through the clients the flags build. On S3
/// (SeaweedFS) both are the MD5 forms the store verifies; on Azure (Azurite) the `ETag` is
/// opaque, so only the size is checked there.
fn etags_of_a_put_and_a_multipart_upload(service: Service) -> (Verdict, Verdict) {
    let server = common::shared(service);
    let args = common::args(server.as_ref(), "etag");
    // What `BlobStoreArgs::open` does first: reqwest's TLS takes the process's provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match service {
        Service::S3 => providers::s3(&args, "cores", common::short_retry()),
        Service::Azure => providers::azure(&args, "cores", common::short_retry()),
        Service::Gcs => unreachable!("fake-gcs-server takes no PUT of object_store"),
    }
    .unwrap();
    let store = client.store;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let small = blob_bytes(70_000, 21);
        let key = Key::from("etag/single");
        let put = store
            .put(&key, PutPayload::from(small.clone()))
            .await
            .unwrap();
        let single = Md5Check::Single(etag::md5(&small)).check(put.e_tag.as_deref());
        let parts = [blob_bytes(5 * 1024 * 1024, 22), blob_bytes(1234, 23)];
        let key = Key::from("etag/multi");
        let mut upload = store.put_multipart(&key).await.unwrap();
        for part in &parts {
            upload
                .put_part(PutPayload::from(part.clone()))
                .await
                .unwrap();
        }
        let done = upload.complete().await.unwrap();
        let digests = parts.iter().map(|p| etag::md5(p)).collect();
        let multi = Md5Check::Multipart(digests).check(done.e_tag.as_deref());
        (single, multi)
    })
}

#[test]
fn s3_etags_are_the_md5s_the_store_verifies() {
    assert_eq!(
        etags_of_a_put_and_a_multipart_upload(Service::S3),
        (Verdict::Verified, Verdict::Verified)
    );
}

#[test]
fn azure_etags_are_not_md5s() {
    assert_eq!(
        etags_of_a_put_and_a_multipart_upload(Service::Azure),
        (Verdict::NotComparable, Verdict::NotComparable)
    );
}
