//! OpenAPI v2 and v3 documents for `coredump.fujitsu.com/v1alpha1`. kube-apiserver merges the v2
//! document and proxies the v3 one per group-version; `kubectl explain` finds our kinds through
//! `x-kubernetes-group-version-kind`, and `kubectl create` skips client-side validation when the
//! POST operations declare the `fieldValidation` parameter (the server then validates).
//!
//! Schemas are written once with a `$ref` prefix so both versions share them.

use serde_json::{Map, Value, json};

use crate::{GROUP, VERSION};

mod schemas;

use schemas::schemas;

pub(crate) const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
pub(crate) const OURS: &str = "com.fujitsu.coredump.v1alpha1";

/// Path of the v3 group-version document (`/openapi/v3/<this>`).
pub const V3_GROUP_VERSION_PATH: &str = "apis/coredump.fujitsu.com/v1alpha1";

/// Which OpenAPI flavour a path table is built for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    V2,
    V3,
}

fn param(flavor: Flavor, name: &str, location: &str, description: &str, required: bool) -> Value {
    match flavor {
        Flavor::V2 => {
            json!({"name": name, "in": location, "description": description, "required": required, "type": "string", "uniqueItems": true})
        }
        Flavor::V3 => {
            json!({"name": name, "in": location, "description": description, "required": required, "schema": {"type": "string", "uniqueItems": true}})
        }
    }
}

fn response(flavor: Flavor, reference: &str, description: &str) -> Value {
    match flavor {
        Flavor::V2 => json!({"description": description, "schema": {"$ref": reference}}),
        Flavor::V3 => json!({"description": description, "content": {
            "application/json": {"schema": {"$ref": reference}},
            "application/yaml": {"schema": {"$ref": reference}},
        }}),
    }
}

fn binary_response(flavor: Flavor, content_type: &str, description: &str) -> Value {
    match flavor {
        Flavor::V2 => {
            json!({"description": description, "schema": {"type": "string", "format": "binary"}})
        }
        Flavor::V3 => {
            json!({"description": description, "content": {content_type: {"schema": {"type": "string", "format": "binary"}}}})
        }
    }
}

fn body(flavor: Flavor, reference: &str, content_types: &[&str]) -> (Option<Value>, Option<Value>) {
    match flavor {
        Flavor::V2 => (
            Some(
                json!({"name": "body", "in": "body", "required": true, "schema": {"$ref": reference}}),
            ),
            None,
        ),
        Flavor::V3 => {
            let content: Map<String, Value> = content_types
                .iter()
                .map(|ct| ((*ct).to_owned(), json!({"schema": {"$ref": reference}})))
                .collect();
            (None, Some(json!({"required": true, "content": content})))
        }
    }
}

struct Op<'a> {
    id: String,
    action: &'a str,
    kind: &'a str,
    description: String,
    params: Vec<Value>,
    body_ref: Option<(String, &'a [&'a str])>,
    ok: Value,
}

