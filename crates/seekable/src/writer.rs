//! Writing a seekable zstd file: a zstd stream that ends its frame every `frame_size` bytes and
//! records each frame's sizes for the table written by [`SeekableWriter::finish`].

use std::io::{self, Write};

use zstd::stream::raw::{CParameter, Encoder, InBuffer, Operation, OutBuffer};

use crate::FRAME_SIZE;
use crate::table::SeekTable;

/// Input bytes per zstd job when compressing with workers.
const JOB_SIZE: u32 = 1 << 20;

/// Compressed output is handed to the inner writer in pieces of this size.
const OUT_BUF: usize = 256 << 10;

/// A `Write` producing the seekable format (see the crate docs). Like zstd's own writer it must
/// be finished: [`SeekableWriter::finish`] ends the last frame and appends the seek table.
pub struct SeekableWriter<W: Write> {
    inner: W,
    encoder: Encoder<'static>,
    frame_size: u64,
    /// Decompressed bytes in the current frame.
    in_frame: u64,
    /// Compressed bytes written so far, and at the current frame's start.
    written: u64,
    frame_start: u64,
    sizes: Vec<(u32, u32)>,
    out: Vec<u8>,
}

impl<W: Write> SeekableWriter<W> {
    /// A writer at zstd `level` with `workers` compression threads (0: on the caller's thread),
    /// every frame carrying its content checksum, frames of [`FRAME_SIZE`].
    pub fn new(inner: W, level: i32, workers: u32) -> io::Result<Self> {
        Self::with_frame_size(inner, level, workers, FRAME_SIZE)
    }

    /// [`SeekableWriter::new`] with another frame size (tests, benchmarks).
    pub fn with_frame_size(
        inner: W,
        level: i32,
        workers: u32,
        frame_size: usize,
    ) -> io::Result<Self> {
        let mut encoder = Encoder::new(level)?;
        encoder.set_parameter(CParameter::ChecksumFlag(true))?;
        if workers > 0 {
            encoder.set_parameter(CParameter::NbWorkers(workers))?;
            // zstd's default job at level 1 is 2 MiB, and its buffer pools hold a few jobs per
            // worker: 1 MiB jobs keep a 4 MiB frame split among the workers and halve that
            // memory, for a stored size within 1 % (see the capture benchmark).
            encoder.set_parameter(CParameter::JobSize(JOB_SIZE))?;
        }
        Ok(SeekableWriter {
            inner,
            encoder,
            frame_size: frame_size.clamp(1, u32::MAX as usize) as u64,
            in_frame: 0,
            written: 0,
            frame_start: 0,
            sizes: Vec::new(),
            out: vec![0u8; OUT_BUF],
        })
    }

    /// Writes what the encoder put into `out[..n]`.
    fn emit(&mut self, n: usize) -> io::Result<()> {
        self.inner.write_all(&self.out[..n])?;
        self.written += n as u64;
        Ok(())
    }

    /// Ends the current frame (when it holds anything) and records it.
    fn end_frame(&mut self) -> io::Result<()> {
        if self.in_frame == 0 {
            return Ok(());
        }
        loop {
            let mut out = std::mem::take(&mut self.out);
            let (left, n) = {
                let mut ob = OutBuffer::around(&mut out[..]);
                let left = self.encoder.finish(&mut ob, true)?;
                (left, ob.pos())
            };
            self.out = out;
            self.emit(n)?;
            if left == 0 {
                break;
            }
        }
        let compressed = self.written - self.frame_start;
        let size =
            |v: u64| u32::try_from(v).map_err(|_| io::Error::other("zstd frame larger than 4 GiB"));
        self.sizes.push((size(compressed)?, size(self.in_frame)?));
        self.frame_start = self.written;
        self.in_frame = 0;
        self.encoder.reinit()
    }

    /// Ends the last frame, appends the seek table and returns the inner writer (flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.end_frame()?;
        let table = SeekTable::encode(&self.sizes);
        self.inner.write_all(&table)?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

impl<W: Write> Write for SeekableWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let room = (self.frame_size - self.in_frame).min(buf.len() as u64) as usize;
        let mut input = InBuffer::around(&buf[..room]);
        while input.pos() < room {
            let mut out = std::mem::take(&mut self.out);
            let n = {
                let mut ob = OutBuffer::around(&mut out[..]);
                self.encoder.run(&mut input, &mut ob)?;
                ob.pos()
            };
            self.out = out;
            self.emit(n)?;
        }
        self.in_frame += room as u64;
        if self.in_frame == self.frame_size {
            self.end_frame()?;
        }
        Ok(room)
    }

    /// Makes the encoder write out everything it was given so far (the frame goes on).
    fn flush(&mut self) -> io::Result<()> {
        loop {
            let mut out = std::mem::take(&mut self.out);
            let (left, n) = {
                let mut ob = OutBuffer::around(&mut out[..]);
                let left = self.encoder.flush(&mut ob)?;
                (left, ob.pos())
            };
            self.out = out;
            self.emit(n)?;
            if left == 0 {
                break;
            }
        }
        self.inner.flush()
    }
}
