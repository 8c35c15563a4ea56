//! Ownership of the kernel's machine-wide core settings (`kernel.core_pattern`,
//! `kernel.core_pipe_limit`).
//!
//! Only one live process may own them, on the whole machine. The owner holds two flocks: the
//! machine's [`KernelPaths::owner_lock`] (a fixed host path, so a second install with another
//! directory is refused too, and the kernel releases it whenever the owner dies), and
//! `<run_dir>/pattern.lock` of its own directory. It records the values it replaced in
//! `<run_dir>/pattern.json` *before* changing anything, so: a clean exit restores them
//! ([`PatternGuard::restore`], also on drop); a killed owner leaves the record, and the next
//! owner restores from it before installing its own pattern.

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
    /// The machine-wide owner lock: the same file for every install on this machine (the
    /// agent's DaemonSet mounts its directory from the host), whatever its `run_dir`.
    pub owner_lock: PathBuf,
}

/// Where every owner of the kernel's core settings takes the machine-wide lock.
pub const OWNER_LOCK: &str = "/run/coredump-detector/owner.lock";
/// The directory of [`OWNER_LOCK`] (a host path the agent's DaemonSet mounts).
pub const OWNER_LOCK_DIR: &str = "/run/coredump-detector";

impl Default for KernelPaths {
    fn default() -> Self {
        KernelPaths {
            core_pattern: "/proc/sys/kernel/core_pattern".into(),
            core_pipe_limit: "/proc/sys/kernel/core_pipe_limit".into(),
            run_dir: OWNER_LOCK_DIR.into(),
            owner_lock: OWNER_LOCK.into(),
        }
    }
}

impl KernelPaths {
    /// Settings and owner lock under `dir` (`core_pattern`, `core_pipe_limit`, `owner.lock`),
    /// the run directory `dir/run`: a scratch stand-in for unit tests.
    pub fn scratch(dir: &Path) -> KernelPaths {
        KernelPaths {
            core_pattern: dir.join("core_pattern"),
            core_pipe_limit: dir.join("core_pipe_limit"),
            run_dir: dir.join("run"),
            owner_lock: dir.join("owner.lock"),
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
    /// A pattern of ours the owner switched away from (the pipe handler under a socket, or the
    /// socket after a switch back): still ours if the kernel shows it, e.g. after the owner
    /// was killed between writing this record and writing `core_pattern`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_pattern: Option<String>,
    /// Owner process id.
    pub owner_pid: u32,
    /// Owner's data directory, for error messages.
    pub owner: String,
}

impl PatternRecord {
    /// Whether `pattern` is one this record's owner installed.
    pub fn is_ours(&self, pattern: &str) -> bool {
        pattern == self.installed_pattern || self.fallback_pattern.as_deref() == Some(pattern)
    }
}

/// Proof of ownership; restores the previous settings when dropped.
#[derive(Debug)]
pub struct PatternGuard {
    paths: KernelPaths,
    record: PatternRecord,
    _locks: [File; 2],
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
    locks: [File; 2],
}

/// Who holds the machine-wide owner lock, written beside it for the refusal message.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OwnerNote {
    pid: u32,
    owner: String,
}

impl PatternLock {
    /// Takes the machine-wide owner lock, then the lock in `paths.run_dir`; fails, naming the
    /// live owner, when another process holds either. Nothing else is touched before both are
    /// ours.
    pub fn acquire(paths: KernelPaths, owner: &str) -> Result<PatternLock, CaptureError> {
        let machine = take_lock(&paths.owner_lock, || {
            read_note(&paths.owner_lock)
                .map(|n| format!("pid {} ({})", n.pid, n.owner))
                .unwrap_or_else(|| "another process".into())
        })?;
        let own = take_lock(&paths.run_dir.join("pattern.lock"), || {
            read_record(&paths)
                .map(|r| format!("pid {} ({})", r.owner_pid, r.owner))
                .unwrap_or_else(|| "another process".into())
        })?;
        let note = OwnerNote {
            pid: std::process::id(),
            owner: owner.to_string(),
        };
        let note_path = note_path(&paths.owner_lock);
        let json = serde_json::to_vec(&note).map_err(|source| CaptureError::Config {
            path: note_path.clone(),
            source,
        })?;
        write_atomic(&note_path, &json)?;
        Ok(PatternLock {
            paths,
            owner: owner.to_string(),
            locks: [machine, own],
        })
    }

