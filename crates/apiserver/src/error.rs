//! `ApiError`: every failure the API server reports, each variant knowing its Kubernetes
//! `Status` reason and HTTP code. Handlers return it; the response is built from the variant,
//! never from a message string.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coredump_api::validation::FieldError;
use coredump_api::{GROUP, Status, StatusCause, StatusDetails, StatusReason};
use coredump_store::StoreError;

/// A failed API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The object does not exist.
    #[error("{resource}.{GROUP} {name:?} not found")]
    NotFound {
        /// Plural resource.
        resource: String,
        /// Object name.
        name: String,
    },
    /// The Coredump exists but has no core to serve (not stored, or the blob is gone).
    #[error("coredumps.{GROUP} {name:?} has no stored core ({state})")]
    NoCore {
        /// Coredump name.
        name: String,
        /// Why (its state).
        state: String,
    },
    /// The URL names nothing we serve.
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// Create of an existing name.
    #[error("{resource}.{GROUP} {name:?} already exists")]
    AlreadyExists {
        /// Plural resource.
        resource: String,
        /// Object name.
        name: String,
    },
    /// Stale resourceVersion or failed precondition.
    #[error("Operation cannot be fulfilled on {resource}.{GROUP} {name:?}: {detail}")]
    Conflict {
        /// Plural resource.
        resource: String,
        /// Object name.
        name: String,
        /// Why.
        detail: String,
    },
    /// A server-side apply set fields other managers own with other values.
    #[error("{message}")]
    ApplyConflict {
        /// Plural resource.
        resource: String,
        /// Object name.
        name: String,
        /// kube-apiserver's wording: `Apply failed with 1 conflict: conflict with "m" ...`.
        message: String,
        /// `(conflict with "<manager>", .field.path)` of each conflict.
        causes: Vec<(String, String)>,
    },
    /// The object failed validation.
    #[error("{kind}.{GROUP} {name:?} is invalid: {}", join_errors(.errors))]
    Invalid {
        /// Kind.
        kind: String,
        /// Object name.
        name: String,
        /// Field errors.
        errors: Vec<FieldError>,
    },
    /// Malformed request.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
    },
    /// Verb not allowed on the path.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// No authenticated user.
    #[error("Unauthorized")]
    Unauthorized,
    /// Authenticated but not allowed.
    #[error("{message}")]
    Forbidden {
        /// Kubernetes-style sentence naming user, verb and resource.
        message: String,
    },
    /// resourceVersion or continue token older than the retained history.
    #[error("{message}")]
    Expired {
        /// Which version.
        message: String,
    },
    /// No acceptable representation.
    #[error("only the following media types are accepted: {supported}")]
    NotAcceptable {
        /// What we can produce.
        supported: String,
    },
    /// Request body content type not supported.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {supported} (got {content_type:?})"
    )]
    UnsupportedMediaType {
        /// What the client sent.
        content_type: String,
        /// What we accept.
        supported: String,
    },
    /// Request body larger than we accept.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// `Range` outside the content.
    #[error("requested range not satisfiable: the content is {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the content.
        size: u64,
    },
    /// A stored object disagrees with its own key or fails validation (written around the API,
    /// e.g. straight into etcd): never served, never acted on.
    #[error("stored object {resource}/{namespace}/{name} is refused: {reason}")]
    Corrupt {
        /// Plural resource of the key.
        resource: String,
        /// Namespace of the key.
        namespace: String,
        /// Name of the key.
        name: String,
        /// What disagrees.
        reason: String,
    },
    /// The store failed.
    #[error("storage failed: {0}")]
    Store(#[source] StoreError),
    /// Anything else that is our fault.
    #[error("internal error: {message}")]
    Internal {
        /// What went wrong.
        message: String,
    },
}

