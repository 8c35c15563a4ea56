//! What the agent does with `core_pattern` when it stops. A restart (its pod deleted, a
//! `kubectl rollout restart`, an upgrade) must not lose the crashes of the seconds until the
//! next agent runs: the agent then *hands over*, leaving the kernel pointed at the installed
//! pipe handler, which keeps spooling cores on the node without any agent, and the next agent
//! takes the pattern over without a gap and ingests the spool
//! (`coredump_capture::kernel::PatternGuard::hand_over`). Only when the install is going away
//! (its DaemonSet deleted or being deleted) does the agent restore the previous pattern.
//!
//! The question is asked of the API server at SIGTERM; when it cannot be answered (no
//! connection, no permission), the agent restores: a node must never keep a handler whose
//! install is gone.
//!
//! In socket mode the hand-over is the same pipe handler: `core_pattern` switches from the
//! socket to the pipe before the server stops (it still answers what the kernel queued), and
//! the next agent starts its server before switching back, so no crash finds the socket
//! closed.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

/// Why the agent is stopping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopping {
    /// Its DaemonSet is still there: another agent pod follows.
    Restart,
    /// The install is going away, or the agent cannot tell (the reason says which).
    Uninstall(String),
}

/// Asks the API server whether the DaemonSet owning pod `namespace/pod_name` still exists
/// and is not being deleted.
pub async fn why_stopping(client: &Client, namespace: &str, pod_name: Option<&str>) -> Stopping {
    let Some(pod_name) = pod_name else {
        return Stopping::Uninstall("own pod name unknown (no --pod-name / $HOSTNAME)".into());
    };
    let pod = match Api::<Pod>::namespaced(client.clone(), namespace)
        .get(pod_name)
        .await
    {
        Ok(pod) => pod,
        Err(e) => {
            return Stopping::Uninstall(format!("reading own pod {namespace}/{pod_name}: {e}"));
        }
    };
    let Some(owner) = pod
        .metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .find(|o| o.kind == "DaemonSet")
    else {
        return Stopping::Uninstall(format!("pod {namespace}/{pod_name} has no DaemonSet owner"));
    };
    match Api::<DaemonSet>::namespaced(client.clone(), namespace)
        .get_opt(&owner.name)
        .await
    {
        Ok(Some(ds)) => decide(
            &owner.uid,
            ds.metadata.uid.as_deref(),
            ds.metadata.deletion_timestamp.is_some(),
            &owner.name,
        ),
        Ok(None) => Stopping::Uninstall(format!("DaemonSet {namespace}/{} is gone", owner.name)),
        Err(e) => Stopping::Uninstall(format!("reading DaemonSet {namespace}/{}: {e}", owner.name)),
    }
}

/// The decision from what the API server said about the owning DaemonSet.
fn decide(owner_uid: &str, current_uid: Option<&str>, deleting: bool, name: &str) -> Stopping {
    if current_uid != Some(owner_uid) {
        Stopping::Uninstall(format!("DaemonSet {name} was replaced (another UID)"))
    } else if deleting {
        Stopping::Uninstall(format!("DaemonSet {name} is being deleted"))
    } else {
        Stopping::Restart
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_daemonset_of_the_same_uid_means_restart() {
        assert_eq!(decide("u1", Some("u1"), false, "ds"), Stopping::Restart);
        assert!(
            matches!(decide("u1", Some("u1"), true, "ds"), Stopping::Uninstall(r) if r.contains("being deleted"))
        );
        assert!(
            matches!(decide("u1", Some("u2"), false, "ds"), Stopping::Uninstall(r) if r.contains("replaced"))
        );
        assert!(matches!(
            decide("u1", None, false, "ds"),
            Stopping::Uninstall(_)
        ));
    }
}
