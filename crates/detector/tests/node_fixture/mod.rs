//! The real-node fixture of `real_node.rs`: one test node per test binary
//! (`coredump_testnode::shared`), the project installed on it from its manifest in namespace
//! `coredump`, and helpers to run crasher pods and read what the install recorded.
//!
//! Every test takes [`Cluster::lock`]: the tests share one agent and one kernel, and several of
//! them count crashes or restart the agent, so they run one at a time.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use coredump_api::Coredump;
use coredump_testnode::{Install, Node};
use coredump_testplane::ControlPlane;

/// Namespace of the shared install.
pub const INSTALL_NS: &str = "coredump";
/// The GC threshold of the shared install: short, so the GC test sees a collection.
pub const GC_THRESHOLD_S: u64 = 20;
/// The per-namespace quota of the shared install (`--ns-disk-quota=40Mi`).
pub const QUOTA_BYTES: u64 = 40 << 20;

/// The shared node with the project installed.
pub struct Cluster {
    pub node: &'static Node,
    pub install: Install,
    lock: Mutex<()>,
    /// How long `kubectl create -f` until every pod Ready and the APIService Available took.
    pub install_took: Duration,
    /// `core_pattern` and `core_pipe_limit` before the install.
    pub pattern_before: (String, String),
}

/// The node and install of this test binary, set up by the first caller.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let node = coredump_testnode::shared().unwrap_or_else(|e| panic!("{e}"));
        eprintln!("real_node: node up in {:?}", node.started_in());
        let flags = [
            format!("--gc-threshold={GC_THRESHOLD_S}s"),
            "--ns-disk-quota=40Mi".to_string(),
        ];
        let pattern_before = kernel_settings();
        let install = node
            .install(INSTALL_NS, &flags)
            .unwrap_or_else(|e| panic!("{e}"));
        let install_took = node
            .wait_installed(&install, Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("real_node: installed in {install_took:?}");
        Cluster {
            node,
            install,
            lock: Mutex::new(()),
            install_took,
            pattern_before,
        }
    })
}

/// `core_pattern` and `core_pipe_limit` now, trimmed.
pub fn kernel_settings() -> (String, String) {
    let read = |f: &str| std::fs::read_to_string(f).unwrap().trim().to_string();
    (
        read("/proc/sys/kernel/core_pattern"),
        read("/proc/sys/kernel/core_pipe_limit"),
    )
}

impl Cluster {
    /// `kubectl delete -f` of the shared install, waited for: until `core_pattern` is what it
    /// was before the install and the install's namespace is gone ([`Cluster::reinstall`]
    /// brings it back).
    pub fn uninstall(&self) {
        let manifest = self.install.manifest.display().to_string();
        self.kubectl(&["delete", "-f", &manifest, "--wait=true", "--timeout=180s"]);
        self.wait(Duration::from_secs(60), "core_pattern restored", || {
            (kernel_settings().0 == self.pattern_before.0).then_some(())
        });
        self.wait(
            Duration::from_secs(120),
            "the install's namespace to go",
            || {
                let out = self.cp().kubectl(&["get", "namespace", INSTALL_NS]);
                (!out.status.success()).then_some(())
            },
        );
    }

    /// `kubectl create -f` of the same manifest again, waited for (after an uninstall test).
    pub fn reinstall(&self) {
        let manifest = self.install.manifest.display().to_string();
        self.kubectl(&["create", "-f", &manifest, "--request-timeout=60s"]);
        self.node
            .wait_installed(&self.install, Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Exclusive use of the node for one test.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn cp(&self) -> &ControlPlane {
        self.node.control_plane()
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        self.cp()
            .kubectl_ok(args)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.node.log_tails()))
    }

