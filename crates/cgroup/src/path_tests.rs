//! Table of single cgroup paths in every layout we know, and near misses.

use super::{PathVerdict, classify_path};
use crate::{ContainerId, PodIdentity, QosClass, Runtime};

const UID: &str = "5f2a8c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b";
const UID_US: &str = "5f2a8c1e_3b4d_4e6f_8a9b_0c1d2e3f4a5b";
const STATIC_UID: &str = "9c3e4f1a2b6d8e0f1a3c5e7d9b2f4a6c";
const CID: &str = "d1f3a5c7e9b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4";
const OTHER_UID_US: &str = "11111111_2222_3333_4444_555555555555";

fn pod(qos: QosClass, container: Option<(Runtime, &str)>) -> PathVerdict {
    pod_uid(UID, qos, container)
}

fn pod_uid(uid: &str, qos: QosClass, container: Option<(Runtime, &str)>) -> PathVerdict {
    PathVerdict::Pod(PodIdentity {
        pod_uid: uid.to_owned(),
        qos,
        container: container.map(|(runtime, id)| ContainerId {
            runtime,
            id: id.to_owned(),
        }),
    })
}

fn check(cases: &[(String, PathVerdict)]) {
    for (path, expected) in cases {
        assert_eq!(&classify_path(path), expected, "path {path}");
    }
}

#[test]
fn cgroupfs_driver_every_qos_and_runtime() {
    use QosClass::*;
    use Runtime::*;
    check(&[
        (
            format!("/kubepods/burstable/pod{UID}/{CID}"),
            pod(Burstable, Some((Containerd, CID))),
        ),
        (
            format!("/kubepods/besteffort/pod{UID}/{CID}"),
            pod(BestEffort, Some((Containerd, CID))),
        ),
        (
            format!("/kubepods/pod{UID}/{CID}"),
            pod(Guaranteed, Some((Containerd, CID))),
        ),
        (
            format!("/kubepods/burstable/pod{UID}/crio-{CID}"),
            pod(Burstable, Some((CriO, CID))),
        ),
        (
            format!("/kubepods/pod{UID}/crio-conmon-{CID}"),
            pod(Guaranteed, None),
        ),
        (
            format!("/kubepods/burstable/pod{UID}"),
            pod(Burstable, None),
        ),
        (format!("/kubepods/pod{UID}"), pod(Guaranteed, None)),
        // Static pod: kubelet's config hash instead of a UUID.
        (
            format!("/kubepods/burstable/pod{STATIC_UID}/{CID}"),
            pod_uid(STATIC_UID, Burstable, Some((Containerd, CID))),
        ),
    ]);
}

#[test]
fn systemd_driver_every_qos_and_runtime() {
    use QosClass::*;
    use Runtime::*;
    let b =
        format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_US}.slice");
    let e =
        format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_US}.slice");
    let g = format!("/kubepods.slice/kubepods-pod{UID_US}.slice");
    check(&[
        (
            format!("{b}/cri-containerd-{CID}.scope"),
            pod(Burstable, Some((Containerd, CID))),
        ),
        (
            format!("{e}/cri-containerd-{CID}.scope"),
            pod(BestEffort, Some((Containerd, CID))),
        ),
        (
            format!("{g}/cri-containerd-{CID}.scope"),
            pod(Guaranteed, Some((Containerd, CID))),
        ),
        (
            format!("{b}/crio-{CID}.scope"),
            pod(Burstable, Some((CriO, CID))),
        ),
        (
            format!("{g}/docker-{CID}.scope"),
            pod(Guaranteed, Some((Docker, CID))),
        ),
        (
            format!("{e}/crio-conmon-{CID}.scope"),
            pod(BestEffort, None),
        ),
        (b.clone(), pod(Burstable, None)),
        (g.clone(), pod(Guaranteed, None)),
        // crun's systemd sub-cgroup and processes that make their own cgroups.
        (
            format!("{b}/crio-{CID}.scope/container"),
            pod(Burstable, Some((CriO, CID))),
        ),
        (
            format!("{g}/cri-containerd-{CID}.scope/init.scope"),
            pod(Guaranteed, Some((Containerd, CID))),
        ),
        (
            format!("{b}/cri-containerd-{CID}.scope (deleted)"),
            pod(Burstable, Some((Containerd, CID))),
        ),
        (
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{STATIC_UID}.slice/crio-{CID}.scope"
            ),
            pod_uid(STATIC_UID, BestEffort, Some((CriO, CID))),
        ),
    ]);
}

