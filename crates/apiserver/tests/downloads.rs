//! The `core` and `dump` subresources over the in-process router: bytes, headers, ranges,
//! archive layout, container filter, errors, and the blob clean-up of deletes.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;

use axum::http::{Method, StatusCode, header};
use common::{BASE, Harness, Who, assert_status, bytes, coredump, json};
use coredump_store::BlobPath;

/// Deterministic, partly compressible test data.
fn core_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if i % 7 == 0 {
                seed
            } else {
                (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed
            }
        })
        .collect()
}

fn blob(ns: &str, uid: &str, container: &str, file: &str) -> BlobPath {
    BlobPath {
        namespace: ns.into(),
        pod_uid: uid.into(),
        container: container.into(),
        file: file.into(),
    }
}

/// Stores a zstd blob and its Coredump object; returns the raw core.
async fn stored_core(h: &Harness, name: &str, uid: &str, container: &str, len: usize) -> Vec<u8> {
    let raw = core_bytes(len, name.len() as u8);
    let compressed = zstd::encode_all(&raw[..], 3).unwrap();
    h.blobs.put_bytes(
        &blob("ns1", uid, container, &format!("{name}.core.zst")),
        &compressed,
    );
    h.create_coredump("ns1", coredump(name, "ns1", uid, container, len as u64))
        .await;
    raw
}

#[tokio::test]
async fn seekable_cores_answer_ranges_from_their_frame() {
    use std::io::Write;
    let h = Harness::new();
    let raw = core_bytes(5_000_000, 9);
    let mut w =
        coredump_seekable::SeekableWriter::with_frame_size(Vec::new(), 1, 0, 1 << 20).unwrap();
    w.write_all(&raw).unwrap();
    h.blobs.put_bytes(
        &blob("ns1", "u1", "app", "s1.core.zst"),
        &w.finish().unwrap(),
    );
    h.create_coredump("ns1", coredump("s1", "ns1", "u1", "app", raw.len() as u64))
        .await;
    let uri = format!("{BASE}/namespaces/ns1/coredumps/s1/core");
    for (range, start, end) in [
        ("bytes=0-99", 0usize, 99usize),
        ("bytes=1048570-1048580", 1_048_570, 1_048_580),
        ("bytes=-10", 4_999_990, 4_999_999),
        ("bytes=3000000-", 3_000_000, 4_999_999),
        // Across three frame boundaries, and exactly one whole frame.
        ("bytes=1000000-3500000", 1_000_000, 3_500_000),
        ("bytes=1048576-2097151", 1_048_576, 2_097_151),
        ("bytes=4194303-4194304", 4_194_303, 4_194_304),
    ] {
        let resp = h
            .send(Who::Admin, Method::GET, &uri, &[("range", range)], None)
            .await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(bytes(resp).await, raw[start..=end], "{range}");
    }
    let resp = h.send(Who::Admin, Method::GET, &uri, &[], None).await;
    assert!(bytes(resp).await == raw, "the whole core");
}

