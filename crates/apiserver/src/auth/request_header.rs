//! The front-proxy path: kube-apiserver calls us with its proxy client certificate and states
//! the end user in `X-Remote-User`, `X-Remote-Uid`, `X-Remote-Group` (one line per group) and
//! `X-Remote-Extra-<key>` headers. Those headers are believed only when the TLS peer's
//! certificate chains to the request-header CA, carries the clientAuth usage, and has a common
//! name in the allowed names (any, when the list is empty); from anybody else they are ignored.

use axum::http::HeaderMap;

use super::authn_config::RequestHeaderConfig;
use super::client_cert::{CaError, ClientCertAuthenticator, identity};
use super::{AUTHENTICATED_GROUP, AuthError, Authenticator, RequestCredentials, UserInfo};

/// Authenticates requests relayed by the front proxy (kube-apiserver's aggregator).
pub struct RequestHeaderAuthenticator {
    ca: ClientCertAuthenticator,
    config: RequestHeaderConfig,
}

impl std::fmt::Debug for RequestHeaderAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHeaderAuthenticator")
            .field("allowed_names", &self.config.allowed_names)
            .field("username_headers", &self.config.username_headers)
            .finish_non_exhaustive()
    }
}

/// Non-empty values of `names`, in order (each header line is one value, never split).
fn values<'a>(headers: &'a HeaderMap, names: &'a [String]) -> impl Iterator<Item = &'a str> {
    names.iter().flat_map(move |n| {
        headers
            .get_all(n.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    })
}

/// `%XX` sequences decoded (how the proxy escapes extra keys); the raw text if malformed.
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return key.to_owned(),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| key.to_owned())
}

impl RequestHeaderAuthenticator {
    /// Trusts proxies certified by `config.client_ca_pem`.
    pub fn new(config: &RequestHeaderConfig) -> Result<Self, CaError> {
        Ok(Self {
            ca: ClientCertAuthenticator::from_pem(config.client_ca_pem.as_bytes())?,
            config: config.clone(),
        })
    }

    fn identity_from_headers(&self, headers: &HeaderMap) -> Option<UserInfo> {
        let c = &self.config;
        let name = values(headers, &c.username_headers).next()?.to_owned();
        let uid = values(headers, &c.uid_headers)
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut groups: Vec<String> = values(headers, &c.group_headers)
            .map(str::to_owned)
            .collect();
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
        for (header, value) in headers {
            let lower = header.as_str(); // http's header names are lowercase already
            let Some(suffix) = c.extra_headers_prefixes.iter().find_map(|p| {
                let p = p.to_ascii_lowercase();
                lower.strip_prefix(p.as_str()).map(str::to_owned)
            }) else {
                continue;
            };
            if suffix.is_empty() {
                continue;
            }
            if let Ok(v) = value.to_str() {
                extra
                    .entry(unescape(&suffix))
                    .or_default()
                    .push(v.to_owned());
            }
        }
        Some(UserInfo {
            name,
            uid,
            groups,
            extra,
        })
    }
}

