//! Maps the text of `/proc/<pid>/cgroup` to the Kubernetes pod (and container)
//! a process runs in.
//!
//! The crash handler captures that file while the crashed process still
//! exists; the agent later turns it into a pod UID and container id with
//! [`parse_proc_cgroup`] and matches them against its pod informer. The crate
//! does no I/O so that every layout kubelet and the runtimes produce (cgroup
//! v1 and v2, cgroupfs and systemd drivers, containerd / CRI-O / Docker,
//! nested clusters) can be tested with plain strings.
//!
//! The parser prefers no answer to a wrong one: any line that looks like
//! kubelet's hierarchy but does not parse, or two lines naming different
//! pods or containers, give `None`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
// Tests may unwrap: a panic there is a failed test, not a lost core.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod identity;
mod path;

pub use identity::{ContainerId, PodIdentity, QosClass, Runtime};

use path::{PathVerdict, classify_path};

/// Parses the whole text of `/proc/<pid>/cgroup` (v1, v2 or hybrid).
///
/// Returns `None` when the process is not in a pod, and also when the text is
/// malformed or contradictory. On cgroup v1 every hierarchy line that carries
/// a pod must name the same pod and QoS class, and the ones that name a
/// container the same container; a line at the pod level (no container)
/// defers to one that names the container.
pub fn parse_proc_cgroup(text: &str) -> Option<PodIdentity> {
    let mut found: Option<PodIdentity> = None;
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let verdict = match line_path(line) {
            Some(path) => classify_path(path),
            None if line.contains("kubepods") => PathVerdict::Invalid,
            None => PathVerdict::Outside,
        };
        match verdict {
            PathVerdict::Outside => {}
            PathVerdict::Invalid => return None,
            PathVerdict::Pod(pod) => found = Some(merge(found, pod)?),
        }
    }
    found
}

/// The path of a `hierarchy-id:controller-list:path` line.
fn line_path(line: &str) -> Option<&str> {
    let mut parts = line.splitn(3, ':');
    let id = parts.next()?;
    let _controllers = parts.next()?;
    let path = parts.next()?;
    let id_ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    (id_ok && path.starts_with('/')).then_some(path)
}

/// Combines what two hierarchy lines say, `None` when they disagree.
fn merge(found: Option<PodIdentity>, next: PodIdentity) -> Option<PodIdentity> {
    let Some(mut found) = found else {
        return Some(next);
    };
    if found.pod_uid != next.pod_uid || found.qos != next.qos {
        return None;
    }
    match (&found.container, next.container) {
        (Some(a), Some(b)) if *a != b => return None,
        (None, Some(b)) => found.container = Some(b),
        _ => {}
    }
    Some(found)
}

#[cfg(test)]
mod tests;
