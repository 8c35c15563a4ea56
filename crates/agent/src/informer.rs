//! The agent's view of the cluster: kube-rs reflectors over the pods of its own node (field
//! selector `spec.nodeName=<node>`, so a node agent never holds the whole cluster's pods) and
//! over namespaces (for the namespace opt-out), kept current by watches that retry with backoff
//! on their own. [`Caches`] is the read side every resolver and policy lookup goes through.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::pods::pod_has_uid;

/// Read side of the informers.
#[derive(Clone)]
pub struct Caches {
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    pods_synced: Arc<AtomicBool>,
    namespaces_synced: Arc<AtomicBool>,
}

impl Caches {
    /// The pod whose cgroup carries `uid` (its `metadata.uid`, or a static pod's config hash).
    pub fn pod_by_uid(&self, uid: &str) -> Option<Arc<Pod>> {
        self.pods.find(|p| pod_has_uid(p, uid))
    }

    /// The namespace `name`.
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(&ObjectRef::new(name))
    }

    /// Whether the pod informer completed its initial list.
    pub fn pods_synced(&self) -> bool {
        self.pods_synced.load(Ordering::Acquire)
    }

    /// Whether both informers completed their initial list.
    pub fn synced(&self) -> bool {
        self.pods_synced() && self.namespaces_synced.load(Ordering::Acquire)
    }

    /// Pods in the cache.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }
}

/// Caches fed by hand, for tests of what reads them: the writers stand in for the watches,
/// `pods_synced` for the pod informer's initial list.
#[cfg(test)]
pub(crate) fn manual(
    pods_synced: bool,
) -> (
    Caches,
    reflector::store::Writer<Pod>,
    reflector::store::Writer<Namespace>,
) {
    let (pods, pod_writer) = reflector::store();
    let (namespaces, ns_writer) = reflector::store();
    let caches = Caches {
        pods,
        namespaces,
        pods_synced: Arc::new(AtomicBool::new(pods_synced)),
        namespaces_synced: Arc::new(AtomicBool::new(true)),
    };
    (caches, pod_writer, ns_writer)
}

/// Starts both informers; they run until `stop` is cancelled.
pub fn start(client: Client, node_name: &str, stop: CancellationToken) -> Caches {
    let pods_synced = Arc::new(AtomicBool::new(false));
    let namespaces_synced = Arc::new(AtomicBool::new(false));
    let pod_config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let pods = spawn_reflector(
        Api::<Pod>::all(client.clone()),
        pod_config,
        Arc::clone(&pods_synced),
        stop.clone(),
        "pods",
    );
    let namespaces = spawn_reflector(
        Api::<Namespace>::all(client),
        watcher::Config::default(),
        Arc::clone(&namespaces_synced),
        stop,
        "namespaces",
    );
    Caches {
        pods,
        namespaces,
        pods_synced,
        namespaces_synced,
    }
}

fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    synced: Arc<AtomicBool>,
    stop: CancellationToken,
    what: &'static str,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    // Managed fields are half of an object's metadata and nothing here reads them.
    let stream = watcher::watcher(api, config)
        .default_backoff()
        .modify(|obj: &mut K| obj.managed_fields_mut().clear());
    let stream = reflector::reflector(writer, stream);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(Event::InitDone)) => {
                    if !synced.swap(true, Ordering::AcqRel) {
                        tracing::info!(informer = what, "initial list complete");
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(informer = what, error = %e, "watch failed; retrying")
                }
                None => return,
            }
        }
    });
    reader
}
