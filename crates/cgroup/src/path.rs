//! Classification of one cgroup path (one line of `/proc/<pid>/cgroup`).
//!
//! kubelet lays pods out as `kubepods[/<qos>]/pod<uid>` with the cgroupfs
//! driver and as nested systemd slices whose names repeat their parents'
//! (`kubepods-burstable-pod<uid_with_underscores>.slice`) with the systemd
//! driver; either may sit below a cgroup root (`/kubelet`, `kubelet.slice`)
//! and below the cgroups of an outer container (kind, docker-in-docker). The
//! runtime then adds one cgroup per container below the pod. A path seen from
//! inside another cgroup namespace starts with `..` components and may lack
//! the upper levels, which the systemd slice names still carry.
//!
//! The walk anchors on the pod component, checks every level above it that is
//! visible, and refuses paths that mention `kubepods` anywhere outside that
//! checked chain, so nested clusters or odd layouts give `Invalid`, never a
//! guess.

use crate::identity::{
    ContainerId, PodIdentity, QosClass, Runtime, normalize_container_id, normalize_pod_uid,
};

/// What one cgroup path says about Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathVerdict {
    /// No trace of kubelet's hierarchy: a host process, a plain container.
    Outside,
    /// A process in this pod.
    Pod(PodIdentity),
    /// Looks like kubelet's hierarchy but does not parse or is ambiguous.
    Invalid,
}

/// The marker that every kubelet pod cgroup path carries.
const KUBEPODS: &str = "kubepods";

/// A pod component found in a path, with the first index of the chain of
/// levels above it that was checked.
struct PodAt {
    index: usize,
    chain_start: usize,
    uid: String,
    qos: QosClass,
}

/// Classifies one cgroup path.
pub(crate) fn classify_path(path: &str) -> PathVerdict {
    // cgroup v2 marks a removed cgroup this way; the name is still the pod's.
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();

    let mut pods = (0..comps.len()).filter_map(|i| pod_at(&comps, i));
    let pod = match (pods.next(), pods.next()) {
        (None, _) => {
            return if comps.iter().any(|c| c.contains(KUBEPODS)) {
                PathVerdict::Invalid
            } else {
                PathVerdict::Outside
            };
        }
        (Some(Ok(pod)), None) => pod,
        // Two pod levels (a cluster inside a pod) or a broken chain.
        _ => return PathVerdict::Invalid,
    };

    let mut outside_chain = comps[..pod.chain_start]
        .iter()
        .chain(&comps[pod.index + 1..]);
    if outside_chain.any(|c| c.contains(KUBEPODS)) {
        return PathVerdict::Invalid;
    }

    let container = comps.get(pod.index + 1).and_then(|c| container_of(c));
    PathVerdict::Pod(PodIdentity {
        pod_uid: pod.uid,
        qos: pod.qos,
        container,
    })
}

/// Recognizes `comps[i]` as a pod level. `None` when it is not one, `Err` when
/// it names a pod but the levels above contradict it.
fn pod_at(comps: &[&str], i: usize) -> Option<Result<PodAt, ()>> {
    let name = comps[i];
    match name.strip_suffix(".slice") {
        Some(stem) => systemd_pod_at(comps, i, stem),
        None => cgroupfs_pod_at(comps, i, name),
    }
}

/// `[<root>-]kubepods[-<qos>]-pod<uid>.slice`, checked against the slices
/// above it as far as they are visible.
fn systemd_pod_at(comps: &[&str], i: usize, stem: &str) -> Option<Result<PodAt, ()>> {
    let segs: Vec<&str> = stem.split('-').collect();
    let (last, parents) = segs.split_last()?;
    let uid = normalize_pod_uid(last.strip_prefix("pod")?)?;
    let (qos, kubepods_at) = match parents {
        [.., k] if *k == KUBEPODS => (QosClass::Guaranteed, parents.len() - 1),
        [.., k, level] if *k == KUBEPODS => {
            (QosClass::from_cgroup_level(level)?, parents.len() - 2)
        }
        _ => return None,
    };
    if segs[..kubepods_at].iter().any(|s| s.is_empty()) {
        return Some(Err(()));
    }
    // Each ancestor slice is the stem cut one dash segment shorter.
    let mut at = i;
    for keep in (kubepods_at + 1..segs.len()).rev() {
        let Some(above) = at.checked_sub(1) else {
            break;
        };
        if comps[above] == ".." {
            break;
        }
        let expected = segs[..keep].join("-");
        if comps[above].strip_suffix(".slice") != Some(expected.as_str()) {
            return Some(Err(()));
        }
        at = above;
    }
    Some(Ok(PodAt {
        index: i,
        chain_start: at,
        uid,
        qos,
    }))
}

/// `kubepods[/<qos>]/pod<uid>`; the QoS level must be visible, `kubepods`
/// may be cut off by a cgroup namespace.
fn cgroupfs_pod_at(comps: &[&str], i: usize, name: &str) -> Option<Result<PodAt, ()>> {
    let uid = normalize_pod_uid(name.strip_prefix("pod")?)?;
    let parent = *comps.get(i.checked_sub(1)?)?;
    if parent == ".." {
        // A pod whose QoS level is cut off by a cgroup namespace.
        return Some(Err(()));
    }
    if parent == KUBEPODS {
        return Some(Ok(PodAt {
            index: i,
            chain_start: i - 1,
            uid,
            qos: QosClass::Guaranteed,
        }));
    }
    let qos = QosClass::from_cgroup_level(parent)?;
    let chain_start = match i.checked_sub(2).map(|g| (g, comps[g])) {
        Some((g, KUBEPODS)) => g,
        Some((_, "..")) | None => i - 1,
        Some(_) => return Some(Err(())),
    };
    Some(Ok(PodAt {
        index: i,
        chain_start,
        uid,
        qos,
    }))
}

/// The container named by the cgroup directly below the pod, if any.
/// CRI-O's `crio-conmon-<id>` holds the monitor, not the container.
fn container_of(name: &str) -> Option<ContainerId> {
    let (name, scope) = match name.strip_suffix(".scope") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    if name.starts_with("crio-conmon-") {
        return None;
    }
    let (runtime, id) = if let Some(id) = name.strip_prefix("cri-containerd-") {
        (Runtime::Containerd, id)
    } else if let Some(id) = name.strip_prefix("crio-") {
        (Runtime::CriO, id)
    } else if let Some(id) = name.strip_prefix("docker-") {
        (Runtime::Docker, id)
    } else if !scope {
        // cgroupfs driver: containerd and cri-dockerd both use the bare id.
        (Runtime::Containerd, name)
    } else {
        return None;
    };
    Some(ContainerId {
        runtime,
        id: normalize_container_id(id)?,
    })
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
