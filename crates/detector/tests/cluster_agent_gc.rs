//! Cluster mode end to end against the real kube-apiserver: `coredump-detector apiserver`,
//! `agent` and `gc` run as host processes, each authenticated with a token of the deploy
//! manifest's ServiceAccount (`coredump-api`, `coredump-agent`, `coredump-gc`) whose RBAC is
//! created from the manifest itself, so the tests prove those rights suffice.
//!
//! Real processes crash on the real kernel in fake kubepods cgroups carrying the UID of a Pod
//! bound to the agent's node and the container ID set in the Pod's status. Each scenario is its
//! own test (one failure hides no other): a crash recorded, evented and downloadable; an
//! opted-out pod; SIGKILLs in the middle of ingests losing and duplicating nothing; a namespace
//! over its quota; the GC collecting a deleted pod's everything after its threshold and not
//! before; non-pod crashes forwarded to the previous pipe. Every agent's SIGTERM restores
//! `core_pattern`.
//!
//! One API server and etcd per test binary (started by the first test, gone with the binary);
//! each test has its own namespace, node name and agent, and holds the machine-wide kernel lock
//! (so the tests run one at a time).
#![allow(clippy::unwrap_used)]

mod aggregated;
mod cluster;
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aggregated::{BASE, eventually, free_port, submit};
use cluster::{
    Agent, ApiStack, Role, SIGSEGV, container_id, coredumps, crash_events, crash_in, create_pod,
    files_under, get_raw, metric, pod_cgroup, service_account_kubeconfig, stored_core,
    wait_coredump,
};
use coredump_api::{Coredump, CoredumpReason, CoredumpState};
use coredump_testkit::archive::untar_gz;
use coredump_testkit::kernel_lock::KernelSettings;
use coredump_testplane::{ControlPlane, shared};

/// The API server, its etcd and the blob volume the tests' agents share.
struct Install {
    cp: &'static ControlPlane,
    /// Removed when the test binary exits, however it exits.
    dir: PathBuf,
    /// Its own filesystem (tmpfs), as the DaemonSet's separate hostPath mounts make it: the
    /// ingest then copies the spooled core (no hard link), as it does in a cluster.
    blobs: PathBuf,
    agent_kubeconfig: PathBuf,
    gc_kubeconfig: PathBuf,
    _stack: ApiStack,
}

fn install() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(set_up)
}

fn set_up() -> Install {
    let cp = shared().unwrap();
    let dir = coredump_testkit::scratch::process_scratch_dir(Path::new("/var/tmp"), "cdd-agent-")
        .unwrap();
    let blobs =
        coredump_testkit::scratch::process_scratch_dir(Path::new("/dev/shm"), "cdd-agent-blobs-")
            .unwrap();
    let stack = ApiStack::start(cp, &dir, &blobs);
    let kubeconfig = |sa: &str| service_account_kubeconfig(cp, &stack.system, sa, &dir);
    Install {
        cp,
        agent_kubeconfig: kubeconfig("coredump-agent"),
        gc_kubeconfig: kubeconfig("coredump-gc"),
        dir,
        blobs,
        _stack: stack,
    }
}

/// One scenario's node: its own agent (started and ready, `core_pattern` checked), namespace and
/// scratch directory.
struct Node {
    install: &'static Install,
    name: String,
    ns: String,
    agent: Agent,
}

impl Node {
    /// `scenario` names the node, the namespace and the directory; `extra` agent flags.
    fn start(settings: &KernelSettings, scenario: &str, extra: &[&str]) -> Node {
        let install = install();
        let dir = install.dir.join(scenario);
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!("{scenario}-node-{}", std::process::id());
        let started = Instant::now();
        let agent = Agent::configure(
            &dir,
            &install.blobs,
            &name,
            &install.agent_kubeconfig,
            "drop",
            extra,
        )
        .started();
        println!("agent ready after {:?}", started.elapsed());
        assert_eq!(settings.current_pattern(), agent.pattern());
        let ns = install.cp.create_namespace(scenario).unwrap();
        Node {
            install,
            name,
            ns,
            agent,
        }
    }

