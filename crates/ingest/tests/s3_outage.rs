//! The ingest into a bucket (a real SeaweedFS for S3, Azurite for Azure, on loopback) that is
//! unreachable: the core waits in the spool, nothing is recorded; once the server is back the
//! next pass uploads it, records the crash, and only then removes the spool entry; wrong
//! credentials likewise keep the core in the spool until a store with the right ones takes it;
//! a bucket down past the wait limit gets the crash recorded without its core (`Failed`,
//! `StoreUnavailable`) and the node's spool freed. The agent's wiring is exactly this:
//! `--blob-store s3://...` or `az://...` gives the ingest an `ObjectBlobStore`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coredump_capture::CrashRecord;
use coredump_capture::spool::Spool;
use coredump_ingest::{IdentityResolver, Ingest, IngestConfig, ResolvedIdentity};
use coredump_objstore::select::Secret;
use coredump_objstore::{BackoffConfig, BlobStoreArgs, RetryConfig};
use coredump_store::BlobStore;
use coredump_testplane::object_server::{ObjectServer, Service};

use common::{MemorySink, publish_at};

struct Fixed;

#[async_trait]
impl IdentityResolver for Fixed {
    async fn resolve(&self, _record: &CrashRecord) -> Option<ResolvedIdentity> {
        Some(ResolvedIdentity {
            namespace: "team-s3".into(),
            pod_name: "web-0".into(),
            container_name: Some("app".into()),
            image: None,
        })
    }
}

/// The bucket's store with retries short enough for a test; `wrong` gives it a wrong secret.
fn bucket_store(server: &dyn ObjectServer, name: &str, wrong: bool) -> Arc<dyn BlobStore> {
    let mut args = BlobStoreArgs::parse_flags(server.blob_store_flags(name)).unwrap();
    if wrong {
        args.s3_secret_access_key = Some(Secret("not-the-secret".into()));
        args.azure_access_key = Some(Secret("bm90LXRoZS1rZXk=".into()));
    }
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(3),
    };
    Arc::new(args.open_with_retry(retry).unwrap().unwrap())
}

/// A server of `service` with the bucket `cores`.
fn start(service: Service) -> Box<dyn ObjectServer> {
    service
        .start()
        .unwrap_or_else(|e| panic!("starting the {service:?} server: {e}"))
}

