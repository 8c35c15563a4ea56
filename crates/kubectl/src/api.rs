//! The few requests the plugin makes to `coredump.fujitsu.com/v1alpha1`, through kube-rs's raw
//! request API with our own typed objects from `coredump-api` (they are not kube-rs `Resource`s).
//! Error answers become [`Error::Api`] with the server's `Status` reason and message and the
//! object the request was about.

use coredump_api::{
    COREDUMP_ENDPOINTS, COREDUMPS, Coredump, CoredumpEndpoint, GROUP, List, Status, VERSION,
};
use http::{Request, Response};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;

use crate::Error;

/// `/apis/<group>/<version>`.
fn group_path() -> String {
    format!("/apis/{GROUP}/{VERSION}")
}

/// What stays literal in a path segment or query value: RFC 3986's unreserved characters.
const UNRESERVED_ONLY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment or query value (names come from the command line).
fn enc(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED_ONLY).to_string()
}

/// Path of a namespaced object (`resource` plural), or of its collection when `name` is `None`.
pub fn object_path(namespace: &str, resource: &str, name: Option<&str>) -> String {
    let mut path = format!("{}/namespaces/{}/{resource}", group_path(), enc(namespace));
    if let Some(name) = name {
        path.push('/');
        path.push_str(&enc(name));
    }
    path
}

/// Path of the `core` subresource of a `Coredump`.
pub fn core_path(namespace: &str, name: &str) -> String {
    format!("{}/core", object_path(namespace, COREDUMPS, Some(name)))
}

/// Path of the `dump` subresource of a `CoredumpEndpoint`, optionally for one container.
pub fn dump_path(namespace: &str, pod: &str, container: Option<&str>) -> String {
    let mut path = format!(
        "{}/dump",
        object_path(namespace, COREDUMP_ENDPOINTS, Some(pod))
    );
    if let Some(c) = container {
        path.push_str("?container=");
        path.push_str(&enc(c));
    }
    path
}

/// Sends a GET for `path` and returns the response once its status is a success; an error
/// status becomes [`Error::Api`] described by `action`.
pub async fn open(client: &Client, path: &str, action: &str) -> Result<Response<Body>, Error> {
    let request = Request::get(path)
        .body(Body::from(Vec::new()))
        .map_err(|e| Error::Api {
            action: action.to_owned(),
            code: 0,
            reason: "BadRequest".into(),
            message: e.to_string(),
        })?;
    let response = client
        .send(request)
        .await
        .map_err(|source| Error::Transport {
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

/// Turns an error answer into [`Error::Api`]: the `Status` reason and message when the body is
/// one, else the HTTP reason and the body text.
pub fn status_error(action: &str, code: http::StatusCode, body: &[u8]) -> Error {
    let (reason, message) = match serde_json::from_slice::<Status>(body) {
        Ok(status) => (
            status
                .reason
                .and_then(|r| serde_json::to_value(r).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| code.canonical_reason().unwrap_or("Error").to_owned()),
            status.message,
        ),
        Err(_) => (
            code.canonical_reason().unwrap_or("Error").to_owned(),
            String::from_utf8_lossy(body).trim().to_owned(),
        ),
    };
    Error::Api {
        action: action.to_owned(),
        code: code.as_u16(),
        reason,
        message,
    }
}

async fn get_json<T: DeserializeOwned>(
    client: &Client,
    path: &str,
    action: &str,
) -> Result<T, Error> {
    let response = open(client, path, action).await?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|source| Error::Transport {
            action: action.to_owned(),
            source,
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|source| Error::Decode {
        action: action.to_owned(),
        source,
    })
}

/// Lists `Coredump`s of `namespace` (all namespaces when `None`), only those of pod `pod` when
/// given (server-side field selector `spec.podName`).
pub async fn list_coredumps(
    client: &Client,
    namespace: Option<&str>,
    pod: Option<&str>,
) -> Result<Vec<Coredump>, Error> {
    let mut path = match namespace {
        Some(ns) => object_path(ns, COREDUMPS, None),
        None => format!("{}/{COREDUMPS}", group_path()),
    };
    if let Some(pod) = pod {
        path.push_str("?fieldSelector=");
        path.push_str(&enc(&format!("spec.podName={pod}")));
    }
    let action = match namespace {
        Some(ns) => format!("listing coredumps in namespace {ns:?}"),
        None => "listing coredumps in all namespaces".to_owned(),
    };
    let list: List<Coredump> = get_json(client, &path, &action).await?;
    Ok(list.items)
}

/// Reads one `Coredump`.
pub async fn get_coredump(client: &Client, namespace: &str, name: &str) -> Result<Coredump, Error> {
    let action = format!("getting coredump {name:?} in namespace {namespace:?}");
    get_json(
        client,
        &object_path(namespace, COREDUMPS, Some(name)),
        &action,
    )
    .await
}

/// Reads one `CoredumpEndpoint`; a missing one is [`Error::EndpointMissing`], which says how
/// to create it.
pub async fn get_endpoint(
    client: &Client,
    namespace: &str,
    pod: &str,
) -> Result<CoredumpEndpoint, Error> {
    let action = format!("getting coredumpendpoint {pod:?} in namespace {namespace:?}");
    let path = object_path(namespace, COREDUMP_ENDPOINTS, Some(pod));
    match get_json(client, &path, &action).await {
        Err(e) if e.is_not_found() => Err(Error::EndpointMissing {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_names() {
        assert_eq!(
            core_path("host", "a.b-1"),
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/host/coredumps/a.b-1/core"
        );
        assert_eq!(
            dump_path("ns", "web", Some("../x")),
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/ns/coredumpendpoints/web/dump?container=..%2Fx"
        );
    }

    #[test]
    fn status_bodies_become_reason_and_message() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"coredumps.coredump.fujitsu.com \"x\" not found","reason":"NotFound","code":404}"#;
        let e = status_error("getting coredump \"x\"", http::StatusCode::NOT_FOUND, body);
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "getting coredump \"x\": NotFound: coredumps.coredump.fujitsu.com \"x\" not found"
        );
        let e = status_error("listing", http::StatusCode::FORBIDDEN, b"nope\n");
        assert_eq!(e.to_string(), "listing: Forbidden: nope");
    }
}
