//! Typed shortcuts over the generic [`Registry`] operations, for in-process callers (the
//! standalone ingest, the garbage collector) that deal in concrete kinds.

use coredump_api::{Coredump, CoredumpEndpoint, DeleteOptions};

use super::{ListOptions, Registry, WriteOptions};
use crate::error::ApiError;

impl Registry {
    /// Creates a Coredump (the in-process ingest's entry point).
    pub async fn create_coredump(&self, obj: Coredump) -> Result<Coredump, ApiError> {
        let ns = obj.metadata.namespace.clone();
        self.create(&ns, obj, &WriteOptions::default()).await
    }

    /// Reads a Coredump.
    pub async fn get_coredump(&self, namespace: &str, name: &str) -> Result<Coredump, ApiError> {
        self.get(namespace, name).await
    }

    /// Lists all Coredumps (of one namespace, or all).
    pub async fn list_coredumps(&self, namespace: Option<&str>) -> Result<Vec<Coredump>, ApiError> {
        Ok(self
            .list_all(namespace, &ListOptions::default())
            .await?
            .items)
    }

    /// Deletes a Coredump and its blob.
    pub async fn delete_coredump(&self, namespace: &str, name: &str) -> Result<Coredump, ApiError> {
        self.delete(namespace, name, &DeleteOptions::default())
            .await
    }

    /// Creates a CoredumpEndpoint.
    pub async fn create_endpoint(
        &self,
        obj: CoredumpEndpoint,
    ) -> Result<CoredumpEndpoint, ApiError> {
        let ns = obj.metadata.namespace.clone();
        self.create(&ns, obj, &WriteOptions::default()).await
    }

    /// Reads a CoredumpEndpoint.
    pub async fn get_endpoint(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<CoredumpEndpoint, ApiError> {
        self.get(namespace, name).await
    }

    /// Lists all CoredumpEndpoints (of one namespace, or all).
    pub async fn list_endpoints(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<CoredumpEndpoint>, ApiError> {
        Ok(self
            .list_all(namespace, &ListOptions::default())
            .await?
            .items)
    }

    /// Deletes a CoredumpEndpoint, its pod's blobs and its pod's Coredumps.
    pub async fn delete_endpoint(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<CoredumpEndpoint, ApiError> {
        self.delete(namespace, name, &DeleteOptions::default())
            .await
    }
}