#[test]
fn cgroup_roots_and_nested_hierarchies() {
    use QosClass::*;
    use Runtime::*;
    let node = "4c2e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a0c1b3d5f7e9a1c3b5d7f9e0a";
    check(&[
        // kubelet --cgroup-root=/kubelet, cgroupfs (older kind).
        (
            format!("/kubelet/kubepods/besteffort/pod{UID}/{CID}"),
            pod(BestEffort, Some((Containerd, CID))),
        ),
        // kind node as a docker container, seen from the host, cgroupfs.
        (
            format!("/docker/{node}/kubelet/kubepods/burstable/pod{UID}/{CID}"),
            pod(Burstable, Some((Containerd, CID))),
        ),
        (
            format!("/docker/{node}/kubepods/pod{UID}/{CID}"),
            pod(Guaranteed, Some((Containerd, CID))),
        ),
        // kind with the systemd driver and cgroup root /kubelet, seen inside the node.
        (
            format!(
                "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod{UID_US}.slice/cri-containerd-{CID}.scope"
            ),
            pod(Burstable, Some((Containerd, CID))),
        ),
        // ... and from the host.
        (
            format!(
                "/system.slice/docker-{node}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_US}.slice/cri-containerd-{CID}.scope"
            ),
            pod(Guaranteed, Some((Containerd, CID))),
        ),
        // Seen from a sibling cgroup namespace.
        (
            format!(
                "/../../../kubepods-besteffort.slice/kubepods-besteffort-pod{UID_US}.slice/cri-containerd-{CID}.scope"
            ),
            pod(BestEffort, Some((Containerd, CID))),
        ),
        (
            format!("/../../kubepods-pod{UID_US}.slice/crio-{CID}.scope"),
            pod(Guaranteed, Some((CriO, CID))),
        ),
        (
            format!("/../burstable/pod{UID}/{CID}"),
            pod(Burstable, Some((Containerd, CID))),
        ),
        // Namespace rooted at kubepods.slice.
        (
            format!("/kubepods-burstable-pod{UID_US}.slice/cri-containerd-{CID}.scope"),
            pod(Burstable, Some((Containerd, CID))),
        ),
    ]);
}

#[test]
fn not_kubernetes() {
    check(&[
        ("/".to_owned(), PathVerdict::Outside),
        ("/init.scope".to_owned(), PathVerdict::Outside),
        (
            "/user.slice/user-1000.slice/session-3.scope".to_owned(),
            PathVerdict::Outside,
        ),
        (
            format!("/system.slice/docker-{CID}.scope"),
            PathVerdict::Outside,
        ),
        (format!("/docker/{CID}"), PathVerdict::Outside),
        (
            "/system.slice/containerd.service".to_owned(),
            PathVerdict::Outside,
        ),
        (
            "/machine.slice/machine-libpod_pod_0a1b2c3d.slice/libpod-abc.scope".to_owned(),
            PathVerdict::Outside,
        ),
        (format!("/somewhere/pod{UID}/{CID}"), PathVerdict::Outside),
        (String::new(), PathVerdict::Outside),
    ]);
}

#[test]
fn unknown_children_of_a_pod_keep_the_pod_but_no_container() {
    check(&[
        (
            format!("/kubepods/burstable/pod{UID}/not-a-container"),
            pod(QosClass::Burstable, None),
        ),
        (
            format!("/kubepods/burstable/pod{UID}/{}", &CID[..63]),
            pod(QosClass::Burstable, None),
        ),
        (
            format!(
                "/kubepods.slice/kubepods-pod{UID_US}.slice/cri-containerd-{}.scope",
                &CID[..12]
            ),
            pod(QosClass::Guaranteed, None),
        ),
        (
            format!("/kubepods.slice/kubepods-pod{UID_US}.slice/runc-{CID}.scope"),
            pod(QosClass::Guaranteed, None),
        ),
    ]);
}

#[test]
fn broken_or_ambiguous_layouts_are_invalid() {
    let invalid = |p: String| (p, PathVerdict::Invalid);
    check(&[
        // kubepods but no pod.
        invalid("/kubepods".to_owned()),
        invalid("/kubepods/burstable".to_owned()),
        invalid("/kubepods.slice/kubepods-burstable.slice".to_owned()),
        // Malformed pod UIDs.
        invalid(format!("/kubepods/burstable/pod{}/{CID}", &UID[..35])),
        invalid(format!("/kubepods/burstable/pod{UID}x/{CID}")),
        invalid(format!(
            "/kubepods.slice/kubepods-pod{UID}.slice/cri-containerd-{CID}.scope"
        )),
        invalid(format!("/kubepods/burstable/podnot-a-uid/{CID}")),
        // Unknown QoS level.
        invalid(format!("/kubepods/premium/pod{UID}/{CID}")),
        invalid(format!(
            "/kubepods.slice/kubepods-premium.slice/kubepods-premium-pod{UID_US}.slice"
        )),
        // Parent slice disagrees with the pod slice.
        invalid(format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod{UID_US}.slice/crio-{CID}.scope"
        )),
        invalid(format!(
            "/kubepods.slice/kubepods-besteffort-pod{UID_US}.slice"
        )),
        invalid(format!("/other.slice/kubepods-pod{UID_US}.slice")),
        // QoS level whose parent is not kubepods.
        invalid(format!("/kubelet/burstable/pod{UID}/{CID}")),
        // QoS cannot be told when the level above the pod is cut off.
        invalid(format!("/../pod{UID}/{CID}")),
        // A cluster inside a pod: two pods in one path.
        invalid(format!(
            "/kubepods/burstable/pod{UID}/{CID}/docker/{CID}/kubepods/besteffort/pod{}/{CID}",
            OTHER_UID_US.replace('_', "-")
        )),
        invalid(format!(
            "/kubepods.slice/kubepods-pod{UID_US}.slice/cri-containerd-{CID}.scope/kubepods.slice/kubepods-pod{OTHER_UID_US}.slice"
        )),
        // kubepods below the container or above the checked chain.
        invalid(format!("/kubepods/pod{UID}/{CID}/kubepods")),
        invalid(format!("/kubepods/besteffort/kubepods/pod{UID}/{CID}")),
        invalid(format!(
            "/kubepods.slice/x/kubepods.slice/kubepods-pod{UID_US}.slice"
        )),
        // Empty cgroup-root segment.
        invalid(format!("/-kubepods.slice/-kubepods-pod{UID_US}.slice")),
    ]);
}
