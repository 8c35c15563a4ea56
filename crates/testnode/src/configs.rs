//! The configuration files of the node's daemons, as pure functions of the node's [`Layout`]
//! and addresses, so the settings this machine needs are written down once and unit-tested:
//!
//! * containerd 1.6: the CRI's `restrict_oom_score_adj` (this machine's bounding set lacks
//!   `CAP_SYS_RESOURCE`: a sandbox asking for -998 fails in runc otherwise), its own root, state,
//!   socket and runc root, pod network namespaces under its state directory (so teardown finds
//!   their mounts), CNI from Debian's `/usr/lib/cni`;
//! * the CNI bridge: `cni0`, which also carries the node's address;
//! * kubelet 1.37 on cgroup v1: `failCgroupV1: false`, `cgroupDriver: cgroupfs` (containerd 1.6
//!   does not answer the CRI's RuntimeConfig), `oomScoreAdj: 0`, the cluster DNS on the node's
//!   address, a resolv.conf of our own (no host search domains in pods);
//! * kube-proxy: iptables mode in the node's namespace, conntrack settings left alone (the
//!   machine-wide `nf_conntrack_max` and hash size are not ours to change).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The node's address: the CNI bridge's gateway address, which kube-apiserver advertises and
/// the cluster DNS listens on.
pub const NODE_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
/// Pod addresses (the bridge's subnet).
pub const POD_CIDR: &str = "10.88.0.0/16";
/// Service addresses (testplane's `--service-cluster-ip-range`).
pub const SERVICE_CIDR: &str = "10.0.0.0/24";
/// The node's name.
pub const NODE_NAME: &str = "coredump-node";
/// The bridge.
pub const BRIDGE: &str = "cni0";
/// The sandbox image containerd runs for every pod.
pub const SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Where everything of one node lives, under its directory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The node's directory.
    pub root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// containerd's configuration.
    pub fn containerd_config(&self) -> PathBuf {
        self.at("containerd/config.toml")
    }
    /// containerd's socket (the CRI endpoint, and `ctr -a`).
    pub fn containerd_socket(&self) -> PathBuf {
        self.at("containerd/containerd.sock")
    }
    /// containerd's state directory (tasks, pod network namespaces).
    pub fn containerd_state(&self) -> PathBuf {
        self.at("containerd/state")
    }
    /// CNI configuration directory.
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.at("cni/net.d")
    }
    /// kubelet's root directory (pods' volumes).
    pub fn kubelet_root(&self) -> PathBuf {
        self.at("kubelet")
    }
    /// kubelet's configuration.
    pub fn kubelet_config(&self) -> PathBuf {
        self.at("config/kubelet.yaml")
    }
    /// kube-proxy's configuration.
    pub fn kube_proxy_config(&self) -> PathBuf {
        self.at("config/kube-proxy.yaml")
    }
    /// The resolv.conf kubelet builds pods' from.
    pub fn resolv_conf(&self) -> PathBuf {
        self.at("config/resolv.conf")
    }
    /// A component's kubeconfig.
    pub fn kubeconfig(&self, component: &str) -> PathBuf {
        self.at(&format!("config/{component}.kubeconfig"))
    }
    /// A component's log.
    pub fn log(&self, component: &str) -> PathBuf {
        self.at(&format!("logs/{component}.log"))
    }
    /// Image archives and the programs in them.
    pub fn images(&self) -> PathBuf {
        self.at("images")
    }
    /// The node's host paths for the install (`--host-dir`, `--local-path`, `--etcd-data-path`).
    pub fn host_paths(&self) -> PathBuf {
        self.at("host")
    }
    /// Values of machine-wide sysctls before kubelet changed them (`name value` lines), read
    /// by teardown.
    pub fn saved_sysctls(&self) -> PathBuf {
        self.at("sysctls.saved")
    }
    /// The environment an operator sources (`KUBECONFIG=`, `CONTAINER_RUNTIME_ENDPOINT=`).
    pub fn env_file(&self) -> PathBuf {
        self.at("env")
    }
}

/// containerd 1.6's configuration (version 2).
pub fn containerd_toml(layout: &Layout) -> String {
    let root = layout.at("containerd/root");
    let state = layout.containerd_state();
    let socket = layout.containerd_socket();
    let cni = layout.cni_conf_dir();
    let runc_root = layout.at("containerd/runc");
    let opt = layout.at("containerd/opt");
    let d = |p: &Path| p.display().to_string();
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = false
    Root = "{runc_root}"
"#,
        root = d(&root),
        state = d(&state),
        socket = d(&socket),
        opt = d(&opt),
        cni = d(&cni),
        runc_root = d(&runc_root),
    )
}

