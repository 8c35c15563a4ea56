//! The control plane answers the real kubectl: namespaces, API groups, who the admin is,
//! service-account tokens; and `Drop` really tears an instance down.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::net::TcpStream;

use coredump_testplane::{ControlPlane, shared};

#[test]
fn get_namespaces_lists_the_system_namespaces() {
    let cp = shared().unwrap();
    let out = cp.kubectl_ok(&["get", "ns", "-o", "name"]).unwrap();
    let names: Vec<&str> = out.lines().collect();
    for ns in [
        "namespace/default",
        "namespace/kube-system",
        "namespace/kube-public",
    ] {
        assert!(names.contains(&ns), "{ns} missing from {names:?}");
    }
}

#[test]
fn api_versions_include_core_and_aggregation_groups() {
    let cp = shared().unwrap();
    let out = cp.kubectl(&["api-versions"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let versions = String::from_utf8(out.stdout).unwrap();
    let versions: Vec<&str> = versions.lines().collect();
    for gv in [
        "v1",
        "apps/v1",
        "apiregistration.k8s.io/v1",
        "rbac.authorization.k8s.io/v1",
    ] {
        assert!(versions.contains(&gv), "{gv} missing from {versions:?}");
    }
}

#[test]
fn kubeconfig_user_is_an_admin_in_system_masters() {
    let cp = shared().unwrap();
    let out = cp.kubectl_ok(&["auth", "whoami", "-o", "json"]).unwrap();
    let review: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "testplane-admin");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["system:masters", "system:authenticated"])
    );
    assert_eq!(
        cp.kubectl_ok(&["auth", "can-i", "*", "*"]).unwrap().trim(),
        "yes"
    );
    let kubeconfig = std::fs::read_to_string(cp.kubeconfig()).unwrap();
    assert!(kubeconfig.contains(&cp.server_url()));
}

#[test]
fn service_account_token_authenticates_as_that_service_account() {
    let cp = shared().unwrap();
    let ns = cp.create_namespace("token").unwrap();
    let token = cp.service_account_token(&ns, "robot").unwrap();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    // A second call reuses the existing ServiceAccount.
    let again = cp.service_account_token(&ns, "robot").unwrap();
    assert_ne!(again, token);
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token},
    });
    let mut child = cp
        .kubectl_command(&["create", "-f", "-", "-o", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        review.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let review: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"],
        format!("system:serviceaccount:{ns}:robot")
    );
}

#[test]
fn drop_stops_both_servers_and_removes_the_directory() {
    let cp = ControlPlane::start().unwrap();
    let dir = cp.dir().to_path_buf();
    let api_port: u16 = cp.server_url().rsplit(':').next().unwrap().parse().unwrap();
    let etcd_port: u16 = cp.etcd_url().rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        cp.kubectl_ok(&["get", "ns", "default", "-o", "name"])
            .is_ok()
    );
    assert!(dir.join("kube-apiserver.log").exists());
    drop(cp);
    assert!(!dir.exists(), "{} left behind", dir.display());
    for port in [api_port, etcd_port] {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open"
        );
    }
}
