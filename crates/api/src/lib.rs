//! Kubernetes API types of group `coredump.fujitsu.com`, version `v1alpha1`, and the generic
//! `meta.k8s.io` shapes clients expect (Status, List, Table, watch events). Pure data: no I/O,
//! so the API server, the ingest and the CLI share one definition.
#![deny(missing_docs)]

pub mod coredump;
pub mod meta;

pub use coredump::{Coredump, CoredumpSpec, CoredumpState, CoredumpStatus};
pub use meta::ObjectMeta;

/// API group served.
pub const GROUP: &str = "coredump.fujitsu.com";
/// API version served.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` field value of our objects.
pub const API_VERSION: &str = "coredump.fujitsu.com/v1alpha1";
