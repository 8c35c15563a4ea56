//! The node agent's capture modes against the real kernel, with the agent as a host process
//! beside a real kube-apiserver (the cluster fixtures; a host process runs in the initial mount
//! namespace, where this kernel accepts an `@@` socket pattern):
//! * the agent restarted (SIGTERM, started again) while a pod crashes every 200 ms, in pipe and
//!   in socket mode in the same run, every crash's `Coredump` looked up by pid;
//! * a second agent on the node, of another install (another host directory) or of the same,
//!   refused while the first lives, the first keeping `core_pattern` and capturing;
//! * `auto` and `socket` where the kernel refuses the socket pattern (another mount namespace).
//!
//! Every test holds the machine-wide kernel-settings lock, which restores `core_pattern` and
//! `core_pipe_limit` on every exit path.
#![allow(clippy::unwrap_used)]

mod aggregated;
mod cluster;
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aggregated::submit;
use cluster::{
    Agent, ApiStack, container_id, coredumps, crash_in, create_pod, host_dir_owns, pod_cgroup,
    service_account_kubeconfig, wait_coredump,
};
use coredump_testkit::kernel_lock::KernelSettings;
use coredump_testplane::{ControlPlane, shared};

/// The API side, once per test binary (the manifest's ClusterRoles exist once per cluster),
/// with the scratch directory and the blob directory it serves; removed when the binary exits.
struct Stack {
    api: ApiStack,
    dir: PathBuf,
    blobs: PathBuf,
}

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let dir = coredump_testkit::scratch::process_scratch_dir(
            Path::new("/var/tmp"),
            "cdd-agent-capture-",
        )
        .unwrap();
        let blobs = dir.join("cores");
        std::fs::create_dir_all(&blobs).unwrap();
        Stack {
            api: ApiStack::start(shared().unwrap(), &dir, &blobs),
            dir,
            blobs,
        }
    })
}

/// A fresh directory for one test under the stack's.
fn test_dir(name: &str) -> PathBuf {
    let dir = stack().dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Restarts per mode.
const RESTARTS: usize = 3;
/// Time between two crashes.
const PERIOD: Duration = Duration::from_millis(200);

/// What one mode's restarts cost.
#[derive(Debug)]
struct Outcome {
    mode: &'static str,
    crashes: usize,
    recorded: usize,
    lost: Vec<u32>,
    /// Crashes the kernel reported without a core (a dead socket gives no core).
    no_core: usize,
    /// Longest stretch `core_pattern` named neither the agent's pipe handler nor its socket.
    gap: Duration,
}

/// Crash-loop limits out of the way: every crash of the loop gets its own record.
const NO_LIMITS: [&str; 4] = [
    "--pod-crash-burst=100000",
    "--pod-crashes-per-minute=100000",
    "--namespace-crash-burst=100000",
    "--namespace-crashes-per-minute=100000",
];

/// Creates DaemonSet `kcdt-ds` (as the manifest names it; no kubelet here runs its pods) and a
/// Pod `name` owned by it on `node`: an agent told it is that pod hands `core_pattern` over on
/// SIGTERM, as a DaemonSet's agent does when its pod is replaced.
fn daemonset_pod(cp: &ControlPlane, ns: &str, name: &str, node: &str) {
    let labels = serde_json::json!({"app.kubernetes.io/component": "agent-test"});
    let ds = cp.kubectl(&["get", "daemonset", "kcdt-ds", "-n", ns, "-o", "json"]);
    let ds = if ds.status.success() {
        String::from_utf8(ds.stdout).unwrap()
    } else {
        submit(
            cp,
            "create",
            &serde_json::json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "kcdt-ds", "namespace": ns},
                "spec": {"selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels},
                        "spec": {"nodeSelector": {"kubernetes.io/hostname": "no-such-node"},
                            "containers": [{"name": "agent", "image": "coredump-detector:test"}]}}}}),
        )
    };
    let ds: serde_json::Value = serde_json::from_str(&ds).unwrap();
    submit(
        cp,
        "create",
        &serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                    "name": "kcdt-ds", "uid": ds["metadata"]["uid"], "controller": true}]},
            "spec": {"nodeName": node,
                "containers": [{"name": "agent", "image": "coredump-detector:test"}]}}),
    );
}

