//! What an install is made of besides its namespace and service name: images, host paths,
//! quota, GC threshold, ports. Every one is a `deploy` flag. Host paths default under
//! `/var/lib/coredump-detector`, never under `/tmp`: any local user can create a `/tmp`
//! directory first and own what the install later stores in it.

use std::path::PathBuf;

use crate::error::DeployError;
use crate::validate;

/// Image of every coredump-detector workload: the one binary built by the repository's
/// `Dockerfile`, tagged with this version (`docker build -t coredump-detector:<version> .`).
pub const DEFAULT_IMAGE: &str = concat!("coredump-detector:", env!("CARGO_PKG_VERSION"));
/// etcd image. The seed used `quay.io/coreos/etcd:latest`, which is years old; this pins a
/// current 3.6 release from the same repository.
pub const DEFAULT_ETCD_IMAGE: &str = "quay.io/coreos/etcd:v3.6.4";
/// Host directory for the cores (one node's disk: replace the `coredump-backend` volume with
/// shared storage for more than one node). The seed used `/tmp/coredump-backend-storage`.
pub const DEFAULT_LOCAL_PATH: &str = "/var/lib/coredump-detector/cores";
/// Host directory for etcd's data. The seed used `/tmp/etcd-backend`.
pub const DEFAULT_ETCD_DATA_PATH: &str = "/var/lib/coredump-detector/etcd";
/// Node directory of the agent: the handler binary the kernel runs, its configuration and the
/// spool. Mounted at the same path in the agent, because `core_pattern` names host paths.
pub const DEFAULT_HOST_DIR: &str = "/var/lib/coredump-detector";
/// Per-namespace disk quota (seed default).
pub const DEFAULT_NS_DISK_QUOTA: &str = "1GB";
/// How long a pod or namespace must be gone before its cores are collected (seed default).
pub const DEFAULT_GC_THRESHOLD: &str = "30m";
/// Crashes older than this are collected whatever their pod (the GC's `--max-age`): a
/// long-lived pod that crashes now and then must not fill the volume over months.
pub const DEFAULT_MAX_AGE: &str = "720h";
/// Port the API server listens on in its container. Above 1024, so the non-root API server needs
/// no capability; its Service still answers on 443 (the seed's port, which the APIService names).
pub const DEFAULT_API_PORT: u16 = 8443;
/// Port of the agent's `/metrics`, `/healthz` and `/readyz`.
pub const DEFAULT_AGENT_METRICS_PORT: u16 = 9102;
/// Port of the GC's `/metrics`, `/healthz` and `/readyz`.
pub const DEFAULT_GC_METRICS_PORT: u16 = 9103;

/// Everything [`crate::render`] needs besides certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOptions {
    /// Namespace of every namespaced object.
    pub namespace: String,
    /// Name of the API server's Service and Deployment; the certificates are issued for it.
    pub service: String,
    /// Image of the API server, GC and agent.
    pub image: String,
    /// `imagePullPolicy` of that image (`IfNotPresent` so a locally built image works).
    pub image_pull_policy: String,
    /// Image of etcd.
    pub etcd_image: String,
    /// Host directory of the cores (volume `coredump-backend`).
    pub local_path: PathBuf,
    /// Host directory of etcd's data (volume `etcd-data-dir`).
    pub etcd_data_path: PathBuf,
    /// Node directory of the agent (handler binary, spool), same path in the container.
    pub host_dir: PathBuf,
    /// `NS_DISK_QUOTA` of the agent.
    pub ns_disk_quota: String,
    /// `--gc-threshold` of the GC.
    pub gc_threshold: String,
    /// `--max-age` of the GC (`0` turns it off).
    pub max_age: String,
    /// Container port of the API server (`--secure-port`); the Service maps 443 to it.
    pub api_port: u16,
    /// Port of the agent's metrics and health endpoints (`--metrics-bind-address`).
    pub agent_metrics_port: u16,
    /// Port of the GC's metrics and health endpoints (`--metrics-bind-address`).
    pub gc_metrics_port: u16,
    /// Emit the Namespace object. Ignored (never emitted) for `default`, `kube-system`,
    /// `kube-public` and `kube-node-lease`, which always exist.
    pub create_namespace: bool,
    /// Where the cores go: `local` (the `coredump-backend` hostPath) or `s3://BUCKET[/PREFIX]`,
    /// the `--blob-store` of the agent, the API server and the GC.
    pub blob_store: String,
    /// A Secret whose keys become the environment of those three (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `AWS_REGION`...): the bucket's credentials
    /// never appear in the manifest.
    pub blob_store_secret: Option<String>,
    /// The agent's `--capture` (`pipe` by default: a restart loses nothing in either mode, a
    /// SIGKILLed agent only in pipe mode; and a containerized agent cannot install the socket
    /// on kernels that refuse it from outside the host's mount namespace).
    pub capture: coredump_capture::socket::CaptureMode,
}

