//! A real control plane for integration tests: etcd plus kube-apiserver (with the aggregation
//! layer configured as kubeadm does) on free loopback ports, in a scratch directory, torn down
//! on `Drop`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tempfile::TempDir;

use crate::error::HarnessError;
use crate::etcd::EtcdProcess;
use crate::kubectl::{Kubectl, write_admin_kubeconfig};
use crate::netns::NetworkNamespace;
use crate::pki::{ControlPlanePki, FRONT_PROXY_CLIENT, IssuedCert, TestCa};
use crate::process::{ManagedProcess, free_port};
use crate::wait::{Poll, poll_until};

/// How long kube-apiserver may take to report `/readyz` ok (it is slow on a loaded 2-core box).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// Startup attempts with a fresh port when the chosen one was taken in the meantime.
const ATTEMPTS: usize = 3;

/// Extra settings for [`ControlPlane::start_with`].
#[derive(Clone, Debug, Default)]
pub struct ControlPlaneOptions {
    /// Flags appended to kube-apiserver's command line (a repeated flag overrides ours).
    pub extra_apiserver_args: Vec<String>,
    /// Run etcd and kube-apiserver inside a node's network namespace instead of on the host's
    /// loopback.
    pub network: Option<NodePlacement>,
}

/// A control plane inside a node's network namespace: kube-apiserver listens on
/// [`NodePlacement::PORT`] of every address there and advertises `address`, so the node's
/// kubelet, kube-proxy and pods (through the `kubernetes` Service) reach it; the host reaches
/// it through a loopback forwarder ([`ControlPlane::server_url`]). Unlike on the host, the
/// `ServiceAccount` admission plugin is on (a controller-manager creates the accounts) and the
/// `kubernetes` Service's endpoints are maintained.
#[derive(Clone, Debug)]
pub struct NodePlacement {
    /// The namespace.
    pub netns: Arc<NetworkNamespace>,
    /// The node's address in it (in kube-apiserver's serving certificate too).
    pub address: Ipv4Addr,
}

impl NodePlacement {
    /// kube-apiserver's port inside the namespace (kubeadm's).
    pub const PORT: u16 = 6443;
}

/// A running etcd + kube-apiserver. `Drop` kills both and removes the scratch directory.
#[derive(Debug)]
pub struct ControlPlane {
    // Field order is drop order: kube-apiserver, then etcd, then the directory with their files.
    apiserver: ManagedProcess,
    etcd: EtcdProcess,
    port: u16,
    network: Option<NodePlacement>,
    pki: ControlPlanePki,
    kubectl: Kubectl,
    namespaces: AtomicU32,
    dir: TempDir,
}

impl ControlPlane {
    /// Builds or finds the binaries (`scripts/control-plane/build.sh`, cached), generates the
    /// certificates, starts etcd and kube-apiserver and waits until `/readyz` is ok and the
    /// `default` namespace exists.
    pub fn start() -> Result<ControlPlane, HarnessError> {
        ControlPlane::start_with(ControlPlaneOptions::default())
    }

    /// [`ControlPlane::start`] with extra kube-apiserver flags.
    pub fn start_with(options: ControlPlaneOptions) -> Result<ControlPlane, HarnessError> {
        let binaries = crate::binaries::binaries()?;
        let dir = crate::workdir::instance_dir("cp")?;
        let pki_dir = dir.path().join("pki");
        std::fs::create_dir(&pki_dir)
            .map_err(|e| HarnessError::io("create directory", &pki_dir, e))?;
        let extra_sans: Vec<String> = options
            .network
            .iter()
            .map(|n| n.address.to_string())
            .collect();
        let pki = crate::pki::generate(&pki_dir, &extra_sans)?;
        let netns = options.network.as_ref().map(|n| Arc::clone(&n.netns));
        let etcd = EtcdProcess::start(
            &binaries.etcd,
            &dir.path().join("etcd-data"),
            &dir.path().join("etcd.log"),
            netns.clone(),
        )?;

        let cache_dir = dir.path().join("kubectl-cache");
        let kubeconfig = dir.path().join("kubeconfig");
        let kubectl = Kubectl {
            kubeconfig: kubeconfig.clone(),
            cache_dir,
        };
        let log = dir.path().join("kube-apiserver.log");
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            // In a namespace of our own the port is ours; the host reaches it by a forwarder.
            let (listen_port, port) = match &options.network {
                None => {
                    let port = free_port()?;
                    (port, port)
                }
                Some(n) => {
                    let inside = SocketAddr::from((Ipv4Addr::LOCALHOST, NodePlacement::PORT));
                    (NodePlacement::PORT, n.netns.forward_from_host(inside)?)
                }
            };
            let server = format!("https://127.0.0.1:{port}");
            write_admin_kubeconfig(&kubeconfig, &server, &pki.files)?;
            let args = apiserver_args(dir.path(), listen_port, &etcd.url(), &pki, &options);
            let apiserver = ManagedProcess::spawn_in(
                "kube-apiserver",
                netns.as_deref(),
                &binaries.kube_apiserver,
                &args,
                &log,
            )?;
            match wait_ready(&apiserver, &kubectl) {
                Ok(()) => {
                    return Ok(ControlPlane {
                        apiserver,
                        etcd,
                        port,
                        network: options.network,
                        pki,
                        kubectl,
                        namespaces: AtomicU32::new(0),
                        dir,
                    });
                }
                Err(err @ HarnessError::Exited { .. })
                    if err.to_string().contains("address already in use") =>
                {
                    last_error = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| HarnessError::Port {
            source: std::io::Error::other("no attempt"),
        }))
    }

