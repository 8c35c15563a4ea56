//! Single-object operations: create, get, update, delete, their failures and revisions.

use super::{OTHER_RESOURCE, current, key, key_of, ok, value};
use coredump_store::StoreError;
use coredump_store::metadata::{MetadataStore, Precondition, StoredObject};

/// Create, get, update (conditional and not), delete, re-create: values and revisions as promised.
pub async fn check_crud(store: &dyn MetadataStore) {
    const C: &str = "check_crud";
    let k = key("ns1", "crash-1");
    let before = current(store, C).await;
    let r1 = ok(store.create(&k, value("one")).await, C, "create");
    assert!(r1 > before, "{C}: create revision {r1} not above {before}");
    let got = ok(store.get(&k).await, C, "get");
    assert_eq!(
        got,
        Some(StoredObject {
            key: k.clone(),
            revision: r1,
            value: value("one")
        }),
        "{C}: get after create"
    );

    let r2 = ok(
        store
            .update(&k, value("two"), Precondition::Revision(r1))
            .await,
        C,
        "conditional update",
    );
    assert!(r2 > r1, "{C}: update revision {r2} not above {r1}");
    let got = ok(store.get(&k).await, C, "get").map(|o| (o.revision, o.value));
    assert_eq!(got, Some((r2, value("two"))), "{C}: get after update");

    let r3 = ok(
        store.update(&k, value("three"), Precondition::None).await,
        C,
        "unconditional update",
    );
    assert!(r3 > r2, "{C}: update revision {r3} not above {r2}");

    let deleted = ok(
        store.delete(&k, Precondition::Revision(r3)).await,
        C,
        "delete",
    );
    assert_eq!(deleted.key, k, "{C}: deleted key");
    assert_eq!(
        deleted.value,
        value("three"),
        "{C}: delete returns the last value"
    );
    assert!(
        deleted.revision > r3,
        "{C}: deletion revision {} not above {r3}",
        deleted.revision
    );
    assert_eq!(
        ok(store.get(&k).await, C, "get after delete"),
        None,
        "{C}: still there after delete"
    );
    assert_eq!(
        current(store, C).await,
        deleted.revision,
        "{C}: current revision after delete"
    );

    let r5 = ok(store.create(&k, value("again")).await, C, "re-create");
    assert!(
        r5 > deleted.revision,
        "{C}: re-create revision {r5} not above the deletion"
    );
    let got = ok(store.get(&k).await, C, "get").map(|o| (o.revision, o.value));
    assert_eq!(got, Some((r5, value("again"))), "{C}: get after re-create");

    // The same namespace/name under another resource is another object.
    let other = key_of(OTHER_RESOURCE, "ns1", "crash-1");
    assert_eq!(
        ok(store.get(&other).await, C, "get other resource"),
        None,
        "{C}: resources leak"
    );
}

/// Creating an existing key fails with `AlreadyExists` and changes nothing.
pub async fn check_already_exists(store: &dyn MetadataStore) {
    const C: &str = "check_already_exists";
    let k = key("ns1", "dup");
    let r1 = ok(store.create(&k, value("first")).await, C, "create");
    match store.create(&k, value("second")).await {
        Err(StoreError::AlreadyExists(got)) => assert_eq!(got, k, "{C}: error names the key"),
        other => panic!("{C}: second create gave {other:?}, want AlreadyExists"),
    }
    let got = ok(store.get(&k).await, C, "get").map(|o| (o.revision, o.value));
    assert_eq!(
        got,
        Some((r1, value("first"))),
        "{C}: failed create changed the object"
    );
    assert_eq!(
        current(store, C).await,
        r1,
        "{C}: failed create advanced the revision"
    );
}

