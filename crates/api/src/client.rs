//! The typed client of `coredump.fujitsu.com/v1alpha1` over kube-rs's [`Client`] (feature
//! `kube`): requests built from [`crate::paths`], answers decoded into this crate's own types,
//! error answers turned into [`ClientError::Api`] with the server's `Status` reason and the
//! object the request was about. The plugin, the agent and the GC call our API through it, and
//! [`KubeCoredump`] / [`KubeCoredumpEndpoint`] give kube-rs users (`Api<K>`, watchers,
//! reflectors) the same kinds as [`kube::Resource`]s.

use std::borrow::Cow;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta as KubeObjectMeta;
use kube::Client;
use kube::client::Body;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::paths::{collection_path, encode, object_path};
use crate::{
    API_VERSION, COREDUMP_ENDPOINT_KIND, COREDUMP_ENDPOINTS, COREDUMP_KIND, COREDUMPS, Coredump,
    CoredumpEndpoint, CoredumpEndpointSpec, CoredumpEndpointStatus, CoredumpSpec, CoredumpStatus,
    GROUP, List, Status, VERSION,
};

/// A request to our API that failed; every variant names what it was about.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error (`NotFound`, `Forbidden`, ...).
    #[error("{action}: {reason}: {message}")]
    Api {
        /// What we were doing, naming the object: `getting coredump "x" in namespace "y"`.
        action: String,
        /// HTTP status code.
        code: u16,
        /// `Status.reason`, or the HTTP reason phrase when the body was no `Status`.
        reason: String,
        /// `Status.message`, or the body text.
        message: String,
    },
    /// No answer (connection refused, TLS, timeout) or the body broke off.
    #[error("{action}: {source}")]
    Transport {
        /// What we were doing.
        action: String,
        /// What the client said.
        #[source]
        source: kube::Error,
    },
    /// The answer was not the JSON we expected.
    #[error("{action}: unexpected answer: {source}")]
    Decode {
        /// What we were doing.
        action: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The request could not even be built (an invalid header value).
    #[error("{action}: {message}")]
    Request {
        /// What we were doing.
        action: String,
        /// What `http` said.
        message: String,
    },
}

impl ClientError {
    /// HTTP status of an error answer (0 for every other failure).
    pub fn code(&self) -> u16 {
        match self {
            ClientError::Api { code, .. } => *code,
            _ => 0,
        }
    }

    /// A 404: the object (or its namespace) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == 404
    }
}

/// Turns an error answer into [`ClientError::Api`]: the `Status` reason and message when the
/// body is one, else the HTTP reason and the body text.
pub fn status_error(action: &str, code: StatusCode, body: &[u8]) -> ClientError {
    let phrase = || code.canonical_reason().unwrap_or("Error").to_owned();
    let (reason, message) = match serde_json::from_slice::<Status>(body) {
        Ok(status) => (
            status
                .reason
                .and_then(|r| serde_json::to_value(r).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(phrase),
            status.message,
        ),
        Err(_) => (phrase(), String::from_utf8_lossy(body).trim().to_owned()),
    };
    ClientError::Api {
        action: action.to_owned(),
        code: code.as_u16(),
        reason,
        message,
    }
}

/// A request without a body, asking for bytes `first..=last` when `range` is given.
fn request(
    method: http::Method,
    path: &str,
    range: Option<(u64, u64)>,
    action: &str,
) -> Result<Request<Body>, ClientError> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some((first, last)) = range {
        builder = builder.header(http::header::RANGE, format!("bytes={first}-{last}"));
    }
    builder
        .body(Body::from(Vec::new()))
        .map_err(|e| ClientError::Request {
            action: action.to_owned(),
            message: e.to_string(),
        })
}

