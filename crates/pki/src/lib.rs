//! Certificates for coredump-detector: a CA, serving certificates whose subjectAltNames carry
//! every name clients dial (kube-apiserver refuses CN-only certificates), client certificates
//! (CN = user, O = groups), and kubeconfig files for kubectl. Used by the standalone mode
//! (its own CA and admin identity) and by `deploy` (the APIService's CA bundle).
#![deny(missing_docs)]

mod kubeconfig;

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

pub use kubeconfig::{Kubeconfig, write_kubeconfig};

/// Failures while making or storing certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or a PEM input.
    #[error("certificate generation for {subject}: {source}")]
    Generate {
        /// Subject being generated.
        subject: String,
        /// Cause.
        #[source]
        source: rcgen::Error,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A kubeconfig could not be serialized.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] serde_json::Error),
}

/// A certificate and its private key, PEM encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// Certificate.
    pub cert_pem: String,
    /// PKCS#8 private key.
    pub key_pem: String,
}

/// A certificate authority that can issue serving and client certificates.
#[derive(Debug, Clone)]
pub struct Ca {
    issued: Issued,
}

fn generate_err(subject: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Generate {
        subject: subject.to_string(),
        source,
    }
}

/// Days a CA made by [`Ca::generate`] is valid (ten years).
pub const CA_VALID_DAYS: i64 = 3650;
/// Days a certificate a [`Ca`] issues is valid (two years).
pub const ISSUED_VALID_DAYS: i64 = 730;

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

impl Ca {
    /// A new self-signed CA named `common_name`, valid ten years.
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate().map_err(generate_err(common_name))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_VALID_DAYS);
        let cert = params
            .self_signed(&key)
            .map_err(generate_err(common_name))?;
        Ok(Ca {
            issued: Issued {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
        })
    }

    /// A CA from its PEM certificate and key.
    pub fn from_pem(issued: Issued) -> Ca {
        Ca { issued }
    }

    /// The CA certificate and key.
    pub fn issued(&self) -> &Issued {
        &self.issued
    }

    /// The CA certificate (the bundle clients trust).
    pub fn cert_pem(&self) -> &str {
        &self.issued.cert_pem
    }

    fn issue(&self, subject: &str, mut params: CertificateParams) -> Result<Issued, PkiError> {
        let ca_key = KeyPair::from_pem(&self.issued.key_pem).map_err(generate_err(subject))?;
        let issuer = Issuer::from_ca_cert_pem(&self.issued.cert_pem, ca_key)
            .map_err(generate_err(subject))?;
        let key = KeyPair::generate().map_err(generate_err(subject))?;
        validity(&mut params, ISSUED_VALID_DAYS);
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(generate_err(subject))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A serving certificate for `dns_names` and `ips` (all in subjectAltName; the first DNS
    /// name is also the CN), valid two years.
    pub fn issue_server(&self, dns_names: &[&str], ips: &[IpAddr]) -> Result<Issued, PkiError> {
        self.issue_named(dns_names, ips, vec![ExtendedKeyUsagePurpose::ServerAuth])
    }

    /// Like [`Ca::issue_server`], also good as a client certificate: for servers that dial
    /// themselves with their own certificate (etcd's gRPC gateway does, under
    /// `--client-cert-auth`).
    pub fn issue_server_client(
        &self,
        dns_names: &[&str],
        ips: &[IpAddr],
    ) -> Result<Issued, PkiError> {
        self.issue_named(
            dns_names,
            ips,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    fn issue_named(
        &self,
        dns_names: &[&str],
        ips: &[IpAddr],
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<Issued, PkiError> {
        let subject = dns_names.first().copied().unwrap_or("server");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, subject);
        params.distinguished_name = dn;
        for name in dns_names {
            let name = (*name).try_into().map_err(generate_err(subject))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = usages;
        self.issue(subject, params)
    }

    /// A client certificate for user `common_name` in groups `organizations`, valid two years.
    pub fn issue_client(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        for org in organizations {
            dn.push(DnType::OrganizationName, *org);
        }
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(common_name, params)
    }
}

/// Writes `issued` as `<dir>/<name>.crt` (0644) and `<dir>/<name>.key` (0600).
pub fn write_pair(dir: &Path, name: &str, issued: &Issued) -> Result<(), PkiError> {
    write_file(
        &dir.join(format!("{name}.crt")),
        issued.cert_pem.as_bytes(),
        0o644,
    )?;
    write_file(
        &dir.join(format!("{name}.key")),
        issued.key_pem.as_bytes(),
        0o600,
    )
}

/// Writes `issued`'s certificate as `<dir>/<name>.crt` (0644) and removes a `<dir>/<name>.key`
/// left there earlier: for CAs whose key must not outlive the run that used it.
pub fn write_cert_only(dir: &Path, name: &str, issued: &Issued) -> Result<(), PkiError> {
    write_file(
        &dir.join(format!("{name}.crt")),
        issued.cert_pem.as_bytes(),
        0o644,
    )?;
    let key = dir.join(format!("{name}.key"));
    match std::fs::remove_file(&key) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PkiError::Io {
            path: key,
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Reads `<dir>/<name>.crt` and `.key`, `None` if either is missing.
pub fn read_pair(dir: &Path, name: &str) -> Result<Option<Issued>, PkiError> {
    let read = |ext: &str| {
        let path = dir.join(format!("{name}.{ext}"));
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PkiError::Io { path, source }),
        }
    };
    Ok(match (read("crt")?, read("key")?) {
        (Some(cert_pem), Some(key_pem)) => Some(Issued { cert_pem, key_pem }),
        _ => None,
    })
}

/// Writes a file atomically with `mode` ([`coredump_common::atomic_file`]).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    coredump_common::atomic_file::write(path, bytes, mode).map_err(|e| PkiError::Io {
        path: e.path,
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn parse(pem: &str) -> Vec<u8> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.contents
    }

    #[test]
    fn server_certificate_has_sans_and_chains_to_the_ca() {
        let ca = Ca::generate("coredump-certificate-authority").unwrap();
        let server = ca
            .issue_server(
                &["coredump.default.svc", "localhost"],
                &["127.0.0.1".parse().unwrap()],
            )
            .unwrap();
        let der = parse(&server.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert!(
            names.iter().any(|n| n.contains("coredump.default.svc")),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n == "IPAddress(7f:00:00:01)"),
            "{names:?}"
        );
        let ca_der = parse(ca.cert_pem());
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject());
        assert!(cert.verify_signature(Some(ca_cert.public_key())).is_ok());
        assert_eq!(
            ca_cert
                .subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "coredump-certificate-authority"
        );
    }

    #[test]
    fn client_certificate_carries_user_and_groups() {
        let ca = Ca::generate("ca").unwrap();
        let client = ca.issue_client("admin", &["system:masters"]).unwrap();
        let der = parse(&client.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(
            cert.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "admin"
        );
        assert_eq!(
            cert.subject()
                .iter_organization()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "system:masters"
        );
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.client_auth && !eku.value.server_auth);
    }

    #[test]
    fn pairs_round_trip_with_private_key_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("ca").unwrap();
        assert_eq!(read_pair(dir.path(), "ca").unwrap(), None);
        write_pair(dir.path(), "ca", ca.issued()).unwrap();
        assert_eq!(
            read_pair(dir.path(), "ca").unwrap().as_ref(),
            Some(ca.issued())
        );
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
