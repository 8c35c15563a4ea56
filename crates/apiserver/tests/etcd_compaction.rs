//! `--etcd-servers` with `--etcd-compaction-interval`: the server compacts its own etcd's
//! history on a timer, and clients that come back with a version from before the compaction
//! get Kubernetes' answer, `410 Expired` (an ERROR event for watches, a Status for continue
//! tokens), while fresh lists and watches keep working. Real etcd, the server's own `build`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::BASE;
use coredump_apiserver::auth::PeerCertificates;
use coredump_apiserver::cli::{ApiserverArgs, BackendKind, build};
use coredump_apiserver::delegation::{DelegationArgs, DelegationMode};
use tower::ServiceExt;

async fn send(
    app: &axum::Router,
    admin: &PeerCertificates,
    method: Method,
    uri: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    req = req.header("accept", "application/json");
    let mut req = req
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    req.extensions_mut().insert(admin.clone());
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    (status, common::bytes(resp).await)
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_turns_old_versions_into_410_expired() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = coredump_testplane::start_etcd(&dir.path().join("etcd")).unwrap();
    let pki = common::pki::Pki::new();
    let ca = dir.path().join("ca.pem");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    std::fs::write(&cert, &pki.server.cert_pem).unwrap();
    std::fs::write(&key, &pki.server.key_pem).unwrap();
    let args = ApiserverArgs {
        secure_port: 0,
        bind_address: "127.0.0.1".parse().unwrap(),
        tls_cert_file: Some(cert),
        tls_private_key_file: Some(key),
        client_ca_file: Some(ca),
        backend_kind: BackendKind::Local,
        local_path: dir.path().join("cores"),
        blob_store: Default::default(),
        etcd_servers: vec![etcd.url()],
        data_dir: dir.path().join("unused"),
        node_bound_users: Vec::new(),
        keep_per_signature: coredump_apiserver::registry::retention::KeepFlag(None),
        admin_groups: vec!["system:masters".into()],
        etcd_cafile: None,
        etcd_certfile: None,
        etcd_keyfile: None,
        etcd_compaction_interval: Duration::from_secs(1),
        delegation: DelegationArgs {
            delegated_auth: DelegationMode::Off,
            ..DelegationArgs::default()
        },
    };
    let blobs = common::blobs::DirBlobStore::new(args.local_path.clone());
    let config = build(&args, blobs.store.clone()).await.unwrap();
    let app = coredump_apiserver::router(config.state.clone());
    let admin = PeerCertificates(Arc::new(vec![pki.admin.der.clone()]));
    let url = format!("{BASE}/namespaces/a/coredumpendpoints");

    let mut versions = Vec::new();
    for name in ["p1", "p2", "p3"] {
        let (code, body) = send(
            &app,
            &admin,
            Method::POST,
            &url,
            Some(common::endpoint(name, &format!("uid-{name}"))),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        versions.push(
            json(&body)["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (_, page) = send(&app, &admin, Method::GET, &format!("{url}?limit=1"), None).await;
    let token = json(&page)["metadata"]["continue"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!token.is_empty());
    // A later write moves the revision past the list's; two ticks later it is compacted away.
    let (code, _) = send(
        &app,
        &admin,
        Method::POST,
        &url,
        Some(common::endpoint("p4", "uid-p4")),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);

    let old_watch = format!(
        "{url}?watch=1&resourceVersion={}&timeoutSeconds=1",
        versions[0]
    );
    let start = Instant::now();
    let event = loop {
        let (code, body) = send(&app, &admin, Method::GET, &old_watch, None).await;
        assert_eq!(code, StatusCode::OK);
        let first: serde_json::Value =
            serde_json::from_slice(body.split(|b| *b == b'\n').next().unwrap()).unwrap();
        if first["type"] == "ERROR" {
            break first;
        }
        // Not compacted yet: the watch replays p2, p3, p4.
        assert_eq!(first["object"]["metadata"]["name"], "p2");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no compaction within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("compacted after {:?}", start.elapsed());
    assert_eq!(event["object"]["kind"], "Status");
    assert_eq!(event["object"]["reason"], "Expired");
    assert_eq!(event["object"]["code"], 410);

    // The continue token read at the old revision: 410 Gone, reason Expired.
    let (code, body) = send(
        &app,
        &admin,
        Method::GET,
        &format!("{url}?limit=1&continue={token}"),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::GONE, "{}", String::from_utf8_lossy(&body));
    common::assert_status(&json(&body), "Expired", 410);

    // Starting over works: a fresh list, then a watch from its version sees new changes only.
    let (code, list) = send(&app, &admin, Method::GET, &url, None).await;
    assert_eq!(code, StatusCode::OK);
    let list = json(&list);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p1", "p2", "p3", "p4"]);
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let app2 = app.clone();
    let admin2 = admin.clone();
    let url2 = url.clone();
    let watcher = tokio::spawn(async move {
        send(
            &app2,
            &admin2,
            Method::GET,
            &format!("{url2}?watch=1&resourceVersion={rv}&timeoutSeconds=2"),
            None,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, _) = send(
        &app,
        &admin,
        Method::POST,
        &url,
        Some(common::endpoint("p5", "uid-p5")),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, body) = watcher.await.unwrap();
    assert_eq!(code, StatusCode::OK);
    let events: Vec<serde_json::Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "p5");
    drop(config);
    drop(etcd);
}
