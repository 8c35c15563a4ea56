//! What the API server needs to know about each kind, in one trait: names for discovery,
//! metadata access, selectable fields, validation and table rendering. The server is generic
//! over it, so both kinds get exactly the same HTTP behaviour.

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::table::{TableColumnDefinition, human_bytes};
use crate::time::age;
use crate::validation::{self, FieldError};
use crate::{
    API_VERSION, COREDUMP_ENDPOINT_KIND, COREDUMP_ENDPOINTS, COREDUMP_KIND, COREDUMPS, Coredump,
    CoredumpEndpoint, ObjectMeta,
};

/// A kind served by this API group.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Kind, e.g. `Coredump`.
    const KIND: &'static str;
    /// Plural resource name (URL segment), e.g. `coredumps`.
    const PLURAL: &'static str;
    /// Singular resource name, e.g. `coredump`.
    const SINGULAR: &'static str;
    /// kubectl short names.
    const SHORT_NAMES: &'static [&'static str];
    /// The one subresource (`core` or `dump`), readable with `get`.
    const SUBRESOURCE: &'static str;
    /// Fields accepted in `fieldSelector`.
    const SELECTABLE_FIELDS: &'static [&'static str];

    /// `<Kind>List`.
    fn list_kind() -> String {
        format!("{}List", Self::KIND)
    }

    /// Object metadata.
    fn metadata(&self) -> &ObjectMeta;
    /// Mutable object metadata.
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    /// Sets `apiVersion` and `kind` to ours.
    fn set_type_meta(&mut self);
    /// `apiVersion` and `kind` as the client sent them.
    fn type_meta(&self) -> (&str, &str);

    /// Value of a selectable field (`None` if unset).
    fn field(&self, path: &str) -> Option<String>;

    /// Validation errors for create.
    fn validate_create(&self) -> Vec<FieldError>;
    /// Validation errors for replacing `old` with `self`.
    fn validate_update(&self, old: &Self) -> Vec<FieldError>;

    /// Table columns.
    fn columns() -> Vec<TableColumnDefinition>;
    /// One row of cells, matching [`Resource::columns`]; `now` computes ages.
    fn cells(&self, now: OffsetDateTime) -> Vec<serde_json::Value>;
}

fn meta_field(meta: &ObjectMeta, path: &str) -> Option<String> {
    match path {
        "metadata.name" => Some(meta.name.clone()),
        "metadata.namespace" => Some(meta.namespace.clone()),
        _ => None,
    }
}

fn name_column() -> TableColumnDefinition {
    TableColumnDefinition::new(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    )
}

fn age_column() -> TableColumnDefinition {
    TableColumnDefinition::new(
        "Age",
        "string",
        "",
        "Time since the object was created (metadata.creationTimestamp).",
        0,
    )
}

fn or_none(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "<none>".to_owned(),
    }
}

