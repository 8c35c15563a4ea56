//! Cores in object storage: [`ObjectBlobStore`] puts the [`coredump_store::BlobStore`] trait on
//! an `object_store` backend (S3 and S3-compatible servers, Google Cloud Storage, Azure Blob
//! Storage), with the filesystem store's
//! layout under a key prefix (`<prefix>/<namespace>/<podUID>/<container>/<file>`).
//!
//! * [`store`]: the store: multipart uploads in bounded memory (resumed after a restart),
//!   ranged reads, batched deletes.
//! * [`resume`]: the progress record beside the source of an upload, to resume it.
//! * [`read`]: the streaming, seekable reader of one object.
//! * [`bridge`]: the private runtime that runs the async client for the synchronous trait.
//! * [`keys`]: blob paths to object keys and back.
//! * [`etag`]: S3's `ETag` as the MD5 of what was uploaded.
//! * [`select`]: the `--blob-store` flag and the client flags of every service.
//! * [`providers`]: one client per service, from its standard environment and the flags.
#![deny(missing_docs)]

pub mod bridge;
pub mod etag;
pub mod keys;
pub mod providers;
pub mod read;
pub mod resume;
pub mod select;
pub mod store;

/// The retry settings of [`BlobStoreArgs::open_with_retry`] (`object_store`'s).
pub use object_store::{BackoffConfig, RetryConfig};
pub use select::{BlobStoreArgs, BlobStoreSelector, Provider, SelectError};
pub use store::{ObjectBlobStore, PartsSent};
