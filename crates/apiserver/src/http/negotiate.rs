//! Content negotiation. kubectl asks for `Table` (`application/json;as=Table;v=v1;g=meta.k8s.io`),
//! metadata-only clients (the garbage collector, namespace controller) for
//! `PartialObjectMetadata`, everyone else for plain JSON; bodies must be JSON.

use axum::http::{HeaderMap, header};

use crate::error::ApiError;

/// How to represent objects in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The objects themselves.
    Object,
    /// A `Table` of the given `meta.k8s.io` version (`v1` or `v1beta1`).
    Table(&'static str),
    /// `PartialObjectMetadata` (lists: `PartialObjectMetadataList`).
    PartialMetadata,
}

/// One media range of an `Accept` header.
#[derive(Debug, Default)]
struct MediaRange<'a> {
    essence: &'a str,
    as_kind: &'a str,
    version: &'a str,
    group: &'a str,
}

fn media_ranges(accept: &str) -> impl Iterator<Item = MediaRange<'_>> {
    accept.split(',').map(|range| {
        let mut parts = range.split(';').map(str::trim);
        let mut m = MediaRange {
            essence: parts.next().unwrap_or_default(),
            ..Default::default()
        };
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim() {
                    "as" => m.as_kind = v.trim(),
                    "v" => m.version = v.trim(),
                    "g" => m.group = v.trim(),
                    _ => {}
                }
            }
        }
        m
    })
}

fn is_json(essence: &str) -> bool {
    matches!(essence, "application/json" | "*/*" | "application/*" | "")
}

/// Picks the representation for an object response from the `Accept` header.
pub fn representation(headers: &HeaderMap) -> Result<Representation, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Representation::Object);
    };
    if accept.trim().is_empty() {
        return Ok(Representation::Object);
    }
    for m in media_ranges(accept) {
        if !is_json(m.essence) {
            continue;
        }
        match (m.as_kind, m.group, m.version) {
            ("", _, _) => return Ok(Representation::Object),
            ("Table", "meta.k8s.io", "v1") => return Ok(Representation::Table("meta.k8s.io/v1")),
            ("Table", "meta.k8s.io", "v1beta1") => {
                return Ok(Representation::Table("meta.k8s.io/v1beta1"));
            }
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io", "v1") => {
                return Ok(Representation::PartialMetadata);
            }
            _ => {}
        }
    }
    Err(ApiError::NotAcceptable {
        supported: "application/json, application/json;as=Table;v=v1;g=meta.k8s.io, \
                    application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"
            .to_owned(),
    })
}

/// Whether a discovery request (`/apis`) may be answered with the legacy (non-aggregated)
/// document: yes unless the client accepts only aggregated discovery, which we do not serve.
pub fn accepts_legacy_discovery(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.trim().is_empty()
        || media_ranges(accept).any(|m| is_json(m.essence) && m.as_kind.is_empty())
}

/// The essence (`type/subtype`) of the request's `Content-Type`, lowercased.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn kubectl_get_gets_a_table() {
        let h = accept(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        );
        assert_eq!(
            representation(&h).unwrap(),
            Representation::Table("meta.k8s.io/v1")
        );
        let h = accept("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json");
        assert_eq!(
            representation(&h).unwrap(),
            Representation::Table("meta.k8s.io/v1beta1")
        );
    }

    #[test]
    fn metadata_clients_get_partial_metadata() {
        let h = accept(
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
        );
        assert_eq!(representation(&h).unwrap(), Representation::PartialMetadata);
    }

    #[test]
    fn plain_and_missing_accept_get_objects() {
        assert_eq!(
            representation(&HeaderMap::new()).unwrap(),
            Representation::Object
        );
        assert_eq!(
            representation(&accept("*/*")).unwrap(),
            Representation::Object
        );
        assert_eq!(
            representation(&accept(
                "application/vnd.kubernetes.protobuf, application/json"
            ))
            .unwrap(),
            Representation::Object
        );
        assert_eq!(
            representation(&accept(
                "application/json;as=Table;v=v2;g=meta.k8s.io,application/json"
            ))
            .unwrap(),
            Representation::Object
        );
    }

    #[test]
    fn unacceptable() {
        let err = representation(&accept("application/yaml")).unwrap_err();
        assert!(matches!(err, ApiError::NotAcceptable { .. }));
        assert!(representation(&accept("application/json;as=Table;v=v1;g=other")).is_err());
    }

    #[test]
    fn discovery_negotiation() {
        assert!(accepts_legacy_discovery(&HeaderMap::new()));
        assert!(accepts_legacy_discovery(&accept(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        )));
        assert!(!accepts_legacy_discovery(&accept(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        )));
    }
}
