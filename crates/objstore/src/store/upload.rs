//! The multipart upload of [`ObjectBlobStore`]'s `put_file`, resumable across restarts of the
//! process, through `object_store`'s [`MultipartStore`] (the service's upload id and part ids,
//! which outlive the process, where the `MultipartUpload` handle dies with it).
//!
//! * A new upload writes its record ([`crate::resume`]) beside the source and appends every
//!   part the server acknowledged; at most [`super::PARTS_IN_FLIGHT`] parts (or as set) are
//!   read and uploading at once, read from their offsets in the source; with S3's `ETag` check,
//!   each part's MD5 is computed on the runtime's blocking pool while the part is sent.
//! * `put_file` on a source with a record of the same source, object and part size continues
//!   that upload: only the parts missing from the record are sent, then the upload completes
//!   with the recorded parts and the new ones.
//! * A record of another source, object or part size is discarded (its upload aborted when it
//!   is at the same key of the same bucket) and the upload starts afresh; so does a resumed
//!   upload the server no longer knows (aborted, expired: not found, or a completion refused
//!   because the recorded parts are gone), once, logged.
//! * A completed upload removes its record. Any other failure aborts the upload and removes
//!   the record; if the abort fails too (the server is unreachable) the record stays, and the
//!   next attempt resumes the upload or, if the server dropped it meanwhile, starts afresh.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, Metadata};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use coredump_store::StoreError;
use object_store::multipart::PartId;
use object_store::path::Path as Key;
use object_store::{MultipartId, PutPayload};

use super::{ObjectBlobStore, changed};
use crate::bridge::Pending;
use crate::etag::{Md5Check, PartMd5};
use crate::resume::{self, DonePart, Header, Journal, Target, UploadRecord};

/// A failed request of an upload: the error, and whether it says the server has no such
/// upload (any more).
struct Failure {
    error: StoreError,
    gone: bool,
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self { error, gone: false }
    }
}

/// The error codes of a completion that names parts the server does not have: S3's
/// `NoSuchUpload` (also as a 404) and `InvalidPart`, Azure's `InvalidBlockList`.
const GONE_CODES: [&str; 3] = ["NoSuchUpload", "InvalidPart", "InvalidBlockList"];

/// Whether `e` says the upload (or a part of it) is not on the server.
fn upload_gone(e: &object_store::Error) -> bool {
    if matches!(e, object_store::Error::NotFound { .. }) {
        return true;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&s.to_string());
        source = s.source();
    }
    GONE_CODES.iter().any(|code| text.contains(code))
}

/// A part read from the source, on its way: the server's answer and, when verifying, the
/// part's MD5, computed beside the upload (not before it: on the caller's thread it held up
/// the next part, 2 s of a 1 GiB upload).
struct Sending {
    idx: usize,
    pending: Pending<PartAnswer>,
}

/// The server's answer to a part, and its MD5 when verifying (an error if its task died).
type PartAnswer = (
    object_store::Result<PartId>,
    Option<Result<PartMd5, String>>,
);

impl ObjectBlobStore {
    /// Uploads `file` (`meta.len()` bytes) as a multipart upload, resuming the recorded one
    /// of this source when there is one (see the module docs). Returns the new object's
    /// `ETag` and what to check it against.
    pub(super) fn put_multipart(
        &self,
        key: &Key,
        file: &File,
        source: &Path,
        meta: &Metadata,
    ) -> Result<(Option<String>, Md5Check), StoreError> {
        let record_path = resume::record_path(source);
        let target = Target {
            location: &self.location,
            endpoint: self.endpoint.as_deref(),
            key: key.as_ref(),
        };
        let wanted = Header::new(
            target,
            meta,
            self.part_size as u64,
            self.verify_md5,
            MultipartId::new(),
        );
        if let Some(record) = self.usable_record(key, &record_path, &wanted) {
            let done = record.parts.len();
            tracing::info!(object = %self.url(key), parts_done = done, "resuming an interrupted upload");
            match self.upload(key, file, source, &wanted, Some(record)) {
                Err(Failure { gone: true, error }) => {
                    tracing::info!(object = %self.url(key), %error, "the server no longer has the interrupted upload: uploading afresh");
                    resume::discard(&record_path);
                }
                other => return other.map_err(|f| f.error),
            }
        }
        self.upload(key, file, source, &wanted, None)
            .map_err(|f| f.error)
    }

