//! Test support: a real single-node Kubernetes cluster on this machine, and the project installed
//! on it from its manifest.
//!
//! * [`Node`]: etcd and kube-apiserver (testplane's, placed in the node's network namespace),
//!   kube-controller-manager, kube-scheduler, kubelet and kube-proxy of the same release
//!   (`scripts/control-plane/build.sh node`), containerd + runc + CNI from Debian, and a cluster
//!   DNS ([`dns`]), all inside a network namespace the node creates, so pod addresses exist only
//!   there; kubectl on the host reaches kube-apiserver through a loopback forwarder.
//! * [`images`]: the project's image, the sandbox, etcd and crasher images, written as OCI
//!   archives ([`oci`]) and imported with `ctr`.
//! * [`install`]: `deploy/deploy.sh` + `kubectl create -f`, waited for until every pod is Ready
//!   and the APIService Available.
//! * [`shared`]: one node per test binary.
//!
//! A node holds the machine-wide kernel-settings lock ([`coredump_testkit::kernel_lock`]) for
//! its whole life: the agent it runs owns `core_pattern`. Everything it starts, mounts, creates
//! or changes is removed by `scripts/node.sh teardown`, on drop and after the test binary
//! died however it died.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod configs;
pub mod dns;
mod error;
pub mod images;
pub mod install;
mod node;
pub mod oci;

pub use error::NodeError;
pub use install::Install;
pub use node::{Node, NodeOptions, node_address, node_script, own_netns_inode};

/// The node of this test binary, started by the first caller (it lives in a `static`: its
/// teardown runs after the binary exits). A failed start is reported to every caller.
pub fn shared() -> Result<&'static Node, NodeError> {
    static SHARED: std::sync::OnceLock<Result<Node, String>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| Node::start(NodeOptions::default()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|message| NodeError::Shared(message.clone()))
}
