//! API server replicas are stateless apart from etcd and the blob store (issue 13, point 5):
//! two real `coredump-detector apiserver` processes on loopback share one real etcd and one
//! bucket on a real SeaweedFS, and a client may be answered by either. Pagination tokens,
//! watch resource versions and downloads obtained from one replica work on the other.
//!
//! The replicas run without kube-apiserver (`--delegated-auth=off`, client certificates of a
//! test CA, the `system:masters` admin group) so each can be addressed on its own port; `curl`
//! is the client because it sends `Range` and streams a watch. Behind kube-apiserver the
//! aggregator dials one Service, which is the point: any replica may answer.
#![allow(clippy::unwrap_used)]

mod aggregated;
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use aggregated::ApiServer;
use coredump_store::{BlobPath, BlobStore};
use coredump_testplane::{EtcdProcess, IssuedCert, TestCa, seaweedfs::SeaweedFs};
use serde_json::{Value, json};

const BASE: &str = "/apis/coredump.fujitsu.com/v1alpha1";

/// One etcd, one bucket, two replicas, and the client's files.
struct Replicas {
    replicas: [ApiServer; 2],
    client: Client,
    /// The `--blob-store` flags of the shared bucket.
    flags: Vec<String>,
    // Drop order: the replicas before the stores they use, the directory last.
    _weed: SeaweedFs,
    _etcd: EtcdProcess,
    dir: tempfile::TempDir,
}

/// What curl presents: the CA the replicas' serving certificate chains to and an admin client
/// certificate.
struct Client {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

impl Replicas {
    fn start(prefix: &str) -> Replicas {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let etcd = coredump_testplane::start_etcd(&d.join("etcd")).unwrap();
        let weed = coredump_testplane::seaweedfs::start_seaweedfs().unwrap();
        weed.create_bucket("cores").unwrap();
        let flags = weed.blob_store_flags("cores", prefix);
        let ca = TestCa::new("replicas-ca").unwrap();
        let serving: IssuedCert = ca
            .issue_server("localhost", &["localhost", "127.0.0.1"])
            .unwrap();
        let admin = ca.issue_client("admin", Some("system:masters")).unwrap();
        let client = Client {
            ca: write(&d.join("ca.crt"), &ca.cert_pem()),
            cert: write(&d.join("admin.crt"), &admin.cert_pem),
            key: write(&d.join("admin.key"), &admin.key_pem),
        };
        let tls_cert = write(&d.join("tls.crt"), &serving.cert_pem);
        let tls_key = write(&d.join("tls.key"), &serving.key_pem);
        let replica = |n: usize| {
            let mut args = vec![
                "apiserver".to_string(),
                "--bind-address=127.0.0.1".into(),
                format!("--tls-cert-file={}", tls_cert.display()),
                format!("--tls-private-key-file={}", tls_key.display()),
                format!("--client-ca-file={}", client.ca.display()),
                "--delegated-auth=off".into(),
                format!("--etcd-servers={}", etcd.url()),
                // Each replica's own directories: nothing may land in them with a bucket.
                format!("--local-path={}", d.join(format!("local-{n}")).display()),
                format!("--data-dir={}", d.join(format!("data-{n}")).display()),
            ];
            args.extend(flags.iter().cloned());
            ApiServer::start_with(args, d.join(format!("replica-{n}.log")))
        };
        let replicas = [replica(1), replica(2)];
        Replicas {
            replicas,
            client,
            flags,
            _weed: weed,
            _etcd: etcd,
            dir,
        }
    }

    /// The `curl` command line for `path` on replica `n` (1 or 2), with `extra` arguments.
    fn curl_command(&self, n: usize, path: &str, extra: &[&str]) -> Command {
        let port = self.replicas[n - 1].port;
        let c = &self.client;
        let mut command = Command::new("curl");
        command
            .args(["--silent", "--show-error", "--max-time", "30"])
            .arg("--cacert")
            .arg(&c.ca)
            .arg("--cert")
            .arg(&c.cert)
            .arg("--key")
            .arg(&c.key)
            .args(extra)
            .arg(format!("https://localhost:{port}{path}"));
        command
    }

