//! The `apiserver` role with `--blob-store s3://...`, `az://...` and `gs://...` on a real server
//! of each service (SeaweedFS, Azurite, fake-gcs-server), behind the real kube-apiserver:
//! `cli::run` parses nothing but the role's arguments, opens the bucket from the flags and
//! serves; a core stored in the bucket (seekable zstd, as the ingest stores it) comes back byte
//! for byte through `kubectl get --raw .../core` and inside `.../dump`, and a `Range` from the
//! middle is answered from the bucket's ranged reads.
#![allow(clippy::unwrap_used)]

mod cluster;
mod common;

use std::io::Write;
use std::time::Duration;

use coredump_apiserver::cli::{ApiserverArgs, run};
use coredump_objstore::BlobStoreArgs;
use coredump_store::{BlobPath, BlobStore};
use coredump_testkit::archive::untar_gz;
use coredump_testplane::object_server::{BUCKET, ObjectServer, Service};
use coredump_testplane::{TestCa, aggregation, free_port, shared};

/// The raw core: 6 MB of a pattern that compresses somewhat.
fn core_bytes() -> Vec<u8> {
    (0..1_500_000u32)
        .flat_map(|i| (i / 3).wrapping_mul(2_654_435_761).to_le_bytes())
        .collect()
}

/// The `apiserver` subcommand's arguments.
#[derive(clap::Parser)]
struct Role {
    #[command(flatten)]
    args: ApiserverArgs,
}

#[test]
fn cores_in_an_s3_bucket_download_through_kube_apiserver() {
    let server = common_server(Service::S3);
    cores_in_a_bucket_download_through_kube_apiserver(server.as_ref(), &put_through_our_store);
}

#[test]
fn cores_in_an_azure_container_download_through_kube_apiserver() {
    let server = common_server(Service::Azure);
    cores_in_a_bucket_download_through_kube_apiserver(server.as_ref(), &put_through_our_store);
}

/// GCS: fake-gcs-server (1.56.1) refuses the XML API's object PUT of `object_store`, so the core
/// is planted through the server's own upload API; everything the API server does (HEAD,
/// ranged GETs, listing) goes through our GCS client.
#[test]
fn cores_in_a_gcs_bucket_download_through_kube_apiserver() {
    let server = coredump_testplane::fake_gcs::start_fake_gcs().unwrap();
    server.create_bucket(BUCKET).unwrap();
    let plant = |_: &dyn ObjectServer, blob: &BlobPath, bytes: &[u8]| {
        let key = format!(
            "e2e/{}/{}/{}/{}",
            blob.namespace, blob.pod_uid, blob.container, blob.file
        );
        server.upload(BUCKET, &key, bytes).unwrap();
    };
    cores_in_a_bucket_download_through_kube_apiserver(&server, &plant);
}

fn common_server(service: Service) -> Box<dyn ObjectServer> {
    service
        .start()
        .unwrap_or_else(|e| panic!("starting the {service:?} server: {e}"))
}

/// Stores `bytes` at `blob` through the store the role's flags open (as the agent would).
fn put_through_our_store(server: &dyn ObjectServer, blob: &BlobPath, bytes: &[u8]) {
    let bucket = BlobStoreArgs::parse_flags(server.blob_store_flags("e2e"))
        .unwrap()
        .open()
        .unwrap()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join(&blob.file);
    std::fs::write(&src, bytes).unwrap();
    assert_eq!(bucket.put_file(blob, &src).unwrap(), bytes.len() as u64);
}

/// How a test stores a blob in the server's bucket under the prefix `e2e`.
type Plant<'a> = dyn Fn(&dyn ObjectServer, &BlobPath, &[u8]) + 'a;

