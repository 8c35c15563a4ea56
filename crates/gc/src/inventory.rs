//! What the blob volume holds: every `<namespace>/<podUID>/` directory and the size of every
//! file under it. A store that enumerates its namespaces and pods itself (an object store:
//! [`BlobStore::namespaces`], [`BlobStore::pods`]) is asked; for the filesystem store the GC
//! walks the two directory levels above the pods itself (names only, symlinks skipped,
//! dot-names skipped: the GC's own state directory and temporary files live there). Either way
//! [`BlobStore::list`] reads each pod. The same pass reads each namespace's binaries kept by
//! build ID (`<namespace>/.buildid/<build-id>/...`), which the pod walk passes by.

use std::path::{Path, PathBuf};

use coredump_store::buildid::BUILDID_DIR;
use coredump_store::{BlobStore, StoreError};

/// Blobs of one pod directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodBlobs {
    /// Namespace directory.
    pub namespace: String,
    /// Pod directory: a pod UID, a static pod's hash, or a placeholder such as `host`.
    pub pod_uid: String,
    /// `(container, file, size)` of every blob.
    pub files: Vec<(String, String, u64)>,
}

impl PodBlobs {
    /// Total bytes.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, _, s)| s).sum()
    }
}

/// The binaries of one build ID in one namespace (`<namespace>/.buildid/<build-id>/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryBlobs {
    /// Namespace directory.
    pub namespace: String,
    /// The build ID.
    pub build_id: String,
    /// `(file, size)` of every blob (`executable`, `debuginfo`).
    pub files: Vec<(String, u64)>,
}

impl BinaryBlobs {
    /// Total bytes.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, s)| s).sum()
    }
}

/// Failure to read the volume.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A directory could not be listed.
    #[error("listing {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The store refused a listing.
    #[error("listing blobs of {namespace}/{pod_uid}: {source}")]
    Store {
        /// Namespace.
        namespace: String,
        /// Pod directory.
        pod_uid: String,
        /// Cause.
        #[source]
        source: Box<StoreError>,
    },
}

/// Real (non-symlink) subdirectories of `dir` whose names do not start with `.`.
fn subdirs(dir: &Path) -> Result<Vec<String>, InventoryError> {
    let io = |source| InventoryError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let Ok(kind) = entry.file_type() else {
            continue; // removed meanwhile
        };
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not a name we ever write
        };
        if kind.is_dir() && !name.starts_with('.') {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// The store's error while enumerating `namespace` (empty: the namespaces).
fn enumerating(namespace: &str) -> impl FnOnce(StoreError) -> InventoryError + '_ {
    move |source| InventoryError::Store {
        namespace: namespace.to_owned(),
        pod_uid: String::new(),
        source: Box::new(source),
    }
}

/// The namespaces: the store's own enumeration, else the directories under `root`.
fn namespaces(root: &Path, store: &dyn BlobStore) -> Result<Vec<String>, InventoryError> {
    match store.namespaces().map_err(enumerating(""))? {
        Some(names) => Ok(names),
        None => subdirs(root),
    }
}

/// The pods of `namespace`, likewise.
fn pods(
    root: &Path,
    store: &dyn BlobStore,
    namespace: &str,
) -> Result<Vec<String>, InventoryError> {
    match store.pods(namespace).map_err(enumerating(namespace))? {
        Some(names) => Ok(names),
        None => subdirs(&root.join(namespace)),
    }
}

/// What the blob store holds: every pod directory with its blobs, and the binaries kept by
/// build ID, from one enumeration of the namespaces.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Every pod directory.
    pub pods: Vec<PodBlobs>,
    /// Every namespace's binaries, one entry per build ID.
    pub binaries: Vec<BinaryBlobs>,
}

/// Everything in the store (under `root` for a filesystem store), read through `store`; the
/// namespaces are enumerated once (on a bucket, one delimiter listing of the root).
pub fn scan(root: &Path, store: &dyn BlobStore) -> Result<Inventory, InventoryError> {
    let mut inventory = Inventory::default();
    for namespace in namespaces(root, store)? {
        scan_pods(root, store, &namespace, &mut inventory.pods)?;
        scan_binaries(store, &namespace, &mut inventory.binaries)?;
    }
    Ok(inventory)
}