    /// Pod `name` on this node with container `app` (ID `container_id(n)`); its UID and cgroup.
    fn pod(
        &self,
        name: &str,
        n: u32,
        annotations: serde_json::Value,
    ) -> (String, String, common::FakePodCgroup) {
        let cid = container_id(n);
        let uid = create_pod(
            self.install.cp,
            &self.ns,
            name,
            &self.name,
            &cid,
            annotations,
        );
        let cgroup = pod_cgroup(&uid, &cid);
        (uid, cid, cgroup)
    }

    fn wait(&self, pid: u32) -> Coredump {
        wait_coredump(self.install.cp, &self.ns, pid, &self.agent.role)
    }

    fn coredumps(&self) -> Vec<Coredump> {
        coredumps(self.install.cp, &self.ns)
    }

    /// SIGTERM: the agent exits cleanly and `core_pattern` is what it was before the test.
    fn stop(mut self, settings: &KernelSettings) {
        assert!(
            self.agent.role.stop(),
            "agent stops on SIGTERM:\n{}",
            self.agent.role.log_text()
        );
        assert_eq!(settings.current_pattern(), settings.original_pattern());
    }
}

/// A crash in a pod: recorded with pod and container names, a `CoreDumped` Event, the same core
/// through `core` and inside `dump`, and counted in the agent's metrics.
#[test]
fn a_pod_crash_is_recorded_evented_and_downloadable() {
    let settings = KernelSettings::acquire();
    let node = Node::start(&settings, "crash", &[]);
    let (cp, app, blobs) = (node.install.cp, node.ns.as_str(), &node.install.blobs);
    let (uid, cid, cgroup) = node.pod("web-0", 1, serde_json::json!({}));
    let crashed_at = Instant::now();
    let pid = crash_in(&cgroup, 4, 0x5eed, "mixed");
    let c = node.wait(pid);
    println!(
        "crash to Coredump visible in kubectl: {:?}",
        crashed_at.elapsed()
    );
    assert_eq!(c.spec.pod_name.as_deref(), Some("web-0"));
    assert_eq!(c.spec.pod_uid.as_deref(), Some(uid.as_str()));
    assert_eq!(c.spec.container_name.as_deref(), Some("app"));
    assert_eq!(c.spec.container_id, Some(format!("containerd://{cid}")));
    assert_eq!(c.spec.image.as_deref(), Some("registry.example/crasher:1"));
    assert_eq!(c.spec.node_name, node.name);
    assert_eq!(c.spec.signal_name, "SIGSEGV");
    assert_eq!(c.status.state, CoredumpState::Stored);
    assert!(
        c.status.blob_path.starts_with(&format!("{app}/{uid}/app/")),
        "{}",
        c.status.blob_path
    );
    let table = cp
        .kubectl_ok(&["get", "coredumps", "-n", app, "--request-timeout=20s"])
        .unwrap();
    let row = table
        .lines()
        .find(|l| l.starts_with(&c.metadata.name))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("web-0") && row.contains(" app "), "{table}");

    let events = eventually(Duration::from_secs(30), "CoreDumped event", || {
        Some(crash_events(cp, app, "web-0")).filter(|e| !e.is_empty())
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

    let core = stored_core(blobs, &c);
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
    let m = node.agent.role.metrics();
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
    drop(cgroup);
    node.stop(&settings);
}

/// Opt-out by pod annotation: recorded as Skipped with its reason, no core kept.
#[test]
fn an_opted_out_pod_is_recorded_without_its_core() {
    let settings = KernelSettings::acquire();
    let node = Node::start(&settings, "optout", &[]);
    let (uid, _, cgroup) = node.pod(
        "quiet-0",
        2,
        serde_json::json!({"coredump.fujitsu.com/capture": "false"}),
    );
    let pid = crash_in(&cgroup, 1, 2, "text");
    let q = node.wait(pid);
    assert_eq!(q.status.state, CoredumpState::Skipped);
    assert_eq!(q.status.reason, Some(CoredumpReason::OptedOut));
    assert!(
        q.status.message.starts_with("opted out: pod"),
        "{}",
        q.status.message
    );
    assert_eq!((q.status.blob_path.as_str(), q.status.core_size), ("", 0));
    assert!(
        !files_under(&node.install.blobs.join(&node.ns).join(&uid))
            .iter()
            .any(|f| f.ends_with(".core.zst")),
        "no core kept for an opted-out pod"
    );
    drop(cgroup);
    node.stop(&settings);
}

/// SIGKILL (an OOM kill) leaves the pattern: the handler keeps spooling. SIGKILLs in the middle
/// of ingests then lose nothing and record nothing twice, and the pod's Event counts each crash
/// once.
#[test]
fn sigkills_in_the_middle_of_ingests_lose_and_duplicate_nothing() {
    let settings = KernelSettings::acquire();
    let mut node = Node::start(&settings, "kill", &[]);
    let (uid, _, cgroup) = node.pod("web-0", 3, serde_json::json!({}));
    let blobs = node.install.blobs.clone();
    let agent = &mut node.agent;
    agent.role.kill();
    assert_eq!(
        settings.current_pattern(),
        agent.pattern(),
        "a killed agent leaves its pattern; the handler keeps spooling"
    );
    let pids: Vec<u32> = (0..3)
        .map(|i| crash_in(&cgroup, 96, 100 + i, "random"))
        .collect();
    assert_eq!(
        agent.spool_entries().len(),
        3,
        "spooled while the agent was down"
    );
    let container_dir = blobs.join(&node.ns).join(&uid).join("app");
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
        let c = node.wait(p);
        assert_eq!(c.status.state, CoredumpState::Stored);
        assert_eq!(c.spec.container_name.as_deref(), Some("app"));
        stored_core(&blobs, &c);
        names.insert(c.metadata.name.clone(), p);
    }
    assert_eq!(names.len(), 3, "three records: {names:?}");
    eventually(Duration::from_secs(30), "spool drained", || {
        node.agent.spool_entries().is_empty().then_some(())
    });
    let all = node.coredumps();
    for &p in &pids {
        assert_eq!(
            all.iter().filter(|c| c.spec.pid == p).count(),
            1,
            "pid {p} once"
        );
    }
    assert_eq!(all.len(), 3, "three crashes, three records");
    let stored: Vec<String> = files_under(&container_dir)
        .into_iter()
        .filter(|f| f.ends_with(".core.zst") || f.ends_with(".json"))
        .collect();
    assert_eq!(stored.len(), 6, "core and record of 3 crashes: {stored:?}");
    let cp = node.install.cp;
    let events = eventually(
        Duration::from_secs(30),
        "3 crashes counted on web-0",
        || {
            Some(crash_events(cp, &node.ns, "web-0"))
                .filter(|e| e.iter().any(|e| e["series"]["count"] == 3))
        },
    );
    assert_eq!(
        events.len(),
        1,
        "one Event series per pod, each crash counted once"
    );
    drop(cgroup);
    node.stop(&settings);
}

