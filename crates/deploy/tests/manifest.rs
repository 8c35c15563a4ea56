//! The rendered manifest, parsed back into typed Kubernetes objects: the objects the seed lists
//! exist with the right kinds and names, the serving certificate is valid for the Service and
//! chains to the APIService's caBundle, options reach the workloads, bad options are refused
//! before anything is written, and `write` leaves private files private.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod certs;
mod rendered;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use certs::pem_der;
use coredump_deploy::{
    CaKeys, DeployError, DeployOptions, generate_certs, render, write, write_with,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use rendered::{documents, find};
use serde_json::Value;
use x509_parser::prelude::*;

#[test]
fn every_object_the_seed_lists_is_there_in_creation_order() {
    let opts = DeployOptions::new("coredump-system", "coredump");
    let certs = generate_certs("coredump-system", "coredump").unwrap();
    let docs = documents(&render(&opts, &certs).unwrap());
    let listed: Vec<(String, String, String)> = docs
        .iter()
        .map(|d| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&d["kind"]),
                text(&d["metadata"]["name"]),
                text(&d["metadata"]["namespace"]),
            )
        })
        .collect();
    let ns = "coredump-system";
    let expected: Vec<(&str, String, &str)> = vec![
        ("Namespace", ns.into(), ""),
        ("ServiceAccount", "coredump-api".into(), ns),
        ("ServiceAccount", "coredump-gc".into(), ns),
        ("ServiceAccount", "coredump-agent".into(), ns),
        ("Secret", "servercrt".into(), ns),
        ("Secret", "etcd-server-tls".into(), ns),
        ("Secret", "etcd-client-tls".into(), ns),
        ("Service", "coredump".into(), ns),
        ("Service", "etcd-svc".into(), ns),
        ("NetworkPolicy", "etcd".into(), ns),
        ("NetworkPolicy", "apiserver".into(), ns),
        ("APIService", "v1alpha1.coredump.fujitsu.com".into(), ""),
        (
            "ClusterRole",
            format!("coredump-detector:{ns}:apiserver"),
            "",
        ),
        (
            "ClusterRoleBinding",
            format!("coredump-detector:{ns}:apiserver"),
            "",
        ),
        (
            "ClusterRoleBinding",
            format!("coredump-detector:{ns}:apiserver-auth-delegator"),
            "",
        ),
        (
            "RoleBinding",
            format!("coredump-detector:{ns}:apiserver-authentication-reader"),
            "kube-system",
        ),
        ("ClusterRole", format!("coredump-detector:{ns}:gc"), ""),
        (
            "ClusterRoleBinding",
            format!("coredump-detector:{ns}:gc"),
            "",
        ),
        ("ClusterRole", format!("coredump-detector:{ns}:agent"), ""),
        (
            "ClusterRoleBinding",
            format!("coredump-detector:{ns}:agent"),
            "",
        ),
        ("Role", "coredump-agent-daemonset".into(), ns),
        ("RoleBinding", "coredump-agent-daemonset".into(), ns),
        ("ClusterRole", "coredump-viewer".into(), ""),
        ("ClusterRole", "coredump-debugger".into(), ""),
        ("StatefulSet", "etcd".into(), ns),
        ("Deployment", "coredump".into(), ns),
        ("Deployment", "coredump-gc".into(), ns),
        ("DaemonSet", "kcdt-ds".into(), ns),
    ];
    let expected: Vec<(String, String, String)> = expected
        .into_iter()
        .map(|(k, n, s)| (k.to_string(), n, s.to_string()))
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn server_certificate_is_valid_for_the_service_and_chains_to_the_ca_bundle() {
    let opts = DeployOptions::new("team-a", "crashes");
    let certs = generate_certs("team-a", "crashes").unwrap();
    let docs = documents(&render(&opts, &certs).unwrap());
    let secret: Secret = find(&docs, "Secret", "servercrt");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.unwrap();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["tls.crt", "tls.key"]
    );
    assert_eq!(data["tls.crt"].0, certs.server.cert_pem.as_bytes());
    assert_eq!(data["tls.key"].0, certs.server.key_pem.as_bytes());

    let apiservice: APIService = find(&docs, "APIService", "v1alpha1.coredump.fujitsu.com");
    let spec = apiservice.spec.unwrap();
    let ca_pem = spec.ca_bundle.unwrap().0;
    let ca_der = pem_der(&ca_pem);
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    let server_der = pem_der(&data["tls.crt"].0);
    let (_, server) = X509Certificate::from_der(&server_der).unwrap();

    let cn = |name: &X509Name| {
        name.iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(cn(ca.subject()), "crashes-certificate-authority");
    assert!(ca.is_ca());
    assert_eq!(cn(server.subject()), "crashes.team-a.svc");
    let sans = certs::verified_dns_names(&data["tls.crt"].0, &ca_pem);
    let expected: BTreeSet<String> = [
        "crashes.team-a.svc",
        "crashes.team-a.svc.cluster.local",
        "crashes.team-a",
        "crashes",
    ]
    .map(String::from)
    .into();
    assert_eq!(sans, expected);
    let eku = server.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth);

    // tls.key is the private half of tls.crt; the CA key is nowhere in the manifest.
    let key = rcgen::KeyPair::from_pem(&certs.server.key_pem).unwrap();
    assert_eq!(
        rcgen::PublicKeyData::subject_public_key_info(&key),
        server.public_key().raw
    );
    let yaml = render(&opts, &certs).unwrap();
    assert!(!yaml.contains(&b64(&certs.ca.key_pem)));
    assert!(!yaml.contains("PRIVATE KEY"));
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn the_namespace_is_created_only_when_it_does_not_always_exist() {
    let certs = generate_certs("x", "coredump").unwrap();
    let kinds = |opts: &DeployOptions| -> usize {
        documents(&render(opts, &certs).unwrap())
            .iter()
            .filter(|d| d["kind"] == "Namespace")
            .count()
    };
    for builtin in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert_eq!(
            kinds(&DeployOptions::new(builtin, "coredump")),
            0,
            "{builtin}"
        );
    }
    assert_eq!(kinds(&DeployOptions::new("team-a", "coredump")), 1);
    let mut existing = DeployOptions::new("team-a", "coredump");
    existing.create_namespace = false;
    assert_eq!(kinds(&existing), 0);
}

