//! Lists without `limit` are read from the store a page at a time and streamed
//! (`http/unchunked.rs`): the body is the same bytes one page of everything would be, in each
//! representation kubectl asks for, on the embedded store and on real etcd; a selector that
//! matches a few objects spread over many store pages finds each of them once; and a store that
//! dies between two pages cuts the body off instead of answering a list that looks whole. A
//! watch from "now" sends the current objects the same way, page by page, each exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{BASE, Harness, TABLE_ACCEPT, Who, bytes};
use coredump_apiserver::registry::pages::STORE_PAGE;
use http_body_util::BodyExt;
use serde_json::Value;

/// Two full store pages and one object more.
const OBJECTS: usize = 2 * STORE_PAGE + 1;
const ALL: &str = "/apis/coredump.fujitsu.com/v1alpha1/coredumpendpoints";
const METADATA_ACCEPT: &str = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io";

/// Endpoints `ids` (`0..OBJECTS` for the comparisons) over three namespaces; every 400th
/// carries the label `rare=yes`.
async fn fill(h: &Harness, ids: std::ops::Range<usize>) {
    for i in ids {
        let mut e = common::endpoint(&format!("ep-{i:05}"), &format!("uid-{i}"));
        if i % 400 == 0 {
            e["metadata"]["labels"] = serde_json::json!({"rare": "yes"});
        }
        create(h, ["a", "b", "c"][i % 3], e).await;
    }
}

/// `count` endpoints `<prefix>-NNN` in `ns`, each carrying `filler` as an annotation.
async fn fill_large(h: &Harness, ns: &str, prefix: &str, count: usize, filler: &str) {
    for i in 0..count {
        let name = format!("{prefix}-{i:03}");
        let mut e = common::endpoint(&name, &format!("uid-{name}"));
        e["metadata"]["annotations"] = serde_json::json!({ "example.com/filler": filler });
        create(h, ns, e).await;
    }
}

/// Creates `endpoint` in `ns`; anything but 201 fails the test.
async fn create(h: &Harness, ns: &str, endpoint: Value) {
    let name = endpoint["metadata"]["name"].to_string();
    let (code, body) = h
        .call(
            Method::POST,
            &format!("{BASE}/namespaces/{ns}/coredumpendpoints"),
            Some(endpoint),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{name}: {}", body["message"]);
}

async fn get(h: &Harness, uri: &str, accept: &str) -> Vec<u8> {
    let resp = h
        .send(Who::Admin, Method::GET, uri, &[("accept", accept)], None)
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "{uri}");
    bytes(resp).await
}

/// The streamed list and the one-page list (`limit` above the total) of `query`.
async fn streamed_and_one_page(h: &Harness, query: &str, accept: &str) -> (Vec<u8>, Vec<u8>) {
    let join = if query.is_empty() { "?" } else { "&" };
    let streamed = get(h, &format!("{ALL}{query}"), accept).await;
    let one_page = get(h, &format!("{ALL}{query}{join}limit=100000"), accept).await;
    (streamed, one_page)
}

/// A table without its `Age` cells (counted to each request's own clock).
fn without_age(table: &[u8]) -> Value {
    let mut t: Value = serde_json::from_slice(table).unwrap();
    let age = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == "Age");
    for row in t["rows"].as_array_mut().unwrap() {
        if let Some(age) = age {
            row["cells"].as_array_mut().unwrap().remove(age);
        }
    }
    t
}

