//! The certificates of an install, from two separate CAs so that trusting one never means
//! trusting the other:
//! * the API CA, named like the seed's (`SERVICE-certificate-authority`), which becomes the
//!   APIService's `caBundle`, and the API server's serving certificate with every name its
//!   Service answers to in subjectAltName (the seed's CN-only certificate is refused by current
//!   kube-apiservers);
//! * the etcd CA (`SERVICE-etcd-certificate-authority`), which signs etcd's serving certificate
//!   and the one client certificate etcd accepts (`--client-cert-auth`): the API server's. No
//!   other pod can read or write the crash records.
//!
//! Neither CA key goes into the manifest; `deploy` writes them to DIR only when asked
//! (`--write-ca-keys`): the manifest alone is enough to install.

use std::net::{IpAddr, Ipv4Addr};

use coredump_pki::{Ca, Issued};

use crate::error::DeployError;
use crate::names::ETCD_SERVICE;

/// The CAs and the certificates of one install, PEM encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certs {
    /// The API CA (its certificate is the APIService's `caBundle`).
    pub ca: Issued,
    /// The API server's serving certificate and key (Secret `servercrt`).
    pub server: Issued,
    /// The etcd CA (its certificate is in both etcd Secrets as `ca.crt`).
    pub etcd_ca: Issued,
    /// etcd's serving certificate (also a client certificate: etcd dials itself).
    pub etcd_server: Issued,
    /// The API server's client certificate for etcd.
    pub etcd_client: Issued,
}

/// DNS names of the Service `service` in `namespace`, most specific first:
/// `SERVICE.NAMESPACE.svc` (what kube-apiserver verifies, also the CN),
/// `SERVICE.NAMESPACE.svc.cluster.local`, `SERVICE.NAMESPACE`, `SERVICE`.
pub fn server_dns_names(namespace: &str, service: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_string(),
    ]
}

/// DNS names of etcd's serving certificate: those of its Service, and `localhost` (etcd dials
/// itself); its IP address is [`etcd_server_ips`].
pub fn etcd_server_dns_names(namespace: &str) -> Vec<String> {
    let mut names = server_dns_names(namespace, ETCD_SERVICE);
    names.push("localhost".into());
    names
}

/// IP addresses of etcd's serving certificate: loopback.
pub fn etcd_server_ips() -> Vec<IpAddr> {
    vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
}

/// Common name of the API CA.
pub fn ca_name(service: &str) -> String {
    format!("{service}-certificate-authority")
}

/// Common name of the etcd CA.
pub fn etcd_ca_name(service: &str) -> String {
    format!("{service}-etcd-certificate-authority")
}

/// Common name of the API server's etcd client certificate.
pub fn etcd_client_name(service: &str) -> String {
    format!("{service}-apiserver-etcd-client")
}

/// Fresh CAs and certificates for an install of `service` in `namespace`.
pub fn generate_certs(namespace: &str, service: &str) -> Result<Certs, DeployError> {
    let pki_err = |subject: &str| {
        let subject = subject.to_string();
        move |source| DeployError::Pki { subject, source }
    };
    let names = server_dns_names(namespace, service);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let ca_name = ca_name(service);
    let ca = Ca::generate(&ca_name).map_err(pki_err(&ca_name))?;
    let server = ca.issue_server(&refs, &[]).map_err(pki_err(&names[0]))?;

    let etcd_ca_name = etcd_ca_name(service);
    let etcd_ca = Ca::generate(&etcd_ca_name).map_err(pki_err(&etcd_ca_name))?;
    let etcd_names = etcd_server_dns_names(namespace);
    let etcd_refs: Vec<&str> = etcd_names.iter().map(String::as_str).collect();
    let etcd_server = etcd_ca
        .issue_server_client(&etcd_refs, &etcd_server_ips())
        .map_err(pki_err(&etcd_names[0]))?;
    let client_name = etcd_client_name(service);
    let etcd_client = etcd_ca
        .issue_client(&client_name, &[])
        .map_err(pki_err(&client_name))?;
    Ok(Certs {
        ca: ca.issued().clone(),
        server,
        etcd_ca: etcd_ca.issued().clone(),
        etcd_server,
        etcd_client,
    })
}
