//! What deleting an object implies for the blob store: a Coredump owns its blob, an endpoint
//! owns every blob and Coredump of its pod. Clean-up runs after the object is gone; failures
//! are logged (the object is already deleted, and the garbage collector sweeps orphaned blobs).

use std::future::Future;

use coredump_api::{Coredump, CoredumpEndpoint, DeleteOptions, Resource};
use coredump_store::BlobPath;

use super::{ListOptions, Registry};

/// A kind the registry stores, with its delete side effects.
pub trait Stored: Resource {
    /// Removes what the deleted object owned.
    fn after_delete(&self, registry: &Registry) -> impl Future<Output = ()> + Send;
}

/// The blob of a Coredump, if it has one. Derived from the object's own namespace, pod UID and
/// name; only the container directory is taken from `status.blobPath`, and only when the rest of
/// that path agrees (so a record can name no file outside its own pod's directory, nor another
/// crash's core).
pub fn blob_path_of(c: &Coredump) -> Option<BlobPath> {
    if c.status.blob_path.is_empty() {
        return None;
    }
    let stored = BlobPath::parse_relative(&c.status.blob_path).ok()?;
    let derived = BlobPath::new(
        &c.metadata.namespace,
        c.pod_segment(),
        &stored.container,
        &coredump_api::coredump::core_file_name(&c.metadata.name),
    )
    .ok()?;
    (derived == stored).then_some(derived)
}

impl Stored for Coredump {
    async fn after_delete(&self, registry: &Registry) {
        let Some(path) = blob_path_of(self) else {
            return;
        };
        let blobs = registry.blob_store().clone();
        let result = tokio::task::spawn_blocking(move || blobs.delete(&path)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(coredump = %self.metadata.name, error = %e, "deleting blob failed")
            }
            Err(e) => {
                tracing::warn!(coredump = %self.metadata.name, error = %e, "blob delete task failed")
            }
        }
    }
}

impl Stored for CoredumpEndpoint {
    async fn after_delete(&self, registry: &Registry) {
        let ns = self.metadata.namespace.clone();
        let uid = self.spec.pod_uid.clone();
        let opts = ListOptions {
            fields: coredump_api::FieldSelector {
                requirements: vec![coredump_api::fields::FieldRequirement {
                    field: "spec.podUID".to_owned(),
                    negated: false,
                    value: uid.clone(),
                }],
            },
            ..Default::default()
        };
        if let Err(e) = registry
            .delete_collection::<Coredump>(Some(&ns), &opts, &DeleteOptions::default())
            .await
        {
            tracing::warn!(endpoint = %self.metadata.name, error = %e, "deleting the pod's Coredumps failed");
        }
        let blobs = registry.blob_store().clone();
        match tokio::task::spawn_blocking(move || blobs.delete_pod(&ns, &uid)).await {
            Ok(Ok(n)) => {
                tracing::info!(endpoint = %self.metadata.name, blobs = n, "deleted the pod's blobs")
            }
            Ok(Err(e)) => {
                tracing::warn!(endpoint = %self.metadata.name, error = %e, "deleting the pod's blobs failed")
            }
            Err(e) => {
                tracing::warn!(endpoint = %self.metadata.name, error = %e, "blob delete task failed")
            }
        }
    }
}
