//! What one tenant can try against another (or against the node) through a cluster install,
//! each attack against the real components: kube-apiserver with real tokens, our API server
//! behind its aggregator, the agent as a host process on a node with a real kernel core pipe,
//! processes crashing in fake kubepods cgroups of Pods bound to that node.
//!
//! * a tenant's pod claims another pod's identity (`kubernetes.io/config.mirror`) to receive or
//!   suppress its cores;
//! * an agent's token records crashes of another node;
//! * a pod crashes a thousand times in a loop: bounded records, bytes and Events, every crash
//!   still counted, and another tenant's crash recorded at once;
//! * a pod deleted right after its crash: the record stays in the pod's namespace; a crash
//!   whose namespace is unknown is kept from every tenant.
//!
//! And what a developer does with a pod's crash through kube-apiserver's aggregator, as a
//! tenant's debugger may: `kubectl coredump info`, `list --group` and `debug` (gdb with the core
//! and the binaries the agent kept by build ID).
//!
//! One install per test binary (the agent owns `core_pattern` meanwhile), the tests one at a
//! time.
#![allow(clippy::unwrap_used)]

mod aggregated;
mod cluster;
mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use aggregated::{ApiServer, eventually};
use cluster::{
    Agent, SIGSEGV, apply_manifest_rbac, container_id, crash_events, crash_in, create_pod,
    files_under, pod_cgroup, service_account_kubeconfig, stored_core, wait_coredump,
};
use coredump_api::{Coredump, CoredumpState};
use coredump_testkit::kernel_lock::KernelSettings;
use coredump_testplane::{ControlPlane, EtcdProcess, TestCa, shared};

/// The agent's limits in these tests: small, so a loop hits them at once.
const POD_BURST: u64 = 3;
const NAMESPACE_BURST: u64 = 5;

struct Install {
    cp: &'static ControlPlane,
    system: String,
    node: String,
    dir: PathBuf,
    blobs: PathBuf,
    agent: Mutex<Agent>,
    agent_kubeconfig: PathBuf,
    _server: ApiServer,
    _etcd: EtcdProcess,
    _settings: KernelSettings,
}

fn install() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(set_up)
}

/// One test at a time: the crash loop must not share the machine with another test's crashes.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn kubectl_apply(cp: &ControlPlane, object: serde_json::Value) {
    aggregated::submit(cp, "create", &object);
}

fn set_up() -> Install {
    let settings = KernelSettings::acquire();
    let cp = shared().unwrap();
    // Kept in a static: removed when this test binary exits, however it exits.
    let dir = coredump_testkit::scratch::process_scratch_dir(Path::new("/var/tmp"), "cdd-tenancy-")
        .unwrap();
    let system = cp.create_namespace("coredump-system").unwrap();
    apply_manifest_rbac(cp, &system);
    let etcd = coredump_testplane::start_etcd(&dir.join("etcd")).unwrap();
    let blobs = dir.join("cores");
    std::fs::create_dir_all(&blobs).unwrap();
    let ca = TestCa::new("coredump-serving-ca").unwrap();
    let api_kubeconfig = service_account_kubeconfig(cp, &system, "coredump-api", &dir);
    let mut server = ApiServer::start(&dir, &ca, &system, &etcd.url(), &blobs, &api_kubeconfig);
    // As the manifest configures it: the agents' ServiceAccount speaks for its node only.
    server.stop();
    server.args.push(format!(
        "--node-bound-users=system:serviceaccount:{system}:coredump-agent"
    ));
    server.spawn();
    aggregated::register_apiservice(cp, &system, server.port, &ca.cert_pem());
    eventually(Duration::from_secs(120), "APIService Available", || {
        aggregated::available(cp).starts_with("True").then_some(())
    });

    // The node and the agent's Pod on it, so its token is bound to that node as kubelet's
    // projected token would be.
    let node = format!("tenancy-node-{}", std::process::id());
    for name in [node.clone(), format!("{node}-other")] {
        kubectl_apply(
            cp,
            serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}),
        );
    }
    kubectl_apply(
        cp,
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "agent", "namespace": system},
            "spec": {"nodeName": node, "serviceAccountName": "coredump-agent",
                     "containers": [{"name": "agent", "image": "coredump-detector:test"}]}}),
    );
    let agent_kubeconfig = coredump_testplane::aggregation::pod_bound_kubeconfig(
        cp,
        &system,
        "coredump-agent",
        "agent",
        &dir,
    )
    .unwrap();
    let agent = Agent::configure(
        &dir,
        &blobs,
        &node,
        &agent_kubeconfig,
        "drop",
        &[
            &format!("--host-namespace={system}"),
            &format!("--pod-crash-burst={POD_BURST}"),
            "--pod-crashes-per-minute=0",
            &format!("--namespace-crash-burst={NAMESPACE_BURST}"),
            "--namespace-crashes-per-minute=0",
            "--limits-interval-secs=1",
            "--suppressed-quiet-secs=3",
        ],
    )
    .started();
    Install {
        cp,
        system,
        node,
        dir,
        blobs,
        agent: Mutex::new(agent),
        agent_kubeconfig,
        _server: server,
        _etcd: etcd,
        _settings: settings,
    }
}

