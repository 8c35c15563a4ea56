//! Files replaced whole or not at all. A crash, a full disk or a kill at any moment leaves
//! either the old content or the new under the name, never a part: the bytes go to a temporary
//! file beside the target (created exclusively, never through a symlink), which is fsynced,
//! renamed over the target, and the directory fsynced so the rename itself survives a power
//! loss. Every role writes its state, records and installed binaries this way.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A failed step of an atomic write: which step, on which file.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {source}", path.display())]
pub struct AtomicWriteError {
    /// What was being done (`create`, `write`, `rename`...).
    pub step: &'static str,
    /// The file it was done to.
    pub path: PathBuf,
    /// Why it failed.
    #[source]
    pub source: std::io::Error,
}

fn failed(step: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AtomicWriteError {
    let path = path.to_path_buf();
    move |source| AtomicWriteError { step, path, source }
}

/// Writes `bytes` to `path` atomically, the file getting `mode` (before the umask).
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AtomicWriteError> {
    replace(path, mode, |file, tmp| {
        file.write_all(bytes).map_err(failed("write", tmp))
    })
}

/// Copies `source` to `path` atomically with `mode`: how a binary is installed while an older
/// copy may be running (the running process keeps its old file, the next start gets the new
/// one whole).
pub fn copy(source: &Path, path: &Path, mode: u32) -> Result<(), AtomicWriteError> {
    let mut from = File::open(source).map_err(failed("open", source))?;
    replace(path, mode, |file, tmp| {
        std::io::copy(&mut from, file)
            .map(drop)
            .map_err(failed("copy into", tmp))
    })
}

/// fsyncs a directory, so that a create, rename or removal inside it survives a crash.
pub fn fsync_dir(dir: &Path) -> Result<(), AtomicWriteError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed("fsync", dir))
}

/// The temporary file beside `path`, filled by `fill`, then fsynced, renamed over `path`, and
/// the directory fsynced. The temporary file is removed on any failure.
fn replace(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File, &Path) -> Result<(), AtomicWriteError>,
) -> Result<(), AtomicWriteError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(name);
    // A leftover of an earlier process with this pid (it crashed mid-write).
    let _ = std::fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(failed("create", &tmp))?;
    let written = fill(&mut file, &tmp)
        .and_then(|()| file.sync_all().map_err(failed("fsync", &tmp)))
        .and_then(|()| {
            // Closed before it takes the name: a binary still open for writing cannot be
            // executed (ETXTBSY), and the kernel may exec the handler at any moment.
            drop(file);
            std::fs::rename(&tmp, path).map_err(failed("rename", path))
        });
    if let Err(e) = written {
        // Nothing half-written stays behind (a full disk is the usual cause).
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_replaces_whole_with_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write(&path, b"old", 0o600).unwrap();
        write(&path, b"new content", 0o640).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new content");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o022, 0o640 & !0o022, "mode {mode:o}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_content_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record");
        write(&path, b"kept", 0o600).unwrap();
        // A directory where the temporary file would go makes the create fail.
        let blocker = dir
            .path()
            .join(format!(".record.tmp-{}", std::process::id()));
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("x"), b"").unwrap();
        let err = write(&path, b"lost", 0o600).unwrap_err();
        assert_eq!(err.step, "create");
        assert!(err.to_string().contains(".record.tmp-"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
    }

    #[test]
    fn a_symlink_in_place_of_the_temporary_file_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        let path = dir.path().join("target");
        let tmp = dir
            .path()
            .join(format!(".target.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        write(&path, b"written", 0o600).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(std::fs::read(&path).unwrap(), b"written");
    }

    #[test]
    fn a_binary_being_replaced_can_always_be_executed() {
        // While this process installs the binary again and again, another process executes it
        // (as the kernel executes the crash handler): every exec must find a whole, closed
        // file. The file used to take the name while still open for writing, and exec of such
        // a file fails with ETXTBSY: a crash whose handler cannot start is a lost core. (The
        // executing process is a shell started before the installs: a process forked from
        // this one during an install would itself hold the file open.)
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("true");
        let stop = dir.path().join("stop");
        copy(Path::new("/bin/true"), &path, 0o755).unwrap();
        let runner = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"i=0; while [ ! -e "$2" ] && [ $i -lt 100000 ]; do "$1" && echo ok || echo failed; i=$((i+1)); done"#)
            .arg("sh")
            .arg(&path)
            .arg(&stop)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        for _ in 0..300 {
            copy(Path::new("/bin/true"), &path, 0o755).unwrap();
        }
        std::fs::write(&stop, b"").unwrap();
        let out = runner.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        let ok = out.lines().filter(|l| *l == "ok").count();
        let failed = out.lines().filter(|l| *l == "failed").count();
        assert!(ok > 0, "the binary ran");
        assert_eq!(failed, 0, "{failed} of {} execs failed", ok + failed);
    }

    #[test]
    fn copy_installs_the_whole_source() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("bin-new");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &bytes).unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, b"old binary").unwrap();
        copy(&source, &path, 0o755).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o100, 0o100, "executable: {mode:o}");
        let err = copy(&dir.path().join("missing"), &path, 0o755).unwrap_err();
        assert_eq!(err.step, "open");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "a failed copy keeps the old file"
        );
    }
}
