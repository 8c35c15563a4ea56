//! The `coredump-detector apiserver` role: flags (the seed's `--tls-cert-file`,
//! `--tls-private-key-file`, `--local-path`, `--backend-kind`, `--etcd-servers`, plus ours),
//! parsed once into [`ApiserverArgs`], and [`run`], which opens the stores and serves.
//!
//! In a cluster (a kubeconfig flag, or in-cluster credentials) authentication and authorization
//! are delegated to kube-apiserver ([`crate::delegation`]); without one, client certificates of
//! `--client-ca-file` and `--admin-groups` are all there is. With etcd, the history is compacted
//! every `--etcd-compaction-interval` ([`crate::compaction`]).
//!
//! `--secure-port` defaults to 443: the seed's APIService points at Service port 443 and the
//! container listens there; standalone mode passes its own unprivileged port.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use coredump_store::etcd_store::{EtcdOptions, EtcdStore, EtcdTls};
use coredump_store::fs_blob::FsBlobStore;
use coredump_store::redb_store::RedbStore;
use coredump_store::{BlobStore, MetadataStore};

use crate::auth::{
    AllowGroupsAuthorizer, AuthLayerState, Authenticator, ClientCertAuthenticator,
    UnionAuthenticator,
};
use crate::delegation::{BackgroundTasks, DelegationArgs};
use crate::{AppState, Registry, ServerConfig};
use coredump_common::parse_duration;

pub use coredump_common::BackendKind;

/// Flags of the `apiserver` role.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiserverArgs {
    /// HTTPS port.
    #[arg(long, default_value_t = 443)]
    pub secure_port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_address: IpAddr,
    /// PEM serving certificate (chain).
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the serving certificate.
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// PEM CA bundle; client certificates signed by it authenticate (CN = user, O = groups).
    /// With delegation it replaces the client CA kube-apiserver publishes; without delegation
    /// and without it no request to the API is authenticated (only health probes are answered).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// The seed's flag, kept so its command lines parse: `local`, its only value, is the
    /// filesystem under `--local-path`, the same as `--blob-store local`; a bucket given to
    /// `--blob-store` is used instead (the `deploy` manifest passes this flag only with
    /// `--local-path`).
    #[arg(long, value_enum, default_value_t = BackendKind::Local)]
    pub backend_kind: BackendKind,
    /// Root directory of the blobs (`<root>/<namespace>/<podUID>/<container>/<file>`).
    #[arg(long, default_value = "/var/lib/coredump-detector/cores")]
    pub local_path: PathBuf,
    /// `--blob-store local|s3://...|gs://...|az://...` and the object store clients' flags.
    #[command(flatten)]
    pub blob_store: coredump_objstore::BlobStoreArgs,
    /// etcd endpoints for the metadata (comma-separated, e.g. `http://etcd-svc:2379`); without
    /// them the embedded store under `--data-dir` is used.
    #[arg(long, value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    /// PEM CA bundle that etcd's serving certificate must chain to (kube-apiserver's flag name).
    /// Required for `https://` endpoints.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// PEM client certificate presented to etcd (etcd runs with `--client-cert-auth`).
    #[arg(long, requires = "etcd_keyfile")]
    pub etcd_certfile: Option<PathBuf>,
    /// PEM private key of `--etcd-certfile`.
    #[arg(long, requires = "etcd_certfile")]
    pub etcd_keyfile: Option<PathBuf>,
    /// Directory of the embedded metadata store.
    #[arg(long, default_value = "/var/lib/coredump-detector/metadata")]
    pub data_dir: PathBuf,
    /// Users (comma-separated) who may create Coredumps only with a service account token
    /// bound to a pod on a node, and then only crashes of that node: the agents' service
    /// account (`system:serviceaccount:NS:coredump-agent`). Any identity bound to a node is
    /// held to its node; these may not even create a record without one.
    #[arg(long, value_delimiter = ',')]
    pub node_bound_users: Vec<String>,
    /// Cores kept per crash signature of each pod: `FIRST,LAST` (the cores in between are
    /// evicted, their records stay with state Evicted), or `off`.
    #[arg(long, default_value = "5,5")]
    pub keep_per_signature: crate::registry::retention::KeepFlag,
    /// Groups whose members may do everything (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "system:masters")]
    pub admin_groups: Vec<String>,
    /// With etcd: compact its history every interval to the revision of the previous interval
    /// (like kube-apiserver; 0 = never, e.g. when etcd runs with --auto-compaction-*).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub etcd_compaction_interval: Duration,
    /// The cluster connection (delegated authentication and authorization, pod lookup).
    #[command(flatten)]
    pub delegation: DelegationArgs,
}

