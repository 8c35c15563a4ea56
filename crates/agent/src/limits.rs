//! The agent's half of the crash-loop limits (`coredump_capture::limits`): the flags, and a
//! loop that tells the crash path what it cannot know itself and publishes what it counted.
//!
//! Every few seconds, for each pod on this node, it writes the pod's policy file (namespace,
//! opt-out, the bytes its namespace may still store under `NS_DISK_QUOTA`), so the handler can
//! refuse an opted-out pod and cap a core to the quota before a byte is written; it forgets the
//! pods that are gone; and it turns the crashes the handler suppressed into one `RateLimited`
//! spool entry per pod, which the ingest records like any other crash.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use coredump_capture::limits::{CrashLimits, Limiter, PodPolicy, Rate};
use coredump_capture::spool::Spool;
use tokio_util::sync::CancellationToken;

use crate::informer::Caches;
use crate::pods::static_pod_hash;

/// Flags of the crash-loop limits.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitFlags {
    /// Crashes of one pod kept at once before its rate applies.
    #[arg(long, default_value_t = 10)]
    pub pod_crash_burst: u32,
    /// Crashes of one pod kept per minute after its burst; more are counted on one
    /// RateLimited record instead.
    #[arg(long, default_value_t = 2)]
    pub pod_crashes_per_minute: u32,
    /// Crashes of one namespace's pods (on this node) kept at once before its rate applies.
    #[arg(long, default_value_t = 30)]
    pub namespace_crash_burst: u32,
    /// Crashes of one namespace's pods (on this node) kept per minute after the burst.
    #[arg(long, default_value_t = 10)]
    pub namespace_crashes_per_minute: u32,
    /// Core bytes one pod may keep per hour (enforced while capturing: a core over the budget
    /// is truncated); 0 = no limit.
    #[arg(long, default_value = "8Gi", value_parser = coredump_common::parse_bytes)]
    pub pod_core_bytes_per_hour: u64,
    /// How often pod policies are refreshed and suppressed crashes recorded (seconds).
    #[arg(long, default_value_t = 5)]
    pub limits_interval_secs: u64,
    /// A pod's suppressed crashes are recorded (one RateLimited record for all of them) once
    /// none was suppressed for this long (seconds)...
    #[arg(long, default_value_t = 10)]
    pub suppressed_quiet_secs: u64,
    /// ...or once the first of them is this old (seconds): a loop that never pauses leaves one
    /// record per this period.
    #[arg(long, default_value_t = 600)]
    pub suppressed_max_secs: u64,
}

impl LimitFlags {
    /// The crash path's limits, kept under `dir`.
    pub fn crash_limits(&self, dir: PathBuf) -> CrashLimits {
        CrashLimits {
            dir,
            pod: Rate {
                burst: self.pod_crash_burst,
                per_minute: self.pod_crashes_per_minute,
            },
            namespace: Rate {
                burst: self.namespace_crash_burst,
                per_minute: self.namespace_crashes_per_minute,
            },
            pod_bytes_per_hour: self.pod_core_bytes_per_hour,
        }
    }
}

/// The policy of every pod in the caches, by the pod UIDs its cgroups carry (the UID, and the
/// config hash of a static pod).
pub fn pod_policies(caches: &Caches, node: &str) -> Vec<(String, PodPolicy)> {
    let mut out = Vec::new();
    for pod in caches.pods() {
        let Some(namespace) = pod.metadata.namespace.clone() else {
            continue;
        };
        let policy = PodPolicy {
            opted_out: caches.opt_out_of(&pod),
            namespace,
        };
        let uids = [
            pod.metadata.uid.clone(),
            static_pod_hash(&pod.metadata, Some(node)).map(str::to_owned),
        ];
        for uid in uids.into_iter().flatten() {
            out.push((uid, policy.clone()));
        }
    }
    out
}

/// The refresh loop and what it works on.
pub struct LimitsLoop {
    /// The crash path's limits (their directory holds policies and state).
    pub limits: CrashLimits,
    /// The node's spool, where summaries of suppressed crashes are published.
    pub spool: Spool,
    /// This node's pods and namespaces.
    pub caches: Caches,
    /// Time between two rounds.
    pub interval: Duration,
    /// When suppressed crashes are due (see [`Limiter::publish_suppressed`]): quiet time...
    pub quiet: Duration,
    /// ...or the age of the first.
    pub max_delay: Duration,
}

impl LimitsLoop {
    /// Runs rounds until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.round().await;
        }
    }

    /// One round: policies written, suppressed crashes published, departed pods forgotten.
    pub async fn round(&self) {
        let LimitsLoop {
            limits,
            spool,
            caches,
            quiet,
            max_delay,
            ..
        } = self;
        let (quiet, max_delay) = (*quiet, *max_delay);
        let node = caches.node().to_owned();
        let synced = caches.pods_synced();
        let policies = pod_policies(caches, &node);
        let limits = limits.clone();
        let spool = spool.clone();
        let work = tokio::task::spawn_blocking(move || {
            let limiter = Limiter::new(&limits);
            for (uid, policy) in &policies {
                if let Err(e) = limiter.write_policy(uid, policy) {
                    tracing::warn!(pod_uid = %uid, error = %e, "cannot write the pod's capture policy");
                }
            }
            let published = limiter.publish_suppressed(&spool, quiet, max_delay);
            // Only a complete view of the node's pods may tell which are gone.
            if synced {
                let live: HashSet<String> = policies.into_iter().map(|(uid, _)| uid).collect();
                limiter.forget_pods_except(&live);
            }
            published
        })
        .await;
        match work {
            Ok(Ok(ids)) if !ids.is_empty() => {
                tracing::info!(entries = ?ids, "recorded crashes over the crash-loop limits")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "publishing suppressed crashes failed"),
            Err(e) => tracing::warn!(error = %e, "limits task failed"),
        }
    }
}