#[tokio::test]
async fn log_subresource_serves_the_kept_tail() {
    let h = Harness::new();
    stored_core(&h, "c1", "u1", "app", 1000).await;
    let uri = format!("{BASE}/namespaces/ns1/coredumps/c1/log");
    let resp = h.send(Who::Admin, Method::GET, &uri, &[], None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "no log kept yet");
    h.blobs
        .put_bytes(&blob("ns1", "u1", "app", "c1.log"), b"fatal: bad config\n");
    let resp = h.send(Who::Admin, Method::GET, &uri, &[], None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert_eq!(bytes(resp).await, b"fatal: bad config\n");
}

#[tokio::test]
async fn core_streams_the_decompressed_core() {
    let h = Harness::new();
    let raw = stored_core(&h, "c1", "u1", "app", 3 * 1024 * 1024 + 17).await;
    let resp = h
        .send(
            Who::Admin,
            Method::GET,
            &format!("{BASE}/namespaces/ns1/coredumps/c1/core"),
            &[],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let hd = resp.headers().clone();
    assert_eq!(hd[header::CONTENT_LENGTH], raw.len().to_string().as_str());
    assert_eq!(hd[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(
        hd[header::CONTENT_DISPOSITION],
        "attachment; filename=\"ns1_c1.core\""
    );
    assert_eq!(hd[header::ACCEPT_RANGES], "bytes");
    assert!(bytes(resp).await == raw, "core bytes differ");
}

#[tokio::test]
async fn core_ranges() {
    let h = Harness::new();
    let raw = stored_core(&h, "c1", "u1", "app", 1_000_000).await;
    let uri = format!("{BASE}/namespaces/ns1/coredumps/c1/core");
    for (range, start, end) in [
        ("bytes=0-99", 0usize, 99usize),
        ("bytes=999000-", 999_000, 999_999),
        ("bytes=-10", 999_990, 999_999),
        ("bytes=500000-500000", 500_000, 500_000),
    ] {
        let resp = h
            .send(Who::Admin, Method::GET, &uri, &[("range", range)], None)
            .await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            resp.headers()[header::CONTENT_RANGE],
            format!("bytes {start}-{end}/1000000").as_str()
        );
        assert_eq!(
            resp.headers()[header::CONTENT_LENGTH],
            (end - start + 1).to_string().as_str()
        );
        assert_eq!(bytes(resp).await, raw[start..=end], "{range}");
    }
    let resp = h
        .send(
            Who::Admin,
            Method::GET,
            &uri,
            &[("range", "bytes=1000000-")],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.headers()[header::CONTENT_RANGE], "bytes */1000000");
    let (_, body) = json(resp).await;
    assert_status(&body, "RequestedRangeNotSatisfiable", 416);
}

#[tokio::test]
async fn core_errors() {
    let h = Harness::new();
    let (code, body) = h
        .call(
            Method::GET,
            &format!("{BASE}/namespaces/ns1/coredumps/nope/core"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_status(&body, "NotFound", 404);
    let mut failed = coredump("f1", "ns1", "u1", "app", 0);
    failed["status"] = serde_json::json!({"state": "QuotaExceeded", "message": "over quota"});
    h.create_coredump("ns1", failed).await;
    let (code, body) = h
        .call(
            Method::GET,
            &format!("{BASE}/namespaces/ns1/coredumps/f1/core"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(
        body["message"],
        "coredumps.coredump.fujitsu.com \"f1\" has no stored core (QuotaExceeded)"
    );
    h.create_coredump("ns1", coredump("gone", "ns1", "u1", "app", 10))
        .await;
    let (code, body) = h
        .call(
            Method::GET,
            &format!("{BASE}/namespaces/ns1/coredumps/gone/core"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_status(&body, "NotFound", 404);
}

fn untar(gz: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push((name, data));
    }
    out
}

#[tokio::test]
async fn dump_streams_the_pods_blobs_as_tar_gz() {
    let h = Harness::new();
    h.create_endpoint("ns1", "web-0", "u1").await;
    let files = [
        ("app", "a.core.zst", 300_000usize),
        ("app", "b.core.zst", 10),
        ("sidecar", "c.core.zst", 70_000),
    ];
    let mut expected = Vec::new();
    for (c, f, n) in files {
        let data = core_bytes(n, n as u8);
        h.blobs.put_bytes(&blob("ns1", "u1", c, f), &data);
        expected.push((format!("ns1/u1/{c}/{f}"), data));
    }
    h.blobs
        .put_bytes(&blob("ns1", "other-pod", "app", "x.core.zst"), b"not mine");
    let uri = format!("{BASE}/namespaces/ns1/coredumpendpoints/web-0/dump");
    let resp = h.send(Who::Admin, Method::GET, &uri, &[], None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/gzip");
    assert_eq!(
        resp.headers()[header::CONTENT_DISPOSITION],
        "attachment; filename=\"ns1_web-0.tar.gz\""
    );
    assert!(
        untar(&bytes(resp).await) == expected,
        "archive entries differ"
    );

    let resp = h
        .send(
            Who::Admin,
            Method::GET,
            &format!("{uri}?container=sidecar"),
            &[],
            None,
        )
        .await;
    let entries = untar(&bytes(resp).await);
    assert_eq!(entries.len(), 1);
    assert!(entries[0] == expected[2]);

    let resp = h
        .send(
            Who::Admin,
            Method::GET,
            &format!("{uri}?container=none"),
            &[],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(untar(&bytes(resp).await).is_empty());
}

#[tokio::test]
async fn dump_errors() {
    let h = Harness::new();
    let (code, body) = h
        .call(
            Method::GET,
            &format!("{BASE}/namespaces/ns1/coredumpendpoints/nope/dump"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_status(&body, "NotFound", 404);
    assert_eq!(
        body["message"],
        "coredumpendpoints.coredump.fujitsu.com \"nope\" not found"
    );
    h.create_endpoint("ns1", "web-0", "u1").await;
    for bad in ["..%2Fx", "a%2Fb", "", "..", "."] {
        let (code, body) = h
            .call(
                Method::GET,
                &format!("{BASE}/namespaces/ns1/coredumpendpoints/web-0/dump?container={bad}"),
                None,
            )
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
        assert_status(&body, "BadRequest", 400);
    }
}

#[tokio::test]
async fn deleting_a_coredump_deletes_its_blob() {
    let h = Harness::new();
    stored_core(&h, "c1", "u1", "app", 100).await;
    stored_core(&h, "c2", "u1", "app", 100).await;
    let p1 = blob("ns1", "u1", "app", "c1.core.zst");
    assert!(h.blobs.exists(&p1));
    let (code, _) = h
        .call(
            Method::DELETE,
            &format!("{BASE}/namespaces/ns1/coredumps/c1"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(!h.blobs.exists(&p1));
    assert!(h.blobs.exists(&blob("ns1", "u1", "app", "c2.core.zst")));
}

#[tokio::test]
async fn deleting_an_endpoint_deletes_the_pods_blobs_and_coredumps() {
    let h = Harness::new();
    h.create_endpoint("ns1", "web-0", "u1").await;
    stored_core(&h, "c1", "u1", "app", 100).await;
    stored_core(&h, "c2", "u2", "app", 100).await;
    let (code, _) = h
        .call(
            Method::DELETE,
            &format!("{BASE}/namespaces/ns1/coredumpendpoints/web-0"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(!h.blobs.exists(&blob("ns1", "u1", "app", "c1.core.zst")));
    assert!(h.blobs.exists(&blob("ns1", "u2", "app", "c2.core.zst")));
    let left = h.registry.list_coredumps(Some("ns1")).await.unwrap();
    let names: Vec<&str> = left.iter().map(|c| c.metadata.name.as_str()).collect();
    assert_eq!(names, ["c2"]);
}

#[tokio::test]
async fn registry_is_usable_in_process() {
    let h = Harness::new();
    let mut c: coredump_api::Coredump =
        serde_json::from_value(coredump("c9", "ns1", "u1", "app", 5)).unwrap();
    c.metadata.namespace = "ns1".into();
    let created = h.registry.create_coredump(c).await.unwrap();
    assert!(!created.metadata.uid.is_empty());
    let got = h.registry.get_coredump("ns1", "c9").await.unwrap();
    assert_eq!(got, created);
    let err = h.registry.create_coredump(got.clone()).await.unwrap_err();
    assert!(matches!(
        err,
        coredump_apiserver::ApiError::AlreadyExists { .. }
    ));
    h.registry.delete_coredump("ns1", "c9").await.unwrap();
    assert!(matches!(
        h.registry.get_coredump("ns1", "c9").await,
        Err(coredump_apiserver::ApiError::NotFound { .. })
    ));
}
