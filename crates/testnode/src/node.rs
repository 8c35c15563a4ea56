//! The node: a network namespace with the CNI bridge carrying the node's address, the control
//! plane inside it (testplane's etcd and kube-apiserver, [`NodePlacement`]), containerd,
//! kube-controller-manager, kube-scheduler, kube-proxy and kubelet started there too, the
//! images imported, the cluster DNS answering, and the node Ready.
//!
//! Teardown is one script (`scripts/node.sh teardown DIR`), run by `Drop` and, when the test
//! binary dies without destructors, by a shell waiting for this process's end
//! ([`coredump_testkit::scratch::run_after_exit`]): containers and shims do not die with us
//! (shims detach from containerd), and mounts, cgroups and sysctls outlive every process.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coredump_testkit::kernel_lock::KernelSettings;
use coredump_testplane::{
    ControlPlane, ControlPlaneOptions, ManagedProcess, NetworkNamespace, NodePlacement, TestCa,
};

use crate::configs::{self, BRIDGE, CLUSTER_DOMAIN, Layout, NODE_ADDRESS, NODE_NAME, SERVICE_CIDR};
use crate::error::{NodeError, run};
use crate::images::{self, ImageInputs, Images};

/// How long the node may take to report Ready after kubelet starts.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What [`Node::start`] needs.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// The node's directory (`scripts/node.sh up DIR`); a fresh scratch directory, removed
    /// afterwards, when `None`.
    pub dir: Option<PathBuf>,
    /// The `coredump-detector` binary of the image: `$COREDUMP_DETECTOR_BIN`, else the
    /// workspace's build, when `None`.
    pub detector_bin: Option<PathBuf>,
}

/// The node's daemons, in the order they are stopped.
#[derive(Debug)]
struct Daemons {
    kubelet: ManagedProcess,
    kube_proxy: ManagedProcess,
    scheduler: ManagedProcess,
    controller_manager: ManagedProcess,
    containerd: ManagedProcess,
}

/// A running single-node cluster; see the module documentation.
pub struct Node {
    daemons: Option<Daemons>,
    /// containerd processes started by [`Node::restart_containerd`], the last one current.
    restarted_containerd: std::sync::Mutex<Vec<ManagedProcess>>,
    cp: Option<ControlPlane>,
    netns: Arc<NetworkNamespace>,
    images: Images,
    layout: Layout,
    kernel: Option<KernelSettings>,
    scratch: Option<tempfile::TempDir>,
    started_in: Duration,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("dir", &self.layout.root)
            .finish_non_exhaustive()
    }
}

/// `scripts/node.sh`, relative to this crate.
pub fn node_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/node.sh")
}

