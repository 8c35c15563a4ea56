//! Tests of the pipeline's reader with real pipes: writer threads feed patterns with zero
//! pages and awkward sizes, and what the pipeline stores is compared byte for byte.

use coredump_api::CoredumpReason;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::*;
use crate::pipeline::{Captured, Output, capture};
use crate::record::CaptureState;

const ZSTD: Output = Output::Zstd {
    level: 1,
    workers: 0,
};
const NO_LIMITS: Limits = Limits {
    max_core_bytes: u64::MAX,
    min_free_bytes: 0,
};

/// A core-like pattern: every third page zero, runs of zero pages, the rest compressible
/// noise, and a tail that is not page-aligned.
fn sample(pages: usize) -> Vec<u8> {
    let mut v = vec![0u8; pages * PAGE];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for (i, page) in v.chunks_mut(PAGE).enumerate() {
        if i % 3 == 0 || (40..90).contains(&i) {
            continue;
        }
        for b in page {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x % 5) as u8;
        }
    }
    v.extend_from_slice(b"not a whole page");
    v
}

/// A pipe whose write end is fed `data` by a thread, in uneven writes, then closed. The
/// thread returns how many bytes it got into the pipe and whether all writes succeeded.
fn feed(data: Vec<u8>) -> (File, JoinHandle<(usize, bool)>) {
    let (read, write): (OwnedFd, OwnedFd) = rustix::pipe::pipe().unwrap();
    let writer = std::thread::spawn(move || {
        let mut write = File::from(write);
        let mut done = 0;
        let mut step = 1000;
        while done < data.len() {
            let end = (done + step).min(data.len());
            if write.write_all(&data[done..end]).is_err() {
                return (done, false);
            }
            done = end;
            step = step * 7 % 300_000 + 1;
        }
        (done, true)
    });
    (File::from(read), writer)
}

fn run(source: File, output: Output, limits: Limits) -> (Captured, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let released = std::cell::Cell::new(false);
    let got = capture(source, |_| released.set(true), dir.path(), output, limits).unwrap();
    assert!(released.get(), "source must be released");
    (got, dir)
}

fn stored_zstd(dir: &tempfile::TempDir) -> Vec<u8> {
    zstd::decode_all(&std::fs::read(dir.path().join("core.zst")).unwrap()[..]).unwrap()
}

#[test]
fn pipe_is_spliced_and_round_trips() {
    let input = sample(3 * CHUNK / PAGE + 17);
    let (source, writer) = feed(input.clone());
    let (got, dir) = run(source, ZSTD, NO_LIMITS);
    assert_eq!(writer.join().unwrap(), (input.len(), true));
    assert_eq!(stored_zstd(&dir), input);
    assert_eq!(got.sha256, hex::encode(Sha256::digest(&input)));
    let len = input.len() as u64;
    assert_eq!((got.raw_size, got.kept_size, got.spliced), (len, len, len));
    assert_eq!(got.state, CaptureState::Stored);
    assert_eq!(got.reason, "");
    assert_eq!(got.cause, None);
}

#[test]
fn spliced_raw_core_is_exact_and_zero_pages_are_holes() {
    let input = sample(2 * CHUNK / PAGE);
    let (source, writer) = feed(input.clone());
    let (got, dir) = run(source, Output::Raw, NO_LIMITS);
    assert!(writer.join().unwrap().1);
    assert_eq!(got.spliced, input.len() as u64);
    let path = dir.path().join("core.raw");
    assert_eq!(std::fs::read(&path).unwrap(), input);
    assert_eq!(got.sha256, hex::encode(Sha256::digest(&input)));
    let zero_pages = input.chunks_exact(PAGE).filter(|p| is_zero(p)).count() as u64;
    use std::os::unix::fs::MetadataExt;
    let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
    assert!(
        allocated <= input.len() as u64 - zero_pages * PAGE as u64 + 64 * 1024,
        "zero pages must be holes: {allocated} bytes allocated, {zero_pages} zero pages"
    );
}

