//! Helpers for tests of our API server behind the real kube-apiserver: RBAC and the server's
//! own ServiceAccount, APIService registration (ExternalName Service to `localhost`), and a
//! direct HTTPS client that presents any certificate and headers we like.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use coredump_testplane::aggregation;
pub use coredump_testplane::aggregation::{API_PATH as BASE, GROUP};
use coredump_testplane::{ControlPlane, IssuedCert};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// `kubectl <args>` with `input` on stdin.
pub fn kubectl_stdin(cp: &ControlPlane, args: &[&str], input: &str) -> Output {
    cp.kubectl_stdin(args, input).unwrap()
}

/// `kubectl apply -f -` of one object.
pub fn apply(cp: &ControlPlane, object: &serde_json::Value) {
    cp.submit("apply", object).unwrap_or_else(|e| panic!("{e}"));
}

/// Polls `condition` until it returns `Some`, panicking after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, condition: impl FnMut() -> Option<T>) -> T {
    coredump_testplane::eventually(timeout, what, condition).unwrap_or_else(|e| panic!("{e}"))
}

/// Binds a user (or ServiceAccount `ns:name` when `sa`) to ClusterRole `role` in `ns` (or
/// cluster-wide when `ns` is `None`).
pub fn bind(
    cp: &ControlPlane,
    binding: &str,
    role: &str,
    ns: Option<&str>,
    subject: serde_json::Value,
) {
    let role_ref = serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role});
    let object = match ns {
        Some(ns) => serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": binding, "namespace": ns}, "roleRef": role_ref, "subjects": [subject]}),
        None => serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": binding}, "roleRef": role_ref, "subjects": [subject]}),
    };
    apply(cp, &object);
}

/// A user subject.
pub fn user(name: &str) -> serde_json::Value {
    serde_json::json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

/// A ServiceAccount subject.
pub fn service_account(ns: &str, name: &str) -> serde_json::Value {
    serde_json::json!({"kind": "ServiceAccount", "name": name, "namespace": ns})
}

/// ClusterRoles `coredump-viewer` (objects only) and `coredump-debugger` (+ `dump`, `core`),
/// as the deploy manifest defines them.
pub fn roles(cp: &ControlPlane) {
    let rule = |resources: &[&str], verbs: &[&str]| serde_json::json!({"apiGroups": [GROUP], "resources": resources, "verbs": verbs});
    let read = ["get", "list", "watch"];
    apply(
        cp,
        &serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "coredump-viewer"},
            "rules": [rule(&["coredumps", "coredumpendpoints"], &read)],
        }),
    );
    apply(
        cp,
        &serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "coredump-debugger"},
            "rules": [rule(&["coredumps", "coredumpendpoints"], &read),
                      rule(&["coredumpendpoints/dump", "coredumps/core"], &["get"])],
        }),
    );
}

/// The API server's own identity, as the deploy manifest grants it (see
/// [`aggregation::api_server_identity`]); returns a kubeconfig holding its token.
pub fn api_server_identity(cp: &ControlPlane, ns: &str, dir: &Path) -> PathBuf {
    aggregation::api_server_identity(cp, ns, dir).unwrap()
}

/// The ExternalName Service `coredump` (→ `localhost`) in `ns` and the APIService pointing at it
/// on `port`, trusting `ca_pem`; waits for `Available=True` and returns how long that took.
pub fn register_apiservice(cp: &ControlPlane, ns: &str, port: u16, ca_pem: &str) -> Duration {
    aggregation::register_apiservice(cp, ns, port, ca_pem).unwrap();
    aggregation::wait_available(cp, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"))
}

/// The APIService's `Available` condition as `status reason message` (or why it is unreadable).
pub fn available_condition(cp: &ControlPlane) -> String {
    aggregation::available_condition(cp).unwrap_or_else(|err| err.to_string())
}

/// What a direct request presents.
#[derive(Clone, Default)]
pub struct Creds {
    /// Client certificate and key.
    pub cert: Option<IssuedCert>,
    /// Extra headers (identity headers, Authorization).
    pub headers: Vec<(String, String)>,
}

impl Creds {
    pub fn cert(cert: &IssuedCert) -> Self {
        Self {
            cert: Some(cert.clone()),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// As the aggregator relays `user` in `groups` (plus `system:authenticated`).
    pub fn relayed(proxy: &IssuedCert, user: &str, groups: &[&str]) -> Self {
        let mut c = Self::cert(proxy).header("X-Remote-User", user);
        for g in groups.iter().chain(&["system:authenticated"]) {
            c = c.header("X-Remote-Group", g);
        }
        c
    }
}

/// A response of a direct request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// GET `https://127.0.0.1:<port><path_and_query>` straight to our server (no kube-apiserver),
/// trusting `server_ca_pem`, with `creds`. The path is sent exactly as given.
pub async fn direct_get(
    port: u16,
    server_ca_pem: &str,
    path_and_query: &str,
    creds: &Creds,
) -> Answer {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(server_ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match &creds.cert {
        Some(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(c.cert_der.clone())],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::get(path_and_query).header("host", "localhost");
    for (k, v) in &creds.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = sender
        .send_request(req.body(Empty::<bytes::Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer { status, body }
}
