//! Flags of `coredump-detector agent`, parsed once. The DaemonSet of `coredump-detector deploy`
//! passes `--host-dir`, `--local-path`, `--backend-kind`, `--metrics-bind-address` and the
//! environment variables `NODE_NAME` (downward API), `NS_DISK_QUOTA` (the seed's name) and
//! `POD_NAMESPACE`; everything else has a default fit for production.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use coredump_capture::socket::CaptureMode;
use coredump_capture::{HandlerConfig, NonPodPolicy};

use coredump_common::{BackendKind, parse_bytes};

use crate::floor::{FreeFloor, KubeletConfig};

/// Flags of the `agent` role.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// kubelet's pod log directory: the tail of a crashed container's log is kept beside its
    /// core (the `log` subresource).
    #[arg(long, default_value = "/var/log/pods")]
    pub pod_log_dir: PathBuf,
    /// Host directory (a hostPath mounted at the same path): the handler binary the kernel
    /// runs, its configuration, the spool, and the record of the replaced core_pattern.
    #[arg(long, default_value = "/var/lib/coredump-detector")]
    pub host_dir: PathBuf,
    /// The seed's flag, kept so its command lines parse: `local`, its only value, is the
    /// filesystem under `--local-path`, the same as `--blob-store local`; a bucket given to
    /// `--blob-store` is used instead (the `deploy` manifest passes this flag only with
    /// `--local-path`).
    #[arg(long, value_enum, default_value_t = BackendKind::Local)]
    pub backend_kind: BackendKind,
    /// Root of the blobs, shared with the API server and the GC
    /// (`<root>/<namespace>/<podUID>/<container>/<file>`).
    #[arg(long, default_value = "/var/lib/coredump-detector/cores")]
    pub local_path: PathBuf,
    /// `--blob-store local|s3://BUCKET[/PREFIX]` and the S3 client's flags: with a bucket, cores
    /// are uploaded from the spool, which keeps each until its upload is complete and verified.
    #[command(flatten)]
    pub blob_store: coredump_objstore::BlobStoreArgs,
    /// Owner (`UID:GID`) of the directories and cores the agent stores, e.g. the user the API
    /// server and the GC run as; without it they stay root's (modes 0700 and 0600 either way).
    #[arg(long)]
    pub blob_owner: Option<coredump_store::fs_blob::Owner>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9102")]
    pub metrics_bind_address: SocketAddr,
    /// This node's name: the pod informer watches only pods bound to it.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// Disk quota per namespace in the blob store (Kubernetes quantity; the seed's `1GB` form
    /// too). A core that would exceed it is recorded as QuotaExceeded and not kept.
    #[arg(long, env = "NS_DISK_QUOTA", default_value = "1GB", value_parser = parse_bytes)]
    pub ns_disk_quota: u64,
    /// Crashes of processes outside every pod (`record` puts them in `--host-namespace`).
    #[arg(long, value_enum, default_value_t = NonPodPolicy::Forward)]
    pub non_pod: NonPodPolicy,
    /// Namespace of the records of non-pod crashes under `--non-pod=record`.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub host_namespace: String,
    /// This agent's pod (a pod's hostname is its name): at SIGTERM the agent asks whether the
    /// pod's DaemonSet still exists, to tell a restart (hand the kernel over to the pipe
    /// handler) from an uninstall (restore the previous core_pattern).
    #[arg(long, env = "HOSTNAME")]
    pub pod_name: Option<String>,
    /// Namespace of this agent's pod (downward API in the manifest).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default", hide = true)]
    pub pod_namespace: String,
    /// kubeconfig to use instead of the in-cluster service account (or $KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The crash path: kernel settings, limits, compression.
    #[command(flatten)]
    pub capture: CaptureFlags,
    /// Crash-loop limits per pod and namespace.
    #[command(flatten)]
    pub limits: crate::limits::LimitFlags,
    /// Longest wait for a crashed pod (or its container status) to appear in the informer
    /// cache before the crash is recorded with what is known (ms).
    #[arg(long, default_value_t = 30_000)]
    pub resolve_max_wait_ms: u64,
    /// How long after a crash a synced cache that lacks the pod is still assumed to lag (ms).
    #[arg(long, default_value_t = 10_000)]
    pub resolve_grace_ms: u64,
    /// Where the kernel's core settings are (`core_pattern`, `core_pipe_limit`); tests point it
    /// at a scratch directory.
    #[arg(long, default_value = "/proc/sys/kernel", hide = true)]
    pub proc_sys_kernel: PathBuf,
    /// How crashes reach the agent: `pipe` (the installed handler, one process per crash; a
    /// killed agent loses nothing), `socket` (the kernel's coredump socket, Linux >= 6.17: no
    /// process per crash, refusals before any byte; the agent must run in the host's mount
    /// namespace) or `auto` (socket when the kernel has it and accepts the pattern from here,
    /// else pipe, saying why).
    #[arg(long = "capture", default_value_t = CaptureMode::Pipe)]
    pub capture_mode: CaptureMode,
    /// Where the kernel lists its core_pattern modes (tests point it at a fake file).
    #[arg(long, default_value = coredump_capture::socket::CORE_MODES, hide = true)]
    pub core_modes: PathBuf,
    /// The machine-wide lock every owner of core_pattern takes (a host path the DaemonSet
    /// mounts, whatever `--host-dir`): a second agent or install on the node is refused.
    #[arg(long, default_value = coredump_capture::kernel::OWNER_LOCK, hide = true)]
    pub owner_lock: PathBuf,
    /// How often the spool is scanned (ms).
    #[arg(long, default_value_t = 100, hide = true)]
    pub spool_poll_ms: u64,
    /// How long (seconds after the crash) a core waits in the node spool for room on a full
    /// blob volume, or for an unreachable or refusing bucket, before the crash is recorded
    /// without it (state Failed, reason StoreUnavailable).
    #[arg(long, default_value_t = 600)]
    pub max_blob_wait_secs: u64,
    /// Free space the stored cores may not take from the blob volume (`auto`, a quantity or a
    /// percentage, as `--min-free`); below it cores wait in the spool as on a full volume.
    #[arg(long, default_value = "auto")]
    pub min_free_blobs: FreeFloor,
}

