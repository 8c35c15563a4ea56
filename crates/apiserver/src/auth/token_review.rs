//! Bearer tokens (ServiceAccount tokens of in-cluster clients that call us directly; through the
//! aggregator tokens never reach us): asked of kube-apiserver with a `TokenReview`, answers
//! cached for a short time (Kubernetes' delegated authentication caches 10 s, both ways). The
//! review itself sits behind [`TokenReviewer`] so the caching is testable without a cluster.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::AUTHORIZATION;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use sha2::{Digest, Sha256};

use super::cache::TtlCache;
use super::{AUTHENTICATED_GROUP, AuthError, Authenticator, RequestCredentials, UserInfo};

/// Default time to live of cached token reviews.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(10);
/// Most tokens remembered at once.
const CACHE_CAPACITY: usize = 4096;

/// Asks somebody whether a token is valid.
#[async_trait::async_trait]
pub trait TokenReviewer: Send + Sync + 'static {
    /// The token's user, `None` if the token is not valid, `Err` if nobody could say.
    async fn review(&self, token: &str) -> Result<Option<UserInfo>, AuthError>;
}

/// [`TokenReviewer`] through kube-apiserver's `authentication.k8s.io/v1` TokenReview.
#[derive(Clone)]
pub struct KubeTokenReviewer {
    client: kube::Client,
    audiences: Vec<String>,
}

impl KubeTokenReviewer {
    /// Reviews with this client; `audiences` empty = kube-apiserver's own audiences.
    pub fn new(client: kube::Client, audiences: Vec<String>) -> Self {
        Self { client, audiences }
    }
}

#[async_trait::async_trait]
impl TokenReviewer for KubeTokenReviewer {
    async fn review(&self, token: &str) -> Result<Option<UserInfo>, AuthError> {
        let api: kube::Api<TokenReview> = kube::Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..Default::default()
        };
        let answer = api
            .create(&kube::api::PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Backend {
                message: format!("TokenReview: {e}"),
            })?;
        let Some(status) = answer.status else {
            return Ok(None);
        };
        if status.authenticated != Some(true) {
            return Ok(None);
        }
        let Some(user) = status.user else {
            return Ok(None);
        };
        let name = user.username.unwrap_or_default();
        if name.is_empty() {
            return Ok(None);
        }
        Ok(Some(UserInfo {
            name,
            uid: user.uid.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
        }))
    }
}

/// Authenticates `Authorization: Bearer <token>` through a [`TokenReviewer`], with a cache.
pub struct TokenReviewAuthenticator {
    reviewer: Arc<dyn TokenReviewer>,
    cache: TtlCache<[u8; 32], Option<UserInfo>>,
    ttl: Duration,
}

impl TokenReviewAuthenticator {
    /// Caches answers (valid or not) for `ttl`; backend failures are not cached.
    pub fn new(reviewer: Arc<dyn TokenReviewer>, ttl: Duration) -> Self {
        Self {
            reviewer,
            cache: TtlCache::new(CACHE_CAPACITY),
            ttl,
        }
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer(req: &RequestCredentials) -> Option<&str> {
    let value = req.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[async_trait::async_trait]
impl Authenticator for TokenReviewAuthenticator {
    async fn authenticate(&self, req: &RequestCredentials) -> Result<Option<UserInfo>, AuthError> {
        let Some(token) = bearer(req) else {
            return Ok(None);
        };
        // Keyed by digest: the cache never holds a usable token.
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(answer) = self.cache.get(&key) {
            return Ok(answer);
        }
        let mut answer = self.reviewer.review(token).await?;
        if let Some(user) = &mut answer
            && !user.groups.iter().any(|g| g == AUTHENTICATED_GROUP)
        {
            user.groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        self.cache.insert(key, answer.clone(), self.ttl);
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl TokenReviewer for Counting {
        async fn review(&self, token: &str) -> Result<Option<UserInfo>, AuthError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(AuthError::Backend {
                    message: "down".into(),
                });
            }
            Ok((token == "good").then(|| UserInfo {
                name: "system:serviceaccount:a:b".into(),
                groups: vec!["system:serviceaccounts".into()],
                ..Default::default()
            }))
        }
    }

    fn with(auth: Option<&str>) -> RequestCredentials {
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        RequestCredentials {
            peer_certificates: Arc::default(),
            headers,
        }
    }

    #[tokio::test]
    async fn valid_and_invalid_answers_are_cached() {
        let reviewer = Arc::new(Counting::default());
        let a = TokenReviewAuthenticator::new(reviewer.clone(), Duration::from_secs(60));
        for _ in 0..3 {
            let user = a
                .authenticate(&with(Some("Bearer good")))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(user.groups, ["system:serviceaccounts", AUTHENTICATED_GROUP]);
            assert_eq!(
                a.authenticate(&with(Some("bearer bad"))).await.unwrap(),
                None
            );
        }
        assert_eq!(reviewer.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_expired_answers_are_asked_again() {
        let reviewer = Arc::new(Counting::default());
        let a = TokenReviewAuthenticator::new(reviewer.clone(), Duration::from_millis(50));
        reviewer.fail.store(true, Ordering::SeqCst);
        assert!(a.authenticate(&with(Some("Bearer good"))).await.is_err());
        reviewer.fail.store(false, Ordering::SeqCst);
        assert!(
            a.authenticate(&with(Some("Bearer good")))
                .await
                .unwrap()
                .is_some()
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            a.authenticate(&with(Some("Bearer good")))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(reviewer.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn no_bearer_token_is_no_opinion() {
        let reviewer = Arc::new(Counting::default());
        let a = TokenReviewAuthenticator::new(reviewer.clone(), DEFAULT_TOKEN_TTL);
        for h in [
            None,
            Some("Basic dXNlcjpwYXNz"),
            Some("Bearer "),
            Some("Bearer"),
        ] {
            assert_eq!(a.authenticate(&with(h)).await.unwrap(), None, "{h:?}");
        }
        assert_eq!(reviewer.calls.load(Ordering::SeqCst), 0);
    }
}
