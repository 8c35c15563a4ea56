//! End to end through a real control plane: a crash of a real process on this machine, in a
//! (fake-cgroup) pod that exists in the real kube-apiserver, captured by `standalone`, recorded
//! in our `coredump-detector apiserver` process (metadata in its own etcd, blobs under
//! `--local-path`, authenticating to kube-apiserver as its ServiceAccount) and downloaded with
//! `kubectl get --raw .../dump > core.tar.gz` through kube-apiserver's aggregator: byte-identical
//! after extraction, also after our server and its etcd restarted. Plus the figures of a 1 GiB
//! core through the aggregator against kube-apiserver's 60 s `--request-timeout`.
#![allow(clippy::unwrap_used)]

mod aggregated;
mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aggregated::{ApiServer, BASE, eventually, submit};
use coredump_testkit::archive::untar_gz;
use coredump_testplane::{ControlPlane, EtcdProcess, TestCa, aggregation, shared};
use sha2::{Digest, Sha256};

struct Cluster {
    cp: &'static ControlPlane,
    dir: PathBuf,
    etcd: Mutex<EtcdProcess>,
    server: Mutex<ApiServer>,
    blobs: PathBuf,
}

/// Tests that restart things run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn cluster() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| {
        let cp = shared().unwrap();
        // A static is never dropped: the directory goes when this test binary exits.
        let dir = coredump_testkit::scratch::process_scratch_dir(Path::new("/var/tmp"), "cdd-agg-")
            .unwrap();
        let system = cp.create_namespace("coredump-system").unwrap();
        let kubeconfig = aggregated::api_server_identity(cp, &system, &dir);
        let etcd = coredump_testplane::start_etcd(&dir.join("etcd")).unwrap();
        let blobs = dir.join("cores");
        std::fs::create_dir_all(&blobs).unwrap();
        let ca = TestCa::new("coredump-serving-ca").unwrap();
        let server = ApiServer::start(&dir, &ca, &system, &etcd.url(), &blobs, &kubeconfig);
        aggregated::register_apiservice(cp, &system, server.port, &ca.cert_pem());
        let took = aggregation::wait_available(cp, Duration::from_secs(120)).unwrap();
        println!("APIService Available after {took:?}");
        Cluster {
            cp,
            dir,
            etcd: Mutex::new(etcd),
            server: Mutex::new(server),
            blobs,
        }
    })
}

fn create_pod(cp: &ControlPlane, ns: &str, name: &str) -> String {
    let pod = submit(
        cp,
        "apply",
        &serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "app", "image": "example.invalid/crasher:1"}]}}),
    );
    let pod: serde_json::Value = serde_json::from_str(&pod).unwrap();
    pod["metadata"]["uid"].as_str().unwrap().to_owned()
}

/// `kubectl get --raw=<path> > <file>` through kube-apiserver; the file's bytes.
fn get_raw_to_file(cp: &ControlPlane, path: &str, file: &Path) -> Vec<u8> {
    let out = std::fs::File::create(file).unwrap();
    let status = cp
        .kubectl_command(&["get", &format!("--raw={path}"), "--request-timeout=60s"])
        .stdout(out)
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success(), "kubectl get --raw={path} failed");
    std::fs::read(file).unwrap()
}

/// A 64-hex container id unique to this run.
fn container_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:032x}{:032x}", nanos, std::process::id())
}

/// Crashes a real process in pod `uid`'s cgroup under standalone (namespace `ns`); returns the
/// record, the exact raw core, and the stored blob's bytes (copied under `blobs`).
fn capture_crash(ns: &str, uid: &str, blobs: &Path) -> (coredump_api::Coredump, Vec<u8>, Vec<u8>) {
    let sa = common::Standalone::start(&["--listen", "127.0.0.1:0", "--host-namespace", ns]);
    let cgroup = common::FakePodCgroup::create(&format!("/kubepods/pod{uid}/{}", container_id()));
    let mut crash = common::crasher(4, 77, "mixed", "segv", true);
    let pid = crash.pid;
    cgroup.enter(pid);
    crash.go();
    crash.wait(Duration::from_secs(30));
    let record = sa.wait_record(pid, Duration::from_secs(60));
    drop(cgroup);
    assert_eq!(record.spec.pod_uid.as_deref(), Some(uid));
    assert_eq!(record.metadata.namespace, ns);
    let raw = sa.export(&record.metadata.name);
    let blob = std::fs::read(sa.data().join("blobs").join(&record.status.blob_path)).unwrap();
    // The agent's shared volume: the same layout under our --local-path.
    let target = blobs.join(&record.status.blob_path);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, &blob).unwrap();
    (record, raw, blob)
}