impl ApiserverArgs {
    /// Listen address.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.secure_port)
    }
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
}

/// Key prefix of our objects in etcd (the cluster's etcd must not be shared with kube-apiserver's
/// `/registry`; the seed ran a dedicated etcd).
pub const ETCD_PREFIX: &str = "/coredump.fujitsu.com";

/// The TLS material of the etcd connection. `https://` endpoints need `--etcd-cafile`; a plain
/// `http://` endpoint with TLS flags is a mistake worth refusing (the certificates would be
/// silently unused and the metadata would travel in clear text).
fn etcd_tls(args: &ApiserverArgs) -> anyhow::Result<Option<EtcdTls>> {
    let https = args.etcd_servers.iter().any(|e| e.starts_with("https://"));
    let http = args.etcd_servers.iter().any(|e| !e.starts_with("https://"));
    let Some(ca) = &args.etcd_cafile else {
        if https {
            bail!("--etcd-servers uses https: --etcd-cafile is required");
        }
        if args.etcd_certfile.is_some() {
            bail!("--etcd-certfile needs --etcd-cafile and https --etcd-servers");
        }
        return Ok(None);
    };
    if http {
        bail!(
            "--etcd-cafile is set but --etcd-servers {} is not https",
            args.etcd_servers.join(",")
        );
    }
    let identity = match (&args.etcd_certfile, &args.etcd_keyfile) {
        (Some(cert), Some(key)) => {
            Some((read(cert, "--etcd-certfile")?, read(key, "--etcd-keyfile")?))
        }
        _ => None,
    };
    Ok(Some(EtcdTls {
        ca_pem: read(ca, "--etcd-cafile")?,
        identity,
    }))
}

/// Opens the metadata store: etcd when `--etcd-servers` is given (compacted in the
/// background), else the embedded store.
async fn metadata_store(
    args: &ApiserverArgs,
    background: &mut BackgroundTasks,
) -> anyhow::Result<Arc<dyn MetadataStore>> {
    if !args.etcd_servers.is_empty() {
        let options = EtcdOptions {
            tls: etcd_tls(args)?,
            ..EtcdOptions::default()
        };
        let store: Arc<dyn MetadataStore> =
            Arc::new(connect_etcd(&args.etcd_servers, options).await?);
        if !args.etcd_compaction_interval.is_zero() {
            background.0.push(tokio::spawn(crate::compaction::run(
                store.clone(),
                args.etcd_compaction_interval,
            )));
        }
        return Ok(store);
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating --data-dir {}", args.data_dir.display()))?;
    let db = args.data_dir.join("metadata.redb");
    let store = RedbStore::open(&db)
        .with_context(|| format!("opening the metadata store {}", db.display()))?;
    Ok(Arc::new(store))
}

/// How long the API server keeps trying to reach etcd at start before it gives up.
const ETCD_CONNECT_PATIENCE: Duration = Duration::from_secs(120);

/// Connects to etcd, retrying (0.5 s doubling to 5 s) for [`ETCD_CONNECT_PATIENCE`]: installed
/// together, etcd and its Service's name are often not there yet when the API server starts,
/// and exiting made kubelet restart it once or twice per fresh install (10-20 s each).
async fn connect_etcd(servers: &[String], options: EtcdOptions) -> anyhow::Result<EtcdStore> {
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        match EtcdStore::connect_with(servers, ETCD_PREFIX, options.clone()).await {
            Ok(store) => return Ok(store),
            Err(e) if start.elapsed() < ETCD_CONNECT_PATIENCE => {
                tracing::warn!(error = %e, servers = %servers.join(","), retry_in = ?delay, "etcd not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "connecting to etcd at {} (for {:?})",
                        servers.join(","),
                        ETCD_CONNECT_PATIENCE
                    )
                });
            }
        }
    }
}