/// One mode: the agent started, restarted `RESTARTS` times while a crash loop runs, then
/// stopped for good (its pod deleted first, so it restores `core_pattern`).
#[allow(clippy::too_many_arguments)]
fn restarts_in_mode(
    cp: &ControlPlane,
    stack: &ApiStack,
    settings: &KernelSettings,
    dir: &Path,
    blobs: &Path,
    mode: &'static str,
    node: &str,
    app: &str,
) -> Outcome {
    let dir = dir.join(mode);
    std::fs::create_dir_all(&dir).unwrap();
    let pod_name = format!("agent-{mode}");
    daemonset_pod(cp, &stack.system, &pod_name, node);
    let kubeconfig = service_account_kubeconfig(cp, &stack.system, "coredump-agent", &dir);
    let capture = format!("--capture={mode}");
    let pod_flag = format!("--pod-name={pod_name}");
    let ns_flag = format!("--pod-namespace={}", stack.system);
    let mut extra = vec![capture.as_str(), pod_flag.as_str(), ns_flag.as_str()];
    extra.extend(NO_LIMITS);
    let mut agent = Agent::configure(&dir, blobs, node, &kubeconfig, "drop", &extra).started();
    let host = agent.host.clone();
    let installed = settings.current_pattern();
    assert_eq!(
        installed.starts_with("@@"),
        mode == "socket",
        "{mode}: {installed}\n{}",
        agent.role.log_text()
    );
    assert!(agent.owns(&installed), "{installed}");

    let cid = container_id(if mode == "socket" { 20 } else { 10 });
    let uid = create_pod(
        cp,
        app,
        &format!("loop-{mode}"),
        node,
        &cid,
        serde_json::json!({}),
    );
    let cgroup = pod_cgroup(&uid, &cid);
    let stop = AtomicBool::new(false);
    let (crashes, gap) = std::thread::scope(|s| {
        let crasher = s.spawn(|| {
            let mut crashes = Vec::new();
            let start = Instant::now();
            for i in 0u32..3000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let due = start + PERIOD * i;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                let mut crash = common::crasher(1, u64::from(i), "mixed", "segv", true);
                let pid = crash.pid;
                cgroup.enter(pid);
                crash.go();
                let (_, dumped) = crash.wait(Duration::from_secs(30));
                crashes.push((pid, dumped));
            }
            crashes
        });
        let sampler = s.spawn(|| {
            let (mut longest, mut since) = (Duration::ZERO, None::<Instant>);
            while !stop.load(Ordering::Acquire) {
                let ours = host_dir_owns(&host, &settings.current_pattern());
                match (ours, since) {
                    (false, None) => since = Some(Instant::now()),
                    (true, Some(t)) => {
                        longest = longest.max(t.elapsed());
                        since = None;
                    }
                    _ => {}
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            longest.max(since.map_or(Duration::ZERO, |t| t.elapsed()))
        });
        std::thread::sleep(Duration::from_secs(2));
        for _ in 0..RESTARTS {
            let at = Instant::now();
            assert!(agent.role.stop(), "{mode}: {}", agent.role.log_text());
            agent.spawn();
            eprintln!("{mode}: agent restarted in {:?}", at.elapsed());
            assert!(
                agent.owns(&settings.current_pattern()),
                "{mode}: {}",
                settings.current_pattern()
            );
            std::thread::sleep(Duration::from_secs(2));
        }
        stop.store(true, Ordering::Release);
        (crasher.join().unwrap(), sampler.join().unwrap())
    });
    let log = agent.role.log_text();
    let handovers: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("left core_pattern to the pipe handler"))
        .collect();
    assert_eq!(handovers.len(), RESTARTS, "{mode}: hand-overs:\n{log}");
    if mode == "socket" {
        // Each socket agent served crashes before it handed over.
        for line in &handovers {
            assert!(
                line.contains("ServerStats { accepted: ") && !line.contains("accepted: 0,"),
                "{line}"
            );
        }
    }

    let pids: BTreeSet<u32> = crashes.iter().map(|c| c.0).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let found = loop {
        let found: BTreeSet<u32> = coredumps(cp, app)
            .iter()
            .map(|c| c.spec.pid)
            .filter(|p| pids.contains(p))
            .collect();
        if found.len() == pids.len() || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    cp.kubectl_ok(&[
        "delete",
        "pod",
        &pod_name,
        "-n",
        &stack.system,
        "--grace-period=0",
        "--force",
    ])
    .unwrap();
    assert!(agent.role.stop(), "{mode}: {}", agent.role.log_text());
    assert_eq!(
        settings.current_pattern(),
        settings.original_pattern(),
        "{mode}: an uninstall restores core_pattern"
    );
    drop(cgroup);
    Outcome {
        mode,
        crashes: pids.len(),
        recorded: found.len(),
        lost: pids.difference(&found).copied().collect(),
        no_core: crashes.iter().filter(|c| !c.1).count(),
        gap,
    }
}

#[test]
fn agent_restarts_lose_no_crash_in_pipe_or_socket_mode() {
    assert!(
        coredump_capture::socket::socket_supported(),
        "this test needs the coredump socket (Linux >= 6.17)"
    );
    let settings = KernelSettings::acquire();
    let cp = shared().unwrap();
    let (stack, dir) = (stack(), test_dir("restarts"));
    let node = format!("restart-node-{}", std::process::id());
    let app = cp.create_namespace("restarts").unwrap();
    let outcomes: Vec<Outcome> = ["pipe", "socket"]
        .into_iter()
        .map(|mode| {
            restarts_in_mode(
                cp,
                &stack.api,
                &settings,
                &dir,
                &stack.blobs,
                mode,
                &node,
                &app,
            )
        })
        .collect();
    for o in &outcomes {
        eprintln!(
            "agent_capture: {} mode, {RESTARTS} restarts, a crash every {PERIOD:?}: {} crashes, {} recorded, {} lost {:?}, {} without a core; core_pattern not the agent's for at most {:?}",
            o.mode,
            o.crashes,
            o.recorded,
            o.lost.len(),
            o.lost,
            o.no_core,
            o.gap
        );
    }
    for o in &outcomes {
        assert!(o.crashes >= 40, "{o:?}");
        assert_eq!(o.lost, Vec::<u32>::new(), "{o:?}");
        assert_eq!(o.no_core, 0, "{o:?}");
        assert_eq!(o.gap, Duration::ZERO, "{o:?}");
    }
}

/// A second agent on the node while the first lives: of another install (another host
/// directory: it used to take `core_pattern` over silently) and of the same one. Each exits
/// with an error naming the first before it installs anything; the first keeps its pattern
/// and keeps capturing.
#[test]
fn a_second_agent_on_the_node_is_refused_and_the_first_keeps_core_pattern() {
    let settings = KernelSettings::acquire();
    let cp = shared().unwrap();
    let (stack, dir) = (stack(), test_dir("second"));
    let blobs = &stack.blobs;
    let kubeconfig = service_account_kubeconfig(cp, &stack.api.system, "coredump-agent", &dir);
    let node = format!("second-node-{}", std::process::id());
    let first_dir = dir.join("first");
    std::fs::create_dir_all(&first_dir).unwrap();
    let mut first = Agent::configure(
        &first_dir,
        blobs,
        &node,
        &kubeconfig,
        "drop",
        &["--capture=socket"],
    )
    .started();
    let pattern = settings.current_pattern();
    assert!(
        pattern.starts_with("@@") && first.owns(&pattern),
        "{pattern}"
    );

    for (what, second_dir, host_dir) in [
        ("another install", dir.join("second"), None),
        (
            "the same install",
            dir.join("again"),
            Some(first.host.clone()),
        ),
    ] {
        std::fs::create_dir_all(&second_dir).unwrap();
        let host_flag = host_dir
            .as_ref()
            .map(|h| format!("--host-dir={}", h.display()));
        let mut extra = vec!["--capture=pipe"];
        extra.extend(host_flag.as_deref());
        let mut second = Agent::configure(&second_dir, blobs, &node, &kubeconfig, "drop", &extra);
        let started = Instant::now();
        second.role.spawn();
        let status = second.role.wait_exit(Duration::from_secs(60));
        let log = second.role.log_text();
        assert!(
            status.is_some_and(|s| !s.success()),
            "{what}: the second agent exits with an error ({status:?}):\n{log}"
        );
        println!("{what}: second agent refused in {:?}", started.elapsed());
        assert!(
            log.contains("already owned by a live coredump-detector")
                && log.contains(&format!("({})", first.host.display())),
            "{what}: the error names the first agent:\n{log}"
        );
        assert_eq!(
            settings.current_pattern(),
            pattern,
            "{what}: the first keeps core_pattern"
        );
        if host_dir.is_none() {
            assert!(
                !second.host.exists(),
                "{what}: nothing installed in {}",
                second.host.display()
            );
        }
    }

    // The first still captures.
    let app = cp.create_namespace("second").unwrap();
    let cid = container_id(30);
    let uid = create_pod(cp, &app, "web-0", &node, &cid, serde_json::json!({}));
    let cgroup = pod_cgroup(&uid, &cid);
    let pid = crash_in(&cgroup, 2, 31, "mixed");
    let c = wait_coredump(cp, &app, pid, &first.role);
    assert_eq!(c.status.state, coredump_api::CoredumpState::Stored);
    assert_eq!(c.spec.pod_name.as_deref(), Some("web-0"));
    assert!(first.role.stop(), "{}", first.role.log_text());
    assert_eq!(settings.current_pattern(), settings.original_pattern());
    drop(cgroup);
}

/// Where the kernel refuses the socket pattern, as it does from any mount namespace but the
/// initial one (a container's): `auto` takes the pipe and says why, `socket` exits with the
/// kernel's error and leaves `core_pattern` as it was. The agent runs as a host process under
/// `unshare --mount`, which is all a container's mount namespace changes here.
#[test]
fn outside_the_initial_mount_namespace_auto_takes_the_pipe_and_socket_fails() {
    assert!(
        coredump_capture::socket::socket_supported(),
        "this test needs the coredump socket (Linux >= 6.17)"
    );
    let settings = KernelSettings::acquire();
    let cp = shared().unwrap();
    let (stack, dir) = (stack(), test_dir("mountns"));
    let kubeconfig = service_account_kubeconfig(cp, &stack.api.system, "coredump-agent", &dir);
    let node = format!("mountns-node-{}", std::process::id());
    let unshare = vec!["unshare".to_string(), "--mount".to_string()];

    let mut auto = Agent::configure(
        &dir,
        &stack.blobs,
        &node,
        &kubeconfig,
        "drop",
        &["--capture=auto"],
    );
    auto.role.wrapper = unshare.clone();
    auto.spawn();
    assert_eq!(
        settings.current_pattern(),
        auto.pattern(),
        "the pipe handler"
    );
    let log = auto.role.log_text();
    let fallback = log
        .lines()
        .find(|l| l.contains("capture mode auto: using the pipe handler"))
        .unwrap_or_else(|| panic!("the reason is logged:\n{log}"));
    assert!(fallback.contains("Invalid argument"), "{fallback}");
    assert_eq!(
        log.matches("capture mode auto: using the pipe handler")
            .count(),
        1,
        "said once"
    );
    assert!(auto.role.stop(), "{}", auto.role.log_text());
    assert_eq!(settings.current_pattern(), settings.original_pattern());

    let socket_dir = dir.join("socket");
    std::fs::create_dir_all(&socket_dir).unwrap();
    let mut socket = Agent::configure(
        &socket_dir,
        &stack.blobs,
        &node,
        &kubeconfig,
        "drop",
        &["--capture=socket"],
    );
    socket.role.wrapper = unshare;
    socket.role.spawn();
    let status = socket.role.wait_exit(Duration::from_secs(60));
    let log = socket.role.log_text();
    assert!(status.is_some_and(|s| !s.success()), "{status:?}:\n{log}");
    assert!(log.contains("Invalid argument"), "{log}");
    assert_eq!(
        settings.current_pattern(),
        settings.original_pattern(),
        "a refused socket leaves core_pattern as it was"
    );
    eprintln!("agent_capture: under unshare --mount, auto: {fallback}");
}
