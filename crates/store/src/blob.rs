//! The blob store contract: core files under `<namespace>/<podUID>/<container>/<file>`.

use std::io::Read;
use std::path::Path;

use crate::StoreError;

/// A validated relative location of one blob. Every component is a single non-empty path
/// segment: no `/`, no NUL, not `.` or `..` (constructors enforce it; nothing outside the
/// store root can ever be named).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobPath {
    /// Namespace of the pod (for host crashes: the configured host namespace).
    pub namespace: String,
    /// Pod UID (for host crashes: a stable placeholder such as `host`).
    pub pod_uid: String,
    /// Container name (for host crashes: e.g. the executable name).
    pub container: String,
    /// File name, e.g. `<coredump-name>.core.zst`.
    pub file: String,
}

/// What a listing returns for each blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Where it is.
    pub path: BlobPath,
    /// Stored size in bytes.
    pub size: u64,
}

/// Storage for core files. Writes are atomic (a reader sees the whole blob or nothing);
/// reads stream.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores the content of the local file `source` at `path`, atomically replacing nothing:
    /// if `path` exists with the same size it is left alone (idempotent ingest), otherwise
    /// it is written under a temporary name, fsynced and renamed. Returns the stored size.
    fn put_file(&self, path: &BlobPath, source: &Path) -> Result<u64, StoreError>;

    /// Opens a blob for streaming.
    fn open(&self, path: &BlobPath) -> Result<Box<dyn Read + Send>, StoreError>;

    /// Size of a blob, `None` if absent.
    fn size(&self, path: &BlobPath) -> Result<Option<u64>, StoreError>;

    /// All blobs of one pod, optionally of one container, sorted by path.
    fn list(
        &self,
        namespace: &str,
        pod_uid: &str,
        container: Option<&str>,
    ) -> Result<Vec<BlobInfo>, StoreError>;

    /// Deletes one blob; absent is not an error. Empty parent directories are removed.
    fn delete(&self, path: &BlobPath) -> Result<(), StoreError>;

    /// Deletes every blob of one pod. Returns how many were removed.
    fn delete_pod(&self, namespace: &str, pod_uid: &str) -> Result<usize, StoreError>;

    /// Total stored bytes in one namespace (quota accounting).
    fn namespace_usage(&self, namespace: &str) -> Result<u64, StoreError>;
}
