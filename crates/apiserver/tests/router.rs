//! In-process tests of the whole router (`oneshot`, no socket) over a real embedded store:
//! status codes and bodies of every behaviour kubectl and kube-apiserver rely on.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::{Method, StatusCode, header};
use common::{BASE, Harness, TABLE_ACCEPT, Who, assert_status, bytes, coredump, endpoint, json};
use serde_json::{Value, json};

const EPS: &str = "/apis/coredump.fujitsu.com/v1alpha1/namespaces/ns1/coredumpendpoints";

#[tokio::test]
async fn health_needs_no_credentials() {
    let h = Harness::new();
    for p in ["/healthz", "/livez", "/readyz"] {
        let resp = h.send(Who::Nobody, Method::GET, p, &[], None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(bytes(resp).await, b"ok");
    }
}

#[tokio::test]
async fn api_paths_need_a_trusted_certificate() {
    let h = Harness::new();
    for who in [Who::Nobody, Who::Foreign] {
        for p in ["/apis", EPS, "/openapi/v2", "/nonexistent"] {
            let (code, body) = json(h.send(who, Method::GET, p, &[], None).await).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{p}");
            assert_status(&body, "Unauthorized", 401);
        }
    }
}

#[tokio::test]
async fn unprivileged_users_may_discover_but_not_read() {
    let h = Harness::new();
    let (code, _) = json(
        h.send(
            Who::User,
            Method::GET,
            "/apis/coredump.fujitsu.com/v1alpha1",
            &[],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (code, body) = json(h.send(Who::User, Method::GET, EPS, &[], None).await).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_status(&body, "Forbidden", 403);
    assert_eq!(
        body["message"],
        "coredumpendpoints.coredump.fujitsu.com is forbidden: User \"bob\" cannot list resource \
         \"coredumpendpoints\" in API group \"coredump.fujitsu.com\" in the namespace \"ns1\""
    );
}

#[tokio::test]
async fn discovery_documents() {
    let h = Harness::new();
    let kubectl_accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let (code, body) = json(
        h.send(
            Who::Admin,
            Method::GET,
            "/apis",
            &[("accept", kubectl_accept)],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["kind"], "APIGroupList");
    assert_eq!(
        body["groups"][0]["preferredVersion"]["groupVersion"],
        "coredump.fujitsu.com/v1alpha1"
    );

    let v2_only = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    let (code, body) = json(
        h.send(
            Who::Admin,
            Method::GET,
            "/apis",
            &[("accept", v2_only)],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_ACCEPTABLE);
    assert_status(&body, "NotAcceptable", 406);

    let (_, group) = h
        .call(Method::GET, "/apis/coredump.fujitsu.com", None)
        .await;
    assert_eq!(group["kind"], "APIGroup");
    let (_, res) = h.call(Method::GET, BASE, None).await;
    let names: Vec<&str> = res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "coredumpendpoints",
            "coredumpendpoints/dump",
            "coredumps",
            "coredumps/core",
            "coredumps/log",
            "buildid",
            "buildid/executable",
            "buildid/debuginfo"
        ]
    );
    assert_eq!(res["resources"][3]["verbs"], json!(["get"]));
}

#[tokio::test]
async fn openapi_documents() {
    let h = Harness::new();
    let (code, root) = h.call(Method::GET, "/openapi/v3", None).await;
    assert_eq!(code, StatusCode::OK);
    let url = root["paths"]["apis/coredump.fujitsu.com/v1alpha1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with("/openapi/v3/apis/coredump.fujitsu.com/v1alpha1?hash="),
        "{url}"
    );
    let resp = h.send(Who::Admin, Method::GET, &url, &[], None).await;
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "public, immutable");
    let etag = resp.headers()[header::ETAG].to_str().unwrap().to_owned();
    let (_, doc) = json(resp).await;
    assert_eq!(doc["openapi"], "3.0.0");
    assert_eq!(
        doc["components"]["schemas"]["com.fujitsu.coredump.v1alpha1.Coredump"]["x-kubernetes-group-version-kind"]
            [0]["kind"],
        "Coredump"
    );
    let again = h
        .send(
            Who::Admin,
            Method::GET,
            &url,
            &[("if-none-match", &etag)],
            None,
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let (code, v2) = h.call(Method::GET, "/openapi/v2", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v2["swagger"], "2.0");
    assert!(v2["definitions"]["com.fujitsu.coredump.v1alpha1.CoredumpEndpoint"].is_object());
}

#[tokio::test]
async fn create_sets_defaults_and_get_returns_it() {
    let h = Harness::new();
    let created = h.create_endpoint("ns1", "web-0", "uid-1").await;
    assert_eq!(created["apiVersion"], "coredump.fujitsu.com/v1alpha1");
    assert_eq!(created["kind"], "CoredumpEndpoint");
    assert_eq!(created["metadata"]["namespace"], "ns1");
    let uid = created["metadata"]["uid"].as_str().unwrap();
    let parsed = uuid::Uuid::parse_str(uid).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert!(
        coredump_api::time::parse_rfc3339(
            created["metadata"]["creationTimestamp"].as_str().unwrap()
        )
        .is_some()
    );
    let rv: u64 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > 0);
    let (code, got) = h.call(Method::GET, &format!("{EPS}/web-0"), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got, created);
}

#[tokio::test]
async fn create_errors() {
    let h = Harness::new();
    h.create_endpoint("ns1", "web-0", "uid-1").await;
    let (code, body) = h
        .call(Method::POST, EPS, Some(endpoint("web-0", "uid-1")))
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_status(&body, "AlreadyExists", 409);
    assert_eq!(
        body["message"],
        "coredumpendpoints.coredump.fujitsu.com \"web-0\" already exists"
    );
    assert_eq!(
        body["details"],
        json!({"name": "web-0", "group": "coredump.fujitsu.com", "kind": "coredumpendpoints"})
    );

    let (code, body) = h
        .call(Method::POST, EPS, Some(endpoint("Bad_Name", "")))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_status(&body, "Invalid", 422);
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["metadata.name", "spec.podUID"]);

    let mut other_ns = endpoint("x", "u");
    other_ns["metadata"]["namespace"] = json!("ns2");
    let (code, body) = h.call(Method::POST, EPS, Some(other_ns)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_status(&body, "BadRequest", 400);

    let mut wrong_kind = endpoint("x", "u");
    wrong_kind["kind"] = json!("Pod");
    let (code, _) = h.call(Method::POST, EPS, Some(wrong_kind)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    let resp = h
        .send(
            Who::Admin,
            Method::POST,
            &format!("{EPS}?fieldValidation=Strict"),
            &[],
            Some(json!({
                "metadata": {"name": "y"}, "spec": {"podUID": "u", "bogus": 1}
            })),
        )
        .await;
    let (code, body) = json(resp).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "strict decoding error: unknown field \"spec.bogus\""
    );

    let resp = h
        .send(
            Who::Admin,
            Method::POST,
            EPS,
            &[("content-type", "application/yaml")],
            Some(endpoint("z", "u")),
        )
        .await;
    let (code, body) = json(resp).await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_status(&body, "UnsupportedMediaType", 415);
}

#[tokio::test]
async fn warn_validation_reports_unknown_fields_in_a_header() {
    let h = Harness::new();
    let resp = h
        .send(
            Who::Admin,
            Method::POST,
            EPS,
            &[],
            Some(json!({
                "metadata": {"name": "y"}, "spec": {"podUID": "u", "bogus": 1}
            })),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        resp.headers()["warning"],
        "299 - \"unknown field \\\"spec.bogus\\\"\""
    );
}

#[tokio::test]
async fn generate_name() {
    let h = Harness::new();
    let (code, body) = h
        .call(
            Method::POST,
            EPS,
            Some(json!({"metadata": {"generateName": "crash-"}, "spec": {"podUID": "u"}})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let name = body["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("crash-") && name.len() == "crash-".len() + 5,
        "{name}"
    );
}

#[tokio::test]
async fn dry_run_create_and_delete_persist_nothing() {
    let h = Harness::new();
    let (code, body) = h
        .call(
            Method::POST,
            &format!("{EPS}?dryRun=All"),
            Some(endpoint("dry", "u")),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(body["metadata"]["name"], "dry");
    let (code, _) = h.call(Method::GET, &format!("{EPS}/dry"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    h.create_endpoint("ns1", "keep", "u").await;
    let (code, _) = h
        .call(Method::DELETE, &format!("{EPS}/keep?dryRun=All"), None)
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = h
        .call(
            Method::DELETE,
            &format!("{EPS}/keep"),
            Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = h.call(Method::GET, &format!("{EPS}/keep"), None).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn lists_namespaced_and_across_namespaces() {
    let h = Harness::new();
    h.create_endpoint("ns1", "a", "u1").await;
    h.create_endpoint("ns1", "b", "u2").await;
    let (code, _) = h
        .call(
            Method::POST,
            &format!("{BASE}/namespaces/ns2/coredumpendpoints"),
            Some(endpoint("c", "u3")),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);

    let (code, list) = h.call(Method::GET, EPS, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["kind"], "CoredumpEndpointList");
    assert_eq!(list["apiVersion"], "coredump.fujitsu.com/v1alpha1");
    assert!(
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(list["items"][0]["kind"], "CoredumpEndpoint");

    let (_, all) = h
        .call(Method::GET, &format!("{BASE}/coredumpendpoints"), None)
        .await;
    let names: Vec<(&str, &str)> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["metadata"]["namespace"].as_str().unwrap(),
                i["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("ns1", "a"), ("ns1", "b"), ("ns2", "c")]);
}

#[tokio::test]
async fn pagination_with_limit_and_continue() {
    let h = Harness::new();
    for n in ["a", "b", "c", "d", "e"] {
        h.create_endpoint("ns1", n, "u").await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..5 {
        let uri = match &token {
            Some(t) => format!("{EPS}?limit=2&continue={t}"),
            None => format!("{EPS}?limit=2"),
        };
        let (code, page) = h.call(Method::GET, &uri, None).await;
        assert_eq!(code, StatusCode::OK);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned()),
        );
        token = page["metadata"]["continue"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    let (code, body) = h
        .call(
            Method::GET,
            &format!("{EPS}?limit=2&continue=garbage"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn selectors_filter_lists() {
    let h = Harness::new();
    for (n, app) in [("a", "web"), ("b", "db"), ("c", "web")] {
        let mut e = endpoint(n, "u");
        e["metadata"]["labels"] = json!({"app": app});
        h.call(Method::POST, EPS, Some(e)).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, l) = h
        .call(Method::GET, &format!("{EPS}?labelSelector=app%3Dweb"), None)
        .await;
    assert_eq!(names(&l), ["a", "c"]);
    let (_, l) = h
        .call(
            Method::GET,
            &format!("{EPS}?labelSelector=app%20notin%20(web)"),
            None,
        )
        .await;
    assert_eq!(names(&l), ["b"]);
    let (_, l) = h
        .call(
            Method::GET,
            &format!("{EPS}?fieldSelector=metadata.name%3Db"),
            None,
        )
        .await;
    assert_eq!(names(&l), ["b"]);
    let (_, l) = h
        .call(
            Method::GET,
            &format!("{EPS}?fieldSelector=metadata.name!%3Db,metadata.namespace%3Dns1"),
            None,
        )
        .await;
    assert_eq!(names(&l), ["a", "c"]);
    let (code, body) = h
        .call(
            Method::GET,
            &format!("{EPS}?fieldSelector=spec.nodeName%3Dx"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_status(&body, "BadRequest", 400);
    assert_eq!(body["message"], "field label not supported: spec.nodeName");
    let (code, _) = h
        .call(
            Method::GET,
            &format!("{EPS}?labelSelector=app%20in%20web"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tables_for_kubectl() {
    let h = Harness::new();
    h.create_coredump("ns1", coredump("c1", "ns1", "u1", "app", 3 << 20))
        .await;
    let uri = format!("{BASE}/coredumps?limit=500");
    let (code, t) = json(
        h.send(
            Who::Admin,
            Method::GET,
            &uri,
            &[("accept", TABLE_ACCEPT)],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "Name",
            "Pod",
            "Container",
            "Signal",
            "Executable",
            "Size",
            "State",
            "Signature",
            "Age"
        ]
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(
        cells.as_array().unwrap()[..7],
        json!([
            "c1", "web-0", "app", "SIGSEGV", "/bin/app", "3.0MiB", "Stored"
        ])
        .as_array()
        .unwrap()[..]
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "c1");

    let (_, t) = json(
        h.send(
            Who::Admin,
            Method::GET,
            &format!("{uri}&includeObject=Object"),
            &[("accept", TABLE_ACCEPT)],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(t["rows"][0]["object"]["kind"], "Coredump");
    assert_eq!(t["rows"][0]["object"]["spec"]["pid"], 42);
    let (_, t) = json(
        h.send(
            Who::Admin,
            Method::GET,
            &format!("{uri}&includeObject=None"),
            &[("accept", TABLE_ACCEPT)],
            None,
        )
        .await,
    )
    .await;
    assert!(t["rows"][0].get("object").is_none());

    let (code, one) = json(
        h.send(
            Who::Admin,
            Method::GET,
            &format!("{BASE}/namespaces/ns1/coredumps/c1"),
            &[("accept", TABLE_ACCEPT)],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(one["kind"], "Table");
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);

    let partial =
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    let (_, p) = json(
        h.send(Who::Admin, Method::GET, &uri, &[("accept", partial)], None)
            .await,
    )
    .await;
    assert_eq!(p["kind"], "PartialObjectMetadataList");
    assert_eq!(p["items"][0]["metadata"]["name"], "c1");
    assert!(p["items"][0].get("spec").is_none());
}

#[tokio::test]
async fn update_conflicts_on_stale_resource_version() {
    let h = Harness::new();
    let created = h.create_endpoint("ns1", "web-0", "uid-1").await;
    let mut changed = created.clone();
    changed["metadata"]["labels"] = json!({"x": "1"});
    let (code, updated) = h
        .call(Method::PUT, &format!("{EPS}/web-0"), Some(changed.clone()))
        .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_eq!(updated["metadata"]["labels"]["x"], "1");
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    assert_ne!(
        updated["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    let (code, body) = h
        .call(Method::PUT, &format!("{EPS}/web-0"), Some(changed.clone()))
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_status(&body, "Conflict", 409);
    assert_eq!(
        body["message"],
        "Operation cannot be fulfilled on coredumpendpoints.coredump.fujitsu.com \"web-0\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let mut no_rv = updated.clone();
    no_rv["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (code, body) = h
        .call(Method::PUT, &format!("{EPS}/web-0"), Some(no_rv))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "metadata.resourceVersion"
    );

    let mut immut = updated.clone();
    immut["spec"]["podUID"] = json!("other");
    let (code, body) = h
        .call(Method::PUT, &format!("{EPS}/web-0"), Some(immut))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["causes"][0]["field"], "spec.podUID");

    let (code, body) = h
        .call(Method::PUT, &format!("{EPS}/other-name"), Some(updated))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn patches() {
    let h = Harness::new();
    h.create_endpoint("ns1", "web-0", "uid-1").await;
    let uri = format!("{EPS}/web-0");
    let merge = [("content-type", "application/merge-patch+json")];
    let (code, body) = json(
        h.send(
            Who::Admin,
            Method::PATCH,
            &uri,
            &merge,
            Some(json!({"metadata": {"labels": {"a": "1"}}})),
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["metadata"]["labels"], json!({"a": "1"}));
    let jp = [("content-type", "application/json-patch+json")];
    let (code, body) = json(
        h.send(
            Who::Admin,
            Method::PATCH,
            &uri,
            &jp,
            Some(json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"}])),
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["metadata"]["labels"], json!({"a": "1", "b": "2"}));

    let (code, body) = json(
        h.send(
            Who::Admin,
            Method::PATCH,
            &uri,
            &merge,
            Some(json!({"metadata": {"resourceVersion": "1"}})),
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_status(&body, "Conflict", 409);

    let (code, body) = json(
        h.send(
            Who::Admin,
            Method::PATCH,
            &uri,
            &merge,
            Some(json!({"spec": {"podUID": "x"}})),
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_status(&body, "Invalid", 422);

    // Strategic merge is for built-in types only, as for custom resources.
    let (code, body) = json(
        h.send(
            Who::Admin,
            Method::PATCH,
            &uri,
            &[("content-type", "application/strategic-merge-patch+json")],
            Some(json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_status(&body, "UnsupportedMediaType", 415);
    // Server-side apply needs a fieldManager (kubectl and client-go always send one).
    let (code, body) = json(
        h.send(
            Who::Admin,
            Method::PATCH,
            &uri,
            &[("content-type", "application/apply-patch+yaml")],
            Some(json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("fieldManager: Required value")),
        "{body}"
    );
    let (code, _) = json(
        h.send(
            Who::Admin,
            Method::PATCH,
            &format!("{EPS}/missing"),
            &merge,
            Some(json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_and_not_found() {
    let h = Harness::new();
    let created = h.create_endpoint("ns1", "web-0", "uid-1").await;
    let (code, body) = h
        .call(
            Method::DELETE,
            &format!("{EPS}/web-0"),
            Some(json!({"preconditions": {"uid": "wrong"}})),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_status(&body, "Conflict", 409);
    let (code, body) = h.call(Method::DELETE, &format!("{EPS}/web-0"), Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["metadata"]["uid"], created["metadata"]["uid"]);
    let (code, body) = h.call(Method::GET, &format!("{EPS}/web-0"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_status(&body, "NotFound", 404);
    assert_eq!(
        body["message"],
        "coredumpendpoints.coredump.fujitsu.com \"web-0\" not found"
    );
    let (code, _) = h.call(Method::DELETE, &format!("{EPS}/web-0"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_collection_with_selector() {
    let h = Harness::new();
    for (n, app) in [("a", "web"), ("b", "db"), ("c", "web")] {
        let mut e = endpoint(n, n);
        e["metadata"]["labels"] = json!({"app": app});
        h.call(Method::POST, EPS, Some(e)).await;
    }
    let (code, body) = h
        .call(
            Method::DELETE,
            &format!("{EPS}?labelSelector=app%3Dweb"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "CoredumpEndpointList");
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    let (_, list) = h.call(Method::GET, EPS, None).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b"]);
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let h = Harness::new();
    let (code, body) = h.call(Method::GET, "/apis/other.group/v1", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_status(&body, "NotFound", 404);
    let (code, body) = h
        .call(Method::GET, &format!("{BASE}/namespaces/ns1/pods"), None)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_status(&body, "NotFound", 404);
    let (code, body) = h
        .call(Method::POST, &format!("{EPS}/web-0"), Some(json!({})))
        .await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert_status(&body, "MethodNotAllowed", 405);
}