fn names(list: &[u8], field: &str) -> Vec<String> {
    let v: Value = serde_json::from_slice(list).unwrap();
    v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let meta = if field == "rows" {
                &i["object"]["metadata"]
            } else {
                &i["metadata"]
            };
            meta["name"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn streamed_lists_equal_one_page(h: &Harness) {
    let (streamed, one_page) = streamed_and_one_page(h, "", "application/json").await;
    assert_eq!(names(&streamed, "items").len(), OBJECTS);
    assert!(
        streamed == one_page,
        "objects: the streamed list differs from the one-page list"
    );
    let (streamed, one_page) = streamed_and_one_page(h, "", METADATA_ACCEPT).await;
    assert_eq!(names(&streamed, "items").len(), OBJECTS);
    assert!(
        streamed == one_page,
        "metadata: the streamed list differs from the one-page list"
    );
    let (streamed, one_page) = streamed_and_one_page(h, "", TABLE_ACCEPT).await;
    assert_eq!(names(&streamed, "rows").len(), OBJECTS);
    assert_eq!(without_age(&streamed), without_age(&one_page));

    let (streamed, one_page) =
        streamed_and_one_page(h, "?labelSelector=rare%3Dyes", "application/json").await;
    let mut expected: Vec<(usize, String)> = (0..OBJECTS)
        .step_by(400)
        .map(|i| (i % 3, format!("ep-{i:05}")))
        .collect();
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, n)| n).collect();
    assert_eq!(names(&streamed, "items"), expected);
    assert!(
        streamed == one_page,
        "selector: streamed and one-page lists differ"
    );
    let parsed: Value = serde_json::from_slice(&streamed).unwrap();
    assert!(
        parsed["metadata"].get("continue").is_none(),
        "an unchunked list has no continue token: {}",
        parsed["metadata"]
    );
}

