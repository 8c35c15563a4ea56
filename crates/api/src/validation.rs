//! Validation of names and objects, with Kubernetes' field-error vocabulary so that the API
//! server can answer `422 Invalid` with `details.causes`. No admission runs for aggregated
//! resources: everything a client could get wrong is checked here.

use std::fmt;

use crate::{Coredump, CoredumpEndpoint, CoredumpState, ObjectMeta};

/// Longest DNS-1123 label (namespaces, label name parts).
pub const DNS1123_LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain (object names, label key prefixes).
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// Missing.
    Required,
    /// Present but malformed; carries the offending value.
    Invalid(String),
    /// Changed on update although immutable.
    Immutable,
}

/// One problem with one field of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path, e.g. `metadata.name`.
    pub field: String,
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// Why (may be empty).
    pub detail: String,
}

impl FieldError {
    fn required(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            kind: FieldErrorKind::Required,
            detail: String::new(),
        }
    }

    fn invalid(field: &str, value: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            kind: FieldErrorKind::Invalid(value.to_owned()),
            detail: detail.into(),
        }
    }

    fn immutable(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            kind: FieldErrorKind::Immutable,
            detail: "field is immutable".to_owned(),
        }
    }

    /// The `StatusCause.reason` Kubernetes uses for this kind of error.
    pub fn cause_reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid(_) | FieldErrorKind::Immutable => "FieldValueInvalid",
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FieldErrorKind::Required => write!(f, "{}: Required value", self.field)?,
            FieldErrorKind::Invalid(v) => write!(f, "{}: Invalid value: {v:?}", self.field)?,
            FieldErrorKind::Immutable => write!(f, "{}: Invalid value", self.field)?,
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Checks a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters).
/// Returns why not, if not.
pub fn dns1123_label(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    if b.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if b.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    let ok = b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1]);
    if ok {
        Ok(())
    } else {
        Err(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character"
                .to_owned(),
        )
    }
}

/// Checks a DNS-1123 subdomain (dot-separated labels, at most 253 characters).
pub fn dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if value.split('.').all(|part| dns1123_label(part).is_ok()) {
        Ok(())
    } else {
        Err(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character"
                .to_owned(),
        )
    }
}

/// Checks one path segment of a blob location (pod UID, container name, file): non-empty, no
/// `/`, no NUL, not `.` or `..`, at most 253 bytes.
pub fn path_segment(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if value == "." || value == ".." || value.contains(['/', '\0', '\\']) {
        return Err("must be a single path segment (no '/', '\\', NUL, '.' or '..')".to_owned());
    }
    Ok(())
}

/// Checks a label key: optional DNS-1123 subdomain prefix and `/`, then a name of at most 63
/// characters of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        dns1123_subdomain(p).map_err(|e| format!("prefix part {e}"))?;
    }
    if name.is_empty() {
        return Err("name part must not be empty".to_owned());
    }
    label_value(name).map_err(|e| format!("name part {e}"))
}

