//! The project installed on the node the way users install it: `sh deploy/deploy.sh NAMESPACE
//! SERVICE DIR` with only the image and host-path flags this node needs (its images' names, host
//! paths under the node's directory), then `kubectl create -f DIR/coredump.yaml`, then every
//! workload rolled out (each pod Ready through its own probes) and the APIService Available.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{NodeError, run};
use crate::node::Node;

/// One install of the manifest.
#[derive(Debug, Clone)]
pub struct Install {
    /// Its namespace.
    pub namespace: String,
    /// The API server's Service (and Deployment) name.
    pub service: String,
    /// The manifest (`DIR/coredump.yaml`).
    pub manifest: PathBuf,
    /// The agent's host directory on the node (`--host-dir`).
    pub host_dir: PathBuf,
    /// The cores' host directory (`--local-path`).
    pub local_path: PathBuf,
}

/// The workloads `deploy` writes, for `kubectl rollout status`.
pub fn workloads(service: &str) -> [String; 4] {
    [
        "statefulset/etcd".to_string(),
        format!("deployment/{service}"),
        "deployment/coredump-gc".to_string(),
        "daemonset/kcdt-ds".to_string(),
    ]
}

impl Node {
    /// Writes the manifest for `namespace` (Service `coredump`) with `extra_flags` of
    /// `coredump-detector deploy` added (one naming a flag this node passes, `--image=X` say,
    /// replaces the node's), and creates it. Does not wait (see [`Node::wait_installed`]).
    pub fn install(&self, namespace: &str, extra_flags: &[String]) -> Result<Install, NodeError> {
        let service = "coredump";
        let dir = self.layout().root.join(format!("install-{namespace}"));
        let host = self.layout().host_paths().join(namespace);
        let install = Install {
            namespace: namespace.to_string(),
            service: service.to_string(),
            manifest: dir.join("coredump.yaml"),
            host_dir: host.join("agent"),
            local_path: host.join("cores"),
        };
        let images = self.images();
        let mut flags = vec![
            format!("--image={}", images.detector),
            format!("--etcd-image={}", images.etcd),
            format!("--host-dir={}", install.host_dir.display()),
            format!("--local-path={}", install.local_path.display()),
            format!("--etcd-data-path={}", host.join("etcd").display()),
        ];
        let name = |flag: &str| flag.split('=').next().unwrap_or(flag).to_string();
        flags.retain(|f| !extra_flags.iter().any(|e| name(e) == name(f)));
        flags.extend(extra_flags.iter().cloned());
        deploy_sh(&images.detector_bin, namespace, service, &dir, &flags)?;
        self.control_plane().kubectl_ok(&[
            "create",
            "-f",
            &install.manifest.display().to_string(),
            "--request-timeout=60s",
        ])?;
        Ok(install)
    }

    /// Waits until every workload of `install` is rolled out (its pods Ready) and the
    /// APIService is Available; returns how long that took.
    pub fn wait_installed(
        &self,
        install: &Install,
        timeout: Duration,
    ) -> Result<Duration, NodeError> {
        let start = std::time::Instant::now();
        let cp = self.control_plane();
        for workload in workloads(&install.service) {
            let left = timeout
                .saturating_sub(start.elapsed())
                .max(Duration::from_secs(1));
            let status = cp.kubectl_ok(&[
                "rollout",
                "status",
                "-n",
                &install.namespace,
                &workload,
                &format!("--timeout={}s", left.as_secs()),
            ]);
            if let Err(e) = status {
                let pods = cp
                    .kubectl_ok(&["get", "pods", "-n", &install.namespace, "-o", "wide"])
                    .unwrap_or_default();
                let events = cp
                    .kubectl_ok(&[
                        "get",
                        "events",
                        "-n",
                        &install.namespace,
                        "--sort-by=.lastTimestamp",
                    ])
                    .unwrap_or_default();
                return Err(NodeError::NotReady {
                    what: format!("{workload} in {}", install.namespace),
                    waited_s: start.elapsed().as_secs(),
                    last: format!("{e}\n{pods}\n{events}\n{}", self.log_tails()),
                });
            }
        }
        let left = timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_secs(1));
        coredump_testplane::aggregation::wait_available(cp, left)?;
        Ok(start.elapsed())
    }
}

/// `sh deploy/deploy.sh NAMESPACE SERVICE DIR FLAGS…`, with `detector` as the
/// `coredump-detector` it finds on PATH.
fn deploy_sh(
    detector: &Path,
    namespace: &str,
    service: &str,
    dir: &Path,
    flags: &[String],
) -> Result<(), NodeError> {
    let bin_dir = dir.with_extension("bin");
    std::fs::create_dir_all(&bin_dir)
        .map_err(|e| NodeError::io("create directory", &bin_dir, e))?;
    let link = bin_dir.join("coredump-detector");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(detector, &link).map_err(|e| NodeError::io("link", &link, e))?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin_dir.clone()];
    paths.extend(std::env::split_paths(&path));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/deploy.sh");
    let mut sh = Command::new("sh");
    sh.arg(script)
        .args([namespace, service])
        .arg(dir)
        .args(flags)
        .env(
            "PATH",
            std::env::join_paths(paths)
                .map_err(|e| NodeError::io("join PATH with", &bin_dir, std::io::Error::other(e)))?,
        );
    run(sh).map(drop)
}