/// Sends `request` and returns the response once its status is a success; an error status
/// becomes [`ClientError::Api`] described by `action`.
async fn send(
    client: &Client,
    request: Request<Body>,
    action: &str,
) -> Result<Response<Body>, ClientError> {
    let response = client
        .send(request)
        .await
        .map_err(|source| ClientError::Transport {
            action: action.to_owned(),
            source,
        })?;
    let code = response.status();
    if code.is_success() {
        return Ok(response);
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Err(status_error(action, code, &body))
}

/// Builds and sends one request without a body: the successful response, body unread.
async fn call(
    client: &Client,
    method: http::Method,
    path: &str,
    range: Option<(u64, u64)>,
    action: &str,
) -> Result<Response<Body>, ClientError> {
    send(client, request(method, path, range, action)?, action).await
}

/// GET `path` (a subresource, a download): the successful response, body unread.
pub async fn open(
    client: &Client,
    path: &str,
    action: &str,
) -> Result<Response<Body>, ClientError> {
    call(client, http::Method::GET, path, None, action).await
}

/// GET bytes `first..=last` of `path` (the `core` subresource): the `206 Partial Content`
/// response, body unread. A success without the range is [`ClientError::Api`] `NoRange`.
pub async fn open_range(
    client: &Client,
    path: &str,
    first: u64,
    last: u64,
    action: &str,
) -> Result<Response<Body>, ClientError> {
    let response = call(client, http::Method::GET, path, Some((first, last)), action).await?;
    if response.status() != StatusCode::PARTIAL_CONTENT {
        return Err(ClientError::Api {
            action: action.to_owned(),
            code: response.status().as_u16(),
            reason: "NoRange".into(),
            message: "the server ignored the Range request".into(),
        });
    }
    Ok(response)
}

/// Reads a successful response's body as JSON.
async fn decode<T: DeserializeOwned>(
    response: Response<Body>,
    action: &str,
) -> Result<T, ClientError> {
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|source| ClientError::Transport {
            action: action.to_owned(),
            source,
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
        action: action.to_owned(),
        source,
    })
}

/// GET `path` decoded as `T`.
async fn get_json<T: DeserializeOwned>(
    client: &Client,
    path: &str,
    action: &str,
) -> Result<T, ClientError> {
    decode(open(client, path, action).await?, action).await
}

/// The query of a list: selectors evaluated by the server, and one page's size and position.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `fieldSelector` (e.g. `spec.podName=web-0`).
    pub field_selector: Option<String>,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// Page size (`limit`); all at once when `None`.
    pub limit: Option<u32>,
    /// The previous page's `metadata.continue`.
    pub continue_token: Option<String>,
}

impl ListOptions {
    fn query(&self) -> String {
        let pairs = [
            ("fieldSelector", self.field_selector.clone()),
            ("labelSelector", self.label_selector.clone()),
            ("limit", self.limit.map(|l| l.to_string())),
            ("continue", self.continue_token.clone()),
        ];
        let query: Vec<String> = pairs
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| format!("{key}={}", encode(&v))))
            .collect();
        if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        }
    }
}

/// How errors name one object of `resource`: `coredump`, `coredumpendpoint`.
fn noun(resource: &str) -> &str {
    match resource {
        COREDUMPS => "coredump",
        COREDUMP_ENDPOINTS => "coredumpendpoint",
        other => other,
    }
}

/// `<verb> <noun> "<name>" in namespace "<namespace>"`: what errors say a request was about.
fn object_action(verb: &str, resource: &str, namespace: &str, name: &str) -> String {
    format!(
        "{verb} {} {name:?} in namespace {namespace:?}",
        noun(resource)
    )
}

/// Where a list looks, for its error messages.
fn scope(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("in namespace {ns:?}"),
        None => "in all namespaces".to_owned(),
    }
}

/// One page of `resource` (a plural of this group) in `namespace` (all when `None`).
pub async fn list<T: DeserializeOwned>(
    client: &Client,
    namespace: Option<&str>,
    resource: &str,
    options: &ListOptions,
) -> Result<List<T>, ClientError> {
    let path = format!(
        "{}{}",
        collection_path(namespace, resource),
        options.query()
    );
    let action = format!("listing {resource} {}", scope(namespace));
    get_json(client, &path, &action).await
}

