//! One error type for everything the harness does, so a failing test says which step, which
//! file and which process went wrong, with the tail of that process's log.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why the control plane (or a standalone etcd) could not be built, started or used.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// `scripts/control-plane/build.sh` failed or printed something unexpected.
    #[error("{script}: {message}")]
    Build {
        /// The script that was run.
        script: PathBuf,
        /// What went wrong (exit status, stderr tail or the unparsable line).
        message: String,
    },
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("write", "create directory", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("spawn {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No free loopback port could be reserved.
    #[error("reserve a free loopback port: {source}")]
    Port {
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Generating a key or certificate failed.
    #[error("generate {what}: {source}")]
    Cert {
        /// Which key or certificate.
        what: String,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// A server process exited while we were waiting for it.
    #[error("{component} exited with {status} during startup; log {log}:\n{log_tail}")]
    Exited {
        /// "etcd" or "kube-apiserver".
        component: &'static str,
        /// Its exit status.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        log_tail: String,
    },
    /// A server did not become ready before the deadline.
    #[error(
        "{component} not ready after {waited:?} (last probe: {last_probe}); log {log}:\n{log_tail}"
    )]
    NotReady {
        /// "etcd" or "kube-apiserver".
        component: &'static str,
        /// How long we waited.
        waited: Duration,
        /// What the last readiness probe said.
        last_probe: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        log_tail: String,
    },
    /// A `kubectl` invocation failed.
    #[error("kubectl {args}: {status}: {stderr}")]
    Kubectl {
        /// The arguments after `--kubeconfig`/`--cache-dir`, joined by spaces.
        args: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error.
        stderr: String,
    },
    /// `kubectl <verb> -f -` of one object was refused (see [`crate::ControlPlane::submit`]).
    #[error("kubectl {verb} {object}: {status}: {stderr}")]
    Submit {
        /// `apply`, `create`, `replace`, ...
        verb: String,
        /// Which object: `Kind namespace/name` (or `Kind name` when cluster-scoped).
        object: String,
        /// kubectl's exit status.
        status: ExitStatus,
        /// Its standard error.
        stderr: String,
    },
    /// A command run inside a network namespace failed (see
    /// [`crate::NetworkNamespace::run`]).
    #[error("in the test's network namespace, {command}: {status}: {stderr}")]
    InNamespace {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error.
        stderr: String,
    },
    /// A condition polled with [`crate::eventually`] did not hold in time.
    #[error("{what}: not within {timeout:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we were allowed to wait.
        timeout: Duration,
    },
    /// An APIService did not report `Available=True` in time (see
    /// [`crate::aggregation::wait_available`]).
    #[error("APIService {apiservice} not Available after {waited:?}: {last_condition}")]
    NotAvailable {
        /// The APIService's name.
        apiservice: String,
        /// How long we waited.
        waited: Duration,
        /// Its last `Available` condition (`status reason message`), or why it was unreadable.
        last_condition: String,
    },
    /// The shared control plane failed to start (see [`crate::shared`]).
    #[error("shared control plane failed to start: {message}")]
    Shared {
        /// The first attempt's error message, with log tails.
        message: String,
    },
}

impl HarnessError {
    /// An [`HarnessError::Io`] for `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        HarnessError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
