//! Watch semantics over the in-process router: synthetic ADDED from `resourceVersion=0`,
//! replay from a version, initial-events-end bookmark, periodic bookmarks, 410 as an ERROR
//! event, selectors, Table events and `timeoutSeconds`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use common::{BASE, Harness, TABLE_ACCEPT, Who, assert_status, endpoint, json};
use http_body_util::BodyExt;
use serde_json::Value;

const EPS: &str = "/apis/coredump.fujitsu.com/v1alpha1/namespaces/ns1/coredumpendpoints";

/// Reads JSON lines from a streaming body until `n` events arrived or the deadline passed.
struct Lines {
    body: Body,
    buf: Vec<u8>,
    ended: bool,
}

impl Lines {
    fn new(resp: Response<Body>) -> Self {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/json");
        Self {
            body: resp.into_body(),
            buf: Vec::new(),
            ended: false,
        }
    }

    async fn next(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) => self.ended = true,
                Ok(Some(frame)) => {
                    if let Ok(data) = frame.unwrap().into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    async fn take(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        for _ in 0..n {
            match self.next(Duration::from_secs(5)).await {
                Some(v) => out.push(v),
                None => break,
            }
        }
        out
    }
}

fn kinds(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

fn pair(t: &str, n: &str) -> (String, String) {
    (t.to_owned(), n.to_owned())
}

#[tokio::test]
async fn watch_from_zero_sends_current_objects_then_changes() {
    let h = Harness::new();
    h.create_endpoint("ns1", "a", "u").await;
    let resp = h
        .send(
            Who::Admin,
            Method::GET,
            &format!("{EPS}?watch=true&resourceVersion=0&timeoutSeconds=10"),
            &[],
            None,
        )
        .await;
    let mut lines = Lines::new(resp);
    let first = lines.take(1).await;
    assert_eq!(kinds(&first), [pair("ADDED", "a")]);
    assert_eq!(first[0]["object"]["kind"], "CoredumpEndpoint");
    h.create_endpoint("ns1", "b", "u").await;
    h.call(Method::DELETE, &format!("{EPS}/a"), None).await;
    let more = lines.take(2).await;
    assert_eq!(kinds(&more), [pair("ADDED", "b"), pair("DELETED", "a")]);
}

#[tokio::test]
async fn watch_from_a_version_replays_only_later_changes() {
    let h = Harness::new();
    let a = h.create_endpoint("ns1", "a", "u").await;
    h.create_endpoint("ns1", "b", "u").await;
    let rv = a["metadata"]["resourceVersion"].as_str().unwrap();
    let resp = h
        .send(
            Who::Admin,
            Method::GET,
            &format!("{EPS}?watch=1&resourceVersion={rv}&timeoutSeconds=10"),
            &[],
            None,
        )
        .await;
    let mut lines = Lines::new(resp);
    let events = lines.take(1).await;
    assert_eq!(kinds(&events), [pair("ADDED", "b")]);
    assert!(
        lines.next(Duration::from_millis(300)).await.is_none(),
        "nothing else should arrive"
    );
}

#[tokio::test]
async fn kubectl_get_w_by_name() {
    let h = Harness::new();
    h.create_endpoint("ns1", "a", "u").await;
    h.create_endpoint("ns1", "b", "u").await;
    let uri = format!(
        "{EPS}?fieldSelector=metadata.name%3Db&resourceVersion=0&watch=true&timeoutSeconds=10"
    );
    let resp = h
        .send(
            Who::Admin,
            Method::GET,
            &uri,
            &[("accept", TABLE_ACCEPT)],
            None,
        )
        .await;
    let mut lines = Lines::new(resp);
    let first = lines.take(1).await;
    assert_eq!(first[0]["type"], "ADDED");
    assert_eq!(first[0]["object"]["kind"], "Table");
    assert_eq!(
        first[0]["object"]["columnDefinitions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(first[0]["object"]["rows"][0]["cells"][0], "b");
    let merge = [("content-type", "application/merge-patch+json")];
    h.send(
        Who::Admin,
        Method::PATCH,
        &format!("{EPS}/a"),
        &merge,
        Some(serde_json::json!({"metadata": {"labels": {"x": "1"}}})),
    )
    .await;
    h.send(
        Who::Admin,
        Method::PATCH,
        &format!("{EPS}/b"),
        &merge,
        Some(serde_json::json!({"metadata": {"labels": {"x": "1"}}})),
    )
    .await;
    let next = lines.take(1).await;
    assert_eq!(next[0]["type"], "MODIFIED");
    assert_eq!(next[0]["object"]["rows"][0]["cells"][0], "b");
    assert_eq!(
        next[0]["object"]["columnDefinitions"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn send_initial_events_ends_with_annotated_bookmark() {
    let h = Harness::new();
    h.create_endpoint("ns1", "a", "u").await;
    let uri = format!(
        "{EPS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=10"
    );
    let mut lines = Lines::new(h.send(Who::Admin, Method::GET, &uri, &[], None).await);
    let events = lines.take(2).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(events[1]["object"]["kind"], "CoredumpEndpoint");
    let rv: u64 = events[1]["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        rv >= events[0]["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    );

    let bad = format!("{EPS}?watch=true&sendInitialEvents=true&timeoutSeconds=10");
    let (code, body) = json(h.send(Who::Admin, Method::GET, &bad, &[], None).await).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_status(&body, "BadRequest", 400);
}

#[tokio::test]
async fn periodic_bookmarks_when_allowed() {
    let h = Harness::new();
    let a = h.create_endpoint("ns1", "a", "u").await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri =
        format!("{EPS}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=10");
    let mut lines = Lines::new(h.send(Who::Admin, Method::GET, &uri, &[], None).await);
    let ev = lines.next(Duration::from_secs(3)).await.unwrap();
    assert_eq!(ev["type"], "BOOKMARK");
    assert_eq!(ev["object"]["metadata"]["resourceVersion"], rv.as_str());
}

#[tokio::test]
async fn too_old_version_is_an_expired_error_event() {
    let h = Harness::new();
    for n in ["a", "b", "c"] {
        h.create_endpoint("ns1", n, "u").await;
    }
    let store = h.registry.metadata_store();
    let now = store.current_revision().await.unwrap();
    store.compact(now).await.unwrap();
    let mut lines = Lines::new(
        h.send(
            Who::Admin,
            Method::GET,
            &format!("{EPS}?watch=true&resourceVersion=1&timeoutSeconds=10"),
            &[],
            None,
        )
        .await,
    );
    let ev = lines.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_status(&ev["object"], "Expired", 410);
    assert!(
        lines.next(Duration::from_secs(2)).await.is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream() {
    let h = Harness::new();
    let start = std::time::Instant::now();
    let mut lines = Lines::new(
        h.send(
            Who::Admin,
            Method::GET,
            &format!("{BASE}/coredumps?watch=true&timeoutSeconds=1"),
            &[],
            None,
        )
        .await,
    );
    assert!(lines.next(Duration::from_secs(5)).await.is_none());
    assert!(lines.ended, "stream must end, not time out in the test");
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn label_selector_filters_events() {
    let h = Harness::new();
    let mut lines = Lines::new(
        h.send(
            Who::Admin,
            Method::GET,
            &format!("{EPS}?watch=true&labelSelector=app%3Dweb&timeoutSeconds=10"),
            &[],
            None,
        )
        .await,
    );
    let mut db = endpoint("db", "u");
    db["metadata"]["labels"] = serde_json::json!({"app": "db"});
    h.call(Method::POST, EPS, Some(db)).await;
    let mut web = endpoint("web", "u");
    web["metadata"]["labels"] = serde_json::json!({"app": "web"});
    h.call(Method::POST, EPS, Some(web)).await;
    let events = lines.take(1).await;
    assert_eq!(kinds(&events), [pair("ADDED", "web")]);
}