#[test]
fn options_reach_the_workloads() {
    let mut opts = DeployOptions::new("ops", "dumps");
    opts.image = "registry.example/coredump-detector:1.2.3".into();
    opts.local_path = "/srv/cores".into();
    opts.host_dir = "/opt/coredump".into();
    opts.ns_disk_quota = "5Gi".into();
    opts.gc_threshold = "2h".into();
    opts.api_port = 8443;
    opts.gc_metrics_port = 9200;
    let certs = generate_certs("ops", "dumps").unwrap();
    let docs = documents(&render(&opts, &certs).unwrap());

    let service: Service = find(&docs, "Service", "dumps");
    let port = &service.spec.unwrap().ports.unwrap()[0];
    assert_eq!(port.port, 443);
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8443))
    );

    let api: Deployment = find(&docs, "Deployment", "dumps");
    let pod = api.spec.template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example/coredump-detector:1.2.3")
    );
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .contains(&"--secure-port=8443".to_string())
    );
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .contains(&"--etcd-servers=https://etcd-svc.ops.svc:2379".to_string())
    );
    // An unprivileged port needs no capability at all.
    let caps = c
        .security_context
        .as_ref()
        .unwrap()
        .capabilities
        .as_ref()
        .unwrap();
    assert_eq!(caps.add, None);
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    let cores = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "coredump-backend")
        .unwrap();
    assert_eq!(cores.host_path.as_ref().unwrap().path, "/srv/cores");

    let gc: Deployment = find(&docs, "Deployment", "coredump-gc");
    let gc_container = gc.spec.template.spec.unwrap().containers[0].clone();
    let gc_args = gc_container.args.clone().unwrap();
    assert_eq!(
        gc_args[..3],
        [
            "gc".to_string(),
            "--gc-threshold=2h".into(),
            "--max-age=720h".into()
        ]
    );
    assert!(gc_args.contains(&"--metrics-bind-address=0.0.0.0:9200".to_string()));
    assert_eq!(gc_container.ports.unwrap()[0].container_port, 9200);

    let ds: DaemonSet = find(&docs, "DaemonSet", "kcdt-ds");
    let pod = ds.spec.template.spec.unwrap();
    assert_eq!(pod.host_pid, Some(true));
    let c = &pod.containers[0];
    assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .contains(&"--host-dir=/opt/coredump".to_string())
    );
    let env = serde_json::to_value(c.env.as_ref().unwrap()).unwrap();
    assert!(
        env.as_array()
            .unwrap()
            .contains(&serde_json::json!({"name": "NS_DISK_QUOTA", "value": "5Gi"}))
    );
    assert!(env.as_array().unwrap().contains(&serde_json::json!(
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    )));
    // The node directory is mounted at its host path: core_pattern names host paths.
    let host_dir = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "host-dir")
        .unwrap();
    assert_eq!(host_dir.host_path.as_ref().unwrap().path, "/opt/coredump");
    let mount = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "host-dir")
        .unwrap();
    assert_eq!(mount.mount_path, "/opt/coredump");
}

