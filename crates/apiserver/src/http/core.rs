//! `coredumps/<name>/core`: the decompressed core, streamed from the zstd blob with
//! `Content-Length: status.coreSize`. `Range: bytes=a-b` answers 206. Cores written as seekable
//! zstd (independent frames and a seek table, see `coredump_seekable`) start decoding at the
//! frame holding `a`; older single-stream blobs are decoded from the start and skipped to `a`,
//! which costs decoding time but no memory.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coredump_api::{Coredump, CoredumpState};

use super::stream;
use crate::AppState;
use crate::error::ApiError;
use crate::registry::blob_path_of;

/// An inclusive byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

/// Parses a `Range` header against a content of `size` bytes. `Ok(None)`: serve everything
/// (no header, another unit, or several ranges, which we may ignore per RFC 9110).
pub fn parse_range(value: Option<&str>, size: u64) -> Result<Option<ByteRange>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let bad = || ApiError::RangeNotSatisfiable { size };
    let (a, b) = spec.trim().split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let suffix: u64 = b.parse().map_err(|_| bad())?;
        if suffix == 0 || size == 0 {
            return Err(bad());
        }
        ByteRange {
            start: size.saturating_sub(suffix),
            end: size - 1,
        }
    } else {
        let start: u64 = a.parse().map_err(|_| bad())?;
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| bad())?
                .min(size.saturating_sub(1))
        };
        if start >= size || end < start {
            return Err(bad());
        }
        ByteRange { start, end }
    };
    Ok(Some(range))
}

/// Chunks queued for the connection: one whole frame, so the next frame is decoded while this
/// one is encrypted and sent.
const FRAME_CHUNKS: usize = coredump_seekable::FRAME_SIZE / stream::CHUNK;
/// Decoded frames kept for reuse per download (queued, being sent, being decoded): their pages
/// stay mapped, so decoding never waits on fresh zeroed memory.
const FRAME_BUFFERS: usize = 4;

/// Streams decompressed bytes `skip..skip + len` of a seekable core: each frame decoded once
/// into a reused buffer and handed to the connection as slices of it, with no copy between the
/// decoder and TLS.
fn send_frames<R: io::Read + io::Seek>(
    reader: &mut coredump_seekable::SeekableReader<R>,
    skip: u64,
    len: u64,
    writer: &mut stream::ChunkWriter,
) -> io::Result<()> {
    let short = || {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "core shorter than status.coreSize",
        )
    };
    let end = skip + len;
    let pool = FramePool::default();
    let mut sent = 0;
    let mut next = match reader.table().and_then(|t| t.frame_at(skip)) {
        Some(i) => i,
        None if len == 0 => return Ok(()),
        None => return Err(short()),
    };
    while sent < len {
        let frame = reader
            .table()
            .and_then(|t| t.frames.get(next).copied())
            .ok_or_else(short)?;
        let mut buf = pool.take();
        reader.decode_frame(next, &mut buf)?;
        let from = skip.saturating_sub(frame.decompressed_offset);
        let to = (end - frame.decompressed_offset).min(buf.len() as u64);
        if from >= to {
            return Err(short());
        }
        sent += to - from;
        let data = Bytes::from_owner(pool.owned(buf)).slice(from as usize..to as usize);
        writer.send(data)?;
        next += 1;
    }
    io::Write::flush(writer)
}

/// Frame buffers of one download, given back when the connection drops its last slice.
#[derive(Default, Clone)]
struct FramePool(Arc<Mutex<Vec<Vec<u8>>>>);

impl FramePool {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_default()
    }

    fn owned(&self, buf: Vec<u8>) -> PooledFrame {
        PooledFrame {
            buf,
            pool: self.clone(),
        }
    }
}

/// A decoded frame owned by the response body's slices.
struct PooledFrame {
    buf: Vec<u8>,
    pool: FramePool,
}

impl AsRef<[u8]> for PooledFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledFrame {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.0.lock()
            && free.len() < FRAME_BUFFERS
        {
            free.push(std::mem::take(&mut self.buf));
        }
    }
}

/// A stored core as the store can open it.
enum Blob {
    Seekable(Box<dyn coredump_store::SeekableRead>),
    Stream(Box<dyn Read + Send>),
}