/// Checks a label value: empty, or at most 63 characters of `[A-Za-z0-9_.-]` starting and
/// ending alphanumeric.
pub fn label_value(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    if b.is_empty() {
        return Ok(());
    }
    if b.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    let inner = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    if b.iter().all(|&c| inner(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
    {
        Ok(())
    } else {
        Err(
            "must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
             with an alphanumeric character"
                .to_owned(),
        )
    }
}

/// Validates the metadata of a namespaced object about to be stored (`name` already generated).
pub fn object_meta(meta: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if meta.name.is_empty() {
        errs.push(FieldError::required("metadata.name"));
    } else if let Err(e) = dns1123_subdomain(&meta.name) {
        errs.push(FieldError::invalid("metadata.name", &meta.name, e));
    }
    if meta.namespace.is_empty() {
        errs.push(FieldError::required("metadata.namespace"));
    } else if let Err(e) = dns1123_label(&meta.namespace) {
        errs.push(FieldError::invalid(
            "metadata.namespace",
            &meta.namespace,
            e,
        ));
    }
    for (k, v) in &meta.labels {
        if let Err(e) = label_key(k) {
            errs.push(FieldError::invalid("metadata.labels", k, e));
        }
        if let Err(e) = label_value(v) {
            errs.push(FieldError::invalid(&format!("metadata.labels[{k}]"), v, e));
        }
    }
    for k in meta.annotations.keys() {
        if let Err(e) = label_key(k) {
            errs.push(FieldError::invalid("metadata.annotations", k, e));
        }
    }
    let annotation_bytes: usize = meta
        .annotations
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if annotation_bytes > MAX_ANNOTATION_BYTES {
        errs.push(FieldError::invalid(
            "metadata.annotations",
            &format!("{annotation_bytes} bytes"),
            format!("must have at most {MAX_ANNOTATION_BYTES} bytes"),
        ));
    }
    errs
}

/// Most bytes of annotations (keys and values) one object may carry: Kubernetes' limit, which
/// keeps any tenant's objects small enough that a page of them stays cheap to list.
pub const MAX_ANNOTATION_BYTES: usize = 256 << 10;

/// Validates a `Coredump` for create. The blob path must lie under the object's own namespace
/// (and pod UID, when known): a client allowed to create Coredumps in one namespace must not be
/// able to point one at another tenant's core.
pub fn coredump(obj: &Coredump) -> Vec<FieldError> {
    let mut errs = object_meta(&obj.metadata);
    let spec = &obj.spec;
    if spec.crash_time.is_empty() {
        errs.push(FieldError::required("spec.crashTime"));
    } else if crate::time::parse_rfc3339(&spec.crash_time).is_none() {
        errs.push(FieldError::invalid(
            "spec.crashTime",
            &spec.crash_time,
            "must be RFC 3339",
        ));
    }
    if let Some(uid) = &spec.pod_uid
        && let Err(e) = path_segment(uid)
    {
        errs.push(FieldError::invalid("spec.podUID", uid, e));
    }
    if let Some(c) = &spec.container_name
        && let Err(e) = path_segment(c)
    {
        errs.push(FieldError::invalid("spec.containerName", c, e));
    }
    let path = &obj.status.blob_path;
    if !path.is_empty() {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() != 4 {
            errs.push(FieldError::invalid(
                "status.blobPath",
                path,
                "must be <namespace>/<podUID>/<container>/<file>",
            ));
        } else if let Some(e) = parts.iter().find_map(|p| path_segment(p).err()) {
            errs.push(FieldError::invalid("status.blobPath", path, e));
        } else if parts[0] != obj.metadata.namespace {
            errs.push(FieldError::invalid(
                "status.blobPath",
                path,
                "must lie under the object's namespace",
            ));
        } else if parts[1] != obj.pod_segment() {
            errs.push(FieldError::invalid(
                "status.blobPath",
                path,
                format!(
                    "must lie under spec.podUID (or {:?} without one)",
                    crate::coredump::HOST_POD_SEGMENT
                ),
            ));
        } else if parts[3] != crate::coredump::core_file_name(&obj.metadata.name) {
            errs.push(FieldError::invalid(
                "status.blobPath",
                path,
                format!(
                    "must name this object's own core file {:?}",
                    crate::coredump::core_file_name(&obj.metadata.name)
                ),
            ));
        }
    }
    errs
}

/// Validates an update of a `Coredump`: the crash facts and the blob location never change.
pub fn coredump_update(new: &Coredump, old: &Coredump) -> Vec<FieldError> {
    let mut errs = coredump(new);
    if new.spec != old.spec {
        errs.push(FieldError::immutable("spec"));
    }
    // A blob is never moved; it may only go, with the core (retention by signature).
    let evicted = new.status.blob_path.is_empty() && new.status.state == CoredumpState::Evicted;
    if new.status.blob_path != old.status.blob_path && !old.status.blob_path.is_empty() && !evicted
    {
        errs.push(FieldError::immutable("status.blobPath"));
    }
    errs
}

/// Validates a `CoredumpEndpoint` for create.
pub fn coredump_endpoint(obj: &CoredumpEndpoint) -> Vec<FieldError> {
    let mut errs = object_meta(&obj.metadata);
    if obj.spec.pod_uid.is_empty() {
        errs.push(FieldError::required("spec.podUID"));
    } else if let Err(e) = path_segment(&obj.spec.pod_uid) {
        errs.push(FieldError::invalid("spec.podUID", &obj.spec.pod_uid, e));
    }
    errs
}

/// Validates an update of a `CoredumpEndpoint`: `spec.podUID` is immutable.
pub fn coredump_endpoint_update(new: &CoredumpEndpoint, old: &CoredumpEndpoint) -> Vec<FieldError> {
    let mut errs = coredump_endpoint(new);
    if new.spec.pod_uid != old.spec.pod_uid {
        errs.push(FieldError::immutable("spec.podUID"));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CoredumpEndpointSpec;

    #[test]
    fn labels() {
        for ok in ["a", "abc-1", "0", "a-b-c", &"a".repeat(63)] {
            assert_eq!(dns1123_label(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64), "é"] {
            assert!(dns1123_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subdomains() {
        for ok in [
            "a.b",
            "pod-1.x",
            "a",
            &format!("{}.{}", "a".repeat(63), "b".repeat(63)),
        ] {
            assert_eq!(dns1123_subdomain(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "A.b", &"a.".repeat(127)] {
            assert!(dns1123_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn annotations_are_limited_in_total_like_kubernetes() {
        let mut meta = ObjectMeta {
            name: "x".into(),
            namespace: "ns".into(),
            ..Default::default()
        };
        let key = "example.com/a";
        meta.annotations
            .insert(key.into(), "v".repeat(MAX_ANNOTATION_BYTES - key.len()));
        assert_eq!(object_meta(&meta), vec![], "exactly the limit is accepted");
        meta.annotations.insert("b".into(), String::new());
        let errs = object_meta(&meta);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "metadata.annotations");
        assert!(errs[0].detail.contains("262144"), "{}", errs[0].detail);
    }

    #[test]
    fn segments() {
        assert_eq!(path_segment("app-1"), Ok(()));
        assert_eq!(path_segment("x.core.zst"), Ok(()));
        for bad in ["", ".", "..", "a/b", "../x", "a\0b", "a\\b"] {
            assert!(path_segment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn label_keys_and_values() {
        assert_eq!(label_key("app"), Ok(()));
        assert_eq!(label_key("example.com/App_1"), Ok(()));
        assert!(label_key("Example.com/app").is_err());
        assert!(label_key("a/").is_err());
        assert!(label_key("-a").is_err());
        assert_eq!(label_value(""), Ok(()));
        assert_eq!(label_value("V1.2_x"), Ok(()));
        assert!(label_value("a b").is_err());
        assert!(label_value(&"x".repeat(64)).is_err());
    }

    fn endpoint(name: &str, ns: &str, uid: &str) -> CoredumpEndpoint {
        CoredumpEndpoint {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: ns.into(),
                ..Default::default()
            },
            spec: CoredumpEndpointSpec {
                pod_uid: uid.into(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_validation_reports_each_field() {
        assert_eq!(coredump_endpoint(&endpoint("p", "ns", "u")), vec![]);
        let errs = coredump_endpoint(&endpoint("Bad_Name", "", "../x"));
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["metadata.name", "metadata.namespace", "spec.podUID"]
        );
        assert_eq!(errs[1].kind, FieldErrorKind::Required);
        assert_eq!(errs[1].cause_reason(), "FieldValueRequired");
        assert_eq!(errs[2].kind, FieldErrorKind::Invalid("../x".into()));
        let missing = coredump_endpoint(&endpoint("p", "ns", ""));
        assert_eq!(missing[0].to_string(), "spec.podUID: Required value");
    }

    #[test]
    fn endpoint_pod_uid_is_immutable() {
        let errs = coredump_endpoint_update(&endpoint("p", "ns", "u2"), &endpoint("p", "ns", "u1"));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.podUID");
        assert_eq!(errs[0].kind, FieldErrorKind::Immutable);
        assert_eq!(
            errs[0].to_string(),
            "spec.podUID: Invalid value: field is immutable"
        );
    }

    fn core(ns: &str, uid: Option<&str>, blob: &str) -> Coredump {
        let mut c = Coredump::default();
        c.metadata.name = "c1".into();
        c.metadata.namespace = ns.into();
        c.spec.crash_time = "2024-05-01T10:00:00Z".into();
        c.spec.pod_uid = uid.map(str::to_owned);
        c.status.blob_path = blob.into();
        c
    }

    #[test]
    fn coredump_blob_path_stays_in_its_namespace_and_pod() {
        assert_eq!(
            coredump(&core("ns", Some("u"), "ns/u/app/c1.core.zst")),
            vec![]
        );
        assert_eq!(
            coredump(&core("ns", None, "ns/host/app/c1.core.zst")),
            vec![]
        );
        let errs = coredump(&core("ns", None, "ns/u/app/c1.core.zst"));
        assert_eq!(
            errs[0].field, "status.blobPath",
            "no pod UID: the host directory only"
        );
        for bad in [
            "other/u/app/c1.core.zst",
            "ns/v/app/x",
            "ns/u/../x",
            "ns/u/app",
            "/ns/u/a/b",
            // Another crash's core in the same pod, a host crash's directory for a pod crash.
            "ns/u/app/c2.core.zst",
            "ns/u/app/c1.json",
            "ns/host/app/c1.core.zst",
        ] {
            let errs = coredump(&core("ns", Some("u"), bad));
            assert_eq!(errs.len(), 1, "{bad}");
            assert_eq!(errs[0].field, "status.blobPath", "{bad}");
        }
    }

    #[test]
    fn coredump_needs_rfc3339_crash_time() {
        let mut c = core("ns", None, "");
        c.spec.crash_time = "yesterday".into();
        let errs = coredump(&c);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.crashTime");
        c.spec.crash_time.clear();
        assert_eq!(coredump(&c)[0].kind, FieldErrorKind::Required);
    }

    #[test]
    fn coredump_spec_is_immutable_status_is_not() {
        let old = core("ns", Some("u"), "ns/u/app/c1.core.zst");
        let mut new = old.clone();
        new.status.message = "symbolized".into();
        assert_eq!(coredump_update(&new, &old), vec![]);
        new.spec.pid = 42;
        assert_eq!(coredump_update(&new, &old)[0].field, "spec");
        let mut moved = old.clone();
        moved.status.blob_path = "ns/u/app/other.core.zst".into();
        assert_eq!(coredump_update(&moved, &old)[0].field, "status.blobPath");
        // Going away with its core is the one change a blob path may see.
        let mut gone = old.clone();
        gone.status.blob_path.clear();
        assert_eq!(coredump_update(&gone, &old)[0].field, "status.blobPath");
        gone.status.state = CoredumpState::Evicted;
        assert_eq!(coredump_update(&gone, &old), vec![]);
    }

    #[test]
    fn bad_labels_are_reported() {
        let mut ep = endpoint("p", "ns", "u");
        ep.metadata.labels.insert("ok".into(), "bad value".into());
        ep.metadata.labels.insert("bad key!".into(), "v".into());
        let errs = coredump_endpoint(&ep);
        assert_eq!(errs.len(), 2);
        assert!(errs.iter().any(|e| e.field == "metadata.labels[ok]"));
        assert!(errs.iter().any(|e| e.field == "metadata.labels"));
    }
}
