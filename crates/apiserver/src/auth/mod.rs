//! Who is calling and may they do this. Both questions sit behind traits so the handlers never
//! care how: [`Authenticator`] turns credentials into a [`UserInfo`], [`Authorizer`] decides on
//! [`RequestAttributes`] computed exactly as Kubernetes computes them.
//!
//! Two set-ups exist. Without Kubernetes (standalone, tests): [`ClientCertAuthenticator`] with
//! one CA and [`AllowGroupsAuthorizer`]. Behind kube-apiserver: [`DelegatedAuthenticator`]
//! (front-proxy headers from a verified proxy certificate, client certificates, bearer tokens
//! through TokenReview, certificates from the `extension-apiserver-authentication` ConfigMap)
//! and [`AllowGroupsAuthorizer`] then [`SubjectAccessReviewAuthorizer`] in a
//! [`UnionAuthorizer`].

pub mod access_review;
mod attributes;
pub mod authn_config;
mod authorizer;
pub mod cache;
mod client_cert;
pub mod delegated;
mod middleware;
pub mod request_header;
pub mod token_review;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use rustls_pki_types::CertificateDer;

pub use access_review::{AccessReviewer, KubeAccessReviewer, SubjectAccessReviewAuthorizer};
pub use attributes::{RequestAttributes, request_attributes};
pub use authn_config::AuthenticationConfig;
pub use authorizer::AllowGroupsAuthorizer;
pub use client_cert::{CaError, ClientCertAuthenticator};
pub use delegated::{ConfigMapRef, DelegatedAuthenticator, DelegationError};
pub use middleware::{AuthLayerState, authenticate_and_authorize, authorize};
pub use request_header::RequestHeaderAuthenticator;
pub use token_review::{KubeTokenReviewer, TokenReviewAuthenticator, TokenReviewer};

/// Group every authenticated user belongs to (k8s.io/apiserver adds it; RBAC's discovery rules
/// are granted to it).
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// An authenticated user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    /// User name (certificate CN, or the front proxy's username header).
    pub name: String,
    /// User UID, when known.
    pub uid: String,
    /// Groups, including [`AUTHENTICATED_GROUP`].
    pub groups: Vec<String>,
    /// Extra attributes (scopes etc.).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The TLS peer's certificate chain (end entity first), attached to each request by the server.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// What a request presents for authentication.
#[derive(Debug, Clone)]
pub struct RequestCredentials {
    /// The client certificate chain, end entity first; empty if none was sent.
    pub peer_certificates: Arc<Vec<CertificateDer<'static>>>,
    /// Request headers (for front-proxy headers and bearer tokens).
    pub headers: HeaderMap,
}

/// Authentication failed in a way that is not simply "no credentials".
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A client certificate was presented but is not acceptable.
    #[error("client certificate rejected: {reason}")]
    CertificateRejected {
        /// Why.
        reason: String,
    },
    /// The authentication backend (e.g. TokenReview) failed.
    #[error("authentication backend failed: {message}")]
    Backend {
        /// What failed.
        message: String,
    },
}

/// Turns request credentials into a user.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok(None)` when these credentials are not for this authenticator (try the next).
    async fn authenticate(&self, req: &RequestCredentials) -> Result<Option<UserInfo>, AuthError>;
}

/// Tries authenticators in order; the first that recognizes the request wins.
pub struct UnionAuthenticator(pub Vec<Arc<dyn Authenticator>>);

#[async_trait::async_trait]
impl Authenticator for UnionAuthenticator {
    async fn authenticate(&self, req: &RequestCredentials) -> Result<Option<UserInfo>, AuthError> {
        let mut first_err = None;
        for a in &self.0 {
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

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Explicitly denied, with a reason.
    Deny(String),
    /// This authorizer has no opinion (denied unless another allows).
    NoOpinion,
}

/// Decides whether a user may perform a request.
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// The decision for `user` doing `attrs`.
    async fn authorize(&self, user: &UserInfo, attrs: &RequestAttributes) -> Decision;
}

/// Asks authorizers in order; the first `Allow` or `Deny` decides, `NoOpinion` asks the next.
pub struct UnionAuthorizer(pub Vec<Arc<dyn Authorizer>>);

#[async_trait::async_trait]
impl Authorizer for UnionAuthorizer {
    async fn authorize(&self, user: &UserInfo, attrs: &RequestAttributes) -> Decision {
        for a in &self.0 {
            match a.authorize(user, attrs).await {
                Decision::NoOpinion => {}
                decided => return decided,
            }
        }
        Decision::NoOpinion
    }
}
