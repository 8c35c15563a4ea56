//! Matching a crash to a Pod object: pure functions over `k8s-openapi` types, so every case
//! (regular and static pods, init and ephemeral containers, a status not yet updated) is a
//! plain unit test.
//!
//! The crash path knows the pod UID and the container ID from the cgroup. The pod UID is the
//! Pod's `metadata.uid`, except for static pods: kubelet names their cgroup after the config
//! hash, which the API's mirror pod carries in the `kubernetes.io/config.mirror` annotation.
//! The container ID is matched against the pod status (`containerStatuses`,
//! `initContainerStatuses`, `ephemeralContainerStatuses`), whatever runtime prefix it has.
//!
//! Anyone who may create a pod may write any annotation, so the mirror annotation is trusted
//! only where kubelet alone could have written it ([`static_pod_hash`], shared with the GC): on a pod owned by its
//! Node (kubelet sets that owner on every mirror pod), named `<name>-<node>`, carrying a value
//! in kubelet's hash form (32 lowercase hex digits, which no `metadata.uid` ever has). Otherwise
//! a tenant could name its pod after another pod's UID and receive that pod's cores, suppress
//! them with an opt-out label, or keep a dead pod "alive" for the garbage collector.

use coredump_cgroup::ContainerId;
pub use coredump_common::mirror_pod::{MIRROR_ANNOTATION, is_config_hash, static_pod_hash};
use coredump_ingest::ResolvedIdentity;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// Whether `pod` is the pod whose cgroup carries `uid`: its `metadata.uid`, or the config hash
/// of the static pod it genuinely mirrors on `node`.
pub fn pod_has_uid(pod: &Pod, uid: &str, node: &str) -> bool {
    if pod.metadata.uid.as_deref() == Some(uid) {
        return true;
    }
    let on_node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| n == node);
    on_node && static_pod_hash(&pod.metadata, Some(node)) == Some(uid)
}

/// What a Pod tells about one crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Namespace, pod name, and the container when found.
    pub identity: ResolvedIdentity,
    /// Whether everything the crash path asked for was found: the container too, when the
    /// crash named one. A status not updated yet is worth waiting for.
    pub complete: bool,
}

/// Matches a crash's container ID (pod-status form, e.g. `containerd://<hex>`) in `pod`.
pub fn match_pod(pod: &Pod, container_id: Option<&str>) -> Match {
    let mut identity = ResolvedIdentity {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        container_name: None,
        image: None,
    };
    let Some(wanted) = container_id.and_then(ContainerId::parse_status_form) else {
        // No container named (a pod-level process) or an unparsable one: nothing to wait for.
        return Match {
            identity,
            complete: true,
        };
    };
    let found = statuses(pod).find(|s| {
        s.container_id
            .as_deref()
            .is_some_and(|id| wanted.matches_status(id))
    });
    match found {
        Some(status) => {
            identity.container_name = Some(status.name.clone());
            identity.image = Some(status.image.clone())
                .filter(|i| !i.is_empty())
                .or_else(|| spec_image(pod, &status.name));
            Match {
                identity,
                complete: true,
            }
        }
        None => Match {
            identity,
            complete: false,
        },
    }
}

/// Every container status of the pod: regular, init and ephemeral.
fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let status = pod.status.as_ref();
    let lists = [
        status.and_then(|s| s.container_statuses.as_ref()),
        status.and_then(|s| s.init_container_statuses.as_ref()),
        status.and_then(|s| s.ephemeral_container_statuses.as_ref()),
    ];
    lists.into_iter().flatten().flatten()
}

