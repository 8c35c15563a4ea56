//! An upload interrupted by the death of its process resumes, against a real server of each
//! service (SeaweedFS for S3, Azurite for Azure Blob): a child process (this test binary run
//! again, its ignored `upload_child` test) uploads a core of many parts and is SIGKILLed once
//! its record beside the core lists at least two; a new store, as after a restart, completes
//! the upload sending only the parts the record does not list (its [`PartsSent`] counter), and
//! the object reads back byte for byte. A record whose upload the server no longer has, and a
//! record of a source that has changed since, give a fresh upload and an intact object.
//!
//! GCS is not tested: fake-gcs-server (1.56.1) has no XML multipart upload, the API
//! `object_store`'s GCS `MultipartStore` uses (see `conformance.rs`).
#![allow(clippy::unwrap_used)]

// The blob conformance suite the filesystem store runs too (test code, not in a library).
#[path = "../../store/tests/blob_conformance/mod.rs"]
mod blob_conformance;
mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use blob_conformance::blob_bytes;
use common::{ObjectServer, Service};
use coredump_objstore::resume::{self, UploadRecord};
use coredump_objstore::store::PARTS_IN_FLIGHT;
use coredump_objstore::{ObjectBlobStore, PartsSent, providers};
use coredump_store::{BlobPath, BlobStore};
use object_store::PutPayload;
use object_store::path::Path as Key;

const MIB: usize = 1024 * 1024;
/// The smallest part S3 takes.
const PART: usize = 5 * MIB;
/// Parts of the core: enough that the kill lands long before the end.
const PARTS: usize = 32;
/// Parts the record must list before the child is killed.
const AT_LEAST: usize = 2;

/// What the child uploads, from the parent (flags one per line).
const ENV_FLAGS: &str = "RESUME_TEST_CHILD_FLAGS";
const ENV_SOURCE: &str = "RESUME_TEST_CHILD_SOURCE";

fn blob() -> BlobPath {
    BlobPath::new("ns", "pod", "c", "core.zst").unwrap()
}

/// The child: uploads the source to the store the flags name, until it is killed.
#[test]
#[ignore = "the child process of the resume tests, which run it"]
fn upload_child() {
    let flags = std::env::var(ENV_FLAGS).expect("run by the resume tests only");
    let source = std::env::var(ENV_SOURCE).expect("run by the resume tests only");
    let store = coredump_objstore::BlobStoreArgs::parse_flags(flags.lines())
        .unwrap()
        .open_with_retry(common::short_retry())
        .unwrap()
        .unwrap()
        .with_part_size(PART);
    store.put_file(&blob(), Path::new(&source)).unwrap();
}

/// A unique key prefix of this process.
fn prefix(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store under `prefix` on `server`, as a restarted agent opens it.
fn store(server: &dyn ObjectServer, prefix: &str) -> ObjectBlobStore {
    common::args(server, prefix)
        .open_with_retry(common::short_retry())
        .unwrap()
        .unwrap()
        .with_part_size(PART)
}

/// Runs the upload of `src` in a child process and SIGKILLs it once its record lists
/// [`AT_LEAST`] parts; the record it leaves.
fn interrupted_upload(server: &dyn ObjectServer, prefix: &str, src: &Path) -> UploadRecord {
    let record_path = resume::record_path(src);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "upload_child", "--ignored", "--test-threads=1"])
        .env(ENV_FLAGS, server.blob_store_flags(prefix).join("\n"))
        .env(ENV_SOURCE, src)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the upload ended ({status}) before it could be interrupted");
        }
        let parts = UploadRecord::load(&record_path)
            .ok()
            .flatten()
            .map_or(0, |r| r.parts.len());
        if parts >= AT_LEAST {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child's record listed {parts} parts after 60 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed, not ended: {status}");
    let record = UploadRecord::load(&record_path).unwrap().unwrap();
    assert!(
        (AT_LEAST..PARTS + 1).contains(&record.parts.len()),
        "{} parts recorded of {}",
        record.parts.len(),
        PARTS + 1
    );
    record
}

/// A source of `PARTS` full parts and a short one.
fn source(dir: &Path, seed: u64) -> (std::path::PathBuf, Vec<u8>) {
    let bytes = blob_bytes(PARTS * PART + 4321, seed);
    let src = dir.join("core.zst");
    std::fs::write(&src, &bytes).unwrap();
    (src, bytes)
}

fn read_all(store: &dyn BlobStore, path: &BlobPath) -> Vec<u8> {
    let mut out = Vec::new();
    store.open(path).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// The object is `bytes`, stored once, and the record is gone.
fn assert_stored(store: &ObjectBlobStore, src: &Path, bytes: &[u8]) {
    assert!(read_all(store, &blob()) == bytes, "the object differs");
    let listed = store.list("ns", "pod", None).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        !resume::record_path(src).exists(),
        "the record of a finished upload is removed"
    );
}

