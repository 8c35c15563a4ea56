//! What every object-store test needs: a real server of each service on loopback (one per
//! service and test binary, started on first use and killed when the binary exits, or one of
//! the test's own to kill and restart), a fresh key prefix per store, and the store opened
//! through the same flags the roles take. A test body takes a [`Service`] and runs against
//! each of S3 (SeaweedFS), GCS (fake-gcs-server) and Azure Blob (Azurite).
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use coredump_objstore::{BackoffConfig, RetryConfig};
use coredump_objstore::{BlobStoreArgs, ObjectBlobStore};
pub use coredump_testplane::object_server::{ObjectServer, Service};

/// The server of `service` shared by this test binary, with the bucket `cores`. Lives in a static: the
/// harness kills it when the binary exits (parent-death signal) and removes its directory.
pub fn shared(service: Service) -> MutexGuard<'static, Box<dyn ObjectServer>> {
    static SHARED: [OnceLock<Mutex<Box<dyn ObjectServer>>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match service {
        Service::S3 => &SHARED[0],
        Service::Gcs => &SHARED[1],
        Service::Azure => &SHARED[2],
    };
    slot.get_or_init(|| Mutex::new(own(service)))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// A server of the calling test alone (to kill and restart), with the bucket `cores`. A server that
/// cannot be built, installed or started fails the test, naming the script that provides it.
pub fn own(service: Service) -> Box<dyn ObjectServer> {
    match service.start() {
        Ok(server) => server,
        Err(e) => panic!("starting the {service:?} server: {e}"),
    }
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

/// The flags of `--blob-store <scheme>://BUCKET/<prefix>` on `server` with the test identity.
pub fn args(server: &dyn ObjectServer, prefix: &str) -> BlobStoreArgs {
    BlobStoreArgs::parse_flags(server.blob_store_flags(prefix)).unwrap()
}

/// A store under a prefix no other store of this process uses.
pub fn fresh_store(server: &dyn ObjectServer, what: &str) -> ObjectBlobStore {
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