#[test]
fn crash_downloaded_through_kube_apiserver_is_identical_and_survives_restarts() {
    let c = cluster();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = c.cp;
    let ns = cp.create_namespace("app").unwrap();
    let uid = create_pod(cp, &ns, "crasher");
    let (record, raw, blob) = capture_crash(&ns, &uid, &c.blobs);
    assert_eq!(record.status.sha256, hex::encode(Sha256::digest(&raw)));

    // The crash record, created through kube-apiserver as the agent would.
    let mut object = serde_json::to_value(&record).unwrap();
    for k in ["uid", "resourceVersion", "creationTimestamp"] {
        object["metadata"].as_object_mut().unwrap().remove(k);
    }
    submit(cp, "create", &object);
    // The seed's endpoint, without podUID: filled from the live pod.
    let ep: serde_json::Value = serde_json::from_str(&submit(
        cp,
        "create",
        &serde_json::json!({"apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
            "metadata": {"name": "crasher", "namespace": ns}}),
    ))
    .unwrap();
    assert_eq!(ep["spec"]["podUID"], uid.as_str());

    let dump = format!("{BASE}/namespaces/{ns}/coredumpendpoints/crasher/dump");
    let check_download = |file: &str| {
        let tgz = get_raw_to_file(cp, &dump, &c.dir.join(file));
        let entries = untar_gz(&tgz).unwrap();
        assert_eq!(
            entries.len(),
            1,
            "{:?}",
            entries.iter().map(|e| &e.0).collect::<Vec<_>>()
        );
        assert_eq!(entries[0].0, record.status.blob_path);
        assert!(entries[0].1 == blob, "stored blob differs");
        let core = zstd::decode_all(&entries[0].1[..]).unwrap();
        assert!(
            core == raw,
            "core differs from the crashed process's ({} vs {} bytes)",
            core.len(),
            raw.len()
        );
    };
    check_download("core.tar.gz");
    // The kubectl plugin through the aggregator: the core subresource, checked by the plugin
    // against the record's size and SHA-256, byte for byte the crashed process's memory image.
    let path_dir = common::plugin_dir();
    let (ok, _, err) = common::plugin(
        path_dir.path(),
        cp.kubeconfig(),
        c.dir.as_path(),
        &[
            "download",
            &record.metadata.name,
            "-n",
            &ns,
            "-o",
            "plugin.core",
        ],
    );
    assert!(
        ok,
        "kubectl coredump download through kube-apiserver: {err}"
    );
    assert!(
        std::fs::read(c.dir.join("plugin.core")).unwrap() == raw,
        "the plugin's download differs from the crashed process's core"
    );
    let get = |kind: &str, name: &str| -> serde_json::Value {
        let out = cp
            .kubectl_ok(&[
                "get",
                kind,
                name,
                "-n",
                &ns,
                "-o",
                "json",
                "--request-timeout=10s",
            ])
            .unwrap();
        serde_json::from_str(&out).unwrap()
    };
    let before = (
        get("coredump", &record.metadata.name),
        get("coredumpendpoint", "crasher"),
    );

    // Our server and its etcd go down and come back: nothing is lost.
    {
        let mut server = c.server.lock().unwrap();
        let mut etcd = c.etcd.lock().unwrap();
        server.stop();
        let down = cp.kubectl(&["get", "coredumps", "-n", &ns, "--request-timeout=10s"]);
        assert!(!down.status.success(), "served while our server was down");
        etcd.kill();
        etcd.restart().unwrap();
        server.spawn();
    }
    let after = eventually(
        Duration::from_secs(120),
        "served again after the restarts",
        || {
            let out = cp.kubectl(&[
                "get",
                "coredump",
                &record.metadata.name,
                "-n",
                &ns,
                "-o",
                "json",
                "--request-timeout=10s",
            ]);
            out.status
                .success()
                .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
        },
    );
    assert_eq!(after, before.0);
    assert_eq!(get("coredumpendpoint", "crasher"), before.1);
    check_download("core-after-restart.tar.gz");
    aggregation::wait_available(cp, Duration::from_secs(120)).unwrap();
}

