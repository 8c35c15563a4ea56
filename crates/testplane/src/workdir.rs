//! Per-instance scratch directories under `$TMPDIR/coredump-testplane/`, named after the owning
//! process. A shared control plane lives in a `static` whose destructor never runs, so each
//! directory is also removed once its process has exited
//! ([`coredump_testkit::scratch::remove_after_exit`]), and each new instance first removes those
//! of processes that no longer exist (should that remover have been killed too): repeated test
//! runs do not pile up certificates, logs and etcd data.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::error::HarnessError;

/// The root of all instance directories.
fn root() -> PathBuf {
    std::env::temp_dir().join("coredump-testplane")
}

/// A fresh directory `<root>/<pid>-<kind>-<random>`, removed when the returned guard drops.
pub(crate) fn instance_dir(kind: &str) -> Result<TempDir, HarnessError> {
    let root = root();
    std::fs::create_dir_all(&root).map_err(|e| HarnessError::io("create directory", &root, e))?;
    sweep_stale(&root);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}-{kind}-", std::process::id()))
        .tempdir_in(&root)
        .map_err(|e| HarnessError::io("create temporary directory in", &root, e))?;
    coredump_testkit::scratch::remove_after_exit(dir.path())
        .map_err(|e| HarnessError::io("arrange the removal at exit of", dir.path(), e))?;
    Ok(dir)
}

/// Removes entries whose owning pid is no longer running. Best effort: another process may be
/// sweeping at the same time.
fn sweep_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = owner_pid(&name.to_string_lossy()) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid prefix of an instance directory name.
fn owner_pid(name: &str) -> Option<u32> {
    name.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_the_numeric_prefix() {
        assert_eq!(owner_pid("1234-cp-abcd"), Some(1234));
        assert_eq!(owner_pid("cp-abcd"), None);
        assert_eq!(owner_pid("1234"), None);
    }

    #[test]
    fn sweeps_dead_owners_only() {
        let root = tempfile::tempdir().unwrap();
        // pid 0 never names a user process: /proc/0 does not exist.
        let dead = root.path().join("0-cp-x");
        let alive = root.path().join(format!("{}-cp-y", std::process::id()));
        let other = root.path().join("notes");
        for d in [&dead, &alive, &other] {
            std::fs::create_dir(d).unwrap();
        }
        sweep_stale(root.path());
        assert!(!dead.exists());
        assert!(alive.exists());
        assert!(other.exists());
    }
}
