//! Ownership of the kernel's machine-wide core settings (`kernel.core_pattern`,
//! `kernel.core_pipe_limit`).
//!
//! Only one live process may own them. The owner holds a flock on `<run_dir>/pattern.lock` and
//! records the values it replaced in `<run_dir>/pattern.json` *before* changing anything, so:
//! a clean exit restores them ([`PatternGuard::restore`], also on drop); a killed owner leaves
//! the record, and the next owner restores from it before installing its own pattern.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{read_bounded, write_atomic};
use crate::{CaptureError, sys};

/// Where the settings and the ownership record live. Real paths by default; tests substitute.
#[derive(Debug, Clone)]
pub struct KernelPaths {
    /// `/proc/sys/kernel/core_pattern`.
    pub core_pattern: PathBuf,
    /// `/proc/sys/kernel/core_pipe_limit`.
    pub core_pipe_limit: PathBuf,
    /// Directory for the lock and the record of replaced values (tmpfs: gone at reboot, like
    /// the settings themselves).
    pub run_dir: PathBuf,
}

impl Default for KernelPaths {
    fn default() -> Self {
        KernelPaths {
            core_pattern: "/proc/sys/kernel/core_pattern".into(),
            core_pipe_limit: "/proc/sys/kernel/core_pipe_limit".into(),
            run_dir: "/run/coredump-detector".into(),
        }
    }
}

/// Longest `core_pattern` the kernel accepts (`CORENAME_MAX_SIZE` - 1).
pub const CORE_PATTERN_MAX: usize = 127;

/// The values we replaced, and what we installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatternRecord {
    /// `core_pattern` before us.
    pub previous_pattern: String,
    /// `core_pipe_limit` before us.
    pub previous_pipe_limit: u32,
    /// `core_pattern` we installed.
    pub installed_pattern: String,
    /// Owner process id.
    pub owner_pid: u32,
    /// Owner's data directory, for error messages.
    pub owner: String,
}

/// Proof of ownership; restores the previous settings when dropped.
#[derive(Debug)]
pub struct PatternGuard {
    paths: KernelPaths,
    record: PatternRecord,
    _lock: File,
    restored: bool,
}

/// Reads a sysctl file, trimmed.
pub fn read_setting(path: &Path) -> Result<String, CaptureError> {
    let bytes = read_bounded(path, 4096)?;
    Ok(String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_string())
}

fn write_setting(path: &Path, value: &str, name: &'static str) -> Result<(), CaptureError> {
    std::fs::write(path, format!("{value}\n")).map_err(|e| CaptureError::Sysctl {
        name,
        message: format!("writing {value:?} to {}: {e}", path.display()),
    })
}

impl PatternGuard {
    /// Takes ownership and installs `pattern` with at least `pipe_limit` concurrent pipe
    /// helpers (a non-zero limit also makes the kernel keep `/proc/<pid>` until the helper is
    /// done reading). Fails if another live owner exists; repairs a dead owner's leftovers.
    pub fn install(
        paths: KernelPaths,
        pattern: &str,
        pipe_limit: u32,
        owner: &str,
    ) -> Result<PatternGuard, CaptureError> {
        PatternLock::acquire(paths, owner)?.install(pattern, pipe_limit)
    }
}

/// Ownership of the kernel settings before anything is changed: taken first, so a second
/// process that would install into the same host directory is refused before it touches the
/// live owner's files (its handler binary, its `handler.json`), not only before the pattern.
#[derive(Debug)]
pub struct PatternLock {
    paths: KernelPaths,
    owner: String,
    lock: File,
}

