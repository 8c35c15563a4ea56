//! What an install is made of besides its namespace and service name: images, host paths,
//! quota, GC threshold, ports. Every one is a `deploy` flag. Host paths default under
//! `/var/lib/coredump-detector`, never under `/tmp`: any local user can create a `/tmp`
//! directory first and own what the install later stores in it.

use std::path::{Path, PathBuf};

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
/// Size of etcd's claim with `--etcd-storage-class` (the metadata of crashes: small).
pub const DEFAULT_ETCD_STORAGE_SIZE: &str = "1Gi";
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
    /// Where the cores go: `local` (the `coredump-backend` hostPath), `s3://BUCKET[/PREFIX]`,
    /// `gs://BUCKET[/PREFIX]` or `az://CONTAINER[/PREFIX]`: the `--blob-store` of the agent,
    /// the API server and the GC.
    pub blob_store: String,
    /// A Secret whose keys become the environment of those three (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `GOOGLE_SERVICE_ACCOUNT_KEY`, `AZURE_STORAGE_ACCOUNT_KEY`...):
    /// the bucket's credentials
    /// never appear in the manifest.
    pub blob_store_secret: Option<String>,
    /// An existing ReadWriteMany PersistentVolumeClaim that holds the cores instead of the
    /// `--local-path` hostPath, mounted by the agent, the API server and the GC.
    pub blob_volume_claim: Option<String>,
    /// A StorageClass for the bundled etcd's data: the StatefulSet gets a volumeClaimTemplate
    /// of it instead of the `--etcd-data-path` hostPath.
    pub etcd_storage_class: Option<String>,
    /// Size requested by that claim, in the byte grammar of `coredump_common`.
    pub etcd_storage_size: String,
    /// An existing etcd cluster's client URLs: no bundled etcd is rendered and the API server
    /// points at these. Empty: the bundled StatefulSet.
    pub etcd_servers: Vec<String>,
    /// A Secret holding `ca.crt`, `tls.crt` and `tls.key` for `--etcd-servers` (the CA of
    /// etcd's serving certificate and the API server's client pair), mounted into the API
    /// server. Required by `https://` endpoints.
    pub etcd_client_secret: Option<String>,
    /// API server replicas behind the Service (`--api-replicas`). More than one needs cores
    /// every replica can read: a bucket or a claim, never the node's hostPath.
    pub api_replicas: u32,
    /// The agent's `--capture` (`pipe` by default: a restart loses nothing in either mode, a
    /// SIGKILLed agent only in pipe mode; and a containerized agent cannot install the socket
    /// on kernels that refuse it from outside the host's mount namespace).
    pub capture: coredump_capture::socket::CaptureMode,
}

