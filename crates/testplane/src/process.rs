//! Child server processes that can never outlive the test binary.
//!
//! Two mechanisms: [`ManagedProcess`] kills and reaps its child on `Drop`, and every child gets
//! `PR_SET_PDEATHSIG = SIGKILL`, so the kernel kills it when the test binary dies without
//! running destructors (a panic in another thread, `SIGKILL`, a shared instance in a `static`).
//! The death signal fires when the *thread* that forked the child exits, and the test harness
//! runs each test on its own short-lived thread: so all children are spawned by one spawner
//! thread that lives as long as the process.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};

use crate::error::HarnessError;

type SpawnRequest = (Command, Sender<std::io::Result<Child>>);

/// Spawns `command` from the process-lifetime spawner thread, with the parent-death signal set:
/// the child is killed when the test binary exits, however it exits. For test fixtures that
/// start their own servers (a fixture kept in a `static` is never dropped).
pub fn spawn_tied(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Result<Mutex<Sender<SpawnRequest>>, String>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testplane-spawner".into())
            .spawn(move || {
                // The sender lives in a static, so this loop ends only with the process.
                for (mut command, reply) in rx {
                    crate::pdeathsig::kill_child_with_parent(&mut command);
                    // The requester may have given up; nothing to do then.
                    let _ = reply.send(command.spawn());
                }
            })
            .map(|_| Mutex::new(tx))
            .map_err(|err| format!("cannot start the spawner thread: {err}"))
    });
    let spawner = spawner
        .as_ref()
        .map_err(|message| std::io::Error::other(message.clone()))?;
    let (reply_tx, reply_rx) = channel();
    let sent = spawner
        .lock()
        .map_err(|_| std::io::Error::other("spawner lock poisoned"))?
        .send((command, reply_tx));
    sent.map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("spawner thread dropped the request"))?
}

/// [`spawn_tied`] with stdin closed and stdout and stderr appended to `log` (created if
/// missing): how every server process of a test is started, so its log survives restarts.
pub fn spawn_logged(mut command: Command, log: &Path) -> Result<Child, HarnessError> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| HarnessError::io("open log", log, e))?;
    let err = out
        .try_clone()
        .map_err(|e| HarnessError::io("duplicate log handle", log, e))?;
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    let program = PathBuf::from(command.get_program());
    spawn_tied(command).map_err(|source| HarnessError::Spawn { program, source })
}

/// A running server process whose output goes to a log file; killed and reaped on `Drop`, and
/// by the kernel when the test binary dies (see [`spawn_tied`]).
#[derive(Debug)]
pub struct ManagedProcess {
    component: &'static str,
    child: Mutex<Child>,
    log: PathBuf,
}

impl ManagedProcess {
    /// Starts `program args…` with stdin closed and stdout+stderr appended to `log`.
    pub fn spawn(
        component: &'static str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<ManagedProcess, HarnessError> {
        let mut command = Command::new(program);
        command.args(args);
        Self::spawn_command(component, command, log)
    }

    /// Starts `command` (its environment as set) with stdin closed and stdout+stderr appended
    /// to `log`.
    pub fn spawn_command(
        component: &'static str,
        command: Command,
        log: &Path,
    ) -> Result<ManagedProcess, HarnessError> {
        let child = spawn_logged(command, log)?;
        Ok(ManagedProcess {
            component,
            child: Mutex::new(child),
            log: log.to_path_buf(),
        })
    }

    /// Starts `command` like [`ManagedProcess::spawn_command`] and waits, polling every 200 ms
    /// for at most `timeout`, until `ready` answers `Ok`; an exit meanwhile or the deadline is
    /// an error with the log's tail (and the process is killed).
    pub fn spawn_until_ready(
        component: &'static str,
        command: Command,
        log: &Path,
        timeout: std::time::Duration,
        mut ready: impl FnMut() -> Result<(), String>,
    ) -> Result<ManagedProcess, HarnessError> {
        let process = Self::spawn_command(component, command, log)?;
        crate::wait::poll_until(
            timeout,
            std::time::Duration::from_millis(200),
            || {
                if let Some(status) = process.exited() {
                    return crate::wait::Poll::Fail(process.exited_error(status));
                }
                match ready() {
                    Ok(()) => crate::wait::Poll::Ready(()),
                    Err(why) => crate::wait::Poll::Pending(why),
                }
            },
            |waited, last| process.not_ready_error(waited, last),
        )?;
        Ok(process)
    }

