//! `Status`: the body of every error (and of a successful delete-collection) in the Kubernetes
//! API. kubectl prints `Error from server (<reason>): <message>` from it, and clients branch on
//! `reason` and `code`, so both are typed here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Machine-readable reason of a failure (`Status.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusReason {
    /// 404: the object or path does not exist.
    NotFound,
    /// 409: create of an existing name.
    AlreadyExists,
    /// 409: stale `resourceVersion` or failed precondition.
    Conflict,
    /// 422: the object failed validation (see `details.causes`).
    Invalid,
    /// 400: malformed request (query parameters, body, selectors).
    BadRequest,
    /// 405: verb not supported on the path.
    MethodNotAllowed,
    /// 401: no authenticated user.
    Unauthorized,
    /// 403: authenticated, not allowed.
    Forbidden,
    /// 410: `resourceVersion` or continue token older than the retained history.
    Expired,
    /// 406: no acceptable representation.
    NotAcceptable,
    /// 415: request body content type not supported (e.g. server-side apply).
    UnsupportedMediaType,
    /// 413: request body too large.
    RequestEntityTooLarge,
    /// 416: `Range` header cannot be satisfied (not a Kubernetes reason: ours).
    RequestedRangeNotSatisfiable,
    /// 504: the server timed out.
    Timeout,
    /// 503: temporarily unavailable.
    ServiceUnavailable,
    /// 500: internal error.
    InternalError,
    /// Any reason this version does not know (when decoding other servers' answers).
    #[serde(other)]
    Unknown,
}

/// One field-level problem (`Status.details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.StatusCause")]
pub struct StatusCause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, ...
    pub reason: String,
    /// Human-readable description.
    pub message: String,
    /// JSON path of the field, e.g. `spec.podUID`.
    pub field: String,
}

/// Which object a failure concerns (`Status.details`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails")]
pub struct StatusDetails {
    /// Object name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// API group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Plural resource name (Kubernetes puts the resource here, not the kind).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Object UID, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Field-level causes (for `Invalid`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// Suggested retry delay.
    #[serde(
        default,
        rename = "retryAfterSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after_seconds: Option<u32>,
}

/// Empty metadata object (`Status.metadata` is always `{}` for us).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyMeta {}

/// `v1` `Status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.Status")]
pub struct Status {
    /// Always `Status`.
    pub kind: String,
    /// Always `v1`.
    pub api_version: String,
    /// Unused: always empty.
    #[serde(default)]
    #[schemars(with = "crate::meta::ListMeta")]
    pub metadata: EmptyMeta,
    /// `Success` or `Failure`.
    pub status: String,
    /// Human-readable explanation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine-readable reason (absent on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub reason: Option<StatusReason>,
    /// Which object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// HTTP status code.
    pub code: u16,
}

impl Status {
    /// A failure with the given reason, message and code.
    pub fn failure(reason: StatusReason, code: u16, message: impl Into<String>) -> Self {
        Self {
            kind: "Status".to_owned(),
            api_version: "v1".to_owned(),
            metadata: EmptyMeta {},
            status: "Failure".to_owned(),
            message: message.into(),
            reason: Some(reason),
            details: None,
            code,
        }
    }

    /// A success (what a delete returns when it does not return the object).
    pub fn success(details: Option<StatusDetails>) -> Self {
        Self {
            kind: "Status".to_owned(),
            api_version: "v1".to_owned(),
            metadata: EmptyMeta {},
            status: "Success".to_owned(),
            message: String::new(),
            reason: None,
            details,
            code: 200,
        }
    }

    /// Attaches details.
    pub fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(details);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_serializes_like_kubernetes() {
        let status = Status::failure(
            StatusReason::NotFound,
            404,
            r#"coredumps.coredump.fujitsu.com "x" not found"#,
        )
        .with_details(StatusDetails {
            name: "x".into(),
            group: "coredump.fujitsu.com".into(),
            kind: "coredumps".into(),
            ..Default::default()
        });
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "coredumps.coredump.fujitsu.com \"x\" not found", "reason": "NotFound",
                "details": {"name": "x", "group": "coredump.fujitsu.com", "kind": "coredumps"},
                "code": 404
            })
        );
    }

    #[test]
    fn causes_serialize_with_field_paths() {
        let status =
            Status::failure(StatusReason::Invalid, 422, "bad").with_details(StatusDetails {
                causes: vec![StatusCause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "spec.podUID".into(),
                }],
                ..Default::default()
            });
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["details"]["causes"][0]["field"], "spec.podUID");
        assert_eq!(json["reason"], "Invalid");
        assert_eq!(json["code"], 422);
    }

    #[test]
    fn unknown_reasons_decode() {
        let s: Status = serde_json::from_str(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"SomethingNew","code":499}"#,
        )
        .unwrap();
        assert_eq!(s.reason, Some(StatusReason::Unknown));
    }

    #[test]
    fn success_has_no_reason() {
        let json = serde_json::to_value(Status::success(None)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":200})
        );
    }
}