    /// The pattern an [`PatternLock::install`] would record as the one to restore: the
    /// previous owner's when the kernel still shows that owner's pattern (a hand-over or a
    /// killed owner), else the current one.
    pub fn previous_pattern(&self) -> Result<String, CaptureError> {
        let current = read_setting(&self.paths.core_pattern)?;
        Ok(match read_record(&self.paths) {
            Some(record) if record.is_ours(&current) => record.previous_pattern,
            _ => current,
        })
    }

    /// Installs `pattern` (see [`PatternGuard::install`]).
    pub fn install(self, pattern: &str, pipe_limit: u32) -> Result<PatternGuard, CaptureError> {
        let PatternLock {
            paths,
            owner,
            locks,
        } = self;
        check_length(pattern)?;
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
            fallback_pattern: None,
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
            _locks: locks,
            restored: false,
        })
    }
}

impl PatternGuard {
    /// What was replaced and installed.
    pub fn record(&self) -> &PatternRecord {
        &self.record
    }

    /// Points `core_pattern` at another pattern of ours (the socket over the pipe handler, and
    /// back), keeping ownership and what to restore. The record names both patterns before the
    /// kernel is told, so an owner killed in between still leaves a pattern the next owner
    /// recognises. When the kernel refuses the new pattern (`EINVAL` for a socket written from
    /// outside the initial mount namespace) it keeps the old one, and so does the record.
    pub fn switch_to(&mut self, pattern: &str) -> Result<(), CaptureError> {
        if pattern == self.record.installed_pattern {
            return Ok(());
        }
        check_length(pattern)?;
        let before = self.record.clone();
        self.record.fallback_pattern = Some(std::mem::replace(
            &mut self.record.installed_pattern,
            pattern.to_string(),
        ));
        self.write_record()?;
        if let Err(e) = write_setting(&self.paths.core_pattern, pattern, "kernel.core_pattern") {
            self.record = before;
            let _ = self.write_record();
            return Err(e);
        }
        Ok(())
    }

    /// Leaves the kernel to the next owner instead of restoring: points `core_pattern` at
    /// `pattern` (e.g. the pipe handler, which spools crashes while no process runs) and keeps
    /// the record, so the next [`PatternGuard::install`] takes over without a gap and a
    /// [`PatternGuard::restore`] by it still brings back what was there before the first owner.
    pub fn hand_over(&mut self, pattern: &str) -> Result<(), CaptureError> {
        self.restored = true;
        self.switch_to(pattern)
    }

