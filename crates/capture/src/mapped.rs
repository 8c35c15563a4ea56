//! Keeping the crashed process's executable and libraries, which its core does not contain
//! (only their first page) and which only this process can still name.
//!
//! When: `/proc/<tid>/map_files` exists only while the crashed task still has its memory map,
//! that is while the kernel holds it for the dump: until the handler closes the core pipe (with
//! `core_pipe_limit` > 0 the kernel waits for that) or the coredump socket connection. So the
//! capture opens the files *before* it reads the core: one `open` per distinct file through
//! the `map_files` magic links (which lead to the mapped file itself, like `/proc/<pid>/fd`,
//! never re-resolving a path inside the tenant's root). Opening is bounded in count and costs
//! microseconds; the held time does not change measurably.
//!
//! After the core is drained and the process released, the open descriptors still read the
//! files: [`MappedFiles::keep`] copies each one not already known into the spool entry
//! (`binaries/<n>`, listed in `binaries.json`), bounded per file and in total. A file is known
//! when the ingest has already stored it for the same pod (a marker named after its device,
//! inode, size and modification time under `<spool>/.binaries/<pod>/`), so a crash loop copies
//! its binaries once. The ingest then reads their build IDs and stores them by build ID.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The manifest in a spool entry.
pub const BINARIES_JSON: &str = "binaries.json";
/// Directory of copied files in a spool entry.
pub const BINARIES_DIR: &str = "binaries";
/// Directory of "already stored" markers under the spool, one subdirectory per pod.
pub const KNOWN_DIR: &str = ".binaries";

/// At most this many `map_files` entries are looked at.
const MAX_ENTRIES: usize = 8192;
/// At most this many distinct files are opened.
pub const MAX_FILES: usize = 256;

/// Bounds on what one capture copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepLimits {
    /// A larger file is listed but not copied.
    pub max_file_bytes: u64,
    /// Files are copied until this total is reached.
    pub max_total_bytes: u64,
}

impl Default for KeepLimits {
    fn default() -> Self {
        KeepLimits {
            max_file_bytes: 512 << 20,
            max_total_bytes: 1 << 30,
        }
    }
}

/// One mapped file as listed in `binaries.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptFile {
    /// Path the kernel names the mapping by (informational: never opened by path).
    pub path: String,
    /// `(start, end)` of every mapping of this file.
    pub ranges: Vec<(u64, u64)>,
    /// Identity of the file on this node: `<dev>-<ino>-<size>-<mtime ns>`.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Name of the copy under `binaries/`, when copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
    /// Why it was not copied, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

struct Opened {
    file: File,
    kept: KeptFile,
}

/// Files the crashed process had mapped, opened while it was held.
#[derive(Default)]
pub struct MappedFiles {
    files: Vec<Opened>,
}

fn parse_range(name: &str) -> Option<(u64, u64)> {
    let (a, b) = name.split_once('-')?;
    Some((
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    ))
}

impl MappedFiles {
    /// Opens every regular file mapped by `tid` (or `pid` when the thread's directory is gone),
    /// through `proc_root`'s `map_files`. Failures leave the list shorter, never an error: the
    /// capture of the core must not depend on this.
    pub fn open(proc_root: &Path, pid: u32, tid: u32) -> MappedFiles {
        let mut out = MappedFiles::default();
        let dir = [tid, pid]
            .iter()
            .map(|id| proc_root.join(id.to_string()).join("map_files"))
            .find(|d| d.is_dir());
        let Some(dir) = dir else { return out };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return out;
        };
        let mut names: Vec<String> = entries
            .take(MAX_ENTRIES)
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort_by_key(|n| parse_range(n).map(|r| r.0));
        for name in names {
            let Some(range) = parse_range(&name) else {
                continue;
            };
            let link = dir.join(&name);
            let Ok(file) = File::open(&link) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let key = format!(
                "{}-{}-{}-{}",
                meta.dev(),
                meta.ino(),
                meta.size(),
                meta.mtime() as i128 * 1_000_000_000 + i128::from(meta.mtime_nsec())
            );
            if let Some(known) = out.files.iter_mut().find(|f| f.kept.key == key) {
                known.kept.ranges.push(range);
                continue;
            }
            if out.files.len() >= MAX_FILES {
                continue;
            }
            let path = std::fs::read_link(&link)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.files.push(Opened {
                file,
                kept: KeptFile {
                    path,
                    ranges: vec![range],
                    key,
                    size: meta.size(),
                    copy: None,
                    skipped: None,
                },
            });
        }
        out
    }

    /// How many distinct files are open.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Copies the files into `entry_dir/binaries/` (skipping those with a marker in
    /// `known_dir`) and writes `entry_dir/binaries.json`. Returns the manifest. Best effort:
    /// a file that cannot be copied is listed with the reason.
    pub fn keep(self, entry_dir: &Path, known_dir: &Path, limits: KeepLimits) -> Vec<KeptFile> {
        let mut total = 0u64;
        let copies = entry_dir.join(BINARIES_DIR);
        let mut manifest = Vec::with_capacity(self.files.len());
        for (n, Opened { mut file, mut kept }) in self.files.into_iter().enumerate() {
            if known_dir.join(&kept.key).exists() {
                kept.skipped = Some("already stored".into());
            } else if kept.size > limits.max_file_bytes {
                kept.skipped = Some(format!("larger than {} bytes", limits.max_file_bytes));
            } else if total.saturating_add(kept.size) > limits.max_total_bytes {
                kept.skipped = Some(format!(
                    "the capture's {} byte budget for binaries is spent",
                    limits.max_total_bytes
                ));
            } else {
                let name = n.to_string();
                match copy(&mut file, &copies, &name, kept.size) {
                    Ok(()) => {
                        total += kept.size;
                        kept.copy = Some(name);
                    }
                    Err(e) => kept.skipped = Some(format!("copy failed: {e}")),
                }
            }
            manifest.push(kept);
        }
        if let Ok(json) = serde_json::to_vec_pretty(&manifest) {
            let _ = crate::fsutil::write_atomic(&entry_dir.join(BINARIES_JSON), &json);
        }
        manifest
    }
}

