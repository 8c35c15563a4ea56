//! A minimal aggregated API server for `coredump.fujitsu.com/v1alpha1`, over HTTPS with rustls:
//! asks for (does not require) a client certificate chained to the front-proxy CA, records every
//! request, and answers
//! - `GET /apis` with 406 (no aggregated discovery v2: kube-apiserver falls back to the group
//!   version), `/openapi/*` with 404 (no spec),
//! - `GET /apis/coredump.fujitsu.com/v1alpha1` with an `APIResourceList`,
//! - any other path under the group version with `bytes=N` in the query with N pattern bytes
//!   (optionally `chunk=C&delay_ms=D`: C-byte pieces, D ms apart), else a JSON echo of the path.

use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use coredump_testplane::{TestCa, aggregation};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::pattern;

/// One request as our server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Every header line, in order (names lowercased by hyper).
    pub headers: Vec<(String, String)>,
    /// The client's TLS certificate chain (leaf first), DER.
    pub client_certs: Vec<Vec<u8>>,
    pub alpn: Option<String>,
    pub http_version: String,
    /// Since the server started.
    pub at: Duration,
}

impl Recorded {
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn user(&self) -> Option<&str> {
        self.header_values("x-remote-user").first().copied()
    }
    pub fn groups(&self) -> Vec<&str> {
        self.header_values("x-remote-group")
    }
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }
}

/// How a streamed response body ended, as our server saw it.
#[derive(Clone, Debug)]
pub struct StreamEnd {
    pub uri: String,
    /// Bytes handed to hyper (≥ bytes the peer received).
    pub sent: u64,
    /// All `bytes=N` sent, versus dropped early (the peer went away or cancelled).
    pub complete: bool,
    /// Since the server started.
    pub at: Duration,
}

#[derive(Clone)]
struct Sinks {
    requests: Arc<Mutex<Vec<Recorded>>>,
    streams: Arc<Mutex<Vec<StreamEnd>>>,
    start: Instant,
}