/// `--blob-store s3://...` (and `gs://`, `az://`) and its Secret reach the three roles that
/// store cores; the credentials themselves never appear in the manifest. The default keeps the
/// seed's hostPath.
#[test]
fn a_bucket_reaches_every_role_that_stores_cores() {
    let certs = generate_certs("ops", "dumps").unwrap();
    for store in [
        "s3://cores/cluster-a",
        "gs://cores/cluster-a",
        "az://cores/cluster-a",
    ] {
        a_bucket_reaches_every_role(&certs, store);
    }
    let default = documents(&render(&DeployOptions::new("ops", "dumps"), &certs).unwrap());
    let agent: DaemonSet = find(&default, "DaemonSet", "kcdt-ds");
    let c = &agent.spec.template.spec.unwrap().containers[0];
    assert!(c.env_from.is_none());
    assert!(
        !c.args
            .clone()
            .unwrap()
            .iter()
            .any(|a| a.starts_with("--blob-store"))
    );
}

/// `store` and its Secret in the API server, the GC and the agent.
fn a_bucket_reaches_every_role(certs: &coredump_deploy::Certs, store: &str) {
    let mut opts = DeployOptions::new("ops", "dumps");
    opts.blob_store = store.into();
    opts.blob_store_secret = Some("coredump-bucket".into());
    let docs = documents(&render(&opts, certs).unwrap());
    let api: Deployment = find(&docs, "Deployment", "dumps");
    let gc: Deployment = find(&docs, "Deployment", "coredump-gc");
    let agent: DaemonSet = find(&docs, "DaemonSet", "kcdt-ds");
    let containers = [
        api.spec.template.spec.unwrap().containers,
        gc.spec.template.spec.unwrap().containers,
        agent.spec.template.spec.unwrap().containers,
    ];
    for c in containers.iter().map(|cs| &cs[0]) {
        let args = c.args.clone().unwrap();
        assert!(
            args.contains(&format!("--blob-store={store}")),
            "{}: {args:?}",
            c.name
        );
        let from = c.env_from.clone().unwrap();
        let secret = from[0].secret_ref.clone().unwrap();
        assert_eq!(
            (secret.name.as_str(), secret.optional),
            ("coredump-bucket", Some(false))
        );
    }
}

