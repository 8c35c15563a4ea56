//! Delegated authorization: every request becomes a `SubjectAccessReview` asked of
//! kube-apiserver (so the cluster's RBAC decides, subresources `dump` and `core` included), and
//! the answer, allowed or denied, is cached briefly (Kubernetes' delegated authorizer caches
//! 10 s each way). The review sits behind [`AccessReviewer`] so the cache is testable alone.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};

use super::cache::TtlCache;
use super::{AuthError, Authorizer, Decision, RequestAttributes, UserInfo};

/// Default time to live of an "allowed" answer.
pub const DEFAULT_ALLOWED_TTL: Duration = Duration::from_secs(10);
/// Default time to live of a "denied" (or no-opinion) answer.
pub const DEFAULT_DENIED_TTL: Duration = Duration::from_secs(10);
/// Most answers remembered at once.
const CACHE_CAPACITY: usize = 8192;

/// Asks somebody whether a user may do something.
#[async_trait::async_trait]
pub trait AccessReviewer: Send + Sync + 'static {
    /// The decision, or `Err` if nobody could say.
    async fn review(
        &self,
        user: &UserInfo,
        attrs: &RequestAttributes,
    ) -> Result<Decision, AuthError>;
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The `SubjectAccessReview` Kubernetes' delegated authorizer sends for this request.
pub fn subject_access_review(user: &UserInfo, attrs: &RequestAttributes) -> SubjectAccessReview {
    let (resource_attributes, non_resource_attributes) = if attrs.resource_request {
        let r = ResourceAttributes {
            namespace: opt(&attrs.namespace),
            verb: opt(&attrs.verb),
            group: Some(attrs.api_group.clone()),
            version: opt(&attrs.api_version),
            resource: opt(&attrs.resource),
            subresource: opt(&attrs.subresource),
            name: opt(&attrs.name),
            ..Default::default()
        };
        (Some(r), None)
    } else {
        let n = NonResourceAttributes {
            path: Some(attrs.path.clone()),
            verb: opt(&attrs.verb),
        };
        (None, Some(n))
    };
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: opt(&user.uid),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes,
            non_resource_attributes,
        },
        ..Default::default()
    }
}

/// [`AccessReviewer`] through kube-apiserver's `authorization.k8s.io/v1` SubjectAccessReview.
#[derive(Clone)]
pub struct KubeAccessReviewer {
    client: kube::Client,
}

