//! Certificates and keys for a test control plane, made in-process with `rcgen`: the cluster
//! (serving) CA, the client CA with an admin in `system:masters`, the front-proxy CA with the
//! aggregator's proxy client certificate, and the service-account signing key. [`TestCa`] is
//! public so tests can mint serving certificates for their own servers the same way.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::error::HarnessError;

/// A certificate authority for tests.
pub struct TestCa {
    name: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A certificate and its private key, as PEM and DER.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

fn cert_error(what: &str) -> impl FnOnce(rcgen::Error) -> HarnessError + '_ {
    move |source| HarnessError::Cert {
        what: what.to_string(),
        source,
    }
}

impl TestCa {
    /// A new self-signed CA with common name `name` and a fresh ECDSA P-256 key.
    pub fn new(name: &str) -> Result<TestCa, HarnessError> {
        let key = KeyPair::generate().map_err(cert_error(name))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.remove(DnType::CommonName);
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(cert_error(name))?;
        Ok(TestCa {
            name: name.to_string(),
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A serving certificate (`serverAuth`) for `sans` (DNS names or IP addresses).
    pub fn issue_server(
        &self,
        common_name: &str,
        sans: &[&str],
    ) -> Result<IssuedCert, HarnessError> {
        self.issue(common_name, None, sans, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (`clientAuth`): Kubernetes reads the user from the common name and
    /// a group from the organization. One group at most: rcgen keeps one value per attribute
    /// type (use `kubectl --as=… --as-group=…` to act with several groups).
    pub fn issue_client(
        &self,
        common_name: &str,
        organization: Option<&str>,
    ) -> Result<IssuedCert, HarnessError> {
        self.issue(
            common_name,
            organization,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    /// Like [`TestCa::issue_client`], but valid only during the year 2000: long expired.
    pub fn issue_expired_client(
        &self,
        common_name: &str,
        organization: Option<&str>,
    ) -> Result<IssuedCert, HarnessError> {
        self.issue_valid(
            common_name,
            organization,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            true,
        )
    }

    fn issue(
        &self,
        common_name: &str,
        organization: Option<&str>,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<IssuedCert, HarnessError> {
        self.issue_valid(common_name, organization, sans, usage, false)
    }

    fn issue_valid(
        &self,
        common_name: &str,
        organization: Option<&str>,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> Result<IssuedCert, HarnessError> {
        let what = format!("certificate {common_name} (CA {})", self.name);
        let key = KeyPair::generate().map_err(cert_error(&what))?;
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).map_err(cert_error(&what))?;
        params.distinguished_name.remove(DnType::CommonName);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        if let Some(org) = organization {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(cert_error(&what))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        })
    }
}

/// Paths of the PKI files one control plane uses.
#[derive(Clone, Debug)]
pub(crate) struct PkiFiles {
    pub(crate) server_ca: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) client_ca: PathBuf,
    pub(crate) admin_cert: PathBuf,
    pub(crate) admin_key: PathBuf,
    pub(crate) front_proxy_ca: PathBuf,
    pub(crate) proxy_client_cert: PathBuf,
    pub(crate) proxy_client_key: PathBuf,
    pub(crate) sa_private_key: PathBuf,
    pub(crate) sa_public_key: PathBuf,
}

/// The certificates of one control plane, kept in memory for the accessors.
#[derive(Debug)]
pub(crate) struct ControlPlanePki {
    pub(crate) server_ca_pem: String,
    pub(crate) client_ca_pem: String,
    pub(crate) front_proxy_ca_pem: String,
    pub(crate) client_ca: TestCa,
    pub(crate) front_proxy_ca: TestCa,
    pub(crate) proxy_client: IssuedCert,
    pub(crate) files: PkiFiles,
}

/// Common name of the admin user; groups `system:masters`.
pub(crate) const ADMIN_USER: &str = "testplane-admin";
/// Common name of kube-apiserver's proxy client certificate (`--requestheader-allowed-names`).
pub(crate) const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

fn write(path: &Path, contents: &str) -> Result<(), HarnessError> {
    std::fs::write(path, contents).map_err(|e| HarnessError::io("write", path, e))
}

/// Generates every key and certificate and writes them under `dir`; kube-apiserver's serving
/// certificate also names `extra_sans` (a node's address).
pub(crate) fn generate(dir: &Path, extra_sans: &[String]) -> Result<ControlPlanePki, HarnessError> {
    let server_ca = TestCa::new("testplane-cluster-ca")?;
    let mut sans = vec![
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.0.0.1",
    ];
    sans.extend(extra_sans.iter().map(String::as_str));
    let server = server_ca.issue_server("kube-apiserver", &sans)?;
    let client_ca = TestCa::new("testplane-client-ca")?;
    let admin = client_ca.issue_client(ADMIN_USER, Some("system:masters"))?;
    let front_proxy_ca = TestCa::new("testplane-front-proxy-ca")?;
    let proxy_client = front_proxy_ca.issue_client(FRONT_PROXY_CLIENT, None)?;
    let sa_key = KeyPair::generate().map_err(cert_error("service-account key"))?;

    let files = PkiFiles {
        server_ca: dir.join("ca.crt"),
        server_cert: dir.join("apiserver.crt"),
        server_key: dir.join("apiserver.key"),
        client_ca: dir.join("client-ca.crt"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        front_proxy_ca: dir.join("front-proxy-ca.crt"),
        proxy_client_cert: dir.join("front-proxy-client.crt"),
        proxy_client_key: dir.join("front-proxy-client.key"),
        sa_private_key: dir.join("sa.key"),
        sa_public_key: dir.join("sa.pub"),
    };
    write(&files.server_ca, &server_ca.cert_pem())?;
    write(&files.server_cert, &server.cert_pem)?;
    write(&files.server_key, &server.key_pem)?;
    write(&files.client_ca, &client_ca.cert_pem())?;
    write(&files.admin_cert, &admin.cert_pem)?;
    write(&files.admin_key, &admin.key_pem)?;
    write(&files.front_proxy_ca, &front_proxy_ca.cert_pem())?;
    write(&files.proxy_client_cert, &proxy_client.cert_pem)?;
    write(&files.proxy_client_key, &proxy_client.key_pem)?;
    write(&files.sa_private_key, &sa_key.serialize_pem())?;
    write(&files.sa_public_key, &sa_key.public_key_pem())?;
    Ok(ControlPlanePki {
        server_ca_pem: server_ca.cert_pem(),
        client_ca_pem: client_ca.cert_pem(),
        front_proxy_ca_pem: front_proxy_ca.cert_pem(),
        client_ca,
        front_proxy_ca,
        proxy_client,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    #[test]
    fn client_cert_carries_user_group_and_chains_to_its_ca() {
        let ca = TestCa::new("unit-ca").unwrap();
        let issued = ca.issue_client("alice", Some("system:masters")).unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.cert_der).unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        let orgs: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["alice"]);
        assert_eq!(orgs, ["system:masters"]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let ca_der = ca.cert_der();
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject());
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert!(ca_cert.is_ca());
    }

    #[test]
    fn expired_client_cert_was_valid_only_in_2000() {
        let ca = TestCa::new("unit-ca").unwrap();
        let issued = ca.issue_expired_client("old", None).unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.cert_der).unwrap();
        let validity = cert.validity();
        assert_eq!(validity.not_before.to_datetime().year(), 2000);
        assert_eq!(validity.not_after.to_datetime().year(), 2001);
        assert!(!validity.is_valid());
    }

    #[test]
    fn server_cert_has_ip_and_dns_sans() {
        let ca = TestCa::new("unit-ca").unwrap();
        let issued = ca
            .issue_server("srv", &["127.0.0.1", "coredump.ns.svc"])
            .unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.cert_der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(
            san.general_names,
            [
                GeneralName::IPAddress(&[127, 0, 0, 1]),
                GeneralName::DNSName("coredump.ns.svc")
            ]
        );
        assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}
