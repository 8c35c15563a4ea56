//! The core policy hook of the ingest: a discarded core is never stored and the record says why;
//! the identity and the decision are frozen in the spool entry before any side effect, so a
//! retried ingest lands on the same object whatever the resolver and the policy say later.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use coredump_api::{CoredumpReason, CoredumpState};
use coredump_capture::CrashRecord;
use coredump_capture::spool::Spool;
use coredump_ingest::{
    CoreDecision, CorePolicy, IdentityResolver, Ingest, IngestConfig, PolicyInput, ResolvedIdentity,
};
use coredump_store::BlobStore;
use coredump_store::fs_blob::FsBlobStore;

use common::{MemorySink, publish};

const POD_UID: &str = "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11";

/// Answers with whatever identity it currently holds.
struct SwitchResolver(Mutex<Option<ResolvedIdentity>>);

#[async_trait]
impl IdentityResolver for SwitchResolver {
    async fn resolve(&self, _record: &CrashRecord) -> Option<ResolvedIdentity> {
        self.0.lock().unwrap().clone()
    }
}

/// Returns a fixed decision and counts how often it was asked; remembers the core size seen.
struct FixedPolicy {
    decision: Mutex<CoreDecision>,
    asked: AtomicUsize,
    core_bytes: Mutex<Option<u64>>,
}

#[async_trait]
impl CorePolicy for FixedPolicy {
    async fn decide(&self, input: PolicyInput<'_>) -> CoreDecision {
        self.asked.fetch_add(1, Ordering::SeqCst);
        *self.core_bytes.lock().unwrap() = input.core_bytes;
        self.decision.lock().unwrap().clone()
    }
}

fn team_a() -> ResolvedIdentity {
    ResolvedIdentity {
        namespace: "team-a".into(),
        pod_name: "web-0".into(),
        container_name: Some("app".into()),
        image: Some("registry/app:1".into()),
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    spool: Spool,
    blobs: Arc<FsBlobStore>,
    sink: Arc<MemorySink>,
    resolver: Arc<SwitchResolver>,
    policy: Arc<FixedPolicy>,
    ingest: Ingest,
}

fn fixture(decision: CoreDecision) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let blobs = Arc::new(FsBlobStore::new(tmp.path().join("blobs")).unwrap());
    let sink = Arc::new(MemorySink::default());
    let resolver = Arc::new(SwitchResolver(Mutex::new(Some(team_a()))));
    let policy = Arc::new(FixedPolicy {
        decision: Mutex::new(decision),
        asked: AtomicUsize::new(0),
        core_bytes: Mutex::new(None),
    });
    let ingest = Ingest::new(
        spool.clone(),
        blobs.clone(),
        sink.clone(),
        resolver.clone(),
        IngestConfig {
            node_name: "node-1".into(),
            ..IngestConfig::default()
        },
    )
    .with_policy(policy.clone());
    Fixture {
        _tmp: tmp,
        spool,
        blobs,
        sink,
        resolver,
        policy,
        ingest,
    }
}

#[tokio::test]
async fn discarded_core_is_not_stored_and_the_record_says_why() {
    let f = fixture(CoreDecision::Discard {
        state: CoredumpState::QuotaExceeded,
        cause: Some(CoredumpReason::QuotaExceeded),
        reason: "namespace team-a uses 999 of 1000 bytes".into(),
    });
    let id = publish(&f.spool, &[7u8; 50_000]);
    let stored_size = f.spool.record(&id).unwrap().stored_size;
    let done = f.ingest.ingest_ready().await.unwrap();
    assert_eq!(done.len(), 1);
    let obj = &f.sink.objects.lock().unwrap()[0];
    assert_eq!(obj.status.state, CoredumpState::QuotaExceeded);
    assert_eq!(obj.status.reason, Some(CoredumpReason::QuotaExceeded));
    assert_eq!(
        obj.status.message,
        "namespace team-a uses 999 of 1000 bytes"
    );
    assert_eq!(
        (obj.status.blob_path.as_str(), obj.status.core_size),
        ("", 0)
    );
    assert_eq!(
        obj.status.raw_size, 50_000,
        "what the kernel sent is still told"
    );
    assert_eq!(obj.metadata.namespace, "team-a");
    assert_eq!(obj.spec.container_name.as_deref(), Some("app"));
    assert_eq!(*f.policy.core_bytes.lock().unwrap(), Some(stored_size));
    let files: Vec<String> = f
        .blobs
        .list("team-a", POD_UID, None)
        .unwrap()
        .into_iter()
        .map(|b| b.path.file)
        .collect();
    assert_eq!(files, vec![format!("{}.json", obj.metadata.name)]);
    assert!(f.spool.ready().unwrap().is_empty(), "entry removed");
}