/// `deploy --capture MODE` becomes the agent's `--capture=MODE` (pipe unless asked), and every
/// install mounts the host's `/run/coredump-detector`, where the machine-wide owner lock of
/// `core_pattern` lives whatever `--host-dir`.
#[test]
fn the_capture_mode_reaches_the_agent_and_the_owner_lock_is_mounted() {
    use coredump_capture::socket::CaptureMode;
    let certs = generate_certs("ops", "dumps").unwrap();
    let agent_args = |mode: Option<CaptureMode>| {
        let mut opts = DeployOptions::new("ops", "dumps");
        if let Some(mode) = mode {
            opts.capture = mode;
        }
        let docs = documents(&render(&opts, &certs).unwrap());
        let agent: DaemonSet = find(&docs, "DaemonSet", "kcdt-ds");
        let pod = agent.spec.template.spec.unwrap();
        (pod.containers[0].clone(), pod.volumes.unwrap())
    };
    let captures = |c: &k8s_openapi::api::core::v1::Container| -> Vec<String> {
        c.args
            .clone()
            .unwrap()
            .into_iter()
            .filter(|a| a.starts_with("--capture"))
            .collect()
    };
    let (default, volumes) = agent_args(None);
    assert_eq!(captures(&default), ["--capture=pipe"]);
    for (mode, arg) in [
        (CaptureMode::Socket, "--capture=socket"),
        (CaptureMode::Auto, "--capture=auto"),
        (CaptureMode::Pipe, "--capture=pipe"),
    ] {
        assert_eq!(captures(&agent_args(Some(mode)).0), [arg]);
    }
    let run = volumes.iter().find(|v| v.name == "node-run").unwrap();
    let host = run.host_path.as_ref().unwrap();
    assert_eq!(
        (host.path.as_str(), host.type_.as_deref()),
        ("/run/coredump-detector", Some("DirectoryOrCreate"))
    );
    let mount = default
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "node-run")
        .unwrap();
    assert_eq!(mount.mount_path, "/run/coredump-detector");
    assert_eq!(
        std::path::Path::new(coredump_capture::kernel::OWNER_LOCK).parent(),
        Some(std::path::Path::new(&mount.mount_path))
    );
}

#[test]
fn yaml_1_1_words_are_quoted() {
    // kubectl reads manifests as YAML 1.1, where a bare `on` or `y` is a boolean.
    let opts = DeployOptions::new("on", "y");
    let certs = generate_certs("on", "y").unwrap();
    let yaml = render(&opts, &certs).unwrap();
    assert!(yaml.contains("  namespace: \"on\"\n"), "{yaml}");
    assert!(yaml.contains("  name: \"y\"\n"), "{yaml}");
    assert!(!yaml.contains(": on\n") && !yaml.contains(": y\n"));
}

#[test]
fn bad_options_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let cases: Vec<(DeployOptions, &str)> = vec![
        (DeployOptions::new("Bad_NS", "coredump"), "namespace"),
        (DeployOptions::new("ok", "1coredump"), "service"),
        (
            DeployOptions {
                ns_disk_quota: "lots".into(),
                ..DeployOptions::new("ok", "c")
            },
            "--ns-disk-quota",
        ),
        (
            DeployOptions {
                gc_threshold: "30 minutes".into(),
                ..DeployOptions::new("ok", "c")
            },
            "--gc-threshold",
        ),
        (
            DeployOptions {
                blob_store: "az://under_score".into(),
                ..DeployOptions::new("ok", "c")
            },
            "--blob-store",
        ),
        (
            DeployOptions {
                blob_store_secret: Some("Bad_Secret".into()),
                ..DeployOptions::new("ok", "c")
            },
            "--blob-store-secret",
        ),
        (
            DeployOptions {
                local_path: "relative/dir".into(),
                ..DeployOptions::new("ok", "c")
            },
            "--local-path",
        ),
        (
            DeployOptions {
                image: "has space".into(),
                ..DeployOptions::new("ok", "c")
            },
            "--image",
        ),
        (
            DeployOptions {
                image_pull_policy: "Sometimes".into(),
                ..DeployOptions::new("ok", "c")
            },
            "--image-pull-policy",
        ),
        (
            DeployOptions {
                api_port: 0,
                ..DeployOptions::new("ok", "c")
            },
            "--api-port",
        ),
    ];
    for (opts, option) in cases {
        match write(&dir, &opts, CaKeys::Discard) {
            Err(DeployError::InvalidOption { option: got, .. }) => assert_eq!(got, option),
            other => panic!("{option}: {other:?}"),
        }
        assert!(!dir.exists(), "{option}: wrote {}", dir.display());
    }
}

