//! Least-privilege RBAC: one ServiceAccount per component and exactly the rights its code uses,
//! plus two ClusterRoles for people (`coredump-viewer`, `coredump-debugger`), because reading a
//! core is reading a process's memory and must be granted on its own.
//!
//! | subject | rights |
//! |---|---|
//! | `coredump-api` | pods get (fills `spec.podUID`); `system:auth-delegator` (TokenReview, SubjectAccessReview); `extension-apiserver-authentication-reader` in `kube-system` |
//! | `coredump-gc` | pods, namespaces get/list/watch; coredumps, coredumpendpoints get/list/delete |
//! | `coredump-agent` | pods get/list/watch (its informer filters by node); namespaces get/list/watch (opt-out label); events create/get/patch (core and `events.k8s.io`: one series per pod, counted up); coredumps create/get; in its own namespace, get of its own DaemonSet only (at SIGTERM: restart or uninstall?) |
//! | `coredump-viewer` | coredumps, coredumpendpoints get/list/watch |
//! | `coredump-debugger` | viewer + coredumpendpoints create, `coredumpendpoints/dump` get, `coredumps/core` get |

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use crate::names::{
    AGENT_DAEMONSET, AGENT_SERVICE_ACCOUNT, API_GROUP, API_SERVICE_ACCOUNT, DEBUGGER_ROLE,
    GC_SERVICE_ACCOUNT, VIEWER_ROLE, install_scoped,
};
use crate::options::DeployOptions;
use crate::render::{Object, meta};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..Default::default()
    }
}

fn service_account_subject(opts: &DeployOptions, name: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(opts.namespace.clone()),
        api_group: None,
    }
}

fn cluster_role(name: String, component: &str, rules: Vec<PolicyRule>) -> Object {
    Object::ClusterRole(ClusterRole {
        metadata: meta(&name, None, component),
        rules: Some(rules),
        aggregation_rule: None,
    })
}

fn cluster_binding(
    opts: &DeployOptions,
    name: String,
    component: &str,
    role: &str,
    account: &str,
) -> Object {
    Object::ClusterRoleBinding(ClusterRoleBinding {
        metadata: meta(&name, None, component),
        role_ref: RoleRef {
            api_group: Some(RBAC_GROUP.into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![service_account_subject(opts, account)]),
    })
}

/// The three ServiceAccounts.
pub(crate) fn service_accounts(opts: &DeployOptions) -> Vec<Object> {
    [
        (API_SERVICE_ACCOUNT, "apiserver"),
        (GC_SERVICE_ACCOUNT, "gc"),
        (AGENT_SERVICE_ACCOUNT, "agent"),
    ]
    .into_iter()
    .map(|(name, component)| {
        Object::ServiceAccount(ServiceAccount {
            metadata: meta(name, Some(&opts.namespace), component),
            ..Default::default()
        })
    })
    .collect()
}

/// Roles and bindings of the components, then the two user-facing ClusterRoles.
pub(crate) fn rbac(opts: &DeployOptions) -> Vec<Object> {
    let ns = opts.namespace.as_str();
    let api = install_scoped(ns, "apiserver");
    let gc = install_scoped(ns, "gc");
    let agent = install_scoped(ns, "agent");
    let mut objects = vec![
        cluster_role(
            api.clone(),
            "apiserver",
            vec![rule(&[""], &["pods"], &["get"])],
        ),
        cluster_binding(opts, api.clone(), "apiserver", &api, API_SERVICE_ACCOUNT),
        cluster_binding(
            opts,
            install_scoped(ns, "apiserver-auth-delegator"),
            "apiserver",
            "system:auth-delegator",
            API_SERVICE_ACCOUNT,
        ),
        Object::RoleBinding(RoleBinding {
            metadata: meta(
                &install_scoped(ns, "apiserver-authentication-reader"),
                Some("kube-system"),
                "apiserver",
            ),
            role_ref: RoleRef {
                api_group: Some(RBAC_GROUP.into()),
                kind: "Role".into(),
                name: "extension-apiserver-authentication-reader".into(),
            },
            subjects: Some(vec![service_account_subject(opts, API_SERVICE_ACCOUNT)]),
        }),
        cluster_role(
            gc.clone(),
            "gc",
            vec![
                rule(&[""], &["pods", "namespaces"], &["get", "list", "watch"]),
                rule(
                    &[API_GROUP],
                    &["coredumps", "coredumpendpoints"],
                    &["get", "list", "delete"],
                ),
            ],
        ),
        cluster_binding(opts, gc.clone(), "gc", &gc, GC_SERVICE_ACCOUNT),
        cluster_role(
            agent.clone(),
            "agent",
            vec![
                rule(&[""], &["pods", "namespaces"], &["get", "list", "watch"]),
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "get", "patch"],
                ),
                rule(&[API_GROUP], &["coredumps"], &["create", "get"]),
            ],
        ),
        cluster_binding(opts, agent.clone(), "agent", &agent, AGENT_SERVICE_ACCOUNT),
        // At SIGTERM the agent reads its DaemonSet: still there means a restart (it leaves
        // core_pattern to the pipe handler), gone or deleting means an uninstall (it restores).
        Object::Role(Role {
            metadata: meta("coredump-agent-daemonset", Some(ns), "agent"),
            rules: Some(vec![PolicyRule {
                resource_names: Some(vec![AGENT_DAEMONSET.into()]),
                ..rule(&["apps"], &["daemonsets"], &["get"])
            }]),
        }),
        Object::RoleBinding(RoleBinding {
            metadata: meta("coredump-agent-daemonset", Some(ns), "agent"),
            role_ref: RoleRef {
                api_group: Some(RBAC_GROUP.into()),
                kind: "Role".into(),
                name: "coredump-agent-daemonset".into(),
            },
            subjects: Some(vec![service_account_subject(opts, AGENT_SERVICE_ACCOUNT)]),
        }),
    ];
    let read = rule(
        &[API_GROUP],
        &["coredumps", "coredumpendpoints"],
        &["get", "list", "watch"],
    );
    objects.push(cluster_role(VIEWER_ROLE.into(), "rbac", vec![read.clone()]));
    objects.push(cluster_role(
        DEBUGGER_ROLE.into(),
        "rbac",
        vec![
            read,
            rule(&[API_GROUP], &["coredumpendpoints"], &["create"]),
            rule(
                &[API_GROUP],
                &[
                    "coredumpendpoints/dump",
                    "coredumps/core",
                    "coredumps/log",
                    "buildid/executable",
                    "buildid/debuginfo",
                ],
                &["get"],
            ),
        ],
    ));
    objects
}
