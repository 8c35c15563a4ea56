//! A real S3 server for the object-store tests: SeaweedFS (`weed server -s3`: master, volume
//! server, filer and S3 gateway in one process), built from its Go module by
//! `scripts/control-plane/build.sh seaweedfs`, on free loopback ports with its data in a
//! scratch directory and one S3 identity (access key and secret) of its own.
//!
//! Killed on `Drop`, and by the kernel when the test binary dies ([`ManagedProcess`]); its data
//! directory and the gRPC sockets it puts in `/tmp` go with it. [`SeaweedFs::kill`] and
//! [`SeaweedFs::restart`] stop and restart it on the same data and ports (an outage in the
//! middle of a test).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::http::get;
use crate::process::{ManagedProcess, free_port};

/// How long SeaweedFS may take until it stores objects (master election, first volumes).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Startup attempts with fresh ports when one was taken in the meantime.
const ATTEMPTS: usize = 3;
/// The S3 identity's access key id.
pub const ACCESS_KEY_ID: &str = "coredump-test";
/// The S3 identity's secret.
pub const SECRET_ACCESS_KEY: &str = "coredump-test-secret-0123456789";
/// The region SeaweedFS accepts in signatures (any; this is the clients' default).
pub const REGION: &str = "us-east-1";

/// The ports of one instance: HTTP and gRPC of the master, volume server, filer and S3 gateway.
#[derive(Debug, Clone, Copy)]
struct Ports {
    master: (u16, u16),
    volume: (u16, u16),
    filer: (u16, u16),
    s3: (u16, u16),
}

impl Ports {
    fn free() -> Result<Self, HarnessError> {
        Ok(Self {
            master: (free_port()?, free_port()?),
            volume: (free_port()?, free_port()?),
            filer: (free_port()?, free_port()?),
            s3: (free_port()?, free_port()?),
        })
    }

    /// The Unix sockets `weed server` creates in `/tmp` for its gRPC services (hard-coded there).
    fn sockets(&self) -> Vec<PathBuf> {
        [
            ("master", self.master.1),
            ("volume", self.volume.1),
            ("filer", self.filer.1),
            ("s3", self.s3.1),
        ]
        .iter()
        .map(|(name, port)| PathBuf::from(format!("/tmp/seaweedfs-{name}-grpc-{port}.sock")))
        .collect()
    }
}

/// A running SeaweedFS with an S3 gateway.
#[derive(Debug)]
pub struct SeaweedFs {
    // Field order is drop order: the process before the directory holding its data and log.
    process: ManagedProcess,
    binary: PathBuf,
    ports: Ports,
    dir: TempDir,
}

/// The `weed` binary, built once per process (cached across processes by the script).
pub fn weed_binary() -> Result<PathBuf, HarnessError> {
    static WEED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    crate::binaries::built_once(&WEED, "seaweedfs", "weed")
}

