//! A standalone etcd on free loopback ports: the control plane's storage, and a store of its own
//! for tests of our etcd-backed code. Restartable on the same data directory and ports.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::netns::NetworkNamespace;
use crate::process::{ManagedProcess, free_port};
use crate::wait::{Poll, poll_until};

/// How long etcd may take to answer `/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Startup attempts with fresh ports when one was taken in the meantime.
const ATTEMPTS: usize = 3;

/// A running etcd; killed on `Drop` (its data directory stays, its log directory goes).
#[derive(Debug)]
pub struct EtcdProcess {
    // Field order is drop order: the process before the directory holding its log.
    process: ManagedProcess,
    binary: PathBuf,
    data_dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    netns: Option<Arc<NetworkNamespace>>,
    _log_dir: Option<TempDir>,
}

/// Starts a standalone etcd that keeps its data in `data_dir` (created if missing; reuse it to
/// restart on the same data). Its log goes to a scratch directory removed on `Drop`.
pub fn start_etcd(data_dir: &Path) -> Result<EtcdProcess, HarnessError> {
    start_etcd_binary(&crate::binaries::binaries()?.etcd, data_dir)
}

/// [`start_etcd`] with another etcd binary (Debian's older etcd, for what must work on any
/// etcd 3.x).
pub fn start_etcd_binary(binary: &Path, data_dir: &Path) -> Result<EtcdProcess, HarnessError> {
    let log_dir = crate::workdir::instance_dir("etcd")?;
    let log = log_dir.path().join("etcd.log");
    let mut etcd = EtcdProcess::start(binary, data_dir, &log, None)?;
    etcd._log_dir = Some(log_dir);
    Ok(etcd)
}

impl EtcdProcess {
    /// Starts etcd with `data_dir`, logging to `log`, retrying with fresh ports on a port race;
    /// inside `netns` (listening on its loopback) when given.
    pub(crate) fn start(
        binary: &Path,
        data_dir: &Path,
        log: &Path,
        netns: Option<Arc<NetworkNamespace>>,
    ) -> Result<EtcdProcess, HarnessError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| HarnessError::io("create directory", data_dir, e))?;
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            let (client_port, peer_port) = (free_port()?, free_port()?);
            let ports = (client_port, peer_port);
            match launch(binary, data_dir, log, ports, netns.as_deref()) {
                Ok(process) => {
                    return Ok(EtcdProcess {
                        process,
                        binary: binary.to_path_buf(),
                        data_dir: data_dir.to_path_buf(),
                        client_port,
                        peer_port,
                        netns,
                        _log_dir: None,
                    });
                }
                Err(err @ HarnessError::Exited { .. })
                    if err.to_string().contains("address already in use") =>
                {
                    last_error = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| HarnessError::Port {
            source: std::io::Error::other("no attempt"),
        }))
    }

    /// The process id (benchmarks count its CPU time).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Freezes etcd (SIGSTOP: alive, connections open, answering nothing) until the guard
    /// drops (SIGCONT), also when the test panics.
    pub fn freeze(&self) -> Frozen {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::STOP);
        }
        Frozen(pid)
    }

    /// The client URL, `http://127.0.0.1:<port>` (inside the control plane's network namespace
    /// when it has one).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The log file (appended to across restarts).
    pub fn log(&self) -> &Path {
        self.process.log()
    }

    /// Kills etcd (SIGKILL, like a crash) and waits until it is gone; [`EtcdProcess::restart`]
    /// brings it back.
    pub fn kill(&self) {
        self.process.kill();
    }

    /// Kills etcd and starts it again on the same data directory and ports, waiting until healthy.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.process.kill();
        let log = self.process.log().to_path_buf();
        self.process = launch(
            &self.binary,
            &self.data_dir,
            &log,
            (self.client_port, self.peer_port),
            self.netns.as_deref(),
        )?;
        Ok(())
    }
}

/// Whether this etcd knows `--unsafe-no-fsync` (3.5+; Debian's 3.4 does not).
fn supports_no_fsync(binary: &Path) -> bool {
    static CACHE: OnceLock<std::sync::Mutex<Vec<(PathBuf, bool)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, known)) = cache.iter().find(|(path, _)| path == binary) {
        return *known;
    }
    let help = std::process::Command::new(binary).arg("--help").output();
    let known = help.is_ok_and(|out| {
        let text = [out.stdout, out.stderr].concat();
        String::from_utf8_lossy(&text).contains("--unsafe-no-fsync")
    });
    cache.push((binary.to_path_buf(), known));
    known
}

fn launch(
    binary: &Path,
    data_dir: &Path,
    log: &Path,
    (client_port, peer_port): (u16, u16),
    netns: Option<&NetworkNamespace>,
) -> Result<ManagedProcess, HarnessError> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut args = vec![
        "--name=default".to_string(),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=default={peer}"),
        "--logger=zap".to_string(),
    ];
    if supports_no_fsync(binary) {
        args.push("--unsafe-no-fsync".to_string());
    }
    let process = ManagedProcess::spawn_in("etcd", netns, binary, &args, log)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, client_port));
    poll_until(
        READY_TIMEOUT,
        Duration::from_millis(50),
        || {
            if let Some(status) = process.exited() {
                return Poll::Fail(process.exited_error(status));
            }
            match health(addr, netns) {
                Ok(true) => Poll::Ready(()),
                Ok(false) => Poll::Pending("/health says not healthy".to_string()),
                Err(err) => Poll::Pending(format!("GET /health: {err}")),
            }
        },
        |waited, last| process.not_ready_error(waited, last),
    )?;
    Ok(process)
}

/// `GET /health` over plain HTTP/1.0 (etcd's client port speaks it next to gRPC): true when the
/// JSON body says `"health":"true"`. Connects from inside `netns` when given.
fn health(addr: SocketAddr, netns: Option<&NetworkNamespace>) -> std::io::Result<bool> {
    let timeout = Duration::from_secs(1);
    let mut stream = match netns {
        Some(netns) => netns.connect(addr, timeout)?,
        None => TcpStream::connect_timeout(&addr, timeout)?,
    };
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut response)?;
    Ok(health_body_ok(&response))
}

/// Whether an HTTP response to `/health` is a 200 whose JSON body has `"health":"true"`.
fn health_body_ok(response: &[u8]) -> bool {
    let text = String::from_utf8_lossy(response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let status_ok = head
        .lines()
        .next()
        .is_some_and(|l| l.split(' ').nth(1) == Some("200"));
    let json: Option<Health> = serde_json::from_str(body.trim()).ok();
    status_ok && json.is_some_and(|h| h.health == "true")
}

/// The part of etcd's `/health` body we read.
#[derive(serde::Deserialize)]
struct Health {
    health: String,
}

/// A frozen etcd ([`EtcdProcess::freeze`]), thawed on drop.
pub struct Frozen(Option<rustix::process::Pid>);

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_200_and_true() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"health\":\"true\",\"reason\":\"\"}";
        let no_leader = b"HTTP/1.0 503 Service Unavailable\r\n\r\n{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}";
        assert!(health_body_ok(ok));
        assert!(!health_body_ok(no_leader));
        assert!(!health_body_ok(b"HTTP/1.0 200 OK\r\n\r\nnot json"));
        assert!(!health_body_ok(b""));
    }
}
