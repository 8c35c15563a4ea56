//! Cluster-mode fixtures: the deploy manifest's ServiceAccounts and RBAC applied to the real
//! kube-apiserver, kubeconfigs carrying those accounts' tokens, and `coredump-detector agent` /
//! `gc` as host processes (killed on drop).
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use coredump_testplane::ControlPlane;
use sha2::{Digest, Sha256};

use crate::aggregated::{ApiServer, eventually, free_port, submit};

/// The API side of an install as host processes: the manifest's ServiceAccounts and RBAC in a
/// fresh namespace, a private etcd, and `coredump-detector apiserver` with the `coredump-api`
/// token serving `blobs`, registered with kube-apiserver and Available.
pub struct ApiStack {
    /// The install's namespace.
    pub system: String,
    pub server: ApiServer,
    _etcd: coredump_testplane::EtcdProcess,
}

impl ApiStack {
    pub fn start(cp: &ControlPlane, dir: &Path, blobs: &Path) -> ApiStack {
        let system = cp.create_namespace("coredump-system").unwrap();
        apply_manifest_rbac(cp, &system);
        let etcd = coredump_testplane::start_etcd(&dir.join("etcd")).unwrap();
        let ca = coredump_testplane::TestCa::new("coredump-serving-ca").unwrap();
        let kubeconfig = service_account_kubeconfig(cp, &system, "coredump-api", dir);
        let server = ApiServer::start(dir, &ca, &system, &etcd.url(), blobs, &kubeconfig);
        crate::aggregated::register_apiservice(cp, &system, server.port, &ca.cert_pem());
        eventually(Duration::from_secs(120), "APIService Available", || {
            crate::aggregated::available(cp)
                .starts_with("True")
                .then_some(())
        });
        ApiStack {
            system,
            server,
            _etcd: etcd,
        }
    }
}