const GIB: u64 = 1 << 30;

/// Writes `size` bytes of incompressible data, zstd-compressed, to `path`; returns the SHA-256 of
/// the raw bytes and of the stored file.
fn write_big_core(path: &Path, size: u64) -> (String, String) {
    struct Hashing<W: Write>(W, Sha256);
    impl<W: Write> Write for Hashing<W> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = self.0.write(b)?;
            self.1.update(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = zstd::Encoder::new(Hashing(file, Sha256::new()), 1).unwrap();
    let mut raw = Sha256::new();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..size / block.len() as u64 {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        raw.update(&block);
        enc.write_all(&block).unwrap();
    }
    let mut hashing = enc.finish().unwrap();
    hashing.flush().unwrap();
    (
        hex::encode(raw.finalize()),
        hex::encode(hashing.1.finalize()),
    )
}

/// Streams kubectl's stdout through `consume`; returns (elapsed, consume's result).
fn timed_kubectl<T>(
    cp: &ControlPlane,
    path: &str,
    consume: impl FnOnce(&mut dyn Read) -> T,
) -> (Duration, T) {
    let start = Instant::now();
    let mut child = cp
        .kubectl_command(&["get", &format!("--raw={path}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let result = consume(child.stdout.as_mut().unwrap());
    assert!(child.wait().unwrap().success(), "kubectl get --raw={path}");
    (start.elapsed(), result)
}

fn sha256_of(r: &mut dyn Read) -> (u64, String) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    (n, hex::encode(h.finalize()))
}

/// `curl` with the admin client certificate through kube-apiserver, with a `Range` header.
fn curl_range(cp: &ControlPlane, path: &str, range: &str) -> (Duration, u64, String) {
    let pki = cp.dir().join("pki");
    let start = Instant::now();
    let mut child = Command::new("curl")
        .args(["-sS", "--fail", "--http1.1", "--max-time", "120"])
        .arg("--cacert")
        .arg(pki.join("ca.crt"))
        .arg("--cert")
        .arg(pki.join("admin.crt"))
        .arg("--key")
        .arg(pki.join("admin.key"))
        .args(["-H", &format!("Range: bytes={range}")])
        .arg(format!("{}{path}", cp.server_url()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (n, sha) = sha256_of(child.stdout.as_mut().unwrap());
    assert!(child.wait().unwrap().success(), "curl {path} {range}");
    (start.elapsed(), n, sha)
}

/// `kubectl proxy` on a free port, then `curl -H "Range: bytes=a-b"` through it; (time, sha).
fn kubectl_proxy_range(cp: &ControlPlane, path: &str, a: u64, b: u64) -> (Duration, String) {
    let port = aggregated::free_port();
    let mut proxy = cp
        .kubectl_command(&["proxy", &format!("--port={port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(proxy.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(
        line.contains(&format!(":{port}")),
        "kubectl proxy said {line:?}"
    );
    let start = Instant::now();
    let mut child = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "120"])
        .args(["-H", &format!("Range: bytes={a}-{b}")])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (n, sha) = sha256_of(child.stdout.as_mut().unwrap());
    assert!(
        child.wait().unwrap().success(),
        "curl through kubectl proxy"
    );
    let took = start.elapsed();
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert_eq!(n, b - a + 1);
    (took, sha)
}

#[test]
fn one_gib_core_through_the_aggregator_within_the_request_timeout() {
    let c = cluster();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = c.cp;
    let ns = cp.create_namespace("big").unwrap();
    let uid = format!("00000000-0000-4000-8000-{:012x}", std::process::id());
    let rel = format!("{ns}/{uid}/app/big.core.zst");
    let blob_path = c.blobs.join(&rel);
    let t = Instant::now();
    let (raw_sha, blob_sha) = write_big_core(&blob_path, GIB);
    let stored = std::fs::metadata(&blob_path).unwrap().len();
    println!(
        "1 GiB core written as {stored} bytes in {:.1?}",
        t.elapsed()
    );
    submit(
        cp,
        "create",
        &serde_json::json!({
        "apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "Coredump",
        "metadata": {"name": "big", "namespace": ns},
        "spec": {"nodeName": "node-1", "podName": "big", "podUID": uid, "containerName": "app",
                 "pid": 1, "signal": 11, "signalName": "SIGSEGV", "executable": "/bin/big",
                 "crashTime": "2024-05-01T10:00:00Z"},
        "status": {"state": "Stored", "rawSize": GIB, "coreSize": GIB, "storedSize": stored,
                   "sha256": raw_sha, "compression": "zstd", "blobPath": rel}}),
    );
    submit(
        cp,
        "create",
        &serde_json::json!({
        "apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
        "metadata": {"name": "big", "namespace": ns}, "spec": {"podUID": uid}}),
    );

    // `dump`: the tar.gz of the stored blob, checked while it streams.
    let dump = format!("{BASE}/namespaces/{ns}/coredumpendpoints/big/dump");
    let (took_dump, entry) = timed_kubectl(cp, &dump, |out| {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(out));
        let mut entries = archive.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let (n, sha) = sha256_of(&mut e);
        drop(e);
        assert!(entries.next().is_none());
        (name, n, sha)
    });
    assert_eq!(entry, (rel.clone(), stored, blob_sha));
    // `core`: decompressed on the fly.
    let core = format!("{BASE}/namespaces/{ns}/coredumps/big/core");
    let (took_core, got) = timed_kubectl(cp, &core, sha256_of);
    assert_eq!(got, (GIB, raw_sha.clone()));
    // `core` in pieces with Range (what a 20 GiB core needs): the last 64 MiB, after skipping
    // 960 MiB of decompression inside our server.
    let tail = GIB - (64 << 20);
    let (took_tail, n, tail_sha) = curl_range(cp, &core, &format!("{tail}-"));
    assert_eq!(n, 64 << 20);
    let (_, expected_tail) = {
        let mut d = zstd::Decoder::new(std::fs::File::open(&blob_path).unwrap()).unwrap();
        std::io::copy(&mut (&mut d).take(tail), &mut std::io::sink()).unwrap();
        sha256_of(&mut d)
    };
    assert_eq!(tail_sha, expected_tail);
    // The same with plain kubectl credentials: `kubectl proxy` passes `Range` through.
    let (took_piece, piece_sha) = kubectl_proxy_range(cp, &core, 512 << 20, (576 << 20) - 1);
    let expected_piece = {
        let mut d = zstd::Decoder::new(std::fs::File::open(&blob_path).unwrap()).unwrap();
        std::io::copy(&mut (&mut d).take(512 << 20), &mut std::io::sink()).unwrap();
        sha256_of(&mut d.take(64 << 20)).1
    };
    assert_eq!(piece_sha, expected_piece);
    println!("kubectl proxy + Range 512..576 MiB in {took_piece:.1?}");
    let mib_s = |d: Duration, bytes: u64| bytes as f64 / (1 << 20) as f64 / d.as_secs_f64();
    println!(
        "through kube-apiserver: dump 1 GiB in {took_dump:.1?} ({:.0} MiB/s), core 1 GiB in {took_core:.1?} ({:.0} MiB/s), \
         core Range last 64 MiB (skip 960 MiB) in {took_tail:.1?} (skip ~{:.0} MiB/s)",
        mib_s(took_dump, stored),
        mib_s(took_core, GIB),
        mib_s(took_tail, GIB),
    );
    let limit = Duration::from_secs(60);
    assert!(took_dump < limit && took_core < limit && took_tail < limit);
    std::fs::remove_file(&blob_path).unwrap();
}
