//! Request paths of `coredump.fujitsu.com/v1alpha1` as kube-apiserver routes them to us: one
//! place builds them (with names percent-encoded), so the plugin, the agent, the GC and tests
//! never format a URL by hand.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::{COREDUMP_ENDPOINTS, COREDUMPS, GROUP, VERSION};

/// What stays literal in a path segment or query value: RFC 3986's unreserved characters.
const UNRESERVED_ONLY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment or query value (names may come from a command line).
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED_ONLY).to_string()
}

/// `/apis/<group>/<version>`.
pub fn group_path() -> String {
    format!("/apis/{GROUP}/{VERSION}")
}

/// The collection of `resource` (a plural) in `namespace`, or in all namespaces when `None`.
pub fn collection_path(namespace: Option<&str>, resource: &str) -> String {
    match namespace {
        Some(ns) => format!("{}/namespaces/{}/{resource}", group_path(), encode(ns)),
        None => format!("{}/{resource}", group_path()),
    }
}

/// A namespaced object (`resource` a plural), or its collection when `name` is `None`.
pub fn object_path(namespace: &str, resource: &str, name: Option<&str>) -> String {
    let mut path = collection_path(Some(namespace), resource);
    if let Some(name) = name {
        path.push('/');
        path.push_str(&encode(name));
    }
    path
}

/// The `core` subresource of a `Coredump`: the decompressed core, `Range` honoured.
pub fn core_path(namespace: &str, name: &str) -> String {
    format!("{}/core", object_path(namespace, COREDUMPS, Some(name)))
}

/// The `dump` subresource of a `CoredumpEndpoint` (a `tar.gz` of the pod's cores), optionally
/// of one container.
pub fn dump_path(namespace: &str, pod: &str, container: Option<&str>) -> String {
    let mut path = format!(
        "{}/dump",
        object_path(namespace, COREDUMP_ENDPOINTS, Some(pod))
    );
    if let Some(c) = container {
        path.push_str("?container=");
        path.push_str(&encode(c));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_names() {
        assert_eq!(
            core_path("host", "a.b-1"),
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/host/coredumps/a.b-1/core"
        );
        assert_eq!(
            dump_path("ns", "web", Some("../x")),
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/ns/coredumpendpoints/web/dump?container=..%2Fx"
        );
        assert_eq!(
            collection_path(None, COREDUMPS),
            "/apis/coredump.fujitsu.com/v1alpha1/coredumps"
        );
        assert_eq!(
            object_path("a b", COREDUMPS, Some("x/y")),
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/a%20b/coredumps/x%2Fy"
        );
    }
}
