//! Scratch directories that outlive every test of a binary yet not the binary itself.
//!
//! A fixture kept in a `static` (a control plane, an API server shared by all tests of one binary)
//! never runs its destructor, so a `TempDir` inside it would stay on disk after every run. Here a
//! small shell, in its own process group (Ctrl-C of `cargo test` does not reach it), waits for
//! end of file on a pipe whose only writer is this process: the kernel closes that pipe however
//! the test binary ends (normal exit, panic, SIGKILL), and the shell then removes the directory.

use std::ffi::OsStr;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A new directory `<parent>/<prefix><random>`, removed once this process has exited.
pub fn process_scratch_dir(parent: &Path, prefix: &str) -> io::Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)?
        .keep();
    remove_after_exit(&dir)?;
    Ok(dir)
}

/// Removes `path` (recursively) once this process has exited, however it exits. Removing it
/// earlier is fine: the shell's `rm -rf` then finds nothing.
pub fn remove_after_exit(path: &Path) -> io::Result<()> {
    let rm: [&OsStr; 3] = ["rm".as_ref(), "-rf".as_ref(), "--".as_ref()];
    run_after_exit(&[&rm[..], &[path.as_os_str()]].concat())
}

/// Runs `command` (program and arguments) once this process has exited, however it exits: for
/// fixtures that leave more than a directory (a test node's containers, mounts and cgroups).
/// Its output is discarded.
pub fn run_after_exit(command: &[&OsStr]) -> io::Result<()> {
    // `read` returns at end of file: when the last copy of the write end closes, at our exit (std
    // opens pipes close-on-exec, so no other child keeps a copy).
    let script = r#"read -r _; exec "$@""#;
    let child = Command::new("sh")
        .args(["-c", script, "run-after-exit"])
        .args(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    // Never waited for: the shell must outlive us, and then init reaps it. Forgetting the handle
    // keeps the pipe's write end open until this process ends.
    std::mem::forget(child);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Runs in a child test process (see below), which prints its directory and then exits.
    #[test]
    #[ignore = "helper, started by the directory_goes_when_the_process_exits test"]
    fn helper_make_scratch_dir_then_exit() {
        let Some(parent) = std::env::var_os("COREDUMP_TESTKIT_SCRATCH_PARENT") else {
            return;
        };
        let dir = process_scratch_dir(Path::new(&parent), "scratch-").unwrap();
        std::fs::write(dir.join("file"), b"x").unwrap();
        println!("SCRATCH_DIR={}", dir.display());
    }

    #[test]
    fn directory_goes_when_the_process_exits() {
        let parent = tempfile::tempdir().unwrap();
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "scratch::tests::helper_make_scratch_dir_then_exit",
            ])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env("COREDUMP_TESTKIT_SCRATCH_PARENT", parent.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let dir = stdout
            .lines()
            .find_map(|line| line.split_once("SCRATCH_DIR=").map(|(_, d)| d.trim()))
            .unwrap_or_else(|| panic!("the helper printed no directory: {stdout}"));
        assert!(Path::new(dir).starts_with(parent.path()), "{dir}");
        let gone = || (!Path::new(dir).exists()).then_some(());
        crate::poll::wait_for(
            "the scratch directory to go",
            Duration::from_secs(10),
            Duration::from_millis(20),
            gone,
        )
        .unwrap();
    }

    #[test]
    fn directory_stays_while_the_process_lives() {
        let parent = tempfile::tempdir().unwrap();
        let dir = process_scratch_dir(parent.path(), "scratch-").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(dir.is_dir());
    }
}
