//! Every name, path, port, flag value and environment variable the generated manifest relies
//! on, in one place: the `apiserver`, `gc` and `agent` roles must accept exactly these, and
//! the tests check the manifest against them.
//!
//! The command lines the roles must accept (all run `/usr/local/bin/coredump-detector`, with
//! `POD_NAMESPACE` set from the downward API and in-cluster ServiceAccount credentials):
//!
//! | role | ServiceAccount | arguments | environment, probes |
//! |---|---|---|---|
//! | `apiserver` | `coredump-api` | `--secure-port=PORT --etcd-servers=https://etcd-svc.NS.svc:2379 --etcd-cafile=/var/run/coredump-etcd/ca.crt --etcd-certfile=/var/run/coredump-etcd/tls.crt --etcd-keyfile=/var/run/coredump-etcd/tls.key --tls-cert-file=/var/run/coredump/tls.crt --tls-private-key-file=/var/run/coredump/tls.key --local-path=/coredump --backend-kind=local` | HTTPS `/readyz`, `/livez` on PORT |
//! | `gc` | `coredump-gc` | `--gc-threshold=30m --local-path=/coredump --backend-kind=local --metrics-bind-address=0.0.0.0:9103` | HTTP `/healthz`, `/readyz` (and `/metrics`) on 9103 |
//! | `agent` | `coredump-agent` | `--host-dir=/var/lib/coredump-detector --local-path=/coredump --backend-kind=local --metrics-bind-address=0.0.0.0:9102` | `NODE_NAME`, `NS_DISK_QUOTA`; HTTP `/healthz`, `/readyz` (and `/metrics`) on 9102; SIGTERM restores `core_pattern` within the 30 s grace period |
//!
//! The agent's `--host-dir` is mounted at the same path as on the host: the kernel resolves the
//! `core_pattern` handler (and a coredump socket) in the host's mount namespace, so every path
//! the agent writes into `core_pattern` must be a host path.
//!
//! Cluster-scoped objects that belong to one install (ClusterRoles and ClusterRoleBindings of
//! the components, and the RoleBinding placed in `kube-system`) carry the namespace in their
//! name ([`install_scoped`]), so installs in two namespaces, or a leftover of an old one, never
//! overwrite each other's grants. The APIService and the two user-facing ClusterRoles
//! ([`VIEWER_ROLE`], [`DEBUGGER_ROLE`]) are cluster-wide by nature and keep fixed names: admins
//! bind those by name.

/// API group served by the aggregated API server.
pub const API_GROUP: &str = "coredump.fujitsu.com";
/// API version served.
pub const API_VERSION: &str = "v1alpha1";
/// Name of the APIService (`<version>.<group>`).
pub const APISERVICE: &str = "v1alpha1.coredump.fujitsu.com";

/// ServiceAccount of the API server Deployment (seed name).
pub const API_SERVICE_ACCOUNT: &str = "coredump-api";
/// ServiceAccount of the GC Deployment (seed name).
pub const GC_SERVICE_ACCOUNT: &str = "coredump-gc";
/// ServiceAccount of the node DaemonSet.
pub const AGENT_SERVICE_ACCOUNT: &str = "coredump-agent";

/// Secret with the API server's serving certificate (`kubernetes.io/tls`: `tls.crt`, `tls.key`).
pub const TLS_SECRET: &str = "servercrt";
/// Service in front of etcd.
pub const ETCD_SERVICE: &str = "etcd-svc";
/// etcd StatefulSet (its pod is `etcd-0`).
pub const ETCD_STATEFULSET: &str = "etcd";
/// Client port of etcd (TLS, client certificates required).
pub const ETCD_PORT: u16 = 2379;
/// etcd's plain-HTTP port for `/livez`, `/readyz` and `/metrics` only (kubelet's probes cannot
/// present a client certificate); it serves no keys.
pub const ETCD_METRICS_PORT: u16 = 2381;
/// Secret with etcd's serving certificate (`kubernetes.io/tls` plus `ca.crt`, the etcd CA).
pub const ETCD_SERVER_SECRET: &str = "etcd-server-tls";
/// Secret with the API server's etcd client certificate (`kubernetes.io/tls` plus `ca.crt`).
pub const ETCD_CLIENT_SECRET: &str = "etcd-client-tls";
/// Where [`ETCD_SERVER_SECRET`] is mounted in etcd.
pub const ETCD_TLS_MOUNT: &str = "/etc/etcd/tls";
/// Where [`ETCD_CLIENT_SECRET`] is mounted in the API server (`--etcd-cafile` and friends).
pub const ETCD_CLIENT_MOUNT: &str = "/var/run/coredump-etcd";
/// NetworkPolicy admitting only the API server to etcd's client port.
pub const ETCD_NETWORK_POLICY: &str = "etcd";
/// NetworkPolicy admitting traffic to the API server's port only.
pub const API_NETWORK_POLICY: &str = "apiserver";
/// User and group the API server and the GC run as (non-root), and that the agent gives the
/// core files it stores, so those two can read and delete them while other host users cannot.
pub const SERVICE_UID: u32 = 65532;
/// GC Deployment.
pub const GC_DEPLOYMENT: &str = "coredump-gc";
/// Node DaemonSet (seed name).
pub const AGENT_DAEMONSET: &str = "kcdt-ds";
/// Port of the API server's Service, which the APIService names.
pub const SERVICE_PORT: u16 = 443;