impl Install {
    fn agent_log(&self) -> String {
        self.agent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .role
            .log_text()
    }

    /// Every Coredump of the cluster.
    fn all_coredumps(&self) -> Vec<Coredump> {
        let out = self
            .cp
            .kubectl_ok(&[
                "get",
                "coredumps",
                "-A",
                "-o",
                "json",
                "--request-timeout=30s",
            ])
            .unwrap();
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        serde_json::from_value(list["items"].clone()).unwrap()
    }

    /// The Coredump of the crash of `pid`, wherever it was recorded.
    fn record_of(&self, pid: u32) -> Coredump {
        let start = Instant::now();
        loop {
            if let Some(c) = self.all_coredumps().into_iter().find(|c| c.spec.pid == pid) {
                return c;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "no Coredump for pid {pid}; agent log:\n{}",
                self.agent_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn pod(&self, ns: &str, name: &str, annotations: serde_json::Value) -> (String, String) {
        let cid = container_id(name.len() as u32 + ns.len() as u32);
        let uid = create_pod(self.cp, ns, name, &self.node, &cid, annotations);
        (uid, cid)
    }
}

/// A random 32-hex "static pod config hash" that no real pod mirrors.
fn static_pod_hash() -> String {
    format!("{:032x}", uuid_like())
}

fn uuid_like() -> u128 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    nanos ^ (u128::from(std::process::id()) << 64)
}

#[test]
fn a_borrowed_mirror_annotation_gets_no_cores_and_hides_none() {
    let _one = one_at_a_time();
    let t = install();
    let thief = t.cp.create_namespace("thief").unwrap();
    let victim = t.cp.create_namespace("victim").unwrap();

    // 1. A static pod whose mirror is not (yet) in the API: a tenant's pod claims its hash.
    let hash = static_pod_hash();
    t.pod(
        &thief,
        "claims-static",
        serde_json::json!({"kubernetes.io/config.mirror": hash}),
    );
    let cid = container_id(7);
    let cgroup = common::FakePodCgroup::create(&format!("/kubepods/besteffort/pod{hash}/{cid}"));
    let pid = crash_in(&cgroup, 1, 11, "random");
    let c = t.record_of(pid);
    assert_ne!(
        c.metadata.namespace, thief,
        "the thief's namespace received a static pod's core"
    );
    assert_eq!(
        c.metadata.namespace, t.system,
        "unresolved: administrators only"
    );
    assert_eq!(c.status.state, CoredumpState::Skipped);
    assert_eq!(
        c.status.reason,
        Some(coredump_api::CoredumpReason::PodUnresolved)
    );
    assert!(
        c.status.message.contains("not found"),
        "{}",
        c.status.message
    );
    assert_eq!(
        c.status.blob_path, "",
        "no core kept for nobody in particular"
    );
    assert!(files_under(&t.blobs.join(&thief)).is_empty());

    // 2. A live pod: a tenant's opted-out pod names itself after it, to suppress its cores.
    let (uid, cid) = t.pod(&victim, "web-0", serde_json::json!({}));
    kubectl_apply(
        t.cp,
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "claims-web", "namespace": thief,
                         "labels": {"coredump.fujitsu.com/capture": "false"},
                         "annotations": {"kubernetes.io/config.mirror": uid}},
            "spec": {"nodeName": t.node, "containers": [{"name": "app", "image": "x"}]}}),
    );
    // Give the agent's informer the thief's pod before the crash.
    std::thread::sleep(Duration::from_secs(2));
    let cgroup = pod_cgroup(&uid, &cid);
    let pid = crash_in(&cgroup, 1, 12, "random");
    let c = wait_coredump(t.cp, &victim, pid, &t.agent.lock().unwrap().role);
    assert_eq!(c.spec.pod_name.as_deref(), Some("web-0"));
    assert_eq!(
        c.status.state,
        CoredumpState::Stored,
        "{}",
        c.status.message
    );
    stored_core(&t.blobs, &c);
    assert!(
        !t.all_coredumps()
            .iter()
            .any(|c| c.metadata.namespace == thief),
        "nothing ever recorded in the thief's namespace"
    );
}

