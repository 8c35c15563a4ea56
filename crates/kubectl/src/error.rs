//! The plugin's one error type. Every variant names the object (and namespace) or the file it
//! is about, because the user reads these messages directly: a bare "404" or "checksum
//! mismatch" does not say which core or which path.

use std::path::PathBuf;

/// What can go wrong talking to the API or writing a download.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be found, read or used (the error names the file).
    #[error(transparent)]
    Kubeconfig(coredump_common::kube_client::KubeClientError),
    /// The HTTP client could not be built from the kubeconfig.
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// A request to our API failed: an error `Status` (NotFound, Forbidden, ...), no answer,
    /// or an unexpected one; it names the object.
    #[error(transparent)]
    Api(#[from] coredump_api::client::ClientError),
    /// The object could not be printed in the requested format.
    #[error("printing {what}: {message}")]
    Print {
        /// Which object.
        what: String,
        /// What the serializer said.
        message: String,
    },
    /// The crash record exists but has no core to download.
    #[error(
        "coredump {name:?} in namespace {namespace:?} has no stored core (state {state}{})",
        if message.is_empty() { String::new() } else { format!(": {message}") }
    )]
    NoCore {
        /// Namespace of the record.
        namespace: String,
        /// Name of the record.
        name: String,
        /// Its `status.state`.
        state: String,
        /// Its `status.message`.
        message: String,
    },
    /// `--pod` named a pod that has no `CoredumpEndpoint`.
    #[error(
        "no CoredumpEndpoint {pod:?} in namespace {namespace:?}: its cores are served once one \
         exists. Create it with:\n  printf 'apiVersion: coredump.fujitsu.com/v1alpha1\\nkind: \
         CoredumpEndpoint\\nmetadata: {{name: {pod}, namespace: {namespace}}}\\nspec: {{podUID: \
         UID}}\\n' | kubectl create -f -\n(spec.podUID may be left out while the pod is running: \
         the server fills it in from the live pod)"
    )]
    EndpointMissing {
        /// Namespace asked for.
        namespace: String,
        /// Pod name asked for.
        pod: String,
    },
    /// The stream ended with a different number of bytes than announced.
    #[error("{what}: received {got} bytes, expected {expected}; nothing written to {}", .path.display())]
    Length {
        /// Which download.
        what: String,
        /// The destination, left as it was.
        path: PathBuf,
        /// Bytes announced (`status.coreSize` / `Content-Length`).
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// The SHA-256 of the received bytes is not the one the record states.
    #[error("{what}: SHA-256 {got} differs from the record's {expected}; nothing written to {}", .path.display())]
    Checksum {
        /// Which download.
        what: String,
        /// The destination, left as it was.
        path: PathBuf,
        /// `status.sha256`.
        expected: String,
        /// Hash of what arrived.
        got: String,
    },
    /// The server announced a length that disagrees with the record.
    #[error("{what}: the server announces {announced} bytes but the record says {recorded}")]
    Announced {
        /// Which download.
        what: String,
        /// `Content-Length`.
        announced: u64,
        /// `status.coreSize`.
        recorded: u64,
    },
    /// The stream broke off (connection reset, server error mid-body).
    #[error("{what}: the download broke off after {got} bytes: {source}")]
    Stream {
        /// Which download.
        what: String,
        /// Bytes received before the break.
        got: u64,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A local file operation failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What we did (`creating`, `writing`, `renaming to`).
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the API said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api(e) if e.is_not_found())
    }
}
