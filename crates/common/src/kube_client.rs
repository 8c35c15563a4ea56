//! The one policy for finding Kubernetes credentials. Every role asks here, and says which
//! fallback it wants when no kubeconfig is named:
//! * [`Fallback::Infer`] (agent, GC, the kubectl plugin): `$KUBECONFIG`, `~/.kube/config`, then
//!   the in-cluster service account, as kubectl does;
//! * [`Fallback::InCluster`] (the API server's delegation): only the pod's service account,
//!   as aggregated servers built on k8s.io/apiserver do, so a server started by hand never picks
//!   up an operator's personal kubeconfig and acts with its rights.

use std::path::{Path, PathBuf};

/// Where to look when no kubeconfig file is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// `$KUBECONFIG`, `~/.kube/config`, then in-cluster credentials.
    Infer,
    /// In-cluster credentials only.
    InCluster,
}

/// Which credentials to use.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// A kubeconfig file (`--kubeconfig`).
    pub kubeconfig: Option<&'a Path>,
    /// A context of the kubeconfig (`--context`); with it, in-cluster credentials never apply.
    pub context: Option<&'a str>,
    /// Where to look without `kubeconfig`.
    pub fallback: Fallback,
}

impl<'a> Credentials<'a> {
    /// `kubeconfig` if given, else `fallback`, the kubeconfig's current context.
    pub fn new(kubeconfig: Option<&'a Path>, fallback: Fallback) -> Self {
        Credentials {
            kubeconfig,
            context: None,
            fallback,
        }
    }
}

/// Why no client could be built; names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    /// The kubeconfig file could not be read or parsed.
    #[error("reading kubeconfig {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig (or the context asked for) does not make a usable configuration.
    #[error("using kubeconfig {}: {source}", path.as_deref().map_or_else(|| "from $KUBECONFIG or ~/.kube/config".into(), |p| p.display().to_string()))]
    Load {
        /// The file, when one was named.
        path: Option<PathBuf>,
        /// Why.
        source: kube::config::KubeconfigError,
    },
    /// Neither a kubeconfig nor in-cluster credentials were found.
    #[error("finding Kubernetes credentials (kubeconfig or in-cluster): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    /// No kubeconfig was named and this process does not run in a pod.
    #[error("no --kubeconfig and no in-cluster credentials: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    /// The configuration was found but the client could not be built from it.
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// The client configuration `credentials` select (its `default_namespace` is the context's).
pub async fn config(credentials: Credentials<'_>) -> Result<kube::Config, KubeClientError> {
    // kube's TLS needs a process-wide provider when more than one is compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = kube::config::KubeConfigOptions {
        context: credentials.context.map(str::to_owned),
        ..Default::default()
    };
    match (credentials.kubeconfig, credentials.context) {
        (Some(path), _) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                KubeClientError::Read {
                    path: path.to_owned(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|source| KubeClientError::Load {
                    path: Some(path.to_owned()),
                    source,
                })
        }
        // A context exists only in a kubeconfig: no in-cluster fallback.
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|source| KubeClientError::Load { path: None, source }),
        (None, None) => match credentials.fallback {
            Fallback::Infer => kube::Config::infer().await.map_err(KubeClientError::Infer),
            Fallback::InCluster => kube::Config::incluster().map_err(KubeClientError::InCluster),
        },
    }
}

/// A client for `credentials`.
pub async fn client(credentials: Credentials<'_>) -> Result<kube::Client, KubeClientError> {
    let config = config(credentials).await?;
    kube::Client::try_from(config).map_err(KubeClientError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_kubeconfig_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.yaml");
        let Err(err) = client(Credentials::new(Some(&path), Fallback::Infer)).await else {
            panic!("a client from a missing kubeconfig");
        };
        assert!(matches!(err, KubeClientError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.yaml"), "{err}");
    }

    #[tokio::test]
    async fn a_kubeconfig_names_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: team-a\ncurrent-context: x\nusers:\n- name: u\n  user:\n    token: t\n",
        )
        .unwrap();
        let config = config(Credentials::new(Some(&path), Fallback::InCluster))
            .await
            .unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(config.default_namespace, "team-a");
    }
}