    /// Applies one object.
    pub fn apply(&self, object: &serde_json::Value) {
        self.cp()
            .submit("apply", object)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// A pod running the crasher image with `args`, its main container named `app`,
    /// `COREDUMP_TEST_MARKER` set to the pod's UID.
    pub fn crasher_pod(&self, ns: &str, name: &str, args: &[&str]) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [self.crasher_container("app", args)],
            },
        })
    }

    /// A crasher container.
    pub fn crasher_container(&self, name: &str, args: &[&str]) -> serde_json::Value {
        serde_json::json!({
            "name": name,
            "image": self.node.images().crasher,
            "imagePullPolicy": "Never",
            "args": args,
            "env": [{"name": "COREDUMP_TEST_MARKER",
                     "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}],
        })
    }

    /// The pod as JSON.
    pub fn pod(&self, ns: &str, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.kubectl(&["get", "pod", "-n", ns, name, "-o", "json"])).unwrap()
    }

    /// Every Coredump of `ns`.
    pub fn coredumps(&self, ns: &str) -> Vec<Coredump> {
        #[derive(serde::Deserialize)]
        struct List {
            items: Vec<Coredump>,
        }
        let out = self.cp().kubectl_ok(&[
            "get",
            "coredumps",
            "-n",
            ns,
            "-o",
            "json",
            "--request-timeout=20s",
        ]);
        match out {
            Ok(json) => serde_json::from_str::<List>(&json).unwrap().items,
            Err(_) => Vec::new(),
        }
    }

    /// Polls until `want` holds for the Coredumps of `ns`; panics with what was seen.
    pub fn wait_coredumps(
        &self,
        ns: &str,
        timeout: Duration,
        what: &str,
        want: impl Fn(&[Coredump]) -> bool,
    ) -> Vec<Coredump> {
        let start = Instant::now();
        loop {
            let seen = self.coredumps(ns);
            if want(&seen) {
                return seen;
            }
            if start.elapsed() > timeout {
                let agent = self.agent_logs();
                panic!(
                    "{what}: not within {timeout:?}; Coredumps: {:#?}\nagent log:\n{agent}",
                    seen.iter()
                        .map(|c| (
                            &c.metadata.name,
                            &c.spec.pod_name,
                            &c.spec.container_name,
                            c.status.state
                        ))
                        .collect::<Vec<_>>()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The agent's log (last 200 lines).
    pub fn agent_logs(&self) -> String {
        let out = self.cp().kubectl(&[
            "logs",
            "-n",
            INSTALL_NS,
            "daemonset/kcdt-ds",
            "--tail=200",
            "--request-timeout=10s",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// Polls `check` (every 200 ms) until it gives a value.
    pub fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = check() {
                return v;
            }
            assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `f` while sampling `core_pattern` every 10 ms; returns for how long it did not
    /// name the agent's handler (or socket) while `f` ran.
    pub fn agent_gap_during(&self, f: impl FnOnce()) -> Duration {
        let ours = self.install.host_dir.display().to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut gap = Duration::ZERO;
                let mut last = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern")
                        .unwrap_or_default();
                    let now = Instant::now();
                    if !pattern.contains(&ours) {
                        gap += now - last;
                    }
                    last = now;
                }
                gap
            })
        };
        f();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    }

    /// A namespace of the test's own.
    pub fn namespace(&self, prefix: &str) -> String {
        self.node.create_namespace(prefix).unwrap()
    }

    /// The crasher program on this machine (symbols for gdb).
    pub fn crasher_bin(&self) -> &Path {
        &self.node.images().crasher_bin
    }
}

/// `kubectl coredump download NAME -n NS -o FILE` with the plugin built from this workspace;
/// returns the file.
pub fn download(cluster: &Cluster, ns: &str, name: &str, dir: &Path) -> PathBuf {
    static PLUGIN: OnceLock<tempfile::TempDir> = OnceLock::new();
    let plugin_dir = PLUGIN.get_or_init(crate::common::plugin_dir);
    let out = dir.join(format!("{name}.core"));
    let (ok, stdout, stderr) = crate::common::plugin(
        plugin_dir.path(),
        cluster.cp().kubeconfig(),
        dir,
        &["download", name, "-n", ns, "-o", &out.display().to_string()],
    );
    assert!(ok, "kubectl coredump download: {stdout}\n{stderr}");
    out
}

/// `gdb -batch -ex bt PROGRAM CORE`: the backtrace text.
pub fn gdb_backtrace(program: &Path, core: &Path) -> String {
    let out = std::process::Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "bt"])
        .arg(program)
        .arg(core)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// How many crashes `records` stand for: one each, or a RateLimited summary's count.
pub fn accounted(records: &[Coredump]) -> u64 {
    records
        .iter()
        .map(|r| r.status.suppressed_crashes.max(1))
        .sum()
}

/// The marker the crasher writes for crash `seq` of the pod with `uid`.
pub fn marker(uid: &str, seq: u64) -> Vec<u8> {
    format!("COREDUMP-TEST-MARK:{uid}:{seq}:END").into_bytes()
}

/// The agent's spool on the node (`<host-dir>/spool`).
pub fn spool_dir(cluster: &Cluster) -> PathBuf {
    cluster.install.host_dir.join("spool")
}

/// The spool's crash entries (published `<id>` and in-progress `<id>.tmp`), not its `slots/`
/// or its reserve.
pub fn spool_entries(cluster: &Cluster) -> Vec<String> {
    std::fs::read_dir(spool_dir(cluster))
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                e.file_type().ok()?.is_dir().then_some(())?;
                e.file_name().into_string().ok()
            })
            .filter(|n| n != "slots" && !n.starts_with('.'))
            .collect()
        })
        .unwrap_or_default()
}

