//! The filesystem [`BlobStore`]: the seed's layout `<root>/<namespace>/<podUID>/<container>/<file>`
//! on any POSIX filesystem (local disk, NFS, CephFS, GlusterFS).
//!
//! Writes go to `.<file>.tmp-<random>` in the target directory, are fsynced, renamed over the
//! final name and the directory is fsynced: a reader, or a restart at any moment, sees the whole
//! blob or nothing, and of two concurrent writers of one path one wins whole. Every path step is
//! opened relative to a directory descriptor with `O_NOFOLLOW` (see `dirs`), so a symlink planted
//! under the root can neither redirect a write nor expose a file outside the root.

mod dirs;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::StoreError;
use crate::blob::{BlobInfo, BlobPath, BlobStore, Component, check_component};

/// How often a write retries when a concurrent delete removed a directory it had just made.
const PUT_ATTEMPTS: usize = 5;

/// The filesystem blob store.
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    root_fd: OwnedFd,
    owner: Option<Owner>,
}

/// Who owns what the store writes. The node agent (root) stores cores for an API server and a
/// garbage collector that run as an unprivileged user: the files stay mode 0600 and directories
/// 0700, owned by that user, so those two can read and delete them and no other host user can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Owning user id.
    pub uid: u32,
    /// Owning group id.
    pub gid: u32,
}

impl std::str::FromStr for Owner {
    type Err = String;

    /// `UID:GID` (numbers; the image has no user database).
    fn from_str(text: &str) -> Result<Self, String> {
        let (uid, gid) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?}: expected UID:GID"))?;
        let number = |what: &str, v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("{text:?}: {what} {v:?} is not a number"))
        };
        Ok(Owner {
            uid: number("uid", uid)?,
            gid: number("gid", gid)?,
        })
    }
}

/// Gives `fd` to `owner` unless it already has it.
fn give(fd: BorrowedFd<'_>, owner: Option<Owner>) -> io::Result<()> {
    let Some(owner) = owner else {
        return Ok(());
    };
    let st = rustix::fs::fstat(fd)?;
    if st.st_uid == owner.uid && st.st_gid == owner.gid {
        return Ok(());
    }
    let uid = rustix::fs::Uid::from_raw(owner.uid);
    let gid = rustix::fs::Gid::from_raw(owner.gid);
    rustix::fs::fchown(fd, Some(uid), Some(gid))?;
    Ok(())
}

