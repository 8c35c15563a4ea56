//! Lists: key order, namespace and resource filtering, pagination visiting every object once,
//! and pages that stay consistent with the first page's revision.

use std::collections::BTreeMap;

use super::{OTHER_RESOURCE, RESOURCE, current, key, key_of, ok, value};
use coredump_store::StoreError;
use coredump_store::metadata::{ListPage, ListRequest, MetadataStore, Precondition};

/// Namespaces and names chosen so that naive tuple order and byte order of `ns/name` differ.
const NAMESPACES: [&str; 4] = ["b", "a", "a-b", "a.b"];
const NAMES: [&str; 3] = ["z", "m-1", "m"];

/// Fills the store; returns `ns/name` → (revision, value) of every [`RESOURCE`] object.
async fn fill(store: &dyn MetadataStore, check: &str) -> BTreeMap<String, (u64, bytes::Bytes)> {
    let mut expected = BTreeMap::new();
    for ns in NAMESPACES {
        for name in NAMES {
            let v = value(&format!("{ns}/{name}"));
            let rev = ok(
                store.create(&key(ns, name), v.clone()).await,
                check,
                "create",
            );
            expected.insert(format!("{ns}/{name}"), (rev, v));
        }
        // Same names under another resource must never show up.
        ok(
            store
                .create(&key_of(OTHER_RESOURCE, ns, "z"), value("other"))
                .await,
            check,
            "create other",
        );
    }
    expected
}

/// Reads every page of a list; returns the pages.
async fn all_pages(
    store: &dyn MetadataStore,
    check: &str,
    namespace: Option<&str>,
    limit: usize,
) -> Vec<ListPage> {
    let mut pages = Vec::new();
    let mut token = None;
    for _ in 0..1000 {
        let request = ListRequest {
            resource: RESOURCE.to_owned(),
            namespace: namespace.map(str::to_owned),
            limit,
            continue_token: token.take(),
        };
        let page = ok(store.list(&request).await, check, "list");
        token = page.continue_token.clone();
        pages.push(page);
        if token.is_none() {
            return pages;
        }
    }
    panic!("{check}: list with limit {limit} did not end after 1000 pages");
}

fn flatten(pages: &[ListPage]) -> Vec<(String, u64, bytes::Bytes)> {
    pages
        .iter()
        .flat_map(|p| &p.items)
        .map(|o| {
            (
                format!("{}/{}", o.key.namespace, o.key.name),
                o.revision,
                o.value.clone(),
            )
        })
        .collect()
}

/// Lists across namespaces and in one, in byte order of `ns/name`, with the store revision.
pub async fn check_list_order(store: &dyn MetadataStore) {
    const C: &str = "check_list_order";
    let expected = fill(store, C).await;
    let rev = current(store, C).await;

    let pages = all_pages(store, C, None, 0).await;
    assert_eq!(pages.len(), 1, "{C}: an unlimited list has one page");
    assert_eq!(
        pages[0].revision, rev,
        "{C}: list revision is the store revision"
    );
    let want: Vec<_> = expected
        .iter()
        .map(|(k, (r, v))| (k.clone(), *r, v.clone()))
        .collect();
    assert_eq!(flatten(&pages), want, "{C}: all-namespace list");
    assert!(
        pages[0].items.iter().all(|o| o.key.resource == RESOURCE),
        "{C}: list returned another resource"
    );

    for ns in NAMESPACES {
        let pages = all_pages(store, C, Some(ns), 0).await;
        let want: Vec<_> = expected
            .iter()
            .filter(|(k, _)| k.split('/').next() == Some(ns))
            .map(|(k, (r, v))| (k.clone(), *r, v.clone()))
            .collect();
        assert_eq!(want.len(), NAMES.len());
        assert_eq!(flatten(&pages), want, "{C}: list of namespace {ns}");
    }

    let empty = all_pages(store, C, Some("nothing-here"), 0).await;
    assert!(
        empty[0].items.is_empty() && empty[0].continue_token.is_none(),
        "{C}: empty list"
    );
}