/// Starts a crasher pod `name` in `ns` that crashes once (`restartPolicy: Never`) and waits
/// until its core is being captured: returns the pod's UID and the spool entry in progress.
pub fn crash_once_and_wait_capture(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    args: &[&str],
) -> (String, PathBuf) {
    let mut pod = cluster.crasher_pod(ns, name, args);
    pod["spec"]["restartPolicy"] = "Never".into();
    let before = spool_entries(cluster);
    cluster.apply(&pod);
    let uid = cluster.pod(ns, name)["metadata"]["uid"]
        .as_str()
        .expect("the pod has a UID")
        .to_string();
    (
        uid,
        wait_capture_started(cluster, &before, Duration::from_secs(120)),
    )
}

/// Polls the spool every 2 ms until a crash entry not in `before` is being written
/// (`<id>.tmp`); returns its path.
pub fn wait_capture_started(cluster: &Cluster, before: &[String], timeout: Duration) -> PathBuf {
    let start = Instant::now();
    loop {
        if let Some(tmp) = spool_entries(cluster)
            .into_iter()
            .find(|n| n.ends_with(".tmp") && !before.contains(n))
        {
            return spool_dir(cluster).join(tmp);
        }
        assert!(
            start.elapsed() < timeout,
            "no capture started within {timeout:?}; spool: {:?}",
            spool_entries(cluster)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every Coredump whose pod UID is `uid`, in `ns` and in the install's namespace.
pub fn records_of_pod(cluster: &Cluster, ns: &str, uid: &str) -> Vec<Coredump> {
    let mut all = cluster.coredumps(ns);
    all.extend(cluster.coredumps(INSTALL_NS));
    all.retain(|r| r.spec.pod_uid.as_deref() == Some(uid));
    all
}

/// `sha256sum FILE`, hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

/// The agent pod: (name, UID, restart count).
pub fn agent_pod(cluster: &Cluster) -> (String, String, u64) {
    let json = cluster.kubectl(&[
        "get",
        "pods",
        "-n",
        INSTALL_NS,
        "-l",
        "app.kubernetes.io/component=agent",
        "-o",
        "json",
    ]);
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    let pod = &list["items"][0];
    (
        pod["metadata"]["name"].as_str().unwrap_or_default().into(),
        pod["metadata"]["uid"].as_str().unwrap_or_default().into(),
        pod["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0),
    )
}

/// `kubectl rollout status` of the agent's DaemonSet.
pub fn agent_rolled_out(cluster: &Cluster) {
    cluster.kubectl(&[
        "rollout",
        "status",
        "-n",
        INSTALL_NS,
        "daemonset/kcdt-ds",
        "--timeout=180s",
    ]);
}
