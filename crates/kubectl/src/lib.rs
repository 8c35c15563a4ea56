//! `kubectl coredump`: a kubectl plugin (binary `kubectl-coredump` on `PATH`) for the
//! `coredump.fujitsu.com/v1alpha1` API, so that people who debug crashes need neither raw API
//! paths nor a checksum tool:
//!
//! - `list [-n NS | -A] [--pod POD]`: the crashes as a table, oldest first, newest last;
//! - `get NAME [-o yaml|json]`: one `Coredump` object (YAML by default);
//! - `download NAME [-o FILE]`: its `core` subresource, written through a temporary file and
//!   renamed only after the byte count (`status.coreSize`, `Content-Length`) and the SHA-256
//!   (`status.sha256`, which covers exactly the kept bytes that `core` serves) match;
//! - `download --pod POD [--container C] [-o FILE]`: the seed's `dump` `tar.gz` of a pod's
//!   cores through its `CoredumpEndpoint`.
//!
//! - `info NAME`: metadata, the symbolized backtrace, what limited the analysis, the log tail;
//! - `list --group`: crashes grouped by signature, with counts;
//! - `debug NAME [--dir DIR] [-- GDB-ARGS]`: the core and, by build ID, the executable and
//!   libraries, then gdb with the right sysroot (or a list of exactly what is missing).
//!
//! Downloads of cores go in `Range` pieces to a part file that the next run resumes.
//! Connection flags follow kubectl: `--kubeconfig`, `$KUBECONFIG`, `--context`, `-n`, `-A`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod commands;
pub mod connect;
pub mod debug;
pub mod download;
mod error;
pub mod inspect;
pub mod resume;
pub mod table;

pub use commands::{Downloaded, Format};
pub use connect::{ConnectOptions, Connection, connect};
pub use download::Expected;
pub use error::Error;
