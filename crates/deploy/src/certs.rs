//! The certificates of an install: a CA named like the seed's (`SERVICE-certificate-authority`),
//! which becomes the APIService's `caBundle`, and the API server's serving certificate with
//! every name its Service answers to in subjectAltName (the seed's CN-only certificate is
//! refused by current kube-apiservers).

use coredump_pki::{Ca, Issued};

use crate::error::DeployError;

/// The CA and the serving certificate of one install, PEM encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certs {
    /// The CA (its certificate is the APIService's `caBundle`; its key is only written to DIR,
    /// never into the manifest).
    pub ca: Issued,
    /// The API server's serving certificate and key (Secret `servercrt`).
    pub server: Issued,
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

/// A fresh CA `CN=<service>-certificate-authority` and a serving certificate for
/// [`server_dns_names`].
pub fn generate_certs(namespace: &str, service: &str) -> Result<Certs, DeployError> {
    let names = server_dns_names(namespace, service);
    let pki_err = |subject: &str| {
        let subject = subject.to_string();
        move |source| DeployError::Pki { subject, source }
    };
    let ca_name = format!("{service}-certificate-authority");
    let ca = Ca::generate(&ca_name).map_err(pki_err(&ca_name))?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let server = ca.issue_server(&refs, &[]).map_err(pki_err(&names[0]))?;
    Ok(Certs {
        ca: ca.issued().clone(),
        server,
    })
}