/// An ingest of a scratch spool into `blobs`, recording into `sink`; the directory lives as
/// long as the returned guard.
fn ingest_into(
    blobs: &Arc<dyn BlobStore>,
    config: IngestConfig,
) -> (tempfile::TempDir, Spool, Arc<MemorySink>, Ingest) {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let sink = Arc::new(MemorySink::default());
    let ingest = Ingest::new(
        spool.clone(),
        Arc::clone(blobs),
        sink.clone(),
        Arc::new(Fixed),
        config,
    );
    (tmp, spool, sink, ingest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_down_past_the_wait_limit_records_the_crash_without_its_core() {
    let mut server = start(Service::S3);
    let blobs = bucket_store(server.as_ref(), "ingest-wait", false);
    let (_tmp, spool, _sink, ingest) = ingest_into(
        &blobs,
        IngestConfig {
            max_blob_wait: Duration::from_secs(60),
            ..IngestConfig::default()
        },
    );
    let core: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Within the limit: waits. Past it: recorded without its core.
    let recent = publish_at(&spool, &core, Some(now));
    let _old = publish_at(&spool, &core, Some(now - 120));
    server.kill();
    let done = ingest.ingest_ready().await.unwrap();
    assert_eq!(
        done.len(),
        1,
        "only the crash past the limit is recorded: {done:?}"
    );
    let failed = &done[0];
    assert_eq!(failed.status.state, coredump_api::CoredumpState::Failed);
    assert_eq!(
        failed.status.reason,
        Some(coredump_api::CoredumpReason::StoreUnavailable)
    );
    assert!(
        failed
            .status
            .message
            .contains("the blob store failed for 60 s")
            && failed.status.message.contains("s3://cores/"),
        "{}",
        failed.status.message
    );
    assert!(failed.status.blob_path.is_empty());
    assert_eq!(
        failed.status.raw_size,
        core.len() as u64,
        "what the kernel sent is told"
    );
    assert_eq!(
        spool.ready().unwrap(),
        vec![recent.clone()],
        "the old entry freed, the recent one kept"
    );
    // The bucket back: the recent one goes in whole.
    server.restart().unwrap();
    let done = ingest.ingest_ready().await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status.state, coredump_api::CoredumpState::Stored);
    assert!(spool.ready().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cores_wait_in_the_spool_while_the_bucket_is_unreachable() {
    cores_wait_in_the_spool(Service::S3, Outage::Down).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cores_wait_in_the_spool_while_the_azure_container_is_unreachable() {
    cores_wait_in_the_spool(Service::Azure, Outage::Down).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cores_wait_in_the_spool_while_s3_refuses_the_credentials() {
    cores_wait_in_the_spool(Service::S3, Outage::WrongCredentials).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cores_wait_in_the_spool_while_azure_refuses_the_credentials() {
    cores_wait_in_the_spool(Service::Azure, Outage::WrongCredentials).await;
}

/// What keeps the store from taking the core.
#[derive(Clone, Copy)]
enum Outage {
    /// The server killed, then restarted.
    Down,
    /// A store with a wrong secret, then one with the right one (the agent restarted with it).
    WrongCredentials,
}

async fn cores_wait_in_the_spool(service: Service, outage: Outage) {
    let mut server = start(service);
    let wrong = matches!(outage, Outage::WrongCredentials);
    let first = bucket_store(server.as_ref(), "ingest", wrong);
    let (_tmp, spool, sink, ingest) = ingest_into(&first, IngestConfig::default());
    let core: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = publish_at(&spool, &core, Some(now));

    if !wrong {
        server.kill();
    }
    for _ in 0..2 {
        let done = ingest.ingest_ready().await.unwrap();
        assert!(done.is_empty(), "recorded without its core: {done:?}");
    }
    assert_eq!(
        spool.ready().unwrap(),
        vec![id.clone()],
        "the core left the spool"
    );
    assert!(sink.objects.lock().unwrap().is_empty());

    let (blobs, ingest) = match outage {
        Outage::Down => {
            server.restart().unwrap();
            (first, ingest)
        }
        Outage::WrongCredentials => {
            let blobs = bucket_store(server.as_ref(), "ingest", false);
            let ingest = Ingest::new(
                spool.clone(),
                Arc::clone(&blobs),
                sink.clone(),
                Arc::new(Fixed),
                IngestConfig::default(),
            );
            (blobs, ingest)
        }
    };
    let done = ingest.ingest_ready().await.unwrap();
    assert_eq!(done.len(), 1, "not ingested once the bucket was back");
    assert!(spool.ready().unwrap().is_empty(), "the spool entry stayed");
    let coredump = &done[0];
    let blob = coredump_store::BlobPath::parse_relative(&coredump.status.blob_path).unwrap();
    assert_eq!(blob.namespace, "team-s3");
    let stored = blobs.size(&blob).unwrap();
    assert_eq!(stored, Some(coredump.status.stored_size));
    let mut zst = Vec::new();
    blobs.open(&blob).unwrap().read_to_end(&mut zst).unwrap();
    assert!(
        zstd::decode_all(&zst[..]).unwrap() == core,
        "the stored core differs"
    );
    let files: Vec<String> = blobs
        .list(&blob.namespace, &blob.pod_uid, None)
        .unwrap()
        .into_iter()
        .map(|b| b.path.file)
        .collect();
    assert!(
        files.contains(&format!("{}.json", coredump.metadata.name)),
        "no JSON record beside the core: {files:?}"
    );
}
