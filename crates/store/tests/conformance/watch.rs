//! Watches: replay from a revision then live changes, filters, deletions carrying the last value,
//! no loss under many writes, and `Expired` once history is gone.

use futures::StreamExt;

use super::{OTHER_RESOURCE, RESOURCE, current, expect_quiet, key, key_of, next_event, ok, value};
use coredump_store::StoreError;
use coredump_store::metadata::{
    EventType, ListRequest, MetadataStore, Precondition, StoredObject, WatchEvent,
};

fn event(event_type: EventType, ns: &str, name: &str, revision: u64, v: &str) -> WatchEvent {
    WatchEvent {
        event_type,
        object: StoredObject {
            key: key(ns, name),
            revision,
            value: value(v),
        },
    }
}

/// A watch from revision N replays exactly the later changes in order, then follows live ones;
/// `Deleted` carries the last value; other resources never show up.
pub async fn check_watch_replay_then_live(store: &dyn MetadataStore) {
    const C: &str = "check_watch_replay_then_live";
    let a = key("ns", "a");
    let b = key("ns", "b");
    let r1 = ok(store.create(&a, value("a1")).await, C, "create a");
    let r2 = ok(
        store
            .update(&a, value("a2"), Precondition::Revision(r1))
            .await,
        C,
        "update a",
    );
    ok(
        store
            .create(&key_of(OTHER_RESOURCE, "ns", "a"), value("other"))
            .await,
        C,
        "create other",
    );
    let r3 = ok(store.create(&b, value("b1")).await, C, "create b");
    let r4 = ok(
        store.delete(&a, Precondition::Revision(r2)).await,
        C,
        "delete a",
    )
    .revision;

    let mut stream = ok(store.watch(RESOURCE, None, r1).await, C, "watch");
    let replayed = [
        event(EventType::Modified, "ns", "a", r2, "a2"),
        event(EventType::Added, "ns", "b", r3, "b1"),
        event(EventType::Deleted, "ns", "a", r4, "a2"),
    ];
    for want in replayed {
        let got = next_event(&mut stream, C, "replayed event").await;
        assert_eq!(got, want, "{C}: replay from revision {r1}");
    }
    expect_quiet(&mut stream, C, "the replay").await;

    let r5 = ok(
        store.create(&key("ns2", "c"), value("c1")).await,
        C,
        "create c",
    );
    ok(
        store
            .update(
                &key_of(OTHER_RESOURCE, "ns", "a"),
                value("o2"),
                Precondition::None,
            )
            .await,
        C,
        "update other",
    );
    let r6 = ok(
        store
            .update(&b, value("b2"), Precondition::Revision(r3))
            .await,
        C,
        "update b",
    );
    let r7 = ok(store.delete(&b, Precondition::None).await, C, "delete b").revision;
    let live = [
        event(EventType::Added, "ns2", "c", r5, "c1"),
        event(EventType::Modified, "ns", "b", r6, "b2"),
        event(EventType::Deleted, "ns", "b", r7, "b2"),
    ];
    for want in live {
        let got = next_event(&mut stream, C, "live event").await;
        assert_eq!(got, want, "{C}: live events");
    }
    expect_quiet(&mut stream, C, "the live events").await;
}

/// A watch from the current revision replays nothing and sees the next write.
pub async fn check_watch_from_now(store: &dyn MetadataStore) {
    const C: &str = "check_watch_from_now";
    ok(
        store.create(&key("ns", "old"), value("old")).await,
        C,
        "create",
    );
    let now = current(store, C).await;
    let mut stream = ok(store.watch(RESOURCE, None, now).await, C, "watch");
    expect_quiet(&mut stream, C, "starting at the current revision").await;
    let rev = ok(
        store.create(&key("ns", "new"), value("new")).await,
        C,
        "create",
    );
    let got = next_event(&mut stream, C, "the new object").await;
    assert_eq!(got, event(EventType::Added, "ns", "new", rev, "new"), "{C}");
}

