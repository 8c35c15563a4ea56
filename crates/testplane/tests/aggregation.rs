//! The aggregation path, proven against the real kube-apiserver: an APIService backed by a
//! throw-away HTTPS server in this test becomes Available, and requests made with kubectl reach
//! that server with kube-apiserver's front-proxy client certificate and the `X-Remote-*` identity
//! headers. Also records what kube-apiserver itself sends (availability probes, discovery,
//! OpenAPI) and prints it (`--nocapture`). Plus the identity `aggregation` gives our API server
//! and `ControlPlane::submit`, on the same control plane.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::server::{FakeServer, Recorded};
use common::{GROUP, VERSION};
use coredump_testplane::{ControlPlane, HarnessError, aggregation, eventually, shared};
use x509_parser::prelude::*;

struct Setup {
    cp: &'static ControlPlane,
    ns: String,
    server: FakeServer,
    became_available: Duration,
}

/// One fake server and APIService per test binary (the APIService name is cluster-wide).
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let cp = shared().unwrap();
        let ns = cp.create_namespace("agg").unwrap();
        let server = FakeServer::start(&ns, cp.front_proxy_ca_pem());
        aggregation::register_apiservice(cp, &ns, server.port, &server.ca.cert_pem()).unwrap();
        let became_available = aggregation::wait_available(cp, Duration::from_secs(90)).unwrap();
        Setup {
            cp,
            ns,
            server,
            became_available,
        }
    })
}

fn subject_cn(der: &[u8]) -> (String, String) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let cn = |name: &X509Name| {
        name.iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    };
    (cn(cert.subject()), cn(cert.issuer()))
}

fn describe(r: &Recorded) -> String {
    let cert = r.client_certs.first().map(|c| subject_cn(c));
    let headers: Vec<String> = r.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
    format!(
        "{:>7.3}s {} {} [{} alpn={:?}] cert(cn,issuer)={:?} {}",
        r.at.as_secs_f64(),
        r.method,
        r.uri,
        r.http_version,
        r.alpn,
        cert,
        headers.join(" | ")
    )
}

#[test]
fn apiservice_becomes_available() {
    let s = setup();
    let condition = aggregation::available_condition(s.cp).unwrap();
    assert_eq!(condition, "True Passed all checks passed");
    println!("APIService Available after {:?}", s.became_available);
    // kube-apiserver serves /apis/<group> itself, from the APIService.
    let group =
        s.cp.kubectl_ok(&["get", "--raw", &format!("/apis/{GROUP}")])
            .unwrap();
    let group: serde_json::Value = serde_json::from_str(&group).unwrap();
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        format!("{GROUP}/{VERSION}")
    );
    let versions = s.cp.kubectl_ok(&["api-versions"]).unwrap();
    assert!(
        versions.lines().any(|l| l == format!("{GROUP}/{VERSION}")),
        "{versions}"
    );
}

