//! End to end: the real server over TLS on a loopback port, driven by the real `kubectl`
//! binary with a kubeconfig holding a test CA and an admin client certificate.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::blobs::DirBlobStore;
use common::pki::Pki;
use coredump_apiserver::Registry;
use coredump_apiserver::cli::{ApiserverArgs, BackendKind, build};
use coredump_apiserver::delegation::{DelegationArgs, DelegationMode};
use coredump_store::BlobPath;
use std::sync::Arc;

struct Server {
    dir: tempfile::TempDir,
    port: u16,
    registry: Registry,
    blobs: Arc<DirBlobStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn write(path: &Path, data: &str) -> PathBuf {
    std::fs::write(path, data).unwrap();
    path.to_owned()
}

impl Server {
    async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    async fn start_with(etcd_servers: Vec<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        let d = dir.path();
        let args = ApiserverArgs {
            secure_port: 0,
            bind_address: "127.0.0.1".parse().unwrap(),
            tls_cert_file: Some(write(&d.join("server.pem"), &pki.server.cert_pem)),
            tls_private_key_file: Some(write(&d.join("server-key.pem"), &pki.server.key_pem)),
            client_ca_file: Some(write(&d.join("ca.pem"), &pki.ca_pem)),
            backend_kind: BackendKind::Local,
            local_path: d.join("blobs"),
            blob_store: Default::default(),
            etcd_servers,
            data_dir: d.join("data"),
            node_bound_users: Vec::new(),
            keep_per_signature: coredump_apiserver::registry::retention::KeepFlag(None),
            admin_groups: vec!["system:masters".into()],
            etcd_cafile: None,
            etcd_certfile: None,
            etcd_keyfile: None,
            etcd_compaction_interval: Duration::from_secs(300),
            delegation: DelegationArgs {
                delegated_auth: DelegationMode::Off,
                ..DelegationArgs::default()
            },
        };
        write(&d.join("admin.pem"), &pki.admin.cert_pem);
        write(&d.join("admin-key.pem"), &pki.admin.key_pem);
        let blobs = Arc::new(DirBlobStore::new(args.local_path.clone()));
        let config = build(&args, blobs.store.clone()).await.unwrap();
        let registry = config.state.registry.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(coredump_apiserver::serve_listener(
            listener,
            config.tls,
            config.state,
            async {
                let _ = rx.await;
            },
        ));
        let s = Self {
            dir,
            port,
            registry,
            blobs,
            stop: Some(tx),
            task: Some(task),
        };
        s.kubeconfig("admin.kubeconfig", true);
        s.kubeconfig("anonymous.kubeconfig", false);
        s
    }

    fn kubeconfig(&self, name: &str, with_user: bool) -> PathBuf {
        let d = self.dir.path();
        let user = if with_user {
            serde_json::json!({"client-certificate": d.join("admin.pem"), "client-key": d.join("admin-key.pem")})
        } else {
            // A token we do not accept: no certificate is presented (an empty user would make
            // kubectl prompt for a password).
            serde_json::json!({"token": "not-a-known-token"})
        };
        let kc = serde_json::json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": format!("https://127.0.0.1:{}", self.port), "certificate-authority": d.join("ca.pem")}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "u", "namespace": "ns1"}}],
        });
        write(&d.join(name), &kc.to_string())
    }

    fn command(&self, kubeconfig: &str, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(d.join(kubeconfig))
            .arg("--cache-dir")
            .arg(d.join("cache"))
            .arg("--request-timeout=30s");
        c.args(args);
        c.env_remove("KUBECONFIG").env("HOME", d);
        c
    }

    /// Runs kubectl, killing it after 60 s.
    async fn kubectl_as(&self, kubeconfig: &str, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::from(self.command(kubeconfig, args));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().expect("kubectl must be installed");
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in 60 s"))
            .unwrap()
    }

    async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_as("admin.kubeconfig", args).await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

/// Splits kubectl's table output into rows of cells (header first).
fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn core_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[2])
        .collect()
}

