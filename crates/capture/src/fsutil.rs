//! Small filesystem helpers shared by the handler and the tools that manage the spool:
//! bounded reads, atomic writes, directory fsync. Writes never follow symlinks.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::CaptureError;

/// Reads at most `limit` bytes of `path`; a longer file is an error, not a silent truncation.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, CaptureError> {
    let file = File::open(path).map_err(|e| CaptureError::io("open", path, e))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CaptureError::io("read", path, e))?;
    if bytes.len() as u64 > limit {
        return Err(CaptureError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// Reads at most `limit` bytes of `path`, cutting silently: for `/proc` files whose tail we can
/// afford to lose (command lines, cgroup lists).
pub fn read_prefix(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Creates `path` exclusively, refusing symlinks, with mode 0600.
pub fn create_new_nofollow(path: &Path) -> Result<File, CaptureError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| CaptureError::io("create", path, e))
}

/// Like [`create_new_nofollow`], opened for reading too.
pub fn create_new_nofollow_rw(path: &Path) -> Result<File, CaptureError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| CaptureError::io("create", path, e))
}

/// fsyncs a directory so a rename or create inside it survives a crash.
pub fn fsync_dir(dir: &Path) -> Result<(), CaptureError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CaptureError::io("fsync", dir, e))
}

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync, rename, fsync of the
/// directory. Readers see the old content or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CaptureError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = create_new_nofollow(&tmp)?;
    let written = file
        .write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| CaptureError::io("write", &tmp, e))
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|e| CaptureError::io("rename", path, e))
        });
    if let Err(e) = written {
        // Nothing half-written stays behind (a full disk is the usual cause).
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(dir)
}
