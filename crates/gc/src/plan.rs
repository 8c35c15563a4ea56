//! The GC's decisions as one pure function: from what exists (live pods and namespaces, blob
//! directories, `Coredump` and `CoredumpEndpoint` objects), what was seen gone before
//! ([`GoneState`]) and the rules, compute what to delete and the next state. No I/O, no clock:
//! every rule is a plain unit test, and `--dry-run` prints exactly what a real run would do.
//!
//! Rules, in order:
//! 1. A namespace absent from the API since longer than the threshold: everything in it.
//! 2. A pod (by UID; a static pod by its config hash) absent since longer than the threshold:
//!    its endpoints, its `Coredump`s and its blob directory.
//! 3. `--max-age`: `Coredump`s whose crash is older, with their core and record files.
//! 4. `--max-namespace-size`: the oldest `Coredump`s (and files) of a namespace until its
//!    blobs fit.
//! 5. Binaries kept by build ID (`<namespace>/.buildid/<id>/`) that no remaining `Coredump` of
//!    their namespace references (its `status.analysis.modules`) for longer than the threshold;
//!    all of them with their namespace. Without this rule they stayed forever, counted in the
//!    namespace's quota. The threshold also covers the moment between the ingest storing a
//!    binary and creating the record that references it.
//!
//! "Gone since" is remembered per namespace, per `namespace/podUID` and per unreferenced
//! `namespace/build-id` in a state file, so a GC restart does not restart the clock; an entry is
//! forgotten as soon as its pod or namespace is seen again (its binary referenced again) or
//! nothing of it is left to collect.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use coredump_store::BlobPath;
use coredump_store::buildid::buildid_path;
use serde::{Deserialize, Serialize};

use crate::inventory::{BinaryBlobs, PodBlobs};

/// When pods and namespaces were first seen gone, in Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoneState {
    /// `<namespace>/<podUID>` → first seen gone.
    pub pods: BTreeMap<String, i64>,
    /// Namespace → first seen gone.
    pub namespaces: BTreeMap<String, i64>,
    /// `<namespace>/<build-id>` of a kept binary → first seen unreferenced (absent in state
    /// files written before rule 5).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binaries: BTreeMap<String, i64>,
}

/// A `Coredump` as the GC needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoredumpRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.podUID`.
    pub pod_uid: Option<String>,
    /// `spec.crashTime` in Unix seconds, when it parses.
    pub crash_time: Option<i64>,
    /// `status.blobPath`, when it names a blob.
    pub blob: Option<BlobPath>,
    /// Build IDs of the modules its analysis names (the binaries it needs kept).
    pub build_ids: Vec<String>,
}

/// A `CoredumpEndpoint` as the GC needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRef {
    /// Namespace.
    pub namespace: String,
    /// Name (the pod's name).
    pub name: String,
    /// `spec.podUID`.
    pub pod_uid: String,
}

/// Everything observed in one cycle.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Now, Unix seconds.
    pub now: i64,
    /// UIDs of every pod in the cluster, and the config hashes of static pods' mirrors.
    pub live_pods: &'a HashSet<String>,
    /// Every namespace in the cluster.
    pub live_namespaces: &'a HashSet<String>,
    /// The blob volume.
    pub blobs: &'a [PodBlobs],
    /// Every `Coredump`.
    pub coredumps: &'a [CoredumpRef],
    /// Every `CoredumpEndpoint`.
    pub endpoints: &'a [EndpointRef],
    /// The binaries kept by build ID.
    pub binaries: &'a [BinaryBlobs],
}

/// The rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How long a pod or namespace must have been gone.
    pub threshold: Duration,
    /// Maximum age of a crash.
    pub max_age: Option<Duration>,
    /// Maximum blob bytes per namespace.
    pub max_namespace_bytes: Option<u64>,
}

/// Why something is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Its namespace is gone.
    NamespaceGone,
    /// Its pod is gone.
    PodGone,
    /// Older than `--max-age`.
    Age,
    /// Its namespace is over `--max-namespace-size`.
    Size,
    /// A binary no remaining crash needs.
    Unreferenced,
}

impl Reason {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NamespaceGone => "namespace_gone",
            Reason::PodGone => "pod_gone",
            Reason::Age => "age",
            Reason::Size => "size",
            Reason::Unreferenced => "unreferenced",
        }
    }
}