impl PatternLock {
    /// Takes the lock in `paths.run_dir`; fails, naming the live owner, when another process
    /// holds it.
    pub fn acquire(paths: KernelPaths, owner: &str) -> Result<PatternLock, CaptureError> {
        crate::spool::create_private_dir_all(&paths.run_dir)?;
        let lock_path = paths.run_dir.join("pattern.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| CaptureError::io("open", &lock_path, e))?;
        if !sys::try_lock(&lock) {
            let who = read_record(&paths)
                .map(|r| format!("pid {} ({})", r.owner_pid, r.owner))
                .unwrap_or_else(|| "another process".into());
            return Err(CaptureError::Sysctl {
                name: "kernel.core_pattern",
                message: format!(
                    "already owned by a live coredump-detector: {who}; refusing to start a second agent on {}",
                    paths.run_dir.display()
                ),
            });
        }
        Ok(PatternLock {
            paths,
            owner: owner.to_string(),
            lock,
        })
    }

    /// Installs `pattern` (see [`PatternGuard::install`]).
    pub fn install(self, pattern: &str, pipe_limit: u32) -> Result<PatternGuard, CaptureError> {
        let PatternLock { paths, owner, lock } = self;
        if pattern.len() > CORE_PATTERN_MAX {
            return Err(CaptureError::Sysctl {
                name: "kernel.core_pattern",
                message: format!(
                    "pattern is {} bytes, the kernel takes at most {CORE_PATTERN_MAX}: use a shorter data directory ({pattern})",
                    pattern.len()
                ),
            });
        }
        // A predecessor that handed over (or was killed) left its record and its pattern: take
        // both over, so the kernel never falls back to the old pattern between two owners.
        let (previous_pattern, previous_pipe_limit) = match adopt_or_repair(&paths)? {
            Some(adopted) => (adopted.previous_pattern, adopted.previous_pipe_limit),
            None => (
                read_setting(&paths.core_pattern)?,
                read_setting(&paths.core_pipe_limit)?.parse().unwrap_or(0),
            ),
        };
        let record = PatternRecord {
            previous_pattern,
            previous_pipe_limit,
            installed_pattern: pattern.to_string(),
            owner_pid: std::process::id(),
            owner,
        };
        let json = serde_json::to_vec_pretty(&record).map_err(|source| CaptureError::Config {
            path: record_path(&paths),
            source,
        })?;
        write_atomic(&record_path(&paths), &json)?;
        let limit = pipe_limit.max(record.previous_pipe_limit);
        write_setting(
            &paths.core_pipe_limit,
            &limit.to_string(),
            "kernel.core_pipe_limit",
        )?;
        write_setting(&paths.core_pattern, pattern, "kernel.core_pattern")?;
        Ok(PatternGuard {
            paths,
            record,
            _lock: lock,
            restored: false,
        })
    }
}

impl PatternGuard {
    /// What was replaced and installed.
    pub fn record(&self) -> &PatternRecord {
        &self.record
    }

    /// Leaves the kernel to the next owner instead of restoring: points `core_pattern` at
    /// `pattern` (e.g. the pipe handler, which spools crashes while no process runs) and keeps
    /// the record, so the next [`PatternGuard::install`] takes over without a gap and a
    /// [`PatternGuard::restore`] by it still brings back what was there before the first owner.
    pub fn hand_over(mut self, pattern: &str) -> Result<(), CaptureError> {
        self.restored = true;
        if pattern != self.record.installed_pattern {
            self.record.installed_pattern = pattern.to_string();
            let json =
                serde_json::to_vec_pretty(&self.record).map_err(|source| CaptureError::Config {
                    path: record_path(&self.paths),
                    source,
                })?;
            write_atomic(&record_path(&self.paths), &json)?;
            write_setting(&self.paths.core_pattern, pattern, "kernel.core_pattern")?;
        }
        Ok(())
    }

    /// Puts the previous settings back (unless someone else changed the pattern since, which
    /// we then leave alone) and forgets the record.
    pub fn restore(&mut self) -> Result<(), CaptureError> {
        if self.restored {
            return Ok(());
        }
        self.restored = true;
        restore_from(&self.paths, &self.record)
    }
}

impl Drop for PatternGuard {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

fn record_path(paths: &KernelPaths) -> PathBuf {
    paths.run_dir.join("pattern.json")
}

fn read_record(paths: &KernelPaths) -> Option<PatternRecord> {
    let bytes = read_bounded(&record_path(paths), 64 << 10).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn restore_from(paths: &KernelPaths, record: &PatternRecord) -> Result<(), CaptureError> {
    let current = read_setting(&paths.core_pattern)?;
    if current == record.installed_pattern {
        write_setting(
            &paths.core_pattern,
            &record.previous_pattern,
            "kernel.core_pattern",
        )?;
        write_setting(
            &paths.core_pipe_limit,
            &record.previous_pipe_limit.to_string(),
            "kernel.core_pipe_limit",
        )?;
    }
    match std::fs::remove_file(record_path(paths)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CaptureError::io("remove", record_path(paths), e)),
    }
}

/// A record left by an owner that is gone (we hold the lock): when its pattern is still
/// installed, returns it to take over (the settings it replaced become ours to restore);
/// otherwise someone changed the pattern since, and the record is dropped.
fn adopt_or_repair(paths: &KernelPaths) -> Result<Option<PatternRecord>, CaptureError> {
    let Some(record) = read_record(paths) else {
        return Ok(None);
    };
    if read_setting(&paths.core_pattern)? == record.installed_pattern {
        return Ok(Some(record));
    }
    restore_from(paths, &record)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path) -> KernelPaths {
        let paths = KernelPaths {
            core_pattern: dir.join("core_pattern"),
            core_pipe_limit: dir.join("core_pipe_limit"),
            run_dir: dir.join("run"),
        };
        std::fs::write(&paths.core_pattern, "core\n").unwrap();
        std::fs::write(&paths.core_pipe_limit, "0\n").unwrap();
        paths
    }