#[async_trait::async_trait]
impl Authenticator for RequestHeaderAuthenticator {
    async fn authenticate(&self, req: &RequestCredentials) -> Result<Option<UserInfo>, AuthError> {
        let Some(leaf) = self.ca.verified_leaf(&req.peer_certificates)? else {
            return Ok(None);
        };
        let allowed = &self.config.allowed_names;
        if !allowed.is_empty() {
            let (cn, _) = identity(leaf)?;
            if !allowed.contains(&cn) {
                return Err(AuthError::CertificateRejected {
                    reason: format!(
                        "front-proxy certificate CN {cn:?} is not one of the allowed names {allowed:?}"
                    ),
                });
            }
        }
        // A genuine proxy certificate without a username header asserts nobody.
        Ok(self.identity_from_headers(&req.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    use rustls_pki_types::CertificateDer;
    use std::sync::Arc;

    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        pem: String,
    }

    fn ca(cn: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    fn leaf(ca: &Ca, cn: &str, eku: ExtendedKeyUsagePurpose) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![eku];
        let key = KeyPair::generate().unwrap();
        p.signed_by(&key, &ca.issuer).unwrap().der().clone()
    }

    fn config(ca: &Ca, allowed: &[&str]) -> RequestHeaderConfig {
        RequestHeaderConfig {
            client_ca_pem: ca.pem.clone(),
            allowed_names: allowed.iter().map(|s| (*s).to_owned()).collect(),
            username_headers: vec!["X-Remote-User".into()],
            uid_headers: vec!["X-Remote-Uid".into()],
            group_headers: vec!["X-Remote-Group".into()],
            extra_headers_prefixes: vec!["X-Remote-Extra-".into()],
        }
    }

    fn request(
        cert: Option<CertificateDer<'static>>,
        headers: &[(&str, &str)],
    ) -> RequestCredentials {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        RequestCredentials {
            peer_certificates: Arc::new(cert.into_iter().collect()),
            headers: h,
        }
    }

    const ALICE: &[(&str, &str)] = &[
        ("x-remote-user", "alice"),
        ("x-remote-uid", "u-1"),
        ("x-remote-group", "devs"),
        ("x-remote-group", "ops,admins"),
        ("x-remote-extra-scopes", "a"),
        ("x-remote-extra-scopes", "b"),
        ("X-Remote-Extra-Acme.com%2Fproject", "p1"),
    ];

    #[tokio::test]
    async fn proxy_certificate_makes_headers_count() {
        let proxy_ca = ca("front-proxy-ca");
        let a =
            RequestHeaderAuthenticator::new(&config(&proxy_ca, &["front-proxy-client"])).unwrap();
        let cert = leaf(
            &proxy_ca,
            "front-proxy-client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let user = a
            .authenticate(&request(Some(cert), ALICE))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.uid, "u-1");
        // One group per header line, never split on commas.
        assert_eq!(user.groups, ["devs", "ops,admins", AUTHENTICATED_GROUP]);
        assert_eq!(user.extra["scopes"], ["a", "b"]);
        assert_eq!(user.extra["acme.com/project"], ["p1"]);
        assert_eq!(user.extra.len(), 2);
    }

    #[tokio::test]
    async fn headers_from_anyone_else_are_ignored_or_refused() {
        let proxy_ca = ca("front-proxy-ca");
        let other_ca = ca("front-proxy-ca");
        let a =
            RequestHeaderAuthenticator::new(&config(&proxy_ca, &["front-proxy-client"])).unwrap();
        // No certificate: not ours to judge.
        assert_eq!(a.authenticate(&request(None, ALICE)).await.unwrap(), None);
        // Same names, other key.
        let forged = leaf(
            &other_ca,
            "front-proxy-client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        assert!(a.authenticate(&request(Some(forged), ALICE)).await.is_err());
        // Right CA, name not allowed.
        let stranger = leaf(&proxy_ca, "someone", ExtendedKeyUsagePurpose::ClientAuth);
        let err = a
            .authenticate(&request(Some(stranger), ALICE))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("\"someone\" is not one of the allowed names"),
            "{err}"
        );
        // Right CA and name, but a server certificate.
        let server = leaf(
            &proxy_ca,
            "front-proxy-client",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        assert!(a.authenticate(&request(Some(server), ALICE)).await.is_err());
    }

    #[tokio::test]
    async fn empty_allowed_names_accept_any_certificate_of_the_ca() {
        let proxy_ca = ca("front-proxy-ca");
        let a = RequestHeaderAuthenticator::new(&config(&proxy_ca, &[])).unwrap();
        let cert = leaf(&proxy_ca, "anything", ExtendedKeyUsagePurpose::ClientAuth);
        let user = a
            .authenticate(&request(Some(cert.clone()), &[("x-remote-user", "bob")]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (user.name.as_str(), user.groups.as_slice()),
            ("bob", &[AUTHENTICATED_GROUP.to_owned()][..])
        );
        // A proxy certificate without a username header is nobody.
        assert_eq!(
            a.authenticate(&request(
                Some(cert),
                &[("x-remote-group", "system:masters")]
            ))
            .await
            .unwrap(),
            None
        );
    }

    #[test]
    fn extra_keys_unescape() {
        assert_eq!(unescape("example.com%2fa%20b"), "example.com/a b");
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape("bad%2"), "bad%2");
        assert_eq!(unescape("bad%zz"), "bad%zz");
    }
}