#[test]
fn proxied_request_carries_front_proxy_certificate_and_identity_headers() {
    let s = setup();
    let path = format!("/apis/{GROUP}/{VERSION}/namespaces/x/foo");
    let body =
        s.cp.kubectl_ok(&["get", "--raw", &path, "--request-timeout=30s"])
            .unwrap();
    assert_eq!(body, format!(r#"{{"kind":"Echo","path":"{path}"}}"#));
    let seen: Vec<Recorded> = s
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path() == path)
        .collect();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let r = &seen[0];
    println!("kubectl get --raw {path}\n  {}", describe(r));
    assert_eq!(r.method, "GET");
    // The exact certificate kube-apiserver was given with --proxy-client-cert-file.
    assert_eq!(
        r.client_certs.first(),
        Some(&s.cp.front_proxy_client_cert().cert_der)
    );
    assert_eq!(
        subject_cn(&r.client_certs[0]),
        (
            "front-proxy-client".to_string(),
            "testplane-front-proxy-ca".to_string()
        )
    );
    assert_eq!(r.user(), Some("testplane-admin"));
    assert_eq!(r.groups(), ["system:masters", "system:authenticated"]);
    // The end user's credentials never reach us.
    assert!(r.header_values("authorization").is_empty());
}

#[test]
fn impersonated_and_service_account_users_arrive_as_headers_and_rbac_is_enforced_before_us() {
    let s = setup();
    let cp = s.cp;
    cp.submit(
        "apply",
        &serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "foo-reader"},
            "rules": [{"apiGroups": [GROUP], "resources": ["foos", "foos/dump"], "verbs": ["get", "list"]}],
        }),
    )
    .unwrap();
    cp.submit(
        "apply",
        &serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "foo-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "foo-reader"},
            "subjects": [
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
                {"kind": "ServiceAccount", "name": "reader", "namespace": s.ns},
            ],
        }),
    )
    .unwrap();
    // Impersonation: alice in devs and ops. RBAC bindings take a moment to reach the authorizer's
    // informer, so retry until allowed.
    let path = format!("/apis/{GROUP}/{VERSION}/namespaces/{}/foos/one", s.ns);
    let args = [
        "get",
        "--raw",
        &path,
        "--as=alice",
        "--as-group=devs",
        "--as-group=ops",
        "--request-timeout=10s",
    ];
    eventually(Duration::from_secs(30), "alice allowed", || {
        cp.kubectl_ok(&args).ok()
    })
    .unwrap();
    let alice = s
        .server
        .requests()
        .into_iter()
        .rfind(|r| r.path() == path)
        .unwrap();
    println!("impersonated alice:\n  {}", describe(&alice));
    assert_eq!(alice.user(), Some("alice"));
    assert_eq!(alice.groups(), ["devs", "ops", "system:authenticated"]);
    assert!(alice.header_values("impersonate-user").is_empty());

    // Without a binding kube-apiserver answers 403 itself; the request never reaches us.
    let mallory_path = format!("/apis/{GROUP}/{VERSION}/namespaces/{}/foos/mallory", s.ns);
    let denied = cp.kubectl(&[
        "get",
        "--raw",
        &mallory_path,
        "--as=mallory",
        "--request-timeout=10s",
    ]);
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(!denied.status.success());
    assert!(stderr.contains("Forbidden"), "{stderr}");
    assert!(s.server.requests().iter().all(|r| r.path() != mallory_path));

    // A ServiceAccount token (TokenRequest API via kubectl create token), sent as a bearer token.
    let token = cp.service_account_token(&s.ns, "reader").unwrap();
    let ca = cp.dir().join("server-ca-for-token-test.crt");
    std::fs::write(&ca, cp.server_ca_pem()).unwrap();
    let sa_path = format!("/apis/{GROUP}/{VERSION}/namespaces/{}/foos/sa", s.ns);
    let run_with_token = || {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig=/dev/null")
            .arg(format!(
                "--cache-dir={}",
                cp.dir().join("token-cache").display()
            ))
            .arg(format!("--server={}", cp.server_url()))
            .arg(format!("--certificate-authority={}", ca.display()))
            .arg(format!("--token={token}"))
            .args(["get", "--raw", &sa_path, "--request-timeout=10s"])
            .output()
            .unwrap();
        out.status.success().then_some(())
    };
    eventually(
        Duration::from_secs(30),
        "service account allowed",
        run_with_token,
    )
    .unwrap();
    let sa = s
        .server
        .requests()
        .into_iter()
        .rfind(|r| r.path() == sa_path)
        .unwrap();
    println!("service account token:\n  {}", describe(&sa));
    assert_eq!(
        sa.user(),
        Some(format!("system:serviceaccount:{}:reader", s.ns).as_str())
    );
    assert_eq!(
        sa.groups(),
        [
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{}", s.ns),
            "system:authenticated"
        ]
    );
    assert!(
        sa.header_values("authorization").is_empty(),
        "the token must not be forwarded"
    );
    let extras: Vec<&(String, String)> = sa
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-remote-extra-"))
        .collect();
    println!("  extra headers: {extras:?}");
    assert!(
        !extras.is_empty(),
        "service-account tokens carry extra attributes"
    );
}