/// ClusterRole for users who may see crash records but not read memory images.
pub const VIEWER_ROLE: &str = "coredump-viewer";
/// ClusterRole for users who may also download cores (`coredumpendpoints/dump`, `coredumps/core`)
/// and the binaries kept by build ID (`buildid/executable`, `buildid/debuginfo`).
pub const DEBUGGER_ROLE: &str = "coredump-debugger";

/// The binary inside the image: every workload runs `coredump-detector <role> ...`.
pub const BINARY: &str = "/usr/local/bin/coredump-detector";
/// Where the `servercrt` Secret is mounted in the API server (`tls.crt`, `tls.key`).
pub const TLS_MOUNT: &str = "/var/run/coredump";
/// Where the core storage (volume `coredump-backend`) is mounted in every component; passed as
/// `--local-path`.
pub const CORES_MOUNT: &str = "/coredump";
/// Name of the core storage volume (seed name; admins replace it with shared storage).
pub const CORES_VOLUME: &str = "coredump-backend";
/// Volume of the GC's state when the cores are in a bucket (an emptyDir: the GC has no core
/// volume then, and its root filesystem is read-only).
pub const GC_STATE_VOLUME: &str = "gc-state";
/// Where [`GC_STATE_VOLUME`] is mounted; the GC gets `--state-file=<this>/state.json`.
pub const GC_STATE_MOUNT: &str = "/var/lib/coredump-gc";
/// Name of etcd's data volume (seed name).
pub const ETCD_VOLUME: &str = "etcd-data-dir";
/// Where etcd keeps its data inside its container.
pub const ETCD_MOUNT: &str = "/var/lib/etcd";
/// Name of the node directory volume of the agent (mounted at the same path as on the host).
pub const HOST_DIR_VOLUME: &str = "host-dir";
/// Volume of kubelet's pod log directory, mounted read-only into the agent.
pub const POD_LOGS_VOLUME: &str = "pod-logs";
/// Volume of the agent's machine-wide run directory (the core_pattern owner lock), the same
/// host path for every install so a second one on the node is refused.
pub const NODE_RUN_VOLUME: &str = "node-run";
/// kubelet's pod log directory (the agent's `--pod-log-dir` default).
pub const POD_LOGS_DIR: &str = "/var/log/pods";

/// Environment variable with the node's name (downward API `spec.nodeName`), read by `agent`.
pub const ENV_NODE_NAME: &str = "NODE_NAME";
/// Environment variable with the per-namespace disk quota (seed name), read by `agent`.
pub const ENV_NS_DISK_QUOTA: &str = "NS_DISK_QUOTA";
/// Environment variable with the install's namespace (downward API), for every component.
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";

/// Node label the API server replicas spread over (the well-known hostname label).
pub const HOSTNAME_TOPOLOGY_KEY: &str = "kubernetes.io/hostname";

/// `app.kubernetes.io/name` of every object.
pub const APP_NAME: &str = "coredump-detector";

/// Name of a cluster-scoped object owned by the install in `namespace`:
/// `coredump-detector:<namespace>:<component>`.
pub fn install_scoped(namespace: &str, component: &str) -> String {
    format!("{APP_NAME}:{namespace}:{component}")
}

/// In-cluster URL of etcd for the API server's `--etcd-servers`.
pub fn etcd_url(namespace: &str) -> String {
    format!("https://{ETCD_SERVICE}.{namespace}.svc:{ETCD_PORT}")
}
