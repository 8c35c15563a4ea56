//! The `meta.k8s.io/v1` shapes every Kubernetes client expects around our objects: object and
//! list metadata, lists, watch events, delete options and partial object metadata.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `apiVersion` of the generic `meta.k8s.io` types (`Table`, `PartialObjectMetadata`).
pub const META_API_VERSION: &str = "meta.k8s.io/v1";

/// `metadata` of every object (`ObjectMeta`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")]
pub struct ObjectMeta {
    /// Object name, unique in its namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Prefix from which the server generates a unique name when `name` is empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Unique id assigned at creation, never reused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Opaque version for optimistic concurrency (a store revision).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub creation_timestamp: Option<String>,
    /// Labels, selectable with `labelSelector`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Which manager (a client's `fieldManager`) owns which fields, as server-side apply keeps
    /// it; maintained by the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<ManagedFieldsEntry>,
}

/// One manager's fields (`ManagedFieldsEntry`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry")]
pub struct ManagedFieldsEntry {
    /// The client's `fieldManager` (kubectl's default: `kubectl`, `kubectl-edit`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manager: String,
    /// `Apply` (server-side apply) or `Update` (create, update, patch).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operation: String,
    /// API version the fields are expressed in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// RFC 3339 time of the manager's last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub time: Option<String>,
    /// Always `FieldsV1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fields_type: String,
    /// The fields owned, in the `FieldsV1` form (`{"f:spec":{"f:podUID":{}}}`).
    #[serde(default, rename = "fieldsV1", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub fields_v1: Option<serde_json::Value>,
}

/// `metadata` of a list (`ListMeta`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")]
pub struct ListMeta {
    /// Store revision the list was read at.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Token to fetch the next page (`?continue=`), absent on the last page.
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
    /// Estimated number of items after this page, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_item_count: Option<u64>,
}

/// A list of objects of one kind (`CoredumpList`, `CoredumpEndpointList`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "{T}List")]
pub struct List<T> {
    /// `apiVersion` of the items' group-version.
    pub api_version: String,
    /// `<Kind>List`.
    pub kind: String,
    /// List metadata.
    pub metadata: ListMeta,
    /// The objects, each with `apiVersion` and `kind` set.
    pub items: Vec<T>,
}

/// Object metadata without the rest of the object (`meta.k8s.io/v1` `PartialObjectMetadata`):
/// what a `Table` row carries by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialObjectMetadata {
    /// Always [`META_API_VERSION`].
    pub api_version: String,
    /// Always `PartialObjectMetadata`.
    pub kind: String,
    /// The object's metadata.
    pub metadata: ObjectMeta,
}

impl PartialObjectMetadata {
    /// Wraps an object's metadata.
    pub fn new(metadata: ObjectMeta) -> Self {
        Self {
            api_version: META_API_VERSION.to_owned(),
            kind: "PartialObjectMetadata".to_owned(),
            metadata,
        }
    }
}

/// Type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WatchEventType {
    /// Object created (or, for a watch from `resourceVersion=0`, existing at the start).
    Added,
    /// Object changed.
    Modified,
    /// Object deleted; carries its last state.
    Deleted,
    /// Progress notification: only `metadata.resourceVersion` (and annotations) are meaningful.
    Bookmark,
    /// Error: the object is a `Status`.
    Error,
}

/// One line of a watch response (`{"type": ..., "object": ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent<T> {
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: WatchEventType,
    /// The object (a `Status` for `ERROR`, a one-row `Table` when tables were asked for).
    pub object: T,
}

/// Annotation on the BOOKMARK that ends the initial events of a `sendInitialEvents=true` watch.
pub const INITIAL_EVENTS_END_ANNOTATION: &str = "k8s.io/initial-events-end";

/// Preconditions of a delete (`DeleteOptions.preconditions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.Preconditions")]
pub struct Preconditions {
    /// The object's UID must be this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The object's resourceVersion must be this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// Body of a DELETE (`meta.k8s.io/v1` `DeleteOptions`). Fields we do not act on
/// (`gracePeriodSeconds`, `propagationPolicy`) are accepted and ignored: our objects have no
/// finalizers or dependents, so deletion is always immediate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")]
pub struct DeleteOptions {
    /// `DeleteOptions` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `v1` or `meta.k8s.io/v1` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Seconds before deletion (ignored: deletion is immediate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i64>,
    /// Conditions that must hold for the delete to proceed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Preconditions>,
    /// `Orphan`, `Background` or `Foreground` (ignored: nothing depends on our objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation_policy: Option<String>,
    /// `["All"]` to validate without deleting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_meta_serializes_continue_under_its_wire_name() {
        let meta = ListMeta {
            resource_version: "12".into(),
            continue_token: Some("abc".into()),
            remaining_item_count: None,
        };
        let json = serde_json::to_value(&meta).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"resourceVersion": "12", "continue": "abc"})
        );
    }

    #[test]
    fn object_meta_omits_empty_fields() {
        let meta = ObjectMeta {
            name: "a".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&meta).unwrap(), r#"{"name":"a"}"#);
    }

    #[test]
    fn watch_event_uses_uppercase_types() {
        let ev = WatchEvent {
            event_type: WatchEventType::Bookmark,
            object: 1,
        };
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"type":"BOOKMARK","object":1}"#
        );
        let back: WatchEvent<i32> =
            serde_json::from_str(r#"{"type":"DELETED","object":2}"#).unwrap();
        assert_eq!(back.event_type, WatchEventType::Deleted);
    }

    #[test]
    fn delete_options_parse_kubectl_body() {
        let body = r#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background",
            "preconditions":{"uid":"u1","resourceVersion":"7"},"dryRun":["All"]}"#;
        let opts: DeleteOptions = serde_json::from_str(body).unwrap();
        assert_eq!(opts.propagation_policy.as_deref(), Some("Background"));
        assert_eq!(
            opts.preconditions,
            Some(Preconditions {
                uid: Some("u1".into()),
                resource_version: Some("7".into())
            })
        );
        assert_eq!(opts.dry_run, vec!["All".to_owned()]);
    }

    #[test]
    fn partial_object_metadata_has_meta_group() {
        let p = PartialObjectMetadata::new(ObjectMeta {
            name: "x".into(),
            ..Default::default()
        });
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(json["kind"], "PartialObjectMetadata");
        assert_eq!(json["metadata"]["name"], "x");
    }
}
