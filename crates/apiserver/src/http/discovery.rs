//! Discovery, version and OpenAPI documents. They never change while the process runs, so the
//! OpenAPI bodies are serialized once, with a content hash for ETags and the v3 `?hash=` URL.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coredump_api::{discovery, openapi};
use sha2::{Digest, Sha256};

use super::negotiate::accepts_legacy_discovery;
use super::render;
use crate::AppState;
use crate::error::ApiError;

/// A pre-serialized document and its hash.
#[derive(Debug, Clone)]
pub struct Document {
    body: Bytes,
    hash: String,
}

impl Document {
    fn new(value: &serde_json::Value) -> Self {
        let body = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        let hash = hex::encode_upper(&Sha256::digest(&body)[..16]);
        Self { body, hash }
    }
}

/// The OpenAPI documents served.
#[derive(Debug, Clone)]
pub struct OpenApiDocs {
    v2: Document,
    v3_group_version: Document,
    v3_root: Document,
}

impl OpenApiDocs {
    /// Builds all documents.
    pub fn build() -> Arc<Self> {
        let v3_group_version = Document::new(&openapi::v3_group_version());
        let v3_root = Document::new(&openapi::v3_root(&v3_group_version.hash));
        Arc::new(Self {
            v2: Document::new(&openapi::v2()),
            v3_group_version,
            v3_root,
        })
    }
}

fn serve_document(doc: &Document, headers: &HeaderMap, immutable: bool) -> Response {
    let etag = format!("\"{}\"", doc.hash);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let cache = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    let mut resp = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, cache),
        ],
        doc.body.clone(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// `GET /apis`: the legacy `APIGroupList`; 406 when the client accepts only aggregated
/// discovery (kube-apiserver then falls back to `/apis/<group>/<version>`).
pub async fn apis(headers: HeaderMap) -> Result<Response, ApiError> {
    if !accepts_legacy_discovery(&headers) {
        return Err(ApiError::NotAcceptable {
            supported: "application/json (APIGroupList)".to_owned(),
        });
    }
    render::json(
        StatusCode::OK,
        &discovery::api_group_list(),
        "application/json",
    )
}

/// `GET /apis/coredump.fujitsu.com`.
pub async fn group() -> Result<Response, ApiError> {
    render::json(StatusCode::OK, &discovery::api_group(), "application/json")
}

/// `GET /apis/coredump.fujitsu.com/v1alpha1`.
pub async fn resources() -> Result<Response, ApiError> {
    render::json(
        StatusCode::OK,
        &discovery::resource_list(),
        "application/json",
    )
}

/// `GET /version`.
pub async fn version() -> Result<Response, ApiError> {
    let v = serde_json::json!({
        "major": "1", "minor": "0",
        "gitVersion": format!("v{}-coredump-detector", env!("CARGO_PKG_VERSION")),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    });
    render::json(StatusCode::OK, &v, "application/json")
}

/// `GET /openapi/v2`.
pub async fn openapi_v2(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve_document(&state.openapi.v2, &headers, false)
}

/// `GET /openapi/v3`.
pub async fn openapi_v3(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve_document(&state.openapi.v3_root, &headers, false)
}

/// `GET /openapi/v3/apis/coredump.fujitsu.com/v1alpha1` (cacheable forever when the `hash`
/// query matches).
pub async fn openapi_v3_group_version(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let doc = &state.openapi.v3_group_version;
    let immutable = q
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == format!("hash={}", doc.hash)));
    serve_document(doc, &headers, immutable)
}

/// `GET /healthz`, `/livez`, `/readyz`.
pub async fn health() -> &'static str {
    "ok"
}

/// `GET /api/v1/namespaces/<name>`: a synthetic, always-`Active` Namespace. Only reached when
/// kubectl talks to us directly (standalone mode; behind kube-apiserver the real namespaces
/// answer): after a 404, kubectl asks whether the namespace exists to phrase its error, and
/// without this it would print "the server could not find the requested resource" instead of
/// our Status message. Our objects may live in any namespace, so every valid name "exists".
pub async fn namespace(
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    if coredump_api::validation::dns1123_label(&name).is_err() {
        return Err(ApiError::NoRoute);
    }
    let ns = serde_json::json!({
        "kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": name},
        "spec": {}, "status": {"phase": "Active"},
    });
    render::json(StatusCode::OK, &ns, "application/json")
}
