//! One server process of a test on one loopback port with its scratch directory, which it can
//! lose (killed like a crash) and get back on the same port and data: what the harnesses of
//! fake-gcs-server and Azurite share.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::process::{ManagedProcess, on_a_free_port};

/// Starts a server of `binary` in directory `dir` on `port` and waits until it serves.
pub(crate) type Launch =
    fn(binary: &Path, dir: &Path, port: u16) -> Result<ManagedProcess, HarnessError>;

/// A running server, its port and its directory (removed on drop, after the process is killed).
#[derive(Debug)]
pub(crate) struct Instance {
    // Field order is drop order: the process before the directory holding its data and log.
    process: ManagedProcess,
    pub binary: PathBuf,
    pub port: u16,
    launch: Launch,
    dir: TempDir,
}

impl Instance {
    /// Starts `binary` through `launch` in a fresh scratch directory named after `kind`, on a
    /// free port.
    pub fn start(kind: &str, binary: PathBuf, launch: Launch) -> Result<Self, HarnessError> {
        let dir = crate::workdir::instance_dir(kind)?;
        let (process, port) = on_a_free_port(|port| launch(&binary, dir.path(), port))?;
        Ok(Self {
            process,
            binary,
            port,
            launch,
            dir,
        })
    }

    /// The `data` directory inside its scratch directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Kills it (SIGKILL, like a crash); the port refuses connections until
    /// [`Instance::restart`].
    pub fn kill(&self) {
        self.process.kill();
    }

    /// Kills it and starts it again on the same directory and port.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.process.kill();
        self.process = (self.launch)(&self.binary, self.dir.path(), self.port)?;
        Ok(())
    }
}