/// Every limit visits every object exactly once, in order, all pages at one revision.
pub async fn check_pagination(store: &dyn MetadataStore) {
    const C: &str = "check_pagination";
    let expected = fill(store, C).await;
    let want: Vec<_> = expected
        .iter()
        .map(|(k, (r, v))| (k.clone(), *r, v.clone()))
        .collect();
    let total = want.len();
    for limit in [1, 2, 5, total - 1, total, total + 1] {
        let pages = all_pages(store, C, None, limit).await;
        assert_eq!(flatten(&pages), want, "{C}: limit {limit}");
        assert!(
            pages.iter().all(|p| p.items.len() <= limit),
            "{C}: page over limit {limit}"
        );
        assert!(
            pages.iter().all(|p| p.revision == pages[0].revision),
            "{C}: pages of one list at different revisions"
        );
        assert_eq!(
            pages.len(),
            total.div_ceil(limit),
            "{C}: page count for limit {limit}"
        );
    }
    let one_ns: Vec<_> = want
        .iter()
        .filter(|(k, ..)| k.starts_with("a-b/"))
        .cloned()
        .collect();
    let pages = all_pages(store, C, Some("a-b"), 2).await;
    assert_eq!(
        flatten(&pages),
        one_ns,
        "{C}: paginated list of one namespace"
    );
}

/// Later pages show the objects as of the first page's revision, whatever changed in between.
pub async fn check_pagination_snapshot(store: &dyn MetadataStore) {
    const C: &str = "check_pagination_snapshot";
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(ok(
            store
                .create(&key("ns", &format!("o{i:02}")), value(&format!("v{i}")))
                .await,
            C,
            "create",
        ));
    }
    let first = ok(
        store
            .list(&ListRequest {
                resource: RESOURCE.to_owned(),
                namespace: Some("ns".to_owned()),
                limit: 4,
                continue_token: None,
            })
            .await,
        C,
        "first page",
    );
    let names: Vec<_> = first.items.iter().map(|o| o.key.name.as_str()).collect();
    assert_eq!(names, ["o00", "o01", "o02", "o03"], "{C}: first page");
    let token = first.continue_token.clone();
    assert!(token.is_some(), "{C}: first page has no continue token");

    // Change things on both sides of the page boundary.
    ok(
        store
            .update(&key("ns", "o01"), value("seen-changed"), Precondition::None)
            .await,
        C,
        "update seen",
    );
    ok(
        store
            .update(&key("ns", "o06"), value("changed"), Precondition::None)
            .await,
        C,
        "update unseen",
    );
    ok(
        store.delete(&key("ns", "o08"), Precondition::None).await,
        C,
        "delete unseen",
    );
    ok(
        store.create(&key("ns", "o05a"), value("new")).await,
        C,
        "create unseen",
    );
    ok(
        store.create(&key("ns", "o99"), value("new")).await,
        C,
        "create at end",
    );
    ok(
        store.create(&key("other", "o00"), value("new")).await,
        C,
        "create elsewhere",
    );

    let mut rest = Vec::new();
    let mut token = token;
    for _ in 0..20 {
        let Some(t) = token.take() else { break };
        let page = ok(
            store
                .list(&ListRequest {
                    resource: RESOURCE.to_owned(),
                    namespace: Some("ns".to_owned()),
                    limit: 4,
                    continue_token: Some(t),
                })
                .await,
            C,
            "next page",
        );
        assert_eq!(
            page.revision, first.revision,
            "{C}: later page at another revision"
        );
        token = page.continue_token.clone();
        rest.extend(page.items);
    }
    let got: Vec<_> = rest
        .iter()
        .map(|o| (o.key.name.clone(), o.revision, o.value.clone()))
        .collect();
    let want: Vec<_> = (4..10)
        .map(|i| (format!("o{i:02}"), revs[i], value(&format!("v{i}"))))
        .collect();
    assert_eq!(
        got, want,
        "{C}: later pages are not the snapshot of the first page's revision"
    );

    // A new list sees the new state.
    let fresh = all_pages(store, C, Some("ns"), 3).await;
    let names: Vec<_> = flatten(&fresh).into_iter().map(|(k, ..)| k).collect();
    let want = [
        "o00", "o01", "o02", "o03", "o04", "o05", "o05a", "o06", "o07", "o09", "o99",
    ]
    .map(|n| format!("ns/{n}"));
    assert_eq!(names, want, "{C}: fresh list after changes");
}

/// A malformed continue token is `Invalid`, not a panic or a wrong page.
pub async fn check_bad_continue_token(store: &dyn MetadataStore) {
    const C: &str = "check_bad_continue_token";
    ok(store.create(&key("ns", "x"), value("x")).await, C, "create");
    for bad in ["not base64 !", "eyJmb28iOjF9", ""] {
        let result = store
            .list(&ListRequest {
                resource: RESOURCE.to_owned(),
                namespace: None,
                limit: 1,
                continue_token: Some(bad.to_owned()),
            })
            .await;
        match result {
            Err(StoreError::Invalid { .. }) => {}
            other => panic!("{C}: token {bad:?} gave {other:?}, want Invalid"),
        }
    }
}