fn operation(flavor: Flavor, op: Op<'_>) -> Value {
    let mut params = op.params;
    let mut o = json!({
        "description": op.description,
        "operationId": op.id,
        "tags": ["coredumpFujitsuCom_v1alpha1"],
        "responses": {"200": op.ok, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": {"group": GROUP, "version": VERSION, "kind": op.kind},
    });
    if let Some((reference, types)) = op.body_ref {
        let (p, rb) = body(flavor, &reference, types);
        if let Some(p) = p {
            params.push(p);
        }
        if let Some(rb) = rb {
            o["requestBody"] = rb;
        }
    }
    if flavor == Flavor::V2 {
        o["consumes"] = json!(["*/*"]);
        o["produces"] = json!(["application/json", "application/yaml"]);
        o["schemes"] = json!(["https"]);
    }
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    o
}

fn paths(flavor: Flavor, prefix: &str) -> Map<String, Value> {
    let reference = |name: &str| format!("{prefix}{name}");
    let p = |name: &str, loc: &str, desc: &str, req: bool| param(flavor, name, loc, desc, req);
    let list_params = || {
        vec![
            p("labelSelector", "query", "Select objects by label.", false),
            p(
                "fieldSelector",
                "query",
                "Select objects by field (metadata.name, metadata.namespace, ...).",
                false,
            ),
            p("limit", "query", "Page size.", false),
            p("continue", "query", "Token of the next page.", false),
            p(
                "resourceVersion",
                "query",
                "Revision to list or watch from.",
                false,
            ),
            p("timeoutSeconds", "query", "Watch duration.", false),
            p("watch", "query", "Watch for changes.", false),
            p(
                "allowWatchBookmarks",
                "query",
                "Send BOOKMARK events.",
                false,
            ),
        ]
    };
    let write_params = || {
        vec![
            p(
                "dryRun",
                "query",
                "All: validate without persisting.",
                false,
            ),
            p(
                "fieldManager",
                "query",
                "Name of the actor making the change.",
                false,
            ),
            p(
                "fieldValidation",
                "query",
                "Ignore, Warn or Strict handling of unknown fields.",
                false,
            ),
        ]
    };
    let mut out = Map::new();
    let base = format!("/apis/{GROUP}/{VERSION}");
    let ns = p("namespace", "path", "Object namespace.", true);
    let name = p("name", "path", "Object name.", true);
    for (kind, plural, sub, sub_type, sub_desc) in [
        (
            "CoredumpEndpoint",
            "coredumpendpoints",
            "dump",
            "application/gzip",
            "The pod's cores as tar.gz, entries <namespace>/<podUID>/<container>/<file>. Query: container.",
        ),
        (
            "Coredump",
            "coredumps",
            "core",
            "application/octet-stream",
            "The decompressed core file; supports Range.",
        ),
    ] {
        let item = reference(&format!("{OURS}.{kind}"));
        let list = reference(&format!("{OURS}.{kind}List"));
        let status = reference(&format!("{META}.Status"));
        let delete_opts = reference(&format!("{META}.DeleteOptions"));
        let create_types: &[&str] = &["application/json", "application/yaml"];
        let patch_types: &[&str] = &[
            "application/merge-patch+json",
            "application/json-patch+json",
        ];
        let delete_types: &[&str] = &["application/json"];
        out.insert(
            format!("{base}/{plural}"),
            json!({
                "get": operation(flavor, Op {
                    id: format!("list{kind}ForAllNamespaces"), action: "list", kind,
                    description: format!("list or watch {kind} objects in all namespaces"),
                    params: list_params(), body_ref: None, ok: response(flavor, &list, "OK"),
                }),
            }),
        );
        out.insert(format!("{base}/namespaces/{{namespace}}/{plural}"), json!({
            "parameters": [ns.clone()],
            "get": operation(flavor, Op {
                id: format!("listNamespaced{kind}"), action: "list", kind,
                description: format!("list or watch {kind} objects"),
                params: list_params(), body_ref: None, ok: response(flavor, &list, "OK"),
            }),
            "post": operation(flavor, Op {
                id: format!("createNamespaced{kind}"), action: "post", kind,
                description: format!("create a {kind}"),
                params: write_params(), body_ref: Some((item.clone(), create_types)),
                ok: response(flavor, &item, "OK"),
            }),
            "delete": operation(flavor, Op {
                id: format!("deleteCollectionNamespaced{kind}"), action: "deletecollection", kind,
                description: format!("delete a collection of {kind} objects"),
                params: list_params().into_iter().chain([p("dryRun", "query", "All: validate only.", false)]).collect(),
                body_ref: Some((delete_opts.clone(), delete_types)),
                ok: response(flavor, &status, "OK"),
            }),
        }));
        out.insert(
            format!("{base}/namespaces/{{namespace}}/{plural}/{{name}}"),
            json!({
                "parameters": [ns.clone(), name.clone()],
                "get": operation(flavor, Op {
                    id: format!("readNamespaced{kind}"), action: "get", kind,
                    description: format!("read the specified {kind}"),
                    params: vec![], body_ref: None, ok: response(flavor, &item, "OK"),
                }),
                "put": operation(flavor, Op {
                    id: format!("replaceNamespaced{kind}"), action: "put", kind,
                    description: format!("replace the specified {kind}"),
                    params: write_params(), body_ref: Some((item.clone(), create_types)),
                    ok: response(flavor, &item, "OK"),
                }),
                "patch": operation(flavor, Op {
                    id: format!("patchNamespaced{kind}"), action: "patch", kind,
                    description: format!("partially update the specified {kind}"),
                    params: write_params(), body_ref: Some((item.clone(), patch_types)),
                    ok: response(flavor, &item, "OK"),
                }),
                "delete": operation(flavor, Op {
                    id: format!("deleteNamespaced{kind}"), action: "delete", kind,
                    description: format!("delete the specified {kind}"),
                    params: vec![p("dryRun", "query", "All: validate only.", false)],
                    body_ref: Some((delete_opts.clone(), delete_types)),
                    ok: response(flavor, &item, "OK"),
                }),
            }),
        );
        let sub_params = if sub == "dump" {
            vec![p(
                "container",
                "query",
                "Only this container's cores.",
                false,
            )]
        } else {
            vec![]
        };
        out.insert(
            format!("{base}/namespaces/{{namespace}}/{plural}/{{name}}/{sub}"),
            json!({
                "parameters": [ns.clone(), name.clone()],
                "get": operation(flavor, Op {
                    id: format!("readNamespaced{kind}{}", capitalize(sub)), action: "get", kind,
                    description: sub_desc.to_owned(),
                    params: sub_params, body_ref: None, ok: binary_response(flavor, sub_type, "OK"),
                }),
            }),
        );
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The OpenAPI v2 (Swagger 2.0) document served at `/openapi/v2`.
pub fn v2() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "coredump-detector", "version": VERSION},
        "paths": paths(Flavor::V2, "#/definitions/"),
        "definitions": schemas("#/definitions/"),
    })
}

