//! Cluster-mode fixtures: the deploy manifest's ServiceAccounts and RBAC applied to the real
//! kube-apiserver, kubeconfigs carrying those accounts' tokens, and `coredump-detector agent` /
//! `gc` as host processes (killed on drop).
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use coredump_testplane::ControlPlane;

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
    child: Option<Child>,
}

impl Role {
    pub fn new(args: Vec<String>, log: PathBuf, port: u16) -> Role {
        Role {
            args,
            log,
            port,
            child: None,
        }
    }

    pub fn spawn(&mut self) {
        let mut command = Command::new(crate::common::detector());
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
}

impl Drop for Role {
    fn drop(&mut self) {
        self.kill();
    }
}