/// Builds the server configuration (stores opened, certificates loaded) with this blob store.
pub async fn build(
    args: &ApiserverArgs,
    blobs: Arc<dyn BlobStore>,
) -> anyhow::Result<ServerConfig> {
    let (Some(cert), Some(key)) = (&args.tls_cert_file, &args.tls_private_key_file) else {
        bail!("--tls-cert-file and --tls-private-key-file are required");
    };
    let tls = crate::tls::server_config(
        &read(cert, "--tls-cert-file")?,
        &read(key, "--tls-private-key-file")?,
    )
    .context("loading the serving certificate")?;
    let mut background = BackgroundTasks::default();
    let meta = metadata_store(args, &mut background).await?;
    let client_ca = match &args.client_ca_file {
        Some(ca) => Some(read(ca, "--client-ca-file")?),
        None => None,
    };
    let registry = Registry::new(meta, blobs).with_signature_retention(args.keep_per_signature.0);
    if args.delegation.enabled() {
        let pem = client_ca
            .map(|b| String::from_utf8(b).context("--client-ca-file is not PEM text"))
            .transpose()?;
        let mut d = crate::delegation::start(&args.delegation, args.admin_groups.clone(), pem)
            .await
            .context("delegating authentication and authorization to kube-apiserver")?;
        background.0.append(&mut d.background.0);
        let auth = AuthLayerState {
            authenticator: d.authenticator.clone(),
            authorizer: d.authorizer.clone(),
        };
        let mut state = AppState::new(registry, auth);
        state.pods = d.pods.clone();
        state.node_bound_users = Arc::from(args.node_bound_users.clone());
        return Ok(ServerConfig {
            bind: args.listen_addr(),
            tls: Arc::new(tls),
            state,
            background,
        });
    }
    let authenticator: Arc<dyn Authenticator> = match client_ca {
        Some(pem) => {
            Arc::new(ClientCertAuthenticator::from_pem(&pem).context("loading --client-ca-file")?)
        }
        None => {
            tracing::warn!("no --client-ca-file: every API request will be refused with 401");
            Arc::new(UnionAuthenticator(Vec::new()))
        }
    };
    let auth = AuthLayerState {
        authenticator,
        authorizer: Arc::new(AllowGroupsAuthorizer::new(args.admin_groups.clone())),
    };
    Ok(ServerConfig {
        bind: args.listen_addr(),
        tls: Arc::new(tls),
        state: AppState::new(registry, auth),
        background,
    })
}

/// Runs the API server with this blob store until `shutdown` completes.
pub async fn run_with(
    args: ApiserverArgs,
    blobs: Arc<dyn BlobStore>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = build(&args, blobs).await?;
    crate::serve(config, shutdown)
        .await
        .context("serving the API")
}

