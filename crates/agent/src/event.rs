//! The Kubernetes Event a crash leaves on its pod (reason `CoreDumped`, type `Warning`), so
//! `kubectl describe pod` and `kubectl get events` show it beside the restarts it caused.
//!
//! One Event series per pod and reason: the first crash creates the Event, every later one
//! counts in its `series` (a crash loop is one line with a count, not a thousand Events in the
//! namespace). The Event's name derives from the pod (name and UID) and the reason, and the
//! annotation [`LAST_COREDUMP`] names the last crash counted, so a retried ingest counts its
//! crash once. In `events.k8s.io/v1` only the series may change after creation, so the note
//! tells the first crash and where to find all of them.

use std::collections::BTreeMap;

use coredump_api::Coredump;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

/// Reason of the Event.
pub const REASON: &str = "CoreDumped";
/// `reportingController` of the Event.
pub const CONTROLLER: &str = "coredump.fujitsu.com/agent";
/// Annotation naming the last `Coredump` counted in the Event's series.
pub const LAST_COREDUMP: &str = "coredump.fujitsu.com/last-coredump";

/// Crashes a `Coredump` stands for: one, or as many as a `RateLimited` summary counts.
pub fn crashes_of(c: &Coredump) -> i32 {
    i32::try_from(c.status.suppressed_crashes.max(1)).unwrap_or(i32::MAX)
}

/// Name of the Event series of `pod` (its UID told apart, so a pod recreated under the same
/// name starts a series of its own).
pub fn series_name(pod: &str, pod_uid: Option<&str>) -> String {
    let mut base: String = pod.chars().take(200).collect();
    base.push_str(".coredumped");
    if let Some(uid) = pod_uid {
        base.push('.');
        base.extend(uid.chars().filter(char::is_ascii_alphanumeric).take(12));
    }
    base
}

/// The first Event of the series for a recorded crash, `None` when the crash was not in a
/// known pod.
pub fn crash_event(c: &Coredump, node: &str, now: MicroTime) -> Option<Event> {
    let pod = c.spec.pod_name.clone()?;
    let namespace = c.metadata.namespace.clone();
    let container = c
        .spec
        .container_name
        .as_deref()
        .map(|n| format!("container {n} of "))
        .unwrap_or_default();
    let signal = if c.spec.signal_name.is_empty() {
        format!("signal {}", c.spec.signal)
    } else {
        format!("{} (signal {})", c.spec.signal_name, c.spec.signal)
    };
    let core = match c.status.state {
        coredump_api::CoredumpState::Stored => "core stored".to_string(),
        state => format!("core {}", state.as_str()),
    };
    let note = format!(
        "Process {} (pid {}) in {container}pod {pod} was killed by {signal}; {core}: kubectl get coredump {} -n {namespace} (every crash of the pod: kubectl get coredumps -n {namespace} -l {}={})",
        c.spec.executable,
        c.spec.pid,
        c.metadata.name,
        coredump_ingest::object::labels::POD_NAME,
        c.metadata
            .labels
            .get(coredump_ingest::object::labels::POD_NAME)
            .map(String::as_str)
            .unwrap_or(pod.as_str()),
    );
    // A static pod's cgroup UID is its config hash, not the mirror pod's UID: leave it out then.
    let pod_uid = c.spec.pod_uid.clone().filter(|u| u.len() == 36);
    let count = crashes_of(c);
    Some(Event {
        metadata: ObjectMeta {
            name: Some(series_name(&pod, c.spec.pod_uid.as_deref())),
            namespace: Some(namespace.clone()),
            annotations: Some(BTreeMap::from([(
                LAST_COREDUMP.to_string(),
                c.metadata.name.clone(),
            )])),
            ..ObjectMeta::default()
        },
        event_time: Some(now.clone()),
        // A summary of many crashes starts its series counted.
        series: (count > 1).then_some(EventSeries {
            count,
            last_observed_time: now,
        }),
        action: Some("Crash".into()),
        reason: Some(REASON.into()),
        type_: Some("Warning".into()),
        note: Some(truncate(note, 1024)),
        regarding: Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod),
            namespace: Some(namespace.clone()),
            uid: pod_uid,
            field_path: c
                .spec
                .container_name
                .as_ref()
                .map(|n| format!("spec.containers{{{n}}}")),
            ..ObjectReference::default()
        }),
        related: Some(ObjectReference {
            api_version: Some(coredump_api::API_VERSION.into()),
            kind: Some(coredump_api::COREDUMP_KIND.into()),
            name: Some(c.metadata.name.clone()),
            namespace: Some(namespace),
            ..ObjectReference::default()
        }),
        reporting_controller: Some(CONTROLLER.into()),
        reporting_instance: Some(truncate(format!("coredump-agent-{node}"), 128)),
        ..Event::default()
    })
}

