//! Objects to store bytes and back. The store's revision is the object's `resourceVersion`:
//! it is stripped on the way in and filled on the way out, so stored bytes never disagree with it.

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

/// Deserializes a stored object and sets its `resourceVersion` to the stored revision.
pub fn decode<R: Resource>(stored: &StoredObject) -> Result<R, ApiError> {
    let mut obj: R = serde_json::from_slice(&stored.value).map_err(|e| ApiError::Internal {
        message: format!(
            "stored {} {}/{} is not decodable: {e}",
            R::KIND,
            stored.key.namespace,
            stored.key.name
        ),
    })?;
    obj.metadata_mut().resource_version = stored.revision.to_string();
    obj.set_type_meta();
    Ok(obj)
}
