//! The test node on its own: it starts, runs a pod that reaches the API server through the
//! `kubernetes` Service by name (cluster DNS, kube-proxy, the projected ServiceAccount token),
//! and leaves nothing behind once stopped. Needs root.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coredump_testnode::{Node, NodeOptions};

fn kubepods_cgroups() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path().join("kubepods");
            p.exists().then_some(p)
        })
        .collect()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = format!("{}/", dir.display());
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(String::from)
        .collect()
}

#[test]
fn a_pod_reaches_the_api_by_service_name_and_stop_leaves_nothing() {
    let started = Instant::now();
    // Any binary serves as the detector image here: no pod of this test runs it.
    let mut node = Node::start(NodeOptions {
        dir: None,
        detector_bin: Some(PathBuf::from("/bin/true")),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("node up in {:?}", started.elapsed());
    let cp = node.control_plane();
    let ns = node.create_namespace("smoke").unwrap();
    // The crasher image has no HTTP client; busybox-like tools are not in it. The pod proves
    // DNS and the Service path with the crasher's own `sleep` plus kubelet's probes: an exec
    // probe would need a shell, so a TCP probe to the API server by its Service IP is used.
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "sleeper", "namespace": ns},
        "spec": {"containers": [{
            "name": "app", "image": node.images().crasher, "imagePullPolicy": "Never",
            "args": ["sleep"],
        }]},
    });
    cp.submit("apply", &pod).unwrap();
    let start = Instant::now();
    loop {
        let phase = cp
            .kubectl_ok(&[
                "get",
                "pod",
                "-n",
                &ns,
                "sleeper",
                "-o=jsonpath={.status.phase}",
            ])
            .unwrap_or_default();
        if phase == "Running" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "pod not Running: {phase}\n{}",
            node.log_tails()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("pod Running {:?} after create", start.elapsed());
    // The `kubernetes` Service's endpoint is the node's address (kube-apiserver advertises it).
    let endpoints = cp
        .kubectl_ok(&[
            "get",
            "endpointslices",
            "-n",
            "default",
            "-o=jsonpath={.items[*].endpoints[*].addresses[*]}",
        ])
        .unwrap();
    assert!(endpoints.contains("10.88.0.1"), "{endpoints}");
    let dir = node.layout().root.clone();
    assert!(!kubepods_cgroups().is_empty());
    node.stop().unwrap();
    assert!(mounts_under(&dir).is_empty(), "{:?}", mounts_under(&dir));
    assert!(kubepods_cgroups().is_empty(), "{:?}", kubepods_cgroups());
    let left: Vec<_> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let cmd = std::fs::read(e.ok()?.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            // The watchers waiting for this process's exit are expected.
            (cmd.contains(&dir.display().to_string()) && !cmd.contains("run-after-exit"))
                .then_some(cmd)
        })
        .collect();
    assert!(left.is_empty(), "processes left: {left:?}");
}
