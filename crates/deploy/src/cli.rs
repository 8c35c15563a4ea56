//! The `deploy` subcommand: `coredump-detector deploy NAMESPACE SERVICE DIR [flags]` (the seed's
//! `deploy.sh` arguments) writes `DIR/coredump.yaml` and, for reference, the certificates it
//! embeds: `DIR/apiserver_ca.crt`, `DIR/apiserver.{crt,key}` (the seed's file names) and
//! `DIR/etcd_ca.crt`; the CA keys only with `--write-ca-keys`. Keys and the manifest, which
//! holds keys, are mode 0600.
//!
//! Certificates are generated anew on every run, like the seed did: re-running means
//! re-creating the Secret and the APIService together (`kubectl replace -f`).

use std::path::{Path, PathBuf};

use crate::certs::{Certs, generate_certs};
use crate::error::DeployError;
use crate::options::{
    DEFAULT_AGENT_METRICS_PORT, DEFAULT_API_PORT, DEFAULT_ETCD_DATA_PATH, DEFAULT_ETCD_IMAGE,
    DEFAULT_ETCD_STORAGE_SIZE, DEFAULT_GC_METRICS_PORT, DEFAULT_GC_THRESHOLD, DEFAULT_HOST_DIR,
    DEFAULT_IMAGE, DEFAULT_LOCAL_PATH, DEFAULT_MAX_AGE, DEFAULT_NS_DISK_QUOTA, DeployOptions,
};
use crate::render::render;

/// File name of the manifest inside DIR.
pub const MANIFEST_FILE: &str = "coredump.yaml";

