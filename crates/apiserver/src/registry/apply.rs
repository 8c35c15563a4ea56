//! Server-side apply and field ownership (`metadata.managedFields`), as kube-apiserver keeps
//! them for custom resources, on plain JSON so every rule is a unit test.
//!
//! A field is a leaf of the object: a scalar or a list (lists are atomic, as in CRDs without
//! list-type markers); maps (`labels`, `annotations`, `spec`) are granular,
//! so two managers can own two labels. The fields the server sets (`apiVersion`, `kind`,
//! `metadata.name`, `namespace`, `uid`, `resourceVersion`, `creationTimestamp`,
//! `generateName`, `managedFields`) belong to nobody.
//!
//! * An apply by manager M sets every field of its configuration; a field another manager owns
//!   with a different value is a conflict (409 naming the manager and the field) unless
//!   `force`, which takes it over. Fields M applied before and no longer applies are removed
//!   when nobody else owns them. M then owns exactly what it applied.
//! * A create, update or patch by manager U (`fieldManager`, else the client's user agent)
//!   makes U the owner of every field it changed, taking them from others; removed fields
//!   leave every owner.
//!
//! Ownership is stored in the `FieldsV1` form (`{"f:spec":{"f:podUID":{}}}`), keyed by manager
//! and operation like Kubernetes' entries, so `kubectl get -o yaml --show-managed-fields` and
//! client-go read it.

use std::collections::BTreeSet;

use coredump_api::ManagedFieldsEntry;
use serde_json::{Map, Value};

/// A field: the keys from the object's root to a leaf.
pub type FieldPath = Vec<String>;

/// `Apply` operation name.
pub const APPLY: &str = "Apply";
/// `Update` operation name.
pub const UPDATE: &str = "Update";

/// Top-level keys the server owns.
const SERVER_TOP: &[&str] = &["apiVersion", "kind"];
/// `metadata` keys the server owns.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generateName",
    "managedFields",
];

fn server_owned(path: &[String]) -> bool {
    match path {
        [top] => SERVER_TOP.contains(&top.as_str()),
        [meta, key, ..] if meta == "metadata" => SERVER_METADATA.contains(&key.as_str()),
        _ => false,
    }
}