    fn write_record(&self) -> Result<(), CaptureError> {
        let json =
            serde_json::to_vec_pretty(&self.record).map_err(|source| CaptureError::Config {
                path: record_path(&self.paths),
                source,
            })?;
        write_atomic(&record_path(&self.paths), &json)
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

/// Refuses a pattern longer than the kernel keeps (it would cut it silently).
fn check_length(pattern: &str) -> Result<(), CaptureError> {
    if pattern.len() > CORE_PATTERN_MAX {
        return Err(CaptureError::Sysctl {
            name: "kernel.core_pattern",
            message: format!(
                "pattern is {} bytes, the kernel takes at most {CORE_PATTERN_MAX}: use a shorter data directory ({pattern})",
                pattern.len()
            ),
        });
    }
    Ok(())
}

/// Opens (creating its directory, mode 0700) and flocks `path`; `who` names the holder when
/// another process has it.
fn take_lock(path: &Path, who: impl FnOnce() -> String) -> Result<File, CaptureError> {
    if let Some(dir) = path.parent() {
        crate::spool::create_private_dir_all(dir)?;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| CaptureError::io("open", path, e))?;
    if !sys::try_lock(&lock) {
        return Err(CaptureError::Sysctl {
            name: "kernel.core_pattern",
            message: format!(
                "already owned by a live coredump-detector: {}; refusing to start a second owner (lock {})",
                who(),
                path.display()
            ),
        });
    }
    Ok(lock)
}

/// The owner note beside the machine-wide lock (`owner.lock` -> `owner.json`).
fn note_path(lock: &Path) -> PathBuf {
    lock.with_extension("json")
}

fn read_note(lock: &Path) -> Option<OwnerNote> {
    let bytes = read_bounded(&note_path(lock), 64 << 10).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn read_record(paths: &KernelPaths) -> Option<PatternRecord> {
    let bytes = read_bounded(&record_path(paths), 64 << 10).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn restore_from(paths: &KernelPaths, record: &PatternRecord) -> Result<(), CaptureError> {
    let current = read_setting(&paths.core_pattern)?;
    if record.is_ours(&current) {
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
    if record.is_ours(&read_setting(&paths.core_pattern)?) {
        return Ok(Some(record));
    }
    restore_from(paths, &record)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path) -> KernelPaths {
        let paths = KernelPaths::scratch(dir);
        std::fs::write(&paths.core_pattern, "core\n").unwrap();
        std::fs::write(&paths.core_pipe_limit, "0\n").unwrap();
        paths
    }

    #[test]
    fn the_owner_lock_is_in_its_directory() {
        assert_eq!(
            Path::new(OWNER_LOCK).parent(),
            Some(Path::new(OWNER_LOCK_DIR))
        );
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
    fn a_second_owner_with_another_directory_is_refused_by_the_machine_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = fake(tmp.path());
        let _first =
            PatternGuard::install(paths.clone(), "|/a/x handle", 16, "first (/a)").unwrap();
        let other = KernelPaths {
            run_dir: tmp.path().join("other-install/run"),
            ..paths.clone()
        };
        let err = PatternLock::acquire(other.clone(), "second (/b)").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("first (/a)") && text.contains("pid"),
            "{text}"
        );
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "|/a/x handle");
        assert!(
            !other.run_dir.exists(),
            "refused before creating anything of its own"
        );
    }

    #[test]
    fn a_switch_the_kernel_refuses_leaves_pattern_and_record_as_they_were() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = fake(tmp.path());
        let mut guard = PatternGuard::install(paths.clone(), "|/x handle", 16, "t").unwrap();
        // A read-only stand-in for core_pattern: the write fails as the kernel's EINVAL does.
        let refusing = KernelPaths {
            core_pattern: tmp.path().join("no-such-dir/core_pattern"),
            ..paths.clone()
        };
        let real = std::mem::replace(&mut guard.paths, refusing);
        assert!(guard.switch_to("@@/run/s.sock").is_err());
        guard.paths = real;
        assert_eq!(guard.record().installed_pattern, "|/x handle");
        assert_eq!(guard.record().fallback_pattern, None);
        assert_eq!(read_record(&paths).unwrap(), *guard.record());
        guard.switch_to("@@/run/s.sock").unwrap();
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "@@/run/s.sock");
        drop(guard);
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "core");
    }

    #[test]
    fn an_owner_killed_between_record_and_switch_is_still_recognised() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = fake(tmp.path());
        let mut guard = PatternGuard::install(paths.clone(), "|/x handle", 16, "t").unwrap();
        guard.switch_to("@@/run/s.sock").unwrap();
        // As if killed after the record was written, before core_pattern was: the kernel still
        // shows the pipe, which the record names as the fallback.
        std::fs::write(&paths.core_pattern, "|/x handle\n").unwrap();
        guard.restored = true;
        drop(guard);
        let next = PatternLock::acquire(paths.clone(), "next").unwrap();
        assert_eq!(next.previous_pattern().unwrap(), "core");
        let next = next.install("|/x handle", 16).unwrap();
        assert_eq!(next.record().previous_pattern, "core");
        drop(next);
        assert_eq!(read_setting(&paths.core_pattern).unwrap(), "core");
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
            fallback_pattern: None,
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
        let mut first = PatternGuard::install(paths.clone(), "@@/run/a.sock", 16, "first").unwrap();
        first.hand_over("|/x handle").unwrap();
        drop(first);
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
        let mut first = PatternGuard::install(paths.clone(), "|/x handle", 16, "first").unwrap();
        first.hand_over("|/x handle").unwrap();
        drop(first);
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