impl Node {
    /// Starts a node; see the module documentation. Holds the kernel-settings lock from here
    /// until it is dropped (its agent may own `core_pattern` all that time).
    pub fn start(options: NodeOptions) -> Result<Node, NodeError> {
        let started = Instant::now();
        let (layout, scratch) = match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| NodeError::io("create directory", dir, e))?;
                (
                    Layout::new(
                        &std::path::absolute(dir).map_err(|e| NodeError::io("resolve", dir, e))?,
                    ),
                    None,
                )
            }
            None => {
                let parent = std::env::temp_dir().join("coredump-testnode");
                std::fs::create_dir_all(&parent)
                    .map_err(|e| NodeError::io("create directory", &parent, e))?;
                let tmp = tempfile::Builder::new()
                    .prefix(&format!("{}-", std::process::id()))
                    .tempdir_in(&parent)
                    .map_err(|e| NodeError::io("create a directory in", &parent, e))?;
                (Layout::new(tmp.path()), Some(tmp))
            }
        };
        for sub in [
            "containerd",
            "cni/net.d",
            "config",
            "logs",
            "images",
            "host",
        ] {
            let d = layout.root.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| NodeError::io("create directory", &d, e))?;
        }
        let kernel = KernelSettings::acquire();
        save_sysctls(&layout)?;
        // From here on, whatever happens to this process, the node is torn down after it.
        // A scratch directory goes with it, after the unmounts (one script, in that order).
        let script = node_script();
        let mut teardown: Vec<&std::ffi::OsStr> = vec![
            "bash".as_ref(),
            script.as_os_str(),
            "teardown".as_ref(),
            layout.root.as_os_str(),
        ];
        if scratch.is_some() {
            teardown.push("--remove".as_ref());
        }
        coredump_testkit::scratch::run_after_exit(&teardown)
            .map_err(|e| NodeError::io("arrange the teardown of", &layout.root, e))?;

        let binaries = node_binaries()?;
        let netns = Arc::new(NetworkNamespace::create(&layout.log("netns"))?);
        let ns_id =
            std::fs::read_link(netns.path()).map_err(|e| NodeError::io("read", netns.path(), e))?;
        let ns_file = layout.root.join("netns.id");
        std::fs::write(&ns_file, ns_id.as_os_str().as_encoded_bytes())
            .map_err(|e| NodeError::io("write", &ns_file, e))?;
        setup_network(&netns)?;

        let mut node = Node {
            daemons: None,
            restarted_containerd: std::sync::Mutex::new(Vec::new()),
            cp: None,
            netns: Arc::clone(&netns),
            images: Images {
                detector: String::new(),
                etcd: String::new(),
                crasher: String::new(),
                crasher_bin: PathBuf::new(),
                detector_bin: PathBuf::new(),
            },
            layout: layout.clone(),
            kernel: Some(kernel),
            scratch,
            started_in: Duration::ZERO,
        };
        let cp = ControlPlane::start_with(ControlPlaneOptions {
            network: Some(NodePlacement {
                netns: Arc::clone(&netns),
                address: NODE_ADDRESS,
            }),
            ..ControlPlaneOptions::default()
        })?;
        write_configs(&layout, &cp)?;
        let containerd = spawn(
            &netns,
            "containerd",
            Path::new("containerd"),
            &[format!("--config={}", layout.containerd_config().display())],
            &layout,
        )?;
        node.cp = Some(cp);
        let cp = node
            .cp
            .as_ref()
            .ok_or_else(|| NodeError::Shared("no control plane".into()))?;
        wait_containerd(&layout, &containerd)?;

        let detector_bin = match options.detector_bin.clone() {
            Some(bin) => bin,
            None => std::env::var_os("COREDUMP_DETECTOR_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(coredump_testkit::bins::detector),
        };
        let etcd_bin = coredump_testplane::binaries()?.etcd;
        let (images, archives) = images::build(
            &ImageInputs {
                detector_bin,
                etcd_bin,
            },
            &layout.images(),
        )?;
        for archive in &archives {
            images::import(&layout.containerd_socket(), archive)?;
        }
        node.images = images;

        let kubeconfig = |c: &str| format!("--kubeconfig={}", layout.kubeconfig(c).display());
        let ca = cp.server_ca_file().display().to_string();
        let controller_manager = spawn(
            &netns,
            "kube-controller-manager",
            &binaries.controller_manager,
            &[
                kubeconfig("kube-controller-manager"),
                format!(
                    "--authentication-kubeconfig={}",
                    layout.kubeconfig("kube-controller-manager").display()
                ),
                format!(
                    "--authorization-kubeconfig={}",
                    layout.kubeconfig("kube-controller-manager").display()
                ),
                format!("--root-ca-file={ca}"),
                format!(
                    "--service-account-private-key-file={}",
                    cp.service_account_key_file().display()
                ),
                "--use-service-account-credentials=true".into(),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                // Our tests delete pods and wait for their cores' collection, not for the node.
                "--concurrent-gc-syncs=5".into(),
            ],
            &layout,
        )?;
        let scheduler = spawn(
            &netns,
            "kube-scheduler",
            &binaries.scheduler,
            &[
                kubeconfig("kube-scheduler"),
                format!(
                    "--authentication-kubeconfig={}",
                    layout.kubeconfig("kube-scheduler").display()
                ),
                format!(
                    "--authorization-kubeconfig={}",
                    layout.kubeconfig("kube-scheduler").display()
                ),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
            ],
            &layout,
        )?;
        let kube_proxy = spawn(
            &netns,
            "kube-proxy",
            &binaries.proxy,
            &[format!("--config={}", layout.kube_proxy_config().display())],
            &layout,
        )?;
        let kubelet = spawn(
            &netns,
            "kubelet",
            &binaries.kubelet,
            &[
                format!("--config={}", layout.kubelet_config().display()),
                kubeconfig("kubelet"),
                format!("--root-dir={}", layout.kubelet_root().display()),
                format!("--cert-dir={}", layout.root.join("kubelet-pki").display()),
                format!("--hostname-override={NODE_NAME}"),
                format!("--node-ip={NODE_ADDRESS}"),
            ],
            &layout,
        )?;
        node.daemons = Some(Daemons {
            kubelet,
            kube_proxy,
            scheduler,
            controller_manager,
            containerd,
        });
        start_dns(&netns, cp)?;
        node.wait_ready()?;
        node.started_in = started.elapsed();
        Ok(node)
    }

    /// The control plane (kubectl, namespaces, certificates).
    pub fn control_plane(&self) -> &ControlPlane {
        // Set in `start` before the node is handed out.
        self.cp
            .as_ref()
            .unwrap_or_else(|| unreachable!("a started node has a control plane"))
    }

    /// Creates a namespace `<prefix>-<n>` and waits until the controller-manager gave it its
    /// `default` ServiceAccount (pods cannot be created before).
    pub fn create_namespace(&self, prefix: &str) -> Result<String, NodeError> {
        let cp = self.control_plane();
        let ns = cp.create_namespace(prefix)?;
        let start = Instant::now();
        loop {
            let sa = cp.kubectl_ok(&["get", "serviceaccount", "default", "-n", &ns, "-o", "name"]);
            if sa.is_ok() {
                return Ok(ns);
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(NodeError::NotReady {
                    what: format!("ServiceAccount {ns}/default"),
                    waited_s: start.elapsed().as_secs(),
                    last: format!("{sa:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The node's network namespace (connect to pods from the test).
    pub fn netns(&self) -> &NetworkNamespace {
        &self.netns
    }

    /// The images in the node's containerd.
    pub fn images(&self) -> &Images {
        &self.images
    }

    /// The node's directory layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The node's name.
    pub fn name(&self) -> &'static str {
        NODE_NAME
    }

    /// How long [`Node::start`] took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The lines an operator sources: `KUBECONFIG=…` and `CONTAINER_RUNTIME_ENDPOINT=unix://…`.
    pub fn env_lines(&self) -> String {
        format!(
            "KUBECONFIG={}\nCONTAINER_RUNTIME_ENDPOINT=unix://{}\n",
            self.control_plane().kubeconfig().display(),
            self.layout.containerd_socket().display()
        )
    }

    /// The logs of the node's daemons, last lines each: for failure messages.
    pub fn log_tails(&self) -> String {
        [
            "kubelet",
            "containerd",
            "kube-proxy",
            "kube-controller-manager",
            "kube-scheduler",
        ]
        .iter()
        .map(|c| {
            format!(
                "--- {c}\n{}\n",
                coredump_testplane::log_tail(&self.layout.log(c))
            )
        })
        .collect()
    }

    /// Restarts the node's containerd the way a service manager does: SIGTERM to the current
    /// containerd process (SIGKILL if it has not exited after 20 s), then the same command
    /// again, waited for until it answers. Shims and containers keep running meanwhile, as
    /// they do on a real node. Returns the process ids (old, new).
    pub fn restart_containerd(&self) -> Result<(u32, u32), NodeError> {
        let mut restarted = self
            .restarted_containerd
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let old_pid = {
            let current = match restarted.last() {
                Some(p) => p,
                None => {
                    &self
                        .daemons
                        .as_ref()
                        .ok_or_else(|| NodeError::Shared("the node is stopped".into()))?
                        .containerd
                }
            };
            let pid = current.pid();
            let mut term = Command::new("kill");
            term.args(["-TERM", &pid.to_string()]);
            run(term)?;
            let start = Instant::now();
            while current.exited().is_none() && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(50));
            }
            current.kill();
            pid
        };
        let containerd = spawn(
            &self.netns,
            "containerd",
            Path::new("containerd"),
            &[format!(
                "--config={}",
                self.layout.containerd_config().display()
            )],
            &self.layout,
        )?;
        wait_containerd(&self.layout, &containerd)?;
        let new_pid = containerd.pid();
        restarted.push(containerd);
        Ok((old_pid, new_pid))
    }

    fn wait_ready(&self) -> Result<(), NodeError> {
        let cp = self.control_plane();
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < NODE_READY_TIMEOUT {
            if let Some(daemons) = &self.daemons {
                for (name, p) in [
                    ("kubelet", &daemons.kubelet),
                    ("containerd", &daemons.containerd),
                    ("kube-proxy", &daemons.kube_proxy),
                    ("kube-scheduler", &daemons.scheduler),
                    ("kube-controller-manager", &daemons.controller_manager),
                ] {
                    if let Some(status) = p.exited() {
                        return Err(NodeError::NotReady {
                            what: format!("node {NODE_NAME}"),
                            waited_s: start.elapsed().as_secs(),
                            last: format!(
                                "{name} exited with {status}:\n{}",
                                coredump_testplane::log_tail(p.log())
                            ),
                        });
                    }
                }
            }
            let jsonpath = r#"-o=jsonpath={.status.conditions[?(@.type=="Ready")].status}"#;
            match cp.kubectl_ok(&["get", "node", NODE_NAME, jsonpath, "--request-timeout=5s"]) {
                Ok(status) if status.trim() == "True" => return Ok(()),
                Ok(status) => last = format!("Ready={status}"),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(NodeError::NotReady {
            what: format!("node {NODE_NAME}"),
            waited_s: start.elapsed().as_secs(),
            last: format!("{last}\n{}", self.log_tails()),
        })
    }

    /// Stops everything now (what `Drop` does); returns the teardown script's verdict.
    pub fn stop(&mut self) -> Result<(), NodeError> {
        // kubelet first, so nothing restarts what the script kills.
        drop(self.daemons.take());
        drop(std::mem::take(
            &mut *self
                .restarted_containerd
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        ));
        let mut teardown = Command::new("bash");
        teardown
            .arg(node_script())
            .arg("teardown")
            .arg(&self.layout.root);
        let result = run(teardown).map(drop);
        drop(self.cp.take());
        drop(self.kernel.take());
        drop(self.scratch.take());
        result
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("testnode: teardown of {}: {e}", self.layout.root.display());
        }
    }
}

/// The node binaries of `scripts/control-plane/build.sh node`.
#[derive(Debug, Clone)]
struct NodeBinaries {
    kubelet: PathBuf,
    controller_manager: PathBuf,
    scheduler: PathBuf,
    proxy: PathBuf,
}

fn node_binaries() -> Result<NodeBinaries, NodeError> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/control-plane/build.sh");
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .arg("node")
        .stderr(std::process::Stdio::inherit());
    let out = run(command)?;
    let find = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")).map(PathBuf::from))
            .ok_or_else(|| {
                NodeError::Shared(format!(
                    "{} printed no {name}= line: {out}",
                    script.display()
                ))
            })
    };
    Ok(NodeBinaries {
        kubelet: find("kubelet")?,
        controller_manager: find("kube-controller-manager")?,
        scheduler: find("kube-scheduler")?,
        proxy: find("kube-proxy")?,
    })
}

/// The machine-wide sysctls kubelet changes, saved for teardown.
fn save_sysctls(layout: &Layout) -> Result<(), NodeError> {
    let path = layout.saved_sysctls();
    if path.exists() {
        // A previous run of this directory died before restoring: keep its originals.
        return Ok(());
    }
    let mut text = String::new();
    for name in configs::KUBELET_SYSCTLS {
        let file = Path::new("/proc/sys").join(name);
        let value = std::fs::read_to_string(&file).map_err(|e| NodeError::io("read", &file, e))?;
        text.push_str(&format!("{name} {}\n", value.trim()));
    }
    std::fs::write(&path, text).map_err(|e| NodeError::io("write", &path, e))
}

/// The bridge with the node's address, forwarding, and a route for Service addresses (so the
/// node's own processes, kube-apiserver's aggregator among them, reach ClusterIPs).
fn setup_network(netns: &NetworkNamespace) -> Result<(), NodeError> {
    let addr = format!("{NODE_ADDRESS}/16");
    for args in [
        vec!["link", "add", BRIDGE, "type", "bridge"],
        vec!["addr", "add", &addr, "dev", BRIDGE],
        vec!["link", "set", BRIDGE, "up"],
        vec![
            "route",
            "add",
            SERVICE_CIDR,
            "dev",
            BRIDGE,
            "src",
            &NODE_ADDRESS.to_string(),
        ],
    ] {
        netns.run(
            "ip",
            &args.iter().map(|s| s.as_ref()).collect::<Vec<&str>>(),
        )?;
    }
    netns.run("sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"])?;
    Ok(())
}