impl Resource for Coredump {
    const KIND: &'static str = COREDUMP_KIND;
    const PLURAL: &'static str = COREDUMPS;
    const SINGULAR: &'static str = "coredump";
    const SHORT_NAMES: &'static [&'static str] = &["cd"];
    const SUBRESOURCE: &'static str = "core";
    const SELECTABLE_FIELDS: &'static [&'static str] = &[
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.podName",
        "spec.podUID",
        "spec.containerName",
        "status.state",
        "status.reason",
        "status.signature",
    ];

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn set_type_meta(&mut self) {
        API_VERSION.clone_into(&mut self.api_version);
        COREDUMP_KIND.clone_into(&mut self.kind);
    }
    fn type_meta(&self) -> (&str, &str) {
        (&self.api_version, &self.kind)
    }

    fn field(&self, path: &str) -> Option<String> {
        match path {
            "spec.nodeName" => Some(self.spec.node_name.clone()),
            "spec.podName" => self.spec.pod_name.clone(),
            "spec.podUID" => self.spec.pod_uid.clone(),
            "spec.containerName" => self.spec.container_name.clone(),
            "status.state" => Some(self.status.state.as_str().to_owned()),
            "status.reason" => Some(
                self.status
                    .reason
                    .map_or_else(String::new, |r| r.as_str().to_owned()),
            ),
            "status.signature" => Some(self.status.signature.clone()),
            _ => meta_field(&self.metadata, path),
        }
    }

    fn validate_create(&self) -> Vec<FieldError> {
        validation::coredump(self)
    }
    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        validation::coredump_update(self, old)
    }

    fn columns() -> Vec<TableColumnDefinition> {
        vec![
            name_column(),
            TableColumnDefinition::new("Pod", "string", "", "Pod the crashed process ran in.", 0),
            TableColumnDefinition::new(
                "Container",
                "string",
                "",
                "Container of the crashed process.",
                0,
            ),
            TableColumnDefinition::new("Signal", "string", "", "Signal that caused the dump.", 0),
            TableColumnDefinition::new(
                "Executable",
                "string",
                "",
                "Executable of the crashed process.",
                0,
            ),
            TableColumnDefinition::new(
                "Size",
                "string",
                "",
                "Size of the stored core, decompressed.",
                0,
            ),
            TableColumnDefinition::new("State", "string", "", "What became of the core file.", 0),
            TableColumnDefinition::new(
                "Signature",
                "string",
                "",
                "Crash signature: the same for every crash of one bug (status.signature).",
                0,
            ),
            age_column(),
        ]
    }

    fn cells(&self, now: OffsetDateTime) -> Vec<serde_json::Value> {
        let signal = if self.spec.signal_name.is_empty() {
            self.spec.signal.to_string()
        } else {
            self.spec.signal_name.clone()
        };
        vec![
            self.metadata.name.clone().into(),
            or_none(self.spec.pod_name.as_deref()).into(),
            or_none(self.spec.container_name.as_deref()).into(),
            signal.into(),
            or_none(Some(&self.spec.executable)).into(),
            human_bytes(self.status.core_size).into(),
            self.status.state.as_str().into(),
            or_none(Some(&self.status.signature)).into(),
            age(self.metadata.creation_timestamp.as_deref(), now).into(),
        ]
    }
}

