//! The agent's Prometheus metrics: crashes recorded (by state), core bytes as the kernel sent
//! them and as stored, cores not kept (by reason) and the latency from crash to record. Updated
//! by the sink when an object is created (not on the "already exists" of a retry, so a crash is
//! counted once), encoded in the text format for `/metrics`.

use std::sync::Mutex;
use std::time::Duration;

use coredump_api::{Coredump, CoredumpState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of the state a crash was recorded with.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `Stored`, `Truncated`, `QuotaExceeded`, ...
    pub state: String,
}

/// Label of why a core was not kept.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// See [`drop_reason`].
    pub reason: String,
}

/// Label of an API call's outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// Every metric of the agent.
pub struct Metrics {
    registry: Mutex<Registry>,
    crashes: Family<StateLabel, Counter>,
    raw_bytes: Counter,
    stored_bytes: Counter,
    drops: Family<ReasonLabel, Counter>,
    latency: Histogram,
    events: Family<ResultLabel, Counter>,
    sink_errors: Counter,
}

/// Why a recorded crash has no core, as a metric label: its `status.reason`, typed where the
/// core was given up; `None` when a core (whole or truncated) was stored. A record without a
/// reason (written by an older agent) counts by its state.
pub fn drop_reason(c: &Coredump) -> Option<&'static str> {
    let by_state = match c.status.state {
        CoredumpState::Stored | CoredumpState::Truncated => return None,
        CoredumpState::QuotaExceeded => "quota_exceeded",
        CoredumpState::Skipped => "skipped",
        CoredumpState::RateLimited => "rate_limited",
        CoredumpState::Failed => "failed",
        CoredumpState::Evicted => "retention",
    };
    Some(c.status.reason.map_or(by_state, |r| r.metric_label()))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric under the `coredump_agent` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("coredump_agent");
        let crashes = Family::<StateLabel, Counter>::default();
        let raw_bytes = Counter::default();
        let stored_bytes = Counter::default();
        let drops = Family::<ReasonLabel, Counter>::default();
        // 50 ms .. ~7 min: from a small core ingested at once to a large one behind a backlog.
        let latency = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        let events = Family::<ResultLabel, Counter>::default();
        let sink_errors = Counter::default();
        registry.register(
            "crashes",
            "Crashes recorded as Coredump objects, by state",
            crashes.clone(),
        );
        registry.register(
            "core_raw_bytes",
            "Bytes of core the kernel wrote for recorded crashes",
            raw_bytes.clone(),
        );
        registry.register(
            "core_stored_bytes",
            "Bytes of compressed core stored in the blob store",
            stored_bytes.clone(),
        );
        registry.register(
            "core_drops",
            "Crashes recorded without their core, by reason",
            drops.clone(),
        );
        registry.register(
            "ingest_latency_seconds",
            "Time from a crash to its Coredump object",
            latency.clone(),
        );
        registry.register(
            "events",
            "Kubernetes Events emitted on pods, by result",
            events.clone(),
        );
        registry.register(
            "record_errors",
            "Failed attempts to create a Coredump object (retried)",
            sink_errors.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            crashes,
            raw_bytes,
            stored_bytes,
            drops,
            latency,
            events,
            sink_errors,
        }
    }

    /// Counts a newly recorded crash; `latency` is from the crash to now.
    pub fn recorded(&self, c: &Coredump, latency: Duration) {
        self.crashes
            .get_or_create(&StateLabel {
                state: c.status.state.as_str().to_string(),
            })
            .inc();
        self.raw_bytes.inc_by(c.status.raw_size);
        self.stored_bytes.inc_by(c.status.stored_size);
        if let Some(reason) = drop_reason(c) {
            self.drops
                .get_or_create(&ReasonLabel {
                    reason: reason.to_string(),
                })
                .inc();
        }
        self.latency.observe(latency.as_secs_f64());
    }

    /// Counts an Event emission.
    pub fn event(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.events
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// Counts a failed attempt to record a crash.
    pub fn record_error(&self) {
        self.sink_errors.inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        coredump_common::health::encode_registry(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coredump_api::CoredumpReason;

    fn coredump(state: CoredumpState, message: &str, raw: u64, stored: u64) -> Coredump {
        let mut c = Coredump::default();
        c.status.state = state;
        c.status.message = message.into();
        c.status.raw_size = raw;
        c.status.stored_size = stored;
        c
    }

    #[test]
    fn drop_reasons() {
        let r = |state, reason| {
            let mut c = coredump(state, "any text", 0, 0);
            c.status.reason = reason;
            drop_reason(&c)
        };
        assert_eq!(r(CoredumpState::Stored, None), None);
        let size = Some(CoredumpReason::SizeLimit);
        assert_eq!(r(CoredumpState::Truncated, size), None, "a core is kept");
        let quota = Some(CoredumpReason::QuotaExceeded);
        assert_eq!(
            r(CoredumpState::QuotaExceeded, quota),
            Some("quota_exceeded")
        );
        let opted_out = Some(CoredumpReason::OptedOut);
        assert_eq!(r(CoredumpState::Skipped, opted_out), Some("opted_out"));
        let floor = Some(CoredumpReason::DiskFloor);
        assert_eq!(r(CoredumpState::Skipped, floor), Some("disk_floor"));
        // An unresolved pod is no disk-floor drop (the text-matching version said it was).
        let unresolved = Some(CoredumpReason::PodUnresolved);
        assert_eq!(
            r(CoredumpState::Skipped, unresolved),
            Some("pod_unresolved")
        );
        let crash_loop = Some(CoredumpReason::CrashLoop);
        assert_eq!(
            r(CoredumpState::RateLimited, crash_loop),
            Some("crash_loop")
        );
        let store = Some(CoredumpReason::StoreUnavailable);
        assert_eq!(r(CoredumpState::Failed, store), Some("store_unavailable"));
        // Records of an older agent: by state.
        assert_eq!(r(CoredumpState::Skipped, None), Some("skipped"));
        assert_eq!(r(CoredumpState::Failed, None), Some("failed"));
    }

    #[test]
    fn encodes_what_was_counted() {
        let m = Metrics::new();
        m.recorded(
            &coredump(CoredumpState::Stored, "", 1000, 100),
            Duration::from_millis(300),
        );
        m.recorded(
            &coredump(CoredumpState::QuotaExceeded, "over", 500, 0),
            Duration::from_secs(2),
        );
        m.event(true);
        let text = m.encode();
        for line in [
            "coredump_agent_crashes_total{state=\"Stored\"} 1",
            "coredump_agent_crashes_total{state=\"QuotaExceeded\"} 1",
            "coredump_agent_core_raw_bytes_total 1500",
            "coredump_agent_core_stored_bytes_total 100",
            "coredump_agent_core_drops_total{reason=\"quota_exceeded\"} 1",
            "coredump_agent_ingest_latency_seconds_count 2",
            "coredump_agent_ingest_latency_seconds_bucket{le=\"0.4\"} 1",
            "coredump_agent_events_total{result=\"ok\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
