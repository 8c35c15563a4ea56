//! `sh deploy/deploy.sh NS coredump DIR` run with the real binary, then `kubectl create -f
//! DIR/coredump.yaml` against a real kube-apiserver: every object is created, reads back as
//! generated, and is gone after `kubectl delete -f`. No kubelet runs, so no pod ever starts.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Install, SERVICE, b64, install_lock};
use coredump_testplane::shared;
use serde_json::Value;

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
        "secret/etcd-server-tls".into(),
        "secret/etcd-client-tls".into(),
        format!("service/{SERVICE}"),
        "service/etcd-svc".into(),
        "networkpolicy.networking.k8s.io/etcd".into(),
        "networkpolicy.networking.k8s.io/apiserver".into(),
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
        format!("role.{rbac}/coredump-agent-daemonset"),
        format!("rolebinding.{rbac}/coredump-agent-daemonset"),
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
    // And the server has each of them.
    assert_eq!(install.names_on_server(), install.names_created());

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
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 8443);
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
            "--secure-port=8443".into(),
            format!("--etcd-servers=https://etcd-svc.{ns}.svc:2379"),
            "--etcd-cafile=/var/run/coredump-etcd/ca.crt".into(),
            "--etcd-certfile=/var/run/coredump-etcd/tls.crt".into(),
            "--etcd-keyfile=/var/run/coredump-etcd/tls.key".into(),
            "--tls-cert-file=/var/run/coredump/tls.crt".into(),
            "--tls-private-key-file=/var/run/coredump/tls.key".into(),
            "--local-path=/coredump".into(),
            "--backend-kind=local".into(),
            format!("--node-bound-users=system:serviceaccount:{ns}:coredump-agent"),
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
            "--max-age=720h",
            "--local-path=/coredump",
            "--backend-kind=local",
            "--metrics-bind-address=0.0.0.0:9103"
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
        "/var/lib/coredump-detector/etcd"
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

/// kubectl decodes manifests as YAML 1.1, where bare `on` and `y` are booleans: the quoting of
/// such names must survive its decoder (checked without the negative: the same manifest with
/// the quotes removed is refused, proving the words really are ambiguous to kubectl).
#[test]
fn yaml_1_1_words_survive_kubectl_decoding() {
    let cp = shared().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let manifest = coredump_deploy::write(
        tmp.path(),
        &coredump_deploy::DeployOptions::new("on", "y"),
        coredump_deploy::CaKeys::Discard,
    )
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
    assert_eq!(items.len(), 28);
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

/// The seed README's two commands, verbatim (`sh deploy.sh default coredump DIR` run inside
/// `deploy/`, then `kubectl create -f DIR/coredump.yaml`), into the existing `default` namespace.
#[test]
fn seed_readme_commands_install_into_default() {
    let install = Install::seed_usage();
    let created = install.names_created();
    assert_eq!(created.len(), 27, "{created:?}"); // every object but the Namespace
    assert!(!created.iter().any(|n| n.starts_with("namespace/")));
    assert!(created.contains("deployment.apps/coredump"));
    assert!(created.contains("daemonset.apps/kcdt-ds"));
    assert_eq!(install.names_on_server(), created);
    let sa = install.get(&["get", "serviceaccount", "coredump-gc", "-n", "default"]);
    assert_eq!(sa["metadata"]["namespace"], "default");
}

/// The multi-node manifests (a claim for the cores, a claim template for etcd, replicas with a
/// PodDisruptionBudget; or a bucket and an existing etcd cluster) pass the real
/// kube-apiserver's validation of every field (`kubectl create --dry-run=server`, strict field
/// validation): nothing is persisted, so the claim, StorageClass and Secrets they name need not
/// exist.
#[test]
fn multi_node_manifests_pass_kube_apiserver_validation() {
    let cp = shared().unwrap();
    let ns = cp.create_namespace("scale").unwrap();
    let mut claim = coredump_deploy::DeployOptions::new(&ns, SERVICE);
    claim.create_namespace = false;
    claim.blob_volume_claim = Some("cores-rwx".into());
    claim.etcd_storage_class = Some("standard".into());
    claim.etcd_storage_size = "1.5Gi".into();
    claim.api_replicas = 2;
    let mut bucket = coredump_deploy::DeployOptions::new(&ns, SERVICE);
    bucket.create_namespace = false;
    bucket.blob_store = "s3://cores/prod".into();
    bucket.blob_store_secret = Some("bucket-keys".into());
    bucket.etcd_servers = vec![
        "https://etcd-0.db:2379".into(),
        "https://[fd00::7]:2379".into(),
    ];
    bucket.etcd_client_secret = Some("etcd-client".into());
    bucket.api_replicas = 3;
    for (what, opts, kinds) in [
        ("claim", claim, ["PodDisruptionBudget", "StatefulSet"]),
        ("bucket", bucket, ["PodDisruptionBudget", "Deployment"]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let manifest =
            coredump_deploy::write(tmp.path(), &opts, coredump_deploy::CaKeys::Discard).unwrap();
        let out = cp.kubectl(&[
            "create",
            "--dry-run=server",
            "--validate=strict",
            "-o",
            "name",
            "-f",
            manifest.to_str().unwrap(),
            "--request-timeout=60s",
        ]);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let names = String::from_utf8(out.stdout).unwrap();
        for kind in kinds {
            assert!(
                names.to_lowercase().contains(&kind.to_lowercase()),
                "{what}: no {kind} accepted:\n{names}"
            );
        }
        assert_eq!(
            names.contains("statefulset.apps/etcd"),
            what == "claim",
            "{what}:\n{names}"
        );
    }
}
