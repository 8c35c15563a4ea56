//! Bridging blocking readers (blob files, zstd, tar, gzip) to an async response body: a
//! blocking task writes fixed-size chunks into a small bounded channel, so memory per download
//! is bounded by `CHANNEL_CHUNKS × CHUNK` whatever the core size, and the first chunk leaves as
//! soon as it is produced. A producer that already holds its bytes in a buffer of its own (a
//! decoded core frame) hands them over as [`Bytes`] with [`ChunkWriter::send`]: no copy.

use std::io::{self, Write};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Size of one body chunk.
pub const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the producer and the connection.
pub const CHANNEL_CHUNKS: usize = 4;

/// The sending half: an `io::Write` usable from a blocking task.
pub struct ChunkWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: BytesMut,
}

/// A writer and the response body it feeds.
pub fn channel() -> (ChunkWriter, Body) {
    channel_with(CHANNEL_CHUNKS)
}

/// [`channel`] with `chunks` chunks in flight.
pub fn channel_with(chunks: usize) -> (ChunkWriter, Body) {
    let (tx, rx) = mpsc::channel(chunks.max(1));
    (
        ChunkWriter {
            tx,
            buf: BytesMut::with_capacity(CHUNK),
        },
        Body::from_stream(ReceiverStream::new(rx)),
    )
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "client went away")
}

impl ChunkWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK);
        self.tx.blocking_send(Ok(chunk)).map_err(|_| gone())
    }

    /// Aborts the response: the client sees a truncated body (never a silently short one).
    pub fn fail(mut self, err: io::Error) {
        self.buf.clear();
        let _ = self.tx.blocking_send(Err(err));
    }

    /// Sends `data` as it is, in pieces of at most [`CHUNK`] (slices of the same buffer), after
    /// whatever was written before.
    pub fn send(&mut self, mut data: Bytes) -> io::Result<()> {
        self.send_buf()?;
        while !data.is_empty() {
            let piece = data.split_to(data.len().min(CHUNK));
            self.tx.blocking_send(Ok(piece)).map_err(|_| gone())?;
        }
        Ok(())
    }

    /// Copies everything from `reader`, chunk by chunk, reading straight into the chunk buffer.
    pub fn copy_from(&mut self, reader: &mut impl io::Read, mut limit: u64) -> io::Result<u64> {
        let mut total = 0;
        while limit > 0 {
            if self.buf.len() >= CHUNK {
                self.send_buf()?;
            }
            let start = self.buf.len();
            let room = (CHUNK - start).min(usize::try_from(limit).unwrap_or(usize::MAX));
            self.buf.resize(start + room, 0);
            let n = match reader.read(&mut self.buf[start..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(e);
                }
            };
            self.buf.truncate(start + n);
            if n == 0 && room > 0 {
                break;
            }
            total += n as u64;
            limit -= n as u64;
        }
        Ok(total)
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        let _ = self.send_buf();
    }
}
