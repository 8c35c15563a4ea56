//! Whether a crash's core is kept on this cluster: the opt-out label or annotation
//! `coredump.fujitsu.com/capture: "false"` on the pod or its namespace, and the per-namespace
//! disk quota (`NS_DISK_QUOTA`). The decisions are pure functions; [`AgentPolicy`] feeds them
//! from the informer caches and the blob store, and is the ingest's [`CorePolicy`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use coredump_api::{CoredumpReason, CoredumpState};
use coredump_ingest::{CoreDecision, CorePolicy, PolicyInput};
use coredump_store::BlobStore;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::informer::Caches;

/// Label or annotation key of the opt-out.
pub const CAPTURE_KEY: &str = "coredump.fujitsu.com/capture";

/// Labels and annotations of one object.
#[derive(Debug, Clone, Copy, Default)]
pub struct Marks<'a> {
    /// `metadata.labels`.
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// `metadata.annotations`.
    pub annotations: Option<&'a BTreeMap<String, String>>,
}

impl Marks<'_> {
    /// The object's capture setting: `Some(false)` when label or annotation says `"false"`,
    /// `Some(true)` when one says `"true"` and none says `"false"`, `None` when unset.
    pub fn capture(&self) -> Option<bool> {
        let values = [self.labels, self.annotations]
            .into_iter()
            .flatten()
            .filter_map(|m| m.get(CAPTURE_KEY))
            .map(|v| v.trim().to_ascii_lowercase());
        let mut setting = None;
        for v in values {
            match v.as_str() {
                "false" => return Some(false),
                "true" => setting = Some(true),
                _ => {}
            }
        }
        setting
    }
}

/// Why the core is not kept, if the pod or namespace opted out. The pod's own setting wins over
/// its namespace's (a namespace can opt out and one pod opt back in).
pub fn opt_out(pod: Marks<'_>, namespace: Marks<'_>) -> Option<String> {
    match (pod.capture(), namespace.capture()) {
        (Some(false), _) => Some(format!("opted out: pod has {CAPTURE_KEY}=false")),
        (None, Some(false)) => Some(format!("opted out: namespace has {CAPTURE_KEY}=false")),
        _ => None,
    }
}

/// Why the core is not kept, if storing `core_bytes` more in a namespace already using `usage`
/// bytes would exceed `quota`.
pub fn over_quota(namespace: &str, usage: u64, core_bytes: u64, quota: u64) -> Option<String> {
    (usage.saturating_add(core_bytes) > quota).then(|| {
        format!(
            "namespace {namespace} disk quota exceeded: {usage} bytes stored, this core {core_bytes} bytes, quota {quota} bytes"
        )
    })
}

/// The agent's [`CorePolicy`]: opt-out first, then the quota.
pub struct AgentPolicy {
    caches: Caches,
    blobs: Arc<dyn BlobStore>,
    quota: u64,
}

impl AgentPolicy {
    /// A policy over these caches and this blob store, with `quota` bytes per namespace.
    pub fn new(caches: Caches, blobs: Arc<dyn BlobStore>, quota: u64) -> AgentPolicy {
        AgentPolicy {
            caches,
            blobs,
            quota,
        }
    }

    fn opted_out(&self, input: &PolicyInput<'_>) -> Option<String> {
        if let Some(pod) = input
            .record
            .pod
            .as_ref()
            .and_then(|p| self.caches.pod_or_tombstone(&p.pod_uid))
        {
            return self.caches.opt_out_of(&pod);
        }
        // The pod is gone from the cache: its namespace may still have opted out.
        let namespace = input
            .identity
            .and_then(|i| self.caches.namespace(&i.namespace))?;
        opt_out(Marks::default(), Marks::of(&namespace.metadata))
    }
}

impl Marks<'_> {
    /// The labels and annotations of an object.
    pub fn of(meta: &ObjectMeta) -> Marks<'_> {
        Marks {
            labels: meta.labels.as_ref(),
            annotations: meta.annotations.as_ref(),
        }
    }
}

