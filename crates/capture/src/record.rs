//! `meta.json`: what the crash path records about one crash. It is the contract between the
//! handler (or the socket server) that writes a spool entry and the ingest that publishes it, so
//! every field is plain data and new fields must be optional.

use serde::{Deserialize, Serialize};

/// What became of the core on the crash path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaptureState {
    /// The whole core is stored.
    Stored,
    /// A prefix is stored: the size limit or the free-space floor was reached mid-dump.
    Truncated,
    /// Nothing stored: below the free-space floor before the dump started, or opted out.
    Skipped,
    /// Nothing stored: too many crashes were being handled at once.
    RateLimited,
    /// Nothing usable stored: an error (see `reason`).
    Failed,
}

impl CaptureState {
    /// Whether a core file accompanies the record.
    pub fn has_core(self) -> bool {
        matches!(self, CaptureState::Stored | CaptureState::Truncated)
    }
}

/// How the core file of a spool entry is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoreEncoding {
    /// `core.zst`: one zstd frame.
    Zstd,
    /// `core.raw`: uncompressed (possibly sparse); the ingest compresses it. Used when the
    /// handler was over its compression concurrency bound.
    Raw,
    /// No core file.
    None,
}

/// Pod identity derived from the crashing process's cgroup, when it ran in a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    /// Pod UID (canonical form with dashes).
    pub pod_uid: String,
    /// QoS class as named by Kubernetes (`Guaranteed`, `Burstable`, `BestEffort`).
    pub qos: String,
    /// Container ID in pod-status form (`containerd://<id>`), when the process ran in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

/// Everything the crash path knows about one crash (`meta.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashRecord {
    /// Spool entry id (also the entry's directory name).
    pub id: String,
    /// Process id in the initial pid namespace (`%P`).
    pub pid: u32,
    /// Thread id in the initial pid namespace (`%I`).
    pub tid: u32,
    /// Signal number (`%s`).
    pub signal: i32,
    /// Crash time, seconds since the epoch (`%t`).
    pub time: i64,
    /// Real uid (`%u`).
    pub uid: u32,
    /// Real gid (`%g`).
    pub gid: u32,
    /// Node host name.
    pub hostname: String,
    /// Process name (`/proc/<pid>/comm`).
    pub comm: String,
    /// Executable path (`/proc/<pid>/exe` link text, possibly ` (deleted)`).
    pub exe: String,
    /// Command line arguments, bounded in count and length.
    pub cmdline: Vec<String>,
    /// Raw `/proc/<pid>/cgroup` (bounded).
    pub cgroup: String,
    /// Pod identity when the process ran in a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// Bytes the kernel wrote into the pipe (including any dropped past a limit).
    pub raw_size: u64,
    /// Bytes of core kept (the prefix length when truncated).
    pub kept_size: u64,
    /// Bytes of the core file in the spool entry.
    pub stored_size: u64,
    /// SHA-256 of the kept bytes, hex.
    pub sha256: String,
    /// Encoding of the core file.
    pub encoding: CoreEncoding,
    /// Outcome.
    pub state: CaptureState,
    /// Why the state is not `Stored`, for programs (metrics, the `Coredump`'s `status.reason`);
    /// absent in entries written before causes existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<coredump_api::CoredumpReason>,
    /// Why the state is not `Stored`, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Milliseconds from handler start until the kernel's pipe was drained and closed (how long
    /// the crashed process was held).
    pub held_ms: u64,
    /// Milliseconds from handler start until the entry was published.
    pub done_ms: u64,
    /// For a `RateLimited` summary of the crashes of one pod that were over its limits (see
    /// [`crate::limits`]): how many crashes it stands for, the one whose facts it shows
    /// included; 0 for the record of a single crash.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suppressed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl CrashRecord {
    /// File name of the core in the entry for this record's encoding.
    pub fn core_file_name(&self) -> Option<&'static str> {
        match self.encoding {
            CoreEncoding::Zstd => Some(CORE_ZST),
            CoreEncoding::Raw => Some(CORE_RAW),
            CoreEncoding::None => None,
        }
    }
}

/// Name of the compressed core in a spool entry.
pub const CORE_ZST: &str = "core.zst";
/// Name of an uncompressed core in a spool entry.
pub const CORE_RAW: &str = "core.raw";
/// Name of the record in a spool entry.
pub const META_JSON: &str = "meta.json";

/// Kernel signal number to its conventional name (`SIGSEGV`), `SIG<n>` when unknown.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return format!("SIG{signal}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_through_json() {
        let record = CrashRecord {
            id: "1-2-3".into(),
            pid: 2,
            tid: 3,
            signal: 11,
            time: 1_700_000_000,
            uid: 0,
            gid: 0,
            hostname: "node".into(),
            comm: "crasher".into(),
            exe: "/bin/crasher".into(),
            cmdline: vec!["crasher".into(), "--x".into()],
            cgroup: "0::/\n".into(),
            pod: Some(PodRef {
                pod_uid: "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11".into(),
                qos: "Burstable".into(),
                container_id: None,
            }),
            raw_size: 10,
            kept_size: 10,
            stored_size: 5,
            sha256: "ab".into(),
            encoding: CoreEncoding::Zstd,
            state: CaptureState::Stored,
            cause: None,
            reason: String::new(),
            held_ms: 1,
            done_ms: 2,
            suppressed: 0,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains("\"encoding\":\"zstd\""), "{json}");
        let back: CrashRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.core_file_name(), Some(CORE_ZST));
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(6), "SIGABRT");
        assert_eq!(signal_name(64), "SIG64");
    }
}
