//! `sh deploy/deploy.sh NS coredump DIR` run with the real binary, then `kubectl create -f
//! DIR/coredump.yaml` against a real kube-apiserver: every object is created and reads back as
//! generated, and each ServiceAccount (and a user bound to `coredump-viewer` or
//! `coredump-debugger`) has exactly the intended rights: allowed where intended, denied
//! elsewhere, and no rule beyond the expected ones. No kubelet runs, so no pod ever starts.
//!
//! The APIService and the user-facing ClusterRoles are cluster-wide singletons, so installs are
//! serialized; each test installs into a fresh namespace and deletes everything it created.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

use coredump_testplane::{ControlPlane, shared};
use serde_json::Value;

const SERVICE: &str = "coredump";

/// One install at a time: cluster-scoped names (APIService, user roles) are shared.
fn install_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `coredump-detector` binary, rebuilt if its sources changed: `bins::detector()` only
/// builds a missing binary, and `cargo test -p coredump-deploy` does not build other packages'
/// binaries, so a stale one would test yesterday's manifest.
fn fresh_detector() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.args([
                "build",
                "-q",
                "-p",
                "coredump-detector",
                "--bin",
                "coredump-detector",
            ]);
            if coredump_testkit::bins::target_dir().ends_with("release") {
                build.arg("--release");
            }
            assert!(
                build.status().unwrap().success(),
                "cargo build coredump-detector"
            );
            coredump_testkit::bins::detector()
        })
        .clone()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An install made by the real script; `Drop` deletes every object of the manifest.
struct Install {
    cp: &'static ControlPlane,
    ns: String,
    dir: tempfile::TempDir,
    script_stdout: String,
    created: Vec<String>,
    _lock: MutexGuard<'static, ()>,
}

