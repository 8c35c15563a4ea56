//! The rendered manifest parsed back into typed objects, shared by the manifest tests.
#![allow(dead_code)] // each test binary uses a part
#![allow(clippy::unwrap_used)] // tests may unwrap

use coredump_deploy::{DeployOptions, generate_certs, render};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::Value;

/// Every document of a multi-document manifest.
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).unwrap()
}

/// The documents `opts` renders to, with fresh certificates.
pub fn rendered(opts: &DeployOptions) -> Vec<Value> {
    let certs = generate_certs(&opts.namespace, &opts.service).unwrap();
    documents(&render(opts, &certs).unwrap())
}

/// The one document of `kind` named `name`, as a typed object.
pub fn find<T: serde::de::DeserializeOwned>(docs: &[Value], kind: &str, name: &str) -> T {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"));
    serde_json::from_value(doc.clone()).unwrap()
}

/// Whether a document of `kind` named `name` is there.
pub fn has(docs: &[Value], kind: &str, name: &str) -> bool {
    docs.iter()
        .any(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

/// The pod spec of the workload of `kind` (Deployment, DaemonSet, StatefulSet) named `name`.
pub fn pod(docs: &[Value], kind: &str, name: &str) -> PodSpec {
    let doc: Value = find(docs, kind, name);
    serde_json::from_value(doc["spec"]["template"]["spec"].clone()).unwrap()
}

/// The first container of that pod.
pub fn container(docs: &[Value], kind: &str, name: &str) -> Container {
    pod(docs, kind, name).containers.remove(0)
}

/// The container's arguments.
pub fn args(docs: &[Value], kind: &str, name: &str) -> Vec<String> {
    container(docs, kind, name).args.unwrap_or_default()
}

/// The names of the pod's volumes, in order.
pub fn volume_names(pod: &PodSpec) -> Vec<String> {
    pod.volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect()
}

/// The `(volume, mountPath)` pairs of the pod's first container, in order.
pub fn mounts(pod: &PodSpec) -> Vec<(String, String)> {
    pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.clone(), m.mount_path.clone()))
        .collect()
}

/// The hostPath of the pod's `coredump-backend` volume, `None` if it has no such volume or
/// the volume is something else.
pub fn cores_host_path(pod: &PodSpec) -> Option<String> {
    pod.volumes
        .iter()
        .flatten()
        .find(|v| v.name == "coredump-backend")
        .and_then(|v| v.host_path.as_ref())
        .map(|h| h.path.clone())
}
