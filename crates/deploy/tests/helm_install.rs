//! The committed chart against the real kube-apiserver with the real `helm` (built from
//! helm.sh/helm/v4): `helm install`, `helm upgrade` with changed values (the change reaches the
//! live objects, the certificates stay), `helm uninstall` (every object gone, cluster-scoped
//! ones too). No kubelet runs, so no pod starts: the agent's `core_pattern` is not exercised
//! here.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod certs;
mod common;

use std::time::{Duration, Instant};

use coredump_testplane::helm::helm_command;
use coredump_testplane::shared;
use serde_json::Value;

#[test]
fn helm_install_upgrade_uninstall() {
    let _lock = common::install_lock();
    let cp = shared().unwrap();
    let ns = cp.create_namespace("helm").unwrap();
    let home = tempfile::tempdir().unwrap();
    let chart = common::repo_root().join("deploy/helm/coredump-detector");
    let helm = |args: &[&str]| {
        let out = helm_command(cp, home.path())
            .unwrap()
            .args(args)
            .args(["-n", &ns, "--timeout", "120s"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let get = |args: &[&str]| -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json", "--request-timeout=30s"]);
        serde_json::from_str(&cp.kubectl_ok(&all).unwrap()).unwrap()
    };
    let chart = chart.to_str().unwrap();

    helm(&["install", "cd", chart]);
    let gc_args = |ns: &str| {
        get(&["get", "deployment", "coredump-gc", "-n", ns])
        ["spec"]["template"]["spec"]["containers"][0]["args"]
        .clone()
    };
    assert_eq!(gc_args(&ns)[1], "--gc-threshold=30m");
    let secret = get(&["get", "secret", "servercrt", "-n", &ns]);
    let api = get(&["get", "apiservice", "v1alpha1.coredump.fujitsu.com"]);
    assert_eq!(
        api["spec"]["service"],
        serde_json::json!({"namespace": ns, "name": "coredump", "port": 443})
    );
    // The serving certificate is for the Service's name and signed by the caBundle's CA.
    let pem = |b64: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap()
    };
    let server_pem = pem(&secret["data"]["tls.crt"]);
    let ca_pem = pem(&api["spec"]["caBundle"]);
    assert_eq!(
        certs::verified_dns_names(&server_pem, &ca_pem),
        coredump_deploy::server_dns_names(&ns, "coredump")
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
    );

    helm(&[
        "upgrade",
        "cd",
        chart,
        "--set-string",
        "gcThreshold=45m,nsDiskQuota=2Gi",
    ]);
    assert_eq!(gc_args(&ns)[1], "--gc-threshold=45m");
    let ds = get(&["get", "daemonset", "kcdt-ds", "-n", &ns]);
    let env = &ds["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .contains(&serde_json::json!({"name": "NS_DISK_QUOTA", "value": "2Gi"})),
        "{env}"
    );
    // The upgrade kept the certificates (lookup), byte for byte.
    let secret2 = get(&["get", "secret", "servercrt", "-n", &ns]);
    assert_eq!(secret2["data"], secret["data"]);
    let api2 = get(&["get", "apiservice", "v1alpha1.coredump.fujitsu.com"]);
    assert_eq!(api2["spec"]["caBundle"], api["spec"]["caBundle"]);

    helm(&["uninstall", "cd"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let scoped = format!("coredump-detector:{ns}:agent");
    loop {
        let left = [
            vec!["get", "apiservice", "v1alpha1.coredump.fujitsu.com"],
            vec!["get", "clusterrole", scoped.as_str()],
            vec!["get", "clusterrole", "coredump-viewer"],
            vec![
                "get",
                "daemonset,deployment,statefulset,secret,service",
                "-n",
                &ns,
            ],
        ]
        .iter()
        .map(|args| {
            let mut all = args.clone();
            all.extend(["-o", "name", "--ignore-not-found", "--request-timeout=30s"]);
            cp.kubectl_ok(&all).unwrap()
        })
        .collect::<String>();
        // Only objects Helm does not own may remain: the namespace's default token-less
        // resources are none of these kinds, so nothing.
        if left.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left after uninstall:\n{left}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
