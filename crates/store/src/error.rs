//! Errors shared by every store backend; the API server maps each variant to a Kubernetes
//! `Status` by type.

use crate::metadata::ObjectKey;

/// Failure of a store operation, carrying which object or path it concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("{}/{} {} not found", .0.namespace, .0.name, .0.resource)]
    NotFound(ObjectKey),
    /// The object already exists.
    #[error("{}/{} {} already exists", .0.namespace, .0.name, .0.resource)]
    AlreadyExists(ObjectKey),
    /// The precondition (revision) did not hold.
    #[error("conflict on {}/{} {}: current revision {current}, expected {expected}", .key.namespace, .key.name, .key.resource)]
    Conflict {
        /// The object.
        key: ObjectKey,
        /// Its revision now.
        current: u64,
        /// The revision the caller expected.
        expected: u64,
    },
    /// The requested revision is older than the retained history.
    #[error("revision {requested} is too old (oldest retained: {oldest})")]
    Expired {
        /// Revision asked for.
        requested: u64,
        /// Oldest revision still available.
        oldest: u64,
    },
    /// A blob path or continue token was malformed.
    #[error("invalid {what}: {value:?}")]
    Invalid {
        /// What was being parsed.
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// The backend failed (disk, database, network).
    #[error("storage backend failed during {operation}: {source}")]
    Backend {
        /// What we were doing.
        operation: String,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Filesystem I/O on a blob failed.
    #[error("I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Wraps a backend failure with what we were doing.
    pub fn backend(
        operation: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Backend {
            operation: operation.into(),
            source: source.into(),
        }
    }

    /// Whether this says "absent": a missing object ([`StoreError::NotFound`]) or a missing blob
    /// ([`StoreError::Io`] whose kind is `NotFound`), so callers can answer 404 by type.
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::NotFound(_) => true,
            Self::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// Whether the blob volume is out of room (no space left, or a filesystem quota hit).
    pub fn is_storage_full(&self) -> bool {
        match self {
            Self::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}