fn spawn(
    netns: &NetworkNamespace,
    component: &'static str,
    program: &Path,
    args: &[String],
    layout: &Layout,
) -> Result<ManagedProcess, NodeError> {
    Ok(ManagedProcess::spawn_in(
        component,
        Some(netns),
        program,
        args,
        &layout.log(component),
    )?)
}

/// Writes containerd's, CNI's, kubelet's and kube-proxy's configuration and the components'
/// kubeconfigs (client certificates of the cluster's client CA, with the users and groups the
/// bootstrap RBAC roles are bound to).
fn write_configs(layout: &Layout, cp: &ControlPlane) -> Result<(), NodeError> {
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text).map_err(|e| NodeError::io("write", &path, e))
    };
    write(layout.containerd_config(), configs::containerd_toml(layout))?;
    write(
        layout.cni_conf_dir().join("10-coredump-node.conflist"),
        configs::cni_conflist(layout).to_string(),
    )?;
    write(
        layout.kubelet_config(),
        configs::kubelet_yaml(layout).to_string(),
    )?;
    write(
        layout.kube_proxy_config(),
        configs::kube_proxy_yaml(layout).to_string(),
    )?;
    write(
        layout.resolv_conf(),
        "# the node's pods get the cluster DNS from kubelet\n".into(),
    )?;
    let server = cp
        .node_url()
        .ok_or_else(|| NodeError::Shared("control plane is not in the node's namespace".into()))?;
    let ca: &TestCa = cp.client_ca();
    for (component, user, group) in [
        (
            "kubelet",
            format!("system:node:{NODE_NAME}"),
            Some("system:nodes"),
        ),
        (
            "kube-controller-manager",
            "system:kube-controller-manager".to_string(),
            None,
        ),
        ("kube-scheduler", "system:kube-scheduler".to_string(), None),
        ("kube-proxy", "system:kube-proxy".to_string(), None),
    ] {
        let cert = ca.issue_client(&user, group)?;
        let dir = layout.root.join("config");
        let (crt, key) = (
            dir.join(format!("{component}.crt")),
            dir.join(format!("{component}.key")),
        );
        write(crt.clone(), cert.cert_pem)?;
        write(key.clone(), cert.key_pem)?;
        let config = configs::client_kubeconfig(&server, cp.server_ca_file(), &crt, &key);
        write(layout.kubeconfig(component), config.to_string())?;
    }
    Ok(())
}

