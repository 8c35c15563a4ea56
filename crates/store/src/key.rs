//! One textual encoding of [`ObjectKey`] shared by every backend, so that "key order" means the
//! same thing everywhere: the byte order of `<namespace>/<name>` within a resource, which is also
//! the order Kubernetes lists objects in when they live in etcd.

use crate::StoreError;
use crate::metadata::ObjectKey;

/// Checks one key component: non-empty, no `/` (the separator), no NUL.
fn check_component(what: &'static str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() || value.contains('/') || value.contains('\0') {
        return Err(StoreError::Invalid {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// Validates every component of `key`.
pub(crate) fn validate(key: &ObjectKey) -> Result<(), StoreError> {
    check_component("resource name", &key.resource)?;
    check_component("namespace", &key.namespace)?;
    check_component("object name", &key.name)
}

/// `<resource>/<namespace>/<name>`; the caller has validated `key`.
pub(crate) fn encode(key: &ObjectKey) -> String {
    format!("{}/{}/{}", key.resource, key.namespace, key.name)
}

/// Inverse of [`encode`]; `None` if `text` is not three non-empty segments.
pub(crate) fn decode(text: &str) -> Option<ObjectKey> {
    let mut parts = text.splitn(3, '/');
    let resource = parts.next()?;
    let namespace = parts.next()?;
    let name = parts.next()?;
    if resource.is_empty() || namespace.is_empty() || name.is_empty() || name.contains('/') {
        return None;
    }
    Some(ObjectKey {
        resource: resource.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// The half-open range `[start, end)` of encoded keys of `resource`, optionally in one namespace.
/// `end` replaces the trailing `/` with `0`, the next byte, so the range is exactly the prefix.
pub(crate) fn prefix_range(
    resource: &str,
    namespace: Option<&str>,
) -> Result<(String, String), StoreError> {
    check_component("resource name", resource)?;
    let start = match namespace {
        Some(ns) => {
            check_component("namespace", ns)?;
            format!("{resource}/{ns}/")
        }
        None => format!("{resource}/"),
    };
    let mut end = start.clone();
    end.pop();
    end.push('0');
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str) -> ObjectKey {
        ObjectKey {
            resource: "coredumps".into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let k = key("default", "crash-1.x");
        assert_eq!(encode(&k), "coredumps/default/crash-1.x");
        assert_eq!(decode(&encode(&k)), Some(k));
        assert_eq!(decode("coredumps/default"), None);
        assert_eq!(decode("coredumps//x"), None);
        assert_eq!(decode("coredumps/a/b/c"), None);
    }

    #[test]
    fn rejects_separators_and_empty_components() {
        assert!(validate(&key("a/b", "x")).is_err());
        assert!(validate(&key("a", "")).is_err());
        assert!(validate(&key("a", "x\0")).is_err());
        assert!(validate(&key("a", "x")).is_ok());
    }

    #[test]
    fn prefix_range_holds_exactly_the_prefix() {
        let (start, end) = prefix_range("coredumps", Some("a")).unwrap();
        for inside in ["coredumps/a/x", "coredumps/a/zzz"] {
            assert!(
                start.as_str() <= inside && inside < end.as_str(),
                "{inside}"
            );
        }
        for outside in [
            "coredumps/a-b/x",
            "coredumps/ab/x",
            "coredumps/b/x",
            "coredumpsx/a/x",
        ] {
            assert!(
                !(start.as_str() <= outside && outside < end.as_str()),
                "{outside}"
            );
        }
        let (start, end) = prefix_range("coredumps", None).unwrap();
        assert!(start.as_str() <= "coredumps/a-b/x" && "coredumps/z/x" < end.as_str());
        assert!("coredumpsx/a/b" >= end.as_str());
    }
}
