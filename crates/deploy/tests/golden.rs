//! The manifest for the seed's usage (`deploy.sh default coredump DIR`) is pinned byte for byte
//! by `tests/golden/coredump.yaml`, with placeholder certificates so the file is stable.
//! After an intended change: `UPDATE_GOLDEN=1 cargo test -p coredump-deploy --test golden`,
//! then review the diff.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::PathBuf;

use coredump_deploy::{Certs, DeployOptions, render};
use coredump_pki::Issued;

fn placeholder(what: &str) -> Issued {
    Issued {
        cert_pem: format!(
            "-----BEGIN CERTIFICATE-----\n{what} CERTIFICATE\n-----END CERTIFICATE-----\n"
        ),
        key_pem: format!("-----BEGIN PRIVATE KEY-----\n{what} KEY\n-----END PRIVATE KEY-----\n"),
    }
}

#[test]
fn seed_usage_matches_the_golden_file() {
    let certs = Certs {
        ca: placeholder("TEST CA"),
        server: placeholder("TEST SERVER"),
        etcd_ca: placeholder("TEST ETCD CA"),
        etcd_server: placeholder("TEST ETCD SERVER"),
        etcd_client: placeholder("TEST ETCD CLIENT"),
    };
    let yaml = render(&DeployOptions::new("default", "coredump"), &certs).unwrap();
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/coredump.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &yaml).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        yaml == expected,
        "rendered manifest differs from {}; if intended, run \
         UPDATE_GOLDEN=1 cargo test -p coredump-deploy --test golden\n--- rendered:\n{yaml}",
        golden.display()
    );
}
