//! Turns a crash record into a `Coredump` object and decides where its blob lives.

use async_trait::async_trait;
use coredump_api::{Coredump, CoredumpSpec, CoredumpState, CoredumpStatus, ObjectMeta};
use coredump_capture::CrashRecord;
use coredump_capture::record::{CaptureState, signal_name};

use crate::facts::CoreFacts;
use crate::naming;

/// What the Kubernetes side knows about the crashed process's pod and container.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedIdentity {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod_name: String,
    /// Container name.
    pub container_name: Option<String>,
    /// Container image.
    pub image: Option<String>,
}

/// Resolves pod identity (namespace, names, image) from what the cgroup told. The node agent
/// answers from its pod informer; standalone has no Kubernetes and uses [`NoResolver`].
#[async_trait]
pub trait IdentityResolver: Send + Sync + 'static {
    /// `None` when the pod is unknown (or the crash was not in a pod).
    async fn resolve(&self, record: &CrashRecord) -> Option<ResolvedIdentity>;
}

/// Resolver for machines without Kubernetes: nothing is known beyond the cgroup.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResolver;

#[async_trait]
impl IdentityResolver for NoResolver {
    async fn resolve(&self, _record: &CrashRecord) -> Option<ResolvedIdentity> {
        None
    }
}

/// Where a crash's object and blobs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Object name.
    pub name: String,
    /// Object namespace (and first blob path segment).
    pub namespace: String,
    /// Blob path pod segment: the pod UID, or `host` outside pods.
    pub pod_segment: String,
    /// Blob path container segment: container name, else short container id, else process name.
    pub container_segment: String,
}

/// Pod segment used for crashes outside any pod.
pub use coredump_api::coredump::HOST_POD_SEGMENT;

/// Decides the placement of a crash.
pub fn place(
    record: &CrashRecord,
    identity: Option<&ResolvedIdentity>,
    host_namespace: &str,
) -> Placement {
    let name = naming::coredump_name(record);
    let namespace = identity
        .map(|i| i.namespace.clone())
        .unwrap_or_else(|| host_namespace.to_string());
    let pod_segment = record
        .pod
        .as_ref()
        .map(|p| p.pod_uid.clone())
        .unwrap_or_else(|| HOST_POD_SEGMENT.to_string());
    let short_id = record
        .pod
        .as_ref()
        .and_then(|p| p.container_id.as_deref())
        .and_then(|id| id.rsplit('/').next())
        .map(|hex| hex.chars().take(12).collect::<String>());
    let container_segment = identity
        .and_then(|i| i.container_name.clone())
        .or(short_id)
        .unwrap_or_else(|| {
            let comm = naming::sanitize(&record.comm);
            if comm.is_empty() {
                "process".into()
            } else {
                comm
            }
        });
    Placement {
        name,
        namespace,
        pod_segment,
        container_segment,
    }
}

