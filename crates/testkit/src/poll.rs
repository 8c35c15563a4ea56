//! Waiting for a condition with a deadline, never a bare sleep.

use std::time::{Duration, Instant};

/// Calls `check` every `interval` until it returns `Some`, or gives up after `timeout` with an
/// error naming `what`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(interval);
    }
}
