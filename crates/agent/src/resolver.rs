//! The ingest's [`IdentityResolver`] on a node: the pod UID and container ID the crash path read
//! from the cgroup, looked up in the node's pod informer, retried with backoff while the cache
//! may lag ([`crate::retry`]), and answered with whatever is known when the wait ends.

use std::time::Duration;

use async_trait::async_trait;
// Tokio's clock (the wall clock unless a test pauses it), so waits and their measure agree.
use coredump_capture::CrashRecord;
use coredump_ingest::{IdentityResolver, ResolvedIdentity};
use tokio::time::Instant;

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
                .pod_or_tombstone(&pod.pod_uid)
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::watcher::Event;

    const UID: &str = "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11";
    const HEX: &str = "4f5a1c3b2d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";

    fn record() -> CrashRecord {
        let mut r: CrashRecord = serde_json::from_value(serde_json::json!({
            "id": "1-1-1", "pid": 1, "tid": 1, "signal": 11, "time": 0, "uid": 0, "gid": 0,
            "hostname": "n", "comm": "c", "exe": "/c", "cmdline": [], "cgroup": "",
            "pod": {"pod_uid": UID, "qos": "Burstable", "container_id": format!("containerd://{HEX}")},
            "raw_size": 0, "kept_size": 0, "stored_size": 0, "sha256": "", "encoding": "none",
            "state": "Stored", "held_ms": 0, "done_ms": 0
        }))
        .unwrap();
        r.time = time::OffsetDateTime::now_utc().unix_timestamp();
        r
    }

    fn pod(with_status: bool) -> Pod {
        let mut pod = serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "team-a", "uid": UID},
            "spec": {"containers": [{"name": "app", "image": "registry/app:1"}]},
        });
        if with_status {
            pod["status"] = serde_json::json!({"containerStatuses": [{"name": "app", "image": "registry/app:1",
                "imageID": "", "ready": true, "restartCount": 0, "containerID": format!("containerd://{HEX}")}]});
        }
        serde_json::from_value(pod).unwrap()
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            grace: Duration::from_secs(2),
            max_wait: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_a_pod_and_its_container_status_to_arrive() {
        let (caches, mut pods, _ns) = crate::informer::manual(true);
        let resolver = KubeResolver::new(caches, fast());
        let feeder = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            pods.apply_watcher_event(&Event::Apply(pod(false)));
            tokio::time::sleep(Duration::from_millis(200)).await;
            pods.apply_watcher_event(&Event::Apply(pod(true)));
            pods
        });
        let started = Instant::now();
        let id = resolver.resolve(&record()).await.unwrap();
        let took = started.elapsed();
        feeder.await.unwrap();
        assert_eq!(id.pod_name, "web-0");
        assert_eq!(
            id.container_name.as_deref(),
            Some("app"),
            "waited for the status too"
        );
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    // Real time: the grace counts from the crash's wall-clock time (`CrashRecord::time`), which
    // a paused Tokio clock does not move (paused, the wait runs to `max_wait` instead).
    #[tokio::test]
    async fn gives_up_after_the_grace_with_what_is_known() {
        let (caches, mut pods, _ns) = crate::informer::manual(true);
        pods.apply_watcher_event(&Event::Apply(pod(false)));
        let resolver = KubeResolver::new(caches, fast());
        let started = Instant::now();
        let id = resolver.resolve(&record()).await.unwrap();
        assert_eq!((id.pod_name.as_str(), id.container_name), ("web-0", None));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(4),
            "{took:?}"
        );

        let (caches, _pods, _ns) = crate::informer::manual(true);
        let resolver = KubeResolver::new(caches, fast());
        let mut old = record();
        old.time -= 3600;
        let started = Instant::now();
        assert_eq!(
            resolver.resolve(&old).await,
            None,
            "an old crash of a pod not in a synced cache"
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "no wait: the pod is gone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unsynced_cache_is_waited_for_until_max_wait_and_host_crashes_not_at_all() {
        let (caches, _pods, _ns) = crate::informer::manual(false);
        let resolver = KubeResolver::new(
            caches,
            RetryPolicy {
                max_wait: Duration::from_millis(600),
                ..fast()
            },
        );
        let mut old = record();
        old.time -= 3600;
        let started = Instant::now();
        assert_eq!(resolver.resolve(&old).await, None);
        assert!(started.elapsed() >= Duration::from_millis(600));
        let mut host = record();
        host.pod = None;
        let started = Instant::now();
        assert_eq!(resolver.resolve(&host).await, None);
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