/// Arguments of `coredump-detector deploy`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// Namespace every component runs in (created by the manifest unless it is a built-in one).
    pub namespace: String,
    /// Name of the API server's Service; the serving certificate is issued for
    /// SERVICE.NAMESPACE.svc.
    pub service: String,
    /// Output directory (created if missing): coredump.yaml and the certificates.
    pub dir: PathBuf,
    /// Image of the API server, GC and agent (built by the repository's Dockerfile).
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// imagePullPolicy of --image: Always, IfNotPresent or Never.
    #[arg(long, default_value = "IfNotPresent")]
    pub image_pull_policy: String,
    /// Image of etcd.
    #[arg(long, default_value = DEFAULT_ETCD_IMAGE)]
    pub etcd_image: String,
    /// Host directory of the core files (volume `coredump-backend`; test-only default).
    #[arg(long, default_value = DEFAULT_LOCAL_PATH)]
    pub local_path: PathBuf,
    /// Host directory of etcd's data (volume `etcd-data-dir`; test-only default). Unused with
    /// --etcd-storage-class or --etcd-servers.
    #[arg(long, default_value = DEFAULT_ETCD_DATA_PATH)]
    pub etcd_data_path: PathBuf,
    /// StorageClass of a PersistentVolumeClaim for the bundled etcd's data (a
    /// volumeClaimTemplate `etcd-data-dir` of --etcd-storage-size, ReadWriteOnce) instead of
    /// the --etcd-data-path hostPath.
    #[arg(long, value_name = "CLASS")]
    pub etcd_storage_class: Option<String>,
    /// Size of that claim (e.g. 1Gi, 512Mi, 2GB; the grammar of --ns-disk-quota).
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_ETCD_STORAGE_SIZE)]
    pub etcd_storage_size: String,
    /// Client URLs of an existing etcd cluster (comma-separated, e.g.
    /// https://etcd-0.db:2379,https://etcd-1.db:2379): no etcd StatefulSet, Service or
    /// Secrets are rendered and the API server uses these.
    #[arg(long, value_name = "URL[,URL]", value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    /// Secret (in the install's namespace) with keys ca.crt (etcd's CA), tls.crt and tls.key
    /// (a client certificate etcd accepts), mounted into the API server; required with
    /// https:// --etcd-servers. Create it first, e.g. `kubectl create secret generic NAME
    /// --from-file=ca.crt --from-file=tls.crt --from-file=tls.key`.
    #[arg(long, value_name = "NAME")]
    pub etcd_client_secret: Option<String>,
    /// Node directory of the agent: the handler binary the kernel runs, and the spool.
    #[arg(long, default_value = DEFAULT_HOST_DIR)]
    pub host_dir: PathBuf,
    /// Disk quota per namespace (the agent's NS_DISK_QUOTA), e.g. 1GB, 512Mi.
    #[arg(long, default_value = DEFAULT_NS_DISK_QUOTA)]
    pub ns_disk_quota: String,
    /// Collect the cores of pods and namespaces gone longer than this (e.g. 30m, 2h).
    #[arg(long, default_value = DEFAULT_GC_THRESHOLD)]
    pub gc_threshold: String,
    /// Where the cores go: `local` (a filesystem: the node's --local-path hostPath, one node
    /// only, or the --blob-volume-claim), or a bucket: `s3://BUCKET[/PREFIX]`,
    /// `gs://BUCKET[/PREFIX]` or `az://CONTAINER[/PREFIX]` (every node and API server replica
    /// reads the same bucket; the API server and the GC then mount no core volume).
    #[arg(long, default_value = "local")]
    pub blob_store: String,
    /// An existing ReadWriteMany PersistentVolumeClaim (in the install's namespace) holding the
    /// cores instead of the --local-path hostPath: mounted by the agent on every node, the API
    /// server and the GC (NFS, CephFS...). Not with a bucket --blob-store.
    #[arg(long, value_name = "CLAIM")]
    pub blob_volume_claim: Option<String>,
    /// Secret in the install's namespace whose keys become the environment of the agent, the
    /// API server and the GC (create it before the install): for S3 AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION; for GCS GOOGLE_SERVICE_ACCOUNT_KEY;
    /// for Azure AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY.
    #[arg(long)]
    pub blob_store_secret: Option<String>,
    /// How crashes reach the agent (its `--capture`): `pipe` (a handler process per crash),
    /// `socket` (the kernel's coredump socket, Linux >= 6.17, the agent in the host's mount
    /// namespace) or `auto` (socket where the kernel takes it, else pipe).
    #[arg(long, default_value_t = coredump_capture::socket::CaptureMode::Pipe)]
    pub capture: coredump_capture::socket::CaptureMode,
    /// Collect crashes older than this whatever their pod (e.g. 720h; 0 = never).
    #[arg(long, default_value = DEFAULT_MAX_AGE)]
    pub max_age: String,
    /// Port the API server listens on in its container (its Service is port 443).
    #[arg(long, default_value_t = DEFAULT_API_PORT)]
    pub api_port: u16,
    /// Port of the agent's /metrics, /healthz and /readyz.
    #[arg(long, default_value_t = DEFAULT_AGENT_METRICS_PORT)]
    pub agent_metrics_port: u16,
    /// Port of the GC's /metrics, /healthz and /readyz.
    #[arg(long, default_value_t = DEFAULT_GC_METRICS_PORT)]
    pub gc_metrics_port: u16,
    /// API server replicas behind the Service (a PodDisruptionBudget and spreading over nodes
    /// when more than one). More than one needs an s3:// --blob-store or a
    /// --blob-volume-claim: a replica cannot read another node's --local-path.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub api_replicas: u32,
    /// Do not create the Namespace (it exists already).
    #[arg(long)]
    pub no_create_namespace: bool,
    /// Write a Helm chart into DIR instead of coredump.yaml: the same objects (but the
    /// Namespace: the release's), with SERVICE, the images, quota, GC ages, capture mode and
    /// host paths as chart values defaulting to these flags; certificates are made by Helm at
    /// install time and kept by upgrades. Install with `helm install NAME DIR -n NAMESPACE`.
    #[arg(long)]
    pub helm_chart: bool,
    /// Also write the two CA private keys to DIR (to issue more certificates later). Without
    /// it they exist only in memory while `deploy` runs: the manifest does not need them.
    #[arg(long)]
    pub write_ca_keys: bool,
}

/// Whether `deploy` leaves the CA private keys in DIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKeys {
    /// Forget them (the default): nobody who reads DIR later can mint certificates.
    Discard,
    /// Write `apiserver_ca.key` and `etcd_ca.key` (mode 0600).
    Write,
}

