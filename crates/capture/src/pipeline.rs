//! The capture pipeline: drain a core from its source (the kernel's pipe or socket) at the
//! source's speed, then let the source go, while trailing threads hash and compress.
//!
//! Why this shape: the kernel holds the crashed process until we close our end of the pipe, and
//! inline zstd on two cores is slower than the pipe. So the reader ([`crate::splice`]) only
//! moves bytes into an unnamed spill file (with `splice(2)` when the source is a pipe) and
//! closes the source the moment it reads EOF. Behind it, through the page cache, a hasher
//! (SHA-256, sequential by nature) and a compressor (zstd, with its workers) run side by side,
//! the compressor never past the hasher, punching holes into the spill file behind itself
//! (every [`PUNCH_BATCH`] bytes) so disk use stays near the compressor's lag, not the core
//! size; when the spill file is the raw core it keeps, only the zero pages are punched.
//!
//! While the reader runs, the trailing threads are `SCHED_IDLE` ([`sys::idle_this_thread`]):
//! on a 2-core node they use only cycles the kernel's dump writer and the reader leave, so the
//! crashed process is held no longer than a plain drain would hold it; the moment the source is
//! released they get the normal policy back to finish quickly. Memory is at most three fixed
//! 1 MiB buffers plus zstd's state, whatever the core size.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::record::{CaptureState, CoreEncoding};
use crate::splice::{self, CoreSource};
use crate::{CaptureError, sys};

/// Bytes moved per step from the source and per compressor step.
pub(crate) const CHUNK: usize = 1 << 20;
/// Spill bytes the compressor gives back at once, after making zstd write out everything it
/// was given. zstd's workers hold megabytes of input in memory: punching each chunk as soon as
/// it is handed over would free disk that the compressed bytes claim again later, unseen by the
/// reader's free-space checks. Batching bounds the overlap, raw and compressed copies of at
/// most one batch, and the reader keeps that much room above the floor.
pub(crate) const PUNCH_BATCH: u64 = 16 << 20;
/// Granularity of zero detection: a whole zero page becomes a hole.
pub(crate) const PAGE: usize = 4096;
/// Nice value of the trailing thread and its zstd workers where `SCHED_IDLE` is refused.
const TRAILER_NICE: i32 = 10;

/// A name for the trailing thread of one capture, unique within the process (the socket server
/// runs several captures at once): its zstd workers inherit it, which is how their priority is
/// restored after the drain ([`sys::normal_priority_for`]). At most 15 bytes (the kernel's
/// limit for thread names).
fn trailer_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "cdtrail-{:x}",
        NEXT.fetch_add(1, Ordering::Relaxed) & 0xff_ffff
    )
}

/// What the pipeline should produce.
#[derive(Debug, Clone, Copy)]
pub enum Output {
    /// Compress to `core.zst` while draining.
    Zstd {
        /// zstd level.
        level: i32,
        /// zstd worker threads (0: compress on the trailing thread itself).
        workers: u32,
    },
    /// Keep the raw core as `core.raw` (sparse); someone compresses it later.
    Raw,
}

/// Limits the pipeline enforces while draining.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Keep at most this many bytes of core.
    pub max_core_bytes: u64,
    /// Stop keeping bytes when the filesystem's free space would drop below this.
    pub min_free_bytes: u64,
}

/// Result of one capture.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Bytes the source delivered.
    pub raw_size: u64,
    /// Bytes kept (prefix length).
    pub kept_size: u64,
    /// Size of the core file written.
    pub stored_size: u64,
    /// SHA-256 of the kept bytes.
    pub sha256: String,
    /// Encoding of the core file written.
    pub encoding: CoreEncoding,
    /// `Stored` or `Truncated`.
    pub state: CaptureState,
    /// Why it is truncated, for programs.
    pub cause: Option<coredump_api::CoredumpReason>,
    /// Why it is truncated, for people.
    pub reason: String,
    /// Time from pipeline start until the source was released.
    pub held: Duration,
    /// Of the kept bytes, those moved by `splice(2)` (0 when the source was read and copied).
    pub spliced: u64,
}

