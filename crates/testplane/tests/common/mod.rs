//! Shared by the aggregation tests: a throw-away aggregated API server (see [`server`]), the
//! byte pattern it streams (see [`pattern`]) and helpers to register it with kube-apiserver.
#![allow(dead_code)] // each test binary uses a different part

pub mod pattern;
pub mod server;

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use coredump_testplane::ControlPlane;

pub const GROUP: &str = "coredump.fujitsu.com";
pub const VERSION: &str = "v1alpha1";
pub const APISERVICE: &str = "v1alpha1.coredump.fujitsu.com";
/// The Service (in the test's namespace) the APIService points to.
pub const SERVICE: &str = "coredump";

/// `kubectl <args>` with `input` on stdin.
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

/// `kubectl apply -f -` of one object; panics with kubectl's stderr on failure.
pub fn apply(cp: &ControlPlane, object: &serde_json::Value) {
    let out = kubectl_stdin(
        cp,
        &["apply", "-f", "-", "--request-timeout=30s"],
        &object.to_string(),
    );
    assert!(
        out.status.success(),
        "apply {object}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates the ExternalName Service `coredump` (→ `localhost`) in `ns` and the APIService
/// `v1alpha1.coredump.fujitsu.com` pointing at it on `port`, trusting `ca_pem`.
pub fn register_apiservice(cp: &ControlPlane, ns: &str, port: u16, ca_pem: &str) {
    apply(
        cp,
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": ns},
            "spec": {"type": "ExternalName", "externalName": "localhost",
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
        }),
    );
    apply(
        cp,
        &serde_json::json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": APISERVICE},
            "spec": {
                "group": GROUP, "version": VERSION,
                "groupPriorityMinimum": 2000, "versionPriority": 10,
                "service": {"namespace": ns, "name": SERVICE, "port": port},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
        }),
    );
}

/// The APIService's `Available` condition as `status reason message`.
pub fn available_condition(cp: &ControlPlane) -> String {
    let jsonpath = r#"-o=jsonpath={range .status.conditions[?(@.type=="Available")]}{.status} {.reason} {.message}{end}"#;
    cp.kubectl_ok(&[
        "get",
        "apiservice",
        APISERVICE,
        jsonpath,
        "--request-timeout=10s",
    ])
    .unwrap_or_else(|err| err.to_string())
}

/// Polls until the APIService is `Available=True`; returns how long it took.
pub fn wait_available(cp: &ControlPlane, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let condition = available_condition(cp);
        if condition.starts_with("True ") {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "APIService not Available after {timeout:?}: {condition}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Polls `condition` every 100 ms until it returns `Some`, panicking with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What `kubectl get --raw` of a pattern stream delivered.
#[derive(Debug)]
pub struct StreamResult {
    /// Bytes on kubectl's stdout, all checked against the pattern up to `first_bad`.
    pub bytes: u64,
    pub first_bad: Option<u64>,
    pub elapsed: Duration,
    pub success: bool,
    pub stderr: String,
}

impl StreamResult {
    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64()
    }
}

/// Runs `kubectl get --raw <path> <extra…>` and checks its stdout against the pattern as it
/// arrives (never holding it all in memory).
pub fn stream_via_kubectl(cp: &ControlPlane, path: &str, extra: &[&str]) -> StreamResult {
    use std::io::Read;
    let mut args = vec!["get", "--raw", path];
    args.extend_from_slice(extra);
    let start = Instant::now();
    let mut child = cp
        .kubectl_command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr_pipe.read_to_string(&mut text).unwrap();
        text
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut checker = pattern::Checker::default();
    let mut first_bad = None;
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if first_bad.is_none() {
            first_bad = checker.check(&buf[..n]).err();
        }
        bytes += n as u64;
    }
    let status = child.wait().unwrap();
    StreamResult {
        bytes,
        first_bad,
        elapsed: start.elapsed(),
        success: status.success(),
        stderr: stderr_reader.join().unwrap(),
    }
}
