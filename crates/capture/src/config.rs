//! Handler configuration. `core_pattern` is limited to 127 bytes, so the pattern carries only the
//! binary path and the kernel's specifiers; everything else lives in `handler.json` beside the
//! installed handler binary, written atomically by whoever installs the handler.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::CaptureError;

/// File name of the configuration, in the directory of the installed handler binary.
pub const HANDLER_CONFIG: &str = "handler.json";

/// What to do with crashes of processes that are not in a Kubernetes pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum NonPodPolicy {
    /// Capture them like pod crashes (standalone's choice: this is one machine).
    #[default]
    Record,
    /// Drain and discard the core, leaving no trace but a counter in the log.
    Drop,
    /// Hand the crash to the `core_pattern` pipe installed before ours (e.g. systemd-coredump,
    /// [`HandlerConfig::forward_pattern`]); drop it when there is none. The pipe handler only:
    /// the coredump socket drops these crashes.
    Forward,
}

/// Limits and locations the crash path obeys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HandlerConfig {
    /// Spool directory: entries appear here as `<id>/` once complete.
    pub spool_dir: PathBuf,
    /// Cores larger than this keep only this prefix (`Truncated`).
    pub max_core_bytes: u64,
    /// Free bytes that must remain on the spool filesystem; below it nothing more is written.
    pub min_free_bytes: u64,
    /// Crashes compressed concurrently by handlers; more spool raw for the ingest to compress.
    pub max_compressing: u32,
    /// Crashes handled concurrently at all; beyond this, crashes are recorded `RateLimited`.
    pub max_handlers: u32,
    /// How long a crash waits for a handler slot before it is recorded `RateLimited`. The
    /// crashed process is held meanwhile, so this trades a slower pod restart in a storm for
    /// not losing the core.
    pub slot_wait_ms: u64,
    /// zstd level for inline compression.
    pub zstd_level: i32,
    /// zstd worker threads per compressing handler (0 = compress on the handler's own thread).
    pub zstd_workers: u32,
    /// Crashes outside pods.
    pub non_pod: NonPodPolicy,
    /// The previous `core_pattern`, when it was a pipe (`|/path args`), for
    /// [`NonPodPolicy::Forward`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_pattern: Option<String>,
    /// Per-pod and per-namespace crash and byte limits (the node agent sets them; standalone
    /// has no pods to limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<crate::limits::CrashLimits>,
}

/// zstd worker threads per compressing crash unless configured: two fewer than the CPUs this
/// process may use, at most 2 (0 compresses on the trailing thread itself, beside the hasher).
/// On a 2-core machine every extra thread competes with the hasher and the kernel's dump
/// writer: the capture benchmark (`--workers 0,1`, two runs in reversed order) finished a 1 GiB
/// core 0.97-1.05 s after releasing it with 0 workers and 1.16-1.7 s with 1, at 10.9 instead
/// of 17 MiB peak RSS, and held the process no longer (README, Benchmarks).
pub fn default_zstd_workers() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    u32::try_from(cpus.saturating_sub(2).min(2)).unwrap_or(0)
}

impl Default for HandlerConfig {
    fn default() -> Self {
        HandlerConfig {
            spool_dir: PathBuf::from("/var/lib/coredump-detector/spool"),
            max_core_bytes: 16 << 30,
            min_free_bytes: 1 << 30,
            max_compressing: 2,
            max_handlers: 32,
            slot_wait_ms: 10_000,
            zstd_level: 1,
            zstd_workers: default_zstd_workers(),
            non_pod: NonPodPolicy::Record,
            forward_pattern: None,
            limits: None,
        }
    }
}

impl HandlerConfig {
    /// Reads the configuration beside the handler binary `exe`. Bounded: a config larger than
    /// 64 KiB is refused.
    pub fn load_beside(exe: &Path) -> Result<HandlerConfig, CaptureError> {
        let path = exe
            .parent()
            .map(|dir| dir.join(HANDLER_CONFIG))
            .unwrap_or_else(|| PathBuf::from(HANDLER_CONFIG));
        Self::load(&path)
    }

    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<HandlerConfig, CaptureError> {
        let bytes = crate::fsutil::read_bounded(path, 64 << 10)?;
        serde_json::from_slice(&bytes).map_err(|source| CaptureError::Config {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the configuration atomically (temp file, fsync, rename).
    pub fn store(&self, path: &Path) -> Result<(), CaptureError> {
        let json = serde_json::to_vec_pretty(self).map_err(|source| CaptureError::Config {
            path: path.to_path_buf(),
            source,
        })?;
        crate::fsutil::write_atomic(path, &json)
    }
}
