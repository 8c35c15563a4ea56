//! Records written around the API, straight into the metadata store (whoever reaches etcd: a
//! pod on the network before the install closed etcd, a restored backup, a bug), are data, not
//! authority. A planted record must not make the server serve, or delete, any file outside its
//! own namespace and pod directory, nor hide the records around it. Real etcd, the server's own
//! `build`; the planted keys are written with etcd's own client as an attacker would.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{BASE, Harness, Who, assert_status};
use coredump_apiserver::cli::ETCD_PREFIX;
use coredump_store::BlobPath;

const SECRET: &[u8] = b"victim memory: password=hunter2";

struct Scene {
    h: Harness,
    etcd_url: String,
    victim_blob: BlobPath,
    _etcd: coredump_testplane::EtcdProcess,
}

/// A victim namespace with one genuine crash (record through the API, core in the blob store).
async fn scene() -> Scene {
    let (h, etcd) = Harness::on_etcd().await;
    let victim_blob = BlobPath::new("victim", "uid-v", "app", "crash-v.core.zst").unwrap();
    h.blobs
        .put_bytes(&victim_blob, &zstd::encode_all(SECRET, 1).unwrap());
    h.create_coredump(
        "victim",
        common::coredump("crash-v", "victim", "uid-v", "app", SECRET.len() as u64),
    )
    .await;
    Scene {
        h,
        etcd_url: etcd.url(),
        victim_blob,
        _etcd: etcd,
    }
}

impl Scene {
    /// Writes `value` at `<prefix>/<resource>/<ns>/<name>` with a plain etcd client.
    async fn plant(&self, resource: &str, ns: &str, name: &str, value: serde_json::Value) {
        let mut client = etcd_client::Client::connect([self.etcd_url.as_str()], None)
            .await
            .unwrap();
        client
            .put(
                format!("{ETCD_PREFIX}/{resource}/{ns}/{name}"),
                value.to_string(),
                None,
            )
            .await
            .unwrap();
    }

    async fn get_raw(&self, path: &str) -> (StatusCode, Vec<u8>) {
        let resp = self.h.send(Who::Admin, Method::GET, path, &[], None).await;
        let code = resp.status();
        (code, common::bytes(resp).await)
    }

    fn victim_intact(&self) {
        assert!(
            self.h.blobs.exists(&self.victim_blob),
            "the victim's core was deleted"
        );
    }
}

/// A Coredump in the attacker's namespace whose blobPath names the victim's core.
fn pointing_at_victim(ns_field: &str, name: &str) -> serde_json::Value {
    let mut c = common::coredump(name, ns_field, "uid-v", "app", SECRET.len() as u64);
    c["metadata"]["namespace"] = ns_field.into();
    c["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001".into();
    c["status"]["blobPath"] = "victim/uid-v/app/crash-v.core.zst".into();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_record_cannot_read_or_delete_another_namespaces_core() {
    let s = scene().await;
    // Stored under the attacker's key, honest about its own namespace, lying in blobPath.
    s.plant(
        "coredumps",
        "attacker",
        "evil",
        pointing_at_victim("attacker", "evil"),
    )
    .await;
    // Stored under the attacker's key, claiming to be the victim's object.
    s.plant(
        "coredumps",
        "attacker",
        "crash-v",
        pointing_at_victim("victim", "crash-v"),
    )
    .await;

    for name in ["evil", "crash-v"] {
        let (code, body) = s
            .get_raw(&format!("{BASE}/namespaces/attacker/coredumps/{name}/core"))
            .await;
        assert!(
            !body.windows(SECRET.len()).any(|w| w == SECRET),
            "{name}: served the victim's core ({code})"
        );
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{name}");
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_status(&status, "InternalError", 500);
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains(&format!("coredumps/attacker/{name} is refused")),
            "{status}"
        );
        let (code, body) =
            s.h.call(
                Method::DELETE,
                &format!("{BASE}/namespaces/attacker/coredumps/{name}"),
                None,
            )
            .await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{name}: {body}");
        s.victim_intact();
    }

    // Lists leave the planted records out and keep everything else.
    let (code, list) =
        s.h.call(Method::GET, &format!("{BASE}/coredumps"), None)
            .await;
    assert_eq!(code, StatusCode::OK, "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["crash-v"], "{list}");
    assert_eq!(list["items"][0]["metadata"]["namespace"], "victim");

    // The genuine record still serves its core.
    let (code, body) = s
        .get_raw(&format!("{BASE}/namespaces/victim/coredumps/crash-v/core"))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, SECRET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_endpoint_cannot_delete_another_namespaces_cores() {
    let s = scene().await;
    // Under the attacker's key, claiming the victim's namespace and pod: deleting it would
    // delete that pod's Coredumps and blobs if the server trusted what the record says.
    s.plant(
        "coredumpendpoints",
        "attacker",
        "ep",
        serde_json::json!({
            "apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
            "metadata": {"name": "ep", "namespace": "victim",
                         "uid": "00000000-0000-0000-0000-000000000002"},
            "spec": {"podUID": "uid-v"}
        }),
    )
    .await;
    let (code, body) =
        s.h.call(
            Method::DELETE,
            &format!("{BASE}/namespaces/attacker/coredumpendpoints/ep"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    s.victim_intact();
    let (code, _) =
        s.h.call(
            Method::GET,
            &format!("{BASE}/namespaces/victim/coredumps/crash-v"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "the victim's record was deleted");
    let (code, body) = s
        .get_raw(&format!(
            "{BASE}/namespaces/attacker/coredumpendpoints/ep/dump"
        ))
        .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.windows(SECRET.len()).any(|w| w == SECRET));
}