/// The CNI network: the bridge with the node's address as gateway, host-local addresses
/// (state under the node's directory).
pub fn cni_conflist(layout: &Layout) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "coredump-node",
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_ADDRESS.to_string()}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": layout.at("cni/ipam"),
            },
        }],
    })
}

/// kubelet's configuration.
pub fn kubelet_yaml(layout: &Layout) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": false,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": format!("unix://{}", layout.containerd_socket().display()),
        "address": NODE_ADDRESS.to_string(),
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        // The kubelet API is reachable only inside the node's namespace.
        "authentication": {"anonymous": {"enabled": true}, "webhook": {"enabled": false}},
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDNS": [NODE_ADDRESS.to_string()],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": layout.resolv_conf(),
        "oomScoreAdj": 0,
        "protectKernelDefaults": false,
        "failSwapOn": false,
        "staticPodPath": "",
        "serializeImagePulls": false,
        "registerNode": true,
        "nodeStatusUpdateFrequency": "2s",
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
        // The shared test machine's disk and memory are not ours to police.
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "maxPods": 60,
        "shutdownGracePeriod": "0s",
    })
}

/// kube-proxy's configuration.
pub fn kube_proxy_yaml(layout: &Layout) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": layout.kubeconfig("kube-proxy")},
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_ADDRESS.to_string(),
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        // Zero means "leave as it is": these are machine-wide or not ours.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"masqueradeAll": false, "syncPeriod": "5s", "minSyncPeriod": "0s"},
    })
}

/// A kubeconfig for `server` trusting `ca` as the client certificate `cert`/`key`.
pub fn client_kubeconfig(server: &str, ca: &Path, cert: &Path, key: &Path) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "node",
        "clusters": [{"name": "node", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": "node", "user": {"client-certificate": cert, "client-key": key}}],
        "contexts": [{"name": "node", "context": {"cluster": "node", "user": "node"}}],
    })
}

/// Machine-wide sysctls kubelet writes (with `protectKernelDefaults: false`), which teardown
/// puts back.
pub const KUBELET_SYSCTLS: [&str; 3] = [
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_keeps_everything_under_the_node_directory() {
        let layout = Layout::new(Path::new("/n"));
        let toml = containerd_toml(&layout);
        for want in [
            "root = \"/n/containerd/root\"",
            "state = \"/n/containerd/state\"",
            "address = \"/n/containerd/containerd.sock\"",
            "restrict_oom_score_adj = true",
            "netns_mounts_under_state_dir = true",
            "conf_dir = \"/n/cni/net.d\"",
            "Root = \"/n/containerd/runc\"",
            "SystemdCgroup = false",
            "sandbox_image = \"registry.k8s.io/pause:3.10\"",
        ] {
            assert!(toml.contains(want), "{want} missing from\n{toml}");
        }
    }

    #[test]
    fn kubelet_settings_this_machine_needs() {
        let k = kubelet_yaml(&Layout::new(Path::new("/n")));
        assert_eq!(k["failCgroupV1"], false);
        assert_eq!(k["cgroupDriver"], "cgroupfs");
        assert_eq!(k["oomScoreAdj"], 0);
        assert_eq!(k["clusterDNS"][0], "10.88.0.1");
        assert_eq!(
            k["containerRuntimeEndpoint"],
            "unix:///n/containerd/containerd.sock"
        );
        assert_eq!(k["resolvConf"], "/n/config/resolv.conf");
    }

    #[test]
    fn the_bridge_gateway_is_the_node_address() {
        let c = cni_conflist(&Layout::new(Path::new("/n")));
        let plugin = &c["plugins"][0];
        assert_eq!(plugin["bridge"], BRIDGE);
        assert_eq!(
            plugin["ipam"]["ranges"][0][0]["gateway"],
            NODE_ADDRESS.to_string()
        );
        assert_eq!(plugin["ipam"]["dataDir"], "/n/cni/ipam");
    }

    #[test]
    fn kube_proxy_leaves_machine_wide_conntrack_alone() {
        let p = kube_proxy_yaml(&Layout::new(Path::new("/n")));
        assert_eq!(p["conntrack"]["maxPerCore"], 0);
        assert_eq!(p["conntrack"]["min"], 0);
        assert_eq!(p["mode"], "iptables");
    }
}
