//! `coredump-detector agent`: the node DaemonSet (one privileged pod per node).
//!
//! It installs the crash handler onto the host ([`install`]), points `core_pattern` at it
//! through `coredump_capture::kernel::PatternGuard` (restored on SIGTERM, repaired at start
//! after a killed agent), and runs the ingest over the node's spool with:
//! * [`resolver::KubeResolver`]: pod UID and container ID from the cgroup, resolved to
//!   namespace, pod, container and image through a reflector over this node's pods
//!   ([`informer`], [`pods`]), retried while the cache may lag ([`retry`]);
//! * [`policy::AgentPolicy`]: the opt-out label/annotation and the per-namespace quota
//!   (`NS_DISK_QUOTA`, a quantity in `coredump_common`'s grammar);
//! * [`limits`]: what the crash path needs for its crash-loop limits (each pod's namespace,
//!   opt-out and quota left), and one `RateLimited` record per pod for the crashes it
//!   suppressed;
//! * [`sink::KubeSink`]: the `Coredump` created through the Kubernetes API and a `CoreDumped`
//!   Event on the pod ([`event`]);
//! * [`metrics`] and [`http`]: what `/metrics` and `/readyz` report (the endpoint itself is
//!   `coredump_common::health`, shared with the GC).
//!
//! `--capture socket` (or `auto`) serves the kernel's coredump socket instead
//! (`coredump_capture::socket`, the code standalone runs), into the same spool and ingest; the
//! pipe handler is installed anyway, as the fallback while no agent listens.
//!
//! At SIGTERM the agent restores `core_pattern` only when its install is going away; a restart
//! hands the kernel over to the installed pipe handler ([`handover`]).
//!
//! Crashes outside pods are forwarded to the previous `core_pattern` pipe, dropped or recorded
//! (`--non-pod`). [`Args`] are the flags, [`run()`] the entry point.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod args;
pub mod event;
pub mod floor;
pub mod handover;
pub mod http;
pub mod informer;
pub mod install;
pub mod limits;
pub mod metrics;
pub mod pods;
pub mod policy;
pub mod resolver;
pub mod retry;
mod run;
pub mod sink;

pub use args::Args;
pub use run::run;
