//! Objects to store bytes and back. The store's revision is the object's `resourceVersion`:
//! it is stripped on the way in and filled on the way out, so stored bytes never disagree with it.
//!
//! Stored bytes are data, not authority: whoever can write to the metadata store (a planted etcd
//! key) must not be able to make the server read or delete another namespace's files. So every
//! decoded object must agree with the key it was stored under and pass the same validation as a
//! create (which ties `status.blobPath` to the object's namespace, pod UID and name), or it is
//! refused as [`ApiError::Corrupt`].

use bytes::Bytes;
use coredump_api::Resource;
use coredump_store::StoredObject;

use crate::error::ApiError;

/// Serializes an object for the store (without `resourceVersion`).
pub fn encode<R: Resource>(obj: &R) -> Result<Bytes, ApiError> {
    let mut obj = obj.clone();
    obj.metadata_mut().resource_version.clear();
    obj.set_type_meta();
    serde_json::to_vec(&obj)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal {
            message: format!("encoding {} {:?}: {e}", R::KIND, obj.metadata().name),
        })
}

/// Deserializes a stored object, checks it against its key and the validation rules, and sets
/// its `resourceVersion` to the stored revision.
pub fn decode<R: Resource>(stored: &StoredObject) -> Result<R, ApiError> {
    let corrupt = |reason: String| ApiError::Corrupt {
        resource: stored.key.resource.clone(),
        namespace: stored.key.namespace.clone(),
        name: stored.key.name.clone(),
        reason,
    };
    let mut obj: R = serde_json::from_slice(&stored.value)
        .map_err(|e| corrupt(format!("not a decodable {}: {e}", R::KIND)))?;
    let meta = obj.metadata();
    if meta.namespace != stored.key.namespace || meta.name != stored.key.name {
        return Err(corrupt(format!(
            "it calls itself {}/{}",
            meta.namespace, meta.name
        )));
    }
    let errors = obj.validate_create();
    if !errors.is_empty() {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(corrupt(list.join("; ")));
    }
    obj.metadata_mut().resource_version = stored.revision.to_string();
    obj.set_type_meta();
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coredump_api::Coredump;
    use coredump_store::ObjectKey;

    fn stored(ns: &str, name: &str, value: serde_json::Value) -> StoredObject {
        StoredObject {
            key: ObjectKey {
                resource: "coredumps".into(),
                namespace: ns.into(),
                name: name.into(),
            },
            value: Bytes::from(value.to_string()),
            revision: 7,
        }
    }

    fn record(ns: &str, name: &str, blob: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "Coredump",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"podUID": "u1", "pid": 1, "signal": 11, "crashTime": "2024-05-01T10:00:00Z"},
            "status": {"state": "Stored", "blobPath": blob}
        })
    }

    #[test]
    fn a_consistent_object_decodes_with_its_revision() {
        let c: Coredump = decode(&stored(
            "a",
            "c1",
            record("a", "c1", "a/u1/app/c1.core.zst"),
        ))
        .unwrap();
        assert_eq!(c.metadata.resource_version, "7");
    }

    #[test]
    fn objects_that_disagree_with_their_key_or_point_elsewhere_are_refused() {
        for (key_ns, value) in [
            ("a", record("b", "c1", "b/u1/app/c1.core.zst")),
            ("a", record("a", "c1", "b/u1/app/c1.core.zst")),
            ("a", record("a", "c1", "a/u2/app/c1.core.zst")),
            ("a", record("a", "c1", "a/u1/app/other.core.zst")),
            ("a", record("a", "c1", "a/u1/../../b")),
        ] {
            let err = decode::<Coredump>(&stored(key_ns, "c1", value.clone())).unwrap_err();
            assert!(matches!(err, ApiError::Corrupt { .. }), "{value}: {err}");
            assert_eq!(err.reason_and_code().1, 500);
        }
        let renamed = decode::<Coredump>(&stored(
            "a",
            "c2",
            record("a", "c1", "a/u1/app/c1.core.zst"),
        ));
        assert!(matches!(renamed, Err(ApiError::Corrupt { .. })));
        let garbage = StoredObject {
            value: Bytes::from_static(b"{not json"),
            ..stored("a", "c1", serde_json::json!({}))
        };
        assert!(matches!(
            decode::<Coredump>(&garbage),
            Err(ApiError::Corrupt { .. })
        ));
    }
}
