//! Checks of a serving certificate against the CA that signed it, shared by the tests of the
//! rendered manifest and of the Helm chart (both issue the same pair, by different code).
#![allow(dead_code)] // each test binary uses a part
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeSet;

use x509_parser::prelude::*;

/// The DER inside one PEM block.
pub fn pem_der(pem: &[u8]) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).unwrap();
    pem.contents
}

/// Asserts that the certificate in `server_pem` was issued by the one in `ca_pem` (issuer
/// name and signature) and returns its DNS names; any other kind of name fails.
pub fn verified_dns_names(server_pem: &[u8], ca_pem: &[u8]) -> BTreeSet<String> {
    let (server_der, ca_der) = (pem_der(server_pem), pem_der(ca_pem));
    let (_, server) = X509Certificate::from_der(&server_der).unwrap();
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    assert_eq!(server.issuer(), ca.subject());
    server.verify_signature(Some(ca.public_key())).unwrap();
    server
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(name) => name.to_string(),
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}
