//! Concurrent writers: optimistic concurrency must let exactly one of them win.

use futures::future::join_all;

use super::{current, key, ok, value};
use coredump_store::StoreError;
use coredump_store::metadata::{MetadataStore, Precondition};

/// How many writers race.
const WRITERS: usize = 8;

/// Concurrent creates of one key: exactly one succeeds, the rest get `AlreadyExists`, and the
/// stored object is the winner's.
pub async fn check_concurrent_creates(store: &dyn MetadataStore) {
    const C: &str = "check_concurrent_creates";
    let k = key("ns", "raced");
    let results = join_all((0..WRITERS).map(|i| {
        let k = k.clone();
        async move { store.create(&k, value(&format!("writer-{i}"))).await }
    }))
    .await;
    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(rev) => winners.push((i, rev)),
            Err(StoreError::AlreadyExists(got)) => assert_eq!(got, k, "{C}"),
            Err(e) => panic!("{C}: writer {i} failed with {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{C}: winners {winners:?}");
    let (i, rev) = winners[0];
    let got = ok(store.get(&k).await, C, "get").map(|o| (o.revision, o.value));
    assert_eq!(
        got,
        Some((rev, value(&format!("writer-{i}")))),
        "{C}: stored object"
    );
    assert_eq!(
        current(store, C).await,
        rev,
        "{C}: losers advanced the revision"
    );
}

/// Concurrent updates with the same expected revision: exactly one wins, the rest `Conflict`.
pub async fn check_concurrent_updates(store: &dyn MetadataStore) {
    const C: &str = "check_concurrent_updates";
    let k = key("ns", "raced");
    let base = ok(store.create(&k, value("base")).await, C, "create");
    let results = join_all((0..WRITERS).map(|i| {
        let k = k.clone();
        async move {
            store
                .update(
                    &k,
                    value(&format!("writer-{i}")),
                    Precondition::Revision(base),
                )
                .await
        }
    }))
    .await;
    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(rev) => winners.push((i, rev)),
            Err(StoreError::Conflict { expected, .. }) => assert_eq!(expected, base, "{C}"),
            Err(e) => panic!("{C}: writer {i} failed with {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{C}: winners {winners:?}");
    let (i, rev) = winners[0];
    let got = ok(store.get(&k).await, C, "get").map(|o| (o.revision, o.value));
    assert_eq!(
        got,
        Some((rev, value(&format!("writer-{i}")))),
        "{C}: stored object"
    );
}
