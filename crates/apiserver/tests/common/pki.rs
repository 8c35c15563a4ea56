//! Test PKI generated with rcgen: a CA, a serving certificate for localhost, an admin client
//! (group `system:masters`), an unprivileged client, and a client of a foreign CA.
#![allow(clippy::unwrap_used, dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls_pki_types::CertificateDer;

pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct Pki {
    pub ca_pem: String,
    pub server: Leaf,
    pub admin: Leaf,
    pub user: Leaf,
    pub foreign: Leaf,
}

fn ca(cn: &str) -> (Issuer<'static, KeyPair>, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    (Issuer::new(p, key), cert.pem())
}

fn leaf(issuer: &Issuer<'static, KeyPair>, cn: &str, orgs: &[&str], server: bool) -> Leaf {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    for o in orgs {
        p.distinguished_name.push(DnType::OrganizationName, *o);
    }
    if server {
        p.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    Leaf {
        der: cert.der().clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

impl Pki {
    pub fn new() -> Self {
        let (issuer, ca_pem) = ca("coredump-test-ca");
        let (other, _) = ca("someone-else");
        Self {
            server: leaf(&issuer, "coredump.default.svc", &[], true),
            admin: leaf(&issuer, "admin", &["system:masters"], false),
            user: leaf(&issuer, "bob", &["developers"], false),
            foreign: leaf(&other, "mallory", &["system:masters"], false),
            ca_pem,
        }
    }
}