/// Every field of `obj` a manager can own.
pub fn fields(obj: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        if server_owned(path) {
            return;
        }
        match v {
            // Maps are granular; an empty one owns nothing (typed objects drop it anyway).
            Value::Object(map) => {
                for (k, child) in map {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ if path.is_empty() => {}
            _ => {
                out.insert(path.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(obj, &mut Vec::new(), &mut out);
    out
}

/// `FieldsV1` of a set of fields.
pub fn to_fields_v1(set: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for key in path {
            let entry = node
                .entry(format!("f:{key}"))
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(next) = entry else {
                unreachable!("FieldsV1 nodes are objects")
            };
            node = next;
        }
    }
    Value::Object(root)
}

/// The fields of a `FieldsV1` value (keys other than `f:` ones, e.g. list items, are ignored:
/// our lists are atomic).
pub fn from_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let Value::Object(map) = v else { return };
        let children: Vec<_> = map
            .iter()
            .filter_map(|(k, c)| k.strip_prefix("f:").map(|name| (name, c)))
            .collect();
        if (children.is_empty() || map.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (name, child) in children {
            path.push(name.to_owned());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |node, key| node.get(key))
}

fn set(v: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = v;
    for key in parents {
        if !node.get(key).is_some_and(Value::is_object)
            && let Value::Object(map) = node
        {
            map.insert(key.clone(), Value::Object(Map::new()));
        }
        let Some(next) = node.get_mut(key) else {
            return;
        };
        node = next;
    }
    if let Value::Object(map) = node {
        map.insert(last.clone(), value);
    }
}

/// Removes a field, and the objects it leaves empty below the top level.
fn remove(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some(parent) = parents
        .iter()
        .try_fold(&mut *v, |node, key| node.get_mut(key))
    else {
        return;
    };
    if let Value::Object(map) = parent {
        map.remove(last);
        if map.is_empty() && parents.len() > 1 {
            remove(v, parents);
        }
    }
}

/// The fields whose value `after` changed from `before` (what create-time defaults filled
/// in), as an object holding only them.
pub fn changed_fields(before: &Value, after: &Value) -> Value {
    let mut out = Value::Object(Map::new());
    for field in fields(after) {
        if get(before, &field) != get(after, &field)
            && let Some(value) = get(after, &field)
        {
            set(&mut out, &field, value.clone());
        }
    }
    out
}

/// Sets in `obj` every field of `defaults` it does not hold. Defaults belong to nobody: an
/// apply that created the object owns only what its configuration said.
pub fn fill_unset(obj: &mut Value, defaults: &Value) {
    for field in fields(defaults) {
        if get(obj, &field).is_none()
            && let Some(value) = get(defaults, &field)
        {
            set(obj, &field, value.clone());
        }
    }
}

/// The 400 of an apply without `fieldManager`, worded as kube-apiserver words it.
pub fn field_manager_required() -> crate::error::ApiError {
    crate::error::ApiError::bad_request(
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
    )
}

/// `.spec.podUID`: how Kubernetes names a field in conflict messages.
pub fn display(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// A field applied with a value another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The field.
    pub field: FieldPath,
}

/// One manager's entry with its fields decoded.
#[derive(Debug, Clone)]
struct Owner {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    fields: BTreeSet<FieldPath>,
}

fn owners(entries: &[ManagedFieldsEntry]) -> Vec<Owner> {
    entries
        .iter()
        .map(|e| Owner {
            manager: e.manager.clone(),
            operation: e.operation.clone(),
            api_version: e.api_version.clone(),
            time: e.time.clone(),
            fields: e.fields_v1.as_ref().map(from_fields_v1).unwrap_or_default(),
        })
        .collect()
}

fn entries(owners: Vec<Owner>) -> Vec<ManagedFieldsEntry> {
    owners
        .into_iter()
        .filter(|o| !o.fields.is_empty())
        .map(|o| ManagedFieldsEntry {
            manager: o.manager,
            operation: o.operation,
            api_version: o.api_version,
            time: o.time,
            fields_type: "FieldsV1".to_owned(),
            fields_v1: Some(to_fields_v1(&o.fields)),
        })
        .collect()
}

/// Who is acting, and when.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// `fieldManager`.
    pub manager: &'a str,
    /// API version of the request.
    pub api_version: &'a str,
    /// RFC 3339 now.
    pub now: &'a str,
}

/// The owner entry of `actor` for `operation`, created when missing.
fn entry_of<'o>(owners: &'o mut Vec<Owner>, actor: Actor<'_>, operation: &str) -> &'o mut Owner {
    let at = match owners
        .iter()
        .position(|o| o.manager == actor.manager && o.operation == operation)
    {
        Some(at) => at,
        None => {
            owners.push(Owner {
                manager: actor.manager.to_owned(),
                operation: operation.to_owned(),
                api_version: actor.api_version.to_owned(),
                time: None,
                fields: BTreeSet::new(),
            });
            owners.len() - 1
        }
    };
    let owner = &mut owners[at];
    owner.time = Some(actor.now.to_owned());
    actor.api_version.clone_into(&mut owner.api_version);
    owner
}

/// Applies `config` by `actor` to `current` (`{}` when the object does not exist yet) with
/// its `managed` fields: the new object and its new `managedFields`, or the conflicts.
pub fn apply(
    current: &Value,
    managed: &[ManagedFieldsEntry],
    config: &Value,
    actor: Actor<'_>,
    force: bool,
) -> Result<(Value, Vec<ManagedFieldsEntry>), Vec<Conflict>> {
    let applied = fields(config);
    let mut owners = owners(managed);
    let is_me = |o: &Owner| o.manager == actor.manager && o.operation == APPLY;
    let mut conflicts = Vec::new();
    for other in owners.iter().filter(|o| !is_me(o)) {
        for field in other.fields.intersection(&applied) {
            if get(current, field) != get(config, field) {
                conflicts.push(Conflict {
                    manager: other.manager.clone(),
                    field: field.clone(),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for other in owners.iter_mut().filter(|o| !is_me(o)) {
        for c in &conflicts {
            other.fields.remove(&c.field);
        }
    }
    let mut obj = current.clone();
    let before: BTreeSet<FieldPath> = owners
        .iter()
        .find(|o| is_me(o))
        .map(|o| o.fields.clone())
        .unwrap_or_default();
    for field in before.difference(&applied) {
        let owned_elsewhere = owners.iter().any(|o| !is_me(o) && o.fields.contains(field));
        if !owned_elsewhere {
            remove(&mut obj, field);
        }
    }
    for field in &applied {
        if let Some(value) = get(config, field) {
            set(&mut obj, field, value.clone());
        }
    }
    entry_of(&mut owners, actor, APPLY).fields = applied;
    Ok((obj, entries(owners)))
}

/// The `managedFields` after `actor` changed `old` (`None` on create) into `new` with a create,
/// update or patch.
pub fn track_update(
    old: Option<&Value>,
    new: &Value,
    managed: &[ManagedFieldsEntry],
    actor: Actor<'_>,
) -> Vec<ManagedFieldsEntry> {
    let now_fields = fields(new);
    let changed: BTreeSet<FieldPath> = now_fields
        .iter()
        .filter(|f| old.and_then(|o| get(o, f)) != get(new, f))
        .cloned()
        .collect();
    // Changed fields move to the writer; removed ones (no longer in `new`) leave every owner.
    let mut owners = owners(managed);
    for o in &mut owners {
        o.fields
            .retain(|f| !changed.contains(f) && now_fields.contains(f));
    }
    if !changed.is_empty() {
        entry_of(&mut owners, actor, UPDATE).fields.extend(changed);
    }
    entries(owners)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2026-12-07T00:00:00Z";

    fn actor(manager: &str) -> Actor<'_> {
        Actor {
            manager,
            api_version: "coredump.fujitsu.com/v1alpha1",
            now: NOW,
        }
    }

    fn endpoint(uid: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
            "metadata": {"name": "web-0", "namespace": "a", "labels": labels},
            "spec": {"podUID": uid}
        })
    }

    fn owned(entries: &[ManagedFieldsEntry], manager: &str) -> Vec<String> {
        entries
            .iter()
            .filter(|e| e.manager == manager)
            .flat_map(|e| from_fields_v1(e.fields_v1.as_ref().unwrap()))
            .map(|f| display(&f))
            .collect()
    }

    #[test]
    fn fields_skip_what_the_server_sets_and_round_trip_fields_v1() {
        let obj = endpoint("u1", json!({"app": "web", "tier": "x"}));
        let f = fields(&obj);
        let shown: Vec<String> = f.iter().map(|p| display(p)).collect();
        assert_eq!(
            shown,
            vec![
                ".metadata.labels.app",
                ".metadata.labels.tier",
                ".spec.podUID"
            ]
        );
        let v1 = to_fields_v1(&f);
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}}, "f:spec": {"f:podUID": {}}})
        );
        assert_eq!(from_fields_v1(&v1), f);
    }

    #[test]
    fn first_apply_creates_and_owns_what_it_applied() {
        let config = endpoint("u1", json!({"app": "web"}));
        let (obj, managed) = apply(&json!({}), &[], &config, actor("a"), false).unwrap();
        assert_eq!(obj["spec"]["podUID"], "u1");
        assert_eq!(obj["metadata"]["labels"]["app"], "web");
        assert_eq!(managed.len(), 1);
        assert_eq!(
            (
                managed[0].operation.as_str(),
                managed[0].fields_type.as_str()
            ),
            ("Apply", "FieldsV1")
        );
        assert_eq!(
            owned(&managed, "a"),
            vec![".metadata.labels.app", ".spec.podUID"]
        );
    }

    #[test]
    fn another_manager_with_another_value_conflicts_unless_forced() {
        let (obj, managed) = apply(
            &json!({}),
            &[],
            &endpoint("u1", json!({"app": "web"})),
            actor("a"),
            false,
        )
        .unwrap();
        // Same value: shared, no conflict.
        let same = endpoint("u1", json!({"team": "b"}));
        let (obj2, managed2) = apply(&obj, &managed, &same, actor("b"), false).unwrap();
        assert_eq!(
            obj2["metadata"]["labels"],
            json!({"app": "web", "team": "b"})
        );
        assert_eq!(
            owned(&managed2, "b"),
            vec![".metadata.labels.team", ".spec.podUID"]
        );
        // Another value: conflict naming the manager and the field.
        let other = endpoint("u2", json!({}));
        let conflicts = apply(&obj2, &managed2, &other, actor("c"), false).unwrap_err();
        assert_eq!(
            conflicts
                .iter()
                .map(|c| (c.manager.as_str(), display(&c.field)))
                .collect::<Vec<_>>(),
            vec![
                ("a", ".spec.podUID".to_owned()),
                ("b", ".spec.podUID".to_owned())
            ]
        );
        // Forced: c takes the field over from both.
        let (obj3, managed3) = apply(&obj2, &managed2, &other, actor("c"), true).unwrap();
        assert_eq!(obj3["spec"]["podUID"], "u2");
        assert_eq!(owned(&managed3, "a"), vec![".metadata.labels.app"]);
        assert_eq!(owned(&managed3, "c"), vec![".spec.podUID"]);
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_someone_else_owns_them() {
        let (obj, managed) = apply(
            &json!({}),
            &[],
            &endpoint("u1", json!({"app": "web", "tier": "x"})),
            actor("a"),
            false,
        )
        .unwrap();
        let (obj, managed) = apply(
            &obj,
            &managed,
            &endpoint("u1", json!({"tier": "x"})),
            actor("b"),
            false,
        )
        .unwrap();
        // a drops both labels: app goes, tier stays (b owns it too).
        let (obj, managed) = apply(
            &obj,
            &managed,
            &endpoint("u1", json!({})),
            actor("a"),
            false,
        )
        .unwrap();
        assert_eq!(obj["metadata"]["labels"], json!({"tier": "x"}));
        assert_eq!(owned(&managed, "a"), vec![".spec.podUID"]);
        // b drops tier too: the labels map goes with its last label.
        let (obj, _) = apply(
            &obj,
            &managed,
            &endpoint("u1", json!({})),
            actor("b"),
            false,
        )
        .unwrap();
        assert!(obj["metadata"].get("labels").is_none(), "{obj}");
    }

    #[test]
    fn defaults_filled_on_create_are_set_but_owned_by_nobody() {
        let before = json!({"metadata": {"name": "web-0"}, "spec": {"podUID": ""}});
        let after = json!({"metadata": {"name": "web-0"}, "spec": {"podUID": "u1"}});
        let defaults = changed_fields(&before, &after);
        assert_eq!(defaults, json!({"spec": {"podUID": "u1"}}));
        let config = endpoint_without_uid();
        let (mut obj, managed) = apply(&json!({}), &[], &config, actor("a"), false).unwrap();
        fill_unset(&mut obj, &defaults);
        assert_eq!(obj["spec"]["podUID"], "u1");
        assert_eq!(owned(&managed, "a"), vec![".metadata.labels.app"]);
        // Re-applied: the default stays (a owned it never).
        let (obj, _) = apply(&obj, &managed, &config, actor("a"), false).unwrap();
        assert_eq!(obj["spec"]["podUID"], "u1");
        // What the object holds already wins over a default.
        let mut given = json!({"spec": {"podUID": "mine"}});
        fill_unset(&mut given, &defaults);
        assert_eq!(given["spec"]["podUID"], "mine");
    }

    fn endpoint_without_uid() -> Value {
        json!({
            "apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
            "metadata": {"name": "web-0", "namespace": "a", "labels": {"app": "web"}}
        })
    }

    #[test]
    fn updates_take_the_fields_they_change() {
        let created = endpoint("u1", json!({"app": "web"}));
        let managed = track_update(None, &created, &[], actor("kubectl-create"));
        assert_eq!(
            owned(&managed, "kubectl-create"),
            vec![".metadata.labels.app", ".spec.podUID"]
        );
        assert_eq!(managed[0].operation, "Update");
        // An apply of another value conflicts with the creator.
        let conflicts = apply(
            &created,
            &managed,
            &endpoint("u2", json!({})),
            actor("kubectl"),
            false,
        )
        .unwrap_err();
        assert_eq!(conflicts[0].manager, "kubectl-create");
        // A label edited by another client moves to it; a removed one leaves every owner.
        let edited = endpoint("u1", json!({"app": "api"}));
        let managed = track_update(Some(&created), &edited, &managed, actor("kubectl-edit"));
        assert_eq!(
            owned(&managed, "kubectl-edit"),
            vec![".metadata.labels.app"]
        );
        assert_eq!(owned(&managed, "kubectl-create"), vec![".spec.podUID"]);
        let stripped = endpoint("u1", json!({}));
        let managed = track_update(Some(&edited), &stripped, &managed, actor("x"));
        assert!(owned(&managed, "kubectl-edit").is_empty());
        assert!(
            owned(&managed, "x").is_empty(),
            "x changed nothing it could own"
        );
    }
}