/// What to delete, and the state to remember.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// `CoredumpEndpoint`s to delete through the API.
    pub endpoints: Vec<(EndpointRef, Reason)>,
    /// `Coredump`s to delete through the API.
    pub coredumps: Vec<(CoredumpRef, Reason)>,
    /// Whole pod directories of the blob volume: `(namespace, pod, bytes)`.
    pub pod_dirs: Vec<(String, String, u64, Reason)>,
    /// Single files (core and record of a `Coredump` deleted by age or size), with sizes.
    pub files: Vec<(BlobPath, u64, Reason)>,
    /// Binaries kept by build ID: every file of one build ID in one namespace, their bytes.
    pub binaries: Vec<(Vec<BlobPath>, u64, Reason)>,
    /// The next state.
    pub state: GoneState,
}

/// Whether a blob pod directory names a pod: a UID (`8-4-4-4-12` hex) or a static pod's
/// 32-hex config hash. Placeholders such as `host` are never collected as pods.
pub fn is_pod_uid(s: &str) -> bool {
    let hex = |t: &str| t.bytes().all(|b| b.is_ascii_hexdigit());
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [one] => one.len() == 32 && hex(one),
        [a, b, c, d, e] => {
            [a.len(), b.len(), c.len(), d.len(), e.len()] == [8, 4, 4, 4, 12]
                && parts.iter().all(|p| hex(p))
        }
        _ => false,
    }
}

fn pod_key(namespace: &str, uid: &str) -> String {
    format!("{namespace}/{uid}")
}

fn expired(since: i64, now: i64, threshold: Duration) -> bool {
    let threshold = i64::try_from(threshold.as_secs()).unwrap_or(i64::MAX);
    now.saturating_sub(since) >= threshold
}

/// The sidecar record file beside a core (`<name>.json` for `<name>.core.zst`).
fn record_file_of(core: &BlobPath, name: &str) -> BlobPath {
    BlobPath {
        file: format!("{name}.json"),
        ..core.clone()
    }
}

/// Files still on the volume after whole directories are gone, and bytes per namespace.
struct Files {
    sizes: HashMap<BlobPath, u64>,
    usage: BTreeMap<String, u64>,
}

impl Files {
    /// Plans deleting `c` with its core and record files.
    fn drop_coredump(&mut self, plan: &mut Plan, c: &CoredumpRef, r: Reason) {
        plan.coredumps.push((c.clone(), r));
        let Some(core) = &c.blob else { return };
        for path in [core.clone(), record_file_of(core, &c.name)] {
            if let Some(size) = self.sizes.remove(&path) {
                if let Some(used) = self.usage.get_mut(&path.namespace) {
                    *used = used.saturating_sub(size);
                }
                plan.files.push((path, size, r));
            }
        }
    }
}