/// Shared between the reader and the trailing threads (the compressor and the hasher).
/// Lock-free on purpose: the trailers run at idle priority, and a lock one of them held while
/// preempted would stall the reader, and with it the crashed process.
#[derive(Default)]
pub(crate) struct Progress {
    /// Bytes of the spill file that are final.
    written: AtomicU64,
    /// The reader has finished (EOF, error or limit) and `written` will not grow.
    finished: AtomicBool,
    /// Bytes of the spill file hashed so far: the compressor never goes past them, so it never
    /// punches a hole the hasher has still to read.
    hashed: AtomicU64,
    /// The trailing threads ([`COMPRESSOR`], [`HASHER`]), to wake when there is more.
    waiters: [OnceLock<Thread>; 2],
}

/// [`Progress::wait_past`]'s caller: the compressor (or, for a raw core, the zero-page puncher).
const COMPRESSOR: usize = 0;
/// [`Progress::wait_past`]'s caller: the hasher.
const HASHER: usize = 1;

impl Progress {
    /// Reader side: the first `written` bytes of the spill file are final.
    pub(crate) fn publish(&self, written: u64) {
        self.written.store(written, Ordering::Release);
        self.wake();
    }

    /// Reader side: `written` will not grow any more.
    fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        for waiter in self.waiters.iter().filter_map(OnceLock::get) {
            waiter.unpark();
        }
    }

    /// Hasher side: the first `pos` bytes are hashed.
    fn hashed_to(&self, pos: u64) {
        self.hashed.store(pos, Ordering::Release);
        if let Some(compressor) = self.waiters[COMPRESSOR].get() {
            compressor.unpark();
        }
    }

    /// Trailer side: waits until bytes past `pos` are final (and, for the [`COMPRESSOR`],
    /// hashed) and returns where they end, or `None` once the reader has finished and
    /// everything was seen. Until the reader finishes only whole pages are handed out, so
    /// `pos` stays page-aligned and zero pages can be found in place. Each of `who` must be
    /// one thread only.
    fn wait_past(&self, pos: u64, who: usize) -> Option<u64> {
        let _ = self.waiters[who].set(std::thread::current());
        loop {
            // `finished` first: once it is set, `written` is final.
            let finished = self.finished.load(Ordering::Acquire);
            let written = self.written.load(Ordering::Acquire);
            let mut ready = if finished {
                written
            } else {
                written - written % PAGE as u64
            };
            if who == COMPRESSOR {
                ready = ready.min(self.hashed.load(Ordering::Acquire));
            }
            if ready > pos {
                return Some(ready);
            }
            if finished && written <= pos {
                return None;
            }
            std::thread::park();
        }
    }
}

/// Runs the pipeline: drains `source` into `dir` (which must exist and be private to this
/// capture), calls `release` with the source as soon as it hit EOF, and writes `core.zst` or
/// `core.raw` there. Never stops reading early: even past a limit the source is drained, so the
/// kernel is never left blocked. A source that is a pipe is spliced, anything else read.
pub fn capture<R: CoreSource>(
    mut source: R,
    release: impl FnOnce(R),
    dir: &Path,
    output: Output,
    limits: Limits,
) -> Result<Captured, CaptureError> {
    let started = Instant::now();
    let spill_path = dir.join(crate::record::CORE_RAW);
    let spill = match output {
        Output::Zstd { .. } => sys::unnamed_file_in(dir)?,
        Output::Raw => crate::fsutil::create_new_nofollow_rw(&spill_path)?,
    };
    let spill = Arc::new(spill);
    let progress = Arc::new(Progress::default());

    let name = trailer_name();
    let trailer = {
        let spill = Arc::clone(&spill);
        let progress = Arc::clone(&progress);
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || trail(&spill, &progress, &dir, output))
            .map_err(|e| CaptureError::io("spawn trailing thread for", dir_of(&spill_path), e))?
    };

    let drained = splice::drain(&mut source, &spill, &spill_path, &progress, limits);
    // Whatever happened, the kernel must get its process back now.
    release(source);
    let held = started.elapsed();
    // The trailer and its workers may use the whole machine now. `finish` first: a trailer
    // that makes itself idle only after this reset sees it and restores itself.
    progress.finish();
    sys::normal_priority_for(&name);
    let trailed = trailer.join().unwrap_or_else(|_| {
        Err(CaptureError::Usage(
            "trailing compressor thread panicked".into(),
        ))
    });
    let drained = drained?;
    let (stored_size, sha256) = trailed?;
    Ok(Captured {
        raw_size: drained.raw_size,
        kept_size: drained.kept,
        stored_size,
        sha256,
        encoding: match output {
            Output::Zstd { .. } => CoreEncoding::Zstd,
            Output::Raw => CoreEncoding::Raw,
        },
        state: if drained.truncation.is_some() {
            CaptureState::Truncated
        } else {
            CaptureState::Stored
        },
        cause: drained.truncation.as_ref().map(|t| t.cause),
        reason: drained.truncation.map(|t| t.reason).unwrap_or_default(),
        held,
        spliced: drained.spliced,
    })
}

