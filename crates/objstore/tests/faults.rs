//! The object store when things go wrong, against a real server of each service (SeaweedFS for
//! S3, Azurite for Azure Blob, fake-gcs-server for GCS): wrong credentials give a clear error
//! naming the bucket and endpoint (and never the secret), nothing panics; a server killed
//! before a put fails the put within the retry budget, and once it is back the same put
//! succeeds with the object intact; a server killed during a multipart upload leaves no
//! object, and the retry stores it once, whole.
#![allow(clippy::unwrap_used)]

// The blob conformance suite the filesystem store runs too (test code, not in a library).
#[path = "../../store/tests/blob_conformance/mod.rs"]
mod blob_conformance;
mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use blob_conformance::blob_bytes;
use common::{ObjectServer, Service};
use coredump_objstore::BlobStoreArgs;
use coredump_objstore::select::Secret;
use coredump_store::{BlobPath, BlobStore, StoreError};

/// Far above the short retry budget of the tests (about 2 s), far below a hang.
const FAIL_WITHIN: Duration = Duration::from_secs(30);

fn read_all(store: &dyn BlobStore, path: &BlobPath) -> Vec<u8> {
    let mut out = Vec::new();
    store.open(path).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// `args` with a wrong secret of the service (a well-formed one: the server must refuse it);
/// the secret, to look for in the errors.
fn with_wrong_secret(service: Service, args: &mut BlobStoreArgs) -> &'static str {
    match service {
        Service::S3 => {
            let secret = "not-the-secret-4711";
            args.s3_secret_access_key = Some(Secret(secret.into()));
            secret
        }
        Service::Azure => {
            let secret = "bm90LXRoZS1rZXktb2YtdGhlLWFjY291bnQtNDcxMQ==";
            args.azure_access_key = Some(Secret(secret.into()));
            secret
        }
        Service::Gcs => unreachable!("fake-gcs-server checks no credentials"),
    }
}

fn wrong_credentials_are_a_clear_error_naming_bucket_and_endpoint(service: Service) {
    let server = common::shared(service);
    let endpoint = server.endpoint();
    let server: &dyn ObjectServer = server.as_ref();
    let mut args = common::args(server, "wrong-credentials");
    let wrong_secret = with_wrong_secret(service, &mut args);
    let store = args
        .open_with_retry(common::short_retry())
        .unwrap()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("core");
    std::fs::write(&src, blob_bytes(1000, 1)).unwrap();
    let path = BlobPath::new("ns", "pod", "c", "core.zst").unwrap();

    let started = Instant::now();
    let errors: Vec<(&str, StoreError)> = vec![
        ("put_file", store.put_file(&path, &src).unwrap_err()),
        ("put_bytes", store.put_bytes(&path, b"x").unwrap_err()),
        ("size", store.size(&path).unwrap_err()),
        ("open", store.open(&path).err().unwrap()),
        ("list", store.list("ns", "pod", None).unwrap_err()),
        ("delete_pod", store.delete_pod("ns", "pod").unwrap_err()),
    ];
    assert!(started.elapsed() < FAIL_WITHIN, "{:?}", started.elapsed());
    let location = format!("{}://cores/wrong-credentials", service.scheme());
    for (operation, e) in errors {
        let text = format!("{e}");
        eprintln!("{operation}: {text}");
        assert!(
            matches!(e, StoreError::Backend { .. }),
            "{operation}: {e:?}"
        );
        assert!(!e.is_not_found(), "{operation}: refused is not absent");
        assert!(text.contains(&location), "{operation}: {text}");
        assert!(text.contains(&endpoint), "{operation}: {text}");
        assert!(
            text.contains("403")
                || text.contains("SignatureDoesNotMatch")
                || text.contains("Access"),
            "{operation}: the refusal is named: {text}"
        );
        assert!(
            !text.contains(wrong_secret),
            "{operation}: the secret leaked"
        );
        assert!(
            !format!("{e:?}").contains(wrong_secret),
            "{operation}: the secret leaked"
        );
    }
    // The source of the refused upload is left as it was (the caller keeps it in its spool).
    assert_eq!(std::fs::read(&src).unwrap(), blob_bytes(1000, 1));
}

#[test]
fn s3_wrong_credentials_are_a_clear_error_naming_bucket_and_endpoint() {
    wrong_credentials_are_a_clear_error_naming_bucket_and_endpoint(Service::S3);
    // An unknown access key, too.
    let server = common::shared(Service::S3);
    let mut args = common::args(server.as_ref(), "wrong-credentials");
    args.s3_access_key_id = Some("nobody".into());
    let store = args
        .open_with_retry(common::short_retry())
        .unwrap()
        .unwrap();
    let path = BlobPath::new("ns", "pod", "c", "core.zst").unwrap();
    let e = store.size(&path).unwrap_err();
    assert!(e.to_string().contains(&server.endpoint()), "{e}");
}

#[test]
fn azure_wrong_credentials_are_a_clear_error_naming_bucket_and_endpoint() {
    wrong_credentials_are_a_clear_error_naming_bucket_and_endpoint(Service::Azure);
}

