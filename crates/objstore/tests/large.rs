//! A core far larger than the store's memory budget, through a real server of each service
//! (SeaweedFS for S3, Azurite for Azure Blob): `put_file` of a 320 MiB file must not grow the
//! process by more than a few parts (multipart upload, parts of 8 MiB, two in flight), read
//! back byte for byte through the streaming reader (also in bounded memory), and a range from
//! the middle through the seekable reader. The tests of this binary take turns (one lock), so
//! no other test's allocations count in a peak.
#![allow(clippy::unwrap_used)]

// The blob conformance suite the filesystem store runs too (test code, not in a library).
#[path = "../../store/tests/blob_conformance/mod.rs"]
mod blob_conformance;
mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Mutex;
use std::time::Instant;

use blob_conformance::blob_bytes;
use common::Service;
use coredump_store::{BlobPath, BlobStore};

const MIB: u64 = 1024 * 1024;
/// The file: 320 MiB, plus an odd tail so the last part is short.
const SIZE: u64 = 320 * MIB + 4321;
/// Chunks of the generated content (each its own seed, so the file does not repeat).
const CHUNK: u64 = 4 * MIB;
/// Peak growth allowed for an upload or a download of the whole file.
const BUDGET: u64 = 64 * MIB;

/// The content of `[offset, offset + len)` of the test file.
fn content(offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut at = offset;
    while out.len() < len {
        let chunk = at / CHUNK;
        let data = blob_bytes(CHUNK as usize, chunk + 1);
        let from = (at % CHUNK) as usize;
        let take = (CHUNK as usize - from).min(len - out.len());
        out.extend_from_slice(&data[from..from + take]);
        at += take as u64;
    }
    out
}

/// One measurement at a time: VmHWM is the whole process's.
static ALONE: Mutex<()> = Mutex::new(());

#[test]
fn s3_a_320_mib_core_goes_up_and_down_in_bounded_memory() {
    a_320_mib_core_goes_up_and_down_in_bounded_memory(Service::S3);
}

#[test]
fn azure_a_320_mib_core_goes_up_and_down_in_bounded_memory() {
    a_320_mib_core_goes_up_and_down_in_bounded_memory(Service::Azure);
}

fn a_320_mib_core_goes_up_and_down_in_bounded_memory(service: Service) {
    let _alone = ALONE.lock().unwrap_or_else(|p| p.into_inner());
    let server = common::shared(service);
    let store = common::fresh_store(server.as_ref(), "large");
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let src = dir.path().join("core.zst");
    let mut file = std::fs::File::create(&src).unwrap();
    let mut written = 0;
    while written < SIZE {
        let len = (SIZE - written).min(CHUNK) as usize;
        file.write_all(&content(written, len)).unwrap();
        written += len as u64;
    }
    file.sync_all().unwrap();
    drop(file);
    let path = BlobPath::new("ns", "pod-uid", "app", "big.core.zst").unwrap();

    assert!(
        common::reset_peak_rss(),
        "cannot reset VmHWM (/proc/self/clear_refs): the memory bound would go unchecked"
    );
    let before = common::peak_rss();
    let started = Instant::now();
    assert_eq!(store.put_file(&path, &src).unwrap(), SIZE);
    let upload = started.elapsed();
    let upload_peak = common::peak_rss().saturating_sub(before);
    eprintln!(
        "{service:?}: put_file of {SIZE} bytes: {upload:?} ({:.1} MiB/s), peak RSS growth {:.1} MiB",
        SIZE as f64 / MIB as f64 / upload.as_secs_f64(),
        upload_peak as f64 / MIB as f64
    );
    assert!(
        upload_peak < BUDGET,
        "the upload grew the process by {upload_peak} bytes (budget {BUDGET})"
    );
    assert_eq!(store.size(&path).unwrap(), Some(SIZE));
    // The same size again is left alone (idempotent ingest): no second upload.
    let started = Instant::now();
    assert_eq!(store.put_file(&path, &src).unwrap(), SIZE);
    eprintln!("put_file again (same size): {:?}", started.elapsed());

    common::reset_peak_rss();
    let before = common::peak_rss();
    let started = Instant::now();
    let mut reader = store.open(&path).unwrap();
    let mut offset = 0u64;
    let mut buf = vec![0u8; CHUNK as usize];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]).unwrap() {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        assert!(
            buf[..filled] == content(offset, filled)[..],
            "bytes differ in the {filled} bytes at {offset}"
        );
        offset += filled as u64;
    }
    let download = started.elapsed();
    let download_peak = common::peak_rss().saturating_sub(before);
    assert_eq!(offset, SIZE, "read back {offset} bytes");
    eprintln!(
        "{service:?}: open + read + compare of {SIZE} bytes: {download:?} ({:.1} MiB/s), peak RSS growth {:.1} MiB",
        SIZE as f64 / MIB as f64 / download.as_secs_f64(),
        download_peak as f64 / MIB as f64
    );
    assert!(
        download_peak < BUDGET,
        "the download grew the process by {download_peak} bytes (budget {BUDGET})"
    );

    let mut seekable = store.open_seekable(&path).unwrap().unwrap();
    let middle = SIZE / 2 + 12_345;
    let started = Instant::now();
    seekable.seek(SeekFrom::Start(middle)).unwrap();
    let mut piece = vec![0u8; MIB as usize];
    seekable.read_exact(&mut piece).unwrap();
    assert!(
        piece == content(middle, piece.len()),
        "the middle range differs"
    );
    seekable.seek(SeekFrom::End(-10)).unwrap();
    let mut tail = Vec::new();
    seekable.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, content(SIZE - 10, 10));
    eprintln!(
        "1 MiB from the middle and the last 10 bytes: {:?}",
        started.elapsed()
    );

    store.delete(&path).unwrap();
    assert_eq!(store.size(&path).unwrap(), None);

    // The measurement itself: 48 MiB touched must show as about 48 MiB of peak growth (else
    // the bounds above proved nothing).
    common::reset_peak_rss();
    let before = common::peak_rss();
    let touched = vec![1u8; 48 * MIB as usize];
    let control = common::peak_rss().saturating_sub(before);
    assert!(touched.iter().all(|&b| b == 1));
    eprintln!(
        "control: 48 MiB touched, peak RSS growth {:.1} MiB",
        control as f64 / MIB as f64
    );
    assert!(
        control >= 40 * MIB,
        "VmHWM did not see 48 MiB: {control} bytes"
    );
}
