//! `CoredumpEndpoint` create fills `spec.podUID` from the live pod (the seed's behaviour), in
//! process with a scripted [`PodLookup`]; without a cluster (standalone) the UID must be given.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use common::{BASE, Harness, assert_status};
use coredump_apiserver::pods::{PodLookup, PodLookupError};
use serde_json::json;

#[derive(Default)]
struct Pods {
    uids: HashMap<(String, String), String>,
    asked: Mutex<Vec<String>>,
    broken: bool,
}

#[async_trait::async_trait]
impl PodLookup for Pods {
    async fn pod_uid(&self, ns: &str, name: &str) -> Result<Option<String>, PodLookupError> {
        self.asked.lock().unwrap().push(format!("{ns}/{name}"));
        if self.broken {
            return Err(PodLookupError {
                namespace: ns.into(),
                name: name.into(),
                message: "connection refused".into(),
            });
        }
        Ok(self.uids.get(&(ns.into(), name.into())).cloned())
    }
}

fn harness(pods: Arc<Pods>) -> Harness {
    let mut h = Harness::new();
    h.state.pods = pods;
    h
}

fn without_uid(name: &str) -> serde_json::Value {
    json!({"apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
           "metadata": {"name": name}, "spec": {}})
}

#[tokio::test]
async fn live_pod_uid_is_filled_in_and_a_given_one_is_kept() {
    let pods = Arc::new(Pods {
        uids: [(
            ("team-a".into(), "web-0".into()),
            "11111111-2222-3333-4444-555555555555".into(),
        )]
        .into(),
        ..Default::default()
    });
    let h = harness(pods.clone());
    let url = format!("{BASE}/namespaces/team-a/coredumpendpoints");
    let (code, body) = h.call(Method::POST, &url, Some(without_uid("web-0"))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["spec"]["podUID"],
        "11111111-2222-3333-4444-555555555555"
    );
    let (_, stored) = h.call(Method::GET, &format!("{url}/web-0"), None).await;
    assert_eq!(
        stored["spec"]["podUID"],
        "11111111-2222-3333-4444-555555555555"
    );
    // A given UID (an earlier incarnation of the pod) is kept, and nobody is asked.
    let (code, body) = h
        .call(
            Method::POST,
            &url,
            Some(common::endpoint("web-1", "old-uid")),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["spec"]["podUID"], "old-uid");
    assert_eq!(*pods.asked.lock().unwrap(), ["team-a/web-0"]);
}

#[tokio::test]
async fn missing_pod_without_uid_is_invalid_and_says_why() {
    let h = harness(Arc::new(Pods::default()));
    let url = format!("{BASE}/namespaces/team-a/coredumpendpoints");
    let (code, body) = h.call(Method::POST, &url, Some(without_uid("gone"))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_status(&body, "Invalid", 422);
    assert_eq!(
        body["message"],
        "CoredumpEndpoint.coredump.fujitsu.com \"gone\" is invalid: spec.podUID: Required value: \
         pod team-a/gone does not exist, so its UID cannot be filled in: give the UID of the pod \
         whose cores to serve"
    );
    assert_eq!(body["details"]["causes"][0]["field"], "spec.podUID");
    assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueRequired");
    let (code, _) = h.call(Method::GET, &format!("{url}/gone"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lookup_failure_is_an_internal_error_and_stores_nothing() {
    let h = harness(Arc::new(Pods {
        broken: true,
        ..Default::default()
    }));
    let url = format!("{BASE}/namespaces/team-a/coredumpendpoints");
    let (code, body) = h.call(Method::POST, &url, Some(without_uid("web-0"))).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("looking up pod team-a/web-0: connection refused"),
        "{body}"
    );
    let (code, _) = h.call(Method::GET, &format!("{url}/web-0"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_cluster_the_uid_is_required() {
    // The default state has no pod lookup (standalone).
    let h = Harness::new();
    let url = format!("{BASE}/namespaces/team-a/coredumpendpoints");
    let (code, body) = h.call(Method::POST, &url, Some(without_uid("web-0"))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["message"],
        "CoredumpEndpoint.coredump.fujitsu.com \"web-0\" is invalid: spec.podUID: Required value"
    );
}