/// The pod directories of `namespace`, with their blobs.
fn scan_pods(
    root: &Path,
    store: &dyn BlobStore,
    namespace: &str,
    out: &mut Vec<PodBlobs>,
) -> Result<(), InventoryError> {
    for pod_uid in pods(root, store, namespace)? {
        let files = store
            .list(namespace, &pod_uid, None)
            .map_err(|source| InventoryError::Store {
                namespace: namespace.to_owned(),
                pod_uid: pod_uid.clone(),
                source: Box::new(source),
            })?
            .into_iter()
            .map(|b| (b.path.container, b.path.file, b.size))
            .collect();
        out.push(PodBlobs {
            namespace: namespace.to_owned(),
            pod_uid,
            files,
        });
    }
    Ok(())
}

/// The binaries kept by build ID in `namespace`, one entry per build ID.
fn scan_binaries(
    store: &dyn BlobStore,
    namespace: &str,
    out: &mut Vec<BinaryBlobs>,
) -> Result<(), InventoryError> {
    let listed =
        store
            .list(namespace, BUILDID_DIR, None)
            .map_err(|source| InventoryError::Store {
                namespace: namespace.to_owned(),
                pod_uid: BUILDID_DIR.to_owned(),
                source: Box::new(source),
            })?;
    // Sorted by path: one build ID's files are adjacent.
    for blob in listed {
        match out.last_mut() {
            Some(last) if last.namespace == namespace && last.build_id == blob.path.container => {
                last.files.push((blob.path.file, blob.size));
            }
            _ => out.push(BinaryBlobs {
                namespace: namespace.to_owned(),
                build_id: blob.path.container,
                files: vec![(blob.path.file, blob.size)],
            }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coredump_store::fs_blob::FsBlobStore;

    #[test]
    fn scans_binaries_by_namespace_and_build_id() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cores");
        let store = FsBlobStore::new(root.clone()).unwrap();
        let src = tmp.path().join("src");
        std::fs::write(&src, vec![1u8; 10]).unwrap();
        for (ns, id, file) in [
            ("a", "aa01", "executable"),
            ("a", "aa01", "debuginfo"),
            ("a", "bb02", "executable"),
            ("b", "aa01", "executable"),
        ] {
            let path = coredump_store::buildid::buildid_path(ns, id, file).unwrap();
            store.put_file(&path, &src).unwrap();
        }
        // A namespace with cores only has no binaries.
        store
            .put_file(
                &coredump_store::BlobPath::new("c", "u1", "app", "x.core.zst").unwrap(),
                &src,
            )
            .unwrap();
        let found: Vec<(String, String, usize, u64)> = scan(&root, &store)
            .unwrap()
            .binaries
            .into_iter()
            .map(|b| {
                (
                    b.namespace.clone(),
                    b.build_id.clone(),
                    b.files.len(),
                    b.bytes(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                ("a".into(), "aa01".into(), 2, 20),
                ("a".into(), "bb02".into(), 1, 10),
                ("b".into(), "aa01".into(), 1, 10),
            ]
        );
    }

    #[test]
    fn scans_pods_and_skips_dot_dirs_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cores");
        let store = FsBlobStore::new(root.clone()).unwrap();
        let src = tmp.path().join("src");
        std::fs::write(&src, vec![1u8; 100]).unwrap();
        for (ns, pod, c, f) in [
            ("a", "u1", "app", "x.core.zst"),
            ("a", "u1", "app", "x.json"),
            ("a", "u2", "side", "y.core.zst"),
            ("b", "host", "bash", "z.core.zst"),
        ] {
            store
                .put_file(&coredump_store::BlobPath::new(ns, pod, c, f).unwrap(), &src)
                .unwrap();
        }
        std::fs::create_dir_all(root.join(".coredump-gc")).unwrap();
        std::fs::write(root.join(".coredump-gc/state.json"), b"{}").unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("evil")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("a/evil-pod")).unwrap();
        let pods = scan(&root, &store).unwrap().pods;
        let keys: Vec<(&str, &str, u64)> = pods
            .iter()
            .map(|p| (p.namespace.as_str(), p.pod_uid.as_str(), p.bytes()))
            .collect();
        assert_eq!(
            keys,
            vec![("a", "u1", 200), ("a", "u2", 100), ("b", "host", 100)]
        );
        assert_eq!(
            pods[0].files,
            vec![
                ("app".into(), "x.core.zst".into(), 100),
                ("app".into(), "x.json".into(), 100)
            ]
        );
        let missing = scan(&tmp.path().join("missing"), &store).unwrap();
        assert!(missing.pods.is_empty() && missing.binaries.is_empty());
    }
}