    /// The admin kubeconfig (user `testplane-admin`, group `system:masters`, client certificate).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubectl.kubeconfig
    }

    /// Runs the real `kubectl` with this instance's kubeconfig and cache directory. kubectl has
    /// no timeout of its own: pass `--request-timeout` when the server might hang.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl.output(args)
    }

    /// Like [`ControlPlane::kubectl`], but returns stdout, or an error with stderr on failure.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String, HarnessError> {
        self.kubectl.run(args)
    }

    /// The `kubectl` command line, not started: for streaming its output or feeding its stdin.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        self.kubectl.command(args)
    }

    /// Like [`ControlPlane::kubectl`], with `input` on stdin (for `-f -`). Errs only when kubectl
    /// could not be run at all; its own verdict is in the [`Output`].
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Result<Output, HarnessError> {
        self.kubectl.output_with_input(args, input.as_bytes())
    }

    /// `kubectl <verb> -f - -o json` of one object (`verb` is `apply`, `create`, `replace`…), with
    /// a 30 s request timeout; returns the object as the server stored it (JSON text).
    pub fn submit(&self, verb: &str, object: &serde_json::Value) -> Result<String, HarnessError> {
        let args = [verb, "-f", "-", "-o", "json", "--request-timeout=30s"];
        let output = self.kubectl_stdin(&args, &object.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(HarnessError::Submit {
                verb: verb.to_string(),
                object: crate::kubectl::describe_object(object),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    /// `https://127.0.0.1:<port>`: on the host (through the forwarder with
    /// [`ControlPlaneOptions::network`]).
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `https://<node address>:6443`: where the node's components reach kube-apiserver inside
    /// its network namespace; `None` for a control plane on the host.
    pub fn node_url(&self) -> Option<String> {
        self.network
            .as_ref()
            .map(|n| format!("https://{}:{}", n.address, NodePlacement::PORT))
    }

    /// The network namespace it runs in, if any.
    pub fn network(&self) -> Option<&NodePlacement> {
        self.network.as_ref()
    }

    /// The service-account signing key (PEM), for a controller-manager's
    /// `--service-account-private-key-file`.
    pub fn service_account_key_file(&self) -> &Path {
        &self.pki.files.sa_private_key
    }

    /// The file of [`ControlPlane::server_ca_pem`].
    pub fn server_ca_file(&self) -> &Path {
        &self.pki.files.server_ca
    }

    /// The file of [`ControlPlane::client_ca_pem`].
    pub fn client_ca_file(&self) -> &Path {
        &self.pki.files.client_ca
    }

    /// The CA that signed kube-apiserver's serving certificate (SANs 127.0.0.1, localhost).
    pub fn server_ca_pem(&self) -> &str {
        &self.pki.server_ca_pem
    }

    /// `--client-ca-file`: the CA for client certificates (user = CN, groups = O).
    pub fn client_ca_pem(&self) -> &str {
        &self.pki.client_ca_pem
    }

    /// `--requestheader-client-ca-file`: the CA of the front-proxy client certificate with which
    /// kube-apiserver calls aggregated servers.
    pub fn front_proxy_ca_pem(&self) -> &str {
        &self.pki.front_proxy_ca_pem
    }

    /// The client CA itself: mints client certificates kube-apiserver (and servers trusting its
    /// `client-ca-file`) accept, or refuse (see [`TestCa::issue_expired_client`]).
    pub fn client_ca(&self) -> &TestCa {
        &self.pki.client_ca
    }

    /// The front-proxy CA itself: mints certificates that chain to the request-header CA.
    pub fn front_proxy_ca(&self) -> &TestCa {
        &self.pki.front_proxy_ca
    }

    /// The certificate kube-apiserver presents to aggregated servers (CN `front-proxy-client`).
    pub fn front_proxy_client_cert(&self) -> &IssuedCert {
        &self.pki.proxy_client
    }

    /// The etcd kube-apiserver stores in, `http://127.0.0.1:<port>`. Tests of our own store
    /// should start a separate one with [`crate::start_etcd`].
    pub fn etcd_url(&self) -> String {
        self.etcd.url()
    }

    /// The process id of kube-apiserver (benchmarks count its CPU time and memory).
    pub fn apiserver_pid(&self) -> u32 {
        self.apiserver.pid()
    }

    /// The process id of its etcd (benchmarks count its CPU time).
    pub fn etcd_pid(&self) -> u32 {
        self.etcd.pid()
    }

    /// kube-apiserver's log file.
    pub fn apiserver_log(&self) -> &Path {
        self.apiserver.log()
    }

    /// The scratch directory (certificates, logs, etcd data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates a namespace `<prefix>-<n>` unique within this control plane and returns its name:
    /// tests sharing one control plane each work in their own.
    pub fn create_namespace(&self, prefix: &str) -> Result<String, HarnessError> {
        let n = self.namespaces.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{n}");
        self.kubectl
            .run(&["create", "namespace", &name, "--request-timeout=30s"])?;
        Ok(name)
    }

    /// A token for ServiceAccount `namespace/name` (created if missing; the namespace must
    /// exist), from `kubectl create token`: the TokenRequest API, valid for one hour.
    pub fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, HarnessError> {
        let timeout = "--request-timeout=30s";
        let created =
            self.kubectl
                .run(&["create", "serviceaccount", name, "-n", namespace, timeout]);
        match created {
            Ok(_) => {}
            Err(HarnessError::Kubectl { ref stderr, .. }) if stderr.contains("already exists") => {}
            Err(err) => return Err(err),
        }
        let token = self
            .kubectl
            .run(&["create", "token", name, "-n", namespace, timeout])?;
        Ok(token.trim().to_string())
    }
}

/// kube-apiserver's flags: envtest's minimal set plus kubeadm's aggregation-layer settings.
fn apiserver_args(
    dir: &Path,
    port: u16,
    etcd_url: &str,
    pki: &ControlPlanePki,
    options: &ControlPlaneOptions,
) -> Vec<String> {
    let f = &pki.files;
    let p = |path: &PathBuf| path.display().to_string();
    let mut args = vec![
        format!("--etcd-servers={etcd_url}"),
        format!("--cert-dir={}", dir.join("apiserver-certs").display()),
        format!("--secure-port={port}"),
    ];
    match &options.network {
        None => args.extend([
            "--bind-address=127.0.0.1".to_string(),
            "--advertise-address=127.0.0.1".to_string(),
            // The reconciler of the `kubernetes` Service's endpoints refuses loopback addresses.
            "--endpoint-reconciler-type=none".to_string(),
            // No controller-manager creates the `default` ServiceAccount: pods could not be made.
            "--disable-admission-plugins=ServiceAccount".to_string(),
        ]),
        Some(n) => args.extend([
            "--bind-address=0.0.0.0".to_string(),
            format!("--advertise-address={}", n.address),
            "--kubelet-preferred-address-types=InternalIP".to_string(),
        ]),
    }
    args.extend([
        "--service-cluster-ip-range=10.0.0.0/24".to_string(),
        "--allow-privileged=true".to_string(),
        "--authorization-mode=Node,RBAC".to_string(),
        format!("--tls-cert-file={}", p(&f.server_cert)),
        format!("--tls-private-key-file={}", p(&f.server_key)),
        format!("--client-ca-file={}", p(&f.client_ca)),
        format!("--service-account-issuer=https://127.0.0.1:{port}"),
        format!("--service-account-key-file={}", p(&f.sa_public_key)),
        format!(
            "--service-account-signing-key-file={}",
            p(&f.sa_private_key)
        ),
        format!("--requestheader-client-ca-file={}", p(&f.front_proxy_ca)),
        format!("--requestheader-allowed-names={FRONT_PROXY_CLIENT}"),
        "--requestheader-username-headers=X-Remote-User".to_string(),
        "--requestheader-group-headers=X-Remote-Group".to_string(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_string(),
        format!("--proxy-client-cert-file={}", p(&f.proxy_client_cert)),
        format!("--proxy-client-key-file={}", p(&f.proxy_client_key)),
        "--enable-aggregator-routing=false".to_string(),
    ]);
    args.extend(options.extra_apiserver_args.iter().cloned());
    args
}

/// Waits for `/readyz` to say ok and the `default` namespace to exist, failing fast if
/// kube-apiserver exits.
fn wait_ready(apiserver: &ManagedProcess, kubectl: &Kubectl) -> Result<(), HarnessError> {
    poll_until(
        READY_TIMEOUT,
        Duration::from_millis(250),
        || {
            if let Some(status) = apiserver.exited() {
                return Poll::Fail(apiserver.exited_error(status));
            }
            match kubectl.run(&["get", "--raw=/readyz", "--request-timeout=5s"]) {
                Ok(body) if body.trim() == "ok" => {}
                Ok(body) => return Poll::Pending(format!("/readyz: {body}")),
                Err(err) => return Poll::Pending(err.to_string()),
            }
            match kubectl.run(&[
                "get",
                "namespace",
                "default",
                "-o",
                "name",
                "--request-timeout=5s",
            ]) {
                Ok(_) => Poll::Ready(()),
                Err(err) => Poll::Pending(err.to_string()),
            }
        },
        |waited, last| apiserver.not_ready_error(waited, last),
    )
}