impl Install {
    fn new(prefix: &str) -> Install {
        static N: AtomicU32 = AtomicU32::new(0);
        let lock = install_lock();
        let cp = shared().unwrap();
        let ns = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().unwrap();
        let bin_dir = fresh_detector().parent().unwrap().to_path_buf();
        let path = std::env::join_paths(
            std::iter::once(bin_dir)
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        )
        .unwrap();
        let out_dir = dir.path().join("coredump-yaml");
        let output = Command::new("sh")
            .arg("deploy/deploy.sh")
            .args([ns.as_str(), SERVICE])
            .arg(&out_dir)
            .current_dir(repo_root())
            .env("PATH", path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "deploy.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let script_stdout = String::from_utf8(output.stdout).unwrap();
        let mut install = Install {
            cp,
            ns,
            dir,
            script_stdout,
            created: Vec::new(),
            _lock: lock,
        };
        let manifest = install.manifest();
        let created = cp
            .kubectl_ok(&[
                "create",
                "-f",
                manifest.to_str().unwrap(),
                "--request-timeout=60s",
            ])
            .unwrap();
        install.created = created.lines().map(str::to_string).collect();
        install
    }

    fn out_dir(&self) -> PathBuf {
        self.dir.path().join("coredump-yaml")
    }

    fn manifest(&self) -> PathBuf {
        self.out_dir().join("coredump.yaml")
    }

    fn get(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json", "--request-timeout=30s"]);
        serde_json::from_str(&self.cp.kubectl_ok(&all).unwrap()).unwrap()
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        // Cluster-scoped objects go at once; the Namespace stays Terminating (no namespace
        // controller runs), which is harmless: every run uses a new name.
        let manifest = self.manifest();
        let out = self.cp.kubectl(&[
            "delete",
            "-f",
            manifest.to_str().unwrap_or_default(),
            "--ignore-not-found",
            "--wait=false",
            "--request-timeout=60s",
        ]);
        if !out.status.success() {
            eprintln!("cleanup failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// kubectl prints Secret data and `caBundle` base64-encoded.
fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn deploy_script_output_installs_every_object() {
    let install = Install::new("deploy");
    let ns = install.ns.as_str();
    let manifest = install.manifest();
    assert_eq!(
        install.script_stdout,
        format!(
            "wrote {0}\ninstall with: kubectl create -f {0}\n",
            manifest.display()
        )
    );

    let scoped = |component: &str| format!("coredump-detector:{ns}:{component}");
    let rbac = "rbac.authorization.k8s.io";
    let expected: BTreeSet<String> = [
        format!("namespace/{ns}"),
        "serviceaccount/coredump-api".into(),
        "serviceaccount/coredump-gc".into(),
        "serviceaccount/coredump-agent".into(),
        "secret/servercrt".into(),
        format!("service/{SERVICE}"),
        "service/etcd-svc".into(),
        "apiservice.apiregistration.k8s.io/v1alpha1.coredump.fujitsu.com".into(),
        format!("clusterrole.{rbac}/{}", scoped("apiserver")),
        format!("clusterrolebinding.{rbac}/{}", scoped("apiserver")),
        format!(
            "clusterrolebinding.{rbac}/{}",
            scoped("apiserver-auth-delegator")
        ),
        format!(
            "rolebinding.{rbac}/{}",
            scoped("apiserver-authentication-reader")
        ),
        format!("clusterrole.{rbac}/{}", scoped("gc")),
        format!("clusterrolebinding.{rbac}/{}", scoped("gc")),
        format!("clusterrole.{rbac}/{}", scoped("agent")),
        format!("clusterrolebinding.{rbac}/{}", scoped("agent")),
        format!("clusterrole.{rbac}/coredump-viewer"),
        format!("clusterrole.{rbac}/coredump-debugger"),
        "statefulset.apps/etcd".into(),
        format!("deployment.apps/{SERVICE}"),
        "deployment.apps/coredump-gc".into(),
        "daemonset.apps/kcdt-ds".into(),
    ]
    .into_iter()
    .map(|name| format!("{name} created"))
    .collect();
    let created: BTreeSet<String> = install.created.iter().cloned().collect();
    assert_eq!(created, expected);
    assert_eq!(
        install.created.len(),
        expected.len(),
        "{:?}",
        install.created
    );

    // Every object reads back from the server, in the right namespace.
    let get_ns = |kind: &str, name: &str| install.get(&["get", kind, name, "-n", ns]);
    let namespace = install.get(&["get", "namespace", ns]);
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    for sa in ["coredump-api", "coredump-gc", "coredump-agent"] {
        assert_eq!(get_ns("serviceaccount", sa)["metadata"]["namespace"], ns);
    }

    // The Secret and the APIService hold exactly the certificates written beside the manifest.
    let read = |name: &str| std::fs::read_to_string(install.out_dir().join(name)).unwrap();
    let secret = get_ns("secret", "servercrt");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["data"]["tls.crt"], b64(&read("apiserver.crt")));
    assert_eq!(secret["data"]["tls.key"], b64(&read("apiserver.key")));
    let apiservice = install.get(&["get", "apiservice", "v1alpha1.coredump.fujitsu.com"]);
    let spec = &apiservice["spec"];
    assert_eq!(spec["caBundle"], b64(&read("apiserver_ca.crt")));
    assert_eq!(spec["group"], "coredump.fujitsu.com");
    assert_eq!(spec["version"], "v1alpha1");
    assert_eq!(spec["groupPriorityMinimum"], 2000);
    assert_eq!(spec["versionPriority"], 10);
    assert_eq!(
        spec["service"],
        serde_json::json!({"namespace": ns, "name": SERVICE, "port": 443})
    );

    let service = get_ns("service", SERVICE);
    assert_eq!(service["spec"]["ports"][0]["port"], 443);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 443);
    let etcd_svc = get_ns("service", "etcd-svc");
    assert_eq!(etcd_svc["spec"]["ports"][0]["port"], 2379);

    // Workloads: the seed's flags, service accounts and selectors as the server stored them.
    let container = |object: &Value| object["spec"]["template"]["spec"]["containers"][0].clone();
    let args = |object: &Value| -> Vec<String> {
        serde_json::from_value(container(object)["args"].clone()).unwrap()
    };
    let api = get_ns("deployment", SERVICE);
    assert_eq!(
        args(&api),
        [
            "apiserver".to_string(),
            "--secure-port=443".into(),
            format!("--etcd-servers=http://etcd-svc.{ns}.svc:2379"),
            "--tls-cert-file=/var/run/coredump/tls.crt".into(),
            "--tls-private-key-file=/var/run/coredump/tls.key".into(),
            "--local-path=/coredump".into(),
            "--backend-kind=local".into(),
        ]
    );
    assert_eq!(
        api["spec"]["template"]["spec"]["serviceAccountName"],
        "coredump-api"
    );
    // The Service selects the API server's pods.
    assert_eq!(
        service["spec"]["selector"],
        api["spec"]["template"]["metadata"]["labels"]
    );
    let gc = get_ns("deployment", "coredump-gc");
    assert_eq!(
        args(&gc),
        [
            "gc",
            "--gc-threshold=30m",
            "--local-path=/coredump",
            "--backend-kind=local"
        ]
    );
    assert_eq!(
        gc["spec"]["template"]["spec"]["serviceAccountName"],
        "coredump-gc"
    );
    let ds = get_ns("daemonset", "kcdt-ds");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "coredump-agent");
    assert_eq!(pod["hostPID"], true);
    assert_eq!(container(&ds)["securityContext"]["privileged"], true);
    assert_eq!(args(&ds)[0], "agent");
    let env = container(&ds)["env"].clone();
    assert!(
        env.as_array().unwrap().contains(&serde_json::json!(
            {"name": "NS_DISK_QUOTA", "value": "1GB"}
        )),
        "{env}"
    );
    let etcd = get_ns("statefulset", "etcd");
    assert_eq!(
        etcd["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
        "/tmp/etcd-backend"
    );
    assert_eq!(
        etcd_svc["spec"]["selector"],
        etcd["spec"]["template"]["metadata"]["labels"]
    );

    // Cleanup removes every cluster-scoped object (and the one in kube-system), so the next
    // install, or the next run, starts clean. Holding the lock, no other install exists.
    let cp = install.cp;
    let ns = ns.to_string();
    drop(install);
    let _lock = install_lock();
    let gone = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-o", "name", "--ignore-not-found", "--request-timeout=30s"]);
        assert_eq!(cp.kubectl_ok(&all).unwrap(), "", "still there: {args:?}");
    };
    gone(&["get", "apiservice", "v1alpha1.coredump.fujitsu.com"]);
    for component in ["apiserver", "gc", "agent"] {
        gone(&[
            "get",
            "clusterrole",
            &format!("coredump-detector:{ns}:{component}"),
        ]);
        gone(&[
            "get",
            "clusterrolebinding",
            &format!("coredump-detector:{ns}:{component}"),
        ]);
    }
    gone(&[
        "get",
        "clusterrolebinding",
        &format!("coredump-detector:{ns}:apiserver-auth-delegator"),
    ]);
    gone(&["get", "clusterrole", "coredump-viewer"]);
    gone(&["get", "clusterrole", "coredump-debugger"]);
    gone(&[
        "get",
        "rolebinding",
        "-n",
        "kube-system",
        &format!("coredump-detector:{ns}:apiserver-authentication-reader"),
    ]);
}

/// Who is asking: `--as` and `--as-group` flags.
struct Who {
    name: String,
    flags: Vec<String>,
}

impl Who {
    fn service_account(ns: &str, name: &str) -> Who {
        Who {
            name: name.to_string(),
            flags: vec![
                format!("--as=system:serviceaccount:{ns}:{name}"),
                "--as-group=system:serviceaccounts".into(),
                format!("--as-group=system:serviceaccounts:{ns}"),
            ],
        }
    }

    fn user(name: &str) -> Who {
        Who {
            name: name.to_string(),
            flags: vec![format!("--as={name}")],
        }
    }
}

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

/// Runs kubectl as `who` with `body` on stdin and parses its JSON output.
fn kubectl_stdin(cp: &ControlPlane, who: &Who, args: &[&str], body: &Value) -> Value {
    let mut all = args.to_vec();
    // Schema validation would list CRDs, which the subjects under test may not do.
    all.extend(["-o", "json", "--validate=false", "--request-timeout=30s"]);
    all.extend(who.flags.iter().map(String::as_str));
    let mut child = cp
        .kubectl_command(&all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
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
            "patch /events",
            "create events.k8s.io/events",
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

/// kubectl decodes manifests as YAML 1.1, where bare `on` and `y` are booleans: the quoting of
/// such names must survive its decoder (checked without the negative: the same manifest with
/// the quotes removed is refused, proving the words really are ambiguous to kubectl).
#[test]
fn yaml_1_1_words_survive_kubectl_decoding() {
    let cp = shared().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let manifest =
        coredump_deploy::write(tmp.path(), &coredump_deploy::DeployOptions::new("on", "y"))
            .unwrap();
    let decode = |path: &Path| {
        cp.kubectl(&[
            "create",
            "--dry-run=client",
            "-o",
            "json",
            "-f",
            path.to_str().unwrap(),
            "--request-timeout=30s",
        ])
    };
    let out = decode(&manifest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One JSON object per document, back to back.
    let items: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(items.len(), 22);
    assert_eq!(items[0]["kind"], "Namespace");
    assert_eq!(items[0]["metadata"]["name"], "on");
    let service = items
        .iter()
        .find(|i| i["kind"] == "Service" && i["metadata"]["name"] == "y")
        .unwrap();
    assert_eq!(service["metadata"]["namespace"], "on");

    let unquoted = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("\"on\"", "on")
        .replace("\"y\"", "y");
    let bare = tmp.path().join("unquoted.yaml");
    std::fs::write(&bare, unquoted).unwrap();
    let out = decode(&bare);
    assert!(
        !out.status.success(),
        "bare `on` decoded as a string: the check proves nothing"
    );
}