/// Copies at most `size` bytes of `from` into `dir/name` (created new, never through a
/// symlink) and syncs it.
fn copy(from: &mut File, dir: &Path, name: &str, size: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek};
    std::fs::create_dir_all(dir)?;
    let path: PathBuf = dir.join(name);
    let mut to = crate::fsutil::create_new_nofollow(&path).map_err(std::io::Error::other)?;
    from.rewind()?;
    // std uses copy_file_range/sendfile here: no user-space buffer.
    std::io::copy(&mut from.take(size), &mut to)?;
    to.sync_all()
}

/// Reads a spool entry's manifest (empty when there is none).
pub fn read_manifest(entry_dir: &Path) -> Vec<KeptFile> {
    crate::fsutil::read_bounded(&entry_dir.join(BINARIES_JSON), 4 << 20)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_own_mapped_files_and_keeps_them_once() {
        let me = std::process::id();
        let files = MappedFiles::open(Path::new("/proc"), me, me);
        if files.is_empty() {
            // map_files needs CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE).
            assert!(
                !rustix::process::geteuid().is_root(),
                "root must be able to open its own map_files"
            );
            return;
        }
        let exe = std::fs::canonicalize("/proc/self/exe").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let known = tmp.path().join("known");
        let entry = tmp.path().join("entry");
        std::fs::create_dir_all(&entry).unwrap();
        let manifest = files.keep(&entry, &known, KeepLimits::default());
        let me_kept = manifest
            .iter()
            .find(|k| Path::new(&k.path) == exe)
            .expect("the test binary itself is mapped");
        let copy = entry
            .join(BINARIES_DIR)
            .join(me_kept.copy.as_ref().unwrap());
        assert_eq!(std::fs::read(copy).unwrap(), std::fs::read(&exe).unwrap());
        assert_eq!(read_manifest(&entry), manifest);

        // Marked as known: listed, not copied again.
        std::fs::create_dir_all(&known).unwrap();
        std::fs::write(known.join(&me_kept.key), b"").unwrap();
        let entry2 = tmp.path().join("entry2");
        std::fs::create_dir_all(&entry2).unwrap();
        let again = MappedFiles::open(Path::new("/proc"), me, me).keep(
            &entry2,
            &known,
            KeepLimits::default(),
        );
        let k = again.iter().find(|k| k.key == me_kept.key).unwrap();
        assert_eq!(k.copy, None);
        assert_eq!(k.skipped.as_deref(), Some("already stored"));
    }

    #[test]
    fn budget_bounds_the_copies() {
        let me = std::process::id();
        let files = MappedFiles::open(Path::new("/proc"), me, me);
        let tmp = tempfile::tempdir().unwrap();
        let manifest = files.keep(
            tmp.path(),
            &tmp.path().join("known"),
            KeepLimits {
                max_file_bytes: 1,
                max_total_bytes: 1,
            },
        );
        assert!(manifest.iter().all(|k| k.copy.is_none()));
        assert!(!tmp.path().join(BINARIES_DIR).exists());
    }

    #[test]
    fn range_names() {
        assert_eq!(parse_range("400000-401000"), Some((0x40_0000, 0x40_1000)));
        assert_eq!(parse_range("zz-1"), None);
        assert_eq!(parse_range("400000"), None);
    }
}
