//! Transfer benchmark of the blob stores (`cargo bench -p coredump-objstore --bench transfer`):
//! a stored core of 1 GiB (`BENCH_CORE_MIB` to change; incompressible, as a zstd blob is) is
//! uploaded from a spool file with `put_file` (what the agent does after a crash) and read back
//! whole with `open` (what the API server streams for `core` and `dump`), through each backend
//! on loopback: S3 (SeaweedFS), Azure Blob (Azurite), GCS (fake-gcs-server, reads only: it
//! refuses `object_store`'s upload, so its object is planted through its own API). The
//! baseline, measured in the same run, is the filesystem store on the same disk: its
//! `put_file` is the ingest time of a node-local install.
//!
//! Prints, per backend, medians of `BENCH_RUNS` (default 3) runs: upload and download time,
//! their ratio to the filesystem store's, and the peak RSS of this process during each (the
//! store runs in-process, as in the agent and the API server; the process is the benchmark and
//! the store, nothing else). Targets of issue 13: upload within 1.5x of the filesystem ingest,
//! peak RSS at most 64 MiB.

// A benchmark is test code: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::Service;
use coredump_store::fs_blob::FsBlobStore;
use coredump_store::{BlobPath, BlobStore};

const MIB: u64 = 1024 * 1024;

/// One backend's medians.
struct Row {
    name: &'static str,
    upload: Option<Duration>,
    upload_rss: u64,
    download: Duration,
    download_rss: u64,
}

/// Writes `size` bytes of incompressible content (a stored core is zstd output).
fn write_source(path: &Path, size: u64) {
    let mut file =
        std::io::BufWriter::with_capacity(MIB as usize, std::fs::File::create(path).unwrap());
    let mut block = vec![0u8; MIB as usize];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut written = 0;
    while written < size {
        for word in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        let len = (size - written).min(MIB) as usize;
        file.write_all(&block[..len]).unwrap();
        written += len as u64;
    }
    file.into_inner().unwrap().sync_all().unwrap();
}

/// Runs `f` once with the peak RSS reset first: its time and the process's peak RSS during it
/// (`VmHWM` after a reset to the current resident size: what the process held before, freed
/// memory the allocator kept included, plus what `f` added).
fn measured<T>(f: impl FnOnce() -> T) -> (T, Duration, u64) {
    assert!(
        common::reset_peak_rss(),
        "cannot reset VmHWM (/proc/self/clear_refs): RSS would go unmeasured"
    );
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    (out, took, common::peak_rss())
}

/// Reads the whole blob through `open`, in the API server's 64 KiB pieces; returns the bytes read.
fn read_all(store: &dyn BlobStore, path: &BlobPath) -> u64 {
    let mut reader = store.open(path).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf).unwrap() {
            0 => return total,
            n => total += n as u64,
        }
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn median_u64(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// Uploads (unless `upload` is false: the blob is already there) and reads back `runs` times.
fn bench(
    name: &'static str,
    store: &dyn BlobStore,
    source: &Path,
    size: u64,
    runs: usize,
    upload: bool,
) -> Row {
    let path = BlobPath::new("bench", "pod-uid", "app", "big.core.zst").unwrap();
    let (mut ups, mut up_rss, mut downs, mut down_rss) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        if upload {
            // A size already stored is left alone (idempotent ingest): start from nothing.
            store.delete(&path).unwrap();
            let (stored, took, rss) = measured(|| store.put_file(&path, source).unwrap());
            assert_eq!(stored, size, "{name}: stored {stored} of {size} bytes");
            ups.push(took);
            up_rss.push(rss);
        }
        let (read, took, rss) = measured(|| read_all(store, &path));
        assert_eq!(read, size, "{name}: read back {read} of {size} bytes");
        downs.push(took);
        down_rss.push(rss);
        eprintln!(
            "{name} run {}: upload {:?}, download {took:?}",
            run + 1,
            ups.last()
        );
    }
    store.delete(&path).unwrap();
    Row {
        name,
        upload: upload.then(|| median(ups)),
        upload_rss: if upload { median_u64(up_rss) } else { 0 },
        download: median(downs),
        download_rss: median_u64(down_rss),
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let size = env_number("BENCH_CORE_MIB", 1024) * MIB;
    let runs = env_number("BENCH_RUNS", 3).max(1) as usize;
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let source = dir.path().join("spool.core.zst");
    write_source(&source, size);
    eprintln!("source: {} MiB, {runs} runs per backend", size / MIB);

    let mut rows = Vec::new();
    let fs = FsBlobStore::new(dir.path().join("fs")).unwrap();
    rows.push(bench("filesystem", &fs, &source, size, runs, true));
    drop(fs);

    for (name, service) in [
        ("s3 (SeaweedFS)", Service::S3),
        ("azure (Azurite)", Service::Azure),
    ] {
        let server = common::own(service);
        let store = common::fresh_store(server.as_ref(), "bench");
        rows.push(bench(name, &store, &source, size, runs, true));
        server.kill();
    }

    let gcs = coredump_testplane::fake_gcs::start_fake_gcs().unwrap();
    gcs.create_bucket("cores").unwrap();
    {
        let bytes = std::fs::read(&source).unwrap();
        gcs.upload("cores", "bench/bench/pod-uid/app/big.core.zst", &bytes)
            .unwrap();
    }
    let store = common::args(&gcs, "bench")
        .open_with_retry(common::short_retry())
        .unwrap()
        .unwrap();
    rows.push(bench(
        "gcs (fake-gcs-server)",
        &store,
        &source,
        size,
        runs,
        false,
    ));
    drop(store);
    drop(gcs);

    let base = &rows[0];
    let (base_up, base_down) = (base.upload.unwrap(), base.download);
    let mib = |bytes: u64| bytes as f64 / MIB as f64;
    let rate = |d: Duration| mib(size) / d.as_secs_f64();
    println!(
        "{:<22} {:>10} {:>9} {:>7} {:>8} {:>10} {:>9} {:>7} {:>8}",
        "backend", "upload", "MiB/s", "x fs", "peak MiB", "download", "MiB/s", "x fs", "peak MiB"
    );
    for row in &rows {
        let upload = match row.upload {
            Some(up) => format!(
                "{:>9.2}s {:>9.0} {:>7.2} {:>8.1}",
                up.as_secs_f64(),
                rate(up),
                up.as_secs_f64() / base_up.as_secs_f64(),
                mib(row.upload_rss)
            ),
            None => format!("{:>10} {:>9} {:>7} {:>8}", "n/a", "", "", ""),
        };
        println!(
            "{:<22} {upload} {:>9.2}s {:>9.0} {:>7.2} {:>8.1}",
            row.name,
            row.download.as_secs_f64(),
            rate(row.download),
            row.download.as_secs_f64() / base_down.as_secs_f64(),
            mib(row.download_rss)
        );
    }
    println!(
        "targets (issue 13): upload <= 1.5 x fs, peak RSS <= 64 MiB; gcs upload n/a: \
         fake-gcs-server refuses object_store's upload (the object is planted)"
    );
}
