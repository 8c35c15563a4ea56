//! Our `coredump-detector apiserver` process behind the real kube-apiserver: start / stop of the
//! process on a fixed port, plus panicking shorthands for `coredump_testplane::aggregation` (its
//! ServiceAccount bound as the deploy manifest binds it, its serving certificate, the APIService
//! with an ExternalName Service to `localhost`) that the cluster tests share.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use coredump_testplane::aggregation;
pub use coredump_testplane::aggregation::API_PATH as BASE;
use coredump_testplane::{ControlPlane, TestCa};

/// `kubectl <args>` (admin) with `input` on stdin.
pub fn kubectl_stdin(cp: &ControlPlane, args: &[&str], input: &str) -> Output {
    cp.kubectl_stdin(args, input).unwrap()
}

/// `kubectl <verb> -f - -o json` of `object` (`apply`, `create`…); returns stdout.
pub fn submit(cp: &ControlPlane, verb: &str, object: &serde_json::Value) -> String {
    cp.submit(verb, object).unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `condition` until it returns `Some`, panicking after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, condition: impl FnMut() -> Option<T>) -> T {
    coredump_testplane::eventually(timeout, what, condition).unwrap_or_else(|e| panic!("{e}"))
}

/// ServiceAccount `coredump-api` in `ns` with the deploy manifest's rights (see
/// [`aggregation::api_server_identity`]); a kubeconfig with its token.
pub fn api_server_identity(cp: &ControlPlane, ns: &str, dir: &Path) -> PathBuf {
    aggregation::api_server_identity(cp, ns, dir).unwrap()
}

/// The APIService `v1alpha1.coredump.fujitsu.com` → Service `coredump` in `ns` (ExternalName
/// `localhost`) on `port`, trusting `ca_pem`. Does not wait for `Available`.
pub fn register_apiservice(cp: &ControlPlane, ns: &str, port: u16, ca_pem: &str) {
    aggregation::register_apiservice(cp, ns, port, ca_pem).unwrap();
}

/// `status reason message` of the APIService's Available condition (or why it is unreadable).
pub fn available(cp: &ControlPlane) -> String {
    aggregation::available_condition(cp).unwrap_or_else(|e| e.to_string())
}

/// A `coredump-detector apiserver` process; killed on drop.
pub struct ApiServer {
    pub args: Vec<String>,
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    coredump_testplane::free_port().unwrap()
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
        let serving = aggregation::write_serving_cert(ca, ns, dir).unwrap();
        let port = free_port();
        let args = vec![
            "apiserver".to_owned(),
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--tls-cert-file={}", serving.cert.display()),
            format!("--tls-private-key-file={}", serving.key.display()),
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

    /// `coredump-detector <args> --secure-port=<a free port>`, logging to `log`; waits until
    /// it listens.
    pub fn start_with(mut args: Vec<String>, log: PathBuf) -> ApiServer {
        let port = free_port();
        args.push(format!("--secure-port={port}"));
        let mut s = ApiServer {
            args,
            port,
            log,
            child: None,
        };
        s.spawn();
        s
    }

    /// (Re)starts the process with the same flags (and port) and waits until it listens.
    pub fn spawn(&mut self) {
        let mut command = Command::new(crate::common::detector());
        command.args(&self.args);
        // Tied to the test binary (spawn_tied inside): a fixture kept in a static is never dropped.
        let child = coredump_testplane::spawn_logged(command, &self.log).unwrap();
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

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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
