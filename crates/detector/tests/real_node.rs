//! The project as users run it, on a real node: kubelet and containerd run the image, the
//! manifest of `deploy/deploy.sh` is installed with `kubectl create -f`, and real containers
//! crash (crates/testnode). Needs root; each test is its own scenario over one shared node.

mod common;
mod node_fixture;

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

/// A namespace over its quota (`--ns-disk-quota` of the install): the crash is recorded
/// without its whole core, and the namespace's stored bytes stay under the quota.
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
    // Once the agent has published the namespace's usage to the crash path (every few
    // seconds), the quota left caps the core while it is captured (its prefix is kept,
    // Truncated); before that, ingest refuses the whole core (QuotaExceeded). Either way the
    // second core is not kept whole.
    let second = records
        .iter()
        .find(|r| r.spec.pod_name.as_deref() == Some("second"))
        .expect("second's record");
    match second.status.state {
        CoredumpState::QuotaExceeded => assert_eq!(second.status.blob_path, ""),
        CoredumpState::Truncated => assert!(
            second.status.core_size < 24 << 20,
            "{} bytes kept",
            second.status.core_size
        ),
        other => panic!("second: {other:?}: {}", second.status.message),
    }
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
    let manifest = c.install.manifest.display().to_string();
    c.kubectl(&["delete", "-f", &manifest, "--wait=true", "--timeout=180s"]);
    let (pattern, limit) = c.wait(Duration::from_secs(60), "core_pattern restored", || {
        let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
        let limit = std::fs::read_to_string("/proc/sys/kernel/core_pipe_limit").unwrap();
        (pattern.trim() == c.pattern_before.0)
            .then(|| (pattern.trim().to_string(), limit.trim().to_string()))
    });
    assert_eq!(
        (pattern.as_str(), limit.as_str()),
        (c.pattern_before.0.as_str(), c.pattern_before.1.as_str())
    );
    c.wait(
        Duration::from_secs(120),
        "the install's namespace to go",
        || {
            let out = c
                .cp()
                .kubectl(&["get", "namespace", node_fixture::INSTALL_NS]);
            (!out.status.success()).then_some(())
        },
    );
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