fn dir_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Whether `block` is all zero bytes.
pub(crate) fn is_zero(block: &[u8]) -> bool {
    let mut words = block.chunks_exact(16);
    // Compared as u128 words: the compiler turns this into wide vector compares.
    words
        .by_ref()
        .all(|w| w.iter().fold(0u8, |acc, &b| acc | b) == 0)
        && words.remainder().iter().all(|&b| b == 0)
}

/// Trailing side: compresses the spill file as it grows (or punches its zero pages when it is
/// the raw core kept), while a hasher thread of the same name hashes ahead of it: SHA-256 is
/// sequential, and on the compressor's thread it came on top of every frame's compression.
/// Returns the stored size and the hex SHA-256 of the kept bytes.
fn trail(
    spill: &File,
    progress: &Progress,
    dir: &Path,
    output: Output,
) -> Result<(u64, String), CaptureError> {
    let zst_path = dir.join(crate::record::CORE_ZST);
    let name = std::thread::current().name().unwrap_or_default().to_owned();
    // zstd's workers and the hasher inherit this from the thread that starts them.
    sys::idle_this_thread(TRAILER_NICE);
    if progress.finished.load(Ordering::Acquire) {
        // The drain ended before this thread went idle, and its reset came too early.
        sys::normal_priority_for(&name);
    }
    std::thread::scope(|scope| {
        let hasher = std::thread::Builder::new()
            .name(name.clone())
            .spawn_scoped(scope, || hash(spill, progress))
            .map_err(|e| CaptureError::io("spawn hashing thread for", dir, e))?;
        let stored = compress(spill, progress, &zst_path, output);
        // A failed compressor stops waiting for the hasher: let the hasher end too.
        let hashed = hasher
            .join()
            .unwrap_or_else(|_| Err(CaptureError::Usage("hashing thread panicked".into())))?;
        Ok((stored?, hashed))
    })
}

/// The hasher: the hex SHA-256 of the spill file, read as it becomes final. A hasher that
/// fails lets the compressor run on to the end (it waits for nothing more).
fn hash(spill: &File, progress: &Progress) -> Result<String, CaptureError> {
    let hashed = hash_spill(spill, progress);
    if hashed.is_err() {
        progress.hashed_to(u64::MAX);
    }
    hashed
}