/// Computes the plan.
pub fn plan(seen: Observed<'_>, previous: &GoneState, rules: Rules) -> Plan {
    let now = seen.now;
    let mut plan = Plan::default();

    // Gone-since bookkeeping for every namespace and pod that still has something to collect.
    let mut namespaces = BTreeSet::new();
    let mut pods = BTreeSet::new();
    for b in seen.blobs {
        namespaces.insert(b.namespace.clone());
        if is_pod_uid(&b.pod_uid) {
            pods.insert((b.namespace.clone(), b.pod_uid.clone()));
        }
    }
    for c in seen.coredumps {
        namespaces.insert(c.namespace.clone());
        if let Some(uid) = c.pod_uid.as_ref().filter(|u| !u.is_empty()) {
            pods.insert((c.namespace.clone(), uid.clone()));
        }
    }
    for e in seen.endpoints {
        namespaces.insert(e.namespace.clone());
        if !e.pod_uid.is_empty() {
            pods.insert((e.namespace.clone(), e.pod_uid.clone()));
        }
    }
    let mut dead_namespaces = BTreeSet::new();
    for ns in namespaces {
        if seen.live_namespaces.contains(&ns) {
            continue;
        }
        let since = previous.namespaces.get(&ns).copied().unwrap_or(now);
        plan.state.namespaces.insert(ns.clone(), since);
        if expired(since, now, rules.threshold) {
            dead_namespaces.insert(ns);
        }
    }
    let mut dead_pods = BTreeSet::new();
    for (ns, uid) in pods {
        if seen.live_pods.contains(&uid) {
            continue;
        }
        let key = pod_key(&ns, &uid);
        let since = previous.pods.get(&key).copied().unwrap_or(now);
        plan.state.pods.insert(key, since);
        if expired(since, now, rules.threshold) && !dead_namespaces.contains(&ns) {
            dead_pods.insert((ns, uid));
        }
    }
    let reason_of = |ns: &str, uid: Option<&str>| {
        if dead_namespaces.contains(ns) {
            Some(Reason::NamespaceGone)
        } else {
            uid.filter(|u| dead_pods.contains(&(ns.to_string(), u.to_string())))
                .map(|_| Reason::PodGone)
        }
    };

    // Rules 1 and 2.
    for e in seen.endpoints {
        if let Some(r) = reason_of(&e.namespace, Some(&e.pod_uid)) {
            plan.endpoints.push((e.clone(), r));
        }
    }
    let mut deleted = HashSet::new();
    for c in seen.coredumps {
        if let Some(r) = reason_of(&c.namespace, c.pod_uid.as_deref()) {
            plan.coredumps.push((c.clone(), r));
            deleted.insert((c.namespace.clone(), c.name.clone()));
        }
    }
    let mut removed_dirs = HashSet::new();
    for b in seen.blobs {
        let uid = Some(b.pod_uid.as_str()).filter(|u| is_pod_uid(u));
        let reason = if dead_namespaces.contains(&b.namespace) {
            Some(Reason::NamespaceGone)
        } else {
            reason_of(&b.namespace, uid)
        };
        if let Some(r) = reason {
            plan.pod_dirs
                .push((b.namespace.clone(), b.pod_uid.clone(), b.bytes(), r));
            removed_dirs.insert((b.namespace.clone(), b.pod_uid.clone()));
        }
    }

    // Sizes of the files still there, for rules 3 and 4.
    let mut sizes: HashMap<BlobPath, u64> = HashMap::new();
    for b in seen.blobs {
        if removed_dirs.contains(&(b.namespace.clone(), b.pod_uid.clone())) {
            continue;
        }
        for (container, file, size) in &b.files {
            let path = BlobPath {
                namespace: b.namespace.clone(),
                pod_uid: b.pod_uid.clone(),
                container: container.clone(),
                file: file.clone(),
            };
            sizes.insert(path, *size);
        }
    }
    let mut usage: BTreeMap<String, u64> = BTreeMap::new();
    for (path, size) in &sizes {
        *usage.entry(path.namespace.clone()).or_default() += size;
    }
    let mut files = Files { sizes, usage };

    // Rule 3.
    let mut remaining: Vec<&CoredumpRef> = seen
        .coredumps
        .iter()
        .filter(|c| !deleted.contains(&(c.namespace.clone(), c.name.clone())))
        .collect();
    if let Some(max_age) = rules.max_age {
        let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        remaining.retain(|c| {
            let old = c
                .crash_time
                .is_some_and(|t| now.saturating_sub(t) >= max_age);
            if old {
                files.drop_coredump(&mut plan, c, Reason::Age);
            }
            !old
        });
    }

    // Rule 4: oldest first, until the namespace fits.
    if let Some(limit) = rules.max_namespace_bytes {
        remaining.sort_by(|a, b| {
            (a.crash_time.unwrap_or(i64::MIN), &a.name)
                .cmp(&(b.crash_time.unwrap_or(i64::MIN), &b.name))
        });
        let mut kept = Vec::with_capacity(remaining.len());
        for c in remaining {
            let used = files.usage.get(&c.namespace).copied().unwrap_or(0);
            if used > limit && c.blob.is_some() {
                files.drop_coredump(&mut plan, c, Reason::Size);
            } else {
                kept.push(c);
            }
        }
        remaining = kept;
    }

    // Rule 5: binaries the remaining crashes do not need.
    let needed: HashSet<(&str, &str)> = remaining
        .iter()
        .flat_map(|c| {
            c.build_ids
                .iter()
                .map(|id| (c.namespace.as_str(), id.as_str()))
        })
        .collect();
    for b in seen.binaries {
        let reason = if dead_namespaces.contains(&b.namespace) {
            Some(Reason::NamespaceGone)
        } else if needed.contains(&(b.namespace.as_str(), b.build_id.as_str())) {
            None
        } else {
            let key = format!("{}/{}", b.namespace, b.build_id);
            let since = previous.binaries.get(&key).copied().unwrap_or(now);
            plan.state.binaries.insert(key, since);
            expired(since, now, rules.threshold).then_some(Reason::Unreferenced)
        };
        if let Some(r) = reason {
            let paths = b
                .files
                .iter()
                .filter_map(|(file, _)| buildid_path(&b.namespace, &b.build_id, file))
                .collect();
            plan.binaries.push((paths, b.bytes(), r));
        }
    }
    plan
}

#[cfg(test)]
mod tests;