/// Stores a blob and its Coredump in-process (as the standalone ingest does).
async fn add_coredump(s: &Server, name: &str, uid: &str, raw: &[u8]) {
    let path = BlobPath {
        namespace: "ns1".into(),
        pod_uid: uid.into(),
        container: "app".into(),
        file: format!("{name}.core.zst"),
    };
    s.blobs.put_bytes(&path, &zstd::encode_all(raw, 3).unwrap());
    let mut c: coredump_api::Coredump =
        serde_json::from_value(common::coredump(name, "ns1", uid, "app", raw.len() as u64))
            .unwrap();
    c.metadata.namespace = "ns1".into();
    s.registry.create_coredump(c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_explain() {
    let s = Server::start().await;
    let out = s
        .ok(&["api-resources", "--api-group=coredump.fujitsu.com"])
        .await;
    let rows = table(&out);
    assert_eq!(
        rows[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    assert!(
        rows.contains(&vec![
            "coredumps".into(),
            "cd".into(),
            "coredump.fujitsu.com/v1alpha1".into(),
            "true".into(),
            "Coredump".into()
        ]),
        "{out}"
    );
    assert!(
        rows.contains(&vec![
            "coredumpendpoints".into(),
            "cde".into(),
            "coredump.fujitsu.com/v1alpha1".into(),
            "true".into(),
            "CoredumpEndpoint".into()
        ]),
        "{out}"
    );

    let out = s.ok(&["explain", "coredump.spec"]).await;
    assert!(
        out.contains("KIND:       Coredump")
            || out.contains("KIND:\tCoredump")
            || out.contains("Coredump"),
        "{out}"
    );
    for field in ["podUID", "crashTime", "signal", "executable"] {
        assert!(out.contains(field), "explain lacks {field}: {out}");
    }
    let out = s.ok(&["explain", "coredumpendpoints.spec.podUID"]).await;
    assert!(out.contains("podUID"), "{out}");
    // The schema is generated from the Rust types: their doc comments are the descriptions and
    // their enums are listed.
    let out = s.ok(&["explain", "coredump.spec.pid"]).await;
    assert!(
        out.contains("Process id in the initial pid namespace"),
        "{out}"
    );
    let out = s.ok(&["explain", "coredump.status.state"]).await;
    assert!(out.contains("ENUM:"), "{out}");
    for state in coredump_api::CoredumpState::ALL {
        assert!(
            out.contains(state.as_str()),
            "explain lacks {state:?}: {out}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_delete_with_kubectl() {
    let s = Server::start().await;
    let manifest = s.dir.path().join("ep.yaml");
    write(
        &manifest,
        "apiVersion: coredump.fujitsu.com/v1alpha1\nkind: CoredumpEndpoint\nmetadata:\n  name: web-0\n  namespace: ns1\nspec:\n  podUID: uid-1\n",
    );
    let out = s.ok(&["create", "-f", manifest.to_str().unwrap()]).await;
    assert_eq!(
        out.trim(),
        "coredumpendpoint.coredump.fujitsu.com/web-0 created"
    );

    let rows = table(&s.ok(&["get", "coredumpendpoints"]).await);
    assert_eq!(rows[0], ["NAME", "PODUID", "AGE"]);
    assert_eq!(rows[1][..2], ["web-0", "uid-1"]);

    let yaml = s.ok(&["get", "cde", "web-0", "-o", "yaml"]).await;
    assert!(yaml.contains("kind: CoredumpEndpoint"), "{yaml}");
    assert!(yaml.contains("podUID: uid-1"), "{yaml}");
    assert!(yaml.contains("uid: "), "{yaml}");

    let out = s.ok(&["label", "cde", "web-0", "team=a"]).await;
    assert_eq!(
        out.trim(),
        "coredumpendpoint.coredump.fujitsu.com/web-0 labeled"
    );
    let rows = table(&s.ok(&["get", "cde", "-l", "team=a", "-o", "name"]).await);
    assert_eq!(rows, [["coredumpendpoint.coredump.fujitsu.com/web-0"]]);
    write(
        &manifest,
        "apiVersion: coredump.fujitsu.com/v1alpha1\nkind: CoredumpEndpoint\nmetadata:\n  name: web-0\n  namespace: ns1\n  annotations:\n    note: applied\nspec:\n  podUID: uid-1\n",
    );
    let out = s.ok(&["apply", "-f", manifest.to_str().unwrap()]).await;
    assert!(
        out.trim()
            .ends_with("coredumpendpoint.coredump.fujitsu.com/web-0 configured"),
        "{out}"
    );
    let note = s
        .ok(&[
            "get",
            "cde",
            "web-0",
            "-o",
            "jsonpath={.metadata.annotations.note}",
        ])
        .await;
    assert_eq!(note, "applied");
    write(
        &manifest,
        "apiVersion: coredump.fujitsu.com/v1alpha1\nkind: CoredumpEndpoint\nmetadata:\n  name: web-0\n  namespace: ns1\nspec:\n  podUID: uid-1\n",
    );

    add_coredump(&s, "crash-1", "uid-1", &core_bytes(5000)).await;
    let rows = table(&s.ok(&["get", "coredumps", "-A"]).await);
    assert_eq!(
        rows[0],
        [
            "NAMESPACE",
            "NAME",
            "POD",
            "CONTAINER",
            "SIGNAL",
            "EXECUTABLE",
            "SIZE",
            "STATE",
            "SIGNATURE",
            "AGE"
        ]
    );
    assert_eq!(
        rows[1][..8],
        [
            "ns1", "crash-1", "web-0", "app", "SIGSEGV", "/bin/app", "4.9KiB", "Stored"
        ]
    );

    let out = s.kubectl(&["get", "coredump", "nope"]).await;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (NotFound): coredumps.coredump.fujitsu.com \"nope\" not found"
    );
    let out = s
        .kubectl(&["create", "-f", manifest.to_str().unwrap()])
        .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (AlreadyExists): error when creating \"".to_owned()
            + manifest.to_str().unwrap()
            + "\": coredumpendpoints.coredump.fujitsu.com \"web-0\" already exists"
    );

    let blob = BlobPath {
        namespace: "ns1".into(),
        pod_uid: "uid-1".into(),
        container: "app".into(),
        file: "crash-1.core.zst".into(),
    };
    assert!(s.blobs.exists(&blob));
    let out = s.ok(&["delete", "coredump", "crash-1"]).await;
    assert_eq!(
        out.trim(),
        "coredump.coredump.fujitsu.com \"crash-1\" deleted"
    );
    assert!(
        !s.blobs.exists(&blob),
        "blob must be deleted with its Coredump"
    );
    let rows = table(&s.ok(&["get", "coredumps", "-A"]).await);
    assert!(rows.is_empty(), "{rows:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_downloads_are_byte_identical() {
    let s = Server::start().await;
    s.registry
        .create_endpoint(
            serde_json::from_value({
                let mut e = common::endpoint("web-0", "uid-1");
                e["metadata"]["namespace"] = "ns1".into();
                e
            })
            .unwrap(),
        )
        .await
        .unwrap();
    let raw = core_bytes(2 * 1024 * 1024 + 3);
    add_coredump(&s, "crash-1", "uid-1", &raw).await;
    let side = BlobPath {
        namespace: "ns1".into(),
        pod_uid: "uid-1".into(),
        container: "sidecar".into(),
        file: "x.core.zst".into(),
    };
    s.blobs.put_bytes(&side, b"sidecar blob");

    let out = s
        .kubectl(&[
            "get",
            "--raw",
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/ns1/coredumps/crash-1/core",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == raw,
        "core differs: {} vs {} bytes",
        out.stdout.len(),
        raw.len()
    );

    let out = s
        .kubectl(&[
            "get",
            "--raw",
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/ns1/coredumpendpoints/web-0/dump",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump_file = s.dir.path().join("core.tar.gz");
    std::fs::write(&dump_file, &out.stdout).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&dump_file).unwrap(),
    ));
    let mut entries = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        entries.push((e.path().unwrap().to_string_lossy().into_owned(), data));
    }
    let blob_root = s.dir.path().join("blobs");
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ns1/uid-1/app/crash-1.core.zst",
            "ns1/uid-1/sidecar/x.core.zst"
        ]
    );
    for (name, data) in &entries {
        assert!(
            *data == std::fs::read(blob_root.join(name)).unwrap(),
            "{name} differs from its blob"
        );
    }

    let out = s
        .kubectl(&[
            "get",
            "--raw",
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/ns1/coredumpendpoints/nope/dump",
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Error from server (NotFound)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_sees_new_objects() {
    let s = Server::start().await;
    let mut child = s
        .command(
            "admin.kubeconfig",
            &["get", "coredumpendpoints", "-w", "--request-timeout=20s"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // kubectl prints nothing for an empty list when watching; give it time to start watching.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut e: coredump_api::CoredumpEndpoint =
        serde_json::from_value(common::endpoint("late-pod", "uid-9")).unwrap();
    e.metadata.namespace = "ns1".into();
    s.registry.create_endpoint(e).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    let mut found = false;
    while let Ok(Some(line)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        seen.push(line.clone());
        if line.split_whitespace().next() == Some("late-pod") {
            assert_eq!(line.split_whitespace().nth(1), Some("uid-9"));
            found = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        found,
        "kubectl get -w never showed the new object: {seen:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_certificate_is_refused() {
    let s = Server::start().await;
    let out = s
        .kubectl_as("anonymous.kubeconfig", &["get", "coredumps", "-A"])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // client-go's wording of a 401 answered during discovery.
    assert_eq!(
        err.trim().lines().last().unwrap(),
        "error: You must be logged in to the server (the server has asked for the client to provide credentials)"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_backend_serves_kubectl() {
    let etcd_dir = tempfile::tempdir().unwrap();
    let etcd = coredump_testplane::start_etcd(&etcd_dir.path().join("etcd")).unwrap();
    let s = Server::start_with(vec![etcd.url()]).await;
    let manifest = s.dir.path().join("ep.yaml");
    write(
        &manifest,
        "apiVersion: coredump.fujitsu.com/v1alpha1\nkind: CoredumpEndpoint\nmetadata:\n  name: web-0\nspec:\n  podUID: uid-1\n",
    );
    assert_eq!(
        s.ok(&["create", "-f", manifest.to_str().unwrap()])
            .await
            .trim(),
        "coredumpendpoint.coredump.fujitsu.com/web-0 created"
    );
    let rows = table(&s.ok(&["get", "cde"]).await);
    assert_eq!(rows[1][..2], ["web-0", "uid-1"]);
    assert!(
        !s.dir.path().join("data/metadata.redb").exists(),
        "the embedded store must not be used"
    );
    s.stop().await;
    drop(etcd);
}
