//! Test support for running our code against a *real* Kubernetes control plane: etcd plus
//! kube-apiserver built from Go modules (`scripts/control-plane/build.sh`, cached outside the
//! repository), with client-certificate auth, RBAC, service-account tokens and the aggregation
//! layer configured like kubeadm does, and the real `kubectl` pointed at it.
//!
//! ```no_run
//! let cp = coredump_testplane::shared()?;
//! let ns = cp.create_namespace("demo")?;
//! let out = cp.kubectl_ok(&["get", "namespace", &ns, "-o", "name"])?;
//! assert_eq!(out.trim(), format!("namespace/{ns}"));
//! # Ok::<(), coredump_testplane::HarnessError>(())
//! ```
//!
//! Processes never outlive the test binary: they are killed on `Drop` and, should the binary
//! die first, by the kernel (`PR_SET_PDEATHSIG`).
//!
//! With [`ControlPlaneOptions::network`] etcd and kube-apiserver run inside a
//! [`NetworkNamespace`] of the test (a real node's, so pods reach the API server), and the host
//! reaches kube-apiserver through a loopback forwarder.
//!
//! [`aggregation`] registers a server of ours as the aggregated API `coredump.fujitsu.com` and
//! gives it the identity the deploy manifest gives our API server.
//!
//! [`seaweedfs`] starts a real S3 server (SeaweedFS, also built from its Go module) for the
//! object-store tests; [`fake_gcs`] a GCS server (fake-gcs-server, from its Go module) and
//! [`azurite`] an Azure Blob server (Azurite, from npm); [`object_server`] puts the three
//! behind one trait so a test body runs against each. [`helm`] runs Helm's CLI (from its Go
//! module) against a control plane; [`caddy`] finds Caddy, the download benchmark's baseline.
#![deny(missing_docs)]

pub mod aggregation;
pub mod azurite;
mod binaries;
pub mod caddy;
mod control_plane;
mod error;
mod etcd;
pub mod fake_gcs;
pub mod helm;
mod http;
mod instance;
mod kubectl;
mod netns;
pub mod object_server;
mod pdeathsig;
mod pki;
mod process;
pub mod seaweedfs;
mod shared;
mod wait;
mod workdir;

pub use binaries::{Binaries, binaries};
pub use control_plane::{ControlPlane, ControlPlaneOptions, NodePlacement};
pub use error::HarnessError;
pub use etcd::{EtcdProcess, Frozen, start_etcd, start_etcd_binary};
pub use netns::NetworkNamespace;
pub use pki::{IssuedCert, TestCa};
pub use process::{
    ManagedProcess, cpu_seconds, free_port, log_tail, resident_kib, spawn_logged, spawn_tied,
};
pub use shared::shared;
pub use wait::eventually;