/// Flags of the crash path, shared by the two roles that install it (`agent` and `standalone`).
#[derive(Debug, Clone, clap::Args)]
pub struct CaptureFlags {
    /// kernel.core_pipe_limit while running (crashes piped at once; non-zero also keeps
    /// /proc/<pid> readable until the handler is done).
    #[arg(long, default_value_t = 64)]
    pub pipe_limit: u32,
    /// Keep at most this much of one core (larger cores are truncated).
    #[arg(long, default_value = "16Gi", value_parser = parse_bytes)]
    pub max_core_size: u64,
    /// Stop writing cores when the spool's filesystem has less free space than this: `auto`
    /// (5 % above kubelet's nodefs eviction threshold, at least 1Gi; 1Gi without kubelet in
    /// standalone), a quantity (`2Gi`) or a percentage of the filesystem (`15%`).
    #[arg(long, default_value = "auto")]
    pub min_free: FreeFloor,
    /// Where kubelet's `nodefs.available` eviction threshold is read, which `auto` floors sit
    /// above: `auto` (the kubelet running on the host: its flags, else its `--config` file) or
    /// a kubelet configuration file.
    #[arg(long, default_value = "auto")]
    pub kubelet_config: KubeletConfig,
    /// Crashes compressed at once on the crash path; more are spooled raw.
    #[arg(long, default_value_t = 2)]
    pub max_compressing: u32,
    /// Crashes handled at once; more are recorded as RateLimited without their core.
    #[arg(long, default_value_t = 32)]
    pub max_handlers: u32,
    /// How long a crash waits for a handler slot before it is recorded as RateLimited (ms).
    #[arg(long, default_value_t = 10_000)]
    pub slot_wait_ms: u64,
    /// zstd level.
    #[arg(long, default_value_t = 1)]
    pub zstd_level: i32,
    /// zstd worker threads per compressing crash (default: the CPUs this process may use less
    /// two, at most 2; 0 compresses on the capture's own thread).
    #[arg(long, default_value_t = coredump_capture::config::default_zstd_workers())]
    pub zstd_workers: u32,
}

impl CaptureFlags {
    /// A free-space floor in bytes for the filesystem of `path` (see [`crate::floor`]); a
    /// node agent assumes kubelet's default threshold when its configuration is unreadable.
    pub fn floor_bytes(&self, floor: FreeFloor, path: &Path, node_agent: bool) -> u64 {
        let kubelet = self.kubelet_config.thresholds(Path::new("/proc"));
        floor.bytes(path, &kubelet, node_agent)
    }

    /// The handler's configuration for these flags, its free-space floor `min_free_bytes`
    /// resolved by the caller ([`CaptureFlags::floor_bytes`]).
    pub fn handler_config(
        &self,
        spool_dir: PathBuf,
        non_pod: NonPodPolicy,
        forward_pattern: Option<String>,
        min_free_bytes: u64,
    ) -> HandlerConfig {
        HandlerConfig {
            spool_dir,
            max_core_bytes: self.max_core_size,
            min_free_bytes,
            max_compressing: self.max_compressing,
            max_handlers: self.max_handlers,
            slot_wait_ms: self.slot_wait_ms,
            zstd_level: self.zstd_level,
            zstd_workers: self.zstd_workers,
            non_pod,
            forward_pattern,
            limits: None,
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
        // The DaemonSet's arguments, as `coredump-detector deploy` renders them.
        let a = Cli::try_parse_from([
            "agent",
            "--host-dir=/var/lib/coredump-detector",
            "--local-path=/coredump",
            "--backend-kind=local",
            "--metrics-bind-address=0.0.0.0:9102",
            "--node-name=node-1",
            "--ns-disk-quota=1GB",
        ])
        .unwrap()
        .args;
        assert_eq!(a.local_path, PathBuf::from("/coredump"));
        assert_eq!(a.metrics_bind_address, "0.0.0.0:9102".parse().unwrap());
        assert_eq!(a.ns_disk_quota, 1_000_000_000);
        assert_eq!(a.non_pod, NonPodPolicy::Forward);
        assert_eq!(a.proc_sys_kernel, PathBuf::from("/proc/sys/kernel"));
        assert_eq!(a.capture_mode, CaptureMode::Pipe, "pipe unless asked");
        let a = Cli::try_parse_from(["agent", "--node-name=n", "--capture=auto"])
            .unwrap()
            .args;
        assert_eq!(a.capture_mode, CaptureMode::Auto);
        assert!(Cli::try_parse_from(["agent", "--node-name=n", "--capture=sockets"]).is_err());
        assert!(
            Cli::try_parse_from(["agent", "--node-name=n", "--ns-disk-quota=1X"]).is_err(),
            "a bad quota is refused at start"
        );
        let a = Cli::try_parse_from(["agent", "--node-name=n", "--non-pod=record"])
            .unwrap()
            .args;
        assert_eq!(a.non_pod, NonPodPolicy::Record);
    }
}