/// A namespace-filtered watch sees only that namespace, replay and live.
pub async fn check_watch_namespace_filter(store: &dyn MetadataStore) {
    const C: &str = "check_watch_namespace_filter";
    let start = current(store, C).await;
    let mut want = Vec::new();
    for i in 0..3 {
        ok(
            store
                .create(&key("other", &format!("o{i}")), value("no"))
                .await,
            C,
            "create other ns",
        );
        // A namespace sharing a prefix must not match either.
        ok(
            store
                .create(&key("mine-too", &format!("o{i}")), value("no"))
                .await,
            C,
            "create prefix ns",
        );
        let rev = ok(
            store
                .create(&key("mine", &format!("o{i}")), value(&i.to_string()))
                .await,
            C,
            "create",
        );
        want.push(event(
            EventType::Added,
            "mine",
            &format!("o{i}"),
            rev,
            &i.to_string(),
        ));
    }
    let mut stream = ok(store.watch(RESOURCE, Some("mine"), start).await, C, "watch");
    for w in &want {
        assert_eq!(
            &next_event(&mut stream, C, "replayed event").await,
            w,
            "{C}: replay"
        );
    }
    ok(
        store.delete(&key("other", "o0"), Precondition::None).await,
        C,
        "delete other ns",
    );
    let rev = ok(
        store.delete(&key("mine", "o1"), Precondition::None).await,
        C,
        "delete",
    )
    .revision;
    let got = next_event(&mut stream, C, "live deletion").await;
    assert_eq!(
        got,
        event(EventType::Deleted, "mine", "o1", rev, "1"),
        "{C}: live"
    );
    expect_quiet(&mut stream, C, "the deletion").await;
}

/// Many writes while watching: every one arrives, once, in order.
pub async fn check_watch_many_events(store: &dyn MetadataStore) {
    const C: &str = "check_watch_many_events";
    const N: usize = 300;
    let start = current(store, C).await;
    let mut stream = ok(store.watch(RESOURCE, None, start).await, C, "watch");
    let mut revs = Vec::with_capacity(N);
    for i in 0..N {
        let k = key("ns", &format!("o{}", i % 7));
        let rev = match ok(store.get(&k).await, C, "get") {
            Some(_) => ok(
                store
                    .update(&k, value(&i.to_string()), Precondition::None)
                    .await,
                C,
                "update",
            ),
            None => ok(store.create(&k, value(&i.to_string())).await, C, "create"),
        };
        revs.push(rev);
    }
    for (i, rev) in revs.iter().enumerate() {
        let got = next_event(&mut stream, C, &format!("event {i} of {N}")).await;
        assert_eq!(
            got.object.revision, *rev,
            "{C}: event {i} out of order or missing"
        );
        assert_eq!(
            got.object.value,
            value(&i.to_string()),
            "{C}: event {i} value"
        );
    }
    expect_quiet(&mut stream, C, "all events").await;
}

/// Once history before a revision is compacted, watches and continue tokens from before it are
/// `Expired`; newer ones still work.
pub async fn check_expired(store: &dyn MetadataStore) {
    const C: &str = "check_expired";
    for i in 0..4 {
        ok(
            store.create(&key("ns", &format!("o{i}")), value("v")).await,
            C,
            "create",
        );
    }
    let old = current(store, C).await;
    let page = ok(
        store
            .list(&ListRequest {
                resource: RESOURCE.to_owned(),
                namespace: None,
                limit: 1,
                continue_token: None,
            })
            .await,
        C,
        "first page",
    );
    for i in 0..3 {
        ok(
            store
                .update(&key("ns", &format!("o{i}")), value("w"), Precondition::None)
                .await,
            C,
            "update",
        );
    }
    let now = current(store, C).await;
    ok(store.compact(now).await, C, "compact");

    let first = match store.watch(RESOURCE, None, old).await {
        Err(e) => Some(Err(e)),
        Ok(mut stream) => tokio::time::timeout(super::EVENT_TIMEOUT, stream.next())
            .await
            .ok()
            .flatten(),
    };
    match first {
        Some(Err(StoreError::Expired { requested, oldest })) => {
            assert_eq!(requested, old, "{C}: Expired names the requested revision");
            assert!(
                oldest > old + 1,
                "{C}: Expired reports oldest {oldest}, not after {old}"
            );
        }
        other => panic!("{C}: watch from compacted revision {old} gave {other:?}, want Expired"),
    }

    let next = store
        .list(&ListRequest {
            resource: RESOURCE.to_owned(),
            namespace: None,
            limit: 1,
            continue_token: page.continue_token.clone(),
        })
        .await;
    match next {
        Err(StoreError::Expired { requested, .. }) => {
            assert_eq!(
                requested, page.revision,
                "{C}: Expired names the token's revision"
            )
        }
        other => panic!("{C}: continue token from compacted revision gave {other:?}, want Expired"),
    }

    // From the compaction point on, watching works.
    let mut stream = ok(store.watch(RESOURCE, None, now).await, C, "watch from now");
    let rev = ok(
        store.create(&key("ns", "late"), value("late")).await,
        C,
        "create",
    );
    let got = next_event(&mut stream, C, "event after compaction").await;
    assert_eq!(
        got,
        event(EventType::Added, "ns", "late", rev, "late"),
        "{C}"
    );
}