/// Reading, updating or deleting an absent key: `None` / `NotFound` naming the key.
pub async fn check_not_found(store: &dyn MetadataStore) {
    const C: &str = "check_not_found";
    let k = key("ns1", "ghost");
    assert_eq!(
        ok(store.get(&k).await, C, "get"),
        None,
        "{C}: get of absent key"
    );
    for (what, result) in [
        (
            "update",
            store
                .update(&k, value("x"), Precondition::None)
                .await
                .map(|_| ()),
        ),
        (
            "conditional update",
            store
                .update(&k, value("x"), Precondition::Revision(1))
                .await
                .map(|_| ()),
        ),
        (
            "delete",
            store.delete(&k, Precondition::None).await.map(|_| ()),
        ),
        (
            "conditional delete",
            store
                .delete(&k, Precondition::Revision(1))
                .await
                .map(|_| ()),
        ),
    ] {
        match result {
            Err(StoreError::NotFound(got)) => assert_eq!(got, k, "{C}: {what} error names the key"),
            other => panic!("{C}: {what} of absent key gave {other:?}, want NotFound"),
        }
    }
    assert_eq!(
        ok(store.get(&k).await, C, "get"),
        None,
        "{C}: update created the key"
    );
}

/// A stale revision precondition fails with `Conflict { current, expected }` and changes nothing.
pub async fn check_conflict(store: &dyn MetadataStore) {
    const C: &str = "check_conflict";
    let k = key("ns1", "contested");
    let r1 = ok(store.create(&k, value("v1")).await, C, "create");
    let r2 = ok(
        store
            .update(&k, value("v2"), Precondition::Revision(r1))
            .await,
        C,
        "update",
    );
    let expect_conflict = |what: &str, result: Result<(), StoreError>| match result {
        Err(StoreError::Conflict {
            key: got,
            current,
            expected,
        }) => {
            assert_eq!(got, k, "{C}: {what}: conflict names the key");
            assert_eq!(
                current, r2,
                "{C}: {what}: conflict reports the current revision"
            );
            assert_eq!(
                expected, r1,
                "{C}: {what}: conflict reports the expected revision"
            );
        }
        other => panic!("{C}: {what} with stale revision gave {other:?}, want Conflict"),
    };
    expect_conflict(
        "update",
        store
            .update(&k, value("v3"), Precondition::Revision(r1))
            .await
            .map(|_| ()),
    );
    expect_conflict(
        "delete",
        store
            .delete(&k, Precondition::Revision(r1))
            .await
            .map(|_| ()),
    );
    let got = ok(store.get(&k).await, C, "get").map(|o| (o.revision, o.value));
    assert_eq!(
        got,
        Some((r2, value("v2"))),
        "{C}: failed writes changed the object"
    );
    assert_eq!(
        current(store, C).await,
        r2,
        "{C}: failed writes advanced the revision"
    );
}

/// Keys with empty components or `/` are `Invalid`, never stored.
pub async fn check_invalid_keys(store: &dyn MetadataStore) {
    const C: &str = "check_invalid_keys";
    for bad in [
        key("", "x"),
        key("ns", ""),
        key("a/b", "x"),
        key("ns", "x/y"),
        key_of("", "ns", "x"),
    ] {
        match store.create(&bad, value("x")).await {
            Err(StoreError::Invalid { .. }) => {}
            other => panic!("{C}: create of {bad:?} gave {other:?}, want Invalid"),
        }
        match store.get(&bad).await {
            Err(StoreError::Invalid { .. }) => {}
            other => panic!("{C}: get of {bad:?} gave {other:?}, want Invalid"),
        }
    }
}

/// Every write gets a revision above every earlier one; `current_revision` is the last.
pub async fn check_revisions_monotonic(store: &dyn MetadataStore) {
    const C: &str = "check_revisions_monotonic";
    let mut last = current(store, C).await;
    for i in 0..12 {
        let k = key_of(
            if i % 2 == 0 {
                super::RESOURCE
            } else {
                OTHER_RESOURCE
            },
            "ns",
            &format!("o{}", i % 4),
        );
        let rev = match ok(store.get(&k).await, C, "get") {
            None => ok(store.create(&k, value(&i.to_string())).await, C, "create"),
            Some(o) if i % 3 == 0 => {
                ok(
                    store.delete(&k, Precondition::Revision(o.revision)).await,
                    C,
                    "delete",
                )
                .revision
            }
            Some(o) => ok(
                store
                    .update(
                        &k,
                        value(&i.to_string()),
                        Precondition::Revision(o.revision),
                    )
                    .await,
                C,
                "update",
            ),
        };
        assert!(
            rev > last,
            "{C}: write {i} got revision {rev}, not above {last}"
        );
        assert_eq!(
            current(store, C).await,
            rev,
            "{C}: current revision after write {i}"
        );
        last = rev;
    }
}