/// A core stored by `plant` under the prefix `e2e` of `store_server`'s bucket, served by the
/// role through kube-apiserver.
fn cores_in_a_bucket_download_through_kube_apiserver(
    store_server: &dyn ObjectServer,
    plant: &Plant<'_>,
) {
    // One at a time: each registers itself as the APIService of the shared control plane.
    static ONE_APISERVICE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_APISERVICE.lock().unwrap_or_else(|p| p.into_inner());
    let service = store_server.service();
    let cp = shared().unwrap();
    let flags = store_server.blob_store_flags("e2e");
    let dir = tempfile::tempdir().unwrap();
    let system = cp.create_namespace("coredump-system").unwrap();
    let kubeconfig = cluster::api_server_identity(cp, &system, dir.path());
    let ca = TestCa::new("coredump-serving-ca").unwrap();
    let serving = aggregation::write_serving_cert(&ca, &system, dir.path()).unwrap();
    let port = free_port().unwrap();
    // The role's own flags, parsed as the binary parses them.
    let d = dir.path();
    let mut argv = vec![
        "apiserver".to_string(),
        format!("--secure-port={port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--tls-cert-file={}", serving.cert.display()),
        format!("--tls-private-key-file={}", serving.key.display()),
        // Never used with a bucket: the test fails if anything lands here.
        format!("--local-path={}", d.join("local-cores").display()),
        format!("--data-dir={}", d.join("metadata").display()),
        "--etcd-compaction-interval=0".into(),
        "--keep-per-signature=off".into(),
        "--delegated-auth=on".into(),
        format!("--kubeconfig={}", kubeconfig.display()),
    ];
    argv.extend(flags.iter().cloned());
    let args = <Role as clap::Parser>::try_parse_from(&argv).unwrap().args;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(run(args, async {
        let _ = stopped.await;
    }));
    let took = cluster::register_apiservice(cp, &system, port, &ca.cert_pem());
    println!("APIService Available after {took:?}");

    // The crash, where the agent would have put it: the core in the bucket, the record in the API.
    let ns = cp
        .create_namespace(&format!("team-{}", service.scheme()))
        .unwrap();
    let uid = "5b1a9a4e-6d0c-4c53-9f51-3c2f4c1e0d77";
    let raw = core_bytes();
    let mut writer =
        coredump_seekable::SeekableWriter::with_frame_size(Vec::new(), 1, 0, 1 << 20).unwrap();
    writer.write_all(&raw).unwrap();
    let compressed = writer.finish().unwrap();
    let blob = BlobPath::new(&ns, uid, "app", "crash-a.core.zst").unwrap();
    plant(store_server, &blob, &compressed);
    let mut record = common::coredump("crash-a", &ns, uid, "app", raw.len() as u64);
    record["metadata"]["namespace"] = ns.as_str().into();
    cluster::apply(cp, &record);
    cluster::apply(
        cp,
        &serde_json::json!({"apiVersion": "coredump.fujitsu.com/v1alpha1",
            "kind": "CoredumpEndpoint", "metadata": {"name": "pod-a", "namespace": ns},
            "spec": {"podUID": uid}}),
    );

    let base = format!("{}/namespaces/{ns}", cluster::BASE);
    let get_raw = |path: &str| {
        let out = cp.kubectl(&["get", "--raw", path, "--request-timeout=60s"]);
        assert!(
            out.status.success(),
            "kubectl get --raw {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let core = get_raw(&format!("{base}/coredumps/crash-a/core"));
    assert_eq!(core.len(), raw.len());
    assert!(core == raw, "the core through kube-apiserver differs");

    let dump = get_raw(&format!("{base}/coredumpendpoints/pod-a/dump"));
    let entries = untar_gz(&dump).unwrap();
    let name = format!("{ns}/{uid}/app/crash-a.core.zst");
    let (_, in_dump) = entries
        .iter()
        .find(|(path, _)| path == &name)
        .unwrap_or_else(|| {
            let names: Vec<_> = entries.iter().map(|(p, _)| p).collect();
            panic!("{name} not in the dump: {names:?}")
        });
    assert!(*in_dump == compressed, "the dump's core differs");

    // A Range from the middle, straight to our server as the aggregator relays it.
    let (start, end) = (3_000_000usize, 3_250_000usize);
    let creds = cluster::Creds::relayed(cp.front_proxy_client_cert(), "admin", &["system:masters"])
        .header("Range", &format!("bytes={start}-{end}"));
    let answer = rt.block_on(cluster::direct_get(
        port,
        &ca.cert_pem(),
        &format!("{base}/coredumps/crash-a/core"),
        &creds,
    ));
    assert_eq!(
        answer.status,
        206,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.body == raw[start..=end], "the range differs");
    assert!(
        !dir.path().join("local-cores").exists(),
        "the server wrote to --local-path with a bucket selected"
    );

    let _ = stop.send(());
    let result = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), server).await })
        .expect("the API server did not stop within 30 s")
        .unwrap();
    result.unwrap();
}
