//! `ClientCertAuthenticator`: a TLS client certificate that chains to the configured client CA
//! (with the clientAuth key usage) identifies user = subject CN, groups = subject O values. The
//! TLS layer accepts any certificate (so unauthenticated health probes and unknown clients get
//! an HTTP answer); the chain is verified here, per request, against this CA only.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::{AUTHENTICATED_GROUP, AuthError, Authenticator, RequestCredentials, UserInfo};

/// The client CA could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The PEM held no certificate.
    #[error("no certificate found in the client CA bundle")]
    Empty,
    /// The PEM could not be parsed.
    #[error("client CA bundle is not valid PEM: {0}")]
    Pem(String),
    /// A certificate was rejected as a trust anchor.
    #[error("client CA certificate unusable: {0}")]
    Anchor(String),
}

/// Authenticates requests by client certificate against one CA bundle.
pub struct ClientCertAuthenticator {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientCertAuthenticator {
    /// Trusts the CA certificates in `ca_pem`.
    pub fn from_pem(ca_pem: &[u8]) -> Result<Self, CaError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| CaError::Pem(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| CaError::Anchor(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(CaError::Empty);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| CaError::Anchor(e.to_string()))?;
        Ok(Self { verifier })
    }
}

/// User name (CN) and groups (O values) of a certificate's subject.
pub(crate) fn identity(cert: &CertificateDer<'_>) -> Result<(String, Vec<String>), AuthError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| {
        AuthError::CertificateRejected {
            reason: format!("unparsable certificate: {e}"),
        }
    })?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        return Err(AuthError::CertificateRejected {
            reason: "certificate has no CN".to_owned(),
        });
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect();
    Ok((name, groups))
}

impl ClientCertAuthenticator {
    /// The end-entity certificate of `chain` once it is verified against this CA (signature
    /// chain, validity period, clientAuth usage); `None` when no certificate was presented.
    pub(crate) fn verified_leaf<'a>(
        &self,
        chain: &'a [CertificateDer<'static>],
    ) -> Result<Option<&'a CertificateDer<'static>>, AuthError> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Ok(None);
        };
        self.verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map_err(|e| AuthError::CertificateRejected {
                reason: e.to_string(),
            })?;
        Ok(Some(end_entity))
    }
}

#[async_trait::async_trait]
impl Authenticator for ClientCertAuthenticator {
    async fn authenticate(&self, req: &RequestCredentials) -> Result<Option<UserInfo>, AuthError> {
        let Some(end_entity) = self.verified_leaf(&req.peer_certificates)? else {
            return Ok(None);
        };
        let (name, mut groups) = identity(end_entity)?;
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        Ok(Some(UserInfo {
            name,
            groups,
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

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

    fn client(
        ca: &Ca,
        cn: &str,
        orgs: &[&str],
        eku: ExtendedKeyUsagePurpose,
    ) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        // rcgen keeps one value per attribute type: the second O goes in under its raw OID.
        for (i, o) in orgs.iter().enumerate() {
            let t = if i == 0 {
                DnType::OrganizationName
            } else {
                DnType::CustomDnType(vec![2, 5, 4, 10])
            };
            p.distinguished_name.push(t, *o);
        }
        p.extended_key_usages = vec![eku];
        let key = KeyPair::generate().unwrap();
        p.signed_by(&key, &ca.issuer).unwrap().der().clone()
    }

    fn creds(certs: Vec<CertificateDer<'static>>) -> RequestCredentials {
        RequestCredentials {
            peer_certificates: Arc::new(certs),
            headers: HeaderMap::new(),
        }
    }

    #[tokio::test]
    async fn cn_and_organizations_become_user_and_groups() {
        let ca = ca("test-ca");
        let auth = ClientCertAuthenticator::from_pem(ca.pem.as_bytes()).unwrap();
        let cert = client(
            &ca,
            "alice",
            &["system:masters", "team-a"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let user = auth
            .authenticate(&creds(vec![cert]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(
            user.groups,
            vec!["system:masters", "team-a", AUTHENTICATED_GROUP]
        );
    }

    #[tokio::test]
    async fn no_certificate_is_no_opinion() {
        let ca = ca("test-ca");
        let auth = ClientCertAuthenticator::from_pem(ca.pem.as_bytes()).unwrap();
        assert_eq!(auth.authenticate(&creds(vec![])).await.unwrap(), None);
    }

    #[tokio::test]
    async fn foreign_ca_and_server_only_certs_are_rejected() {
        let trusted = ca("trusted");
        let other = ca("other");
        let auth = ClientCertAuthenticator::from_pem(trusted.pem.as_bytes()).unwrap();
        let foreign = client(
            &other,
            "mallory",
            &["system:masters"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        assert!(matches!(
            auth.authenticate(&creds(vec![foreign])).await,
            Err(AuthError::CertificateRejected { .. })
        ));
        let server_only = client(&trusted, "svc", &[], ExtendedKeyUsagePurpose::ServerAuth);
        assert!(auth.authenticate(&creds(vec![server_only])).await.is_err());
    }

    #[test]
    fn bad_bundles() {
        assert!(matches!(
            ClientCertAuthenticator::from_pem(b""),
            Err(CaError::Empty)
        ));
        assert!(
            ClientCertAuthenticator::from_pem(
                b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
            )
            .is_err()
        );
    }
}