/// The namespace quota (NS_DISK_QUOTA) just above what the namespace holds: the next core does
/// not fit. Recorded QuotaExceeded with what the kernel sent, no core kept, a drop counted.
#[test]
fn a_namespace_over_its_quota_keeps_the_record_not_the_core() {
    let settings = KernelSettings::acquire();
    let mut node = Node::start(&settings, "quota", &[]);
    let (uid, _, cgroup) = node.pod("web-0", 4, serde_json::json!({}));
    let first = node.wait(crash_in(&cgroup, 1, 7, "text"));
    assert_eq!(first.status.state, CoredumpState::Stored);
    let ns_dir = node.install.blobs.join(&node.ns);
    // As the blob store counts it: dot-named temporary files are not usage.
    let usage: u64 = files_under(&ns_dir)
        .iter()
        .filter(|f| {
            !Path::new(f)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .map(|f| std::fs::metadata(ns_dir.join(f)).unwrap().len())
        .sum();
    assert!(usage > 0, "the first core is stored");
    // The agent restarts with the quota (SIGTERM, then start).
    assert!(node.agent.role.stop(), "{}", node.agent.role.log_text());
    assert_eq!(settings.current_pattern(), settings.original_pattern());
    for a in node.agent.role.args.iter_mut() {
        if a.starts_with("--ns-disk-quota=") {
            *a = format!("--ns-disk-quota={}", usage + (1 << 20));
        }
    }
    node.agent.spawn();
    let over = node.wait(crash_in(&cgroup, 4, 200, "random"));
    assert_eq!(over.status.state, CoredumpState::QuotaExceeded);
    assert_eq!(over.status.reason, Some(CoredumpReason::QuotaExceeded));
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
    let cores = files_under(&ns_dir.join(&uid))
        .iter()
        .filter(|f| f.ends_with(".core.zst"))
        .count();
    assert_eq!(cores, 1, "the core over quota is not kept");
    assert_eq!(
        metric(
            &node.agent.role.metrics(),
            "coredump_agent_core_drops_total{reason=\"quota_exceeded\"}"
        ),
        Some(1.0)
    );
    drop(cgroup);
    node.stop(&settings);
}

/// The GC: nothing while the pods live; a deleted pod's Coredumps, endpoint and blobs after the
/// threshold, not before; then the binaries kept by build ID that no remaining record needs, a
/// threshold after the last record naming them is deleted.
#[test]
fn the_gc_collects_a_deleted_pods_cores_after_the_threshold_and_not_before() {
    let settings = KernelSettings::acquire();
    let node = Node::start(&settings, "gc", &[]);
    let (cp, app, blobs) = (node.install.cp, node.ns.as_str(), &node.install.blobs);
    let (uid, _, cgroup) = node.pod("web-0", 5, serde_json::json!({}));
    let (_, _, quiet_cgroup) = node.pod(
        "quiet-0",
        6,
        serde_json::json!({"coredump.fujitsu.com/capture": "false"}),
    );
    let stored = node.wait(crash_in(&cgroup, 2, 9, "mixed"));
    assert_eq!(stored.status.state, CoredumpState::Stored);
    let quiet = node.wait(crash_in(&quiet_cgroup, 1, 10, "text"));
    assert_eq!(quiet.status.state, CoredumpState::Skipped);
    submit(
        cp,
        "create",
        &serde_json::json!({"apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
            "metadata": {"name": "web-0", "namespace": app}}),
    );
    let binaries_dir = blobs.join(app).join(".buildid");
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
            format!("--kubeconfig={}", node.install.gc_kubeconfig.display()),
            format!("--metrics-bind-address=127.0.0.1:{gc_port}"),
        ],
        node.install.dir.join("gc").join("gc.log"),
        gc_port,
    );
    gc.spawn();
    gc.wait_ready(Duration::from_secs(60));
    eventually(Duration::from_secs(30), "two GC cycles", || {
        metric(&gc.metrics(), "coredump_gc_cycles_total{outcome=\"ok\"}").filter(|n| *n >= 2.0)
    });
    assert_eq!(
        node.coredumps().len(),
        2,
        "nothing collected while pods live"
    );
    cp.kubectl_ok(&[
        "delete",
        "pod",
        "web-0",
        "-n",
        app,
        "--grace-period=0",
        "--force",
        "--request-timeout=30s",
    ])
    .unwrap();
    let deleted = Instant::now();
    let container_dir = blobs.join(app).join(&uid).join("app");
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        node.coredumps().len(),
        2,
        "nothing collected before the threshold"
    );
    assert!(container_dir.exists());
    let gone = eventually(Duration::from_secs(90), "web-0 collected", || {
        let left = node.coredumps();
        let endpoint = cp.kubectl(&[
            "get",
            "coredumpendpoint",
            "web-0",
            "-n",
            app,
            "--request-timeout=20s",
        ]);
        (left.len() == 1 && !endpoint.status.success() && !blobs.join(app).join(&uid).exists())
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
    for (kind, count) in [("pod_dir", 1.0), ("coredump", 1.0)] {
        assert_eq!(
            metric(
                &m,
                &format!("coredump_gc_deletions_total{{kind=\"{kind}\",reason=\"pod_gone\"}}")
            ),
            Some(count),
            "{}",
            deletions()
        );
    }
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
        app,
        "--request-timeout=30s",
    ])
    .unwrap();
    let unreferenced = Instant::now();
    assert_eq!(node.coredumps().len(), 0);
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
    drop((cgroup, quiet_cgroup));
    node.stop(&settings);
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
