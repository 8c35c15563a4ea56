//! The ingest: takes published spool entries (from the pipe handler or the socket server),
//! finishes what the crash path left for later (compressing raw cores), stores the core in the
//! blob store under the seed's layout with a JSON record beside it, and records the crash as a
//! `Coredump` object through a [`CoredumpSink`] (in-process registry in standalone mode, the
//! Kubernetes API for the node agent).
//!
//! Every step is idempotent and the spool entry is removed last, so an ingest killed at any
//! moment and restarted neither loses nor duplicates a crash: the object name derives from the
//! spool id, blob writes are atomic and skip identical blobs, and "already exists" is success.
#![deny(missing_docs)]

pub mod analyze;
pub mod backoff;
pub mod facts;
pub mod logs;
pub mod naming;
pub mod object;
pub mod policy;
pub mod worker;

pub use object::{IdentityResolver, NoResolver, Placement, ResolvedIdentity};
pub use policy::{CoreDecision, CorePolicy, KeepAll, PolicyInput, Resolution};
pub use worker::{CoredumpSink, Ingest, IngestConfig, IngestError, SinkError};
