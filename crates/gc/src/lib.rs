//! `coredump-detector gc --gc-threshold=30m`: the garbage collector (one Deployment).
//!
//! When a pod (by UID) or its namespace has been gone longer than the threshold, its cores
//! (blob directory), its `Coredump` objects and its `CoredumpEndpoint` are deleted; optionally
//! crashes older than `--max-age` and the oldest crashes of a namespace over
//! `--max-namespace-size` too. Nothing is deleted in a cycle where the pod API (or any other
//! list) fails, and `--dry-run` only logs.
//!
//! * [`plan`]: every decision, a pure function of what was observed and [`plan::GoneState`];
//! * [`state`]: "gone since" kept in a file on the blob volume across restarts;
//! * [`inventory`], [`cluster`]: what exists, on the volume and in the API;
//! * [`metrics`]: Prometheus metrics (served by `coredump_common::health`).
//!
//! [`Args`] are the flags, [`run()`] the entry point.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod args;
pub mod cluster;
pub mod inventory;
pub mod metrics;
pub mod plan;
mod run;
pub mod state;

pub use args::Args;
pub use run::run;
