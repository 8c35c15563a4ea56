//! Delegated authentication as Kubernetes' aggregated API servers do it: the certificates to
//! trust come from kube-apiserver's ConfigMap `kube-system/extension-apiserver-authentication`
//! (read at start, then followed with a watch, since CAs rotate), bearer tokens go to
//! TokenReview. Per request: front-proxy headers first, then a client-CA certificate, then a
//! bearer token; nobody recognized is anonymous, which the middleware answers with 401.

use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};

use super::authn_config::{AuthenticationConfig, CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, ConfigError};
use super::client_cert::{CaError, ClientCertAuthenticator};
use super::request_header::RequestHeaderAuthenticator;
use super::token_review::TokenReviewAuthenticator;
use super::{AuthError, Authenticator, RequestCredentials, UserInfo};

/// Which ConfigMap holds the authentication configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMapRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl Default for ConfigMapRef {
    fn default() -> Self {
        Self {
            namespace: CONFIGMAP_NAMESPACE.to_owned(),
            name: CONFIGMAP_NAME.to_owned(),
        }
    }
}

impl std::fmt::Display for ConfigMapRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The delegated configuration could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    /// Reading the ConfigMap failed.
    #[error("reading ConfigMap {configmap}: {source}")]
    Read {
        /// Which.
        configmap: ConfigMapRef,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// A key of the ConfigMap is malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A CA bundle is unusable.
    #[error("{which}: {source}")]
    Ca {
        /// Which bundle (`client-ca-file`, `requestheader-client-ca-file`).
        which: &'static str,
        /// Why.
        #[source]
        source: CaError,
    },
}

/// The certificate authenticators of one configuration.
struct CertAuthenticators {
    config: AuthenticationConfig,
    request_header: Option<RequestHeaderAuthenticator>,
    client_cert: Option<ClientCertAuthenticator>,
}

impl CertAuthenticators {
    fn build(config: &AuthenticationConfig) -> Result<Self, DelegationError> {
        let request_header = config
            .request_header
            .as_ref()
            .map(RequestHeaderAuthenticator::new)
            .transpose()
            .map_err(|source| DelegationError::Ca {
                which: "requestheader-client-ca-file",
                source,
            })?;
        let client_cert = config
            .client_ca_pem
            .as_ref()
            .map(|pem| ClientCertAuthenticator::from_pem(pem.as_bytes()))
            .transpose()
            .map_err(|source| DelegationError::Ca {
                which: "client-ca-file",
                source,
            })?;
        Ok(Self {
            config: config.clone(),
            request_header,
            client_cert,
        })
    }
}

/// Front-proxy headers, client certificates and bearer tokens, as kube-apiserver delegates.
pub struct DelegatedAuthenticator {
    certs: RwLock<Arc<CertAuthenticators>>,
    client_ca_override: Option<String>,
    tokens: Option<TokenReviewAuthenticator>,
}

impl DelegatedAuthenticator {
    /// Trusts what `config` says; `client_ca_override` (PEM, from `--client-ca-file`) replaces
    /// its client CA; `tokens` reviews bearer tokens (none: tokens are not accepted).
    pub fn new(
        config: &AuthenticationConfig,
        client_ca_override: Option<String>,
        tokens: Option<TokenReviewAuthenticator>,
    ) -> Result<Self, DelegationError> {
        let effective = Self::effective(config, client_ca_override.as_deref());
        Ok(Self {
            certs: RwLock::new(Arc::new(CertAuthenticators::build(&effective)?)),
            client_ca_override,
            tokens,
        })
    }

    fn effective(config: &AuthenticationConfig, client_ca: Option<&str>) -> AuthenticationConfig {
        let mut c = config.clone();
        if let Some(pem) = client_ca {
            c.client_ca_pem = Some(pem.to_owned());
        }
        c
    }

    /// Switches to `config`; returns whether anything changed. On error the old configuration
    /// stays in force.
    pub fn update(&self, config: &AuthenticationConfig) -> Result<bool, DelegationError> {
        let effective = Self::effective(config, self.client_ca_override.as_deref());
        if self.current().config == effective {
            return Ok(false);
        }
        let built = Arc::new(CertAuthenticators::build(&effective)?);
        *self.certs.write().unwrap_or_else(|e| e.into_inner()) = built;
        Ok(true)
    }

    fn current(&self) -> Arc<CertAuthenticators> {
        self.certs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The configuration in force (with the client-CA override applied).
    pub fn config(&self) -> AuthenticationConfig {
        self.current().config.clone()
    }
}

#[async_trait::async_trait]
impl Authenticator for DelegatedAuthenticator {
    async fn authenticate(&self, req: &RequestCredentials) -> Result<Option<UserInfo>, AuthError> {
        let certs = self.current();
        let mut first_err = None;
        let mut candidates: Vec<&dyn Authenticator> = Vec::with_capacity(3);
        if let Some(a) = &certs.request_header {
            candidates.push(a);
        }
        if let Some(a) = &certs.client_cert {
            candidates.push(a);
        }
        if let Some(a) = &self.tokens {
            candidates.push(a);
        }
        for a in candidates {
            match a.authenticate(req).await {
                Ok(Some(user)) => return Ok(Some(user)),
                Ok(None) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}

/// Reads and parses the ConfigMap once.
pub async fn load_config(
    client: &kube::Client,
    configmap: &ConfigMapRef,
) -> Result<AuthenticationConfig, DelegationError> {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), &configmap.namespace);
    let cm = api
        .get(&configmap.name)
        .await
        .map_err(|source| DelegationError::Read {
            configmap: configmap.clone(),
            source,
        })?;
    Ok(AuthenticationConfig::from_configmap_data(
        &cm.data.unwrap_or_default(),
    )?)
}

/// Follows the ConfigMap (watch, re-listing with backoff after errors) and applies every
/// version to `authenticator`. Runs until the task is dropped. A deleted ConfigMap keeps the
/// last configuration (kube-apiserver recreates it).
pub async fn follow_config(
    client: kube::Client,
    configmap: ConfigMapRef,
    authenticator: Arc<DelegatedAuthenticator>,
) {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &configmap.namespace);
    let selector = format!("metadata.name={}", configmap.name);
    let stream = watcher(api, watcher::Config::default().fields(&selector))
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let cm = match item {
            Ok(cm) => cm,
            Err(e) => {
                tracing::warn!(%configmap, error = %e, "watching the authentication ConfigMap");
                continue;
            }
        };
        let applied = AuthenticationConfig::from_configmap_data(&cm.data.unwrap_or_default())
            .map_err(DelegationError::from)
            .and_then(|c| authenticator.update(&c));
        match applied {
            Ok(true) => tracing::info!(%configmap, "authentication configuration changed"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(%configmap, error = %e, "ignoring an unusable authentication configuration")
            }
        }
    }
}
