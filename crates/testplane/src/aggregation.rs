//! Our API group behind the real kube-apiserver's aggregation layer, set up the way the deploy
//! manifest sets it up but with a server running on this machine: the API server's own
//! ServiceAccount and its rights, its serving certificate, an ExternalName Service to
//! `localhost` (the aggregator then dials `https://localhost:<port>`, no kube-proxy needed) and
//! the APIService, then the wait for `Available`.
//!
//! The tests of the aggregation layer (a fake server), of our API server in process and of the
//! `coredump-detector apiserver` process all go through here, so they register and authorize
//! their server identically.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;

use crate::control_plane::ControlPlane;
use crate::error::HarnessError;
use crate::pki::{IssuedCert, TestCa};
use crate::wait::{Poll, poll_until};

/// Our API group.
pub const GROUP: &str = "coredump.fujitsu.com";
/// Its one version.
pub const VERSION: &str = "v1alpha1";
/// The URL path of the group-version, `/apis/<group>/<version>`.
pub const API_PATH: &str = "/apis/coredump.fujitsu.com/v1alpha1";
/// The APIService's name, `<version>.<group>`.
pub const APISERVICE: &str = "v1alpha1.coredump.fujitsu.com";
/// The Service the APIService points to, in the server's namespace; kube-apiserver checks the
/// serving certificate for `<SERVICE>.<namespace>.svc`.
pub const SERVICE: &str = "coredump";
/// The API server's ServiceAccount, as the deploy manifest names it.
pub const API_SERVER_ACCOUNT: &str = "coredump-api";

/// How often [`wait_available`] reads the condition (each read is a kubectl run).
const AVAILABLE_POLL: Duration = Duration::from_millis(250);

/// A serving certificate signed by `ca` for `coredump.<namespace>.svc` (its common name, the
/// name the aggregator verifies), `localhost` and `127.0.0.1` (for direct requests).
pub fn issue_serving_cert(ca: &TestCa, namespace: &str) -> Result<IssuedCert, HarnessError> {
    let host = format!("{SERVICE}.{namespace}.svc");
    ca.issue_server(&host, &[&host, "localhost", "127.0.0.1"])
}

/// Where [`write_serving_cert`] put the certificate and key (PEM), for a server's
/// `--tls-cert-file` and `--tls-private-key-file`.
#[derive(Clone, Debug)]
pub struct ServingFiles {
    /// `<dir>/tls.crt`.
    pub cert: PathBuf,
    /// `<dir>/tls.key`.
    pub key: PathBuf,
}

/// [`issue_serving_cert`], written to `dir` as `tls.crt` and `tls.key`.
pub fn write_serving_cert(
    ca: &TestCa,
    namespace: &str,
    dir: &Path,
) -> Result<ServingFiles, HarnessError> {
    let serving = issue_serving_cert(ca, namespace)?;
    let files = ServingFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    std::fs::write(&files.cert, &serving.cert_pem)
        .map_err(|e| HarnessError::io("write", &files.cert, e))?;
    std::fs::write(&files.key, &serving.key_pem)
        .map_err(|e| HarnessError::io("write", &files.key, e))?;
    Ok(files)
}

/// The ExternalName Service [`SERVICE`] (→ `localhost`, `port`) in `namespace` and the
/// APIService [`APISERVICE`] pointing at it and trusting `ca_pem`, with the deploy manifest's
/// priorities.
pub fn apiservice_objects(namespace: &str, port: u16, ca_pem: &str) -> [serde_json::Value; 2] {
    [
        serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": namespace},
            "spec": {"type": "ExternalName", "externalName": "localhost",
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
        }),
        serde_json::json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": APISERVICE},
            "spec": {
                "group": GROUP, "version": VERSION,
                "groupPriorityMinimum": 2000, "versionPriority": 10,
                "service": {"namespace": namespace, "name": SERVICE, "port": port},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
        }),
    ]
}

/// Applies [`apiservice_objects`]; does not wait (see [`wait_available`]).
pub fn register_apiservice(
    cp: &ControlPlane,
    namespace: &str,
    port: u16,
    ca_pem: &str,
) -> Result<(), HarnessError> {
    for object in apiservice_objects(namespace, port, ca_pem) {
        cp.submit("apply", &object)?;
    }
    Ok(())
}

/// The APIService's `Available` condition as `status reason message` (e.g. `True Passed all
/// checks passed`); empty while kube-apiserver has not set it yet.
pub fn available_condition(cp: &ControlPlane) -> Result<String, HarnessError> {
    let jsonpath = r#"-o=jsonpath={range .status.conditions[?(@.type=="Available")]}{.status} {.reason} {.message}{end}"#;
    cp.kubectl_ok(&[
        "get",
        "apiservice",
        APISERVICE,
        jsonpath,
        "--request-timeout=10s",
    ])
}