fn an_interrupted_upload_resumes_with_the_missing_parts_only(service: Service) {
    let server = common::shared(service);
    let server: &dyn ObjectServer = server.as_ref();
    let prefix = prefix("resume");
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let (src, bytes) = source(dir.path(), 31);
    let record = interrupted_upload(server, &prefix, &src);

    let store = store(server, &prefix);
    assert_eq!(store.size(&blob()).unwrap(), None, "nothing visible yet");
    assert_eq!(store.put_file(&blob(), &src).unwrap(), bytes.len() as u64);
    let size = bytes.len();
    let recorded_bytes: usize = record.parts.keys().map(|i| PART.min(size - i * PART)).sum();
    let missing = PARTS + 1 - record.parts.len();
    eprintln!(
        "{service:?}: {} parts recorded when killed, {missing} sent after the restart",
        record.parts.len()
    );
    assert_eq!(
        store.parts_sent(),
        PartsSent {
            parts: missing as u64,
            bytes: (size - recorded_bytes) as u64,
        },
        "only the parts the record lacks are sent"
    );
    assert_stored(&store, &src, &bytes);
}

#[test]
fn s3_an_interrupted_upload_resumes_with_the_missing_parts_only() {
    an_interrupted_upload_resumes_with_the_missing_parts_only(Service::S3);
}

#[test]
fn azure_an_interrupted_upload_resumes_with_the_missing_parts_only() {
    an_interrupted_upload_resumes_with_the_missing_parts_only(Service::Azure);
}

/// Runs `f` with the raw client of `prefix` on `server` (the same one the store uses).
fn with_client<T>(
    server: &dyn ObjectServer,
    prefix: &str,
    f: impl AsyncFnOnce(providers::Client) -> T,
) -> T {
    let args = common::args(server, prefix);
    // What `BlobStoreArgs::open` does first: reqwest's TLS takes the process's provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match server.service() {
        Service::S3 => providers::s3(&args, "cores", common::short_retry()),
        Service::Azure => providers::azure(&args, "cores", common::short_retry()),
        Service::Gcs => unreachable!("fake-gcs-server has no multipart upload"),
    }
    .unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f(client))
}

fn an_upload_the_server_dropped_is_uploaded_afresh(service: Service) {
    // A server of its own: Azure's is wiped below.
    let mut server = common::own(service);
    let prefix = prefix("dropped");
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let (src, bytes) = source(dir.path(), 32);
    let record = interrupted_upload(server.as_ref(), &prefix, &src);
    if service == Service::Azure {
        // Azure has no abort: its uncommitted blocks expire after a week. Azurite keeps them
        // past a blob written and deleted at the key, so they go with its data: killed, data
        // removed, restarted (the harness creates the container again).
        server.kill();
        std::fs::remove_dir_all(server.data_dir()).unwrap();
        server.restart().unwrap();
    } else {
        let key = Key::parse(&record.header.key).unwrap();
        let id = record.header.upload_id.clone();
        with_client(server.as_ref(), &prefix, async |client| {
            client.multipart.abort_multipart(&key, &id).await
        })
        .unwrap();
    }
    let server: &dyn ObjectServer = server.as_ref();

    let store = store(server, &prefix);
    assert_eq!(store.put_file(&blob(), &src).unwrap(), bytes.len() as u64);
    let sent = store.parts_sent();
    eprintln!("{service:?}: {sent:?} sent after the upload was dropped");
    // The resumed attempt first: S3 refuses its first part (no such upload) with the parts
    // in flight started; Azure takes the missing blocks and refuses the completion (a block
    // list naming blocks it does not have). Then one fresh upload of every part.
    let missing = PARTS + 1 - record.parts.len();
    let tried = match service {
        Service::S3 => missing.min(PARTS_IN_FLIGHT),
        _ => missing,
    };
    assert_eq!(
        sent.parts,
        (PARTS + 1 + tried) as u64,
        "the resume attempt, then a fresh upload of every part"
    );
    assert_stored(&store, &src, &bytes);
}

#[test]
fn s3_an_upload_the_server_dropped_is_uploaded_afresh() {
    an_upload_the_server_dropped_is_uploaded_afresh(Service::S3);
}

#[test]
fn azure_an_upload_the_server_dropped_is_uploaded_afresh() {
    an_upload_the_server_dropped_is_uploaded_afresh(Service::Azure);
}

fn a_record_of_another_size_is_ignored(service: Service) {
    let server = common::shared(service);
    let server: &dyn ObjectServer = server.as_ref();
    let prefix = prefix("resized");
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let (src, _) = source(dir.path(), 33);
    let record = interrupted_upload(server, &prefix, &src);
    // The source is another one now: a part longer (as a core rewritten by a retry).
    let bytes = blob_bytes((PARTS + 1) * PART + 4321, 34);
    std::fs::write(&src, &bytes).unwrap();

    let store = store(server, &prefix);
    assert_eq!(store.put_file(&blob(), &src).unwrap(), bytes.len() as u64);
    assert_eq!(
        store.parts_sent(),
        PartsSent {
            parts: (PARTS + 2) as u64,
            bytes: bytes.len() as u64,
        },
        "one fresh upload, nothing of the recorded one reused"
    );
    assert_stored(&store, &src, &bytes);
    if service == Service::S3 {
        // The stale upload was aborted, not left to the bucket's lifecycle rule.
        let key = Key::parse(&record.header.key).unwrap();
        let id = record.header.upload_id.clone();
        let late = with_client(server, &prefix, async |client| {
            client
                .multipart
                .put_part(&key, &id, 0, PutPayload::from("late"))
                .await
        });
        assert!(late.is_err(), "the stale upload still takes parts");
    }
}

#[test]
fn s3_a_record_of_another_size_is_ignored() {
    a_record_of_another_size_is_ignored(Service::S3);
}

#[test]
fn azure_a_record_of_another_size_is_ignored() {
    a_record_of_another_size_is_ignored(Service::Azure);
}