fn join_errors(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

impl ApiError {
    /// A `BadRequest` with this message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
        }
    }

    /// The Kubernetes reason and HTTP code of this error.
    pub fn reason_and_code(&self) -> (StatusReason, StatusCode) {
        use StatusReason as R;
        match self {
            Self::NotFound { .. } | Self::NoRoute | Self::NoCore { .. } => {
                (R::NotFound, StatusCode::NOT_FOUND)
            }
            Self::AlreadyExists { .. } => (R::AlreadyExists, StatusCode::CONFLICT),
            Self::Conflict { .. } | Self::ApplyConflict { .. } => {
                (R::Conflict, StatusCode::CONFLICT)
            }
            Self::Invalid { .. } => (R::Invalid, StatusCode::UNPROCESSABLE_ENTITY),
            Self::BadRequest { .. } => (R::BadRequest, StatusCode::BAD_REQUEST),
            Self::MethodNotAllowed => (R::MethodNotAllowed, StatusCode::METHOD_NOT_ALLOWED),
            Self::Unauthorized => (R::Unauthorized, StatusCode::UNAUTHORIZED),
            Self::Forbidden { .. } => (R::Forbidden, StatusCode::FORBIDDEN),
            Self::Expired { .. } => (R::Expired, StatusCode::GONE),
            Self::NotAcceptable { .. } => (R::NotAcceptable, StatusCode::NOT_ACCEPTABLE),
            Self::UnsupportedMediaType { .. } => {
                (R::UnsupportedMediaType, StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            Self::TooLarge { .. } => (R::RequestEntityTooLarge, StatusCode::PAYLOAD_TOO_LARGE),
            Self::RangeNotSatisfiable { .. } => (
                R::RequestedRangeNotSatisfiable,
                StatusCode::RANGE_NOT_SATISFIABLE,
            ),
            Self::Store(StoreError::Expired { .. }) => (R::Expired, StatusCode::GONE),
            Self::Store(_) | Self::Internal { .. } | Self::Corrupt { .. } => {
                (R::InternalError, StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// The `Status` body of this error.
    pub fn to_status(&self) -> Status {
        let (reason, code) = self.reason_and_code();
        let status = Status::failure(reason, code.as_u16(), self.to_string());
        let details = |name: &str, kind: &str| StatusDetails {
            name: name.to_owned(),
            group: GROUP.to_owned(),
            kind: kind.to_owned(),
            ..Default::default()
        };
        match self {
            Self::NotFound { resource, name }
            | Self::AlreadyExists { resource, name }
            | Self::Conflict { resource, name, .. } => status.with_details(details(name, resource)),
            Self::ApplyConflict {
                resource,
                name,
                causes,
                ..
            } => status.with_details(StatusDetails {
                causes: causes
                    .iter()
                    .map(|(message, field)| StatusCause {
                        reason: "FieldManagerConflict".to_owned(),
                        message: message.clone(),
                        field: field.clone(),
                    })
                    .collect(),
                ..details(name, resource)
            }),
            Self::NoCore { name, .. } => {
                status.with_details(details(name, coredump_api::COREDUMPS))
            }
            Self::Invalid { kind, name, errors } => status.with_details(StatusDetails {
                causes: errors
                    .iter()
                    .map(|e| {
                        // Like Kubernetes' field.Error.ErrorBody(): kubectl prints
                        // "<field>: <message>", so the message must not repeat the field.
                        let full = e.to_string();
                        let body = full
                            .strip_prefix(&format!("{}: ", e.field))
                            .unwrap_or(&full)
                            .to_owned();
                        StatusCause {
                            reason: e.cause_reason().to_owned(),
                            message: body,
                            field: e.field.clone(),
                        }
                    })
                    .collect(),
                ..details(name, kind)
            }),
            _ => status,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(key) => Self::NotFound {
                resource: key.resource,
                name: key.name,
            },
            StoreError::AlreadyExists(key) => Self::AlreadyExists {
                resource: key.resource,
                name: key.name,
            },
            StoreError::Conflict { key, .. } => Self::Conflict {
                resource: key.resource,
                name: key.name,
                detail: "the object has been modified; please apply your changes to the latest \
                         version and try again"
                    .to_owned(),
            },
            StoreError::Expired { requested, oldest } => Self::Expired {
                message: format!(
                    "too old resource version: {requested} (oldest retained: {oldest})"
                ),
            },
            StoreError::Invalid { what, value } => {
                Self::bad_request(format!("invalid {what}: {value:?}"))
            }
            other => Self::Store(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (_, code) = self.reason_and_code();
        if code.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut resp = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Self::RangeNotSatisfiable { size } = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        if matches!(self, Self::Unauthorized) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"kubernetes-master\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coredump_api::validation::FieldErrorKind;
    use coredump_store::ObjectKey;

    fn key() -> ObjectKey {
        ObjectKey {
            resource: "coredumps".into(),
            namespace: "ns".into(),
            name: "c1".into(),
        }
    }

    #[test]
    fn store_errors_map_by_variant() {
        let cases: Vec<(StoreError, StatusReason, u16)> = vec![
            (StoreError::NotFound(key()), StatusReason::NotFound, 404),
            (
                StoreError::AlreadyExists(key()),
                StatusReason::AlreadyExists,
                409,
            ),
            (
                StoreError::Conflict {
                    key: key(),
                    current: 3,
                    expected: 2,
                },
                StatusReason::Conflict,
                409,
            ),
            (
                StoreError::Expired {
                    requested: 1,
                    oldest: 5,
                },
                StatusReason::Expired,
                410,
            ),
            (
                StoreError::Invalid {
                    what: "continue token",
                    value: "x".into(),
                },
                StatusReason::BadRequest,
                400,
            ),
        ];
        for (err, reason, code) in cases {
            let status = ApiError::from(err).to_status();
            assert_eq!((status.reason, status.code), (Some(reason), code));
        }
    }

    #[test]
    fn not_found_message_and_details_match_kubernetes() {
        let status = ApiError::from(StoreError::NotFound(key())).to_status();
        assert_eq!(
            status.message,
            "coredumps.coredump.fujitsu.com \"c1\" not found"
        );
        let d = status.details.unwrap();
        assert_eq!(
            (d.name.as_str(), d.kind.as_str(), d.group.as_str()),
            ("c1", "coredumps", GROUP)
        );
    }

    #[test]
    fn conflict_message_matches_kubernetes() {
        let status = ApiError::from(StoreError::Conflict {
            key: key(),
            current: 3,
            expected: 2,
        })
        .to_status();
        assert_eq!(
            status.message,
            "Operation cannot be fulfilled on coredumps.coredump.fujitsu.com \"c1\": the object has been \
             modified; please apply your changes to the latest version and try again"
        );
    }

    #[test]
    fn invalid_lists_causes() {
        let err = ApiError::Invalid {
            kind: "CoredumpEndpoint".into(),
            name: "p".into(),
            errors: vec![FieldError {
                field: "spec.podUID".into(),
                kind: FieldErrorKind::Required,
                detail: String::new(),
            }],
        };
        let status = err.to_status();
        assert_eq!(status.code, 422);
        assert_eq!(
            status.message,
            "CoredumpEndpoint.coredump.fujitsu.com \"p\" is invalid: spec.podUID: Required value"
        );
        let causes = status.details.unwrap().causes;
        assert_eq!(causes[0].reason, "FieldValueRequired");
        assert_eq!(causes[0].field, "spec.podUID");
        assert_eq!(causes[0].message, "Required value");
    }

    #[test]
    fn range_error_carries_content_range() {
        let resp = ApiError::RangeNotSatisfiable { size: 10 }.into_response();
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(resp.headers()[header::CONTENT_RANGE], "bytes */10");
    }
}
