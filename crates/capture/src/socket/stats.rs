//! What the socket server counts: each accepted connection ends as captured, refused,
//! dropped, suppressed, foreign, a protocol error or a failure, so the counters say where crashes went
//! without reading the log.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what the server did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Cores captured and published (stored or truncated).
    pub captured: u64,
    /// Crashes answered `REJECT` with a record (rate limited, below the free-space floor).
    pub refused: u64,
    /// Crashes answered `REJECT` without a record (non-pod policy `drop`).
    pub dropped: u64,
    /// Crashes answered `REJECT` over a pod's or namespace's crash-loop limits (counted on the
    /// pod's limit state; the agent publishes one record for them).
    pub suppressed: u64,
    /// Connections that were not the kernel's, closed unanswered.
    pub foreign: u64,
    /// Kernel connections whose request or mark was malformed or missing.
    pub protocol_errors: u64,
    /// Captures that failed after admission (recorded `Failed` where possible).
    pub failed: u64,
    /// Refusal records that could not even be queued for publication.
    pub records_lost: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) captured: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) suppressed: AtomicU64,
    pub(crate) foreign: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) records_lost: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ServerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerStats {
            accepted: get(&self.accepted),
            captured: get(&self.captured),
            refused: get(&self.refused),
            dropped: get(&self.dropped),
            suppressed: get(&self.suppressed),
            foreign: get(&self.foreign),
            protocol_errors: get(&self.protocol_errors),
            failed: get(&self.failed),
            records_lost: get(&self.records_lost),
        }
    }
}
