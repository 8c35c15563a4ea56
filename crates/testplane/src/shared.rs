//! One control plane per test binary, started on first use: starting kube-apiserver costs
//! seconds, so tests in one binary share it and isolate themselves with namespaces
//! ([`crate::ControlPlane::create_namespace`]).
//!
//! The instance lives in a `static`, whose destructor never runs: its processes die with the test
//! binary through the parent-death signal, and its scratch directory is removed by the next
//! instance's sweep of directories whose process is gone.

use std::sync::OnceLock;

use crate::control_plane::ControlPlane;
use crate::error::HarnessError;

/// The shared control plane of this process, started by the first caller. If startup failed,
/// every caller gets [`HarnessError::Shared`] with the first attempt's message (no retry).
pub fn shared() -> Result<&'static ControlPlane, HarnessError> {
    static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| ControlPlane::start().map_err(|err| err.to_string()))
        .as_ref()
        .map_err(|message| HarnessError::Shared {
            message: message.clone(),
        })
}
