//! Caddy for the download benchmark: built from its Go module by
//! `scripts/control-plane/build.sh caddy`. Its `file_server` is Go's `net/http` over
//! `crypto/tls`, the baseline our `core` download is measured against.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::error::HarnessError;

/// The `caddy` binary, built once per process (cached across processes by the script).
pub fn caddy_binary() -> Result<PathBuf, HarnessError> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    crate::binaries::built_once(&BINARY, "caddy", "caddy")
}
