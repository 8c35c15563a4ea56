//! Standalone etcd for our store's tests: reachable with the real etcd client, keeps its data
//! across a crash-like SIGKILL + restart and across a fresh start on the same data directory,
//! and is gone after `Drop`. Also checks that `ControlPlane::etcd_url` is kube-apiserver's store.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::net::TcpStream;
use std::time::Duration;

use coredump_testplane::{shared, start_etcd};
use etcd_client::{Client, GetOptions};

async fn client(url: &str) -> Client {
    tokio::time::timeout(Duration::from_secs(10), Client::connect([url], None))
        .await
        .unwrap()
        .unwrap()
}

async fn value(client: &mut Client, key: &str) -> Option<Vec<u8>> {
    let response = tokio::time::timeout(Duration::from_secs(10), client.get(key, None))
        .await
        .unwrap()
        .unwrap();
    response.kvs().first().map(|kv| kv.value().to_vec())
}

#[tokio::test]
async fn data_survives_kill_restart_and_a_fresh_process() {
    let data = tempfile::tempdir().unwrap();
    let mut etcd = start_etcd(&data.path().join("etcd")).unwrap();
    let url = etcd.url();
    let mut c = client(&url).await;
    c.put("/coredump/k", "v1", None).await.unwrap();
    assert_eq!(
        value(&mut c, "/coredump/k").await.as_deref(),
        Some(&b"v1"[..])
    );

    etcd.kill();
    let port = url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "etcd still listening after kill"
    );
    etcd.restart().unwrap();
    assert_eq!(etcd.url(), url, "restart keeps the port");
    let mut c = client(&url).await;
    assert_eq!(
        value(&mut c, "/coredump/k").await.as_deref(),
        Some(&b"v1"[..])
    );
    c.put("/coredump/k", "v2", None).await.unwrap();

    let log = etcd.log().to_path_buf();
    drop(etcd);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "etcd still listening after drop"
    );
    assert!(!log.exists(), "log directory not removed");

    let etcd = start_etcd(&data.path().join("etcd")).unwrap();
    let mut c = client(&etcd.url()).await;
    assert_eq!(
        value(&mut c, "/coredump/k").await.as_deref(),
        Some(&b"v2"[..])
    );
}

#[tokio::test]
async fn control_plane_etcd_url_is_kube_apiservers_store() {
    let cp = tokio::task::spawn_blocking(|| shared().unwrap())
        .await
        .unwrap();
    let mut c = client(&cp.etcd_url()).await;
    let options = GetOptions::new().with_prefix().with_keys_only();
    let keys = c.get("/registry/namespaces/", Some(options)).await.unwrap();
    let keys: Vec<String> = keys
        .kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_string())
        .collect();
    assert!(
        keys.contains(&"/registry/namespaces/default".to_string()),
        "{keys:?}"
    );
}