fn a_put_to_a_stopped_server_fails_and_succeeds_once_it_is_back(service: Service) {
    let mut server = common::own(service);
    let store = common::fresh_store(server.as_ref(), "outage").with_part_size(5 * 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();
    // Multipart (three parts, the last short) and single-PUT sizes.
    let big = blob_bytes(12 * 1024 * 1024 + 7, 2);
    let small = blob_bytes(70_000, 3);
    let (big_src, small_src) = (dir.path().join("big"), dir.path().join("small"));
    std::fs::write(&big_src, &big).unwrap();
    std::fs::write(&small_src, &small).unwrap();
    let big_path = BlobPath::new("ns", "pod", "c", "big.core.zst").unwrap();
    let small_path = BlobPath::new("ns", "pod", "c", "small.json").unwrap();

    server.kill();
    for (path, src) in [(&big_path, &big_src), (&small_path, &small_src)] {
        let started = Instant::now();
        let e = store.put_file(path, src).unwrap_err();
        let took = started.elapsed();
        eprintln!("put_file while stopped, after {took:?}: {e}");
        assert!(took < FAIL_WITHIN, "{took:?}");
        assert!(matches!(e, StoreError::Backend { .. }), "{e:?}");
        assert!(e.to_string().contains(&server.endpoint()), "{e}");
    }
    assert!(store.open(&big_path).is_err());

    server.restart().unwrap();
    assert_eq!(
        store.size(&big_path).unwrap(),
        None,
        "nothing of the failed put is visible"
    );
    assert_eq!(
        store.put_file(&big_path, &big_src).unwrap(),
        big.len() as u64
    );
    assert_eq!(
        store.put_file(&small_path, &small_src).unwrap(),
        small.len() as u64
    );
    assert!(read_all(&store, &big_path) == big, "the big blob differs");
    assert!(
        read_all(&store, &small_path) == small,
        "the small blob differs"
    );
    let listed = store.list("ns", "pod", None).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
}

#[test]
fn s3_a_put_to_a_stopped_server_fails_and_succeeds_once_it_is_back() {
    a_put_to_a_stopped_server_fails_and_succeeds_once_it_is_back(Service::S3);
}

#[test]
fn azure_a_put_to_a_stopped_server_fails_and_succeeds_once_it_is_back() {
    a_put_to_a_stopped_server_fails_and_succeeds_once_it_is_back(Service::Azure);
}

fn a_server_killed_during_a_multipart_upload_leaves_no_object_and_the_retry_is_whole(
    service: Service,
) {
    let mut server = common::own(service);
    let store = common::fresh_store(server.as_ref(), "mid-upload").with_part_size(5 * 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let bytes = blob_bytes(96 * 1024 * 1024, 4);
    let src = dir.path().join("core");
    std::fs::write(&src, &bytes).unwrap();
    let path = BlobPath::new("ns", "pod", "c", "core.zst").unwrap();
    let result = std::thread::scope(|s| {
        let upload = s.spawn(|| store.put_file(&path, &src));
        // Kill it once the upload is under way (two parts stored), or after 20 s.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !upload.is_finished() && Instant::now() < deadline {
            if stored_bytes(&server.data_dir()) >= 12 * 1024 * 1024 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        server.kill();
        upload.join().unwrap()
    });
    eprintln!("put_file with the server killed midway: {result:?}");
    server.restart().unwrap();
    match result {
        // The kill came too late to interrupt it: the object must then be whole.
        Ok(size) => assert_eq!(size, bytes.len() as u64),
        Err(e) => {
            assert!(matches!(e, StoreError::Backend { .. }), "{e:?}");
            assert_eq!(
                store.size(&path).unwrap(),
                None,
                "a partial object is visible"
            );
            assert_eq!(store.put_file(&path, &src).unwrap(), bytes.len() as u64);
        }
    }
    assert!(read_all(&store, &path) == bytes, "the object differs");
    let listed = store.list("ns", "pod", None).unwrap();
    assert_eq!(listed.len(), 1, "stored once: {listed:?}");
}

#[test]
fn s3_a_server_killed_during_a_multipart_upload_leaves_no_object_and_the_retry_is_whole() {
    a_server_killed_during_a_multipart_upload_leaves_no_object_and_the_retry_is_whole(Service::S3);
}

#[test]
fn azure_a_server_killed_during_a_multipart_upload_leaves_no_object_and_the_retry_is_whole() {
    a_server_killed_during_a_multipart_upload_leaves_no_object_and_the_retry_is_whole(
        Service::Azure,
    );
}

/// Bytes in the files under `dir` (the server's volumes grow as parts arrive: the progress
/// signal of the upload), at most four levels down.
fn stored_bytes(dir: &std::path::Path) -> u64 {
    fn walk(dir: &std::path::Path, depth: u32) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() && depth < 4 => walk(&e.path(), depth + 1),
                Ok(m) if m.is_file() => m.len(),
                _ => 0,
            })
            .sum()
    }
    walk(dir, 0)
}