    #[test]
    fn install_then_restore() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = fake(tmp.path());
        let guard = PatternGuard::install(paths.clone(), "|/x handle", 16, "test").unwrap();
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "|/x handle");
        assert_eq!(read_setting(&paths.core_pipe_limit).unwrap(), "16");
        drop(guard);
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "core");
        assert_eq!(read_setting(&paths.core_pipe_limit).unwrap(), "0");
        assert!(!record_path(&paths).exists());
    }

    #[test]
    fn second_live_owner_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = fake(tmp.path());
        let _first = PatternGuard::install(paths.clone(), "|/x handle", 16, "first").unwrap();
        let err = PatternGuard::install(paths.clone(), "|/y handle", 16, "second").unwrap_err();
        assert!(err.to_string().contains("first"), "{err}");
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "|/x handle");
    }

    #[test]
    fn the_lock_is_refused_to_a_second_owner_before_anything_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = fake(tmp.path());
        let first = PatternLock::acquire(paths.clone(), "first").unwrap();
        let err = PatternLock::acquire(paths.clone(), "second").unwrap_err();
        assert!(err.to_string().contains("already owned"), "{err}");
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "core");
        let _guard = first.install("|/x handle", 16).unwrap();
        let err = PatternLock::acquire(paths.clone(), "third").unwrap_err();
        assert!(err.to_string().contains("first"), "{err}");
    }

    #[test]
    fn dead_owner_is_repaired() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = fake(tmp.path());
        // What a SIGKILLed owner leaves: its pattern installed and its record, no lock holder.
        std::fs::create_dir_all(&paths.run_dir).unwrap();
        std::fs::write(&paths.core_pattern, "|/dead handle\n").unwrap();
        std::fs::write(&paths.core_pipe_limit, "16\n").unwrap();
        let left = PatternRecord {
            previous_pattern: "core".into(),
            previous_pipe_limit: 0,
            installed_pattern: "|/dead handle".into(),
            owner_pid: 1,
            owner: "dead".into(),
        };
        std::fs::write(record_path(&paths), serde_json::to_vec(&left).unwrap()).unwrap();
        let guard = PatternGuard::install(paths.clone(), "|/y handle", 4, "next").unwrap();
        assert_eq!(
            guard.record().previous_pattern,
            "core",
            "the dead owner's previous pattern is ours to restore"
        );
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "|/y handle");
        assert_eq!(guard.record().previous_pipe_limit, 0);
        assert_eq!(read_setting(&paths.core_pipe_limit).unwrap(), "4");
        drop(guard);
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "core");
        assert_eq!(read_setting(&paths.core_pipe_limit).unwrap(), "0");
    }

    #[test]
    fn a_handed_over_pattern_stays_until_the_next_owner_replaces_it() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = fake(tmp.path());
        let first = PatternGuard::install(paths.clone(), "@@/run/a.sock", 16, "first").unwrap();
        first.hand_over("|/x handle").unwrap();
        assert_eq!(
            read_setting(&paths.core_pattern).unwrap(),
            "|/x handle",
            "not restored"
        );
        assert_eq!(read_setting(&paths.core_pipe_limit).unwrap(), "16");
        // The next owner swaps patterns directly: "core" is never written in between.
        std::fs::write(&paths.core_pipe_limit, "16\n").unwrap();
        let second = PatternGuard::install(paths.clone(), "@@/run/b.sock", 16, "second").unwrap();
        assert_eq!(second.record().previous_pattern, "core");
        assert_eq!(second.record().previous_pipe_limit, 0);
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "@@/run/b.sock");
        drop(second);
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "core");
        assert_eq!(read_setting(&paths.core_pipe_limit).unwrap(), "0");
    }

    #[test]
    fn a_record_whose_pattern_was_replaced_since_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = fake(tmp.path());
        let first = PatternGuard::install(paths.clone(), "|/x handle", 16, "first").unwrap();
        first.hand_over("|/x handle").unwrap();
        std::fs::write(&paths.core_pattern, "|/admin/tool\n").unwrap();
        let second = PatternGuard::install(paths.clone(), "|/y handle", 16, "second").unwrap();
        assert_eq!(second.record().previous_pattern, "|/admin/tool");
        drop(second);
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "|/admin/tool");
    }

    #[test]
    fn too_long_pattern_is_refused_before_touching_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = fake(tmp.path());
        let long = format!("|/{}", "a".repeat(200));
        assert!(PatternGuard::install(paths.clone(), &long, 1, "t").is_err());
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "core");
    }

    #[test]
    fn restore_leaves_a_foreign_pattern_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = fake(tmp.path());
        let guard = PatternGuard::install(paths.clone(), "|/x handle", 16, "t").unwrap();
        std::fs::write(&paths.core_pattern, "|/someone/else\n").unwrap();
        drop(guard);
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "|/someone/else");
    }
}
