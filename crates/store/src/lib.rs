//! Storage for coredump-detector, behind two traits so that every backend is interchangeable:
//!
//! * [`MetadataStore`]: Kubernetes-style objects (opaque JSON bytes) keyed by resource, namespace
//!   and name, with a store-wide monotonically increasing revision used as `resourceVersion`,
//!   optimistic concurrency, paginated lists and watches with a bounded history window.
//!   Implementations: [`redb_store::RedbStore`] (embedded, for standalone and tests) and
//!   [`etcd_store::EtcdStore`] (etcd v3, for production).
//! * [`BlobStore`]: core files laid out `<namespace>/<podUID>/<container>/<file>` (the seed's
//!   filesystem layout), written atomically, streamed on read. Implementation:
//!   [`fs_blob::FsBlobStore`].
//!
//! The store knows nothing about Kubernetes object schemas: the API server puts
//! `metadata.resourceVersion` into objects on the way out. `tests/conformance` holds the one
//! test suite every metadata backend must pass.
//!
//! The metadata backends are features (`redb`, `etcd`, both on by default): the node roles
//! (agent, GC, ingest) use the blob store alone and build neither redb nor etcd-client (nor
//! need protoc).
#![deny(missing_docs)]

pub mod blob;
pub mod buildid;
pub mod error;
#[cfg(feature = "etcd")]
pub mod etcd_store;
pub mod fs_blob;
#[cfg(any(feature = "redb", feature = "etcd"))]
mod key;
pub mod metadata;
#[cfg(feature = "redb")]
pub mod redb_store;
#[cfg(any(feature = "redb", feature = "etcd"))]
mod token;

pub use blob::{BlobInfo, BlobPath, BlobStore, SeekableRead};
pub use error::StoreError;
pub use metadata::{
    EventType, ListPage, ListRequest, MetadataStore, ObjectChunks, ObjectKey, Precondition,
    StoredObject, WatchEvent, WatchStream,
};
