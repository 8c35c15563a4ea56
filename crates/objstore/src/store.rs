//! [`ObjectBlobStore`]: the [`BlobStore`] trait on any `object_store` backend.
//!
//! * `put_file` streams the local file in parts of [`PART_SIZE`] through a multipart upload,
//!   at most [`PARTS_IN_FLIGHT`] parts at a time (peak memory a few parts, whatever the core's
//!   size); a file of one part or less is one PUT. The object appears whole when the upload
//!   completes, never partly; a failed upload is aborted. An upload interrupted by the end of
//!   the process resumes at the next `put_file` of the same source, sending only the parts the
//!   server does not have (module `upload`, with its record beside the source: [`crate::resume`]).
//!   A blob of the same size already there is left alone (idempotent ingest, as on the
//!   filesystem), and the stored size is checked after the upload (an object missing then is
//!   an error; one another writer put there meanwhile, with another `ETag`, is theirs: last
//!   writer wins, as with renames).
//! * With [`ObjectBlobStore::with_md5_etags`] (S3), the completed upload's `ETag` is compared
//!   with the MD5 of what was sent ([`crate::etag`]); a mismatch deletes the object and fails.
//! * `namespaces` and `pods` enumerate by delimiter listing, for the GC's inventory.
//! * `open` and `open_seekable` read through ranged GETs ([`crate::read`]).
//! * Listing is by key prefix; `delete_pod` deletes in batches (S3 `DeleteObjects`).
//! * Transient errors are retried by `object_store` (its `RetryConfig`, with backoff).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use coredump_store::{BlobInfo, BlobPath, BlobStore, SeekableRead, StoreError};
use futures::{StreamExt, TryStreamExt};
use object_store::multipart::MultipartStore;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use percent_encoding::percent_decode_str;

use crate::bridge::Bridge;
use crate::etag::{Md5Check, Verdict};
use crate::keys::Layout;
use crate::read::{ObjectReader, Opened, SEEK_WINDOW, STREAM_WINDOW};

mod upload;

/// Size of one part of a multipart upload (S3 needs at least 5 MiB for all parts but the last).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploading at the same time.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Blobs in an object store bucket, under a key prefix (see the module docs).
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    /// The same client's multipart API (upload ids and part ids that outlive the process).
    multipart: Arc<dyn MultipartStore>,
    bridge: Arc<Bridge>,
    layout: Layout,
    /// `s3://bucket`: what error messages name (never credentials).
    location: String,
    /// The endpoint, when not the provider's default, for error messages.
    endpoint: Option<String>,
    part_size: usize,
    /// Parts uploading at the same time ([`PARTS_IN_FLIGHT`] unless set).
    parts_in_flight: usize,
    /// Compare S3's MD5 `ETag` with what was sent ([`crate::etag`]).
    verify_md5: bool,
    /// Parts of multipart uploads sent (started) by this store, see [`PartsSent`].
    parts_sent: AtomicU64,
    /// Their bytes.
    bytes_sent: AtomicU64,
}

/// What a store sent as parts of multipart uploads since it was opened: how a resumed upload
/// shows that it sent only the parts missing (observability, and the tests' proof).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartsSent {
    /// Parts started (a part sent twice, after a failure, counts twice).
    pub parts: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl std::fmt::Debug for ObjectBlobStore {
    /// Where, never how: the client's own `Debug` could show its credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBlobStore")
            .field("location", &self.location)
            .field("prefix", &self.layout.prefix().as_ref())
            .field("endpoint", &self.endpoint)
            .field("part_size", &self.part_size)
            .field("parts_in_flight", &self.parts_in_flight)
            .finish()
    }
}

