//! What every S3 test needs: a real SeaweedFS on loopback (one per test binary, started on first
//! use and killed when the binary exits) or one of its own, a fresh bucket prefix per store, and
//! the store opened through the same flags the roles take.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use coredump_objstore::{BackoffConfig, RetryConfig};
use coredump_objstore::{BlobStoreArgs, ObjectBlobStore};
use coredump_testplane::seaweedfs::{self, SeaweedFs};

/// The bucket the tests create.
pub const BUCKET: &str = "cores";

/// A SeaweedFS of this test binary with [`BUCKET`] created. Lives in a static: the harness kills
/// it when the binary exits (parent-death signal) and removes its directory.
pub fn shared() -> &'static Mutex<SeaweedFs> {
    static SHARED: OnceLock<Mutex<SeaweedFs>> = OnceLock::new();
    SHARED.get_or_init(|| Mutex::new(own()))
}

/// A SeaweedFS of the calling test alone (to kill and restart), with [`BUCKET`].
pub fn own() -> SeaweedFs {
    let server = match seaweedfs::start_seaweedfs() {
        Ok(s) => s,
        Err(e) => panic!("starting SeaweedFS (scripts/control-plane/build.sh seaweedfs): {e}"),
    };
    server.create_bucket(BUCKET).unwrap();
    server
}

/// Retries short enough for a test of an outage: four tries within about 2 s.
pub fn short_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(800),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(5),
    }
}

/// The flags of `--blob-store s3://BUCKET/<prefix>` on `server` with the test identity.
pub fn args(server: &SeaweedFs, prefix: &str) -> BlobStoreArgs {
    BlobStoreArgs::parse_flags(server.blob_store_flags(BUCKET, prefix)).unwrap()
}

/// A store under a prefix no other store of this process uses.
pub fn fresh_store(server: &SeaweedFs, what: &str) -> ObjectBlobStore {
    static N: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!(
        "{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    args(server, &prefix)
        .open_with_retry(short_retry())
        .unwrap()
        .unwrap()
}

/// Peak resident memory of this process so far (`VmHWM`), in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Resets the peak to the current resident size (`/proc/self/clear_refs` with 5), so a
/// measurement covers one operation only; false where the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