impl Resource for CoredumpEndpoint {
    const KIND: &'static str = COREDUMP_ENDPOINT_KIND;
    const PLURAL: &'static str = COREDUMP_ENDPOINTS;
    const SINGULAR: &'static str = "coredumpendpoint";
    const SHORT_NAMES: &'static [&'static str] = &["cde"];
    const SUBRESOURCE: &'static str = "dump";
    const SELECTABLE_FIELDS: &'static [&'static str] =
        &["metadata.name", "metadata.namespace", "spec.podUID"];

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn set_type_meta(&mut self) {
        API_VERSION.clone_into(&mut self.api_version);
        COREDUMP_ENDPOINT_KIND.clone_into(&mut self.kind);
    }
    fn type_meta(&self) -> (&str, &str) {
        (&self.api_version, &self.kind)
    }

    fn field(&self, path: &str) -> Option<String> {
        match path {
            "spec.podUID" => Some(self.spec.pod_uid.clone()),
            _ => meta_field(&self.metadata, path),
        }
    }

    fn validate_create(&self) -> Vec<FieldError> {
        validation::coredump_endpoint(self)
    }
    fn validate_update(&self, old: &Self) -> Vec<FieldError> {
        validation::coredump_endpoint_update(self, old)
    }

    fn columns() -> Vec<TableColumnDefinition> {
        vec![
            name_column(),
            TableColumnDefinition::new(
                "PodUID",
                "string",
                "",
                "UID of the pod whose cores are served.",
                0,
            ),
            age_column(),
        ]
    }

    fn cells(&self, now: OffsetDateTime) -> Vec<serde_json::Value> {
        vec![
            self.metadata.name.clone().into(),
            self.spec.pod_uid.clone().into(),
            age(self.metadata.creation_timestamp.as_deref(), now).into(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CoredumpState;
    use crate::time::parse_rfc3339;

    fn sample() -> Coredump {
        let mut c = Coredump::default();
        c.metadata.name = "crash-1".into();
        c.metadata.namespace = "ns".into();
        c.metadata.creation_timestamp = Some("2024-05-01T09:58:00Z".into());
        c.spec.pod_name = Some("web-0".into());
        c.spec.container_name = Some("app".into());
        c.spec.signal = 11;
        c.spec.signal_name = "SIGSEGV".into();
        c.spec.executable = "/usr/bin/app".into();
        c.status.core_size = 3 * 1024 * 1024;
        c.status.state = CoredumpState::Truncated;
        c
    }

    #[test]
    fn coredump_row() {
        let now = parse_rfc3339("2024-05-01T10:00:00Z").unwrap();
        let cells = sample().cells(now);
        assert_eq!(
            serde_json::Value::Array(cells),
            serde_json::json!([
                "crash-1",
                "web-0",
                "app",
                "SIGSEGV",
                "/usr/bin/app",
                "3.0MiB",
                "Truncated",
                "<none>",
                "2m"
            ])
        );
        let names: Vec<String> = Coredump::columns().into_iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Pod",
                "Container",
                "Signal",
                "Executable",
                "Size",
                "State",
                "Signature",
                "Age"
            ]
        );
        assert_eq!(Coredump::columns()[0].format, "name");
    }

    #[test]
    fn coredump_row_for_host_crash() {
        let mut c = sample();
        c.spec.pod_name = None;
        c.spec.container_name = None;
        c.spec.signal_name.clear();
        c.metadata.creation_timestamp = None;
        let cells = c.cells(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(cells[1], "<none>");
        assert_eq!(cells[2], "<none>");
        assert_eq!(cells[3], "11");
        assert_eq!(cells[8], "<unknown>");
    }

    #[test]
    fn endpoint_row() {
        let mut e = CoredumpEndpoint::default();
        e.metadata.name = "web-0".into();
        e.metadata.creation_timestamp = Some("2024-05-01T07:00:00Z".into());
        e.spec.pod_uid = "u-1".into();
        let now = parse_rfc3339("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(
            serde_json::Value::Array(e.cells(now)),
            serde_json::json!(["web-0", "u-1", "3h"])
        );
        let names: Vec<String> = CoredumpEndpoint::columns()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["Name", "PodUID", "Age"]);
    }

    #[test]
    fn fields() {
        let mut c = sample();
        assert_eq!(c.field("metadata.name").as_deref(), Some("crash-1"));
        assert_eq!(c.field("metadata.namespace").as_deref(), Some("ns"));
        assert_eq!(c.field("spec.podName").as_deref(), Some("web-0"));
        assert_eq!(c.field("status.state").as_deref(), Some("Truncated"));
        assert_eq!(c.field("status.reason").as_deref(), Some(""));
        c.status.reason = Some(crate::CoredumpReason::SizeLimit);
        assert_eq!(c.field("status.reason").as_deref(), Some("SizeLimit"));
        assert_eq!(c.field("spec.podUID"), None);
        for f in Coredump::SELECTABLE_FIELDS {
            assert!(
                f.starts_with("metadata.") || c.field(f).is_some() || *f == "spec.podUID",
                "{f}"
            );
        }
    }

    #[test]
    fn type_meta_is_set() {
        let mut e = CoredumpEndpoint::default();
        e.set_type_meta();
        assert_eq!(
            e.type_meta(),
            ("coredump.fujitsu.com/v1alpha1", "CoredumpEndpoint")
        );
        assert_eq!(CoredumpEndpoint::list_kind(), "CoredumpEndpointList");
        assert_eq!(Coredump::list_kind(), "CoredumpList");
    }
}
