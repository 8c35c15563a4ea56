//! The admin kubeconfig and the real `kubectl` run against it, each instance with its own
//! discovery cache directory so tests never see another instance's (or the user's) cache.

use std::io::{Seek, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

use crate::error::HarnessError;
use crate::pki::{ADMIN_USER, PkiFiles};

/// Writes a kubeconfig for `server` authenticating with the admin client certificate.
pub(crate) fn write_admin_kubeconfig(
    path: &Path,
    server: &str,
    pki: &PkiFiles,
) -> Result<(), HarnessError> {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "testplane",
            "cluster": {"server": server, "certificate-authority": pki.server_ca},
        }],
        "users": [{
            "name": ADMIN_USER,
            "user": {"client-certificate": pki.admin_cert, "client-key": pki.admin_key},
        }],
        "contexts": [{"name": "testplane", "context": {"cluster": "testplane", "user": ADMIN_USER}}],
        "current-context": "testplane",
    });
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| HarnessError::io("serialize", path, e.into()))?;
    std::fs::write(path, text).map_err(|e| HarnessError::io("write", path, e))
}

/// Runs `kubectl` with a fixed kubeconfig and cache directory.
#[derive(Clone, Debug)]
pub(crate) struct Kubectl {
    pub(crate) kubeconfig: PathBuf,
    pub(crate) cache_dir: PathBuf,
}

impl Kubectl {
    /// `kubectl --kubeconfig=… --cache-dir=… <args>`, not yet started.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--cache-dir={}", self.cache_dir.display()))
            .args(args)
            .stdin(Stdio::null())
            .env_remove("KUBECONFIG");
        command
    }

    /// Runs it to completion; a failure to start shows up as exit status 127 with the reason on
    /// stderr, like a shell would report it.
    pub(crate) fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap_or_else(|err| Output {
            status: ExitStatus::from_raw(127 << 8),
            stdout: Vec::new(),
            stderr: format!("cannot run kubectl: {err}").into_bytes(),
        })
    }

    /// Runs it to completion with `input` on stdin. The input goes through an unlinked temporary
    /// file rather than a pipe, so kubectl exiting early cannot fail a write halfway.
    pub(crate) fn output_with_input(
        &self,
        args: &[&str],
        input: &[u8],
    ) -> Result<Output, HarnessError> {
        let tmp = std::env::temp_dir();
        let mut file =
            tempfile::tempfile().map_err(|e| HarnessError::io("create a file in", &tmp, e))?;
        file.write_all(input)
            .and_then(|()| file.rewind())
            .map_err(|e| HarnessError::io("write kubectl's input to a file in", &tmp, e))?;
        self.command(args)
            .stdin(file)
            .output()
            .map_err(|source| HarnessError::Spawn {
                program: PathBuf::from("kubectl"),
                source,
            })
    }

    /// Runs it and returns stdout, or an error carrying stderr.
    pub(crate) fn run(&self, args: &[&str]) -> Result<String, HarnessError> {
        let output = self.output(args);
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(HarnessError::Kubectl {
                args: args.join(" "),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }
}

/// `Kind namespace/name` (or `Kind name`) of a Kubernetes object, for error messages.
pub(crate) fn describe_object(object: &serde_json::Value) -> String {
    let field = |value: &serde_json::Value| value.as_str().unwrap_or("?").to_string();
    let kind = field(&object["kind"]);
    let name = field(&object["metadata"]["name"]);
    match object["metadata"]["namespace"].as_str() {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_described_by_kind_namespace_and_name() {
        let pod = serde_json::json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "n"}});
        let role = serde_json::json!({"kind": "ClusterRole", "metadata": {"name": "r"}});
        assert_eq!(describe_object(&pod), "Pod n/p");
        assert_eq!(describe_object(&role), "ClusterRole r");
        assert_eq!(describe_object(&serde_json::json!([])), "? ?");
    }
}
