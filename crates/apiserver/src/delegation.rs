//! The API server's side of the cluster it extends: a Kubernetes client (kubeconfig or
//! in-cluster credentials), and from it delegated authentication (TokenReview, the
//! `extension-apiserver-authentication` ConfigMap, followed), delegated authorization
//! (SubjectAccessReview, with members of the admin groups allowed without asking, as
//! Kubernetes does for `system:masters`) and the pod lookup that fills `spec.podUID`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::auth::access_review::{DEFAULT_ALLOWED_TTL, DEFAULT_DENIED_TTL};
use crate::auth::token_review::DEFAULT_TOKEN_TTL;
use crate::auth::{
    AllowGroupsAuthorizer, Authenticator, Authorizer, ConfigMapRef, DelegatedAuthenticator,
    KubeAccessReviewer, KubeTokenReviewer, SubjectAccessReviewAuthorizer, TokenReviewAuthenticator,
    UnionAuthorizer,
};
use crate::pods::{KubePodLookup, PodLookup};
use coredump_common::kube_client::{Credentials, Fallback};
use coredump_common::parse_duration;

/// Whether to delegate authentication and authorization to kube-apiserver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DelegationMode {
    /// When a kubeconfig flag is given or in-cluster credentials exist.
    Auto,
    /// Always (fails to start without a cluster).
    On,
    /// Never: `--client-ca-file` certificates and `--admin-groups` only (no Kubernetes).
    Off,
}

/// Flags of the cluster connection.
#[derive(Debug, Clone, clap::Args)]
pub struct DelegationArgs {
    /// Delegate authentication and authorization to kube-apiserver (`auto`: when a kubeconfig
    /// flag is given or the server runs in a pod).
    #[arg(long, value_enum, default_value_t = DelegationMode::Auto)]
    pub delegated_auth: DelegationMode,
    /// kubeconfig of the cluster (pods, TokenReview, SubjectAccessReview, the authentication
    /// ConfigMap); without it the pod's in-cluster credentials.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig for TokenReview and the authentication ConfigMap (default: --kubeconfig).
    #[arg(long)]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// kubeconfig for SubjectAccessReview (default: --kubeconfig).
    #[arg(long)]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// How long token reviews are cached (e.g. 10s; 0 = not at all).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authentication_token_cache_ttl: Duration,
    /// How long "allowed" answers of SubjectAccessReview are cached.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authorization_allowed_cache_ttl: Duration,
    /// How long other answers of SubjectAccessReview are cached.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authorization_denied_cache_ttl: Duration,
    /// The ConfigMap kube-apiserver publishes its authentication settings in (`NS/NAME`).
    #[arg(long, default_value = "kube-system/extension-apiserver-authentication", value_parser = parse_configmap)]
    pub authentication_configmap: ConfigMapRef,
}

impl Default for DelegationArgs {
    fn default() -> Self {
        Self {
            delegated_auth: DelegationMode::Auto,
            kubeconfig: None,
            authentication_kubeconfig: None,
            authorization_kubeconfig: None,
            authentication_token_cache_ttl: DEFAULT_TOKEN_TTL,
            authorization_allowed_cache_ttl: DEFAULT_ALLOWED_TTL,
            authorization_denied_cache_ttl: DEFAULT_DENIED_TTL,
            authentication_configmap: ConfigMapRef::default(),
        }
    }
}

fn parse_configmap(text: &str) -> Result<ConfigMapRef, String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ConfigMapRef {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            })
        }
        _ => Err(format!("{text:?} is not NAMESPACE/NAME")),
    }
}

impl DelegationArgs {
    /// Whether to delegate, given these flags and this environment.
    pub fn enabled(&self) -> bool {
        match self.delegated_auth {
            DelegationMode::On => true,
            DelegationMode::Off => false,
            DelegationMode::Auto => {
                self.kubeconfig.is_some()
                    || self.authentication_kubeconfig.is_some()
                    || self.authorization_kubeconfig.is_some()
                    || kube::Config::incluster().is_ok()
            }
        }
    }
}

/// A Kubernetes client from a kubeconfig file, else from in-cluster credentials only (never an
/// operator's `~/.kube/config`: see `coredump_common::kube_client`).
pub async fn client(
    kubeconfig: Option<&Path>,
) -> Result<kube::Client, coredump_common::kube_client::KubeClientError> {
    coredump_common::kube_client::client(Credentials::new(kubeconfig, Fallback::InCluster)).await
}

