//! `CoredumpEndpoint` (kept from the seed): one object per pod whose cores can be downloaded as a
//! whole through the `dump` subresource. `metadata.name` is the pod name, `spec.podUID` the pod's
//! UID, which is the directory of its blobs (`<namespace>/<podUID>/...`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ObjectMeta;

/// Plural resource name.
pub const COREDUMP_ENDPOINTS: &str = "coredumpendpoints";
/// Kind.
pub const COREDUMP_ENDPOINT_KIND: &str = "CoredumpEndpoint";

/// Access point to the cores of one pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "com.fujitsu.coredump.v1alpha1.CoredumpEndpoint")]
pub struct CoredumpEndpoint {
    /// Always `coredump.fujitsu.com/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// Always `CoredumpEndpoint`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata; `name` is the pod name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Which pod.
    #[serde(default)]
    pub spec: CoredumpEndpointSpec,
    /// Optional observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CoredumpEndpointStatus>,
}

/// Which pod an endpoint serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "com.fujitsu.coredump.v1alpha1.CoredumpEndpointSpec")]
pub struct CoredumpEndpointSpec {
    /// UID of the pod (required: the pod may be gone, its cores remain under this UID).
    #[serde(default, rename = "podUID")]
    pub pod_uid: String,
}

/// Observed state of an endpoint (informational).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "com.fujitsu.coredump.v1alpha1.CoredumpEndpointStatus")]
pub struct CoredumpEndpointStatus {
    /// Number of stored cores of the pod, when last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_count: Option<u64>,
    /// Free-form message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_manifest_parses() {
        let yaml_as_json = r#"{"apiVersion":"coredump.fujitsu.com/v1alpha1","kind":"CoredumpEndpoint",
            "metadata":{"name":"crasher","namespace":"default"},"spec":{"podUID":"1234-abcd"}}"#;
        let ep: CoredumpEndpoint = serde_json::from_str(yaml_as_json).unwrap();
        assert_eq!(ep.metadata.name, "crasher");
        assert_eq!(ep.spec.pod_uid, "1234-abcd");
        assert_eq!(ep.status, None);
        let back = serde_json::to_value(&ep).unwrap();
        assert_eq!(back["spec"], serde_json::json!({"podUID": "1234-abcd"}));
        assert!(back.get("status").is_none());
    }
}
