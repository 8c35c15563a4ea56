//! `coredump-detector deploy NAMESPACE SERVICE DIR`: everything a cluster install needs, written
//! as one multi-document `DIR/coredump.yaml` for `kubectl create -f` (the seed's `deploy.sh`,
//! now generated in Rust from typed Kubernetes objects instead of `sed` over a template).
//!
//! The manifest holds, in creation order: the Namespace (unless it is a built-in one), the
//! ServiceAccounts `coredump-api`, `coredump-gc` and `coredump-agent`, the TLS Secret
//! `servercrt`, the Services SERVICE and `etcd-svc`, the APIService
//! `v1alpha1.coredump.fujitsu.com`, least-privilege RBAC, and the workloads: the etcd
//! StatefulSet `etcd`, the API server Deployment SERVICE, the GC Deployment `coredump-gc` and the
//! node DaemonSet `kcdt-ds`. [`names`] lists every name, path, flag and environment variable the
//! workloads rely on: the `apiserver`, `gc` and `agent` roles must accept them.
//!
//! For more than one node ([`CoreStorage`], [`MetadataStore`]): the cores in a bucket or on a
//! ReadWriteMany claim instead of each node's hostPath, etcd's data on a claim or an existing
//! etcd cluster instead of the bundled one (then no etcd objects at all), and API server
//! replicas with a PodDisruptionBudget `SERVICE`, allowed only where every replica can read
//! every core.
//!
//! Certificates come from [`coredump_pki`]: a CA `CN=SERVICE-certificate-authority` (the
//! APIService's `caBundle`) and a serving certificate whose subjectAltNames hold every name the
//! Service is dialed by (kube-apiserver verifies `SERVICE.NAMESPACE.svc`).
//!
//! ```no_run
//! let opts = coredump_deploy::DeployOptions::new("default", "coredump");
//! let certs = coredump_deploy::generate_certs(&opts.namespace, &opts.service)?;
//! let yaml = coredump_deploy::render(&opts, &certs)?;
//! assert!(yaml.contains("kind: APIService"));
//! # Ok::<(), coredump_deploy::DeployError>(())
//! ```
//!
//! [`helm`] writes the same objects as a Helm chart (`deploy --helm-chart`).
//!
//! The rendered manifest for fixed options and placeholder certificates is pinned by the golden
//! file `tests/golden/coredump.yaml`. After an intended change, regenerate it with
//! `UPDATE_GOLDEN=1 cargo test -p coredump-deploy --test golden` and review the diff.
#![deny(missing_docs)]

mod certs;
mod cli;
mod error;
pub mod helm;
pub mod names;
mod objects;
mod options;
mod rbac;
mod render;
mod validate;
mod workloads;

pub use certs::{Certs, etcd_client_name, generate_certs, server_dns_names};
pub use cli::{CaKeys, DeployArgs, MANIFEST_FILE, run, write, write_with};
pub use error::DeployError;
pub use options::{CoreStorage, DeployOptions, MetadataStore};
pub use render::render;
