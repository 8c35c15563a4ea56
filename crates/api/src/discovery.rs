//! Discovery documents: `/apis` (`APIGroupList`), `/apis/<group>` (`APIGroup`) and
//! `/apis/<group>/<version>` (`APIResourceList`), which kube-apiserver's availability probe and
//! kubectl's RESTMapper read.

use serde::{Deserialize, Serialize};

use crate::{API_VERSION, Coredump, CoredumpEndpoint, GROUP, Resource, VERSION};

/// Verbs of our top-level resources.
pub const RESOURCE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One resource or subresource (`APIResource`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource {
    /// Plural name, or `<plural>/<subresource>`.
    pub name: String,
    /// Singular name (empty for subresources).
    pub singular_name: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Kind.
    pub kind: String,
    /// Supported verbs.
    pub verbs: Vec<String>,
    /// kubectl short names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
    /// Categories (for `kubectl get <category>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// `/apis/<group>/<version>` (`APIResourceList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResourceList {
    /// Always `APIResourceList`.
    pub kind: String,
    /// Always `v1`.
    pub api_version: String,
    /// `coredump.fujitsu.com/v1alpha1`.
    pub group_version: String,
    /// Resources and subresources.
    pub resources: Vec<ApiResource>,
}

/// One version of a group (`GroupVersionForDiscovery`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersionForDiscovery {
    /// `group/version`.
    pub group_version: String,
    /// `version`.
    pub version: String,
}

/// `/apis/<group>` (`APIGroup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroup {
    /// `APIGroup` when top-level, omitted inside a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `v1` when top-level, omitted inside a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Group name.
    pub name: String,
    /// Served versions.
    pub versions: Vec<GroupVersionForDiscovery>,
    /// The version clients should use.
    pub preferred_version: GroupVersionForDiscovery,
}

/// `/apis` (`APIGroupList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroupList {
    /// Always `APIGroupList`.
    pub kind: String,
    /// Always `v1`.
    pub api_version: String,
    /// Our one group.
    pub groups: Vec<ApiGroup>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn resource_entries<R: Resource>() -> [ApiResource; 2] {
    [
        ApiResource {
            name: R::PLURAL.to_owned(),
            singular_name: R::SINGULAR.to_owned(),
            namespaced: true,
            kind: R::KIND.to_owned(),
            verbs: strings(RESOURCE_VERBS),
            short_names: strings(R::SHORT_NAMES),
            categories: Vec::new(),
        },
        ApiResource {
            name: format!("{}/{}", R::PLURAL, R::SUBRESOURCE),
            singular_name: String::new(),
            namespaced: true,
            kind: R::KIND.to_owned(),
            verbs: strings(&["get"]),
            short_names: Vec::new(),
            categories: Vec::new(),
        },
    ]
}

/// `buildid`: not an object kind but a namespace's binaries by build ID, whose subresources
/// `executable` and `debuginfo` are the debuginfod protocol's paths. Listed so that RBAC
/// tooling and `kubectl api-resources` know them; the parent itself has no verbs.
fn buildid_entries() -> [ApiResource; 3] {
    let entry = |name: &str, verbs: &[&str]| ApiResource {
        name: name.to_owned(),
        singular_name: String::new(),
        namespaced: true,
        kind: BUILDID_KIND.to_owned(),
        verbs: strings(verbs),
        short_names: Vec::new(),
        categories: Vec::new(),
    };
    [
        entry(BUILDID, &[]),
        entry(&format!("{BUILDID}/executable"), &["get"]),
        entry(&format!("{BUILDID}/debuginfo"), &["get"]),
    ]
}

/// Resource name of a namespace's binaries by build ID.
pub const BUILDID: &str = "buildid";
/// Kind named in discovery for [`BUILDID`].
pub const BUILDID_KIND: &str = "BuildID";

/// The `APIResourceList` of `coredump.fujitsu.com/v1alpha1`.
pub fn resource_list() -> ApiResourceList {
    let mut resources = Vec::new();
    resources.extend(resource_entries::<CoredumpEndpoint>());
    resources.extend(resource_entries::<Coredump>());
    resources.push(ApiResource {
        name: format!("{}/log", Coredump::PLURAL),
        singular_name: String::new(),
        namespaced: true,
        kind: Coredump::KIND.to_owned(),
        verbs: strings(&["get"]),
        short_names: Vec::new(),
        categories: Vec::new(),
    });
    resources.extend(buildid_entries());
    ApiResourceList {
        kind: "APIResourceList".to_owned(),
        api_version: "v1".to_owned(),
        group_version: API_VERSION.to_owned(),
        resources,
    }
}

fn group_entry(top_level: bool) -> ApiGroup {
    let gv = GroupVersionForDiscovery {
        group_version: API_VERSION.to_owned(),
        version: VERSION.to_owned(),
    };
    ApiGroup {
        kind: top_level.then(|| "APIGroup".to_owned()),
        api_version: top_level.then(|| "v1".to_owned()),
        name: GROUP.to_owned(),
        versions: vec![gv.clone()],
        preferred_version: gv,
    }
}

/// The `APIGroup` of `coredump.fujitsu.com`.
pub fn api_group() -> ApiGroup {
    group_entry(true)
}

/// The `APIGroupList` served at `/apis`.
pub fn api_group_list() -> ApiGroupList {
    ApiGroupList {
        kind: "APIGroupList".to_owned(),
        api_version: "v1".to_owned(),
        groups: vec![group_entry(false)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_list_has_resources_and_subresources() {
        let json = serde_json::to_value(resource_list()).unwrap();
        assert_eq!(json["groupVersion"], "coredump.fujitsu.com/v1alpha1");
        assert_eq!(json["kind"], "APIResourceList");
        let names: Vec<&str> = json["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "coredumpendpoints",
                "coredumpendpoints/dump",
                "coredumps",
                "coredumps/core",
                "coredumps/log",
                "buildid",
                "buildid/executable",
                "buildid/debuginfo"
            ]
        );
        let dump = &json["resources"][1];
        assert_eq!(dump["verbs"], serde_json::json!(["get"]));
        assert_eq!(dump["namespaced"], true);
        let cd = &json["resources"][2];
        assert_eq!(cd["shortNames"], serde_json::json!(["cd"]));
        assert_eq!(cd["singularName"], "coredump");
        assert_eq!(cd["kind"], "Coredump");
        assert_eq!(cd["verbs"].as_array().unwrap().len(), 8);
    }

    #[test]
    fn group_documents() {
        let list = serde_json::to_value(api_group_list()).unwrap();
        assert_eq!(list["groups"][0]["name"], "coredump.fujitsu.com");
        assert!(list["groups"][0].get("kind").is_none());
        assert_eq!(list["groups"][0]["preferredVersion"]["version"], "v1alpha1");
        let g = serde_json::to_value(api_group()).unwrap();
        assert_eq!(g["kind"], "APIGroup");
        assert_eq!(
            g["versions"][0]["groupVersion"],
            "coredump.fujitsu.com/v1alpha1"
        );
    }
}
