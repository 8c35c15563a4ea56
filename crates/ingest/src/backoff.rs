//! Per-entry retry schedule of the ingest loop. A spool entry whose ingest fails (API server
//! down, blob volume full) is retried after an exponentially growing pause instead of on every
//! pass, so a long outage costs neither CPU nor a log line every 100 ms; the other entries are
//! not held back. Pure (the caller passes the clock), so the schedule is unit-tested.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// First pause after a failure.
pub const INITIAL_PAUSE: Duration = Duration::from_millis(200);
/// Longest pause between two attempts of one entry.
pub const MAX_PAUSE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct Failing {
    failures: u32,
    next_attempt: Instant,
}

/// What one failure means for the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Consecutive failures of this entry, this one included.
    pub failures: u32,
    /// Pause before the next attempt.
    pub pause: Duration,
}

impl Failure {
    /// Whether this failure deserves a log line: the 1st, 2nd, 4th, 8th... so an outage logs
    /// a handful of lines per entry, not one per attempt.
    pub fn worth_logging(&self) -> bool {
        self.failures.is_power_of_two()
    }
}

/// Failing entries and when each may be tried again.
#[derive(Debug, Default)]
pub struct EntryBackoff {
    failing: HashMap<String, Failing>,
}

impl EntryBackoff {
    /// Whether `id` may be attempted at `now` (entries that never failed always may).
    pub fn due(&self, id: &str, now: Instant) -> bool {
        self.failing.get(id).is_none_or(|f| now >= f.next_attempt)
    }

    /// Records a failure of `id` at `now`; the pause doubles from [`INITIAL_PAUSE`] up to
    /// [`MAX_PAUSE`].
    pub fn failed(&mut self, id: &str, now: Instant) -> Failure {
        let failures = self.failing.get(id).map_or(0, |f| f.failures) + 1;
        let doublings = (failures - 1).min(16);
        let pause = INITIAL_PAUSE.saturating_mul(1 << doublings).min(MAX_PAUSE);
        self.failing.insert(
            id.to_string(),
            Failing {
                failures,
                next_attempt: now + pause,
            },
        );
        Failure { failures, pause }
    }

    /// Forgets `id` (ingested, or gone from the spool).
    pub fn succeeded(&mut self, id: &str) {
        self.failing.remove(id);
    }

    /// Keeps only the entries still in the spool.
    pub fn retain_present(&mut self, present: &[String]) {
        self.failing.retain(|id, _| present.iter().any(|p| p == id));
    }

    /// Number of entries waiting for a retry.
    pub fn len(&self) -> usize {
        self.failing.len()
    }

    /// Whether no entry is waiting for a retry.
    pub fn is_empty(&self) -> bool {
        self.failing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_only_for_the_failing_entry() {
        let mut b = EntryBackoff::default();
        let t0 = Instant::now();
        let pauses: Vec<u64> = (0..10)
            .map(|_| b.failed("a", t0).pause.as_millis() as u64)
            .collect();
        assert_eq!(
            pauses,
            [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]
        );
        assert!(!b.due("a", t0 + Duration::from_secs(29)));
        assert!(b.due("a", t0 + MAX_PAUSE));
        assert!(b.due("b", t0), "other entries are not held back");
    }

    #[test]
    fn success_and_disappearance_reset_the_schedule() {
        let mut b = EntryBackoff::default();
        let t0 = Instant::now();
        b.failed("a", t0);
        b.failed("a", t0);
        b.succeeded("a");
        assert!(b.due("a", t0));
        assert_eq!(b.failed("a", t0).failures, 1, "starts over");
        b.failed("gone", t0);
        b.retain_present(&["a".to_string()]);
        assert_eq!(b.len(), 1);
        assert!(b.due("gone", t0));
    }

    #[test]
    fn a_long_outage_logs_a_few_lines_not_one_per_attempt() {
        let mut b = EntryBackoff::default();
        let t0 = Instant::now();
        let logged = (0..1000)
            .filter(|_| b.failed("a", t0).worth_logging())
            .count();
        assert_eq!(logged, 10, "1, 2, 4, ... 512");
    }
}
