//! Reading request bodies: size limit, content type, and unknown-field handling
//! (`fieldValidation`), which kubectl relies on instead of client-side schema validation.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::negotiate::content_type;
use super::params::FieldValidation;
use crate::error::ApiError;
use crate::registry::Patch;

/// Largest request body accepted (Kubernetes' limit is 3 MiB too).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Reads the whole body, at most [`MAX_BODY`] bytes.
pub async fn read(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge { limit: MAX_BODY })
}

/// Decodes a JSON object body; returns it with the warnings to send (unknown fields under
/// `Warn`). `Strict` turns unknown fields into a 400.
pub fn decode<T: DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
    validation: FieldValidation,
) -> Result<(T, Vec<String>), ApiError> {
    let ct = content_type(headers);
    if !matches!(ct.as_str(), "application/json" | "") {
        return Err(ApiError::UnsupportedMediaType {
            content_type: ct,
            supported: "application/json".to_owned(),
        });
    }
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_ignored::deserialize(&mut de, |path| unknown.push(path.to_string()))
        .map_err(|e| {
            ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
        })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("trailing data after the object: {e}")))?;
    unknown_fields(value, &unknown, validation)
}

/// Decodes an already parsed object (an apply configuration) as `T`, with the unknown-field
/// handling of [`decode`].
pub fn decode_value<T: DeserializeOwned>(
    value: &serde_json::Value,
    validation: FieldValidation,
) -> Result<(T, Vec<String>), ApiError> {
    let mut unknown = Vec::new();
    let typed: T = serde_ignored::deserialize(value.clone(), |path| unknown.push(path.to_string()))
        .map_err(|e| {
            ApiError::bad_request(format!("the apply configuration could not be decoded: {e}"))
        })?;
    unknown_fields(typed, &unknown, validation)
}

/// `Strict`: unknown fields are a 400; `Warn`: warnings; `Ignore`: nothing.
fn unknown_fields<T>(
    value: T,
    unknown: &[String],
    validation: FieldValidation,
) -> Result<(T, Vec<String>), ApiError> {
    let messages: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field {p:?}"))
        .collect();
    match validation {
        FieldValidation::Strict if !messages.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            messages.join(", ")
        ))),
        FieldValidation::Warn => Ok((value, messages)),
        _ => Ok((value, Vec::new())),
    }
}

/// Decodes a `PATCH` body by its content type: JSON merge patch or JSON patch.
pub fn decode_patch(content_type: &str, bytes: &[u8]) -> Result<Patch, ApiError> {
    let bad = |e: serde_json::Error| {
        ApiError::bad_request(format!("the patch could not be decoded: {e}"))
    };
    match content_type {
        "application/merge-patch+json" => {
            Ok(Patch::Merge(serde_json::from_slice(bytes).map_err(bad)?))
        }
        "application/json-patch+json" => {
            Ok(Patch::Json(serde_json::from_slice(bytes).map_err(bad)?))
        }
        // YAML, of which JSON (what kubectl and client-go send) is a subset.
        "application/apply-patch+yaml" => {
            let text = std::str::from_utf8(bytes).map_err(|e| {
                ApiError::bad_request(format!("the apply configuration is not UTF-8: {e}"))
            })?;
            let config: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("the apply configuration could not be decoded: {e}"))
            })?;
            Ok(Patch::Apply(config))
        }
        _ => Err(ApiError::UnsupportedMediaType {
            content_type: content_type.to_owned(),
            supported: "application/merge-patch+json, application/json-patch+json, application/apply-patch+yaml".to_owned(),
        }),
    }
}

/// Adds `Warning: 299 - "<text>"` headers.
pub fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - {:?}", w);
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;
    use coredump_api::CoredumpEndpoint;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h
    }

    const BODY: &[u8] =
        br#"{"metadata":{"name":"p","bogus":1},"spec":{"podUID":"u","extra":true}}"#;

    #[test]
    fn strict_rejects_unknown_fields() {
        let err =
            decode::<CoredumpEndpoint>(&json_headers(), BODY, FieldValidation::Strict).unwrap_err();
        assert_eq!(
            err.to_string(),
            "strict decoding error: unknown field \"metadata.bogus\", unknown field \"spec.extra\""
        );
    }

    #[test]
    fn warn_keeps_going_with_warnings() {
        let (ep, warnings) =
            decode::<CoredumpEndpoint>(&json_headers(), BODY, FieldValidation::Warn).unwrap();
        assert_eq!(ep.spec.pod_uid, "u");
        assert_eq!(
            warnings,
            vec![
                "unknown field \"metadata.bogus\"",
                "unknown field \"spec.extra\""
            ]
        );
        let (_, none) =
            decode::<CoredumpEndpoint>(&json_headers(), BODY, FieldValidation::Ignore).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn yaml_is_unsupported_and_garbage_is_bad() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        );
        assert!(matches!(
            decode::<CoredumpEndpoint>(&h, BODY, FieldValidation::Ignore),
            Err(ApiError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            decode::<CoredumpEndpoint>(&json_headers(), b"{not json", FieldValidation::Ignore),
            Err(ApiError::BadRequest { .. })
        ));
    }
}
