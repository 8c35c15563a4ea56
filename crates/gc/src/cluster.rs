//! What the GC asks the Kubernetes API: every pod and namespace (metadata only, paginated, so
//! a list is complete or an error, never a partial answer mistaken for the truth), every
//! `Coredump` and `CoredumpEndpoint` (through kube-apiserver's aggregation), and deletes.

use std::collections::HashSet;

use coredump_api::client::{self, ListOptions};
use coredump_api::{COREDUMP_ENDPOINTS, COREDUMPS, Coredump, CoredumpEndpoint};
use coredump_store::BlobPath;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, PartialObjectMeta};
use kube::{Api, Client};
use serde::de::DeserializeOwned;

use crate::plan::{CoredumpRef, EndpointRef};

/// Page size of every list.
const PAGE: u32 = 500;

/// A failed API call.
#[derive(Debug, thiserror::Error)]
#[error("{action} {what}: {source}")]
pub struct ClusterError {
    /// `list`, `delete`, `decode`.
    pub action: &'static str,
    /// The resource or object.
    pub what: String,
    /// Cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Every page of a metadata list.
async fn list_all_metadata<K>(
    api: &Api<K>,
    what: &str,
) -> Result<Vec<PartialObjectMeta<K>>, ClusterError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list_metadata(&params).await.map_err(|e| ClusterError {
            action: "list",
            what: what.to_string(),
            source: Box::new(e),
        })?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Every page of a list of one of our kinds (`resource` a plural), in all namespaces.
async fn list_all<T: DeserializeOwned>(
    client: &Client,
    resource: &str,
) -> Result<Vec<T>, ClusterError> {
    client::list_all(client, None, resource, PAGE, ListOptions::default())
        .await
        .map_err(|e| ClusterError {
            action: "list",
            what: resource.to_owned(),
            source: Box::new(e),
        })
}

/// The live pods: UIDs, and static pods' config hashes from their genuine mirrors.
pub async fn live_pods(client: &Client) -> Result<HashSet<String>, ClusterError> {
    let pods = list_all_metadata(&Api::<Pod>::all(client.clone()), "pods").await?;
    let mut live = HashSet::new();
    for p in pods {
        if let Some(uid) = &p.metadata.uid {
            live.insert(uid.clone());
        }
        // Only a genuine mirror pod keeps its static pod's cores (any pod may carry the
        // annotation; see coredump_common::mirror_pod).
        if let Some(hash) = coredump_common::mirror_pod::static_pod_hash(&p.metadata, None) {
            live.insert(hash.to_owned());
        }
    }
    Ok(live)
}

/// The live namespaces.
pub async fn live_namespaces(client: &Client) -> Result<HashSet<String>, ClusterError> {
    let namespaces =
        list_all_metadata(&Api::<Namespace>::all(client.clone()), "namespaces").await?;
    Ok(namespaces
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect())
}

/// Every `Coredump`, as the plan needs it.
pub async fn coredumps(client: &Client) -> Result<Vec<CoredumpRef>, ClusterError> {
    let items: Vec<Coredump> = list_all(client, COREDUMPS).await?;
    Ok(items.iter().map(coredump_ref).collect())
}

/// The plan's view of a `Coredump`.
pub fn coredump_ref(c: &Coredump) -> CoredumpRef {
    let crash_time = time::OffsetDateTime::parse(
        &c.spec.crash_time,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
    .map(|t| t.unix_timestamp());
    CoredumpRef {
        namespace: c.metadata.namespace.clone(),
        name: c.metadata.name.clone(),
        pod_uid: c.spec.pod_uid.clone(),
        crash_time,
        blob: Some(c.status.blob_path.as_str())
            .filter(|p| !p.is_empty())
            .and_then(|p| BlobPath::parse_relative(p).ok()),
        build_ids: c
            .status
            .analysis
            .iter()
            .flat_map(|a| &a.modules)
            .filter_map(|m| m.build_id.clone())
            .collect(),
    }
}

/// Every `CoredumpEndpoint`.
pub async fn endpoints(client: &Client) -> Result<Vec<EndpointRef>, ClusterError> {
    let items: Vec<CoredumpEndpoint> = list_all(client, COREDUMP_ENDPOINTS).await?;
    Ok(items
        .into_iter()
        .map(|e| EndpointRef {
            namespace: e.metadata.namespace,
            name: e.metadata.name,
            pod_uid: e.spec.pod_uid,
        })
        .collect())
}

/// Deletes a `Coredump` (`endpoint == false`) or `CoredumpEndpoint`; absent is success.
pub async fn delete(
    client: &Client,
    endpoint: bool,
    namespace: &str,
    name: &str,
) -> Result<(), ClusterError> {
    let resource = if endpoint {
        COREDUMP_ENDPOINTS
    } else {
        COREDUMPS
    };
    client::delete(client, namespace, resource, name)
        .await
        .map_err(|e| ClusterError {
            action: "delete",
            what: format!("{resource} {namespace}/{name}"),
            source: Box::new(e),
        })
}