    /// The record of `source` if it continues the upload `wanted`; any other record is
    /// discarded (and its upload aborted, when at this object).
    fn usable_record(&self, key: &Key, path: &Path, wanted: &Header) -> Option<UploadRecord> {
        let record = match UploadRecord::load(path) {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(record = %path.display(), error = %e, "an unreadable upload record: uploading afresh");
                resume::discard(path);
                return None;
            }
        };
        let md5s_complete = !wanted.md5 || record.parts.values().all(|p| p.md5.is_some());
        if record.header.matches(wanted) && md5s_complete {
            return Some(record);
        }
        tracing::info!(record = %path.display(), "an upload record of another source, object or part size: uploading afresh");
        if record.header.same_object(wanted) {
            let id = record.header.upload_id.clone();
            if let Err(e) = self.abort(key, &id) {
                tracing::info!(object = %self.url(key), error = %e, "the upload of a stale record was not aborted");
            }
        }
        resume::discard(path);
        None
    }

    /// One attempt: the recorded upload continued, or a new one; aborted on failure unless it
    /// is one the server no longer has.
    fn upload(
        &self,
        key: &Key,
        file: &File,
        source: &Path,
        wanted: &Header,
        resumed: Option<UploadRecord>,
    ) -> Result<(Option<String>, Md5Check), Failure> {
        let record_path = resume::record_path(source);
        let resuming = resumed.is_some();
        let (id, done, journal) = match resumed {
            Some(record) => {
                let journal = Journal::create(&record_path, &record.header, record.parts.values());
                (record.header.upload_id, record.parts, journal)
            }
            None => {
                let (store, k) = (Arc::clone(&self.multipart), key.clone());
                let id = self.call("starting a multipart upload of", key, async move {
                    store.create_multipart(&k).await
                })?;
                let header = Header {
                    upload_id: id.clone(),
                    ..wanted.clone()
                };
                (
                    id,
                    BTreeMap::new(),
                    Journal::create(&record_path, &header, []),
                )
            }
        };
        // A record that cannot be written (a full disk) costs the resume, not the upload.
        let journal = match journal {
            Ok(journal) => Some(journal),
            Err(e) => {
                tracing::warn!(record = %record_path.display(), error = %e, "the upload's progress is not recorded: an interruption restarts it");
                None
            }
        };
        let result = self
            .send_parts(key, &id, file, source, wanted.size, done, journal)
            .and_then(|parts| self.complete(key, &id, parts));
        match result {
            Ok(done) => {
                resume::discard(&record_path);
                Ok(done)
            }
            Err(failure) if resuming && failure.gone => Err(failure),
            Err(failure) => {
                // The error we report is the upload's; a failed abort leaves the parts (and the
                // record, to resume them) behind.
                match self.abort(key, &id) {
                    Ok(()) => resume::discard(&record_path),
                    Err(abort) => {
                        tracing::warn!(object = %self.url(key), error = %abort, "a failed multipart upload was not aborted")
                    }
                }
                Err(failure)
            }
        }
    }

    /// Sends the parts of `file` missing from `done`, at most `parts_in_flight` at once, and
    /// records each as it is acknowledged; all parts, in order. Waits for every part it
    /// started, also on failure (so an abort that follows finds no part still uploading).
    #[allow(clippy::too_many_arguments)]
    fn send_parts(
        &self,
        key: &Key,
        id: &MultipartId,
        file: &File,
        source: &Path,
        expected: u64,
        mut done: BTreeMap<usize, DonePart>,
        mut journal: Option<Journal>,
    ) -> Result<Vec<DonePart>, Failure> {
        let part_size = self.part_size as u64;
        let count = usize::try_from(expected.div_ceil(part_size)).unwrap_or(usize::MAX);
        let missing: Vec<usize> = (0..count).filter(|i| !done.contains_key(i)).collect();
        let mut in_flight: VecDeque<Sending> = VecDeque::new();
        let mut first_error: Option<Failure> = None;
        let mut settle = |part: Sending, first: &mut Option<Failure>| {
            let result = part
                .pending
                .wait()
                .map_err(Failure::from)
                .and_then(|(r, md5)| {
                    let part_id = r.map_err(|e| Failure {
                        gone: upload_gone(&e),
                        error: self.error("uploading a part of", key, e),
                    })?;
                    let md5 = md5.transpose().map_err(|e| {
                        StoreError::backend(
                            self.doing(&format!("computing the MD5 of part {} of", part.idx), key),
                            e,
                        )
                    })?;
                    Ok((part_id, md5))
                });
            match result {
                Ok((part_id, md5)) => {
                    let part = DonePart {
                        part: part.idx,
                        content_id: part_id.content_id,
                        md5: md5.map(|m| crate::etag::hex(&m)),
                    };
                    if let Some(j) = &mut journal
                        && let Err(e) = j.append(&part)
                    {
                        tracing::warn!(record = %j.path().display(), error = %e, "the upload's progress is no longer recorded");
                        journal = None;
                    }
                    done.insert(part.part, part);
                }
                Err(e) if first.is_none() => *first = Some(e),
                Err(_) => {}
            }
        };
        for idx in missing {
            let offset = idx as u64 * part_size;
            let len = part_size.min(expected - offset) as usize;
            let bytes = match read_at(file, offset, len) {
                Ok(b) => b,
                Err(e) => {
                    let error = match (e.kind(), file.metadata()) {
                        (std::io::ErrorKind::UnexpectedEof, Ok(now)) => {
                            changed(source, now.len(), expected)
                        }
                        _ => StoreError::Io {
                            path: source.to_owned(),
                            source: e,
                        },
                    };
                    first_error = Some(error.into());
                    break;
                }
            };
            self.parts_sent.fetch_add(1, Ordering::Relaxed);
            self.bytes_sent.fetch_add(len as u64, Ordering::Relaxed);
            let (store, k, id) = (Arc::clone(&self.multipart), key.clone(), id.clone());
            let verify_md5 = self.verify_md5;
            let pending = self.bridge.spawn(async move {
                // The MD5 on the blocking pool (CPU, 8 MiB at a time) while the part is sent.
                let md5 = verify_md5.then(|| {
                    let bytes = bytes.clone();
                    tokio::task::spawn_blocking(move || crate::etag::md5(&bytes))
                });
                let put = store.put_part(&k, &id, idx, PutPayload::from(bytes)).await;
                let md5 = match md5 {
                    Some(task) => Some(task.await.map_err(|e| e.to_string())),
                    None => None,
                };
                (put, md5)
            });
            in_flight.push_back(Sending { idx, pending });
            while in_flight.len() >= self.parts_in_flight {
                if let Some(oldest) = in_flight.pop_front() {
                    settle(oldest, &mut first_error);
                }
            }
            if first_error.is_some() {
                break;
            }
        }
        for part in in_flight {
            settle(part, &mut first_error);
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        // A source that grew meanwhile would be stored cut short.
        let now = file
            .metadata()
            .map_err(|e| StoreError::Io {
                path: source.to_owned(),
                source: e,
            })?
            .len();
        if now != expected {
            return Err(changed(source, now, expected).into());
        }
        Ok(done.into_values().collect())
    }

    /// Completes the upload from `parts` (all of them, in order).
    fn complete(
        &self,
        key: &Key,
        id: &MultipartId,
        parts: Vec<DonePart>,
    ) -> Result<(Option<String>, Md5Check), Failure> {
        let mut digests = Vec::with_capacity(parts.len());
        let mut ids = Vec::with_capacity(parts.len());
        for part in parts {
            if self.verify_md5 {
                let md5 = part.md5.as_deref().and_then(crate::etag::from_hex);
                digests.push(md5.ok_or_else(|| {
                    StoreError::backend(
                        self.doing("completing the multipart upload of", key),
                        format!("no MD5 recorded for part {}", part.part),
                    )
                })?);
            }
            ids.push(PartId {
                content_id: part.content_id,
            });
        }
        let (store, k, id) = (Arc::clone(&self.multipart), key.clone(), id.clone());
        let completed = self
            .bridge
            .run(async move { store.complete_multipart(&k, &id, ids).await })?;
        let put = completed.map_err(|e| Failure {
            gone: upload_gone(&e),
            error: self.error("completing the multipart upload of", key, e),
        })?;
        Ok((put.e_tag, Md5Check::Multipart(digests)))
    }

    /// Aborts the upload `id` of `key` (Azure: nothing to do, its blocks expire).
    fn abort(&self, key: &Key, id: &MultipartId) -> Result<(), StoreError> {
        let (store, k, id) = (Arc::clone(&self.multipart), key.clone(), id.clone());
        self.call("aborting the multipart upload of", key, async move {
            store.abort_multipart(&k, &id).await
        })
    }
}

/// Reads exactly `len` bytes at `offset` (an error if the file ends before).
fn read_at(file: &File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_is_not_found_or_a_code_naming_missing_parts() {
        let not_found = object_store::Error::NotFound {
            path: "k".into(),
            source: "404".into(),
        };
        assert!(upload_gone(&not_found));
        let refused = |body: &str| object_store::Error::Generic {
            store: "S3",
            source: body.to_owned().into(),
        };
        assert!(upload_gone(&refused(
            "400 Bad Request: <Code>InvalidPart</Code>"
        )));
        assert!(upload_gone(&refused("<Code>InvalidBlockList</Code>")));
        assert!(!upload_gone(&refused("500 Internal Server Error")));
        assert!(!upload_gone(&object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403".into(),
        }));
    }
}