#[test]
fn spliced_core_past_the_limit_keeps_the_prefix_and_drains_the_rest() {
    let input = sample(3 * CHUNK / PAGE);
    let limit = CHUNK as u64 + 5;
    let (source, writer) = feed(input.clone());
    let limits = Limits {
        max_core_bytes: limit,
        min_free_bytes: 0,
    };
    let (got, dir) = run(source, ZSTD, limits);
    // All writes succeeded: the reader never closed the pipe on the writer.
    assert_eq!(writer.join().unwrap(), (input.len(), true));
    assert_eq!(got.state, CaptureState::Truncated);
    assert!(got.reason.contains("limit"), "{}", got.reason);
    assert_eq!(got.cause, Some(CoredumpReason::SizeLimit));
    assert_eq!((got.raw_size, got.kept_size), (input.len() as u64, limit));
    assert_eq!(got.spliced, limit);
    assert_eq!(stored_zstd(&dir), &input[..limit as usize]);
    assert_eq!(
        got.sha256,
        hex::encode(Sha256::digest(&input[..limit as usize]))
    );
}

#[test]
fn spliced_core_of_exactly_the_limit_is_stored() {
    let input = sample(CHUNK / PAGE + 1);
    let (source, writer) = feed(input.clone());
    let limits = Limits {
        max_core_bytes: input.len() as u64,
        min_free_bytes: 0,
    };
    let (got, dir) = run(source, ZSTD, limits);
    assert!(writer.join().unwrap().1);
    assert_eq!(got.state, CaptureState::Stored, "{}", got.reason);
    assert_eq!(stored_zstd(&dir), input);
}

#[test]
fn writer_closing_early_stores_what_arrived() {
    let input = sample(CHUNK / PAGE * 5 / 2);
    let (read, write): (OwnedFd, OwnedFd) = rustix::pipe::pipe().unwrap();
    let sent = input[..input.len() / 2 + 3].to_vec();
    let writer = {
        let sent = sent.clone();
        std::thread::spawn(move || File::from(write).write_all(&sent).is_ok())
    };
    let (got, dir) = run(File::from(read), ZSTD, NO_LIMITS);
    assert!(writer.join().unwrap());
    assert_eq!(got.state, CaptureState::Stored);
    assert_eq!(got.raw_size, sent.len() as u64);
    assert_eq!(got.spliced, sent.len() as u64);
    assert_eq!(stored_zstd(&dir), sent);
    assert_eq!(got.sha256, hex::encode(Sha256::digest(&sent)));
}

#[test]
fn spliced_core_below_the_free_space_floor_keeps_nothing_and_drains() {
    let input = sample(CHUNK / PAGE);
    let (source, writer) = feed(input.clone());
    let limits = Limits {
        max_core_bytes: u64::MAX,
        min_free_bytes: u64::MAX / 2,
    };
    let (got, dir) = run(source, ZSTD, limits);
    assert_eq!(writer.join().unwrap(), (input.len(), true));
    assert_eq!(got.state, CaptureState::Truncated);
    assert!(got.reason.contains("free-space floor"), "{}", got.reason);
    assert_eq!(got.cause, Some(CoredumpReason::DiskFloor));
    assert_eq!((got.raw_size, got.kept_size), (input.len() as u64, 0));
    assert_eq!(stored_zstd(&dir), b"");
}

#[test]
fn regular_file_source_is_read_not_spliced() {
    let input = sample(CHUNK / PAGE + 3);
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&input).unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    let (got, dir) = run(file, ZSTD, NO_LIMITS);
    assert_eq!(got.spliced, 0);
    assert_eq!(got.kept_size, input.len() as u64);
    assert_eq!(stored_zstd(&dir), input);
}

