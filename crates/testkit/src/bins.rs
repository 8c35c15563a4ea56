//! Finds binaries of this workspace from tests in any crate. `CARGO_BIN_EXE_*` only covers the
//! test's own package, so we look next to the running test executable (`target/<profile>/`)
//! and build the binary with cargo if it is missing.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/` of the running test binary (which lives in `target/<profile>/deps/`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let deps = exe.parent().map(PathBuf::from).unwrap_or_default();
    if deps.ends_with("deps") {
        deps.parent().map(PathBuf::from).unwrap_or(deps)
    } else {
        deps
    }
}

/// Path of binary `bin` of package `package`, built on demand.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let path = target_dir().join(bin);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = target_dir().ends_with("release");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", package, "--bin", bin]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p {package} --bin {bin} failed"
        );
    }
    assert!(path.exists(), "{} missing after build", path.display());
    path
}

/// The `crasher` test program.
pub fn crasher() -> PathBuf {
    workspace_bin("coredump-testkit", "crasher")
}

/// The `coredump-detector` binary.
pub fn detector() -> PathBuf {
    workspace_bin("coredump-detector", "coredump-detector")
}
