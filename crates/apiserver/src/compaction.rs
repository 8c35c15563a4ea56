//! Periodic compaction of the metadata store's history, as kube-apiserver does for its etcd
//! (`--etcd-compaction-interval`, default 5 min): at every tick the store is compacted to the
//! revision seen at the previous tick, so at least one full interval of history stays for
//! watches and paginated lists, and anything older answers `410 Gone` (clients re-list).
//! Several API server replicas may run it at once: compacting to an already compacted revision
//! is a no-op.
//!
//! Why our own loop and not etcd's `--auto-compaction-*`: the seed deployment runs a stock etcd
//! whose flags we do not control from here, and a loop in the server keeps the window tied to
//! what the API promises, whatever etcd was started with.

use std::sync::Arc;
use std::time::Duration;

use coredump_store::MetadataStore;

/// Default interval (kube-apiserver's).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// One step of the loop: remembers the current revision and compacts to the one remembered at
/// the previous step. Returns the revision compacted to, if any.
pub async fn step(
    store: &dyn MetadataStore,
    previous: &mut Option<u64>,
) -> Result<Option<u64>, coredump_store::StoreError> {
    let now = store.current_revision().await?;
    let target = previous.replace(now);
    match target {
        Some(rev) if rev > 0 => {
            store.compact(rev).await?;
            Ok(Some(rev))
        }
        _ => Ok(None),
    }
}

/// Compacts every `interval` until the task is dropped. Failures are logged and retried at the
/// next tick.
pub async fn run(store: Arc<dyn MetadataStore>, interval: Duration) {
    let mut previous = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match step(store.as_ref(), &mut previous).await {
            Ok(Some(rev)) => tracing::info!(revision = rev, "compacted the metadata history"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "compacting the metadata history failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use coredump_store::ObjectKey;
    use coredump_store::redb_store::RedbStore;

    #[tokio::test]
    async fn compacts_to_the_previous_tick() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("m.redb")).unwrap();
        let key = |n: &str| ObjectKey {
            resource: "coredumps".into(),
            namespace: "a".into(),
            name: n.into(),
        };
        let r1 = store
            .create(&key("x"), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let mut previous = None;
        assert_eq!(step(&store, &mut previous).await.unwrap(), None);
        let r2 = store
            .create(&key("y"), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        // Compacted to what the first tick saw: history after r1 is still there.
        assert_eq!(step(&store, &mut previous).await.unwrap(), Some(r1));
        let mut from_r1 = store.watch("coredumps", None, r1).await.unwrap();
        let ev = futures::StreamExt::next(&mut from_r1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ev.object.revision, r2);
        assert_eq!(step(&store, &mut previous).await.unwrap(), Some(r2));
        // Before the compacted revision: Expired (410 Gone at the API).
        let mut old = store.watch("coredumps", None, r1 - 1).await.unwrap();
        let first = futures::StreamExt::next(&mut old).await.unwrap();
        assert!(
            matches!(first, Err(coredump_store::StoreError::Expired { .. })),
            "{first:?}"
        );
    }
}