fn state_of(state: CaptureState) -> CoredumpState {
    match state {
        CaptureState::Stored => CoredumpState::Stored,
        CaptureState::Truncated => CoredumpState::Truncated,
        CaptureState::Skipped => CoredumpState::Skipped,
        CaptureState::RateLimited => CoredumpState::RateLimited,
        CaptureState::Failed => CoredumpState::Failed,
    }
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

fn label_value(text: &str) -> String {
    let mut v: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    while v.ends_with(['-', '_', '.']) {
        v.pop();
    }
    v.trim_start_matches(['-', '_', '.']).to_string()
}

/// Label keys set on every `Coredump`, for `kubectl get coredumps -l ...`.
pub mod labels {
    /// Node of the crash.
    pub const NODE: &str = "coredump.fujitsu.com/node";
    /// Pod UID, when in a pod.
    pub const POD_UID: &str = "coredump.fujitsu.com/pod-uid";
    /// Pod name, when known.
    pub const POD_NAME: &str = "coredump.fujitsu.com/pod-name";
    /// The crash signature (see `status.signature`): select every crash of one bug.
    pub const SIGNATURE: &str = coredump_api::SIGNATURE_LABEL;
    /// Container name (or the blob path container segment).
    pub const CONTAINER: &str = "coredump.fujitsu.com/container";
}

/// Builds the `Coredump` for a record. `blob_path` is set when a core was stored.
pub fn build(
    record: &CrashRecord,
    identity: Option<&ResolvedIdentity>,
    placement: &Placement,
    node_name: &str,
    stored: Option<(String, u64)>,
    facts: Option<&CoreFacts>,
) -> Coredump {
    let mut meta = ObjectMeta {
        name: placement.name.clone(),
        namespace: placement.namespace.clone(),
        ..ObjectMeta::default()
    };
    meta.labels
        .insert(labels::NODE.into(), label_value(node_name));
    meta.labels.insert(
        labels::CONTAINER.into(),
        label_value(&placement.container_segment),
    );
    if let Some(pod) = &record.pod {
        meta.labels
            .insert(labels::POD_UID.into(), label_value(&pod.pod_uid));
    }
    if let Some(id) = identity {
        meta.labels
            .insert(labels::POD_NAME.into(), label_value(&id.pod_name));
    }
    let (blob_path, stored_size) = stored.unwrap_or_default();
    Coredump {
        api_version: coredump_api::API_VERSION.into(),
        kind: coredump_api::coredump::COREDUMP_KIND.into(),
        metadata: meta,
        spec: CoredumpSpec {
            node_name: node_name.to_string(),
            pod_name: identity.map(|i| i.pod_name.clone()),
            pod_uid: record.pod.as_ref().map(|p| p.pod_uid.clone()),
            container_name: identity.and_then(|i| i.container_name.clone()),
            container_id: record.pod.as_ref().and_then(|p| p.container_id.clone()),
            image: identity.and_then(|i| i.image.clone()),
            pid: record.pid,
            tid: record.tid,
            executable: record.exe.clone(),
            command_line: record.cmdline.clone(),
            signal: record.signal,
            signal_name: signal_name(record.signal),
            crash_time: rfc3339(record.time),
            uid: record.uid,
            gid: record.gid,
            qos_class: record.pod.as_ref().map(|p| p.qos.clone()),
            threads: facts.map(|f| f.threads).unwrap_or(0),
            fault_address: facts
                .and_then(|f| f.fault_address)
                .map(|a| format!("{a:#x}")),
            build_id: facts.and_then(|f| f.build_id.clone()),
        },
        status: CoredumpStatus {
            state: state_of(record.state),
            reason: record.cause,
            message: record.reason.clone(),
            raw_size: record.raw_size,
            core_size: if blob_path.is_empty() {
                0
            } else {
                record.kept_size
            },
            stored_size,
            sha256: record.sha256.clone(),
            compression: if blob_path.is_empty() {
                String::new()
            } else {
                "zstd".into()
            },
            blob_path,
            suppressed_crashes: record.suppressed,
            ..CoredumpStatus::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CrashRecord {
        serde_json::from_str(include_str!("../tests/data/meta.json")).unwrap()
    }

    #[test]
    fn pod_crash_without_resolver_is_placed_by_cgroup() {
        let r = record();
        let p = place(&r, None, "host");
        assert_eq!(p.namespace, "host");
        assert_eq!(p.pod_segment, "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11");
        assert_eq!(p.container_segment, "4f5a1c3b2d6e");
        assert_eq!(p.name, "crasher-4242-0a1b2c3d");
    }

    #[test]
    fn resolved_identity_wins_and_fills_the_object() {
        let r = record();
        let id = ResolvedIdentity {
            namespace: "team-a".into(),
            pod_name: "web-0".into(),
            container_name: Some("app".into()),
            image: Some("registry/app:1".into()),
        };
        let p = place(&r, Some(&id), "host");
        assert_eq!(
            (p.namespace.as_str(), p.container_segment.as_str()),
            ("team-a", "app")
        );
        let obj = build(
            &r,
            Some(&id),
            &p,
            "node-1",
            Some(("team-a/x/app/f".into(), 100)),
            Some(&CoreFacts {
                threads: 3,
                fault_address: Some(0x10),
                executable: None,
                build_id: Some("abcd".into()),
            }),
        );
        assert_eq!(obj.spec.threads, 3);
        assert_eq!(obj.spec.fault_address.as_deref(), Some("0x10"));
        assert_eq!(obj.spec.build_id.as_deref(), Some("abcd"));
        assert_eq!(obj.spec.qos_class.as_deref(), Some("Burstable"));
        assert_eq!(obj.spec.pod_name.as_deref(), Some("web-0"));
        assert_eq!(obj.spec.signal_name, "SIGSEGV");
        assert_eq!(obj.spec.crash_time, "2023-11-14T22:13:20Z");
        assert_eq!(obj.status.core_size, 1000);
        assert_eq!(obj.metadata.labels[labels::POD_NAME], "web-0");
        assert_eq!(obj.metadata.labels[labels::NODE], "node-1");
    }

    #[test]
    fn host_crash_without_core() {
        let mut r = record();
        r.pod = None;
        r.state = CaptureState::RateLimited;
        r.reason = "busy".into();
        let p = place(&r, None, "host");
        assert_eq!(
            (p.pod_segment.as_str(), p.container_segment.as_str()),
            ("host", "crasher")
        );
        let obj = build(&r, None, &p, "n", None, None);
        assert_eq!(obj.status.state, CoredumpState::RateLimited);
        assert_eq!(
            (obj.status.core_size, obj.status.blob_path.as_str()),
            (0, "")
        );
        assert!(!obj.metadata.labels.contains_key(labels::POD_UID));
    }
}
