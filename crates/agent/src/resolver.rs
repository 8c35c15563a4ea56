//! The ingest's [`IdentityResolver`] on a node: the pod UID and container ID the crash path read
//! from the cgroup, looked up in the node's pod informer, retried with backoff while the cache
//! may lag ([`crate::retry`]), and answered with whatever is known when the wait ends.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use coredump_capture::CrashRecord;
use coredump_ingest::{IdentityResolver, ResolvedIdentity};

use crate::informer::Caches;
use crate::pods::match_pod;
use crate::retry::{Attempt, RetryPolicy, Step};

/// Resolves pods from the informer caches.
#[derive(Clone)]
pub struct KubeResolver {
    caches: Caches,
    retry: RetryPolicy,
}

impl KubeResolver {
    /// A resolver over `caches` waiting as `retry` says.
    pub fn new(caches: Caches, retry: RetryPolicy) -> KubeResolver {
        KubeResolver { caches, retry }
    }
}

/// Time from a crash at `crash_unix` (seconds) to now; zero if the clock disagrees.
fn since(crash_unix: i64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let crash = Duration::from_secs(u64::try_from(crash_unix).unwrap_or(0));
    now.saturating_sub(crash)
}

#[async_trait]
impl IdentityResolver for KubeResolver {
    async fn resolve(&self, record: &CrashRecord) -> Option<ResolvedIdentity> {
        let pod = record.pod.as_ref()?;
        let started = Instant::now();
        let mut best = None;
        let mut number = 0u32;
        loop {
            let matched = self
                .caches
                .pod_by_uid(&pod.pod_uid)
                .map(|p| match_pod(&p, pod.container_id.as_deref()));
            let found = matched.as_ref().is_some_and(|m| m.complete);
            if let Some(m) = matched {
                best = Some(m.identity);
            }
            let attempt = Attempt {
                number,
                found,
                synced: self.caches.pods_synced(),
                since_crash: since(record.time),
                waited: started.elapsed(),
            };
            match self.retry.step(attempt) {
                Step::Done => return best,
                Step::GiveUp => {
                    tracing::warn!(
                        id = %record.id,
                        pod_uid = %pod.pod_uid,
                        container_id = ?pod.container_id,
                        known = ?best,
                        "pod or container not in the informer cache; recording what is known"
                    );
                    return best;
                }
                Step::Wait(d) => tokio::time::sleep(d).await,
            }
            number = number.saturating_add(1);
        }
    }
}
