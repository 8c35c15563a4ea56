//! Cluster mode end to end against the real kube-apiserver: `coredump-detector apiserver`,
//! `agent` and `gc` run as host processes, each authenticated with a token of the deploy
//! manifest's ServiceAccount (`coredump-api`, `coredump-agent`, `coredump-gc`) whose RBAC is
//! created from the manifest itself, so the test proves those rights suffice.
//!
//! A real process crashes on the real kernel in a fake kubepods cgroup carrying the UID of a
//! Pod bound to the agent's node and the container ID set in the Pod's status. The agent
//! resolves and records it; kubectl sees the Coredump with pod and container names and the
//! `CoreDumped` Event; the `dump` and `core` downloads return the core. The agent survives
//! SIGKILLs in the middle of ingests without losing or duplicating a crash, restores
//! `core_pattern` on SIGTERM, and the GC removes files and objects once the deleted Pod has
//! been gone longer than its threshold, and not before.
#![allow(clippy::unwrap_used)]

mod aggregated;
mod cluster;
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aggregated::{BASE, eventually, free_port, submit};
use cluster::{
    Agent, ApiStack, Role, SIGSEGV, container_id, coredumps, crash_events, crash_in, create_pod,
    files_under, get_raw, metric, pod_cgroup, service_account_kubeconfig, stored_core,
    wait_coredump,
};
use coredump_testkit::archive::untar_gz;
use coredump_testkit::kernel_lock::KernelSettings;
use coredump_testplane::shared;