/// Tasks that live as long as the server; aborted on drop.
#[derive(Debug, Default)]
pub struct BackgroundTasks(pub Vec<tokio::task::JoinHandle<()>>);

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// What delegation provides to the server.
pub struct Delegated {
    /// Front-proxy headers, client certificates, bearer tokens.
    pub authenticator: Arc<dyn Authenticator>,
    /// Admin groups, discovery, then SubjectAccessReview.
    pub authorizer: Arc<dyn Authorizer>,
    /// Live pods.
    pub pods: Arc<dyn PodLookup>,
    /// The ConfigMap follower.
    pub background: BackgroundTasks,
}

/// Connects to the cluster, reads the authentication ConfigMap and starts following it.
/// `client_ca_pem` (from `--client-ca-file`) replaces the ConfigMap's client CA.
pub async fn start(
    args: &DelegationArgs,
    admin_groups: Vec<String>,
    client_ca_pem: Option<String>,
) -> anyhow::Result<Delegated> {
    let main = client(args.kubeconfig.as_deref()).await?;
    let authn_client = match &args.authentication_kubeconfig {
        Some(p) => client(Some(p)).await?,
        None => main.clone(),
    };
    let authz_client = match &args.authorization_kubeconfig {
        Some(p) => client(Some(p)).await?,
        None => main.clone(),
    };
    let cm = &args.authentication_configmap;
    let config = crate::auth::delegated::load_config(&authn_client, cm)
        .await
        .with_context(|| {
            format!(
                "delegated authentication needs ConfigMap {cm} (grant the Role \
                 extension-apiserver-authentication-reader in {} to this server's identity)",
                cm.namespace
            )
        })?;
    let tokens = TokenReviewAuthenticator::new(
        Arc::new(KubeTokenReviewer::new(authn_client.clone(), Vec::new())),
        args.authentication_token_cache_ttl,
    );
    let authenticator = Arc::new(
        DelegatedAuthenticator::new(&config, client_ca_pem, Some(tokens))
            .with_context(|| format!("using ConfigMap {cm}"))?,
    );
    if config.request_header.is_none() {
        tracing::warn!(configmap = %cm, "no request-header settings published: requests proxied by kube-apiserver cannot be authenticated");
    }
    let follower = tokio::spawn(crate::auth::delegated::follow_config(
        authn_client,
        cm.clone(),
        authenticator.clone(),
    ));
    let sar = SubjectAccessReviewAuthorizer::new(
        Arc::new(KubeAccessReviewer::new(authz_client)),
        args.authorization_allowed_cache_ttl,
        args.authorization_denied_cache_ttl,
    );
    let authorizer = UnionAuthorizer(vec![
        Arc::new(AllowGroupsAuthorizer::new(admin_groups)),
        Arc::new(sar),
    ]);
    Ok(Delegated {
        authenticator,
        authorizer: Arc::new(authorizer),
        pods: Arc::new(KubePodLookup::new(main)),
        background: BackgroundTasks(vec![follower]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DelegationArgs,
    }

    #[test]
    fn flags_and_defaults() {
        let d = Cli::try_parse_from(["x"]).unwrap().args;
        let dflt = DelegationArgs::default();
        assert_eq!(d.delegated_auth, dflt.delegated_auth);
        assert_eq!(d.authentication_configmap, dflt.authentication_configmap);
        assert_eq!(d.authentication_token_cache_ttl, Duration::from_secs(10));
        assert_eq!(
            d.authorization_denied_cache_ttl,
            dflt.authorization_denied_cache_ttl
        );
        let a = Cli::try_parse_from([
            "x",
            "--kubeconfig=/k",
            "--delegated-auth=on",
            "--authentication-configmap=ns/cm",
            "--authorization-allowed-cache-ttl=1m",
        ])
        .unwrap()
        .args;
        assert!(a.enabled());
        assert_eq!(a.authentication_configmap.to_string(), "ns/cm");
        assert_eq!(a.authorization_allowed_cache_ttl, Duration::from_secs(60));
        let off = Cli::try_parse_from(["x", "--kubeconfig=/k", "--delegated-auth=off"]).unwrap();
        assert!(!off.args.enabled());
        assert!(Cli::try_parse_from(["x", "--authentication-configmap=nope"]).is_err());
    }
}
