//! What can go wrong while generating an install: a bad option (caught before anything is
//! written), certificate generation, serialization, or writing the files.

use std::path::PathBuf;

/// Failures of `deploy`.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// An option has a value Kubernetes (or our workloads) would refuse.
    #[error("invalid {option} {value:?}: {reason}")]
    InvalidOption {
        /// The option (`namespace`, `--image`, ...).
        option: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The certificates could not be generated or written.
    #[error("certificates for {subject}: {source}")]
    Pki {
        /// What was being made (`SERVICE.NAMESPACE.svc`, or a file).
        subject: String,
        /// Cause.
        #[source]
        source: coredump_pki::PkiError,
    },
    /// An object could not be serialized to YAML.
    #[error("serializing the manifest: {source}")]
    Yaml {
        /// Cause.
        #[source]
        source: serde_saphyr::SerializeError,
    },
    /// The Helm chart could not be made from the rendered objects (a bug of the renderer).
    #[error("making the Helm chart: {reason}")]
    Chart {
        /// What went wrong.
        reason: String,
    },
    /// The output directory could not be created or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl DeployError {
    /// An [`DeployError::InvalidOption`].
    pub(crate) fn invalid(option: &'static str, value: &str, reason: impl Into<String>) -> Self {
        DeployError::InvalidOption {
            option,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