/// Every page of `resource` in `namespace` (all when `None`), `page` items at a time: the whole
/// list or an error, never a partial answer mistaken for the truth.
pub async fn list_all<T: DeserializeOwned>(
    client: &Client,
    namespace: Option<&str>,
    resource: &str,
    page: u32,
    mut options: ListOptions,
) -> Result<Vec<T>, ClientError> {
    options.limit = Some(page);
    let mut items = Vec::new();
    loop {
        let list: List<T> = list(client, namespace, resource, &options).await?;
        items.extend(list.items);
        match list.metadata.continue_token.filter(|c| !c.is_empty()) {
            Some(token) => options.continue_token = Some(token),
            None => return Ok(items),
        }
    }
}

/// Reads one object of `resource`.
pub async fn get<T: DeserializeOwned>(
    client: &Client,
    namespace: &str,
    resource: &str,
    name: &str,
) -> Result<T, ClientError> {
    let action = object_action("getting", resource, namespace, name);
    get_json(
        client,
        &object_path(namespace, resource, Some(name)),
        &action,
    )
    .await
}

/// Deletes one object of `resource`; one already gone is success.
pub async fn delete(
    client: &Client,
    namespace: &str,
    resource: &str,
    name: &str,
) -> Result<(), ClientError> {
    let action = object_action("deleting", resource, namespace, name);
    let path = object_path(namespace, resource, Some(name));
    match call(client, http::Method::DELETE, &path, None, &action).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// `Coredump` as a kube-rs [`kube::Resource`]: the same JSON as [`Coredump`], with
/// `k8s-openapi`'s `ObjectMeta`, so `Api<KubeCoredump>`, watchers and reflectors work on it.
/// Convert with `TryFrom` both ways.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeCoredump {
    /// Always [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Always [`COREDUMP_KIND`].
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: KubeObjectMeta,
    /// Facts about the crash.
    pub spec: CoredumpSpec,
    /// What became of the core.
    #[serde(default)]
    pub status: CoredumpStatus,
}

/// `CoredumpEndpoint` as a kube-rs [`kube::Resource`] (see [`KubeCoredump`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeCoredumpEndpoint {
    /// Always [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Always [`COREDUMP_ENDPOINT_KIND`].
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata; `name` is the pod name.
    #[serde(default)]
    pub metadata: KubeObjectMeta,
    /// Which pod.
    #[serde(default)]
    pub spec: CoredumpEndpointSpec,
    /// Optional observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CoredumpEndpointStatus>,
}

/// Implements kube-rs's `Resource` for one of our kinds (static type information, namespaced).
macro_rules! kube_resource {
    ($ty:ty, $kind:expr, $plural:expr) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                GROUP.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                VERSION.into()
            }
            fn api_version(_: &()) -> Cow<'_, str> {
                API_VERSION.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &KubeObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut KubeObjectMeta {
                &mut self.metadata
            }
        }
    };
}

kube_resource!(KubeCoredump, COREDUMP_KIND, COREDUMPS);
kube_resource!(
    KubeCoredumpEndpoint,
    COREDUMP_ENDPOINT_KIND,
    COREDUMP_ENDPOINTS
);

/// Re-types an object whose two types share one JSON form (ours and kube-rs's).
fn retype<A: Serialize, B: DeserializeOwned>(from: &A) -> Result<B, serde_json::Error> {
    serde_json::to_value(from).and_then(serde_json::from_value)
}

/// Implements `TryFrom` both ways between one of our kinds and its kube-rs form.
macro_rules! convert {
    ($ours:ty, $kube:ty) => {
        impl TryFrom<&$ours> for $kube {
            type Error = serde_json::Error;
            fn try_from(object: &$ours) -> Result<$kube, serde_json::Error> {
                retype(object)
            }
        }
        impl TryFrom<&$kube> for $ours {
            type Error = serde_json::Error;
            fn try_from(object: &$kube) -> Result<$ours, serde_json::Error> {
                retype(object)
            }
        }
    };
}

