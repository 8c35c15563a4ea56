//! Refuses request paths whose segments could name something other than one object: after
//! percent-decoding, a segment of `/api/…` or `/apis/…` must not be empty, `.`, `..`, or hold
//! `/`, `\` or NUL (Kubernetes' `ValidatePathSegmentName` likewise answers 400). Names and
//! namespaces end up in store keys and blob paths, so this keeps traversal out before any
//! handler runs; handlers still validate what they use.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// `%XX` decoded; `None` if a `%` is not followed by two hex digits or the result is not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Why this API path is unacceptable, if it is.
pub fn unsafe_segment(path: &str) -> Option<String> {
    let rest = path
        .strip_prefix("/apis/")
        .or_else(|| path.strip_prefix("/api/"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return None;
    }
    for raw in rest.split('/') {
        let Some(segment) = percent_decode(raw) else {
            return Some(format!(
                "invalid path segment {raw:?}: bad percent-encoding"
            ));
        };
        if let Err(e) = coredump_api::validation::path_segment(&segment) {
            return Some(format!("invalid path segment {segment:?}: {e}"));
        }
    }
    None
}

/// The middleware: 400 for an unsafe path.
pub async fn reject_unsafe_paths(req: Request, next: Next) -> Response {
    if let Some(message) = unsafe_segment(req.uri().path()) {
        return ApiError::bad_request(message).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/apis/coredump.fujitsu.com/v1alpha1";

    #[test]
    fn traversal_is_caught_in_any_spelling() {
        for p in [
            "/namespaces/a/coredumps/../core",
            "/namespaces/a/coredumps/%2e%2E/core",
            "/namespaces/a/coredumps/..%2F..%2Fx/core",
            "/namespaces/%2E%2E/coredumps",
            "/namespaces/a%2Fb/coredumps",
            "/namespaces/a/coredumps/x%5C..",
            "/namespaces/a/coredumps/x%00",
            "/namespaces//coredumps",
            "/namespaces/a/coredumps/%zz",
        ] {
            assert!(unsafe_segment(&format!("{BASE}{p}")).is_some(), "{p}");
        }
        let why = unsafe_segment(&format!("{BASE}/namespaces/a/coredumps/%2E%2E")).unwrap();
        assert_eq!(
            why,
            r#"invalid path segment "..": must be a single path segment (no '/', '\', NUL, '.' or '..')"#
        );
    }

    #[test]
    fn ordinary_paths_pass() {
        for p in [
            "/apis",
            "/apis/",
            "/healthz",
            "/openapi/v3/apis/coredump.fujitsu.com/v1alpha1",
            "/apis/coredump.fujitsu.com/v1alpha1/",
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/a/coredumps/x.y-z/core",
            "/api/v1/namespaces/default",
        ] {
            assert_eq!(unsafe_segment(p), None, "{p}");
        }
    }
}