/// Polls until the APIService is `Available=True` (an unreadable condition counts as not yet);
/// returns how long that took, or [`HarnessError::NotAvailable`] with the last condition seen.
pub fn wait_available(cp: &ControlPlane, timeout: Duration) -> Result<Duration, HarnessError> {
    let start = std::time::Instant::now();
    poll_until(
        timeout,
        AVAILABLE_POLL,
        || match available_condition(cp) {
            Ok(condition) if condition.starts_with("True ") => Poll::Ready(start.elapsed()),
            Ok(condition) => Poll::Pending(condition),
            Err(err) => Poll::Pending(err.to_string()),
        },
        |waited, last_condition| HarnessError::NotAvailable {
            apiservice: APISERVICE.to_string(),
            waited,
            last_condition,
        },
    )
}

/// The API server's rights as the deploy manifest grants them to [`API_SERVER_ACCOUNT`] in
/// `namespace`: `system:auth-delegator` (TokenReview, SubjectAccessReview), the kube-system
/// Role `extension-apiserver-authentication-reader` (the front-proxy CA and header names), and
/// `get pods` (a dump's pod UID). Binding names start with `namespace`, so installs in several
/// namespaces of one control plane do not overwrite each other's.
pub fn api_server_rbac(namespace: &str) -> Vec<serde_json::Value> {
    let subject = serde_json::json!(
        {"kind": "ServiceAccount", "name": API_SERVER_ACCOUNT, "namespace": namespace});
    let role_ref = |kind: &str, name: &str| serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name});
    let binding = |kind: &str, name: String, ns: Option<&str>, role: serde_json::Value| {
        let mut metadata = serde_json::json!({"name": name});
        if let Some(ns) = ns {
            metadata["namespace"] = ns.into();
        }
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
                           "metadata": metadata, "roleRef": role, "subjects": [subject]})
    };
    vec![
        binding(
            "ClusterRoleBinding",
            format!("{namespace}-auth-delegator"),
            None,
            role_ref("ClusterRole", "system:auth-delegator"),
        ),
        binding(
            "RoleBinding",
            format!("{namespace}-auth-reader"),
            Some("kube-system"),
            role_ref("Role", "extension-apiserver-authentication-reader"),
        ),
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "coredump-api-pods"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        }),
        binding(
            "ClusterRoleBinding",
            format!("{namespace}-pods"),
            None,
            role_ref("ClusterRole", "coredump-api-pods"),
        ),
    ]
}

/// Creates ServiceAccount [`API_SERVER_ACCOUNT`] in `namespace` (which must exist), applies
/// [`api_server_rbac`] and returns the path of a kubeconfig holding its token, for the server's
/// `--kubeconfig` (see [`service_account_kubeconfig`]).
pub fn api_server_identity(
    cp: &ControlPlane,
    namespace: &str,
    dir: &Path,
) -> Result<PathBuf, HarnessError> {
    let kubeconfig = service_account_kubeconfig(cp, namespace, API_SERVER_ACCOUNT, dir)?;
    for object in api_server_rbac(namespace) {
        cp.submit("apply", &object)?;
    }
    Ok(kubeconfig)
}

/// A kubeconfig for `cp` authenticating as ServiceAccount `namespace/account` (created if
/// missing) with a one-hour token: writes `<dir>/cluster-ca.crt` and `<dir>/<account>.kubeconfig`
/// and returns the latter.
pub fn service_account_kubeconfig(
    cp: &ControlPlane,
    namespace: &str,
    account: &str,
    dir: &Path,
) -> Result<PathBuf, HarnessError> {
    let token = cp.service_account_token(namespace, account)?;
    let ca = dir.join("cluster-ca.crt");
    std::fs::write(&ca, cp.server_ca_pem()).map_err(|e| HarnessError::io("write", &ca, e))?;
    let config = token_kubeconfig(&cp.server_url(), &ca, account, &token);
    let path = dir.join(format!("{account}.kubeconfig"));
    std::fs::write(&path, config.to_string()).map_err(|e| HarnessError::io("write", &path, e))?;
    Ok(path)
}

/// A kubeconfig as ServiceAccount `namespace/account` with a token bound to its Pod `pod`
/// (TokenRequest with a bound object): the token carries the node the pod is bound to, as the
/// projected token kubelet mounts into a running pod does. The Pod (and its Node) must exist.
pub fn pod_bound_kubeconfig(
    cp: &ControlPlane,
    namespace: &str,
    account: &str,
    pod: &str,
    dir: &Path,
) -> Result<PathBuf, HarnessError> {
    let uid = cp.kubectl_ok(&[
        "get",
        "pod",
        pod,
        "-n",
        namespace,
        "-o",
        "jsonpath={.metadata.uid}",
        "--request-timeout=30s",
    ])?;
    let token = cp.kubectl_ok(&[
        "create",
        "token",
        account,
        "-n",
        namespace,
        "--bound-object-kind=Pod",
        &format!("--bound-object-name={pod}"),
        &format!("--bound-object-uid={}", uid.trim()),
        "--request-timeout=30s",
    ])?;
    let ca = dir.join("cluster-ca.crt");
    std::fs::write(&ca, cp.server_ca_pem()).map_err(|e| HarnessError::io("write", &ca, e))?;
    let config = token_kubeconfig(&cp.server_url(), &ca, account, token.trim());
    let path = dir.join(format!("{account}-{pod}.kubeconfig"));
    std::fs::write(&path, config.to_string()).map_err(|e| HarnessError::io("write", &path, e))?;
    Ok(path)
}