#[tokio::test]
async fn kept_core_is_stored() {
    let f = fixture(CoreDecision::Keep);
    let core: Vec<u8> = (0..80_000u32).map(|i| (i % 251) as u8).collect();
    publish(&f.spool, &core);
    f.ingest.ingest_ready().await.unwrap();
    let obj = f.sink.objects.lock().unwrap()[0].clone();
    assert_eq!(obj.status.state, CoredumpState::Stored);
    let path = coredump_store::BlobPath::parse_relative(&obj.status.blob_path).unwrap();
    let mut blob = Vec::new();
    std::io::Read::read_to_end(&mut f.blobs.open(&path).unwrap(), &mut blob).unwrap();
    assert_eq!(zstd::decode_all(&blob[..]).unwrap(), core);
}

#[tokio::test]
async fn retry_reuses_the_frozen_identity_and_decision() {
    let f = fixture(CoreDecision::Discard {
        state: CoredumpState::Skipped,
        cause: Some(CoredumpReason::OptedOut),
        reason: "opted out".into(),
    });
    f.sink.fail_first.store(1, Ordering::SeqCst);
    let id = publish(&f.spool, &[1u8; 10_000]);
    assert!(
        f.ingest.ingest_ready().await.unwrap().is_empty(),
        "sink failed"
    );
    assert_eq!(f.spool.ready().unwrap(), vec![id.clone()], "entry kept");

    // Meanwhile the pod left the cache and the policy changed its mind: the retry must not care.
    *f.resolver.0.lock().unwrap() = None;
    *f.policy.decision.lock().unwrap() = CoreDecision::Keep;
    let done = f.ingest.ingest_ready().await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(f.policy.asked.load(Ordering::SeqCst), 1, "decided once");
    let objects = f.sink.objects.lock().unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].metadata.namespace, "team-a");
    assert_eq!(objects[0].spec.pod_name.as_deref(), Some("web-0"));
    assert_eq!(objects[0].status.state, CoredumpState::Skipped);
    assert_eq!(
        objects[0].status.reason,
        Some(CoredumpReason::OptedOut),
        "the frozen decision keeps its cause"
    );
    assert!(objects[0].status.blob_path.is_empty());
    assert!(
        f.blobs
            .list("team-a", POD_UID, None)
            .unwrap()
            .iter()
            .all(|b| !b.path.file.ends_with(".core.zst")),
        "no core stored on the retry either"
    );
}

/// While the sink keeps failing (API server down), the run loop retries the entry after pauses
/// of 0.2, 0.4, 0.8, 1.6 s... instead of on every 100 ms pass; once the sink recovers, the
/// entry is recorded once. Paused tokio time makes the schedule exact.
#[tokio::test(start_paused = true)]
async fn a_failing_sink_is_retried_with_growing_pauses() {
    let f = fixture(CoreDecision::Keep);
    f.sink.fail_first.store(usize::MAX, Ordering::SeqCst);
    let id = publish(&f.spool, &[7u8; 10_000]);
    let ingest = Arc::new(f.ingest);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let ingest = Arc::clone(&ingest);
        async move { ingest.run(async { drop(stopped.await) }).await }
    });
    // Attempts at about 0, 0.2, 0.6, 1.4, 3.0 s (plus up to one 100 ms pass each).
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let calls = f.sink.calls.load(Ordering::SeqCst);
    assert_eq!(calls, 5, "one attempt per pause, not one per 100 ms pass");
    assert_eq!(f.spool.ready().unwrap(), vec![id.clone()], "entry kept");

    f.sink.fail_first.store(0, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(
        f.sink.calls.load(Ordering::SeqCst),
        6,
        "retried once after 3.2 s"
    );
    assert_eq!(f.sink.objects.lock().unwrap().len(), 1);
    assert!(
        f.spool.ready().unwrap().is_empty(),
        "entry removed once recorded"
    );
    stop.send(()).unwrap();
    running.await.unwrap();
}