/// The OpenAPI v3 document of our group-version, served at
/// `/openapi/v3/apis/coredump.fujitsu.com/v1alpha1`.
pub fn v3_group_version() -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "coredump-detector", "version": VERSION},
        "paths": paths(Flavor::V3, "#/components/schemas/"),
        "components": {"schemas": schemas("#/components/schemas/")},
    })
}

/// The `/openapi/v3` discovery document: one entry pointing at the group-version document,
/// with `hash` so clients can cache it.
pub fn v3_root(hash: &str) -> Value {
    json!({"paths": {V3_GROUP_VERSION_PATH: {
        "serverRelativeURL": format!("/openapi/v3/{V3_GROUP_VERSION_PATH}?hash={hash}")
    }}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "$ref" {
                        out.push(v.as_str().unwrap().to_owned());
                    } else {
                        collect_refs(v, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn v3_refs_resolve() {
        let doc = v3_group_version();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 20);
        for r in refs {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(doc["components"]["schemas"].get(name).is_some(), "{r}");
        }
    }

    #[test]
    fn v2_refs_resolve() {
        let doc = v2();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        for r in refs {
            let name = r.strip_prefix("#/definitions/").unwrap();
            assert!(doc["definitions"].get(name).is_some(), "{r}");
        }
    }

    #[test]
    fn kinds_are_findable_by_gvk() {
        let doc = v3_group_version();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for kind in [
            "Coredump",
            "CoredumpEndpoint",
            "CoredumpList",
            "CoredumpEndpointList",
        ] {
            let hits: Vec<&String> = schemas
                .iter()
                .filter(|(_, s)| {
                    s["x-kubernetes-group-version-kind"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|g| g["kind"] == kind && g["group"] == GROUP))
                })
                .map(|(n, _)| n)
                .collect();
            assert_eq!(hits, vec![&format!("{OURS}.{kind}")]);
        }
        let get = &doc["paths"]["/apis/coredump.fujitsu.com/v1alpha1/namespaces/{namespace}/coredumps/{name}"]
            ["get"];
        assert_eq!(get["x-kubernetes-group-version-kind"]["kind"], "Coredump");
        assert_eq!(get["x-kubernetes-action"], "get");
    }

    #[test]
    fn create_declares_field_validation() {
        let doc = v3_group_version();
        let post = &doc["paths"]["/apis/coredump.fujitsu.com/v1alpha1/namespaces/{namespace}/coredumpendpoints"]
            ["post"];
        let names: Vec<&str> = post["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"fieldValidation"), "{names:?}");
        assert_eq!(
            post["x-kubernetes-group-version-kind"]["kind"],
            "CoredumpEndpoint"
        );
    }

    /// Every schema and property is described for people (`kubectl explain`), in words: the
    /// doc comments they come from must not leak rustdoc links or Rust paths.
    #[test]
    fn every_field_is_described_in_user_terms() {
        fn check(at: &str, schema: &Value) {
            let description = schema["description"].as_str().unwrap_or_default();
            assert!(!description.is_empty(), "{at} has no description");
            for leak in ["[`", "crate::", "Self::", "\n//"] {
                assert!(
                    !description.contains(leak),
                    "{at}: {description:?} shows {leak:?}"
                );
            }
            assert!(schema.get("default").is_none(), "{at} advertises a default");
        }
        let doc = v3_group_version();
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            check(name, schema);
            for (field, property) in schema["properties"].as_object().into_iter().flatten() {
                check(&format!("{name}.{field}"), property);
            }
        }
    }

    /// The wire form Kubernetes clients read: optional is absent (never `null`), integers in
    /// `int32`/`int64`, times as `date-time`.
    #[test]
    fn schemas_use_the_kubernetes_dialect() {
        let doc = v2();
        let text = doc.to_string();
        for json_schema_only in [
            "\"null\"",
            "\"anyOf\"",
            "\"oneOf\"",
            "\"const\"",
            "uint32",
            "uint64",
        ] {
            assert!(
                !text.contains(json_schema_only),
                "v2 document contains {json_schema_only}"
            );
        }
        let spec = &doc["definitions"][format!("{OURS}.CoredumpSpec")]["properties"];
        assert_eq!(spec["crashTime"]["format"], "date-time");
        assert_eq!(spec["pid"]["format"], "int64");
        assert_eq!(spec["signal"]["format"], "int32");
        let required = &doc["definitions"][format!("{OURS}.CoredumpSpec")]["required"];
        assert_eq!(required, &json!(["pid", "signal", "crashTime"]));
    }

    #[test]
    fn state_enum_lists_every_state() {
        let doc = v3_group_version();
        let states = &doc["components"]["schemas"][format!("{OURS}.CoredumpStatus")]["properties"]
            ["state"]["enum"];
        assert_eq!(
            states.as_array().unwrap().len(),
            crate::CoredumpState::ALL.len()
        );
    }

    /// Checks that every key of `value` (as serde writes it) is a property of `schema`, down
    /// through nested objects and arrays, following `$ref` and `allOf` in `doc`.
    fn assert_schema_covers(doc: &Value, schema: &Value, value: &Value, at: &str) {
        let resolve = |schema: &Value| -> Value {
            let mut s = schema.clone();
            for _ in 0..4 {
                if let Some(first) = s["allOf"].get(0) {
                    s = first.clone();
                } else if let Some(r) = s["$ref"].as_str() {
                    let name = r.rsplit('/').next().unwrap();
                    s = doc["components"]["schemas"][name].clone();
                } else {
                    break;
                }
            }
            s
        };
        let schema = resolve(schema);
        match value {
            Value::Object(fields) => {
                let props = schema["properties"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{at}: the schema has no properties"));
                for (key, field) in fields {
                    let sub = props
                        .get(key)
                        .unwrap_or_else(|| panic!("the schema lacks {at}.{key}"));
                    assert_schema_covers(doc, sub, field, &format!("{at}.{key}"));
                }
            }
            Value::Array(items) => {
                for item in items {
                    assert_schema_covers(doc, &schema["items"], item, &format!("{at}[]"));
                }
            }
            _ => {}
        }
    }

    /// A `Coredump` with every optional field set, so that each one serializes.
    fn full_coredump() -> crate::Coredump {
        let frame = crate::Frame {
            pc: "0x1".into(),
            module: Some("/bin/x".into()),
            offset: Some("0x1".into()),
            build_id: Some("ab".into()),
            function: Some("main".into()),
            file: Some("x.c".into()),
            line: Some(1),
            inlined: true,
        };
        let mut c = crate::Coredump::default();
        c.spec.pod_name = Some("p".into());
        c.spec.pod_uid = Some("u".into());
        c.spec.container_name = Some("c".into());
        c.spec.container_id = Some("i".into());
        c.spec.image = Some("img".into());
        c.status = crate::CoredumpStatus {
            state: crate::CoredumpState::Truncated,
            reason: Some(crate::CoredumpReason::SizeLimit),
            message: "m".into(),
            raw_size: 1,
            core_size: 1,
            stored_size: 1,
            sha256: "s".into(),
            compression: "zstd".into(),
            blob_path: "a/b/c/d".into(),
            signature: "sig".into(),
            analysis: Some(crate::Analysis {
                threads: vec![crate::ThreadBacktrace {
                    tid: 1,
                    crashed: true,
                    frames: vec![frame],
                    truncated: true,
                    stopped: Some("loop".into()),
                }],
                omitted_threads: 1,
                modules: vec![crate::Module {
                    path: "/bin/x".into(),
                    base: "0x0".into(),
                    build_id: Some("ab".into()),
                    binary: true,
                }],
                complete: true,
                problems: vec!["p".into()],
            }),
            suppressed_crashes: 1,
        };
        c
    }

    #[test]
    fn published_schema_covers_every_field_the_types_serialize() {
        let doc = v3_group_version();
        let c = full_coredump();
        let schemas = &doc["components"]["schemas"];
        for (kind, value) in [
            ("CoredumpSpec", serde_json::to_value(&c.spec).unwrap()),
            ("CoredumpStatus", serde_json::to_value(&c.status).unwrap()),
        ] {
            let schema = &schemas[format!("{OURS}.{kind}")];
            assert_schema_covers(&doc, schema, &value, kind);
        }
        let status = &schemas[format!("{OURS}.CoredumpStatus")]["properties"];
        let reasons = status["reason"]["enum"].as_array().unwrap();
        assert_eq!(reasons.len(), crate::CoredumpReason::ALL.len());
        for r in crate::CoredumpReason::ALL {
            // The wire name the schema publishes is the one serde writes.
            let written = serde_json::to_value(r).unwrap();
            assert_eq!(written, r.as_str(), "{r:?}");
            assert!(reasons.contains(&written), "schema lacks reason {r:?}");
        }
    }

    #[test]
    fn v3_root_points_at_group_document() {
        let root = v3_root("abc");
        assert_eq!(
            root["paths"]["apis/coredump.fujitsu.com/v1alpha1"]["serverRelativeURL"],
            "/openapi/v3/apis/coredump.fujitsu.com/v1alpha1?hash=abc"
        );
    }
}
