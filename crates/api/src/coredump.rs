//! `Coredump`: one object per captured crash, created by the ingest (standalone or node agent).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ObjectMeta;

/// Plural resource name.
pub const COREDUMPS: &str = "coredumps";
/// Kind.
pub const COREDUMP_KIND: &str = "Coredump";
/// Pod segment of the blob path of a crash outside any pod (and of nothing else: pod UIDs
/// never take this form).
pub const HOST_POD_SEGMENT: &str = "host";

/// File name of the core of the Coredump named `name`. Together with the object's namespace and
/// pod UID it fixes every part of `status.blobPath` but the container directory, so a stored
/// object can name no other crash's core ([`crate::validation::coredump`]).
pub fn core_file_name(name: &str) -> String {
    format!("{name}.core.zst")
}

/// One captured crash.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "com.fujitsu.coredump.v1alpha1.Coredump")]
pub struct Coredump {
    /// Always `coredump.fujitsu.com/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// Always `Coredump`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Facts about the crash (immutable once recorded).
    pub spec: CoredumpSpec,
    /// What became of the core file.
    #[serde(default)]
    pub status: CoredumpStatus,
}

impl Coredump {
    /// The second segment of this crash's blob path: its pod UID, or [`HOST_POD_SEGMENT`].
    pub fn pod_segment(&self) -> &str {
        self.spec.pod_uid.as_deref().unwrap_or(HOST_POD_SEGMENT)
    }
}

/// Facts about the crash, as captured on the crash path and resolved by the ingest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "com.fujitsu.coredump.v1alpha1.CoredumpSpec")]
pub struct CoredumpSpec {
    /// Node (host name) where the crash happened.
    #[serde(default)]
    pub node_name: String,
    /// Pod name, when the process ran in a known pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Pod UID (from the cgroup path), when the process ran in a pod.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "podUID")]
    pub pod_uid: Option<String>,
    /// Container name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Container ID (from the cgroup path), e.g. `containerd://<64 hex>`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "containerID"
    )]
    pub container_id: Option<String>,
    /// Container image, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Process id in the initial pid namespace.
    pub pid: u32,
    /// Thread id (initial pid namespace) of the thread that crashed.
    #[serde(default)]
    pub tid: u32,
    /// Executable path as the kernel saw it.
    #[serde(default)]
    pub executable: String,
    /// Command line (bounded; arguments may be truncated).
    #[serde(default)]
    pub command_line: Vec<String>,
    /// Signal number that caused the dump.
    pub signal: i32,
    /// Signal name, e.g. `SIGSEGV`.
    #[serde(default)]
    pub signal_name: String,
    /// RFC 3339 time of the crash.
    #[schemars(extend("format" = "date-time"))]
    pub crash_time: String,
    /// Real uid of the process.
    #[serde(default)]
    pub uid: u32,
    /// Real gid of the process.
    #[serde(default)]
    pub gid: u32,
    /// QoS class of the pod (from the cgroup), when in a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_class: Option<String>,
    /// Threads in the core.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub threads: u32,
    /// Faulting address (hex) for signals that carry one (SIGSEGV, SIGBUS, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_address: Option<String>,
    /// GNU build-id of the main executable (hex): the key to its debug symbols.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "buildID")]
    pub build_id: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Outcome of storing the core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(inline)]
pub enum CoredumpState {
    /// The whole core is stored.
    #[default]
    Stored,
    /// Only a prefix is stored (size limit).
    Truncated,
    /// Not stored: the namespace is over its quota.
    QuotaExceeded,
    /// Not stored: free-space floor, opt-out, or rate limit (see `message`).
    Skipped,
    /// Not stored: too many concurrent crashes.
    RateLimited,
    /// Capture failed (see `message`).
    Failed,
    /// Stored once, then removed by retention by signature: the crash is still counted, its
    /// core gone to keep the first and the last cores of its signature (see `message`).
    Evicted,
}

impl CoredumpState {
    /// The wire name, e.g. `QuotaExceeded`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "Stored",
            Self::Truncated => "Truncated",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::Skipped => "Skipped",
            Self::RateLimited => "RateLimited",
            Self::Failed => "Failed",
            Self::Evicted => "Evicted",
        }
    }

    /// Every state, in declaration order (for OpenAPI enums).
    pub const ALL: [CoredumpState; 7] = [
        Self::Stored,
        Self::Truncated,
        Self::QuotaExceeded,
        Self::Skipped,
        Self::RateLimited,
        Self::Failed,
        Self::Evicted,
    ];
}

/// Why a crash has no complete core, for programs (metrics, alerts, `-o jsonpath`) where
/// `message` is for people: Kubernetes' `reason`/`message` pair. Decided where the core was
/// given up (the crash path, the agent's policy, the ingest, retention), never parsed from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(inline)]
pub enum CoredumpReason {
    /// The node's free-space floor was reached, before or during the dump.
    DiskFloor,
    /// The core was larger than the size limit (`--max-core-size`).
    SizeLimit,
    /// Reading the core from the kernel failed part way.
    ReadError,
    /// Too many crashes were being captured at once on the node.
    TooManyCrashes,
    /// The pod or its namespace was over its crash-loop limits.
    CrashLoop,
    /// The pod or its namespace opted out (label or annotation).
    OptedOut,
    /// The crash's pod could not be found, so no tenant may read its memory.
    PodUnresolved,
    /// The namespace is over its disk quota.
    QuotaExceeded,
    /// The capture process died before it finished.
    CaptureDied,
    /// The blob store had no room or no answer until the wait limit.
    StoreUnavailable,
    /// The capture failed for another reason (see `message`).
    CaptureError,
    /// Removed by retention by signature after it was stored.
    Retention,
}

