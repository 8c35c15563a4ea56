//! Our `coredump-detector apiserver` process behind the real kube-apiserver: its ServiceAccount
//! (bound as the deploy manifest binds it), its serving certificate, the APIService with an
//! ExternalName Service to `localhost`, and start / stop of the process on a fixed port.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use coredump_testplane::{ControlPlane, TestCa};

pub const BASE: &str = "/apis/coredump.fujitsu.com/v1alpha1";
pub const APISERVICE: &str = "v1alpha1.coredump.fujitsu.com";
pub const SERVICE: &str = "coredump";

/// `kubectl <args>` (admin) with `input` on stdin.
pub fn kubectl_stdin(cp: &ControlPlane, args: &[&str], input: &str) -> Output {
    let mut child = cp
        .kubectl_command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `kubectl apply -f -`, or `create` when `create`; returns stdout.
pub fn submit(cp: &ControlPlane, verb: &str, object: &serde_json::Value) -> String {
    let out = kubectl_stdin(
        cp,
        &[verb, "-f", "-", "-o", "json", "--request-timeout=30s"],
        &object.to_string(),
    );
    assert!(
        out.status.success(),
        "{verb} {object}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn eventually<T>(timeout: Duration, what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = condition() {
            return v;
        }
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// ServiceAccount `coredump-api` in `ns` with `system:auth-delegator`, the kube-system
/// `extension-apiserver-authentication-reader` Role and `get pods`; a kubeconfig with its token.
pub fn api_server_identity(cp: &ControlPlane, ns: &str, dir: &Path) -> PathBuf {
    let sa = "coredump-api";
    let token = cp.service_account_token(ns, sa).unwrap();
    let subject = serde_json::json!({"kind": "ServiceAccount", "name": sa, "namespace": ns});
    let cluster_role = |name: &str| serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name});
    submit(
        cp,
        "apply",
        &serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("{ns}-auth-delegator")},
        "roleRef": cluster_role("system:auth-delegator"), "subjects": [subject]}),
    );
    submit(
        cp,
        "apply",
        &serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("{ns}-auth-reader"), "namespace": "kube-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "extension-apiserver-authentication-reader"},
        "subjects": [subject]}),
    );
    submit(
        cp,
        "apply",
        &serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "coredump-api-pods"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    );
    submit(
        cp,
        "apply",
        &serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("{ns}-pods")},
        "roleRef": cluster_role("coredump-api-pods"), "subjects": [subject]}),
    );
    let ca = dir.join("cluster-ca.crt");
    std::fs::write(&ca, cp.server_ca_pem()).unwrap();
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": cp.server_url(), "certificate-authority": ca}}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": sa}}],
    });
    let path = dir.join("coredump-api.kubeconfig");
    std::fs::write(&path, kubeconfig.to_string()).unwrap();
    path
}

/// The APIService `v1alpha1.coredump.fujitsu.com` → Service `coredump` in `ns` (ExternalName
/// `localhost`) on `port`, trusting `ca_pem`.
pub fn register_apiservice(cp: &ControlPlane, ns: &str, port: u16, ca_pem: &str) {
    submit(
        cp,
        "apply",
        &serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": ns},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                 "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}}),
    );
    submit(
        cp,
        "apply",
        &serde_json::json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": APISERVICE},
        "spec": {"group": "coredump.fujitsu.com", "version": "v1alpha1",
                 "groupPriorityMinimum": 1000, "versionPriority": 15,
                 "service": {"namespace": ns, "name": SERVICE, "port": port},
                 "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem)}}),
    );
}

/// `status reason` of the APIService's Available condition.
pub fn available(cp: &ControlPlane) -> String {
    let jsonpath =
        r#"-o=jsonpath={range .status.conditions[?(@.type=="Available")]}{.status} {.reason}{end}"#;
    cp.kubectl_ok(&[
        "get",
        "apiservice",
        APISERVICE,
        jsonpath,
        "--request-timeout=10s",
    ])
    .unwrap_or_else(|e| e.to_string())
}

/// A `coredump-detector apiserver` process; killed on drop.
pub struct ApiServer {
    pub args: Vec<String>,
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ApiServer {
    /// Serving certificate for `coredump.<ns>.svc` and localhost, signed by `ca`, written to `dir`.
    pub fn start(
        dir: &Path,
        ca: &TestCa,
        ns: &str,
        etcd_url: &str,
        local_path: &Path,
        kubeconfig: &Path,
    ) -> ApiServer {
        let svc = format!("{SERVICE}.{ns}.svc");
        let serving = ca
            .issue_server(&svc, &[&svc, "localhost", "127.0.0.1"])
            .unwrap();
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert, &serving.cert_pem).unwrap();
        std::fs::write(&key, &serving.key_pem).unwrap();
        let port = free_port();
        let args = vec![
            "apiserver".to_owned(),
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--tls-cert-file={}", cert.display()),
            format!("--tls-private-key-file={}", key.display()),
            format!("--local-path={}", local_path.display()),
            "--backend-kind=local".to_owned(),
            format!("--etcd-servers={etcd_url}"),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--delegated-auth=on".to_owned(),
        ];
        let mut s = ApiServer {
            args,
            port,
            log: dir.join("apiserver.log"),
            child: None,
        };
        s.spawn();
        s
    }

    /// (Re)starts the process with the same flags (and port) and waits until it listens.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_coredump-detector"));
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // Tied to the test binary: a fixture kept in a static is never dropped.
        let child = coredump_testplane::spawn_tied(command).unwrap();
        self.child = Some(child);
        let port = self.port;
        eventually(Duration::from_secs(30), "apiserver listening", || {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("apiserver exited with {status}:\n{}", self.log_text());
            }
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(drop)
        });
    }

    /// SIGTERM and wait (at most 20 s, then SIGKILL).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
