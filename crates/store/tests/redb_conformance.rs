//! The shared conformance suite against the embedded redb store, plus what only the embedded
//! store promises: its own history window, slow watchers re-fed from history, and the revision
//! counter surviving a reopen even when history was pruned.

// Each test binary uses part of the shared suite's helpers.
#[allow(dead_code)]
mod conformance;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use conformance::{key, value};
use coredump_store::redb_store::{RedbOptions, RedbStore};
use coredump_store::{MetadataStore, Precondition, StoreError};
use coredump_store::{WatchEvent, WatchStream};
use futures::StreamExt;

/// The next item of a watch, failing the test (instead of hanging) after 10 s.
async fn next(stream: &mut WatchStream) -> Option<Result<WatchEvent, StoreError>> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("watch produced nothing within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_passes_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    conformance::run_all(|| {
        let path = dir
            .path()
            .join(format!("store-{}.redb", n.fetch_add(1, Ordering::SeqCst)));
        async move { RedbStore::open(&path).unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    conformance::check_persistence(|| {
        let path = path.clone();
        async move { RedbStore::open(&path).unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_window_prunes_and_expires_old_watches() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        history_window: 5,
        ..RedbOptions::default()
    };
    let store = RedbStore::open_with(&dir.path().join("s.redb"), options).unwrap();
    let mut revs = Vec::new();
    for i in 0..12 {
        revs.push(
            store
                .create(&key("ns", &format!("o{i}")), value("v"))
                .await
                .unwrap(),
        );
    }
    let now = store.current_revision().await.unwrap();
    assert_eq!(now, 12);
    // The last 5 changes (8..=12) are kept: a watch after 7 replays them, after 6 is too old.
    let mut stream = store.watch(conformance::RESOURCE, None, 7).await.unwrap();
    for want in 8..=12 {
        let got = next(&mut stream).await.unwrap().unwrap();
        assert_eq!(got.object.revision, want);
        assert_eq!(got.object.key.name, format!("o{}", want - 1));
    }
    let mut stream = store.watch(conformance::RESOURCE, None, 6).await.unwrap();
    match next(&mut stream).await {
        Some(Err(StoreError::Expired { requested, oldest })) => {
            assert_eq!((requested, oldest), (6, 8));
        }
        other => panic!("want Expired, got {other:?}"),
    }
    assert!(
        next(&mut stream).await.is_none(),
        "stream must end after Expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_refed_from_history() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        broadcast_capacity: 4,
        ..RedbOptions::default()
    };
    let store = RedbStore::open_with(&dir.path().join("s.redb"), options).unwrap();
    let mut stream = store.watch(conformance::RESOURCE, None, 0).await.unwrap();
    // Start live, then fall far behind a 4-slot broadcast.
    store.create(&key("ns", "first"), value("0")).await.unwrap();
    assert_eq!(next(&mut stream).await.unwrap().unwrap().object.revision, 1);
    for i in 1..200u64 {
        store
            .update(
                &key("ns", "first"),
                value(&i.to_string()),
                Precondition::None,
            )
            .await
            .unwrap();
    }
    for i in 1..200u64 {
        let got = next(&mut stream).await.unwrap().unwrap();
        assert_eq!(got.object.revision, i + 1);
        assert_eq!(got.object.value, value(&i.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_beyond_the_window_ends_expired() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        history_window: 10,
        broadcast_capacity: 2,
        ..RedbOptions::default()
    };
    let store = RedbStore::open_with(&dir.path().join("s.redb"), options).unwrap();
    let mut stream = store.watch(conformance::RESOURCE, None, 0).await.unwrap();
    store.create(&key("ns", "x"), value("0")).await.unwrap();
    assert_eq!(next(&mut stream).await.unwrap().unwrap().object.revision, 1);
    for i in 1..50 {
        store
            .update(&key("ns", "x"), value(&i.to_string()), Precondition::None)
            .await
            .unwrap();
    }
    // Revisions 2..=40 fell out of the window before the watcher read them: no silent gap.
    match next(&mut stream).await {
        Some(Err(StoreError::Expired {
            requested: 1,
            oldest: 41,
        })) => {}
        other => panic!("want Expired after revision 1, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_continue_after_reopen_with_pruned_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let options = RedbOptions {
        history_window: 3,
        ..RedbOptions::default()
    };
    {
        let store = RedbStore::open_with(&path, options.clone()).unwrap();
        for i in 0..10 {
            store
                .create(&key("ns", &format!("o{i}")), value("v"))
                .await
                .unwrap();
        }
        for i in 0..10 {
            store
                .delete(&key("ns", &format!("o{i}")), Precondition::None)
                .await
                .unwrap();
        }
        assert_eq!(store.current_revision().await.unwrap(), 20);
    }
    let store = RedbStore::open_with(&path, options).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), 20);
    assert_eq!(
        store
            .create(&key("ns", "o0"), value("again"))
            .await
            .unwrap(),
        21
    );
    let got = store.get(&key("ns", "o0")).await.unwrap().unwrap();
    assert_eq!((got.revision, got.value), (21, value("again")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_ends_watches_and_frees_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = RedbStore::open(&path).unwrap();
    let mut stream = store.watch(conformance::RESOURCE, None, 0).await.unwrap();
    drop(store);
    let end = next(&mut stream).await;
    assert!(
        end.is_none(),
        "watch must end when the store is dropped, got {end:?}"
    );
    // The file lock is gone: reopening works while the old stream object still exists.
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), 0);
}
