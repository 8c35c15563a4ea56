//! What a create through the API fills in before validation, per kind: a `CoredumpEndpoint`
//! without `spec.podUID` gets the UID of the live pod of the same name (the seed's behaviour);
//! if there is no such pod the UID must be given, and the error says so.

use std::future::Future;

use coredump_api::validation::{FieldError, FieldErrorKind};
use coredump_api::{Coredump, CoredumpEndpoint, Resource};

use crate::AppState;
use crate::error::ApiError;
use crate::registry::Stored;

/// A kind with create-time defaults that need the outside world.
pub trait CreateDefaults: Stored {
    /// Fills what the client left out, for an object created in `namespace`.
    fn fill_on_create(
        &mut self,
        namespace: &str,
        state: &AppState,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

impl CreateDefaults for Coredump {
    async fn fill_on_create(&mut self, _: &str, _: &AppState) -> Result<(), ApiError> {
        Ok(())
    }
}

impl CreateDefaults for CoredumpEndpoint {
    async fn fill_on_create(&mut self, namespace: &str, state: &AppState) -> Result<(), ApiError> {
        let name = self.metadata.name.clone();
        // Given, or nothing to look up by (validation reports what is missing).
        if !self.spec.pod_uid.is_empty()
            || coredump_api::validation::dns1123_subdomain(&name).is_err()
            || coredump_api::validation::dns1123_subdomain(namespace).is_err()
            || !state.pods.available()
        {
            return Ok(());
        }
        match state.pods.pod_uid(namespace, &name).await {
            Ok(Some(uid)) => {
                self.spec.pod_uid = uid;
                Ok(())
            }
            Ok(None) => Err(ApiError::Invalid {
                kind: Self::KIND.to_owned(),
                name: name.clone(),
                errors: vec![FieldError {
                    field: "spec.podUID".to_owned(),
                    kind: FieldErrorKind::Required,
                    detail: format!(
                        "pod {namespace}/{name} does not exist, so its UID cannot be filled in: \
                         give the UID of the pod whose cores to serve"
                    ),
                }],
            }),
            Err(e) => Err(ApiError::Internal {
                message: e.to_string(),
            }),
        }
    }
}
