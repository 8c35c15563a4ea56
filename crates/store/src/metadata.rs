//! The metadata store contract (see the crate docs). Implementations live in
//! [`crate::redb_store`] and [`crate::etcd_store`]; `tests/conformance` checks them.
//!
//! Semantics every backend keeps (the conformance suite tests each one):
//!
//! * **Revisions** are store-wide, strictly increasing and never reused, also across restarts.
//!   Every successful write gets a new revision; an object's `revision` is that of its last write.
//! * **Key order** within a resource is the byte order of `<namespace>/<name>` (what Kubernetes
//!   shows when its objects live in etcd). Key components must not contain `/` or NUL and must
//!   not be empty ([`StoreError::Invalid`] otherwise).
//! * **Lists are snapshots**: every page of one list shows the objects as of the revision of the
//!   first page ([`ListPage::revision`]), even if they changed in between, as long as that
//!   revision is still in the history window; afterwards the continue token is
//!   [`StoreError::Expired`] (etcd's behaviour after compaction; Kubernetes answers `410 Gone`).
//! * **History** of changes is kept for a bounded window; watches replay from it, then follow
//!   live changes, and never skip an event silently: a watcher that falls out of the window gets
//!   [`StoreError::Expired`] and must re-list.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::StoreError;

/// Identifies one object: `resource` is the plural resource name (`coredumps`,
/// `coredumpendpoints`), `namespace` and `name` are Kubernetes names (validated by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Plural resource name, e.g. `coredumps`.
    pub resource: String,
    /// Namespace of the object.
    pub namespace: String,
    /// `metadata.name` of the object.
    pub name: String,
}

/// An object as stored, with the revision of its last modification (its `resourceVersion`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    /// Where it lives.
    pub key: ObjectKey,
    /// Revision of the last write of this object (etcd `mod_revision`).
    pub revision: u64,
    /// Opaque serialized object (JSON).
    pub value: Bytes,
}

/// Condition that must hold for an update or delete to proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Unconditional.
    #[default]
    None,
    /// The object's current revision must equal this one (else [`StoreError::Conflict`]).
    Revision(u64),
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Plural resource name.
    pub resource: String,
    /// `None` lists across all namespaces.
    pub namespace: Option<String>,
    /// At most this many items (`0` = no limit).
    pub limit: usize,
    /// Opaque continue token returned by a previous page.
    pub continue_token: Option<String>,
}

/// One page of a list, consistent at `revision`.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Items in key order (namespace, then name).
    pub items: Vec<StoredObject>,
    /// Store revision the page was read at (the list's `resourceVersion`).
    pub revision: u64,
    /// Token for the next page, if there are more items.
    pub continue_token: Option<String>,
}

/// Kind of change seen by a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object updated.
    Modified,
    /// Object deleted; the event carries the last stored value.
    Deleted,
}

/// One change, in revision order.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// What happened.
    pub event_type: EventType,
    /// The object after the change (for `Deleted`: before), with `revision` = the revision of
    /// the change itself.
    pub object: StoredObject,
}

/// Stream of changes; ends with `Err(StoreError::Expired)` if the watcher fell behind the history
/// window, or when the store shuts down.
pub type WatchStream = BoxStream<'static, Result<WatchEvent, StoreError>>;

/// Pieces of a list read in one streamed answer ([`MetadataStore::list_rest`]), in key order.
pub type ObjectChunks = BoxStream<'static, Result<Vec<StoredObject>, StoreError>>;

/// The metadata store. All methods are cancel-safe; a write either happens whole or not at all.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Creates the object. Fails with [`StoreError::AlreadyExists`] if the key exists.
    /// Returns the new revision.
    async fn create(&self, key: &ObjectKey, value: Bytes) -> Result<u64, StoreError>;

    /// Reads one object, `None` if absent.
    async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>, StoreError>;

    /// Replaces an existing object. [`StoreError::NotFound`] if absent,
    /// [`StoreError::Conflict`] if the precondition fails. Returns the new revision.
    async fn update(
        &self,
        key: &ObjectKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<u64, StoreError>;

    /// Deletes an object and returns its last stored state (with the revision of the deletion).
    /// [`StoreError::NotFound`] if absent, [`StoreError::Conflict`] if the precondition fails.
    async fn delete(
        &self,
        key: &ObjectKey,
        precondition: Precondition,
    ) -> Result<StoredObject, StoreError>;

    /// Lists objects of one resource, optionally in one namespace, one page at a time.
    /// A continue token from an older page that fell out of history is [`StoreError::Expired`].
    async fn list(&self, request: &ListRequest) -> Result<ListPage, StoreError>;

    /// The rest of a list in one answer streamed in pieces: every object of `request`'s range
    /// after its continue token, at the token's revision, in store-sized chunks (`limit` is
    /// ignored). For lists without `limit`, where reading page by page costs more: etcd counts
    /// the keys from a page's start to the end of the range for every page it answers. `None`
    /// when the store has no such read (the caller pages with [`MetadataStore::list`]); the
    /// default.
    async fn list_rest(&self, request: &ListRequest) -> Result<Option<ObjectChunks>, StoreError> {
        let _ = request;
        Ok(None)
    }

    /// Streams every change to `resource` (in `namespace` if given) with a revision strictly
    /// greater than `after_revision`, in order. If history before that point was discarded,
    /// the stream yields [`StoreError::Expired`] first (Kubernetes answers `410 Gone`).
    async fn watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after_revision: u64,
    ) -> Result<WatchStream, StoreError>;

    /// The current store revision (the latest committed write).
    async fn current_revision(&self) -> Result<u64, StoreError>;

    /// Discards the history of changes before `revision` (etcd's compaction): afterwards a
    /// continue token read at a revision below `revision`, or a watch with
    /// `after_revision + 1 < revision`, is [`StoreError::Expired`]. Objects themselves are never
    /// touched. `revision` must not exceed [`MetadataStore::current_revision`]
    /// ([`StoreError::Invalid`] otherwise). Compacting to a revision at or below an earlier
    /// compaction is a no-op. Backends whose history is bounded on its own may also discard
    /// history without being asked. The default does nothing.
    async fn compact(&self, revision: u64) -> Result<(), StoreError> {
        let _ = revision;
        Ok(())
    }
}
