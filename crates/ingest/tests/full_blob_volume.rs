//! A blob volume that is full (a real tmpfs of 1 MiB, so the error is the kernel's ENOSPC): the
//! crash stays in the spool and is retried while it is recent, and after `max_blob_wait` it is
//! recorded without its core (state `Failed`, the reason in the message), which frees the
//! node's spool and keeps the crash visible. Needs root (it mounts the tmpfs).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use coredump_api::CoredumpState;
use coredump_capture::spool::Spool;
use coredump_ingest::{Ingest, IngestConfig, NoResolver};
use coredump_store::fs_blob::FsBlobStore;

use common::{MemorySink, publish_at};

/// A tmpfs of `kib` KiB at `dir`, lazily unmounted on drop.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, kib: u64) -> Tmpfs<'a> {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn ingest(spool: &Spool, blobs: &Path, sink: &Arc<MemorySink>, max_blob_wait: Duration) -> Ingest {
    Ingest::new(
        spool.clone(),
        Arc::new(FsBlobStore::new(blobs.to_path_buf()).unwrap()),
        sink.clone(),
        Arc::new(NoResolver),
        IngestConfig {
            node_name: "node-1".into(),
            max_blob_wait,
            ..IngestConfig::default()
        },
    )
}

#[tokio::test]
async fn a_full_blob_volume_delays_then_records_the_crash_without_its_core() {
    let tmp = tempfile::Builder::new()
        .prefix("cdd-ingest-full-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let blobs = tmp.path().join("blobs");
    let _fs = Tmpfs::mount(&blobs, 1024);
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let sink = Arc::new(MemorySink::default());
    // 3 MiB of incompressible bytes: its zstd core cannot fit in 1 MiB.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let core: Vec<u8> = (0..3u32 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = publish_at(&spool, &core, Some(now));

    // A recent crash: kept in the spool, retried, nothing recorded yet.
    let patient = ingest(&spool, &blobs, &sink, Duration::from_secs(600));
    assert!(patient.ingest_ready().await.unwrap().is_empty(), "stored?");
    assert_eq!(spool.ready().unwrap(), vec![id.clone()], "the core waits");
    assert!(sink.objects.lock().unwrap().is_empty());

    // Waited long enough: recorded without the core, the spool entry gone.
    let done = ingest(&spool, &blobs, &sink, Duration::ZERO)
        .ingest_ready()
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    let obj = &sink.objects.lock().unwrap()[0];
    assert_eq!(obj.status.state, CoredumpState::Failed);
    assert!(
        obj.status.message.contains("blob volume stayed full"),
        "{}",
        obj.status.message
    );
    assert!(obj.status.blob_path.is_empty(), "no core to point at");
    assert_eq!(
        obj.status.raw_size,
        3 << 20,
        "what the kernel sent is still told"
    );
    assert!(
        spool.ready().unwrap().is_empty(),
        "the node's spool is freed"
    );
    let left: Vec<_> = walk(&blobs);
    assert!(
        left.iter().all(|p| !p.contains(".tmp-")),
        "no temporary file left on the full volume: {left:?}"
    );
}

/// A blob volume with room, but below its free-space floor once this core is on it (a real
/// 8 MiB tmpfs, floor 6 MiB, a 3 MiB incompressible core): treated as full, so the node's disk
/// is not filled to the last byte; with a floor it can keep, the same core is stored.
#[tokio::test]
async fn a_blob_volume_at_its_floor_counts_as_full() {
    let tmp = tempfile::Builder::new()
        .prefix("cdd-ingest-floor-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let blobs = tmp.path().join("blobs");
    let _fs = Tmpfs::mount(&blobs, 8 << 10);
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let sink = Arc::new(MemorySink::default());
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let core: Vec<u8> = (0..3u32 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let with_floor = |floor: u64, wait: Duration| {
        Ingest::new(
            spool.clone(),
            Arc::new(FsBlobStore::new(blobs.clone()).unwrap()),
            sink.clone(),
            Arc::new(NoResolver),
            IngestConfig {
                node_name: "node-1".into(),
                max_blob_wait: wait,
                min_free_blob_bytes: floor,
                ..IngestConfig::default()
            },
        )
    };
    let id = publish_at(&spool, &core, Some(now));
    assert!(
        with_floor(6 << 20, Duration::from_secs(600))
            .ingest_ready()
            .await
            .unwrap()
            .is_empty(),
        "stored below the floor"
    );
    assert_eq!(
        spool.ready().unwrap(),
        vec![id],
        "the core waits in the spool"
    );
    assert!(walk(&blobs).iter().all(|p| !p.ends_with(".core.zst")));
    let done = with_floor(1 << 20, Duration::from_secs(600))
        .ingest_ready()
        .await
        .unwrap();
    assert_eq!(done.len(), 1, "a floor the volume can keep: stored");
    let obj = &sink.objects.lock().unwrap()[0];
    assert_eq!(obj.status.state, CoredumpState::Stored);
}

/// Every file under `dir`, relative.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}
