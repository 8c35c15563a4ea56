//! Directory walking that never follows a symlink: every step is an `openat` relative to the
//! previous directory with `O_NOFOLLOW`, so a symlink planted anywhere under the store root
//! (namespace, pod, container or file) fails the operation instead of redirecting it outside.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

/// Flags for opening a directory we walk through.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the directory `name` inside `parent`; a symlink there is an error (`ELOOP`/`ENOTDIR`).
pub(super) fn open_dir(parent: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?)
}

/// Opens `name` inside `parent`, creating it (mode 0755) if absent. Returns the directory and
/// whether it was created, so the caller can fsync the parent.
pub(super) fn ensure_dir(parent: BorrowedFd<'_>, name: &str) -> io::Result<(OwnedFd, bool)> {
    match open_dir(parent, name) {
        Ok(fd) => return Ok((fd, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let created = match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => true,
        Err(Errno::EXIST) => false, // a concurrent writer made it
        Err(e) => return Err(e.into()),
    };
    Ok((open_dir(parent, name)?, created))
}

/// Opens a regular file for reading without following a symlink and without blocking on a
/// planted FIFO; anything but a regular file is `InvalidData`.
pub(super) fn open_regular(dir: BorrowedFd<'_>, name: &str) -> io::Result<std::fs::File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    let stat = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(not_regular());
    }
    // O_NONBLOCK has no effect on regular files; it only kept the open from hanging on a FIFO.
    Ok(std::fs::File::from(fd))
}

/// The error for a store entry of the wrong type (symlink, device, FIFO...).
pub(super) fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "not a regular file (symlinks and special files are never followed in the blob store)",
    )
}

/// `lstat` of `name` inside `dir`; `None` if absent.
pub(super) fn stat(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Type of a stat result.
pub(super) fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Names in `dir` other than `.` and `..` that are valid UTF-8 (the store never writes others).
pub(super) fn entries(dir: BorrowedFd<'_>) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut reader = Dir::read_from(dir)?;
    while let Some(entry) = reader.read() {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if let Some(name) = name.to_str()
            && name != "."
            && name != ".."
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Removes the directory `name` in `parent` if it is empty; other outcomes are not errors.
pub(super) fn remove_if_empty(parent: BorrowedFd<'_>, name: &str) {
    // ENOTEMPTY/EEXIST: still in use; ENOENT: already gone. Both fine.
    let _ = rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR);
}

/// Walks `names` from `root` without creating anything; `None` if a directory is absent.
pub(super) fn walk(root: &OwnedFd, names: &[&str]) -> io::Result<Option<OwnedFd>> {
    let mut current: Option<OwnedFd> = None;
    for name in names {
        let parent = current.as_ref().map_or(root.as_fd(), |fd| fd.as_fd());
        match open_dir(parent, name) {
            Ok(fd) => current = Some(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(match current {
        Some(fd) => fd,
        None => rustix::io::dup(root)?,
    }))
}