/// The `apiserver` role: blobs under `--local-path` or in the `--blob-store` bucket, metadata
/// in etcd or the embedded store, served until `shutdown` completes.
pub async fn run(args: ApiserverArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let blobs = args.blob_store.open_or_else(|| match args.backend_kind {
        BackendKind::Local => anyhow::Ok(Arc::new(
            FsBlobStore::new(args.local_path.clone())
                .with_context(|| format!("opening --local-path {}", args.local_path.display()))?,
        ) as Arc<dyn BlobStore>),
    })?;
    run_with(args, blobs, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ApiserverArgs,
    }

    #[test]
    fn seed_flags_parse() {
        let cli = Cli::try_parse_from([
            "x",
            "--tls-cert-file=/c",
            "--tls-private-key-file=/k",
            "--local-path=/data",
            "--backend-kind=local",
            "--etcd-servers=http://a:2379,http://b:2379",
            "--secure-port=8443",
            "--admin-groups=system:masters,ops",
        ])
        .unwrap();
        let a = cli.args;
        assert_eq!(a.local_path, PathBuf::from("/data"));
        assert_eq!(a.backend_kind, BackendKind::Local);
        assert_eq!(a.etcd_servers, vec!["http://a:2379", "http://b:2379"]);
        assert_eq!(a.listen_addr(), "0.0.0.0:8443".parse().unwrap());
        assert_eq!(a.admin_groups, vec!["system:masters", "ops"]);
    }

    #[test]
    fn defaults() {
        let a = Cli::try_parse_from(["x"]).unwrap().args;
        assert_eq!(a.secure_port, 443);
        assert_eq!(a.admin_groups, vec!["system:masters"]);
        assert!(a.etcd_servers.is_empty());
        assert!(Cli::try_parse_from(["x", "--backend-kind=s3"]).is_err());
        assert_eq!(
            a.blob_store.blob_store,
            coredump_objstore::BlobStoreSelector::Local
        );
        let a = Cli::try_parse_from(["x", "--blob-store=s3://cores/prod"])
            .unwrap()
            .args;
        assert_eq!(a.blob_store.blob_store.to_string(), "s3://cores/prod");
        let a = Cli::try_parse_from(["x", "--blob-store=gs://cores"])
            .unwrap()
            .args;
        assert_eq!(a.blob_store.blob_store.to_string(), "gs://cores");
        assert!(Cli::try_parse_from(["x", "--blob-store=file:///cores"]).is_err());
    }

    #[tokio::test]
    async fn missing_tls_files_and_unreachable_etcd_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Cli::try_parse_from(["x"]).unwrap().args;
        a.data_dir = dir.path().join("data");
        let blobs: Arc<dyn BlobStore> = Arc::new(NoBlobs);
        let err = build(&a, blobs.clone()).await.err().unwrap();
        assert_eq!(
            err.to_string(),
            "--tls-cert-file and --tls-private-key-file are required"
        );
        a.tls_cert_file = Some(dir.path().join("missing.pem"));
        a.tls_private_key_file = Some(dir.path().join("missing-key.pem"));
        let err = build(&a, blobs).await.err().unwrap();
        assert!(
            err.to_string().starts_with("reading --tls-cert-file"),
            "{err}"
        );
    }

    struct NoBlobs;
    impl BlobStore for NoBlobs {
        fn put_bytes(
            &self,
            _: &coredump_store::BlobPath,
            _: &[u8],
        ) -> Result<u64, coredump_store::StoreError> {
            Ok(0)
        }
        fn put_file(
            &self,
            _: &coredump_store::BlobPath,
            _: &std::path::Path,
        ) -> Result<u64, coredump_store::StoreError> {
            Ok(0)
        }
        fn open(
            &self,
            p: &coredump_store::BlobPath,
        ) -> Result<Box<dyn std::io::Read + Send>, coredump_store::StoreError> {
            Err(coredump_store::StoreError::Invalid {
                what: "blob",
                value: p.file.clone(),
            })
        }
        fn size(
            &self,
            _: &coredump_store::BlobPath,
        ) -> Result<Option<u64>, coredump_store::StoreError> {
            Ok(None)
        }
        fn list(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
        ) -> Result<Vec<coredump_store::BlobInfo>, coredump_store::StoreError> {
            Ok(Vec::new())
        }
        fn delete(&self, _: &coredump_store::BlobPath) -> Result<(), coredump_store::StoreError> {
            Ok(())
        }
        fn delete_pod(&self, _: &str, _: &str) -> Result<usize, coredump_store::StoreError> {
            Ok(0)
        }
        fn namespace_usage(&self, _: &str) -> Result<u64, coredump_store::StoreError> {
            Ok(0)
        }
    }
}
