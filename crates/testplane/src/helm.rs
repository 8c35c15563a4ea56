//! Helm's CLI for the chart tests: `helm` built from its Go module by
//! `scripts/control-plane/build.sh helm`, and a command line that talks to one control plane
//! with its own scratch homes (no user's `~/.config/helm`, repositories or plugins leak in).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::control_plane::ControlPlane;
use crate::error::HarnessError;

/// The `helm` binary, built once per process (cached across processes by the script).
pub fn helm_binary() -> Result<PathBuf, HarnessError> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    crate::binaries::built_once(&BINARY, "helm", "helm")
}

/// `helm` against `cp` (its admin kubeconfig), with Helm's cache, configuration and data homes
/// under `home` (a test's scratch directory), not started.
pub fn helm_command(cp: &ControlPlane, home: &Path) -> Result<Command, HarnessError> {
    let mut command = Command::new(helm_binary()?);
    command
        .env("KUBECONFIG", cp.kubeconfig())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("HELM_DRIVER")
        .env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT");
    Ok(command)
}