impl FsBlobStore {
    /// Opens the store at `root`, creating the directory if needed. The root itself may be a
    /// symlink (an administrator's choice); nothing below it is ever followed.
    pub fn new(root: PathBuf) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            path: root.clone(),
            source,
        })?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root_fd =
            rustix::fs::open(&root, flags, Mode::empty()).map_err(|e| StoreError::Io {
                path: root.clone(),
                source: e.into(),
            })?;
        Ok(Self {
            root,
            root_fd,
            owner: None,
        })
    }

    /// Makes `owner` the owner of the root and of every directory and blob written from now
    /// on (directories written earlier are taken over when a write passes through them).
    pub fn with_owner(mut self, owner: Owner) -> Result<Self, StoreError> {
        give(self.root_fd.as_fd(), Some(owner)).map_err(self.io_err(""))?;
        self.owner = Some(owner);
        Ok(self)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute path of a blob (for messages; never used to open anything).
    fn display_path(&self, path: &BlobPath) -> PathBuf {
        self.root.join(path.relative())
    }

    fn io_err(&self, at: impl AsRef<Path>) -> impl FnOnce(io::Error) -> StoreError {
        let path = self.root.join(at);
        move |source| StoreError::Io { path, source }
    }

    /// Opens a blob's file (every path step without following symlinks).
    fn open_file(&self, path: &BlobPath) -> Result<std::fs::File, StoreError> {
        path.validate()?;
        let not_found = || StoreError::Io {
            path: self.display_path(path),
            source: io::ErrorKind::NotFound.into(),
        };
        let dir = dirs::walk(
            &self.root_fd,
            &[&path.namespace, &path.pod_uid, &path.container],
        )
        .map_err(self.io_err(path.relative()))?
        .ok_or_else(not_found)?;
        dirs::open_regular(dir.as_fd(), &path.file).map_err(self.io_err(path.relative()))
    }

    /// One attempt of [`BlobStore::put_file`]; `Ok(None)` asks for a retry.
    fn try_put(
        &self,
        path: &BlobPath,
        source: &Path,
        src: &mut std::fs::File,
        expected: u64,
        may_link: bool,
    ) -> Result<Option<u64>, StoreError> {
        let racing = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        let mut parent = self.root_fd.as_fd();
        let mut opened = Vec::with_capacity(3);
        for name in [&path.namespace, &path.pod_uid, &path.container] {
            let (fd, created) = match dirs::ensure_dir(parent, name) {
                Ok(r) => r,
                Err(e) if racing(&e) => return Ok(None),
                Err(e) => {
                    return Err(self
                        .io_err(path.relative().parent().unwrap_or(Path::new("")))(
                        e
                    ));
                }
            };
            if created {
                // Make the new directory entry itself durable.
                rustix::fs::fsync(parent).map_err(|e| self.io_err("")(e.into()))?;
            }
            give(fd.as_fd(), self.owner).map_err(self.io_err(""))?;
            opened.push(fd);
            parent = opened[opened.len() - 1].as_fd();
        }
        let dir = parent;

        if let Some(st) = dirs::stat(dir, &path.file).map_err(self.io_err(path.relative()))?
            && dirs::file_type(&st) == FileType::RegularFile
            && u64::try_from(st.st_size).ok() == Some(expected)
        {
            return Ok(Some(expected)); // idempotent ingest: already stored
        }

        // An adopted source on the same filesystem (standalone's spool and blobs, or an agent
        // whose spool shares the volume): a hard link stores the blob without a second copy of
        // the bytes, so a core that fits on a nearly full disk once is not refused for want of
        // room for two.
        let linked = if may_link {
            link_temp(dir, &path.file, src, self.owner)
        } else {
            Ok(None)
        };
        match linked {
            Ok(Some(temp_name)) => {
                let guard = TempGuard {
                    dir,
                    name: &temp_name,
                    armed: true,
                };
                return self.commit_temp(path, dir, guard, expected).map(Some);
            }
            Ok(None) => {} // another filesystem or no link support: copy below
            Err(e) if racing(&e) => return Ok(None),
            Err(e) => return Err(self.io_err(path.relative())(e)),
        }

        let (temp_name, temp_file) = match create_temp(dir, &path.file) {
            Ok(t) => t,
            Err(e) if racing(&e) => return Ok(None),
            Err(e) => return Err(self.io_err(path.relative())(e)),
        };
        let guard = TempGuard {
            dir,
            name: &temp_name,
            armed: true,
        };
        let temp_path = path.relative().with_file_name(&temp_name);
        let mut temp_file = temp_file;
        let source_err = |e| StoreError::Io {
            path: source.to_owned(),
            source: e,
        };
        src.seek(SeekFrom::Start(0)).map_err(source_err)?;
        let written = io::copy(src, &mut temp_file).map_err(self.io_err(&temp_path))?;
        if written != expected {
            return Err(StoreError::Io {
                path: source.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("source changed while copying: {written} bytes, expected {expected}"),
                ),
            });
        }
        give(temp_file.as_fd(), self.owner).map_err(self.io_err(&temp_path))?;
        temp_file.sync_all().map_err(self.io_err(&temp_path))?;
        drop(temp_file);
        self.commit_temp(path, dir, guard, written).map(Some)
    }

    /// Renames the finished temporary file onto `path` and makes the rename durable.
    fn commit_temp(
        &self,
        path: &BlobPath,
        dir: BorrowedFd<'_>,
        mut guard: TempGuard<'_>,
        size: u64,
    ) -> Result<u64, StoreError> {
        rustix::fs::renameat(dir, guard.name, dir, path.file.as_str())
            .map_err(|e| self.io_err(path.relative())(e.into()))?;
        // rename(2) between two links of one inode (a linked source stored twice at once)
        // succeeds without removing the old name: the guard removes it.
        guard.armed = rustix::fs::statat(dir, guard.name, AtFlags::SYMLINK_NOFOLLOW).is_ok();
        drop(guard);
        rustix::fs::fsync(dir).map_err(|e| self.io_err(path.relative())(e.into()))?;
        Ok(size)
    }

    /// Visits every blob of one container directory.
    fn scan_container(
        &self,
        dir: BorrowedFd<'_>,
        at: (&str, &str, &str),
        out: &mut Vec<BlobInfo>,
    ) -> Result<(), StoreError> {
        let (namespace, pod_uid, container) = at;
        let rel = Path::new(namespace).join(pod_uid).join(container);
        for name in dirs::entries(dir).map_err(self.io_err(&rel))? {
            if check_component(Component::File, &name).is_err() {
                continue; // temporary or foreign name
            }
            let Some(st) = dirs::stat(dir, &name).map_err(self.io_err(rel.join(&name)))? else {
                continue; // deleted meanwhile
            };
            if dirs::file_type(&st) != FileType::RegularFile {
                continue; // symlinks and special files are not blobs
            }
            out.push(BlobInfo {
                path: BlobPath {
                    namespace: namespace.to_owned(),
                    pod_uid: pod_uid.to_owned(),
                    container: container.to_owned(),
                    file: name,
                },
                size: u64::try_from(st.st_size).unwrap_or(0),
            });
        }
        Ok(())
    }

    /// Subdirectories (not symlinks) of `dir` with valid component names.
    fn subdirs(
        &self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        kind: Component,
    ) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for name in dirs::entries(dir).map_err(self.io_err(rel))? {
            if check_component(kind, &name).is_err() {
                continue;
            }
            if let Some(st) = dirs::stat(dir, &name).map_err(self.io_err(rel.join(&name)))?
                && dirs::file_type(&st) == FileType::Directory
            {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Every blob of one pod (all containers or one).
    fn scan_pod(
        &self,
        namespace: &str,
        pod_uid: &str,
        container: Option<&str>,
    ) -> Result<Vec<BlobInfo>, StoreError> {
        let rel = Path::new(namespace).join(pod_uid);
        let Some(pod_dir) =
            dirs::walk(&self.root_fd, &[namespace, pod_uid]).map_err(self.io_err(&rel))?
        else {
            return Ok(Vec::new());
        };
        let containers = match container {
            Some(c) => vec![c.to_owned()],
            None => self.subdirs(pod_dir.as_fd(), &rel, Component::Container)?,
        };
        let mut out = Vec::new();
        for c in containers {
            let dir = match dirs::open_dir(pod_dir.as_fd(), &c) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io_err(rel.join(&c))(e)),
            };
            self.scan_container(dir.as_fd(), (namespace, pod_uid, &c), &mut out)?;
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// A fresh `.<file>.tmp-<random>` name. std's RandomState is seeded from the OS; mixing in the
/// pid and a counter keeps names unique across processes and threads even if two seeds
/// collided.
fn temp_name(file: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!(".{file}.tmp-{:016x}", h.finish())
}

/// Creates `.<file>.tmp-<random>` exclusively in `dir`.
fn create_temp(dir: BorrowedFd<'_>, file: &str) -> io::Result<(String, std::fs::File)> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for _ in 0..16 {
        let name = temp_name(file);
        match rustix::fs::openat(dir, name.as_str(), flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => return Ok((name, std::fs::File::from(fd))),
            Err(Errno::EXIST) => last = Errno::EXIST.into(),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last)
}

/// Hard-links the already open `src` (exactly that inode, through `/proc/self/fd`, never a
/// symlink planted at its path) as `.<file>.tmp-<random>` in `dir`. `Ok(None)` when linking is
/// not possible here (another filesystem, no hard links, no `/proc`): the caller copies.
fn link_temp(
    dir: BorrowedFd<'_>,
    file: &str,
    src: &std::fs::File,
    owner: Option<Owner>,
) -> io::Result<Option<String>> {
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", src.as_raw_fd());
    for _ in 0..16 {
        let name = temp_name(file);
        match rustix::fs::linkat(
            rustix::fs::CWD,
            proc_path.as_str(),
            dir,
            name.as_str(),
            AtFlags::SYMLINK_FOLLOW,
        ) {
            Ok(()) => {
                // The same mode a copy gets (owner only: other tenants' memory), and the bytes
                // durable under our name (the source was written by someone else).
                let done = rustix::fs::fchmod(src, Mode::from_raw_mode(0o600))
                    .map_err(io::Error::from)
                    .and_then(|()| give(src.as_fd(), owner))
                    .and_then(|()| src.sync_all());
                if let Err(e) = done {
                    let _ = rustix::fs::unlinkat(dir, name.as_str(), AtFlags::empty());
                    return Err(e);
                }
                return Ok(Some(name));
            }
            Err(Errno::EXIST) => continue,
            // Another filesystem, no hard links, no /proc, or our directory went away (the
            // copy path then notices and retries): copy.
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}

/// Removes a temporary file unless the write completed.
struct TempGuard<'a> {
    dir: BorrowedFd<'a>,
    name: &'a str,
    armed: bool,
}

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = rustix::fs::unlinkat(self.dir, self.name, AtFlags::empty());
        }
    }
}

