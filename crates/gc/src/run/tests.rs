//! One collection against an in-process fake of the Kubernetes API (a tower service behind a
//! real kube `Client`): a pod long gone is collected when the pod list answers, and nothing is
//! deleted, whatever the state says, when it does not.

use std::sync::{Arc, Mutex};

use axum::http::{Request, Response};
use coredump_store::BlobPath;
use coredump_store::fs_blob::FsBlobStore;
use coredump_testplane::object_server::Service;
use kube::client::Body;

use super::*;

const UID: &str = "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11";

fn list(kind: &str, items: serde_json::Value) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
        .to_string()
}

/// A fake API: `pods` answers with `pods_status`; every request is logged as `METHOD path`.
fn fake_api(pods_status: u16, log: Arc<Mutex<Vec<String>>>) -> Client {
    let service = tower::service_fn(move |req: Request<Body>| {
        let log = Arc::clone(&log);
        async move {
            let path = req.uri().path().to_string();
            log.lock().unwrap().push(format!("{} {path}", req.method()));
            let coredump = serde_json::json!({
                "apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "Coredump",
                "metadata": {"name": "c1", "namespace": "team-a"},
                "spec": {"pid": 1, "signal": 11, "crashTime": "2024-01-01T00:00:00Z", "podUID": UID},
                "status": {"state": "Stored", "blobPath": format!("team-a/{UID}/app/c1.core.zst")}});
            let (status, body) = match (req.method().as_str(), path.as_str()) {
                ("GET", "/api/v1/pods") if pods_status != 200 => (
                    pods_status,
                    r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"ServiceUnavailable","code":503}"#.to_string(),
                ),
                ("GET", "/api/v1/pods") => (200, list("PartialObjectMetadataList", serde_json::json!([]))),
                ("GET", "/api/v1/namespaces") => (
                    200,
                    list(
                        "PartialObjectMetadataList",
                        serde_json::json!([{"metadata": {"name": "team-a"}}]),
                    ),
                ),
                ("GET", "/apis/coredump.fujitsu.com/v1alpha1/coredumps") => {
                    (200, list("CoredumpList", serde_json::json!([coredump])))
                }
                ("GET", "/apis/coredump.fujitsu.com/v1alpha1/coredumpendpoints") => {
                    (200, list("CoredumpEndpointList", serde_json::json!([])))
                }
                ("DELETE", _) => (
                    200,
                    r#"{"kind":"Status","apiVersion":"v1","status":"Success"}"#.to_string(),
                ),
                _ => (404, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404,"reason":"NotFound"}"#.to_string()),
            };
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(body.into_bytes()))
                    .unwrap(),
            )
        }
    });
    Client::new(service, "default")
}

struct Fixture {
    _tmp: tempfile::TempDir,
    args: Args,
    store: Arc<dyn BlobStore>,
    pod_dir: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cores");
    let store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(root.clone()).unwrap());
    let src = tmp.path().join("core");
    std::fs::write(&src, vec![5u8; 1000]).unwrap();
    store
        .put_file(
            &BlobPath::new("team-a", UID, "app", "c1.core.zst").unwrap(),
            &src,
        )
        .unwrap();
    let args = parse_args(vec![format!("--local-path={}", root.display())]);
    Fixture {
        pod_dir: root.join("team-a").join(UID),
        _tmp: tmp,
        args,
        store,
    }
}

/// The role's flags: `--gc-threshold=30m` and `flags`.
fn parse_args(flags: Vec<String>) -> Args {
    let argv = ["gc".to_string(), "--gc-threshold=30m".to_string()]
        .into_iter()
        .chain(flags);
    <Args as clap::FromArgMatches>::from_arg_matches(
        &<Args as clap::Args>::augment_args(clap::Command::new("gc")).get_matches_from(argv),
    )
    .unwrap()
}

/// A state in which the pod has been gone for a day.
fn long_gone() -> GoneState {
    let mut s = GoneState::default();
    s.pods.insert(format!("team-a/{UID}"), now_unix() - 86_400);
    s
}

#[tokio::test]
async fn nothing_is_deleted_while_the_pod_api_is_unreachable() {
    let f = fixture();
    let log = Arc::new(Mutex::new(Vec::new()));
    let client = fake_api(503, Arc::clone(&log));
    let metrics = Metrics::new();
    let err = collect(&client, &f.store, &f.args, &long_gone(), &metrics)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("pod API is unreachable"),
        "{err:#}"
    );
    assert!(f.pod_dir.join("app/c1.core.zst").exists(), "blob kept");
    let calls = log.lock().unwrap().clone();
    assert!(
        !calls.iter().any(|c| c.starts_with("DELETE")),
        "no delete sent: {calls:?}"
    );
    assert!(
        metrics
            .encode()
            .lines()
            .any(|l| l == "coredump_gc_cycles_total{outcome=\"api_unreachable\"} 1")
    );
}