impl ObjectBlobStore {
    /// A store of blobs under `prefix` in `store`, whose multipart API is `multipart` (the same
    /// client). `location` (`s3://bucket`) and `endpoint` name the bucket in error messages,
    /// logs and upload records; neither may carry credentials.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        multipart: Arc<dyn MultipartStore>,
        prefix: &str,
        location: impl Into<String>,
        endpoint: Option<String>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            store,
            multipart,
            bridge: Arc::new(Bridge::new("objstore")?),
            layout: Layout::new(prefix)?,
            location: location.into(),
            endpoint,
            part_size: PART_SIZE,
            parts_in_flight: PARTS_IN_FLIGHT,
            verify_md5: false,
            parts_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
        })
    }

    /// The parts of multipart uploads this store has sent so far.
    pub fn parts_sent(&self) -> PartsSent {
        PartsSent {
            parts: self.parts_sent.load(Ordering::Relaxed),
            bytes: self.bytes_sent.load(Ordering::Relaxed),
        }
    }

    /// The same store comparing each completed upload's `ETag` with the MD5 (S3: of the parts'
    /// MD5s) of what was sent, where the `ETag` has that form ([`crate::etag`]): for S3 and
    /// S3-compatible servers without KMS encryption.
    pub fn with_md5_etags(mut self, verify: bool) -> Self {
        self.verify_md5 = verify;
        self
    }

    /// The same store with parts of `bytes` (at least 5 MiB for S3; tests use it to make
    /// several parts out of a small file).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    /// The same store with at most `parts` parts of an upload uploading at once (at least 1;
    /// memory grows by a part per part in flight). The transfer benchmark compares settings.
    pub fn with_parts_in_flight(mut self, parts: usize) -> Self {
        self.parts_in_flight = parts.max(1);
        self
    }

    /// `s3://bucket/key`.
    fn url(&self, key: &Key) -> String {
        format!("{}/{key}", self.location)
    }

    /// What we were doing, where: the operation of a [`StoreError::Backend`].
    fn doing(&self, operation: &str, key: &Key) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("{operation} {} (endpoint {endpoint})", self.url(key)),
            None => format!("{operation} {}", self.url(key)),
        }
    }

    /// An `object_store` error as a [`StoreError`]: "not found" as an I/O `NotFound` (so
    /// callers answer 404 by type), anything else as a backend failure naming the object.
    fn error(&self, operation: &str, key: &Key, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { .. } => StoreError::Io {
                path: PathBuf::from(self.url(key)),
                source: io::Error::new(io::ErrorKind::NotFound, e.to_string()),
            },
            e => StoreError::backend(self.doing(operation, key), e),
        }
    }

    /// Runs one request on the bridge, mapping its error.
    fn call<T, F>(&self, operation: &str, key: &Key, future: F) -> Result<T, StoreError>
    where
        F: Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.bridge
            .run(future)?
            .map_err(|e| self.error(operation, key, e))
    }

    /// Size and `ETag` of an object, `None` if absent.
    fn head(&self, key: &Key) -> Result<Option<(u64, Option<String>)>, StoreError> {
        let (store, k) = (Arc::clone(&self.store), key.clone());
        match self.call("HEAD", key, async move { store.head(&k).await }) {
            Ok(meta) => Ok(Some((meta.size, meta.e_tag))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One PUT of a small blob (replacing whatever is there); the new object's `ETag`.
    fn put_whole(&self, key: &Key, bytes: Bytes) -> Result<Option<String>, StoreError> {
        let (store, k) = (Arc::clone(&self.store), key.clone());
        self.call("PUT", key, async move {
            store
                .put(&k, PutPayload::from(bytes))
                .await
                .map(|r| r.e_tag)
        })
    }

    /// Compares the `ETag` of a completed upload with the MD5 of what was sent; a mismatch
    /// deletes the object (else a retry would find one of the right size and keep it) and is
    /// an error.
    fn verify_etag(
        &self,
        key: &Key,
        sent: &Md5Check,
        reported: Option<&str>,
    ) -> Result<(), StoreError> {
        match sent.check(reported) {
            Verdict::Verified => {
                tracing::debug!(object = %self.url(key), "upload verified by its MD5 ETag");
                Ok(())
            }
            Verdict::NotComparable => Ok(()),
            Verdict::Mismatch { expected, reported } => {
                let (store, k) = (Arc::clone(&self.store), key.clone());
                if let Err(e) = self.call("DELETE", key, async move { store.delete(&k).await }) {
                    tracing::warn!(object = %self.url(key), error = %e, "an upload that failed its MD5 check was not deleted");
                }
                Err(StoreError::backend(
                    self.doing("verifying the upload of", key),
                    format!(
                        "the stored object's ETag {reported} is not the MD5 of the bytes sent ({expected})"
                    ),
                ))
            }
        }
    }

    /// An open object (its size and `ETag` pinned) for [`ObjectReader`].
    fn opened(&self, path: &BlobPath) -> Result<Opened, StoreError> {
        let key = self.layout.key(path)?;
        let Some((size, etag)) = self.head(&key)? else {
            return Err(StoreError::Io {
                path: PathBuf::from(self.url(&key)),
                source: io::ErrorKind::NotFound.into(),
            });
        };
        Ok(Opened {
            store: Arc::clone(&self.store),
            bridge: Arc::clone(&self.bridge),
            url: self.url(&key),
            key,
            size,
            etag,
        })
    }

    /// The names one level below `prefix` (S3 `CommonPrefixes` with delimiter `/`), decoded,
    /// valid as `kind` of a blob path, dot-names left out, sorted.
    fn children(&self, prefix: &Key) -> Result<Vec<String>, StoreError> {
        let (store, p) = (Arc::clone(&self.store), prefix.clone());
        let listed = self.call("LIST", prefix, async move {
            store.list_with_delimiter(Some(&p)).await
        })?;
        let mut out: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|dir| {
                let name = dir.filename()?;
                let name = percent_decode_str(name).decode_utf8().ok()?.into_owned();
                let valid = !name.starts_with('.') && check_dir(&name, None, None).is_ok();
                valid.then_some(name)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Every object under `prefix`.
    fn list_prefix(&self, prefix: &Key) -> Result<Vec<object_store::ObjectMeta>, StoreError> {
        let (store, p) = (Arc::clone(&self.store), prefix.clone());
        self.call("LIST", prefix, async move {
            store.list(Some(&p)).try_collect::<Vec<_>>().await
        })
    }
}

/// Reads up to `size` bytes (fewer only at the end of the file).
fn read_part(file: &mut File, size: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(size);
    file.take(size as u64).read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

/// The error for a source whose size changed while it was read.
fn changed(source: &Path, read: u64, expected: u64) -> StoreError {
    StoreError::Io {
        path: source.to_owned(),
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("source changed while uploading: {read} bytes, expected {expected}"),
        ),
    }
}

/// Validates the components of a pod (and container) prefix like a blob path's.
fn check_dir(
    namespace: &str,
    pod_uid: Option<&str>,
    container: Option<&str>,
) -> Result<(), StoreError> {
    BlobPath::new(
        namespace,
        pod_uid.unwrap_or("_"),
        container.unwrap_or("_"),
        "_",
    )
    .map(drop)
}

impl BlobStore for ObjectBlobStore {
    fn put_file(&self, path: &BlobPath, source: &Path) -> Result<u64, StoreError> {
        let key = self.layout.key(path)?;
        let source_err = |e| StoreError::Io {
            path: source.to_owned(),
            source: e,
        };
        let mut file = File::open(source).map_err(source_err)?;
        let meta = file.metadata().map_err(source_err)?;
        let expected = meta.len();
        if self.head(&key)?.is_some_and(|(size, _)| size == expected) {
            // Idempotent ingest: already stored (also by an upload completed just before the
            // process ended, whose record is left).
            crate::resume::discard(&crate::resume::record_path(source));
            return Ok(expected);
        }
        let (ours, sent) = if expected <= self.part_size as u64 {
            let bytes = read_part(&mut file, self.part_size).map_err(source_err)?;
            if bytes.len() as u64 != expected {
                return Err(changed(source, bytes.len() as u64, expected));
            }
            let sent = Md5Check::Single(if self.verify_md5 {
                crate::etag::md5(&bytes)
            } else {
                [0; 16]
            });
            (self.put_whole(&key, bytes)?, sent)
        } else {
            self.put_multipart(&key, &file, source, &meta)?
        };
        if self.verify_md5 {
            self.verify_etag(&key, &sent, ours.as_deref())?;
        }
        match self.head(&key)? {
            Some((size, _)) if size == expected => Ok(expected),
            // Another writer's object replaced ours after it was complete (last writer wins,
            // as with renames on a filesystem): ours cannot be checked any more, and theirs is
            // theirs to check.
            Some((_, Some(theirs))) if ours.as_ref().is_some_and(|ours| *ours != theirs) => {
                tracing::info!(object = %self.url(&key), "replaced by another writer right after this upload");
                Ok(expected)
            }
            stored => Err(StoreError::backend(
                self.doing("verifying the upload of", &key),
                format!(
                    "stored size {}, uploaded {expected} bytes",
                    stored.map_or_else(
                        || "none (object missing)".to_owned(),
                        |(s, _)| s.to_string()
                    )
                ),
            )),
        }
    }

    fn put_bytes(&self, path: &BlobPath, bytes: &[u8]) -> Result<u64, StoreError> {
        let key = self.layout.key(path)?;
        self.put_whole(&key, Bytes::copy_from_slice(bytes))?;
        Ok(bytes.len() as u64)
    }

    fn open(&self, path: &BlobPath) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(Box::new(ObjectReader::new(
            self.opened(path)?,
            STREAM_WINDOW,
        )))
    }

    fn open_seekable(&self, path: &BlobPath) -> Result<Option<Box<dyn SeekableRead>>, StoreError> {
        Ok(Some(Box::new(ObjectReader::new(
            self.opened(path)?,
            SEEK_WINDOW,
        ))))
    }

    fn size(&self, path: &BlobPath) -> Result<Option<u64>, StoreError> {
        let key = self.layout.key(path)?;
        Ok(self.head(&key)?.map(|(size, _)| size))
    }

    fn list(
        &self,
        namespace: &str,
        pod_uid: &str,
        container: Option<&str>,
    ) -> Result<Vec<BlobInfo>, StoreError> {
        check_dir(namespace, Some(pod_uid), container)?;
        let mut segments = vec![namespace, pod_uid];
        segments.extend(container);
        let prefix = self.layout.dir(&segments);
        let mut out: Vec<BlobInfo> = self
            .list_prefix(&prefix)?
            .into_iter()
            .filter_map(|meta| {
                let path = self.layout.blob_of(&meta.location)?;
                Some(BlobInfo {
                    path,
                    size: meta.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn delete(&self, path: &BlobPath) -> Result<(), StoreError> {
        let key = self.layout.key(path)?;
        let (store, k) = (Arc::clone(&self.store), key.clone());
        match self.call("DELETE", &key, async move { store.delete(&k).await }) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    fn delete_pod(&self, namespace: &str, pod_uid: &str) -> Result<usize, StoreError> {
        check_dir(namespace, Some(pod_uid), None)?;
        let prefix = self.layout.dir(&[namespace, pod_uid]);
        let listed = self.list_prefix(&prefix)?;
        let blobs = listed
            .iter()
            .filter(|meta| self.layout.blob_of(&meta.location).is_some())
            .count();
        let keys: Vec<object_store::Result<Key>> =
            listed.into_iter().map(|meta| Ok(meta.location)).collect();
        let store = Arc::clone(&self.store);
        // `delete_stream` sends them in batches (S3: up to 1000 keys per DeleteObjects).
        let failures = self.bridge.run(async move {
            store
                .delete_stream(futures::stream::iter(keys).boxed())
                .filter_map(|r| async move {
                    match r {
                        Err(object_store::Error::NotFound { .. }) | Ok(_) => None,
                        Err(e) => Some(e),
                    }
                })
                .collect::<Vec<_>>()
                .await
        })?;
        if let Some(e) = failures.into_iter().next() {
            return Err(self.error("deleting the objects under", &prefix, e));
        }
        Ok(blobs)
    }

    fn namespaces(&self) -> Result<Option<Vec<String>>, StoreError> {
        self.children(self.layout.prefix()).map(Some)
    }

    fn pods(&self, namespace: &str) -> Result<Option<Vec<String>>, StoreError> {
        check_dir(namespace, None, None)?;
        self.children(&self.layout.dir(&[namespace])).map(Some)
    }

    fn namespace_usage(&self, namespace: &str) -> Result<u64, StoreError> {
        check_dir(namespace, None, None)?;
        let prefix = self.layout.dir(&[namespace]);
        Ok(self
            .list_prefix(&prefix)?
            .iter()
            .filter(|meta| self.layout.blob_of(&meta.location).is_some())
            .map(|meta| meta.size)
            .sum())
    }
}
