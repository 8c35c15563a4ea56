//! The reader side of the capture pipeline: moves a core from its source into the spill file as
//! fast as the source delivers it, because the crashed process is held until the reader is done.
//!
//! When the source is a pipe (the kernel's core pipe) the bytes go pipe -> spill file with
//! `splice(2)`: the kernel copies them straight into the page cache, with no user-space buffer
//! and no per-page scan on the held path. Zero pages therefore reach the spill file as data;
//! the trailing thread, which reads everything anyway, punches them out behind itself. Other
//! sources (the coredump socket, in-memory readers, regular files), and filesystems that refuse
//! splice, take the read-and-pwrite path, which skips whole zero pages itself.
//!
//! Either way the reader keeps at most `max_core_bytes`, stops keeping at the free-space floor,
//! and always reads on to EOF: the kernel is never left blocked on a full pipe.

use std::fs::File;
use std::io::{Cursor, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use coredump_api::CoredumpReason;

use crate::pipeline::{CHUNK, Limits, PAGE, Progress, is_zero};
use crate::socket::identity::HeadTap;
use crate::{CaptureError, sys};

/// Most bytes kept between two checks of the free-space floor. Nearer the floor the checks come
/// closer together (see [`free_check_step`]), so the reader alone never takes the filesystem
/// below the floor yet fills it up to the floor.
const FREE_CHECK_INTERVAL: u64 = 64 << 20;
/// Capacity asked of the source pipe (best effort). The kernel's default of 64 KiB costs a
/// wake-up of the reader and of the dumping task every 16 pages.
const PIPE_SIZE: usize = 1 << 20;

/// A core's source as the pipeline sees it: bytes to read and, when it is a plain file
/// descriptor, the descriptor the bytes can be spliced from.
pub trait CoreSource: Read {
    /// The descriptor under this reader, when bytes may be moved from it without passing
    /// through [`Read::read`]. The pipeline splices only when it is a pipe and reads otherwise.
    /// Wrappers that must see every byte keep the default, `None`.
    fn splice_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

impl CoreSource for File {
    fn splice_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

impl<T: AsRef<[u8]>> CoreSource for Cursor<T> {}

/// The tap records the head of the core as it is read: it must see every byte.
impl<R: Read> CoreSource for HeadTap<R> {}

/// What the reader did.
pub(crate) struct Drained {
    /// Bytes the source delivered.
    pub raw_size: u64,
    /// Bytes kept in the spill file (a prefix of the core).
    pub kept: u64,
    /// Of the kept bytes, those moved by `splice(2)`.
    pub spliced: u64,
    /// Why the core is cut short, if it is.
    pub truncation: Option<Truncation>,
}

/// Why a core is cut short: the typed cause and the text for the record.
#[derive(Debug, Clone)]
pub(crate) struct Truncation {
    /// For programs.
    pub cause: CoredumpReason,
    /// For people.
    pub reason: String,
}

impl Truncation {
    fn new(cause: CoredumpReason, reason: String) -> Truncation {
        Truncation { cause, reason }
    }

    fn read_failed(e: &std::io::Error) -> Truncation {
        Truncation::new(
            CoredumpReason::ReadError,
            format!("reading the core failed: {e}"),
        )
    }
}

/// Outcome of one step moving kept bytes.
enum Step {
    /// This many bytes are in the spill file now.
    Moved(usize),
    /// The source is at EOF.
    Eof,
    /// Reading the source failed: what was kept is a prefix.
    ReadFailed(std::io::Error),
}

/// Drains `source` to EOF into `spill`, keeping what the limits allow and publishing the kept
/// length in `progress` as it grows (in steps of about [`CHUNK`]) for the trailing thread.
pub(crate) fn drain<R: CoreSource>(
    source: &mut R,
    spill: &File,
    spill_path: &Path,
    progress: &Progress,
    limits: Limits,
) -> Result<Drained, CaptureError> {
    let mut splicer = source.splice_fd().and_then(Splicer::for_source);
    // Only the copy path and the discarding past a limit need a buffer: allocated on first use.
    let mut buf = Vec::new();
    let mut raw_size = 0u64;
    let mut kept = 0u64;
    let mut published = 0u64;
    let mut next_free_check = 0u64;
    // Why nothing more is kept; it becomes the truncation only if more bytes do arrive.
    let mut stop: Option<Truncation> = None;
    let mut truncation: Option<Truncation> = None;
    loop {
        if stop.is_none() && kept >= limits.max_core_bytes {
            stop = Some(Truncation::new(
                CoredumpReason::SizeLimit,
                format!(
                    "core larger than the limit of {} bytes",
                    limits.max_core_bytes
                ),
            ));
        }
        if stop.is_none() && kept >= next_free_check {
            let free =
                sys::free_bytes(spill).map_err(|e| CaptureError::io("statvfs", spill_path, e))?;
            // The compressor may hold up to a batch of what is kept twice, raw and compressed,
            // for a moment: keep room for that copy too.
            let headroom = free
                .saturating_sub(limits.min_free_bytes)
                .saturating_sub(kept.min(crate::pipeline::PUNCH_BATCH + CHUNK as u64));
            match free_check_step(headroom) {
                Some(step) => next_free_check = kept + step,
                None => {
                    stop = Some(Truncation::new(
                        CoredumpReason::DiskFloor,
                        format!(
                            "free-space floor reached: {free} bytes free, floor {}",
                            limits.min_free_bytes
                        ),
                    ))
                }
            }
        }
        if let Some(why) = &stop {
            // Past a limit: count the rest and drop it, so the kernel can finish.
            match read_some(source, buffer(&mut buf, CHUNK)) {
                Ok(0) => break,
                Ok(n) => {
                    raw_size += n as u64;
                    truncation.get_or_insert_with(|| why.clone());
                }
                Err(e) => {
                    truncation.get_or_insert_with(|| Truncation::read_failed(&e));
                    break;
                }
            }
            continue;
        }
        let len = (CHUNK as u64)
            .min(limits.max_core_bytes - kept)
            .min(next_free_check - kept) as usize;
        let step = match (&mut splicer, source.splice_fd()) {
            (Some(s), Some(fd)) if s.working => s.step(fd, spill, kept, len, &mut buf),
            _ => copy_step(source, buffer(&mut buf, len), spill, kept),
        }
        .map_err(|e| CaptureError::io("write", spill_path, e))?;
        match step {
            Step::Moved(n) => {
                raw_size += n as u64;
                kept += n as u64;
                if kept - published >= CHUNK as u64 {
                    progress.publish(kept);
                    published = kept;
                }
            }
            Step::Eof => break,
            Step::ReadFailed(e) => {
                // A broken source ends the core here; what we have is a prefix.
                truncation = Some(Truncation::read_failed(&e));
                break;
            }
        }
    }
    progress.publish(kept);
    // The copy path skips trailing zero pages: give the file its full length.
    spill
        .set_len(kept)
        .map_err(|e| CaptureError::io("truncate", spill_path, e))?;
    Ok(Drained {
        raw_size,
        kept,
        spliced: splicer.map_or(0, |s| s.spliced),
        truncation,
    })
}

/// How many bytes may be kept before the next free-space check, given `headroom` bytes free
/// above the floor: half the headroom in whole pages, at most [`FREE_CHECK_INTERVAL`]; `None`
/// when not even a page fits. Taking half leaves room for a second capture deciding on the same
/// reading, and the steps shrink geometrically, so a core fills the space up to the floor in a
/// few dozen checks instead of stopping a whole interval above it.
fn free_check_step(headroom: u64) -> Option<u64> {
    let page = PAGE as u64;
    if headroom < page {
        return None;
    }
    Some((headroom / 2 / page * page).clamp(page, FREE_CHECK_INTERVAL))
}

/// The first `len` bytes of `buf`, grown to [`CHUNK`] on first use.
fn buffer(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
    &mut buf[..len.min(CHUNK)]
}

/// Moves kept bytes from a source pipe into the spill file with `splice(2)`.
///
/// `splice(2)` into a file holds the pipe's lock while it writes the page cache, so splicing
/// straight from the kernel's pipe would stall the dumping task on every page it writes. The
/// bytes go through a private relay pipe instead: moving pipe buffers between pipes is a pointer
/// move, and the dumping task keeps filling its pipe while the relay is written out.
struct Splicer {
    /// Our pipe (read end, write end) between the source and the spill file; `None` if none
    /// could be made (the bytes are then spliced straight from the source).
    relay: Option<(OwnedFd, OwnedFd)>,
    /// False once splicing failed: the copy path takes over.
    working: bool,
    /// Bytes moved by splicing.
    spliced: u64,
}

impl Splicer {
    /// A splicer for `fd` if it is a pipe, with the pipe grown to [`PIPE_SIZE`].
    fn for_source(fd: BorrowedFd<'_>) -> Option<Splicer> {
        if !sys::is_pipe(fd) {
            return None;
        }
        sys::grow_pipe(fd, PIPE_SIZE);
        let relay = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .ok()
            .inspect(|(read, _)| sys::grow_pipe(read.as_fd(), PIPE_SIZE));
        Some(Splicer {
            relay,
            working: true,
            spliced: 0,
        })
    }

    /// Moves up to `len` bytes from the pipe `source` to `spill` at `offset`. When splicing
    /// fails it stops working and this step falls back to [`copy_step`] (after copying out what
    /// the relay holds). Only a failed write is an error.
    fn step(
        &mut self,
        source: BorrowedFd<'_>,
        spill: &File,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<Step> {
        let Some((relay_read, relay_write)) = &self.relay else {
            return match splice(source, spill, Some(offset), len) {
                Ok(0) => Ok(Step::Eof),
                Ok(n) => {
                    self.spliced += n as u64;
                    Ok(Step::Moved(n))
                }
                Err(e) => {
                    self.working = splice_failed(e);
                    copy_step(&mut PipeReader(source), buffer(buf, len), spill, offset)
                }
            };
        };
        let n = match splice(source, relay_write, None, len) {
            Ok(0) => return Ok(Step::Eof),
            Ok(n) => n,
            Err(e) => {
                // Nothing was taken from the source: it can be read as it is.
                self.working = splice_failed(e);
                return copy_step(&mut PipeReader(source), buffer(buf, len), spill, offset);
            }
        };
        let mut moved = 0;
        while moved < n {
            match splice(relay_read, spill, Some(offset + moved as u64), n - moved) {
                Ok(0) => break,
                Ok(k) => moved += k,
                Err(e) => {
                    self.working = splice_failed(e);
                    break;
                }
            }
        }
        self.spliced += moved as u64;
        if moved < n {
            // The rest waits in the relay: copy it out. Failing to read our own pipe is ours to
            // report, not a short core.
            let rest = buffer(buf, n - moved);
            PipeReader(relay_read.as_fd()).read_exact(rest)?;
            write_sparse(spill, offset + moved as u64, rest)?;
        }
        Ok(Step::Moved(n))
    }
}

/// Notes why splicing stopped and returns `false` (splicing no longer works). EINVAL and ENOSYS
/// mean this kernel or filesystem cannot splice here; anything else (ENOSPC, EIO, EAGAIN) does
/// not say which side failed, so the copy path retries and reports a read failure as truncation,
/// a write failure as an error.
fn splice_failed(error: rustix::io::Errno) -> bool {
    if error != rustix::io::Errno::INVAL && error != rustix::io::Errno::NOSYS {
        tracing::debug!(%error, "splicing the core failed; reading and copying instead");
    }
    false
}

/// `read(2)` on a borrowed pipe descriptor.
struct PipeReader<'a>(BorrowedFd<'a>);

impl Read for PipeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        rustix::io::read(self.0, buf).map_err(Into::into)
    }
}

/// `splice(2)` of up to `len` bytes from `from` to `to` (at `offset` if given), retried when
/// interrupted.
fn splice(
    from: impl AsFd,
    to: impl AsFd,
    offset: Option<u64>,
    len: usize,
) -> rustix::io::Result<usize> {
    loop {
        let mut at = offset;
        match rustix::pipe::splice(
            &from,
            None,
            &to,
            at.as_mut(),
            len,
            rustix::pipe::SpliceFlags::empty(),
        ) {
            Err(rustix::io::Errno::INTR) => {}
            other => return other,
        }
    }
}

/// Reads up to `buf.len()` bytes from `source` and writes them to `spill` at `offset`, leaving
/// whole zero pages as holes. Only a failed write is an error.
fn copy_step<R: Read>(
    source: &mut R,
    buf: &mut [u8],
    spill: &File,
    offset: u64,
) -> std::io::Result<Step> {
    let n = match read_some(source, buf) {
        Ok(0) => return Ok(Step::Eof),
        Ok(n) => n,
        Err(e) => return Ok(Step::ReadFailed(e)),
    };
    write_sparse(spill, offset, &buf[..n])?;
    Ok(Step::Moved(n))
}

/// One `read`, retried when interrupted.
fn read_some<R: Read>(source: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match source.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Writes `data` at `offset`, skipping whole zero pages (they stay holes).
fn write_sparse(file: &File, offset: u64, data: &[u8]) -> std::io::Result<()> {
    let page_at = |i: usize| &data[i..(i + PAGE).min(data.len())];
    let mut start = 0;
    while start < data.len() {
        while start < data.len() && is_zero(page_at(start)) {
            start += PAGE;
        }
        if start >= data.len() {
            break;
        }
        let mut end = start;
        while end < data.len() && !is_zero(page_at(end)) {
            end += PAGE;
        }
        let end = end.min(data.len());
        file.write_all_at(&data[start..end], offset + start as u64)?;
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
