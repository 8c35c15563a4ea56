//! The machine-wide lock for tests that change kernel settings (`core_pattern`,
//! `core_pipe_limit`).
//!
//! Holding a [`KernelSettings`] means: no other test on this machine changes those settings
//! until it is dropped, and the values from before are restored whatever happens:
//! * normal end or panic: `Drop` restores them;
//! * Ctrl-C or SIGKILL of the test binary: a watchdog process (in its own session, so the
//!   terminal's SIGINT does not reach it) sees its pipe close without the "done" word and
//!   restores them;
//! * the watchdog killed too: the saved values stay in a state file that the next
//!   [`KernelSettings::acquire`] restores before anything else.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const LOCK: &str = "/run/lock/coredump-detector-tests.lock";
const SAVED: &str = "/run/lock/coredump-detector-tests.saved";
const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";
const CORE_PIPE_LIMIT: &str = "/proc/sys/kernel/core_pipe_limit";

/// Exclusive use of the kernel's core settings, with guaranteed restore.
pub struct KernelSettings {
    pattern: String,
    pipe_limit: String,
    _lock: File,
    watchdog: Option<Child>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim_end_matches('\n')
        .to_string()
}

fn write(path: &str, value: &str) {
    if let Err(e) = std::fs::write(path, format!("{value}\n")) {
        eprintln!("kernel_lock: cannot write {value:?} to {path}: {e}");
    }
}

impl KernelSettings {
    /// Waits for the lock (tests run serially across processes), repairs what a killed holder
    /// left behind, and records the current settings.
    pub fn acquire() -> KernelSettings {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK)
            .expect("open test lock");
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("flock");
        if let Ok(saved) = std::fs::read_to_string(SAVED) {
            let mut lines = saved.lines();
            let (p, l) = (lines.next().unwrap_or("core"), lines.next().unwrap_or("0"));
            eprintln!("kernel_lock: restoring settings left by a killed test: {p:?} {l}");
            write(CORE_PATTERN, p);
            write(CORE_PIPE_LIMIT, l);
        }
        let pattern = read(CORE_PATTERN);
        let pipe_limit = read(CORE_PIPE_LIMIT);
        std::fs::write(SAVED, format!("{pattern}\n{pipe_limit}\n")).expect("write saved state");
        let watchdog = spawn_watchdog(&pattern, &pipe_limit);
        KernelSettings {
            pattern,
            pipe_limit,
            _lock: lock,
            watchdog,
        }
    }

    /// Sets `core_pattern`.
    pub fn set_core_pattern(&self, pattern: &str) {
        write(CORE_PATTERN, pattern);
        assert_eq!(read(CORE_PATTERN), pattern, "core_pattern not applied");
    }

    /// Sets `core_pipe_limit`.
    pub fn set_pipe_limit(&self, limit: u32) {
        write(CORE_PIPE_LIMIT, &limit.to_string());
    }

    /// `core_pattern` as it was before the test.
    pub fn original_pattern(&self) -> &str {
        &self.pattern
    }

    /// Current `core_pattern`.
    pub fn current_pattern(&self) -> String {
        read(CORE_PATTERN)
    }
}

impl Drop for KernelSettings {
    fn drop(&mut self) {
        write(CORE_PATTERN, &self.pattern);
        write(CORE_PIPE_LIMIT, &self.pipe_limit);
        if let Some(mut child) = self.watchdog.take() {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"done\n");
            }
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(SAVED);
    }
}

/// A shell that waits on a pipe from us: EOF without "done" means we died, so it restores.
fn spawn_watchdog(pattern: &str, pipe_limit: &str) -> Option<Child> {
    let script = r#"read -r word; if [ "$word" != done ]; then printf '%s\n' "$1" > /proc/sys/kernel/core_pattern; printf '%s\n' "$2" > /proc/sys/kernel/core_pipe_limit; rm -f "$3"; fi"#;
    Command::new("sh")
        .args(["-c", script, "watchdog", pattern, pipe_limit, SAVED])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()
}

/// Whether this process may change kernel settings (root, writable `/proc/sys`).
pub fn can_change_kernel_settings() -> bool {
    rustix::process::geteuid().is_root()
        && std::fs::OpenOptions::new()
            .write(true)
            .open(Path::new(CORE_PATTERN))
            .is_ok()
}
