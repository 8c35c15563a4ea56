//! Which static pod a mirror pod stands for. kubelet names a static pod's cgroup after its
//! config hash, which the API's mirror pod carries in an annotation; the agent matches crashes
//! with it and the GC keeps such a pod's cores alive by it. Anyone who may create a pod may write
//! any annotation, so it is trusted only where kubelet alone could have written it (see
//! [`static_pod_hash`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Annotation of a mirror pod holding its static pod's config hash (the cgroup's pod UID).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Whether `text` has the form of kubelet's static pod config hash: 32 lowercase hex digits.
pub fn is_config_hash(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The config hash of the static pod that `meta` mirrors, if `meta` is a genuine mirror pod:
/// the annotation in hash form, a controlling owner reference to a Node, and the name kubelet
/// gives mirror pods (`<static pod name>-<node name>`). With `node`, the owner must be that node.
pub fn static_pod_hash<'a>(meta: &'a ObjectMeta, node: Option<&str>) -> Option<&'a str> {
    let hash = meta.annotations.as_ref()?.get(MIRROR_ANNOTATION)?;
    if !is_config_hash(hash) {
        return None;
    }
    let owner = meta
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "Node" && o.api_version == "v1" && o.controller == Some(true))?;
    if node.is_some_and(|n| n != owner.name) {
        return None;
    }
    let name = meta.name.as_deref()?;
    name.strip_suffix(owner.name.as_str())?
        .strip_suffix('-')
        .filter(|base| !base.is_empty())?;
    Some(hash)
}
