//! Each ServiceAccount of an install made by `deploy.sh`, and users bound to `coredump-viewer`
//! or `coredump-debugger`, have exactly the intended rights on a real kube-apiserver: allowed
//! where intended, denied elsewhere (`kubectl auth can-i` and SelfSubjectAccessReview), and no
//! rule beyond the expected ones (SelfSubjectRulesReview minus what any such subject has).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::BTreeSet;

use common::{Install, Who, kubectl_stdin};
use coredump_testplane::ControlPlane;
use serde_json::Value;

/// What is asked: `RESOURCE[.GROUP][/NAME][:SUBRESOURCE]`, as in the cases below.
struct Ask<'a> {
    verb: &'a str,
    resource: &'a str,
    group: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
    namespace: &'a str,
}

impl<'a> Ask<'a> {
    fn parse(verb: &'a str, spec: &'a str, namespace: &'a str) -> Ask<'a> {
        let (rest, subresource) = match spec.split_once(':') {
            Some((rest, sub)) => (rest, Some(sub)),
            None => (spec, None),
        };
        let (typ, name) = match rest.split_once('/') {
            Some((typ, name)) => (typ, Some(name)),
            None => (rest, None),
        };
        let (resource, group) = typ.split_once('.').unwrap_or((typ, ""));
        Ask {
            verb,
            resource,
            group,
            name,
            subresource,
            namespace,
        }
    }

    /// `kubectl auth can-i` arguments for this question.
    fn can_i_args(&self) -> Vec<String> {
        let mut typ = self.resource.to_string();
        if !self.group.is_empty() {
            typ = format!("{typ}.{}", self.group);
        }
        if let Some(name) = self.name {
            typ = format!("{typ}/{name}");
        }
        let mut args = vec!["auth".into(), "can-i".into(), self.verb.into(), typ];
        if let Some(sub) = self.subresource {
            args.push(format!("--subresource={sub}"));
        }
        args.extend([
            "-n".into(),
            self.namespace.into(),
            "--request-timeout=30s".into(),
        ]);
        args
    }
}

/// The answer of a SelfSubjectAccessReview made as `who` (what `kubectl auth can-i` sends).
fn access_review(cp: &ControlPlane, who: &Who, ask: &Ask) -> bool {
    let review = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {
            "namespace": ask.namespace, "verb": ask.verb, "group": ask.group,
            "resource": ask.resource, "subresource": ask.subresource.unwrap_or(""),
            "name": ask.name.unwrap_or(""),
        }},
    });
    let answer = kubectl_stdin(cp, who, &["create", "-f", "-"], &review);
    answer["status"]["allowed"].as_bool().unwrap()
}

