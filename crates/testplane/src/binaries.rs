//! Finds the server binaries by running `scripts/control-plane/build.sh` once per process: it
//! builds kube-apiserver (and etcd) from Go modules into a cache outside the repository the first
//! time, and afterwards only prints the cached paths.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::error::HarnessError;

/// Paths of the control-plane binaries.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
}

/// The build script, relative to this crate.
pub(crate) fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/control-plane/build.sh")
}

/// Builds (first call, cached across processes) or looks up the binaries. The script's progress
/// goes to this process's stderr, so a slow cold build is visible in the test output.
pub fn binaries() -> Result<Binaries, HarnessError> {
    static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();
    let script = script();
    BINARIES
        .get_or_init(|| run_script(&script).map_err(|err| err.to_string()))
        .clone()
        .map_err(|message| HarnessError::Build { script, message })
}

fn run_script(script: &Path) -> Result<Binaries, HarnessError> {
    let build_error = |message: String| HarnessError::Build {
        script: script.to_path_buf(),
        message,
    };
    let output = Command::new(script)
        .arg("all")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| HarnessError::Spawn {
            program: script.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        return Err(build_error(format!(
            "{} (its stderr is above)",
            output.status
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_output(&stdout).map_err(build_error)
}

/// The binary the script prints as `key=/path` for `target` (`build.sh seaweedfs` prints
/// `weed=...`), built on the first call (cached across processes by the script) and kept in
/// `cell` for the rest of this process; a failed build is remembered too, so every test of the
/// binary fails with the build's error instead of building again.
pub(crate) fn built_once(
    cell: &OnceLock<Result<PathBuf, String>>,
    target: &str,
    key: &str,
) -> Result<PathBuf, HarnessError> {
    let script = script();
    cell.get_or_init(|| {
        let output = Command::new(&script)
            .arg(target)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run it: {e}"))?;
        if !output.status.success() {
            return Err(format!("{} (its stderr is above)", output.status));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let prefix = format!("{key}=");
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(PathBuf::from)
            .ok_or_else(|| format!("expected a {prefix} line, got {stdout:?}"))
    })
    .clone()
    .map_err(|message| HarnessError::Build { script, message })
}

/// Parses the script's `name=/path` lines.
fn parse_output(stdout: &str) -> Result<Binaries, String> {
    let mut kube_apiserver = None;
    let mut etcd = None;
    for line in stdout.lines() {
        match line.split_once('=') {
            Some(("kube-apiserver", path)) => kube_apiserver = Some(PathBuf::from(path)),
            Some(("etcd", path)) => etcd = Some(PathBuf::from(path)),
            _ => return Err(format!("unexpected output line {line:?}")),
        }
    }
    match (kube_apiserver, etcd) {
        (Some(kube_apiserver), Some(etcd)) => Ok(Binaries {
            kube_apiserver,
            etcd,
        }),
        _ => Err(format!(
            "expected kube-apiserver= and etcd= lines, got {stdout:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_paths() {
        let b =
            parse_output("kube-apiserver=/c/bin/kube-apiserver-v1\netcd=/usr/bin/etcd\n").unwrap();
        assert_eq!(b.kube_apiserver, Path::new("/c/bin/kube-apiserver-v1"));
        assert_eq!(b.etcd, Path::new("/usr/bin/etcd"));
    }

    #[test]
    fn rejects_missing_or_stray_lines() {
        assert!(
            parse_output("kube-apiserver=/x\n")
                .unwrap_err()
                .contains("expected")
        );
        assert!(
            parse_output("go: downloading x\n")
                .unwrap_err()
                .contains("unexpected")
        );
    }
}
