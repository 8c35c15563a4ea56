//! One error type for the test node, naming the step, the file or the component that failed.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Why the node could not be built, started, installed or used.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A command failed.
    #[error("{command}: {status}: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// The end of its standard error.
        stderr: String,
    },
    /// The control plane, a process or a wait of the harness failed.
    #[error(transparent)]
    Harness(#[from] coredump_testplane::HarnessError),
    /// A component did not get ready.
    #[error("{what} not ready after {waited_s} s: {last}")]
    NotReady {
        /// What was awaited.
        what: String,
        /// Seconds waited.
        waited_s: u64,
        /// What the last check saw (with log tails where there are logs).
        last: String,
    },
    /// The shared node failed to start (see [`crate::shared`]).
    #[error("shared test node failed to start: {0}")]
    Shared(String),
}

impl NodeError {
    /// An [`NodeError::Io`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        NodeError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Runs `command` to completion; stdout, or [`NodeError::Command`] with stderr.
pub(crate) fn run(mut command: std::process::Command) -> Result<String, NodeError> {
    let line = format!("{command:?}");
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| NodeError::io("run", line.clone(), e))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        Err(NodeError::Command {
            command: line,
            status: output.status,
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        })
    }
}
