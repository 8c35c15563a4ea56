//! The axum middleware that authenticates and authorizes every request except the health
//! probes (which kubelet calls without credentials).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{
    Authenticator, Authorizer, Decision, PeerCertificates, RequestAttributes, RequestCredentials,
    UserInfo, request_attributes,
};
use crate::error::ApiError;

/// The authenticator and authorizer the middleware consults.
#[derive(Clone)]
pub struct AuthLayerState {
    /// Who is calling.
    pub authenticator: Arc<dyn Authenticator>,
    /// May they.
    pub authorizer: Arc<dyn Authorizer>,
}

/// Paths served without authentication.
pub fn is_health_path(path: &str) -> bool {
    let first = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    matches!(first, "healthz" | "livez" | "readyz")
}

/// Kubernetes' wording of a denial.
fn forbidden_message(user: &UserInfo, a: &RequestAttributes, reason: Option<&str>) -> String {
    let mut msg = if a.resource_request {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let object = if a.name.is_empty() {
            format!("{}.{}", a.resource, a.api_group)
        } else {
            format!("{}.{} {:?}", a.resource, a.api_group, a.name)
        };
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace {:?}", a.namespace)
        };
        format!(
            "{object} is forbidden: User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
            user.name, a.verb, a.api_group
        )
    } else {
        format!(
            "forbidden: User {:?} cannot {} path {:?}",
            user.name, a.verb, a.path
        )
    };
    if let Some(r) = reason.filter(|r| !r.is_empty()) {
        msg.push_str(": ");
        msg.push_str(r);
    }
    msg
}

/// Authenticates (401 when nobody is recognized), authorizes (403 unless allowed) and attaches
/// the [`UserInfo`] to the request.
pub async fn authenticate_and_authorize(
    State(auth): State<AuthLayerState>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_health_path(req.uri().path()) {
        return next.run(req).await;
    }
    let creds = RequestCredentials {
        peer_certificates: req
            .extensions()
            .get::<PeerCertificates>()
            .map(|p| p.0.clone())
            .unwrap_or_default(),
        headers: req.headers().clone(),
    };
    let user = match auth.authenticator.authenticate(&creds).await {
        Ok(Some(user)) => user,
        Ok(None) => return ApiError::Unauthorized.into_response(),
        Err(e) => {
            tracing::info!(error = %e, path = req.uri().path(), "authentication failed");
            return ApiError::Unauthorized.into_response();
        }
    };
    let attrs = request_attributes(req.method(), req.uri().path(), req.uri().query());
    if let Err(e) = authorize(&auth, &user, &attrs).await {
        return e.into_response();
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}

/// `Ok` when `user` may do `attrs`, else the 403. The middleware asks it for every request;
/// handlers ask again when a request turns into another verb (a server-side apply that
/// creates is authorized as `create` too, as kube-apiserver does).
pub async fn authorize(
    auth: &AuthLayerState,
    user: &UserInfo,
    attrs: &RequestAttributes,
) -> Result<(), ApiError> {
    match auth.authorizer.authorize(user, attrs).await {
        Decision::Allow => Ok(()),
        Decision::Deny(reason) => Err(ApiError::Forbidden {
            message: forbidden_message(user, attrs, Some(&reason)),
        }),
        Decision::NoOpinion => Err(ApiError::Forbidden {
            message: forbidden_message(user, attrs, None),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn health_paths() {
        for p in ["/healthz", "/livez", "/readyz", "/readyz/ping", "/healthz/"] {
            assert!(is_health_path(p), "{p}");
        }
        for p in ["/", "/apis", "/healthzx", "/openapi/v2"] {
            assert!(!is_health_path(p), "{p}");
        }
    }

    #[test]
    fn forbidden_messages_follow_kubernetes() {
        let u = UserInfo {
            name: "bob".into(),
            ..Default::default()
        };
        let a = request_attributes(
            &Method::GET,
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/ns/coredumps/x/core",
            None,
        );
        assert_eq!(
            forbidden_message(&u, &a, None),
            "coredumps.coredump.fujitsu.com \"x\" is forbidden: User \"bob\" cannot get resource \
             \"coredumps/core\" in API group \"coredump.fujitsu.com\" in the namespace \"ns\""
        );
        let a = request_attributes(
            &Method::GET,
            "/apis/coredump.fujitsu.com/v1alpha1/coredumps",
            None,
        );
        assert_eq!(
            forbidden_message(&u, &a, Some("no")),
            "coredumps.coredump.fujitsu.com is forbidden: User \"bob\" cannot list resource \
             \"coredumps\" in API group \"coredump.fujitsu.com\" at the cluster scope: no"
        );
        let a = request_attributes(&Method::GET, "/metrics", None);
        assert_eq!(
            forbidden_message(&u, &a, None),
            "forbidden: User \"bob\" cannot get path \"/metrics\""
        );
    }
}