/// Starts SeaweedFS in a fresh scratch directory and waits until its S3 gateway stores objects.
pub fn start_seaweedfs() -> Result<SeaweedFs, HarnessError> {
    let binary = weed_binary()?;
    let dir = crate::workdir::instance_dir("seaweedfs")?;
    let config = dir.path().join("s3.json");
    let identities = serde_json::json!({
        "identities": [{
            "name": "coredump",
            "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]
    });
    std::fs::write(&config, identities.to_string())
        .map_err(|e| HarnessError::io("write", &config, e))?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).map_err(|e| HarnessError::io("create directory", &data, e))?;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let ports = Ports::free()?;
        for socket in ports.sockets() {
            coredump_testkit::scratch::remove_after_exit(&socket)
                .map_err(|e| HarnessError::io("arrange the removal at exit of", &socket, e))?;
        }
        match launch(&binary, dir.path(), ports) {
            Ok(process) => {
                return Ok(SeaweedFs {
                    process,
                    binary,
                    ports,
                    dir,
                });
            }
            Err(err @ HarnessError::Exited { .. })
                if err.to_string().contains("address already in use") =>
            {
                remove_sockets(ports);
                last_error = Some(err);
            }
            Err(err) => {
                remove_sockets(ports);
                return Err(err);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| HarnessError::Port {
        source: std::io::Error::other("no attempt"),
    }))
}

fn remove_sockets(ports: Ports) {
    for socket in ports.sockets() {
        let _ = std::fs::remove_file(socket);
    }
}

impl SeaweedFs {
    /// The S3 endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3.0)
    }

    /// The flags that select `s3://<bucket>/<prefix>` on this server with its identity, as
    /// the roles take them (`--blob-store`, `--s3-endpoint`, ...).
    pub fn blob_store_flags(&self, bucket: &str, prefix: &str) -> Vec<String> {
        vec![
            format!("--blob-store=s3://{bucket}/{prefix}"),
            format!("--s3-endpoint={}", self.endpoint()),
            format!("--s3-region={REGION}"),
            format!("--s3-access-key-id={ACCESS_KEY_ID}"),
            format!("--s3-secret-access-key={SECRET_ACCESS_KEY}"),
            "--s3-allow-http".to_string(),
        ]
    }

    /// Where it keeps its volumes and metadata.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The log file (appended to across restarts).
    pub fn log(&self) -> &Path {
        self.process.log()
    }

    /// Creates a bucket (through `weed shell`, which talks to the master and filer).
    pub fn create_bucket(&self, name: &str) -> Result<(), HarnessError> {
        let master = format!("127.0.0.1:{}.{}", self.ports.master.0, self.ports.master.1);
        // `timeout`: the shell must not hang the test when the cluster does not answer.
        let mut child = Command::new("timeout")
            .arg("30")
            .arg(&self.binary)
            .args(["shell", &format!("-master={master}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                program: self.binary.clone(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let command = format!("s3.bucket.create -name {name}\nexit\n");
            stdin
                .write_all(command.as_bytes())
                .map_err(|e| HarnessError::io("write to", &self.binary, e))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| HarnessError::io("run weed shell", &self.binary, e))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() || text.contains("error") {
            return Err(HarnessError::Build {
                script: self.binary.clone(),
                message: format!("s3.bucket.create -name {name}: {}: {text}", output.status),
            });
        }
        Ok(())
    }

    /// Kills SeaweedFS (SIGKILL, like a crash) and waits until it is gone; the S3 port then
    /// refuses connections until [`SeaweedFs::restart`].
    pub fn kill(&self) {
        self.process.kill();
    }

    /// Kills SeaweedFS and starts it again on the same data and ports, waiting until it
    /// stores objects again.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.process.kill();
        remove_sockets(self.ports);
        self.process = launch(&self.binary, self.dir.path(), self.ports)?;
        Ok(())
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.process.kill();
        remove_sockets(self.ports);
    }
}

fn launch(binary: &Path, dir: &Path, ports: Ports) -> Result<ManagedProcess, HarnessError> {
    let Ports {
        master,
        volume,
        filer,
        s3,
    } = ports;
    let args = vec![
        "server".to_string(),
        "-ip=127.0.0.1".to_string(),
        "-ip.bind=127.0.0.1".to_string(),
        format!("-dir={}", dir.join("data").display()),
        format!("-master.port={}", master.0),
        format!("-master.port.grpc={}", master.1),
        "-master.telemetry=false".to_string(),
        "-master.volumeSizeLimitMB=1024".to_string(),
        format!("-volume.port={}", volume.0),
        format!("-volume.port.grpc={}", volume.1),
        "-volume.max=0".to_string(),
        format!("-filer.port={}", filer.0),
        format!("-filer.port.grpc={}", filer.1),
        format!("-filer.localSocket={}", dir.join("filer.sock").display()),
        "-s3".to_string(),
        format!("-s3.port={}", s3.0),
        format!("-s3.port.grpc={}", s3.1),
        "-s3.port.iceberg=0".to_string(),
        "-s3.port.lance=0".to_string(),
        format!("-s3.localSocket={}", dir.join("s3.sock").display()),
        format!("-s3.config={}", dir.join("s3.json").display()),
    ];
    let mut command = Command::new(binary);
    command.args(&args);
    ManagedProcess::spawn_until_ready(
        "seaweedfs",
        command,
        &dir.join("weed.log"),
        READY_TIMEOUT,
        || ready(ports),
    )
}

/// Ready when the S3 gateway answers `/healthz` and the master can assign a file id (a
/// writable volume exists, so the first upload does not fail).
fn ready(ports: Ports) -> Result<(), String> {
    let health = get(ports.s3.0, "/healthz").map_err(|e| format!("S3 /healthz: {e}"))?;
    if health.status != 200 {
        return Err(format!("S3 /healthz answered {}", health.status));
    }
    let assign =
        get(ports.master.0, "/dir/assign").map_err(|e| format!("master /dir/assign: {e}"))?;
    if assign.status != 200 || !assign.body.contains("\"fid\"") {
        return Err(format!(
            "master /dir/assign answered {}: {}",
            assign.status, assign.body
        ));
    }
    Ok(())
}
