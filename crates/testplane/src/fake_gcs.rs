//! A GCS server for the object-store tests: fsouza's fake-gcs-server, built from its Go module
//! by `scripts/control-plane/build.sh fake-gcs-server`, on a free loopback port with its
//! objects on disk in a scratch directory (so [`FakeGcs::restart`] keeps them, like a real
//! outage; through [`crate::object_server::ObjectServer`]). It checks no credentials: clients reach it with `--gcs-anonymous`.
//!
//! Killed on `Drop`, and by the kernel when the test binary dies ([`ManagedProcess`]); its
//! directory goes with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::HarnessError;
use crate::http::{get, request};
use crate::instance::Instance;
use crate::process::ManagedProcess;

/// How long it may take to answer (it starts in well under a second).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running fake-gcs-server.
#[derive(Debug)]
pub struct FakeGcs {
    /// Its process and directory ([`crate::object_server::ObjectServer`] kills and restarts it).
    pub(crate) instance: Instance,
    port: u16,
}

/// The `fake-gcs-server` binary, built once per process (cached across processes by the script).
pub fn fake_gcs_binary() -> Result<PathBuf, HarnessError> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    crate::binaries::built_once(&BINARY, "fake-gcs-server", "fake-gcs-server")
}

/// Starts fake-gcs-server in a fresh scratch directory and waits until it answers.
pub fn start_fake_gcs() -> Result<FakeGcs, HarnessError> {
    let instance = Instance::start("fake-gcs", fake_gcs_binary()?, launch)?;
    Ok(FakeGcs {
        port: instance.port,
        instance,
    })
}

impl FakeGcs {
    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The flags that select `gs://<bucket>/<prefix>` on this server, as the roles take them.
    pub fn blob_store_flags(&self, bucket: &str, prefix: &str) -> Vec<String> {
        vec![
            format!("--blob-store=gs://{bucket}/{prefix}"),
            format!("--gcs-endpoint={}", self.endpoint()),
            "--gcs-anonymous".to_string(),
            "--gcs-allow-http".to_string(),
        ]
    }

    /// Creates a bucket (JSON API `buckets.insert`).
    pub fn create_bucket(&self, name: &str) -> Result<(), HarnessError> {
        let body = serde_json::json!({ "name": name }).to_string();
        let answer = request(
            self.port,
            "POST",
            "/storage/v1/b",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .map_err(|e| HarnessError::io("create a bucket on", &self.instance.binary, e))?;
        match answer.status {
            200 | 409 => Ok(()),
            status => Err(HarnessError::Build {
                script: self.instance.binary.clone(),
                message: format!("creating bucket {name}: {status}: {}", answer.body),
            }),
        }
    }

    /// Stores `bytes` as object `name` through the server's own JSON upload API (not through
    /// any client of ours): how a test plants an object its code under test only reads.
    pub fn upload(&self, bucket: &str, name: &str, bytes: &[u8]) -> Result<(), HarnessError> {
        let encoded: String = name
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        let path = format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={encoded}");
        let answer = request(
            self.port,
            "POST",
            &path,
            &[("Content-Type", "application/octet-stream")],
            bytes,
        )
        .map_err(|e| HarnessError::io("upload to", &self.instance.binary, e))?;
        if answer.status != 200 {
            return Err(HarnessError::Build {
                script: self.instance.binary.clone(),
                message: format!(
                    "uploading {bucket}/{name}: {}: {}",
                    answer.status, answer.body
                ),
            });
        }
        Ok(())
    }
}

fn launch(binary: &Path, dir: &Path, port: u16) -> Result<ManagedProcess, HarnessError> {
    let host = format!("127.0.0.1:{port}");
    let mut command = Command::new(binary);
    command
        .args([
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-backend",
            "filesystem",
        ])
        .arg(format!("-port={port}"))
        .arg(format!("-filesystem-root={}", dir.join("data").display()))
        // The XML API's path-style routes answer only requests for the public host.
        .arg(format!("-public-host={host}"))
        .arg(format!("-external-url=http://{host}"))
        .arg("-log-level=warn");
    ManagedProcess::spawn_until_ready(
        "fake-gcs-server",
        command,
        &dir.join("fake-gcs.log"),
        READY_TIMEOUT,
        || match get(port, "/storage/v1/b") {
            Ok(answer) if answer.status == 200 => Ok(()),
            Ok(answer) => Err(format!("/storage/v1/b answered {}", answer.status)),
            Err(e) => Err(format!("/storage/v1/b: {e}")),
        },
    )
}