/// A kubeconfig for `server` (trusting the CA file `ca`) as `user` with a bearer `token`.
fn token_kubeconfig(server: &str, ca: &Path, user: &str, token: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": user}}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apiservice_points_at_the_external_name_service_and_trusts_the_ca() {
        let [service, apiservice] = apiservice_objects("ns-1", 8443, "PEM\n");
        assert_eq!(service["metadata"]["namespace"], "ns-1");
        assert_eq!(service["spec"]["externalName"], "localhost");
        assert_eq!(service["spec"]["ports"][0]["port"], 8443);
        let spec = &apiservice["spec"];
        assert_eq!(apiservice["metadata"]["name"], APISERVICE);
        assert_eq!(
            (spec["group"].as_str(), spec["version"].as_str()),
            (Some("coredump.fujitsu.com"), Some("v1alpha1"))
        );
        assert_eq!(
            spec["service"],
            serde_json::json!({"namespace": "ns-1", "name": SERVICE, "port": 8443})
        );
        let bundle = spec["caBundle"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .unwrap();
        assert_eq!(decoded, b"PEM\n");
        assert_eq!(API_PATH, format!("/apis/{GROUP}/{VERSION}"));
        assert_eq!(APISERVICE, format!("{VERSION}.{GROUP}"));
    }

    #[test]
    fn api_server_rbac_binds_the_account_to_the_three_roles() {
        let objects = api_server_rbac("sys-2");
        let account = serde_json::json!(
            [{"kind": "ServiceAccount", "name": "coredump-api", "namespace": "sys-2"}]);
        let grants: Vec<(String, &str, &str)> = objects
            .iter()
            .filter(|o| o["roleRef"].is_object())
            .map(|o| {
                assert_eq!(o["subjects"], account);
                let role = &o["roleRef"];
                (
                    crate::kubectl::describe_object(o),
                    role["kind"].as_str().unwrap(),
                    role["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            grants,
            [
                (
                    "ClusterRoleBinding sys-2-auth-delegator".to_string(),
                    "ClusterRole",
                    "system:auth-delegator"
                ),
                (
                    "RoleBinding kube-system/sys-2-auth-reader".to_string(),
                    "Role",
                    "extension-apiserver-authentication-reader"
                ),
                (
                    "ClusterRoleBinding sys-2-pods".to_string(),
                    "ClusterRole",
                    "coredump-api-pods"
                ),
            ]
        );
        let pods_role = objects.iter().find(|o| o["kind"] == "ClusterRole").unwrap();
        assert_eq!(
            pods_role["rules"],
            serde_json::json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
        );
    }

    #[test]
    fn token_kubeconfig_selects_the_one_user_and_cluster() {
        let config = token_kubeconfig(
            "https://127.0.0.1:6443",
            Path::new("/x/ca.crt"),
            "sa",
            "t0k",
        );
        let context = &config["contexts"][0];
        assert_eq!(config["current-context"], context["name"]);
        assert_eq!(context["context"]["user"], "sa");
        assert_eq!(
            config["users"][0],
            serde_json::json!({"name": "sa", "user": {"token": "t0k"}})
        );
        assert_eq!(
            config["clusters"][0]["cluster"],
            serde_json::json!({"server": "https://127.0.0.1:6443", "certificate-authority": "/x/ca.crt"})
        );
        assert_eq!(context["context"]["cluster"], config["clusters"][0]["name"]);
    }

    #[test]
    fn serving_cert_files_name_the_service_and_loopback_and_chain_to_the_ca() {
        use x509_parser::prelude::*;
        let ca = TestCa::new("serving-test-ca").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = write_serving_cert(&ca, "ns-3", dir.path()).unwrap();
        let pem = std::fs::read(&files.cert).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        assert_eq!(cert.subject().to_string(), "CN=coredump.ns-3.svc");
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(
            san.general_names,
            [
                GeneralName::DNSName("coredump.ns-3.svc"),
                GeneralName::DNSName("localhost"),
                GeneralName::IPAddress(&[127, 0, 0, 1]),
            ]
        );
        let ca_der = ca.cert_der();
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        let key = std::fs::read_to_string(&files.key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    }
}
