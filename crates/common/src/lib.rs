//! What several roles of `coredump-detector` need alike, written once: the agent, the GC, the
//! API server, `deploy`, standalone and the kubectl plugin all parse the same
//! [`duration`]s and [`quantity`]s, and the long-running roles share the async
//! [`runtime`], the [`shutdown`] signal, the Kubernetes client policy ([`kube_client`]), the
//! plain-HTTP health/metrics endpoint ([`health`]) and how a mirror pod names its static pod
//! ([`mirror_pod`]).
//!
//! Every role also replaces files the same way ([`atomic_file`]).
//!
//! The parsers have no dependencies; the rest sits behind features (`runtime`, `kube`,
//! `server`), so `deploy` does not build an HTTP server to validate a flag.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod atomic_file;
pub mod duration;
#[cfg(feature = "server")]
pub mod health;
#[cfg(feature = "kube")]
pub mod kube_client;
#[cfg(feature = "kube")]
pub mod mirror_pod;
pub mod quantity;
#[cfg(feature = "runtime")]
pub mod runtime;
#[cfg(feature = "runtime")]
pub mod shutdown;

pub use duration::{DurationError, parse_duration};
pub use quantity::{QuantityError, parse_bytes};
#[cfg(feature = "runtime")]
pub use runtime::{runtime, server_runtime};
#[cfg(feature = "runtime")]
pub use shutdown::shutdown_signal;

/// Where the blobs of a cluster install live (`--backend-kind` of the agent, the API server and
/// the GC, as the seed named it). Only the filesystem: buckets are chosen with `--blob-store`,
/// which overrides this flag, so the two never disagree.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// A filesystem under `--local-path` (local disk or a shared volume).
    Local,
}
