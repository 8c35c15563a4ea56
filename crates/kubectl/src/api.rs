//! The few requests the plugin makes to `coredump.fujitsu.com/v1alpha1`, through the typed
//! client of `coredump-api` (`coredump_api::client`, shared with the agent and the GC); its
//! errors become the plugin's [`Error`], which names the object the request was about.

use coredump_api::client::{self, ListOptions};
use coredump_api::{COREDUMP_ENDPOINTS, COREDUMPS, Coredump, CoredumpEndpoint};
use http::Response;
use kube::Client;
use kube::client::Body;

pub use coredump_api::paths::{core_path, dump_path, object_path};

use crate::Error;

/// Sends a GET for `path` and returns the response once its status is a success; an error
/// status becomes [`Error::Api`] described by `action`.
pub async fn open(client: &Client, path: &str, action: &str) -> Result<Response<Body>, Error> {
    Ok(client::open(client, path, action).await?)
}

/// Lists `Coredump`s of `namespace` (all namespaces when `None`), only those of pod `pod` when
/// given (server-side field selector `spec.podName`).
pub async fn list_coredumps(
    client: &Client,
    namespace: Option<&str>,
    pod: Option<&str>,
) -> Result<Vec<Coredump>, Error> {
    let options = ListOptions {
        field_selector: pod.map(|pod| format!("spec.podName={pod}")),
        ..ListOptions::default()
    };
    let list = client::list(client, namespace, COREDUMPS, &options).await?;
    Ok(list.items)
}

/// Reads one `Coredump`.
pub async fn get_coredump(client: &Client, namespace: &str, name: &str) -> Result<Coredump, Error> {
    Ok(client::get(client, namespace, COREDUMPS, name).await?)
}

/// Reads one `CoredumpEndpoint`; a missing one is [`Error::EndpointMissing`], which says how
/// to create it.
pub async fn get_endpoint(
    client: &Client,
    namespace: &str,
    pod: &str,
) -> Result<CoredumpEndpoint, Error> {
    match client::get(client, namespace, COREDUMP_ENDPOINTS, pod).await {
        Err(e) if e.is_not_found() => Err(Error::EndpointMissing {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
        }),
        other => Ok(other?),
    }
}
