//! Kubernetes API types of group `coredump.fujitsu.com`, version `v1alpha1`, and the generic
//! `meta.k8s.io` shapes clients expect (Status, List, Table, watch events, discovery, OpenAPI),
//! plus validation, selectors and request paths. Pure data and pure functions, so the API server,
//! the ingest and the CLI share one definition; the one exception, the typed client over kube-rs
//! ([`client`]), is behind the `kube` feature.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod analysis;
#[cfg(feature = "kube")]
pub mod client;
pub mod coredump;
pub mod discovery;
pub mod endpoint;
pub mod fields;
pub mod labels;
pub mod meta;
pub mod openapi;
pub mod paths;
pub mod resource;
pub mod status;
pub mod table;
pub mod time;
pub mod validation;

pub use analysis::{Analysis, Frame, Module, SIGNATURE_LABEL, ThreadBacktrace};
pub use coredump::{
    COREDUMP_KIND, COREDUMPS, Coredump, CoredumpReason, CoredumpSpec, CoredumpState, CoredumpStatus,
};
pub use endpoint::{
    COREDUMP_ENDPOINT_KIND, COREDUMP_ENDPOINTS, CoredumpEndpoint, CoredumpEndpointSpec,
    CoredumpEndpointStatus,
};
pub use fields::{FieldSelector, FieldSelectorError};
pub use labels::{LabelSelector, LabelSelectorError};
pub use meta::{
    DeleteOptions, List, ListMeta, ManagedFieldsEntry, ObjectMeta, PartialObjectMetadata,
    Preconditions, WatchEvent, WatchEventType,
};
pub use resource::Resource;
pub use status::{Status, StatusCause, StatusDetails, StatusReason};
pub use table::{IncludeObject, Table, TableColumnDefinition, TableRow};

/// API group served.
pub const GROUP: &str = "coredump.fujitsu.com";
/// API version served.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` field value of our objects.
pub const API_VERSION: &str = "coredump.fujitsu.com/v1alpha1";