    /// `curl` against replica `n` with `extra` arguments; fails the test on a transport error.
    fn curl(&self, n: usize, path: &str, extra: &[&str]) -> Output {
        let out = self
            .curl_command(n, path, extra)
            .output()
            .expect("curl must be installed (scripts/install-deps.sh)");
        assert!(
            out.status.success(),
            "curl {path} on replica {n}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.replicas[n - 1].log_text()
        );
        out
    }

    /// GET, the body as JSON.
    fn get_json(&self, n: usize, path: &str) -> Value {
        let out = self.curl(n, path, &[]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// POST `object` to `path` on replica `n`; the created object.
    fn create(&self, n: usize, path: &str, object: &Value) -> Value {
        let out = self.curl(
            n,
            path,
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &object.to_string(),
            ],
        );
        let created: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            created["metadata"]["resourceVersion"].is_string(),
            "creating on replica {n}: {created}"
        );
        created
    }

    fn endpoint(&self, n: usize, ns: &str, name: &str) -> Value {
        self.create(
            n,
            &format!("{BASE}/namespaces/{ns}/coredumpendpoints"),
            &json!({"apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
                    "metadata": {"name": name}, "spec": {"podUID": format!("uid-{name}")}}),
        )
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            r.stop();
        }
        for n in 1..=2 {
            let local = self.dir.path().join(format!("local-{n}"));
            // Checked here too so that every test of this file proves it.
            if !std::thread::panicking() {
                assert!(
                    !local.exists() || std::fs::read_dir(&local).unwrap().next().is_none(),
                    "replica {n} stored something under --local-path with a bucket selected"
                );
            }
        }
    }
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_continue_token_from_one_replica_pages_on_the_other() {
    let r = Replicas::start("paging");
    let ns = "paging";
    let mut created: Vec<String> = (0..7).map(|i| format!("pod-{i:02}")).collect();
    for (i, name) in created.iter().enumerate() {
        r.endpoint(1 + i % 2, ns, name);
    }
    created.sort();
    let url = format!("{BASE}/namespaces/{ns}/coredumpendpoints");
    let mut seen = Vec::new();
    let mut token = String::new();
    // Pages of 3 alternate between the replicas: 1, 2, 1 (7 items: 3 + 3 + 1).
    for page in 0..5 {
        let n = 1 + page % 2;
        let query = if token.is_empty() {
            "?limit=3".to_string()
        } else {
            format!("?limit=3&continue={token}")
        };
        let list = r.get_json(n, &format!("{url}{query}"));
        assert_eq!(list["kind"], "CoredumpEndpointList", "{list}");
        seen.extend(names(&list));
        token = list["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if token.is_empty() {
            break;
        }
    }
    assert!(token.is_empty(), "still paging after 5 pages");
    assert_eq!(
        seen, created,
        "pages across replicas: no duplicates, no gaps"
    );
}

#[test]
fn a_watch_on_one_replica_sees_writes_through_the_other_and_resumes_from_its_versions() {
    let r = Replicas::start("watch");
    let ns = "watch";
    let url = format!("{BASE}/namespaces/{ns}/coredumpendpoints");
    let first = r.endpoint(1, ns, "before");
    let rv = first["metadata"]["resourceVersion"].as_str().unwrap();

    // Open on replica 2, then write through replica 1.
    let watch = r
        .curl_command(
            2,
            &format!("{url}?watch=1&resourceVersion={rv}&timeoutSeconds=6"),
            &["--no-buffer"],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let live = r.endpoint(1, ns, "during");
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success(), "the watch on replica 2 failed");
    let events: Vec<Value> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let added: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        added,
        [("ADDED", "during")],
        "replica 2 watching from replica 1's version {rv}: {events:?}"
    );
    assert_eq!(
        events[0]["object"]["metadata"]["resourceVersion"],
        live["metadata"]["resourceVersion"]
    );