#[test]
fn kube_apiserver_internal_calls() {
    let s = setup();
    let gv = format!("/apis/{GROUP}/{VERSION}");
    let internal = |r: &Recorded| {
        r.user()
            .is_some_and(|u| u.starts_with("system:") && !u.contains(":serviceaccount:"))
    };
    // Wait until every kind of internal call has been seen once: probe, discovery, both OpenAPIs.
    let seen = eventually(Duration::from_secs(120), "internal calls", || {
        let requests = s.server.requests();
        let has = |path: &str| requests.iter().any(|r| r.path() == path && internal(r));
        (has(&gv) && has("/apis") && has("/openapi/v2") && has("/openapi/v3")).then_some(requests)
    })
    .unwrap();
    println!("requests from kube-apiserver itself (first 40):");
    for r in seen.iter().filter(|r| internal(r)).take(40) {
        println!("  {}", describe(r));
    }
    for r in seen.iter().filter(|r| internal(r)) {
        assert_eq!(
            r.client_certs.first(),
            Some(&s.cp.front_proxy_client_cert().cert_der),
            "{}",
            describe(r)
        );
    }
    let probe = seen.iter().find(|r| r.path() == gv && internal(r)).unwrap();
    assert_eq!(probe.user(), Some("system:kube-aggregator"));
    let discovery = seen
        .iter()
        .find(|r| r.path() == "/apis" && internal(r))
        .unwrap();
    assert!(
        discovery.header_values("accept")[0].contains("apidiscovery.k8s.io"),
        "{}",
        describe(discovery)
    );
    let openapi = seen.iter().find(|r| r.path() == "/openapi/v2").unwrap();
    assert_eq!(
        openapi.user(),
        Some("system:aggregator"),
        "{}",
        describe(openapi)
    );
}

/// The kubeconfig of `api_server_identity` authenticates as the API server's ServiceAccount,
/// which may do what delegated auth needs (TokenReview, SubjectAccessReview, the
/// authentication ConfigMap) and read pods, and nothing else asked here.
#[test]
fn api_server_identity_authenticates_with_the_deploy_manifest_rights() {
    let cp = shared().unwrap();
    let ns = cp.create_namespace("identity").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = aggregation::api_server_identity(cp, &ns, dir.path()).unwrap();
    assert_eq!(kubeconfig, dir.path().join("coredump-api.kubeconfig"));
    let as_server = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                dir.path().join("cache").display()
            ))
            .args(args)
            .arg("--request-timeout=10s")
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let who = as_server(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(who, format!("system:serviceaccount:{ns}:coredump-api"));
    let can = |verb: &str, resource: &str, namespace: &str| {
        as_server(&["auth", "can-i", verb, resource, "-n", namespace])
    };
    // Bindings reach the RBAC authorizer's informer after a moment.
    eventually(Duration::from_secs(30), "bindings in effect", || {
        (can("get", "pods", "default") == "yes").then_some(())
    })
    .unwrap();
    let asked = [
        ("create", "tokenreviews.authentication.k8s.io", "default"),
        (
            "create",
            "subjectaccessreviews.authorization.k8s.io",
            "default",
        ),
        (
            "get",
            "configmap/extension-apiserver-authentication",
            "kube-system",
        ),
        ("get", "pods", &ns),
        ("list", "secrets", "kube-system"),
        ("get", "configmaps", &ns),
        ("delete", "pods", &ns),
    ];
    let answers: Vec<String> = asked.iter().map(|(v, r, n)| can(v, r, n)).collect();
    assert_eq!(
        answers,
        ["yes", "yes", "yes", "yes", "no", "no", "no"],
        "{asked:?}"
    );
}

/// `submit` returns the stored object, and a refusal names the verb, the object and the reason.
#[test]
fn submit_returns_the_stored_object_and_names_a_refused_one() {
    let cp = shared().unwrap();
    let ns = cp.create_namespace("submit").unwrap();
    let config_map = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": ns}, "data": {"k": "v"}});
    let stored: serde_json::Value =
        serde_json::from_str(&cp.submit("create", &config_map).unwrap()).unwrap();
    assert_eq!(stored["data"], serde_json::json!({"k": "v"}));
    assert!(!stored["metadata"]["uid"].as_str().unwrap().is_empty());
    match cp.submit("create", &config_map) {
        Err(HarnessError::Submit {
            verb,
            object,
            stderr,
            ..
        }) => {
            assert_eq!(verb, "create");
            assert_eq!(object, format!("ConfigMap {ns}/settings"));
            assert!(stderr.contains("AlreadyExists"), "{stderr}");
        }
        other => panic!("second create: {other:?}"),
    }
}