/// The merge patch that counts crash `c` into an existing series, `None` if the series has
/// counted it already (a retried ingest).
pub fn count_in(existing: &Event, c: &Coredump, now: MicroTime) -> Option<serde_json::Value> {
    let last = existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LAST_COREDUMP));
    if last == Some(&c.metadata.name) {
        return None;
    }
    let so_far = existing.series.as_ref().map(|s| s.count).unwrap_or(1);
    let series = EventSeries {
        count: so_far.saturating_add(crashes_of(c)),
        last_observed_time: now,
    };
    Some(serde_json::json!({
        "metadata": {
            // Optimistic concurrency: another writer in between makes this a conflict.
            "resourceVersion": existing.metadata.resource_version,
            "annotations": {LAST_COREDUMP: c.metadata.name},
        },
        "series": series,
    }))
}

/// Cuts `text` to at most `max` bytes at a character boundary (the API's field limits).
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash() -> Coredump {
        let mut c = Coredump::default();
        c.metadata.name = "crasher-4242-0a1b2c3d".into();
        c.metadata.namespace = "team-a".into();
        c.spec.pod_name = Some("web-0".into());
        c.spec.pod_uid = Some("0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11".into());
        c.spec.container_name = Some("app".into());
        c.spec.executable = "/usr/bin/crasher".into();
        c.spec.pid = 4242;
        c.spec.signal = 11;
        c.spec.signal_name = "SIGSEGV".into();
        c
    }

    fn now() -> MicroTime {
        MicroTime(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn event_on_the_pod_with_signal_and_executable() {
        let e = crash_event(&crash(), "node-1", now()).unwrap();
        assert_eq!(
            e.metadata.name.as_deref(),
            Some("web-0.coredumped.0b7c4e8e0f2c"),
            "one series per pod and reason"
        );
        assert_eq!(e.series, None, "a single crash starts the series");
        assert_eq!(e.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(e.reason.as_deref(), Some("CoreDumped"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(
            e.note.as_deref(),
            Some(
                "Process /usr/bin/crasher (pid 4242) in container app of pod web-0 was killed by SIGSEGV (signal 11); core stored: kubectl get coredump crasher-4242-0a1b2c3d -n team-a (every crash of the pod: kubectl get coredumps -n team-a -l coredump.fujitsu.com/pod-name=web-0)"
            )
        );
        let regarding = e.regarding.unwrap();
        assert_eq!(regarding.kind.as_deref(), Some("Pod"));
        assert_eq!(regarding.name.as_deref(), Some("web-0"));
        assert_eq!(
            regarding.uid.as_deref(),
            Some("0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11")
        );
        assert_eq!(
            regarding.field_path.as_deref(),
            Some("spec.containers{app}")
        );
        assert_eq!(e.related.unwrap().kind.as_deref(), Some("Coredump"));
        assert_eq!(
            e.reporting_instance.as_deref(),
            Some("coredump-agent-node-1")
        );
    }

    #[test]
    fn no_pod_no_event_and_states_are_told() {
        let mut c = crash();
        c.spec.pod_name = None;
        assert!(crash_event(&c, "n", now()).is_none());
        let mut c = crash();
        c.status.state = coredump_api::CoredumpState::QuotaExceeded;
        c.spec.pod_uid = Some("6c1d1b7a8a0e4f2b9e3d5c7a9b1d3f5e".into());
        c.spec.container_name = None;
        c.spec.signal_name = String::new();
        let e = crash_event(&c, "n", now()).unwrap();
        let note = e.note.unwrap();
        assert!(note.contains("core QuotaExceeded"), "{note}");
        assert!(
            note.contains("in pod web-0 was killed by signal 11"),
            "{note}"
        );
        assert_eq!(
            e.regarding.unwrap().uid,
            None,
            "static pod hash is not a UID"
        );
    }

    #[test]
    fn later_crashes_count_in_the_series_once_each() {
        let first = crash_event(&crash(), "node-1", now()).unwrap();
        let mut existing = first.clone();
        existing.metadata.resource_version = Some("42".into());
        assert_eq!(
            count_in(&existing, &crash(), now()),
            None,
            "the crash that created the series is counted already"
        );
        let mut next = crash();
        next.metadata.name = "crasher-4243-0a1b2c3e".into();
        let patch = count_in(&existing, &next, now()).unwrap();
        assert_eq!(patch["series"]["count"], 2);
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(
            patch["metadata"]["annotations"][LAST_COREDUMP],
            "crasher-4243-0a1b2c3e"
        );
        // A summary of 99 suppressed crashes counts 99.
        existing.series = Some(EventSeries {
            count: 2,
            last_observed_time: now(),
        });
        let mut summary = crash();
        summary.metadata.name = "crasher-5000-s0000001".into();
        summary.status.suppressed_crashes = 99;
        assert_eq!(
            count_in(&existing, &summary, now()).unwrap()["series"]["count"],
            101
        );
        let created = crash_event(&summary, "node-1", now()).unwrap();
        assert_eq!(created.series.unwrap().count, 99);
    }

    #[test]
    fn long_notes_are_cut_at_a_character_boundary() {
        let s = truncate("é".repeat(600), 1023);
        assert_eq!(s.len(), 1022);
        assert!(s.chars().all(|c| c == 'é'));
    }
}