/// The image the spec asks for in container `name`.
fn spec_image(pod: &Pod, name: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let regular = spec.containers.iter().map(|c| (&c.name, &c.image));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (&c.name, &c.image));
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|c| (&c.name, &c.image));
    regular
        .chain(init)
        .chain(ephemeral)
        .find(|(n, _)| n.as_str() == name)
        .and_then(|(_, image)| image.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "4f5a1c3b2d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn web() -> Pod {
        pod(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "team-a", "uid": "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11"},
            "spec": {"containers": [{"name": "app", "image": "registry/app:1"}, {"name": "side", "image": "registry/side:2"}],
                     "initContainers": [{"name": "init", "image": "registry/init:3"}]},
            "status": {
                "containerStatuses": [
                    {"name": "app", "image": "registry/app@sha256:abc", "imageID": "", "ready": true, "restartCount": 0,
                     "containerID": format!("containerd://{HEX}")},
                    {"name": "side", "image": "", "imageID": "", "ready": true, "restartCount": 0,
                     "containerID": "containerd://1111111111111111111111111111111111111111111111111111111111111111"}
                ],
                "initContainerStatuses": [
                    {"name": "init", "image": "registry/init:3", "imageID": "", "ready": false, "restartCount": 0,
                     "containerID": "cri-o://2222222222222222222222222222222222222222222222222222222222222222"}
                ]
            }
        }))
    }

    #[test]
    fn container_found_by_id_whatever_the_runtime_prefix() {
        let m = match_pod(&web(), Some(&format!("docker://{HEX}")));
        assert!(m.complete);
        assert_eq!(m.identity.namespace, "team-a");
        assert_eq!(m.identity.pod_name, "web-0");
        assert_eq!(m.identity.container_name.as_deref(), Some("app"));
        assert_eq!(
            m.identity.image.as_deref(),
            Some("registry/app@sha256:abc"),
            "the image the container runs"
        );
    }

    #[test]
    fn empty_status_image_falls_back_to_the_spec_and_init_containers_match() {
        let side = match_pod(
            &web(),
            Some("containerd://1111111111111111111111111111111111111111111111111111111111111111"),
        );
        assert_eq!(side.identity.image.as_deref(), Some("registry/side:2"));
        let init = match_pod(
            &web(),
            Some("containerd://2222222222222222222222222222222222222222222222222222222222222222"),
        );
        assert_eq!(init.identity.container_name.as_deref(), Some("init"));
    }

    #[test]
    fn unknown_container_is_incomplete_pod_level_process_is_complete() {
        let m = match_pod(
            &web(),
            Some("containerd://9999999999999999999999999999999999999999999999999999999999999999"),
        );
        assert!(!m.complete, "status may lag the container start");
        assert_eq!(m.identity.pod_name, "web-0");
        assert_eq!(m.identity.container_name, None);
        let m = match_pod(&web(), None);
        assert!(m.complete);
        assert_eq!(m.identity.container_name, None);
    }

    const HASH: &str = "6c1d1b7a8a0e4f2b9e3d5c7a9b1d3f5e";

    /// A pod claiming `annotation` as its static pod hash, owned as `owner` says.
    fn claimant(name: &str, annotation: &str, owner: Option<(&str, &str)>) -> Pod {
        let mut p = serde_json::json!({
            "metadata": {"name": name, "namespace": "kube-system", "uid": "5d3c0a6e-1111-4222-8333-944455556666",
                         "annotations": {MIRROR_ANNOTATION: annotation}},
            "spec": {"nodeName": "node1", "containers": []},
        });
        if let Some((kind, owner_name)) = owner {
            p["metadata"]["ownerReferences"] = serde_json::json!([{"apiVersion": "v1", "kind": kind,
                "name": owner_name, "uid": "9e8d7c6b-0000-4000-8000-000000000001", "controller": true}]);
        }
        pod(p)
    }

    #[test]
    fn static_pods_match_by_the_hash_of_a_genuine_mirror() {
        let mirror = claimant("etcd-node1", HASH, Some(("Node", "node1")));
        assert!(pod_has_uid(&mirror, HASH, "node1"));
        assert!(pod_has_uid(
            &mirror,
            "5d3c0a6e-1111-4222-8333-944455556666",
            "node1"
        ));
        assert!(!pod_has_uid(
            &mirror,
            "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11",
            "node1"
        ));
        assert!(
            !pod_has_uid(&mirror, HASH, "node2"),
            "another node's static pod"
        );
        assert!(pod_has_uid(
            &web(),
            "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11",
            "node1"
        ));
    }

    #[test]
    fn a_borrowed_mirror_annotation_matches_nothing() {
        let victim = "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11";
        let forged = [
            // Any tenant's pod naming another pod's UID (not even a hash).
            claimant("thief", victim, None),
            claimant("thief-node1", victim, Some(("Node", "node1"))),
            // A static pod's hash, but no Node owns the claimant...
            claimant("etcd-node1", HASH, None),
            // ...or the wrong kind of owner, or another node...
            claimant("etcd-node1", HASH, Some(("ReplicaSet", "node1"))),
            claimant("etcd-node2", HASH, Some(("Node", "node2"))),
            // ...or not kubelet's mirror name.
            claimant("thief", HASH, Some(("Node", "node1"))),
            claimant("-node1", HASH, Some(("Node", "node1"))),
            // Not kubelet's hash form.
            claimant("etcd-node1", &HASH.to_uppercase(), Some(("Node", "node1"))),
            claimant("etcd-node1", &HASH[1..], Some(("Node", "node1"))),
        ];
        for p in &forged {
            assert!(!pod_has_uid(p, victim, "node1"), "{:?}", p.metadata);
            assert!(!pod_has_uid(p, HASH, "node1"), "{:?}", p.metadata);
        }
        let mirror = claimant("etcd-node1", HASH, Some(("Node", "node1")));
        assert_eq!(static_pod_hash(&mirror.metadata, None), Some(HASH));
        assert_eq!(static_pod_hash(&mirror.metadata, Some("node2")), None);
    }
}
