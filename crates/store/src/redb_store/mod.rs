//! The embedded metadata store: one redb file, for `standalone` and tests. redb gives ACID
//! transactions and crash safety; this module adds the Kubernetes storage semantics on top
//! (store-wide revisions, bounded history, snapshot pagination, watches). redb is synchronous,
//! so every call runs on tokio's blocking pool and async callers never block the runtime.

mod list;
mod tables;
mod watch;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase};
use tokio::sync::broadcast;

use crate::StoreError;
use crate::key;
use crate::metadata::{
    ListPage, ListRequest, MetadataStore, ObjectKey, Precondition, StoredObject, WatchEvent,
    WatchStream,
};
use tables::{HISTORY, META, META_REVISION, OBJECTS, db_err, read_meta};
use write::Change;

/// Tunables of [`RedbStore`].
#[derive(Debug, Clone)]
pub struct RedbOptions {
    /// How many of the latest changes history keeps for watches and paginated lists (older ones
    /// are pruned on each write). `0` keeps everything.
    pub history_window: u64,
    /// Capacity of the in-process broadcast to live watchers; a watcher that falls further behind
    /// is re-fed from the history table, so this only trades memory for catch-up reads.
    pub broadcast_capacity: usize,
    /// Bytes of redb's own page cache. redb's default (1 GiB) let the API server grow with the
    /// store (230 MiB resident after 100 000 records); pages outside this cache are still read
    /// through the kernel's page cache, so lists stay fast ([`DEFAULT_CACHE_BYTES`]).
    pub cache_bytes: usize,
}

/// Default of [`RedbOptions::cache_bytes`]: 16 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 16 << 20;

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            history_window: 10_000,
            broadcast_capacity: 1024,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// Shared state of one open store; watch streams hold it weakly so dropping the store closes the
/// file and ends them.
struct Inner {
    db: Database,
    path: PathBuf,
    options: RedbOptions,
    /// Held across commit and broadcast so live events go out in revision order.
    write_lock: Mutex<()>,
    events: broadcast::Sender<Arc<WatchEvent>>,
}

/// The embedded [`MetadataStore`] over one redb file.
pub struct RedbStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish()
    }
}

impl RedbStore {
    /// Opens (or creates) the store at `path` with default options. Blocks on file I/O: call it
    /// at startup or from a blocking context.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, RedbOptions::default())
    }

    /// Opens (or creates) the store at `path`. A smaller `history_window` than last time prunes
    /// history right away.
    pub fn open_with(path: &Path, options: RedbOptions) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)
            .map_err(|e| {
                StoreError::backend(
                    format!("open redb store {}", path.display()),
                    redb::Error::from(e),
                )
            })?;
        let txn = db.begin_write().map_err(db_err("begin write"))?;
        {
            // Creating the tables up front lets readers open them unconditionally.
            txn.open_table(OBJECTS).map_err(db_err("create objects"))?;
            let mut history = txn.open_table(HISTORY).map_err(db_err("create history"))?;
            let mut meta = txn.open_table(META).map_err(db_err("create meta"))?;
            let current = read_meta(&meta, META_REVISION)?;
            if options.history_window > 0 && current >= options.history_window {
                write::discard_history_before(
                    &mut history,
                    &mut meta,
                    current - options.history_window + 1,
                )?;
            }
        }
        txn.commit().map_err(db_err("commit"))?;
        let (events, _) = broadcast::channel(options.broadcast_capacity.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                path: path.to_owned(),
                options,
                write_lock: Mutex::new(()),
                events,
            }),
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .unwrap_or_else(|e| Err(StoreError::backend(operation, e)))
    }
}

#[async_trait]
impl MetadataStore for RedbStore {
    async fn create(&self, key: &ObjectKey, value: Bytes) -> Result<u64, StoreError> {
        let key = key.clone();
        self.blocking("create", move |inner| {
            write::apply(inner, &key, Change::Create(value)).map(|e| e.object.revision)
        })
        .await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>, StoreError> {
        key::validate(key)?;
        let key = key.clone();
        self.blocking("get", move |inner| {
            let txn = inner.db.begin_read().map_err(db_err("begin read"))?;
            let objects = txn.open_table(OBJECTS).map_err(db_err("open objects"))?;
            let found = objects
                .get(key::encode(&key).as_str())
                .map_err(db_err("read object"))?;
            Ok(found.map(|g| {
                let (revision, value) = g.value();
                StoredObject {
                    key,
                    revision,
                    value: Bytes::copy_from_slice(value),
                }
            }))
        })
        .await
    }

    async fn update(
        &self,
        key: &ObjectKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<u64, StoreError> {
        let key = key.clone();
        self.blocking("update", move |inner| {
            write::apply(inner, &key, Change::Update(value, precondition))
                .map(|e| e.object.revision)
        })
        .await
    }

    async fn delete(
        &self,
        key: &ObjectKey,
        precondition: Precondition,
    ) -> Result<StoredObject, StoreError> {
        let key = key.clone();
        self.blocking("delete", move |inner| {
            write::apply(inner, &key, Change::Delete(precondition)).map(|e| e.object)
        })
        .await
    }

    async fn list(&self, request: &ListRequest) -> Result<ListPage, StoreError> {
        let request = request.clone();
        self.blocking("list", move |inner| list::list(inner, &request))
            .await
    }

    async fn watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after_revision: u64,
    ) -> Result<WatchStream, StoreError> {
        // Validates the names the same way lists do.
        key::prefix_range(resource, namespace)?;
        let filter = watch::Filter {
            resource: resource.to_owned(),
            namespace: namespace.map(str::to_owned),
        };
        Ok(watch::start(&self.inner, filter, after_revision))
    }

    async fn current_revision(&self) -> Result<u64, StoreError> {
        self.blocking("current revision", |inner| {
            let txn = inner.db.begin_read().map_err(db_err("begin read"))?;
            let meta = txn.open_table(META).map_err(db_err("open meta"))?;
            read_meta(&meta, META_REVISION)
        })
        .await
    }

    async fn compact(&self, revision: u64) -> Result<(), StoreError> {
        self.blocking("compact", move |inner| write::compact(inner, revision))
            .await
    }
}
