//! When to stop waiting for a pod (or its container status) to appear in the informer cache: a
//! pure step function, so the schedule is tested without clocks.
//!
//! A process can only crash in a pod the API server already knows, so a miss means the cache
//! lags (a watch delay of milliseconds to seconds, or an informer not synced yet) or the pod is
//! gone already. We retry with exponential backoff while the crash is recent, and give up (and
//! record with what is known) once the cache has been synced for longer than `grace` after the
//! crash, or after `max_wait` in any case, so one unknown pod never stalls the ingest for long.

use std::time::Duration;

/// The schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First wait.
    pub initial: Duration,
    /// Longest single wait.
    pub max_backoff: Duration,
    /// How long after a crash a miss in a synced cache still counts as lag.
    pub grace: Duration,
    /// Longest total wait for one crash.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            grace: Duration::from_secs(10),
            max_wait: Duration::from_secs(30),
        }
    }
}

/// What the resolver knows at one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Attempts made so far (0 for the first).
    pub number: u32,
    /// Whether the cache answered completely.
    pub found: bool,
    /// Whether the informer has completed its initial list.
    pub synced: bool,
    /// Time from the crash to now (zero if the clock says the crash is in the future).
    pub since_crash: Duration,
    /// Time spent waiting for this crash so far.
    pub waited: Duration,
}

/// The resolver's next move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Use the answer.
    Done,
    /// Look again after this long.
    Wait(Duration),
    /// Record with what is known.
    GiveUp,
}

impl RetryPolicy {
    /// The next move after `attempt`.
    pub fn step(&self, attempt: Attempt) -> Step {
        if attempt.found {
            return Step::Done;
        }
        if attempt.waited >= self.max_wait {
            return Step::GiveUp;
        }
        if attempt.synced && attempt.since_crash >= self.grace {
            return Step::GiveUp;
        }
        let backoff = self
            .initial
            .checked_mul(1u32.checked_shl(attempt.number.min(20)).unwrap_or(u32::MAX))
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        Step::Wait(backoff.min(self.max_wait - attempt.waited))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(number: u32, synced: bool, since_crash_ms: u64, waited_ms: u64) -> Attempt {
        Attempt {
            number,
            found: false,
            synced,
            since_crash: Duration::from_millis(since_crash_ms),
            waited: Duration::from_millis(waited_ms),
        }
    }

    #[test]
    fn found_is_done_whatever_else() {
        let p = RetryPolicy::default();
        let a = Attempt {
            found: true,
            ..attempt(99, false, 999_999, 999_999)
        };
        assert_eq!(p.step(a), Step::Done);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy::default();
        let waits: Vec<Step> = (0..7).map(|n| p.step(attempt(n, true, 0, 0))).collect();
        let ms = |m| Step::Wait(Duration::from_millis(m));
        assert_eq!(
            waits,
            vec![
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(2000),
                ms(2000)
            ]
        );
        assert_eq!(
            p.step(attempt(u32::MAX, true, 0, 0)),
            ms(2000),
            "no overflow"
        );
    }

    #[test]
    fn a_synced_cache_is_trusted_after_the_grace_period() {
        let p = RetryPolicy::default();
        assert_eq!(p.step(attempt(3, true, 10_000, 500)), Step::GiveUp);
        assert!(matches!(
            p.step(attempt(3, true, 9_999, 500)),
            Step::Wait(_)
        ));
        assert!(
            matches!(p.step(attempt(3, false, 600_000, 500)), Step::Wait(_)),
            "an unsynced cache proves nothing, however old the crash"
        );
    }

    #[test]
    fn total_wait_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.step(attempt(9, false, 0, 30_000)), Step::GiveUp);
        assert_eq!(
            p.step(attempt(9, false, 0, 29_900)),
            Step::Wait(Duration::from_millis(100)),
            "the last wait ends at max_wait"
        );
    }
}