impl DeployArgs {
    /// The options these arguments stand for.
    pub fn options(&self) -> DeployOptions {
        DeployOptions {
            namespace: self.namespace.clone(),
            service: self.service.clone(),
            image: self.image.clone(),
            image_pull_policy: self.image_pull_policy.clone(),
            etcd_image: self.etcd_image.clone(),
            local_path: self.local_path.clone(),
            etcd_data_path: self.etcd_data_path.clone(),
            host_dir: self.host_dir.clone(),
            ns_disk_quota: self.ns_disk_quota.clone(),
            gc_threshold: self.gc_threshold.clone(),
            max_age: self.max_age.clone(),
            api_port: self.api_port,
            agent_metrics_port: self.agent_metrics_port,
            gc_metrics_port: self.gc_metrics_port,
            create_namespace: !self.no_create_namespace,
            blob_store: self.blob_store.clone(),
            blob_store_secret: self.blob_store_secret.clone(),
            blob_volume_claim: self.blob_volume_claim.clone(),
            etcd_storage_class: self.etcd_storage_class.clone(),
            etcd_storage_size: self.etcd_storage_size.clone(),
            etcd_servers: self.etcd_servers.clone(),
            etcd_client_secret: self.etcd_client_secret.clone(),
            api_replicas: self.api_replicas,
            capture: self.capture,
        }
    }
}

/// Generates certificates and writes `dir/coredump.yaml` with them; returns the manifest's path.
pub fn write(dir: &Path, opts: &DeployOptions, keys: CaKeys) -> Result<PathBuf, DeployError> {
    opts.validate()?;
    let certs = generate_certs(&opts.namespace, &opts.service)?;
    write_with(dir, opts, &certs, keys)
}

/// Writes `dir/coredump.yaml` for these certificates, and beside it the certificates (the
/// seed's `apiserver_ca.crt`, `apiserver.{crt,key}`, and `etcd_ca.crt`), the CA keys only with
/// [`CaKeys::Write`] (a stale CA key of an earlier run is removed otherwise). Nothing is
/// written if the options are invalid.
pub fn write_with(
    dir: &Path,
    opts: &DeployOptions,
    certs: &Certs,
    keys: CaKeys,
) -> Result<PathBuf, DeployError> {
    let yaml = render(opts, certs)?;
    std::fs::create_dir_all(dir).map_err(|source| DeployError::Io {
        action: "create directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let pki_err = |subject: String| move |source| DeployError::Pki { subject, source };
    coredump_pki::write_pair(dir, "apiserver", &certs.server)
        .map_err(pki_err(dir.join("apiserver").display().to_string()))?;
    for (name, ca) in [("apiserver_ca", &certs.ca), ("etcd_ca", &certs.etcd_ca)] {
        let written = match keys {
            CaKeys::Write => coredump_pki::write_pair(dir, name, ca),
            CaKeys::Discard => coredump_pki::write_cert_only(dir, name, ca),
        };
        written.map_err(pki_err(dir.join(name).display().to_string()))?;
    }
    let path = dir.join(MANIFEST_FILE);
    coredump_pki::write_file(&path, yaml.as_bytes(), 0o600)
        .map_err(pki_err(path.display().to_string()))?;
    Ok(path)
}

/// Runs `deploy`: writes the files and tells the user what to run next.
pub fn run(args: DeployArgs) -> anyhow::Result<()> {
    if args.helm_chart {
        let dir = crate::helm::write_chart(&args.dir, &args.options())?;
        println!("wrote the Helm chart {}", dir.display());
        println!(
            "install with: helm install coredump-detector {} -n {} --create-namespace",
            dir.display(),
            args.namespace
        );
        return Ok(());
    }
    let keys = if args.write_ca_keys {
        CaKeys::Write
    } else {
        CaKeys::Discard
    };
    let path = write(&args.dir, &args.options(), keys)?;
    println!("wrote {}", path.display());
    println!("install with: kubectl create -f {}", path.display());
    Ok(())
}
