//! The blob store contract: core files under `<namespace>/<podUID>/<container>/<file>`.

use std::io::Read;
use std::path::{Path, PathBuf};

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

/// Longest accepted path component, in bytes (a DNS subdomain, Kubernetes' longest name).
pub const MAX_COMPONENT_LEN: usize = 253;

/// Which component of a blob path, for error messages and the file-name-only rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Component {
    Namespace,
    PodUid,
    Container,
    File,
}

impl Component {
    fn what(self) -> &'static str {
        match self {
            Self::Namespace => "blob namespace",
            Self::PodUid => "blob pod UID",
            Self::Container => "blob container",
            Self::File => "blob file name",
        }
    }
}

/// Checks one component: a single non-empty segment of at most [`MAX_COMPONENT_LEN`] bytes,
/// without `/` or NUL, not `.` or `..`; file names also may not start with `.`, which keeps
/// them apart from the store's temporary names (`.<file>.tmp-<random>`).
pub(crate) fn check_component(component: Component, value: &str) -> Result<(), StoreError> {
    let bad = value.is_empty()
        || value.len() > MAX_COMPONENT_LEN
        || value.contains(['/', '\0'])
        || value == "."
        || value == ".."
        || (component == Component::File && value.starts_with('.'));
    if bad {
        return Err(StoreError::Invalid {
            what: component.what(),
            value: value.to_owned(),
        });
    }
    Ok(())
}

impl BlobPath {
    /// A validated path (see the type docs; file names also may not start with `.`).
    pub fn new(
        namespace: &str,
        pod_uid: &str,
        container: &str,
        file: &str,
    ) -> Result<Self, StoreError> {
        let path = Self {
            namespace: namespace.to_owned(),
            pod_uid: pod_uid.to_owned(),
            container: container.to_owned(),
            file: file.to_owned(),
        };
        path.validate()?;
        Ok(path)
    }

    /// Checks every component again: the fields are public, so stores validate before use.
    pub fn validate(&self) -> Result<(), StoreError> {
        check_component(Component::Namespace, &self.namespace)?;
        check_component(Component::PodUid, &self.pod_uid)?;
        check_component(Component::Container, &self.container)?;
        check_component(Component::File, &self.file)
    }

    /// `<namespace>/<podUID>/<container>/<file>`, relative to a store root (the seed layout,
    /// also the layout inside `dump` archives).
    pub fn relative(&self) -> PathBuf {
        [&self.namespace, &self.pod_uid, &self.container, &self.file]
            .iter()
            .collect()
    }

    /// Parses what [`BlobPath::relative`] produced (`/`-separated, exactly four components).
    pub fn parse_relative(text: &str) -> Result<Self, StoreError> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [namespace, pod_uid, container, file] => Self::new(namespace, pod_uid, container, file),
            _ => Err(StoreError::Invalid {
                what: "blob path",
                value: text.to_owned(),
            }),
        }
    }
}

/// A blob reader that can seek.
pub trait SeekableRead: Read + std::io::Seek + Send {}
impl<T: Read + std::io::Seek + Send> SeekableRead for T {}

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

    /// [`BlobStore::put_file`] of a source the caller gives away (a spooled core it removes
    /// next): the store may take the file itself instead of copying its bytes (a hard link on
    /// the same filesystem), so the caller must never modify the source afterwards, only remove
    /// it. Costs no second copy of a large core on a nearly full disk.
    fn adopt_file(&self, path: &BlobPath, source: &Path) -> Result<u64, StoreError> {
        self.put_file(path, source)
    }

    /// Stores `bytes` at `path`, replacing whatever is there (unlike [`BlobStore::put_file`],
    /// even a blob of the same size), atomically: a small blob, e.g. a record rewritten beside
    /// its core.
    fn put_bytes(&self, path: &BlobPath, bytes: &[u8]) -> Result<u64, StoreError>;

    /// Opens a blob for streaming.
    fn open(&self, path: &BlobPath) -> Result<Box<dyn Read + Send>, StoreError>;

    /// Opens a blob for reading at any offset (the analysis reads a few pages of a core or a
    /// binary); `Ok(None)` from stores that can only stream.
    fn open_seekable(&self, path: &BlobPath) -> Result<Option<Box<dyn SeekableRead>>, StoreError> {
        let _ = path;
        Ok(None)
    }

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

    /// The namespaces holding blobs, sorted, dot-names left out, when the store can enumerate
    /// them itself (an object store, by key prefix); `None` (the default) where the caller walks
    /// the store's directory instead (the filesystem store: the GC reads `--local-path`).
    fn namespaces(&self) -> Result<Option<Vec<String>>, StoreError> {
        Ok(None)
    }

    /// The pod directories (pod UIDs or placeholders such as `host`) of one namespace, sorted,
    /// dot-names (the binaries kept by build ID) left out; `None` as for
    /// [`BlobStore::namespaces`].
    fn pods(&self, namespace: &str) -> Result<Option<Vec<String>>, StoreError> {
        let _ = namespace;
        Ok(None)
    }

    /// How many more bytes storing the local file `source` would take from the store's free
    /// space, and how much free space there is, when the store can tell (a local filesystem);
    /// `None` for stores without a notion of free space. Adopting a file on the store's own
    /// filesystem costs nothing more.
    fn room_for(&self, source: &Path) -> Option<(u64, u64)> {
        let _ = source;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_path_round_trips() {
        let p = BlobPath::new("default", "0b5e-uid", "app", "crash-1.core.zst").unwrap();
        assert_eq!(
            p.relative(),
            PathBuf::from("default/0b5e-uid/app/crash-1.core.zst")
        );
        assert_eq!(
            BlobPath::parse_relative("default/0b5e-uid/app/crash-1.core.zst").unwrap(),
            p
        );
    }

    #[test]
    fn rejects_every_unsafe_component() {
        let long = "x".repeat(MAX_COMPONENT_LEN + 1);
        let ok_len = "x".repeat(MAX_COMPONENT_LEN);
        for bad in ["", ".", "..", "a/b", "a\0b", long.as_str()] {
            assert!(
                BlobPath::new(bad, "p", "c", "f").is_err(),
                "namespace {bad:?}"
            );
            assert!(BlobPath::new("n", bad, "c", "f").is_err(), "pod {bad:?}");
            assert!(
                BlobPath::new("n", "p", bad, "f").is_err(),
                "container {bad:?}"
            );
            assert!(BlobPath::new("n", "p", "c", bad).is_err(), "file {bad:?}");
        }
        assert!(BlobPath::new("n", "p", "c", ".hidden").is_err());
        assert!(BlobPath::new("n", "p", "c", ".f.tmp-1234").is_err());
        // Only file names are kept apart from temporary names.
        assert!(BlobPath::new(".n", ".p", ".c", "f").is_ok());
        assert!(BlobPath::new(&ok_len, "p", "c", &ok_len).is_ok());
    }

    #[test]
    fn parse_relative_needs_exactly_four_components() {
        for bad in [
            "a/b/c",
            "a/b/c/d/e",
            "/a/b/c",
            "a/b/c/",
            "a//c/d",
            "a/b/c/.d",
            "a/../c/d",
        ] {
            assert!(
                matches!(
                    BlobPath::parse_relative(bad),
                    Err(StoreError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fields_set_directly_are_still_validated() {
        let p = BlobPath {
            namespace: "..".into(),
            pod_uid: "p".into(),
            container: "c".into(),
            file: "f".into(),
        };
        assert!(p.validate().is_err());
    }
}
