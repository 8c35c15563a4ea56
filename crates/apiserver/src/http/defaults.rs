//! What a create through the API fills in or checks before validation, per kind, knowing who
//! asks:
//! * a `CoredumpEndpoint` without `spec.podUID` gets the UID of the live pod of the same name
//!   (the seed's behaviour); if there is no such pod the UID must be given, and the error says so;
//! * a `Coredump` from an identity bound to a node (a pod's projected service account token
//!   carries `authentication.kubernetes.io/node-name`) must be a crash of that node: an agent
//!   speaks for its own node only. Users named in `--node-bound-users` (the agents' service
//!   account) must present such a token at all.

use std::future::Future;

use coredump_api::validation::{FieldError, FieldErrorKind};
use coredump_api::{Coredump, CoredumpEndpoint, Resource};

use crate::AppState;
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::registry::Stored;

/// The user-info extra key under which kube-apiserver names the node of the pod a service
/// account token is bound to (Kubernetes >= 1.30).
pub const NODE_NAME_EXTRA: &str = "authentication.kubernetes.io/node-name";

/// A kind with create-time defaults and checks that need the outside world or the caller.
pub trait CreateDefaults: Stored {
    /// Fills what the client left out, for an object created in `namespace` by `user`, and
    /// refuses what `user` may not assert.
    fn fill_on_create(
        &mut self,
        namespace: &str,
        user: &UserInfo,
        state: &AppState,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// Why `user` may not record a crash of `node`, if it may not.
pub fn node_binding_violation(
    user: &UserInfo,
    node: &str,
    node_bound_users: &[String],
) -> Option<String> {
    let bound = user.extra.get(NODE_NAME_EXTRA).and_then(|v| v.first());
    match bound {
        Some(own) if own != node => Some(format!(
            "User {:?} speaks for node {own:?} only and cannot record a crash of node {node:?}",
            user.name
        )),
        Some(_) => None,
        None if node_bound_users.contains(&user.name) => Some(format!(
            "User {:?} must authenticate with a service account token bound to its pod on a              node (the pod's projected token), so that it records crashes of that node only",
            user.name
        )),
        None => None,
    }
}

impl CreateDefaults for Coredump {
    async fn fill_on_create(
        &mut self,
        _: &str,
        user: &UserInfo,
        state: &AppState,
    ) -> Result<(), ApiError> {
        match node_binding_violation(user, &self.spec.node_name, &state.node_bound_users) {
            Some(message) => Err(ApiError::Forbidden { message }),
            None => Ok(()),
        }
    }
}

impl CreateDefaults for CoredumpEndpoint {
    async fn fill_on_create(
        &mut self,
        namespace: &str,
        _: &UserInfo,
        state: &AppState,
    ) -> Result<(), ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, node: Option<&str>) -> UserInfo {
        UserInfo {
            name: name.into(),
            extra: node
                .map(|n| [(NODE_NAME_EXTRA.to_owned(), vec![n.to_owned()])].into())
                .unwrap_or_default(),
            ..UserInfo::default()
        }
    }

    #[test]
    fn a_node_bound_identity_records_crashes_of_its_node_only() {
        let agent = "system:serviceaccount:cd:coredump-agent";
        let bound = vec![agent.to_owned()];
        assert_eq!(
            node_binding_violation(&user(agent, Some("n1")), "n1", &bound),
            None
        );
        let other = node_binding_violation(&user(agent, Some("n1")), "n2", &bound).unwrap();
        assert!(
            other.contains("\"n1\" only") && other.contains("\"n2\""),
            "{other}"
        );
        let unbound = node_binding_violation(&user(agent, None), "n1", &bound).unwrap();
        assert!(unbound.contains("bound to its pod"), "{unbound}");
        // Anyone else bound to a node is held to it too; admins without a node are not.
        assert!(
            node_binding_violation(&user("system:serviceaccount:x:y", Some("n1")), "n2", &bound)
                .is_some()
        );
        assert_eq!(
            node_binding_violation(&user("admin", None), "n2", &bound),
            None
        );
    }
}
