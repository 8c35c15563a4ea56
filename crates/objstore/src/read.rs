//! Reading an object in bounded memory: ranged GETs whose bodies stream through a small
//! channel, never the whole object in memory.
//!
//! Reading on from where the last range ended asks for the next range, twice as long (up to
//! [`MAX_WINDOW`]): a sequential read costs a GET per 64 MiB. A seek elsewhere starts again
//! with a short range ([`SEEK_WINDOW`]), so the analysis or a `Range` download that reads a few
//! frames of a core does not pull the rest of it. Every range is asked for with the `ETag` the
//! object had when it was opened (`If-Match`): an object replaced meanwhile fails the read
//! instead of mixing two versions. Each GET has its own retry budget, and `object_store`
//! resumes a body that broke off (same `ETag`) with a ranged request of its own.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::sync::mpsc;

use crate::bridge::Bridge;

/// Length of the first range after a seek.
pub const SEEK_WINDOW: u64 = 256 * 1024;
/// Length of the first range of a read from the start ([`crate::ObjectBlobStore`]'s `open`).
pub const STREAM_WINDOW: u64 = 8 * 1024 * 1024;
/// Longest range of one GET.
pub const MAX_WINDOW: u64 = 64 * 1024 * 1024;
/// Body chunks buffered between the runtime and the reader (hyper's chunks are a few KiB to
/// a few hundred KiB).
const CHUNKS_IN_FLIGHT: usize = 8;
/// A seek forward by at most this much inside the current range reads on instead of asking
/// for a new one.
const SKIP_WITHIN: u64 = 128 * 1024;

/// One object as it was when opened.
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    pub store: Arc<dyn ObjectStore>,
    pub bridge: Arc<Bridge>,
    pub key: Key,
    /// Where the object is, for error messages (`s3://bucket/key`).
    pub url: String,
    pub size: u64,
    pub etag: Option<String>,
}

/// The body of one ranged GET, arriving chunk by chunk.
struct Body {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    /// Offset of the next byte this body yields.
    at: u64,
    /// End (exclusive) of the range asked for.
    end: u64,
}

/// A [`Read`] + [`Seek`] over one object.
pub struct ObjectReader {
    object: Opened,
    pos: u64,
    body: Option<Body>,
    /// Length of the next range.
    window: u64,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("url", &self.object.url)
            .field("size", &self.object.size)
            .field("pos", &self.pos)
            .finish()
    }
}

impl ObjectReader {
    /// A reader at offset 0 whose first range is `first_window` long.
    pub(crate) fn new(object: Opened, first_window: u64) -> Self {
        Self {
            object,
            pos: 0,
            body: None,
            window: first_window.clamp(1, MAX_WINDOW),
        }
    }

    /// Size of the object.
    pub fn size(&self) -> u64 {
        self.object.size
    }

    /// Starts the GET of `[start, end)` on the bridge and returns its body.
    fn request(&self, start: u64, end: u64) -> io::Result<Body> {
        let Opened {
            store,
            bridge,
            key,
            url,
            etag,
            ..
        } = self.object.clone();
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..end)),
            if_match: etag,
            ..GetOptions::default()
        };
        let (tx, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let fetch_url = url.clone();
        let opened = bridge
            .run(async move {
                let result = store.get_opts(&key, options).await?;
                let mut stream = result.into_stream();
                tokio::spawn(async move {
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(|e| to_io(&fetch_url, e));
                        let failed = chunk.is_err();
                        // A dropped reader stops the body.
                        if tx.send(chunk).await.is_err() || failed {
                            return;
                        }
                    }
                });
                Ok::<(), object_store::Error>(())
            })
            .map_err(|e| io::Error::other(e.to_string()))?;
        opened.map_err(|e| to_io(&url, e))?;
        Ok(Body {
            chunks,
            current: Bytes::new(),
            at: start,
            end,
        })
    }

    /// The body to read `self.pos` from: the current one if it is there (reading on over a
    /// short skip), else a new range.
    fn body_at_pos(&mut self) -> io::Result<&mut Body> {
        let size = self.object.size;
        let reusable = match &self.body {
            Some(b) => b.at <= self.pos && self.pos < b.end && self.pos - b.at <= SKIP_WITHIN,
            None => false,
        };
        if !reusable {
            let sequential = self.body.as_ref().is_some_and(|b| b.end == self.pos);
            self.window = if sequential {
                (self.window * 2).min(MAX_WINDOW)
            } else if self.body.is_some() {
                SEEK_WINDOW
            } else {
                self.window
            };
            let end = self.pos.saturating_add(self.window).min(size);
            self.body = None;
            self.body = Some(self.request(self.pos, end)?);
        }
        let url = self.object.url.clone();
        let pos = self.pos;
        let body = self
            .body
            .as_mut()
            .ok_or_else(|| io::Error::other("no body"))?;
        while body.at < pos {
            let skip = next_chunk(body, &url)?;
            if skip == 0 {
                return Err(short_read(&url, body));
            }
            let n = usize::try_from((pos - body.at).min(skip as u64)).unwrap_or(usize::MAX);
            body.current.advance(n);
            body.at += n as u64;
        }
        Ok(body)
    }
}

/// Makes sure `body.current` has bytes unless the body ended; returns how many it has.
fn next_chunk(body: &mut Body, url: &str) -> io::Result<usize> {
    while body.current.is_empty() && body.at < body.end {
        // Never `blocking_recv`: it panics when the caller is inside an async context.
        match futures::executor::block_on(body.chunks.recv()) {
            Some(Ok(chunk)) => body.current = chunk,
            Some(Err(e)) => return Err(e),
            None => return Err(short_read(url, body)),
        }
    }
    Ok(body.current.len())
}

fn short_read(url: &str, body: &Body) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "{url}: the body ended at byte {} of a range up to {}",
            body.at, body.end
        ),
    )
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.object.size {
            return Ok(0);
        }
        let url = self.object.url.clone();
        let body = self.body_at_pos()?;
        let available = next_chunk(body, &url)?;
        if available == 0 {
            return Err(short_read(&url, body));
        }
        let n = available.min(buf.len());
        buf[..n].copy_from_slice(&body.current[..n]);
        body.current.advance(n);
        body.at += n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.object.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: seek before the start", self.object.url),
            ));
        };
        self.pos = target;
        Ok(target)
    }
}

/// An `object_store` error as an I/O error naming the object; "not found" stays `NotFound`.
pub(crate) fn to_io(url: &str, e: object_store::Error) -> io::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{url}: {e}"))
}
