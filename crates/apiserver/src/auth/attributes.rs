//! Request attributes as k8s.io/apiserver's RequestInfo computes them: resource requests under
//! `/apis/<group>/<version>/[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]` get a verb
//! from the HTTP method (GET named = get, GET collection = list or watch, POST = create, PUT =
//! update, PATCH = patch, DELETE = delete or deletecollection); everything else is a
//! non-resource request whose verb is the lowercased method.

use axum::http::Method;

/// What is being done to what (the input of authorization).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RequestAttributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or for
    /// non-resource requests the lowercased method.
    pub verb: String,
    /// Whether this is a resource request.
    pub resource_request: bool,
    /// Namespace, empty for all namespaces or non-namespaced paths.
    pub namespace: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource, e.g. `core`.
    pub subresource: String,
    /// Object name (from the path, or a `metadata.name=` field selector on list/watch).
    pub name: String,
    /// API group.
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Request path.
    pub path: String,
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    let uri = format!("/?{q}");
    uri.parse::<axum::http::Uri>()
        .ok()
        .and_then(|u| axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&u).ok())
        .map(|axum::extract::Query(v)| v)
        .unwrap_or_default()
}

fn is_watch(value: &str) -> bool {
    !matches!(value, "" | "false" | "0")
}

/// Computes the attributes of a request.
pub fn request_attributes(method: &Method, path: &str, query: Option<&str>) -> RequestAttributes {
    let mut attrs = RequestAttributes {
        verb: method.as_str().to_ascii_lowercase(),
        path: path.to_owned(),
        ..Default::default()
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest: &[&str] = match segments.as_slice() {
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            attrs.api_group = (*group).to_owned();
            attrs.api_version = (*version).to_owned();
            rest
        }
        ["api", version, rest @ ..] if !rest.is_empty() => {
            attrs.api_version = (*version).to_owned();
            rest
        }
        _ => return attrs,
    };
    let rest = match rest {
        ["namespaces", ns, tail @ ..] => {
            attrs.namespace = (*ns).to_owned();
            if tail.is_empty() {
                // `/namespaces/<ns>` is the namespace object itself.
                attrs.resource = "namespaces".to_owned();
                attrs.name = (*ns).to_owned();
                attrs.namespace.clear();
                &[][..]
            } else {
                tail
            }
        }
        other => other,
    };
    attrs.resource_request = true;
    if let Some(r) = rest.first() {
        attrs.resource = (*r).to_owned();
    }
    if let Some(n) = rest.get(1) {
        attrs.name = (*n).to_owned();
    }
    if let Some(s) = rest.get(2) {
        attrs.subresource = (*s).to_owned();
    }
    let named = !attrs.name.is_empty();
    let pairs = query_pairs(query);
    let param = |k: &str| {
        pairs
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    };
    attrs.verb = match *method {
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD if param("watch").is_some_and(is_watch) => "watch",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "",
    }
    .to_owned();
    if !named
        && matches!(attrs.verb.as_str(), "list" | "watch" | "deletecollection")
        && let Some(fs) = param("fieldSelector")
        && let Ok(sel) =
            coredump_api::FieldSelector::parse(fs, &["metadata.name", "metadata.namespace"])
        && let Some(n) = sel.exact_name()
    {
        attrs.name = n.to_owned();
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/apis/coredump.fujitsu.com/v1alpha1";

    fn attrs(
        method: Method,
        path: &str,
        query: Option<&str>,
    ) -> (String, String, String, String, String) {
        let a = request_attributes(&method, &format!("{BASE}{path}"), query);
        assert!(a.resource_request);
        assert_eq!(a.api_group, "coredump.fujitsu.com");
        assert_eq!(a.api_version, "v1alpha1");
        (a.verb, a.namespace, a.resource, a.name, a.subresource)
    }

    fn t(v: &str, ns: &str, r: &str, n: &str, s: &str) -> (String, String, String, String, String) {
        (v.into(), ns.into(), r.into(), n.into(), s.into())
    }

    #[test]
    fn verbs() {
        assert_eq!(
            attrs(Method::GET, "/coredumps", None),
            t("list", "", "coredumps", "", "")
        );
        assert_eq!(
            attrs(Method::GET, "/namespaces/a/coredumps", None),
            t("list", "a", "coredumps", "", "")
        );
        assert_eq!(
            attrs(Method::GET, "/namespaces/a/coredumps", Some("watch=true")),
            t("watch", "a", "coredumps", "", "")
        );
        assert_eq!(
            attrs(Method::GET, "/namespaces/a/coredumps", Some("watch=1")),
            t("watch", "a", "coredumps", "", "")
        );
        assert_eq!(
            attrs(Method::GET, "/namespaces/a/coredumps", Some("watch=false")),
            t("list", "a", "coredumps", "", "")
        );
        assert_eq!(
            attrs(Method::GET, "/namespaces/a/coredumps/x", None),
            t("get", "a", "coredumps", "x", "")
        );
        assert_eq!(
            attrs(Method::GET, "/namespaces/a/coredumps/x/core", None),
            t("get", "a", "coredumps", "x", "core")
        );
        assert_eq!(
            attrs(Method::POST, "/namespaces/a/coredumps", None),
            t("create", "a", "coredumps", "", "")
        );
        assert_eq!(
            attrs(Method::PUT, "/namespaces/a/coredumps/x", None),
            t("update", "a", "coredumps", "x", "")
        );
        assert_eq!(
            attrs(Method::PATCH, "/namespaces/a/coredumps/x", None),
            t("patch", "a", "coredumps", "x", "")
        );
        assert_eq!(
            attrs(Method::DELETE, "/namespaces/a/coredumps/x", None),
            t("delete", "a", "coredumps", "x", "")
        );
        assert_eq!(
            attrs(Method::DELETE, "/namespaces/a/coredumps", None),
            t("deletecollection", "a", "coredumps", "", "")
        );
    }

    #[test]
    fn field_selector_names_the_object() {
        assert_eq!(
            attrs(
                Method::GET,
                "/namespaces/a/coredumps",
                Some("watch=true&fieldSelector=metadata.name%3Dx&resourceVersion=0")
            ),
            t("watch", "a", "coredumps", "x", "")
        );
        assert_eq!(
            attrs(
                Method::GET,
                "/coredumps",
                Some("fieldSelector=metadata.name!%3Dx")
            ),
            t("list", "", "coredumps", "", "")
        );
    }

    #[test]
    fn non_resource_paths() {
        for p in [
            "/apis",
            "/apis/coredump.fujitsu.com",
            "/apis/coredump.fujitsu.com/v1alpha1",
            "/openapi/v2",
            "/healthz",
        ] {
            let a = request_attributes(&Method::GET, p, None);
            assert!(!a.resource_request, "{p}");
            assert_eq!(a.verb, "get");
            assert_eq!(a.path, p);
        }
        let a = request_attributes(&Method::POST, "/apis", None);
        assert_eq!(a.verb, "post");
    }
}