/// Kinds of the manifest that make up identities and rights (the workloads, Services and the
/// APIService are replaced by host processes and an ExternalName Service in these tests).
const RBAC_KINDS: &[&str] = &[
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// Creates the ServiceAccounts and RBAC of `coredump-detector deploy NS coredump` exactly as the
/// manifest has them.
pub fn apply_manifest_rbac(cp: &ControlPlane, ns: &str) {
    let mut opts = coredump_deploy::DeployOptions::new(ns, "coredump");
    opts.create_namespace = false;
    let certs = coredump_deploy::generate_certs(ns, "coredump").unwrap();
    let yaml = coredump_deploy::render(&opts, &certs).unwrap();
    let docs: Vec<&str> = yaml
        .split("\n---\n")
        .filter(|doc| {
            doc.lines()
                .find_map(|l| l.strip_prefix("kind: "))
                .is_some_and(|k| RBAC_KINDS.contains(&k.trim()))
        })
        .collect();
    assert!(
        docs.len() >= 10,
        "RBAC documents in the manifest: {}",
        docs.len()
    );
    let out = crate::aggregated::kubectl_stdin(
        cp,
        &["create", "-f", "-", "--request-timeout=30s"],
        &docs.join("\n---\n"),
    );
    assert!(
        out.status.success(),
        "creating the manifest's RBAC: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A kubeconfig authenticating as ServiceAccount `ns/sa` with a token (TokenRequest API).
pub fn service_account_kubeconfig(cp: &ControlPlane, ns: &str, sa: &str, dir: &Path) -> PathBuf {
    coredump_testplane::aggregation::service_account_kubeconfig(cp, ns, sa, dir).unwrap()
}

/// `GET http://127.0.0.1:<port><path>`: status code and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The value of the metric line `name` (exact name with labels) in a text exposition.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A long-running role (`agent`, `gc`) as a host process, with its log; SIGKILLed on drop.
pub struct Role {
    pub args: Vec<String>,
    pub log: PathBuf,
    pub port: u16,
    /// A command that runs the binary (e.g. `unshare --mount`), empty for none.
    pub wrapper: Vec<String>,
    child: Option<Child>,
}

impl Role {
    pub fn new(args: Vec<String>, log: PathBuf, port: u16) -> Role {
        Role {
            args,
            log,
            port,
            wrapper: Vec::new(),
            child: None,
        }
    }

    pub fn spawn(&mut self) {
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(crate::common::detector());
                c
            }
            None => Command::new(crate::common::detector()),
        };
        command
            .args(&self.args)
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "info");
        // Tied to the test binary (PR_SET_PDEATHSIG), output appended to the log.
        self.child = Some(coredump_testplane::spawn_logged(command, &self.log).unwrap());
    }

    /// Waits until `/readyz` answers 200, failing early if the process exits.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "{} exited with {status}:\n{}",
                    self.args[0],
                    self.log_text()
                );
            }
            if http_get(self.port, "/readyz").is_some_and(|(s, _)| s == 200) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{} not ready within {timeout:?}:\n{}",
                self.args[0],
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn metrics(&self) -> String {
        http_get(self.port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// SIGKILL, as an OOM kill or a node problem would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, as a pod deletion does; returns whether it exited successfully within 30 s.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        );
        crate::common::wait_child(&mut child, Duration::from_secs(30)).is_some_and(|s| s.success())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit by itself; `None` (and a SIGKILL) if it runs on.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        crate::common::wait_child(&mut child, timeout)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Signal number of SIGSEGV.
pub const SIGSEGV: i32 = 11;

/// A 64-hex container id unique to this run and `n`.
pub fn container_id(n: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:032x}{:024x}{n:08x}", std::process::id())
}

/// Creates Pod `name` bound to `node` with one container `app`, and sets that container's
/// status (`containerID`) as a kubelet would once it runs. Returns the pod UID.
pub fn create_pod(
    cp: &ControlPlane,
    ns: &str,
    name: &str,
    node: &str,
    cid: &str,
    annotations: serde_json::Value,
) -> String {
    let pod = submit(
        cp,
        "create",
        &serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"nodeName": node,
                     "containers": [{"name": "app", "image": "registry.example/crasher:1"}]}}),
    );
    let pod: serde_json::Value = serde_json::from_str(&pod).unwrap();
    let status = serde_json::json!({"status": {"phase": "Running", "containerStatuses": [{
        "name": "app", "image": "registry.example/crasher:1",
        "imageID": "registry.example/crasher@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "containerID": format!("containerd://{cid}"), "ready": true, "restartCount": 0,
        "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}});
    cp.kubectl_ok(&[
        "patch",
        "pod",
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
        "--request-timeout=30s",
    ])
    .unwrap();
    pod["metadata"]["uid"].as_str().unwrap().to_owned()
}

/// The systemd-driver cgroup kubelet creates for a containerd container of a burstable pod.
pub fn pod_cgroup(uid: &str, cid: &str) -> crate::common::FakePodCgroup {
    crate::common::FakePodCgroup::create(&format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{cid}.scope",
        uid.replace('-', "_")
    ))
}

/// Crashes a crasher of `mib` MiB of `content` inside `cgroup`; returns its pid.
pub fn crash_in(
    cgroup: &crate::common::FakePodCgroup,
    mib: usize,
    seed: u64,
    content: &str,
) -> u32 {
    let mut crash = crate::common::crasher(mib, seed, content, "segv", true);
    let pid = crash.pid;
    cgroup.enter(pid);
    crash.go();
    let (signal, dumped) = crash.wait(Duration::from_secs(60));
    assert_eq!((signal, dumped), (SIGSEGV, true));
    pid
}

/// Every Coredump in `ns`, as admin sees them through kube-apiserver.
pub fn coredumps(cp: &ControlPlane, ns: &str) -> Vec<coredump_api::Coredump> {
    let out = cp
        .kubectl_ok(&[
            "get",
            "coredumps",
            "-n",
            ns,
            "-o",
            "json",
            "--request-timeout=20s",
        ])
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    serde_json::from_value(list["items"].clone()).unwrap()
}

pub fn wait_coredump(
    cp: &ControlPlane,
    ns: &str,
    pid: u32,
    agent: &Role,
) -> coredump_api::Coredump {
    let start = Instant::now();
    loop {
        if let Some(c) = coredumps(cp, ns).into_iter().find(|c| c.spec.pid == pid) {
            return c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no Coredump for pid {pid}; agent log:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `CoreDumped` events on pod `pod`.
pub fn crash_events(cp: &ControlPlane, ns: &str, pod: &str) -> Vec<serde_json::Value> {
    let out = cp
        .kubectl_ok(&[
            "get",
            "events",
            "-n",
            ns,
            &format!("--field-selector=involvedObject.name={pod}"),
            "-o",
            "json",
            "--request-timeout=20s",
        ])
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "CoreDumped")
        .cloned()
        .collect()
}

/// `kubectl get --raw <path>` through kube-apiserver, as bytes.
pub fn get_raw(cp: &ControlPlane, path: &str) -> Vec<u8> {
    let out = cp.kubectl(&["get", &format!("--raw={path}"), "--request-timeout=60s"]);
    assert!(
        out.status.success(),
        "get --raw {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Files (relative paths) under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<String> {
    pub fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The decompressed core of a stored blob, checked against the record's size and digest.
pub fn stored_core(blobs: &Path, c: &coredump_api::Coredump) -> Vec<u8> {
    let zst = std::fs::read(blobs.join(&c.status.blob_path)).unwrap();
    let core = zstd::decode_all(&zst[..]).unwrap();
    assert_eq!(core.len() as u64, c.status.raw_size, "{}", c.metadata.name);
    assert_eq!(hex::encode(Sha256::digest(&core)), c.status.sha256);
    core
}

/// Whether `pattern` is the pipe handler or a coredump socket of the agent whose host
/// directory is `host`.
pub fn host_dir_owns(host: &Path, pattern: &str) -> bool {
    let handler = format!("|{} handle ", host.join("bin/coredump-detector").display());
    let socket = format!("@@{}/capture-", host.join("run").display());
    pattern.starts_with(&handler) || pattern.starts_with(&socket)
}

pub struct Agent {
    pub role: Role,
    pub host: PathBuf,
}

impl Agent {
    /// Starts the agent with `--non-pod=<non_pod>` and waits until it is ready.
    pub fn start(dir: &Path, blobs: &Path, node: &str, kubeconfig: &Path, non_pod: &str) -> Agent {
        Agent::configure(dir, blobs, node, kubeconfig, non_pod, &[]).started()
    }

    /// [`Agent::start`] with `extra` flags, not started yet (host directory `dir/host`, log
    /// `dir/agent.log`): [`Agent::started`] or [`Agent::spawn`] starts it.
    pub fn configure(
        dir: &Path,
        blobs: &Path,
        node: &str,
        kubeconfig: &Path,
        non_pod: &str,
        extra: &[&str],
    ) -> Agent {
        let host = dir.join("host");
        let port = free_port();
        let args = vec![
            "agent".to_string(),
            format!("--host-dir={}", host.display()),
            format!("--local-path={}", blobs.display()),
            "--backend-kind=local".into(),
            format!("--metrics-bind-address=127.0.0.1:{port}"),
            format!("--node-name={node}"),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--ns-disk-quota=1GB".into(),
            format!("--non-pod={non_pod}"),
            "--host-namespace=default".into(),
            "--min-free=0".into(),
            // The host's disk is not the node's: its fill level must not hold the test's cores.
            "--min-free-blobs=0".into(),
            // A crash whose pod is missing is recorded after 5 s instead of 30.
            "--resolve-max-wait-ms=5000".into(),
        ];
        // An extra `--flag=value` replaces the default of the same flag.
        let mut args: Vec<String> = args
            .into_iter()
            .filter(|a| {
                let name = a.split('=').next().unwrap_or_default();
                !extra.iter().any(|e| e.split('=').next() == Some(name))
            })
            .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        Agent {
            role: Role::new(args, dir.join("agent.log"), port),
            host,
        }
    }

    pub fn pattern(&self) -> String {
        format!(
            "|{} handle {}",
            self.host.join("bin/coredump-detector").display(),
            coredump_capture::handler::PATTERN_SPECIFIERS
        )
    }

    pub fn spawn(&mut self) {
        self.role.spawn();
        self.role.wait_ready(Duration::from_secs(120));
    }

    /// This agent, started and ready.
    pub fn started(mut self) -> Agent {
        self.spawn();
        self
    }

    /// Whether `pattern` is one of this agent's: its pipe handler or its coredump socket.
    pub fn owns(&self, pattern: &str) -> bool {
        host_dir_owns(&self.host, pattern)
    }

    pub fn spool_entries(&self) -> Vec<String> {
        std::fs::read_dir(self.host.join("spool"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            // As the spool itself lists entries: `slots` are the handler's concurrency slots,
            // dot-names the agent's own (`.binaries` kept for gdb, the full-disk `.reserve`).
            .filter(|n| n != "slots" && !n.starts_with('.'))
            .collect()
    }
}
