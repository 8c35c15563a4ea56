//! Polling with a deadline: every wait in the harness goes through here, so none can hang.
//! [`eventually`] is the same loop for tests that wait on the cluster (RBAC reaching the
//! authorizer, an APIService turning Available, a server listening).

use std::time::{Duration, Instant};

use crate::error::HarnessError;

/// How often [`eventually`] asks again: a probe is usually a kubectl run (~50 ms of CPU), so
/// faster polling would mostly load the shared machine.
const EVENTUALLY_INTERVAL: Duration = Duration::from_millis(200);

/// What one poll attempt found.
pub(crate) enum Poll<T, E> {
    /// The condition holds.
    Ready(T),
    /// Not yet; the string says what the probe saw (it ends up in the timeout error).
    Pending(String),
    /// Give up at once (e.g. the process died).
    Fail(E),
}

/// Calls `probe` every `interval` until it is ready, fails, or `timeout` has passed; on timeout
/// returns `Err(on_timeout(waited, last_pending_message))`.
pub(crate) fn poll_until<T, E>(
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Poll<T, E>,
    on_timeout: impl FnOnce(Duration, String) -> E,
) -> Result<T, E> {
    let start = Instant::now();
    loop {
        let last = match probe() {
            Poll::Ready(value) => return Ok(value),
            Poll::Fail(err) => return Err(err),
            Poll::Pending(message) => message,
        };
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(on_timeout(waited, last));
        }
        std::thread::sleep(interval.min(timeout - waited));
    }
}

/// Calls `condition` at once and then every 200 ms until it returns `Some`, for at most
/// `timeout`; [`HarnessError::Timeout`] names `what` otherwise. A condition that must stop the
/// wait early (a process died) can panic: this is for tests.
pub fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> Option<T>,
) -> Result<T, HarnessError> {
    poll_until(
        timeout,
        EVENTUALLY_INTERVAL,
        || match condition() {
            Some(value) => Poll::Ready(value),
            None => Poll::Pending(String::new()),
        },
        |_, _| HarnessError::Timeout {
            what: what.to_string(),
            timeout,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_ready_value() {
        let mut calls = 0;
        let got: Result<u32, String> = poll_until(
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                calls += 1;
                if calls == 3 {
                    Poll::Ready(calls)
                } else {
                    Poll::Pending(format!("call {calls}"))
                }
            },
            |_, last| last,
        );
        assert_eq!(got, Ok(3));
    }

    #[test]
    fn times_out_with_the_last_message() {
        let got: Result<(), String> = poll_until(
            Duration::from_millis(30),
            Duration::from_millis(5),
            || Poll::Pending("still starting".to_string()),
            |waited, last| format!("{last} after {}", waited >= Duration::from_millis(30)),
        );
        assert_eq!(got, Err("still starting after true".to_string()));
    }

    #[test]
    fn fail_stops_at_once() {
        let mut calls = 0;
        let got: Result<(), &str> = poll_until(
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                calls += 1;
                Poll::Fail("dead")
            },
            |_, _| "timeout",
        );
        assert_eq!((got, calls), (Err("dead"), 1));
    }

    #[test]
    fn eventually_returns_the_value_and_names_what_timed_out() {
        let mut calls = 0;
        let got = eventually(Duration::from_secs(5), "third call", || {
            calls += 1;
            (calls == 3).then_some(calls * 10)
        });
        assert_eq!(got.ok(), Some(30));

        let started = Instant::now();
        let err = eventually(Duration::from_millis(300), "never", || None::<()>).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(err.to_string(), "never: not within 300ms");
    }
}
