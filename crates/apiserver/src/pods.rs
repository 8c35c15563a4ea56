//! Who is pod `<namespace>/<name>`: a `CoredumpEndpoint` created without `spec.podUID` gets the
//! UID of the live pod (the seed's behaviour). In a cluster the answer comes from kube-apiserver
//! ([`KubePodLookup`]); standalone has no Kubernetes ([`NoPodLookup`]), so there the UID must be
//! given.

/// Looking the pod up failed (not "the pod does not exist", which is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
#[error("looking up pod {namespace}/{name}: {message}")]
pub struct PodLookupError {
    /// Namespace of the pod.
    pub namespace: String,
    /// Name of the pod.
    pub name: String,
    /// What failed.
    pub message: String,
}

/// Finds the UID of a live pod.
#[async_trait::async_trait]
pub trait PodLookup: Send + Sync + 'static {
    /// The UID of pod `namespace/name`, `None` if there is no such pod.
    async fn pod_uid(&self, namespace: &str, name: &str) -> Result<Option<String>, PodLookupError>;

    /// Whether this lookup can find pods at all (false: there is no cluster to ask).
    fn available(&self) -> bool {
        true
    }
}

/// No Kubernetes to ask: every pod is unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPodLookup;

#[async_trait::async_trait]
impl PodLookup for NoPodLookup {
    async fn pod_uid(&self, _: &str, _: &str) -> Result<Option<String>, PodLookupError> {
        Ok(None)
    }

    fn available(&self) -> bool {
        false
    }
}

/// Reads pods from kube-apiserver (the identity needs `get pods`).
#[derive(Clone)]
pub struct KubePodLookup {
    client: kube::Client,
}

impl KubePodLookup {
    /// Looks pods up with this client.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl PodLookup for KubePodLookup {
    async fn pod_uid(&self, namespace: &str, name: &str) -> Result<Option<String>, PodLookupError> {
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(self.client.clone(), namespace);
        let pod = api.get_opt(name).await.map_err(|e| PodLookupError {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        Ok(pod.and_then(|p| p.metadata.uid).filter(|u| !u.is_empty()))
    }
}