#[test]
fn empty_pipe_is_an_empty_stored_core() {
    let (source, writer) = feed(Vec::new());
    let (got, dir) = run(source, ZSTD, NO_LIMITS);
    assert!(writer.join().unwrap().1);
    assert_eq!(got.state, CaptureState::Stored);
    assert_eq!((got.raw_size, got.kept_size), (0, 0));
    assert_eq!(stored_zstd(&dir), b"");
}

#[test]
fn spill_refusing_splice_gets_the_relayed_bytes_copied() {
    // splice(2) refuses an O_APPEND target (EINVAL) after the bytes reached the relay; the
    // copy path must take them from there. pwrite on O_APPEND appends, which is the right
    // offset for input without zero pages.
    let input: Vec<u8> = (0..2 * CHUNK + 100).map(|i| (i % 251 + 1) as u8).collect();
    let (mut source, writer) = feed(input.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill");
    let spill = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    let progress = Progress::default();
    let got = drain(&mut source, &spill, &path, &progress, NO_LIMITS).unwrap();
    assert_eq!(writer.join().unwrap(), (input.len(), true));
    assert_eq!(got.spliced, 0);
    assert_eq!(
        (got.raw_size, got.kept),
        (input.len() as u64, input.len() as u64)
    );
    assert!(got.truncation.is_none());
    assert_eq!(std::fs::read(&path).unwrap(), input);
}

#[test]
fn read_error_after_spliced_bytes_keeps_them_as_a_truncated_prefix() {
    // A non-blocking pipe left open and empty: splice fails with EAGAIN, the copy path's
    // read fails the same way, and what was spliced before is kept.
    let (read, write): (OwnedFd, OwnedFd) = rustix::pipe::pipe().unwrap();
    let sent = sample(10); // fits in the pipe: written before anyone reads
    File::from(write.try_clone().unwrap())
        .write_all(&sent)
        .unwrap();
    rustix::io::ioctl_fionbio(&read, true).unwrap();
    let (got, dir) = run(File::from(read), ZSTD, NO_LIMITS);
    drop(write);
    assert_eq!(got.state, CaptureState::Truncated);
    assert!(
        got.reason.contains("reading the core failed"),
        "{}",
        got.reason
    );
    assert_eq!(got.cause, Some(CoredumpReason::ReadError));
    assert_eq!(
        (got.raw_size, got.kept_size),
        (sent.len() as u64, sent.len() as u64)
    );
    assert_eq!(got.spliced, sent.len() as u64);
    assert_eq!(stored_zstd(&dir), sent);
}

#[test]
fn pipes_are_recognised_and_grown() {
    let (read, _write): (OwnedFd, OwnedFd) = rustix::pipe::pipe().unwrap();
    assert!(sys::is_pipe(read.as_fd()));
    assert!(!sys::is_pipe(tempfile::tempfile().unwrap().as_fd()));
    sys::grow_pipe(read.as_fd(), PIPE_SIZE);
    assert!(rustix::pipe::fcntl_getpipe_size(&read).unwrap() >= PIPE_SIZE);
}

#[test]
fn free_space_checks_fill_up_to_the_floor_never_past_it() {
    let page = PAGE as u64;
    assert_eq!(super::free_check_step(page - 1), None);
    assert_eq!(super::free_check_step(page), Some(page));
    assert_eq!(super::free_check_step(10 << 30), Some(64 << 20));
    for start in [page, 3 * page + 17, 70 << 20, 131 << 20, 10 << 30] {
        // One writer alone: each check sees what the previous steps left.
        let (mut headroom, mut checks) = (start, 0);
        while let Some(step) = super::free_check_step(headroom) {
            assert!(
                step <= headroom,
                "a step of {step} with {headroom} free above the floor"
            );
            headroom -= step;
            checks += 1;
            assert!(checks < 400, "{start}: does not converge");
        }
        assert!(
            headroom < page,
            "{start}: stopped {headroom} bytes above the floor"
        );
        println!("{start} bytes above the floor: {checks} checks");
    }
}