/// The running server; stops when dropped.
pub struct FakeServer {
    pub port: u16,
    pub ca: TestCa,
    requests: Arc<Mutex<Vec<Recorded>>>,
    streams: Arc<Mutex<Vec<StreamEnd>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeServer {
    /// Starts on a free port of 127.0.0.1 (and [::1] when it can bind the same port), with a
    /// serving certificate for `coredump.<namespace>.svc` signed by a fresh CA, verifying client
    /// certificates against `front_proxy_ca_pem`.
    pub fn start(namespace: &str, front_proxy_ca_pem: &str) -> FakeServer {
        let ca = TestCa::new("aggregated-test-ca").unwrap();
        let serving = aggregation::issue_serving_cert(&ca, namespace).unwrap();
        let config = tls_config(&serving.cert_der, &serving.key_der, front_proxy_ca_pem);
        let v4 = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = v4.local_addr().unwrap().port();
        let v6 = std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, port)).ok();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let sinks = Sinks {
            requests: requests.clone(),
            streams: streams.clone(),
            start: Instant::now(),
        };
        std::thread::Builder::new()
            .name("fake-aggregated".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let acceptor = TlsAcceptor::from(Arc::new(config));
                    for listener in std::iter::once(v4).chain(v6) {
                        listener.set_nonblocking(true).unwrap();
                        let listener = TcpListener::from_std(listener).unwrap();
                        tokio::spawn(accept_loop(listener, acceptor.clone(), sinks.clone()));
                    }
                    let _ = stop_rx.await;
                });
            })
            .unwrap();
        FakeServer {
            port,
            ca,
            requests,
            streams,
            stop: Some(stop_tx),
        }
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Every streamed body that has ended (completed or dropped) so far.
    pub fn stream_ends(&self) -> Vec<StreamEnd> {
        self.streams.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn tls_config(cert_der: &[u8], key_der: &[u8], front_proxy_ca_pem: &str) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let (_, pem) = x509_parser::pem::parse_x509_pem(front_proxy_ca_pem.as_bytes()).unwrap();
    roots.add(CertificateDer::from(pem.contents)).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(cert_der.to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.to_vec())),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, sinks: Sinks) {
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let sinks = sinks.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let (_, session) = tls.get_ref();
            let client_certs: Vec<Vec<u8>> = session
                .peer_certificates()
                .unwrap_or_default()
                .iter()
                .map(|c| c.to_vec())
                .collect();
            let alpn = session
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let record = Recorded {
                        method: request.method().to_string(),
                        uri: request
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        headers: request
                            .headers()
                            .iter()
                            .map(|(n, v)| {
                                (
                                    n.to_string(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect(),
                        client_certs: client_certs.clone(),
                        alpn: alpn.clone(),
                        http_version: format!("{:?}", request.version()),
                        at: sinks.start.elapsed(),
                    };
                    sinks.requests.lock().unwrap().push(record.clone());
                    let response = respond(&record, &sinks);
                    async move { Ok::<_, Infallible>(response) }
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json(
        code,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn query_u64(uri: &str, key: &str) -> Option<u64> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

fn respond(record: &Recorded, sinks: &Sinks) -> Response<Body> {
    let group_version = format!("/apis/{}/{}", super::GROUP, super::VERSION);
    let path = record.path();
    if path == "/apis" {
        return status(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            "no aggregated discovery here",
        );
    }
    if path.starts_with("/openapi/") {
        return status(StatusCode::NOT_FOUND, "NotFound", "no OpenAPI here");
    }
    if path == group_version {
        return json(
            StatusCode::OK,
            serde_json::json!({
                "kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": format!("{}/{}", super::GROUP, super::VERSION),
                "resources": [
                    {"name": "foos", "singularName": "foo", "namespaced": true, "kind": "Foo",
                     "verbs": ["get", "list"]},
                    {"name": "foos/dump", "singularName": "", "namespaced": true, "kind": "Foo",
                     "verbs": ["get"]},
                ],
            }),
        );
    }
    if !path.starts_with(&format!("{group_version}/")) {
        return status(StatusCode::NOT_FOUND, "NotFound", "not ours");
    }
    match query_u64(&record.uri, "bytes") {
        Some(total) => stream(
            StreamState {
                uri: record.uri.clone(),
                offset: 0,
                total,
                sinks: sinks.clone(),
            },
            query_u64(&record.uri, "chunk").unwrap_or(pattern::BLOCK as u64),
            Duration::from_millis(query_u64(&record.uri, "delay_ms").unwrap_or(0)),
        ),
        None => json(
            StatusCode::OK,
            serde_json::json!({"kind": "Echo", "path": path}),
        ),
    }
}

/// A body being streamed; records how it ended when dropped.
struct StreamState {
    uri: String,
    offset: u64,
    total: u64,
    sinks: Sinks,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        let end = StreamEnd {
            uri: self.uri.clone(),
            sent: self.offset,
            complete: self.offset == self.total,
            at: self.sinks.start.elapsed(),
        };
        self.sinks.streams.lock().unwrap().push(end);
    }
}

/// `state.total` pattern bytes in `chunk`-byte pieces, `delay` apart.
fn stream(state: StreamState, chunk: u64, delay: Duration) -> Response<Body> {
    let total = state.total;
    let pieces = futures::stream::unfold(state, move |mut state| async move {
        if state.offset >= state.total {
            return None;
        }
        if !delay.is_zero() && state.offset > 0 {
            tokio::time::sleep(delay).await;
        }
        let len = chunk.min(state.total - state.offset) as usize;
        let bytes = Bytes::from(pattern::slice(state.offset, len));
        state.offset += len as u64;
        Some((Ok::<_, Infallible>(bytes), state))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/octet-stream")
        .header("content-length", total.to_string())
        .body(Body::from_stream(pieces))
        .unwrap()
}
