//! Shared by the end-to-end tests: an install made by the real `deploy.sh` with a freshly built
//! binary and applied with the real kubectl (serialized, deleted on drop), and kubectl run as
//! another subject (`--as`).
#![allow(dead_code)] // each test binary uses a part
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

use coredump_testplane::{ControlPlane, shared};
use serde_json::Value;

pub const SERVICE: &str = "coredump";

/// One install at a time: cluster-scoped names (APIService, user roles) are shared.
pub fn install_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `coredump-detector` binary, rebuilt if its sources changed: `bins::detector()` only
/// builds a missing binary, and `cargo test -p coredump-deploy` does not build other packages'
/// binaries, so a stale one would test yesterday's manifest.
pub fn fresh_detector() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.args([
                "build",
                "-q",
                "-p",
                "coredump-detector",
                "--bin",
                "coredump-detector",
            ]);
            if coredump_testkit::bins::target_dir().ends_with("release") {
                build.arg("--release");
            }
            assert!(
                build.status().unwrap().success(),
                "cargo build coredump-detector"
            );
            coredump_testkit::bins::detector()
        })
        .clone()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An install made by the real script; `Drop` deletes every object of the manifest.
pub struct Install {
    pub cp: &'static ControlPlane,
    pub ns: String,
    dir: tempfile::TempDir,
    pub script_stdout: String,
    pub created: Vec<String>,
    _lock: MutexGuard<'static, ()>,
}

impl Install {
    /// `sh deploy/deploy.sh NS coredump DIR` from the repository root, in a new namespace
    /// `<prefix>-<pid>-<n>`, then `kubectl create -f DIR/coredump.yaml`.
    pub fn new(prefix: &str) -> Install {
        static N: AtomicU32 = AtomicU32::new(0);
        let ns = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Install::run(ns, &repo_root(), "deploy/deploy.sh")
    }

    /// The seed README's commands verbatim: `sh deploy.sh default coredump DIR` in `deploy/`.
    pub fn seed_usage() -> Install {
        Install::run("default".into(), &repo_root().join("deploy"), "deploy.sh")
    }

    fn run(ns: String, cwd: &Path, script: &str) -> Install {
        let lock = install_lock();
        let cp = shared().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bin_dir = fresh_detector().parent().unwrap().to_path_buf();
        let path = std::env::join_paths(
            std::iter::once(bin_dir)
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        )
        .unwrap();
        let out_dir = dir.path().join("coredump-yaml");
        let output = Command::new("sh")
            .arg(script)
            .args([ns.as_str(), SERVICE])
            .arg(&out_dir)
            .current_dir(cwd)
            .env("PATH", path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "deploy.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let script_stdout = String::from_utf8(output.stdout).unwrap();
        let mut install = Install {
            cp,
            ns,
            dir,
            script_stdout,
            created: Vec::new(),
            _lock: lock,
        };
        let manifest = install.manifest();
        let created = cp
            .kubectl_ok(&[
                "create",
                "-f",
                manifest.to_str().unwrap(),
                "--request-timeout=60s",
            ])
            .unwrap();
        install.created = created.lines().map(str::to_string).collect();
        install
    }

    /// `kind.group/name` of every object `kubectl create` reported.
    pub fn names_created(&self) -> BTreeSet<String> {
        self.created
            .iter()
            .map(|line| line.strip_suffix(" created").unwrap_or(line).to_string())
            .collect()
    }

    /// `kind.group/name` of every object of the manifest, as read from the server (fails if
    /// any is missing).
    pub fn names_on_server(&self) -> BTreeSet<String> {
        let manifest = self.manifest();
        let out = self
            .cp
            .kubectl_ok(&[
                "get",
                "-f",
                manifest.to_str().unwrap(),
                "-o",
                "name",
                "--request-timeout=30s",
            ])
            .unwrap();
        out.lines().map(str::to_string).collect()
    }

    pub fn out_dir(&self) -> PathBuf {
        self.dir.path().join("coredump-yaml")
    }

    pub fn manifest(&self) -> PathBuf {
        self.out_dir().join("coredump.yaml")
    }

    pub fn get(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json", "--request-timeout=30s"]);
        serde_json::from_str(&self.cp.kubectl_ok(&all).unwrap()).unwrap()
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        // Cluster-scoped objects go at once; the Namespace stays Terminating (no namespace
        // controller runs), which is harmless: every run uses a new name.
        let manifest = self.manifest();
        let out = self.cp.kubectl(&[
            "delete",
            "-f",
            manifest.to_str().unwrap_or_default(),
            "--ignore-not-found",
            "--wait=false",
            "--request-timeout=60s",
        ]);
        if !out.status.success() {
            eprintln!("cleanup failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// kubectl prints Secret data and `caBundle` base64-encoded.
pub fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Who is asking: `--as` and `--as-group` flags.
pub struct Who {
    pub name: String,
    pub flags: Vec<String>,
}

impl Who {
    pub fn service_account(ns: &str, name: &str) -> Who {
        Who {
            name: name.to_string(),
            flags: vec![
                format!("--as=system:serviceaccount:{ns}:{name}"),
                "--as-group=system:serviceaccounts".into(),
                format!("--as-group=system:serviceaccounts:{ns}"),
            ],
        }
    }

    pub fn user(name: &str) -> Who {
        Who {
            name: name.to_string(),
            flags: vec![format!("--as={name}")],
        }
    }
}

/// Runs kubectl as `who` with `body` on stdin and parses its JSON output.
pub fn kubectl_stdin(cp: &ControlPlane, who: &Who, args: &[&str], body: &Value) -> Value {
    let mut all = args.to_vec();
    // Schema validation would list CRDs, which the subjects under test may not do.
    all.extend(["-o", "json", "--validate=false", "--request-timeout=30s"]);
    all.extend(who.flags.iter().map(String::as_str));
    let mut child = cp
        .kubectl_command(&all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
