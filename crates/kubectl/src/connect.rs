//! From kubectl's connection flags to a kube-rs client and the namespace to use, the way kubectl
//! picks them: `--kubeconfig`, else `$KUBECONFIG` (several files merged), else
//! `~/.kube/config`, else the in-cluster service account; `--context` picks a context; the
//! namespace is `-n`, else the context's, else `default` (`coredump_common::kube_client`'s
//! `Infer` policy, shared with the agent and the GC).

use std::path::PathBuf;

use coredump_common::kube_client::{self, Credentials, Fallback};
use kube::Client;

use crate::Error;

/// kubectl's connection flags, as the user gave them.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig FILE`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context NAME`.
    pub context: Option<String>,
}

/// A client plus the namespace the kubeconfig context names (`default` when it names none).
pub struct Connection {
    /// The client, authenticated as the kubeconfig says.
    pub client: Client,
    /// Namespace of the selected context, else `default` (or the pod's, in a cluster).
    pub default_namespace: String,
}

/// Builds the client kubectl would use with the same flags.
pub async fn connect(options: &ConnectOptions) -> Result<Connection, Error> {
    let credentials = Credentials {
        kubeconfig: options.kubeconfig.as_deref(),
        context: options.context.as_deref(),
        fallback: Fallback::Infer,
    };
    let config = kube_client::config(credentials)
        .await
        .map_err(Error::Kubeconfig)?;
    let default_namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(Error::Client)?;
    Ok(Connection {
        client,
        default_namespace,
    })
}
