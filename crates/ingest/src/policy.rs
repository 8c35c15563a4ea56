//! The say a deployment has over whether a crash's core is kept, after the pod is known and
//! before anything is stored: the node agent refuses cores of opted-out pods and namespaces and
//! of namespaces over their disk quota. Standalone keeps everything ([`KeepAll`]).
//!
//! The ingest asks once per spool entry and writes the answer, together with the resolved
//! identity, into the entry ([`Resolution`]) before any side effect. A retried ingest (after a
//! crash of the agent at any moment) reuses it, so the blob path, the object and its state are
//! the same on every attempt even if the pod left the cache or the quota changed meanwhile.

use std::path::Path;

use async_trait::async_trait;
use coredump_api::{CoredumpReason, CoredumpState};
use coredump_capture::CrashRecord;
use serde::{Deserialize, Serialize};

use crate::object::{Placement, ResolvedIdentity};

/// What a policy sees of one crash.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// The crash path's record.
    pub record: &'a CrashRecord,
    /// The pod and container, when resolved.
    pub identity: Option<&'a ResolvedIdentity>,
    /// Where the crash would be stored.
    pub placement: &'a Placement,
    /// Bytes the core would add to the blob store (its compressed size), `None` without a core.
    pub core_bytes: Option<u64>,
}

/// Whether the core is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "camelCase")]
pub enum CoreDecision {
    /// Store the core (if there is one) and record the crash as the crash path left it.
    Keep,
    /// Do not store the core; record the crash with this state, cause and reason.
    Discard {
        /// Recorded state (`QuotaExceeded`, `Skipped`).
        state: CoredumpState,
        /// Recorded `status.reason` (absent in decisions spooled by an older agent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<CoredumpReason>,
        /// Recorded message.
        reason: String,
    },
}

/// Decides whether cores are kept.
#[async_trait]
pub trait CorePolicy: Send + Sync + 'static {
    /// The decision for one crash.
    async fn decide(&self, input: PolicyInput<'_>) -> CoreDecision;
}

/// Keeps every core (standalone: one machine, no tenants).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepAll;

#[async_trait]
impl CorePolicy for KeepAll {
    async fn decide(&self, _input: PolicyInput<'_>) -> CoreDecision {
        CoreDecision::Keep
    }
}

/// Identity and decision of one spool entry, frozen before any side effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The pod and container, when resolved.
    pub identity: Option<ResolvedIdentity>,
    /// Whether the core is kept.
    pub decision: CoreDecision,
}

/// File name of the frozen [`Resolution`] inside a spool entry.
pub const RESOLUTION_JSON: &str = "resolution.json";

/// Reads the resolution of an entry directory, `None` when absent or unreadable (then it is
/// decided again: nothing was stored under an unreadable one, since it is written first).
pub fn load_resolution(entry_dir: &Path) -> Option<Resolution> {
    let bytes =
        coredump_capture::fsutil::read_bounded(&entry_dir.join(RESOLUTION_JSON), 64 << 10).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_round_trip_through_json() {
        let r = Resolution {
            identity: Some(ResolvedIdentity {
                namespace: "a".into(),
                pod_name: "p".into(),
                container_name: Some("c".into()),
                image: None,
            }),
            decision: CoreDecision::Discard {
                state: CoredumpState::QuotaExceeded,
                cause: Some(CoredumpReason::QuotaExceeded),
                reason: "over".into(),
            },
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"decision\":\"discard\""), "{json}");
        assert_eq!(serde_json::from_str::<Resolution>(&json).unwrap(), r);
        let keep = serde_json::to_string(&CoreDecision::Keep).unwrap();
        assert_eq!(keep, r#"{"decision":"keep"}"#);
    }

    #[test]
    fn missing_or_garbled_resolution_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_resolution(dir.path()), None);
        std::fs::write(dir.path().join(RESOLUTION_JSON), b"{").unwrap();
        assert_eq!(load_resolution(dir.path()), None);
    }
}