impl FsBlobStore {
    /// [`BlobStore::put_file`] and [`BlobStore::adopt_file`]: copy, or link when allowed.
    fn put(&self, path: &BlobPath, source: &Path, may_link: bool) -> Result<u64, StoreError> {
        path.validate()?;
        // Open the source first: a missing source must not leave directories behind.
        let source_err = |e| StoreError::Io {
            path: source.to_owned(),
            source: e,
        };
        let mut src = std::fs::File::open(source).map_err(source_err)?;
        let expected = src.metadata().map_err(source_err)?.len();
        for _ in 0..PUT_ATTEMPTS {
            if let Some(size) = self.try_put(path, source, &mut src, expected, may_link)? {
                return Ok(size);
            }
        }
        Err(StoreError::Io {
            path: self.display_path(path),
            source: io::Error::other(format!(
                "directories kept disappearing during {PUT_ATTEMPTS} attempts (concurrent deletes)"
            )),
        })
    }
}

impl BlobStore for FsBlobStore {
    fn put_file(&self, path: &BlobPath, source: &Path) -> Result<u64, StoreError> {
        self.put(path, source, false)
    }

    fn adopt_file(&self, path: &BlobPath, source: &Path) -> Result<u64, StoreError> {
        self.put(path, source, true)
    }

