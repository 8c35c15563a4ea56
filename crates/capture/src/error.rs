//! Errors of the crash path, each carrying the file or setting it concerns.

use std::path::PathBuf;

/// A failure on the crash path or while managing kernel settings.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// File-system or pipe I/O failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing (`open`, `write`, `rename`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration or record file could not be parsed.
    #[error("cannot parse {path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A file was larger than the bound for its kind.
    #[error("{path} is larger than {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        limit: u64,
    },
    /// The handler's command line did not match what `core_pattern` passes.
    #[error("bad handler arguments: {0}")]
    Usage(String),
    /// The coredump socket could not be set up.
    #[error("coredump socket {path}: {message}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A kernel setting could not be applied.
    #[error("kernel setting {name}: {message}")]
    Sysctl {
        /// e.g. `kernel.core_pattern`.
        name: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl CaptureError {
    /// Shorthand for an [`CaptureError::Io`] with context.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CaptureError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The filesystem (or a quota on it) is full.
    pub fn is_storage_full(&self) -> bool {
        match self {
            CaptureError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}
