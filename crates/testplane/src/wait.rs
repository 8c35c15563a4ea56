//! Polling with a deadline: every wait in the harness goes through here, so none can hang.

use std::time::{Duration, Instant};

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
}
