//! Retention by signature: a pod that crashes on the same bug again and again does not need
//! every core of it. When a `Coredump` with a core is created, the stored cores of its pod with
//! its signature are counted; beyond the first [`Keep::first`] and the last [`Keep::last`] (by
//! crash time), the cores in between are evicted. Their records stay (state `Evicted`, so
//! every crash is still counted and `kubectl coredump list --group` tells how often a bug
//! struck); only their cores go. The first cores show how it started, the last how it is now.
//!
//! The server does it because it alone may change a record's `status.blobPath`, and only to
//! clear it with the core (see `coredump_api::validation::coredump_update`).

use coredump_api::{Coredump, CoredumpState, FieldSelector};

use super::{ListOptions, Registry, WriteOptions, blob_path_of};

/// `--keep-per-signature`: `FIRST,LAST`, or `off` (every core kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepFlag(pub Option<Keep>);

impl std::str::FromStr for KeepFlag {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case("off") {
            return Ok(KeepFlag(None));
        }
        text.parse().map(|k| KeepFlag(Some(k)))
    }
}

/// How many cores of one signature of one pod are kept: the first `first` and the last `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// The oldest cores kept.
    pub first: usize,
    /// The newest cores kept.
    pub last: usize,
}

impl std::str::FromStr for Keep {
    type Err = String;

    /// `FIRST,LAST`, e.g. `5,5`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (first, last) = text
            .split_once(',')
            .ok_or_else(|| format!("{text:?}: expected FIRST,LAST (e.g. 5,5)"))?;
        let number = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("{text:?}: {v:?} is not a number"))
        };
        let keep = Keep {
            first: number(first)?,
            last: number(last)?,
        };
        if keep.first + keep.last == 0 {
            return Err(format!("{text:?}: keep at least one core"));
        }
        Ok(keep)
    }
}

fn has_core(c: &Coredump) -> bool {
    matches!(
        c.status.state,
        CoredumpState::Stored | CoredumpState::Truncated
    ) && !c.status.blob_path.is_empty()
}

/// The names of the cores to evict among `stored` (one pod's crashes of one signature, with
/// cores, in any order): everything but the first `first` and the last `last` by crash time.
pub fn to_evict(stored: &[Coredump], keep: Keep) -> Vec<String> {
    let mut sorted: Vec<&Coredump> = stored.iter().filter(|c| has_core(c)).collect();
    if sorted.len() <= keep.first + keep.last {
        return Vec::new();
    }
    // RFC 3339 UTC times sort as text; the name breaks ties within a second.
    sorted.sort_by(|a, b| {
        (a.spec.crash_time.as_str(), a.metadata.name.as_str())
            .cmp(&(b.spec.crash_time.as_str(), b.metadata.name.as_str()))
    });
    let end = sorted.len() - keep.last;
    sorted[keep.first..end]
        .iter()
        .map(|c| c.metadata.name.clone())
        .collect()
}

/// Evicts what `created`'s arrival puts beyond `keep`. Failures are logged: the new record is
/// stored whatever happens here, and an eviction missed now is made at the next crash.
pub async fn apply(registry: &Registry, created: &Coredump, keep: Keep) {
    let signature = &created.status.signature;
    if signature.is_empty() || !has_core(created) {
        return;
    }
    let ns = created.metadata.namespace.clone();
    // The pod's crashes (crashes outside pods have no pod UID to select by).
    let requirements = created
        .spec
        .pod_uid
        .iter()
        .map(|uid| coredump_api::fields::FieldRequirement {
            field: "spec.podUID".to_owned(),
            negated: false,
            value: uid.clone(),
        })
        .collect();
    let opts = ListOptions {
        fields: FieldSelector { requirements },
        ..Default::default()
    };
    let listed = match registry.list_all::<Coredump>(Some(&ns), &opts).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::warn!(coredump = %created.metadata.name, error = %e, "retention by signature: listing failed");
            return;
        }
    };
    let same: Vec<Coredump> = listed
        .into_iter()
        .filter(|c| &c.status.signature == signature && c.pod_segment() == created.pod_segment())
        .collect();
    for name in to_evict(&same, keep) {
        let Some(old) = same.iter().find(|c| c.metadata.name == name) else {
            continue;
        };
        evict(registry, old, keep).await;
    }
}

