//! `AllowGroupsAuthorizer`: allows members of configured groups everything (like Kubernetes'
//! built-in `system:masters` rule), and every authenticated user the read-only discovery and
//! OpenAPI paths (like RBAC's `system:discovery`), which kube-apiserver's aggregator calls as
//! users without groups.

use super::{AUTHENTICATED_GROUP, Authorizer, Decision, RequestAttributes, UserInfo};

/// Allows members of the given groups everything, and authenticated users discovery.
#[derive(Debug, Clone)]
pub struct AllowGroupsAuthorizer {
    groups: Vec<String>,
}

impl AllowGroupsAuthorizer {
    /// Allows members of `groups` (e.g. `system:masters`).
    pub fn new(groups: Vec<String>) -> Self {
        Self { groups }
    }
}

/// Whether a non-resource path is discovery or OpenAPI (readable by any authenticated user).
pub fn is_discovery_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    matches!(
        path,
        "/api" | "/apis" | "/version" | "/openapi/v2" | "/openapi/v3"
    ) || path.starts_with("/api/")
        || path.starts_with("/apis/")
        || path.starts_with("/openapi/v3/")
}

#[async_trait::async_trait]
impl Authorizer for AllowGroupsAuthorizer {
    async fn authorize(&self, user: &UserInfo, attrs: &RequestAttributes) -> Decision {
        if user.groups.iter().any(|g| self.groups.contains(g)) {
            return Decision::Allow;
        }
        if !attrs.resource_request
            && matches!(attrs.verb.as_str(), "get" | "head")
            && is_discovery_path(&attrs.path)
            && user.groups.iter().any(|g| g == AUTHENTICATED_GROUP)
        {
            return Decision::Allow;
        }
        Decision::NoOpinion
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::request_attributes;
    use axum::http::Method;

    fn user(groups: &[&str]) -> UserInfo {
        UserInfo {
            name: "u".into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn masters_may_do_anything() {
        let a = AllowGroupsAuthorizer::new(vec!["system:masters".into()]);
        let attrs = request_attributes(
            &Method::DELETE,
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/a/coredumps/x",
            None,
        );
        assert_eq!(
            a.authorize(&user(&["system:masters", AUTHENTICATED_GROUP]), &attrs)
                .await,
            Decision::Allow
        );
        assert_eq!(
            a.authorize(&user(&[AUTHENTICATED_GROUP]), &attrs).await,
            Decision::NoOpinion
        );
    }

    #[tokio::test]
    async fn authenticated_users_may_discover() {
        let a = AllowGroupsAuthorizer::new(vec!["system:masters".into()]);
        for p in [
            "/apis",
            "/apis/coredump.fujitsu.com/v1alpha1",
            "/openapi/v2",
            "/openapi/v3/apis/coredump.fujitsu.com/v1alpha1",
        ] {
            let attrs = request_attributes(&Method::GET, p, None);
            assert_eq!(
                a.authorize(&user(&[AUTHENTICATED_GROUP]), &attrs).await,
                Decision::Allow,
                "{p}"
            );
            assert_eq!(
                a.authorize(&user(&[]), &attrs).await,
                Decision::NoOpinion,
                "{p}"
            );
        }
        let list = request_attributes(
            &Method::GET,
            "/apis/coredump.fujitsu.com/v1alpha1/coredumps",
            None,
        );
        assert_eq!(
            a.authorize(&user(&[AUTHENTICATED_GROUP]), &list).await,
            Decision::NoOpinion
        );
        let post = request_attributes(&Method::POST, "/apis", None);
        assert_eq!(
            a.authorize(&user(&[AUTHENTICATED_GROUP]), &post).await,
            Decision::NoOpinion
        );
    }
}