/// `kubectl auth can-i ...` as `who`: true for "yes" (exit 0), false for "no" (exit 1).
fn can_i(cp: &ControlPlane, who: &Who, ask: &Ask) -> bool {
    let mut args = ask.can_i_args();
    args.extend(who.flags.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cp.kubectl(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match (out.status.code(), stdout.as_str()) {
        (Some(0), "yes") => true,
        (Some(1), "no") => false,
        _ => panic!(
            "kubectl {args:?}: {:?} {stdout:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Whether `who` may do `ask`. kubectl's `auth can-i` maps the resource through discovery, which
/// cannot know our group while its APIService is unavailable (no pod runs here): it then asks
/// about a resource literally named `coredumps.coredump.fujitsu.com` in the core group. For our
/// group we send the SelfSubjectAccessReview ourselves; for the others both must agree.
fn allowed(cp: &ControlPlane, who: &Who, ask: &Ask) -> bool {
    let reviewed = access_review(cp, who, ask);
    if ask.group != CD {
        assert_eq!(
            can_i(cp, who, ask),
            reviewed,
            "kubectl auth can-i {:?}",
            ask.can_i_args()
        );
    }
    reviewed
}

const CD: &str = "coredump.fujitsu.com";

#[test]
fn service_accounts_and_user_roles_have_exactly_the_intended_rights() {
    let install = Install::new("rbac");
    let cp = install.cp;
    let ns = install.ns.as_str();
    let alice = format!("alice-{ns}");
    let bob = format!("bob-{ns}");
    for (binding, role, user) in [
        ("alice-views", "coredump-viewer", &alice),
        ("bob-debugs", "coredump-debugger", &bob),
    ] {
        let clusterrole = format!("--clusterrole={role}");
        let user = format!("--user={user}");
        cp.kubectl_ok(&[
            "create",
            "rolebinding",
            binding,
            &clusterrole,
            &user,
            "-n",
            ns,
        ])
        .unwrap();
    }

    let api = Who::service_account(ns, "coredump-api");
    let gc = Who::service_account(ns, "coredump-gc");
    let agent = Who::service_account(ns, "coredump-agent");
    let viewer = Who::user(&alice);
    let debugger = Who::user(&bob);
    let coredumps = format!("coredumps.{CD}");
    let endpoints = format!("coredumpendpoints.{CD}");
    let dump = format!("coredumpendpoints.{CD}:dump");
    let core = format!("coredumps.{CD}:core");
    let tokenreviews = "tokenreviews.authentication.k8s.io";
    let sars = "subjectaccessreviews.authorization.k8s.io";
    let events_k8s = "events.events.k8s.io";
    let auth_cm = "configmaps/extension-apiserver-authentication";
    let other = "default";

    // (who, verb, resource, namespace, allowed)
    let cases: Vec<(&Who, &str, &str, &str, bool)> = vec![
        (&api, "get", "pods", other, true),
        (&api, "create", tokenreviews, ns, true),
        (&api, "create", sars, ns, true),
        (&api, "get", auth_cm, "kube-system", true),
        (&api, "watch", "configmaps", "kube-system", false),
        (&api, "get", "configmaps/other", "kube-system", false),
        (&api, "list", "pods", ns, false),
        (&api, "create", "pods", ns, false),
        (&api, "get", "secrets", ns, false),
        (&api, "get", &coredumps, ns, false),
        (&api, "get", &dump, ns, false),
        (&gc, "list", "pods", other, true),
        (&gc, "watch", "namespaces", ns, true),
        (&gc, "delete", &coredumps, other, true),
        (&gc, "delete", &endpoints, ns, true),
        (&gc, "list", &endpoints, ns, true),
        (&gc, "create", "pods", ns, false),
        (&gc, "delete", "pods", ns, false),
        (&gc, "create", &coredumps, ns, false),
        (&gc, "update", &coredumps, ns, false),
        (&gc, "get", &dump, ns, false),
        (&gc, "get", &core, ns, false),
        (&gc, "create", tokenreviews, ns, false),
        (&gc, "get", "secrets", ns, false),
        (&agent, "list", "pods", other, true),
        (&agent, "watch", "pods", other, true),
        (&agent, "get", "namespaces", ns, true),
        (&agent, "create", "events", other, true),
        (&agent, "patch", events_k8s, other, true),
        (&agent, "get", events_k8s, other, true),
        (&agent, "delete", events_k8s, other, false),
        (&agent, "list", events_k8s, other, false),
        (&agent, "create", &coredumps, other, true),
        (&agent, "get", &coredumps, other, true),
        (&agent, "delete", &coredumps, other, false),
        (&agent, "list", &coredumps, other, false),
        (&agent, "update", &coredumps, other, false),
        (&agent, "get", &core, other, false),
        (&agent, "create", &endpoints, other, false),
        (&agent, "delete", "pods", other, false),
        (&agent, "get", "secrets", other, false),
        (&agent, "create", tokenreviews, ns, false),
        // Its own DaemonSet, to tell a restart from an uninstall at SIGTERM; nothing else.
        (&agent, "get", "daemonsets.apps/kcdt-ds", ns, true),
        (&agent, "get", "daemonsets.apps/other", ns, false),
        (&agent, "list", "daemonsets.apps", ns, false),
        (&agent, "get", "daemonsets.apps/kcdt-ds", other, false),
        (&agent, "update", "daemonsets.apps/kcdt-ds", ns, false),
        (&viewer, "get", &coredumps, ns, true),
        (&viewer, "list", &endpoints, ns, true),
        (&viewer, "watch", &coredumps, ns, true),
        (&viewer, "get", &dump, ns, false),
        (&viewer, "get", &core, ns, false),
        (&viewer, "create", &endpoints, ns, false),
        (&viewer, "delete", &coredumps, ns, false),
        (&viewer, "list", &coredumps, other, false),
        (&viewer, "create", tokenreviews, ns, false),
        (&debugger, "get", &dump, ns, true),
        (&debugger, "get", &core, ns, true),
        (&debugger, "create", &endpoints, ns, true),
        (&debugger, "list", &coredumps, ns, true),
        (&debugger, "delete", &coredumps, ns, false),
        (&debugger, "delete", &endpoints, ns, false),
        (&debugger, "get", &dump, other, false),
        (&debugger, "list", "pods", ns, false),
        (&debugger, "create", tokenreviews, ns, false),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(who, verb, resource, namespace, expected)| {
            allowed(cp, who, &Ask::parse(verb, resource, namespace)) != *expected
        })
        .map(|(who, verb, resource, namespace, allowed)| {
            format!(
                "{} {verb} {resource} -n {namespace}: expected allowed={allowed}",
                who.name
            )
        })
        .collect();
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));

    // Exactly: every rule a subject has, minus what any authenticated subject of its kind has.
    let sa_baseline = Who::service_account(ns, "nobody");
    let user_baseline = Who::user(&format!("nobody-{ns}"));
    let rules = |who: &Who, namespace: &str| rules_of(cp, who, namespace);
    let extra = |who: &Who, baseline: &Who, namespace: &str| -> BTreeSet<String> {
        let base = rules(baseline, namespace);
        rules(who, namespace).difference(&base).cloned().collect()
    };
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let delegator = [
        "create authentication.k8s.io/tokenreviews",
        "create authorization.k8s.io/subjectaccessreviews",
    ];
    let mut api_expected = set(&delegator);
    api_expected.insert("get /pods".into());
    assert_eq!(extra(&api, &sa_baseline, ns), api_expected);
    let mut api_in_kube_system = api_expected.clone();
    for verb in ["get", "list", "watch"] {
        api_in_kube_system.insert(format!(
            "{verb} /configmaps[extension-apiserver-authentication]"
        ));
    }
    assert_eq!(extra(&api, &sa_baseline, "kube-system"), api_in_kube_system);
    assert_eq!(
        extra(&gc, &sa_baseline, ns),
        set(&[
            "get /pods",
            "list /pods",
            "watch /pods",
            "get /namespaces",
            "list /namespaces",
            "watch /namespaces",
            "get coredump.fujitsu.com/coredumps",
            "list coredump.fujitsu.com/coredumps",
            "delete coredump.fujitsu.com/coredumps",
            "get coredump.fujitsu.com/coredumpendpoints",
            "list coredump.fujitsu.com/coredumpendpoints",
            "delete coredump.fujitsu.com/coredumpendpoints",
        ])
    );
    assert_eq!(
        extra(&agent, &sa_baseline, other),
        set(&[
            "get /pods",
            "list /pods",
            "watch /pods",
            "get /namespaces",
            "list /namespaces",
            "watch /namespaces",
            "create /events",
            "get /events",
            "patch /events",
            "create events.k8s.io/events",
            "get events.k8s.io/events",
            "patch events.k8s.io/events",
            "create coredump.fujitsu.com/coredumps",
            "get coredump.fujitsu.com/coredumps",
        ])
    );
    let viewer_rules = set(&[
        "get coredump.fujitsu.com/coredumps",
        "list coredump.fujitsu.com/coredumps",
        "watch coredump.fujitsu.com/coredumps",
        "get coredump.fujitsu.com/coredumpendpoints",
        "list coredump.fujitsu.com/coredumpendpoints",
        "watch coredump.fujitsu.com/coredumpendpoints",
    ]);
    assert_eq!(extra(&viewer, &user_baseline, ns), viewer_rules);
    assert_eq!(extra(&viewer, &user_baseline, other), BTreeSet::new());
    let mut debugger_rules = viewer_rules.clone();
    debugger_rules.extend(set(&[
        "create coredump.fujitsu.com/coredumpendpoints",
        "get coredump.fujitsu.com/coredumpendpoints/dump",
        "get coredump.fujitsu.com/coredumps/core",
        "get coredump.fujitsu.com/coredumps/log",
        "get coredump.fujitsu.com/buildid/executable",
        "get coredump.fujitsu.com/buildid/debuginfo",
    ]));
    assert_eq!(extra(&debugger, &user_baseline, ns), debugger_rules);
}

/// Every `verb group/resource[name]` a SelfSubjectRulesReview grants `who` in `namespace`.
fn rules_of(cp: &ControlPlane, who: &Who, namespace: &str) -> BTreeSet<String> {
    let review = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    });
    let review = kubectl_stdin(cp, who, &["create", "-f", "-"], &review);
    assert_eq!(review["status"]["incomplete"], false, "{review}");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in review["status"]["resourceRules"].as_array().unwrap() {
        let names = strings(&rule["resourceNames"]);
        let names: Vec<String> = if names.is_empty() {
            vec![String::new()]
        } else {
            names.iter().map(|n| format!("[{n}]")).collect()
        };
        for verb in strings(&rule["verbs"]) {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for name in &names {
                        out.insert(format!("{verb} {group}/{resource}{name}"));
                    }
                }
            }
        }
    }
    out
}