    fn room_for(&self, source: &Path) -> Option<(u64, u64)> {
        let root = rustix::fs::fstat(&self.root_fd).ok()?;
        let src = rustix::fs::stat(source).ok()?;
        let vfs = rustix::fs::fstatvfs(&self.root_fd).ok()?;
        let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
        // A hard link (same device) needs no room; a copy needs the file's size.
        let needed = if root.st_dev == src.st_dev {
            0
        } else {
            u64::try_from(src.st_size).unwrap_or(0)
        };
        Some((needed, free))
    }

    fn open(&self, path: &BlobPath) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(Box::new(self.open_file(path)?))
    }

    fn open_seekable(
        &self,
        path: &BlobPath,
    ) -> Result<Option<Box<dyn crate::blob::SeekableRead>>, StoreError> {
        Ok(Some(Box::new(self.open_file(path)?)))
    }

    fn size(&self, path: &BlobPath) -> Result<Option<u64>, StoreError> {
        path.validate()?;
        let Some(dir) = dirs::walk(
            &self.root_fd,
            &[&path.namespace, &path.pod_uid, &path.container],
        )
        .map_err(self.io_err(path.relative()))?
        else {
            return Ok(None);
        };
        match dirs::stat(dir.as_fd(), &path.file).map_err(self.io_err(path.relative()))? {
            None => Ok(None),
            Some(st) if dirs::file_type(&st) == FileType::RegularFile => {
                Ok(Some(u64::try_from(st.st_size).unwrap_or(0)))
            }
            Some(_) => Err(self.io_err(path.relative())(dirs::not_regular())),
        }
    }

    fn list(
        &self,
        namespace: &str,
        pod_uid: &str,
        container: Option<&str>,
    ) -> Result<Vec<BlobInfo>, StoreError> {
        check_component(Component::Namespace, namespace)?;
        check_component(Component::PodUid, pod_uid)?;
        if let Some(c) = container {
            check_component(Component::Container, c)?;
        }
        self.scan_pod(namespace, pod_uid, container)
    }

    fn delete(&self, path: &BlobPath) -> Result<(), StoreError> {
        path.validate()?;
        let Some(ns_dir) =
            dirs::walk(&self.root_fd, &[&path.namespace]).map_err(self.io_err(&path.namespace))?
        else {
            return Ok(());
        };
        if let Some(pod_dir) =
            dirs::walk(&ns_dir, &[&path.pod_uid]).map_err(self.io_err(path.relative()))?
        {
            if let Some(dir) =
                dirs::walk(&pod_dir, &[&path.container]).map_err(self.io_err(path.relative()))?
            {
                match rustix::fs::unlinkat(&dir, path.file.as_str(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(self.io_err(path.relative())(e.into())),
                }
                rustix::fs::fsync(&dir).map_err(|e| self.io_err(path.relative())(e.into()))?;
            }
            dirs::remove_if_empty(pod_dir.as_fd(), &path.container);
        }
        dirs::remove_if_empty(ns_dir.as_fd(), &path.pod_uid);
        dirs::remove_if_empty(self.root_fd.as_fd(), &path.namespace);
        Ok(())
    }

    fn delete_pod(&self, namespace: &str, pod_uid: &str) -> Result<usize, StoreError> {
        check_component(Component::Namespace, namespace)?;
        check_component(Component::PodUid, pod_uid)?;
        let rel = Path::new(namespace).join(pod_uid);
        let Some(ns_dir) =
            dirs::walk(&self.root_fd, &[namespace]).map_err(self.io_err(namespace))?
        else {
            return Ok(0);
        };
        let mut removed = 0;
        if let Some(pod_dir) = dirs::walk(&ns_dir, &[pod_uid]).map_err(self.io_err(&rel))? {
            for container in self.subdirs(pod_dir.as_fd(), &rel, Component::Container)? {
                let crel = rel.join(&container);
                let dir = match dirs::open_dir(pod_dir.as_fd(), &container) {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(self.io_err(&crel)(e)),
                };
                for name in dirs::entries(dir.as_fd()).map_err(self.io_err(&crel))? {
                    let Some(st) =
                        dirs::stat(dir.as_fd(), &name).map_err(self.io_err(crel.join(&name)))?
                    else {
                        continue;
                    };
                    if dirs::file_type(&st) == FileType::Directory {
                        continue; // not ours: leave it (and so the directory)
                    }
                    match rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
                        Ok(()) => {
                            let blob = dirs::file_type(&st) == FileType::RegularFile
                                && check_component(Component::File, &name).is_ok();
                            removed += usize::from(blob);
                        }
                        Err(Errno::NOENT) => {}
                        Err(e) => return Err(self.io_err(crel.join(&name))(e.into())),
                    }
                }
                rustix::fs::fsync(&dir).map_err(|e| self.io_err(&crel)(e.into()))?;
                dirs::remove_if_empty(pod_dir.as_fd(), &container);
            }
        }
        dirs::remove_if_empty(ns_dir.as_fd(), pod_uid);
        dirs::remove_if_empty(self.root_fd.as_fd(), namespace);
        Ok(removed)
    }

    fn namespace_usage(&self, namespace: &str) -> Result<u64, StoreError> {
        check_component(Component::Namespace, namespace)?;
        let Some(ns_dir) =
            dirs::walk(&self.root_fd, &[namespace]).map_err(self.io_err(namespace))?
        else {
            return Ok(0);
        };
        let mut total = 0u64;
        for pod in self.subdirs(ns_dir.as_fd(), Path::new(namespace), Component::PodUid)? {
            total += self
                .scan_pod(namespace, &pod, None)?
                .iter()
                .map(|b| b.size)
                .sum::<u64>();
        }
        Ok(total)
    }
}