#[test]
fn agent_apiserver_and_gc_as_the_deploy_manifests_service_accounts() {
    let settings = KernelSettings::acquire();
    let cp = shared().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("cdd-agent-")
        .tempdir_in("/var/tmp")
        .unwrap();
    // The blob volume is its own filesystem, as the DaemonSet's separate hostPath mounts make
    // it: the ingest then copies the spooled core (no hard link), as it does in a cluster.
    let blob_fs = common::SmallFs::mount(2048);
    let blobs = blob_fs.path().join("cores");
    std::fs::create_dir_all(&blobs).unwrap();
    let stack = ApiStack::start(cp, dir.path(), &blobs);
    let system = stack.system.clone();
    let kubeconfig = |sa: &str| service_account_kubeconfig(cp, &system, sa, dir.path());

    let node = format!("e2e-node-{}", std::process::id());
    let started = Instant::now();
    let mut agent = Agent::start(
        dir.path(),
        &blobs,
        &node,
        &kubeconfig("coredump-agent"),
        "drop",
    );
    println!("agent ready after {:?}", started.elapsed());
    assert_eq!(settings.current_pattern(), agent.pattern());

    // 1. A crash in a pod: recorded with pod and container names, an Event, downloadable.
    let app = cp.create_namespace("app").unwrap();
    let cid = container_id(1);
    let uid = create_pod(cp, &app, "web-0", &node, &cid, serde_json::json!({}));
    let cgroup = pod_cgroup(&uid, &cid);
    let crashed_at = Instant::now();
    let pid = crash_in(&cgroup, 4, 0x5eed, "mixed");
    let c = wait_coredump(cp, &app, pid, &agent.role);
    println!(
        "crash to Coredump visible in kubectl: {:?}",
        crashed_at.elapsed()
    );
    assert_eq!(c.spec.pod_name.as_deref(), Some("web-0"));
    assert_eq!(c.spec.pod_uid.as_deref(), Some(uid.as_str()));
    assert_eq!(c.spec.container_name.as_deref(), Some("app"));
    assert_eq!(c.spec.container_id, Some(format!("containerd://{cid}")));
    assert_eq!(c.spec.image.as_deref(), Some("registry.example/crasher:1"));
    assert_eq!(c.spec.node_name, node);
    assert_eq!(c.spec.signal_name, "SIGSEGV");
    assert_eq!(c.status.state, coredump_api::CoredumpState::Stored);
    assert!(
        c.status.blob_path.starts_with(&format!("{app}/{uid}/app/")),
        "{}",
        c.status.blob_path
    );
    let table = cp
        .kubectl_ok(&["get", "coredumps", "-n", &app, "--request-timeout=20s"])
        .unwrap();
    let row = table
        .lines()
        .find(|l| l.starts_with(&c.metadata.name))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("web-0") && row.contains(" app "), "{table}");

    let events = eventually(Duration::from_secs(30), "CoreDumped event", || {
        Some(crash_events(cp, &app, "web-0")).filter(|e| !e.is_empty())
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["involvedObject"]["kind"], "Pod");
    assert_eq!(events[0]["involvedObject"]["uid"], uid.as_str());
    let message = events[0]["message"].as_str().unwrap();
    assert!(message.contains("SIGSEGV"), "{message}");
    assert!(message.contains(&c.spec.executable), "{message}");
    assert!(
        c.spec.executable.ends_with("/crasher"),
        "{}",
        c.spec.executable
    );

    let core = stored_core(&blobs, &c);
    let parsed = coredump_corefile::parse_core_bytes(&core).unwrap();
    assert_eq!(parsed.prstatus[0].pid, pid);
    assert_eq!(parsed.prstatus[0].signal, SIGSEGV);
    submit(
        cp,
        "create",
        &serde_json::json!({"apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
            "metadata": {"name": "web-0", "namespace": app}}),
    );
    let dump = untar_gz(&get_raw(
        cp,
        &format!("{BASE}/namespaces/{app}/coredumpendpoints/web-0/dump"),
    ))
    .unwrap();
    let cores: Vec<&(String, Vec<u8>)> = dump
        .iter()
        .filter(|(p, _)| p.ends_with(".core.zst"))
        .collect();
    assert_eq!(
        cores.len(),
        1,
        "{:?}",
        dump.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    assert_eq!(cores[0].0, c.status.blob_path);
    assert!(
        zstd::decode_all(&cores[0].1[..]).unwrap() == core,
        "dump differs"
    );
    let via_core = get_raw(
        cp,
        &format!("{BASE}/namespaces/{app}/coredumps/{}/core", c.metadata.name),
    );
    assert!(via_core == core, "core subresource differs");
    let m = agent.role.metrics();
    assert_eq!(
        metric(&m, "coredump_agent_crashes_total{state=\"Stored\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "coredump_agent_core_raw_bytes_total"),
        Some(c.status.raw_size as f64)
    );
    assert_eq!(
        metric(&m, "coredump_agent_ingest_latency_seconds_count"),
        Some(1.0)
    );

    // 2. Opt-out by annotation: recorded as Skipped, no core kept.
    let quiet_cid = container_id(2);
    let quiet_uid = create_pod(
        cp,
        &app,
        "quiet-0",
        &node,
        &quiet_cid,
        serde_json::json!({"coredump.fujitsu.com/capture": "false"}),
    );
    let quiet_cgroup = pod_cgroup(&quiet_uid, &quiet_cid);
    let quiet_pid = crash_in(&quiet_cgroup, 1, 2, "text");
    let q = wait_coredump(cp, &app, quiet_pid, &agent.role);
    assert_eq!(q.status.state, coredump_api::CoredumpState::Skipped);
    assert_eq!(
        q.status.reason,
        Some(coredump_api::CoredumpReason::OptedOut)
    );
    assert!(
        q.status.message.starts_with("opted out: pod"),
        "{}",
        q.status.message
    );
    assert_eq!((q.status.blob_path.as_str(), q.status.core_size), ("", 0));
    assert!(
        !files_under(&blobs.join(&app).join(&quiet_uid))
            .iter()
            .any(|f| f.ends_with(".core.zst")),
        "no core kept for an opted-out pod"
    );

    // 3. SIGKILL in the middle of ingests: nothing lost, nothing twice.
    agent.role.kill();
    assert_eq!(
        settings.current_pattern(),
        agent.pattern(),
        "a killed agent leaves its pattern; the handler keeps spooling"
    );
    let pids: Vec<u32> = (0..3)
        .map(|i| crash_in(&cgroup, 96, 100 + i, "random"))
        .collect();
    // Count only these crashes: the killed agent may have left an earlier entry whose object
    // it had created but whose spool entry it had not yet removed (removal comes last).
    let spooled = agent
        .spool_entries()
        .iter()
        .filter(|n| {
            pids.iter()
                .any(|p| n.split('-').nth(1) == Some(p.to_string().as_str()))
        })
        .count();
    assert_eq!(spooled, 3, "spooled while the agent was down");
    let container_dir = blobs.join(&app).join(&uid).join("app");
    let mut kills = 0;
    for _ in 0..3 {
        agent.role.spawn();
        // A blob being written (the store's temp name) means an ingest is half done.
        let mid = coredump_testkit::poll::wait_for(
            "a blob write in progress",
            Duration::from_secs(120),
            Duration::from_millis(2),
            || {
                std::fs::read_dir(&container_dir)
                    .ok()?
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().contains(".tmp-"))
                    .then_some(())
            },
        );
        agent.role.kill();
        if mid.is_err() {
            break;
        }
        kills += 1;
    }
    println!("agent SIGKILLed {kills} times in the middle of a blob write");
    assert!(kills >= 1, "never caught an ingest in flight");
    agent.spawn();
    let mut names = BTreeMap::new();
    for &p in &pids {
        let c = wait_coredump(cp, &app, p, &agent.role);
        assert_eq!(c.status.state, coredump_api::CoredumpState::Stored);
        assert_eq!(c.spec.container_name.as_deref(), Some("app"));
        stored_core(&blobs, &c);
        names.insert(c.metadata.name.clone(), p);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = agent.spool_entries();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spool not drained within 30 s: {left:?}\n{}",
            agent.role.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = coredumps(cp, &app);
    for &p in &pids {
        assert_eq!(
            all.iter().filter(|c| c.spec.pid == p).count(),
            1,
            "pid {p} once"
        );
    }
    assert_eq!(all.len(), 5, "two earlier crashes and three now");
    let stored: Vec<String> = files_under(&container_dir)
        .into_iter()
        .filter(|f| f.ends_with(".core.zst") || f.ends_with(".json"))
        .collect();
    assert_eq!(stored.len(), 8, "core and record of 4 crashes: {stored:?}");
    let events = eventually(
        Duration::from_secs(30),
        "4 crashes counted on web-0",
        || {
            Some(crash_events(cp, &app, "web-0"))
                .filter(|e| e.iter().any(|e| e["series"]["count"] == 4))
        },
    );
    assert_eq!(
        events.len(),
        1,
        "one Event series per pod, each crash counted once"
    );

    // 4. The namespace quota (NS_DISK_QUOTA): just above what the namespace holds, so the next
    // core does not fit. The agent restarts with it (SIGTERM, then start).
    // As the blob store counts it: temp files left by the SIGKILLed writes above are not usage.
    let usage: u64 = files_under(&blobs.join(&app))
        .iter()
        .filter(|f| {
            !std::path::Path::new(f)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .map(|f| std::fs::metadata(blobs.join(&app).join(f)).unwrap().len())
        .sum();
    assert!(agent.role.stop(), "{}", agent.role.log_text());
    assert_eq!(settings.current_pattern(), settings.original_pattern());
    for a in agent.role.args.iter_mut() {
        if a.starts_with("--ns-disk-quota=") {
            *a = format!("--ns-disk-quota={}", usage + (1 << 20));
        }
    }
    agent.spawn();
    let over_pid = crash_in(&cgroup, 4, 200, "random");
    let over = wait_coredump(cp, &app, over_pid, &agent.role);
    assert_eq!(
        over.status.state,
        coredump_api::CoredumpState::QuotaExceeded
    );
    assert_eq!(
        over.status.reason,
        Some(coredump_api::CoredumpReason::QuotaExceeded)
    );
    assert!(
        over.status.message.contains("disk quota exceeded"),
        "{}",
        over.status.message
    );
    assert_eq!(
        (over.status.blob_path.as_str(), over.status.core_size),
        ("", 0)
    );
    assert!(
        over.status.raw_size > 4 << 20,
        "what the kernel sent is still told"
    );
    let cores = files_under(&container_dir)
        .iter()
        .filter(|f| f.ends_with(".core.zst"))
        .count();
    assert_eq!(cores, 4, "the core over quota is not kept");
    assert_eq!(
        metric(
            &agent.role.metrics(),
            "coredump_agent_core_drops_total{reason=\"quota_exceeded\"}"
        ),
        Some(1.0)
    );

    // 5. The GC: nothing while the pods live; the deleted pod's everything after the threshold,
    // then the binaries kept by build ID that no remaining crash needs, a threshold later.
    let binaries_dir = blobs.join(&app).join(".buildid");
    let binaries_before = files_under(&binaries_dir);
    assert!(
        !binaries_before.is_empty(),
        "the analysis keeps the crasher's binaries by build ID in {}",
        binaries_dir.display()
    );
    let gc_port = free_port();
    let mut gc = Role::new(
        vec![
            "gc".into(),
            "--gc-threshold=20s".into(),
            "--interval=1s".into(),
            format!("--local-path={}", blobs.display()),
            "--backend-kind=local".into(),
            format!("--kubeconfig={}", kubeconfig("coredump-gc").display()),
            format!("--metrics-bind-address=127.0.0.1:{gc_port}"),
        ],
        dir.path().join("gc.log"),
        gc_port,
    );
    gc.spawn();
    gc.wait_ready(Duration::from_secs(60));
    eventually(Duration::from_secs(30), "two GC cycles", || {
        metric(&gc.metrics(), "coredump_gc_cycles_total{outcome=\"ok\"}").filter(|n| *n >= 2.0)
    });
    assert_eq!(
        coredumps(cp, &app).len(),
        6,
        "nothing collected while pods live"
    );
    cp.kubectl_ok(&[
        "delete",
        "pod",
        "web-0",
        "-n",
        &app,
        "--grace-period=0",
        "--force",
        "--request-timeout=30s",
    ])
    .unwrap();
    let deleted = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        coredumps(cp, &app).len(),
        6,
        "nothing collected before the threshold"
    );
    assert!(container_dir.exists());
    let gone = eventually(Duration::from_secs(90), "web-0 collected", || {
        let left = coredumps(cp, &app);
        let endpoint = cp.kubectl(&[
            "get",
            "coredumpendpoint",
            "web-0",
            "-n",
            &app,
            "--request-timeout=20s",
        ]);
        (left.len() == 1 && !endpoint.status.success() && !blobs.join(&app).join(&uid).exists())
            .then_some(left)
    });
    let waited = deleted.elapsed();
    println!("pod deleted to everything collected: {waited:?} (threshold 20 s, interval 1 s)");
    assert!(
        waited >= Duration::from_secs(20),
        "collected early: {waited:?}"
    );
    assert_eq!(
        gone[0].spec.pod_name.as_deref(),
        Some("quiet-0"),
        "the live pod's record stays"
    );
    // The endpoint's deletion already removed the pod's Coredumps and blobs (the API server
    // cascades), so the GC may still be finishing that cycle: wait for two more to count.
    let cycles = || metric(&gc.metrics(), "coredump_gc_cycles_total{outcome=\"ok\"}");
    let seen = cycles().unwrap_or(0.0);
    eventually(Duration::from_secs(30), "two more GC cycles", || {
        cycles().filter(|n| *n >= seen + 2.0)
    });
    let m = gc.metrics();
    let deletions = || {
        let log = gc.log_text();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("delet")).collect();
        format!("{m}\n--- GC log, deletions:\n{}", lines.join("\n"))
    };
    assert_eq!(
        metric(
            &m,
            "coredump_gc_deletions_total{kind=\"pod_dir\",reason=\"pod_gone\"}"
        ),
        Some(1.0),
        "{}",
        deletions()
    );
    assert_eq!(
        metric(
            &m,
            "coredump_gc_deletions_total{kind=\"coredump\",reason=\"pod_gone\"}"
        ),
        Some(5.0),
        "{}",
        deletions()
    );
    // Binaries: the live pod's record still needs them (its analysis names the same crasher
    // and libraries); once the last record naming them is deleted, they go a threshold later.
    let named: Vec<String> = gone
        .iter()
        .flat_map(|c| c.status.analysis.iter().flat_map(|a| &a.modules))
        .filter_map(|m| m.build_id.clone())
        .collect();
    assert!(
        !named.is_empty(),
        "the remaining record names its modules: {:?}",
        gone[0].status
    );
    assert_eq!(files_under(&binaries_dir), binaries_before, "still needed");
    cp.kubectl_ok(&[
        "delete",
        "coredumps",
        "--all",
        "-n",
        &app,
        "--request-timeout=30s",
    ])
    .unwrap();
    let unreferenced = Instant::now();
    assert_eq!(coredumps(cp, &app).len(), 0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        files_under(&binaries_dir),
        binaries_before,
        "binaries no record needs are kept for a threshold"
    );
    eventually(
        Duration::from_secs(90),
        "unneeded binaries collected",
        || files_under(&binaries_dir).is_empty().then_some(()),
    );
    let waited = unreferenced.elapsed();
    println!("last record deleted to its binaries collected: {waited:?} (threshold 20 s)");
    assert!(
        waited >= Duration::from_secs(19),
        "binaries collected early: {waited:?}"
    );
    eventually(Duration::from_secs(30), "binary deletions counted", || {
        metric(
            &gc.metrics(),
            "coredump_gc_deletions_total{kind=\"binary\",reason=\"unreferenced\"}",
        )
        .filter(|n| *n >= 1.0)
    });
    assert!(gc.stop(), "gc stops on SIGTERM:\n{}", gc.log_text());

    // 6. SIGTERM restores the core_pattern from before the first agent.
    assert!(
        agent.role.stop(),
        "agent stops on SIGTERM:\n{}",
        agent.role.log_text()
    );
    assert_eq!(settings.current_pattern(), settings.original_pattern());
    drop(quiet_cgroup);
    drop(cgroup);
    drop(stack);
}

/// Crashes outside pods go to the `core_pattern` pipe that was there before the agent (a
/// distribution's crash helper), with the whole core on its stdin and exactly the arguments the
/// kernel gives it: the same crash is first handed to the helper by the kernel itself, then by
/// the agent, and every specifier expands alike (a process name with a space and a `/` too).
/// The agent records nothing of them, and SIGTERM puts that pipe back.
#[test]
fn non_pod_crashes_are_forwarded_to_the_previous_pipe() {
    let settings = KernelSettings::acquire();
    let cp = shared().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("cdd-forward-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let helper = dir.path().join("helper.sh");
    let out = dir.path().join("forwarded");
    // One argument per line: a name with spaces must stay one argument.
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {0}.args\ncat > {0}.tmp\nmv {0}.tmp {0}\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let previous = format!(
        "|{} %P %p %I %i %s %t %u %g %d %h %e %E %f %c",
        helper.display()
    );
    settings.set_core_pattern(&previous);
    // The comm of a process named by itself (PR_SET_NAME), as the kernel escapes it.
    let comm = "odd name/x";
    let crash_once = || {
        let _ = std::fs::remove_file(&out);
        let crash = common::crasher_with(None, &["--comm", comm], 2, 7, "mixed", "segv", false);
        let pid = crash.pid;
        assert_eq!(crash.wait(Duration::from_secs(30)), (SIGSEGV, true));
        let core = eventually(Duration::from_secs(30), "forwarded core", || {
            std::fs::read(&out).ok()
        });
        let args: Vec<String> = std::fs::read_to_string(format!("{}.args", out.display()))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        (pid, core, args)
    };
    // 1. The kernel itself runs the helper.
    let (direct_pid, _, direct) = crash_once();
    assert_eq!(direct.len(), 14, "{direct:?}");
    assert_eq!(
        direct[10], "odd name!x",
        "the kernel's escaping: {direct:?}"
    );

    // 2. The agent is there, and forwards.
    let blobs = dir.path().join("cores");
    let node = format!("forward-node-{}", std::process::id());
    let mut agent = Agent::start(dir.path(), &blobs, &node, cp.kubeconfig(), "forward");
    assert_eq!(settings.current_pattern(), agent.pattern());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(agent.host.join("bin/handler.json")).unwrap())
            .unwrap();
    assert_eq!(config["non_pod"], "forward");
    assert_eq!(config["forward_pattern"], previous.as_str());
    let (pid, core, forwarded) = crash_once();
    let parsed = coredump_corefile::parse_core_bytes(&core).unwrap();
    assert!(parsed.is_complete(), "the whole core went through");
    assert_eq!(parsed.prstatus[0].pid, pid);
    assert_eq!(forwarded.len(), direct.len(), "{forwarded:?}");
    // Per crash: %P %p %I %i are this process's ids, %t its time; everything else is alike.
    for (i, (by_kernel, by_us)) in direct.iter().zip(&forwarded).enumerate() {
        match i {
            0..=3 => {
                assert_eq!(by_kernel, &direct_pid.to_string(), "kernel arg {i}");
                assert_eq!(by_us, &pid.to_string(), "forwarded arg {i}");
            }
            5 => assert!(by_us.parse::<i64>().unwrap() >= by_kernel.parse::<i64>().unwrap()),
            _ => assert_eq!(
                by_us, by_kernel,
                "arg {i}: kernel {direct:?}, forwarded {forwarded:?}"
            ),
        }
    }
    assert!(
        agent.spool_entries().is_empty(),
        "nothing recorded of a non-pod crash"
    );
    assert!(agent.role.stop(), "{}", agent.role.log_text());
    assert_eq!(
        settings.current_pattern(),
        previous,
        "the previous pipe is back"
    );
}