impl KubeAccessReviewer {
    /// Reviews with this client (its identity needs `create subjectaccessreviews`, e.g. the
    /// `system:auth-delegator` ClusterRole).
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl AccessReviewer for KubeAccessReviewer {
    async fn review(
        &self,
        user: &UserInfo,
        attrs: &RequestAttributes,
    ) -> Result<Decision, AuthError> {
        let api: kube::Api<SubjectAccessReview> = kube::Api::all(self.client.clone());
        let answer = api
            .create(
                &kube::api::PostParams::default(),
                &subject_access_review(user, attrs),
            )
            .await
            .map_err(|e| AuthError::Backend {
                message: format!("SubjectAccessReview: {e}"),
            })?;
        let Some(status) = answer.status else {
            return Ok(Decision::NoOpinion);
        };
        if status.allowed {
            return Ok(Decision::Allow);
        }
        if status.denied == Some(true) {
            return Ok(Decision::Deny(status.reason.unwrap_or_default()));
        }
        Ok(Decision::NoOpinion)
    }
}

/// Authorizes through an [`AccessReviewer`], caching answers per (user, request attributes).
pub struct SubjectAccessReviewAuthorizer {
    reviewer: Arc<dyn AccessReviewer>,
    cache: TtlCache<(UserInfo, RequestAttributes), Decision>,
    allowed_ttl: Duration,
    denied_ttl: Duration,
}

impl SubjectAccessReviewAuthorizer {
    /// Caches "allowed" for `allowed_ttl` and anything else for `denied_ttl`; backend failures
    /// are not cached (and refuse the request).
    pub fn new(
        reviewer: Arc<dyn AccessReviewer>,
        allowed_ttl: Duration,
        denied_ttl: Duration,
    ) -> Self {
        Self {
            reviewer,
            cache: TtlCache::new(CACHE_CAPACITY),
            allowed_ttl,
            denied_ttl,
        }
    }
}

#[async_trait::async_trait]
impl Authorizer for SubjectAccessReviewAuthorizer {
    async fn authorize(&self, user: &UserInfo, attrs: &RequestAttributes) -> Decision {
        let key = (user.clone(), attrs.clone());
        if let Some(d) = self.cache.get(&key) {
            return d;
        }
        match self.reviewer.review(user, attrs).await {
            Ok(decision) => {
                let ttl = if decision == Decision::Allow {
                    self.allowed_ttl
                } else {
                    self.denied_ttl
                };
                self.cache.insert(key, decision.clone(), ttl);
                decision
            }
            Err(e) => {
                tracing::warn!(user = %user.name, path = %attrs.path, error = %e, "authorization check failed");
                Decision::Deny(format!("the authorization check failed: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::request_attributes;
    use axum::http::Method;
    use std::sync::Mutex;

    fn bob() -> UserInfo {
        UserInfo {
            name: "bob".into(),
            uid: "u-1".into(),
            groups: vec!["devs".into(), "system:authenticated".into()],
            extra: [("scopes".to_owned(), vec!["x".to_owned()])].into(),
        }
    }

    #[test]
    fn resource_review_names_verb_subresource_namespace_and_name() {
        let attrs = request_attributes(
            &Method::GET,
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/team-a/coredumpendpoints/web-0/dump",
            Some("container=app"),
        );
        let sar = serde_json::to_value(subject_access_review(&bob(), &attrs)).unwrap();
        assert_eq!(
            sar,
            serde_json::json!({
                "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "metadata": {},
                "spec": {
                    "user": "bob", "uid": "u-1", "groups": ["devs", "system:authenticated"],
                    "extra": {"scopes": ["x"]},
                    "resourceAttributes": {
                        "namespace": "team-a", "verb": "get", "group": "coredump.fujitsu.com",
                        "version": "v1alpha1", "resource": "coredumpendpoints",
                        "subresource": "dump", "name": "web-0",
                    },
                },
            })
        );
        let watch = request_attributes(
            &Method::GET,
            "/apis/coredump.fujitsu.com/v1alpha1/coredumps",
            Some("watch=1"),
        );
        let sar = subject_access_review(&bob(), &watch);
        let r = sar.spec.resource_attributes.unwrap();
        assert_eq!(
            (r.verb.as_deref(), r.namespace, r.name),
            (Some("watch"), None, None)
        );
    }

    #[test]
    fn non_resource_review_names_path_and_verb() {
        let attrs = request_attributes(&Method::GET, "/openapi/v3", None);
        let user = UserInfo {
            name: "system:aggregator".into(),
            ..Default::default()
        };
        let sar = serde_json::to_value(subject_access_review(&user, &attrs)).unwrap();
        assert_eq!(
            sar["spec"],
            serde_json::json!({"user": "system:aggregator", "groups": [],
                "nonResourceAttributes": {"path": "/openapi/v3", "verb": "get"}})
        );
    }

    struct Scripted {
        answers: Mutex<Vec<Result<Decision, AuthError>>>,
        asked: Mutex<Vec<RequestAttributes>>,
    }

    #[async_trait::async_trait]
    impl AccessReviewer for Scripted {
        async fn review(
            &self,
            _user: &UserInfo,
            attrs: &RequestAttributes,
        ) -> Result<Decision, AuthError> {
            self.asked.lock().unwrap().push(attrs.clone());
            self.answers.lock().unwrap().remove(0)
        }
    }

    #[tokio::test]
    async fn answers_are_cached_per_user_and_request() {
        let reviewer = Arc::new(Scripted {
            answers: Mutex::new(vec![
                Ok(Decision::Allow),
                Ok(Decision::NoOpinion),
                Err(AuthError::Backend {
                    message: "down".into(),
                }),
                Ok(Decision::Deny("no".into())),
            ]),
            asked: Mutex::default(),
        });
        let a = SubjectAccessReviewAuthorizer::new(
            reviewer.clone(),
            Duration::from_secs(60),
            Duration::from_millis(50),
        );
        let base = "/apis/coredump.fujitsu.com/v1alpha1/namespaces/a/coredumpendpoints/p";
        let get = request_attributes(&Method::GET, base, None);
        let dump = request_attributes(&Method::GET, &format!("{base}/dump"), None);
        assert_eq!(a.authorize(&bob(), &get).await, Decision::Allow);
        assert_eq!(a.authorize(&bob(), &get).await, Decision::Allow);
        assert_eq!(a.authorize(&bob(), &dump).await, Decision::NoOpinion);
        assert_eq!(a.authorize(&bob(), &dump).await, Decision::NoOpinion);
        tokio::time::sleep(Duration::from_millis(60)).await;
        // The denial expired; the backend fails: refused, and not remembered.
        assert!(
            matches!(a.authorize(&bob(), &dump).await, Decision::Deny(r) if r.contains("down"))
        );
        assert_eq!(
            a.authorize(&bob(), &dump).await,
            Decision::Deny("no".into())
        );
        assert_eq!(a.authorize(&bob(), &get).await, Decision::Allow);
        let asked = reviewer.asked.lock().unwrap();
        let subresources: Vec<&str> = asked.iter().map(|a| a.subresource.as_str()).collect();
        assert_eq!(subresources, ["", "dump", "dump", "dump"]);
    }
}