fn hash_spill(spill: &File, progress: &Progress) -> Result<String, CaptureError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    while let Some(available) = progress.wait_past(pos, HASHER) {
        while pos < available {
            let len = ((available - pos) as usize).min(CHUNK);
            read_back(spill, &mut buf[..len], pos)
                .map_err(|e| CaptureError::io("read back", Path::new("spill file"), e))?;
            hasher.update(&buf[..len]);
            pos += len as u64;
            progress.hashed_to(pos);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The compressor: writes `core.zst` from the spill file behind the hasher, punching holes
/// behind itself; or, for a raw core, punches its zero pages. Returns the stored size.
fn compress(
    spill: &File,
    progress: &Progress,
    zst_path: &Path,
    output: Output,
) -> Result<u64, CaptureError> {
    let mut encoder = match output {
        Output::Zstd { level, workers } => {
            let file = crate::fsutil::create_new_nofollow(zst_path)?;
            // Independent frames plus a seek table: a Range request or the analysis of one
            // page later decodes one frame, not the whole core (coredump_seekable).
            let enc = coredump_seekable::SeekableWriter::new(file, level, workers)
                .map_err(|e| CaptureError::io("start zstd for", zst_path, e))?;
            Some(enc)
        }
        Output::Raw => None,
    };
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    let mut punched = 0u64;
    while let Some(available) = progress.wait_past(pos, COMPRESSOR) {
        while pos < available {
            let len = ((available - pos) as usize).min(CHUNK);
            read_back(spill, &mut buf[..len], pos)
                .map_err(|e| CaptureError::io("read back", zst_path, e))?;
            if let Some(enc) = encoder.as_mut() {
                enc.write_all(&buf[..len])
                    .map_err(|e| CaptureError::io("compress into", zst_path, e))?;
                let end = pos + len as u64;
                if end - punched >= PUNCH_BATCH {
                    // Once zstd has written these bytes out (and the hasher read them, which
                    // `wait_past` guarantees), give the disk and page cache back.
                    enc.flush()
                        .map_err(|e| CaptureError::io("compress into", zst_path, e))?;
                    sys::punch_hole(spill, punched, end - punched);
                    punched = end;
                }
            } else {
                // This file is the raw core kept: spliced zero pages become holes (the hasher
                // reads a hole as the zeros it was).
                punch_zero_pages(spill, pos, &buf[..len]);
            }
            pos += len as u64;
        }
    }
    match encoder {
        Some(enc) => {
            let file = enc
                .finish()
                .map_err(|e| CaptureError::io("finish", zst_path, e))?;
            file.sync_all()
                .map_err(|e| CaptureError::io("fsync", zst_path, e))?;
            Ok(file
                .metadata()
                .map_err(|e| CaptureError::io("stat", zst_path, e))?
                .len())
        }
        None => {
            spill
                .sync_all()
                .map_err(|e| CaptureError::io("fsync", zst_path, e))?;
            Ok(pos)
        }
    }
}

/// Punches a hole for every run of whole zero pages in `data`, which sits at `pos` (page-aligned)
/// of `spill`. Best effort, like [`sys::punch_hole`].
fn punch_zero_pages(spill: &File, pos: u64, data: &[u8]) {
    let mut run: Option<usize> = None;
    for (i, page) in data.chunks_exact(PAGE).enumerate() {
        match (is_zero(page), run) {
            (true, None) => run = Some(i),
            (false, Some(first)) => {
                punch_pages(spill, pos, first, i);
                run = None;
            }
            _ => {}
        }
    }
    if let Some(first) = run {
        punch_pages(spill, pos, first, data.len() / PAGE);
    }
}

/// Punches pages `first..end` of the chunk at `pos`.
fn punch_pages(spill: &File, pos: u64, first: usize, end: usize) {
    sys::punch_hole(
        spill,
        pos + (first * PAGE) as u64,
        ((end - first) * PAGE) as u64,
    );
}

/// Reads `buf.len()` bytes at `pos` of the spill file. Bytes past its current end are zero: the
/// copying reader skips trailing zero pages and sets the final length only at EOF.
fn read_back(spill: &File, buf: &mut [u8], pos: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match spill.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                return Ok(());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: Vec<u8>, output: Output, limits: Limits) -> (Captured, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let released = std::cell::Cell::new(false);
        let got = capture(
            std::io::Cursor::new(input),
            |_| released.set(true),
            dir.path(),
            output,
            limits,
        )
        .unwrap();
        assert!(released.get(), "source must be released");
        (got, dir)
    }

    fn sample(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for (i, chunk) in v.chunks_mut(PAGE).enumerate() {
            if i % 3 == 0 {
                continue; // zero page
            }
            for b in chunk {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = (x % 7) as u8; // compressible but not trivial
            }
        }
        v.extend_from_slice(b"tail-not-page-aligned");
        v
    }

    const NO_LIMITS: Limits = Limits {
        max_core_bytes: u64::MAX,
        min_free_bytes: 0,
    };

    #[test]
    fn zstd_output_round_trips_and_hashes_input() {
        let input = sample(5 * CHUNK + 123);
        for workers in [0, 2] {
            let (got, dir) = run(input.clone(), Output::Zstd { level: 1, workers }, NO_LIMITS);
            let stored = std::fs::read(dir.path().join("core.zst")).unwrap();
            assert_eq!(stored.len() as u64, got.stored_size);
            assert_eq!(zstd::decode_all(&stored[..]).unwrap(), input);
            let table = coredump_seekable::SeekTable::read(
                &mut std::io::Cursor::new(&stored),
                stored.len() as u64,
            )
            .unwrap()
            .expect("the core is seekable zstd");
            assert_eq!(table.decompressed_len(), input.len() as u64);
            assert_eq!(got.sha256, hex::encode(Sha256::digest(&input)));
            assert_eq!(
                (got.raw_size, got.kept_size),
                (input.len() as u64, input.len() as u64)
            );
            assert_eq!(got.state, CaptureState::Stored);
            assert_eq!(got.spliced, 0, "an in-memory source is read, not spliced");
            assert!(
                !dir.path().join("core.raw").exists(),
                "spill file must be unnamed"
            );
        }
    }

    #[test]
    fn raw_output_is_sparse_and_exact() {
        let mut input = vec![0u8; 8 * PAGE];
        input[5 * PAGE + 7] = 42;
        let (got, dir) = run(input.clone(), Output::Raw, NO_LIMITS);
        let path = dir.path().join("core.raw");
        assert_eq!(std::fs::read(&path).unwrap(), input);
        assert_eq!(got.encoding, CoreEncoding::Raw);
        use std::os::unix::fs::MetadataExt;
        let blocks = std::fs::metadata(&path).unwrap().blocks();
        assert!(
            blocks * 512 < input.len() as u64,
            "zero pages must be holes ({blocks} blocks)"
        );
    }

    #[test]
    fn size_limit_keeps_prefix_and_drains_all() {
        let input = sample(3 * CHUNK);
        let limit = CHUNK as u64 + 5;
        let limits = Limits {
            max_core_bytes: limit,
            min_free_bytes: 0,
        };
        let (got, dir) = run(
            input.clone(),
            Output::Zstd {
                level: 1,
                workers: 0,
            },
            limits,
        );
        assert_eq!(got.state, CaptureState::Truncated);
        assert_eq!(got.raw_size, input.len() as u64);
        assert_eq!(got.kept_size, limit);
        let stored = std::fs::read(dir.path().join("core.zst")).unwrap();
        assert_eq!(
            zstd::decode_all(&stored[..]).unwrap(),
            &input[..limit as usize]
        );
        assert!(got.reason.contains("limit"), "{}", got.reason);
        assert_eq!(got.cause, Some(coredump_api::CoredumpReason::SizeLimit));
    }

    #[test]
    fn free_space_floor_keeps_nothing_more() {
        let input = sample(CHUNK);
        let limits = Limits {
            max_core_bytes: u64::MAX,
            min_free_bytes: u64::MAX / 2,
        };
        let (got, _dir) = run(
            input.clone(),
            Output::Zstd {
                level: 1,
                workers: 0,
            },
            limits,
        );
        assert_eq!(got.state, CaptureState::Truncated);
        assert_eq!(got.kept_size, 0);
        assert_eq!(got.raw_size, input.len() as u64);
        assert!(got.reason.contains("free-space floor"), "{}", got.reason);
        assert_eq!(got.cause, Some(coredump_api::CoredumpReason::DiskFloor));
    }

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0; 4096]));
        let mut page = [0u8; 4096];
        page[4095] = 1;
        assert!(!is_zero(&page));
        assert!(!is_zero(&[0, 0, 1]));
        assert!(is_zero(&[0, 0, 0]));
    }
}
