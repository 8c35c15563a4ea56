//! The project as users run it, on a real node: kubelet and containerd run the image, the
//! manifest of `deploy/deploy.sh` is installed with `kubectl create -f`, and real containers
//! crash (crates/testnode). Needs root; each test is its own scenario over one shared node.

mod common;
mod node_fixture;

use std::path::Path;
use std::time::{Duration, Instant};

use coredump_api::CoredumpState;
use node_fixture::{cluster, download, gdb_backtrace, marker};

/// A container's main process segfaults: the record names the pod, container, image, pod UID
/// and container ID kubectl reports, a CoreDumped Event is on the pod, the downloaded core
/// holds the pod's marker and gdb names the faulting function, and the pod restarts.
#[test]
fn segfault_of_a_container_is_recorded_with_its_pod_and_a_core_that_proves_it() {
    let c = cluster();
    let _lock = c.lock();
    let ns = c.namespace("segv");
    let crashed_at = Instant::now();
    c.apply(&c.crasher_pod(&ns, "crash", &["segv", "8"]));
    let records = c.wait_coredumps(
        &ns,
        Duration::from_secs(120),
        "a Coredump of pod crash",
        |r| !r.is_empty(),
    );
    let seen_after = crashed_at.elapsed();
    let record = &records[0];
    let pod = c.pod(&ns, "crash");
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(record.spec.pod_name.as_deref(), Some("crash"));
    assert_eq!(
        record.spec.pod_uid.as_deref(),
        pod["metadata"]["uid"].as_str()
    );
    assert_eq!(record.spec.container_name.as_deref(), Some("app"));
    let container_id = status["lastState"]["terminated"]["containerID"]
        .as_str()
        .or(status["containerID"].as_str())
        .unwrap();
    assert_eq!(
        record.spec.container_id.as_deref(),
        Some(container_id),
        "container ID as kubectl reports it"
    );
    let image = record.spec.image.as_deref().unwrap_or_default();
    assert!(
        image == pod["spec"]["containers"][0]["image"] || image == status["image"],
        "image {image:?} vs pod {pod}"
    );
    assert_eq!(record.spec.signal, 11);
    assert_eq!(record.status.state, CoredumpState::Stored);

    let events = c.kubectl(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector=involvedObject.name=crash,reason=CoreDumped",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "a CoreDumped Event on the pod");

    let dir = tempfile::tempdir().unwrap();
    let core = download(c, &ns, &record.metadata.name, dir.path());
    let bytes = std::fs::read(&core).unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert!(
        common::in_memory(&bytes, &marker(uid, 0)),
        "the pod's marker in the core's memory"
    );
    let bt = gdb_backtrace(c.crasher_bin(), &core);
    assert!(bt.contains("crash_with_marker"), "gdb backtrace:\n{bt}");

    c.wait(Duration::from_secs(60), "the pod restarted", || {
        let restarts = c.pod(&ns, "crash")["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0);
        (restarts >= 1).then_some(())
    });
    eprintln!("real_node: crash -> Coredump visible within {seen_after:?} (pod start included)");
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// A child of the main process dies of SIGABRT (PID 1 could not: the kernel ignores signals a
/// namespace's init sends itself): recorded with signal 6, the container keeps running.
#[test]
fn sigabrt_of_a_child_process_is_recorded_and_the_container_keeps_running() {
    let c = cluster();
    let _lock = c.lock();
    let ns = c.namespace("abrt");
    c.apply(&c.crasher_pod(&ns, "abrt", &["child-abrt", "2"]));
    let records = c.wait_coredumps(
        &ns,
        Duration::from_secs(120),
        "a Coredump of pod abrt",
        |r| !r.is_empty(),
    );
    let record = &records[0];
    assert_eq!(record.spec.signal, 6, "SIGABRT");
    assert_eq!(record.spec.pod_name.as_deref(), Some("abrt"));
    assert_eq!(record.spec.container_name.as_deref(), Some("app"));
    assert_eq!(record.status.state, CoredumpState::Stored);
    let pod = c.pod(&ns, "abrt");
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["restartCount"], 0, "{status}");
    assert!(status["state"]["running"].is_object(), "{status}");
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// A pod labelled `coredump.fujitsu.com/capture: "false"` is recorded as Skipped, without its
/// core; so is a pod in a namespace annotated that way.
#[test]
fn opt_out_by_pod_label_and_by_namespace_annotation_skips_the_core() {
    let c = cluster();
    let _lock = c.lock();
    let ns = c.namespace("optout");
    let mut pod = c.crasher_pod(&ns, "quiet", &["segv", "1"]);
    pod["metadata"]["labels"] = serde_json::json!({"coredump.fujitsu.com/capture": "false"});
    c.apply(&pod);
    let records = c.wait_coredumps(
        &ns,
        Duration::from_secs(120),
        "a Coredump of pod quiet",
        |r| !r.is_empty(),
    );
    assert_eq!(
        records[0].status.state,
        CoredumpState::Skipped,
        "{:?}",
        records[0].status
    );
    assert_eq!(
        records[0].status.reason,
        Some(coredump_api::CoredumpReason::OptedOut)
    );
    assert_eq!(records[0].status.stored_size, 0);

    let quiet_ns = c.namespace("optout-ns");
    c.kubectl(&[
        "annotate",
        "namespace",
        &quiet_ns,
        "coredump.fujitsu.com/capture=false",
    ]);
    c.apply(&c.crasher_pod(&quiet_ns, "crash", &["segv", "1"]));
    let records = c.wait_coredumps(
        &quiet_ns,
        Duration::from_secs(120),
        "a Coredump in the opted-out namespace",
        |r| !r.is_empty(),
    );
    assert_eq!(
        records[0].status.state,
        CoredumpState::Skipped,
        "{:?}",
        records[0].status
    );
    assert_eq!(
        records[0].status.reason,
        Some(coredump_api::CoredumpReason::OptedOut)
    );
    c.kubectl(&["delete", "namespace", &ns, &quiet_ns, "--wait=false"]);
}

/// A pod whose container crashes at every start goes into CrashLoopBackOff; every crash is
/// recorded once, and the agent stays Ready.
#[test]
fn crash_loop_records_every_crash_once() {
    let c = cluster();
    let _lock = c.lock();
    let ns = c.namespace("loop");
    c.apply(&c.crasher_pod(&ns, "loop", &["segv", "1"]));
    let restarts = c.wait(Duration::from_secs(240), "4 restarts", || {
        let pod = c.pod(&ns, "loop");
        let status = &pod["status"]["containerStatuses"][0];
        let n = status["restartCount"].as_u64().unwrap_or(0);
        (n >= 4).then_some(n)
    });
    // Crashes so far: one per restart, plus the one the pod may be backing off from now. A
    // record can arrive before kubelet reports the crash, and kubelet can report a crash
    // before its record arrives: compare the two when the pod's status is the same before and
    // after reading the records (the back-off between crashes is 40 s or more by now), until
    // they agree. A lost crash never agrees, a duplicate neither.
    let crashes_of = |pod: &serde_json::Value| {
        let status = &pod["status"]["containerStatuses"][0];
        status["restartCount"].as_u64().unwrap_or(0)
            + u64::from(
                status["state"]["terminated"].is_object() || status["state"]["waiting"].is_object(),
            )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let records = loop {
        let before = crashes_of(&c.pod(&ns, "loop"));
        let records = c.coredumps(&ns);
        let after = crashes_of(&c.pod(&ns, "loop"));
        let accounted = node_fixture::accounted(&records);
        if before == after && accounted == after && after >= restarts {
            break records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{accounted} crashes accounted for, {after} happened (kubelet's count), not equal within 120 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let stored: Vec<_> = records
        .iter()
        .filter(|r| r.status.state == CoredumpState::Stored)
        .collect();
    let mut ids: Vec<_> = stored.iter().map(|r| r.spec.container_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), stored.len(), "one record per container instance");
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// A crash of a sidecar (an init container that keeps running) and of a plain init container
/// are recorded under those containers' names.
#[test]
fn crashes_of_a_sidecar_and_of_an_init_container_name_that_container() {
    let c = cluster();
    let _lock = c.lock();
    let ns = c.namespace("side");
    let mut sidecar = c.crasher_container("sidecar", &["child-abrt", "1"]);
    sidecar["restartPolicy"] = "Always".into();
    let mut pod = c.crasher_pod(&ns, "with-sidecar", &["sleep"]);
    pod["spec"]["initContainers"] = serde_json::json!([sidecar]);
    c.apply(&pod);
    let mut init = c.crasher_pod(&ns, "with-init", &["sleep"]);
    init["spec"]["restartPolicy"] = "Never".into();
    init["spec"]["initContainers"] =
        serde_json::json!([c.crasher_container("setup", &["segv", "1"])]);
    c.apply(&init);
    let records = c.wait_coredumps(
        &ns,
        Duration::from_secs(120),
        "Coredumps of both pods",
        |r| {
            ["with-sidecar", "with-init"]
                .iter()
                .all(|p| r.iter().any(|x| x.spec.pod_name.as_deref() == Some(*p)))
        },
    );
    let of = |pod: &str| {
        records
            .iter()
            .find(|r| r.spec.pod_name.as_deref() == Some(pod))
            .unwrap()
    };
    assert_eq!(
        of("with-sidecar").spec.container_name.as_deref(),
        Some("sidecar")
    );
    assert_eq!(of("with-sidecar").spec.signal, 6);
    assert_eq!(
        of("with-init").spec.container_name.as_deref(),
        Some("setup")
    );
    assert_eq!(of("with-init").spec.signal, 11);
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// A namespace over its quota (`--ns-disk-quota` of the install): the crash is recorded as
/// QuotaExceeded without its core, and the namespace's stored bytes stay under the quota.
#[test]
fn a_namespace_over_its_quota_gets_records_without_cores() {
    let c = cluster();
    let _lock = c.lock();
    let ns = c.namespace("quota");
    // Incompressible 24 MiB cores against the install's 40 MiB quota: the first fits.
    for name in ["first", "second"] {
        let mut pod = c.crasher_pod(&ns, name, &["segv", "24", "random"]);
        pod["spec"]["restartPolicy"] = "Never".into();
        c.apply(&pod);
        c.wait_coredumps(&ns, Duration::from_secs(120), name, |r| {
            r.iter().any(|x| x.spec.pod_name.as_deref() == Some(name))
        });
    }
    let records = c.coredumps(&ns);
    let state = |pod: &str| {
        records
            .iter()
            .find(|r| r.spec.pod_name.as_deref() == Some(pod))
            .map(|r| r.status.state)
    };
    assert_eq!(state("first"), Some(CoredumpState::Stored));
    let second = records
        .iter()
        .find(|r| r.spec.pod_name.as_deref() == Some("second"))
        .expect("second's record");
    assert_eq!(
        second.status.state,
        CoredumpState::QuotaExceeded,
        "{}",
        second.status.message
    );
    assert_eq!(
        second.status.reason,
        Some(coredump_api::CoredumpReason::QuotaExceeded)
    );
    assert_eq!(second.status.blob_path, "");
    let stored: u64 = records.iter().map(|r| r.status.stored_size).sum();
    assert!(stored <= node_fixture::QUOTA_BYTES, "{stored} bytes stored");
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// The agent pod deleted, then `kubectl rollout restart daemonset`, while a pod crashes a child
/// every 200 ms: every crash is recorded exactly once.
#[test]
fn agent_restarts_lose_no_crash() {
    let c = cluster();
    let _lock = c.lock();
    let ns = c.namespace("steady");
    const CRASHES: u64 = 250;
    c.apply(&c.crasher_pod(&ns, "steady", &["every", "200", &CRASHES.to_string()]));
    c.wait_coredumps(&ns, Duration::from_secs(120), "the first crashes", |r| {
        r.len() >= 3
    });
    let agent_ns = node_fixture::INSTALL_NS;
    let gap = c.agent_gap_during(|| {
        c.kubectl(&[
            "delete",
            "pod",
            "-n",
            agent_ns,
            "-l",
            "app.kubernetes.io/component=agent",
            "--wait=true",
        ]);
        c.kubectl(&[
            "rollout",
            "status",
            "-n",
            agent_ns,
            "daemonset/kcdt-ds",
            "--timeout=180s",
        ]);
        c.kubectl(&["rollout", "restart", "-n", agent_ns, "daemonset/kcdt-ds"]);
        c.kubectl(&[
            "rollout",
            "status",
            "-n",
            agent_ns,
            "daemonset/kcdt-ds",
            "--timeout=180s",
        ]);
    });
    c.wait(Duration::from_secs(180), "the crasher's last crash", || {
        let out = c.cp().kubectl(&["logs", "-n", &ns, "steady", "--tail=3"]);
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("crash {CRASHES} "))
            .then_some(())
    });
    // A crash is accounted for by a record of its own, or counted in a RateLimited summary
    // (the crash-loop limits keep a burst of cores per pod, then count the rest).
    let records = c.wait_coredumps(
        &ns,
        Duration::from_secs(120),
        "every crash accounted for",
        |r| node_fixture::accounted(r) >= CRASHES,
    );
    let own: Vec<_> = records
        .iter()
        .filter(|r| r.status.suppressed_crashes == 0)
        .collect();
    let mut pids: Vec<u32> = own.iter().map(|r| r.spec.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    let accounted = node_fixture::accounted(&records);
    eprintln!(
        "real_node: agent restarts: {accounted} of {CRASHES} crashes accounted for ({} records of their own, the rest in RateLimited summaries); core_pattern not the handler for {gap:?}",
        own.len()
    );
    assert_eq!(pids.len(), own.len(), "no crash recorded twice");
    assert_eq!(accounted, CRASHES, "crashes lost (or counted twice)");
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// A crashed pod deleted: its Coredump and core stay until the GC threshold has passed, and are
/// collected after it.
#[test]
fn cores_of_a_deleted_pod_are_collected_after_the_threshold_not_before() {
    let c = cluster();
    let _lock = c.lock();
    let ns = c.namespace("gc");
    let mut pod = c.crasher_pod(&ns, "gone", &["segv", "1"]);
    pod["spec"]["restartPolicy"] = "Never".into();
    c.apply(&pod);
    let records = c.wait_coredumps(
        &ns,
        Duration::from_secs(120),
        "a Coredump of pod gone",
        |r| !r.is_empty(),
    );
    let uid = records[0].spec.pod_uid.clone().unwrap();
    let blobs = c.install.local_path.join(&ns).join(&uid);
    assert!(blobs.exists(), "{} holds the core", blobs.display());
    c.kubectl(&["delete", "pod", "-n", &ns, "gone", "--wait=true"]);
    let deleted = Instant::now();
    let threshold = Duration::from_secs(node_fixture::GC_THRESHOLD_S);
    // Before the threshold, nothing may go (checked until shortly before it ends).
    while deleted.elapsed() + Duration::from_secs(3) < threshold {
        assert_eq!(
            c.coredumps(&ns).len(),
            1,
            "collected {:?} after deletion",
            deleted.elapsed()
        );
        assert!(
            blobs.exists(),
            "core removed {:?} after deletion",
            deleted.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // After it, the next collection (every minute) removes record and core.
    c.wait_coredumps(
        &ns,
        threshold + Duration::from_secs(150),
        "the GC to collect",
        |r| r.is_empty(),
    );
    let collected_after = deleted.elapsed();
    c.wait(
        Duration::from_secs(30),
        "the core's directory to go",
        || {
            (!blobs
                .join("app")
                .read_dir()
                .is_ok_and(|mut d| d.next().is_some()))
            .then_some(())
        },
    );
    eprintln!(
        "real_node: GC collected {collected_after:?} after the pod's deletion (threshold {threshold:?})"
    );
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// `kubectl delete -f coredump.yaml`: core_pattern and core_pipe_limit are what they were
/// before the install and nothing of it runs on the node; then the install is recreated for
/// the other tests.
#[test]
fn uninstall_restores_the_kernel_settings_and_leaves_nothing_running() {
    let c = cluster();
    let _lock = c.lock();
    c.uninstall();
    assert_eq!(node_fixture::kernel_settings(), c.pattern_before);
    let running: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let cmd = std::fs::read(e.ok()?.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.starts_with("/usr/local/bin/coredump-detector")
                || cmd.contains(&c.install.host_dir.display().to_string()))
            .then_some(cmd)
        })
        .collect();
    assert!(running.is_empty(), "still running: {running:?}");
    c.reinstall();
}

/// The committed Helm chart on the real node: the manifest install is deleted, `helm install`
/// of `deploy/helm/coredump-detector` (this node's images and host paths as values) brings up
/// an agent that takes `core_pattern` and records a crash, and `helm uninstall` gives
/// `core_pattern` and `core_pipe_limit` back as they were. Then the manifest install is
/// recreated for the other tests.
#[test]
fn helm_install_captures_and_helm_uninstall_restores_the_kernel_settings() {
    let c = cluster();
    let _lock = c.lock();
    let kernel = node_fixture::kernel_settings;
    c.uninstall();

    // The chart leaves the namespace to the user (README): created with the Pod Security level
    // the privileged agent needs.
    c.kubectl(&["create", "namespace", node_fixture::INSTALL_NS]);
    c.kubectl(&[
        "label",
        "namespace",
        node_fixture::INSTALL_NS,
        "pod-security.kubernetes.io/enforce=privileged",
    ]);
    let home = tempfile::tempdir().unwrap();
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/coredump-detector");
    let helm = |args: &[&str]| {
        let out = coredump_testplane::helm::helm_command(c.cp(), home.path())
            .unwrap()
            .args(args)
            .args(["-n", node_fixture::INSTALL_NS, "--timeout", "180s"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let images = c.node.images();
    let host = c.install.host_dir.parent().unwrap();
    let values = [
        format!("image={}", images.detector),
        format!("etcdImage={}", images.etcd),
        format!("hostDir={}", c.install.host_dir.display()),
        format!("localPath={}", c.install.local_path.display()),
        format!("etcdDataPath={}", host.join("etcd").display()),
        format!("gcThreshold={}s", node_fixture::GC_THRESHOLD_S),
        "nsDiskQuota=40Mi".to_string(),
    ]
    .join(",");
    helm(&[
        "install",
        "cd",
        chart.to_str().unwrap(),
        "--set-string",
        &values,
    ]);
    let took = c
        .node
        .wait_installed(&c.install, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e}"));
    let handler = c.install.host_dir.display().to_string();
    let (pattern, _) = c.wait(Duration::from_secs(60), "the agent's core_pattern", || {
        let now = kernel();
        now.0.contains(&handler).then_some(now)
    });
    eprintln!("real_node: helm install ready in {took:?}, core_pattern {pattern:?}");

    let ns = c.namespace("helm");
    c.apply(&c.crasher_pod(&ns, "crash", &["segv", "8"]));
    let records = c.wait_coredumps(
        &ns,
        Duration::from_secs(120),
        "a Coredump of the helm install",
        |r| !r.is_empty(),
    );
    assert_eq!(records[0].spec.pod_name.as_deref(), Some("crash"));
    assert_eq!(records[0].status.state, CoredumpState::Stored);
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);

    helm(&["uninstall", "cd"]);
    c.wait(
        Duration::from_secs(120),
        "core_pattern restored by helm uninstall",
        || (kernel() == c.pattern_before).then_some(()),
    );
    assert_eq!(kernel(), c.pattern_before);
    c.kubectl(&[
        "delete",
        "namespace",
        node_fixture::INSTALL_NS,
        "--wait=true",
        "--timeout=180s",
    ]);
    c.reinstall();
}

/// Figures, not a pass/fail check: for 256 MiB and 1 GiB incompressible cores, the time from
/// the fault to containerd's task exit (how long the crash holds the process) and to the
/// restarted container's start, with the agent's handler, with `cat > /dev/null` as the
/// handler, and with no core written at all. Run with
/// `cargo test -p coredump-detector --test real_node figures -- --ignored --nocapture`.
#[test]
#[ignore = "prints figures; run by hand with --ignored --nocapture"]
fn figures_crash_to_restart_by_core_size() {
    use std::io::BufRead;
    use std::time::SystemTime;
    let c = cluster();
    let _lock = c.lock();
    let agent_ns = node_fixture::INSTALL_NS;
    let rollout = |quota: &str| {
        c.kubectl(&[
            "set",
            "env",
            "-n",
            agent_ns,
            "daemonset/kcdt-ds",
            &format!("NS_DISK_QUOTA={quota}"),
        ]);
        c.kubectl(&[
            "rollout",
            "status",
            "-n",
            agent_ns,
            "daemonset/kcdt-ds",
            "--timeout=180s",
        ]);
    };
    rollout("4Gi");
    let agent_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(SystemTime, String)>::new()));
    let mut ctr = std::process::Command::new("ctr")
        .arg("-a")
        .arg(c.node.layout().containerd_socket())
        .args(["-n", "k8s.io", "events"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = ctr.stdout.take().unwrap();
    let sink = events.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push((SystemTime::now(), line));
        }
    });
    let epoch = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let mut table = Vec::new();
    for (mode, pattern) in [
        ("agent", agent_pattern.trim().to_string()),
        ("cat >/dev/null", "|/bin/sh -c cat>/dev/null".to_string()),
        ("no core", "core".to_string()),
    ] {
        std::fs::write("/proc/sys/kernel/core_pattern", format!("{pattern}\n")).unwrap();
        for mib in [256u64, 1024] {
            let ns = c.namespace("figures");
            c.apply(&c.crasher_pod(&ns, "big", &["segv", &mib.to_string(), "random"]));
            let pod = c.wait(Duration::from_secs(300), "the first restart", || {
                let pod = c.pod(&ns, "big");
                let status = &pod["status"]["containerStatuses"][0];
                (status["restartCount"].as_u64().unwrap_or(0) >= 1
                    && status["state"]["running"].is_object())
                .then_some(pod)
            });
            let status = &pod["status"]["containerStatuses"][0];
            let id = |v: &serde_json::Value| {
                v.as_str()
                    .unwrap()
                    .trim_start_matches("containerd://")
                    .to_string()
            };
            let (old, new) = (
                id(&status["lastState"]["terminated"]["containerID"]),
                id(&status["containerID"]),
            );
            let logs = c.kubectl(&["logs", "-n", &ns, "big", "--previous"]);
            let crash: f64 = logs
                .lines()
                .find_map(|l| {
                    l.strip_prefix("crashing at ")?
                        .split(' ')
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap();
            let seen = |topic: &str, id: &str| {
                events
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(_, l)| l.contains(topic) && l.contains(id))
                    .map(|(t, _)| epoch(*t) - crash)
            };
            let row = format!(
                "{mode:>16} {mib:>5} MiB: fault -> task exit {:>6.3} s, fault -> restarted container started {:>6.3} s",
                seen("/tasks/exit", &old).unwrap_or(f64::NAN),
                seen("/tasks/start", &new).unwrap_or(f64::NAN)
            );
            eprintln!("real_node figures: {row}");
            table.push(row);
            c.kubectl(&["delete", "namespace", &ns, "--wait=true", "--timeout=120s"]);
        }
    }
    std::fs::write("/proc/sys/kernel/core_pattern", agent_pattern).unwrap();
    let _ = ctr.kill();
    let _ = ctr.wait();
    rollout("40Mi");
    eprintln!("real_node figures:\n{}", table.join("\n"));
}

// ---- Bad input and faults (issue 11) ----

/// A pod force-deleted (grace 0) the moment its crash starts being captured, before the agent
/// has resolved it: the crash is still recorded exactly once under the pod's UID, either in the
/// pod's namespace with its core (the agent keeps a deleted pod's last known state) or, when
/// its namespace stays unknown, in the install's namespace without the core and with a reason.
#[test]
fn a_pod_deleted_while_its_crash_is_captured_is_still_recorded_once() {
    let c = cluster();
    let _lock = c.lock();
    let took = Instant::now();
    let ns = c.namespace("vanish");
    let (uid, tmp) = node_fixture::crash_once_and_wait_capture(c, &ns, "vanish", &["segv", "512"]);
    let started = Instant::now();
    c.kubectl(&[
        "delete",
        "pod",
        "-n",
        &ns,
        "vanish",
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]);
    let deleted_after = started.elapsed();
    let still_capturing = tmp.exists();
    let records = c.wait(
        Duration::from_secs(120),
        "a Coredump of the deleted pod",
        || {
            let r = node_fixture::records_of_pod(c, &ns, &uid);
            (!r.is_empty()).then_some(r)
        },
    );
    // Nothing recorded twice: give a second record (another retry, a reaped entry) time to show.
    std::thread::sleep(Duration::from_secs(5));
    let records = {
        let again = node_fixture::records_of_pod(c, &ns, &uid);
        assert!(again.len() >= records.len());
        again
    };
    assert_eq!(records.len(), 1, "one record for one crash: {records:#?}");
    let record = &records[0];
    assert_eq!(record.spec.signal, 11);
    assert!(
        c.cp()
            .kubectl(&["get", "pod", "-n", &ns, "vanish"])
            .status
            .code()
            != Some(0),
        "the pod is gone"
    );
    let placed = record.metadata.namespace.as_str();
    if placed == ns {
        assert_eq!(record.spec.pod_name.as_deref(), Some("vanish"));
        assert_eq!(record.spec.container_name.as_deref(), Some("app"));
        assert_eq!(record.status.state, CoredumpState::Stored, "{record:#?}");
        assert!(record.status.stored_size > 0);
    } else {
        assert_eq!(placed, node_fixture::INSTALL_NS, "{record:#?}");
        assert_ne!(record.status.state, CoredumpState::Stored, "{record:#?}");
        assert_eq!(
            record.status.stored_size, 0,
            "no core outside the pod's namespace"
        );
        assert!(!record.status.message.is_empty(), "a reason: {record:#?}");
    }
    c.wait(Duration::from_secs(60), "the spool drained", || {
        node_fixture::spool_entries(c).is_empty().then_some(())
    });
    eprintln!(
        "real_node: pod deleted {deleted_after:?} after its capture started (capture still running then: {still_capturing}); recorded in {placed} as {:?} {}",
        record.status.state, record.status.message
    );
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    eprintln!(
        "real_node: a_pod_deleted_while_its_crash_is_captured_is_still_recorded_once took {:?}",
        took.elapsed()
    );
}

/// containerd restarted (SIGTERM, started again) while a 1 GiB core is being captured: the
/// core is stored whole (the downloaded core's SHA-256 is `status.sha256`, its size the core's
/// raw size, the pod's marker in it) and the pod, container and container ID are resolved.
#[test]
fn a_containerd_restart_during_a_capture_loses_nothing() {
    let c = cluster();
    let _lock = c.lock();
    let took = Instant::now();
    let ns = c.namespace("ctrd");
    let (uid, tmp) = node_fixture::crash_once_and_wait_capture(c, &ns, "big", &["segv", "1024"]);
    let restart_at = Instant::now();
    let watch = std::thread::spawn(move || {
        while tmp.exists() {
            std::thread::sleep(Duration::from_millis(2));
        }
        Instant::now()
    });
    let (old, new) = c
        .node
        .restart_containerd()
        .unwrap_or_else(|e| panic!("{e}"));
    let restarted_in = restart_at.elapsed();
    let capture_done = watch.join().unwrap();
    assert!(
        capture_done > restart_at,
        "the capture ended before containerd was stopped"
    );
    let records = c.wait_coredumps(&ns, Duration::from_secs(180), "a Coredump of big", |r| {
        !r.is_empty()
    });
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(record.status.state, CoredumpState::Stored, "{record:#?}");
    assert_eq!(record.spec.pod_name.as_deref(), Some("big"));
    assert_eq!(record.spec.pod_uid.as_deref(), Some(uid.as_str()));
    assert_eq!(record.spec.container_name.as_deref(), Some("app"));
    assert_eq!(record.status.core_size, record.status.raw_size, "whole");
    assert!(
        record.status.raw_size >= 1 << 30,
        "{}",
        record.status.raw_size
    );
    // kubelet learns the container's end from the new containerd: the ID it reports is the
    // record's.
    let status = c.wait(
        Duration::from_secs(180),
        "the pod's container terminated",
        || {
            let pod = c.pod(&ns, "big");
            let s = pod["status"]["containerStatuses"][0].clone();
            s["state"]["terminated"].is_object().then_some(s)
        },
    );
    assert_eq!(
        record.spec.container_id.as_deref(),
        status["containerID"].as_str(),
        "{status}"
    );
    let dir = tempfile::tempdir().unwrap();
    let core = download(c, &ns, &record.metadata.name, dir.path());
    assert_eq!(
        std::fs::metadata(&core).unwrap().len(),
        record.status.raw_size
    );
    assert_eq!(node_fixture::sha256_file(&core), record.status.sha256);
    let bytes = std::fs::read(&core).unwrap();
    assert!(
        common::in_memory(&bytes, &marker(&uid, 0)),
        "the pod's marker"
    );
    drop(bytes);
    eprintln!(
        "real_node: containerd {old} -> {new} restarted in {restarted_in:?}; the capture ended {:?} after the restart began",
        capture_done - restart_at
    );
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    eprintln!(
        "real_node: a_containerd_restart_during_a_capture_loses_nothing took {:?}",
        took.elapsed()
    );
}

/// The node's spool and blob filesystem while a full-disk test runs: a 64 MiB tmpfs bound over
/// the install's `<host-dir>/spool` and `--local-path`, the agent restarted (with `--min-free`
/// and `--min-free-blobs` of 4 MiB) so its container sees it; undone on drop, whatever the
/// test's outcome.
struct FullDisk<'a> {
    c: &'a node_fixture::Cluster,
    root: std::path::PathBuf,
    mounts: Vec<std::path::PathBuf>,
    args: String,
}

#[allow(clippy::unwrap_used)]
impl FullDisk<'_> {
    fn mount(c: &node_fixture::Cluster) -> FullDisk<'_> {
        let sh = |cmd: &str| {
            let out = std::process::Command::new("sh")
                .args(["-c", cmd])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let root = c.install.host_dir.parent().unwrap().join("fullfs");
        std::fs::create_dir_all(&root).unwrap();
        let args = c.kubectl(&[
            "get",
            "daemonset",
            "-n",
            node_fixture::INSTALL_NS,
            "kcdt-ds",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].args}",
        ]);
        let mut disk = FullDisk {
            c,
            root: root.clone(),
            mounts: Vec::new(),
            args,
        };
        sh(&format!(
            "mount -t tmpfs -o size=64m,mode=0700 coredump-fullfs {}",
            root.display()
        ));
        disk.mounts.push(root.clone());
        let spool = node_fixture::spool_dir(c);
        let cores = &c.install.local_path;
        sh(&format!(
            "mkdir -m 0700 {r}/spool {r}/cores && chown --reference={cores} {r}/cores && chmod --reference={cores} {r}/cores && if [ -d {spool}/slots ]; then cp -a {spool}/slots {r}/spool/; fi",
            r = root.display(),
            cores = cores.display(),
            spool = spool.display()
        ));
        for (from, to) in [
            (root.join("spool"), spool),
            (root.join("cores"), cores.clone()),
        ] {
            sh(&format!("mount --bind {} {}", from.display(), to.display()));
            disk.mounts.push(to);
        }
        let patch = serde_json::json!([
            {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--min-free=4Mi"},
            {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--min-free-blobs=4Mi"},
        ]);
        c.kubectl(&[
            "patch",
            "daemonset",
            "-n",
            node_fixture::INSTALL_NS,
            "kcdt-ds",
            "--type=json",
            "-p",
            &patch.to_string(),
        ]);
        node_fixture::agent_rolled_out(c);
        disk
    }

    /// Fills the filesystem to the last byte (a file written until ENOSPC).
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.root.join("filler")).unwrap();
        let block = vec![0x5au8; 1 << 16];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling: {e}"),
            }
        }
        // The last partial page too.
        while f.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
        let _ = f.sync_all();
    }

    fn free_space(&self) {
        std::fs::remove_file(self.root.join("filler")).unwrap();
    }

    /// Files and directories on the filesystem whose names mark something half-written.
    fn half_written(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".tmp") || name.contains(".tmp-") || name.starts_with(".tmp") {
                    found.push(e.path().display().to_string());
                }
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
        found
    }
}

#[allow(clippy::unwrap_used)]
impl Drop for FullDisk<'_> {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(m)
                .status();
        }
        let patch = serde_json::json!([
            {"op": "replace", "path": "/spec/template/spec/containers/0/args",
             "value": serde_json::from_str::<serde_json::Value>(&self.args).unwrap_or_default()},
        ]);
        let _ = self.c.cp().kubectl(&[
            "patch",
            "daemonset",
            "-n",
            node_fixture::INSTALL_NS,
            "kcdt-ds",
            "--type=json",
            "-p",
            &patch.to_string(),
        ]);
        let _ = self.c.cp().kubectl(&[
            "rollout",
            "status",
            "-n",
            node_fixture::INSTALL_NS,
            "daemonset/kcdt-ds",
            "--timeout=180s",
        ]);
    }
}

/// The node's spool and blob filesystem full to the last byte: a crash is still recorded, as
/// Skipped or Failed with a reason naming the space, nothing half-written stays on the
/// filesystem, the agent keeps running (not restarted, Ready); once space is freed the next
/// crash is stored with its core.
#[test]
fn a_full_node_disk_records_crashes_without_cores_and_recovers() {
    let c = cluster();
    let _lock = c.lock();
    let took = Instant::now();
    let ns = c.namespace("full");
    let disk = FullDisk::mount(c);
    let (agent, _, restarts) = node_fixture::agent_pod(c);
    disk.fill();
    let mut pod = c.crasher_pod(&ns, "while-full", &["segv", "8"]);
    pod["spec"]["restartPolicy"] = "Never".into();
    c.apply(&pod);
    let records = c.wait_coredumps(
        &ns,
        Duration::from_secs(120),
        "a record of the crash on a full disk",
        |r| !r.is_empty(),
    );
    let full = &records[0];
    assert!(
        matches!(
            full.status.state,
            CoredumpState::Skipped | CoredumpState::Failed
        ),
        "{full:#?}"
    );
    assert_eq!(full.status.stored_size, 0);
    let reason = full.status.message.to_lowercase();
    assert!(
        reason.contains("free") || reason.contains("space") || reason.contains("full"),
        "a reason naming the disk: {}",
        full.status.message
    );
    c.wait(Duration::from_secs(60), "the spool drained", || {
        node_fixture::spool_entries(c).is_empty().then_some(())
    });
    assert_eq!(disk.half_written(), Vec::<String>::new(), "half-written");

    disk.free_space();
    let mut pod = c.crasher_pod(&ns, "after", &["segv", "8"]);
    pod["spec"]["restartPolicy"] = "Never".into();
    c.apply(&pod);
    let records = c.wait_coredumps(
        &ns,
        Duration::from_secs(120),
        "a record of the crash after space was freed",
        |r| {
            r.iter()
                .any(|x| x.spec.pod_name.as_deref() == Some("after"))
        },
    );
    let after = records
        .iter()
        .find(|x| x.spec.pod_name.as_deref() == Some("after"))
        .unwrap();
    assert_eq!(after.status.state, CoredumpState::Stored, "{after:#?}");
    let blob = disk.root.join("cores").join(&after.status.blob_path);
    assert!(blob.is_file(), "{} stored", blob.display());
    assert_eq!(
        records.len(),
        2,
        "each crash recorded once: {:#?}",
        records
            .iter()
            .map(|r| (&r.spec.pod_name, r.status.state))
            .collect::<Vec<_>>()
    );
    c.wait(Duration::from_secs(60), "the spool drained", || {
        node_fixture::spool_entries(c).is_empty().then_some(())
    });
    assert_eq!(disk.half_written(), Vec::<String>::new(), "half-written");
    let (agent_now, _, restarts_now) = node_fixture::agent_pod(c);
    assert_eq!(
        (agent_now.as_str(), restarts_now),
        (agent.as_str(), restarts),
        "the agent kept running"
    );
    eprintln!(
        "real_node: full disk: {:?} ({}); after freeing: Stored",
        full.status.state, full.status.message
    );
    drop(disk);
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    eprintln!(
        "real_node: a_full_node_disk_records_crashes_without_cores_and_recovers took {:?}",
        took.elapsed()
    );
}

/// An install whose `--image` is not on the node (and no registry reachable), made while the
/// shared install is removed: `kubectl create -f` returns, the workloads do not become ready
/// and say why (the pods wait in ErrImagePull or ImagePullBackOff, with a `Failed` event naming
/// the image), `core_pattern` stays what it was, and `kubectl delete -f` leaves no namespace,
/// cluster object or process behind. The shared install is recreated afterwards.
#[test]
fn an_install_whose_image_is_missing_reports_it_and_changes_nothing() {
    const NS: &str = "coredump-noimage";
    const IMAGE: &str = "coredump-test/not-loaded:0";
    let c = cluster();
    let _lock = c.lock();
    let took = Instant::now();
    c.uninstall();
    struct Reinstall<'a>(&'a node_fixture::Cluster);
    impl Drop for Reinstall<'_> {
        fn drop(&mut self) {
            self.0.reinstall();
        }
    }
    let _reinstall = Reinstall(c);
    let cluster_objects = || {
        c.kubectl(&[
            "get",
            "apiservices,clusterroles,clusterrolebindings,validatingwebhookconfigurations",
            "-o",
            "name",
        ])
        .lines()
        .filter(|l| l.contains("coredump"))
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let leftovers_before = cluster_objects();

    let created = Instant::now();
    let install = c
        .node
        .install(
            NS,
            &[
                format!("--image={IMAGE}"),
                "--image-pull-policy=IfNotPresent".to_string(),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let create_took = created.elapsed();
    let waiting = c.wait(
        Duration::from_secs(120),
        "the pods to report the missing image",
        || {
            let json = c.kubectl(&["get", "pods", "-n", NS, "-o", "json"]);
            let pods: serde_json::Value = serde_json::from_str(&json).unwrap();
            let reasons: Vec<(String, String)> = pods["items"]
                .as_array()?
                .iter()
                .filter(|p| p["spec"]["containers"][0]["image"].as_str() == Some(IMAGE))
                .map(|p| {
                    (
                        p["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect();
            // The API server, the GC and the agent run the image.
            (reasons.len() >= 3
                && reasons
                    .iter()
                    .all(|(_, r)| r == "ErrImagePull" || r == "ImagePullBackOff"))
            .then_some(reasons)
        },
    );
    let events = c.kubectl(&[
        "get",
        "events",
        "-n",
        NS,
        "--field-selector=reason=Failed",
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.lines().any(|l| l.contains(IMAGE)),
        "a Failed event naming the image: {events}"
    );
    // The install's own wait gives up with the reason, it does not hang.
    let err = c
        .node
        .wait_installed(&install, Duration::from_secs(5))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ErrImagePull") || err.contains("ImagePullBackOff"),
        "{err}"
    );
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    assert_eq!(pattern.trim(), c.pattern_before.0, "core_pattern untouched");
    let during = cluster_objects();
    assert!(
        during
            .iter()
            .any(|o| o.contains("v1alpha1.coredump.fujitsu.com")),
        "the install's cluster objects exist meanwhile: {during:?}"
    );

    let manifest = install.manifest.display().to_string();
    c.kubectl(&["delete", "-f", &manifest, "--wait=true", "--timeout=180s"]);
    c.wait(Duration::from_secs(120), "the namespace to go", || {
        (!c.cp().kubectl(&["get", "namespace", NS]).status.success()).then_some(())
    });
    assert_eq!(cluster_objects(), leftovers_before, "cluster objects left");
    let host = install.host_dir.display().to_string();
    let running: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let cmd = std::fs::read(e.ok()?.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.starts_with("/usr/local/bin/coredump-detector") || cmd.contains(&host))
                .then_some(cmd)
        })
        .collect();
    assert!(running.is_empty(), "still running: {running:?}");
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    assert_eq!(pattern.trim(), c.pattern_before.0, "core_pattern untouched");
    eprintln!(
        "real_node: missing image: kubectl create -f returned in {create_took:?}; pods {waiting:?}"
    );
    eprintln!(
        "real_node: an_install_whose_image_is_missing_reports_it_and_changes_nothing took {:?}",
        took.elapsed()
    );
}

/// A second agent started by hand on the node with the install's `--host-dir` (and a harmful
/// flag of its own, `--min-free=100%`) while the install's agent runs, then one of another
/// install (its own `--host-dir`): each exits with an error naming the live owner (the
/// containerized agent holds the host's machine-wide owner lock through its DaemonSet's
/// mount), and changes nothing: `core_pattern`, the handler binary and its `handler.json` are
/// the first agent's, the other install's directory stays empty; that agent keeps running, and
/// a crash afterwards is recorded once, with its core.
#[test]
fn a_second_agent_on_the_same_host_dir_is_refused_and_changes_nothing() {
    let c = cluster();
    let _lock = c.lock();
    let took = Instant::now();
    let ns = c.namespace("second");
    let host_dir = &c.install.host_dir;
    let handler = host_dir.join("bin/coredump-detector");
    let config = host_dir.join("bin/handler.json");
    let inode = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).map(|m| m.ino()).unwrap()
    };
    let before = (
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        inode(&handler),
        std::fs::read(&config).unwrap(),
    );
    let agent = node_fixture::agent_pod(c);
    let blobs = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let other_host = other.path().join("host");
    let mut refused_in = Vec::new();
    let mut log = String::new();
    for host_dir in [host_dir.as_path(), other_host.as_path()] {
        let started = Instant::now();
        let mut second = std::process::Command::new(&c.node.images().detector_bin)
            .arg("agent")
            .arg(format!("--host-dir={}", host_dir.display()))
            .arg(format!("--local-path={}", blobs.path().display()))
            .arg(format!("--kubeconfig={}", c.cp().kubeconfig().display()))
            .args([
                "--node-name=coredump-node",
                "--metrics-bind-address=127.0.0.1:0",
                "--min-free=100%",
            ])
            .arg(format!(
                "--kubelet-config={}",
                c.node.layout().kubelet_config().display()
            ))
            .env_remove("NODE_NAME")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status = common::wait_child(&mut second, Duration::from_secs(60));
        if status.is_none() {
            let _ = second.kill();
        }
        let out = second.wait_with_output().unwrap();
        log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let status = status.unwrap_or_else(|| panic!("the second agent kept running: {log}"));
        assert!(!status.success(), "the second agent must fail: {log}");
        assert!(
            log.contains("already owned by a live coredump-detector"),
            "a clear error: {log}"
        );
        refused_in.push(started.elapsed());
    }
    assert!(
        !other_host.exists(),
        "the other install's agent created {}",
        other_host.display()
    );

    let after = (
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        inode(&handler),
        std::fs::read(&config).unwrap(),
    );
    assert_eq!(before.0, after.0, "core_pattern");
    assert_eq!(before.1, after.1, "the handler binary was replaced");
    assert!(
        before.2 == after.2,
        "handler.json rewritten by the second agent:\n{}\n---\n{}",
        String::from_utf8_lossy(&before.2),
        String::from_utf8_lossy(&after.2)
    );
    assert_eq!(
        node_fixture::agent_pod(c),
        agent,
        "the first agent kept running"
    );

    let mut pod = c.crasher_pod(&ns, "after", &["segv", "4"]);
    pod["spec"]["restartPolicy"] = "Never".into();
    c.apply(&pod);
    c.wait_coredumps(&ns, Duration::from_secs(120), "a Coredump of after", |r| {
        !r.is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    let records = c.coredumps(&ns);
    assert_eq!(records.len(), 1, "recorded once: {records:#?}");
    assert_eq!(
        records[0].status.state,
        CoredumpState::Stored,
        "{:#?}",
        records[0]
    );
    eprintln!(
        "real_node: second agent (same host dir, another install) refused in {refused_in:?}: {}",
        log.lines().last().unwrap_or_default()
    );
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    eprintln!(
        "real_node: a_second_agent_on_the_same_host_dir_is_refused_and_changes_nothing took {:?}",
        took.elapsed()
    );
}