    // Resuming on replica 2 from a version replica 1 handed out replays what came after it.
    let resumed = r.curl(
        2,
        &format!("{url}?watch=1&resourceVersion={rv}&timeoutSeconds=1"),
        &[],
    );
    let first_event: Value =
        serde_json::from_slice(resumed.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first_event["type"], "ADDED", "{first_event}");
    assert_eq!(first_event["object"]["metadata"]["name"], "during");
}

/// The raw core: 6 MB of a pattern that compresses somewhat.
fn core_bytes() -> Vec<u8> {
    (0..1_500_000u32)
        .flat_map(|i| (i / 3).wrapping_mul(2_654_435_761).to_le_bytes())
        .collect()
}

#[test]
fn a_core_and_a_dump_download_identically_from_either_replica() {
    let r = Replicas::start("downloads");
    let ns = "downloads";
    let uid = "0f5e4a6b-1c2d-4e3f-8a9b-0c1d2e3f4a5b";
    // The crash as the agent leaves it: the core in the bucket (seekable zstd), the records
    // created through replica 1.
    let raw = core_bytes();
    let mut writer =
        coredump_seekable::SeekableWriter::with_frame_size(Vec::new(), 1, 0, 1 << 20).unwrap();
    writer.write_all(&raw).unwrap();
    let compressed = writer.finish().unwrap();
    let bucket = coredump_objstore::BlobStoreArgs::parse_flags(&r.flags)
        .unwrap()
        .open()
        .unwrap()
        .unwrap();
    let src = r.dir.path().join("crash.core.zst");
    std::fs::write(&src, &compressed).unwrap();
    let blob = BlobPath::new(ns, uid, "app", "crash.core.zst").unwrap();
    bucket.put_file(&blob, &src).unwrap();
    r.create(
        1,
        &format!("{BASE}/namespaces/{ns}/coredumpendpoints"),
        &json!({"apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
                "metadata": {"name": "web-0"}, "spec": {"podUID": uid}}),
    );
    r.create(
        1,
        &format!("{BASE}/namespaces/{ns}/coredumps"),
        &json!({
            "apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "Coredump",
            "metadata": {"name": "crash"},
            "spec": {"nodeName": "node-b", "podName": "web-0", "podUID": uid,
                     "containerName": "app", "pid": 42, "signal": 11, "signalName": "SIGSEGV",
                     "executable": "/bin/app", "crashTime": "2026-12-07T10:00:00Z"},
            "status": {"state": "Stored", "coreSize": raw.len(), "compression": "zstd",
                       "blobPath": format!("{ns}/{uid}/app/crash.core.zst")}
        }),
    );
    let core_url = format!("{BASE}/namespaces/{ns}/coredumps/crash/core");
    let dump_url = format!("{BASE}/namespaces/{ns}/coredumpendpoints/web-0/dump");
    let (start, end) = (3_000_000usize, 3_250_000usize);
    let range = format!("Range: bytes={start}-{end}");
    for n in [1, 2] {
        let core = r.curl(n, &core_url, &["--fail"]).stdout;
        assert_eq!(core.len(), raw.len(), "replica {n}");
        assert!(core == raw, "the core from replica {n} differs");
        let piece = r.curl(n, &core_url, &["--fail", "-H", &range]).stdout;
        assert!(
            piece == raw[start..=end],
            "the range from replica {n} differs"
        );
        let dump = r.curl(n, &dump_url, &["--fail"]).stdout;
        let entries = coredump_testkit::archive::untar_gz(&dump).unwrap();
        let name = format!("{ns}/{uid}/app/crash.core.zst");
        let in_dump = entries
            .iter()
            .find(|(path, _)| path == &name)
            .map(|(_, bytes)| bytes)
            .unwrap_or_else(|| panic!("{name} not in replica {n}'s dump"));
        assert!(
            *in_dump == compressed,
            "the dump's core from replica {n} differs"
        );
    }
}
