//! What the agent's plain-HTTP endpoint (`coredump_common::health`) reports: its metrics, and
//! ready when the kernel points at our handler and the informers have their initial lists, so
//! crashes are resolved, not guessed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::informer::Caches;
use crate::metrics::Metrics;

/// What the endpoints report on.
#[derive(Clone)]
pub struct AgentHealth {
    /// Metrics to expose.
    pub metrics: Arc<Metrics>,
    /// Informer caches (ready when synced).
    pub caches: Caches,
    /// Whether `core_pattern` points at our handler.
    pub capturing: Arc<AtomicBool>,
}

impl coredump_common::health::Health for AgentHealth {
    fn metrics(&self) -> String {
        self.metrics.encode()
    }

    fn ready(&self) -> Result<(), String> {
        let capturing = self.capturing.load(Ordering::Acquire);
        let synced = self.caches.synced();
        if capturing && synced {
            Ok(())
        } else {
            Err(format!(
                "capturing: {capturing}, informers synced: {synced}"
            ))
        }
    }
}
