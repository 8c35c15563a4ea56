//! The schemas of both OpenAPI documents (our kinds and the `meta.k8s.io` types they refer
//! to), generated from the Rust types by `schemars`: the fields, their wire names, which are
//! required and their descriptions (the doc comments) come from the types serde reads and
//! writes, so the published schema cannot drift from them.
//!
//! `schemars` writes JSON Schema; the [`KubernetesDialect`] transform turns it into the subset
//! Kubernetes clients read (OpenAPI v2 and v3 as kube-apiserver publishes them).

use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::{RemoveRefSiblings, ReplaceBoolSchemas, Transform, transform_subschemas};
use serde_json::{Map, Value, json};

use super::{META, OURS};
use crate::meta::{DeleteOptions, List};
use crate::{Coredump, CoredumpEndpoint, GROUP, Status, VERSION};

/// All schemas, `$ref`s prefixed with `prefix` (`#/definitions/` or `#/components/schemas/`).
pub(super) fn schemas(prefix: &str) -> Map<String, Value> {
    let mut settings = SchemaSettings::openapi3();
    settings.definitions_path = prefix.trim_start_matches('#').to_owned().into();
    let mut replace_bool_schemas = ReplaceBoolSchemas::default();
    replace_bool_schemas.skip_additional_properties = true;
    settings.transforms = vec![
        Box::new(replace_bool_schemas),
        Box::new(KubernetesDialect),
        // After the dialect: a `$ref` with a description becomes `allOf: [$ref]` + description.
        Box::new(RemoveRefSiblings::default()),
    ];
    let mut generator = settings.into_generator();
    generator.subschema_for::<Coredump>();
    generator.subschema_for::<CoredumpEndpoint>();
    generator.subschema_for::<List<Coredump>>();
    generator.subschema_for::<List<CoredumpEndpoint>>();
    generator.subschema_for::<Status>();
    generator.subschema_for::<DeleteOptions>();
    let mut schemas = generator.take_definitions(true);

    for (name, group, kind) in [
        (format!("{OURS}.Coredump"), GROUP, "Coredump"),
        (
            format!("{OURS}.CoredumpEndpoint"),
            GROUP,
            "CoredumpEndpoint",
        ),
        (format!("{OURS}.CoredumpList"), GROUP, "CoredumpList"),
        (
            format!("{OURS}.CoredumpEndpointList"),
            GROUP,
            "CoredumpEndpointList",
        ),
        (format!("{META}.Status"), "", "Status"),
        (format!("{META}.DeleteOptions"), "", "DeleteOptions"),
    ] {
        let version = if group.is_empty() { "v1" } else { VERSION };
        if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
            schema.insert(
                "x-kubernetes-group-version-kind".to_owned(),
                json!([{"group": group, "version": version, "kind": kind}]),
            );
        }
    }
    schemas
}

/// Rewrites `schemars`' JSON Schema into what Kubernetes publishes:
/// - an optional field is absent, never `null`: `null` leaves every `type`, and the
///   `anyOf: [X, {type: null}]` of an `Option` of a named type becomes `X`;
/// - an enum of strings whose variants carry doc comments (`oneOf` of one-value schemas)
///   becomes one `{type: string, enum: [...]}`, as `kubectl explain` lists enums;
/// - integers use Kubernetes' two formats, `int32` and `int64` (unsigned widths widened; the
///   `minimum: 0` schemars adds keeps the sign);
/// - `const` (JSON Schema) becomes a one-value `enum` (OpenAPI);
/// - no `default`: serde's defaults make decoding lenient, they are not values the server
///   fills in;
/// - a description is the doc comment's text with its lines joined (paragraphs kept), as
///   `kubectl explain` wraps it.
#[derive(Clone)]
struct KubernetesDialect;

impl Transform for KubernetesDialect {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(object) = schema.as_object_mut() else {
            return;
        };
        drop_null_type(object);
        unwrap_nullable_any_of(object);
        flatten_string_enum(object);
        if let Some(Value::String(format)) = object.get_mut("format") {
            match format.as_str() {
                "uint8" | "uint16" | "int8" | "int16" => *format = "int32".to_owned(),
                "uint32" | "uint64" | "uint" | "int" => *format = "int64".to_owned(),
                _ => {}
            }
        }
        object.remove("default");
        if let Some(Value::String(description)) = object.get_mut("description") {
            *description = join_lines(description);
        }
        if let Some(value) = object.remove("const") {
            object.insert("enum".to_owned(), json!([value]));
        }
    }
}

/// `type: ["string", "null"]` → `type: "string"`.
fn drop_null_type(object: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            object.insert("type".to_owned(), only);
        }
    }
}

/// `anyOf: [X, {type: null}]` → the keys of `X` (a `$ref` keeps its sibling description, which
/// `RemoveRefSiblings` then wraps).
fn unwrap_nullable_any_of(object: &mut Map<String, Value>) {
    let Some(Value::Array(any_of)) = object.get("anyOf") else {
        return;
    };
    let is_null = |v: &Value| {
        v.get("type") == Some(&json!("null")) && v.as_object().is_some_and(|o| o.len() == 1)
    };
    let rest: Vec<&Value> = any_of.iter().filter(|v| !is_null(v)).collect();
    if rest.len() == 1
        && rest.len() < any_of.len()
        && let Some(inner) = rest[0].as_object().cloned()
    {
        object.remove("anyOf");
        for (key, value) in inner {
            object.entry(key).or_insert(value);
        }
    }
}

/// `oneOf: [{type: string, enum: [A], description}, ...]` → `type: string, enum: [A, ...]`.
fn flatten_string_enum(object: &mut Map<String, Value>) {
    let Some(Value::Array(one_of)) = object.get("oneOf") else {
        return;
    };
    let values: Option<Vec<Value>> = one_of
        .iter()
        .map(|variant| {
            let single = variant
                .get("const")
                .cloned()
                .or_else(|| match variant.get("enum") {
                    Some(Value::Array(values)) if values.len() == 1 => values.first().cloned(),
                    _ => None,
                })?;
            single.is_string().then_some(single)
        })
        .collect();
    if let Some(values) = values {
        object.remove("oneOf");
        object.insert("type".to_owned(), json!("string"));
        object.insert("enum".to_owned(), Value::Array(values));
    }
}

/// Joins the lines of a doc comment into one line per paragraph.
fn join_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}