/// Clears one record's core (the record first, so nothing ever names a deleted blob), then
/// deletes the blob.
async fn evict(registry: &Registry, old: &Coredump, keep: Keep) {
    let Some(blob) = blob_path_of(old) else {
        return;
    };
    let mut evicted = old.clone();
    evicted.status.state = CoredumpState::Evicted;
    evicted.status.reason = Some(coredump_api::CoredumpReason::Retention);
    evicted.status.message = format!(
        "core evicted: signature {} keeps the first {} and the last {} cores of each pod",
        old.status.signature, keep.first, keep.last
    );
    evicted.status.blob_path.clear();
    evicted.status.core_size = 0;
    evicted.status.stored_size = 0;
    evicted.status.compression.clear();
    let ns = old.metadata.namespace.clone();
    let name = old.metadata.name.clone();
    let updated = match registry
        .update(&ns, &name, evicted, &WriteOptions::default())
        .await
    {
        Ok(updated) => updated,
        Err(e) => {
            tracing::warn!(coredump = %name, error = %e, "retention by signature: evicting failed");
            return;
        }
    };
    let blobs = registry.blob_store().clone();
    // The record beside the core (offline tools and recovery read it) says the same.
    let record = coredump_store::BlobPath::new(
        &blob.namespace,
        &blob.pod_uid,
        &blob.container,
        &format!("{name}.json"),
    );
    let json = serde_json::to_vec_pretty(&updated);
    match tokio::task::spawn_blocking(move || {
        if let (Ok(record), Ok(json)) = (record, json) {
            blobs.put_bytes(&record, &json)?;
        }
        blobs.delete(&blob)
    })
    .await
    {
        Ok(Ok(())) => tracing::info!(coredump = %name, "retention by signature: core evicted"),
        Ok(Err(e)) => {
            tracing::warn!(coredump = %name, error = %e, "retention by signature: deleting the core failed")
        }
        Err(e) => {
            tracing::warn!(coredump = %name, error = %e, "retention by signature: task failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(name: &str, minute: u32, state: CoredumpState) -> Coredump {
        let mut c = Coredump::default();
        c.metadata.name = name.into();
        c.spec.crash_time = format!("2026-01-01T10:{minute:02}:00Z");
        c.status.state = state;
        c.status.blob_path = format!("ns/u/app/{name}.core.zst");
        c
    }

    #[test]
    fn keeps_the_first_and_the_last() {
        let keep: Keep = "2,1".parse().unwrap();
        let stored: Vec<Coredump> = [5, 1, 4, 2, 3]
            .iter()
            .map(|m| crash(&format!("c{m}"), *m, CoredumpState::Stored))
            .collect();
        assert_eq!(to_evict(&stored, keep), vec!["c3", "c4"]);
        assert_eq!(to_evict(&stored[..3], keep), Vec::<String>::new());
        // Records without a core take no place.
        let mut with_skipped = stored[..3].to_vec();
        with_skipped.push(crash("s", 0, CoredumpState::Skipped));
        assert_eq!(to_evict(&with_skipped, keep), Vec::<String>::new());
    }

    #[test]
    fn parses_first_comma_last() {
        assert_eq!("5,5".parse::<Keep>(), Ok(Keep { first: 5, last: 5 }));
        assert_eq!("0,3".parse::<Keep>(), Ok(Keep { first: 0, last: 3 }));
        for bad in ["5", "a,b", "0,0", "-1,2"] {
            assert!(bad.parse::<Keep>().is_err(), "{bad}");
        }
    }
}
