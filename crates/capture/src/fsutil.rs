//! Small filesystem helpers shared by the handler and the tools that manage the spool:
//! bounded reads, atomic writes, directory fsync. Writes never follow symlinks.

use std::fs::{File, OpenOptions};
use std::io::Read;
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
    coredump_common::atomic_file::fsync_dir(dir).map_err(from_atomic)
}

/// Writes `bytes` to `path` atomically, mode 0600 ([`coredump_common::atomic_file`]): readers
/// see the old content or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CaptureError> {
    coredump_common::atomic_file::write(path, bytes, 0o600).map_err(from_atomic)
}

fn from_atomic(e: coredump_common::atomic_file::AtomicWriteError) -> CaptureError {
    CaptureError::io(e.step, e.path, e.source)
}
