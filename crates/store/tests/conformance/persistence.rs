//! Durability across a restart of the store (reopening the file, restarting etcd).

use std::future::Future;

use super::{RESOURCE, current, key, next_event, ok, value};
use coredump_store::metadata::{EventType, ListRequest, MetadataStore, Precondition};

/// Writes, drops the store, reopens it with `open` and checks that objects, the revision counter
/// and the watch history survived, and that new revisions continue above the old ones. `open`
/// must return a store over the same data each time.
pub async fn check_persistence<S, F, Fut>(open: F)
where
    S: MetadataStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    const C: &str = "check_persistence";
    let (start, kept, last) = {
        let store = open().await;
        let start = current(&store, C).await;
        ok(
            store.create(&key("ns", "kept"), value("k1")).await,
            C,
            "create kept",
        );
        let gone = ok(
            store.create(&key("ns", "gone"), value("g1")).await,
            C,
            "create gone",
        );
        let kept = ok(
            store
                .update(&key("ns", "kept"), value("k2"), Precondition::None)
                .await,
            C,
            "update",
        );
        let last = ok(
            store
                .delete(&key("ns", "gone"), Precondition::Revision(gone))
                .await,
            C,
            "delete",
        )
        .revision;
        (start, kept, last)
    };

    let store = open().await;
    assert_eq!(current(&store, C).await, last, "{C}: revision after reopen");
    let got = ok(store.get(&key("ns", "kept")).await, C, "get").map(|o| (o.revision, o.value));
    assert_eq!(got, Some((kept, value("k2"))), "{C}: object after reopen");
    assert_eq!(
        ok(store.get(&key("ns", "gone")).await, C, "get").map(|o| o.revision),
        None,
        "{C}: deleted object came back"
    );
    let page = ok(
        store
            .list(&ListRequest {
                resource: RESOURCE.to_owned(),
                namespace: Some("ns".to_owned()),
                limit: 0,
                continue_token: None,
            })
            .await,
        C,
        "list",
    );
    let names: Vec<_> = page.items.iter().map(|o| o.key.name.as_str()).collect();
    assert_eq!(names, ["kept"], "{C}: list after reopen");

    let next = ok(
        store.create(&key("ns", "after"), value("a")).await,
        C,
        "create after reopen",
    );
    assert!(
        next > last,
        "{C}: revision {next} after reopen reuses or precedes {last}"
    );

    let mut stream = ok(store.watch(RESOURCE, None, start).await, C, "watch history");
    let kinds = [
        (EventType::Added, "kept"),
        (EventType::Added, "gone"),
        (EventType::Modified, "kept"),
        (EventType::Deleted, "gone"),
        (EventType::Added, "after"),
    ];
    for (kind, name) in kinds {
        let got = next_event(&mut stream, C, "history after reopen").await;
        assert_eq!(
            (got.event_type, got.object.key.name.as_str()),
            (kind, name),
            "{C}: history"
        );
    }
}