convert!(Coredump, KubeCoredump);
convert!(CoredumpEndpoint, KubeCoredumpEndpoint);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Analysis, CoredumpReason, CoredumpState, ManagedFieldsEntry, Module, ObjectMeta};
    use kube::Resource;

    #[test]
    fn status_bodies_become_reason_and_message() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"coredumps.coredump.fujitsu.com \"x\" not found","reason":"NotFound","code":404}"#;
        let e = status_error("getting coredump \"x\"", StatusCode::NOT_FOUND, body);
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "getting coredump \"x\": NotFound: coredumps.coredump.fujitsu.com \"x\" not found"
        );
        let e = status_error("listing", StatusCode::FORBIDDEN, b"nope\n");
        assert_eq!(e.to_string(), "listing: Forbidden: nope");
    }

    #[test]
    fn list_options_become_an_encoded_query() {
        assert_eq!(ListOptions::default().query(), "");
        let options = ListOptions {
            field_selector: Some("spec.podName=web 0".into()),
            limit: Some(500),
            continue_token: Some("a+b/c=".into()),
            ..ListOptions::default()
        };
        assert_eq!(
            options.query(),
            "?fieldSelector=spec.podName%3Dweb%200&limit=500&continue=a%2Bb%2Fc%3D"
        );
    }

    #[test]
    fn kube_resources_name_our_kinds() {
        assert_eq!(KubeCoredump::kind(&()), "Coredump");
        assert_eq!(KubeCoredump::plural(&()), "coredumps");
        assert_eq!(KubeCoredump::api_version(&()), API_VERSION);
        assert_eq!(
            KubeCoredump::url_path(&(), Some("ns")),
            collection_path(Some("ns"), COREDUMPS)
        );
        assert_eq!(
            KubeCoredumpEndpoint::url_path(&(), Some("ns")),
            collection_path(Some("ns"), COREDUMP_ENDPOINTS)
        );
    }

    /// Every field survives ours → kube-rs's → ours, so nothing is lost on either side.
    #[test]
    fn a_full_coredump_survives_the_kube_form() {
        let ours = Coredump {
            api_version: API_VERSION.into(),
            kind: COREDUMP_KIND.into(),
            metadata: ObjectMeta {
                name: "c-1".into(),
                namespace: "app".into(),
                uid: "u-1".into(),
                resource_version: "42".into(),
                creation_timestamp: Some("2026-12-07T10:00:00Z".into()),
                labels: [("a".to_owned(), "b".to_owned())].into(),
                annotations: [("c".to_owned(), "d".to_owned())].into(),
                managed_fields: vec![ManagedFieldsEntry {
                    manager: "agent".into(),
                    operation: "Update".into(),
                    ..ManagedFieldsEntry::default()
                }],
                ..ObjectMeta::default()
            },
            spec: CoredumpSpec {
                pid: 7,
                pod_name: Some("web-0".into()),
                signal_name: "SIGSEGV".into(),
                ..CoredumpSpec::default()
            },
            status: CoredumpStatus {
                state: CoredumpState::Failed,
                reason: Some(CoredumpReason::StoreUnavailable),
                analysis: Some(Analysis {
                    modules: vec![Module {
                        build_id: Some("ab".into()),
                        ..Module::default()
                    }],
                    ..Analysis::default()
                }),
                ..CoredumpStatus::default()
            },
        };
        let kube = KubeCoredump::try_from(&ours).unwrap();
        assert_eq!(kube.metadata.name.as_deref(), Some("c-1"));
        assert_eq!(kube.meta().namespace.as_deref(), Some("app"));
        assert_eq!(Coredump::try_from(&kube).unwrap(), ours);
    }
}