fn wait_containerd(layout: &Layout, containerd: &ManagedProcess) -> Result<(), NodeError> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(status) = containerd.exited() {
            return Err(containerd.exited_error(status).into());
        }
        let mut version = Command::new("ctr");
        version
            .arg("-a")
            .arg(layout.containerd_socket())
            .arg("version");
        match run(version) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(NodeError::NotReady {
        what: "containerd".into(),
        waited_s: start.elapsed().as_secs(),
        last,
    })
}

/// Starts the cluster DNS thread on the node's address, port 53.
fn start_dns(netns: &NetworkNamespace, cp: &ControlPlane) -> Result<(), NodeError> {
    let addr = SocketAddr::from((NODE_ADDRESS, 53));
    let socket = netns
        .bind_udp(addr)
        .map_err(|e| NodeError::io("bind the cluster DNS on", addr.to_string(), e))?;
    let mut kubectl = cp.kubectl_command(&[
        "get",
        "services",
        "-A",
        "-o",
        "json",
        "--request-timeout=5s",
    ]);
    let source = Box::new(move || {
        let out = kubectl.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    std::thread::Builder::new()
        .name("cluster-dns".into())
        .spawn(move || crate::dns::serve(socket, CLUSTER_DOMAIN.to_string(), source))
        .map_err(|e| NodeError::io("start the cluster DNS thread", addr.to_string(), e))?;
    Ok(())
}

/// The node's address, for tests that connect to pods or the node.
pub fn node_address() -> Ipv4Addr {
    NODE_ADDRESS
}

/// The inode of this process's network namespace (for checks that nothing leaked into it).
pub fn own_netns_inode() -> std::io::Result<u64> {
    Ok(std::fs::metadata("/proc/self/ns/net")?.ino())
}