    /// Starts `program args…` inside `netns` (through `nsenter --net`), logging like
    /// [`ManagedProcess::spawn`]; on the host when `netns` is `None`.
    pub fn spawn_in(
        component: &'static str,
        netns: Option<&crate::netns::NetworkNamespace>,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<ManagedProcess, HarnessError> {
        let Some(netns) = netns else {
            return ManagedProcess::spawn(component, program, args, log);
        };
        let mut command = netns.command(program);
        command.args(args);
        let child = spawn_logged(command, log)?;
        Ok(ManagedProcess {
            component,
            child: Mutex::new(child),
            log: log.to_path_buf(),
        })
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        child.try_wait().ok().flatten()
    }

    /// The error for "exited during startup", with the log tail.
    pub fn exited_error(&self, status: ExitStatus) -> HarnessError {
        HarnessError::Exited {
            component: self.component,
            status,
            log: self.log.clone(),
            log_tail: log_tail(&self.log),
        }
    }

    /// The error for "not ready in time", with the log tail.
    pub fn not_ready_error(&self, waited: std::time::Duration, last_probe: String) -> HarnessError {
        HarnessError::NotReady {
            component: self.component,
            waited,
            last_probe,
            log: self.log.clone(),
            log_tail: log_tail(&self.log),
        }
    }

    /// Kills (SIGKILL) and reaps the process; idempotent.
    pub fn kill(&self) {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if child.try_wait().ok().flatten().is_none() {
            // Fails only if it already exited, which `wait` below handles.
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last 40 lines (at most 8 KiB) of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    const MAX: u64 = 8 * 1024;
    let Ok(mut file) = File::open(path) else {
        return format!("(cannot open {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs `launch` on a free loopback port, and again on another one (at most three tries in
/// all) when the server exited at startup, which is what a port taken in the meantime does.
pub(crate) fn on_a_free_port<T>(
    mut launch: impl FnMut(u16) -> Result<T, HarnessError>,
) -> Result<(T, u16), HarnessError> {
    let mut tries = 0;
    loop {
        let port = free_port()?;
        tries += 1;
        match launch(port) {
            Ok(server) => return Ok((server, port)),
            Err(HarnessError::Exited { .. }) if tries < 3 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A loopback port that was free a moment ago (the listener is closed before returning, so a
/// server started right after can bind it; startup retries cover the rare race).
pub fn free_port() -> Result<u16, HarnessError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| HarnessError::Port { source })
}

/// Resident memory of process `pid` (`VmRSS` of `/proc/<pid>/status`) in KiB; `None` once it
/// is gone. Benchmarks sample it to report a server's peak memory.
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time process `pid` has used so far, user and system, in seconds (`/proc/<pid>/stat`
/// fields 14 and 15, threads included); `None` once it is gone. Benchmarks take the difference
/// around a request to say which process the time went to.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports them in USER_HZ, 100 per second on x86 and arm64 whatever its tick.
    Some(ticks as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let tail = log_tail(&path);
        assert_eq!(tail.lines().next(), Some("line 60"));
        assert_eq!(tail.lines().last(), Some("line 99"));
        assert_eq!(tail.lines().count(), 40);
    }

    #[test]
    fn drop_kills_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let process =
            ManagedProcess::spawn("sleep", Path::new("sleep"), &["300".to_string()], &log).unwrap();
        let pid = process.child.lock().unwrap().id();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        assert_eq!(process.exited(), None);
        drop(process);
        // Reaped by Drop: the pid is gone (or reused by an unrelated process, vanishingly rare).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!stat.starts_with("sleep"), "sleep {pid} survived: {stat:?}");
    }

    /// Helper for `children_die_with_the_test_binary`: run only in a child test process.
    #[test]
    #[ignore = "helper, started by children_die_with_the_test_binary"]
    fn helper_spawn_sleep_then_hang() {
        // The parent's directory: this process is SIGKILLed, so nothing it created is removed.
        let Some(dir) = std::env::var_os("TESTPLANE_PDEATHSIG_HELPER") else {
            return;
        };
        let log = Path::new(&dir).join("sleep.log");
        let process =
            ManagedProcess::spawn("sleep", Path::new("sleep"), &["300".to_string()], &log).unwrap();
        println!("SLEEP_PID={}", process.child.lock().unwrap().id());
        // Bounded: the parent test SIGKILLs us long before this ends.
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    #[test]
    fn children_die_with_the_test_binary() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let mut helper = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "process::tests::helper_spawn_sleep_then_hang"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env("TESTPLANE_PDEATHSIG_HELPER", dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(helper.stdout.take().unwrap());
        let pid: u32 = stdout
            .lines()
            .map(|l| l.unwrap())
            // libtest prints "test <name> ... " first, on the same line.
            .find_map(|l| {
                l.split_once("SLEEP_PID=")
                    .map(|(_, p)| p.trim().parse().unwrap())
            })
            .unwrap();
        let cmdline = || std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(cmdline().starts_with(b"sleep\x00300"), "{:?}", cmdline());
        helper.kill().unwrap(); // SIGKILL: no destructor runs in the helper
        helper.wait().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // A killed child stays a zombie of init (or of a subreaper) until reaped; either way its
        // cmdline becomes empty once it is dead.
        while cmdline().starts_with(b"sleep") {
            assert!(
                std::time::Instant::now() < deadline,
                "sleep {pid} outlived its test binary"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
