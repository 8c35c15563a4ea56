//! Flags of `coredump-detector gc`, parsed once. The seed's `--gc-threshold=30m` is kept, with
//! the `--local-path` and `--backend-kind` of the other roles; retention by age and by size is
//! off unless asked for.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use coredump_common::{BackendKind, parse_bytes, parse_duration};
use coredump_objstore::BlobStoreSelector;

/// The state file of a GC whose blobs are in a bucket, unless `--state-file` says otherwise
/// (the `deploy` manifest mounts the GC pod's own volume at its directory).
pub const BUCKET_STATE_FILE: &str = "/var/lib/coredump-gc/state.json";

/// Flags of the `gc` role.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Delete the cores, Coredumps and CoredumpEndpoint of a pod (by UID) or namespace gone
    /// longer than this (Go duration: 30m, 1h30m, 90s).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub gc_threshold: Duration,
    /// Time between two collections.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub interval: Duration,
    /// Also delete crashes older than this, whatever their pod (off by default; 0 = off).
    #[arg(long, value_parser = parse_duration)]
    pub max_age: Option<Duration>,
    /// Also keep each namespace's blobs under this size by deleting its oldest crashes
    /// (Kubernetes quantity, e.g. 10Gi; off by default).
    #[arg(long, value_parser = parse_bytes)]
    pub max_namespace_size: Option<u64>,
    /// The seed's flag, kept so its command lines parse: `local`, its only value, is the
    /// filesystem under `--local-path`, the same as `--blob-store local`; a bucket given to
    /// `--blob-store` is used instead (the `deploy` manifest passes this flag only with
    /// `--local-path`).
    #[arg(long, value_enum, default_value_t = BackendKind::Local)]
    pub backend_kind: BackendKind,
    /// Root of the blobs, shared with the agent and the API server.
    #[arg(long, default_value = "/var/lib/coredump-detector/cores")]
    pub local_path: PathBuf,
    /// `--blob-store local|s3://BUCKET[/PREFIX]` and the S3 client's flags (with a bucket,
    /// `--local-path` is not used at all; see `--state-file` for where the state goes).
    #[command(flatten)]
    pub blob_store: coredump_objstore::BlobStoreArgs,
    /// Where "gone since" times are kept across restarts (default:
    /// `<local-path>/.coredump-gc/state.json` with the filesystem store, on the volume the state
    /// is about; with a bucket there is no such volume, and the default is
    /// `/var/lib/coredump-gc/state.json`, which `deploy` backs with the pod's own volume).
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Log what would be deleted, delete nothing, and leave the state file alone.
    #[arg(long)]
    pub dry_run: bool,
    /// Run one collection and exit.
    #[arg(long)]
    pub once: bool,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9103")]
    pub metrics_bind_address: SocketAddr,
    /// kubeconfig to use instead of the in-cluster service account (or $KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

impl Args {
    /// The state file in effect: `--state-file`, else beside the blobs of a filesystem store,
    /// else [`BUCKET_STATE_FILE`] (a GC collecting a bucket may have no `--local-path` volume
    /// at all, and must not write under a directory it does not own).
    pub fn state_path(&self) -> PathBuf {
        match (&self.state_file, &self.blob_store.blob_store) {
            (Some(path), _) => path.clone(),
            (None, BlobStoreSelector::Local) => {
                self.local_path.join(".coredump-gc").join("state.json")
            }
            (None, BlobStoreSelector::Bucket { .. }) => PathBuf::from(BUCKET_STATE_FILE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_deploy_manifest_flags_parse() {
        let a = Cli::try_parse_from([
            "gc",
            "--gc-threshold=30m",
            "--local-path=/coredump",
            "--backend-kind=local",
        ])
        .unwrap()
        .args;
        assert_eq!(a.gc_threshold, Duration::from_secs(1800));
        assert_eq!(
            a.state_path(),
            PathBuf::from("/coredump/.coredump-gc/state.json")
        );
        assert_eq!((a.max_age, a.max_namespace_size), (None, None));
        assert!(!a.dry_run);
        let a = Cli::try_parse_from([
            "gc",
            "--max-age=168h",
            "--max-namespace-size=10Gi",
            "--dry-run",
        ])
        .unwrap()
        .args;
        assert_eq!(a.max_age, Some(Duration::from_secs(168 * 3600)));
        assert_eq!(a.max_namespace_size, Some(10 << 30));
        assert!(a.dry_run);
        assert!(Cli::try_parse_from(["gc", "--gc-threshold=30"]).is_err());
    }

    #[test]
    fn a_bucket_keeps_the_state_off_the_local_path() {
        let a = Cli::try_parse_from(["gc", "--blob-store=s3://cores/a"])
            .unwrap()
            .args;
        assert_eq!(a.state_path(), PathBuf::from(BUCKET_STATE_FILE));
        let a = Cli::try_parse_from(["gc", "--blob-store=s3://cores", "--state-file=/s/x.json"])
            .unwrap()
            .args;
        assert_eq!(a.state_path(), PathBuf::from("/s/x.json"));
    }
}