/// `GET .../coredumps/<name>/core`.
pub async fn core(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let c: Coredump = state.registry.get(&ns, &name).await?;
    let stored = matches!(
        c.status.state,
        CoredumpState::Stored | CoredumpState::Truncated
    );
    let Some(path) = blob_path_of(&c).filter(|_| stored) else {
        return Err(ApiError::NoCore {
            name,
            state: c.status.state.as_str().to_owned(),
        });
    };
    let size = c.status.core_size;
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    )?;
    let (skip, len) = match range {
        Some(r) => (r.start, r.end - r.start + 1),
        None => (0, size),
    };
    let blobs = state.registry.blob_store().clone();
    let blob = tokio::task::spawn_blocking(move || -> Result<Blob, coredump_store::StoreError> {
        match blobs.open_seekable(&path)? {
            Some(r) => Ok(Blob::Seekable(r)),
            None => Ok(Blob::Stream(blobs.open(&path)?)),
        }
    })
    .await
    .map_err(|e| ApiError::Internal {
        message: format!("blob open task: {e}"),
    })?;
    let blob = match blob {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return Err(ApiError::NoCore {
                name,
                state: "blob missing".to_owned(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let (mut writer, body) = stream::channel_with(FRAME_CHUNKS);
    let label = format!("{ns}/{name}");
    tokio::task::spawn_blocking(move || {
        let result = (|| -> io::Result<()> {
            let mut decoder: Box<dyn Read + Send> = match blob {
                Blob::Seekable(r) => {
                    let mut reader = coredump_seekable::SeekableReader::new(r, Some(size))?;
                    if reader.is_indexed() {
                        return send_frames(&mut reader, skip, len, &mut writer);
                    }
                    Box::new(zstd::stream::read::Decoder::new(reader.into_inner()?)?)
                }
                Blob::Stream(r) => Box::new(zstd::stream::read::Decoder::new(r)?),
            };
            let skipped = io::copy(&mut (&mut decoder).take(skip), &mut io::sink())?;
            if skipped < skip {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "core shorter than status.coreSize",
                ));
            }
            let sent = writer.copy_from(&mut decoder, len)?;
            if sent < len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "core shorter than status.coreSize",
                ));
            }
            io::Write::flush(&mut writer)
        })();
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!(coredump = %label, error = %e, "core download failed");
            }
            writer.fail(e);
        }
    });
    let code = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut resp = (code, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{ns}_{}.core\"",
        c.metadata.name
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(r) = range
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.start, r.end))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

/// Largest log tail served (the ingest keeps 16 KiB).
const MAX_LOG: u64 = 1 << 20;

/// `GET .../coredumps/<name>/log`: the tail of the crashed container's log, kept beside the
/// core by the ingest (404 when none was kept).
pub async fn log(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let c: Coredump = state.registry.get(&ns, &name).await?;
    let missing = || ApiError::NotFound {
        resource: format!("{}/log", coredump_api::COREDUMPS),
        name: name.clone(),
    };
    let Some(mut path) = blob_path_of(&c) else {
        return Err(missing());
    };
    path.file = format!("{}.log", c.metadata.name);
    let blobs = state.registry.blob_store().clone();
    let text = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, ApiError> {
        match blobs.open(&path) {
            Ok(r) => {
                let mut bytes = Vec::new();
                r.take(MAX_LOG)
                    .read_to_end(&mut bytes)
                    .map_err(|e| ApiError::Internal {
                        message: format!("reading a log tail: {e}"),
                    })?;
                Ok(Some(bytes))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await
    .map_err(|e| ApiError::Internal {
        message: format!("log task: {e}"),
    })??;
    let Some(text) = text else {
        return Err(missing());
    };
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |v: &str| parse_range(Some(v), 100);
        assert_eq!(
            r("bytes=0-9").unwrap(),
            Some(ByteRange { start: 0, end: 9 })
        );
        assert_eq!(
            r("bytes=90-").unwrap(),
            Some(ByteRange { start: 90, end: 99 })
        );
        assert_eq!(
            r("bytes=-10").unwrap(),
            Some(ByteRange { start: 90, end: 99 })
        );
        assert_eq!(
            r("bytes=-500").unwrap(),
            Some(ByteRange { start: 0, end: 99 })
        );
        assert_eq!(
            r("bytes=50-1000").unwrap(),
            Some(ByteRange { start: 50, end: 99 })
        );
        assert_eq!(r("items=0-1").unwrap(), None);
        assert_eq!(r("bytes=0-1,5-6").unwrap(), None);
        assert_eq!(parse_range(None, 100).unwrap(), None);
        for bad in [
            "bytes=100-",
            "bytes=5-4",
            "bytes=x-",
            "bytes=-0",
            "bytes=",
            "bytes=1",
        ] {
            assert!(
                matches!(r(bad), Err(ApiError::RangeNotSatisfiable { size: 100 })),
                "{bad}"
            );
        }
        assert!(parse_range(Some("bytes=0-0"), 0).is_err());
    }
}