#[test]
fn write_embeds_the_certificates_it_writes_and_keeps_keys_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/coredump-yaml");
    let opts = DeployOptions::new("default", "coredump");
    let manifest = write(&dir, &opts, CaKeys::Write).unwrap();
    assert_eq!(manifest, dir.join("coredump.yaml"));
    let mode = |name: &str| {
        std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("coredump.yaml"), 0o600);
    assert_eq!(mode("apiserver_ca.key"), 0o600);
    assert_eq!(mode("etcd_ca.key"), 0o600);
    assert_eq!(mode("apiserver.key"), 0o600);
    assert_eq!(mode("apiserver_ca.crt"), 0o644);
    assert_eq!(mode("etcd_ca.crt"), 0o644);
    assert_eq!(mode("apiserver.crt"), 0o644);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let docs = documents(&read("coredump.yaml"));
    let secret: Secret = find(&docs, "Secret", "servercrt");
    assert_eq!(
        secret.data.unwrap()["tls.crt"].0,
        read("apiserver.crt").into_bytes()
    );
    let apiservice: APIService = find(&docs, "APIService", "v1alpha1.coredump.fujitsu.com");
    assert_eq!(
        apiservice.spec.unwrap().ca_bundle.unwrap().0,
        read("apiserver_ca.crt").into_bytes()
    );
    let etcd: Secret = find(&docs, "Secret", "etcd-server-tls");
    assert_eq!(
        etcd.data.unwrap()["ca.crt"].0,
        read("etcd_ca.crt").into_bytes()
    );

    // Writing again replaces everything with a new, consistent set, and without
    // --write-ca-keys no CA key is left behind, not even the earlier run's.
    let again = generate_certs("default", "coredump").unwrap();
    write_with(&dir, &opts, &again, CaKeys::Discard).unwrap();
    assert_eq!(read("apiserver.crt"), again.server.cert_pem);
    assert_eq!(read("etcd_ca.crt"), again.etcd_ca.cert_pem);
    assert_eq!(read("coredump.yaml"), render(&opts, &again).unwrap());
    for key in ["apiserver_ca.key", "etcd_ca.key"] {
        assert!(
            !dir.join(key).exists(),
            "{key} left in the output directory"
        );
    }
}

fn certificate(pem: &[u8]) -> X509Certificate<'static> {
    let der: &'static [u8] = Box::leak(pem_der(pem).into_boxed_slice());
    X509Certificate::from_der(der).unwrap().1
}

fn names_of(cert: &X509Certificate<'_>) -> BTreeSet<String> {
    cert.subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| n.to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// etcd trusts one client certificate, the API server's, from a CA of its own: a certificate of
/// the API CA (which kube-apiserver trusts) is no key to etcd, and no CA key is in the manifest.
#[test]
fn etcd_has_its_own_ca_and_accepts_only_the_api_servers_client_certificate() {
    let opts = DeployOptions::new("team-a", "crashes");
    let certs = generate_certs("team-a", "crashes").unwrap();
    let yaml = render(&opts, &certs).unwrap();
    let docs = documents(&yaml);
    let server: Secret = find(&docs, "Secret", "etcd-server-tls");
    let client: Secret = find(&docs, "Secret", "etcd-client-tls");
    let server = server.data.unwrap();
    let client = client.data.unwrap();
    assert_eq!(server["ca.crt"], client["ca.crt"]);
    let ca = certificate(&server["ca.crt"].0);
    let api_ca = certificate(certs.ca.cert_pem.as_bytes());
    assert_ne!(ca.subject(), api_ca.subject());
    assert_ne!(ca.public_key().raw, api_ca.public_key().raw);

    let serving = certificate(&server["tls.crt"].0);
    serving.verify_signature(Some(ca.public_key())).unwrap();
    let sans = names_of(&serving);
    for name in ["etcd-svc.team-a.svc", "etcd-svc", "localhost"] {
        assert!(sans.contains(&format!("DNSName({name})")), "{sans:?}");
    }
    let eku = serving.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth, "etcd dials itself");

    let client_cert = certificate(&client["tls.crt"].0);
    client_cert.verify_signature(Some(ca.public_key())).unwrap();
    let eku = client_cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    // The API server's serving certificate is not signed by the etcd CA.
    let api_serving = certificate(certs.server.cert_pem.as_bytes());
    assert!(api_serving.verify_signature(Some(ca.public_key())).is_err());
    for key in [&certs.ca.key_pem, &certs.etcd_ca.key_pem] {
        assert!(!yaml.contains(&b64(key)), "a CA key is in the manifest");
    }
}