impl Caches {
    /// Why `pod`'s cores are not wanted (its own or its namespace's opt-out), if they are not.
    pub fn opt_out_of(&self, pod: &Pod) -> Option<String> {
        let namespace = pod
            .metadata
            .namespace
            .as_deref()
            .and_then(|ns| self.namespace(ns));
        let ns_marks = namespace
            .as_deref()
            .map(|n| Marks::of(&n.metadata))
            .unwrap_or_default();
        opt_out(Marks::of(&pod.metadata), ns_marks)
    }
}

/// Why the core of a pod crash that could not be placed in its pod's namespace is not kept:
/// it would land in the install's namespace, where that namespace's debuggers (not the pod's
/// owners) could read another tenant's memory. The record stays, for administrators.
pub fn unresolved(pod_uid: &str) -> String {
    format!(
        "core not kept: pod {pod_uid} was not found (neither running on this node nor deleted \
         within the last hour), so its namespace is unknown and no tenant may read its memory"
    )
}

#[async_trait]
impl CorePolicy for AgentPolicy {
    async fn decide(&self, input: PolicyInput<'_>) -> CoreDecision {
        if let (Some(pod), None) = (&input.record.pod, input.identity) {
            return CoreDecision::Discard {
                state: CoredumpState::Skipped,
                cause: Some(CoredumpReason::PodUnresolved),
                reason: unresolved(&pod.pod_uid),
            };
        }
        if let Some(reason) = self.opted_out(&input) {
            return CoreDecision::Discard {
                state: CoredumpState::Skipped,
                cause: Some(CoredumpReason::OptedOut),
                reason,
            };
        }
        let Some(core_bytes) = input.core_bytes else {
            return CoreDecision::Keep;
        };
        let namespace = input.placement.namespace.clone();
        let blobs = Arc::clone(&self.blobs);
        let ns = namespace.clone();
        let usage = tokio::task::spawn_blocking(move || blobs.namespace_usage(&ns)).await;
        let usage = match usage {
            Ok(Ok(bytes)) => bytes,
            // Not knowing the usage must not lose a crash: keep it and say so in the log.
            Ok(Err(e)) => {
                tracing::warn!(%namespace, error = %e, "cannot measure namespace usage; keeping the core");
                0
            }
            Err(e) => {
                tracing::warn!(%namespace, error = %e, "usage task failed; keeping the core");
                0
            }
        };
        match over_quota(&namespace, usage, core_bytes, self.quota) {
            Some(reason) => CoreDecision::Discard {
                state: CoredumpState::QuotaExceeded,
                cause: Some(CoredumpReason::QuotaExceeded),
                reason,
            },
            None => CoreDecision::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coredump_ingest::{Placement, ResolvedIdentity};
    use coredump_store::fs_blob::FsBlobStore;
    use kube::runtime::watcher::Event;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn opt_out_by_label_or_annotation_on_pod_or_namespace() {
        let off = map(&[(CAPTURE_KEY, "false")]);
        let on = map(&[(CAPTURE_KEY, "true")]);
        let other = map(&[("app", "web"), (CAPTURE_KEY, "maybe")]);
        let m = |labels, annotations| Marks {
            labels,
            annotations,
        };
        let none = Marks::default();
        assert_eq!(opt_out(none, none), None);
        assert_eq!(opt_out(m(Some(&other), Some(&other)), none), None);
        assert!(
            opt_out(m(Some(&off), None), none)
                .unwrap()
                .contains("pod has")
        );
        assert!(
            opt_out(m(None, Some(&off)), none)
                .unwrap()
                .contains("pod has")
        );
        assert!(
            opt_out(none, m(None, Some(&off)))
                .unwrap()
                .contains("namespace has")
        );
        assert!(opt_out(none, m(Some(&off), None)).is_some());
        assert_eq!(
            opt_out(m(Some(&on), None), m(Some(&off), None)),
            None,
            "the pod opts back in"
        );
        assert!(
            opt_out(m(Some(&on), Some(&off)), none).is_some(),
            "false wins on one object"
        );
        let shouting = map(&[(CAPTURE_KEY, " FALSE ")]);
        assert!(opt_out(m(Some(&shouting), None), none).is_some());
    }

    #[test]
    fn quota_counts_what_is_stored_plus_this_core() {
        assert_eq!(
            over_quota("a", 0, 1000, 1000),
            None,
            "exactly at the quota fits"
        );
        assert_eq!(over_quota("a", 999, 1, 1000), None);
        let why = over_quota("a", 999, 2, 1000).unwrap();
        assert_eq!(
            why,
            "namespace a disk quota exceeded: 999 bytes stored, this core 2 bytes, quota 1000 bytes"
        );
        assert!(
            over_quota("a", u64::MAX, u64::MAX, u64::MAX).is_none(),
            "no overflow"
        );
        assert!(over_quota("a", 0, 1, 0).is_some(), "quota 0 keeps nothing");
    }

    fn input_parts() -> (coredump_capture::CrashRecord, ResolvedIdentity, Placement) {
        let record: coredump_capture::CrashRecord = serde_json::from_value(serde_json::json!({
            "id": "1-1-1", "pid": 1, "tid": 1, "signal": 11, "time": 0, "uid": 0, "gid": 0,
            "hostname": "n", "comm": "c", "exe": "/c", "cmdline": [], "cgroup": "",
            "pod": {"pod_uid": "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11", "qos": "Burstable"},
            "raw_size": 0, "kept_size": 0, "stored_size": 0, "sha256": "", "encoding": "zstd",
            "state": "Stored", "held_ms": 0, "done_ms": 0
        }))
        .unwrap();
        let identity = ResolvedIdentity {
            namespace: "team-a".into(),
            pod_name: "web-0".into(),
            container_name: None,
            image: None,
        };
        let placement = coredump_ingest::object::place(&record, Some(&identity), "host");
        (record, identity, placement)
    }

    #[tokio::test]
    async fn agent_policy_reads_the_caches_and_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let blobs = Arc::new(FsBlobStore::new(tmp.path().join("cores")).unwrap());
        let src = tmp.path().join("core");
        std::fs::write(&src, vec![0u8; 600]).unwrap();
        blobs
            .put_file(
                &coredump_store::BlobPath::new("team-a", "u", "app", "old.core.zst").unwrap(),
                &src,
            )
            .unwrap();
        let (caches, _pods, mut namespaces) = crate::informer::manual(true);
        let policy = AgentPolicy::new(caches, blobs, 1000);
        let (record, identity, placement) = input_parts();
        let input = |core_bytes| PolicyInput {
            record: &record,
            identity: Some(&identity),
            placement: &placement,
            core_bytes,
        };
        assert_eq!(policy.decide(input(Some(400))).await, CoreDecision::Keep);
        assert_eq!(
            policy.decide(input(None)).await,
            CoreDecision::Keep,
            "nothing to store"
        );
        match policy.decide(input(Some(401))).await {
            CoreDecision::Discard {
                state,
                cause,
                reason,
            } => {
                assert_eq!(state, CoredumpState::QuotaExceeded);
                assert_eq!(cause, Some(CoredumpReason::QuotaExceeded));
                assert!(reason.contains("600 bytes stored"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "team-a", "labels": {CAPTURE_KEY: "false"}}
        }))
        .unwrap();
        namespaces.apply_watcher_event(&Event::Apply(ns));
        assert_eq!(
            policy.decide(input(Some(1))).await,
            CoreDecision::Discard {
                state: CoredumpState::Skipped,
                cause: Some(CoredumpReason::OptedOut),
                reason: format!("opted out: namespace has {CAPTURE_KEY}=false"),
            }
        );
    }
}
