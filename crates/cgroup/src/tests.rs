//! Whole `/proc/<pid>/cgroup` files: v1 with many hierarchies, v2, hybrid,
//! and lines that disagree.

use super::*;

const UID: &str = "5f2a8c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b";
const UID_US: &str = "5f2a8c1e_3b4d_4e6f_8a9b_0c1d2e3f4a5b";
const UID2: &str = "aa11bb22-cc33-dd44-ee55-ff6677889900";
const CID: &str = "d1f3a5c7e9b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4";
const CID2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A cgroup v1 file as runc writes it with the cgroupfs driver: every
/// controller at the same container path.
fn v1_cgroupfs(path: &str) -> String {
    let controllers = [
        "misc",
        "rdma",
        "pids",
        "hugetlb",
        "net_cls,net_prio",
        "cpuset",
        "perf_event",
        "devices",
        "memory",
        "freezer",
        "blkio",
        "cpu,cpuacct",
    ];
    let mut out = String::new();
    for (i, c) in controllers.iter().enumerate().rev() {
        let p = if *c == "misc" || *c == "rdma" {
            "/"
        } else {
            path
        };
        out.push_str(&format!("{}:{c}:{p}\n", i + 1));
    }
    out.push_str(&format!("13:name=systemd:{path}\n"));
    out
}

fn expect(text: &str, uid: &str, qos: QosClass, container: Option<(Runtime, &str)>) {
    let expected = PodIdentity {
        pod_uid: uid.to_owned(),
        qos,
        container: container.map(|(runtime, id)| ContainerId {
            runtime,
            id: id.to_owned(),
        }),
    };
    assert_eq!(parse_proc_cgroup(text), Some(expected), "text:\n{text}");
}

#[test]
fn v1_cgroupfs_file() {
    let text = v1_cgroupfs(&format!("/kubepods/burstable/pod{UID}/{CID}"));
    assert!(text.lines().count() > 10);
    expect(
        &text,
        UID,
        QosClass::Burstable,
        Some((Runtime::Containerd, CID)),
    );
}

#[test]
fn v1_systemd_file_with_hybrid_unified_line() {
    let path = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_US}.slice/crio-{CID}.scope"
    );
    let text = format!("{}0::{path}\n", v1_cgroupfs(&path));
    expect(&text, UID, QosClass::BestEffort, Some((Runtime::CriO, CID)));
}

#[test]
fn v2_files() {
    expect(
        &format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_US}.slice/cri-containerd-{CID}.scope\n"
        ),
        UID,
        QosClass::Burstable,
        Some((Runtime::Containerd, CID)),
    );
    expect(
        &format!("0::/kubepods/pod{UID}/{CID}"),
        UID,
        QosClass::Guaranteed,
        Some((Runtime::Containerd, CID)),
    );
    expect(
        &format!("0::/kubepods.slice/kubepods-pod{UID_US}.slice\r\n"),
        UID,
        QosClass::Guaranteed,
        None,
    );
}

#[test]
fn pod_level_lines_defer_to_the_container_line() {
    let text = format!(
        "5:cpuset:/kubepods/burstable/pod{UID}\n4:memory:/kubepods/burstable/pod{UID}/{CID}\n3:pids:/kubepods/burstable/pod{UID}\n"
    );
    expect(
        &text,
        UID,
        QosClass::Burstable,
        Some((Runtime::Containerd, CID)),
    );
}

#[test]
fn lines_outside_kubernetes_are_ignored() {
    let text = format!(
        "12:rdma:/\n11:name=systemd:/system.slice/containerd.service\n4:memory:/kubepods/pod{UID}/{CID}\n0::/\n"
    );
    expect(
        &text,
        UID,
        QosClass::Guaranteed,
        Some((Runtime::Containerd, CID)),
    );
}

#[test]
fn host_processes_are_not_in_a_pod() {
    for text in [
        "0::/init.scope\n",
        "0::/system.slice/kubelet.service\n",
        "0::/user.slice/user-0.slice/session-1.scope\n",
        &v1_cgroupfs("/system.slice/sshd.service"),
        &format!("0::/system.slice/docker-{CID}.scope\n"),
        "",
        "\n\n",
    ] {
        assert_eq!(parse_proc_cgroup(text), None, "text:\n{text}");
    }
}

#[test]
fn contradictions_give_none() {
    for text in [
        // Two pods.
        format!("4:memory:/kubepods/pod{UID}/{CID}\n3:cpu:/kubepods/pod{UID2}/{CID}\n"),
        // Same pod, two QoS classes.
        format!("4:memory:/kubepods/pod{UID}/{CID}\n3:cpu:/kubepods/burstable/pod{UID}/{CID}\n"),
        // Same pod, two containers.
        format!("4:memory:/kubepods/pod{UID}/{CID}\n3:cpu:/kubepods/pod{UID}/{CID2}\n"),
        // One good line, one broken kubelet line.
        format!(
            "4:memory:/kubepods/pod{UID}/{CID}\n3:cpu:/kubepods/pod{}/{CID}\n",
            &UID[..30]
        ),
        format!("4:memory:/kubepods/pod{UID}/{CID}\n3:cpu:/kubepods/burstable\n"),
        // A malformed line that mentions kubepods.
        format!("4:memory:/kubepods/pod{UID}/{CID}\nkubepods\n"),
        format!("memory:/kubepods/pod{UID}/{CID}\n"),
        format!("x:memory:/kubepods/pod{UID}/{CID}\n"),
        format!("4:memory:kubepods/pod{UID}/{CID}\n"),
    ] {
        assert_eq!(parse_proc_cgroup(&text), None, "text:\n{text}");
    }
}

#[test]
fn display_gives_the_pod_status_form() {
    let got = parse_proc_cgroup(&format!(
        "0::/kubepods.slice/kubepods-pod{UID_US}.slice/docker-{CID}.scope\n"
    ))
    .unwrap();
    let container = got.container.unwrap();
    assert_eq!(container.to_string(), format!("docker://{CID}"));
    assert_eq!(
        ContainerId::parse_status_form(&container.to_string()),
        Some(container)
    );
}