#[tokio::test]
async fn a_pod_gone_past_the_threshold_is_collected() {
    let f = fixture();
    let log = Arc::new(Mutex::new(Vec::new()));
    let client = fake_api(200, Arc::clone(&log));
    let metrics = Metrics::new();
    let before = long_gone();
    let next = collect(&client, &f.store, &f.args, &before, &metrics)
        .await
        .unwrap();
    assert!(!f.pod_dir.exists(), "blob directory deleted");
    assert_pod_collected(&log, &metrics);
    // Seen this cycle, so remembered with its first sighting until a cycle finds nothing left.
    assert_eq!(next, before);
}

/// The Coredump of the gone pod was deleted and the pod's blobs counted as collected.
fn assert_pod_collected(log: &Mutex<Vec<String>>, metrics: &Metrics) {
    let calls = log.lock().unwrap().clone();
    assert!(
        calls.contains(
            &"DELETE /apis/coredump.fujitsu.com/v1alpha1/namespaces/team-a/coredumps/c1"
                .to_string()
        ),
        "{calls:?}"
    );
    assert!(
        metrics
            .encode()
            .lines()
            .any(|l| l == "coredump_gc_deletions_total{kind=\"pod_dir\",reason=\"pod_gone\"} 1")
    );
}

#[tokio::test]
async fn a_pod_seen_gone_for_the_first_time_is_only_remembered() {
    let f = fixture();
    let log = Arc::new(Mutex::new(Vec::new()));
    let client = fake_api(200, Arc::clone(&log));
    let next = collect(
        &client,
        &f.store,
        &f.args,
        &GoneState::default(),
        &Metrics::new(),
    )
    .await
    .unwrap();
    assert!(f.pod_dir.exists());
    assert!(!log.lock().unwrap().iter().any(|c| c.starts_with("DELETE")));
    let since = next.pods[&format!("team-a/{UID}")];
    assert!((now_unix() - since).abs() < 60);
}

/// The same collection with `--blob-store s3://...` on a real SeaweedFS: the inventory comes
/// from the bucket (no directory to walk), the pod's objects are deleted, the namespace's
/// binaries kept by build ID stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_gone_past_the_threshold_is_collected_from_a_bucket() {
    collected_from_a_bucket(Service::S3).await;
}

/// The same on an Azure container (Azurite): listing by prefix and the batched delete of Azure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_gone_past_the_threshold_is_collected_from_an_azure_container() {
    collected_from_a_bucket(Service::Azure).await;
}

async fn collected_from_a_bucket(service: Service) {
    let server = service
        .start()
        .unwrap_or_else(|e| panic!("starting the {service:?} server: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let unused = tmp.path().join("unused-local-path");
    let mut flags = vec![format!("--local-path={}", unused.display())];
    flags.extend(server.blob_store_flags("gc"));
    let args = parse_args(flags);
    let store: Arc<dyn BlobStore> = Arc::new(args.blob_store.open().unwrap().unwrap());
    let src = tmp.path().join("core");
    std::fs::write(&src, vec![5u8; 1000]).unwrap();
    let core = BlobPath::new("team-a", UID, "app", "c1.core.zst").unwrap();
    let binary = coredump_store::buildid::buildid_path("team-a", "0a1b2c", "executable").unwrap();
    store.put_file(&core, &src).unwrap();
    store.put_file(&binary, &src).unwrap();
    assert_eq!(
        store.namespaces().unwrap(),
        Some(vec!["team-a".to_string()])
    );
    assert_eq!(store.pods("team-a").unwrap(), Some(vec![UID.to_string()]));

    let log = Arc::new(Mutex::new(Vec::new()));
    let client = fake_api(200, Arc::clone(&log));
    let metrics = Metrics::new();
    collect(&client, &store, &args, &long_gone(), &metrics)
        .await
        .unwrap();
    assert!(
        store.list("team-a", UID, None).unwrap().is_empty(),
        "pod objects kept"
    );
    assert_eq!(store.size(&binary).unwrap(), Some(1000), "binary deleted");
    assert_pod_collected(&log, &metrics);
    assert!(
        !unused.exists(),
        "the GC walked or wrote --local-path with a bucket selected"
    );
}