/// The API server and the GC cannot become root, write their image, gain capabilities or make
/// syscalls outside the runtime's default filter; etcd answers only TLS clients with a
/// certificate, and only the API server's pods reach it; nothing lives under /tmp.
#[test]
fn only_the_agent_is_privileged_and_etcd_is_closed() {
    let opts = DeployOptions::new("ops", "dumps");
    let certs = generate_certs("ops", "dumps").unwrap();
    let yaml = render(&opts, &certs).unwrap();
    let docs = documents(&yaml);
    assert!(!yaml.contains("/tmp"), "a host path under /tmp");
    for name in ["dumps", "coredump-gc"] {
        let d: Deployment = find(&docs, "Deployment", name);
        let pod = d.spec.template.spec.unwrap();
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true), "{name}");
        assert_eq!(psc.run_as_user, Some(65532), "{name}");
        assert_eq!(psc.fs_group, Some(65532), "{name}");
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let sc = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
        let caps = sc.capabilities.unwrap();
        assert_eq!(caps.add, None, "{name}");
        assert_eq!(caps.drop.unwrap(), ["ALL"]);
        assert_eq!(sc.privileged, None, "{name}");
    }
    let ds: DaemonSet = find(&docs, "DaemonSet", "kcdt-ds");
    let agent = ds.spec.template.spec.unwrap().containers[0].clone();
    assert!(
        agent
            .args
            .unwrap()
            .contains(&"--blob-owner=65532:65532".to_string()),
        "the agent must hand the cores to the API server's user"
    );

    let etcd: k8s_openapi::api::apps::v1::StatefulSet = find(&docs, "StatefulSet", "etcd");
    let pod = etcd.spec.template.spec.unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    let args = pod.containers[0].args.clone().unwrap();
    for flag in [
        "--listen-client-urls=https://0.0.0.0:2379",
        "--client-cert-auth=true",
        "--trusted-ca-file=/etc/etcd/tls/ca.crt",
    ] {
        assert!(args.contains(&flag.to_string()), "{flag}: {args:?}");
    }
    assert!(!args.iter().any(|a| a.contains("http://0.0.0.0:2379")));

    let policy: k8s_openapi::api::networking::v1::NetworkPolicy =
        find(&docs, "NetworkPolicy", "etcd");
    let spec = serde_json::to_value(policy.spec.unwrap()).unwrap();
    assert_eq!(
        spec,
        serde_json::json!({
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "etcd", "app.kubernetes.io/name": "coredump-detector"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "apiserver", "app.kubernetes.io/name": "coredump-detector"}}}],
                         "ports": [{"port": 2379, "protocol": "TCP"}]}]
        })
    );
    let policy: k8s_openapi::api::networking::v1::NetworkPolicy =
        find(&docs, "NetworkPolicy", "apiserver");
    let spec = serde_json::to_value(policy.spec.unwrap()).unwrap();
    assert_eq!(
        spec["ingress"],
        serde_json::json!([{"ports": [{"port": 8443, "protocol": "TCP"}]}])
    );
}