#[tokio::test]
async fn embedded_store_streams_the_same_bytes_as_one_page() {
    let h = Harness::new();
    fill(&h, 0..OBJECTS).await;
    streamed_lists_equal_one_page(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_streams_the_same_bytes_and_a_frozen_or_dead_etcd_cuts_the_body_off() {
    let (h, etcd) = Harness::on_etcd().await;
    fill(&h, 0..OBJECTS).await;
    streamed_lists_equal_one_page(&h).await;
    fill_large(&h, "z", "tail", 80, &"x".repeat(250_000)).await;

    // Frozen (SIGSTOP: alive, answering nothing) after the answer began: the body ends with an
    // error within the store's request timeout (5 s) per piece, not never.
    let resp = begin_list(&h).await;
    let frozen = etcd.freeze();
    // 5 s of request timeout and the pieces already read: well within 15 s (the connection's
    // keep-alive alone, without a timeout per piece, took 20 s).
    let body = tokio::time::timeout(Duration::from_secs(15), resp.into_body().collect()).await;
    drop(frozen);
    let err = body
        .expect("the body ends within 15 s of etcd's freeze")
        .expect_err("a list whose later pieces never come must not end cleanly");
    assert!(
        err.to_string().contains("list broke off"),
        "the body's error says why: {err}"
    );
    // The server reads ahead of the client (a piece waiting for the renderer, one being
    // rendered, one rendered in the body, and what etcd's stream has in flight, pieces of
    // about 1.5 MiB): the 20 MB at the end of the list, in objects of 250 KB, are more than
    // that, so etcd's freeze or death lands before the end whatever the timing, since this
    // client reads nothing before it.

    // The answer has begun (status 200, first store page read) when etcd dies.
    let resp = begin_list(&h).await;
    etcd.kill();
    let body = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
        .await
        .expect("the body ends within 60 s of etcd's death");
    let err = body.expect_err("a list whose later pages are unreadable must not end cleanly");
    assert!(
        err.to_string().contains("list broke off"),
        "the body's error says why: {err}"
    );
}

/// An unchunked JSON list of every endpoint whose answer has begun (200, first page read);
/// its body not read yet.
async fn begin_list(h: &Harness) -> axum::response::Response {
    let resp = h
        .send(
            Who::Admin,
            Method::GET,
            ALL,
            &[("accept", "application/json")],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp
}

/// etcd before 3.7 has no `RangeStream`: the rest of an unchunked list is then read page by
/// page, to the same bytes. Debian's etcd (3.4, installed by `scripts/install-deps.sh`) is
/// such an etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_without_range_stream_gets_the_same_lists_page_by_page() {
    let debian_etcd = std::path::Path::new("/usr/bin/etcd");
    assert!(
        debian_etcd.exists(),
        "Debian's etcd-server package (scripts/install-deps.sh) is needed"
    );
    let (h, _etcd) = Harness::on_etcd_binary(debian_etcd).await;
    fill(&h, 0..OBJECTS).await;
    streamed_lists_equal_one_page(&h).await;
}

/// `?watch=1&resourceVersion=0`: every current object as one ADDED event (read from the store a
/// page at a time), then the changes that follow.
#[tokio::test]
async fn a_watch_from_now_sends_every_page_of_current_objects_once() {
    let h = Harness::new();
    fill(&h, 0..OBJECTS).await;
    let mut events = Events::open(&h, "0").await;
    let mut added = std::collections::BTreeSet::new();
    let mut created_after = false;
    let mut seen_after = false;
    while !seen_after {
        for event in events.next().await {
            assert_eq!(event["type"], "ADDED", "{event}");
            let name = event["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_owned();
            if name == "after" {
                seen_after = true;
            } else {
                assert!(added.insert(name.clone()), "{name} sent twice");
            }
        }
        if added.len() == OBJECTS && !created_after {
            h.create_endpoint("a", "after", "uid-after").await;
            created_after = true;
        }
    }
    assert_eq!(added.len(), OBJECTS, "each current object once");
}

/// The events of a watch of every endpoint, as they arrive (at most 60 s in all).
struct Events {
    body: axum::body::Body,
    pending: Vec<u8>,
    deadline: tokio::time::Instant,
}

impl Events {
    /// `?watch=1&resourceVersion=<rv>`.
    async fn open(h: &Harness, rv: &str) -> Events {
        let resp = h
            .send(
                Who::Admin,
                Method::GET,
                &format!("{ALL}?watch=1&resourceVersion={rv}"),
                &[],
                None,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        Events {
            body: resp.into_body(),
            pending: Vec::new(),
            deadline: tokio::time::Instant::now() + Duration::from_secs(60),
        }
    }

    /// The events of the next piece of the body (maybe none).
    async fn next(&mut self) -> Vec<Value> {
        let frame = tokio::time::timeout_at(self.deadline, self.body.frame())
            .await
            .expect("the events within 60 s")
            .expect("the watch stays open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            self.pending.extend_from_slice(&data);
        }
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            events.push(serde_json::from_slice(&line).unwrap());
        }
        events
    }
}

/// Objects may be large: a tenant who creates many must not make every list that reaches them
/// fail, paged or not. gRPC clients refused answers above 4 MiB (five objects with 1.2 MB of
/// annotations broke every list that reached them; annotations are now limited to 256 KiB, as
/// Kubernetes limits them, and such an object is refused); 280 objects of 250 KB are more than
/// the store takes in one answer (`MAX_ANSWER_BYTES`), so the store reads that page in
/// smaller steps, and a watch catching up over them gets them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_of_large_objects_work_on_etcd() {
    const LARGE: usize = 280;
    const SIZE: usize = 250_000;
    const { assert!(LARGE * SIZE > coredump_store::etcd_store::MAX_ANSWER_BYTES) };
    let (h, _etcd) = Harness::on_etcd().await;
    let mut huge = common::endpoint("huge", "uid-huge");
    huge["metadata"]["annotations"] =
        serde_json::json!({ "example.com/filler": "x".repeat(1_200_000) });
    let (code, body) = h
        .call(
            Method::POST,
            &format!("{BASE}/namespaces/a/coredumpendpoints"),
            Some(huge),
        )
        .await;
    assert_eq!(
        code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        body["message"]
    );
    let before = list_json(&h, "?limit=1").await["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_owned();
    let filler = "x".repeat(SIZE);
    fill_large(&h, "a", "big", LARGE, &filler).await;
    // Paged: pages may hold fewer objects than asked for, the continue token goes on.
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    for _ in 0..LARGE + 1 {
        let query = match &token {
            Some(t) => format!("?limit=500&continue={t}"),
            None => "?limit=500".to_owned(),
        };
        let list = list_json(&h, &query).await;
        pages += 1;
        items.extend(list["items"].as_array().expect("items").iter().cloned());
        token = list["metadata"]["continue"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert!(token.is_none(), "the pages end");
    assert!(
        pages > 1,
        "one page of all of them is more than one answer from etcd: the store reads less"
    );
    assert_whole(&items, &filler, LARGE, "paged list");
    let list = list_json(&h, "").await;
    assert_whole(
        list["items"].as_array().expect("items"),
        &filler,
        LARGE,
        "unchunked list",
    );
    // A watch from before them catches up through all of them (etcd's catch-up answer would
    // hold every one at once).
    let events = watch_from(&h, &before, LARGE).await;
    assert_whole(&events, &filler, LARGE, "watch from before the creations");
}

/// The objects of the first `count` events of a watch from `rv`, all `ADDED`.
async fn watch_from(h: &Harness, rv: &str, count: usize) -> Vec<Value> {
    let mut events = Events::open(h, rv).await;
    let mut objects = Vec::new();
    while objects.len() < count {
        for event in events.next().await {
            assert_eq!(event["type"], "ADDED", "{}", event["object"]["message"]);
            objects.push(event["object"].clone());
        }
    }
    objects
}

async fn list_json(h: &Harness, query: &str) -> Value {
    let resp = h
        .send(
            Who::Admin,
            Method::GET,
            &format!("{ALL}{query}"),
            &[("accept", "application/json")],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "list{query}");
    serde_json::from_slice(&bytes(resp).await).unwrap()
}

/// `items` are the `count` large endpoints, each once and whole.
fn assert_whole(items: &[Value], filler: &str, count: usize, what: &str) {
    let mut names: Vec<&str> = items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!((items.len(), names.len()), (count, count), "{what}");
    assert!(
        items
            .iter()
            .all(|i| i["metadata"]["annotations"]["example.com/filler"] == filler),
        "every object whole in the {what}"
    );
}

/// The store itself: etcd 3.7 (the harness's) streams the rest of a list after a page in one
/// `RangeStream` answer, the same objects at the page's revision as paging gives, and writes
/// after the page do not show; Debian's etcd 3.4 has no `RangeStream` and the store says so
/// (`None`: the caller pages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_store_streams_the_rest_of_a_list_where_etcd_can() {
    use coredump_store::etcd_store::EtcdStore;
    use coredump_store::{ListRequest, MetadataStore, ObjectKey};
    use futures::StreamExt;

    async fn fill_store(store: &EtcdStore, count: usize) {
        for i in 0..count {
            let key = ObjectKey {
                resource: "things".into(),
                namespace: ["a", "b"][i % 2].into(),
                name: format!("t-{i:05}"),
            };
            store
                .create(&key, bytes::Bytes::from(format!("{{\"n\":{i}}}")))
                .await
                .unwrap();
        }
    }
    fn request(token: Option<String>, limit: usize) -> ListRequest {
        ListRequest {
            resource: "things".into(),
            namespace: None,
            limit,
            continue_token: token,
        }
    }
    let names = |items: &[coredump_store::StoredObject]| -> Vec<String> {
        items
            .iter()
            .map(|o| format!("{}/{}", o.key.namespace, o.key.name))
            .collect()
    };

    let dir = tempfile::tempdir().unwrap();
    let etcd = coredump_testplane::start_etcd(&dir.path().join("etcd")).unwrap();
    let store = EtcdStore::connect(&[etcd.url()], "/stream").await.unwrap();
    fill_store(&store, 1200).await;
    let first = store.list(&request(None, 500)).await.unwrap();
    let token = first.continue_token.clone().expect("more than one page");
    // Written after the first page: not part of its snapshot.
    fill_store(&store, 0).await;
    store
        .create(
            &ObjectKey {
                resource: "things".into(),
                namespace: "c".into(),
                name: "later".into(),
            },
            bytes::Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    let mut chunks = store
        .list_rest(&request(Some(token.clone()), 0))
        .await
        .unwrap()
        .expect("etcd 3.7 streams the rest of a range");
    let mut streamed = Vec::new();
    let mut pieces = 0;
    while let Some(chunk) = chunks.next().await {
        streamed.extend(names(&chunk.unwrap()));
        pieces += 1;
    }
    let mut paged = Vec::new();
    let mut next = Some(token);
    while let Some(t) = next {
        let page = store.list(&request(Some(t), 500)).await.unwrap();
        paged.extend(names(&page.items));
        next = page.continue_token;
    }
    assert_eq!(streamed.len(), 700);
    assert_eq!(streamed, paged, "the same objects in the same order");
    assert!(pieces >= 1);

    let old_dir = tempfile::tempdir().unwrap();
    let old = coredump_testplane::start_etcd_binary(
        std::path::Path::new("/usr/bin/etcd"),
        &old_dir.path().join("etcd"),
    )
    .unwrap();
    let store = EtcdStore::connect(&[old.url()], "/stream").await.unwrap();
    fill_store(&store, 600).await;
    let first = store.list(&request(None, 500)).await.unwrap();
    assert!(
        store
            .list_rest(&request(first.continue_token, 0))
            .await
            .unwrap()
            .is_none(),
        "etcd 3.4 has no RangeStream: the store says so instead of failing"
    );
}
