//! Shared by the aggregation tests: a throw-away aggregated API server (see [`server`]), the
//! byte pattern it streams (see [`pattern`]) and a reader that checks it as kubectl streams it.
//! Registering the server is `coredump_testplane::aggregation`'s job.
#![allow(dead_code)] // each test binary uses a different part

pub mod pattern;
pub mod server;

use std::process::Stdio;
use std::time::{Duration, Instant};

use coredump_testplane::ControlPlane;
pub use coredump_testplane::aggregation::{GROUP, VERSION};

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
