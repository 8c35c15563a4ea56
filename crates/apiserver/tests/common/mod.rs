//! Shared test fixtures: a real embedded metadata store in a temp dir, a blob store, a test CA
//! with admin / unprivileged / foreign client certificates, and request helpers.
#![allow(dead_code, clippy::unwrap_used)]

pub mod blobs;
pub mod pki;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode, header};
use coredump_apiserver::auth::{
    AllowGroupsAuthorizer, AuthLayerState, ClientCertAuthenticator, PeerCertificates,
};
use coredump_apiserver::{AppState, Registry};
use coredump_store::redb_store::RedbStore;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const BASE: &str = "/apis/coredump.fujitsu.com/v1alpha1";
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// Which client certificate a request presents.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Admin,
    User,
    Foreign,
    Nobody,
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub pki: pki::Pki,
    pub state: AppState,
    pub registry: Registry,
    pub blobs: Arc<blobs::DirBlobStore>,
}

impl Harness {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(RedbStore::open(&dir.path().join("meta.redb")).unwrap());
        Self::with_metadata(dir, meta)
    }

    /// Over a real etcd of its own, as the server runs with `--etcd-servers` (the process is
    /// killed when the returned handle drops).
    pub async fn on_etcd() -> (Self, coredump_testplane::EtcdProcess) {
        let binary = coredump_testplane::binaries().unwrap().etcd;
        Self::on_etcd_binary(&binary).await
    }

    /// [`Harness::on_etcd`] on another etcd binary (Debian's older one).
    pub async fn on_etcd_binary(
        binary: &std::path::Path,
    ) -> (Self, coredump_testplane::EtcdProcess) {
        let dir = tempfile::tempdir().unwrap();
        let etcd = coredump_testplane::start_etcd_binary(binary, &dir.path().join("etcd")).unwrap();
        let store = coredump_store::etcd_store::EtcdStore::connect(
            &[etcd.url()],
            coredump_apiserver::cli::ETCD_PREFIX,
        )
        .await
        .unwrap();
        (Self::with_metadata(dir, Arc::new(store)), etcd)
    }

    /// Over another metadata store (etcd).
    pub fn with_metadata(
        dir: tempfile::TempDir,
        meta: Arc<dyn coredump_store::MetadataStore>,
    ) -> Self {
        let blobs = Arc::new(blobs::DirBlobStore::new(dir.path().join("blobs")));
        let registry = Registry::new(meta, blobs.store.clone());
        let pki = pki::Pki::new();
        let auth = AuthLayerState {
            authenticator: Arc::new(
                ClientCertAuthenticator::from_pem(pki.ca_pem.as_bytes()).unwrap(),
            ),
            authorizer: Arc::new(AllowGroupsAuthorizer::new(vec!["system:masters".into()])),
        };
        let mut state = AppState::new(registry.clone(), auth);
        state.bookmark_interval = std::time::Duration::from_millis(200);
        Self {
            dir,
            pki,
            state,
            registry,
            blobs,
        }
    }

    pub fn router(&self) -> Router {
        coredump_apiserver::router(self.state.clone())
    }

    fn certs(&self, who: Who) -> PeerCertificates {
        match who {
            Who::Admin => PeerCertificates(Arc::new(vec![self.pki.admin.der.clone()])),
            Who::User => PeerCertificates(Arc::new(vec![self.pki.user.der.clone()])),
            Who::Foreign => PeerCertificates(Arc::new(vec![self.pki.foreign.der.clone()])),
            Who::Nobody => PeerCertificates::default(),
        }
    }

    pub async fn send(
        &self,
        who: Who,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response<Body> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = match body {
            Some(v) => {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    b = b.header(header::CONTENT_TYPE, "application/json");
                }
                Body::from(serde_json::to_vec(&v).unwrap())
            }
            None => Body::empty(),
        };
        let mut req = b.body(body).unwrap();
        req.extensions_mut().insert(self.certs(who));
        self.router().oneshot(req).await.unwrap()
    }

    /// Admin request, JSON answer.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let resp = self.send(Who::Admin, method, uri, &[], body).await;
        json(resp).await
    }

    pub async fn create_endpoint(&self, ns: &str, name: &str, uid: &str) -> Value {
        let (code, body) = self
            .call(
                Method::POST,
                &format!("{BASE}/namespaces/{ns}/coredumpendpoints"),
                Some(endpoint(name, uid)),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn create_coredump(&self, ns: &str, body: Value) -> Value {
        let (code, body) = self
            .call(
                Method::POST,
                &format!("{BASE}/namespaces/{ns}/coredumps"),
                Some(body),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        body
    }
}

pub async fn bytes(resp: Response<Body>) -> Vec<u8> {
    resp.into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

pub async fn json(resp: Response<Body>) -> (StatusCode, Value) {
    let code = resp.status();
    let b = bytes(resp).await;
    let v = serde_json::from_slice(&b)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&b)));
    (code, v)
}

pub fn endpoint(name: &str, uid: &str) -> Value {
    serde_json::json!({
        "apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
        "metadata": {"name": name}, "spec": {"podUID": uid}
    })
}

pub fn coredump(name: &str, ns: &str, uid: &str, container: &str, core_size: u64) -> Value {
    serde_json::json!({
        "apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "Coredump",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "podName": "web-0", "podUID": uid, "containerName": container,
                 "pid": 42, "signal": 11, "signalName": "SIGSEGV", "executable": "/bin/app",
                 "crashTime": "2024-05-01T10:00:00Z"},
        "status": {"state": "Stored", "coreSize": core_size, "compression": "zstd",
                   "blobPath": format!("{ns}/{uid}/{container}/{name}.core.zst")}
    })
}

/// Asserts a Kubernetes failure Status.
pub fn assert_status(body: &Value, reason: &str, code: u16) {
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert_eq!(body["code"], code, "{body}");
}