/// `kubectl create -f` of a Coredump of `node` as the identity in `kubeconfig`.
fn create_as(kubeconfig: &Path, ns: &str, name: &str, node: &str) -> (bool, String) {
    let record = serde_json::json!({"apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "Coredump",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": node, "pid": 1, "signal": 11, "crashTime": "2026-01-01T00:00:00Z"},
        "status": {"state": "Failed", "message": "forged"}});
    let mut child = std::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(["create", "-f", "-", "--request-timeout=30s"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(record.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_agent_records_crashes_of_its_own_node_only() {
    let _one = one_at_a_time();
    let t = install();
    let ns = t.cp.create_namespace("team-x").unwrap();
    let other = format!("{}-other", t.node);
    let (ok, err) = create_as(&t.agent_kubeconfig, &ns, "forged", &other);
    assert!(!ok, "a node's agent recorded a crash of another node");
    assert!(
        err.contains("Forbidden") && err.contains(&format!("speaks for node \"{}\" only", t.node)),
        "{err}"
    );
    let (ok, err) = create_as(&t.agent_kubeconfig, &ns, "own", &t.node);
    assert!(ok, "its own node's crash: {err}");
    // The agent's ServiceAccount without a pod-bound token (a token request anyone with
    // `create serviceaccounts/token` could make) records nothing at all.
    let unbound = service_account_kubeconfig(t.cp, &t.system, "coredump-agent", &t.dir);
    let (ok, err) = create_as(&unbound, &ns, "unbound", &t.node);
    assert!(!ok, "an unbound agent token recorded a crash");
    assert!(err.contains("bound to its pod"), "{err}");
}

/// Starts `sh` held on stdin inside `cgroup`; once released it forks `n` children that each
/// kill themselves with SIGSEGV (a pod crashing in a loop), then exits.
fn crash_loop(cgroup: &common::FakePodCgroup, n: u32) -> std::process::Child {
    use std::io::Write;
    let script =
        format!("read go; i=0; while [ $i -lt {n} ]; do sh -c 'kill -SEGV $$'; i=$((i+1)); done");
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    cgroup.enter(child.id());
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    child
}

#[test]
fn a_crash_loop_is_bounded_and_another_tenants_crash_is_recorded_at_once() {
    let _one = one_at_a_time();
    let t = install();
    const CRASHES: u32 = 3000;
    let looping = t.cp.create_namespace("loop").unwrap();
    let other = t.cp.create_namespace("other").unwrap();
    let (uid, cid) = t.pod(&looping, "loop-0", serde_json::json!({}));
    let (other_uid, other_cid) = t.pod(&other, "calm-0", serde_json::json!({}));
    let loop_cgroup = pod_cgroup(&uid, &cid);
    let other_cgroup = pod_cgroup(&other_uid, &other_cid);
    // The agent writes the pods' policies (namespace known to the crash path) each second.
    std::thread::sleep(Duration::from_secs(2));

    let started = Instant::now();
    let mut shell = crash_loop(&loop_cgroup, CRASHES);
    // Midway, another tenant's single crash.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        shell.try_wait().unwrap().is_none(),
        "the loop ended before the other tenant's crash: make it longer"
    );
    let mut crash = common::crasher(1, 21, "random", "segv", true);
    let pid = crash.pid;
    other_cgroup.enter(pid);
    crash.go();
    let (signal, dumped) = crash.wait(Duration::from_secs(60));
    assert_eq!((signal, dumped), (SIGSEGV, true));
    let crashed = Instant::now();
    let c = eventually(Duration::from_secs(60), "the other tenant's crash", || {
        let out =
            t.cp.kubectl_ok(&[
                "get",
                "coredumps",
                "-n",
                &other,
                "-o",
                "json",
                "--request-timeout=30s",
            ])
            .ok()?;
        let list: serde_json::Value = serde_json::from_str(&out).ok()?;
        let items: Vec<Coredump> = serde_json::from_value(list["items"].clone()).ok()?;
        items.into_iter().find(|c| c.spec.pid == pid)
    });
    let visible = crashed.elapsed();
    println!(
        "other tenant's crash visible in kubectl {visible:?} after the crash, during the loop"
    );
    assert_eq!(c.status.state, CoredumpState::Stored);
    assert!(
        visible < Duration::from_secs(2),
        "the other tenant's crash took {visible:?}"
    );
    assert!(
        shell.try_wait().unwrap().is_none(),
        "the loop ended before the other tenant's crash was recorded: make it longer"
    );

    let status = common::wait_child(&mut shell, Duration::from_secs(600)).expect("loop ended");
    assert!(status.success());
    println!("{CRASHES} crashes in {:?}", started.elapsed());
    // Every crash is accounted for: kept ones one by one, the others on summary records.
    let records = eventually(Duration::from_secs(60), "every crash counted", || {
        let out =
            t.cp.kubectl_ok(&[
                "get",
                "coredumps",
                "-n",
                &looping,
                "-o",
                "json",
                "--request-timeout=30s",
            ])
            .ok()?;
        let list: serde_json::Value = serde_json::from_str(&out).ok()?;
        let items: Vec<Coredump> = serde_json::from_value(list["items"].clone()).ok()?;
        let counted: u64 = items
            .iter()
            .map(|c| c.status.suppressed_crashes.max(1))
            .sum();
        (counted == u64::from(CRASHES)).then_some(items)
    });
    let stored: Vec<&Coredump> = records
        .iter()
        .filter(|c| c.status.state == CoredumpState::Stored)
        .collect();
    let summaries: Vec<&Coredump> = records
        .iter()
        .filter(|c| c.status.suppressed_crashes > 0)
        .collect();
    println!(
        "{} records for {CRASHES} crashes: {} stored, {} summaries ({:?})",
        records.len(),
        stored.len(),
        summaries.len(),
        summaries
            .iter()
            .map(|c| c.status.suppressed_crashes)
            .collect::<Vec<_>>()
    );
    assert_eq!(stored.len() as u64, POD_BURST, "the pod's burst is kept");
    assert!(
        records.len() as u64 <= POD_BURST + 3,
        "{} records for one crash loop",
        records.len()
    );
    for s in &summaries {
        assert_eq!(s.status.state, CoredumpState::RateLimited);
        assert_eq!(s.status.blob_path, "");
        assert!(
            s.status.message.contains("crash rate limit"),
            "{}",
            s.status.message
        );
    }
    // The crashed process's executable and libraries are kept once per build ID (for gdb,
    // under `.buildid/`), whatever the number of crashes; everything else is per crash.
    let (binaries, per_crash): (Vec<String>, Vec<String>) = files_under(&t.blobs.join(&looping))
        .into_iter()
        .partition(|f| f.starts_with(&format!("{}/", coredump_store::buildid::BUILDID_DIR)));
    let size = |files: &[String]| -> u64 {
        files
            .iter()
            .map(|f| {
                std::fs::metadata(t.blobs.join(&looping).join(f))
                    .unwrap()
                    .len()
            })
            .sum()
    };
    let bytes = size(&per_crash);
    let largest = stored.iter().map(|c| c.status.stored_size).max().unwrap();
    println!(
        "bytes kept for the loop: {bytes} (largest core {largest}); binaries kept once: {} files, {} bytes",
        binaries.len(),
        size(&binaries)
    );
    assert!(
        bytes <= POD_BURST * (largest + 64 * 1024),
        "{bytes} bytes kept for {CRASHES} crashes: {per_crash:?}"
    );
    assert!(
        binaries.len() <= 16,
        "binaries are kept once per build ID, not per crash: {binaries:?}"
    );
    let events = crash_events(t.cp, &looping, "loop-0");
    assert_eq!(events.len(), 1, "one Event series: {events:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let series = loop {
        let e = crash_events(t.cp, &looping, "loop-0");
        if (e.len() == 1 && e[0]["series"]["count"] == CRASHES) || Instant::now() > deadline {
            break e;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        series[0]["series"]["count"],
        CRASHES,
        "the series counts every crash: {series:?}\n{}",
        t.agent_log()
    );
    let spool = t.agent.lock().unwrap().spool_entries();
    assert!(spool.is_empty(), "spool left: {spool:?}");
}

#[test]
fn a_pod_deleted_after_its_crash_keeps_its_record_in_its_namespace() {
    let _one = one_at_a_time();
    let t = install();
    let ns = t.cp.create_namespace("short-lived").unwrap();
    let (uid, cid) = t.pod(&ns, "job-0", serde_json::json!({}));
    std::thread::sleep(Duration::from_secs(2));
    t.cp.kubectl_ok(&[
        "delete",
        "pod",
        "job-0",
        "-n",
        &ns,
        "--grace-period=0",
        "--force",
        "--request-timeout=30s",
    ])
    .unwrap();
    // Gone from the API (the agent's informer sees the deletion at once).
    std::thread::sleep(Duration::from_secs(2));
    let cgroup = pod_cgroup(&uid, &cid);
    let pid = crash_in(&cgroup, 1, 31, "random");
    let c = t.record_of(pid);
    assert_eq!(
        c.metadata.namespace, ns,
        "placed by the pod's last known state"
    );
    assert_eq!(c.spec.pod_name.as_deref(), Some("job-0"));
    assert_eq!(c.spec.container_name.as_deref(), Some("app"));
    assert_eq!(
        c.status.state,
        CoredumpState::Stored,
        "{}",
        c.status.message
    );
    stored_core(&t.blobs, &c);
}

/// Runs `bin mode` inside `cgroup` (a shell held on stdin moves in first, then execs it) until
/// it dies of a signal; returns its pid.
fn crash_native_in(cgroup: &common::FakePodCgroup, bin: &Path, mode: &str) -> u32 {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .args(["-c", "read go; exec \"$0\" \"$1\""])
        .arg(bin)
        .arg(mode)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    cgroup.enter(child.id());
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let pid = child.id();
    let status = common::wait_child(&mut child, Duration::from_secs(60)).expect("crasher exits");
    assert!(
        std::os::unix::process::ExitStatusExt::signal(&status).is_some(),
        "{bin:?} must die of a signal: {status:?}"
    );
    pid
}

#[test]
fn a_debugger_reads_a_pods_crash_through_the_aggregator() {
    let _one = one_at_a_time();
    let t = install();
    let ns = t.cp.create_namespace("debug").unwrap();
    // A debugger of this namespace only, as a developer would be bound.
    kubectl_apply(
        t.cp,
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "dev", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "coredump-debugger"},
            "subjects": [{"kind": "ServiceAccount", "name": "dev", "namespace": ns}]}),
    );
    let dev = service_account_kubeconfig(t.cp, &ns, "dev", &t.dir);
    let (uid, cid) = t.pod(&ns, "app-0", serde_json::json!({}));
    let cgroup = pod_cgroup(&uid, &cid);
    // The program runs from a directory that is gone before anyone debugs it.
    let app_dir = tempfile::Builder::new()
        .prefix("cdd-cluster-app-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let app = app_dir.path().join("app");
    std::fs::copy(&coredump_testkit::native::c().debug, &app).unwrap();
    let pids = [
        crash_native_in(&cgroup, &app, "segv"),
        crash_native_in(&cgroup, &app, "segv"),
        crash_native_in(&cgroup, &app, "other"),
    ];
    drop(app_dir);
    let agent = t.agent.lock().unwrap_or_else(|e| e.into_inner());
    let records: Vec<Coredump> = pids
        .iter()
        .map(|pid| wait_coredump(t.cp, &ns, *pid, &agent.role))
        .collect();
    drop(agent);
    let first = &records[0];
    assert_eq!(first.status.signature, records[1].status.signature);
    assert_ne!(first.status.signature, records[2].status.signature);
    let line = coredump_testkit::native::C_SOURCE
        .lines()
        .position(|l| l.contains("void store_value"))
        .unwrap()
        + 1;
    let path_dir = common::plugin_dir();
    let cwd = tempfile::Builder::new()
        .prefix("cdd-cluster-debug-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let run = |args: &[&str]| {
        let (ok, out, err) = common::plugin(path_dir.path(), &dev, cwd.path(), args);
        assert!(ok, "kubectl coredump {args:?}: {err}");
        (out, err)
    };
    let (info, _) = run(&["info", &first.metadata.name, "-n", &ns]);
    let top = info
        .lines()
        .find(|l| l.trim_start().starts_with("#0"))
        .unwrap_or_else(|| panic!("{info}"));
    assert!(
        top.contains("store_value (") && top.ends_with(&format!("/crash.c:{line})")),
        "{info}"
    );
    let (groups, _) = run(&["list", "--group", "-n", &ns]);
    let count = |sig: &str| {
        groups
            .lines()
            .find(|l| l.starts_with(sig))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    assert_eq!(
        count(&first.status.signature).as_deref(),
        Some("2"),
        "{groups}"
    );
    assert_eq!(
        count(&records[2].status.signature).as_deref(),
        Some("1"),
        "{groups}"
    );
    let (out, err) = run(&[
        "debug",
        &first.metadata.name,
        "-n",
        &ns,
        "--dir",
        "dbg",
        "--",
        "-batch",
        "-ex",
        "bt",
    ]);
    assert!(out.contains("store_value"), "{out}\n{err}");
    assert!(out.contains(&format!("crash.c:{line}")), "{out}\n{err}");
    // The same debugger in another namespace gets nothing.
    let other = t.cp.create_namespace("not-mine").unwrap();
    let (ok, _, err) = common::plugin(
        path_dir.path(),
        &dev,
        cwd.path(),
        &["info", &first.metadata.name, "-n", &other],
    );
    assert!(!ok && err.contains("orbidden"), "{err}");
}
