//! The GC's Prometheus metrics: cycles by outcome (a cycle skipped because the pod API was
//! unreachable is its own outcome), deletions by kind and reason, bytes freed, pods and
//! namespaces waiting out the threshold, and when the last complete cycle ended.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::plan::Reason;

/// Label of a cycle's outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `ok`, `api_unreachable`, `error`.
    pub outcome: String,
}

/// Labels of a deletion.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeletionLabels {
    /// `coredump`, `endpoint`, `pod_dir`, `file`.
    pub kind: String,
    /// See [`Reason::as_str`].
    pub reason: String,
}

/// Every metric of the GC.
pub struct Metrics {
    registry: Mutex<Registry>,
    cycles: Family<OutcomeLabel, Counter>,
    deletions: Family<DeletionLabels, Counter>,
    freed_bytes: Counter,
    waiting_pods: Gauge,
    waiting_namespaces: Gauge,
    last_success: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric under the `coredump_gc` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("coredump_gc");
        let cycles = Family::<OutcomeLabel, Counter>::default();
        let deletions = Family::<DeletionLabels, Counter>::default();
        let freed_bytes = Counter::default();
        let waiting_pods = Gauge::default();
        let waiting_namespaces = Gauge::default();
        let last_success = Gauge::default();
        registry.register("cycles", "GC cycles by outcome", cycles.clone());
        registry.register(
            "deletions",
            "Objects, directories and files deleted, by kind and reason",
            deletions.clone(),
        );
        registry.register("freed_bytes", "Bytes of blobs deleted", freed_bytes.clone());
        registry.register(
            "gone_pods",
            "Pods seen gone that still have cores, waiting for the threshold",
            waiting_pods.clone(),
        );
        registry.register(
            "gone_namespaces",
            "Namespaces seen gone that still have cores, waiting for the threshold",
            waiting_namespaces.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When the last complete cycle ended (Unix seconds)",
            last_success.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            cycles,
            deletions,
            freed_bytes,
            waiting_pods,
            waiting_namespaces,
            last_success,
        }
    }

    /// Counts a cycle.
    pub fn cycle(&self, outcome: &str) {
        self.cycles
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts one deletion of `bytes`.
    pub fn deleted(&self, kind: &str, reason: Reason, bytes: u64) {
        self.deletions
            .get_or_create(&DeletionLabels {
                kind: kind.to_string(),
                reason: reason.as_str().to_string(),
            })
            .inc();
        self.freed_bytes.inc_by(bytes);
    }

    /// Records the end of a complete cycle.
    pub fn succeeded(&self, now: i64, gone_pods: usize, gone_namespaces: usize) {
        self.last_success.set(now);
        self.waiting_pods
            .set(i64::try_from(gone_pods).unwrap_or(i64::MAX));
        self.waiting_namespaces
            .set(i64::try_from(gone_namespaces).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        coredump_common::health::encode_registry(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_what_was_counted() {
        let m = Metrics::new();
        m.cycle("ok");
        m.cycle("api_unreachable");
        m.deleted("pod_dir", Reason::PodGone, 1010);
        m.deleted("coredump", Reason::PodGone, 0);
        m.succeeded(1_700_000_000, 2, 1);
        let text = m.encode();
        for line in [
            "coredump_gc_cycles_total{outcome=\"ok\"} 1",
            "coredump_gc_cycles_total{outcome=\"api_unreachable\"} 1",
            "coredump_gc_deletions_total{kind=\"pod_dir\",reason=\"pod_gone\"} 1",
            "coredump_gc_freed_bytes_total 1010",
            "coredump_gc_gone_pods 2",
            "coredump_gc_last_success_timestamp_seconds 1700000000",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
