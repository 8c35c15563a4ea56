//! From kubectl's connection flags to a kube-rs client and the namespace to use, the way kubectl
//! picks them: `--kubeconfig`, else `$KUBECONFIG` (several files merged), else
//! `~/.kube/config`, else the in-cluster service account; `--context` picks a context; the
//! namespace is `-n`, else the context's, else `default`.

use std::path::PathBuf;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

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
    let kube_options = KubeConfigOptions {
        context: options.context.clone(),
        ..KubeConfigOptions::default()
    };
    let kubeconfig_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::Kubeconfig {
        path: options.kubeconfig.clone(),
        source,
    };
    let config = match (&options.kubeconfig, &options.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path).map_err(|e| kubeconfig_error(e.into()))?;
            kube::Config::from_custom_kubeconfig(file, &kube_options)
                .await
                .map_err(|e| kubeconfig_error(e.into()))?
        }
        // A context only exists in a kubeconfig: no in-cluster fallback.
        (None, Some(_)) => kube::Config::from_kubeconfig(&kube_options)
            .await
            .map_err(|e| kubeconfig_error(e.into()))?,
        (None, None) => kube::Config::infer()
            .await
            .map_err(|e| kubeconfig_error(e.into()))?,
    };
    let default_namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(Error::Client)?;
    Ok(Connection {
        client,
        default_namespace,
    })
}