/// Namespaces that always exist: creating them would make `kubectl create -f` fail.
const BUILT_IN_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl DeployOptions {
    /// The seed's defaults for `namespace` and `service`.
    pub fn new(namespace: &str, service: &str) -> DeployOptions {
        DeployOptions {
            namespace: namespace.to_string(),
            service: service.to_string(),
            image: DEFAULT_IMAGE.to_string(),
            image_pull_policy: "IfNotPresent".to_string(),
            etcd_image: DEFAULT_ETCD_IMAGE.to_string(),
            local_path: DEFAULT_LOCAL_PATH.into(),
            etcd_data_path: DEFAULT_ETCD_DATA_PATH.into(),
            host_dir: DEFAULT_HOST_DIR.into(),
            ns_disk_quota: DEFAULT_NS_DISK_QUOTA.to_string(),
            gc_threshold: DEFAULT_GC_THRESHOLD.to_string(),
            max_age: DEFAULT_MAX_AGE.to_string(),
            api_port: DEFAULT_API_PORT,
            agent_metrics_port: DEFAULT_AGENT_METRICS_PORT,
            gc_metrics_port: DEFAULT_GC_METRICS_PORT,
            create_namespace: true,
            blob_store: "local".to_string(),
            blob_store_secret: None,
            capture: coredump_capture::socket::CaptureMode::Pipe,
        }
    }

    /// Whether the manifest creates the Namespace.
    pub fn emits_namespace(&self) -> bool {
        self.create_namespace && !BUILT_IN_NAMESPACES.contains(&self.namespace.as_str())
    }

    /// Checks every value; the first problem is returned.
    pub fn validate(&self) -> Result<(), DeployError> {
        let check = |option, value: &str, result: Result<(), String>| {
            result.map_err(|reason| DeployError::invalid(option, value, reason))
        };
        check(
            "namespace",
            &self.namespace,
            validate::dns1123_label(&self.namespace),
        )?;
        check(
            "service",
            &self.service,
            validate::dns1035_label(&self.service),
        )?;
        check("--image", &self.image, validate::image(&self.image))?;
        check(
            "--etcd-image",
            &self.etcd_image,
            validate::image(&self.etcd_image),
        )?;
        if !["Always", "IfNotPresent", "Never"].contains(&self.image_pull_policy.as_str()) {
            return Err(DeployError::invalid(
                "--image-pull-policy",
                &self.image_pull_policy,
                "must be Always, IfNotPresent or Never",
            ));
        }
        for (option, path) in [
            ("--local-path", &self.local_path),
            ("--etcd-data-path", &self.etcd_data_path),
            ("--host-dir", &self.host_dir),
        ] {
            let text = path_str(option, path)?;
            check(option, text, validate::absolute_path(text))?;
        }
        check(
            "--ns-disk-quota",
            &self.ns_disk_quota,
            validate::size(&self.ns_disk_quota),
        )?;
        check(
            "--blob-store",
            &self.blob_store,
            validate::blob_store(&self.blob_store),
        )?;
        if let Some(secret) = &self.blob_store_secret {
            check(
                "--blob-store-secret",
                secret,
                coredump_api::validation::dns1123_subdomain(secret),
            )?;
        }
        check(
            "--gc-threshold",
            &self.gc_threshold,
            validate::duration(&self.gc_threshold),
        )?;
        if self.max_age != "0" {
            check(
                "--max-age",
                &self.max_age,
                validate::duration(&self.max_age),
            )?;
        }
        for (option, port) in [
            ("--api-port", self.api_port),
            ("--agent-metrics-port", self.agent_metrics_port),
            ("--gc-metrics-port", self.gc_metrics_port),
        ] {
            if port == 0 {
                return Err(DeployError::invalid(option, "0", "must be 1 to 65535"));
            }
        }
        Ok(())
    }
}

/// `path` as UTF-8 text (Kubernetes paths are strings).
pub(crate) fn path_str<'a>(
    option: &'static str,
    path: &'a std::path::Path,
) -> Result<&'a str, DeployError> {
    path.to_str()
        .ok_or_else(|| DeployError::invalid(option, &path.to_string_lossy(), "must be valid UTF-8"))
}