/// Where the API server keeps its metadata: what the etcd flags amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataStore<'a> {
    /// The bundled etcd StatefulSet, its data on the node's `--etcd-data-path` hostPath.
    BundledHostPath(&'a Path),
    /// The bundled etcd StatefulSet, its data on a claim of this StorageClass.
    BundledClaim(&'a str),
    /// An existing etcd cluster (`--etcd-servers`), with the Secret of its client certificate.
    External {
        /// Client URLs.
        servers: &'a [String],
        /// `--etcd-client-secret`.
        client_secret: Option<&'a str>,
    },
}

/// Where an install keeps its cores: what `--blob-store` and `--blob-volume-claim` amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreStorage<'a> {
    /// The `--local-path` hostPath of each node: an API server reads only its own node's cores.
    HostPath(&'a Path),
    /// A ReadWriteMany claim (`--blob-volume-claim`) every pod mounts: one filesystem for all.
    Claim(&'a str),
    /// A bucket (`--blob-store s3://...`): the API server and the GC mount no core volume.
    Bucket,
}

impl CoreStorage<'_> {
    /// Whether every node and every API server replica sees the same cores.
    pub fn is_shared(self) -> bool {
        !matches!(self, CoreStorage::HostPath(_))
    }
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
            blob_volume_claim: None,
            etcd_storage_class: None,
            etcd_storage_size: DEFAULT_ETCD_STORAGE_SIZE.to_string(),
            etcd_servers: Vec::new(),
            etcd_client_secret: None,
            api_replicas: 1,
            capture: coredump_capture::socket::CaptureMode::Pipe,
        }
    }

    /// Where the metadata lives (after [`DeployOptions::validate`], a storage class never
    /// comes with `--etcd-servers`).
    pub fn metadata_store(&self) -> MetadataStore<'_> {
        match (self.etcd_servers.as_slice(), &self.etcd_storage_class) {
            ([], None) => MetadataStore::BundledHostPath(&self.etcd_data_path),
            ([], Some(class)) => MetadataStore::BundledClaim(class),
            (servers, _) => MetadataStore::External {
                servers,
                client_secret: self.etcd_client_secret.as_deref(),
            },
        }
    }

    /// Whether the manifest holds the etcd StatefulSet, its Service, Secrets and policy.
    pub fn bundles_etcd(&self) -> bool {
        self.etcd_servers.is_empty()
    }

    /// Where the cores live (after [`DeployOptions::validate`], a claim never comes with a
    /// bucket).
    pub fn core_storage(&self) -> CoreStorage<'_> {
        match (&self.blob_volume_claim, self.blob_store.as_str()) {
            (Some(claim), _) => CoreStorage::Claim(claim),
            (None, "local") => CoreStorage::HostPath(&self.local_path),
            (None, _) => CoreStorage::Bucket,
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
        if let Some(claim) = &self.blob_volume_claim {
            check(
                "--blob-volume-claim",
                claim,
                coredump_api::validation::dns1123_subdomain(claim),
            )?;
            if self.blob_store != "local" {
                return Err(DeployError::invalid(
                    "--blob-volume-claim",
                    claim,
                    format!(
                        "cannot be combined with --blob-store {}: the cores go either to a \
                         bucket or to a shared volume; give only one of the two",
                        self.blob_store
                    ),
                ));
            }
        }
        self.validate_etcd()?;
        self.validate_replicas()?;
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

impl DeployOptions {
    /// `--api-replicas`: at least one, and more only where every replica can serve every core.
    /// The metadata is in etcd in every manifest (bundled or `--etcd-servers`): the API server's
    /// embedded store, private to one process, is never rendered, so replicas always share it.
    fn validate_replicas(&self) -> Result<(), DeployError> {
        let n = self.api_replicas.to_string();
        if self.api_replicas == 0 {
            return Err(DeployError::invalid(
                "--api-replicas",
                &n,
                "must be at least 1",
            ));
        }
        if self.api_replicas > 1 && !self.core_storage().is_shared() {
            return Err(DeployError::invalid(
                "--api-replicas",
                &n,
                "replicas on other nodes cannot read the cores in one node's --local-path \
                 hostPath: give a bucket (--blob-store s3://, gs:// or az://) or --blob-volume-claim NAME",
            ));
        }
        Ok(())
    }

    /// The etcd flags: a claim for the bundled etcd, or an existing cluster, not both.
    fn validate_etcd(&self) -> Result<(), DeployError> {
        let check = |option, value: &str, result: Result<(), String>| {
            result.map_err(|reason| DeployError::invalid(option, value, reason))
        };
        let size = &self.etcd_storage_size;
        check("--etcd-storage-size", size, validate::size(size))?;
        if coredump_common::parse_bytes(size).ok() == Some(0) {
            return Err(DeployError::invalid(
                "--etcd-storage-size",
                size,
                "must not be 0",
            ));
        }
        if let Some(class) = &self.etcd_storage_class {
            check(
                "--etcd-storage-class",
                class,
                coredump_api::validation::dns1123_subdomain(class),
            )?;
            if !self.etcd_servers.is_empty() {
                return Err(DeployError::invalid(
                    "--etcd-storage-class",
                    class,
                    "is for the bundled etcd, which --etcd-servers replaces; give only one",
                ));
            }
        }
        for url in &self.etcd_servers {
            check("--etcd-servers", url, validate::etcd_url(url))?;
        }
        let https = self
            .etcd_servers
            .iter()
            .filter(|u| u.starts_with("https://"));
        let tls = match https.count() {
            0 => false,
            n if n == self.etcd_servers.len() => true,
            _ => {
                return Err(DeployError::invalid(
                    "--etcd-servers",
                    &self.etcd_servers.join(","),
                    "mixes http:// and https:// endpoints of one cluster",
                ));
            }
        };
        match (&self.etcd_client_secret, tls) {
            (None, true) => Err(DeployError::invalid(
                "--etcd-servers",
                &self.etcd_servers.join(","),
                "https:// endpoints need --etcd-client-secret NAME (a Secret with ca.crt, \
                 tls.crt and tls.key for the API server)",
            )),
            (Some(secret), _) if self.etcd_servers.is_empty() => Err(DeployError::invalid(
                "--etcd-client-secret",
                secret,
                "is for --etcd-servers; the bundled etcd's certificates are generated",
            )),
            (Some(secret), false) => Err(DeployError::invalid(
                "--etcd-client-secret",
                secret,
                "http:// endpoints use no TLS: use https:// or drop the Secret",
            )),
            (Some(secret), true) => check(
                "--etcd-client-secret",
                secret,
                coredump_api::validation::dns1123_subdomain(secret),
            ),
            (None, false) => Ok(()),
        }
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