impl CoredumpReason {
    /// The wire name, e.g. `DiskFloor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DiskFloor => "DiskFloor",
            Self::SizeLimit => "SizeLimit",
            Self::ReadError => "ReadError",
            Self::TooManyCrashes => "TooManyCrashes",
            Self::CrashLoop => "CrashLoop",
            Self::OptedOut => "OptedOut",
            Self::PodUnresolved => "PodUnresolved",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::CaptureDied => "CaptureDied",
            Self::StoreUnavailable => "StoreUnavailable",
            Self::CaptureError => "CaptureError",
            Self::Retention => "Retention",
        }
    }

    /// The metric label form, e.g. `disk_floor`.
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::DiskFloor => "disk_floor",
            Self::SizeLimit => "size_limit",
            Self::ReadError => "read_error",
            Self::TooManyCrashes => "too_many_crashes",
            Self::CrashLoop => "crash_loop",
            Self::OptedOut => "opted_out",
            Self::PodUnresolved => "pod_unresolved",
            Self::QuotaExceeded => "quota_exceeded",
            Self::CaptureDied => "capture_died",
            Self::StoreUnavailable => "store_unavailable",
            Self::CaptureError => "capture_error",
            Self::Retention => "retention",
        }
    }

    /// Every reason, in declaration order (for OpenAPI enums).
    pub const ALL: [CoredumpReason; 12] = [
        Self::DiskFloor,
        Self::SizeLimit,
        Self::ReadError,
        Self::TooManyCrashes,
        Self::CrashLoop,
        Self::OptedOut,
        Self::PodUnresolved,
        Self::QuotaExceeded,
        Self::CaptureDied,
        Self::StoreUnavailable,
        Self::CaptureError,
        Self::Retention,
    ];
}

/// What became of the core file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "com.fujitsu.coredump.v1alpha1.CoredumpStatus")]
pub struct CoredumpStatus {
    /// Outcome.
    pub state: CoredumpState,
    /// Why the core is not (all) there, for programs; absent when it is stored whole (and on
    /// records written before reasons existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CoredumpReason>,
    /// Human-readable detail for anything but `Stored`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Bytes of core the kernel wrote (all of them, also those dropped by a size limit).
    #[serde(default)]
    pub raw_size: u64,
    /// Decompressed size of the stored core: the `Content-Length` of the `core` subresource.
    /// Less than `rawSize` when truncated, 0 when nothing was stored.
    #[serde(default)]
    pub core_size: u64,
    /// Bytes stored (compressed), 0 if nothing stored.
    #[serde(default)]
    pub stored_size: u64,
    /// SHA-256 (hex) of the raw core as stored (the prefix when truncated).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Compression of the stored blob (`zstd`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub compression: String,
    /// Blob location relative to the store root (`<namespace>/<podUID>/<container>/<file>`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub blob_path: String,
    /// Crash signature: a stable hash of the crashing thread's top frames (ASLR- and
    /// build-path-independent), the same for every crash of one bug. Also the label
    /// `coredump.fujitsu.com/signature`, to select the crashes of one bug.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
    /// The symbolized backtrace and mapped modules, when the core could be analysed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<crate::analysis::Analysis>,
    /// For a `RateLimited` summary: how many crashes of the pod over its crash-loop limits it
    /// stands for, the one whose facts it shows included (their cores were not kept, nor a
    /// record each); 0 for the record of a single crash.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub suppressed_crashes: u64,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_match_serde() {
        for state in CoredumpState::ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }

    #[test]
    fn round_trips_with_wire_names() {
        let json = serde_json::json!({
            "apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "Coredump",
            "metadata": {"name": "c", "namespace": "n"},
            "spec": {"nodeName": "node1", "podUID": "u", "containerID": "containerd://x", "pid": 7,
                     "signal": 6, "crashTime": "2024-05-01T10:00:00Z", "commandLine": ["a", "b"]},
            "status": {"state": "Stored", "coreSize": 10, "blobPath": "n/u/app/c.core.zst"}
        });
        let c: Coredump = serde_json::from_value(json).unwrap();
        assert_eq!(c.spec.pod_uid.as_deref(), Some("u"));
        assert_eq!(c.spec.container_id.as_deref(), Some("containerd://x"));
        assert_eq!(c.status.core_size, 10);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["spec"]["podUID"], "u");
        assert_eq!(back["status"]["blobPath"], "n/u/app/c.core.zst");
        assert_eq!(back["spec"]["commandLine"], serde_json::json!(["a", "b"]));
    }
}
