//! The agent's view of the cluster: kube-rs reflectors over the pods of its own node (field
//! selector `spec.nodeName=<node>`, so a node agent never holds the whole cluster's pods) and
//! over namespaces (for the namespace opt-out), kept current by watches that retry with backoff
//! on their own. [`Caches`] is the read side every resolver and policy lookup goes through.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::pods::pod_has_uid;

/// How long a deleted pod is remembered: a crash of a pod deleted right after it (a Job's pod,
/// a scaled-down replica) is still placed in the pod's own namespace, not an administrator's.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(3600);

/// Pods deleted recently, by the cgroup UIDs they had (their UID, a static pod's hash).
#[derive(Default)]
struct Tombstones(Mutex<HashMap<String, (Instant, Arc<Pod>)>>);

impl Tombstones {
    fn bury(&self, pod: &Pod, node: &str) {
        let pod = Arc::new(pod.clone());
        let keys = [
            pod.metadata.uid.clone(),
            crate::pods::static_pod_hash(&pod.metadata, Some(node)).map(str::to_owned),
        ];
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (at, _)| now.duration_since(*at) < TOMBSTONE_TTL);
        for key in keys.into_iter().flatten() {
            map.insert(key, (now, Arc::clone(&pod)));
        }
    }

    fn find(&self, uid: &str) -> Option<Arc<Pod>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(uid)
            .filter(|(at, _)| at.elapsed() < TOMBSTONE_TTL)
            .map(|(_, pod)| Arc::clone(pod))
    }
}

/// Read side of the informers.
#[derive(Clone)]
pub struct Caches {
    node: Arc<str>,
    tombstones: Arc<Tombstones>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    pods_synced: Arc<AtomicBool>,
    namespaces_synced: Arc<AtomicBool>,
}

impl Caches {
    /// The pod whose cgroup carries `uid` (its `metadata.uid`, or a static pod's config hash).
    /// Two pods claiming one UID resolve to neither: a crash is never given to a pod that
    /// might not be the one that crashed.
    pub fn pod_by_uid(&self, uid: &str) -> Option<Arc<Pod>> {
        let mut matches = self
            .pods
            .state()
            .into_iter()
            .filter(|p| pod_has_uid(p, uid, &self.node));
        let first = matches.next()?;
        if let Some(second) = matches.next() {
            tracing::warn!(
                pod_uid = uid,
                first = ?(first.metadata.namespace.as_deref(), first.metadata.name.as_deref()),
                second = ?(second.metadata.namespace.as_deref(), second.metadata.name.as_deref()),
                "more than one pod claims this pod UID; resolving the crash to neither"
            );
            return None;
        }
        Some(first)
    }

    /// Like [`Caches::pod_by_uid`], falling back to a pod deleted within [`TOMBSTONE_TTL`]:
    /// its last known state still tells the namespace, names and opt-out of a crash that
    /// happened just before the deletion.
    pub fn pod_or_tombstone(&self, uid: &str) -> Option<Arc<Pod>> {
        self.pod_by_uid(uid).or_else(|| self.tombstones.find(uid))
    }

    /// Remembers a deleted pod (the pod informer calls this on every deletion).
    pub fn remember_deleted(&self, pod: &Pod) {
        self.tombstones.bury(pod, &self.node);
    }

    /// Every pod in the cache (this node's).
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods.state()
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
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
/// `pods_synced` for the pod informer's initial list. The node is `node1`.
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
        node: Arc::from("node1"),
        tombstones: Arc::default(),
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
    let tombstones: Arc<Tombstones> = Arc::default();
    let node: Arc<str> = Arc::from(node_name);
    let (graves, grave_node) = (Arc::clone(&tombstones), Arc::clone(&node));
    let pods = spawn_reflector(
        Api::<Pod>::all(client.clone()),
        pod_config,
        Arc::clone(&pods_synced),
        stop.clone(),
        "pods",
        move |pod: &Pod| graves.bury(pod, &grave_node),
    );
    let namespaces = spawn_reflector(
        Api::<Namespace>::all(client),
        watcher::Config::default(),
        Arc::clone(&namespaces_synced),
        stop,
        "namespaces",
        |_: &Namespace| {},
    );
    Caches {
        node,
        tombstones,
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
    on_delete: impl Fn(&K) + Send + 'static,
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
                Some(Ok(Event::Delete(obj))) => on_delete(&obj),
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
